/* store/records.c - encoders and decoders of stored records (see store/records.h)
 *
 * Invariants: a version 2 record's CRC-32 trailer is checked before any other field than the
 * version (and the checkpoint record's magic) is looked at; every read goes through a
 * bounds-checked cursor; a decoder either returns a complete record or CKPT_ECORRUPT with a
 * reason, never reads outside its buffer, never allocates more than a small multiple of the
 * buffer length, and rejects trailing bytes.
 */
#include "store/records.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_REC_MAGIC 0x54504b43u /* "CKPT" little-endian */
#define CKPT_REC_HEADER_LEN 48

#define SETTINGS_V1_LEN (STORE_SETTINGS_LEN - STORE_REC_CRC_LEN)
#define INDEX_V1_LEN (STORE_INDEX_LEN - STORE_REC_CRC_LEN)

_Static_assert(STORE_SETTINGS_LEN == 2 + 2 + 4 + 4 + 4 + 8 + 4, "settings layout");
_Static_assert(STORE_INDEX_LEN == 2 + 1 + 1 + 4 + 8 + 8 + 8 + 8 + 4, "index layout");
_Static_assert(STORE_BEST_LEN == 2 + 2 + 8 + 4, "best layout");
_Static_assert(STORE_BLOB_HEADER_LEN == 2 + 2 + 4 + 8 + 8 + 8, "blob header layout");
_Static_assert(CKPT_REC_HEADER_LEN == 4 + 2 + 2 + 8 + 8 + 8 + 4 + 4 + 4 + 4, "ckpt header");
_Static_assert(sizeof(double) == 8, "IEEE double");

/* ---- little-endian helpers ---- */

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_f64(uint8_t *p, double d)
{
	uint64_t v;
	memcpy(&v, &d, 8);
	put_u64(p, v);
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static double get_f64(const uint8_t *p)
{
	uint64_t v = get_u64(p);
	double d;
	memcpy(&d, &v, 8);
	return d;
}

static int corrupt(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int corrupt(char *why, size_t whylen, const char *fmt, ...)
{
	if (why && whylen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return CKPT_ECORRUPT;
}

/* ---- the CRC-32 trailer ---- */

/* Write the trailer of the record in the first @p len bytes of @p rec (the last 4 of them). */
static void seal(uint8_t *rec, size_t len)
{
	put_u32(rec + len - STORE_REC_CRC_LEN, ckpt_crc32(0, rec, len - STORE_REC_CRC_LEN));
}

/* Check the record in @p rec (@p len bytes) whose version field reads @p version: a version 2
 * record must be at least @p min_len bytes plus its trailer, and the trailer must be the CRC-32
 * of the bytes before it. *body gets the length without the trailer (all of a version 1
 * record). @p what names the record in the reason. */
static int unseal(size_t *body, const uint8_t *rec, size_t len, uint16_t version, size_t min_len,
                  const char *what, char *why, size_t whylen)
{
	if (version == STORE_REC_VERSION_UNCHECKED) {
		*body = len;
		return 0;
	}
	if (version != STORE_REC_VERSION)
		return corrupt(why, whylen,
		               "%s record version %u unsupported (damaged, or written by a newer "
		               "ckpt)",
		               what, version);
	if (len < min_len + STORE_REC_CRC_LEN)
		return corrupt(why, whylen, "%s record truncated (%zu bytes)", what, len);
	uint32_t stored = get_u32(rec + len - STORE_REC_CRC_LEN);
	uint32_t actual = ckpt_crc32(0, rec, len - STORE_REC_CRC_LEN);
	if (stored != actual)
		return corrupt(why, whylen,
		               "%s record is damaged (CRC-32 0x%08x, stored 0x%08x, over %zu "
		               "bytes)",
		               what, actual, stored, len);
	*body = len - STORE_REC_CRC_LEN;
	return 0;
}

/* unseal() for a record whose version is its first field */
static int unseal_versioned(size_t *body, const uint8_t *rec, size_t len, size_t min_len,
                            const char *what, char *why, size_t whylen)
{
	if (len < 2)
		return corrupt(why, whylen, "%s record truncated (%zu bytes)", what, len);
	return unseal(body, rec, len, get_u16(rec), min_len, what, why, whylen);
}

/* unseal_versioned() for a record of @p body_len bytes before its trailer */
static int unseal_fixed(const uint8_t *rec, size_t len, size_t body_len, const char *what,
                        char *why, size_t whylen)
{
	size_t body;
	int rc = unseal_versioned(&body, rec, len, body_len, what, why, whylen);
	if (rc)
		return rc;
	if (body != body_len)
		return corrupt(why, whylen, "%s record has %zu bytes, expected %zu", what, len,
		               body_len + (get_u16(rec) == STORE_REC_VERSION ? STORE_REC_CRC_LEN : 0));
	return 0;
}

/* ---- bounds-checked cursor ---- */

typedef struct cursor {
	const uint8_t *p;
	size_t left;
	bool bad;
} cursor;

static const uint8_t *take(cursor *c, size_t n)
{
	if (c->bad || n > c->left) {
		c->bad = true;
		return NULL;
	}
	const uint8_t *p = c->p;
	c->p += n;
	c->left -= n;
	return p;
}

static uint8_t take_u8(cursor *c)
{
	const uint8_t *p = take(c, 1);
	return p ? p[0] : 0;
}

static uint16_t take_u16(cursor *c)
{
	const uint8_t *p = take(c, 2);
	return p ? get_u16(p) : 0;
}

static uint32_t take_u32(cursor *c)
{
	const uint8_t *p = take(c, 4);
	return p ? get_u32(p) : 0;
}

static uint64_t take_u64(cursor *c)
{
	const uint8_t *p = take(c, 8);
	return p ? get_u64(p) : 0;
}

/* ---- a growable output buffer ---- */

typedef struct outbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
} outbuf;

static uint8_t *grow(outbuf *o, size_t n)
{
	if (o->oom)
		return NULL;
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < o->len + n)
			cap *= 2;
		uint8_t *np = realloc(o->p, cap);
		if (!np) {
			o->oom = true;
			return NULL;
		}
		o->p = np;
		o->cap = cap;
	}
	uint8_t *at = o->p + o->len;
	o->len += n;
	return at;
}

