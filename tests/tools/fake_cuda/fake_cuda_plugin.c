/* tests/tools/fake_cuda/fake_cuda_plugin.c - a STAND-IN for the CUDA plug-in, for tests only
 *
 * Built as build/tests/tools/fake-cuda/ckpt-train-cuda.so and loaded through
 * CKPT_TRAIN_CUDA_PLUGIN by tests that cover the engine's GPU path on machines without a GPU
 * (tests/integration/test_train_fake_cuda.sh): it is the CPU backend under the name "cuda",
 * reporting device "cuda:N", so the engine records cuda:N tensors, keeps the device on resume,
 * checks device memory and handles device failures exactly as with the real plug-in. It does
 * no CUDA and is never installed or bundled. Environment:
 *   CKPT_FAKE_CUDA_DEVICES=N           GPUs the "machine" has (default 1; 0: none)
 *   CKPT_FAKE_CUDA_MEMORY=BYTES        each one's memory, all free (default 80 GiB)
 *   CKPT_FAKE_CUDA_FAIL_AFTER_GEMMS=N  after N GEMMs the device fails (a faulting kernel)
 *   CKPT_FAKE_CUDA_FAIL_SNAPSHOT=1     copying a checkpoint off the device fails
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/backend.h"
#include "train/cuda/backend_cuda.h"

/* the CPU backend's (backend_cpu.o) reference to the real loader: never taken, the fake asks
 * for "cpu" */
int train_cuda_backend_create(train_backend **out, const char *device)
{
	(void)device;
	*out = NULL;
	return -ENODEV;
}

/* one backend per process, as ckpt-train has */
static struct {
	char device[16];
	char error[256];
	unsigned long long gemms, fail_after; /* fail_after 0: never */
	int failed;
	int fail_snapshot;
	unsigned long long memory;
	void (*gemm)(train_backend *, bool, bool, int, int, int, float, const float *, int,
	             const float *, int, float, float *, int);
	void *(*alloc)(train_backend *, size_t);
} fake;

static unsigned long long env_ull(const char *name, unsigned long long dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static void fake_gemm(train_backend *be, bool ta, bool tb, int m, int n, int k, float alpha,
                      const float *a, int lda, const float *b, int ldb, float beta, float *c,
                      int ldc)
{
	if (fake.failed)
		return;
	if (fake.fail_after && ++fake.gemms > fake.fail_after) {
		fake.failed = 1;
		snprintf(fake.error, sizeof(fake.error),
		         "CUDA gemm failed on %s (an illegal memory access was encountered; "
		         "injected by the fake plug-in)",
		         fake.device);
		return;
	}
	fake.gemm(be, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* a refused allocation names the device and the size, as the real plug-in's does */
static void *fake_alloc(train_backend *be, size_t nbytes)
{
	void *ptr = fake.alloc(be, nbytes);
	if (!ptr)
		snprintf(fake.error, sizeof(fake.error),
		         "out of GPU memory on %s: cannot allocate %zu bytes for a model buffer "
		         "(the fake plug-in's host memory)",
		         fake.device, nbytes);
	return ptr;
}

static int fake_status(train_backend *be)
{
	(void)be;
	return fake.failed ? -EIO : 0;
}

static const char *fake_last_error(train_backend *be)
{
	(void)be;
	return fake.error;
}

static int fake_memory(train_backend *be, uint64_t *free_bytes, uint64_t *total_bytes)
{
	(void)be;
	*free_bytes = *total_bytes = fake.memory;
	return 0;
}

static int fake_snapshot_wait(train_backend *be, int slot, char *msg, size_t msglen)
{
	(void)be;
	(void)slot;
	if (!fake.fail_snapshot)
		return 0;
	snprintf(msg, msglen,
	         "CUDA cudaEventSynchronize failed on %s while copying the checkpoint to the host "
	         "(injected by the fake plug-in)",
	         fake.device);
	return -EIO;
}

__attribute__((visibility("default"))) int train_cuda_plugin_abi(void)
{
	return TRAIN_CUDA_PLUGIN_ABI;
}

__attribute__((visibility("default"))) int train_cuda_plugin_create(train_backend **out,
                                                                     int index, char *msg,
                                                                     size_t msglen)
{
	*out = NULL;
	unsigned long long count = env_ull("CKPT_FAKE_CUDA_DEVICES", 1);
	if (count == 0) {
		snprintf(msg, msglen, "no CUDA device (the fake plug-in has none)");
		return -ENODEV;
	}
	if ((unsigned long long)index >= count) {
		snprintf(msg, msglen, "no CUDA device cuda:%d: index out of range (this machine has %llu)",
		         index, count);
		return -ENODEV;
	}
	int rc = train_backend_create(out, "cpu", 1);
	if (rc) {
		snprintf(msg, msglen, "the fake plug-in cannot create its CPU backend");
		return rc;
	}
	memset(&fake, 0, sizeof(fake));
	snprintf(fake.device, sizeof(fake.device), "cuda:%d", index);
	fake.memory = env_ull("CKPT_FAKE_CUDA_MEMORY", 80ull << 30);
	fake.fail_after = env_ull("CKPT_FAKE_CUDA_FAIL_AFTER_GEMMS", 0);
	fake.fail_snapshot = env_ull("CKPT_FAKE_CUDA_FAIL_SNAPSHOT", 0) != 0;
	train_backend *be = *out;
	be->name = "cuda";
	be->device = fake.device;
	fake.gemm = be->gemm;
	be->gemm = fake_gemm;
	fake.alloc = be->alloc;
	be->alloc = fake_alloc;
	be->status = fake_status;
	be->last_error = fake_last_error;
	be->memory = fake_memory;
	be->snapshot_wait = fake_snapshot_wait;
	return 0;
}
