/* fs/render_npy.c - .npy v1.0 layout of one stored tensor (FORMATS.md "npy")
 *
 * Header: magic, version 1.0, u16le header length, then the ASCII dict with exactly the keys
 * descr, fortran_order and shape, space padded and ending in '\n' so that the data starts at a
 * multiple of 64. bfloat16 has no numpy dtype: it is widened to '<f4' (exact), so the data part
 * is twice the stored bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fs/render.h"

static const char *npy_descr(ckpt_dtype dtype)
{
	switch (dtype) {
	case CKPT_DTYPE_FLOAT32:
	case CKPT_DTYPE_BFLOAT16: /* widened */
		return "<f4";
	case CKPT_DTYPE_FLOAT64:
		return "<f8";
	case CKPT_DTYPE_FLOAT16:
		return "<f2";
	case CKPT_DTYPE_INT64:
		return "<i8";
	case CKPT_DTYPE_INT32:
		return "<i4";
	case CKPT_DTYPE_INT16:
		return "<i2";
	case CKPT_DTYPE_INT8:
		return "|i1";
	case CKPT_DTYPE_UINT8:
		return "|u1";
	case CKPT_DTYPE_BOOL:
		return "|b1";
	}
	return NULL;
}

int render_npy(view_layout *out, const ckpt_tensor_info *t)
{
	const char *descr = npy_descr(t->dtype);
	if (!descr || t->ndim > CKPT_MAX_DIMS)
		return -EINVAL;
	/* 10 bytes of preamble + dict; CKPT_MAX_DIMS * 22 digits fits easily */
	char header[512];
	size_t n = 10;
	int w = snprintf(header + n, sizeof(header) - n,
	                 "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
	if (w < 0)
		return -EINVAL;
	n += (size_t)w;
	for (uint32_t d = 0; d < t->ndim; d++) {
		w = snprintf(header + n, sizeof(header) - n, d ? ", %" PRIu64 : "%" PRIu64,
		             t->shape[d]);
		if (w < 0)
			return -EINVAL;
		n += (size_t)w;
	}
	w = snprintf(header + n, sizeof(header) - n, "%s), }", t->ndim == 1 ? "," : "");
	if (w < 0)
		return -EINVAL;
	n += (size_t)w;
	size_t total = (n + 1 + 63) / 64 * 64; /* + '\n' */
	if (total > sizeof(header))
		return -EINVAL;
	memset(header + n, ' ', total - n - 1);
	header[total - 1] = '\n';
	memcpy(header, "\x93NUMPY\x01\x00", 8);
	header[8] = (char)((total - 10) & 0xff);
	header[9] = (char)((total - 10) >> 8);
	int rc = view_layout_add_bytes(out, header, total);
	if (rc)
		return rc;
	return view_layout_add_tensor(out, t, t->dtype == CKPT_DTYPE_BFLOAT16);
}
