/* include/ckpt/tensor.h - tensor descriptions shared by the store, the engine and the view
 *
 * A tensor is a dtype, a shape (row-major, contiguous, little-endian) and the device it was
 * recorded on ("cpu", "cuda:0", ...). Byte length is always numel * itemsize.
 */
#ifndef CKPT_TENSOR_H
#define CKPT_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Element types; values are stored on disk, never renumber. */
typedef enum ckpt_dtype {
	CKPT_DTYPE_FLOAT32 = 1,
	CKPT_DTYPE_FLOAT64 = 2,
	CKPT_DTYPE_FLOAT16 = 3,
	CKPT_DTYPE_BFLOAT16 = 4,
	CKPT_DTYPE_INT64 = 5,
	CKPT_DTYPE_INT32 = 6,
	CKPT_DTYPE_INT16 = 7,
	CKPT_DTYPE_INT8 = 8,
	CKPT_DTYPE_UINT8 = 9,
	CKPT_DTYPE_BOOL = 10,
} ckpt_dtype;

/** Highest number of dimensions a stored tensor may have. */
#define CKPT_MAX_DIMS 8
/** Longest tensor name in bytes, excluding the terminating NUL. */
#define CKPT_MAX_NAME 1024
/** Longest device string in bytes ("cuda:15"), excluding the NUL. */
#define CKPT_MAX_DEVICE 31

/** Which part of the training state a tensor belongs to; stored on disk. */
typedef enum ckpt_tensor_group {
	CKPT_GROUP_MODEL = 0,     /**< a model parameter or buffer, e.g. "fc1.weight" */
	CKPT_GROUP_OPTIMIZER = 1, /**< optimizer state "<param>.<buffer>", e.g.
	                               "fc1.weight.momentum_buffer", "fc1.weight.exp_avg",
	                               "fc1.weight.step" (0-dim float32, as torch.optim) */
	CKPT_GROUP_EXTRA = 2,     /**< anything else the producer wants kept */
} ckpt_tensor_group;

/**
 * What the store knows about one stored tensor. Every pointer inside is borrowed from the
 * object it was obtained from (a checkpoint of a read snapshot) and valid as long as that is.
 */
typedef struct ckpt_tensor_info {
	const char *name;          /**< NUL-terminated name as given by the producer, bytes
	                                kept as they are: UTF-8 is expected but not checked (the
	                                mount's .pt and safetensors files refuse a name that is
	                                not UTF-8, the .npy files still serve it) */
	ckpt_tensor_group group;   /**< model, optimizer or extra */
	ckpt_dtype dtype;          /**< element type */
	uint32_t ndim;             /**< 0 for a scalar */
	uint64_t shape[CKPT_MAX_DIMS];
	const char *device;        /**< recorded source device: "cpu", "cuda:0", ... */
	uint64_t nbytes;           /**< numel * itemsize */
	uint32_t crc32;            /**< CRC-32 (zip polynomial) of all nbytes, computed at write */
	uint8_t hash[16];          /**< XXH3-128 of all nbytes (canonical big-endian form) */
	uint32_t index;            /**< position among the checkpoint's tensors (insertion order) */
	uint32_t nchunks;          /**< number of chunks the bytes are stored in */
	uint64_t chunk_size;       /**< bytes per chunk (the last may be shorter) */
} ckpt_tensor_info;

/** Bytes per element of @p dtype, or 0 if @p dtype is not a valid ckpt_dtype. */
size_t ckpt_dtype_itemsize(ckpt_dtype dtype);

/** Lower-case name of @p dtype ("float32", "bfloat16", "bool", ...) or NULL if invalid. */
const char *ckpt_dtype_name(ckpt_dtype dtype);

/**
 * Parse a dtype name as printed by ckpt_dtype_name().
 * @return 0, or -EINVAL if @p name is not a dtype name.
 */
int ckpt_dtype_from_name(ckpt_dtype *out, const char *name);

/**
 * Number of elements of a shape (1 for ndim 0).
 * @return 0, or -EOVERFLOW if the product does not fit in 64 bits, -EINVAL if ndim is too big.
 */
int ckpt_shape_numel(uint64_t *out, uint32_t ndim, const uint64_t *shape);

/** CRC-32 (zip/zlib polynomial) continued from @p crc over @p len bytes; start with 0. */
uint32_t ckpt_crc32(uint32_t crc, const void *data, size_t len);

/** True if @p device is "cpu" or "cuda" or "cuda:N" (N a decimal integer < 1000), as a store
 *  may hold it: leading zeros ("cuda:01") included, which earlier versions wrote and which
 *  torch.device refuses; ckpt_writer_put_tensor() refuses them now. */
bool ckpt_device_is_valid(const char *device);

#ifdef __cplusplus
}
#endif
#endif
