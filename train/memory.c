/* train/memory.c - the memory this process may still allocate (MemAvailable, rlimits, cgroup)
 *
 * Every source is read from /proc and /sys at the time of the call; a source that is missing
 * or unreadable (no cgroup v2, a container without /proc/meminfo) is left out, never guessed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "train/memory.h"

/* the value in kB of the line "@p key: N kB" of @p path, times 1024; false if absent */
static bool proc_kb(const char *path, const char *key, uint64_t *out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char line[256];
	size_t klen = strlen(key);
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long long kb;
		if (strncmp(line, key, klen) == 0 && line[klen] == ':' &&
		    sscanf(line + klen + 1, "%llu", &kb) == 1) {
			*out = (uint64_t)kb * 1024;
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* a cgroup file holding one number ("max" is no limit); false if absent or "max" */
static bool cgroup_value(const char *dir, const char *name, uint64_t *out)
{
	char path[4400];
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	unsigned long long v;
	bool ok = fscanf(f, "%llu", &v) == 1;
	fclose(f);
	if (ok)
		*out = v;
	return ok;
}

static void take_least(uint64_t *least, char *what, size_t what_len, uint64_t value,
                       const char *name)
{
	if (value < *least) {
		*least = value;
		snprintf(what, what_len, "%s", name);
	}
}

/* the room left under the memory.max of the process's cgroup v2 and of each ancestor */
static void cgroup_room(uint64_t *least, char *what, size_t what_len)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	if (!f)
		return;
	char line[4200], dir[4200] = "";
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0) { /* the unified hierarchy */
			snprintf(dir, sizeof(dir), "%s", line + 3);
			dir[strcspn(dir, "\n")] = '\0';
		}
	fclose(f);
	for (;;) {
		uint64_t max, current;
		if (dir[0] && cgroup_value(dir, "memory.max", &max) &&
		    cgroup_value(dir, "memory.current", &current))
			take_least(least, what, what_len, max > current ? max - current : 0,
			           "cgroup memory.max");
		char *slash = strrchr(dir, '/');
		if (!slash || dir[0] == '\0')
			break;
		*slash = '\0';
	}
}

void train_memory_available(uint64_t *out, char *what, size_t what_len)
{
	uint64_t least = UINT64_MAX, v, used;
	if (what_len)
		what[0] = '\0';
	if (proc_kb("/proc/meminfo", "MemAvailable", &v))
		take_least(&least, what, what_len, v, "MemAvailable");
	struct rlimit rl;
	if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    proc_kb("/proc/self/status", "VmSize", &used))
		take_least(&least, what, what_len, rl.rlim_cur > used ? rl.rlim_cur - used : 0,
		           "ulimit -v");
	if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    proc_kb("/proc/self/status", "VmData", &used))
		take_least(&least, what, what_len, rl.rlim_cur > used ? rl.rlim_cur - used : 0,
		           "ulimit -d");
	cgroup_room(&least, what, what_len);
	*out = least;
}

bool train_memory_address_space(uint64_t *out)
{
	struct rlimit rl;
	uint64_t used;
	if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    !proc_kb("/proc/self/status", "VmSize", &used))
		return false;
	*out = rl.rlim_cur > used ? rl.rlim_cur - used : 0;
	return true;
}

uint64_t train_memory_mapped_reservations(uint64_t *mapped)
{
	const uint64_t buffer = 128ull << 20, arena = 64ull << 20;
	*mapped = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return 0;
	char line[4400];
	uint64_t total = 0, run_start = 0, run_end = 0;
	*mapped = 0;
	bool run_none = false; /* the contiguous anonymous run holds a ---p part */
	for (;;) {
		unsigned long long start, end;
		char perms[8], path[4100] = "";
		bool ok = fgets(line, sizeof(line), f) != NULL;
		int n = ok ? sscanf(line, "%llx-%llx %7s %*s %*s %*s %4099s", &start, &end, perms,
		                    path)
		           : 0;
		bool anon = n >= 3 && path[0] == '\0';
		if (!anon || start != run_end) { /* the run before ends here */
			if (run_none && run_end - run_start == arena)
				total += arena;
			run_start = start, run_none = false;
		}
		if (!ok)
			break;
		if (n >= 3 && strcmp(path, "[vsyscall]") != 0) /* not in VmSize */
			*mapped += end - start;
		if (!anon) {
			run_end = 0;
			continue;
		}
		run_end = end;
		run_none |= strcmp(perms, "---p") == 0;
		if (strcmp(perms, "rw-p") == 0 && end - start == buffer)
			total += buffer;
	}
	fclose(f);
	return total;
}

void train_memory_format(char *buf, size_t len, double bytes)
{
	static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	int u = 0;
	while (bytes >= 1024 && u < 6) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f bytes", bytes);
	else
		snprintf(buf, len, "%.*f %s", bytes < 10 ? 1 : 0, bytes, units[u]);
}
