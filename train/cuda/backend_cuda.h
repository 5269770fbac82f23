/* train/cuda/backend_cuda.h - the seam between ckpt-train and its CUDA plug-in
 *
 * The CUDA backend lives in a shared object, ckpt-train-cuda.so (built from
 * train/cuda/backend_cuda.cu by nvcc, linked against cudart and cuBLAS). ckpt-train loads it
 * with dlopen only when --device cuda[:N] is asked for, so the program starts and trains on
 * the CPU on machines without the CUDA runtime libraries, and the CPU-only build and its unit
 * tests never depend on CUDA objects.
 *
 * The plug-in exports two C symbols: the ABI version it was built for and the constructor.
 * Bump TRAIN_CUDA_PLUGIN_ABI whenever struct train_backend changes.
 */
#ifndef TRAIN_CUDA_BACKEND_CUDA_H
#define TRAIN_CUDA_BACKEND_CUDA_H

#include <stddef.h>

#include "train/backend.h"

#define TRAIN_CUDA_PLUGIN_ABI 2
#define TRAIN_CUDA_PLUGIN_NAME "ckpt-train-cuda.so"
#define TRAIN_CUDA_PLUGIN_ABI_SYMBOL "train_cuda_plugin_abi"
#define TRAIN_CUDA_PLUGIN_CREATE_SYMBOL "train_cuda_plugin_create"

#ifdef __cplusplus
extern "C" {
#endif

/** The TRAIN_CUDA_PLUGIN_ABI the plug-in was built with. */
typedef int (*train_cuda_plugin_abi_fn)(void);

/**
 * Create the backend on CUDA device @p index. On failure, writes one line (naming the device
 * and, for memory, the size) into @p msg.
 * @return 0, -ENODEV (no CUDA device, driver missing, index out of range), -ENOMEM (GPU or
 *         pinned memory), -EIO (another CUDA/cuBLAS failure).
 */
typedef int (*train_cuda_plugin_create_fn)(train_backend **out, int index, char *msg,
                                           size_t msglen);

#ifdef __cplusplus
}
#endif

#endif
