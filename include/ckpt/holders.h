/* include/ckpt/holders.h - which processes hold a flock(2) on a store file
 *
 * A refusal that says "in use" should say by whom: ckpt-train and ckpt gc name the processes
 * whose flock on data.mdb keeps them out (another trainer, or a reader without lock.mdb).
 */
#ifndef CKPT_HOLDERS_H
#define CKPT_HOLDERS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Describe the processes other than this one that hold a FLOCK lock on @p file, as listed in
 * /proc/locks by the file's device and inode: "pid 1234 (ckptfs), pid 99" (the command name
 * from /proc/PID/comm, or the pid alone where that cannot be read).
 * @param out   receives the text, NUL-terminated; "" when none is found (no /proc, or the
 *              holders have gone)
 * @param len   size of @p out; a longer list ends in ", ..."
 * @param file  path of the locked file
 * @return the number of holders found (0 when @p file or /proc/locks cannot be read)
 */
int ckpt_flock_holders(char *out, size_t len, const char *file);

/** What ckpt_writer_lock() found. */
enum ckpt_writer_lock_state {
	CKPT_WRITER_LOCKED = 0,   /**< the lock is ours (or the file system has no flock) */
	CKPT_WRITER_BUSY = 1,     /**< another writer (ckpt-train, ckpt gc) holds it */
	CKPT_WRITER_READERS = 2,  /**< only readers without lock.mdb hold theirs (shared) */
};

/**
 * Take the writers' lock of the store at @p store_path: an exclusive, non-blocking flock on its
 * data.mdb, which ckpt-train holds for its whole run and ckpt gc for its transaction, and which
 * read-only openers of a store without a writable lock.mdb hold shared. Tried twice, so a
 * writer that has just ended leaves nothing to wait for.
 * @param out_fd  receives the locked descriptor to close() when done, or -1 (not locked, or a
 *                file system without flock, where there is nothing to guard with)
 * @param who     receives the holders when busy (ckpt_flock_holders()), "" if unknown
 * @param wholen  size of @p who
 * @return a ckpt_writer_lock_state, or a negative errno when data.mdb cannot be opened
 */
int ckpt_writer_lock(const char *store_path, int *out_fd, char *who, size_t wholen);

#ifdef __cplusplus
}
#endif

#endif
