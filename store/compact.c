/* store/compact.c - compacted copies of a store: ckpt_store_compact() shrinks data.mdb to the
 * pages its newest commit uses, ckpt_store_backup() writes one read snapshot into a new store
 *
 * A backup never changes its source: it copies through a read snapshot of the caller's handle
 * (LMDB's mdb_env_copyfd2, which a writer committing meanwhile does not disturb) into
 * DEST/data.mdb.tmp/data.mdb, checks and fsyncs it, reads it back there as a store, and only
 * then renames it to DEST/data.mdb (never over another) and fsyncs DEST: no DEST/data.mdb
 * exists that was not checked. Damage found in the copy is the source's (named so) unless the
 * source's own record checks fine. On failure what it made is removed again.
 *
 * Compaction's invariants: data.mdb is only ever replaced by rename(2) of a complete copy that has been
 * read back and fsynced, and the directory is fsynced after, so a crash leaves the old or the
 * new file; a failed compaction removes its copy (and a lock.mdb it created), and so does a
 * signal handler calling ckpt_store_compact_interrupted() before the rename (the termination
 * signals are held from the rename until the new file is ready). Nothing else
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h> /* after string.h: the POSIX dirname() and basename() */
#include <sys/file.h>
#include <sys/fsuid.h>
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
	int dir_fd;             /* the store directory: what is made is removed in it */
	int scratch_fd;         /* data.mdb.gc/ once made */
	struct stat scratch_st; /* its identity */
	/* what is read back, through the descriptors: others who may write the store directory
	 * cannot put another file or directory in place of the names */
	char copy_open[40], scratch_open[40], scratch_data_open[56];
	bool lock_created, copy_created, scratch_created, renamed;
	MDB_env *env; /* what is copied: the old data.mdb or the scratch copy, without lock.mdb */
} compact_job;

/* "/proc/self/fd/@p fd" in @p buf (@p len bytes) when it leads to the file @p id, so that a
 * file opened by name is read back through the descriptor, not through a name another may
 * replace; without /proc @p name. */
static const char *fd_path(char *buf, size_t len, int fd, const char *name, const struct stat *id)
{
	struct stat st;
	snprintf(buf, len, "/proc/self/fd/%d", fd);
	return stat(buf, &st) == 0 && st.st_dev == id->st_dev && st.st_ino == id->st_ino ? buf
	                                                                                 : name;
}

/* Remove @p name in @p dir_fd (@p flags 0 or AT_REMOVEDIR) if it is the file @p dev/@p ino,
 * never what another put in its place; async-signal-safe. -1 with errno on failure. */
static int remove_own(int dir_fd, const char *name, dev_t dev, ino_t ino, int flags)
{
	struct stat st;
	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -1;
	if (st.st_dev != dev || st.st_ino != ino) {
		errno = EEXIST;
		return -1;
	}
	return unlinkat(dir_fd, name, flags);
}

int store_open_made_dir(struct stat *st, int at, const char *name)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR || errno == ELOOP ? -ENOTDIR : -errno;
	/* not by owner or mode: vfat, exfat, CIFS, NFS with root_squash and sshfs show every
	 * directory with the mount's owner and mode. Just made, it is empty; one another put in
	 * its place may hold their files, and a directory of theirs left empty gains nothing */
	int e = 0, dup_fd = fstat(fd, st) == 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		e = -errno;
		if (dup_fd >= 0)
			close(dup_fd);
		close(fd);
		return e;
	}
	errno = 0;
	for (struct dirent *entry; !e && (entry = readdir(d));)
		if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
			e = -EEXIST;
	if (!e && errno)
		e = -errno;
	rewinddir(d); /* the dup shares the descriptor's offset */
	closedir(d);
	if (e) {
		close(fd);
		return e;
	}
	(void)fchmod(fd, 0700); /* where modes are kept: mkdir's 0700 less nothing of a umask */
	return fd;
}

/* "@p name was replaced by another directory while @p what made it", or what -@p rc says */
static const char *made_dir_error(char *buf, size_t len, int rc, const char *name,
                                  const char *what)
{
	if (rc == -EEXIST || rc == -ENOTDIR)
		snprintf(buf, len, "%s was replaced by another %s while %s made it", name,
		         rc == -EEXIST ? "directory" : "file", what);
	else
		snprintf(buf, len, "cannot open %s (%s)", name, strerror(-rc));
	return buf;
}

/* What a signal handler removes of the compaction in progress (ckpt_store_compact_interrupted):
 * each file is marked once made, and only while this process holds every lock, so that it never
 * removes what another compaction made; the paths are the job's, cleared before job_free()
 * frees them. @c swapped outlives the job: whether the last compaction of this process
 * replaced data.mdb. */
static struct {
	volatile sig_atomic_t active, made_lock, made_copy, made_scratch, swapped;
	volatile sig_atomic_t dir_fd; /* the job's store directory, open while active */
	volatile dev_t scratch_dev;   /* data.mdb.gc/'s identity: set before made_scratch */
	volatile ino_t scratch_ino;
	char *volatile lock, *volatile copy;
} compact_now;

/* The signals ckpt_store_compact_with() holds back from the rename until data.mdb is ready:
 * those a command's handler ends it by (ckpt gc's, as ckpt backup's). */
static const int compact_held_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/* Block the held signals in this thread; the mask before goes to @p old. */
static void hold_signals(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(compact_held_signals) / sizeof(compact_held_signals[0]); i++)
		sigaddset(&set, compact_held_signals[i]);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

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
	int mrc = flags & MDB_NOLOCK ? 0 : store_prepare_lock_file(path, NULL);
	if (!mrc)
		mrc = mdb_env_create(&env);
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

/* Entries of one named database @p name: from its record, or (@p walk) by visiting each one,
 * which reads every branch and leaf page of the tree and checks that each key and value lies
 * inside the file (@p map). */
