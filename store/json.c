/* store/json.c - checks of the JSON texts libckpt is given (hyper-parameters, param groups)
 *
 * libckpt links no JSON library, yet what it stores as JSON must read back where it is shown
 * (run.json, checkpoint.pt, param_groups.json, which read it with jansson): this reads RFC 8259
 * JSON as strictly as they do (no NUL in a string, no key twice in an object, no number past a
 * double, valid UTF-8 and surrogate pairs) and names the first fault by line and column, from 1.
 * Only the shape of param groups is looked into: what torch's load_state_dict() needs.
 * Hostile text costs little: nesting is read without recursion (open containers are a stack on
 * the heap, so a caller's thread needs a few KB of stack at any depth), and an object's keys
 * are a hash set keyed per process (linear time however many keys, whichever they are).
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/store_int.h"

#define JSON_MAX_DEPTH 2048 /* jansson's */

/* What a param group holds of what torch needs: its "params" and how many "param_names". */
typedef struct json_group {
	uint64_t *params;
	size_t nparams;
	bool has_params, has_names;
	size_t nnames;
} json_group;

typedef struct json_reader {
	const char *text, *p, *end;
	bool big_ints;      /* integers outside int64 allowed (jansson's readers take them apart) */
	char *why;          /* the first fault, for the caller's message */
	size_t why_cap;
	json_group *groups; /* param groups read, NULL when not reading them */
	size_t ngroups;
	char *keys; /* the decoded keys of the objects open, outermost first */
	size_t keys_len, keys_cap;
} json_reader;

__attribute__((format(printf, 3, 4))) static bool fault(json_reader *r, const char *at,
                                                        const char *fmt, ...)
{
	if (r->why[0])
		return false;
	size_t line = 1, column = 1;
	for (const char *q = r->text; q < at && q < r->end; q++) {
		if (*q == '\n') {
			line++;
			column = 1;
		} else if (((unsigned char)*q & 0xc0) != 0x80) { /* a character, not a byte */
			column++;
		}
	}
	int n = snprintf(r->why, r->why_cap, "parse error at line %zu, column %zu: ", line, column);
	if (n < 0 || (size_t)n >= r->why_cap)
		return false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->why + n, r->why_cap - (size_t)n, fmt, ap);
	va_end(ap);
	return false;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static void skip_space(json_reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* A string at r->p (its opening quote); its raw text between the quotes in *@p start and
 * *@p len. */
static bool read_string(json_reader *r, const char **start, size_t *len)
{
	const char *open = r->p++;
	*start = r->p;
	while (r->p < r->end && *r->p != '"') {
		unsigned char c = (unsigned char)*r->p;
		if (c < 0x20)
			return fault(r, r->p, "a control character in a string");
		if (c >= 0x80) {
			size_t n = ckpt_utf8_sequence(r->p); /* the text ends in a NUL */
			if (!n)
				return fault(r, r->p, "a byte that is not UTF-8");
			r->p += n;
			continue;
		}
		if (c != '\\') {
			r->p++;
			continue;
		}
		const char *esc = r->p;
		if (r->end - r->p < 2) /* a backslash that ends the text */
			return fault(r, open, "a string that does not end");
		char e = r->p[1];
		if (strchr("\"\\/bfnrt", e)) {
			r->p += 2;
			continue;
		}
		int u = e == 'u' && r->end - r->p >= 6 ? hex4(r->p + 2) : -1;
		if (u < 0)
			return fault(r, esc, "a bad escape in a string");
		if (u == 0)
			return fault(r, esc, "\\u0000 in a string");
		r->p += 6;
		if (u >= 0xdc00 && u <= 0xdfff)
			return fault(r, esc, "a lone low surrogate in a string");
		if (u >= 0xd800 && u <= 0xdbff) {
			int low = r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u' ? hex4(r->p + 2)
			                                                                   : -1;
			if (low < 0xdc00 || low > 0xdfff)
				return fault(r, esc, "a lone high surrogate in a string");
			r->p += 6;
		}
	}
	if (r->p >= r->end)
		return fault(r, open, "a string that does not end");
	*len = (size_t)(r->p - *start);
	r->p++;
	return true;
}

/* The text of a string read by read_string() (@p raw, @p len: between its quotes, checked)
 * with its escapes decoded as jansson decodes them, into @p out (at least @p len bytes: no
 * escape decodes longer than it is written). @return the decoded length. */
static size_t decode_string(const char *raw, size_t len, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		if (raw[i] != '\\') {
			out[n++] = raw[i++];
			continue;
		}
		char e = raw[i + 1];
		if (e != 'u') {
			static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
			out[n++] = to[strchr(from, e) - from];
			i += 2;
			continue;
		}
		uint32_t u = (uint32_t)hex4(raw + i + 2);
		i += 6;
		if (u >= 0xd800 && u <= 0xdbff) { /* a high surrogate: its low one follows */
			u = 0x10000 + ((u - 0xd800) << 10) + ((uint32_t)hex4(raw + i + 2) - 0xdc00);
			i += 6;
		}
		if (u < 0x80) {
			out[n++] = (char)u;
		} else if (u < 0x800) {
			out[n++] = (char)(0xc0 | u >> 6);
			out[n++] = (char)(0x80 | (u & 0x3f));
		} else if (u < 0x10000) {
			out[n++] = (char)(0xe0 | u >> 12);
			out[n++] = (char)(0x80 | (u >> 6 & 0x3f));
			out[n++] = (char)(0x80 | (u & 0x3f));
		} else {
			out[n++] = (char)(0xf0 | u >> 18);
			out[n++] = (char)(0x80 | (u >> 12 & 0x3f));
			out[n++] = (char)(0x80 | (u >> 6 & 0x3f));
			out[n++] = (char)(0x80 | (u & 0x3f));
		}
	}
	return n;
}

