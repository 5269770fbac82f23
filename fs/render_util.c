/* fs/render_util.c - helpers shared by the whole-checkpoint renderers (see fs/render_util.h)
 *
 * The error message is per thread (FUSE serves requests from several threads).
 */
#include "fs/render_util.h"

#include <errno.h>
#include <jansson.h>
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

#include "fs/render.h"

static _Thread_local char last_error[512];

const char *render_last_error(void)
{
	return last_error;
}

void render_clear_error(void)
{
	last_error[0] = '\0';
}

int render_fail(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return rc;
}

void render_printable_name(char *buf, size_t cap, const char *name)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		char one[5];
		if (*p >= 0x20 && *p < 0x7f && *p != '\\')
			one[0] = (char)*p, one[1] = '\0';
		else
			snprintf(one, sizeof(one), "\\x%02x", *p);
		size_t len = strlen(one);
		/* keep room for "..." unless this is the last piece and fits */
		if (n + len + 4 > cap && (p[1] != '\0' || n + len + 1 > cap)) {
			memcpy(buf + n, "...", 4);
			return;
		}
		memcpy(buf + n, one, len + 1);
		n += len;
	}
	buf[n] = '\0';
}

int render_parse_map_location(view_render_options *out, const char *value)
{
	memset(out, 0, sizeof(*out));
	if (!value || strcmp(value, "cpu") == 0)
		return 0;
	if (strcmp(value, "keep") == 0) {
		out->map_location = VIEW_MAP_KEEP;
		return 0;
	}
	char canon[CKPT_MAX_DEVICE + 1];
	/* only the spelling torch itself accepts: not "cuda:01", not an index past int8 */
	if (strncmp(value, "cuda", 4) == 0 && render_torch_location(canon, value) == 0 &&
	    strcmp(canon, value) == 0 && strlen(value) < sizeof(out->map_device)) {
		out->map_location = VIEW_MAP_DEVICE;
		memcpy(out->map_device, value, strlen(value) + 1);
		return 0;
	}
	return -EINVAL;
}

int render_torch_location(char *out, const char *device)
{
	if (!ckpt_device_is_valid(device))
		return -EINVAL;
	if (strncmp(device, "cuda:", 5) != 0) {
		snprintf(out, CKPT_MAX_DEVICE + 1, "%s", device);
		return 0;
	}
	unsigned long index = strtoul(device + 5, NULL, 10); /* 1 to 3 digits: checked above */
	if (index > 127)
		return -EINVAL;
	snprintf(out, CKPT_MAX_DEVICE + 1, "cuda:%lu", index);
	return 0;
}

const char *render_torch_storage(ckpt_dtype dtype)
{
	switch (dtype) {
	case CKPT_DTYPE_FLOAT32: return "FloatStorage";
	case CKPT_DTYPE_FLOAT64: return "DoubleStorage";
	case CKPT_DTYPE_FLOAT16: return "HalfStorage";
	case CKPT_DTYPE_BFLOAT16: return "BFloat16Storage";
	case CKPT_DTYPE_INT64: return "LongStorage";
	case CKPT_DTYPE_INT32: return "IntStorage";
	case CKPT_DTYPE_INT16: return "ShortStorage";
	case CKPT_DTYPE_INT8: return "CharStorage";
	case CKPT_DTYPE_UINT8: return "ByteStorage";
	case CKPT_DTYPE_BOOL: return "BoolStorage";
	}
	return NULL;
}

const char *render_safetensors_dtype(ckpt_dtype dtype)
{
	switch (dtype) {
	case CKPT_DTYPE_FLOAT32: return "F32";
	case CKPT_DTYPE_FLOAT64: return "F64";
	case CKPT_DTYPE_FLOAT16: return "F16";
	case CKPT_DTYPE_BFLOAT16: return "BF16";
	case CKPT_DTYPE_INT64: return "I64";
	case CKPT_DTYPE_INT32: return "I32";
	case CKPT_DTYPE_INT16: return "I16";
	case CKPT_DTYPE_INT8: return "I8";
	case CKPT_DTYPE_UINT8: return "U8";
	case CKPT_DTYPE_BOOL: return "BOOL";
	}
	return NULL;
}

/* Fewest %g digits that read back as @p v; like Python's repr, values in [1e-4, 1e16) get
 * enough digits to be printed without an exponent (1000, not 1e+03). */
static int shortest_precision(double v)
{
	char buf[512]; /* %.17g of DBL_MAX is 23 bytes; sized for what the compiler assumes */
	if (!isfinite(v))
		return 1;
	/* if k digits read back, so do k + 1. Computed metrics mostly need 16 or 17 digits, so
	 * settle those with two tries; binary search below 16 otherwise */
	int lo = 1, hi = 17;
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) == v) {
		hi = 15;
	} else {
		snprintf(buf, sizeof(buf), "%.16g", v);
		lo = hi = strtod(buf, NULL) == v ? 16 : 17;
	}
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		snprintf(buf, sizeof(buf), "%.*g", mid, v);
		if (strtod(buf, NULL) == v)
			hi = mid;
		else
			lo = mid + 1;
	}
	int p = lo;
	double mag = fabs(v);
	if (isfinite(v) && mag >= 1e-4 && mag < 1e16) {
		int exp10 = (int)floor(log10(mag));
		if (p < exp10 + 1)
			p = exp10 + 1;
	}
	return p;
}

