/* fs/render_pt.c - model.pt and checkpoint.pt: torch.save-compatible zip + pickle files
 *
 * model.pt is what torch.save(model.state_dict()) writes: an OrderedDict of the checkpoint's
 * model tensors in insertion order, with the module versions torch keeps in its _metadata.
 * checkpoint.pt is the tutorial's checkpoint dict:
 *   {'model': state_dict, 'optimizer': {'state': {i: {buffer: tensor|None}}, 'param_groups':
 *    [...]}, 'epoch': int, 'step': int, 'metrics': {name: float}, 'optimizer_name': str,
 *    'run': {...}, 'extra': {key: str}[, 'extra_tensors': {name: tensor}]}
 * Every tensor gets its own storage, keyed "0", "1", ... in the order the pickle mentions them;
 * its bytes are the zip entry archive/data/<key>, a window onto the stored tensor. The pickle
 * uses only what torch.load(weights_only=True) accepts (plus BINFLOAT in checkpoint.pt, which
 * torch >= 2 accepts and 1.13's restricted unpickler does not). Storage locations are "cpu"
 * unless the options say keep the recorded device or name one.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#include "fs/pickle.h"
#include "fs/render.h"
#include "fs/render_util.h"
#include "fs/zip.h"

#define PT_PREFIX "archive/"

typedef struct pt_ctx {
	pickle_buf pk;
	const view_render_options *opts;
	uint64_t epoch;
	const ckpt_tensor_info **storages; /* storage key i holds storages[i] */
	size_t nstorages, cap;
} pt_ctx;

static const char *storage_location(pt_ctx *ctx, const ckpt_tensor_info *t)
{
	switch (ctx->opts ? ctx->opts->map_location : VIEW_MAP_CPU) {
	case VIEW_MAP_KEEP: return t->device && t->device[0] ? t->device : "cpu";
	case VIEW_MAP_DEVICE: return ctx->opts->map_device;
	case VIEW_MAP_CPU: break;
	}
	return "cpu";
}

static int check_options(const view_render_options *opts)
{
	if (!opts)
		return 0;
	switch (opts->map_location) {
	case VIEW_MAP_CPU:
	case VIEW_MAP_KEEP: return 0;
	case VIEW_MAP_DEVICE: {
		char canon[CKPT_MAX_DEVICE + 1];
		if (memchr(opts->map_device, '\0', sizeof(opts->map_device)) &&
		    render_torch_location(canon, opts->map_device) == 0)
			return 0;
		return render_fail(-EINVAL, "map_location '%.*s' is not cpu, keep or cuda:N",
		                   (int)sizeof(opts->map_device), opts->map_device);
	}
	}
	return render_fail(-EINVAL, "map_location mode %d is not cpu, keep or a device",
	                   (int)opts->map_location);
}

