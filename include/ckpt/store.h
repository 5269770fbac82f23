/* include/ckpt/store.h - libckpt: checkpoints of training runs in an LMDB environment
 *
 * One store is one training run: a directory holding an LMDB environment (data.mdb, lock.mdb).
 * Each checkpoint (one per epoch) is written in ONE write transaction together with the run's
 * best/top-k bookkeeping and retention, so readers never see a partial checkpoint and a crash
 * at any instant leaves the last committed checkpoint intact. Readers work on MVCC snapshots:
 * any number of processes may read while one process writes.
 *
 * Conventions: functions return 0 or a negative error code (-errno values plus the CKPT_E*
 * codes below). On error a message with context (path, epoch, tensor) is kept per thread and
 * returned by ckpt_last_error(); commands print it once. Every close and free function accepts
 * NULL; a NULL handle or required pointer elsewhere is -EINVAL with a message (getters return 0
 * or NULL).
 *
 * Threads: ckpt_writer_put_tensor() of 4 MiB or more and ckpt_writer_commit() of chunks of
 * 8 MiB or more run part of their work on short-lived threads of their own (hashing; copying
 * into the transaction, up to 4, no more than the CPUs the caller may run on), joined before
 * they return. Those threads block asynchronous signals, so a program's handlers run on its
 * own threads; where no thread can be started, the calling thread does the work.
 *
 * fork(): a store handle belongs to the process that opened it (LMDB's environment must not be
 * used after fork()). In a child, every call that would use it (ckpt_snapshot_open(),
 * ckpt_writer_begin(), ckpt_writer_commit(), gc, retention, backup, ckpt_store_generation())
 * fails with -ECHILD, "store S: the handle was opened by process P; open the store again in
 * this process"; a child that needs the store opens it with ckpt_store_open() (the parent's
 * handle does not count as its own). ckpt_snapshot_close() and ckpt_store_close() in a child
 * free only the child's memory and leave LMDB's state, which the parent goes on using,
 * untouched; use no other call on a snapshot opened before the fork.
 *
 * Root and other users' directories: LMDB opens data.mdb and lock.mdb by path and follows
 * links, so a user who can write a store directory could replace them by links between the
 * library's checks and LMDB's open. In a process with euid 0, ckpt_store_create(),
 * ckpt_store_open(), ckpt_store_discard(), ckpt_store_compact() and ckpt_store_backup() (for
 * DEST) therefore work in a directory owned by another user (for a path that does not exist
 * yet: its parent) with that user's file-system uid and gid (setfsuid/setfsgid, for the
 * calling thread and the call only): a link leads only to files that user could open anyway,
 * and files made there are the user's. A file the user cannot open (root's files in the
 * user's directory) is then -EACCES, whose message says to run as that user or chown the
 * files. A root-owned directory that others may write (group other than root's, or everyone)
 * without the sticky bit is refused with -EPERM naming its mode. An open also refuses
 * (CKPT_ENOTSTORE) when the data file LMDB opened is not the regular file data.mdb that was
 * checked. Processes with another euid are unaffected.
 */
#ifndef CKPT_STORE_H
#define CKPT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Library version string, e.g. "0.1.0". */
#define CKPT_VERSION "0.1.0"
/** On-disk schema version written by this library. A store with a higher one is refused. */
#define CKPT_SCHEMA_VERSION 1

/* Error codes of our own, beside negative errno values. */
#define CKPT_ENOTSTORE (-20001) /**< path exists but is not a ckpt store (not LMDB / no meta) */
#define CKPT_ESCHEMA (-20002)   /**< store written by a newer schema version */
#define CKPT_ECORRUPT (-20003)  /**< a stored record is damaged (CRC-32, length, version, bounds) */
#define CKPT_ECHECKSUM (-20004) /**< tensor bytes do not match their stored CRC-32/hash */

/** Message describing the last error on this thread ("" if none). Valid until the next call
 *  into libckpt on this thread. */
const char *ckpt_last_error(void);

/** Short text for an error code (CKPT_E* or -errno). Never NULL. */
const char *ckpt_strerror(int rc);

/* ------------------------------------------------------------------------------------------
 * Stores
 * ---------------------------------------------------------------------------------------- */

typedef struct ckpt_store ckpt_store;

/** Whether a larger or smaller monitored metric is better. */
typedef enum ckpt_metric_mode {
	CKPT_MODE_MIN = 0,
	CKPT_MODE_MAX = 1,
} ckpt_metric_mode;

/**
 * Length of the well-formed UTF-8 sequence starting at @p s (1 to 4; RFC 3629: no overlong
 * form, surrogate or code point past U+10FFFF), 0 where none starts. Reads no byte past a NUL.
 */
size_t ckpt_utf8_sequence(const char *s);

/** True if @p s (NUL-terminated) is well-formed UTF-8, as names and run metadata must be. */
bool ckpt_utf8_valid(const char *s);

/**
 * Run-level metadata, written once when a store is created. Strings are UTF-8; NULL reads as "".
 * When returned by ckpt_store_meta() every pointer is owned by the store and valid until
 * ckpt_store_close().
 */
