/* store/compact.c - ckpt_store_compact(): shrink data.mdb to the pages its newest commit uses
 *
 * Invariants: data.mdb is only ever replaced by rename(2) of a complete copy that has been
 * read back and fsynced, and the directory is fsynced after, so a crash leaves the old or the
 * new file; a failed compaction removes its copy (and a lock.mdb it created). Nothing else
 * runs meanwhile: ckpt gc's locks (store/holders.c) make another gc wait and keep ckpt-train
 * and readers without lock.mdb out, the exclusive flock on the store directory makes writers
 * that start meanwhile wait and then lock the new data.mdb, and the exclusive fcntl lock on
 * byte 0 of lock.mdb (the lock LMDB's mdb_env_open takes to learn whether it is the
 * environment's first user) proves that no other process has the environment open and makes
 * any that opens it now wait in LMDB.
 *
 * Why processes holding the store open are refused rather than left on the old file: LMDB's
 * readers and writers choose the meta page by the parity of the transaction id kept in
 * lock.mdb. A process that kept the old file mapped would, after the next commit to the new
 * file, read the old file's other meta page (an older state) and never a new commit. The copy
 * continues the old file's ids, so lock.mdb stays right for the new file at every instant (a
 * crash just after the rename included), and lock.mdb is re-initialized by opening the new
 * file as its first user before the lock is released. A read-only opener that opened the old
 * data.mdb just before the rename and waited for the lock would map the old, unlinked file:
 * its header is cleared once the new one is in place, so that open fails instead.
 *
 * ckpt_store_compact_with() changes nothing of the store before the rename either: its work
 * (ckpt gc's retention) is done, after every lock is taken and every check made, on a compacted
 * scratch copy in data.mdb.gc/ with a lock.mdb of its own, and that copy is what is compacted
 * into data.mdb. The store's own environment is never opened for writing, since LMDB would
 * share the lock on lock.mdb at that open and let waiting openers map the old file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/holders.h"
#include "store/store_int.h"

#define COMPACT_COPY "data.mdb.compact"
#define COMPACT_SCRATCH "data.mdb.gc" /* the directory ckpt_store_compact_with() works in */

typedef struct compact_job {
	const char *path;
	char *data_path, *lock_path, *copy_path, *scratch_path, *scratch_data;
	ckpt_gc_lock_fds gc; /* the directory's flock, and the old data.mdb's */
	int lock_fd; /* lock.mdb: holds the exclusive fcntl lock */
	int copy_fd; /* data.mdb.compact while it is written */
	bool lock_created, copy_created, scratch_created, renamed;
	MDB_env *env; /* what is copied: the old data.mdb or the scratch copy, without lock.mdb */
} compact_job;

/* What a copy must hold again: the named databases and their entries. */
typedef struct env_census {
	uint64_t txnid; /* id of the newest commit */
	uint64_t dbs;
	uint64_t entries;
	uint32_t psize;
	bool has_meta; /* the store's "meta" database is there */
} env_census;

static uint64_t get_u64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void put_u64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int open_env(MDB_env **out, const char *path, unsigned flags)
{
	MDB_env *env;
	int mrc = mdb_env_create(&env);
	if (mrc)
		return mrc;
	if ((mrc = mdb_env_set_maxdbs(env, 8)) ||
	    (mrc = mdb_env_set_maxreaders(env, STORE_MAX_READERS)) ||
	    (mrc = mdb_env_open(env, path, flags, 0644))) {
		mdb_env_close(env);
		return mrc;
	}
	*out = env;
	return 0;
}

/* Entries of one named database: from its record, or (@p walk) by visiting each one, which
 * reads every branch and leaf page of the tree. */
