/* train/backend_cpu.c - the CPU backend: CBLAS GEMMs (OpenBLAS), loops for the rest
 *
 * OpenBLAS runs on a fixed thread count set here; its sgemm splits work along M/N only, so
 * results do not depend on timing. Every reduction written here runs in index order.
 * The optimizer steps reproduce torch 1.13's single-tensor CPU code: float32 tensors,
 * Python-float scalars cast to float, bias corrections in double.
 */
/* The element-wise loops below are written to be vectorized: O3 (vectorization, loop
 * unswitching) for this file and clones for wider vector units. Contraction into FMA stays off
 * (-std=c11), so every clone computes the same bits as torch's separate mul and add. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#if defined(__x86_64__) && (defined(__clang__) || __GNUC__ >= 6) && !defined(__SANITIZE_ADDRESS__)
#define HOT_LOOP __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT_LOOP
#endif

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "train/backend.h"
#include "train/error.h"
#include "train/optim_elem.h"
#include "train/xent_row.h"

static void *cpu_alloc(train_backend *be, size_t nbytes)
{
	(void)be;
	void *p = NULL;
	if (nbytes == 0)
		nbytes = 64;
	if (posix_memalign(&p, 64, (nbytes + 63) & ~(size_t)63))
		return NULL;
	memset(p, 0, nbytes);
	return p;
}

static void cpu_free(train_backend *be, void *buf)
{
	(void)be;
	free(buf);
}

static void cpu_copy(train_backend *be, void *dst, const void *src, size_t nbytes)
{
	(void)be;
	if (nbytes)
		memcpy(dst, src, nbytes);
}

static void cpu_sync(train_backend *be)
{
	(void)be;
}

static const void *cpu_map_host(train_backend *be, const void *host, size_t nbytes)
{
	(void)be;
	(void)nbytes;
	return host;
}

static void cpu_unmap_host(train_backend *be, const void *mapped)
{
	(void)be;
	(void)mapped;
}

static void cpu_gather_rows(train_backend *be, float *dst, const float *src, const uint32_t *idx,
                            uint32_t rows, uint32_t cols)
{
	(void)be;
	for (uint32_t i = 0; i < rows; i++)
		memcpy(dst + (size_t)i * cols, src + (size_t)idx[i] * cols, cols * sizeof(float));
}

static void cpu_gather_labels(train_backend *be, int32_t *dst, const int32_t *src,
                              const uint32_t *idx, uint32_t rows)
{
	(void)be;
	for (uint32_t i = 0; i < rows; i++)
		dst[i] = src[idx[i]];
}

static void cpu_gemm(train_backend *be, bool trans_a, bool trans_b, int m, int n, int k,
                     float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                     float *c, int ldc)
{
	(void)be;
	cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
	            trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
	            ldc);
}

HOT_LOOP static void cpu_bias_act(train_backend *be, float *restrict z, const float *restrict bias,
                                  int rows, int cols, bool relu)
{
	(void)be;
	for (int r = 0; r < rows; r++) {
		float *row = z + (size_t)r * cols;
		if (relu) {
			for (int c = 0; c < cols; c++) {
				float v = row[c] + bias[c];
				row[c] = v > 0.0f ? v : 0.0f;
			}
		} else {
			for (int c = 0; c < cols; c++)
				row[c] += bias[c];
		}
	}
}

HOT_LOOP static void cpu_relu_backward(train_backend *be, float *restrict dz,
                                       const float *restrict a, size_t n)
{
	(void)be;
	for (size_t i = 0; i < n; i++)
		dz[i] = a[i] > 0.0f ? dz[i] : 0.0f;
}

HOT_LOOP static void cpu_bias_grad(train_backend *be, float *restrict db, const float *restrict dz,
                                   int rows, int cols)
{
	(void)be;
	memset(db, 0, (size_t)cols * sizeof(float));
	for (int r = 0; r < rows; r++) {
		const float *row = dz + (size_t)r * cols;
		for (int c = 0; c < cols; c++)
			db[c] += row[c];
	}
}

static void cpu_softmax_xent(train_backend *be, float *dlogits, const float *logits,
                             const int32_t *labels, int rows, int cols, double *loss_sum,
                             uint64_t *correct)
{
	(void)be;
	double total = 0.0;
	uint64_t hits = 0;
	float inv_rows = 1.0f / (float)rows;
	for (int r = 0; r < rows; r++) {
		int hit;
		total += train_xent_row(dlogits ? dlogits + (size_t)r * cols : NULL,
		                        logits + (size_t)r * cols, labels[r], cols, inv_rows, &hit);
		hits += (uint64_t)hit;
	}
	*loss_sum += total;
	*correct += hits;
}

HOT_LOOP static void cpu_sgd_step(train_backend *be, float *restrict param,
                                  const float *restrict grad, float *restrict buf, size_t n,
                                  const train_sgd_params *p, bool first)
{
	(void)be;
	const train_sgd_k k = train_sgd_k_of(p);
	/* one loop per case, so each one vectorizes without a branch inside */
	if (!buf) {
		for (size_t i = 0; i < n; i++)
			param[i] = train_sgd_plain(param[i], train_sgd_dir(grad[i], param[i], &k), &k);
	} else if (first) {
		for (size_t i = 0; i < n; i++) {
			float d = train_sgd_dir(grad[i], param[i], &k);
			buf[i] = d;
			param[i] = train_sgd_apply(param[i], d, d, &k);
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			float d = train_sgd_dir(grad[i], param[i], &k);
			float b = train_sgd_buf(buf[i], d, &k);
			buf[i] = b;
			param[i] = train_sgd_apply(param[i], d, b, &k);
		}
	}
}

