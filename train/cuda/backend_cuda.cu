/* train/cuda/backend_cuda.cu - the CUDA backend: cuBLAS GEMMs, kernels for everything else
 *
 * Built by nvcc into the plug-in ckpt-train-cuda.so (train/cuda/backend_cuda.h says why a
 * plug-in). All training work runs in order on one compute stream. A checkpoint snapshot
 * copies the parameters and optimizer state device to device into a shadow buffer on the
 * compute stream (a fraction of a millisecond), then from the shadow into pinned host staging
 * memory on a second (copy) stream while the next epoch trains; events fence the copies so
 * they see the finished epoch and the shadow is not refilled before it has been read. Nothing
 * waits on the host but the persist thread. Without room for the shadow the copy stream reads
 * the live buffers and the next epoch's updates wait for it on the device.
 *
 * Numerics follow train/backend_cpu.c op for op: float32 element-wise math with FMA
 * contraction off (nvcc -fmad=false), IEEE sqrt and division, log-softmax in double, column
 * sums over rows in row order, loss and hit counts summed on the host in row order. Only the
 * GEMMs differ in summation order from OpenBLAS, so a cuda run agrees with a cpu run from the
 * same seed to float tolerance, and is bit-reproducible on the same GPU and build.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "train/cuda/backend_cuda.h"
#include "train/optim_elem.h"
#include "train/xent_row.h"

namespace {

struct cuda_priv {
	int index;
	char device[16];
	char error[512];
	cudaStream_t compute, copy;
	cudaEvent_t ready[2], copied[2];
	cublasHandle_t blas;
	uint32_t *idx;        /* the batch's sample indices, uploaded per batch */
	size_t idx_cap;       /* entries */
	const uint32_t *idx_host;
	uint32_t idx_rows;
	double *row_loss;     /* per-row loss of softmax_xent */
	int *row_hit;
	double *host_loss;    /* pinned mirrors */
	int *host_hit;
	size_t rows_cap;      /* rows of row_loss/row_hit/host_*, all allocated by reserve_rows */
	bool failed;          /* a CUDA call failed: error[] says which; later ops do nothing */
	/* Checkpoint snapshots go device -> shadow (device to device, on the compute stream,
	 * fast) -> pinned staging (on the copy stream, while the next epoch trains), so the
	 * next epoch's updates wait only for the device-to-device copies. Without a shadow (no
	 * room on the GPU, or CKPT_TRAIN_CUDA_SNAPSHOT=direct) the copy stream reads the live
	 * buffers and the compute stream waits for those copies instead. */
	bool direct;          /* CKPT_TRAIN_CUDA_SNAPSHOT=direct */
	bool shadow_tried;
	char *shadow;
	size_t shadow_cap, shadow_want, shadow_used; /* bytes; want: the largest staging buffer */
	int shadow_slot;                             /* slot whose copies last read the shadow */
	bool snap_shadow;                            /* this snapshot goes through the shadow */
	bool snap_direct;                            /* ... and read live buffers directly */
	struct pending_copy {
		void *dst_host;
		size_t off, nbytes;
	} *pending; /* device-to-host copies out of the shadow, queued at snapshot_end */
	size_t npending, pending_cap;
};

cuda_priv *priv_of(train_backend *be)
{
	return static_cast<cuda_priv *>(be->priv);
}

/* A CUDA failure in the middle of training (a lost device, a kernel fault) cannot be
 * reported through the ops' void returns: the first one is recorded (what, where, why), every
 * later op does nothing, and the engine, which asks status() once per batch and after each
 * step that launches work, stops through its ordinary error path: the commit in flight is
 * waited for, and a store this run created without committing an epoch is removed. */