/* A storage for @t, then the _rebuild_tensor_v2 call that views all of it. */
static int emit_tensor(pt_ctx *ctx, const ckpt_tensor_info *t)
{
	const char *storage = render_torch_storage(t->dtype);
	size_t itemsize = ckpt_dtype_itemsize(t->dtype);
	if (!storage || itemsize == 0)
		return render_fail(-ENOTSUP,
		                   "epoch %" PRIu64 ": tensor '%s' has dtype %d, for which torch has "
		                   "no storage class",
		                   ctx->epoch, t->name, (int)t->dtype);
	if (t->ndim > CKPT_MAX_DIMS || t->nbytes % itemsize != 0)
		return render_fail(-EIO, "epoch %" PRIu64 ": tensor '%s': %" PRIu64
		                   " bytes do not fit its dtype and shape",
		                   ctx->epoch, t->name, t->nbytes);
	char location[CKPT_MAX_DEVICE + 1];
	if (render_torch_location(location, storage_location(ctx, t)) != 0)
		return render_fail(-EIO, "epoch %" PRIu64 ": tensor '%s': recorded device '%s' is "
		                   "not a torch device (cpu, cuda or cuda:N, N <= 127)",
		                   ctx->epoch, t->name, storage_location(ctx, t));
	if (ctx->nstorages == ctx->cap) {
		size_t cap = ctx->cap ? ctx->cap * 2 : 16;
		const ckpt_tensor_info **s = realloc(ctx->storages, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		ctx->storages = s;
		ctx->cap = cap;
	}
	char key[24];
	snprintf(key, sizeof(key), "%zu", ctx->nstorages);
	ctx->storages[ctx->nstorages++] = t;

	uint64_t stride[CKPT_MAX_DIMS];
	uint64_t step = 1;
	for (uint32_t d = t->ndim; d-- > 0;) {
		stride[d] = step;
		step *= t->shape[d] > 1 ? t->shape[d] : 1;
	}
	pickle_buf *pk = &ctx->pk;
	pickle_global(pk, "torch._utils", "_rebuild_tensor_v2");
	pickle_op(pk, PICKLE_MARK);
	pickle_op(pk, PICKLE_MARK);
	pickle_str(pk, "storage");
	pickle_global(pk, "torch", storage);
	pickle_str(pk, key);
	pickle_str(pk, location);
	pickle_uint(pk, t->nbytes / itemsize);
	pickle_op(pk, PICKLE_TUPLE);
	pickle_op(pk, PICKLE_BINPERSID);
	pickle_int(pk, 0); /* storage offset */
	pickle_uint_tuple(pk, t->shape, t->ndim);
	pickle_uint_tuple(pk, stride, t->ndim);
	pickle_bool(pk, false); /* requires_grad */
	pickle_global(pk, "collections", "OrderedDict");
	pickle_op(pk, PICKLE_EMPTY_TUPLE);
	pickle_op(pk, PICKLE_REDUCE); /* backward hooks */
	pickle_op(pk, PICKLE_TUPLE);
	pickle_op(pk, PICKLE_REDUCE);
	return 0;
}

static int check_name(pt_ctx *ctx, const char *what, const char *name)
{
	if (ckpt_utf8_valid(name))
		return 0;
	char printable[128];
	render_printable_name(printable, sizeof(printable), name);
	return render_fail(-EILSEQ,
	                   "epoch %" PRIu64 ": %s name is not valid UTF-8: '%s' (torch "
	                   "state_dict keys are str)",
	                   ctx->epoch, what, printable);
}

/* A module of the state dict: a prefix of a tensor name ending before one of its dots. */
typedef struct module_prefix {
	const char *name; /* into the tensor name; not NUL-terminated at len */
	size_t len;
	int version;
} module_prefix;

typedef struct module_set {
	module_prefix *v;
	size_t n, cap;
	size_t *slot; /* open addressing: index + 1 into v, 0 empty */
	size_t nslots;
} module_set;

static size_t prefix_hash(const char *s, size_t len)
{
	return (size_t)XXH3_64bits(s, len);
}

/* The module NAME[0..len), added once, in order of first appearance. @return its index, or
 * SIZE_MAX when out of memory. */
static size_t module_add(module_set *m, const char *name, size_t len)
{
	if (2 * (m->n + 1) > m->nslots) {
		size_t nslots = m->nslots ? 2 * m->nslots : 64;
		size_t *slot = calloc(nslots, sizeof(*slot));
		if (!slot)
			return SIZE_MAX;
		for (size_t i = 0; i < m->n; i++) {
			size_t h = prefix_hash(m->v[i].name, m->v[i].len) & (nslots - 1);
			while (slot[h])
				h = (h + 1) & (nslots - 1);
			slot[h] = i + 1;
		}
		free(m->slot);
		m->slot = slot;
		m->nslots = nslots;
	}
	size_t h = prefix_hash(name, len) & (m->nslots - 1);
	for (; m->slot[h]; h = (h + 1) & (m->nslots - 1)) {
		module_prefix *e = &m->v[m->slot[h] - 1];
		if (e->len == len && memcmp(e->name, name, len) == 0)
			return m->slot[h] - 1;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 16;
		module_prefix *v = realloc(m->v, cap * sizeof(*v));
		if (!v)
			return SIZE_MAX;
		m->v = v;
		m->cap = cap;
	}
	m->v[m->n] = (module_prefix){.name = name, .len = len, .version = 1};
	m->slot[h] = m->n + 1;
	return m->n++;
}

/* The state dict's _metadata, as torch.save(model.state_dict()) keeps it: {module: {'version':
 * N}} for the root ('') and every module a tensor name passes through, parents first, in order
 * of first appearance (torch's depth-first order). The version is each module class's
 * _version, which the names cannot tell: 2 for a module holding num_batches_tracked (batch
 * norm), else 1, nn.Module's. Modules without tensors (ReLU, Dropout) are not known and left
 * out; load_state_dict() gives a missing entry the same treatment as an old version. */
static int emit_metadata(pt_ctx *ctx, const ckpt_checkpoint *c)
{
	module_set m = {0};
	int rc = 0;
	if (module_add(&m, "", 0) == SIZE_MAX)
		rc = -ENOMEM;
	size_t count = ckpt_checkpoint_tensor_count(c);
	for (size_t i = 0; i < count && !rc; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, i);
		if (!t || t->group != CKPT_GROUP_MODEL)
			continue;
		size_t at = 0;
		for (const char *dot = strchr(t->name, '.'); dot && !rc;
		     dot = strchr(dot + 1, '.')) {
			at = module_add(&m, t->name, (size_t)(dot - t->name));
			if (at == SIZE_MAX)
				rc = -ENOMEM;
		}
		const char *leaf = strrchr(t->name, '.');
		if (!rc && strcmp(leaf ? leaf + 1 : t->name, "num_batches_tracked") == 0)
			m.v[at].version = 2;
	}
	if (!rc) {
		pickle_buf *pk = &ctx->pk;
		pickle_op(pk, PICKLE_EMPTY_DICT);
		pickle_str(pk, "_metadata");
		pickle_global(pk, "collections", "OrderedDict");
		pickle_op(pk, PICKLE_EMPTY_TUPLE);
		pickle_op(pk, PICKLE_REDUCE);
		pickle_op(pk, PICKLE_MARK);
		for (size_t i = 0; i < m.n; i++) {
			pickle_str_n(pk, m.v[i].name, m.v[i].len);
			pickle_op(pk, PICKLE_EMPTY_DICT);
			pickle_str(pk, "version");
			pickle_int(pk, m.v[i].version);
			pickle_op(pk, PICKLE_SETITEM);
		}
		pickle_op(pk, PICKLE_SETITEMS);
		pickle_op(pk, PICKLE_SETITEM);
		pickle_op(pk, PICKLE_BUILD);
	} else {
		rc = render_fail(-ENOMEM, "epoch %" PRIu64 ": out of memory for the state dict's "
		                          "module names", ctx->epoch);
	}
	free(m.v);
	free(m.slot);
	return rc;
}

