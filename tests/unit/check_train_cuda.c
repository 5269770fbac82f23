/* tests/unit/check_train_cuda.c - the CUDA seam of the engine: device names, the plug-in
 * loader, refusal without a GPU, and (on a GPU machine) every CUDA op against the CPU op
 *
 * The GPU tests report themselves as skipped by name ("SKIP: <test>: no CUDA device (...)")
 * when no CUDA device is usable; scripts/run-tests.sh counts those lines as skipped. The
 * plug-in is taken from build/lib (make test runs from the repository root) unless
 * CKPT_TRAIN_CUDA_PLUGIN names one. Sanitizers and the CUDA driver can disagree; the GPU
 * checks that matter run without ASan in tests/gpu/run.sh.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/store.h"
#include "train/backend.h"
#include "train/engine.h"
#include "train/error.h"
#include "train/rng.h"
#include "test_dir.h"

/* Only for this sanitized test binary: CUDA's driver maps memory where ASan keeps its shadow
 * gap, and allocates for the life of the process. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "protect_shadow_gap=0";
}

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libcuda.so\nleak:libcudart\nleak:libcublas\nleak:ckpt-train-cuda.so\n";
}

static char tmpdir[256];

static void use_built_plugin(void)
{
	if (!getenv("CKPT_TRAIN_CUDA_PLUGIN") && access("build/lib/ckpt-train-cuda.so", F_OK) == 0)
		setenv("CKPT_TRAIN_CUDA_PLUGIN", "build/lib/ckpt-train-cuda.so", 1);
}

static void setup(void)
{
	use_built_plugin();
	test_dir_make(tmpdir, sizeof(tmpdir), "check_train_cuda");
}

static void teardown(void)
{
	test_dir_remove(tmpdir);
}

/* The CUDA backend on cuda:0, or NULL after printing the SKIP line for @p test. */
static train_backend *cuda_or_skip(const char *test)
{
	train_backend *be = NULL;
	int rc = train_backend_create(&be, "cuda", 1);
	if (rc) {
		ck_assert_int_eq(rc, -ENODEV);
		printf("SKIP: %s: no CUDA device (%s)\n", test, train_last_error());
		fflush(stdout);
		return NULL;
	}
	return be;
}

static void fill(float *x, size_t n, train_rng *rng, double scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (float)((2.0 * train_rng_uniform(rng) - 1.0) * scale);
}

/* max |a-b| / max(1, |a|) */
static double max_rel_diff(const float *a, const float *b, size_t n)
{
	double worst = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - (double)b[i]) / fmax(1.0, fabs((double)a[i]));
		if (!(d <= worst))
			worst = d;
	}
	return worst;
}

START_TEST(test_device_names_parse)
{
	int index = -1;
	ck_assert_int_eq(train_cuda_parse_device(&index, "cuda"), 0);
	ck_assert_int_eq(index, 0);
	ck_assert_int_eq(train_cuda_parse_device(&index, "cuda:3"), 0);
	ck_assert_int_eq(index, 3);
	const char *bad[] = {"cuda:",   "cuda:x",  "cuda:-1",    "cudax",
	                     "cuda:1x", "cuda: 1", "cuda:99999", "CUDA"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(train_cuda_parse_device(&index, bad[i]), -EINVAL);
		ck_assert_ptr_nonnull(strstr(train_last_error(), bad[i]));
	}
	train_backend *be = NULL;
	ck_assert_int_eq(train_backend_create(&be, "gpu", 1), -EINVAL);
	ck_assert_ptr_null(be);
	ck_assert_ptr_nonnull(strstr(train_last_error(), "'gpu'"));
}
END_TEST