static void out_u8(outbuf *o, uint8_t v)
{
	uint8_t *p = grow(o, 1);
	if (p)
		*p = v;
}

static void out_u16(outbuf *o, uint16_t v)
{
	uint8_t *p = grow(o, 2);
	if (p)
		put_u16(p, v);
}

static void out_u32(outbuf *o, uint32_t v)
{
	uint8_t *p = grow(o, 4);
	if (p)
		put_u32(p, v);
}

static void out_u64(outbuf *o, uint64_t v)
{
	uint8_t *p = grow(o, 8);
	if (p)
		put_u64(p, v);
}

static void out_bytes(outbuf *o, const void *b, size_t n)
{
	uint8_t *p = grow(o, n);
	if (p && n)
		memcpy(p, b, n);
}

/* Append the trailer and hand the record over. */
static int outbuf_finish(outbuf *o, uint8_t **out, size_t *out_len)
{
	if (!grow(o, STORE_REC_CRC_LEN)) {
		free(o->p);
		return -ENOMEM;
	}
	seal(o->p, o->len);
	*out = o->p;
	*out_len = o->len;
	return 0;
}

uint32_t store_nchunks(uint64_t nbytes, uint64_t chunk_size)
{
	if (nbytes == 0 || chunk_size == 0)
		return 0;
	uint64_t n = nbytes / chunk_size + (nbytes % chunk_size != 0);
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* Whether exactly @p nchunks chunks of @p chunk_size hold @p nbytes. store_nchunks saturates,
 * so a record claiming UINT32_MAX chunks for more bytes than that many hold is refused here:
 * readers index chunks with 32 bits. */
static bool chunks_cover(uint64_t nbytes, uint64_t chunk_size, uint32_t nchunks)
{
	if (nbytes == 0)
		return nchunks == 0;
	return chunk_size != 0 && (nbytes - 1) / chunk_size < UINT32_MAX &&
	       nchunks == store_nchunks(nbytes, chunk_size);
}

/* ---- run metadata ---- */

static const char *nz(const char *s)
{
	return s ? s : "";
}

size_t ckpt_utf8_sequence(const char *s)
{
	if (!s)
		return 0;
	const unsigned char *p = (const unsigned char *)s;
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;
	if (c < 0x80)
		return c ? 1 : 0;
	/* C0, C1 and F5..FF never lead; the second byte's range rules out the overlong forms
	 * (E0, F0), the surrogates (ED) and code points past U+10FFFF (F4) */
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0; /* also at the NUL */
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

bool ckpt_utf8_valid(const char *s)
{
	if (!s)
		return false;
	for (size_t n; *s; s += n)
		if (!(n = ckpt_utf8_sequence(s)))
			return false;
	return true;
}

int store_run_encode(uint8_t **out, size_t *out_len, const ckpt_run_meta *m)
{
	outbuf o = {0};
	const char *strs[6] = {nz(m->model),       nz(m->layers),  nz(m->optimizer),
	                       nz(m->hyperparams), nz(m->dataset), nz(m->monitor)};
	out_u16(&o, STORE_REC_VERSION);
	out_u8(&o, (uint8_t)m->monitor_mode);
	out_u8(&o, 0);
	out_u64(&o, m->seed);
	out_u64(&o, (uint64_t)m->created_ns);
	for (int i = 0; i < 6; i++) {
		size_t n = strlen(strs[i]);
		if (n > UINT32_MAX) {
			free(o.p);
			return -EINVAL;
		}
		out_u32(&o, (uint32_t)n);
		out_bytes(&o, strs[i], n);
	}
	return outbuf_finish(&o, out, out_len);
}

int store_run_decode(store_run_rec *out, const void *buf, size_t len, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	size_t body;
	int rc = unseal_versioned(&body, buf, len, 20, "run", why, whylen);
	if (rc)
		return rc;
	uint16_t version = get_u16(buf);
	cursor c = {buf, body, false};
	take_u16(&c);
	uint8_t mode = take_u8(&c);
	take_u8(&c);
	uint64_t seed = take_u64(&c);
	uint64_t created = take_u64(&c);
	if (c.bad)
		return corrupt(why, whylen, "run record truncated (%zu bytes)", len);
	if (mode > CKPT_MODE_MAX)
		return corrupt(why, whylen, "run record has bad monitor mode %u", mode);
	char *block = malloc(body + 6);
	if (!block)
		return -ENOMEM;
	char *strs[6];
	size_t used = 0;
	for (int i = 0; i < 6; i++) {
		uint32_t n = take_u32(&c);
		const uint8_t *p = take(&c, n);
		if (c.bad) {
			free(block);
			return corrupt(why, whylen, "run record string %d overruns the record", i);
		}
		if (memchr(p, 0, n)) {
			free(block);
			return corrupt(why, whylen, "run record string %d holds a NUL byte", i);
		}
		memcpy(block + used, p, n);
		block[used + n] = 0;
		strs[i] = block + used;
		used += n + 1;
	}
	if (c.left) {
		free(block);
		return corrupt(why, whylen, "run record has %zu trailing bytes", c.left);
	}
	out->model = strs[0];
	out->layers = strs[1];
	out->optimizer = strs[2];
	out->hyperparams = strs[3];
	out->dataset = strs[4];
	out->monitor = strs[5];
	out->seed = seed;
	out->mode = (ckpt_metric_mode)mode;
	out->created_ns = (int64_t)created;
	out->version = version;
	out->block = block;
	return 0;
}

void store_run_free(store_run_rec *r)
{
	if (!r)
		return;
	free(r->block);
	memset(r, 0, sizeof(*r));
}

/* ---- settings ---- */

void store_settings_encode(uint8_t out[STORE_SETTINGS_LEN], const store_settings_rec *s)
{
	put_u16(out, STORE_REC_VERSION);
	put_u16(out + 2, 0);
	put_u32(out + 4, s->keep_last);
	put_u32(out + 8, s->keep_top);
	put_u32(out + 12, 0);
	put_u64(out + 16, s->chunk_size);
	seal(out, STORE_SETTINGS_LEN);
}

int store_settings_decode(store_settings_rec *out, const void *buf, size_t len, char *why,
                          size_t whylen)
{
	const uint8_t *p = buf;
	int rc = unseal_fixed(p, len, SETTINGS_V1_LEN, "settings", why, whylen);
	if (rc)
		return rc;
	out->version = get_u16(p);
	out->keep_last = get_u32(p + 4);
	out->keep_top = get_u32(p + 8);
	out->chunk_size = get_u64(p + 16);
	if (out->chunk_size == 0 || out->chunk_size % 8 || out->chunk_size > (1ull << 30))
		return corrupt(why, whylen, "settings record has bad chunk size %llu",
		               (unsigned long long)out->chunk_size);
	return 0;
}

/* ---- index ---- */

void store_index_encode(uint8_t out[STORE_INDEX_LEN], const store_index_rec *r)
{
	put_u16(out, STORE_REC_VERSION);
	out[2] = r->has_monitor ? 1 : 0;
	out[3] = 0;
	put_u32(out + 4, r->ntensors);
	put_u64(out + 8, r->step);
	put_u64(out + 16, (uint64_t)r->time_ns);
	put_u64(out + 24, r->nbytes);
	put_f64(out + 32, r->has_monitor ? r->monitor : 0.0);
	seal(out, STORE_INDEX_LEN);
}

int store_index_decode(store_index_rec *out, const void *buf, size_t len, char *why, size_t whylen)
{
	const uint8_t *p = buf;
	int rc = unseal_fixed(p, len, INDEX_V1_LEN, "index", why, whylen);
	if (rc)
		return rc;
	out->version = get_u16(p);
	if (p[2] > 1)
		return corrupt(why, whylen, "index record has bad flags 0x%x", p[2]);
	out->has_monitor = p[2] == 1;
	out->ntensors = get_u32(p + 4);
	out->step = get_u64(p + 8);
	out->time_ns = (int64_t)get_u64(p + 16);
	out->nbytes = get_u64(p + 24);
	out->monitor = get_f64(p + 32);
	if (out->has_monitor && !isfinite(out->monitor))
		return corrupt(why, whylen, "index record has a non-finite monitored value");
	return 0;
}

/* ---- best epoch ---- */

void store_best_encode(uint8_t out[STORE_BEST_LEN], uint64_t epoch)
{
	put_u16(out, STORE_REC_VERSION);
	put_u16(out + 2, 0);
	put_u64(out + 4, epoch);
	seal(out, STORE_BEST_LEN);
}

int store_best_decode(store_best_rec *out, const void *buf, size_t len, char *why, size_t whylen)
{
	const uint8_t *p = buf;
	if (len == STORE_BEST_V1_LEN) { /* a bare u64le: written before records had trailers */
		out->epoch = get_u64(p);
		out->version = STORE_REC_VERSION_UNCHECKED;
		return 0;
	}
	/* version 1 had no best record of this layout: unseal_fixed must not take one */
	if (len >= 2 && get_u16(p) != STORE_REC_VERSION)
		return corrupt(why, whylen, "best record version %u unsupported", get_u16(p));
	int rc = unseal_fixed(p, len, STORE_BEST_LEN - STORE_REC_CRC_LEN, "best", why, whylen);
	if (rc)
		return rc;
	out->epoch = get_u64(p + 4);
	out->version = STORE_REC_VERSION;
	return 0;
}

/* ---- blobs ---- */

size_t store_blob_len(uint32_t nchunks)
{
	return STORE_BLOB_HEADER_LEN + 4 * (size_t)nchunks + STORE_REC_CRC_LEN;
}

void store_blob_encode(uint8_t *out, const store_blob_rec *b, const uint32_t *crcs)
{
	put_u16(out, STORE_REC_VERSION);
	put_u16(out + 2, 0);
	put_u32(out + 4, b->nchunks);
	put_u64(out + 8, b->refcount);
	put_u64(out + 16, b->nbytes);
	put_u64(out + 24, b->chunk_size);
	for (uint32_t i = 0; i < b->nchunks; i++)
		put_u32(out + STORE_BLOB_HEADER_LEN + 4 * (size_t)i, crcs[i]);
	seal(out, store_blob_len(b->nchunks));
}

int store_blob_decode(store_blob_rec *out, const void *buf, size_t len, char *why, size_t whylen)
{
	const uint8_t *p = buf;
	size_t body;
	int rc = unseal_versioned(&body, p, len, STORE_BLOB_HEADER_LEN, "blob", why, whylen);
	if (rc)
		return rc;
	if (body < STORE_BLOB_HEADER_LEN)
		return corrupt(why, whylen, "blob record truncated (%zu bytes)", len);
	len = body;
	out->version = get_u16(p);
	out->nchunks = get_u32(p + 4);
	out->refcount = get_u64(p + 8);
	out->nbytes = get_u64(p + 16);
	out->chunk_size = get_u64(p + 24);
	if ((len - STORE_BLOB_HEADER_LEN) / 4 != out->nchunks || (len - STORE_BLOB_HEADER_LEN) % 4)
		return corrupt(why, whylen, "blob record length %zu does not fit %u chunks", len,
		               out->nchunks);
	if (out->refcount == 0)
		return corrupt(why, whylen, "blob record has refcount 0");
	if (out->chunk_size == 0 || !chunks_cover(out->nbytes, out->chunk_size, out->nchunks))
		return corrupt(why, whylen, "blob record: %u chunks of %llu bytes for %llu bytes",
		               out->nchunks, (unsigned long long)out->chunk_size,
		               (unsigned long long)out->nbytes);
	out->crcs = p + STORE_BLOB_HEADER_LEN;
	return 0;
}

uint32_t store_blob_crc(const store_blob_rec *b, uint32_t i)
{
	return get_u32(b->crcs + 4 * (size_t)i);
}

void store_blob_set_refcount(uint8_t *rec, size_t len, uint64_t refcount)
{
	put_u64(rec + 8, refcount);
	if (get_u16(rec) == STORE_REC_VERSION)
		seal(rec, len);
}

/* ---- checkpoint record ---- */

int store_ckpt_encode(uint8_t **out, size_t *out_len, const store_ckpt_rec *rec)
{
	outbuf o = {0};
	if (rec->nmetrics > UINT32_MAX || rec->nextras > UINT32_MAX || rec->ntensors > UINT32_MAX)
		return -EINVAL;
	out_u32(&o, CKPT_REC_MAGIC);
	out_u16(&o, STORE_REC_VERSION);
	out_u16(&o, 0);
	out_u64(&o, rec->epoch);
	out_u64(&o, rec->step);
	out_u64(&o, (uint64_t)rec->time_ns);
	out_u32(&o, (uint32_t)rec->nmetrics);
	out_u32(&o, (uint32_t)rec->nextras);
	out_u32(&o, (uint32_t)rec->ntensors);
	out_u32(&o, 0);
	for (size_t i = 0; i < rec->nmetrics; i++) {
		size_t n = strlen(rec->metrics[i].name);
		if (n == 0 || n > UINT16_MAX)
			goto inval;
		out_u16(&o, (uint16_t)n);
		out_bytes(&o, rec->metrics[i].name, n);
		uint8_t *p = grow(&o, 8);
		if (p)
			put_f64(p, rec->metrics[i].value);
	}
	for (size_t i = 0; i < rec->nextras; i++) {
		size_t n = strlen(rec->extras[i].key);
		if (n == 0 || n > UINT16_MAX)
			goto inval;
		out_u16(&o, (uint16_t)n);
		out_bytes(&o, rec->extras[i].key, n);
		out_u64(&o, rec->extras[i].len);
		out_bytes(&o, rec->extras[i].data, rec->extras[i].len);
	}
	for (size_t i = 0; i < rec->ntensors; i++) {
		const ckpt_tensor_info *t = &rec->tensors[i];
		size_t n = strlen(t->name), d = strlen(t->device);
		if (n == 0 || n > CKPT_MAX_NAME || d == 0 || d > CKPT_MAX_DEVICE ||
		    t->ndim > CKPT_MAX_DIMS)
			goto inval;
		out_u16(&o, (uint16_t)n);
		out_bytes(&o, t->name, n);
		out_u8(&o, (uint8_t)t->group);
		out_u8(&o, (uint8_t)t->dtype);
		out_u8(&o, (uint8_t)t->ndim);
		out_u8(&o, (uint8_t)d);
		out_bytes(&o, t->device, d);
		for (uint32_t k = 0; k < t->ndim; k++)
			out_u64(&o, t->shape[k]);
		out_u64(&o, t->nbytes);
		out_u32(&o, t->crc32);
		out_bytes(&o, t->hash, 16);
		out_u64(&o, t->chunk_size);
		out_u32(&o, t->nchunks);
	}
	return outbuf_finish(&o, out, out_len);
inval:
	free(o.p);
	return -EINVAL;
}

/* copy n bytes into the arena as a NUL-terminated string */
static const char *arena_str(char **at, const uint8_t *p, size_t n)
{
	char *s = *at;
	memcpy(s, p, n);
	s[n] = 0;
	*at += n + 1;
	return s;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static int cmp_tensor_key(const void *a, const void *b)
{
	const ckpt_tensor_info *x = *(const ckpt_tensor_info *const *)a;
	const ckpt_tensor_info *y = *(const ckpt_tensor_info *const *)b;
	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The writer refuses a name given twice in one group; a record holding one anyway would show
 * two files of one name in a directory of the view. */
static int check_unique_names(const store_ckpt_rec *rec, char *why, size_t whylen)
{
	if (rec->ntensors < 2)
		return 0;
	const ckpt_tensor_info **v = malloc(rec->ntensors * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < rec->ntensors; i++)
		v[i] = &rec->tensors[i];
	qsort(v, rec->ntensors, sizeof(*v), cmp_tensor_key);
	int rc = 0;
	for (size_t i = 1; i < rec->ntensors && !rc; i++)
		if (cmp_tensor_key(&v[i - 1], &v[i]) == 0)
			rc = corrupt(why, whylen, "tensor name %s appears twice in group %d",
			             v[i]->name, (int)v[i]->group);
	free(v);
	return rc;
}

int store_ckpt_decode(store_ckpt_rec **out, const void *buf, size_t len, char *why, size_t whylen)
{
	*out = NULL;
	const uint8_t *p = buf;
	if (len < 6)
		return corrupt(why, whylen, "checkpoint record truncated (%zu bytes)", len);
	uint32_t magic = get_u32(p);
	uint16_t version = get_u16(p + 4);
	if (magic != CKPT_REC_MAGIC)
		return corrupt(why, whylen, "checkpoint record has a bad magic number 0x%08x",
		               magic);
	size_t sealed;
	int rc = unseal(&sealed, p, len, version, CKPT_REC_HEADER_LEN, "checkpoint", why, whylen);
	if (rc)
		return rc;
	cursor c = {p + 6, sealed - 6, false};
	take_u16(&c);
	uint64_t epoch = take_u64(&c), step = take_u64(&c), time_ns = take_u64(&c);
	uint32_t nmetrics = take_u32(&c), nextras = take_u32(&c), ntensors = take_u32(&c);
	take_u32(&c);
	if (c.bad)
		return corrupt(why, whylen, "checkpoint record truncated (%zu bytes)", len);
	/* each metric takes >= 11 bytes, each extra >= 11, each tensor >= 48: bound the counts
	 * by the record length before allocating anything */
	size_t body = c.left;
	if (nmetrics > body / 11 || nextras > body / 11 || ntensors > body / 48)
		return corrupt(why, whylen,
		               "checkpoint record counts (%u metrics, %u extras, "
		               "%u tensors) exceed its %zu bytes",
		               nmetrics, nextras, ntensors, len);
	size_t tables = align8(sizeof(store_ckpt_rec)) + align8(nmetrics * sizeof(store_metric)) +
	                align8(nextras * sizeof(store_extra)) +
	                align8(ntensors * sizeof(ckpt_tensor_info));
	/* strings and extra data are copied: at most body bytes plus one NUL per entry */
	size_t total = tables + body + nmetrics + 2 * (size_t)nextras + 2 * (size_t)ntensors + 8;
	char *arena = calloc(1, total);
	if (!arena)
		return -ENOMEM;
	store_ckpt_rec *rec = (store_ckpt_rec *)arena;
	size_t off = align8(sizeof(store_ckpt_rec));
	rec->metrics = (store_metric *)(arena + off);
	off += align8(nmetrics * sizeof(store_metric));
	rec->extras = (store_extra *)(arena + off);
	off += align8(nextras * sizeof(store_extra));
	rec->tensors = (ckpt_tensor_info *)(arena + off);
	off += align8(ntensors * sizeof(ckpt_tensor_info));
	char *at = arena + off;
	rec->arena = arena;
	rec->epoch = epoch;
	rec->step = step;
	rec->time_ns = (int64_t)time_ns;
	rec->nmetrics = nmetrics;
	rec->nextras = nextras;
	rec->ntensors = ntensors;
	rec->version = version;

	for (uint32_t i = 0; i < nmetrics; i++) {
		uint16_t n = take_u16(&c);
		const uint8_t *name = take(&c, n);
		const uint8_t *v = take(&c, 8);
		if (c.bad) {
			rc = corrupt(why, whylen, "metric %u overruns the checkpoint record", i);
			goto fail;
		}
		if (n == 0 || memchr(name, 0, n)) {
			rc = corrupt(why, whylen, "metric %u has an empty or NUL-holding name", i);
			goto fail;
		}
		rec->metrics[i].name = arena_str(&at, name, n);
		rec->metrics[i].value = get_f64(v);
	}
	for (uint32_t i = 0; i < nextras; i++) {
		uint16_t n = take_u16(&c);
		const uint8_t *key = take(&c, n);
		uint64_t dlen = take_u64(&c);
		if (c.bad || dlen > c.left) {
			rc = corrupt(why, whylen, "extra entry %u overruns the checkpoint record",
			             i);
			goto fail;
		}
		const uint8_t *data = take(&c, (size_t)dlen);
		if (n == 0 || memchr(key, 0, n)) {
			rc = corrupt(why, whylen, "extra entry %u has an empty or NUL-holding key",
			             i);
			goto fail;
		}
		rec->extras[i].key = arena_str(&at, key, n);
		/* keep a NUL after the data: JSON text can be used as a string */
		rec->extras[i].data = arena_str(&at, data, (size_t)dlen);
		rec->extras[i].len = (size_t)dlen;
	}
	uint64_t sum = 0;
	for (uint32_t i = 0; i < ntensors; i++) {
		ckpt_tensor_info *t = &rec->tensors[i];
		uint16_t n = take_u16(&c);
		const uint8_t *name = take(&c, n);
		uint8_t group = take_u8(&c), dtype = take_u8(&c), ndim = take_u8(&c),
		        devlen = take_u8(&c);
		const uint8_t *dev = take(&c, devlen);
		if (c.bad) {
			rc = corrupt(why, whylen, "tensor %u overruns the checkpoint record", i);
			goto fail;
		}
		if (n == 0 || n > CKPT_MAX_NAME || memchr(name, 0, n)) {
			rc = corrupt(why, whylen, "tensor %u has a bad name (length %u)", i, n);
			goto fail;
		}
		if (group > CKPT_GROUP_EXTRA || ckpt_dtype_itemsize((ckpt_dtype)dtype) == 0 ||
		    ndim > CKPT_MAX_DIMS || devlen == 0 || devlen > CKPT_MAX_DEVICE ||
		    memchr(dev, 0, devlen)) {
			rc = corrupt(why, whylen,
			             "tensor %u (%.*s) has a bad group, dtype, ndim or "
			             "device",
			             i, (int)n, (const char *)name);
			goto fail;
		}
		t->name = arena_str(&at, name, n);
		t->device = arena_str(&at, dev, devlen);
		t->group = (ckpt_tensor_group)group;
		t->dtype = (ckpt_dtype)dtype;
		t->ndim = ndim;
		for (uint32_t k = 0; k < ndim; k++)
			t->shape[k] = take_u64(&c);
		t->nbytes = take_u64(&c);
		t->crc32 = take_u32(&c);
		const uint8_t *hash = take(&c, 16);
		t->chunk_size = take_u64(&c);
		t->nchunks = take_u32(&c);
		t->index = i;
		if (c.bad) {
			rc = corrupt(why, whylen, "tensor %u (%s) overruns the checkpoint record",
			             i, t->name);
			goto fail;
		}
		memcpy(t->hash, hash, 16);
		uint64_t numel;
		if (ckpt_shape_numel(&numel, t->ndim, t->shape) != 0 ||
		    numel > UINT64_MAX / ckpt_dtype_itemsize(t->dtype) ||
		    numel * ckpt_dtype_itemsize(t->dtype) != t->nbytes) {
			rc = corrupt(why, whylen, "tensor %u (%s): shape does not match %llu bytes",
			             i, t->name, (unsigned long long)t->nbytes);
			goto fail;
		}
		if ((t->nbytes && t->chunk_size % 8) ||
		    !chunks_cover(t->nbytes, t->chunk_size, t->nchunks)) {
			rc = corrupt(why, whylen,
			             "tensor %u (%s): %u chunks of %llu bytes do not "
			             "cover %llu bytes",
			             i, t->name, t->nchunks, (unsigned long long)t->chunk_size,
			             (unsigned long long)t->nbytes);
			goto fail;
		}
		if (sum + t->nbytes < sum) {
			rc = corrupt(why, whylen, "tensor sizes overflow");
			goto fail;
		}
		sum += t->nbytes;
	}
	if (c.left) {
		rc = corrupt(why, whylen, "checkpoint record has %zu trailing bytes", c.left);
		goto fail;
	}
	if ((rc = check_unique_names(rec, why, whylen)))
		goto fail;
	rec->nbytes = sum;
	*out = rec;
	return 0;
fail:
	free(arena);
	return rc;
}

void store_ckpt_free(store_ckpt_rec *rec)
{
	if (rec)
		free(rec->arena);
}