static int count_db(MDB_txn *txn, MDB_dbi dbi, const char *name, store_map *map, bool walk,
                    uint64_t *out)
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
	const char *path = "?";
	(void)mdb_env_get_path(mdb_txn_env(txn), &path);
	while ((mrc = store_map_cursor_get(map, path, name, cur, &k, &v, MDB_NEXT)) == 0)
		n++;
	mdb_cursor_close(cur);
	*out = n;
	return mrc == MDB_NOTFOUND ? (n == st.ms_entries ? 0 : MDB_CORRUPTED) : mrc;
}

/* The census of what @p txn sees. */
static int census_of_txn(env_census *out, MDB_txn *txn, bool walk)
{
	*out = (env_census){0};
	MDB_stat est;
	MDB_cursor *cur = NULL;
	MDB_dbi main_dbi;
	int mrc = mdb_env_stat(mdb_txn_env(txn), &est);
	if (mrc)
		return mrc;
	out->psize = est.ms_psize;
	out->txnid = mdb_txn_id(txn);
	store_map map = {0};
	const char *path = "?";
	store_map_locate(&map, mdb_txn_env(txn));
	(void)mdb_env_get_path(mdb_txn_env(txn), &path);
	if ((mrc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) ||
	    (mrc = mdb_cursor_open(txn, main_dbi, &cur)))
		goto out;
	MDB_val k, v;
	while ((mrc = store_map_cursor_get(&map, path, "main", cur, &k, &v, MDB_NEXT)) == 0) {
		char *name = strndup(k.mv_data, k.mv_size);
		if (!name) {
			mrc = ENOMEM;
			break;
		}
		MDB_dbi dbi;
		uint64_t n = 0;
		mrc = mdb_dbi_open(txn, name, 0, &dbi);
		if (mrc == 0)
			mrc = count_db(txn, dbi, name, &map, walk, &n);
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
	return mrc;
}

/* The census of @p env's newest commit. */
static int take_census(env_census *out, MDB_env *env, bool walk)
{
	MDB_txn *txn;
	int mrc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (mrc) {
		*out = (env_census){0};
		return mrc;
	}
	mrc = census_of_txn(out, txn, walk);
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
static int check_copy(const char *path, const char *what, const env_census *got,
                      uint64_t got_txnid, const env_census *want, uint64_t want_txnid, int mrc)
{
	if (mrc == STORE_EOUTSIDE) /* the message names the record */
		return CKPT_ECORRUPT;
	if (!mrc && got->dbs == want->dbs && got->entries == want->entries &&
	    got_txnid == want_txnid)
		return 0;
	return store_error(CKPT_ECORRUPT,
	                   "store %s: %s does not read back as the store (%llu databases, "
	                   "%llu entries, commit %llu; the store has %llu, %llu, %llu)%s%s",
	                   path, what, (unsigned long long)got->dbs,
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
	/* the held signals wait while the file is made and marked: a handler between the two
	 * would leave it and say no copy is left */
	sigset_t mask;
	hold_signals(&mask);
	j->copy_fd = open(j->copy_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	                  old->st_mode & 07777);
	int e = errno;
	if (j->copy_fd >= 0) {
		j->copy_created = true;
		compact_now.made_copy = compact_now.active;
	}
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	if (j->copy_fd < 0)
		return store_error(-e, "store %s: cannot create %s (%s)", j->path, COMPACT_COPY,
		                   strerror(e));
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
	const char *name =
	    fd_path(j->copy_open, sizeof(j->copy_open), j->copy_fd, j->copy_path, &st);
	if ((mrc = open_env(&copy, name, MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY)))
		return store_lmdb_error(mrc, "store %s: opening the compacted copy", j->path);
	mrc = take_census(&after, copy, true);
	mdb_env_close(copy);
	if ((rc = check_copy(j->path, "the compacted copy", &after, after.txnid, source, txnid, mrc)))
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
static int remove_scratch(compact_job *j)
{
	if (j->scratch_fd >= 0) { /* this job's: through its descriptor, and only it */
		(void)unlinkat(j->scratch_fd, "data.mdb", 0);
		(void)unlinkat(j->scratch_fd, "lock.mdb", 0);
		close(j->scratch_fd);
		j->scratch_fd = -1;
		if (remove_own(j->dir_fd, COMPACT_SCRATCH, j->scratch_st.st_dev,
		               j->scratch_st.st_ino, AT_REMOVEDIR) != 0 &&
		    errno != ENOENT)
			return store_error(
			    -errno, "store %s: cannot remove %s (%s)", j->path, COMPACT_SCRATCH,
			    errno == EEXIST ? "another file took its place" : strerror(errno));
		return 0;
	}
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
	/* made, opened and marked with the held signals waiting, as write_copy()'s copy: a
	 * handler removes it only as the directory of this identity */
	sigset_t mask;
	hold_signals(&mask);
	int made = mkdirat(j->dir_fd, COMPACT_SCRATCH, 0700), e = errno;
	if (made == 0) {
		j->scratch_created = true;
		j->scratch_fd = store_open_made_dir(&j->scratch_st, j->dir_fd, COMPACT_SCRATCH);
	}
	if (j->scratch_fd >= 0) {
		compact_now.scratch_dev = j->scratch_st.st_dev;
		compact_now.scratch_ino = j->scratch_st.st_ino;
		atomic_signal_fence(memory_order_seq_cst);
		compact_now.made_scratch = compact_now.active;
	}
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	if (made != 0)
		return store_error(-e, "store %s: cannot create %s (%s)", j->path, COMPACT_SCRATCH,
		                   strerror(e));
	if (j->scratch_fd < 0) {
		char why[4200];
		return store_error(j->scratch_fd, "store %s: %s", j->path,
		                   made_dir_error(why, sizeof(why), j->scratch_fd, j->scratch_path,
		                                  "ckpt gc --compact"));
	}
	const char *dir = fd_path(j->scratch_open, sizeof(j->scratch_open), j->scratch_fd,
	                          j->scratch_path, &j->scratch_st);
	const char *data = j->scratch_data;
	if (dir == j->scratch_open) {
		snprintf(j->scratch_data_open, sizeof(j->scratch_data_open), "%s/data.mdb", dir);
		data = j->scratch_data_open;
	}
	int fd = openat(j->scratch_fd, "data.mdb",
	                O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
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
	if ((mrc = open_env(&j->env, data, MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY | MDB_NOTLS)))
		return store_lmdb_error(mrc, "store %s: opening the scratch copy", j->path);
	mrc = take_census(&copy, j->env, true);
	mdb_env_close(j->env);
	j->env = NULL;
	int rc = check_copy(j->path, "the scratch copy", &copy, 0, store, 0, mrc);
	ckpt_store *s;
	if (rc || (rc = ckpt_store_open(&s, dir, 0)))
		return rc;
	rc = before(s, arg);
	ckpt_store_close(s);
	if (rc)
		return rc;
	if ((mrc = open_env(&j->env, data, MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY | MDB_NOTLS)) ||
	    (mrc = take_census(out, j->env, false)))
		return store_lmdb_error(mrc, "store %s: reading the scratch copy", j->path);
	return 0;
}

/* @p var=FILE in the environment, for tests: create FILE and wait until it is removed (a
 * minute at most). CKPT_COMPACT_TEST_PAUSE pauses a compaction with the copy ready and every
 * lock held, so that a test can start commands during it or signal it;
 * CKPT_COMPACT_TEST_PAUSE_SCRATCH one with --keep-* once the retention is applied to the scratch
 * copy; CKPT_COMPACT_TEST_PAUSE_SWAPPED one that has just replaced data.mdb (the signals held);
 * CKPT_BACKUP_TEST_PAUSE a backup with DEST/data.mdb.tmp/data.mdb written, and
 * CKPT_BACKUP_TEST_PAUSE_VALIDATING one reading that copy back, so that a test can signal or
 * kill it or change the copy. */
static void test_pause(const char *var)
{
	const char *file = getenv(var);
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

bool ckpt_store_compact_interrupted(void)
{
	if (!compact_now.active)
		return compact_now.swapped;
	/* unlink, openat, fstat, fstatat, unlinkat and close are async-signal-safe */
	if (compact_now.made_copy && !compact_now.swapped)
		(void)unlink(compact_now.copy); /* renamed by the swap: then no longer there */
	if (compact_now.made_scratch) { /* in the store directory, only the one this job made */
		struct stat st;
		int dir = openat(compact_now.dir_fd, COMPACT_SCRATCH,
		                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dir >= 0 && fstat(dir, &st) == 0 && st.st_dev == compact_now.scratch_dev &&
		    st.st_ino == compact_now.scratch_ino) {
			(void)unlinkat(dir, "data.mdb", 0);
			(void)unlinkat(dir, "lock.mdb", 0);
			(void)remove_own(compact_now.dir_fd, COMPACT_SCRATCH, st.st_dev,
			                 st.st_ino, AT_REMOVEDIR);
		}
		if (dir >= 0)
			close(dir);
	}
	if (compact_now.made_lock && !compact_now.swapped)
		(void)unlink(compact_now.lock);
	return compact_now.swapped;
}


static void job_free(compact_job *j, bool failed)
{
	if (j->env)
		mdb_env_close(j->env);
	if (j->copy_fd >= 0)
		close(j->copy_fd);
	if (failed && j->copy_created && !j->renamed)
		(void)unlink(j->copy_path);
	if (j->scratch_created && j->scratch_fd >= 0) /* else it may not be this job's */
		(void)remove_scratch(j);
	if (j->scratch_fd >= 0)
		close(j->scratch_fd);
	if (failed && j->lock_created && !j->renamed)
		(void)unlink(j->lock_path);
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	/* before the locks go: a compaction that takes them next makes files of the same names;
	 * active first, so that a handler between these stores does nothing */
	compact_now.active = 0;
	atomic_signal_fence(memory_order_seq_cst);
	compact_now.made_copy = compact_now.made_scratch = compact_now.made_lock = 0;
	compact_now.dir_fd = -1;
	compact_now.lock = compact_now.copy = NULL;
	atomic_signal_fence(memory_order_seq_cst);
	if (j->dir_fd >= 0)
		close(j->dir_fd);
	ckpt_gc_unlock(&j->gc); /* last: writers waiting for the directory's then go on */
	free(j->data_path);
	free(j->lock_path);
	free(j->copy_path);
	free(j->scratch_path);
	free(j->scratch_data);
}

static int compact_store(ckpt_store_compact_stats *out, const char *path,
                         ckpt_store_compact_fn before, void *arg);

int ckpt_store_compact_with(ckpt_store_compact_stats *out, const char *path,
                            ckpt_store_compact_fn before, void *arg)
{
	store_owner owner;
	int rc = store_owner_enter(&owner, path);
	if (rc)
		return rc;
	rc = compact_store(out, path, before, arg);
	return store_owner_leave(&owner, rc, path);
}

static int compact_store(ckpt_store_compact_stats *out, const char *path,
                         ckpt_store_compact_fn before, void *arg)
{
	compact_job j = {
	    .path = path,      .gc = {-1, -1},   .lock_fd = -1,
	    .copy_fd = -1,     .dir_fd = -1,     .scratch_fd = -1};
	struct stat old;
	env_census store, source;
	uint64_t size_after = 0;
	int rc, mrc;
	if (!path || !*path)
		return store_error(-EINVAL, "store path is empty");
	compact_now.swapped = 0;
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
	/* with every lock held nothing writes: a damaged file is refused before anything
	 * changes (LMDB's compacting copy and the gc on it trust every page) */
	if ((rc = take_writer_lock(&j)) || (rc = take_env_lock(&j)))
		goto out;
	if ((j.dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = store_error(-errno, "store %s: cannot open the directory (%s)", path,
		                 strerror(errno));
		goto out;
	}
	compact_now.lock = j.lock_path;
	compact_now.copy = j.copy_path;
	compact_now.dir_fd = j.dir_fd;
	compact_now.made_lock = j.lock_created;
	atomic_signal_fence(memory_order_seq_cst);
	compact_now.active = 1; /* every lock held: what is made from now on is this job's */
	if ((rc = store_check_pages(path, STORE_WALK_FULL)))
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
	if (before)
		test_pause("CKPT_COMPACT_TEST_PAUSE_SCRATCH");
	if ((rc = write_copy(&j, &old, &source, store.txnid, &size_after)))
		goto out;
	mdb_env_close(j.env);
	j.env = NULL;
	if (j.scratch_created && j.scratch_fd >= 0 && remove_scratch(&j) == 0)
		j.scratch_created = false;
	test_pause("CKPT_COMPACT_TEST_PAUSE");
	/* a signal's handler finds the store before the swap or after it is done, never between */
	sigset_t old_mask;
	hold_signals(&old_mask);
	rc = swap_in(&j);
	compact_now.swapped = j.renamed;
	if (!rc) {
		test_pause("CKPT_COMPACT_TEST_PAUSE_SWAPPED");
		rc = retire_old_file(&j);
	}
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	if (rc)
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

/* ---- ckpt_store_backup(): a compacted copy of one read snapshot into another directory ---- */

#define BACKUP_TEMP "data.mdb.tmp" /* the directory in DEST where the copy is made and checked */

/* DEST may be writable by others, who could replace DEST/data.mdb.tmp by a link to another
 * store at any moment: DEST and DEST/data.mdb.tmp are opened once, every file in them is made,
 * renamed and removed relative to those descriptors, and the copy is read back through
 * /proc/self/fd/N of data.mdb.tmp (made 0700: nobody else can change what is inside).
 * DEST (or its parent, where DEST is made) is found once too, and compared with the store by
 * its identity, climbing "..": no absolute path is needed, which could be longer than
 * PATH_MAX where the current directory is deep. */

/* What a signal handler must remove of the backup in progress (ckpt_store_backup_interrupted):
 * set up before the first file is made, cleared before the descriptors are closed. */
static struct {
	volatile sig_atomic_t active, made_temp, made_temp_dir, renaming, made_dir;
	volatile sig_atomic_t dest_fd, temp_dir_fd, parent_fd;
	const char *volatile name; /* DEST's last name, in parent_fd, when made_dir */
	dev_t temp_dev, temp_dir_dev; /* the identities of the copy and of DEST/data.mdb.tmp: */
	ino_t temp_ino, temp_dir_ino; /* only they are removed by those names */
} backup_now;

typedef struct backup_job {
	const char *dest;
	char *temp_dir, *temp_path, *data_path; /* DEST/data.mdb.tmp, its data.mdb, DEST/data.mdb */
	char *parent, *name;                    /* DEST's directory part and last name */
	int parent_fd;    /* O_PATH of DEST's parent, where a new DEST is made (check_dest()) */
	int dest_path_fd; /* O_PATH of a DEST that exists (check_dest()) */
	char proc_dir[40], proc_path[56];       /* /proc/self/fd/N of temp_dir, its data.mdb */
	const char *open_dir, *open_path;       /* those, or without /proc temp_dir, temp_path */
	int fd, dest_fd, temp_dir_fd;
	struct stat temp_st, temp_dir_st;
	bool registered, made_dir, made_temp_dir, made_temp, renamed;
} backup_job;

void ckpt_store_backup_interrupted(void)
{
	if (!backup_now.active)
		return;
	if (backup_now.made_temp)
		(void)unlinkat(backup_now.temp_dir_fd, "data.mdb", 0);
	if (backup_now.renaming) /* the copy, renamed: never a data.mdb of another */
		(void)remove_own(backup_now.dest_fd, "data.mdb", backup_now.temp_dev,
		                 backup_now.temp_ino, 0);
	if (backup_now.made_temp_dir)
		(void)remove_own(backup_now.dest_fd, BACKUP_TEMP, backup_now.temp_dir_dev,
		                 backup_now.temp_dir_ino, AT_REMOVEDIR);
	if (backup_now.made_dir)
		(void)unlinkat(backup_now.parent_fd, backup_now.name, AT_REMOVEDIR);
}

/* Copy of @p path's directory part and last name, as dirname(1) and basename(1) give them. */
static int split_path(char **dir, char **name, const char *path)
{
	char *a = strdup(path), *b = strdup(path);
	*dir = *name = NULL;
	if (!a || !b) {
		free(a);
		free(b);
		return store_error(-ENOMEM, "out of memory");
	}
	*dir = strdup(dirname(a));
	*name = strdup(basename(b));
	free(a);
	free(b);
	if (!*dir || !*name) {
		free(*dir);
		free(*name);
		*dir = *name = NULL;
		return store_error(-ENOMEM, "out of memory");
	}
	return 0;
}

static bool same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Where directory @p fd (O_PATH will do) is against the store's directory @p store, climbing
 * ".." up to the root: 1 it is the store, 2 it is inside the store, 0 neither, or -errno. */
static int dir_in_store(int fd, const struct stat *store)
{
	struct stat st, up_st;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (same_inode(&st, store))
		return 1;
	for (int at = fd;;) {
		int up = openat(at, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		int rc = up < 0 || fstat(up, &up_st) != 0 ? -errno : 0;
		if (at != fd)
			close(at);
		if (rc) {
			if (up >= 0)
				close(up);
			return rc;
		}
		/* the root's ".." is itself */
		if (same_inode(&up_st, store) || same_inode(&up_st, &st)) {
			close(up);
			return same_inode(&up_st, store) ? 2 : 0;
		}
		st = up_st;
		at = up;
	}
}

/* Refuse a @p dest that is a file, a non-empty directory, the store @p store_path itself or
 * inside it, or whose parent does not exist; nothing is created. Sets *@p exists, and opens
 * (O_PATH) j->dest_path_fd where DEST exists, else j->parent_fd, DEST's parent. */
static int check_dest(backup_job *j, bool *exists, const char *store_path, const char *dest)
{
	struct stat st, store_st;
	*exists = false;
	if (stat(store_path, &store_st) != 0)
		return store_error(-errno, "store %s: %s", store_path, strerror(errno));
	int rc = split_path(&j->parent, &j->name, dest);
	if (rc)
		return rc;
	int fd;
	if (stat(dest, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return store_error(-ENOTDIR,
			                   "%s exists and is not a directory: a backup goes into a new "
			                   "or an empty directory",
			                   dest);
		*exists = true;
		fd = j->dest_path_fd = open(dest, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return store_error(-errno, "%s: %s", dest, strerror(errno));
	} else if (errno != ENOENT) {
		return store_error(-errno, "%s: %s", dest, strerror(errno));
	} else if (lstat(dest, &st) == 0) {
		return store_error(-ENOENT, "%s is a symbolic link to nothing", dest);
	} else if ((fd = j->parent_fd = open(j->parent, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		return store_error(errno == ENOENT ? -ENOENT : -errno,
		                   errno == ENOENT
		                       ? "cannot create %s: its parent directory %s does "
		                         "not exist%s"
		                       : "cannot create %s: its parent directory %s: %s",
		                   dest, j->parent, errno == ENOENT ? "" : strerror(errno));
	}
	int where = dir_in_store(fd, &store_st);
	if (where < 0)
		return store_error(where, "cannot tell whether %s is inside the store %s (%s)",
		                   dest, store_path, strerror(-where));
	if (where == 1 && *exists)
		return store_error(-EINVAL, "%s is the store itself: a backup goes into another "
		                            "directory",
		                   dest);
	if (where)
		return store_error(-EINVAL, "%s is inside the store %s: a backup goes outside it",
		                   dest, store_path);
	if (!*exists)
		return 0;
	int dir_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dir_fd >= 0 ? fdopendir(dir_fd) : NULL;
	if (!d) {
		rc = store_error(-errno, "%s: %s", dest, strerror(errno));
		if (dir_fd >= 0)
			close(dir_fd);
		return rc;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			rc = store_error(
			    -ENOTEMPTY,
			    "%s is not empty, it holds %s: a backup goes into a new or an "
			    "empty directory",
			    dest, e->d_name);
			break;
		}
	closedir(d);
	return rc;
}

/* fsync directory @p dir open as @p fd; some file systems cannot (EINVAL), which is no error */
static int sync_dir_fd(int fd, const char *dir)
{
	int rc = fsync(fd) == 0 || errno == EINVAL ? 0 : -errno;
	if (rc)
		return store_error(rc, "cannot write directory %s to disk (%s)", dir,
		                   strerror(-rc));
	return 0;
}

/* fsync directory @p dir, open as @p at (O_PATH will do) */
static int sync_dir(int at, const char *dir)
{
	int fd = openat(at, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return store_error(-errno, "cannot open %s to sync it (%s)", dir, strerror(errno));
	int rc = sync_dir_fd(fd, dir);
	close(fd);
	return rc;
}

/* LMDB's compacting copy of one read snapshot of @p s into j->fd. The census of the store as
 * of just before is in @p source when the store had no commit meanwhile (*@p same), so that
 * the copy must hold the same. The copy's read transaction is counted as a snapshot of the
 * handle, so that no thread of this process remaps the environment under it. */
static int copy_snapshot(backup_job *j, ckpt_store *s, env_census *source, bool *same)
{
	int mrc = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		MDB_txn *txn;
		int rc = store_snapshot_txn(s, &txn); /* adopts a map grown meanwhile */
		if (rc)
			return rc;
		uint64_t before = mdb_txn_id(txn), after = 0;
		mrc = census_of_txn(source, txn, false);
		mdb_txn_abort(txn);
		if (!mrc)
			mrc = mdb_env_copyfd2(s->env, j->fd, MDB_CP_COMPACT);
		store_snapshot_done(s);
		if (mrc != MDB_MAP_RESIZED) {
			*same = !mrc && ckpt_store_generation(&after, s) == 0 && after == before;
			break;
		}
		/* the store grew past the map since: begin again */
		if (ftruncate(j->fd, 0) != 0 || lseek(j->fd, 0, SEEK_SET) != 0)
			return store_error(-errno, "cannot truncate %s (%s)", j->temp_path,
			                   strerror(errno));
	}
	if (mrc)
		return store_lmdb_error(mrc, "store %s: writing the copy %s", s->path, j->temp_path);
	return 0;
}

/* The copy in DEST/data.mdb.tmp: its trees walked against their entry counts (and against
 * @p source when @p same), then on disk. */
static int check_and_sync_copy(backup_job *j, const char *store_path, const env_census *source,
                               bool same, uint64_t *size)
{
	MDB_env *copy;
	env_census got;
	int mrc = open_env(&copy, j->open_path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: opening the copy %s", store_path,
		                        j->temp_path);
	mrc = take_census(&got, copy, true);
	mdb_env_close(copy);
	if (mrc == STORE_EOUTSIDE) { /* LMDB copied a damaged record as it found it */
		char why[1024];
		snprintf(why, sizeof(why), "%s", ckpt_last_error());
		return store_error(CKPT_ECORRUPT,
		                   "store %s is damaged: its copy does not read back (%s); ckpt "
		                   "verify %s names the damaged records",
		                   store_path, why, store_path);
	}
	int rc = check_copy(store_path, j->temp_path, &got, 0, same ? source : &got, 0, mrc);
	if (rc)
		return rc;
	struct stat st;
	if (fsync(j->fd) != 0 || fstat(j->fd, &st) != 0)
		return store_error(errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -EIO,
		                   "cannot write %s to disk (%s)", j->temp_path, strerror(errno));
	*size = (uint64_t)st.st_size;
	int fd = j->fd;
	j->fd = -1;
	if (close(fd) != 0)
		return store_error(-EIO, "cannot close %s (%s)", j->temp_path, strerror(errno));
	return 0;
}

/* The checked copy becomes DEST/data.mdb, never in place of a data.mdb that appeared
 * meanwhile; DEST/data.mdb.tmp, empty then, goes. */
static int rename_copy(backup_job *j)
{
	backup_now.renaming = j->registered;
	int rc = renameat2(j->temp_dir_fd, "data.mdb", j->dest_fd, "data.mdb", RENAME_NOREPLACE);
	if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) { /* not on this file system */
		struct stat st;
		rc = fstatat(j->dest_fd, "data.mdb", &st, AT_SYMLINK_NOFOLLOW) == 0
		         ? (errno = EEXIST, -1)
		         : renameat(j->temp_dir_fd, "data.mdb", j->dest_fd, "data.mdb");
	}
	if (rc != 0) {
		int e = errno;
		backup_now.renaming = 0;
		return store_error(-e, "cannot rename %s to %s (%s)", j->temp_path, j->data_path,
		                   strerror(e));
	}
	j->renamed = true;
	j->made_temp = false;
	backup_now.made_temp = 0;
	if (remove_own(j->dest_fd, BACKUP_TEMP, j->temp_dir_st.st_dev, j->temp_dir_st.st_ino,
	               AT_REMOVEDIR) != 0)
		return store_error(-errno, "cannot remove %s (%s)", j->temp_dir,
		                   errno == EEXIST ? "another file took its place"
		                                   : strerror(errno));
	j->made_temp_dir = false;
	backup_now.made_temp_dir = 0;
	return 0;
}

/* @p message (of a check of the store at @p path) without its "store PATH: " and, for
 * @p epoch, "epoch N: ": what is left names the record and its damage. */
static const char *damage_of(const char *message, const char *path, const uint64_t *epoch)
{
	size_t n = strlen(path);
	if (strncmp(message, "store ", 6) == 0 && strncmp(message + 6, path, n) == 0 &&
	    strncmp(message + 6 + n, ": ", 2) == 0)
		message += 8 + n;
	char prefix[48];
	int k = epoch ? snprintf(prefix, sizeof(prefix), "epoch %llu: ", (unsigned long long)*epoch)
	              : 0;
	if (k > 0 && strncmp(message, prefix, (size_t)k) == 0)
		message += k;
	return message;
}

/* Run on @p snap (of the source) the check that failed on the copy: the records of epoch
 * @p epoch and with @p t that tensor's bytes, or (@p epoch NULL) the best record. */
static int check_source(ckpt_snapshot *snap, const uint64_t *epoch, const ckpt_tensor_info *t)
{
	if (!epoch)
		return ckpt_snapshot_check_best(snap);
	const ckpt_checkpoint *c;
	const ckpt_tensor_info *own;
	int rc = ckpt_snapshot_check_records(snap, *epoch);
	if (!rc && t && !(rc = ckpt_snapshot_checkpoint(&c, snap, *epoch)) &&
	    !(rc = ckpt_checkpoint_find_tensor(&own, c, t->group, t->name)))
		rc = ckpt_tensor_verify(snap, own);
	return rc;
}

/* Damage @p rc found in the copy at @p copy_dir (its message in ckpt_last_error()), in the
 * records of epoch @p epoch and with @p t that tensor's bytes, or (@p epoch NULL) in the best
 * record. The copy was made through a read snapshot of @p source, so the damage is the
 * source's, unless the source's own record checks fine now: then the copy was written wrong.
 * Leaves one message saying which, sets *@p in_source and returns @p rc. */
static int blame_damage(bool *in_source, ckpt_store *source, const char *copy_dir, int rc,
                        const uint64_t *epoch, const ckpt_tensor_info *t)
{
	char copy_why[2048], why[2048], where[48] = "";
	snprintf(copy_why, sizeof(copy_why), "%s", damage_of(ckpt_last_error(), copy_dir, epoch));
	if (epoch)
		snprintf(where, sizeof(where), "epoch %llu: ", (unsigned long long)*epoch);
	ckpt_snapshot *snap;
	int source_rc = ckpt_snapshot_open(&snap, source);
	if (source_rc == 0) {
		source_rc = check_source(snap, epoch, t);
		ckpt_snapshot_close(snap);
	}
	snprintf(why, sizeof(why), "%s",
	         source_rc == rc ? damage_of(ckpt_last_error(), source->path, epoch) : copy_why);
	*in_source = source_rc != 0;
	if (source_rc == 0)
		return store_error(rc,
		                   "the copy of %s does not read back as the store: %s%s, while the "
		                   "store's reads correctly (a disk or memory error while writing it?)",
		                   source->path, where, copy_why);
	/* the same damage in the store, or none to compare with (an epoch deleted since) */
	return store_error(rc, "store %s is damaged: %s%s", source->path, where, why);
}

/* Damaged records of the source that a backup without CKPT_BACKUP_VERIFY copies as they are:
 * the first one's message and the others named. */
typedef struct backup_damage {
	uint64_t count;
	char first[4096];
	char others[512];
} backup_damage;

static void note_damage(backup_damage *d, const uint64_t *epoch)
{
	if (d->count++ == 0) {
		snprintf(d->first, sizeof(d->first), "%s", ckpt_last_error());
		return;
	}
	size_t len = strlen(d->others);
	if (len + 40 >= sizeof(d->others)) {
		if (!strstr(d->others, ", ..."))
			snprintf(d->others + len, sizeof(d->others) - len, ", ...");
		return;
	}
	if (epoch)
		snprintf(d->others + len, sizeof(d->others) - len, "%sepoch %llu", len ? ", " : "",
		         (unsigned long long)*epoch);
	else
		snprintf(d->others + len, sizeof(d->others) - len, "%sthe best record",
		         len ? ", " : "");
}

/* Damage @p rc found in the copy, as blame_damage() takes it: the source's is a failure with
 * @p verify, else noted in @p damage (0 returned); the copy's is a failure. */
static int take_damage(backup_damage *damage, ckpt_store *source, const char *copy_dir, int rc,
                       const uint64_t *epoch, const ckpt_tensor_info *t, bool verify)
{
	bool in_source;
	rc = blame_damage(&in_source, source, copy_dir, rc, epoch, t);
	if (!in_source)
		return rc;
	if (verify) {
		char why[4096];
		snprintf(why, sizeof(why), "%s", ckpt_last_error());
		return store_error(rc, "%s; ckpt verify %s names every damaged record", why,
		                   source->path);
	}
	note_damage(damage, epoch);
	return 0;
}

/* What a backup must be: a store that opens, whose every checkpoint, index and best record
 * decodes, and (CKPT_BACKUP_VERIFY) whose every tensor matches its CRC-32s and hash. Read where
 * it was made, @p copy_dir, before it is DEST/data.mdb. Damage the copy took from @p source is
 * a failure with CKPT_BACKUP_VERIFY; without, a damaged record goes into @p damage. */
static int validate_backup(ckpt_store_backup_stats *st, backup_damage *damage, ckpt_store *source,
                           const char *copy_dir, const char *shown, unsigned flags)
{
	ckpt_store *s;
	ckpt_snapshot *snap = NULL;
	uint64_t *epochs = NULL;
	size_t n = 0;
	bool verify = flags & CKPT_BACKUP_VERIFY;
	char why[2048];
	int rc = ckpt_store_open(&s, copy_dir, CKPT_OPEN_READONLY);
	if (rc) {
		snprintf(why, sizeof(why), "%s", damage_of(ckpt_last_error(), copy_dir, NULL));
		return store_error(rc, "the copy of %s in %s does not open as a store (%s)",
		                   source->path, shown, why);
	}
	if ((rc = ckpt_snapshot_open(&snap, s)) || (rc = ckpt_snapshot_list(&epochs, &n, snap)))
		goto out;
	test_pause("CKPT_BACKUP_TEST_PAUSE_VALIDATING");
	st->checkpoints = n;
	st->has_latest = n > 0;
	st->latest = n > 0 ? epochs[n - 1] : 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const ckpt_checkpoint *c = NULL;
		const ckpt_tensor_info *t = NULL; /* set once the records are whole */
		if (!(rc = ckpt_snapshot_checkpoint(&c, snap, epochs[i])))
			rc = ckpt_snapshot_check_records(snap, epochs[i]);
		for (size_t k = 0; !rc && verify && k < ckpt_checkpoint_tensor_count(c); k++) {
			t = ckpt_checkpoint_tensor_at(c, k);
			st->tensors++;
			st->tensor_bytes += t->nbytes;
			rc = ckpt_tensor_verify(snap, t);
		}
		if (rc == CKPT_ECORRUPT || rc == CKPT_ECHECKSUM)
			rc = take_damage(damage, source, copy_dir, rc, &epochs[i], t, verify);
		else if (rc) {
			snprintf(why, sizeof(why), "%s",
			         damage_of(ckpt_last_error(), copy_dir, &epochs[i]));
			rc = store_error(rc, "the copy of %s: epoch %llu: %s", source->path,
			                 (unsigned long long)epochs[i], why);
		}
	}
	if (rc)
		goto out;
	if ((rc = ckpt_snapshot_check_best(snap)) == CKPT_ECORRUPT)
		rc = take_damage(damage, source, copy_dir, rc, NULL, NULL, verify);
	else if (rc) {
		snprintf(why, sizeof(why), "%s", damage_of(ckpt_last_error(), copy_dir, NULL));
		rc = store_error(rc, "the copy of %s: %s", source->path, why);
	}
out:
	free(epochs);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	return rc;
}

/* "@p dir/@p name" in memory the caller frees, or NULL */
static char *join_path(const char *dir, const char *name)
{
	char *path;
	return asprintf(&path, "%s/%s", dir, name) < 0 ? NULL : path;
}

static void backup_job_free(backup_job *j, bool failed)
{
	if (j->fd >= 0)
		close(j->fd);
	if (failed && j->made_temp)
		(void)unlinkat(j->temp_dir_fd, "data.mdb", 0);
	if (failed && j->renamed)
		(void)remove_own(j->dest_fd, "data.mdb", j->temp_st.st_dev, j->temp_st.st_ino, 0);
	if (failed && j->made_temp_dir)
		(void)remove_own(j->dest_fd, BACKUP_TEMP, j->temp_dir_st.st_dev,
		                 j->temp_dir_st.st_ino, AT_REMOVEDIR);
	if (failed && j->made_dir)
		(void)unlinkat(j->parent_fd, j->name, AT_REMOVEDIR);
	if (j->registered) { /* active first: a handler between the stores does nothing */
		backup_now.active = 0;
		atomic_signal_fence(memory_order_seq_cst);
		backup_now = (__typeof__(backup_now)){0};
		j->registered = false;
	}
	if (j->temp_dir_fd >= 0)
		close(j->temp_dir_fd);
	if (j->dest_fd >= 0)
		close(j->dest_fd);
	if (j->dest_path_fd >= 0)
		close(j->dest_path_fd);
	if (j->parent_fd >= 0)
		close(j->parent_fd);
	free(j->parent);
	free(j->name);
	free(j->temp_dir);
	free(j->temp_path);
	free(j->data_path);
}

/* DEST (made when not @p exists) opened, DEST/data.mdb.tmp/ made and opened, and in it the
 * copy's file made with @p mode and open in j->fd. The copy is made and checked as a store of
 * its own in DEST/data.mdb.tmp/: DEST holds no data.mdb until it passed every check. */
static int make_backup_files(backup_job *j, bool exists, mode_t mode)
{
	if (!exists) {
		/* 0755 as a store ckpt_store_create() makes: under umask 000 not writable by
		 * every user, which root's opens of DEST refuse (store_owner_enter()) */
		if (mkdirat(j->parent_fd, j->name, 0755) != 0)
			return store_error(-errno, "cannot create %s (%s)", j->dest,
			                   strerror(errno));
		j->made_dir = true;
		backup_now.made_dir = j->registered;
		j->dest_fd = openat(j->parent_fd, j->name,
		                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	} else {
		j->dest_fd = openat(j->dest_path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (j->dest_fd < 0)
		return store_error(-errno, "cannot open %s (%s)", j->dest, strerror(errno));
	backup_now.dest_fd = j->dest_fd;
	if (mkdirat(j->dest_fd, BACKUP_TEMP, 0700) != 0)
		return store_error(-errno, "cannot create %s (%s)", j->temp_dir, strerror(errno));
	if ((j->temp_dir_fd = store_open_made_dir(&j->temp_dir_st, j->dest_fd, BACKUP_TEMP)) < 0) {
		char why[4200];
		return store_error(j->temp_dir_fd, "%s",
		                   made_dir_error(why, sizeof(why), j->temp_dir_fd, j->temp_dir,
		                                  "ckpt backup"));
	}
	j->made_temp_dir = true;
	backup_now.temp_dir_fd = j->temp_dir_fd;
	backup_now.temp_dir_dev = j->temp_dir_st.st_dev;
	backup_now.temp_dir_ino = j->temp_dir_st.st_ino;
	backup_now.made_temp_dir = j->registered;
	/* read back through the descriptor: a name in DEST, which others may write, could be
	 * replaced by a link */
	j->open_dir =
	    fd_path(j->proc_dir, sizeof(j->proc_dir), j->temp_dir_fd, j->temp_dir, &j->temp_dir_st);
	snprintf(j->proc_path, sizeof(j->proc_path), "%s/data.mdb", j->proc_dir);
	j->open_path = j->open_dir == j->proc_dir ? j->proc_path : j->temp_path;
	j->fd = openat(j->temp_dir_fd, "data.mdb",
	               O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (j->fd < 0)
		return store_error(-errno, "cannot create %s (%s)", j->temp_path, strerror(errno));
	j->made_temp = true;
	if (fstat(j->fd, &j->temp_st) != 0) /* a handler could not tell the renamed copy */
		return store_error(-errno, "cannot stat %s (%s)", j->temp_path, strerror(errno));
	backup_now.temp_dev = j->temp_st.st_dev;
	backup_now.temp_ino = j->temp_st.st_ino;
	backup_now.made_temp = j->registered;
	return 0;
}

int ckpt_store_backup(ckpt_store_backup_stats *out, ckpt_store *store, const char *dest,
                      unsigned flags)
{
	backup_job j = {.dest = dest,
	                .fd = -1,
	                .dest_fd = -1,
	                .temp_dir_fd = -1,
	                .parent_fd = -1,
	                .dest_path_fd = -1};
	store_owner owner = {0};
	ckpt_store_backup_stats st = {0};
	backup_damage *damage = NULL;
	env_census source;
	bool exists = false, same = false;
	struct stat data_st;
	int rc;
	if (!store)
		return store_error(-EINVAL, "backup: no store handle");
	if ((rc = store_check_process(store)))
		return rc;
	if (flags & ~CKPT_BACKUP_VERIFY)
		return store_error(-EINVAL, "backup of %s: unknown flags 0x%x", store->path,
		                   flags & ~CKPT_BACKUP_VERIFY);
	if (!dest || !*dest)
		return store_error(-EINVAL, "the backup directory is empty");
	if ((rc = check_dest(&j, &exists, store->path, dest)))
		goto out;
	damage = calloc(1, sizeof(*damage));
	j.temp_dir = join_path(dest, BACKUP_TEMP);
	j.temp_path = j.temp_dir ? join_path(j.temp_dir, "data.mdb") : NULL;
	j.data_path = join_path(dest, "data.mdb");
	if (!damage || !j.temp_path || !j.data_path) {
		rc = store_error(-ENOMEM, "out of memory");
		goto out;
	}
	char source_data[4096];
	snprintf(source_data, sizeof(source_data), "%s/data.mdb", store->path);
	if (stat(source_data, &data_st) != 0) {
		rc = store_error(-errno, "store %s: cannot stat data.mdb (%s)", store->path,
		                 strerror(errno));
		goto out;
	}
	/* DEST (or its parent) owned by another user: what is made in it, as that user */
	if ((rc = store_owner_enter(&owner, dest)))
		goto out;
	if (!backup_now.active) { /* one backup at a time is cleaned up by a signal handler */
		backup_now.dest_fd = backup_now.temp_dir_fd = -1;
		backup_now.parent_fd = j.parent_fd;
		backup_now.name = j.name;
		backup_now.active = 1;
		j.registered = true;
	}
	/* the source's permissions, and always the owner's read and write (to resume from it) */
	if ((rc = make_backup_files(&j, exists, (data_st.st_mode & 0666) | 0600)) ||
	    (rc = copy_snapshot(&j, store, &source, &same)) ||
	    (rc = check_and_sync_copy(&j, store->path, &source, same, &st.size)))
		goto out;
	test_pause("CKPT_BACKUP_TEST_PAUSE");
	if ((rc = validate_backup(&st, damage, store, j.open_dir, j.temp_dir, flags)) ||
	    (rc = rename_copy(&j)) || (rc = sync_dir_fd(j.dest_fd, dest)))
		goto out;
	if (j.made_dir && (rc = sync_dir(j.parent_fd, j.parent)))
		goto out;
	st.damaged_records = damage->count;
	if (damage->count) /* the backup is made: the message is for the caller to print */
		store_error(0, "%s%s%s%s; the backup holds %s as %s", damage->first,
		            damage->others[0] ? " (damaged too: " : "", damage->others,
		            damage->others[0] ? ")" : "", damage->count == 1 ? "it" : "them",
		            damage->count == 1 ? "it is" : "they are");
	if (out)
		*out = st;
out:
	backup_job_free(&j, rc != 0);
	free(damage);
	return store_owner_leave(&owner, rc, dest);
}