typedef struct ckpt_run_meta {
	const char *model;       /**< model description, e.g. "mlp" */
	const char *layers;      /**< e.g. "784,256,128,10" */
	const char *optimizer;   /**< "sgd", "adam", "adamw", in any case (torch's "Adam" too) */
	const char *hyperparams; /**< JSON object text: {"lr":0.1,"momentum":0.9,...}; NULL or "": none */
	const char *dataset;     /**< e.g. "fashion-mnist" */
	uint64_t seed;
	const char *monitor;           /**< metric deciding "best", e.g. "val_loss" */
	ckpt_metric_mode monitor_mode; /**< min or max */
	int64_t created_ns;            /**< set by the store at creation (CLOCK_REALTIME ns) */
} ckpt_run_meta;

/** Tunables for ckpt_store_create(); zero fields mean the default. */
typedef struct ckpt_store_options {
	uint64_t chunk_size;       /**< bytes per stored chunk, a multiple of 8, at most 1 GiB;
	                                default 64 MiB */
	uint64_t initial_map_size; /**< initial LMDB map size; default 64 MiB; grows on demand */
	uint32_t keep_last;        /**< retention: keep the newest N checkpoints (0 = all); a
	                                commit also keeps the epoch it wrote (see
	                                ckpt_writer_commit()) */
	uint32_t keep_top;         /**< retention: also keep the best K (the best always stays) */
	bool no_sync;              /**< skip fsync at commit (tests only: loses durability) */
} ckpt_store_options;

/** Flags for ckpt_store_open(). */
/** Never write; works on read-only directories. A store without lock.mdb, or whose lock.mdb this
 *  process cannot write, is read without LMDB's lock file: the handle then holds a shared flock
 *  on data.mdb, and writers (ckpt-train, ckpt gc, libckpt writers of other processes) are
 *  refused until it is closed. */
#define CKPT_OPEN_READONLY 0x1u

/**
 * Create a new store at @p path (a directory that does not exist or is empty; it is created
 * if missing) and write its run metadata.
 * Creates of one path run one at a time (an exclusive flock on the directory, which ckpt gc
 * holds too): a create waits for another, and the later one finds a store there (-EEXIST).
 * Read-only opens that look while it creates wait for it (see ckpt_store_open()).
 * @return 0, -EEXIST if @p path already holds a store or other files, -EBUSY if this process
 *         has the store at @p path open or the directory stayed locked for a minute, or for
 *         a data.mdb moved in while another process holds the store (as ckpt_store_open();
 *         such a file is never taken for the remnant of a killed create and removed),
 *         -EACCES/-EROFS if it cannot be written, -EINVAL for bad options (monitor empty or
 *         longer than a metric name (255 bytes), a string of @p meta that is not valid UTF-8,
 *         hyperparams (when not NULL or "") that is not one JSON object: its message says
 *         "hyperparams is not a JSON object (parse error at line L, column C: ...)", or "(not a
 *         JSON object)" for other JSON; integers of any size are kept exact, a number past a
 *         double's range (1e400) is refused as jansson and torch's JSON readers cannot keep it,
 *         chunk_size not a multiple of 8 or above 1 GiB, keep_top > 0 with keep_last 0),
 *         -ENOSPC if the disk is full, -EFBIG past the file size limit (ulimit -f).
 */
int ckpt_store_create(ckpt_store **out, const char *path, const ckpt_run_meta *meta,
                      const ckpt_store_options *opts);

/**
 * Open an existing store. Many processes may open a store; at most one writes at a time
 * (writers serialize on LMDB's lock). A read-write open, and each commit and gc, is refused
 * while another process reads the store without lock.mdb (see CKPT_OPEN_READONLY): LMDB cannot
 * see such a reader, and a write could reuse the pages it reads. A refused open creates no
 * lock.mdb. One handle per store per process: LMDB's locks belong
 * to the process, and a second handle of the same files would let commits through the first
 * reuse pages that its snapshots still read, so a second open of a store (by any path, read-
 * only or not) that this process holds open is refused; share the handle between threads
 * instead. A child made by fork() may open the store itself.
 * A read-only open that finds part of a store (data.mdb or lock.mdb, but no store it can
 * open) while another process creates it (ckpt_store_create()) or removes it
 * (ckpt_store_discard()) waits for that to end (for the directory's flock, up to a minute) and
 * then opens the whole store or reports that there is none: it never fails because it looked
 * at a store half made. It holds the lock, shared, only for that second open, and lets a
 * create or removal that waits for the lock go first. An open that succeeds at once, and one
 * of a path that does not exist or of a directory with neither file, never waits and never
 * takes the lock: it answers at once (-ENOENT, CKPT_ENOTSTORE), so readers polling for a
 * store to appear never hold up its create.
 * A data.mdb replaced (mv, rsync without --inplace: a restore) while another process holds
 * the store open is refused, read-only or not, before anything is read or written: LMDB's
 * lock.mdb, which every process using the store shares, then still holds the old file's
 * transaction id, by which LMDB would read (and a writer build on) the wrong commit of the
 * new file. The message names the processes holding the store (pid and command); once they
 * have closed it (a mount unmounted), the next open reads the new file.
 * @return 0, -ENOENT if @p path does not exist, CKPT_ENOTSTORE if it is not a store,
 *         CKPT_ESCHEMA if it was written by a newer schema, CKPT_ECORRUPT on damaged metadata,
 *         -EBUSY if this process has the store open already, for a read-write open while
 *         another process reads it without lock.mdb (the message names it by pid and command),
 *         for a read-only open of a store that another process has been creating for a
 *         minute (the message names it), or for a data.mdb replaced while another process
 *         holds the store (see above; the message names them).
 */
