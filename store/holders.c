/* store/holders.c - the processes holding a flock(2) on a file, from /proc/locks
 *
 * Read-only and best effort: a missing /proc or a holder that exits meanwhile yields a shorter
 * list, never an error, as the list only makes a refusal's message more useful.
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
#include <unistd.h>

#include "ckpt/holders.h"

/* "pid N (comm)" or "pid N" into @p buf */
static void describe_pid(char *buf, size_t len, long pid)
{
	char path[64], comm[64] = "";
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	FILE *f = fopen(path, "r");
	if (f) {
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		fclose(f);
	}
	comm[strcspn(comm, "\n")] = '\0';
	if (comm[0])
		snprintf(buf, len, "pid %ld (%s)", pid, comm);
	else
		snprintf(buf, len, "pid %ld", pid);
}

int ckpt_flock_holders(char *out, size_t len, const char *file)
{
	if (len)
		out[0] = '\0';
	struct stat st;
	if (stat(file, &st) != 0)
		return 0;
	FILE *f = fopen("/proc/locks", "r");
	if (!f)
		return 0;
	char line[512];
	int n = 0;
	size_t used = 0;
	long self = (long)getpid();
	while (fgets(line, sizeof(line), f)) {
		/* "1: FLOCK  ADVISORY  READ 1234 08:01:5678 0 EOF"; blocked waiters ("->") skipped */
		char kind[16], type[16], mode[16];
		long pid;
		unsigned maj, min;
		unsigned long long ino;
		if (strstr(line, "->") ||
		    sscanf(line, "%*[^:]: %15s %15s %15s %ld %x:%x:%llu", kind, type, mode, &pid,
		           &maj, &min, &ino) != 7)
			continue;
		if (strcmp(kind, "FLOCK") != 0 || pid == self || ino != (unsigned long long)st.st_ino ||
		    maj != major(st.st_dev) || min != minor(st.st_dev))
			continue;
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

int ckpt_writer_lock(const char *store_path, int *out_fd, char *who, size_t wholen)
{
	*out_fd = -1;
	if (wholen)
		who[0] = '\0';
	char *file = NULL;
	if (asprintf(&file, "%s/data.mdb", store_path) < 0)
		return -ENOMEM;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		free(file);
		return e;
	}
	int state = CKPT_WRITER_LOCKED;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			*out_fd = fd;
			free(file);
			return CKPT_WRITER_LOCKED;
		}
		if (errno != EWOULDBLOCK) { /* ENOLCK, EOPNOTSUPP: a file system without flock */
			state = CKPT_WRITER_LOCKED;
			break;
		}
		/* a shared lock is still granted while only lockless readers hold theirs */
		int probe = open(file, O_RDONLY | O_CLOEXEC);
		bool readers_only = probe >= 0 && flock(probe, LOCK_SH | LOCK_NB) == 0;
		if (probe >= 0)
			close(probe);
		state = readers_only ? CKPT_WRITER_READERS : CKPT_WRITER_BUSY;
	}
	if (state != CKPT_WRITER_LOCKED)
		ckpt_flock_holders(who, wholen, file);
	close(fd);
	free(file);
	return state;
}