START_TEST(test_missing_plugin_is_one_clear_error)
{
	setenv("CKPT_TRAIN_CUDA_PLUGIN", "/nonexistent/ckpt-train-cuda.so", 1);
	train_backend *be = NULL;
	ck_assert_int_eq(train_backend_create(&be, "cuda:1", 1), -ENODEV);
	ck_assert_ptr_null(be);
	const char *msg = train_last_error();
	ck_assert_msg(strstr(msg, "cuda:1") && strstr(msg, "ckpt-train-cuda.so"), "%s", msg);
	ck_assert_ptr_null(strchr(msg, '\n'));
	/* a file that is not a plug-in */
	char path[300];
	snprintf(path, sizeof(path), "%s/ckpt-train-cuda.so", tmpdir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("not an ELF file\n", f);
	fclose(f);
	setenv("CKPT_TRAIN_CUDA_PLUGIN", path, 1);
	ck_assert_int_eq(train_backend_create(&be, "cuda", 1), -ENODEV);
	ck_assert_ptr_nonnull(strstr(train_last_error(), "device cuda is not supported"));
	unsetenv("CKPT_TRAIN_CUDA_PLUGIN");
}
END_TEST

START_TEST(test_cpu_staging_ops_copy_and_are_private)
{
	train_backend *be = NULL;
	ck_assert_int_eq(train_backend_create(&be, "cpu", 1), 0);
	float src[5] = {1, 2, 3, 4, 5};
	float *host = be->host_alloc(be, sizeof(src));
	ck_assert_ptr_nonnull(host);
	be->snapshot_begin(be, 1);
	be->snapshot_copy(be, 1, host, src, sizeof(src));
	be->snapshot_end(be, 1);
	src[0] = 42; /* training goes on: the snapshot keeps the old value */
	char msg[256] = "";
	ck_assert_int_eq(be->snapshot_wait(be, 1, msg, sizeof(msg)), 0);
	ck_assert(host[0] == 1.0f && host[4] == 5.0f);
	ck_assert_int_eq(be->status(be), 0);
	ck_assert_int_eq(be->reserve_rows(be, 1024), 0);
	uint64_t free_b, total_b;
	ck_assert_int_eq(be->memory(be, &free_b, &total_b), -ENOTSUP);
	ck_assert_str_eq(be->last_error(be), "");
	be->host_free(be, host);
	train_backend_destroy(be);
}
END_TEST

static void small_config(train_config *c, const char *store, const char *device)
{
	train_config_defaults(c);
	c->store_path = store;
	snprintf(c->data, sizeof(c->data), "synthetic");
	snprintf(c->layers, sizeof(c->layers), "784,32,10");
	ck_assert_int_eq(train_parse_layers(c->sizes, &c->nsizes, c->layers), 0);
	c->epochs = 1;
	c->batch_size = 64;
	c->val_split = 2000;
	c->threads = 1;
	c->quiet = true;
	c->no_sync = true;
	snprintf(c->device, sizeof(c->device), "%s", device);
}

START_TEST(test_cuda_without_gpu_refuses_and_creates_no_store)
{
	train_backend *probe = NULL;
	if (train_backend_create(&probe, "cuda", 1) == 0) {
		train_backend_destroy(probe);
		printf("SKIP: test_cuda_without_gpu_refuses_and_creates_no_store: a CUDA device "
		       "is present\n");
		return;
	}
	char store[300];
	snprintf(store, sizeof(store), "%s/store", tmpdir);
	const char *devices[] = {"cuda", "cuda:0", "cuda:7"};
	for (size_t i = 0; i < 3; i++) {
		train_config c;
		train_result r;
		small_config(&c, store, devices[i]);
		ck_assert_int_eq(train_run(&c, &r), -ENODEV);
		const char *msg = train_last_error();
		ck_assert_msg(strstr(msg, devices[i]) != NULL, "message lacks the device: %s", msg);
		ck_assert_ptr_null(strchr(msg, '\n'));
		struct stat st;
		ck_assert_msg(stat(store, &st) != 0, "a store was created for %s", devices[i]);
	}
}
END_TEST

START_TEST(test_cuda_ops_match_cpu)
{
	train_backend *gpu = cuda_or_skip("test_cuda_ops_match_cpu");
	if (!gpu)
		return;
	train_backend *cpu = NULL;
	ck_assert_int_eq(train_backend_create(&cpu, "cpu", 1), 0);
	ck_assert_str_eq(gpu->device, "cuda:0");
	ck_assert_int_eq(gpu->reserve_rows(gpu, 64), 0);
	uint64_t free_b = 0, total_b = 0;
	ck_assert_int_eq(gpu->memory(gpu, &free_b, &total_b), 0);
	ck_assert(total_b > 0 && free_b <= total_b);
	train_rng rng;
	train_rng_seed(&rng, 7);
	enum { M = 37, N = 19, K = 53 };
	float a[M * K], b[K * N], c_cpu[M * N], c_gpu[M * N];
	fill(a, M * K, &rng, 1.0);
	fill(b, K * N, &rng, 1.0);
	float *da = gpu->alloc(gpu, sizeof(a)), *db = gpu->alloc(gpu, sizeof(b));
	float *dc = gpu->alloc(gpu, sizeof(c_gpu));
	ck_assert(da && db && dc);
	gpu->upload(gpu, da, a, sizeof(a));
	gpu->upload(gpu, db, b, sizeof(b));
	for (int t = 0; t < 4; t++) {
		bool ta = t & 1, tb = t & 2;
		/* same buffers read as [M,K] or [K,M] and [K,N] or [N,K] */
		int lda = ta ? M : K, ldb = tb ? K : N;
		memset(c_cpu, 0, sizeof(c_cpu));
		cpu->gemm(cpu, ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c_cpu, N);
		gpu->gemm(gpu, ta, tb, M, N, K, 1.0f, da, lda, db, ldb, 0.0f, dc, N);
		gpu->download(gpu, c_gpu, dc, sizeof(c_gpu));
		double d = max_rel_diff(c_cpu, c_gpu, M * N);
		ck_assert_msg(d < 1e-5, "gemm ta=%d tb=%d differs by %g", ta, tb, d);
	}
	/* bias + ReLU, ReLU backward, bias gradient, softmax cross-entropy */
	float bias[N], z_cpu[M * N], z_gpu[M * N], g_cpu[N], g_gpu[N];
	fill(bias, N, &rng, 1.0);
	float *dbias = gpu->alloc(gpu, sizeof(bias)), *dg = gpu->alloc(gpu, sizeof(g_gpu));
	gpu->upload(gpu, dbias, bias, sizeof(bias));
	memcpy(z_cpu, c_cpu, sizeof(z_cpu));
	gpu->upload(gpu, dc, c_cpu, sizeof(c_cpu));
	cpu->bias_act(cpu, z_cpu, bias, M, N, true);
	gpu->bias_act(gpu, dc, dbias, M, N, true);
	gpu->download(gpu, z_gpu, dc, sizeof(z_gpu));
	ck_assert(memcmp(z_cpu, z_gpu, sizeof(z_cpu)) == 0);
	cpu->bias_grad(cpu, g_cpu, z_cpu, M, N);
	gpu->bias_grad(gpu, dg, dc, M, N);
	gpu->download(gpu, g_gpu, dg, sizeof(g_gpu));
	ck_assert(memcmp(g_cpu, g_gpu, sizeof(g_cpu)) == 0);
	int32_t labels[M];
	for (int r = 0; r < M; r++)
		labels[r] = r % N;
	int32_t *dl = gpu->alloc(gpu, sizeof(labels));
	gpu->upload(gpu, dl, labels, sizeof(labels));
	float d_cpu[M * N], d_gpu[M * N];
	float *dd = gpu->alloc(gpu, sizeof(d_gpu));
	double loss_cpu = 0, loss_gpu = 0;
	uint64_t hit_cpu = 0, hit_gpu = 0;
	cpu->softmax_xent(cpu, d_cpu, c_cpu, labels, M, N, &loss_cpu, &hit_cpu);
	gpu->upload(gpu, dc, c_cpu, sizeof(c_cpu));
	gpu->softmax_xent(gpu, dd, dc, dl, M, N, &loss_gpu, &hit_gpu);
	gpu->download(gpu, d_gpu, dd, sizeof(d_gpu));
	ck_assert_uint_eq(hit_cpu, hit_gpu);
	ck_assert_msg(fabs(loss_cpu - loss_gpu) < 1e-9 * fmax(1, fabs(loss_cpu)),
	              "loss %.17g vs %.17g", loss_cpu, loss_gpu);
	ck_assert(max_rel_diff(d_cpu, d_gpu, M * N) < 1e-6);
	/* optimizer steps: SGD with Nesterov momentum, AdamW */
	enum { P = 1000 };
	float w[P], gr[P], m[P], v[P], w2[P], m2[P], v2[P];
	fill(w, P, &rng, 1.0);
	fill(gr, P, &rng, 0.1);
	fill(m, P, &rng, 0.1);
	for (int i = 0; i < P; i++)
		v[i] = m[i] * m[i];
	float *dw = gpu->alloc(gpu, sizeof(w)), *dgr = gpu->alloc(gpu, sizeof(gr));
	float *dm = gpu->alloc(gpu, sizeof(m)), *dv = gpu->alloc(gpu, sizeof(v));
	gpu->upload(gpu, dw, w, sizeof(w));
	gpu->upload(gpu, dgr, gr, sizeof(gr));
	gpu->upload(gpu, dm, m, sizeof(m));
	train_sgd_params sp = {
	    .lr = 0.1, .momentum = 0.9, .dampening = 0, .weight_decay = 1e-3, .nesterov = true};
	cpu->sgd_step(cpu, w, gr, m, P, &sp, false);
	gpu->sgd_step(gpu, dw, dgr, dm, P, &sp, false);
	gpu->download(gpu, w2, dw, sizeof(w2));
	gpu->download(gpu, m2, dm, sizeof(m2));
	ck_assert(memcmp(w, w2, sizeof(w)) == 0 && memcmp(m, m2, sizeof(m)) == 0);
	gpu->upload(gpu, dv, v, sizeof(v));
	train_adam_params ap = {.lr = 1e-3,
	                        .beta1 = 0.9,
	                        .beta2 = 0.999,
	                        .eps = 1e-8,
	                        .weight_decay = 1e-2,
	                        .decoupled = true,
	                        .step_size = 1e-3 / (1 - 0.9 * 0.9),
	                        .bias_correction2_sqrt = sqrt(1 - 0.999 * 0.999)};
	cpu->adam_step(cpu, w, gr, m, v, P, &ap);
	gpu->adam_step(gpu, dw, dgr, dm, dv, P, &ap);
	gpu->download(gpu, w2, dw, sizeof(w2));
	gpu->download(gpu, v2, dv, sizeof(v2));
	ck_assert(memcmp(w, w2, sizeof(w)) == 0 && memcmp(v, v2, sizeof(v)) == 0);
	/* staging: pinned memory, copies on the copy stream */
	float *host = gpu->host_alloc(gpu, sizeof(w));
	ck_assert_ptr_nonnull(host);
	gpu->snapshot_begin(gpu, 0);
	gpu->snapshot_copy(gpu, 0, host, dw, sizeof(w));
	gpu->snapshot_end(gpu, 0);
	char msg[256] = "";
	ck_assert_int_eq(gpu->snapshot_wait(gpu, 0, msg, sizeof(msg)), 0);
	ck_assert(memcmp(host, w, sizeof(w)) == 0);
	ck_assert_int_eq(gpu->status(gpu), 0);
	gpu->host_free(gpu, host);
	void *huge = gpu->alloc(gpu, (size_t)1 << 50);
	ck_assert_ptr_null(huge);
	ck_assert_ptr_nonnull(strstr(gpu->last_error(gpu), "cuda:0"));
	float *bufs[] = {da, db, dc, dbias, dg, dd, dw, dgr, dm, dv};
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		gpu->free(gpu, bufs[i]);
	gpu->free(gpu, dl);
	train_backend_destroy(gpu);
	train_backend_destroy(cpu);
}
END_TEST

START_TEST(test_cuda_training_matches_cpu)
{
	train_backend *probe = cuda_or_skip("test_cuda_training_matches_cpu");
	if (!probe)
		return;
	train_backend_destroy(probe);
	char a[300], b[300];
	snprintf(a, sizeof(a), "%s/cpu", tmpdir);
	snprintf(b, sizeof(b), "%s/cuda", tmpdir);
	train_config c;
	train_result r;
	small_config(&c, a, "cpu");
	ck_assert_msg(train_run(&c, &r) == 0, "%s", train_last_error());
	small_config(&c, b, "cuda");
	ck_assert_msg(train_run(&c, &r) == 0, "%s", train_last_error());
	ckpt_store *sa, *sb;
	ckpt_snapshot *na, *nb;
	const ckpt_checkpoint *ca, *cb;
	ck_assert_int_eq(ckpt_store_open(&sa, a, 0), 0);
	ck_assert_int_eq(ckpt_store_open(&sb, b, 0), 0);
	ck_assert_int_eq(ckpt_snapshot_open(&na, sa), 0);
	ck_assert_int_eq(ckpt_snapshot_open(&nb, sb), 0);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&ca, na, 1), 0);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&cb, nb, 1), 0);
	const char *names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
	double worst = 0;
	for (size_t i = 0; i < 4; i++) {
		const ckpt_tensor_info *ta, *tb;
		ck_assert_int_eq(ckpt_checkpoint_find_tensor(&ta, ca, CKPT_GROUP_MODEL, names[i]),
		                 0);
		ck_assert_int_eq(ckpt_checkpoint_find_tensor(&tb, cb, CKPT_GROUP_MODEL, names[i]),
		                 0);
		ck_assert_str_eq(tb->device, "cuda:0");
		ck_assert_uint_eq(ta->nbytes, tb->nbytes);
		float *x = malloc(ta->nbytes), *y = malloc(tb->nbytes);
		ck_assert(x && y);
		ck_assert_int_eq(ckpt_tensor_read(x, na, ta, 0, ta->nbytes), 0);
		ck_assert_int_eq(ckpt_tensor_read(y, nb, tb, 0, tb->nbytes), 0);
		for (size_t j = 0; j < ta->nbytes / 4; j++)
			worst = fmax(worst, fabs((double)x[j] - (double)y[j]));
		free(x);
		free(y);
	}
	printf("cuda vs cpu after 1 epoch: max |difference| of parameters %.3g\n", worst);
	ck_assert_msg(worst < 1e-3, "cuda and cpu runs differ by %g", worst);
	ckpt_snapshot_close(na);
	ckpt_snapshot_close(nb);
	ckpt_store_close(sa);
	ckpt_store_close(sb);
}
END_TEST

static Suite *train_cuda_suite(void)
{
	Suite *s = suite_create("train_cuda");
	TCase *tc = tcase_create("cuda");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_device_names_parse);
	tcase_add_test(tc, test_missing_plugin_is_one_clear_error);
	tcase_add_test(tc, test_cpu_staging_ops_copy_and_are_private);
	tcase_add_test(tc, test_cuda_without_gpu_refuses_and_creates_no_store);
	tcase_add_test(tc, test_cuda_ops_match_cpu);
	tcase_add_test(tc, test_cuda_training_matches_cpu);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(train_cuda_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