void fail_with(cuda_priv *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fail_with(cuda_priv *p, const char *fmt, ...)
{
	if (p->failed)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
	p->failed = true;
}

void fatal(cuda_priv *p, const char *what, cudaError_t e)
{
	fail_with(p, "CUDA %s failed on %s (%s)", what, p->device, cudaGetErrorString(e));
}

bool check(cuda_priv *p, const char *what, cudaError_t e)
{
	if (e != cudaSuccess)
		fatal(p, what, e);
	return e == cudaSuccess;
}

void check_launch(cuda_priv *p, const char *kernel)
{
	cudaError_t e = cudaGetLastError();
	if (e != cudaSuccess)
		fatal(p, kernel, e);
}

unsigned blocks_for(size_t n)
{
	size_t b = (n + 255) / 256;
	if (b == 0)
		b = 1;
	return b > 65535 ? 65535u : (unsigned)b;
}

/* ---- kernels --------------------------------------------------------------------------- */

__global__ void k_gather_rows(float *dst, const float *src, const uint32_t *idx, uint32_t rows,
                              uint32_t cols)
{
	size_t n = (size_t)rows * cols;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		size_t r = i / cols, c = i % cols;
		dst[i] = src[(size_t)idx[r] * cols + c];
	}
}

__global__ void k_gather_labels(int32_t *dst, const int32_t *src, const uint32_t *idx,
                                uint32_t rows)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows;
	     i += (size_t)gridDim.x * blockDim.x)
		dst[i] = src[idx[i]];
}

__global__ void k_bias_act(float *z, const float *bias, int rows, int cols, bool relu)
{
	size_t n = (size_t)rows * cols;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float v = z[i] + bias[i % cols];
		z[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
	}
}

__global__ void k_relu_backward(float *dz, const float *a, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		dz[i] = a[i] > 0.0f ? dz[i] : 0.0f;
}

/* one thread per column, rows summed in order: the CPU's order, bit for bit */
__global__ void k_bias_grad(float *db, const float *dz, int rows, int cols)
{
	for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
		float s = 0.0f;
		for (int r = 0; r < rows; r++)
			s += dz[(size_t)r * cols + c];
		db[c] = s;
	}
}

__global__ void k_softmax_xent(float *dlogits, const float *logits, const int32_t *labels,
                               int rows, int cols, double *row_loss, int *row_hit)
{
	float inv_rows = 1.0f / (float)rows;
	for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x)
		row_loss[r] = train_xent_row(dlogits ? dlogits + (size_t)r * cols : NULL,
		                             logits + (size_t)r * cols, labels[r], cols, inv_rows,
		                             &row_hit[r]);
}

__global__ void k_sgd(float *param, const float *grad, float *buf, size_t n, train_sgd_k k,
                      bool first)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float d = train_sgd_dir(grad[i], param[i], &k);
		if (!buf) {
			param[i] = train_sgd_plain(param[i], d, &k);
		} else if (first) {
			buf[i] = d;
			param[i] = train_sgd_apply(param[i], d, d, &k);
		} else {
			float b = train_sgd_buf(buf[i], d, &k);
			buf[i] = b;
			param[i] = train_sgd_apply(param[i], d, b, &k);
		}
	}
}

__global__ void k_adam(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                       size_t n, train_adam_k k)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		train_adam_elem(&param[i], grad[i], &exp_avg[i], &exp_avg_sq[i], &k);
}

/* ---- ops ------------------------------------------------------------------------------- */

/* A failed cudaMalloc: the device, the size, and the device's free and total memory. */
void note_oom(cuda_priv *p, const char *what, size_t nbytes, cudaError_t e)
{
	size_t free_b = 0, total_b = 0;
	cudaGetLastError(); /* clear the sticky-free allocation error */
	if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
		cudaGetLastError();
		free_b = total_b = 0;
	}
	snprintf(p->error, sizeof(p->error),
	         "out of GPU memory on %s: cannot allocate %zu bytes for %s (%.1f MiB; %.1f MiB "
	         "free of %.1f MiB; %s)",
	         p->device, nbytes, what, nbytes / 1048576.0, free_b / 1048576.0,
	         total_b / 1048576.0, cudaGetErrorString(e));
}

