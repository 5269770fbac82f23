/* store/holders.c - the store's flocks, and the processes holding them (from /proc/locks)
 *
 * Two flocks: data.mdb's, the writers' lock (ckpt-train for its whole run, ckpt gc, readers
 * without lock.mdb shared), and the store directory's, which ckpt gc holds exclusively for as
 * long as it runs, so that writers wait for a gc or a compaction instead of being refused and
 * open the data.mdb it leaves; a create and a removal hold it exclusively for moments, and a
 * reader that found part of a store shared for one open, letting a waiting create go first.
 * The directory's is always taken first and released last.
 * LMDB's users of a store hold fcntl locks on its lock.mdb (a shared one on byte 0 while the
 * environment is open): store_env_holders() names them, for an open that must wait for them.
 * The holders list is read-only and best effort: a missing /proc or a holder that exits
 * meanwhile yields a shorter list, never an error, as it only makes a refusal clearer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/holders.h"
#include "store/store_int.h"

void ckpt_process_name(char *out, size_t len, long pid)
{
	if (!out || !len)
		return;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	FILE *f = fopen(path, "r");
	if (!f || !fgets(out, (int)len, f))
		out[0] = '\0';
	if (f)
		fclose(f);
	out[strcspn(out, "\n")] = '\0';
	for (char *p = out; *p; p++) /* one line, whatever a process calls itself */
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* "pid N (comm)" or "pid N" into @p buf */
static void describe_pid(char *buf, size_t len, long pid)
{
	char comm[64];
	ckpt_process_name(comm, sizeof(comm), pid);
	if (comm[0])
		snprintf(buf, len, "pid %ld (%s)", pid, comm);
	else
		snprintf(buf, len, "pid %ld", pid);
}

/* Whether @p line of /proc/locks ("1: FLOCK  ADVISORY  READ 1234 08:01:5678 0 EOF") is a
 * granted lock (blocked waiters, "->", are not) on the file @p st; its kind ("FLOCK",
 * "POSIX"), mode ("READ", "WRITE") and pid then in @p kind, @p mode (16 bytes each), @p pid. */
static bool lock_line_on(const char *line, const struct stat *st, char *kind, char *mode,
                         long *pid)
{
	char type[16];
	unsigned maj, min;
	unsigned long long ino;
	return !strstr(line, "->") &&
	       sscanf(line, "%*[^:]: %15s %15s %15s %ld %x:%x:%llu", kind, type, mode, pid, &maj,
	              &min, &ino) == 7 &&
	       ino == (unsigned long long)st->st_ino && maj == major(st->st_dev) &&
	       min == minor(st->st_dev);
}

/* The processes holding locks of kind @p kind ("FLOCK", or "POSIX": fcntl) on @p file, each
 * named once, of mode @p only ("READ": shared, "WRITE": exclusive) when not NULL; *@p by_self,
 * when not NULL, counts this process's own locks of that mode on @p file (-1 when /proc/locks
 * cannot be read) */
static int lock_holders(char *out, size_t len, const char *file, const char *kind_wanted,
                        const char *only, int *by_self)
{
	if (len)
		out[0] = '\0';
	if (by_self)
		*by_self = -1;
	struct stat st;
	if (stat(file, &st) != 0)
		return 0;
	FILE *f = fopen("/proc/locks", "r");
	if (!f)
		return 0;
	if (by_self)
		*by_self = 0;
	char line[512];
	int n = 0;
	size_t used = 0;
	long self = (long)getpid();
	long named[64]; /* LMDB's users hold two fcntl locks on lock.mdb each: name them once */
	size_t nnamed = 0;
	while (fgets(line, sizeof(line), f)) {
		char kind[16], mode[16];
		long pid;
		if (!lock_line_on(line, &st, kind, mode, &pid) || strcmp(kind, kind_wanted) != 0 ||
		    (only && strcmp(mode, only) != 0))
			continue;
		if (pid == self) {
			if (by_self)
				(*by_self)++;
			continue;
		}
		bool seen = false;
		for (size_t i = 0; i < nnamed && !seen && strcmp(kind, "POSIX") == 0; i++)
			seen = named[i] == pid;
		if (seen)
			continue;
		if (nnamed < sizeof(named) / sizeof(named[0]))
			named[nnamed++] = pid;
		char who[128];
		describe_pid(who, sizeof(who), pid);
		if (used < len) {
			int w = snprintf(out + used, len - used, "%s%s", n ? ", " : "", who);
			if (w < 0 || (size_t)w >= len - used) {
				if (len >= 6)
					snprintf(out + len - 6, 6, ", ...");
				used = len;
			} else {
				used += (size_t)w;
			}
		}
		n++;
	}
	fclose(f);
	return n;
}