/* OrderedDict of the model tensors in insertion order, with its _metadata. */
static int emit_state_dict(pt_ctx *ctx, const ckpt_checkpoint *c)
{
	pickle_buf *pk = &ctx->pk;
	pickle_global(pk, "collections", "OrderedDict");
	pickle_op(pk, PICKLE_EMPTY_TUPLE);
	pickle_op(pk, PICKLE_REDUCE);
	pickle_op(pk, PICKLE_MARK);
	size_t count = ckpt_checkpoint_tensor_count(c);
	for (size_t i = 0; i < count; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, i);
		if (!t)
			return render_fail(-EIO, "epoch %" PRIu64 ": tensor %zu of %zu missing",
			                   ctx->epoch, i, count);
		if (t->group != CKPT_GROUP_MODEL)
			continue;
		int rc = check_name(ctx, "a model tensor", t->name);
		if (rc)
			return rc;
		pickle_str(pk, t->name);
		rc = emit_tensor(ctx, t);
		if (rc)
			return rc;
	}
	pickle_op(pk, PICKLE_SETITEMS);
	return emit_metadata(ctx, c);
}

/* The zip around the pickle: data.pkl, byteorder, data/<key> per storage, version. */
static int emit_zip(view_layout *out, pt_ctx *ctx, const char *file)
{
	int rc = pickle_finish(&ctx->pk);
	if (rc)
		return render_fail(rc, "epoch %" PRIu64 ": %s: out of memory", ctx->epoch, file);
	size_t n = ctx->nstorages + 3;
	zip_entry *entries = calloc(n, sizeof(*entries));
	char (*names)[48] = calloc(ctx->nstorages ? ctx->nstorages : 1, sizeof(*names));
	if (!entries || !names) {
		rc = render_fail(-ENOMEM, "epoch %" PRIu64 ": %s: out of memory", ctx->epoch, file);
		goto out;
	}
	size_t k = 0;
	entries[k++] = (zip_entry){.name = PT_PREFIX "data.pkl", .bytes = ctx->pk.data,
	                           .len = ctx->pk.len};
	entries[k++] = (zip_entry){.name = PT_PREFIX "byteorder", .bytes = "little", .len = 6};
	for (size_t i = 0; i < ctx->nstorages; i++) {
		snprintf(names[i], sizeof(names[i]), PT_PREFIX "data/%zu", i);
		entries[k++] = (zip_entry){.name = names[i], .tensor = ctx->storages[i]};
	}
	entries[k++] = (zip_entry){.name = PT_PREFIX "version", .bytes = "3\n", .len = 2};
	rc = zip_render(out, entries, k);
	if (rc)
		render_fail(rc, "epoch %" PRIu64 ": %s: %s", ctx->epoch, file, strerror(-rc));
out:
	free(names);
	free(entries);
	return rc;
}

static void ctx_free(pt_ctx *ctx)
{
	pickle_free(&ctx->pk);
	free(ctx->storages);
}

int render_model_pt(view_layout *out, const ckpt_store *store, const ckpt_checkpoint *c,
                    const view_render_options *opts)
{
	render_clear_error();
	pt_ctx ctx = {.opts = opts, .epoch = ckpt_checkpoint_epoch(c)};
	pickle_init(&ctx.pk);
	int rc = check_options(opts);
	if (rc)
		return rc;
	pickle_proto(&ctx.pk);
	rc = emit_state_dict(&ctx, c);
	if (!rc)
		rc = emit_zip(out, &ctx, "model.pt");
	ctx_free(&ctx);
	return rc;
}

/* ---- checkpoint.pt ---------------------------------------------------------------------- */

/* JSON -> pickle. In param groups (@p lists false) arrays become tuples, as torch keeps
 * 'betas', except under the keys "params" and "param_names", which torch lays out as lists;
 * elsewhere (@p lists: the run's hyper-parameters) every array is a list, as json.loads gives.
 * @p as_list: this value, if an array, is a list. */
static int emit_json(pt_ctx *ctx, json_t *v, bool as_list, bool lists)
{
	pickle_buf *pk = &ctx->pk;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *item;
		pickle_op(pk, PICKLE_EMPTY_DICT);
		pickle_op(pk, PICKLE_MARK);
		json_object_foreach(v, key, item)
		{
			pickle_str(pk, key);
			int rc = emit_json(ctx, item,
			                   lists || strcmp(key, "params") == 0 ||
			                       strcmp(key, "param_names") == 0,
			                   lists);
			if (rc)
				return rc;
		}
		pickle_op(pk, PICKLE_SETITEMS);
		return 0;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *item;
		pickle_op(pk, as_list ? PICKLE_EMPTY_LIST : PICKLE_MARK);
		if (as_list)
			pickle_op(pk, PICKLE_MARK);
		json_array_foreach(v, i, item)
		{
			int rc = emit_json(ctx, item, lists, lists);
			if (rc)
				return rc;
		}
		pickle_op(pk, as_list ? PICKLE_APPENDS : PICKLE_TUPLE);
		return 0;
	}
	case JSON_STRING: {
		const char *s = json_string_value(v), *digits;
		size_t len = json_string_length(v), n;
		if (len > 1 && s[0] == 1 && (n = render_bigint_digits(s + 1, len - 1, &digits)) > 0)
			pickle_int_text(pk, digits, n); /* an integer outside int64 */
		else
			pickle_str_n(pk, s, len);
		return 0;
	}
	case JSON_INTEGER: pickle_int(pk, (int64_t)json_integer_value(v)); return 0;
	case JSON_REAL: pickle_float(pk, json_real_value(v)); return 0;
	case JSON_TRUE: pickle_bool(pk, true); return 0;
	case JSON_FALSE: pickle_bool(pk, false); return 0;
	case JSON_NULL: pickle_none(pk); return 0;
	}
	return -EINVAL;
}

