/* store/json.c - checks of the JSON texts libckpt is given (hyper-parameters, param groups)
 *
 * libckpt links no JSON library, yet what it stores as JSON must read back where it is shown
 * (run.json, checkpoint.pt, param_groups.json, which read it with jansson): this reads RFC 8259
 * JSON as strictly as they do (no NUL in a string, no key twice in an object, no number past a
 * double, valid UTF-8 and surrogate pairs) and names the first fault by line and column, from 1.
 * Only the shape of param groups is looked into: what torch's load_state_dict() needs.
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

static bool read_value(json_reader *r, unsigned depth, json_group *group);

/* What an array of a param group holds. */
typedef enum array_kind { ARRAY_ANY, ARRAY_PARAMS, ARRAY_NAMES } array_kind;

/* An array at r->p; of @p kind ARRAY_PARAMS or ARRAY_NAMES: @p group's "params" (noted) or
 * "param_names" (counted). */
static bool read_array(json_reader *r, unsigned depth, json_group *group, array_kind kind)
{
	r->p++;
	skip_space(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		return true;
	}
	for (;;) {
		skip_space(r);
		const char *at = r->p;
		bool number = r->p < r->end && (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'));
		uint64_t index = UINT64_MAX;
		if (kind == ARRAY_PARAMS) {
			if (number && !read_number(r, &index))
				return false;
			if (index == UINT64_MAX)
				return fault(r, at, "\"params\" holds something other than a parameter "
				                    "index (an integer from 0)");
			uint64_t *grown = realloc(group->params, (group->nparams + 1) * sizeof(*grown));
			if (!grown)
				return fault(r, at, "out of memory");
			group->params = grown;
			grown[group->nparams++] = index;
		} else if (kind == ARRAY_NAMES && (r->p >= r->end || *r->p != '"')) {
			return fault(r, at, "\"param_names\" holds something other than a string");
		} else if (!read_value(r, depth + 1, NULL)) {
			return false;
		}
		if (kind == ARRAY_NAMES)
			group->nnames++;
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == ']') {
			r->p++;
			return true;
		}
		return fault(r, r->p, "expected ',' or ']'");
	}
}

/* An object at r->p; with @p group, a param group: its "params" and "param_names" noted. */
static bool read_object(json_reader *r, unsigned depth, json_group *group)
{
	r->p++;
	skip_space(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return true;
	}
	struct key {
		const char *text;
		size_t len;
		char *decoded; /* text, when it was decoded (freed with the object) */
	} *keys = NULL;
	size_t nkeys = 0;
	bool ok = false;
	for (;;) {
		skip_space(r);
		const char *at = r->p, *key;
		size_t len;
		if (r->p >= r->end || *r->p != '"') {
			fault(r, at, "expected a string key");
			break;
		}
		if (!read_string(r, &key, &len))
			break;
		/* keys are compared (and matched against "params") as jansson reads them: decoded */
		char *decoded = NULL;
		if (memchr(key, '\\', len)) {
			if (!(decoded = malloc(len))) {
				fault(r, at, "out of memory");
				break;
			}
			len = decode_string(key, len, decoded);
			key = decoded;
		}
		for (size_t i = 0; i < nkeys && !r->why[0]; i++)
			if (keys[i].len == len && memcmp(keys[i].text, key, len) == 0)
				fault(r, at, "the key \"%.*s\" twice in an object", (int)(len < 64 ? len : 64),
				      key);
		struct key *grown = r->why[0] ? NULL : realloc(keys, (nkeys + 1) * sizeof(*keys));
		if (!grown) {
			free(decoded);
			fault(r, at, "out of memory");
			break;
		}
		keys = grown;
		keys[nkeys++] = (struct key){key, len, decoded};
		skip_space(r);
		if (r->p >= r->end || *r->p != ':') {
			fault(r, r->p, "expected ':'");
			break;
		}
		r->p++;
		skip_space(r);
		bool params = group && len == 6 && memcmp(key, "params", 6) == 0;
		bool names = group && len == 11 && memcmp(key, "param_names", 11) == 0;
		const char *value = r->p;
		if (params || names) {
			if (r->p >= r->end || *r->p != '[') {
				fault(r, value, "\"%s\" is not a list", params ? "params" : "param_names");
				break;
			}
			group->has_params |= params;
			group->has_names |= names;
		}
		bool read = params  ? read_array(r, depth + 1, group, ARRAY_PARAMS)
		            : names ? read_array(r, depth + 1, group, ARRAY_NAMES)
		                    : read_value(r, depth + 1, NULL);
		if (!read)
			break;
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == '}') {
			r->p++;
			ok = true;
			break;
		}
		fault(r, r->p, "expected ',' or '}'");
		break;
	}
	for (size_t i = 0; i < nkeys; i++)
		free(keys[i].decoded);
	free(keys);
	return ok;
}