/* A number at r->p; *@p index: its value if it is an integer in [0, 2^63), else UINT64_MAX. */
static bool read_number(json_reader *r, uint64_t *index)
{
	const char *start = r->p;
	bool negative = *r->p == '-', integer = true;
	r->p += negative;
	size_t digits = 0;
	while (r->p + digits < r->end && r->p[digits] >= '0' && r->p[digits] <= '9')
		digits++;
	if (!digits || (digits > 1 && r->p[0] == '0'))
		return fault(r, start, "a bad number");
	r->p += digits;
	if (r->p < r->end && *r->p == '.') {
		integer = false;
		size_t n = 0;
		while (r->p + 1 + n < r->end && r->p[1 + n] >= '0' && r->p[1 + n] <= '9')
			n++;
		if (!n)
			return fault(r, start, "a bad number");
		r->p += 1 + n;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		integer = false;
		r->p += 1 + (r->p + 1 < r->end && (r->p[1] == '+' || r->p[1] == '-'));
		size_t n = 0;
		while (r->p + n < r->end && r->p[n] >= '0' && r->p[n] <= '9')
			n++;
		if (!n)
			return fault(r, start, "a bad number");
		r->p += n;
	}
	size_t len = (size_t)(r->p - start);
	*index = UINT64_MAX;
	if (integer) {
		static const char max[] = "9223372036854775807", min[] = "9223372036854775808";
		const char *magnitude = start + negative;
		bool beyond = digits > 19 ||
		              (digits == 19 && memcmp(magnitude, negative ? min : max, 19) > 0);
		if (beyond && !r->big_ints)
			return fault(r, start, "an integer outside -2^63..2^63-1");
		if (!beyond && (!negative || (digits == 1 && magnitude[0] == '0')))
			*index = strtoull(magnitude, NULL, 10); /* -0: 0, as jansson and Python read it */
		return true;
	}
	/* a real past a double is an error to jansson (Python reads inf): refused; read in the C
	 * locale whatever the program's is */
	pthread_once(&c_locale_once, c_locale_init);
	char buf[64], *text = len < sizeof(buf) ? buf : malloc(len + 1);
	if (!text || !c_locale) {
		if (text != buf)
			free(text);
		return fault(r, start, "out of memory");
	}
	memcpy(text, start, len);
	text[len] = '\0';
	double v = strtod_l(text, NULL, c_locale);
	if (text != buf)
		free(text);
	if (isinf(v))
		return fault(r, start, "a number past the range of a double");
	return true;
}