/* An optimizer tensor "<param>.<buffer>" matched to its parameter's index. */
typedef struct opt_entry {
	size_t param;        /* index among the model tensors */
	size_t order;        /* insertion order, to keep buffers in the order they were stored */
	const char *buffer;  /* points into the tensor's name */
	const ckpt_tensor_info *t;
} opt_entry;

static int by_param_then_order(const void *a, const void *b)
{
	const opt_entry *x = a, *y = b;
	if (x->param != y->param)
		return x->param < y->param ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* A model tensor name and its index among the model tensors, sorted by name. */
typedef struct named_param {
	const char *name;
	size_t index;
} named_param;

static int by_name(const void *a, const void *b)
{
	return strcmp(((const named_param *)a)->name, ((const named_param *)b)->name);
}

/* Index of the parameter named exactly the first @len bytes of @name, or SIZE_MAX. */
static size_t find_param(const named_param *v, size_t n, const char *name, size_t len)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strncmp(v[mid].name, name, len);
		if (cmp == 0 && v[mid].name[len] != '\0')
			cmp = 1; /* longer than the prefix: sorts after it */
		if (cmp == 0)
			return v[mid].index;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

static const char *extra_text(const ckpt_checkpoint *c, const char *key, size_t *len)
{
	const void *data;
	if (ckpt_checkpoint_extra(c, key, &data, len) != 0)
		return NULL;
	return data;
}

/* Parse the "optimizer.param_groups" extra, or fall back to one group over all parameters
 * with the run's hyper-parameters. */
static json_t *param_groups(pt_ctx *ctx, const ckpt_store *store, const ckpt_checkpoint *c,
                            size_t nparams, int *rc)
{
	json_error_t jerr;
	size_t len;
	const char *text = extra_text(c, "optimizer.param_groups", &len);
	if (text) {
		if (len && text[len - 1] == '\0')
			len--; /* stored with C's strlen + 1 before libckpt dropped that NUL */
		json_t *groups = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!groups || !json_is_array(groups)) {
			json_decref(groups);
			*rc = render_fail(CKPT_ECORRUPT,
			                  "epoch %" PRIu64 ": extra 'optimizer.param_groups' is not a "
			                  "JSON list (%s): " RENDER_MALFORMED_PARAM_GROUPS,
			                  ctx->epoch, groups ? "not a list" : jerr.text);
			return NULL;
		}
		return groups;
	}
	const ckpt_run_meta *meta = store ? ckpt_store_meta(store) : NULL;
	json_t *group = NULL;
	if (meta) {
		group = render_load_hyperparams(meta->hyperparams, false);
		if (group && !json_is_object(group)) {
			json_decref(group);
			group = NULL;
		}
	}
	if (!group)
		group = json_object();
	json_t *params = json_array();
	json_t *groups = json_array();
	if (!group || !params || !groups) {
		json_decref(group);
		json_decref(params);
		json_decref(groups);
		*rc = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < nparams; i++)
		json_array_append_new(params, json_integer((json_int_t)i));
	json_object_set_new(group, "params", params);
	json_array_append_new(groups, group);
	return groups;
}

/* A param group with every key torch 1.13's optimizer @p opt_name ("sgd", "adam", "adamw" in
 * any case: ckpt-train's names or torch's class names "SGD", "Adam", "AdamW") keeps in its state_dict():
 * the group's own keys in their order, then its missing ones from the run's hyper-parameters
 * @p hyper or else with torch's defaults, then "params". A store written through libckpt may leave them out (or have no param groups at
 * all), and torch.optim loads such a group but fails at its first step(). NULL without
 * memory. */
static json_t *complete_group(json_t *group, const char *opt_name, json_t *hyper)
{
	static const char *const sgd[] = {"lr", "momentum", "dampening", "weight_decay",
	                                  "nesterov", "maximize", "foreach", "differentiable", NULL};
	static const char *const adam[] = {"lr", "betas", "eps", "weight_decay", "amsgrad",
	                                   "maximize", "foreach", "capturable", "differentiable",
	                                   "fused", NULL};
	static const char *const adamw[] = {"lr", "betas", "eps", "weight_decay", "amsgrad",
	                                    "foreach", "maximize", "capturable", NULL};
	const char *const *keys = strcasecmp(opt_name, "sgd") == 0     ? sgd
	                          : strcasecmp(opt_name, "adam") == 0  ? adam
	                          : strcasecmp(opt_name, "adamw") == 0 ? adamw
	                                                               : NULL;
	json_t *out = json_object();
	if (!out)
		return NULL;
	const char *key;
	json_t *v;
	bool ok = true;
	json_object_foreach(group, key, v)
	{
		if (strcmp(key, "params") != 0)
			ok = ok && json_object_set(out, key, v) == 0;
	}
	for (size_t i = 0; keys && keys[i] && ok; i++) {
		if (json_object_get(group, keys[i]))
			continue;
		const char *k = keys[i];
		json_t *run = json_is_object(hyper) ? json_object_get(hyper, k) : NULL;
		if (run) { /* the run's own setting before torch's default */
			ok = json_object_set(out, k, run) == 0;
			continue;
		}
		json_t *d = strcmp(k, "lr") == 0         ? json_real(0.001)
		            : strcmp(k, "betas") == 0    ? json_pack("[ff]", 0.9, 0.999)
		            : strcmp(k, "eps") == 0      ? json_real(1e-8)
		            : strcmp(k, "weight_decay") == 0 && keys == adamw ? json_real(0.01)
		            : strcmp(k, "foreach") == 0  ? json_null()
		            : strcmp(k, "momentum") == 0 || strcmp(k, "dampening") == 0 ||
		                    strcmp(k, "weight_decay") == 0
		                ? json_integer(0)
		                : json_false();
		ok = d && json_object_set_new(out, k, d) == 0;
	}
	json_t *params = json_object_get(group, "params");
	if (ok && params)
		ok = json_object_set(out, "params", params) == 0;
	if (!ok) {
		json_decref(out);
		return NULL;
	}
	return out;
}