static int count_db(MDB_txn *txn, MDB_dbi dbi, bool walk, uint64_t *out)
{
	MDB_stat st;
	int mrc = mdb_stat(txn, dbi, &st);
	if (mrc || !walk) {
		*out = mrc ? 0 : st.ms_entries;
		return mrc;
	}
	MDB_cursor *cur;
	if ((mrc = mdb_cursor_open(txn, dbi, &cur)))
		return mrc;
	MDB_val k, v;
	uint64_t n = 0;
	while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
		n++;
	mdb_cursor_close(cur);
	*out = n;
	return mrc == MDB_NOTFOUND ? (n == st.ms_entries ? 0 : MDB_CORRUPTED) : mrc;
}

static int take_census(env_census *out, MDB_env *env, bool walk)
{
	*out = (env_census){0};
	MDB_stat est;
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_dbi main_dbi;
	int mrc = mdb_env_stat(env, &est);
	if (mrc || (mrc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)))
		return mrc;
	out->psize = est.ms_psize;
	out->txnid = mdb_txn_id(txn);
	if ((mrc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) ||
	    (mrc = mdb_cursor_open(txn, main_dbi, &cur)))
		goto out;
	MDB_val k, v;
	while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		char *name = strndup(k.mv_data, k.mv_size);
		if (!name) {
			mrc = ENOMEM;
			break;
		}
		MDB_dbi dbi;
		uint64_t n = 0;
		mrc = mdb_dbi_open(txn, name, 0, &dbi);
		if (mrc == 0)
			mrc = count_db(txn, dbi, walk, &n);
		out->has_meta |= strcmp(name, "meta") == 0;
		free(name);
		if (mrc)
			break;
		out->dbs++;
		out->entries += n;
	}
	if (mrc == MDB_NOTFOUND)
		mrc = 0;
out:
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return mrc;
}

/* Refuse what ckpt_store_open() refuses (a newer schema, a damaged run record, a directory
 * that is not a ckpt store) before any lock is taken or file created: a read-only open creates
 * no lock.mdb and writes nothing. It must come before the locks: an LMDB open in this process
 * would share, and its close release, the fcntl lock on lock.mdb the compaction holds. */
static int check_store_opens(const char *path)
{
	ckpt_store *s;
	int rc = ckpt_store_open(&s, path, CKPT_OPEN_READONLY);
	if (rc == 0)
		ckpt_store_close(s);
	return rc;
}

/* ckpt gc's locks (ckpt_gc_lock()): after another gc or compaction, if one runs now; refused
 * while ckpt-train trains or a reader without lock.mdb reads. */
static int take_writer_lock(compact_job *j)
{
	char who[512];
	int state = ckpt_gc_lock(&j->gc, j->path, who, sizeof(who));
	if (state < 0)
		return store_error(state, "store %s: cannot open data.mdb (%s)", j->path,
		                   strerror(-state));
	if (state == CKPT_WRITER_READERS)
		return store_error(-EBUSY,
		                   "store %s is being read by %s%sa process that opened it without "
		                   "lock.mdb; compact it when that process is done",
		                   j->path, who, who[0] ? ", " : "");
	if (state == CKPT_WRITER_BUSY) /* a gc would have been waited for: a trainer */
		return store_error(-EBUSY,
		                   "store %s is being written by %s; compact it when that ends",
		                   j->path, who[0] ? who : "ckpt-train or ckpt gc");
	return 0;
}

/* LMDB's exclusive lock on lock.mdb: granted only while no other process has the environment
 * open; openers wait for it in mdb_env_open. */