static bool read_literal(json_reader *r, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return fault(r, r->p, "not a JSON value");
	r->p += n;
	return true;
}

/* What a value must be where it is read: anything, or a part of a param group. */
typedef enum json_role {
	ROLE_ANY,
	ROLE_GROUPS, /* the list of param groups */
	ROLE_GROUP,  /* one of them: an object */
	ROLE_PARAMS, /* a group's "params": a list of indices */
	ROLE_INDEX,
	ROLE_NAMES, /* a group's "param_names": a list of strings */
	ROLE_NAME,
} json_role;

/* The keys of an object read so far, decoded, in r->keys: a hash set of their offsets, so that
 * a key twice is found in constant time (a text of many keys is no quadratic cost). */
typedef struct json_key {
	size_t offset, len; /* len SIZE_MAX: an empty slot */
} json_key;

/* An array or object being read: the parser's stack is on the heap, so that nesting as deep as
 * jansson reads costs a library caller's thread no stack. */
typedef struct json_frame {
	char close;         /* ']' or '}' */
	json_role elements; /* what an array's elements must be */
	size_t group;       /* the param group it is or belongs to (its index), else SIZE_MAX */
	json_key *slots;    /* an object's key set; capacity a power of two, or 0 */
	size_t nslots, nkeys;
	size_t keys_mark; /* r->keys' length when the object opened, given back as it closes */
} json_frame;

/* The key set's hash is keyed with a seed drawn once per process: with an unkeyed hash (FNV-1a
 * was) keys chosen to collide in its low bits made each probe walk all the keys before it
 * (65,536 such keys: 7.4 s), a cost a text could be built to have. */
static uint64_t key_seed;
static pthread_once_t key_seed_once = PTHREAD_ONCE_INIT;

static void key_seed_draw(void)
{
	uint64_t seed;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		/* no entropy yet (early boot) or no getrandom(): still not known in advance */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		seed = XXH3_64bits_withSeed(&now, sizeof(now), (uint64_t)getpid() ^
		                                                   (uint64_t)(uintptr_t)&seed);
	}
	key_seed = seed;
}

static uint64_t key_hash(const char *s, size_t len)
{
	return XXH3_64bits_withSeed(s, len, key_seed);
}

/* Note the key r->keys + @p offset (@p len bytes) in @p f's set; false if it is there already
 * (*@p twice) or memory ran out. */
static bool key_add(json_reader *r, json_frame *f, size_t offset, size_t len, bool *twice)
{
	*twice = false;
	pthread_once(&key_seed_once, key_seed_draw);
	if ((f->nkeys + 1) * 2 > f->nslots) {
		size_t n = f->nslots ? f->nslots * 2 : 16;
		json_key *slots = malloc(n * sizeof(*slots));
		if (!slots)
			return false;
		for (size_t i = 0; i < n; i++)
			slots[i].len = SIZE_MAX;
		for (size_t i = 0; i < f->nslots; i++) {
			if (f->slots[i].len == SIZE_MAX)
				continue;
			size_t j = key_hash(r->keys + f->slots[i].offset, f->slots[i].len) & (n - 1);
			while (slots[j].len != SIZE_MAX)
				j = (j + 1) & (n - 1);
			slots[j] = f->slots[i];
		}
		free(f->slots);
		f->slots = slots;
		f->nslots = n;
	}
	size_t j = key_hash(r->keys + offset, len) & (f->nslots - 1);
	for (; f->slots[j].len != SIZE_MAX; j = (j + 1) & (f->nslots - 1)) {
		if (f->slots[j].len == len && memcmp(r->keys + f->slots[j].offset, r->keys + offset,
		                                     len) == 0) {
			*twice = true;
			return false;
		}
	}
	f->slots[j] = (json_key){offset, len};
	f->nkeys++;
	return true;
}

