/* store/store_int.h - libckpt internals shared by the store's source files
 *
 * The LMDB schema (named databases inside one environment):
 *   meta  : "schema" -> u32le schema version; "run" -> run meta record; "settings" -> settings
 *           record (chunk size, retention); "best" -> best record (absent: no best).
 *   ckpt  : u64 big-endian epoch -> checkpoint record (metrics, extras, tensor list).
 *   index : u64 big-endian epoch -> summary record (step, time, monitored value, sizes).
 *   blobs : 16-byte XXH3-128 of a tensor's bytes -> blob record (refcount, nbytes, chunk size,
 *           per-chunk CRC-32). Identical tensor bytes are stored once and reference-counted.
 *   chunks: blob hash + u32 big-endian chunk index -> raw chunk bytes.
 * Every record is encoded/decoded by store/records.c and ends in a CRC-32 of itself (records
 * written before version 2 have none and are still read). A blob whose refcount drops to 0 is
 * deleted with its chunks in the same write transaction.
 */
#ifndef STORE_STORE_INT_H
#define STORE_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "ckpt/store.h"
#include "store/records.h"

#define STORE_DEFAULT_CHUNK_SIZE (64ull << 20)
#define STORE_MAX_CHUNK_SIZE (1ull << 30)
#define STORE_DEFAULT_MAP_SIZE (64ull << 20)
#define STORE_MAX_METRIC_NAME 255
#define STORE_MAX_EXTRA_KEY 255
#define STORE_CHUNK_KEY_LEN 20
#define STORE_MAX_READERS 1024
/* lock.mdb's size as LMDB makes it for STORE_MAX_READERS: (readers - 1) 64-byte reader slots
 * and its 192-byte header */
#define STORE_LOCK_FILE_BYTES ((STORE_MAX_READERS - 1) * 64 + 192)
/* what a new lock.mdb holds beyond that: blocks a gc on a disk full to the last block gives
 * back to the file system to commit its first step (store_release_lock_reserve). LMDB takes
 * the bigger file as room for more reader slots. */
#define STORE_LOCK_RESERVE (256u << 10)

#define LMDB_MAGIC 0xBEEFC0DEu /* mm_magic, at byte 16 of both meta pages */
/* offsets in an LMDB (0.9, 64-bit) meta page: page header 16 bytes, then MDB_meta */
#define LMDB_META_PSIZE 40    /* mm_dbs[FREE_DBI].md_pad holds the page size */
#define LMDB_META_LAST_PG 136 /* mm_last_pg */
#define LMDB_META_TXNID 144   /* mm_txnid */
#define LMDB_META_END 152
/* internal only: MDB_MAP_FULL, retried after growing the map; -ENOSPC if it escapes */
#define STORE_EMAPFULL (-20100)
/* internal only: a key or value LMDB returned lies outside data.mdb (store/pages.c); the
 * message is set and names the record; CKPT_ECORRUPT once translated */
#define STORE_EOUTSIDE (-20101)

/* Where LMDB maps data.mdb in this process, for checking what it returns (store/pages.c).
 * Read without a lock by every thread; changed only while the map is (re)made. */
typedef struct store_map {
	_Atomic uintptr_t base; /* 0: not known (no /proc/self/maps): nothing is checked */
	_Atomic uint64_t len;   /* of the mapping */
	_Atomic uint64_t file_size; /* data.mdb's size when last measured */
	int fd;                 /* LMDB's descriptor of data.mdb */
} store_map;

/* a data.mdb claimed by a handle of process pid (store.c: one handle per store per process) */
typedef struct open_store_id {
	bool held;
	dev_t dev;
	ino_t ino;
	pid_t pid;
} open_store_id;