void render_format_double(char *buf, size_t cap, double v)
{
	if (isnan(v)) {
		snprintf(buf, cap, "nan");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, cap, v > 0 ? "inf" : "-inf");
		return;
	}
	snprintf(buf, cap, "%.*g", shortest_precision(v), v);
}

/* jansson's integers are signed 64-bit: a larger one is the marker string
 * "\x01u<nonce>:<digits>" (a '-' before the digits for a negative one). The nonce, random per
 * process, keeps a store's own strings from passing for a marker. */
static char bigint_nonce[17];
static pthread_once_t bigint_nonce_once = PTHREAD_ONCE_INIT;

static void bigint_nonce_init(void)
{
	uint64_t n = 0;
	if (getrandom(&n, sizeof(n), GRND_NONBLOCK) != (ssize_t)sizeof(n))
		n = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	snprintf(bigint_nonce, sizeof(bigint_nonce), "%016llx", (unsigned long long)n);
}

/* The marker's text for the integer @p digits (@p len bytes, an optional '-' first) into
 * @p buf (@p cap bytes, NUL-terminated); its length, or SIZE_MAX if it does not fit. */
static size_t bigint_marker_text(char *buf, size_t cap, const char *digits, size_t len)
{
	pthread_once(&bigint_nonce_once, bigint_nonce_init);
	int n = snprintf(buf, cap, "\x01u%s:%.*s", bigint_nonce, (int)len, digits);
	return n < 0 || (size_t)n >= cap ? SIZE_MAX : (size_t)n;
}

json_t *render_json_bigint(const char *digits, size_t len)
{
	char *buf = malloc(len + 32);
	if (!buf)
		return NULL;
	size_t n = bigint_marker_text(buf, len + 32, digits, len);
	json_t *j = n == SIZE_MAX ? NULL : json_stringn(buf, n);
	free(buf);
	return j;
}

size_t render_bigint_digits(const char *s, size_t len, const char **digits)
{
	if (len < 1 + 17 + 1 || s[0] != 'u')
		return 0;
	pthread_once(&bigint_nonce_once, bigint_nonce_init);
	if (memcmp(s + 1, bigint_nonce, 16) != 0 || s[17] != ':')
		return 0;
	const char *d = s + 18;
	size_t n = len - 18, sign = n > 0 && d[0] == '-';
	if (n == sign || strspn(d + sign, "0123456789") < n - sign)
		return 0;
	*digits = d;
	return n;
}

/* Whether the JSON integer text @p p (@p len bytes: an optional '-', digits) is outside
 * int64: jansson refuses it. */
static bool beyond_int64(const char *p, size_t len)
{
	bool negative = *p == '-';
	p += negative;
	len -= negative;
	static const char max[] = "9223372036854775807", min[] = "9223372036854775808";
	const char *limit = negative ? min : max;
	return len > 19 || (len == 19 && memcmp(p, limit, 19) > 0);
}

/* The length of the JSON token at @p text[i] (@p len bytes in all) that is an integer outside
 * int64, or 0; *@p skip: how far to go on from i otherwise (a string, a number, a byte). */
static size_t bigint_at(const char *text, size_t len, size_t i, size_t *skip)
{
	size_t end = i + 1;
	if (text[i] == '"') { /* a string: up to its closing quote */
		while (end < len && text[end] != '"')
			end += text[end] == '\\' ? 2 : 1;
		*skip = (end < len ? end + 1 : len) - i;
		return 0;
	}
	if (text[i] != '-' && (text[i] < '0' || text[i] > '9')) {
		*skip = 1;
		return 0;
	}
	end = i + (text[i] == '-');
	size_t ndigits = strspn(text + end, "0123456789");
	size_t tail = strspn(text + end + ndigits, "0123456789.eE+-");
	*skip = end + ndigits + tail - i;
	return ndigits > 0 && tail == 0 && beyond_int64(text + i, end + ndigits - i)
	           ? end + ndigits - i
	           : 0;
}

/* @p text with every integer outside int64 (outside strings) as a bigint marker string
 * (malloc'd); NULL when there is none, or without memory. */
static char *mark_bigints(const char *text)
{
	size_t len = strlen(text), count = 0, skip;
	for (size_t i = 0; i < len; i += skip)
		count += bigint_at(text, len, i, &skip) > 0;
	if (!count)
		return NULL;
	pthread_once(&bigint_nonce_once, bigint_nonce_init);
	/* each marker adds "\u0001u NONCE : and the closing quote */
	char *out = malloc(len + count * (8 + 16 + 2) + 1);
	if (!out)
		return NULL;
	size_t o = 0, from = 0;
	for (size_t i = 0; i < len; i += skip) {
		size_t n = bigint_at(text, len, i, &skip);
		if (!n)
			continue;
		memcpy(out + o, text + from, i - from);
		o += i - from;
		o += (size_t)sprintf(out + o, "\"\\u0001u%s:", bigint_nonce);
		memcpy(out + o, text + i, n);
		o += n;
		out[o++] = '"';
		from = i + n;
	}
	memcpy(out + o, text + from, len - from + 1);
	return out;
}

json_t *render_load_hyperparams(const char *text, bool any)
{
	if (!text || !*text)
		return NULL;
	size_t flags = any ? JSON_DECODE_ANY : 0;
	json_t *j = json_loads(text, flags, NULL);
	if (j)
		return j;
	char *marked = mark_bigints(text);
	if (marked)
		j = json_loads(marked, flags, NULL);
	free(marked);
	return j;
}