/* A key of the object @p f at r->p, through its ':'; *@p want: what its value must be. Keys
 * are compared (and matched against "params") as jansson reads them: decoded. */
static bool read_key(json_reader *r, json_frame *f, json_role *want)
{
	skip_space(r);
	const char *at = r->p, *key;
	size_t len;
	if (r->p >= r->end || *r->p != '"')
		return fault(r, at, "expected a string key");
	if (!read_string(r, &key, &len))
		return false;
	if (r->keys_len + len > r->keys_cap || !r->keys) { /* an empty first key too: memcpy and
	                                                      * memcmp take no NULL, even for 0 bytes */
		size_t cap = r->keys_cap ? r->keys_cap : 256;
		while (cap < r->keys_len + len)
			cap *= 2;
		char *grown = realloc(r->keys, cap);
		if (!grown)
			return fault(r, at, "out of memory");
		r->keys = grown;
		r->keys_cap = cap;
	}
	char *decoded = r->keys + r->keys_len;
	if (memchr(key, '\\', len))
		len = decode_string(key, len, decoded);
	else
		memcpy(decoded, key, len);
	bool twice;
	if (!key_add(r, f, r->keys_len, len, &twice))
		return twice ? fault(r, at, "the key \"%.*s\" twice in an object",
		                     (int)(len < 64 ? len : 64), decoded)
		             : fault(r, at, "out of memory");
	r->keys_len += len;
	skip_space(r);
	if (r->p >= r->end || *r->p != ':')
		return fault(r, r->p, "expected ':'");
	r->p++;
	*want = ROLE_ANY;
	if (f->group != SIZE_MAX) {
		json_group *g = &r->groups[f->group];
		if (len == 6 && memcmp(decoded, "params", 6) == 0) {
			*want = ROLE_PARAMS;
			g->has_params = true;
		} else if (len == 11 && memcmp(decoded, "param_names", 11) == 0) {
			*want = ROLE_NAMES;
			g->has_names = true;
		}
	}
	return true;
}

/* Whether the value at r->p can be what @p want asks. */
static bool check_role(json_reader *r, json_role want)
{
	char c = r->p[0];
	switch (want) {
	case ROLE_GROUP:
		if (c != '{') {
			snprintf(r->why, r->why_cap, "param group %zu is not a JSON object", r->ngroups);
			return false;
		}
		return true;
	case ROLE_PARAMS:
	case ROLE_NAMES:
		return c == '[' || fault(r, r->p, "\"%s\" is not a list",
		                         want == ROLE_PARAMS ? "params" : "param_names");
	case ROLE_NAME:
		return c == '"' ||
		       fault(r, r->p, "\"param_names\" holds something other than a string");
	case ROLE_INDEX: {
		const char *at = r->p;
		uint64_t index = UINT64_MAX;
		if ((c == '-' || (c >= '0' && c <= '9')) && !read_number(r, &index))
			return false;
		r->p = at;
		if (index == UINT64_MAX)
			return fault(r, at, "\"params\" holds something other than a parameter index "
			                    "(an integer from 0)");
		return true;
	}
	default: return true;
	}
}

/* One value at r->p that must be @p top (ROLE_ANY or ROLE_GROUPS), read without recursion:
 * open arrays and objects are frames on a heap stack. */