int ckpt_store_open(ckpt_store **out, const char *path, unsigned flags);

/**
 * Remove the store at @p path: its data.mdb and lock.mdb, and with @p remove_dir the
 * directory too, unless it holds other files: those are never touched, and the directory
 * stays with them (-ENOTEMPTY, the store itself removed). For a store that holds nothing to
 * keep, such as one that this process created for a run that failed before its first
 * checkpoint: it does not look inside. It holds the directory's flock exclusively, as
 * ckpt_store_create() does, so that read-only opens started meanwhile (ckpt_store_open())
 * wait and then find no store, never a store half removed. Close every handle of the store
 * first.
 * @return 0, -ENOTEMPTY with @p remove_dir when the store was removed but the directory stays
 *         because it holds other files, -EBUSY if this process has the store open or another
 *         process has held the directory's lock for a minute (nothing is removed then),
 *         -ENOENT if @p path does not exist, or the -errno of a file that cannot be removed
 *         (the directory then stays).
 */
int ckpt_store_discard(const char *path, bool remove_dir);

/** Close a store. Its writers must be finished (committed or aborted) first. Snapshots of it
 *  that are still open keep it open: the last one to close closes it. Accepts NULL. */
void ckpt_store_close(ckpt_store *store);

/** The store's run metadata; owned by the store. */
const ckpt_run_meta *ckpt_store_meta(const ckpt_store *store);

/** The store's directory path as given at open/create; owned by the store. */
const char *ckpt_store_path(const ckpt_store *store);

/** Chunk size the store was created with. */
uint64_t ckpt_store_chunk_size(const ckpt_store *store);

/** The retention settings stored now (0 = unlimited): ckpt_store_gc() in any process, such as
 *  `ckpt gc --keep-last N`, persists new ones, which every handle then reports and applies at
 *  its next commit (the handle's last known ones where the store cannot be read). */
void ckpt_store_retention(const ckpt_store *store, uint32_t *keep_last, uint32_t *keep_top);

/**
 * Persist new retention settings and apply them at once (one write transaction): delete every
 * checkpoint that is neither among the newest @p keep_last nor the best @p keep_top nor the
 * best (an epoch kept by the exception of ckpt_writer_commit() goes here too), and free chunks no longer referenced. 0 means unlimited for either. When checkpoints
 * were deleted, one more small write transaction follows, so that the next commit can reuse
 * their pages (LMDB reuses a page only two transactions after the one that freed it). On a
 * disk too full for one transaction (ENOSPC) the checkpoints are deleted oldest first in
 * steps, each its own transaction with the keep-last it reached stored.
 * @param out_deleted if not NULL, receives the number of checkpoints deleted (also when an
 *        error stops the steps part way).
 * @return 0, -EINVAL for @p keep_top > 0 with @p keep_last 0 (it would have no effect),
 *         CKPT_ECORRUPT when the store's checkpoint and index keys disagree (a damaged
 *         key: nothing is deleted), -EROFS for a read-only store, -ENOSPC if the disk is full, -EFBIG past the file
 *         size limit (ulimit -f), -EBUSY while another process reads the store without
 *         lock.mdb (nothing is deleted) or when the map must grow while this process has
 *         snapshots of the store open, -EAGAIN when another process grew the map while this
 *         process has snapshots open (close them and retry).
 */
int ckpt_store_gc(ckpt_store *store, uint32_t keep_last, uint32_t keep_top,
                  uint32_t *out_deleted);

/** What ckpt_store_repair_refs() changed. */
typedef struct ckpt_refs_repair {
	uint64_t blobs;  /**< blobs no checkpoint references, deleted with their chunks */
	uint64_t chunks; /**< stray chunks deleted */
	uint64_t counts; /**< reference counts set to the references found */
	uint64_t bytes;  /**< bytes freed */
} ckpt_refs_repair;

/**
 * Repair, in one write transaction, what ckpt_snapshot_check_refs() reports in the newest
 * commit: free the blobs no checkpoint references and stray chunks, set each reference count to
 * the references found. Nothing is written when nothing needs it. `ckpt gc` runs it after its
 * retention. Check and repair are one write transaction, so a commit of another process
 * cannot fall between them.
 * @param out receives what changed (zeros when nothing did); may be NULL.
 * @return 0, -EROFS for a read-only store, -ENOSPC, -EFBIG, or an error reading the store.
 */
int ckpt_store_repair_refs(ckpt_store *store, ckpt_refs_repair *out);

/** Sizes of data.mdb around ckpt_store_compact(). */
typedef struct ckpt_store_compact_stats {
	uint64_t size_before; /**< bytes of data.mdb before */
	uint64_t size_after;  /**< bytes of the compacted data.mdb */
} ckpt_store_compact_stats;