/* A failed cudaHostAlloc: host memory, page-locked for the copies from the device. */
void note_host_oom(cuda_priv *p, const char *what, size_t nbytes, cudaError_t e)
{
	cudaGetLastError();
	snprintf(p->error, sizeof(p->error),
	         "out of pinned host memory: cannot page-lock %zu bytes (%.1f MiB) of host memory "
	         "for %s of %s (%s)",
	         nbytes, nbytes / 1048576.0, what, p->device, cudaGetErrorString(e));
}

void *cu_alloc(train_backend *be, size_t nbytes)
{
	cuda_priv *p = priv_of(be);
	void *ptr = NULL;
	if (p->failed)
		return NULL;
	if (nbytes == 0)
		nbytes = 64;
	cudaError_t e = cudaMalloc(&ptr, nbytes);
	if (e != cudaSuccess) {
		note_oom(p, "a model buffer", nbytes, e);
		return NULL;
	}
	if (!check(p, "cudaMemsetAsync", cudaMemsetAsync(ptr, 0, nbytes, p->compute)) ||
	    !check(p, "cudaStreamSynchronize", cudaStreamSynchronize(p->compute))) {
		cudaFree(ptr);
		return NULL;
	}
	return ptr;
}

/* Wait for both streams: a buffer (device or pinned) may be freed on an error path while a
 * kernel or a snapshot copy still reads or writes it, and whether cudaFree/cudaFreeHost wait
 * for a non-blocking stream is not something to rely on. */
void quiesce(cuda_priv *p)
{
	check(p, "cudaStreamSynchronize", cudaStreamSynchronize(p->compute));
	check(p, "cudaStreamSynchronize", cudaStreamSynchronize(p->copy));
}

void cu_free(train_backend *be, void *buf)
{
	if (buf) {
		quiesce(priv_of(be));
		cudaFree(buf);
	}
}

void cu_upload(train_backend *be, void *dst, const void *src_host, size_t nbytes)
{
	cuda_priv *p = priv_of(be);
	if (!nbytes || p->failed)
		return;
	check(p, "upload", cudaMemcpyAsync(dst, src_host, nbytes, cudaMemcpyHostToDevice,
	                                   p->compute));
	check(p, "cudaStreamSynchronize", cudaStreamSynchronize(p->compute));
}

void cu_download(train_backend *be, void *dst_host, const void *src, size_t nbytes)
{
	cuda_priv *p = priv_of(be);
	if (!nbytes)
		return;
	if (p->failed) {
		memset(dst_host, 0, nbytes);
		return;
	}
	check(p, "download", cudaMemcpyAsync(dst_host, src, nbytes, cudaMemcpyDeviceToHost,
	                                     p->compute));
	check(p, "cudaStreamSynchronize", cudaStreamSynchronize(p->compute));
}

void cu_sync(train_backend *be)
{
	cuda_priv *p = priv_of(be);
	if (!p->failed)
		check(p, "cudaStreamSynchronize", cudaStreamSynchronize(p->compute));
}

const void *cu_map_host(train_backend *be, const void *host, size_t nbytes)
{
	void *dev = cu_alloc(be, nbytes);
	if (dev)
		cu_upload(be, dev, host, nbytes);
	return dev;
}

void cu_unmap_host(train_backend *be, const void *mapped)
{
	cu_free(be, const_cast<void *>(mapped));
}

/* The indices live on the host (the shuffled permutation): upload them once per batch,
 * for gather_rows and the gather_labels that follows it. NULL once failed. */
const uint32_t *batch_indices(cuda_priv *p, const uint32_t *idx, uint32_t rows, bool reuse)
{
	if (p->failed)
		return NULL;
	if (reuse && p->idx_host == idx && p->idx_rows == rows) {
		p->idx_host = NULL;
		return p->idx;
	}
	if (rows > p->idx_cap) { /* reserve_rows sized it for the largest batch */
		fail_with(p, "internal error on %s: a batch of %u rows, beyond the %zu reserved",
		          p->device, rows, p->idx_cap);
		return NULL;
	}
	/* the host indices are pageable: the copy is done (staged) when the call returns */
	if (!check(p, "upload (batch indices)",
	           cudaMemcpyAsync(p->idx, idx, rows * sizeof(uint32_t), cudaMemcpyHostToDevice,
	                           p->compute)))
		return NULL;
	p->idx_host = reuse ? NULL : idx;
	p->idx_rows = rows;
	return p->idx;
}