struct ckpt_store {
	char *path;
	MDB_env *env;
	MDB_dbi db_meta, db_ckpt, db_index, db_blobs, db_chunks;
	bool readonly;
	bool lock_created; /* this handle's open created lock.mdb (store_prepare_lock_file) */
	bool no_sync;
	/* read-only handles opened without LMDB's lock file (MDB_NOLOCK) hold a shared flock on
	 * data.mdb here, so that ckpt-train (which takes it exclusively) cannot write meanwhile;
	 * -1 otherwise */
	int reader_guard_fd;
	open_store_id claim; /* its data.mdb in the process's registry of open stores */
	store_map map; /* located after the environment is opened and after each map resize */
	ckpt_run_meta meta;
	store_run_rec run; /* owns the strings that meta points to */
	store_settings_rec settings;
	/* snapshots open in this process: the map may only be resized when none is */
	pthread_mutex_t lock; /* guards open_snapshots, read-txn begins and map resizes */
	unsigned open_snapshots;
	bool close_pending; /* ckpt_store_close() while snapshots were open: the last one closes */
	pthread_mutex_t write_lock; /* one commit or gc at a time per handle */
	pid_t owner; /* the process that opened it: LMDB's environment is its alone (no fork) */
};

/* ---- errors (store/error.c) ---- */

/* A public function's required pointer argument: -EINVAL naming it when NULL (callers get a
 * message, never a crash). */