/**
 * Give the pages that gc freed back to the file system: LMDB reuses free pages but never
 * shrinks data.mdb. Writes a compacted copy of the newest commit to data.mdb.compact in the
 * store directory, checks it (every entry of every database is there), fsyncs it, renames it
 * over data.mdb and fsyncs the directory. A crash at any instant leaves the old or the new
 * data.mdb, whole; a data.mdb.compact left behind is removed by the next compaction.
 *
 * It runs alone: it takes ckpt gc's locks (ckpt_gc_lock() in ckpt/holders.h: it waits for a
 * gc or compaction that runs, and writers that start meanwhile wait for it) and LMDB's
 * exclusive lock on lock.mdb (creating lock.mdb when it is missing), and refuses when any
 * other process has the store open, even an idle one: a process that keeps an environment
 * open keeps mapping the old file and would never see the commits made to the new one.
 * Processes that open the store meanwhile wait in LMDB until it is done. No handle of @p path
 * may be open in this process (LMDB's locks are per process).
 * A process ended by a signal leaves the copy (a handler that calls
 * ckpt_store_compact_interrupted() removes it). SIGINT, SIGTERM, SIGHUP and SIGQUIT are held
 * back in the calling thread from the rename until the new data.mdb is ready (milliseconds), so
 * that such a handler finds the store before the swap or after it, never between.
 * @param out if not NULL, receives the sizes (only on success).
 * @return 0, -EBUSY if ckpt-train, a reader without lock.mdb or any process with the store
 *         open holds it (the message names the process), -ENOSPC if the disk fills during
 *         the copy (the store is as it was and the copy is removed; -EFBIG likewise past the
 *         file size limit), -EACCES/-EROFS if the directory cannot be written,
 *         -ENOENT, CKPT_ENOTSTORE, CKPT_ECORRUPT (a damaged store, or a copy that does not
 *         read back), -EIO.
 */
int ckpt_store_compact(ckpt_store_compact_stats *out, const char *path);

/** Work done by ckpt_store_compact_with() on @p store before the compaction; 0 or an error. */
typedef int (*ckpt_store_compact_fn)(ckpt_store *store, void *arg);

/**
 * ckpt_store_compact() that first lets @p before change the store (ckpt gc --keep-last N
 * --compact applies retention there), as one step with the compaction: it takes every lock and
 * makes every check of ckpt_store_compact() first, so a refusal changes nothing, and then calls
 * @p before on a compacted scratch copy of the store opened for writing (in the directory
 * data.mdb.gc of the store, removed afterwards), and compacts that copy into data.mdb. Until
 * the rename nothing of the store changes: a failure or a crash at any instant leaves the store
 * as it was before @p before, or as @p before and the compaction left it. Needs free space for
 * that scratch copy too (the store's live pages before @p before runs).
 * @param before  called once with the scratch copy's handle, which it must not close; NULL:
 *                just ckpt_store_compact()
 * @return what ckpt_store_compact() returns, or the non-zero return of @p before as it is (the
 *         store as it was)
 */
int ckpt_store_compact_with(ckpt_store_compact_stats *out, const char *path,
                            ckpt_store_compact_fn before, void *arg);

/**
 * For a signal handler (async-signal-safe), as ckpt_store_backup_interrupted() for a backup:
 * remove what the ckpt_store_compact_with() running in this process has made beside the store
 * (data.mdb.compact, data.mdb.gc/ and a lock.mdb it created), unless it has replaced data.mdb
 * already, before the handler ends the process. Nothing is removed while the compaction waits
 * for another's locks. The store is whole either way.
 * @return true if data.mdb is the compacted one (the compaction running, or the last one this
 *         process ran, replaced it: with ckpt_store_compact_with(), @p before's work is in it);
 *         false if the store is as it was before the compaction (or none ran).
 */
bool ckpt_store_compact_interrupted(void);

/** What ckpt_store_backup() wrote. */
typedef struct ckpt_store_backup_stats {
	uint64_t checkpoints;     /**< checkpoints in the backup */
	bool has_latest;          /**< it has one (then @c latest is its newest epoch) */
	uint64_t latest;          /**< its newest epoch */
	uint64_t size;            /**< bytes of DEST/data.mdb */
	uint64_t tensors;         /**< tensors checked (CKPT_BACKUP_VERIFY; else 0) */
	uint64_t tensor_bytes;    /**< their bytes */
	uint64_t damaged_records; /**< damaged checkpoint, index or best records of the store,
	                               copied as they are (never with CKPT_BACKUP_VERIFY) */
} ckpt_store_backup_stats;

/** Flag for ckpt_store_backup(): also read every tensor of the backup back against its CRC-32s
 *  and content hash (what `ckpt verify` checks). */
#define CKPT_BACKUP_VERIFY 0x1u