void cu_gather_rows(train_backend *be, float *dst, const float *src, const uint32_t *idx,
                    uint32_t rows, uint32_t cols)
{
	cuda_priv *p = priv_of(be);
	const uint32_t *d_idx = batch_indices(p, idx, rows, false);
	if (!d_idx)
		return;
	k_gather_rows<<<blocks_for((size_t)rows * cols), 256, 0, p->compute>>>(dst, src, d_idx,
	                                                                        rows, cols);
	check_launch(p, "gather_rows");
}

void cu_gather_labels(train_backend *be, int32_t *dst, const int32_t *src, const uint32_t *idx,
                      uint32_t rows)
{
	cuda_priv *p = priv_of(be);
	const uint32_t *d_idx = batch_indices(p, idx, rows, true);
	if (!d_idx)
		return;
	k_gather_labels<<<blocks_for(rows), 256, 0, p->compute>>>(dst, src, d_idx, rows);
	check_launch(p, "gather_labels");
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands. */
void cu_gemm(train_backend *be, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
             const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	cuda_priv *p = priv_of(be);
	if (p->failed)
		return;
	cublasStatus_t st =
	    cublasSgemm(p->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
	                trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, a, lda, &beta,
	                c, ldc);
	if (st != CUBLAS_STATUS_SUCCESS)
		fail_with(p, "cublasSgemm failed on %s (%s)", p->device, cublasGetStatusString(st));
}

void cu_bias_act(train_backend *be, float *z, const float *bias, int rows, int cols, bool relu)
{
	cuda_priv *p = priv_of(be);
	if (p->failed)
		return;
	k_bias_act<<<blocks_for((size_t)rows * cols), 256, 0, p->compute>>>(z, bias, rows, cols,
	                                                                     relu);
	check_launch(p, "bias_act");
}

void cu_relu_backward(train_backend *be, float *dz, const float *a, size_t n)
{
	cuda_priv *p = priv_of(be);
	if (p->failed)
		return;
	k_relu_backward<<<blocks_for(n), 256, 0, p->compute>>>(dz, a, n);
	check_launch(p, "relu_backward");
}

void cu_bias_grad(train_backend *be, float *db, const float *dz, int rows, int cols)
{
	cuda_priv *p = priv_of(be);
	if (p->failed)
		return;
	k_bias_grad<<<(unsigned)((cols + 127) / 128), 128, 0, p->compute>>>(db, dz, rows, cols);
	check_launch(p, "bias_grad");
}

void cu_softmax_xent(train_backend *be, float *dlogits, const float *logits,
                     const int32_t *labels, int rows, int cols, double *loss_sum,
                     uint64_t *correct)
{
	cuda_priv *p = priv_of(be);
	if (p->failed)
		return;
	if ((size_t)rows > p->rows_cap) { /* reserve_rows sized them for the largest batch */
		fail_with(p, "internal error on %s: a batch of %d rows, beyond the %zu reserved",
		          p->device, rows, p->rows_cap);
		return;
	}
	k_softmax_xent<<<blocks_for((size_t)rows), 256, 0, p->compute>>>(
	    dlogits, logits, labels, rows, cols, p->row_loss, p->row_hit);
	check_launch(p, "softmax_xent");
	check(p, "download (loss)",
	      cudaMemcpyAsync(p->host_loss, p->row_loss, rows * sizeof(double),
	                      cudaMemcpyDeviceToHost, p->compute));
	check(p, "download (hits)",
	      cudaMemcpyAsync(p->host_hit, p->row_hit, rows * sizeof(int), cudaMemcpyDeviceToHost,
	                      p->compute));
	if (!check(p, "cudaStreamSynchronize", cudaStreamSynchronize(p->compute)))
		return; /* no loss: status() stops the run before it is read */
	double total = 0.0;
	uint64_t hits = 0;
	for (int r = 0; r < rows; r++) {
		total += p->host_loss[r];
		hits += (uint64_t)p->host_hit[r];
	}
	*loss_sum += total;
	*correct += hits;
}

void cu_sgd_step(train_backend *be, float *param, const float *grad, float *buf, size_t n,
                 const train_sgd_params *sp, bool first)
{
	cuda_priv *p = priv_of(be);
	if (p->failed)
		return;
	k_sgd<<<blocks_for(n), 256, 0, p->compute>>>(param, grad, buf, n, train_sgd_k_of(sp),
	                                               first);
	check_launch(p, "sgd_step");
}

void cu_adam_step(train_backend *be, float *param, const float *grad, float *exp_avg,
                  float *exp_avg_sq, size_t n, const train_adam_params *ap)
{
	cuda_priv *p = priv_of(be);
	if (p->failed)
		return;
	k_adam<<<blocks_for(n), 256, 0, p->compute>>>(param, grad, exp_avg, exp_avg_sq, n,
	                                                train_adam_k_of(ap));
	check_launch(p, "adam_step");
}

void *cu_host_alloc(train_backend *be, size_t nbytes)
{
	cuda_priv *p = priv_of(be);
	void *ptr = NULL;
	if (nbytes == 0)
		nbytes = 64;
	cudaError_t e = cudaHostAlloc(&ptr, nbytes, cudaHostAllocDefault);
	if (e != cudaSuccess) {
		note_host_oom(p, "a checkpoint staging buffer", nbytes, e);
		return NULL;
	}
	if (nbytes > p->shadow_want)
		p->shadow_want = nbytes; /* a snapshot never holds more than its staging buffer */
	return ptr;
}

void cu_host_free(train_backend *be, void *host)
{
	if (host) {
		quiesce(priv_of(be)); /* snapshot copies into it may be in flight */
		cudaFreeHost(host);
	}
}

/* The shadow, allocated at the first snapshot (the run's buffers all exist by then) when the
 * GPU has room for it and headroom beside: max(256 MiB, 5 %) of its memory stays free. */
void shadow_try_alloc(cuda_priv *p)
{
	p->shadow_tried = true;
	size_t free_b = 0, total_b = 0;
	if (p->direct || p->shadow_want == 0 ||
	    cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
		cudaGetLastError();
		return;
	}
	size_t headroom = total_b / 20 > ((size_t)256 << 20) ? total_b / 20 : (size_t)256 << 20;
	if (free_b < headroom || free_b - headroom < p->shadow_want)
		return;
	void *ptr = NULL;
	if (cudaMalloc(&ptr, p->shadow_want) != cudaSuccess) {
		cudaGetLastError(); /* not sticky; training goes on with direct copies */
		return;
	}
	p->shadow = static_cast<char *>(ptr);
	p->shadow_cap = p->shadow_want;
}

void cu_snapshot_begin(train_backend *be, int slot)
{
	cuda_priv *p = priv_of(be);
	if (p->failed)
		return;
	if (!p->shadow_tried)
		shadow_try_alloc(p);
	p->snap_shadow = p->shadow != NULL;
	p->snap_direct = false;
	p->shadow_used = 0;
	p->npending = 0;
	/* the previous snapshot's copies out of the shadow must be done before it is refilled */
	if (p->snap_shadow && p->shadow_slot >= 0)
		check(p, "cudaStreamWaitEvent",
		      cudaStreamWaitEvent(p->compute, p->copied[p->shadow_slot], 0));
	/* direct copies (no shadow, or one that does not fit) see every op queued so far */
	check(p, "cudaEventRecord", cudaEventRecord(p->ready[slot], p->compute));
	check(p, "cudaStreamWaitEvent", cudaStreamWaitEvent(p->copy, p->ready[slot], 0));
}

bool pending_add(cuda_priv *p, void *dst_host, size_t off, size_t nbytes)
{
	if (p->npending == p->pending_cap) {
		size_t cap = p->pending_cap ? 2 * p->pending_cap : 64;
		void *grown = realloc(p->pending, cap * sizeof(*p->pending));
		if (!grown)
			return false;
		p->pending = static_cast<cuda_priv::pending_copy *>(grown);
		p->pending_cap = cap;
	}
	p->pending[p->npending++] = {dst_host, off, nbytes};
	return true;
}

void cu_snapshot_copy(train_backend *be, int slot, void *dst_host, const void *src,
                      size_t nbytes)
{
	(void)slot;
	cuda_priv *p = priv_of(be);
	if (!nbytes || p->failed)
		return;
	if (p->snap_shadow && nbytes <= p->shadow_cap - p->shadow_used &&
	    pending_add(p, dst_host, p->shadow_used, nbytes)) {
		check(p, "snapshot copy (device to device)",
		      cudaMemcpyAsync(p->shadow + p->shadow_used, src, nbytes,
		                      cudaMemcpyDeviceToDevice, p->compute));
		p->shadow_used += nbytes;
		return;
	}
	p->snap_direct = true;
	check(p, "snapshot copy",
	      cudaMemcpyAsync(dst_host, src, nbytes, cudaMemcpyDeviceToHost, p->copy));
}

void cu_snapshot_end(train_backend *be, int slot)
{
	cuda_priv *p = priv_of(be);
	if (p->failed)
		return;
	if (p->npending) {
		/* the copies out of the shadow start after the device-to-device copies */
		check(p, "cudaEventRecord", cudaEventRecord(p->ready[slot], p->compute));
		check(p, "cudaStreamWaitEvent", cudaStreamWaitEvent(p->copy, p->ready[slot], 0));
		for (size_t i = 0; i < p->npending; i++)
			check(p, "snapshot copy",
			      cudaMemcpyAsync(p->pending[i].dst_host, p->shadow + p->pending[i].off,
			                      p->pending[i].nbytes, cudaMemcpyDeviceToHost, p->copy));
		p->npending = 0;
		p->shadow_slot = slot;
	}
	check(p, "cudaEventRecord", cudaEventRecord(p->copied[slot], p->copy));
	/* copies that read live buffers: the next updates wait for them (on the device) */
	if (p->snap_direct)
		check(p, "cudaStreamWaitEvent", cudaStreamWaitEvent(p->compute, p->copied[slot], 0));
}

/* Called on the persist thread: make this thread's current device ours first. Touches
 * nothing the training thread writes; a failure is reported through @p msg only. */
int cu_snapshot_wait(train_backend *be, int slot, char *msg, size_t msglen)
{
	cuda_priv *p = priv_of(be);
	const char *what = "cudaSetDevice";
	cudaError_t e = cudaSetDevice(p->index);
	if (e == cudaSuccess) {
		what = "cudaEventSynchronize";
		e = cudaEventSynchronize(p->copied[slot]);
	}
	if (e == cudaSuccess)
		return 0;
	snprintf(msg, msglen, "CUDA %s failed on %s while copying the checkpoint to the host (%s)",
	         what, p->device, cudaGetErrorString(e));
	return -EIO;
}

const char *cu_last_error(train_backend *be)
{
	return priv_of(be)->error;
}

int cu_status(train_backend *be)
{
	return priv_of(be)->failed ? -EIO : 0;
}

int cu_memory(train_backend *be, uint64_t *free_bytes, uint64_t *total_bytes)
{
	cuda_priv *p = priv_of(be);
	size_t f = 0, t = 0;
	cudaError_t e = cudaMemGetInfo(&f, &t);
	if (e != cudaSuccess) {
		fatal(p, "cudaMemGetInfo", e);
		return -EIO;
	}
	*free_bytes = f;
	*total_bytes = t;
	return 0;
}

/* The per-batch buffers, for batches of up to @p rows rows: the batch's sample indices, the
 * per-row loss and hit of softmax_xent and their pinned host mirrors. */
int cu_reserve_rows(train_backend *be, uint32_t rows)
{
	cuda_priv *p = priv_of(be);
	if (p->failed)
		return -EIO;
	if (rows <= p->idx_cap && rows <= p->rows_cap)
		return 0;
	cudaError_t e = cudaStreamSynchronize(p->compute); /* no op reads the old ones */
	if (!check(p, "cudaStreamSynchronize", e))
		return -EIO;
	cudaFree(p->idx);
	cudaFree(p->row_loss);
	cudaFree(p->row_hit);
	cudaFreeHost(p->host_loss);
	cudaFreeHost(p->host_hit);
	p->idx = NULL;
	p->row_loss = NULL;
	p->row_hit = NULL;
	p->host_loss = NULL;
	p->host_hit = NULL;
	p->idx_cap = p->rows_cap = 0;
	const size_t n = rows;
	if ((e = cudaMalloc(&p->idx, n * sizeof(uint32_t))) != cudaSuccess) {
		note_oom(p, "the batch's sample indices", n * sizeof(uint32_t), e);
		return -ENOMEM;
	}
	if ((e = cudaMalloc(&p->row_loss, n * sizeof(double))) != cudaSuccess) {
		note_oom(p, "the per-row losses", n * sizeof(double), e);
		return -ENOMEM;
	}
	if ((e = cudaMalloc(&p->row_hit, n * sizeof(int))) != cudaSuccess) {
		note_oom(p, "the per-row hits", n * sizeof(int), e);
		return -ENOMEM;
	}
	if ((e = cudaHostAlloc(&p->host_loss, n * sizeof(double), cudaHostAllocDefault)) !=
	    cudaSuccess) {
		note_host_oom(p, "the per-row losses", n * sizeof(double), e);
		return -ENOMEM;
	}
	if ((e = cudaHostAlloc(&p->host_hit, n * sizeof(int), cudaHostAllocDefault)) !=
	    cudaSuccess) {
		note_host_oom(p, "the per-row hits", n * sizeof(int), e);
		return -ENOMEM;
	}
	p->idx_cap = p->rows_cap = n;
	return 0;
}

void cu_destroy(train_backend *be)
{
	if (!be)
		return;
	cuda_priv *p = priv_of(be);
	if (p) {
		if (p->compute)
			cudaStreamSynchronize(p->compute);
		if (p->copy)
			cudaStreamSynchronize(p->copy);
		cudaFree(p->idx);
		cudaFree(p->shadow);
		free(p->pending);
		cudaFree(p->row_loss);
		cudaFree(p->row_hit);
		cudaFreeHost(p->host_loss);
		cudaFreeHost(p->host_hit);
		if (p->blas)
			cublasDestroy(p->blas);
		for (int k = 0; k < 2; k++) {
			if (p->ready[k])
				cudaEventDestroy(p->ready[k]);
			if (p->copied[k])
				cudaEventDestroy(p->copied[k]);
		}
		if (p->compute)
			cudaStreamDestroy(p->compute);
		if (p->copy)
			cudaStreamDestroy(p->copy);
		free(p);
	}
	free(be);
}

} // namespace

