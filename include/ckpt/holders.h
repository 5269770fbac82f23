/* include/ckpt/holders.h - the store's flocks and which processes hold them
 *
 * One writer at a time: ckpt-train holds an exclusive flock on data.mdb for its whole run, and
 * ckpt gc (with or without --compact) an exclusive flock on the store directory as well while
 * it runs; ckpt_store_create() holds the directory's while it creates, ckpt_store_discard()
 * while it removes, and a read-only ckpt_store_open() that found part of a store waits for
 * those and holds it shared for one more open. Writers wait for a gc; a gc and a trainer refuse
 * each other. A refusal that says "in use" should say by whom: ckpt-train and ckpt gc name the
 * processes whose flock on data.mdb keeps them out (a trainer, or a reader without lock.mdb).
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

/**
 * The command name of process @p pid ("ckptfs", "ckpt-train"), from /proc/PID/comm, into
 * @p out (at most 15 characters and the NUL; control characters become '?'); "" when it
 * cannot be read.
 */
void ckpt_process_name(char *out, size_t len, long pid);

/** What ckpt_writer_lock() found. */
enum ckpt_writer_lock_state {
	CKPT_WRITER_LOCKED = 0,   /**< the lock is ours (or the file system has no flock) */
	CKPT_WRITER_BUSY = 1,     /**< another writer (ckpt-train) holds it */
	CKPT_WRITER_READERS = 2,  /**< only readers without lock.mdb hold theirs (shared) */
};

/**
 * Take the writers' lock of the store at @p store_path: an exclusive, non-blocking flock on its
 * data.mdb, which ckpt-train holds for its whole run and ckpt gc while it runs, and which
 * read-only openers of a store without a writable lock.mdb hold shared. It first waits for a
 * ckpt gc or compaction that runs now (ckpt_gc_lock()), however long it takes (signals do not
 * end the wait), then locks the data.mdb that leaves. Tried twice, so a writer that has just
 * ended leaves nothing to wait for.
 * @param out_fd  receives the descriptor of data.mdb to close() when done: locked, or on a
 *                file system without flock, where there is nothing to guard with; -1 when
 *                not locked
 * @param who     receives the holders when busy (ckpt_flock_holders()), "" if unknown
 * @param wholen  size of @p who
 * @return a ckpt_writer_lock_state, or a negative errno when data.mdb cannot be opened
 */
int ckpt_writer_lock(const char *store_path, int *out_fd, char *who, size_t wholen);

/** The descriptors ckpt_gc_lock() holds locked; -1 for each one not held. */
typedef struct ckpt_gc_lock_fds {
	int dir_fd;  /**< the store directory, flocked exclusively */
	int data_fd; /**< data.mdb, flocked exclusively; open for writing where it can be */
} ckpt_gc_lock_fds;

/**
 * Take what ckpt gc and a compaction hold while they run: first an exclusive flock on the
 * store directory, waiting for another gc that holds it (writers that call ckpt_writer_lock()
 * meanwhile wait in turn), then the writers' lock on data.mdb as ckpt_writer_lock() takes it,
 * without waiting: a trainer or a reader without lock.mdb refuses it.
 * @param out     receives the locked descriptors (ckpt_gc_unlock() releases them); on any
 *                result but CKPT_WRITER_LOCKED nothing is held
 * @param who     receives the holders of data.mdb's flock when refused, "" if unknown
 * @return a ckpt_writer_lock_state, or a negative errno when data.mdb cannot be opened
 */
int ckpt_gc_lock(ckpt_gc_lock_fds *out, const char *store_path, char *who, size_t wholen);

/** Release what ckpt_gc_lock() took, the directory last; sets both descriptors to -1. */
void ckpt_gc_unlock(ckpt_gc_lock_fds *lock);

/** Remove @p store_path/lock.mdb if no process has the store's environment open (each holds
 *  LMDB's shared fcntl lock on its first byte): for a lock.mdb that a failed open or create of
 *  this process made. A lock.mdb in use stays. */
void ckpt_drop_unused_lock_file(const char *store_path);

#ifdef __cplusplus
}
#endif

#endif