/**
 * Back up @p store into the directory @p dest: LMDB's compacting copy of one read snapshot
 * (the newest commit as the copy begins), safe while another process commits to the store,
 * while it is mounted, and through a read-only handle (a store on read-only media or without
 * lock.mdb: see CKPT_OPEN_READONLY); the store is never changed. The copy is written to
 * @p dest/data.mdb.tmp/data.mdb, its trees are walked (and, when the store had no commit during
 * the copy, compared with the store's databases and entries) and it is fsynced. Then it is
 * opened there as a store, read-only (creating no lock.mdb), and every checkpoint, index and
 * best record must decode; with CKPT_BACKUP_VERIFY every tensor must match its CRC-32s and
 * hash too. Only then is it renamed to @p dest/data.mdb (never over a file of that name),
 * data.mdb.tmp removed and @p dest fsynced (its parent too when @p dest was created). The
 * result is a store of its own, holding only data.mdb: it reads, mounts and trains
 * (ckpt-train --resume) as the store did at that commit.
 *
 * Damage found in the copy came from the store (the copy is made through a read snapshot of
 * it), unless the store's own record checks fine: the message says which, naming the epoch
 * and record. Without CKPT_BACKUP_VERIFY, checkpoint, index and best records damaged in the
 * store are copied as they are (a damaged record hides only its epoch, as in the store):
 * the backup is made, out->damaged_records counts them and ckpt_last_error() names them.
 *
 * On any failure nothing of the backup is left: the copy and data.mdb.tmp are removed and a
 * @p dest this call created is removed again. A process killed meanwhile leaves
 * @p dest/data.mdb.tmp/ (a signal handler calling ckpt_store_backup_interrupted() removes it),
 * never an unchecked @p dest/data.mdb.
 * While the copy runs it counts as a snapshot of @p store (a commit through this handle that
 * must grow the map waits for it as for a snapshot).
 * @param out   if not NULL, receives what was written (only on success)
 * @param dest  a directory that does not exist (its parent must) or an empty one; not the
 *              store or inside it
 * @param flags 0 or CKPT_BACKUP_VERIFY
 * @return 0; -EINVAL for an empty @p dest, @p dest being the store or inside it; -ENOTDIR if
 *         @p dest exists and is not a directory; -ENOTEMPTY if it is a directory that is not
 *         empty; -ENOENT if its parent does not exist; -EACCES/-EROFS if it cannot be
 *         written; -ENOSPC if the disk fills (-EFBIG past the file size limit); -EEXIST if a
 *         data.mdb appeared in @p dest meanwhile; -EAGAIN when another process grew the map
 *         while this process has snapshots of @p store open; CKPT_ECORRUPT if the copy does
 *         not read back (a damaged LMDB page of the store; with CKPT_BACKUP_VERIFY a damaged
 *         record too); CKPT_ECHECKSUM (with CKPT_BACKUP_VERIFY) for a tensor that does not
 *         match; -EIO.
 */
int ckpt_store_backup(ckpt_store_backup_stats *out, ckpt_store *store, const char *dest,
                      unsigned flags);

/**
 * For a signal handler (async-signal-safe): remove what the ckpt_store_backup() running in
 * this process has made so far (its temporary file, the renamed copy, a directory it created),
 * before the handler ends the process. Does nothing when none runs. Only one backup at a time
 * per process is known to it.
 */
void ckpt_store_backup_interrupted(void);

/* ------------------------------------------------------------------------------------------
 * Writing a checkpoint
 * ---------------------------------------------------------------------------------------- */

typedef struct ckpt_writer ckpt_writer;

/** Highest epoch a checkpoint may have, 2^39 - 1: the mount's inode numbers hold an epoch in
 *  39 bits. */
#define CKPT_MAX_EPOCH ((UINT64_C(1) << 39) - 1)

/**
 * Start a checkpoint for @p epoch. Nothing is visible to anyone until ckpt_writer_commit().
 * Committing an epoch that already exists replaces it (e.g. a run resumed from an earlier
 * checkpoint).
 * @return 0, -EROFS for a read-only store, -EINVAL for an epoch above CKPT_MAX_EPOCH, -ENOMEM.
 */
int ckpt_writer_begin(ckpt_writer **out, ckpt_store *store, uint64_t epoch);

/**
 * Add a tensor. Its CRC-32 and content hash are computed now. The bytes at @p data are
 * BORROWED: they must stay unchanged until ckpt_writer_commit() or ckpt_writer_abort()
 * returns (the commit may be retried after growing the map).
 * @param device "cpu", "cuda" or "cuda:N" (N < 1000, no leading zeros: torch.device refuses
 *               "cuda:01"); NULL means "cpu".
 * @return 0, -EINVAL (bad dtype, ndim > CKPT_MAX_DIMS, a NULL @p shape with @p ndim > 0, a
 *         shape whose size overflows, nbytes != numel*itemsize, bad device, empty or
 *         over-long name), -EEXIST if the name is already in this checkpoint.
 */
int ckpt_writer_put_tensor(ckpt_writer *w, const char *name, ckpt_tensor_group group,
                           ckpt_dtype dtype, uint32_t ndim, const uint64_t *shape,
                           const char *device, const void *data, uint64_t nbytes);

/** Set the global step (number of optimizer steps so far). */
void ckpt_writer_set_step(ckpt_writer *w, uint64_t step);

/**
 * Set a metric (e.g. "val_loss"); the name is UTF-8 of 1 to 255 bytes. NaN and infinities are kept as they are but never make a
 * checkpoint the best. Setting a name twice keeps the last value.
 * @return 0, -EINVAL for an empty name, one over 255 bytes or one that is not valid UTF-8,
 *         -ENOMEM.
 */
int ckpt_writer_set_metric(ckpt_writer *w, const char *name, double value);