static int flock_holders(char *out, size_t len, const char *file, const char *only, int *by_self)
{
	return lock_holders(out, len, file, "FLOCK", only, by_self);
}

int ckpt_flock_holders(char *out, size_t len, const char *file)
{
	STORE_NEED(out, "ckpt_flock_holders");
	STORE_NEED(file, "ckpt_flock_holders");
	return flock_holders(out, len, file, NULL, NULL);
}

int store_env_holders(char *out, size_t len, const char *store_path)
{
	char file[4200];
	if (len)
		out[0] = '\0';
	if ((size_t)snprintf(file, sizeof(file), "%s/lock.mdb", store_path) >= sizeof(file))
		return 0;
	return lock_holders(out, len, file, "POSIX", NULL, NULL);
}

/* Whether process @p pid maps a data.mdb in the directory @p dir (the same directory, by
 * device and inode: a path through a bind mount or a symlink counts) that is not the file
 * @p data. Its maps name a replaced file by its path, " (deleted)" appended. */
static bool maps_other_file(long pid, const struct stat *dir, const struct stat *data)
{
	char maps[64];
	snprintf(maps, sizeof(maps), "/proc/%ld/maps", pid);
	FILE *f = fopen(maps, "r");
	if (!f)
		return false; /* gone, or not ours to read: cannot tell */
	char *line = NULL;
	size_t cap = 0;
	bool other = false;
	while (!other && getline(&line, &cap, f) > 0) {
		/* "7f..-7f.. r--s 00000000 08:01 5678   /path/data.mdb (deleted)" */
		unsigned maj, min;
		unsigned long long ino;
		int at = 0;
		if (sscanf(line, "%*s %*s %*s %x:%x %llu %n", &maj, &min, &ino, &at) != 3 || !at)
			continue;
		char *name = line + at;
		size_t nlen = strcspn(name, "\n");
		if (nlen >= 10 && memcmp(name + nlen - 10, " (deleted)", 10) == 0)
			nlen -= 10;
		if (nlen < 10 || name[0] != '/' || memcmp(name + nlen - 9, "/data.mdb", 9) != 0 ||
		    (ino == (unsigned long long)data->st_ino && maj == major(data->st_dev) &&
		     min == minor(data->st_dev)))
			continue;
		name[nlen - 9] = '\0'; /* its directory */
		struct stat st;
		other = stat(nlen == 9 ? "/" : name, &st) == 0 && st.st_dev == dir->st_dev &&
		        st.st_ino == dir->st_ino;
	}
	free(line);
	fclose(f);
	return other;
}

bool store_env_holder_maps_other(const char *store_path, const struct stat *data)
{
	char file[4200];
	struct stat dir, lock;
	if (stat(store_path, &dir) != 0 ||
	    (size_t)snprintf(file, sizeof(file), "%s/lock.mdb", store_path) >= sizeof(file) ||
	    stat(file, &lock) != 0)
		return false;
	FILE *f = fopen("/proc/locks", "r");
	if (!f)
		return false;
	char line[512];
	long self = (long)getpid();
	bool other = false;
	while (!other && fgets(line, sizeof(line), f)) {
		char kind[16], mode[16];
		long pid;
		if (lock_line_on(line, &lock, kind, mode, &pid) && strcmp(kind, "POSIX") == 0 &&
		    pid != self && pid > 0)
			other = maps_other_file(pid, &dir, data);
	}
	fclose(f);
	return other;
}

int store_flock_readers(char *out, size_t len, const char *file)
{
	return flock_holders(out, len, file, "READ", NULL);
}