#define STORE_NEED(ptr, fn)                                                                        \
	do {                                                                                       \
		if (!(ptr))                                                                        \
			return store_error(-EINVAL, "%s: %s is NULL", fn, #ptr);                  \
	} while (0)

/** Set the thread's message and return @p rc. */
int store_error(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Translate an LMDB or errno return code (positive errno or MDB_*) to ours. */
int store_lmdb_rc(int mdb_rc);
/** store_error() with a translated LMDB code; message "<what>: <mdb_strerror>" (STORE_EOUTSIDE
 *  keeps the message store_map_check() left, which names the record) */
int store_lmdb_error(int mdb_rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** What a failed write to @p dir/data.mdb of about @p need more bytes met. LMDB reports a write
 *  cut short as EIO (a commit) or ENOSPC (a new environment's meta pages), whatever cut it:
 *  EFBIG when the file size limit (ulimit -f) explains it, ENOSPC for EIO on a (nearly) full
 *  disk, else @p mdb_rc unchanged (also for every other code). */
int store_write_errno(const char *dir, int mdb_rc, uint64_t need);

/* ---- checked reads and the page walk (store/pages.c) ---- */

/** Find where @p env maps its data file now (after mdb_env_open and every
 *  mdb_env_set_mapsize, with no transaction of this process using the old map). */
void store_map_locate(store_map *m, MDB_env *env);
/** Whether @p v lies inside data.mdb, or outside the map altogether (a write transaction's
 *  dirty page in the heap). No syscall unless the file must be measured again. */
bool store_map_inside(store_map *m, const MDB_val *v);
/** 0 when @p key (may be NULL) and @p val (may be NULL) pass store_map_inside(); else
 *  STORE_EOUTSIDE with a message naming store @p path and the record (from database @p db's
 *  key), and the one outside set to {0, NULL}: a loop may go on past a damaged value while
 *  the key is still there. */
int store_map_check(store_map *m, const char *path, const char *db, MDB_val *key, MDB_val *val);
/** mdb_get() on @p s whose value is checked by store_map_check() before anyone reads it.
 *  @return 0, an LMDB code, or STORE_EOUTSIDE (translate with store_lmdb_error(), which keeps
 *  its message). */
int store_get(ckpt_store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val);
/** mdb_cursor_get() likewise, key and value checked; @p val NULL: the value is not wanted. */
int store_cursor_get(ckpt_store *s, MDB_cursor *cur, MDB_val *key, MDB_val *val,
                     MDB_cursor_op op);
/** store_cursor_get() for an environment that is no store handle's: its map @p m, store
 *  @p path and database name @p db for the message. */
int store_map_cursor_get(store_map *m, const char *path, const char *db, MDB_cursor *cur,
                         MDB_val *key, MDB_val *val, MDB_cursor_op op);
/* How much store_walk_pages() checks. */
typedef enum store_walk_mode {
	STORE_WALK_QUICK, /* pages inside the file and of a B-tree kind: the highest page used */
	STORE_WALK_READ,  /* also every page's structure LMDB follows when it reads (flags, node
	                   * offsets, keys inside their page, depths, each page used once); not
	                   * value sizes, which store_map_check() checks as values are read */
	STORE_WALK_FULL   /* also every value size and overflow run: what LMDB trusts when it
	                   * writes */
} store_walk_mode;

/** Walk every B-tree that the commit of @p meta (an LMDB meta page) uses in @p fd, a data file
 *  of @p size bytes and pages of @p psize, with pread, and set *@p highest to the highest page
 *  it uses + 1. Pages past the file, of the wrong kind or too deep fail it; @p mode says what
 *  else (STORE_WALK_READ: page headers, node offsets, keys inside their page and apart, each
 *  page used once, leaves at the tree's depth, the key sizes and order of the store's
 *  databases, each database record's entry, leaf and branch page counts and the free list's
 *  overflow pages; STORE_WALK_FULL also: nodes that tile each page, overflow runs long enough
 *  for their value). Reads branch and leaf pages, and (STORE_WALK_QUICK, _FULL; _READ: the
 *  free list's only) one header per overflow value.
 *  @return 0, CKPT_ECORRUPT (@p why says where, when not NULL) or -ENOMEM. */
int store_walk_pages(int fd, uint32_t psize, uint64_t size, const uint8_t *meta,
                     store_walk_mode mode, uint64_t *highest, char *why, size_t why_len);
/** Refuse, in one line naming the damage, a data.mdb in @p path whose newest commit fails
 *  store_walk_pages() in @p mode (STORE_WALK_FULL: before a process writes to it;
 *  STORE_WALK_READ: before it reads, as LMDB would crash on such pages). Call it with a read
 *  transaction of the store open: it keeps the pages the walk reads from being reused. */
int store_check_pages(const char *path, store_walk_mode mode);

/* ---- helpers ---- */

void store_epoch_key(uint8_t out[8], uint64_t epoch);
uint64_t store_epoch_from_key(const MDB_val *key);
void store_chunk_key(uint8_t out[STORE_CHUNK_KEY_LEN], const uint8_t hash[16], uint32_t index);

/** Give lock.mdb in @p dir its blocks before LMDB maps it (creating it, STORE_LOCK_FILE_BYTES
 *  long and STORE_LOCK_RESERVE more, when missing): LMDB sizes it with ftruncate and writes through
 * the map, which on a full file system raises SIGBUS at the first page it cannot back. A lock.mdb
 * this call made and could not fill is removed. A lock.mdb that cannot be opened for writing is
 * left to LMDB (and its callers' read-only handling); a symbolic link in its place (put there after
 * the checks) is ELOOP. *@p created (may be NULL): this call made it.
 *  @return 0, or a positive errno (ENOSPC, EDQUOT, EFBIG, ELOOP, ...). */
int store_prepare_lock_file(const char *dir, bool *created);

/** Free the blocks of lock.mdb's reserve in @p dir (past the reader slots LMDB sizes it for;
 *  punched, the file keeps its size): a gc whose first step finds the disk full to the last
 *  block commits into them. @return true if any were freed. */
bool store_release_lock_reserve(const char *dir);
/** Allocate lock.mdb's blocks again after store_release_lock_reserve() (no error if the disk is
 *  still too full: the reserve is then smaller). */
void store_restore_lock_reserve(const char *dir);

/** Begin a snapshot's read txn and count it as open (adopting a map grown by another
 *  process when no other snapshot is open). store_snapshot_done() uncounts it. */
int store_snapshot_txn(ckpt_store *s, MDB_txn **out);
void store_snapshot_done(ckpt_store *s);
/** Begin a write txn (handles MDB_MAP_RESIZED). */
int store_write_txn(ckpt_store *s, MDB_txn **out);
/** Grow the map to at least @p min_size (no txn of this process may be active). */
int store_grow_map(ckpt_store *s, uint64_t min_size);
/** Bytes of the map in use and current map size. */
void store_map_usage(ckpt_store *s, uint64_t *used, uint64_t *size);
/** Refuse anything in @p path that is not a sound LMDB data file (not regular, not LMDB, or
 *  ending before the last page its newest commit uses) before LMDB maps it. */
int store_check_data_file(const char *path);

/** What store_owner_enter() changed, for store_owner_leave(). */
typedef struct store_owner {
	bool switched;
	uid_t uid, owner; /* the thread's fsuid before, the directory's owner */
	gid_t gid;        /* the thread's fsgid before */
} store_owner;
/** With euid 0, take (for this thread) the file-system uid and gid of the owner of directory
 *  @p path (its parent's when it does not exist) when that is another user, so that a link a
 *  user planted in it leads only to files that user could open; refuse a root-owned directory
 *  others may write without the sticky bit. Nothing for other processes.
 *  @return 0, or -EPERM with a message. */
int store_owner_enter(store_owner *saved, const char *path);
/** Give the thread back the file rights store_owner_enter() took; returns @p rc, whose message
 *  says, when it is -EACCES or -EPERM after a switch, that the files were opened as their
 *  directory's owner and what to do: run as that user with access to the path, or move the
 *  store, when the owner cannot reach @p path at all; else run as that user or chown root's
 *  files to them. Said once, also for nested calls. */
int store_owner_leave(store_owner *saved, int rc, const char *path);

struct stat;
/** Open directory @p name (in @p at) that this process has just made with mkdir: a descriptor,
 *  its identity in *@p st, its mode made 0700 where the file system keeps modes. Its owner and
 *  mode prove nothing (vfat, CIFS, NFS root_squash, sshfs show the mount's): what is refused is
 *  a directory that is not empty or a non-directory, which another put in its place.
 *  @return the descriptor, or -EEXIST (not empty), -ENOTDIR (not a directory, or a link),
 *  another negative errno. (store/compact.c) */
int store_open_made_dir(struct stat *st, int at, const char *name);

/** ckpt_flock_holders() of shared flocks only: the readers without lock.mdb (store/holders.c) */
int store_flock_readers(char *out, size_t len, const char *file);
/** ckpt_flock_holders() of exclusive flocks only: on a store directory, a create, a removal
 *  (ckpt_store_discard()) or ckpt gc */
int store_flock_writers(char *out, size_t len, const char *file);
/** ckpt_flock_holders() of the fcntl locks on @p store_path/lock.mdb, each process once: the
 *  processes that have the store's LMDB environment open (LMDB's lock on byte 0 of it) */
int store_env_holders(char *out, size_t len, const char *store_path);
/** Whether a process (not this one) holding @p store_path's lock.mdb maps a data.mdb in the
 * store's directory (by device and inode, whatever path it used) that is not the file @p data:
 * the data.mdb was replaced while it held the store. False where /proc cannot tell (no /proc,
 * another user's process, a holder in another mount namespace). */
bool store_env_holder_maps_other(const char *store_path, const struct stat *data);
/** How long a create, or a read-only open that found part of a store, waits for the store
 *  directory's flock: 60 s (tests shorten it). Its holders keep it for moments (a create, the
 *  removal of a store a failed run made, a reader's one open) or while they run (ckpt gc). */
extern int store_dir_wait_ms;
/** Take @p fd's flock @p how (LOCK_SH or LOCK_EX), waiting up to @p timeout_ms (polling, so
 *  that the wait is bounded): 0 when taken, -EWOULDBLOCK when it was still held after that,
 *  another negative errno where the file system has no flock (nothing to wait for). While an
 *  exclusive one waits, shared ones wait for it (store_dir_writer_waiting()): readers that
 *  come and go cannot keep it out. */
int store_flock_wait(int fd, int how, int timeout_ms);
/** Whether a store_flock_wait() for the exclusive flock of @p dir waits now (in any process) */
bool store_dir_writer_waiting(const char *dir);
/** The store directory @p dir's flock, shared, waiting up to store_dir_wait_ms for another
 *  process that holds it exclusively (a create, a removal, ckpt gc). @return 0 with *@p out_fd
 *  locked (close it to release), 1 with *@p out_fd -1 when there is nothing to wait for (no
 *  flock, or this process holds it itself), -ENOENT when there is no directory (any more),
 *  -EWOULDBLOCK when it stayed held, its holders in @p who. While a create or removal waits
 *  for it too, this waits for that first. */
int store_dir_lock_wait(int *out_fd, const char *dir, char *who, size_t wholen);
/** Whether another process holds @p dir's flock exclusively now (a create or ckpt gc of the
 *  store there), its holders in @p who ("" if unknown). */
bool store_dir_locked_by_other(char *who, size_t wholen, const char *dir);
/** -EBUSY naming them when other processes hold a shared flock on @p path's data.mdb: readers
 *  without lock.mdb, which LMDB cannot see, so a write could reuse the pages they read. The
 *  exclusive flock of ckpt-train and ckpt gc is theirs to check (ckpt_writer_lock()). */
int store_refuse_lockless_readers(const char *path);
/** Decode the settings record as stored in @p txn (another process may have changed the
 *  retention since @p s was opened: ckpt gc --keep-last N persists it). */
int store_read_settings(store_settings_rec *out, ckpt_store *s, MDB_txn *txn);
/** Update the handle's copy of the retention settings (under s->lock). */
void store_set_retention(ckpt_store *s, uint32_t keep_last, uint32_t keep_top);

/** Read the decoded checkpoint record of @p epoch inside @p txn. ckpt freed by caller. */
int store_load_checkpoint(store_ckpt_rec **out, ckpt_store *s, MDB_txn *txn, uint64_t epoch);
/** The stored record of @p epoch (pointers into the map, valid with @p txn): the lookup half of
 *  store_load_checkpoint(). */
int store_get_checkpoint(const void **data, size_t *len, ckpt_store *s, MDB_txn *txn,
                         uint64_t epoch);
/** Decode and check the record store_get_checkpoint() found: its other half. */
int store_decode_checkpoint(store_ckpt_rec **out, ckpt_store *s, uint64_t epoch,
                            const void *data, size_t len);

/* pthread_create() of a short-lived helper of libckpt's, with the asynchronous signals blocked
 * in it (a program's handlers run on its own threads; faults stay deliverable): 0 or the error
 * number of pthread_create() */
int store_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

/** Take one reference to the blob of @p hash (write txn); creates it from chunk data when new.
 *  @p chunk_crcs has nchunks entries; @p data may be NULL only when the blob already exists. */
int store_blob_ref(ckpt_store *s, MDB_txn *txn, const uint8_t hash[16], uint64_t nbytes,
                   const void *data, const uint32_t *chunk_crcs, uint32_t nchunks);
/** Drop one reference; deletes the blob and its chunks when it was the last. */
int store_blob_unref(ckpt_store *s, MDB_txn *txn, const uint8_t hash[16]);

/** The index record summarizing checkpoint record @p rec (monitored value, sizes). */
store_index_rec store_index_of_checkpoint(const ckpt_store *s, const store_ckpt_rec *rec);
/** Decode the index entry @p key/@p val of @p txn; a damaged index record is rebuilt from its
 *  checkpoint record (the index only summarizes it). CKPT_ECORRUPT when both are damaged. */
int store_index_read(store_index_rec *out, ckpt_store *s, MDB_txn *txn, const MDB_val *key,
                     const MDB_val *val);

/* Call @p fn for each index record in key order (a damaged one, also one reaching past
 * data.mdb, read from its checkpoint record as store_index_read() does). A negative return of
 * @p fn or of a read stops the walk and is returned; a positive one stops it, returned too. */
int store_index_each(ckpt_store *s, MDB_txn *txn,
                     int (*fn)(void *arg, uint64_t epoch, const store_index_rec *ir), void *arg);

/** One small write transaction that changes nothing (the settings record written again as
 *  stored): LMDB reuses a page freed by transaction T only from T+2 on, so this lets the next
 *  commit reuse the pages the last one freed. *@p mdb_rc receives a failed commit's LMDB code
 *  (0 otherwise). @return 0 or an error with its message set. */
int store_touch_commit(ckpt_store *s, int *mdb_rc);

/** Delete checkpoint @p epoch (record, index, blob references) inside a write txn. */
int store_delete_checkpoint(ckpt_store *s, MDB_txn *txn, uint64_t epoch);
/** Delete the blob record of @p hash and every chunk of it, whatever its reference count. */
int store_blob_delete(ckpt_store *s, MDB_txn *txn, const uint8_t hash[16]);
/** Set the reference count of the (decodable) blob record of @p hash to @p refcount. */
int store_blob_set_count(ckpt_store *s, MDB_txn *txn, const uint8_t hash[16], uint64_t refcount);

/* ---- reference counts against the checkpoints (store/refs.c) ---- */

typedef enum store_ref_kind {
	STORE_REF_MISCOUNT,   /* a blob whose stored count is not the references counted */
	STORE_REF_BAD_BLOB,   /* a blob record that does not decode */
	STORE_REF_STRAY_CHUNK /* a chunk of no blob record, or past its blob's last chunk */
} store_ref_kind;

typedef struct store_ref_finding {
	store_ref_kind kind;
	uint8_t key[STORE_CHUNK_KEY_LEN]; /* the blob's hash, or the chunk's key */
	uint64_t stored; /* STORE_REF_MISCOUNT: the stored count */
	uint64_t used;   /* references counted in the checkpoint records that decoded */
	uint64_t nbytes; /* the blob's bytes, or the chunk's (0 when unknown) */
} store_ref_finding;

typedef struct store_refs_result {
	bool complete;       /* every checkpoint record decoded: every count is exact */
	uint64_t references; /* tensor references counted */
	uint64_t blobs, chunks;
	store_ref_finding *findings;
	size_t n, cap;
} store_refs_result;

/** Count the tensor references of every checkpoint record of @p txn and compare them with every
 *  blob record and chunk. Free @p r with store_refs_free() (also done on error). */
int store_refs_check(store_refs_result *r, ckpt_store *s, MDB_txn *txn);
void store_refs_free(store_refs_result *r);
/** Whether finding @p f is damage whatever the checkpoint records that did not decode hold (a
 *  count below the references counted, a stray chunk; with every record read, all of them). */
bool store_ref_certain(const store_refs_result *r, const store_ref_finding *f);

/** Repair, in write txn @p txn, each certain finding of @p r (checked in @p txn). */
int store_refs_repair(ckpt_store *s, MDB_txn *txn, const store_refs_result *r,
                      ckpt_refs_repair *out);

/** Recompute "best" from the whole index and store it in meta (O(n log n)). */
int store_update_best(ckpt_store *s, MDB_txn *txn);
/** Update "best" after checkpoint @p epoch, summarized by @p ir, was written in @p txn: O(log n)
 *  (compares with the stored best), a full store_update_best() only when the best itself was
 *  replaced or its record is damaged. */
int store_update_best_for(ckpt_store *s, MDB_txn *txn, uint64_t epoch, const store_index_rec *ir);

/** Apply retention (keep_last / keep_top / best) inside a write txn; @p keep_epoch (if not
 *  NULL) is never deleted (the checkpoint a commit has just written). */
int store_apply_retention(ckpt_store *s, MDB_txn *txn, uint32_t keep_last, uint32_t keep_top,
                          const uint64_t *keep_epoch, uint32_t *out_deleted);

/** Up to @p cap best epochs by the index inside @p txn. */
int store_top_k(ckpt_store *s, MDB_txn *txn, uint64_t *out, size_t cap, size_t *out_count);

/** Whether a monitored value @p a beats @p b under @p mode (strictly). */
bool store_metric_better(double a, double b, ckpt_metric_mode mode);

int64_t store_now_ns(void);

/** 0, or -ECHILD with a message when this process is not the one that opened @p s (a child
 *  of it after fork(): LMDB's environment must not be used there). */
int store_check_process(const ckpt_store *s);
/** Whether this process is a child of the one that opened @p s (see store_check_process). */
bool store_forked(const ckpt_store *s);

/** True where tests may write what earlier library versions accepted (see store/writer.c). */
bool store_old_input_allowed(void);

/* store/json.c: @p text (@p len bytes, text[len] a NUL) checked as strict JSON. 0, or -EINVAL
 * with the first fault in @p why (@p cap bytes; "parse error at line L, column C: ...",
 * "not a JSON object", ...). */
/** One JSON object (integers of any size, numbers within a double's range). */
int store_json_check_object(const char *text, size_t len, char *why, size_t cap);
/** torch's optimizer param groups: a list of objects, each with "params" a list of parameter
 *  indices (integers from 0, each in one group once, together 0..n-1), "param_names" (a
 *  list of strings, one per index) in every group or in none. */
int store_json_check_param_groups(const char *text, size_t len, char *why, size_t cap);
/** store_json_check_param_groups(), and what every torch optimizer needs to load them, as
 *  checked at commit: the groups list at least one parameter (not [], not only empty
 *  "params"). How they fit the model tensors is left to checkpoint.pt (see
 *  ckpt_writer_commit()). */
int store_json_check_param_groups_loadable(const char *text, size_t len, char *why, size_t cap);

#endif