/**
 * Attach opaque state under @p key (UTF-8 of 1 to 255 bytes; the data is copied): RNG state, schedule state, optimizer param groups
 * ("optimizer.param_groups" holds JSON text as torch's optimizer.state_dict() lays it out; a
 * group's "param_names", the model tensor names of its "params" in order, tells checkpoint.pt
 * which state belongs to which parameter where the model also holds buffers). That text is
 * checked here, as torch's load_state_dict() and checkpoint.pt need it: strict JSON (no key
 * twice, keys compared decoded as jansson compares them: "a" and "\u0061" are one key; no
 * integer outside int64, no number past a double; nested no deeper than jansson reads: 2048
 * values, the outermost counting as 1), a list of objects, each with
 * "params" a list of parameter indices (integers from 0; together the indices 0..n-1, each in
 * one group once, as state_dict() numbers them), and "param_names" (a list of strings, one
 * per index) in every group or in none; that they list a parameter at all is checked at
 * ckpt_writer_commit() (see there). One NUL at the end of that text (C's strlen + 1) is
 * not stored; -0 is read as the index 0, as jansson and Python read it.
 * Other extras are shown in checkpoint.pt's 'extra' as str when they are text: valid UTF-8 with
 * no control bytes but tab, CR and LF, where one NUL at the end (text stored with C's
 * strlen + 1) is left out. Any other extra (RNG state, text holding other control bytes) is
 * binary: kept for readers of the store, left out of checkpoint.pt.
 * @return 0, -EINVAL for an empty key, one over 255 bytes or one that is not valid UTF-8,
 *         NULL @p data with a non-zero @p len, or param groups that are not as above (the
 *         message says what is wrong, and where for a parse error: line and column), -ENOMEM.
 */
int ckpt_writer_set_extra(ckpt_writer *w, const char *key, const void *data, size_t len);

/**
 * Write everything in ONE LMDB write transaction: tensors (deduplicated by content), the
 * checkpoint record, best/top-k bookkeeping and retention (with garbage collection) by the
 * settings stored at that moment (see ckpt_store_retention()). Retention never deletes the
 * epoch just committed, even where it is neither among the newest nor the best (a commit
 * again of an older epoch): the next commit's retention does. On
 * MDB_MAP_FULL the map is grown and the transaction retried. Frees @p w in every case.
 * First the "optimizer.param_groups" extra (see ckpt_writer_set_extra()) is checked for what
 * every torch optimizer needs to load it: the groups list at least one parameter (not [], not
 * only empty "params"); refused groups leave the store unchanged (-EINVAL, and
 * ckpt_last_error() names the store, the epoch and the fault, e.g. "optimizer.param_groups
 * lists no parameters (no group)"). How the groups fit the checkpoint's CKPT_GROUP_MODEL
 * tensors is not checked here, so that a training loop loses no checkpoint to it: torch >= 2.6
 * stores "param_names" relative to the module the optimizer was built from ("module.fc1.weight"
 * under DDP, "_orig_mod.fc1.weight" under torch.compile, "weight" for an optimizer over
 * model.head) while the model tensors often come from model.module.state_dict(), and an
 * optimizer may hold tensors that are no model tensor. Groups listing more parameters than
 * there are model tensors, or "param_names" entries that are no model tensor or name one
 * twice, are stored; that epoch's checkpoint.pt then fails (EINVAL, one line naming the fault),
 * while its .npy files, model.safetensors and model.pt serve as for any epoch.
 * @return 0, -EINVAL for param groups that list no parameter (above), -ENOSPC if the disk is full (nothing of this checkpoint is stored, earlier ones
 *         are intact), -EFBIG likewise past the file size limit (ulimit -f), -EIO, -EBUSY
 *         while another process reads the store without lock.mdb, or when the map must grow
 *         while this process has snapshots of the store open, -EAGAIN when another process
 *         grew the map while this process has snapshots open (nothing is stored in any of
 *         these cases: close the snapshots and commit again).
 */
int ckpt_writer_commit(ckpt_writer *w);

/** Discard a checkpoint in progress; nothing reaches the store. Frees @p w. Accepts NULL. */
void ckpt_writer_abort(ckpt_writer *w);

/* ------------------------------------------------------------------------------------------
 * Reading: snapshots
 * ---------------------------------------------------------------------------------------- */

typedef struct ckpt_snapshot ckpt_snapshot;
typedef struct ckpt_checkpoint ckpt_checkpoint;

/**
 * Open a consistent read snapshot (an LMDB read transaction) of the store as of now. It never
 * changes, whatever writers commit meanwhile; keep it short-lived, since an open snapshot stops
 * LMDB from reusing pages freed after it began. A snapshot may be used from any thread, and
 * from several threads at once.
 * @return 0, -ENOMEM, -EIO, -EAGAIN when another process grew the map while other snapshots of
 *         this process are open (the map can only be remapped with none open: close them and
 *         retry).
 */
int ckpt_snapshot_open(ckpt_snapshot **out, ckpt_store *store);