int store_flock_writers(char *out, size_t len, const char *file)
{
	return flock_holders(out, len, file, "WRITE", NULL);
}

int store_dir_wait_ms = 60 * 1000;

/* flock lets a shared lock in while an exclusive one waits, so readers that come and go could
 * keep a create or removal out for as long as they overlap. Such a waiter shows itself by a
 * read lock on byte 0 of its descriptor of the directory (an open file description's, so that
 * no other close in the process drops it; a directory opens for reading only, hence a read
 * lock, which a test for a write lock finds), and shared flocks wait while it is there. */
static bool show_writer_waiting(int fd, bool waiting)
{
	struct flock fl = {.l_type = waiting ? F_RDLCK : F_UNLCK, .l_whence = SEEK_SET, .l_len = 1};
	return fcntl(fd, F_OFD_SETLK, &fl) == 0;
}

/* Whether another open of @p fd's file shows a waiting writer (no: where it cannot be told) */
static bool writer_waiting(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1};
	return fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

bool store_dir_writer_waiting(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool waiting = writer_waiting(fd);
	close(fd);
	return waiting;
}

/* flock(@p fd, @p how | LOCK_NB), a shared one only while no writer waits: 0, or the errno */
static int try_flock(int fd, int how)
{
	if (how == LOCK_SH && writer_waiting(fd))
		return EWOULDBLOCK;
	return flock(fd, how | LOCK_NB) == 0 ? 0 : errno;
}

int store_flock_wait(int fd, int how, int timeout_ms)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	long pause_ns = 1000 * 1000; /* a create takes milliseconds: look often, then less often */
	bool shown = false;
	int rc;
	while ((rc = try_flock(fd, how)) != 0) {
		if (rc == EINTR)
			continue;
		if (rc != EWOULDBLOCK)
			break; /* ENOLCK, EOPNOTSUPP: a file system without flock */
		if (how == LOCK_EX && !shown)
			shown = show_writer_waiting(fd, true);
		clock_gettime(CLOCK_MONOTONIC, &now);
		long long waited_ms = (now.tv_sec - start.tv_sec) * 1000LL +
		                      (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited_ms >= timeout_ms)
			break;
		struct timespec pause = {0, pause_ns};
		nanosleep(&pause, NULL);
		if (pause_ns < 10 * 1000 * 1000)
			pause_ns *= 2;
	}
	if (shown)
		show_writer_waiting(fd, false);
	return -rc;
}

/* store_dir_lock_wait() of the directory at @p dir now */
static int dir_lock_wait_once(int *out_fd, const char *dir, char *who, size_t wholen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : 1;
	int rc = -try_flock(fd, LOCK_SH);
	if (rc == -EWOULDBLOCK || rc == -EINTR) {
		/* a lock of this process's own (ckpt gc holds it while it opens the store) is
		 * never released by waiting */
		int by_self;
		if (flock_holders(who, wholen, dir, "WRITE", &by_self) == 0 && by_self > 0)
			rc = 1;
		else
			rc = store_flock_wait(fd, LOCK_SH, store_dir_wait_ms);
	}
	if (rc == 0) {
		*out_fd = fd;
		return 0;
	}
	close(fd);
	if (rc != -EWOULDBLOCK)
		return 1;
	flock_holders(who, wholen, dir, "WRITE", NULL); /* who holds it now */
	return -EWOULDBLOCK;
}

int store_dir_lock_wait(int *out_fd, const char *dir, char *who, size_t wholen)
{
	*out_fd = -1;
	if (wholen)
		who[0] = '\0';
	/* the lock must be the directory's at @p dir still: a removal (ckpt_store_discard())
	 * may have removed the one it was waited for on, and a create made a new one */
	for (int attempt = 0; attempt < 100; attempt++) {
		int rc = dir_lock_wait_once(out_fd, dir, who, wholen);
		struct stat locked, now;
		if (rc != 0 || fstat(*out_fd, &locked) != 0 || stat(dir, &now) != 0 ||
		    (locked.st_dev == now.st_dev && locked.st_ino == now.st_ino))
			return rc;
		close(*out_fd);
		*out_fd = -1;
	}
	return 1;
}