static bool read_literal(json_reader *r, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return fault(r, r->p, "not a JSON value");
	r->p += n;
	return true;
}

static bool read_value(json_reader *r, unsigned depth, json_group *group)
{
	if (depth >= JSON_MAX_DEPTH) /* jansson counts every value, the outermost as 1 */
		return fault(r, r->p, "nested more than %d deep", JSON_MAX_DEPTH);
	skip_space(r);
	if (r->p >= r->end)
		return fault(r, r->p, "the text ends where a value is expected");
	const char *s;
	size_t len;
	uint64_t index;
	switch (*r->p) {
	case '{': return read_object(r, depth, group);
	case '[': return read_array(r, depth, NULL, ARRAY_ANY);
	case '"': return read_string(r, &s, &len);
	case 't': return read_literal(r, "true");
	case 'f': return read_literal(r, "false");
	case 'n': return read_literal(r, "null");
	default:
		if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
			return read_number(r, &index);
		return fault(r, r->p, "not a JSON value");
	}
}

/* The whole text as one value (@p group: a param group's); false with r->why set. */
static bool read_document(json_reader *r, char open, const char *what)
{
	if (memchr(r->text, '\0', (size_t)(r->end - r->text)))
		return fault(r, memchr(r->text, '\0', (size_t)(r->end - r->text)), "a NUL byte");
	skip_space(r);
	if (r->p >= r->end || *r->p != open) {
		if (r->p < r->end && !read_value(r, 0, NULL))
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
	bool ok = read_document(&r, '{', "a JSON object") && read_value(&r, 0, NULL) && read_end(&r);
	return ok ? 0 : -EINVAL;
}

int store_json_check_param_groups(const char *text, size_t len, char *why, size_t cap)
{
	json_reader r = {.text = text, .p = text, .end = text + len, .why = why, .why_cap = cap};
	why[0] = '\0';
	bool ok = read_document(&r, '[', "a JSON list of param groups");
	if (ok) { /* '[' group (',' group)* ']' */
		r.p++;
		skip_space(&r);
		bool empty = r.p < r.end && *r.p == ']';
		r.p += empty;
		while (ok && !empty) {
			skip_space(&r);
			const char *at = r.p;
			json_group *grown = realloc(r.groups, (r.ngroups + 1) * sizeof(*grown));
			if (!grown) {
				ok = fault(&r, at, "out of memory");
				break;
			}
			r.groups = grown;
			json_group *g = &r.groups[r.ngroups++];
			*g = (json_group){0};
			if (r.p >= r.end || *r.p != '{') {
				if (read_value(&r, 1, NULL))
					snprintf(why, cap, "param group %zu is not a JSON object", r.ngroups - 1);
				ok = false;
				break;
			}
			ok = read_object(&r, 1, g);
			skip_space(&r);
			if (ok && r.p < r.end && *r.p == ',') {
				r.p++;
			} else if (ok && r.p < r.end && *r.p == ']') {
				r.p++;
				break;
			} else if (ok) {
				ok = fault(&r, r.p, "expected ',' or ']'");
			}
		}
		ok = ok && read_end(&r);
	}
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
	for (size_t i = 0; i < r.ngroups; i++)
		free(r.groups[i].params);
	free(r.groups);
	return ok ? 0 : -EINVAL;
}
