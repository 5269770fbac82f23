/* fs/view_text.c - the view's text files: run.json, metrics.json, param_groups.json, history.csv
 *
 * JSON goes through jansson (keys in a fixed order, 2-space indent, trailing newline). Doubles
 * are printed with the fewest digits that read back exactly; JSON has no NaN or infinity, so a
 * non-finite metric is null there and "nan"/"inf"/"-inf" in the CSV. Times are UTC ISO-8601
 * with milliseconds; *_ns fields keep the exact nanoseconds. A store string that is not valid
 * UTF-8 (metric names and run metadata of old stores) is written with U+FFFD for each byte that
 * starts no UTF-8 sequence: JSON must be UTF-8, and CSV readers decode it as such.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "fs/render_util.h"
#include "fs/view_int.h"

void view_format_time(char *buf, size_t cap, int64_t ns)
{
	time_t secs = (time_t)(ns / 1000000000);
	int64_t rem = ns % 1000000000;
	if (rem < 0) {
		rem += 1000000000;
		secs--;
	}
	struct tm tm;
	if (!gmtime_r(&secs, &tm)) {
		snprintf(buf, cap, "%" PRId64, ns);
		return;
	}
	char date[24];
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, cap, "%s.%03dZ", date, (int)(rem / 1000000));
}

/* jansson prints every real of a document with one precision; we want each number as short as
 * it can be and still read back exactly (0.1, not 0.10000000000000001). So reals are swapped
 * for marker strings "\x01<index>" before dumping and their shortest text put back after. */
typedef struct real_texts {
	char (*text)[40];
	size_t count, cap;
} real_texts;

static json_t *real_marker(real_texts *r, double v)
{
	if (r->count == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		char(*grown)[40] = realloc(r->text, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		r->text = grown;
		r->cap = cap;
	}
	char *t = r->text[r->count];
	render_format_double(t, 40, v);
	if (!strpbrk(t, ".e"))
		strcat(t, ".0"); /* stays a float for JSON readers */
	char marker[32];
	snprintf(marker, sizeof(marker), "\x01%zu", r->count++);
	return json_string(marker);
}

static int mark_reals(json_t *j, real_texts *r)
{
	if (json_is_object(j)) {
		const char *key;
		json_t *v;
		void *tmp;
		json_object_foreach_safe(j, tmp, key, v)
		{
			if (json_is_real(v)) {
				json_t *m = real_marker(r, json_real_value(v));
				if (!m || json_object_set_new(j, key, m) != 0)
					return -ENOMEM;
			} else if (mark_reals(v, r) != 0) {
				return -ENOMEM;
			}
		}
	} else if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++) {
			json_t *v = json_array_get(j, i);
			if (json_is_real(v)) {
				json_t *m = real_marker(r, json_real_value(v));
				if (!m || json_array_set_new(j, i, m) != 0)
					return -ENOMEM;
			} else if (mark_reals(v, r) != 0) {
				return -ENOMEM;
			}
		}
	}
	return 0;
}

/* jansson's integers are signed 64-bit: a step or seed of 2^63 or more is a
 * render_json_bigint() marker, its digits put back after dumping (add_json). */
static json_t *json_u64(uint64_t v)
{
	if (v <= INT64_MAX)
		return json_integer((json_int_t)v);
	char t[24];
	int n = snprintf(t, sizeof(t), "%llu", (unsigned long long)v);
	return render_json_bigint(t, (size_t)n);
}

static bool is_bigint_marker(const char *s, size_t len)
{
	const char *digits;
	return len > 1 && s[0] == 1 && render_bigint_digits(s + 1, len - 1, &digits) > 0;
}

/* True if a key or string in @p j holds a \x01 (could look like a marker) other than a
 * json_u64() marker. */
static bool has_marker_byte(const json_t *j)
{
	if (json_is_string(j))
		return memchr(json_string_value(j), 1, json_string_length(j)) != NULL &&
		       !is_bigint_marker(json_string_value(j), json_string_length(j));
	if (json_is_object(j)) {
		const char *key;
		json_t *v;
		json_object_foreach((json_t *)j, key, v)
		{
			if (strchr(key, 1) || has_marker_byte(v))
				return true;
		}
	} else if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++)
			if (has_marker_byte(json_array_get(j, i)))
				return true;
	}
	return false;
}

