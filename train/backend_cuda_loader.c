/* train/backend_cuda_loader.c - find and load the CUDA plug-in for --device cuda[:N]
 *
 * The plug-in is looked up, in order, at $CKPT_TRAIN_CUDA_PLUGIN, beside the running program
 * and in ../lib relative to it (build/bin -> build/lib, PREFIX/bin -> PREFIX/lib). Every
 * failure is one message naming the device: no plug-in (a build without nvcc), a plug-in
 * whose CUDA libraries are missing, no CUDA device, an index out of range.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/backend.h"
#include "train/cuda/backend_cuda.h"
#include "train/error.h"

int train_cuda_parse_device(int *out_index, const char *device)
{
	*out_index = 0;
	if (strcmp(device, "cuda") == 0)
		return 0;
	if (strncmp(device, "cuda:", 5) == 0) {
		const char *p = device + 5;
		char *end;
		errno = 0;
		long v = strtol(p, &end, 10);
		/* as torch reads a device: no sign, no leading zero, and as the mount's map_location
		 * and the store's device tags take it, at most 127 */
		if (*p >= '0' && *p <= '9' && !(p[0] == '0' && p[1]) && !errno && *end == '\0' &&
		    v >= 0 && v <= 127) {
			*out_index = (int)v;
			return 0;
		}
	}
	return train_fail(-EINVAL, "unknown device '%s' (expected cpu, cuda or cuda:N, N 0-127)",
	                  device);
}

/* Directory of the running program, without the trailing slash; "" if unknown. */
static void program_dir(char *buf, size_t len)
{
	buf[0] = '\0';
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(buf, len, "%s", exe);
}

int train_cuda_backend_create(train_backend **out, const char *device)
{
	*out = NULL;
	int index;
	int rc = train_cuda_parse_device(&index, device);
	if (rc)
		return rc;
	char dir[PATH_MAX], candidates[3][PATH_MAX + 64];
	int ncand = 0;
	const char *env = getenv("CKPT_TRAIN_CUDA_PLUGIN");
	if (env && *env) {
		snprintf(candidates[ncand++], sizeof(candidates[0]), "%s", env);
	} else {
		program_dir(dir, sizeof(dir));
		if (dir[0]) {
			snprintf(candidates[ncand++], sizeof(candidates[0]), "%s/%s", dir,
			         TRAIN_CUDA_PLUGIN_NAME);
			snprintf(candidates[ncand++], sizeof(candidates[0]), "%s/../lib/%s", dir,
			         TRAIN_CUDA_PLUGIN_NAME);
		}
	}
	const char *path = NULL;
	for (int i = 0; i < ncand && !path; i++)
		if (access(candidates[i], F_OK) == 0)
			path = candidates[i];
	if (!path)
		return train_fail(-ENODEV,
		                  "device %s is not supported by this build (no CUDA backend: %s "
		                  "not found%s%s%s%s; build with nvcc installed, or make CUDA=1)",
		                  device, TRAIN_CUDA_PLUGIN_NAME, ncand ? " at " : "",
		                  ncand ? candidates[0] : "", ncand > 1 ? " nor at " : "",
		                  ncand > 1 ? candidates[1] : "");
	void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return train_fail(
		    -ENODEV,
		    "device %s is not supported on this machine: cannot load the CUDA "
		    "backend (%s); is the CUDA runtime (libcudart, libcublas) "
		    "installed?",
		    device, dlerror());
	train_cuda_plugin_abi_fn abi;
	train_cuda_plugin_create_fn create;
	*(void **)&abi = dlsym(lib, TRAIN_CUDA_PLUGIN_ABI_SYMBOL);
	*(void **)&create = dlsym(lib, TRAIN_CUDA_PLUGIN_CREATE_SYMBOL);
	if (!abi || !create || abi() != TRAIN_CUDA_PLUGIN_ABI) {
		dlclose(lib);
		return train_fail(-ENODEV,
		                  "device %s is not supported: %s is not a CUDA backend of this "
		                  "ckpt-train (missing symbols, or not ABI %d)",
		                  device, path, TRAIN_CUDA_PLUGIN_ABI);
	}
	char msg[512] = "";
	rc = create(out, index, msg, sizeof(msg));
	if (rc) {
		/* the library stays loaded: CUDA's runtime may have registered exit handlers */
		if (rc == -ENODEV)
			return train_fail(rc, "device %s is not supported on this machine: %s",
			                  device, msg[0] ? msg : "no CUDA device");
		return train_fail(rc, "--device %s: %s", device,
		                  msg[0] ? msg : "cannot create the CUDA backend");
	}
	return 0;
}
