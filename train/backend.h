/* train/backend.h - the compute seam of the engine: one ops table per device
 *
 * The model and the optimizers only ever call these ops; buffers ("device pointers") come from
 * the backend's alloc and are touched on the host only through upload/download. The CPU
 * backend (train/backend_cpu.c) runs GEMMs on CBLAS and everything else in plain loops; a
 * CUDA backend implements the same table with cuBLAS and kernels.
 *
 * Determinism: every op must give bit-identical results for identical inputs and the same
 * thread count (reductions in a fixed order), which bit-exact resume relies on.
 */
#ifndef TRAIN_BACKEND_H
#define TRAIN_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Hyper-parameters of one SGD step, as torch.optim.SGD has them. */
typedef struct train_sgd_params {
	double lr, momentum, dampening, weight_decay;
	bool nesterov;
} train_sgd_params;

/** Hyper-parameters of one Adam/AdamW step; the bias corrections are computed by the caller
 *  in double, as torch 1.13 does on the host (step_size = lr / (1 - beta1^step)). */
typedef struct train_adam_params {
	double lr, beta1, beta2, eps, weight_decay;
	bool decoupled;               /**< AdamW: decay the parameter, not the gradient */
	double step_size;             /**< lr / (1 - beta1^step) */
	double bias_correction2_sqrt; /**< sqrt(1 - beta2^step) */
} train_adam_params;

typedef struct train_backend train_backend;

struct train_backend {
	const char *name;   /**< "cpu" */
	const char *device; /**< device string recorded with tensors: "cpu", "cuda:0" */
	void *priv;

	/** Zero-filled buffer of @p numel floats (or int32 when used for labels); NULL on ENOMEM.
	 */
	void *(*alloc)(train_backend *be, size_t nbytes);
	void (*free)(train_backend *be, void *buf);
	void (*upload)(train_backend *be, void *dst, const void *src_host, size_t nbytes);
	void (*download)(train_backend *be, void *dst_host, const void *src, size_t nbytes);
	/** Wait for queued work (no-op on the CPU). */
	void (*sync)(train_backend *be);

	/** Make host data (the data set) readable by the gather ops for the whole run: the CPU
	 *  returns @p host itself, a GPU copies it once. Release with unmap_host. NULL on ENOMEM.
	 */
	const void *(*map_host)(train_backend *be, const void *host, size_t nbytes);
	void (*unmap_host)(train_backend *be, const void *mapped);

	/** dst rows i = src row idx[i] (a batch gathered from the resident data set). */
	void (*gather_rows)(train_backend *be, float *dst, const float *src, const uint32_t *idx,
	                    uint32_t rows, uint32_t cols);
	void (*gather_labels)(train_backend *be, int32_t *dst, const int32_t *src,
	                      const uint32_t *idx, uint32_t rows);
	/** Row-major C[m,n] = alpha * op(A) op(B) + beta * C. */
	void (*gemm)(train_backend *be, bool trans_a, bool trans_b, int m, int n, int k,
	             float alpha, const float *a, int lda, const float *b, int ldb, float beta,
	             float *c, int ldc);
	/** z[r,:] += bias, then ReLU if @p relu. */
	void (*bias_act)(train_backend *be, float *z, const float *bias, int rows, int cols,
	                 bool relu);
	/** dz[i] = 0 where a[i] <= 0 (a is the ReLU output). */
	void (*relu_backward)(train_backend *be, float *dz, const float *a, size_t n);
	/** db[c] = sum over rows of dz[r,c], rows summed in order. */
	void (*bias_grad)(train_backend *be, float *db, const float *dz, int rows, int cols);
	/**
	 * Mean cross-entropy over @p rows of logits via a stable log-softmax. Writes
	 * d(loss)/d(logits) into @p dlogits (may be NULL for evaluation); adds the loss sum to
	 * *loss_sum and the number of argmax hits to *correct.
	 */
	void (*softmax_xent)(train_backend *be, float *dlogits, const float *logits,
	                     const int32_t *labels, int rows, int cols, double *loss_sum,
	                     uint64_t *correct);
	/** One torch.optim.SGD step on one parameter; @p buf NULL without momentum. @p first:
	 *  the momentum buffer does not exist yet (torch clones the gradient into it). */
	void (*sgd_step)(train_backend *be, float *param, const float *grad, float *buf, size_t n,
	                 const train_sgd_params *p, bool first);
	/** One torch.optim.Adam/AdamW step on one parameter. */
	void (*adam_step)(train_backend *be, float *param, const float *grad, float *exp_avg,
	                  float *exp_avg_sq, size_t n, const train_adam_params *p);
	void (*destroy)(train_backend *be);