/* complete_group() for every group of @p groups that is an object; -ENOMEM or 0 */
static int complete_groups(json_t *groups, const char *opt_name, const ckpt_store *store)
{
	const ckpt_run_meta *meta = store ? ckpt_store_meta(store) : NULL;
	json_t *hyper = meta ? render_load_hyperparams(meta->hyperparams, false) : NULL;
	int rc = 0;
	size_t i;
	json_t *group;
	json_array_foreach(groups, i, group)
	{
		if (!json_is_object(group))
			continue;
		json_t *full = complete_group(group, opt_name, hyper);
		if (!full || json_array_set_new(groups, i, full) != 0) {
			rc = -ENOMEM;
			break;
		}
	}
	json_decref(hyper);
	return rc;
}

/* Text extras (JSON, names) are kept; binary ones (RNG state) are not: no control bytes
 * other than tab and newlines, and valid UTF-8 (checked by the caller on a copy, after it
 * trimmed one NUL at the end: C's strlen + 1). */
static bool looks_like_text(const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') || p[i] == 0x7f)
			return false;
	return true;
}

/* Parameter indices that appear in some group's "params" (a bitmap over nparams). */
/* Rule (0) before optimizer_indices(): optimizers torch builds from named parameters keep
 * "param_names" in every group, in the order of its "params". When no group has them this
 * returns 1 and changes nothing (the rules guess). Else the names decide @p index_of (SIZE_MAX
 * for the tensors without state) and this returns 0; names that cannot decide (a group without
 * them, a count unlike its "params", a name that is no model tensor or comes twice, state of a
 * tensor no group names, @p ngroup_params 0: "params" not 0..n-1) are an error: a guess could
 * put state on the wrong parameters. */
static int indices_from_names(size_t *index_of, size_t nmodel, const named_param *sorted,
                              json_t *groups, size_t ngroup_params, const opt_entry *opt,
                              size_t nopt, const ckpt_tensor_info **model, uint64_t epoch)
{
	size_t i, j;
	json_t *group, *name;
	bool any = false;
	json_array_foreach(groups, i, group) any |= json_object_get(group, "param_names") != NULL;
	if (!any)
		return 1;
	size_t *named = malloc((nmodel ? nmodel : 1) * sizeof(*named));
	if (!named)
		return -ENOMEM;
	for (size_t p = 0; p < nmodel; p++)
		named[p] = SIZE_MAX;
	int rc = 0;
	if (ngroup_params == 0)
		rc = render_fail(-EINVAL,
		                 "epoch %" PRIu64 ": checkpoint.pt: the param groups' \"params\" are "
		                 "not the indices 0..n-1, so their \"param_names\" cannot place the "
		                 "optimizer state",
		                 epoch);
	json_array_foreach(groups, i, group)
	{
		if (rc)
			break;
		json_t *params = json_object_get(group, "params");
		json_t *names = json_object_get(group, "param_names");
		if (!json_is_array(names) || json_array_size(names) != json_array_size(params)) {
			rc = render_fail(-EINVAL,
			                 "epoch %" PRIu64 ": checkpoint.pt: param group %zu has %s "
			                 "\"param_names\" for its %zu \"params\" (every group names "
			                 "each of its parameters, or none does)",
			                 epoch, i, json_is_array(names) ? "other" : "no",
			                 json_array_size(params));
			break;
		}
		json_array_foreach(names, j, name)
		{
			const char *text = json_string_value(name);
			size_t p = text ? find_param(sorted, nmodel, text, strlen(text)) : SIZE_MAX;
			if (p == SIZE_MAX || named[p] != SIZE_MAX) {
				rc = render_fail(-EINVAL,
				                 "epoch %" PRIu64 ": checkpoint.pt: param group %zu names "
				                 "'%s', which is %s",
				                 epoch, i, text ? text : "(not a string)",
				                 p == SIZE_MAX ? "no model tensor" : "named twice");
				break;
			}
			/* group_param_count() checked params: integers 0..ngroup_params-1 */
			named[p] = (size_t)json_integer_value(json_array_get(params, j));
		}
	}
	for (size_t k = 0; !rc && k < nopt; k++)
		if (named[opt[k].param] == SIZE_MAX)
			rc = render_fail(-EINVAL,
			                 "epoch %" PRIu64 ": checkpoint.pt: '%s' has optimizer state but "
			                 "no param group names it",
			                 epoch, model[opt[k].param]->name);
	if (!rc) {
		for (size_t p = 0; p < nmodel; p++)
			index_of[p] = SIZE_MAX;
		for (size_t k = 0; k < nopt; k++)
			index_of[opt[k].param] = named[opt[k].param];
	}
	free(named);
	return rc;
}

