/* train/memory.h - how much memory this process may still allocate, before it tries
 *
 * Linux overcommits: a model too large for RAM is not refused by malloc but killed by the
 * OOM killer once its pages are touched, with no message. ckpt-train therefore compares what
 * a run needs with what is available before it allocates anything large.
 */
#ifndef TRAIN_MEMORY_H
#define TRAIN_MEMORY_H

#include <stdbool.h>
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

/**
 * The address space this process may still map under RLIMIT_AS (ulimit -v): the limit less
 * VmSize. A store's LMDB map counts here (it is file-backed, so not against MemAvailable).
 * @return false, with @p out untouched, when there is no such limit or it cannot be read
 */
bool train_memory_address_space(uint64_t *out);

/**
 * The address space mapped now for reservations that may or may not be mapped yet when a run
 * is checked, depending on the limit the process started under and on thread timing:
 * OpenBLAS's 128 MiB per-thread buffers (mapped at start when the limit allows them) and
 * 64 MiB regions that hold no access yet (a thread's malloc arena). Counting these once,
 * whether mapped or not, makes the limit a run needs the same for the same run. Threads map
 * these while the process runs: @p mapped receives the whole address space mapped (VmSize)
 * as the same reading of /proc/self/maps saw it.
 * @return the bytes (0, and @p mapped 0, when /proc/self/maps cannot be read)
 */
uint64_t train_memory_mapped_reservations(uint64_t *mapped);

/** @p bytes as people read them: "512 MiB", "17.2 GiB". */
void train_memory_format(char *buf, size_t len, double bytes);

#endif