	/* ---- checkpoint staging: snapshot (device -> host) then persist on another thread ----
	 * Two staging slots (0, 1) exist so a snapshot can be taken while the other slot is still
	 * being persisted. */
	/** Host memory for staging a checkpoint (pinned on CUDA, so copies run asynchronously);
	 *  NULL on ENOMEM. Release with host_free. */
	void *(*host_alloc)(train_backend *be, size_t nbytes);
	void (*host_free)(train_backend *be, void *host);
	/** Start a snapshot into @p slot: the copies below see every op queued so far. */
	void (*snapshot_begin)(train_backend *be, int slot);
	/** Queue a copy of @p nbytes device bytes into host staging memory (CPU: memcpy). */
	void (*snapshot_copy)(train_backend *be, int slot, void *dst_host, const void *src,
	                      size_t nbytes);
	/** End the snapshot: ops queued after this call wait for the copies (never the host). */
	void (*snapshot_end)(train_backend *be, int slot);
	/** Block until the copies of @p slot have landed; callable from another thread.
	 *  @return 0, or -EIO with one line (naming the device) in @p msg: the copies failed. */
	int (*snapshot_wait)(train_backend *be, int slot, char *msg, size_t msglen);
	/** One line on the last failure inside the backend (e.g. which allocation of how many
	 *  bytes failed on which device); "" if none. */
	const char *(*last_error)(train_backend *be);

	/** Device memory, for the check made before anything large is allocated: free and total
	 *  bytes. @return 0, or -ENOTSUP when the buffers live in host memory (the CPU). */
	int (*memory)(train_backend *be, uint64_t *free_bytes, uint64_t *total_bytes);
	/** Allocate the per-batch buffers for batches of up to @p rows rows now, so that running
	 *  out of device memory is found before the store is created. @return 0 or -ENOMEM
	 *  (last_error names the device and the size). */
	int (*reserve_rows)(train_backend *be, uint32_t rows);
	/** The ops return nothing: a device failure (a lost GPU, a faulting kernel) is recorded
	 *  and later ops do nothing. The engine asks once per batch and after each step that
	 *  launches work. @return 0, or -EIO with last_error naming the device and the call. */
	int (*status)(train_backend *be);
};

/**
 * Create the backend for @p device ("cpu", "cuda", "cuda:N"). @p threads: BLAS threads (fixed,
 * for determinism); 0 means the number of online CPUs. CUDA devices are served by the plug-in
 * ckpt-train-cuda.so (train/cuda/), loaded at run time (train/backend_cuda_loader.c).
 * @return 0, -EINVAL for a malformed device name, -ENODEV for no such device or a build
 *         without CUDA, -ENOMEM.
 */
int train_backend_create(train_backend **out, const char *device, int threads);

/**
 * OpenBLAS 0.3.21 does not recognize some newer x86 CPUs and falls back to its generic
 * "Prescott" kernels (2-5x slower). If that happened and the CPU has AVX2/AVX-512 (with OS
 * support), return the OpenBLAS core type to ask for via OPENBLAS_CORETYPE ("Haswell",
 * "SkylakeX"); NULL if the detected core is fine or OPENBLAS_CORETYPE is already set.
 * OpenBLAS reads that variable only when it is loaded, so the caller re-executes itself.
 */
const char *train_cpu_blas_better_core(void);

/** Name of the OpenBLAS kernel set in use ("Haswell", "Prescott", ...). */
const char *train_cpu_blas_core(void);

/**
 * Parse "cuda" (index 0) or "cuda:N" into @p out_index.
 * @return 0, or -EINVAL (message set) for anything else.
 */
int train_cuda_parse_device(int *out_index, const char *device);

/**
 * Create the CUDA backend for @p device by loading the plug-in (train_backend_create calls
 * this for "cuda..." devices).
 * @return 0, -EINVAL (malformed name), -ENODEV (plug-in or CUDA runtime missing, no CUDA
 *         device, index out of range), -ENOMEM; the message names the device.
 */
int train_cuda_backend_create(train_backend **out, const char *device);

/** Destroy a backend; accepts NULL. */
void train_backend_destroy(train_backend *be);

#endif
