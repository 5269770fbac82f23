/* train/memory.h - how much memory this process may still allocate, before it tries
 *
 * Linux overcommits: a model too large for RAM is not refused by malloc but killed by the
 * OOM killer once its pages are touched, with no message. ckpt-train therefore compares what
 * a run needs with what is available before it allocates anything large.
 */
#ifndef TRAIN_MEMORY_H
#define TRAIN_MEMORY_H

#include <stddef.h>
#include <stdint.h>

/**
 * The bytes this process can still allocate and touch: the least of MemAvailable
 * (/proc/meminfo), RLIMIT_AS less the address space in use, RLIMIT_DATA less the data in use,
 * and every enclosing cgroup v2's memory.max less its memory.current. Limits that cannot be
 * read are left out.
 * @param out   receives the bytes (UINT64_MAX when nothing could be read)
 * @param what  receives which limit is the least, for messages ("MemAvailable",
 *              "ulimit -v", "ulimit -d", "cgroup memory.max"); "" when none
 */
void train_memory_available(uint64_t *out, char *what, size_t what_len);

/** @p bytes as people read them: "512 MiB", "17.2 GiB". */
void train_memory_format(char *buf, size_t len, double bytes);

#endif