/* Dump @p j (stolen) pretty-printed with a trailing newline into the layout. */
static int add_json(view_layout *out, json_t *j)
{
	if (!j)
		return -ENOMEM;
	real_texts reals = {0};
	int rc = 0;
	char *text;
	if (has_marker_byte(j)) {
		/* hostile text: no real markers (every real with 17 digits, still exact); only
		 * render_json_bigint()'s are put back */
		text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	} else {
		rc = mark_reals(j, &reals);
		text = rc ? NULL : json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	}
	json_decref(j);
	if (!text) {
		free(reals.text);
		return -ENOMEM;
	}
	static const char marker[] = "\"\\u0001"; /* how jansson writes "\x01 */
	const size_t mlen = sizeof(marker) - 1;
	const char *p = text;
	for (const char *hit; !rc && (hit = strstr(p, marker));) {
		char *end;
		unsigned long long i = strtoull(hit + mlen, &end, 10);
		rc = view_layout_add_bytes(out, p, (size_t)(hit - p));
		if (rc)
			break;
		/* a render_json_bigint() marker: its digits, without the quotes */
		const char *digits;
		size_t text_len = strcspn(hit + mlen, "\"");
		size_t n = render_bigint_digits(hit + mlen, text_len, &digits);
		if (n > 0 && hit[mlen + text_len] == '"' && hit[mlen + text_len + 1] != ':') {
			rc = view_layout_add_bytes(out, digits, n);
			p = digits + n + 1;
			continue;
		}
		if (*end != '"' || i >= reals.count) { /* not ours: keep it as it is */
			rc = view_layout_add_bytes(out, hit, mlen);
			p = hit + mlen;
			continue;
		}
		rc = view_layout_add_bytes(out, reals.text[i], strlen(reals.text[i]));
		p = end + 1;
	}
	if (!rc)
		rc = view_layout_add_bytes(out, p, strlen(p));
	if (!rc)
		rc = view_layout_add_bytes(out, "\n", 1);
	free(text);
	free(reals.text);
	return rc;
}

/* Set key to a new value; a NULL value (failed allocation) marks the object as failed. */
static bool set_new(json_t *obj, const char *key, json_t *value)
{
	return value && json_object_set_new(obj, key, value) == 0;
}

/* @p s as valid UTF-8 (malloc'd; NULL without memory): each byte that starts no well-formed
 * sequence (old stores can hold such names) becomes U+FFFD, as Python's errors="replace" and
 * most viewers show it; JSON must be UTF-8, so jansson refuses the raw bytes. */
static char *utf8_valid(const char *s)
{
	size_t len = strlen(s);
	char *out = malloc(3 * len + 1), *o = out;
	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = ckpt_utf8_sequence((const char *)p);
		if (n) {
			memcpy(o, p, n);
			o += n;
			p += n;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD */
			o += 3;
			p++;
		}
	}
	*o = '\0';
	return out;
}

/* A JSON string of @p s (NULL reads as ""), invalid UTF-8 replaced (utf8_valid()). */
static json_t *json_text(const char *s)
{
	char *valid = utf8_valid(s ? s : "");
	json_t *j = valid ? json_string(valid) : NULL;
	free(valid);
	return j;
}

/* set_new() with @p key made valid UTF-8 (utf8_valid()); @p value is stolen either way. */
static bool set_new_text_key(json_t *obj, const char *key, json_t *value)
{
	char *valid = utf8_valid(key);
	bool ok = valid && set_new(obj, valid, value);
	if (!valid)
		json_decref(value);
	free(valid);
	return ok;
}

static json_t *json_number_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

int view_render_run_json(view_layout *out, ckpt_store *store)
{
	const ckpt_run_meta *m = ckpt_store_meta(store);
	char created[40];
	view_format_time(created, sizeof(created), m->created_ns);
	json_t *j = json_object();
	if (!j)
		return -ENOMEM;
	json_t *hyper = render_load_hyperparams(m->hyperparams, true);
	if (!hyper)
		hyper = json_text(m->hyperparams);
	bool ok =
	    set_new(j, "model", json_text(m->model)) &&
	    set_new(j, "layers", json_text(m->layers)) &&
	    set_new(j, "optimizer", json_text(m->optimizer)) &&
	    set_new(j, "hyperparams", hyper) &&
	    set_new(j, "dataset", json_text(m->dataset)) &&
	    set_new(j, "seed", json_u64(m->seed)) &&
	    set_new(j, "monitor", json_text(m->monitor)) &&
	    set_new(j, "monitor_mode",
	            json_string(m->monitor_mode == CKPT_MODE_MAX ? "max" : "min")) &&
	    set_new(j, "created", json_string(created)) &&
	    set_new(j, "created_ns", json_integer(m->created_ns)) &&
	    set_new(j, "chunk_size", json_integer((json_int_t)ckpt_store_chunk_size(store))) &&
	    set_new(j, "schema_version", json_integer(CKPT_SCHEMA_VERSION)) &&
	    /* numpy has no bfloat16: .npy files widen it to float32, exactly */
	    set_new(j, "npy_bfloat16", json_string("<f4"));
	if (!ok) {
		json_decref(j);
		return -ENOMEM;
	}
	return add_json(out, j);
}