HOT_LOOP static void cpu_adam_step(train_backend *be, float *restrict param,
                                   const float *restrict grad, float *restrict exp_avg,
                                   float *restrict exp_avg_sq, size_t n, const train_adam_params *p)
{
	(void)be;
	const train_adam_k k = train_adam_k_of(p);
	for (size_t i = 0; i < n; i++)
		train_adam_elem(&param[i], grad[i], &exp_avg[i], &exp_avg_sq[i], &k);
}

static void *cpu_host_alloc(train_backend *be, size_t nbytes)
{
	return cpu_alloc(be, nbytes);
}

static void cpu_snapshot_mark(train_backend *be, int slot)
{
	(void)be;
	(void)slot;
}

/* The CPU's snapshot is a plain copy: the next op starts only after it returns. */
static void cpu_snapshot_copy(train_backend *be, int slot, void *dst_host, const void *src,
                              size_t nbytes)
{
	(void)slot;
	cpu_copy(be, dst_host, src, nbytes);
}

static int cpu_snapshot_wait(train_backend *be, int slot, char *msg, size_t msglen)
{
	(void)be;
	(void)slot;
	(void)msg;
	(void)msglen;
	return 0;
}

static const char *cpu_last_error(train_backend *be)
{
	(void)be;
	return "";
}

/* host memory is checked by the engine (check_memory) */
static int cpu_memory(train_backend *be, uint64_t *free_bytes, uint64_t *total_bytes)
{
	(void)be;
	*free_bytes = *total_bytes = 0;
	return -ENOTSUP;
}

static int cpu_reserve_rows(train_backend *be, uint32_t rows)
{
	(void)be;
	(void)rows;
	return 0;
}

static int cpu_status(train_backend *be)
{
	(void)be;
	return 0;
}

static void cpu_destroy(train_backend *be)
{
	free(be);
}

const char *train_cpu_blas_core(void)
{
	const char *core = openblas_get_corename();
	return core ? core : "unknown";
}

const char *train_cpu_blas_better_core(void)
{
	if (getenv("OPENBLAS_CORETYPE"))
		return NULL;
	if (strcasecmp(train_cpu_blas_core(), "prescott") != 0)
		return NULL;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
		return "SkylakeX";
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return "Haswell";
#endif
	return NULL;
}

int train_backend_create(train_backend **out, const char *device, int threads)
{
	*out = NULL;
	if (strcmp(device, "cpu") != 0) {
		if (strncmp(device, "cuda", 4) == 0)
			return train_cuda_backend_create(out, device);
		return train_fail(-EINVAL, "unknown device '%s' (expected cpu, cuda or cuda:N)",
		                  device);
	}
	train_backend *be = calloc(1, sizeof(*be));
	if (!be)
		return train_fail(-ENOMEM, "out of memory creating the cpu backend");
	if (threads <= 0) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		threads = ncpu > 0 ? (int)ncpu : 1;
	}
	openblas_set_num_threads(threads);
	be->name = "cpu";
	be->device = "cpu";
	be->alloc = cpu_alloc;
	be->free = cpu_free;
	be->upload = cpu_copy;
	be->download = cpu_copy;
	be->sync = cpu_sync;
	be->map_host = cpu_map_host;
	be->unmap_host = cpu_unmap_host;
	be->gather_rows = cpu_gather_rows;
	be->gather_labels = cpu_gather_labels;
	be->gemm = cpu_gemm;
	be->bias_act = cpu_bias_act;
	be->relu_backward = cpu_relu_backward;
	be->bias_grad = cpu_bias_grad;
	be->softmax_xent = cpu_softmax_xent;
	be->sgd_step = cpu_sgd_step;
	be->adam_step = cpu_adam_step;
	be->destroy = cpu_destroy;
	be->host_alloc = cpu_host_alloc;
	be->host_free = cpu_free;
	be->snapshot_begin = cpu_snapshot_mark;
	be->snapshot_copy = cpu_snapshot_copy;
	be->snapshot_end = cpu_snapshot_mark;
	be->snapshot_wait = cpu_snapshot_wait;
	be->last_error = cpu_last_error;
	be->memory = cpu_memory;
	be->reserve_rows = cpu_reserve_rows;
	be->status = cpu_status;
	*out = be;
	return 0;
}

void train_backend_destroy(train_backend *be)
{
	if (be)
		be->destroy(be);
}