bool store_dir_locked_by_other(char *who, size_t wholen, const char *dir)
{
	if (wholen)
		who[0] = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool locked = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close(fd); /* releases a lock it took */
	int by_self;
	return locked && (flock_holders(who, wholen, dir, "WRITE", &by_self) > 0 || by_self <= 0);
}

/* The store directory's flock, taken @p how (LOCK_SH or LOCK_EX), waiting for it: ckpt gc
 * holds it exclusively for as long as it runs. -1 where the directory cannot be opened or its
 * file system has no flock, where there is nothing to wait for. */
static int lock_store_dir(const char *store_path, int how)
{
	int fd = open(store_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (flock(fd, how) != 0) {
		if (errno != EINTR) { /* ENOLCK, EOPNOTSUPP, ... */
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* The writers' flock on data.mdb (ckpt_writer_lock()'s contract), data.mdb opened for writing
 * when @p writable and the file can be written. */
static int lock_data_file(const char *store_path, bool writable, int *out_fd, char *who,
                          size_t wholen)
{
	*out_fd = -1;
	if (wholen)
		who[0] = '\0';
	char *file = NULL;
	if (asprintf(&file, "%s/data.mdb", store_path) < 0)
		return -ENOMEM;
	int fd = writable ? open(file, O_RDWR | O_CLOEXEC | O_NOFOLLOW) : -1;
	if (fd < 0 && (!writable || errno == EACCES || errno == EROFS))
		fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = -errno;
		free(file);
		return e;
	}
	int state = CKPT_WRITER_LOCKED;
	for (int attempt = 0; attempt < 2; attempt++) {
		/* ENOLCK, EOPNOTSUPP: a file system without flock, nothing to guard with */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
			*out_fd = fd;
			free(file);
			return CKPT_WRITER_LOCKED;
		}
		/* a shared lock is still granted while only lockless readers hold theirs */
		int probe = open(file, O_RDONLY | O_CLOEXEC);
		bool readers_only = probe >= 0 && flock(probe, LOCK_SH | LOCK_NB) == 0;
		if (probe >= 0)
			close(probe);
		state = readers_only ? CKPT_WRITER_READERS : CKPT_WRITER_BUSY;
	}
	ckpt_flock_holders(who, wholen, file);
	close(fd);
	free(file);
	return state;
}

int ckpt_writer_lock(const char *store_path, int *out_fd, char *who, size_t wholen)
{
	STORE_NEED(store_path, "ckpt_writer_lock");
	STORE_NEED(out_fd, "ckpt_writer_lock");
	if (!who)
		wholen = 0;
	/* a gc that runs now holds data.mdb's flock too, and a compaction replaces data.mdb:
	 * wait for them, then lock the data.mdb they leave */
	int dir = lock_store_dir(store_path, LOCK_SH);
	int state = lock_data_file(store_path, false, out_fd, who, wholen);
	if (dir >= 0)
		close(dir);
	return state;
}

int ckpt_gc_lock(ckpt_gc_lock_fds *out, const char *store_path, char *who, size_t wholen)
{
	STORE_NEED(out, "ckpt_gc_lock");
	STORE_NEED(store_path, "ckpt_gc_lock");
	if (!who)
		wholen = 0;
	out->dir_fd = lock_store_dir(store_path, LOCK_EX);
	int state = lock_data_file(store_path, true, &out->data_fd, who, wholen);
	if (state != CKPT_WRITER_LOCKED)
		ckpt_gc_unlock(out);
	return state;
}

void ckpt_gc_unlock(ckpt_gc_lock_fds *lock)
{
	if (!lock)
		return;
	if (lock->data_fd >= 0)
		close(lock->data_fd);
	if (lock->dir_fd >= 0) /* last: until then writers wait */
		close(lock->dir_fd);
	lock->data_fd = lock->dir_fd = -1;
}

void ckpt_drop_unused_lock_file(const char *store_path)
{
	char path[4200];
	if (!store_path ||
	    (size_t)snprintf(path, sizeof(path), "%s/lock.mdb", store_path) >= sizeof(path))
		return;
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
	if (fcntl(fd, F_SETLK, &fl) == 0)
		(void)unlink(path);
	close(fd); /* releases the lock */
}