static void grouped_params(json_t *groups, bool *in_group, size_t nparams);

/* How many parameters the groups list: P when their indices are exactly 0..P-1 (as torch's
 * state_dict() numbers them), else 0. */
static size_t group_param_count(json_t *groups)
{
	size_t i, j, n = 0;
	json_int_t max = -1;
	json_t *group, *index;
	json_array_foreach(groups, i, group)
	{
		json_array_foreach(json_object_get(group, "params"), j, index)
		{
			if (!json_is_integer(index) || json_integer_value(index) < 0)
				return 0;
			if (json_integer_value(index) > max)
				max = json_integer_value(index);
			n++;
		}
	}
	if (max < 0 || (uint64_t)max + 1 != n || n > SIZE_MAX / 2)
		return 0;
	bool *seen = calloc(n, sizeof(*seen));
	if (!seen)
		return 0;
	grouped_params(groups, seen, n);
	size_t distinct = 0;
	for (size_t k = 0; k < n; k++)
		distinct += seen[k];
	free(seen);
	return distinct == n ? n : 0;
}

/* Whether model tensor @p name is one of torch's running-statistics buffers (BatchNorm,
 * InstanceNorm): never an optimizer's parameter. */
static bool is_norm_buffer(const char *name)
{
	static const char *const suffixes[] = {".running_mean", ".running_var",
	                                       ".num_batches_tracked"};
	size_t len = strlen(name);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t n = strlen(suffixes[i]);
		if (len >= n && strcmp(name + len - n, suffixes[i]) == 0)
			return true;
	}
	return false;
}

/* The optimizer's index of each model tensor that has optimizer state (@p opt sorted by model
 * position; SIZE_MAX for the others). torch numbers the parameters its optimizer holds, in
 * its groups' order; the model group also holds buffers (BatchNorm's running statistics) and
 * parameters the optimizer does not hold, which have no state. The first rule that fits the
 * groups' parameter count @p ngroup_params decides: (1) when as many model tensors have state,
 * the i-th of them is parameter i; (2) when as many model tensors are not running-statistics
 * buffers, the i-th of those is parameter i (some parameters have no state yet); (3) else a
 * model tensor's position is its index, which holds when the model group is the optimizer's
 * parameters in order. Groups that name their parameters go first (indices_from_names()). */
static void optimizer_indices(size_t *index_of, size_t nmodel, const ckpt_tensor_info **model,
                              const opt_entry *opt, size_t nopt, size_t ngroup_params)
{
	size_t with_state = 0, params = 0;
	for (size_t p = 0; p < nmodel; p++) {
		index_of[p] = SIZE_MAX;
		params += !is_norm_buffer(model[p]->name);
	}
	for (size_t k = 0; k < nopt; k++)
		if (k == 0 || opt[k].param != opt[k - 1].param)
			index_of[opt[k].param] = with_state++;
	if (ngroup_params > 0 && with_state == ngroup_params && with_state < nmodel)
		return; /* (1) */
	bool by_params = ngroup_params > 0 && params == ngroup_params && params < nmodel;
	for (size_t p = 0, rank = 0; p < nmodel; p++) {
		bool param = !is_norm_buffer(model[p]->name);
		if (index_of[p] != SIZE_MAX)
			index_of[p] = by_params ? rank : p; /* (2) or (3) */
		rank += param;
	}
}

static void grouped_params(json_t *groups, bool *in_group, size_t nparams)
{
	size_t i, j;
	json_t *group, *index;
	json_array_foreach(groups, i, group)
	{
		json_t *params = json_object_get(group, "params");
		json_array_foreach(params, j, index)
		{
			if (json_is_integer(index) && json_integer_value(index) >= 0 &&
			    (uint64_t)json_integer_value(index) < nparams)
				in_group[json_integer_value(index)] = true;
		}
	}
}

static void emit_string_or_empty(pickle_buf *pk, const char *s)
{
	pickle_str(pk, s ? s : "");
}

