/* store/tensor.c - dtypes, shapes, devices and CRC-32 (include/ckpt/tensor.h)
 *
 * The dtype table is the single source of itemsizes and names; values are on-disk constants.
 * CRC-32 uses carry-less multiplication folding (Intel's "Fast CRC Computation for Generic
 * Polynomials Using PCLMULQDQ", the constants zlib/Chromium use) on x86-64 CPUs that have it,
 * several times faster than zlib's table code; zlib computes short inputs and tails, and is
 * the reference the unit tests compare against.
 */
#include <errno.h>
#include <string.h>
#include <zlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define STORE_HAVE_PCLMUL 1
#endif

#include "ckpt/tensor.h"
#include "store/store_int.h"

static const struct {
	ckpt_dtype dtype;
	size_t itemsize;
	const char *name;
} dtypes[] = {
    {CKPT_DTYPE_FLOAT32, 4, "float32"}, {CKPT_DTYPE_FLOAT64, 8, "float64"},
    {CKPT_DTYPE_FLOAT16, 2, "float16"}, {CKPT_DTYPE_BFLOAT16, 2, "bfloat16"},
    {CKPT_DTYPE_INT64, 8, "int64"},     {CKPT_DTYPE_INT32, 4, "int32"},
    {CKPT_DTYPE_INT16, 2, "int16"},     {CKPT_DTYPE_INT8, 1, "int8"},
    {CKPT_DTYPE_UINT8, 1, "uint8"},     {CKPT_DTYPE_BOOL, 1, "bool"},
};

#define NDTYPES (sizeof(dtypes) / sizeof(dtypes[0]))

size_t ckpt_dtype_itemsize(ckpt_dtype dtype)
{
	for (size_t i = 0; i < NDTYPES; i++)
		if (dtypes[i].dtype == dtype)
			return dtypes[i].itemsize;
	return 0;
}

const char *ckpt_dtype_name(ckpt_dtype dtype)
{
	for (size_t i = 0; i < NDTYPES; i++)
		if (dtypes[i].dtype == dtype)
			return dtypes[i].name;
	return NULL;
}

int ckpt_dtype_from_name(ckpt_dtype *out, const char *name)
{
	if (!out)
		return store_error(-EINVAL, "ckpt_dtype_from_name: out is NULL");
	if (!name)
		return store_error(-EINVAL, "no dtype name given");
	for (size_t i = 0; i < NDTYPES; i++) {
		if (strcmp(dtypes[i].name, name) == 0) {
			*out = dtypes[i].dtype;
			return 0;
		}
	}
	return store_error(-EINVAL, "'%s' is not a dtype name (bool, uint8, int8, int16, int32, "
	                   "int64, float16, bfloat16, float32, float64)", name);
}

int ckpt_shape_numel(uint64_t *out, uint32_t ndim, const uint64_t *shape)
{
	if (!out)
		return store_error(-EINVAL, "ckpt_shape_numel: out is NULL");
	if (ndim > CKPT_MAX_DIMS)
		return store_error(-EINVAL, "a shape of %u dimensions (at most %d)", ndim,
		                   CKPT_MAX_DIMS);
	if (ndim > 0 && !shape)
		return store_error(-EINVAL, "a shape of %u dimensions without its sizes", ndim);
	uint64_t n = 1;
	bool zero = false;
	for (uint32_t i = 0; i < ndim; i++) {
		if (shape[i] == 0)
			zero = true;
		else if (n > UINT64_MAX / shape[i])
			return store_error(-EOVERFLOW, "the shape's element count overflows 64 bits");
		else
			n *= shape[i];
	}
	*out = zero ? 0 : n;
	return 0;
}

static uint32_t crc32_zlib(uint32_t crc, const unsigned char *p, size_t len)
{
	/* zlib takes uInt lengths: feed big buffers in pieces */
	while (len > 0) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = (uint32_t)crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return crc;
}