static bool read_json(json_reader *r, json_role top)
{
	json_frame *frames = NULL;
	size_t nframes = 0, cap = 0;
	json_role want = top;
	bool ok = false;
	for (;;) {
		/* a value of role @p want, the (nframes + 1)th nested: jansson counts every value */
		skip_space(r);
		if (nframes >= JSON_MAX_DEPTH) {
			fault(r, r->p, "nested more than %d deep", JSON_MAX_DEPTH);
			goto out;
		}
		if (r->p >= r->end) {
			fault(r, r->p, "the text ends where a value is expected");
			goto out;
		}
		size_t group = nframes ? frames[nframes - 1].group : SIZE_MAX;
		if (!check_role(r, want))
			goto out;
		char c = *r->p;
		if (c == '{' || c == '[') {
			if (nframes == cap) {
				size_t n = cap ? cap * 2 : 16;
				json_frame *grown = realloc(frames, n * sizeof(*grown));
				if (!grown) {
					fault(r, r->p, "out of memory");
					goto out;
				}
				frames = grown;
				cap = n;
			}
			json_frame *f = &frames[nframes++];
			*f = (json_frame){.close = c == '{' ? '}' : ']', .elements = ROLE_ANY,
			                  .group = SIZE_MAX, .keys_mark = r->keys_len};
			if (want == ROLE_PARAMS || want == ROLE_NAMES) {
				f->elements = want == ROLE_PARAMS ? ROLE_INDEX : ROLE_NAME;
				f->group = group;
			} else if (want == ROLE_GROUPS) {
				f->elements = ROLE_GROUP;
			} else if (want == ROLE_GROUP) {
				json_group *grown = realloc(r->groups, (r->ngroups + 1) * sizeof(*grown));
				if (!grown) {
					fault(r, r->p, "out of memory");
					goto out;
				}
				r->groups = grown;
				r->groups[r->ngroups] = (json_group){0};
				f->group = r->ngroups++;
			}
			r->p++;
			skip_space(r);
			if (r->p < r->end && *r->p == f->close) {
				r->p++;
				nframes--;
			} else if (c == '{') {
				if (!read_key(r, f, &want))
					goto out;
				continue;
			} else {
				want = f->elements;
				continue;
			}
		} else if (want == ROLE_INDEX) {
			json_group *g = &r->groups[group];
			uint64_t index, *grown = realloc(g->params, (g->nparams + 1) * sizeof(*grown));
			if (!grown) {
				fault(r, r->p, "out of memory");
				goto out;
			}
			g->params = grown;
			if (!read_number(r, &index))
				goto out;
			grown[g->nparams++] = index;
		} else {
			const char *s;
			size_t len;
			uint64_t index;
			bool read = c == '"'   ? read_string(r, &s, &len)
			            : c == 't' ? read_literal(r, "true")
			            : c == 'f' ? read_literal(r, "false")
			            : c == 'n' ? read_literal(r, "null")
			            : c == '-' || (c >= '0' && c <= '9') ? read_number(r, &index)
			                                                 : fault(r, r->p, "not a JSON value");
			if (!read)
				goto out;
			if (want == ROLE_NAME)
				r->groups[group].nnames++;
		}
		/* after a value: the containers it ends */
		for (;;) {
			if (!nframes) {
				ok = true;
				goto out;
			}
			json_frame *f = &frames[nframes - 1];
			skip_space(r);
			if (r->p < r->end && *r->p == ',') {
				r->p++;
				if (f->close == '}' && !read_key(r, f, &want))
					goto out;
				if (f->close == ']')
					want = f->elements;
				break;
			}
			if (r->p < r->end && *r->p == f->close) {
				r->p++;
				free(f->slots);
				r->keys_len = f->keys_mark;
				nframes--;
				continue;
			}
			fault(r, r->p, "expected ',' or '%c'", f->close);
			goto out;
		}
	}
out:
	for (size_t i = 0; i < nframes; i++)
		free(frames[i].slots);
	free(frames);
	return ok;
}

/* The whole text as one value (@p group: a param group's); false with r->why set. */
static bool read_document(json_reader *r, char open, const char *what)
{
	if (memchr(r->text, '\0', (size_t)(r->end - r->text)))
		return fault(r, memchr(r->text, '\0', (size_t)(r->end - r->text)), "a NUL byte");
	skip_space(r);
	if (r->p >= r->end || *r->p != open) {
		if (r->p < r->end && !read_json(r, ROLE_ANY))
			return false;
		snprintf(r->why, r->why_cap, "not %s", what);
		return false;
	}
	return true;
}