/**
 * The commit a snapshot sees: its LMDB transaction id. Two snapshots taken through one open
 * handle with the same generation see the same store. Across handles that may not hold: a
 * compaction runs only while no handle of the store is open anywhere, and the compacted
 * data.mdb keeps the number of the newest commit, also where ckpt_store_compact_with()'s
 * work changed the store (ckpt gc --keep-last N --compact): compare generations within one
 * handle's lifetime only.
 */
uint64_t ckpt_snapshot_generation(const ckpt_snapshot *snap);

/**
 * The store's latest commit as of now (what a snapshot opened now would see), without opening
 * a snapshot: a cheap way to tell whether anything was committed since a snapshot was opened.
 * @return 0 or -EIO.
 */
int ckpt_store_generation(uint64_t *out, ckpt_store *store);

/** End a snapshot; every pointer obtained through it becomes invalid. Accepts NULL. */
void ckpt_snapshot_close(ckpt_snapshot *snap);

/**
 * Epochs of all stored checkpoints, ascending.
 * @param out receives a malloc'd array the caller frees (NULL when @p out_count is 0).
 */
int ckpt_snapshot_list(uint64_t **out, size_t *out_count, ckpt_snapshot *snap);

/** Newest epoch (keys past CKPT_MAX_EPOCH, which no version writes, are skipped: a damaged
 *  key). @return 0 or -ENOENT if the store has no checkpoint. */
int ckpt_snapshot_latest(uint64_t *out, ckpt_snapshot *snap);

/**
 * Commit time (CLOCK_REALTIME ns) of the checkpoint committed last: the newest of all stored
 * checkpoints' times. After a run resumed from an earlier epoch that is not the newest epoch's
 * time (the epochs after the resume point may still hold older commits). Scans the index.
 * @return 0 or -ENOENT if the store has no checkpoint.
 */
int ckpt_snapshot_newest_time(int64_t *out, ckpt_snapshot *snap);

/**
 * Best epoch by the monitored metric (ties: the earlier epoch). Checkpoints whose metric is
 * missing or not finite are never best. A damaged best record is rebuilt from the index
 * records (see ckpt_snapshot_check_best()).
 * @return 0, -ENOENT if no checkpoint has a finite monitored metric, CKPT_ECORRUPT if the
 *         best record and the index are both damaged.
 */
int ckpt_snapshot_best(uint64_t *out, ckpt_snapshot *snap);

/**
 * Whether the stored best record is whole. When it is damaged, ckpt_snapshot_best() and the
 * checkpoints' is-best flags use the best rebuilt from the index records; this names the
 * damage (ckpt verify reports it; the next commit or gc writes a new record).
 * @return 0, or CKPT_ECORRUPT with the reason in ckpt_last_error().
 */
int ckpt_snapshot_check_best(ckpt_snapshot *snap);

/** What ckpt_snapshot_check_refs() counted. */
typedef struct ckpt_refs_stats {
	uint64_t references;   /**< tensor references in the checkpoint records that decode */
	uint64_t blobs;        /**< blob records (each distinct tensor content once) */
	uint64_t chunks;       /**< chunk records */
	uint64_t problems;     /**< problems reported */
	uint64_t wasted_bytes; /**< bytes of blobs and chunks that no checkpoint can read */
	bool complete;         /**< every checkpoint record decoded: every count was checked */
} ckpt_refs_stats;

/** Receives one line (no newline) per problem ckpt_snapshot_check_refs() finds. */
typedef void (*ckpt_refs_problem_fn)(void *arg, const char *problem);

/**
 * Check the reference counting of the stored tensor bytes in @p snap: every blob record's count
 * must equal the number of tensors of the checkpoint records that reference it, a blob nothing
 * references must not be stored, and every chunk must belong to a blob. Commits and deletions
 * keep that in one transaction each; only damage breaks it (a checkpoint record that no longer
 * decodes is deleted by retention without knowing its blobs: their bytes stay). A count below
 * the references found would let a later deletion free bytes still in use. While some
 * checkpoint record does not decode, only what it cannot explain is reported (counts below the
 * references found, stray chunks); ckpt_store_repair_refs() repairs what is reported.
 * Reads every checkpoint, blob and chunk record (not the chunks' bytes).
 * @param fn called for each problem (may be NULL).
 * @return 0 (problems or not: see out->problems), or an error reading the store.
 */
int ckpt_snapshot_check_refs(ckpt_refs_stats *out, ckpt_snapshot *snap, ckpt_refs_problem_fn fn,
                             void *arg);

/**
 * Up to @p cap best epochs, best first (same rules as ckpt_snapshot_best()).
 * @param out_count receives how many were written to @p out.
 */
int ckpt_snapshot_top_k(uint64_t *out, size_t cap, size_t *out_count, ckpt_snapshot *snap);

/** Logical and stored sizes. */
typedef struct ckpt_store_stats {
	uint64_t checkpoints;  /**< number of stored checkpoints */
	uint64_t tensors;      /**< tensors over all checkpoints */
	uint64_t bytes;        /**< sum of nbytes over every tensor of every checkpoint */
	uint64_t stored_bytes; /**< bytes of unique chunks actually stored (after dedup) */
	uint64_t chunks;       /**< number of unique chunks */
	uint64_t map_size;     /**< current LMDB map size */
} ckpt_store_stats;