extern "C" __attribute__((visibility("default"))) int train_cuda_plugin_abi(void)
{
	return TRAIN_CUDA_PLUGIN_ABI;
}

extern "C" __attribute__((visibility("default"))) int
train_cuda_plugin_create(train_backend **out, int index, char *msg, size_t msglen)
{
	*out = NULL;
	int count = 0;
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e == cudaErrorInsufficientDriver) { /* cudart's wording for a missing libcuda too */
		int rt = 0;
		cudaRuntimeGetVersion(&rt);
		snprintf(msg, msglen,
		         "no CUDA driver found (libcuda.so.1 missing, or older than this build's CUDA "
		         "%d.%d runtime)",
		         rt / 1000, rt % 1000 / 10);
		return -ENODEV;
	}
	if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0)) {
		snprintf(msg, msglen, "no CUDA device (the NVIDIA driver is loaded but sees no GPU)");
		return -ENODEV;
	}
	if (e != cudaSuccess) {
		snprintf(msg, msglen, "no usable CUDA device (%s)", cudaGetErrorString(e));
		return -ENODEV;
	}
	if (index < 0 || index >= count) {
		snprintf(msg, msglen,
		         "no CUDA device cuda:%d: index out of range (this machine has %d: cuda:0%s%s)",
		         index, count, count > 1 ? "..cuda:" : "",
		         count > 1 ? std::to_string(count - 1).c_str() : "");
		return -ENODEV;
	}
	train_backend *be = static_cast<train_backend *>(calloc(1, sizeof(*be)));
	cuda_priv *p = static_cast<cuda_priv *>(calloc(1, sizeof(*p)));
	if (!be || !p) {
		free(be);
		free(p);
		snprintf(msg, msglen, "out of memory creating the CUDA backend");
		return -ENOMEM;
	}
	p->index = index;
	p->shadow_slot = -1;
	{
		const char *how = getenv("CKPT_TRAIN_CUDA_SNAPSHOT");
		p->direct = how && strcmp(how, "direct") == 0;
	}
	snprintf(p->device, sizeof(p->device), "cuda:%d", index);
	be->priv = p;
	be->name = "cuda";
	be->device = p->device;
	be->destroy = cu_destroy;
	int rc = 0;
	const char *step = "cudaSetDevice";
	e = cudaSetDevice(index);
	if (e == cudaSuccess) {
		step = "cudaStreamCreate";
		e = cudaStreamCreateWithFlags(&p->compute, cudaStreamNonBlocking);
	}
	if (e == cudaSuccess)
		e = cudaStreamCreateWithFlags(&p->copy, cudaStreamNonBlocking);
	for (int k = 0; k < 2 && e == cudaSuccess; k++) {
		step = "cudaEventCreate";
		e = cudaEventCreateWithFlags(&p->ready[k], cudaEventDisableTiming);
		if (e == cudaSuccess)
			e = cudaEventCreateWithFlags(&p->copied[k], cudaEventDisableTiming);
	}
	if (e != cudaSuccess) {
		snprintf(msg, msglen, "cannot start CUDA on cuda:%d: %s failed (%s)", index, step,
		         cudaGetErrorString(e));
		rc = e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO;
		goto fail;
	}
	{
		cublasStatus_t st = cublasCreate(&p->blas);
		if (st == CUBLAS_STATUS_SUCCESS)
			st = cublasSetStream(p->blas, p->compute);
		/* float32 GEMMs as the CPU computes them: no TF32 tensor ops (the default math
		 * mode allows them only when asked, e.g. NVIDIA_TF32_OVERRIDE; say so here) */
		if (st == CUBLAS_STATUS_SUCCESS)
			st = cublasSetMathMode(p->blas, CUBLAS_DEFAULT_MATH);
		if (st != CUBLAS_STATUS_SUCCESS) {
			snprintf(msg, msglen, "cannot start cuBLAS on cuda:%d (%s)", index,
			         cublasGetStatusString(st));
			rc = st == CUBLAS_STATUS_ALLOC_FAILED ? -ENOMEM : -EIO;
			goto fail;
		}
	}
	be->alloc = cu_alloc;
	be->free = cu_free;
	be->upload = cu_upload;
	be->download = cu_download;
	be->sync = cu_sync;
	be->map_host = cu_map_host;
	be->unmap_host = cu_unmap_host;
	be->gather_rows = cu_gather_rows;
	be->gather_labels = cu_gather_labels;
	be->gemm = cu_gemm;
	be->bias_act = cu_bias_act;
	be->relu_backward = cu_relu_backward;
	be->bias_grad = cu_bias_grad;
	be->softmax_xent = cu_softmax_xent;
	be->sgd_step = cu_sgd_step;
	be->adam_step = cu_adam_step;
	be->host_alloc = cu_host_alloc;
	be->host_free = cu_host_free;
	be->snapshot_begin = cu_snapshot_begin;
	be->snapshot_copy = cu_snapshot_copy;
	be->snapshot_end = cu_snapshot_end;
	be->snapshot_wait = cu_snapshot_wait;
	be->last_error = cu_last_error;
	be->memory = cu_memory;
	be->reserve_rows = cu_reserve_rows;
	be->status = cu_status;
	*out = be;
	return 0;
fail:
	cu_destroy(be);
	return rc;
}
