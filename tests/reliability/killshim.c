/* tests/reliability/killshim.c - LD_PRELOAD fault injector: SIGKILL at the Nth store write
 *
 * Counts the calls that write to or sync a store file (data.mdb, lock.mdb, and the copy
 * data.mdb.compact that `ckpt gc --compact` renames over data.mdb, the rename included) and
 * kills the process with SIGKILL right before (or right after) the Nth one, so a crash lands
 * inside a commit at a chosen point: between page writes, before or after the meta page,
 * before or after fdatasync. Without CKPT_KILL_AT it only counts.
 *
 *   CKPT_KILL_AT=N         kill at the Nth store I/O call (1-based); unset: never
 *   CKPT_KILL_AFTER=1      let the Nth call complete first (default: kill before it)
 *   CKPT_IO_COUNT_FILE=F   at normal exit, write the number of store I/O calls seen to F
 *
 * Built by tests/reliability/crash_trials.sh with `cc -shared -fPIC ... -ldl`; not part of
 * any library.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static unsigned long io_calls;
static unsigned long kill_at;
static int kill_after;

__attribute__((constructor)) static void shim_init(void)
{
	const char *at = getenv("CKPT_KILL_AT");
	const char *after = getenv("CKPT_KILL_AFTER");
	kill_at = at ? strtoul(at, NULL, 10) : 0;
	kill_after = after && after[0] == '1';
}

__attribute__((destructor)) static void shim_fini(void)
{
	const char *file = getenv("CKPT_IO_COUNT_FILE");
	if (!file)
		return;
	FILE *f = fopen(file, "w");
	if (f) {
		fprintf(f, "%lu\n", io_calls);
		fclose(f);
	}
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_store_path(const char *path)
{
	return ends_with(path, "/data.mdb") || ends_with(path, "/lock.mdb") ||
	       ends_with(path, "/data.mdb.compact");
}

static int is_store_fd(int fd)
{
	char link[64], target[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	return is_store_path(target);
}

/* Called around every store I/O call: before == 1 before it runs, 0 after. */
static void tick(int before)
{
	if (before)
		io_calls++;
	if (kill_at && io_calls == kill_at && before != kill_after)
		kill(getpid(), SIGKILL);
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

#define WRAP_FD(ret, name, params, args)                                                       \
	ret name params                                                                           \
	{                                                                                         \
		static __typeof__(&name) real;                                                        \
		if (!real)                                                                            \
			real = REAL(name);                                                                \
		int store = is_store_fd(fd);                                                          \
		if (store)                                                                            \
			tick(1);                                                                          \
		ret r = real args;                                                                    \
		if (store)                                                                            \
			tick(0);                                                                          \
		return r;                                                                             \
	}

WRAP_FD(ssize_t, write, (int fd, const void *buf, size_t n), (fd, buf, n))
WRAP_FD(ssize_t, pwrite, (int fd, const void *buf, size_t n, off_t off), (fd, buf, n, off))
WRAP_FD(ssize_t, pwrite64, (int fd, const void *buf, size_t n, off64_t off), (fd, buf, n, off))
WRAP_FD(ssize_t, writev, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt))
WRAP_FD(ssize_t, pwritev, (int fd, const struct iovec *iov, int cnt, off_t off),
        (fd, iov, cnt, off))
WRAP_FD(int, fdatasync, (int fd), (fd))
WRAP_FD(int, fsync, (int fd), (fd))
WRAP_FD(int, ftruncate, (int fd, off_t len), (fd, len))

int rename(const char *from, const char *to)
{
	static __typeof__(&rename) real;
	if (!real)
		real = REAL(rename);
	int store = is_store_path(to);
	if (store)
		tick(1);
	int r = real(from, to);
	if (store)
		tick(0);
	return r;
}

int msync(void *addr, size_t len, int flags)
{
	static __typeof__(&msync) real;
	if (!real)
		real = REAL(msync);
	tick(1);
	int r = real(addr, len, flags);
	tick(0);
	return r;
}