/** Sizes of the store as of this snapshot. @return 0, or CKPT_ECORRUPT when a blob record is
 *  damaged: *out is then filled all the same, that blob left out of stored_bytes. */
int ckpt_snapshot_stats(ckpt_store_stats *out, ckpt_snapshot *snap);

/**
 * Load and decode the record of checkpoint @p epoch. The returned handle is owned by the
 * snapshot and valid until it is closed (do not free it).
 * @return 0, -ENOENT if the epoch is not stored, CKPT_ECORRUPT if the record is damaged.
 */
int ckpt_snapshot_checkpoint(const ckpt_checkpoint **out, ckpt_snapshot *snap, uint64_t epoch);

/**
 * Check every stored record of checkpoint @p epoch but its tensors' bytes and blob records
 * (ckpt_tensor_verify() checks those): its checkpoint record and its index record (the summary
 * that best/top-k, retention and stats read) must decode and pass their CRC-32s. Readers
 * rebuild a damaged index record from the checkpoint record, so only this reports it.
 * @return 0, -ENOENT if the epoch is not stored, CKPT_ECORRUPT naming the epoch and record.
 */
int ckpt_snapshot_check_records(ckpt_snapshot *snap, uint64_t epoch);

uint64_t ckpt_checkpoint_epoch(const ckpt_checkpoint *c);
uint64_t ckpt_checkpoint_step(const ckpt_checkpoint *c);
/** Commit time, CLOCK_REALTIME nanoseconds. */
int64_t ckpt_checkpoint_time_ns(const ckpt_checkpoint *c);
/** True if this checkpoint is the store's best as of the snapshot. */
bool ckpt_checkpoint_is_best(const ckpt_checkpoint *c);
/** Sum of nbytes of the checkpoint's tensors. */
uint64_t ckpt_checkpoint_nbytes(const ckpt_checkpoint *c);

/** Number of metrics; metrics are kept sorted by name. */
size_t ckpt_checkpoint_metric_count(const ckpt_checkpoint *c);
/** The @p i-th metric (name borrowed from the snapshot). @return 0 or -ERANGE. */
int ckpt_checkpoint_metric_at(const ckpt_checkpoint *c, size_t i, const char **name,
                              double *value);
/** Metric by name. @return 0 or -ENOENT. */
int ckpt_checkpoint_metric(const ckpt_checkpoint *c, const char *name, double *value);

/** Number of extra-state entries; kept sorted by key. */
size_t ckpt_checkpoint_extra_count(const ckpt_checkpoint *c);
/** The @p i-th extra entry; @p data borrowed from the snapshot. @return 0 or -ERANGE. */
int ckpt_checkpoint_extra_at(const ckpt_checkpoint *c, size_t i, const char **key,
                             const void **data, size_t *len);
/** Extra state by key; @p data borrowed from the snapshot. @return 0 or -ENOENT. */
int ckpt_checkpoint_extra(const ckpt_checkpoint *c, const char *key, const void **data,
                          size_t *len);

/** Number of tensors (all groups), in insertion order. */
size_t ckpt_checkpoint_tensor_count(const ckpt_checkpoint *c);
/** The @p i-th tensor in insertion order, or NULL if out of range. Owned by the snapshot. */
const ckpt_tensor_info *ckpt_checkpoint_tensor_at(const ckpt_checkpoint *c, size_t i);
/** Tensor by group and name. @return 0 or -ENOENT. */
int ckpt_checkpoint_find_tensor(const ckpt_tensor_info **out, const ckpt_checkpoint *c,
                                ckpt_tensor_group group, const char *name);

/**
 * Zero-copy access to chunk @p chunk_index of a tensor: *out points into the LMDB map and is
 * valid until the snapshot is closed. Chunk i covers bytes [i*chunk_size, min(nbytes,
 * (i+1)*chunk_size)) of the tensor. The pointer is only 2-byte aligned (small chunks lie inside
 * LMDB pages at any even offset; chunks of more than about 2 KiB on their own pages, 16-byte
 * aligned): read elements with memcpy, not through a (const float *) cast, or copy the bytes
 * with ckpt_tensor_read().
 * @param verify if true, the chunk's stored CRC-32 is checked (costs one pass over it).
 * @return 0, -ERANGE, CKPT_ECORRUPT if the chunk is missing or has the wrong length,
 *         CKPT_ECHECKSUM if @p verify and the bytes are damaged.
 */
int ckpt_tensor_chunk(const void **out, size_t *out_len, ckpt_snapshot *snap,
                      const ckpt_tensor_info *t, uint32_t chunk_index, bool verify);

/**
 * Copy @p len bytes starting at @p offset of a tensor's bytes into @p buf (crossing chunks as
 * needed). Reading past the end is -ERANGE. No checksum is checked.
 */
int ckpt_tensor_read(void *buf, ckpt_snapshot *snap, const ckpt_tensor_info *t,
                     uint64_t offset, size_t len);

/**
 * Recompute a tensor's CRC-32 and content hash over all its chunks and compare with the
 * stored ones. @return 0, CKPT_ECHECKSUM on a mismatch, CKPT_ECORRUPT for missing chunks.
 */
int ckpt_tensor_verify(ckpt_snapshot *snap, const ckpt_tensor_info *t);

#ifdef __cplusplus
}
#endif
#endif