int render_checkpoint_pt(view_layout *out, const ckpt_store *store, const ckpt_checkpoint *c,
                         const view_render_options *opts)
{
	render_clear_error();
	pt_ctx ctx = {.opts = opts, .epoch = ckpt_checkpoint_epoch(c)};
	pickle_init(&ctx.pk);
	pickle_buf *pk = &ctx.pk;
	opt_entry *opt = NULL;
	const ckpt_tensor_info **model = NULL, **loose = NULL;
	named_param *sorted = NULL;
	json_t *groups = NULL;
	bool *in_group = NULL;
	size_t *index_of = NULL, *model_at = NULL; /* model position <-> optimizer index */
	size_t *first_opt = NULL;                   /* model position -> its first opt entry */
	size_t count = ckpt_checkpoint_tensor_count(c);
	size_t nmodel = 0, nopt = 0, nloose = 0;
	int rc = check_options(opts);
	if (rc)
		return rc;
	model = calloc(count ? count : 1, sizeof(*model));
	loose = calloc(count ? count : 1, sizeof(*loose));
	opt = calloc(count ? count : 1, sizeof(*opt));
	if (!model || !loose || !opt) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, i);
		if (!t) {
			rc = render_fail(-EIO, "epoch %" PRIu64 ": tensor %zu of %zu missing",
			                 ctx.epoch, i, count);
			goto out;
		}
		if (t->group == CKPT_GROUP_MODEL)
			model[nmodel++] = t;
	}
	/* match optimizer tensors to parameters: the longest parameter name that is a prefix
	 * (binary search among the sorted names, so large models do not take quadratic time) */
	sorted = calloc(nmodel ? nmodel : 1, sizeof(*sorted));
	if (!sorted) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t m = 0; m < nmodel; m++)
		sorted[m] = (named_param){.name = model[m]->name, .index = m};
	qsort(sorted, nmodel, sizeof(*sorted), by_name);
	for (size_t i = 0; i < count; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, i);
		if (t->group == CKPT_GROUP_MODEL)
			continue;
		rc = check_name(&ctx, t->group == CKPT_GROUP_OPTIMIZER ? "an optimizer tensor" :
		                                                        "an extra tensor",
		                t->name);
		if (rc)
			goto out;
		size_t best = SIZE_MAX, best_len = 0;
		if (t->group == CKPT_GROUP_OPTIMIZER) {
			/* each '.' from the last: the first prefix that is a parameter is the longest */
			for (size_t len = strlen(t->name); best == SIZE_MAX && len-- > 1;) {
				if (t->name[len] != '.' || t->name[len + 1] == '\0')
					continue;
				best = find_param(sorted, nmodel, t->name, len);
				best_len = len;
			}
		}
		if (best == SIZE_MAX) {
			loose[nloose++] = t;
			continue;
		}
		opt[nopt++] = (opt_entry){.param = best, .order = i,
		                          .buffer = t->name + best_len + 1, .t = t};
	}
	qsort(opt, nopt, sizeof(*opt), by_param_then_order);
	/* without stored groups: one over the model's parameters (its running statistics are
	 * buffers, never an optimizer's) */
	size_t nparams = 0;
	for (size_t p = 0; p < nmodel; p++)
		nparams += !is_norm_buffer(model[p]->name);
	groups = param_groups(&ctx, store, c, nparams, &rc);
	if (!groups)
		goto out;

	size_t len;
	const char *opt_name_text = extra_text(c, "optimizer.name", &len);
	char opt_name[64] = "";
	const ckpt_run_meta *meta = store ? ckpt_store_meta(store) : NULL;
	if (opt_name_text && len < sizeof(opt_name)) {
		memcpy(opt_name, opt_name_text, len);
		opt_name[len] = '\0';
	} else if (meta && meta->optimizer) {
		snprintf(opt_name, sizeof(opt_name), "%s", meta->optimizer);
	}
	if (!ckpt_utf8_valid(opt_name))
		opt_name[0] = '\0';
	if ((rc = complete_groups(groups, opt_name, store)))
		goto out;
	/* torch 1.13's SGD keeps {'momentum_buffer': None} for every stepped parameter when
	 * momentum is 0; the store has no tensor for those */
	bool sgd_none_buffers = strcasecmp(opt_name, "sgd") == 0 && ckpt_checkpoint_step(c) > 0;
	/* optimizer indices run over the groups' parameters, state keys over those indices */
	size_t ngroup = group_param_count(groups);
	/* the commit stores such groups (an optimizer may hold tensors that are no model tensor):
	 * the optimizer of this file could not be loaded into one over the model's parameters,
	 * which torch refuses only at load_state_dict(), so it is refused here, in one line */
	if (ngroup > nmodel) {
		rc = render_fail(-EINVAL,
		                 "epoch %" PRIu64 ": checkpoint.pt: optimizer.param_groups lists %zu "
		                 "parameters, the checkpoint has %zu model tensors",
		                 ctx.epoch, ngroup, nmodel);
		goto out;
	}
	size_t nindex = ngroup > nmodel ? ngroup : nmodel;
	in_group = calloc(nindex ? nindex : 1, sizeof(*in_group));
	index_of = calloc(nmodel ? nmodel : 1, sizeof(*index_of));
	model_at = calloc(nindex ? nindex : 1, sizeof(*model_at));
	first_opt = calloc(nmodel ? nmodel : 1, sizeof(*first_opt));
	if (!in_group || !index_of || !model_at || !first_opt) {
		rc = -ENOMEM;
		goto out;
	}
	grouped_params(groups, in_group, nindex);
	rc = indices_from_names(index_of, nmodel, sorted, groups, ngroup, opt, nopt, model,
	                        ctx.epoch);
	if (rc < 0)
		goto out;
	if (rc == 1)
		optimizer_indices(index_of, nmodel, model, opt, nopt, ngroup);
	rc = 0;
	for (size_t k = nopt; k-- > 0;)
		first_opt[opt[k].param] = k;
	for (size_t i = 0; i < nindex; i++)
		model_at[i] = SIZE_MAX;
	for (size_t p = 0; p < nmodel; p++)
		if (index_of[p] != SIZE_MAX)
			model_at[index_of[p]] = p;

	pickle_proto(pk);
	pickle_op(pk, PICKLE_EMPTY_DICT);
	pickle_op(pk, PICKLE_MARK);

	pickle_str(pk, "model");
	rc = emit_state_dict(&ctx, c);
	if (rc)
		goto out;

	pickle_str(pk, "optimizer");
	pickle_op(pk, PICKLE_EMPTY_DICT);
	pickle_op(pk, PICKLE_MARK);
	pickle_str(pk, "state");
	pickle_op(pk, PICKLE_EMPTY_DICT);
	pickle_op(pk, PICKLE_MARK);
	for (size_t i = 0; i < nindex; i++) {
		size_t p = model_at[i];
		if (p != SIZE_MAX) {
			pickle_int(pk, (int64_t)i);
			pickle_op(pk, PICKLE_EMPTY_DICT);
			pickle_op(pk, PICKLE_MARK);
			for (size_t k = first_opt[p]; k < nopt && opt[k].param == p; k++) {
				pickle_str(pk, opt[k].buffer);
				rc = emit_tensor(&ctx, opt[k].t);
				if (rc)
					goto out;
			}
			pickle_op(pk, PICKLE_SETITEMS);
		} else if (sgd_none_buffers && in_group[i]) {
			pickle_int(pk, (int64_t)i);
			pickle_op(pk, PICKLE_EMPTY_DICT);
			pickle_str(pk, "momentum_buffer");
			pickle_none(pk);
			pickle_op(pk, 's'); /* SETITEM */
		}
	}
	pickle_op(pk, PICKLE_SETITEMS);
	pickle_str(pk, "param_groups");
	rc = emit_json(&ctx, groups, true, false);
	if (rc)
		goto out;
	pickle_op(pk, PICKLE_SETITEMS);

	pickle_str(pk, "epoch");
	pickle_uint(pk, ctx.epoch);
	pickle_str(pk, "step");
	pickle_uint(pk, ckpt_checkpoint_step(c));

	pickle_str(pk, "metrics");
	pickle_op(pk, PICKLE_EMPTY_DICT);
	pickle_op(pk, PICKLE_MARK);
	for (size_t i = 0; i < ckpt_checkpoint_metric_count(c); i++) {
		const char *name;
		double value;
		if (ckpt_checkpoint_metric_at(c, i, &name, &value) != 0 || !ckpt_utf8_valid(name))
			continue;
		pickle_str(pk, name);
		pickle_float(pk, value);
	}
	pickle_op(pk, PICKLE_SETITEMS);

	pickle_str(pk, "optimizer_name");
	pickle_str(pk, opt_name);

	pickle_str(pk, "run");
	pickle_op(pk, PICKLE_EMPTY_DICT);
	pickle_op(pk, PICKLE_MARK);
	if (meta) {
		static const char *const fields[] = {"model", "layers", "optimizer", "dataset",
		                                     "monitor"};
		const char *values[] = {meta->model, meta->layers, meta->optimizer, meta->dataset,
		                        meta->monitor};
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			if (values[i] && !ckpt_utf8_valid(values[i]))
				continue;
			pickle_str(pk, fields[i]);
			emit_string_or_empty(pk, values[i]);
		}
		pickle_str(pk, "monitor_mode");
		pickle_str(pk, meta->monitor_mode == CKPT_MODE_MAX ? "max" : "min");
		pickle_str(pk, "seed");
		pickle_uint(pk, meta->seed);
		json_t *hyper = render_load_hyperparams(meta->hyperparams, false);
		if (hyper && json_is_object(hyper)) {
			pickle_str(pk, "hyperparams");
			rc = emit_json(&ctx, hyper, true, true);
		}
		json_decref(hyper);
		if (rc)
			goto out;
	}
	pickle_op(pk, PICKLE_SETITEMS);

	/* other extras that are text (schedule state, ...): as str, without one NUL at the end;
	 * binary ones (RNG state: control bytes other than tab, CR, LF, or no UTF-8) are only
	 * meaningful to ckpt-train --resume and are left out */
	pickle_str(pk, "extra");
	pickle_op(pk, PICKLE_EMPTY_DICT);
	pickle_op(pk, PICKLE_MARK);
	for (size_t i = 0; i < ckpt_checkpoint_extra_count(c); i++) {
		const char *key;
		const void *data;
		size_t dlen;
		if (ckpt_checkpoint_extra_at(c, i, &key, &data, &dlen) != 0)
			continue;
		if (strcmp(key, "optimizer.param_groups") == 0 || strcmp(key, "optimizer.name") == 0)
			continue;
		if (dlen > 0 && ((const char *)data)[dlen - 1] == '\0')
			dlen--; /* text a C program stored with its terminating NUL */
		if (!ckpt_utf8_valid(key) || !looks_like_text(data, dlen))
			continue;
		char *copy = strndup(data, dlen);
		if (!copy) {
			rc = -ENOMEM;
			goto out;
		}
		if (ckpt_utf8_valid(copy)) {
			pickle_str(pk, key);
			pickle_str(pk, copy);
		}
		free(copy);
	}
	pickle_op(pk, PICKLE_SETITEMS);

	if (nloose > 0) {
		pickle_str(pk, "extra_tensors");
		pickle_op(pk, PICKLE_EMPTY_DICT);
		pickle_op(pk, PICKLE_MARK);
		for (size_t i = 0; i < nloose; i++) {
			pickle_str(pk, loose[i]->name);
			rc = emit_tensor(&ctx, loose[i]);
			if (rc)
				goto out;
		}
		pickle_op(pk, PICKLE_SETITEMS);
	}
	pickle_op(pk, PICKLE_SETITEMS);
	rc = emit_zip(out, &ctx, "checkpoint.pt");
out:
	if (rc == -ENOMEM && !render_last_error()[0])
		render_fail(rc, "epoch %" PRIu64 ": checkpoint.pt: out of memory", ctx.epoch);
	json_decref(groups);
	free(in_group);
	free(index_of);
	free(model_at);
	free(first_opt);
	free(sorted);
	free(opt);
	free(loose);
	free(model);
	ctx_free(&ctx);
	return rc;
}