/* Sorted unique devices of the checkpoint's tensors. */
static json_t *devices_of(const ckpt_checkpoint *c, const char **first_model_device)
{
	json_t *arr = json_array();
	if (!arr)
		return NULL;
	*first_model_device = NULL;
	size_t n = ckpt_checkpoint_tensor_count(c);
	for (size_t i = 0; i < n; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, i);
		if (!t)
			continue;
		const char *raw = t->device && *t->device ? t->device : "cpu";
		if (!*first_model_device && t->group == CKPT_GROUP_MODEL)
			*first_model_device = raw;
		char *dev = utf8_valid(raw);
		if (!dev) {
			json_decref(arr);
			return NULL;
		}
		size_t k, pos = json_array_size(arr);
		json_t *v;
		bool seen = false;
		json_array_foreach(arr, k, v)
		{
			int cmp = strcmp(json_string_value(v), dev);
			if (cmp == 0) {
				seen = true;
				break;
			}
			if (cmp > 0 && pos == json_array_size(arr))
				pos = k;
		}
		int rc = seen ? 0 : json_array_insert_new(arr, pos, json_string(dev));
		free(dev);
		if (rc != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

int view_render_metrics(view_layout *out, ckpt_snapshot *snap, const ckpt_checkpoint *c)
{
	char when[40];
	int64_t ns = ckpt_checkpoint_time_ns(c);
	view_format_time(when, sizeof(when), ns);
	json_t *j = json_object();
	json_t *metrics = json_object();
	const char *device = NULL;
	json_t *devices = devices_of(c, &device);
	bool ok = j && metrics && devices;
	size_t count = ckpt_checkpoint_metric_count(c);
	for (size_t i = 0; ok && i < count; i++) {
		const char *name;
		double value;
		if (ckpt_checkpoint_metric_at(c, i, &name, &value) != 0)
			continue;
		ok = set_new_text_key(metrics, name, json_number_or_null(value));
	}
	if (ok) {
		ok = set_new(j, "epoch", json_integer((json_int_t)ckpt_checkpoint_epoch(c))) &&
		     set_new(j, "step", json_u64(ckpt_checkpoint_step(c))) &&
		     set_new(j, "time", json_string(when)) &&
		     set_new(j, "time_ns", json_integer(ns)) && set_new(j, "metrics", metrics) &&
		     set_new(j, "device", json_text(device ? device : "cpu")) &&
		     set_new(j, "devices", devices) &&
		     set_new(j, "is_best", json_boolean(ckpt_checkpoint_is_best(c)));
		metrics = devices = NULL; /* owned by j now (or freed on failure) */
	}
	json_decref(metrics);
	json_decref(devices);
	if (!ok) {
		json_decref(j);
		return -ENOMEM;
	}
	return add_json(out, j);
}

int view_render_param_groups(view_layout *out, const ckpt_checkpoint *c)
{
	const void *data;
	size_t len;
	int rc = ckpt_checkpoint_extra(c, VIEW_PARAM_GROUPS_KEY, &data, &len);
	if (rc)
		return rc;
	/* as checkpoint.pt reads it: a .json file that is not JSON (or holds a key twice) is a
	 * damaged record, never served as it is */
	if (len && ((const char *)data)[len - 1] == '\0')
		len--; /* stored with C's strlen + 1 before libckpt dropped that NUL */
	json_error_t err;
	json_t *j = json_loadb(data, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		view_set_error("epoch %" PRIu64 ": optimizer.param_groups is not valid JSON (%s, "
		               "at byte %d): " RENDER_MALFORMED_PARAM_GROUPS,
		               ckpt_checkpoint_epoch(c), err.text, err.position);
		return CKPT_ECORRUPT;
	}
	if (!json_is_array(j)) { /* torch's param_groups is a list, as checkpoint.pt requires */
		json_decref(j);
		view_set_error("epoch %" PRIu64 ": optimizer.param_groups is not a JSON list: "
		               RENDER_MALFORMED_PARAM_GROUPS,
		               ckpt_checkpoint_epoch(c));
		return CKPT_ECORRUPT;
	}
	return add_json(out, j);
}

/* A growable text buffer. */
typedef struct text {
	char *buf;
	size_t len, cap;
	int rc;
} text;

static void text_add(text *t, const char *s, size_t n)
{
	if (t->rc)
		return;
	if (t->len + n > t->cap) {
		size_t cap = t->cap ? t->cap : 1024;
		while (cap < t->len + n)
			cap *= 2;
		char *buf = realloc(t->buf, cap);
		if (!buf) {
			t->rc = -ENOMEM;
			return;
		}
		t->buf = buf;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
}

static void text_str(text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

/* A CSV field: quoted when it holds a comma, quote or line break. */
static void text_csv_field(text *t, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		text_str(t, s);
		return;
	}
	text_add(t, "\"", 1);
	for (const char *p = s; *p; p++) {
		if (*p == '"')
			text_add(t, "\"", 1);
		text_add(t, p, 1);
	}
	text_add(t, "\"", 1);
}

int view_load_checkpoints_reporting(uint64_t **out_epochs, const ckpt_checkpoint ***out_ckpts,
                                    size_t *out_count, ckpt_snapshot *snap,
                                    view_damage_report report, void *arg)
{
	uint64_t *epochs = NULL;
	size_t count = 0;
	const ckpt_checkpoint **ckpts = NULL;
	*out_epochs = NULL;
	*out_ckpts = NULL;
	*out_count = 0;
	int rc = ckpt_snapshot_list(&epochs, &count, snap);
	if (rc)
		return rc;
	ckpts = calloc(count ? count : 1, sizeof(*ckpts));
	if (!ckpts) {
		free(epochs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < count && !rc; i++) {
		rc = ckpt_snapshot_checkpoint(&ckpts[i], snap, epochs[i]);
		if (rc && rc != -ENOMEM) {
			report(arg, epochs[i], rc, ckpt_last_error());
			ckpts[i] = NULL;
			rc = 0;
		}
	}
	if (rc) {
		free(ckpts);
		free(epochs);
		return rc;
	}
	*out_epochs = epochs;
	*out_ckpts = ckpts;
	*out_count = count;
	return 0;
}

static void report_to_view(void *view, uint64_t epoch, int rc, const char *why)
{
	view_report_damaged(view, epoch, rc, why);
}

int view_load_readable_checkpoints(uint64_t **out_epochs, const ckpt_checkpoint ***out_ckpts,
                                   size_t *out_count, ckpt_view *view, ckpt_snapshot *snap)
{
	return view_load_checkpoints_reporting(out_epochs, out_ckpts, out_count, snap,
	                                       report_to_view, view);
}

/* Rendered once per store generation (view->history_text): `ls -l`, stat and open of
 * history.csv then copy it instead of decoding every checkpoint record again. */
int view_render_history(view_layout *out, ckpt_view *view, ckpt_snapshot *snap)
{
	const uint64_t gen = ckpt_snapshot_generation(snap);
	pthread_mutex_lock(&view->history_lock);
	if (view->history_text && view->history_gen == gen) {
		int rc = view_layout_add_bytes(out, view->history_text, view->history_len);
		pthread_mutex_unlock(&view->history_lock);
		return rc;
	}
	pthread_mutex_unlock(&view->history_lock);
	uint64_t *epochs;
	const ckpt_checkpoint **ckpts;
	size_t count;
	int rc = view_load_readable_checkpoints(&epochs, &ckpts, &count, view, snap);
	if (rc)
		return rc;
	view_layout fresh;
	view_layout_init(&fresh);
	rc = view_render_history_of(&fresh, epochs, ckpts, count);
	free(ckpts);
	free(epochs);
	/* one block of synthesized bytes: the text */
	if (!rc && fresh.nblocks == 1 && fresh.size > 0) {
		char *copy = malloc(fresh.size);
		if (copy) {
			memcpy(copy, fresh.blocks[0], fresh.size);
			pthread_mutex_lock(&view->history_lock);
			if (!view->history_text || gen > view->history_gen) {
				free(view->history_text);
				view->history_text = copy;
				view->history_len = fresh.size;
				view->history_gen = gen;
				copy = NULL;
			}
			pthread_mutex_unlock(&view->history_lock);
			free(copy);
		}
	}
	if (!rc)
		rc = fresh.nblocks == 1 ? view_layout_add_bytes(out, fresh.blocks[0], fresh.size)
		                        : -EIO; /* view_render_history_of() adds the text once */
	view_layout_free(&fresh);
	return rc;
}

int view_metric_names(const char ***out, size_t *out_count, const ckpt_checkpoint *const *ckpts,
                      size_t count)
{
	const char **names = NULL;
	size_t nnames = 0, cap = 0;
	*out = NULL;
	*out_count = 0;
	for (size_t i = 0; i < count; i++) {
		if (!ckpts[i])
			continue;
		size_t m = ckpt_checkpoint_metric_count(ckpts[i]);
		for (size_t k = 0; k < m; k++) {
			const char *name;
			if (ckpt_checkpoint_metric_at(ckpts[i], k, &name, NULL) != 0)
				continue;
			size_t at = 0, hi = nnames; /* insertion point: names stay sorted */
			while (at < hi) {
				size_t mid = at + (hi - at) / 2;
				if (strcmp(names[mid], name) < 0)
					at = mid + 1;
				else
					hi = mid;
			}
			if (at < nnames && strcmp(names[at], name) == 0)
				continue;
			if (nnames == cap) {
				cap = cap ? cap * 2 : 16;
				const char **grown = realloc(names, cap * sizeof(*names));
				if (!grown) {
					free(names);
					return -ENOMEM;
				}
				names = grown;
			}
			memmove(&names[at + 1], &names[at], (nnames - at) * sizeof(*names));
			names[at] = name;
			nnames++;
		}
	}
	*out = names;
	*out_count = nnames;
	return 0;
}

static bool is_column(const char *name, const char *const *fixed, size_t nfixed,
                      const char *const *names, size_t nnames)
{
	for (size_t i = 0; i < nfixed; i++)
		if (strcmp(name, fixed[i]) == 0)
			return true;
	for (size_t i = 0; i < nnames; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

char *view_metric_column(const char *name, const char *const *fixed, size_t nfixed,
                         const char *const *names, size_t nnames)
{
	char *column = strdup(name);
	while (column && is_column(column, fixed, nfixed, NULL, 0)) {
		char *longer;
		if (asprintf(&longer, "metric:%s", column) < 0)
			longer = NULL;
		free(column);
		column = longer;
		/* a renamed column must not meet a metric that has its new name */
		while (column && is_column(column, fixed, nfixed, names, nnames)) {
			if (asprintf(&longer, "metric:%s", column) < 0)
				longer = NULL;
			free(column);
			column = longer;
		}
	}
	return column;
}

int view_render_history_of(view_layout *out, const uint64_t *epochs,
                           const ckpt_checkpoint *const *ckpts, size_t count)
{
	const char **names;
	size_t nnames;
	text t = {0};
	int rc = view_metric_names(&names, &nnames, ckpts, count);
	if (rc)
		return rc;
	static const char *const fixed[] = {"epoch", "step", "time", "best"};
	text_str(&t, "epoch,step,time");
	for (size_t k = 0; k < nnames && !t.rc; k++) {
		text_add(&t, ",", 1);
		/* valid UTF-8, as CSV readers (pandas) decode it by default */
		char *column = view_metric_column(names[k], fixed, 4, names, nnames);
		char *valid = column ? utf8_valid(column) : NULL;
		free(column);
		if (!valid) {
			t.rc = -ENOMEM;
			break;
		}
		text_csv_field(&t, valid);
		free(valid);
	}
	text_str(&t, ",best\n");
	for (size_t i = 0; i < count; i++) {
		char field[64];
		const ckpt_checkpoint *c = ckpts[i];
		if (!c) {
			/* a damaged record: only its epoch is known; step, time, metrics and best
			 * stay empty (a CSV reader's missing values) */
			snprintf(field, sizeof(field), "%" PRIu64 ",,", epochs[i]);
			text_str(&t, field);
			for (size_t k = 0; k < nnames; k++)
				text_add(&t, ",", 1);
			text_str(&t, ",\n");
			continue;
		}
		snprintf(field, sizeof(field), "%" PRIu64 ",%" PRIu64 ",", ckpt_checkpoint_epoch(c),
		         ckpt_checkpoint_step(c));
		text_str(&t, field);
		view_format_time(field, sizeof(field), ckpt_checkpoint_time_ns(c));
		text_str(&t, field);
		for (size_t k = 0; k < nnames; k++) {
			double value;
			text_add(&t, ",", 1);
			if (ckpt_checkpoint_metric(c, names[k], &value) == 0) {
				render_format_double(field, sizeof(field), value);
				text_str(&t, field);
			}
		}
		text_str(&t, ckpt_checkpoint_is_best(c) ? ",1\n" : ",0\n");
	}
	rc = t.rc;
	if (!rc)
		rc = view_layout_add_bytes(out, t.buf, t.len);
	free(t.buf);
	free(names);
	return rc;
}
