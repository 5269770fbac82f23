/* store/tensor.c - dtypes, shapes, devices and CRC-32 (include/ckpt/tensor.h)
 *
 * The dtype table is the single source of itemsizes and names; values are on-disk constants.
 */
#include <errno.h>
#include <string.h>
#include <zlib.h>

#include "ckpt/tensor.h"

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
	if (!name)
		return -EINVAL;
	for (size_t i = 0; i < NDTYPES; i++) {
		if (strcmp(dtypes[i].name, name) == 0) {
			*out = dtypes[i].dtype;
			return 0;
		}
	}
	return -EINVAL;
}

int ckpt_shape_numel(uint64_t *out, uint32_t ndim, const uint64_t *shape)
{
	if (ndim > CKPT_MAX_DIMS)
		return -EINVAL;
	uint64_t n = 1;
	bool zero = false;
	for (uint32_t i = 0; i < ndim; i++) {
		if (shape[i] == 0)
			zero = true;
		else if (n > UINT64_MAX / shape[i])
			return -EOVERFLOW;
		else
			n *= shape[i];
	}
	*out = zero ? 0 : n;
	return 0;
}

uint32_t ckpt_crc32(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;
	/* zlib takes uInt lengths: feed big buffers in pieces */
	while (len > 0) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = (uint32_t)crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return crc;
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
