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

/* LONG1: n bytes little-endian two's complement, as few as hold the value and its sign. */
static void put_long1(pickle_buf *p, uint64_t bits, bool negative)
{
	uint8_t bytes[9];
	size_t n = 0;
	for (size_t i = 0; i < 8; i++)
		bytes[i] = (uint8_t)(bits >> (8 * i));
	/* an unsigned value with the top bit set needs a ninth, zero byte */
	bytes[8] = negative ? 0xff : 0x00;
	n = 9;
	while (n > 1) {
		uint8_t top = bytes[n - 1], next = bytes[n - 2];
		if (!negative && top == 0x00 && !(next & 0x80))
			n--;
		else if (negative && top == 0xff && (next & 0x80))
			n--;
		else
			break;
	}
	uint8_t head[2] = {0x8a, (uint8_t)n};
	put(p, head, sizeof(head));
	put(p, bytes, n);
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