#ifdef STORE_HAVE_PCLMUL
/* Folds @p len bytes (a multiple of 16, at least 64) into the bit-reflected, pre- and
 * post-inverted CRC state @p crc (the caller inverts). */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc32_fold_pclmul(const unsigned char *buf,
                                                                           size_t len, uint32_t crc)
{
	static const uint64_t k1k2[2] __attribute__((aligned(16))) = {0x0154442bd4, 0x01c6e41596};
	static const uint64_t k3k4[2] __attribute__((aligned(16))) = {0x01751997d0, 0x00ccaa009e};
	static const uint64_t k5k0[2] __attribute__((aligned(16))) = {0x0163cd6124, 0x0000000000};
	static const uint64_t poly[2] __attribute__((aligned(16))) = {0x01db710641, 0x01f7011641};
	__m128i x0, x1, x2, x3, x4, x5, x6, x7, x8, y5, y6, y7, y8;

	x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
	x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
	x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
	x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
	x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
	x0 = _mm_load_si128((const __m128i *)k1k2);
	buf += 64;
	len -= 64;
	while (len >= 64) { /* fold four 128-bit lanes in parallel */
		x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
		x6 = _mm_clmulepi64_si128(x2, x0, 0x00);
		x7 = _mm_clmulepi64_si128(x3, x0, 0x00);
		x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
		x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
		x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
		x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
		x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
		y5 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
		y6 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
		y7 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
		y8 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
		x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), y5);
		x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), y6);
		x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), y7);
		x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), y8);
		buf += 64;
		len -= 64;
	}
	/* fold the four lanes into one */
	x0 = _mm_load_si128((const __m128i *)k3k4);
	x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
	x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
	x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
	x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
	x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
	x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
	x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
	x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
	x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);
	while (len >= 16) {
		x2 = _mm_loadu_si128((const __m128i *)buf);
		x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
		x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
		x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
		buf += 16;
		len -= 16;
	}
	/* 128 -> 64 bits */
	x2 = _mm_clmulepi64_si128(x1, x0, 0x10);
	x3 = _mm_setr_epi32(~0, 0, ~0, 0);
	x1 = _mm_srli_si128(x1, 8);
	x1 = _mm_xor_si128(x1, x2);
	x0 = _mm_loadl_epi64((const __m128i *)k5k0);
	x2 = _mm_srli_si128(x1, 4);
	x1 = _mm_and_si128(x1, x3);
	x1 = _mm_clmulepi64_si128(x1, x0, 0x00);
	x1 = _mm_xor_si128(x1, x2);
	/* Barrett reduction to 32 bits */
	x0 = _mm_load_si128((const __m128i *)poly);
	x2 = _mm_and_si128(x1, x3);
	x2 = _mm_clmulepi64_si128(x2, x0, 0x10);
	x2 = _mm_and_si128(x2, x3);
	x2 = _mm_clmulepi64_si128(x2, x0, 0x00);
	x1 = _mm_xor_si128(x1, x2);
	return (uint32_t)_mm_extract_epi32(x1, 1);
}

static int have_pclmul = -1;
#endif

uint32_t ckpt_crc32(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;
#ifdef STORE_HAVE_PCLMUL
	if (len >= 64) {
		int have = __atomic_load_n(&have_pclmul, __ATOMIC_RELAXED);
		if (have < 0) {
			__builtin_cpu_init();
			have = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
			__atomic_store_n(&have_pclmul, have, __ATOMIC_RELAXED);
		}
		if (have) {
			size_t n = len & ~(size_t)15;
			crc = ~crc32_fold_pclmul(p, n, ~crc);
			p += n;
			len -= n;
		}
	}
#endif
	return crc32_zlib(crc, p, len);
}

bool ckpt_device_is_valid(const char *device)
{
	if (!device)
		return false;
	if (strcmp(device, "cpu") == 0 || strcmp(device, "cuda") == 0)
		return true;
	if (strncmp(device, "cuda:", 5) != 0)
		return false;
	const char *d = device + 5;
	size_t n = strlen(d);
	if (n == 0 || n > 3)
		return false;
	for (size_t i = 0; i < n; i++)
		if (d[i] < '0' || d[i] > '9')
			return false;
	return true;
}
