/* fs/pickle.c - a writer for the subset of pickle protocol 2 that torch.save files use
 *
 * Integers use the shortest opcode CPython's pickler would pick for protocol 2 (K, M, J,
 * LONG1), floats BINFLOAT, strings BINUNICODE. The buffer grows geometrically; a failed
 * allocation sets p->err once and turns later calls into no-ops.
 */
#include "fs/pickle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void pickle_init(pickle_buf *p)
{
	memset(p, 0, sizeof(*p));
}

void pickle_free(pickle_buf *p)
{
	if (!p)
		return;
	free(p->data);
	pickle_init(p);
}

static void put(pickle_buf *p, const void *bytes, size_t len)
{
	if (p->err)
		return;
	if (len > SIZE_MAX - p->len) {
		p->err = -ENOMEM;
		return;
	}
	if (p->len + len > p->cap) {
		size_t cap = p->cap ? p->cap : 256;
		while (cap < p->len + len)
			cap *= 2;
		uint8_t *data = realloc(p->data, cap);
		if (!data) {
			p->err = -ENOMEM;
			return;
		}
		p->data = data;
		p->cap = cap;
	}
	memcpy(p->data + p->len, bytes, len);
	p->len += len;
}

void pickle_op(pickle_buf *p, uint8_t op)
{
	put(p, &op, 1);
}

void pickle_proto(pickle_buf *p)
{
	static const uint8_t proto[2] = {0x80, 2};
	put(p, proto, sizeof(proto));
}

void pickle_global(pickle_buf *p, const char *module, const char *name)
{
	pickle_op(p, 'c');
	put(p, module, strlen(module));
	pickle_op(p, '\n');
	put(p, name, strlen(name));
	pickle_op(p, '\n');
}

void pickle_str_n(pickle_buf *p, const char *s, size_t len)
{
	if (len > UINT32_MAX) {
		if (!p->err)
			p->err = -EOVERFLOW;
		return;
	}
	uint8_t head[5] = {'X', (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
	                   (uint8_t)(len >> 24)};
	put(p, head, sizeof(head));
	put(p, s, len);
}

void pickle_str(pickle_buf *p, const char *s)
{
	pickle_str_n(p, s, strlen(s));
}

/* LONG1 (LONG4 past 255 bytes) of the @p n bytes little-endian two's complement @p bytes (the
 * last one the sign's: 0x00 or 0xff), trimmed to as few as hold the value and its sign. */
static void put_long(pickle_buf *p, const uint8_t *bytes, size_t n, bool negative)
{
	while (n > 1) {
		uint8_t top = bytes[n - 1], next = bytes[n - 2];
		if (!negative && top == 0x00 && !(next & 0x80))
			n--;
		else if (negative && top == 0xff && (next & 0x80))
			n--;
		else
			break;
	}
	if (n <= 0xff) {
		uint8_t head[2] = {0x8a, (uint8_t)n};
		put(p, head, sizeof(head));
	} else if (n <= UINT32_MAX) {
		uint8_t head[5] = {0x8b, (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16),
		                   (uint8_t)(n >> 24)};
		put(p, head, sizeof(head));
	} else {
		p->err = -ENOMEM;
	}
	put(p, bytes, n);
}

static void put_long1(pickle_buf *p, uint64_t bits, bool negative)
{
	uint8_t bytes[9];
	for (size_t i = 0; i < 8; i++)
		bytes[i] = (uint8_t)(bits >> (8 * i));
	/* an unsigned value with the top bit set needs a ninth, zero byte */
	bytes[8] = negative ? 0xff : 0x00;
	put_long(p, bytes, 9, negative);
}

void pickle_int_text(pickle_buf *p, const char *digits, size_t len)
{
	bool negative = len > 0 && digits[0] == '-';
	digits += negative;
	len -= negative;
	/* each decimal digit needs less than half a byte; one more for the sign */
	size_t cap = len / 2 + 2, n = 1;
	uint8_t *bytes = calloc(cap, 1);
	if (!bytes) {
		if (!p->err)
			p->err = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < len; i++) { /* bytes = bytes * 10 + digit */
		unsigned carry = (unsigned)(digits[i] - '0');
		for (size_t b = 0; b < n || carry; b++) {
			unsigned v = (b < n ? bytes[b] * 10u : 0) + carry;
			bytes[b] = (uint8_t)v;
			carry = v >> 8;
			n = b + 1 > n ? b + 1 : n;
		}
	}
	if (negative) { /* two's complement over all cap bytes */
		unsigned carry = 1;
		for (size_t b = 0; b < cap; b++) {
			unsigned v = (uint8_t)~bytes[b] + carry;
			bytes[b] = (uint8_t)v;
			carry = v >> 8;
		}
	}
	put_long(p, bytes, cap, negative);
	free(bytes);
}

void pickle_int(pickle_buf *p, int64_t v)
{
	if (v >= 0 && v <= 0xff) {
		uint8_t b[2] = {'K', (uint8_t)v};
		put(p, b, 2);
	} else if (v >= 0 && v <= 0xffff) {
		uint8_t b[3] = {'M', (uint8_t)v, (uint8_t)(v >> 8)};
		put(p, b, 3);
	} else if (v >= INT32_MIN && v <= INT32_MAX) {
		uint32_t u = (uint32_t)(int32_t)v;
		uint8_t b[5] = {'J', (uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16),
		                (uint8_t)(u >> 24)};
		put(p, b, 5);
	} else {
		put_long1(p, (uint64_t)v, v < 0);
	}
}

void pickle_uint(pickle_buf *p, uint64_t v)
{
	if (v <= INT64_MAX)
		pickle_int(p, (int64_t)v);
	else
		put_long1(p, v, false);
}

void pickle_float(pickle_buf *p, double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof(bits));
	uint8_t b[9];
	b[0] = 'G';
	for (size_t i = 0; i < 8; i++)
		b[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
	put(p, b, sizeof(b));
}

void pickle_bool(pickle_buf *p, bool v)
{
	pickle_op(p, v ? 0x88 : 0x89);
}

void pickle_none(pickle_buf *p)
{
	pickle_op(p, 'N');
}

void pickle_uint_tuple(pickle_buf *p, const uint64_t *v, size_t n)
{
	static const uint8_t small[4] = {PICKLE_EMPTY_TUPLE, PICKLE_TUPLE1, PICKLE_TUPLE2,
	                                 PICKLE_TUPLE3};
	if (n > 3)
		pickle_op(p, PICKLE_MARK);
	for (size_t i = 0; i < n; i++)
		pickle_uint(p, v[i]);
	pickle_op(p, n > 3 ? PICKLE_TUPLE : small[n]);
}

int pickle_finish(pickle_buf *p)
{
	pickle_op(p, PICKLE_STOP);
	return p->err;
}