static bool read_end(json_reader *r)
{
	skip_space(r);
	return r->p == r->end || fault(r, r->p, "text after the JSON value");
}

int store_json_check_object(const char *text, size_t len, char *why, size_t cap)
{
	json_reader r = {.text = text, .p = text, .end = text + len, .big_ints = true,
	                 .why = why, .why_cap = cap};
	why[0] = '\0';
	bool ok = read_document(&r, '{', "a JSON object") && read_json(&r, ROLE_ANY) && read_end(&r);
	free(r.keys);
	return ok ? 0 : -EINVAL;
}

/* store_json_check_param_groups(), and with @p need_params that they list a parameter. */
static int check_param_groups(const char *text, size_t len, bool need_params, char *why,
                              size_t cap)
{
	json_reader r = {.text = text, .p = text, .end = text + len, .why = why, .why_cap = cap};
	why[0] = '\0';
	bool ok = true;
	ok = ok && read_document(&r, '[', "a JSON list of param groups") &&
	     read_json(&r, ROLE_GROUPS) && read_end(&r);
	free(r.keys);
	/* what torch's load_state_dict() and checkpoint.pt need: every group's "params", the
	 * indices 0..n-1 (as state_dict() numbers them), each once; names for all or none */
	size_t total = 0, named = 0;
	for (size_t i = 0; ok && i < r.ngroups; i++) {
		total += r.groups[i].nparams;
		named += r.groups[i].has_names;
	}
	uint8_t *seen = ok ? calloc(total ? total : 1, 1) : NULL;
	if (ok && !seen)
		ok = fault(&r, text, "out of memory");
	for (size_t i = 0; ok && i < r.ngroups; i++) {
		const json_group *g = &r.groups[i];
		if (!g->has_params) {
			snprintf(why, cap, "param group %zu has no \"params\"", i);
			ok = false;
		} else if (named && (!g->has_names || g->nnames != g->nparams)) {
			snprintf(why, cap,
			         "param group %zu has %s \"param_names\" for its %zu \"params\" (every group "
			         "names each of its parameters, or none does)",
			         i, g->has_names ? "other" : "no", g->nparams);
			ok = false;
		}
		for (size_t k = 0; ok && k < g->nparams; k++) {
			uint64_t p = g->params[k];
			if (p >= total) {
				snprintf(why, cap,
				         "param group %zu lists parameter %llu, but the groups hold %zu "
				         "parameters, numbered from 0 as torch numbers them",
				         i, (unsigned long long)p, total);
				ok = false;
			} else if (seen[p]) {
				snprintf(why, cap, "parameter %llu is listed twice (param group %zu)",
				         (unsigned long long)p, i);
				ok = false;
			}
			if (ok)
				seen[p] = 1;
		}
	}
	free(seen);
	/* at commit: torch refuses an optimizer given no groups (1.13) or no parameters, so
	 * such groups load into no optimizer. How the rest fit the model tensors is not checked
	 * there: torch >= 2.6 names parameters relative to the module the optimizer was built from
	 * ("module.fc1.weight" under DDP, "weight" for one over model.head), an optimizer may hold
	 * tensors that are no model tensor, and a refused commit loses the whole checkpoint;
	 * checkpoint.pt refuses what it cannot map, the other files of the epoch still serve. */
	if (ok && need_params && total == 0) {
		snprintf(why, cap, "optimizer.param_groups lists no parameters (%s): no torch "
		         "optimizer can load it",
		         r.ngroups ? "every group's \"params\" is empty" : "no group");
		ok = false;
	}
	for (size_t i = 0; i < r.ngroups; i++)
		free(r.groups[i].params);
	free(r.groups);
	return ok ? 0 : -EINVAL;
}

int store_json_check_param_groups(const char *text, size_t len, char *why, size_t cap)
{
	return check_param_groups(text, len, false, why, cap);
}

int store_json_check_param_groups_loadable(const char *text, size_t len, char *why, size_t cap)
{
	return check_param_groups(text, len, true, why, cap);
}