static int take_env_lock(compact_job *j)
{
	j->lock_fd = open(j->lock_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (j->lock_fd < 0 && errno == ENOENT) {
		j->lock_fd =
		    open(j->lock_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		j->lock_created = j->lock_fd >= 0;
	}
	if (j->lock_fd < 0)
		return store_error(-errno, "store %s: cannot open lock.mdb for writing (%s)",
		                   j->path, strerror(errno));
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
	/* a process that is closing the store (a mount just unmounted: its daemon is still
	 * cleaning up when fusermount3 -u returns) lets go within moments: wait a second for it */
	int e = 0;
	for (int tries = 0; tries < 20; tries++) {
		if (fcntl(j->lock_fd, F_SETLK, &fl) == 0)
			return 0;
		e = errno;
		if (e != EAGAIN && e != EACCES)
			break;
		nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
	}
	if (e != EAGAIN && e != EACCES)
		return store_error(-e, "store %s: cannot lock lock.mdb (%s)", j->path, strerror(e));
	char who[96] = "another process (a ckptfs mount, a ckpt command or ckpt-train)", comm[64];
	struct flock held = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
	if (fcntl(j->lock_fd, F_GETLK, &held) == 0 && held.l_type != F_UNLCK && held.l_pid > 0) {
		ckpt_process_name(comm, sizeof(comm), (long)held.l_pid);
		snprintf(who, sizeof(who), comm[0] ? "process %ld (%s)" : "process %ld",
		         (long)held.l_pid, comm);
	}
	return store_error(-EBUSY,
	                   "store %s is open in %s, which would go on reading the old data.mdb; "
	                   "compact it when that has closed the store (unmount a mount)",
	                   j->path, who);
}

/* The copy has its commit in one meta page with id 1 (and an empty one with id 0). Give both
 * meta pages the commit, page (T & 1) with id T and the other with id T - 1, T being the old
 * file's newest id: whichever of the two lock.mdb holds (T, or T - 1 after a writer died
 * between its meta page and lock.mdb), readers and the next writer find the compacted commit
 * in the meta page it names. */
static int continue_txnids(compact_job *j, uint32_t psize, uint64_t txnid)
{
	uint8_t meta[2][LMDB_META_END];
	for (int i = 0; i < 2; i++) {
		if (pread(j->copy_fd, meta[i], LMDB_META_END, (off_t)i * psize) != LMDB_META_END)
			return store_error(-EIO, "store %s: cannot read back %s", j->path,
			                   COMPACT_COPY);
		uint32_t magic = (uint32_t)get_u64le(meta[i] + 16);
		if (magic != LMDB_MAGIC)
			return store_error(CKPT_ECORRUPT, "store %s: %s has no LMDB meta page %d",
			                   j->path, COMPACT_COPY, i);
	}
	int newest = get_u64le(meta[1] + LMDB_META_TXNID) > get_u64le(meta[0] + LMDB_META_TXNID);
	for (int i = 0; i < 2; i++) {
		uint8_t page[LMDB_META_END];
		memcpy(page, meta[newest], sizeof(page));
		memcpy(page, meta[i], 16); /* the page header: its own page number */
		put_u64le(page + LMDB_META_TXNID, (uint64_t)i == (txnid & 1) ? txnid : txnid - 1);
		if (pwrite(j->copy_fd, page, sizeof(page), (off_t)i * psize) !=
		    (ssize_t)sizeof(page))
			return store_error(errno == ENOSPC ? -ENOSPC : -EIO,
			                   "store %s: cannot write %s (%s)", j->path, COMPACT_COPY,
			                   strerror(errno));
	}
	return 0;
}

/* CKPT_ECORRUPT unless @p got (a copy) holds the databases and entries of @p want */
static int check_copy(const compact_job *j, const char *what, const env_census *got,
                      uint64_t got_txnid, const env_census *want, uint64_t want_txnid, int mrc)
{
	if (!mrc && got->dbs == want->dbs && got->entries == want->entries &&
	    got_txnid == want_txnid)
		return 0;
	return store_error(CKPT_ECORRUPT,
	                   "store %s: %s does not read back as the store (%llu databases, "
	                   "%llu entries, commit %llu; the store has %llu, %llu, %llu)%s%s",
	                   j->path, what, (unsigned long long)got->dbs,
	                   (unsigned long long)got->entries, (unsigned long long)got_txnid,
	                   (unsigned long long)want->dbs, (unsigned long long)want->entries,
	                   (unsigned long long)want_txnid, mrc ? ": " : "",
	                   mrc ? mdb_strerror(mrc) : "");
}

/* Write j->env's newest commit compacted into data.mdb.compact, with the store's transaction
 * id @p txnid, check it against @p source (j->env's census) and fsync it. */
static int write_copy(compact_job *j, const struct stat *old, const env_census *source,
                      uint64_t txnid, uint64_t *size_after)
{
	j->copy_fd = open(j->copy_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	                  old->st_mode & 07777);
	if (j->copy_fd < 0)
		return store_error(-errno, "store %s: cannot create %s (%s)", j->path, COMPACT_COPY,
		                   strerror(errno));
	j->copy_created = true;
	struct stat st;
	if (fchmod(j->copy_fd, old->st_mode & 07777) != 0 || fstat(j->copy_fd, &st) != 0 ||
	    ((st.st_uid != old->st_uid || st.st_gid != old->st_gid) &&
	     fchown(j->copy_fd, old->st_uid, old->st_gid) != 0))
		return store_error(-errno,
		                   "store %s: cannot give %s data.mdb's mode and owner (%s)",
		                   j->path, COMPACT_COPY, strerror(errno));
	int mrc = mdb_env_copyfd2(j->env, j->copy_fd, MDB_CP_COMPACT);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: writing the compacted copy %s", j->path,
		                        COMPACT_COPY);
	int rc = continue_txnids(j, source->psize, txnid);
	if (rc)
		return rc;
	MDB_env *copy;
	env_census after;
	if ((mrc = open_env(&copy, j->copy_path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY)))
		return store_lmdb_error(mrc, "store %s: opening the compacted copy", j->path);
	mrc = take_census(&after, copy, true);
	mdb_env_close(copy);
	if ((rc = check_copy(j, "the compacted copy", &after, after.txnid, source, txnid, mrc)))
		return rc;
	if (fsync(j->copy_fd) != 0 || fstat(j->copy_fd, &st) != 0)
		return store_error(errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -EIO,
		                   "store %s: cannot write %s to disk (%s)", j->path, COMPACT_COPY,
		                   strerror(errno));
	*size_after = (uint64_t)st.st_size;
	int fd = j->copy_fd;
	j->copy_fd = -1;
	if (close(fd) != 0)
		return store_error(-EIO, "store %s: cannot close %s (%s)", j->path, COMPACT_COPY,
		                   strerror(errno));
	return 0;
}

/* The scratch directory: its two files and itself, never what a symlink in its place points
 * at. Left by a compaction that was killed, it is never the store's. */
static int remove_scratch(const compact_job *j)
{
	int dir = open(j->scratch_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0 && (errno == ENOTDIR || errno == ELOOP) && unlink(j->scratch_path) == 0)
		return 0;
	if (dir < 0)
		return errno == ENOENT ? 0
		                       : store_error(-errno, "store %s: cannot remove an old %s (%s)",
		                                     j->path, COMPACT_SCRATCH, strerror(errno));
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		(void)unlinkat(dir, files[i], 0); /* what is missing is checked by rmdir */
	close(dir);
	if (rmdir(j->scratch_path) != 0 && errno != ENOENT)
		return store_error(-errno, "store %s: cannot remove %s (%s)", j->path,
		                   COMPACT_SCRATCH, strerror(errno));
	return 0;
}

/* ckpt_store_compact_with()'s work: @p before on a compacted scratch copy of j->env (whose
 * census is @p store), which then becomes j->env, with its census in @p out. */
static int run_before(compact_job *j, const env_census *store, ckpt_store_compact_fn before,
                      void *arg, env_census *out)
{
	if (mkdir(j->scratch_path, 0700) != 0)
		return store_error(-errno, "store %s: cannot create %s (%s)", j->path,
		                   COMPACT_SCRATCH, strerror(errno));
	j->scratch_created = true;
	int fd = open(j->scratch_data, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return store_error(-errno, "store %s: cannot create %s/data.mdb (%s)", j->path,
		                   COMPACT_SCRATCH, strerror(errno));
	int mrc = mdb_env_copyfd2(j->env, fd, MDB_CP_COMPACT);
	if (close(fd) != 0 && !mrc)
		mrc = errno;
	if (mrc)
		return store_lmdb_error(mrc, "store %s: writing the scratch copy %s/data.mdb",
		                        j->path, COMPACT_SCRATCH);
	mdb_env_close(j->env);
	j->env = NULL;
	/* what @p before gets must be the whole store */
	env_census copy;
	if ((mrc = open_env(&j->env, j->scratch_data,
	                    MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY | MDB_NOTLS)))
		return store_lmdb_error(mrc, "store %s: opening the scratch copy", j->path);
	mrc = take_census(&copy, j->env, true);
	mdb_env_close(j->env);
	j->env = NULL;
	int rc = check_copy(j, "the scratch copy", &copy, 0, store, 0, mrc);
	ckpt_store *s;
	if (rc || (rc = ckpt_store_open(&s, j->scratch_path, 0)))
		return rc;
	rc = before(s, arg);
	ckpt_store_close(s);
	if (rc)
		return rc;
	if ((mrc = open_env(&j->env, j->scratch_data,
	                    MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY | MDB_NOTLS)) ||
	    (mrc = take_census(out, j->env, false)))
		return store_lmdb_error(mrc, "store %s: reading the scratch copy", j->path);
	return 0;
}

/* CKPT_COMPACT_TEST_PAUSE=FILE, for tests: with the copy ready and every lock held, create
 * FILE and wait until it is removed (a minute at most), so that a test can start commands
 * during a compaction. */
static void test_pause(void)
{
	const char *file = getenv("CKPT_COMPACT_TEST_PAUSE");
	int fd = file && *file ? open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
	if (fd < 0)
		return;
	close(fd);
	for (int i = 0; i < 6000 && access(file, F_OK) == 0; i++)
		usleep(10000);
}

/* Put the copy in place; from the rename on, the store is the compacted one. */
static int swap_in(compact_job *j)
{
	int dir = open(j->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return store_error(-errno, "store %s: cannot open the directory (%s)", j->path,
		                   strerror(errno));
	if (rename(j->copy_path, j->data_path) != 0) {
		int e = errno;
		close(dir);
		return store_error(-e, "store %s: cannot rename %s to data.mdb (%s)", j->path,
		                   COMPACT_COPY, strerror(e));
	}
	j->renamed = true;
	int rc = fsync(dir) == 0 ? 0 : -errno;
	close(dir);
	if (rc && rc != -EINVAL) /* some file systems cannot sync a directory */
		return store_error(rc,
		                   "store %s: data.mdb is compacted but the directory did not "
		                   "reach the disk (%s)",
		                   j->path, strerror(-rc));
	return 0;
}

/* After the swap: a process that opened the old data.mdb before the rename and waited for
 * lock.mdb must not map it (see the file comment); clear its magic, unless it is still
 * linked somewhere (a hard-linked backup). Then initialize lock.mdb for the new file as
 * LMDB's first user does, while this process still holds the exclusive lock. */
static int retire_old_file(compact_job *j)
{
	struct stat st;
	static const uint8_t zero[4];
	if (fstat(j->gc.data_fd, &st) == 0 && st.st_nlink == 0 &&
	    (fcntl(j->gc.data_fd, F_GETFL) & O_ACCMODE) == O_RDWR)
		(void)!pwrite(j->gc.data_fd, zero, sizeof(zero), 16); /* best effort: it is unlinked */
	MDB_env *env;
	int mrc = open_env(&env, j->path, MDB_RDONLY | MDB_NOTLS);
	if (mrc)
		return store_lmdb_error(mrc,
		                        "store %s: data.mdb is compacted but opening it "
		                        "again failed",
		                        j->path);
	mdb_env_close(env); /* releases this process's locks on lock.mdb */
	return 0;
}

static void job_free(compact_job *j, bool failed)
{
	if (j->env)
		mdb_env_close(j->env);
	if (j->copy_fd >= 0)
		close(j->copy_fd);
	if (failed && j->copy_created && !j->renamed)
		(void)unlink(j->copy_path);
	if (j->scratch_created)
		(void)remove_scratch(j);
	if (failed && j->lock_created && !j->renamed)
		(void)unlink(j->lock_path);
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	ckpt_gc_unlock(&j->gc); /* last: writers waiting for the directory's then go on */
	free(j->data_path);
	free(j->lock_path);
	free(j->copy_path);
	free(j->scratch_path);
	free(j->scratch_data);
}

int ckpt_store_compact_with(ckpt_store_compact_stats *out, const char *path,
                            ckpt_store_compact_fn before, void *arg)
{
	compact_job j = {.path = path, .gc = {-1, -1}, .lock_fd = -1, .copy_fd = -1};
	struct stat old;
	env_census store, source;
	uint64_t size_after = 0;
	int rc, mrc;
	if (!path || !*path)
		return store_error(-EINVAL, "store path is empty");
	if (stat(path, &old) != 0)
		return store_error(-errno, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(old.st_mode))
		return store_error(CKPT_ENOTSTORE, "%s: not a ckpt store (not a directory)", path);
	if ((rc = store_check_data_file(path)) || (rc = check_store_opens(path)))
		return rc;
	if (asprintf(&j.data_path, "%s/data.mdb", path) < 0 ||
	    asprintf(&j.lock_path, "%s/lock.mdb", path) < 0 ||
	    asprintf(&j.copy_path, "%s/%s", path, COMPACT_COPY) < 0 ||
	    asprintf(&j.scratch_path, "%s/%s", path, COMPACT_SCRATCH) < 0 ||
	    asprintf(&j.scratch_data, "%s/data.mdb", j.scratch_path) < 0) {
		rc = store_error(-ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = take_writer_lock(&j)) || (rc = take_env_lock(&j)))
		goto out;
	if (fstat(j.gc.data_fd, &old) != 0) {
		rc = store_error(-errno, "store %s: cannot stat data.mdb (%s)", path,
		                 strerror(errno));
		goto out;
	}
	if ((mrc = open_env(&j.env, path, MDB_NOLOCK | MDB_RDONLY | MDB_NOTLS)) ||
	    (mrc = take_census(&store, j.env, false))) {
		rc = store_lmdb_error(mrc, "store %s: reading the store", path);
		goto out;
	}
	if (!store.has_meta || store.txnid == 0) {
		rc = store_error(CKPT_ENOTSTORE, "%s: not a ckpt store (no meta database)", path);
		goto out;
	}
	/* left by a compaction that was killed: never renamed, so never the store's */
	if (unlink(j.copy_path) != 0 && errno != ENOENT) {
		rc = store_error(-errno, "store %s: cannot remove an old %s (%s)", path,
		                 COMPACT_COPY, strerror(errno));
		goto out;
	}
	if ((rc = remove_scratch(&j)))
		goto out;
	source = store;
	if (before && (rc = run_before(&j, &store, before, arg, &source)))
		goto out;
	if ((rc = write_copy(&j, &old, &source, store.txnid, &size_after)))
		goto out;
	mdb_env_close(j.env);
	j.env = NULL;
	if (j.scratch_created && remove_scratch(&j) == 0) /* else job_free tries again */
		j.scratch_created = false;
	test_pause();
	if ((rc = swap_in(&j)) || (rc = retire_old_file(&j)))
		goto out;
	if (out)
		*out = (ckpt_store_compact_stats){.size_before = (uint64_t)old.st_size,
		                                  .size_after = size_after};
out:
	job_free(&j, rc != 0);
	return rc;
}

int ckpt_store_compact(ckpt_store_compact_stats *out, const char *path)
{
	return ckpt_store_compact_with(out, path, NULL, NULL);
}
