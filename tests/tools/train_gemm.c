/* tests/tools/train_gemm.c - the GEMM-bound limit of one ckpt-train epoch
 *
 * Runs exactly the cblas_sgemm calls of one epoch (forward, dW and dX of every training batch,
 * forward of the validation and test samples) on the engine's CPU backend, with the same BLAS
 * kernels and thread count, and prints the FLOPs, the seconds and the GFLOP/s. An epoch can
 * not be faster than these seconds.
 *
 * usage: train_gemm LAYERS BATCH TRAIN_SAMPLES EVAL_SAMPLES THREADS
 * prints: "flops F seconds S gflops G core NAME"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "train/backend.h"
#include "train/error.h"
#include "train/model.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr,
		        "usage: train_gemm LAYERS BATCH TRAIN_SAMPLES EVAL_SAMPLES THREADS\n");
		return 2;
	}
	/* same kernels as ckpt-train (see select_blas_kernels there) */
	const char *core = train_cpu_blas_better_core();
	if (core && !getenv("CKPT_TRAIN_BLAS_REEXEC")) {
		setenv("OPENBLAS_CORETYPE", core, 1);
		setenv("CKPT_TRAIN_BLAS_REEXEC", "1", 1);
		execv("/proc/self/exe", argv);
	}
	uint32_t sizes[TRAIN_MAX_LAYERS + 1], n;
	if (train_parse_layers(sizes, &n, argv[1])) {
		fprintf(stderr, "train_gemm: error: %s\n", train_last_error());
		return 2;
	}
	int batch = atoi(argv[2]), train = atoi(argv[3]), eval = atoi(argv[4]);
	int threads = atoi(argv[5]);
	if (batch <= 0 || train <= 0 || eval < 0 || threads <= 0) {
		fprintf(stderr, "train_gemm: error: bad arguments\n");
		return 2;
	}
	train_backend *be;
	train_mlp *m;
	if (train_backend_create(&be, "cpu", threads) ||
	    train_mlp_create(&m, be, sizes, n, batch > 1024 ? batch : 1024)) {
		fprintf(stderr, "train_gemm: error: %s\n", train_last_error());
		return 1;
	}
	double flops = 0;
	double best = 1e30;
	for (int rep = 0; rep < 3; rep++) {
		flops = 0;
		double t0 = now();
		for (int off = 0; off < train; off += batch) {
			int rows = train - off < batch ? train - off : batch;
			for (uint32_t l = 0; l < m->nlayers; l++) {
				int in = (int)sizes[l], out = (int)sizes[l + 1];
				be->gemm(be, false, true, rows, out, in, 1.0f, m->act[l], in,
				         m->weight[l], in, 0.0f, m->act[l + 1], out);
				flops += 2.0 * rows * in * out;
			}
			for (uint32_t l = m->nlayers; l-- > 0;) {
				int in = (int)sizes[l], out = (int)sizes[l + 1];
				be->gemm(be, true, false, out, in, rows, 1.0f, m->dact[l + 1], out,
				         m->act[l], in, 0.0f, m->grad_weight[l], in);
				flops += 2.0 * rows * in * out;
				if (l > 0) {
					be->gemm(be, false, false, rows, in, out, 1.0f,
					         m->dact[l + 1], out, m->weight[l], in, 0.0f,
					         m->dact[l], in);
					flops += 2.0 * rows * in * out;
				}
			}
		}
		for (int off = 0; off < eval; off += (int)m->max_rows) {
			int rows = eval - off < (int)m->max_rows ? eval - off : (int)m->max_rows;
			for (uint32_t l = 0; l < m->nlayers; l++) {
				int in = (int)sizes[l], out = (int)sizes[l + 1];
				be->gemm(be, false, true, rows, out, in, 1.0f, m->act[l], in,
				         m->weight[l], in, 0.0f, m->act[l + 1], out);
				flops += 2.0 * rows * in * out;
			}
		}
		double t = now() - t0;
		if (t < best)
			best = t;
	}
	printf("flops %.0f seconds %.4f gflops %.1f core %s\n", flops, best, flops / best / 1e9,
	       train_cpu_blas_core());
	train_mlp_free(m);
	train_backend_destroy(be);
	return 0;
}
