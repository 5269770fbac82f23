/* fs/fuse_ops.c - FUSE low-level operations of ckptfs over the view
 *
 * Inodes are the view's (stable, computed), so lookup counts need no bookkeeping and forget
 * is a no-op. Immutable nodes get long timeouts and keep_cache; live ones (root, best, latest,
 * history.csv, metrics.json) short entry timeouts, attributes never cached (but the root's), and
 * their files direct_io, since their size can change between stat and open. Reads reply with iovecs pointing into the LMDB map (no copy,
 * no splice). Each open file (fi->fh) reads the snapshot it was opened on (the view shares one
 * snapshot among the files opened at the same commit; history.csv read to its end moves on to
 * appended rows, see ckpt_view_file_follow; history.csv and metrics.json read again from 0 move
 * onto the store's bytes, see ckpt_view_file_reread) and has a mutex: one request at a time
 * uses its layout and verification state.
 */
#include "fs/fuse_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define READ_IOV_CAP 256

typedef struct open_file {
	pthread_mutex_t lock; /* one reader of the snapshot at a time */
	ckpt_view_file *file;
	int64_t last_use_ns; /* CLOCK_MONOTONIC, under lock */
	int busy;            /* replies in flight that point into the file (iovecs), under lock */
	bool served;         /* a read was answered (under lock): a read at 0 now rereads */
	int refs;            /* atomic: the open itself plus each read in progress */
	ckpt_view_attr attr; /* as of the file's snapshot: what fstat of it must say */
	/* under files_lock: a file of another incarnation of its inode (an epoch committed again)
	 * was open beside it, or its epoch was committed again while it was open (the watcher
	 * found it), so the kernel's page cache of the inode may hold either's bytes, and its
	 * short reads at its own end may shrink the inode's size to its own */
	bool mixed;
	struct open_file *prev, *next; /* all open files, under files_lock (for the reaper) */
} open_file;

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static open_file *files_head;
static size_t files_mixed; /* open files marked mixed, under files_lock (read atomically) */

static int64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool ckptfs_incarnations_mixed(const ckpt_view_attr *a, const ckpt_view_attr *b)
{
	return a->ino == b->ino && a->immutable && b->immutable &&
	       (a->mtime_ns != b->mtime_ns || a->size != b->size);
}

/* Mark @p of mixed; called holding files_lock. */
static void mark_mixed(open_file *of)
{
	if (!of->mixed)
		__atomic_add_fetch(&files_mixed, 1, __ATOMIC_RELAXED);
	of->mixed = true;
}

/* True if an open file of inode @p ino is marked mixed: the kernel's attributes of the inode
 * must not be cached then (an old incarnation's short read can shrink its size). */
static bool ino_mixed(uint64_t ino)
{
	if (__atomic_load_n(&files_mixed, __ATOMIC_RELAXED) == 0)
		return false;
	bool found = false;
	pthread_mutex_lock(&files_lock);
	for (open_file *of = files_head; of && !found; of = of->next)
		found = of->mixed && of->attr.ino == ino;
	pthread_mutex_unlock(&files_lock);
	return found;
}

/* Add @p of to the open files. @return whether a file of another incarnation of its inode is
 * open (then both are marked mixed). */
static bool files_add(open_file *of)
{
	pthread_mutex_lock(&files_lock);
	for (open_file *other = files_head; other; other = other->next)
		if (ckptfs_incarnations_mixed(&other->attr, &of->attr)) {
			mark_mixed(other);
			mark_mixed(of);
		}
	bool mixed = of->mixed;
	of->prev = NULL;
	of->next = files_head;
	if (files_head)
		files_head->prev = of;
	files_head = of;
	pthread_mutex_unlock(&files_lock);
	return mixed;
}

/* Remove @p of from the open files. @return whether it was ever open beside another
 * incarnation of its inode. */
static bool files_remove(open_file *of)
{
	pthread_mutex_lock(&files_lock);
	bool mixed = of->mixed;
	if (mixed)
		__atomic_sub_fetch(&files_mixed, 1, __ATOMIC_RELAXED);
	if (of->prev)
		of->prev->next = of->next;
	else
		files_head = of->next;
	if (of->next)
		of->next->prev = of->prev;
	pthread_mutex_unlock(&files_lock);
	return mixed;
}

/* Drop a reference; the last one closes the file. A reply's iovecs point into the file's
 * snapshot and layout, so they must outlive fuse_reply_iov() even if RELEASE is handled on
 * another thread as soon as the kernel has the bytes. */
static void open_file_put(open_file *of)
{
	if (__atomic_sub_fetch(&of->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	ckpt_view_file_close(of->file);
	pthread_mutex_destroy(&of->lock);
	free(of);
}

/* ---- the reaper: parks files idle longer than snapshot_idle_s (see ckpt_view_file_park) */
static struct {
	pthread_t thread;
	bool running, stop;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	unsigned idle_s;
} reaper = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void park_idle_files(int64_t now, int64_t idle_ns)
{
	pthread_mutex_lock(&files_lock);
	for (open_file *of = files_head; of; of = of->next) {
		if (pthread_mutex_trylock(&of->lock) != 0)
			continue; /* being read: not idle */
		if (of->busy == 0 && now - of->last_use_ns >= idle_ns &&
		    !ckpt_view_file_is_parked(of->file))
			ckpt_view_file_park(of->file);
		pthread_mutex_unlock(&of->lock);
	}
	pthread_mutex_unlock(&files_lock);
}

static void *reaper_main(void *arg)
{
	(void)arg;
	int64_t idle_ns = (int64_t)reaper.idle_s * 1000000000;
	int64_t period_ns = idle_ns / 4 < 250000000 ? 250000000 : idle_ns / 4;
	if (period_ns > 5000000000)
		period_ns = 5000000000;
	pthread_mutex_lock(&reaper.lock);
	while (!reaper.stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		int64_t ns = until.tv_nsec + period_ns;
		until.tv_sec += ns / 1000000000;
		until.tv_nsec = ns % 1000000000;
		pthread_cond_timedwait(&reaper.wake, &reaper.lock, &until);
		if (reaper.stop)
			break;
		pthread_mutex_unlock(&reaper.lock);
		park_idle_files(monotonic_ns(), idle_ns);
		pthread_mutex_lock(&reaper.lock);
	}
	pthread_mutex_unlock(&reaper.lock);
	return NULL;
}

/* ---- the watcher: epochs deleted by retention leave the kernel's dentry cache at once.
 * Epoch directories are cached for CKPTFS_IMMUTABLE_TIMEOUT; without this a deleted epoch
 * would still stat for minutes. notify_inval_entry must come from a thread of its own, never
 * from a request handler (it can deadlock). */
static struct {
	pthread_t thread;
	bool running, stop;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct fuse_session *se;
	ckpt_view *view;
	/* inodes whose attributes and pages the kernel must drop (see watcher_forget_inode) */
	uint64_t forget[64];
	size_t nforget;
} watcher = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* Have the watcher tell the kernel to drop the attributes and cached pages of inode @p ino
 * (notify_inval_inode, which a request handler must not send). An old incarnation's file read
 * through the page cache can leave its bytes there, and its short reads at its own end shrink
 * the inode's size to its own. A full queue drops the request: the next open still gets no
 * keep_cache (seen_forget), which drops the pages. */
static void watcher_forget_inode(uint64_t ino)
{
	pthread_mutex_lock(&watcher.lock);
	if (watcher.running && watcher.nforget < sizeof(watcher.forget) / sizeof(watcher.forget[0])) {
		watcher.forget[watcher.nforget++] = ino;
		pthread_cond_signal(&watcher.wake);
	}
	pthread_mutex_unlock(&watcher.lock);
}

/* Send what watcher_forget_inode() queued; called by the watcher holding watcher.lock. */
static void forget_queued_inodes(void)
{
	uint64_t inos[sizeof(watcher.forget) / sizeof(watcher.forget[0])];
	size_t n = watcher.nforget;
	memcpy(inos, watcher.forget, n * sizeof(inos[0]));
	watcher.nforget = 0;
	pthread_mutex_unlock(&watcher.lock);
	/* -ENOENT: the kernel holds no such inode any more; nothing to drop */
	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(watcher.se, (fuse_ino_t)inos[i], 0, 0);
	pthread_mutex_lock(&watcher.lock);
}

static void invalidate_epoch(uint64_t epoch)
{
	char name[32];
	int len = snprintf(name, sizeof(name), "epoch-%04llu", (unsigned long long)epoch);
	/* -ENOENT: the kernel had no dentry for it; nothing to do */
	fuse_lowlevel_notify_inval_entry(watcher.se, CKPT_VIEW_ROOT_INO, name, (size_t)len);
}

static bool contains(const uint64_t *sorted, size_t n, uint64_t e)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sorted[mid] < e)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && sorted[lo] == e;
}

/* Epochs gone since the last poll, and epochs that came and went between two polls (numbers
 * above the highest seen before that are absent now): the kernel may hold a dentry for any. */
static void invalidate_removed(const uint64_t *before, size_t nbefore, const uint64_t *now,
                               size_t nnow, uint64_t *seen_max)
{
	for (size_t i = 0; i < nbefore; i++)
		if (!contains(now, nnow, before[i]))
			invalidate_epoch(before[i]);
	if (nnow == 0)
		return;
	uint64_t top = now[nnow - 1];
	uint64_t from = *seen_max + 1;
	if (top > from + 100000)
		from = top - 100000; /* a huge gap: bound the work */
	for (uint64_t e = from; e < top; e++)
		if (!contains(now, nnow, e))
			invalidate_epoch(e);
	if (top > *seen_max)
		*seen_max = top;
}

/* Open files of an epoch committed again (their commit time is one of @p old_times, @p n of
 * them) are marked mixed, and the kernel drops the attributes and pages of their inodes: a
 * dentry kept by an open file stays (and the epoch's directory dentry comes back with it on the
 * next lookup), and with it the old size, cached for CKPTFS_IMMUTABLE_TIMEOUT. Once such a file
 * is closed, op_release has the inode dropped again (its reads may have left old pages). */
static void invalidate_rewritten_files(const int64_t *old_times, size_t n)
{
	size_t cap = 0, count = 0;
	uint64_t *inos = NULL;
	pthread_mutex_lock(&files_lock);
	for (open_file *of = files_head; of; of = of->next) {
		if (!of->attr.immutable)
			continue;
		bool hit = false;
		for (size_t i = 0; i < n && !hit; i++)
			hit = of->attr.mtime_ns == old_times[i];
		if (!hit)
			continue;
		mark_mixed(of);
		if (count == cap) {
			size_t want = cap ? 2 * cap : 16;
			uint64_t *grown = realloc(inos, want * sizeof(*inos));
			if (!grown)
				continue; /* its release still drops the inode */
			inos = grown;
			cap = want;
		}
		inos[count++] = of->attr.ino;
	}
	pthread_mutex_unlock(&files_lock);
	/* -ENOENT: the kernel holds no such inode any more; nothing to drop */
	for (size_t i = 0; i < count; i++)
		fuse_lowlevel_notify_inval_inode(watcher.se, (fuse_ino_t)inos[i], 0, 0);
	free(inos);
}

/* Epochs committed again: a run resumed from an earlier checkpoint replaces the epochs after
 * it under the same names and inode numbers. Their dentries go, so the next lookup brings the
 * new sizes and times; otherwise the kernel kept e.g. a model.safetensors's old size for
 * CKPTFS_IMMUTABLE_TIMEOUT and served the new file cut short. Their open files: see
 * invalidate_rewritten_files(). */
static void invalidate_rewritten(const uint64_t *be, const int64_t *bt, size_t nb,
                                 const uint64_t *ne, const int64_t *nt, size_t nn)
{
	size_t i = 0, j = 0, nold = 0;
	int64_t old_times[64];
	while (i < nb && j < nn) {
		if (be[i] < ne[j]) {
			i++;
		} else if (be[i] > ne[j]) {
			j++;
		} else {
			if (bt[i] != nt[j]) {
				invalidate_epoch(ne[j]);
				if (nold == sizeof(old_times) / sizeof(old_times[0])) {
					invalidate_rewritten_files(old_times, nold);
					nold = 0;
				}
				old_times[nold++] = bt[i];
			}
			i++;
			j++;
		}
	}
	if (nold)
		invalidate_rewritten_files(old_times, nold);
}

/* Files kept open across commits move onto the newest snapshot (ckpt_view_file_rebase), so
 * that they hold one LMDB reader slot between them, not one per commit they span (the table
 * has 1,024, shared with every process using the store), and LMDB may reuse the pages deleted
 * since. @return how many were being read or could not move now (the next poll tries again). */
static size_t rebase_open_files(void)
{
	pthread_mutex_lock(&files_lock);
	size_t n = 0;
	for (open_file *of = files_head; of; of = of->next)
		n++;
	open_file **list = n ? malloc(n * sizeof(*list)) : NULL;
	size_t k = 0;
	for (open_file *of = files_head; list && of; of = of->next) {
		__atomic_add_fetch(&of->refs, 1, __ATOMIC_ACQ_REL);
		list[k++] = of;
	}
	pthread_mutex_unlock(&files_lock);
	size_t left = list ? 0 : n;
	for (size_t i = 0; i < k; i++) {
		open_file *of = list[i];
		if (pthread_mutex_trylock(&of->lock) == 0) {
			if (of->busy != 0 || ckpt_view_file_rebase(of->file) != 0)
				left++;
			pthread_mutex_unlock(&of->lock);
		} else {
			left++;
		}
		open_file_put(of);
	}
	free(list);
	return left;
}

static void *watcher_main(void *arg)
{
	(void)arg;
	uint64_t *before = NULL;
	size_t nbefore = 0;
	uint64_t seen_max = 0;
	if (ckpt_view_epochs(&before, &nbefore, watcher.view) != 0)
		nbefore = 0;
	if (nbefore)
		seen_max = before[nbefore - 1];
	/* commit times, rescanned at most every 50 times a scan's own duration (a scan decodes
	 * every record: 10,000 epochs take tens of milliseconds) */
	uint64_t *timed = NULL;
	int64_t *times = NULL;
	size_t ntimed = 0;
	bool have_times = ckpt_view_epoch_times(&timed, &times, &ntimed, watcher.view) == 0;
	int64_t next_scan_ns = 0;
	uint64_t rebased_gen = 0;
	bool rebase_pending = false;
	pthread_mutex_lock(&watcher.lock);
	while (!watcher.stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		long ns = until.tv_nsec + 500L * 1000 * 1000;
		until.tv_sec += ns / 1000000000;
		until.tv_nsec = ns % 1000000000;
		pthread_cond_timedwait(&watcher.wake, &watcher.lock, &until);
		if (watcher.stop)
			break;
		forget_queued_inodes();
		pthread_mutex_unlock(&watcher.lock);
		uint64_t *now = NULL;
		size_t nnow = 0;
		if (ckpt_view_epochs(&now, &nnow, watcher.view) == 0) {
			invalidate_removed(before, nbefore, now, nnow, &seen_max);
			free(before);
			before = now;
			nbefore = nnow;
		}
		(void)ckpt_view_check_store_file(watcher.view);
		uint64_t gen;
		if (ckpt_view_generation(&gen, watcher.view) == 0 &&
		    (gen != rebased_gen || rebase_pending)) {
			rebase_pending = rebase_open_files() > 0;
			rebased_gen = gen;
		}
		int64_t t0 = monotonic_ns();
		if (t0 >= next_scan_ns) {
			uint64_t *e2 = NULL;
			int64_t *t2 = NULL;
			size_t n2 = 0;
			if (ckpt_view_epoch_times(&e2, &t2, &n2, watcher.view) == 0) {
				if (have_times)
					invalidate_rewritten(timed, times, ntimed, e2, t2, n2);
				free(timed);
				free(times);
				timed = e2;
				times = t2;
				ntimed = n2;
				have_times = true;
			}
			next_scan_ns = t0 + 50 * (monotonic_ns() - t0);
		}
		pthread_mutex_lock(&watcher.lock);
	}
	pthread_mutex_unlock(&watcher.lock);
	free(before);
	free(timed);
	free(times);
	return NULL;
}

int ckptfs_watcher_start(struct fuse_session *se, ckpt_view *view)
{
	watcher.se = se;
	watcher.view = view;
	watcher.stop = false;
	pthread_mutex_lock(&watcher.lock); /* running: read by watcher_forget_inode() */
	int rc = pthread_create(&watcher.thread, NULL, watcher_main, NULL);
	watcher.running = rc == 0;
	pthread_mutex_unlock(&watcher.lock);
	return -rc;
}

void ckptfs_watcher_stop(void)
{
	if (!watcher.running)
		return;
	pthread_mutex_lock(&watcher.lock);
	watcher.stop = true;
	pthread_cond_signal(&watcher.wake);
	pthread_mutex_unlock(&watcher.lock);
	pthread_join(watcher.thread, NULL);
	pthread_mutex_lock(&watcher.lock);
	watcher.running = false;
	pthread_mutex_unlock(&watcher.lock);
}

void ckptfs_close_all_files(void)
{
	/* the session loop is over: no request can name these any more */
	pthread_mutex_lock(&files_lock);
	open_file *of = files_head;
	files_head = NULL;
	pthread_mutex_unlock(&files_lock);
	while (of) {
		open_file *next = of->next;
		ckpt_view_file_close(of->file);
		pthread_mutex_destroy(&of->lock);
		free(of);
		of = next;
	}
}

int ckptfs_reaper_start(unsigned idle_s)
{
	if (idle_s == 0)
		return 0;
	reaper.idle_s = idle_s;
	reaper.stop = false;
	int rc = pthread_create(&reaper.thread, NULL, reaper_main, NULL);
	reaper.running = rc == 0;
	return -rc;
}

void ckptfs_reaper_stop(void)
{
	if (!reaper.running)
		return;
	pthread_mutex_lock(&reaper.lock);
	reaper.stop = true;
	pthread_cond_signal(&reaper.wake);
	pthread_mutex_unlock(&reaper.lock);
	pthread_join(reaper.thread, NULL);
	reaper.running = false;
}

/* Last mtime seen at open per inode (a small direct-mapped table): keep_cache only when the
 * file is the same one the kernel may have cached (an epoch rewritten by a resumed run gets
 * the same inode with new content). */
#define SEEN_SLOTS 4096
static struct {
	uint64_t ino;
	int64_t mtime_ns;
	uint64_t size;
} seen[SEEN_SLOTS];
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t seen_slot(uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 52) % SEEN_SLOTS;
}

/* The next open of inode @p ino gets no keep_cache: the kernel then drops its cached pages. */
static void seen_forget(uint64_t ino)
{
	size_t slot = seen_slot(ino);
	pthread_mutex_lock(&seen_lock);
	if (seen[slot].ino == ino)
		seen[slot].ino = 0;
	pthread_mutex_unlock(&seen_lock);
}

static bool seen_unchanged(const ckpt_view_attr *a)
{
	size_t slot = seen_slot(a->ino);
	pthread_mutex_lock(&seen_lock);
	bool same = seen[slot].ino == a->ino && seen[slot].mtime_ns == a->mtime_ns &&
	            seen[slot].size == a->size;
	seen[slot].ino = a->ino;
	seen[slot].mtime_ns = a->mtime_ns;
	seen[slot].size = a->size;
	pthread_mutex_unlock(&seen_lock);
	return same;
}

static ckptfs_ctx *ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* FUSE wants positive errno values; store codes of ours become EIO. */
static int errno_of(int rc)
{
	if (rc >= 0)
		return EIO;
	if (rc <= -4096 || rc == -ENOSYS)
		return EIO;
	return -rc;
}

static void to_stat(struct stat *st, const ckpt_view_attr *a, const ckptfs_ctx *ctx)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode | (a->kind == CKPT_VIEW_DIR       ? S_IFDIR
	                         : a->kind == CKPT_VIEW_SYMLINK ? S_IFLNK
	                                                        : S_IFREG);
	st->st_nlink = a->nlink;
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	struct timespec t = {.tv_sec = a->mtime_ns / 1000000000,
	                     .tv_nsec = a->mtime_ns % 1000000000};
	st->st_mtim = t;
	st->st_ctim = t;
	st->st_atim = t;
}

static double timeout_of(const ckpt_view_attr *a)
{
	return a->immutable ? CKPTFS_IMMUTABLE_TIMEOUT : CKPTFS_LIVE_TIMEOUT;
}

static double attr_timeout_of(const ckpt_view_attr *a)
{
	if (a->immutable)
		return ino_mixed(a->ino) ? CKPTFS_LIVE_ATTR_TIMEOUT : CKPTFS_IMMUTABLE_TIMEOUT;
	return a->kind == CKPT_VIEW_DIR ? CKPTFS_LIVE_TIMEOUT : CKPTFS_LIVE_ATTR_TIMEOUT;
}

static void fill_entry(struct fuse_entry_param *e, const ckpt_view_attr *a, const ckptfs_ctx *ctx)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = 1;
	to_stat(&e->attr, a, ctx);
	e->attr_timeout = attr_timeout_of(a);
	e->entry_timeout = timeout_of(a);
}

/* mountinfo escapes ' ', '\t', '\n' and '\\' as \ooo */
static void mountinfo_escape(char *out, size_t cap, const char *path)
{
	size_t n = 0;
	for (const char *p = path; *p && n + 5 < cap; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\\')
			n += (size_t)snprintf(out + n, cap - n, "\\%03o", (unsigned char)*p);
		else
			out[n++] = *p;
	}
	out[n] = '\0';
}

/* Split a /proc/self/mountinfo @p line in place: its "maj:min", its mountpoint (escaped as
 * mountinfo_escape() does) and its file system type ("" if the line has none).
 * @return false for a line too short to have a mountpoint. */
static bool mountinfo_fields(char *line, char **majmin, char **mountpoint, char **fstype)
{
	/* id parent maj:min root mountpoint options [optional...] - fstype source super */
	char *save, *fields[5] = {0};
	char *tok = strtok_r(line, " \n", &save);
	for (int i = 0; tok && i < 5; i++) {
		fields[i] = tok;
		tok = strtok_r(NULL, " \n", &save);
	}
	if (!fields[4])
		return false;
	while (tok && strcmp(tok, "-") != 0)
		tok = strtok_r(NULL, " \n", &save);
	tok = tok ? strtok_r(NULL, " \n", &save) : NULL;
	*majmin = fields[2];
	*mountpoint = fields[4];
	*fstype = tok ? tok : "";
	return true;
}

/* The last mount at @p path: its "maj:min" and file system type. @return true if found. */
bool ckptfs_find_mount(const char *path, char *majmin, size_t mcap, char *fstype, size_t fcap)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char want[PATH_MAX * 4 + 1];
	mountinfo_escape(want, sizeof(want), path);
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	while (getline(&line, &cap, f) > 0) {
		char *mm, *at, *type;
		if (!mountinfo_fields(line, &mm, &at, &type) || strcmp(at, want) != 0)
			continue;
		snprintf(majmin, mcap, "%s", mm);
		snprintf(fstype, fcap, "%s", type);
		found = true;
	}
	free(line);
	fclose(f);
	return found;
}

/* Undo mountinfo_escape() from @p in into @p out (@p cap bytes). */
static void mountinfo_unescape(char *out, size_t cap, const char *in)
{
	size_t n = 0;
	while (*in && n + 1 < cap) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			out[n++] = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 4;
		} else {
			out[n++] = *in++;
		}
	}
	out[n] = '\0';
}

bool ckptfs_find_mount_holding(const char *path, dev_t dev, char *mountpoint, size_t mcap,
                               char *fstype, size_t fcap)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char want[PATH_MAX * 4 + 1], devname[64];
	mountinfo_escape(want, sizeof(want), path);
	snprintf(devname, sizeof(devname), "%u:%u", major(dev), minor(dev));
	char *line = NULL;
	size_t cap = 0, best = 0;
	bool found = false;
	while (getline(&line, &cap, f) > 0) {
		char *mm, *at, *type;
		if (!mountinfo_fields(line, &mm, &at, &type) || strcmp(mm, devname) != 0)
			continue;
		size_t len = strlen(at);
		bool above = strcmp(at, "/") == 0 || (strncmp(want, at, len) == 0 &&
		                                      (want[len] == '\0' || want[len] == '/'));
		/* the deepest; of mounts at one place, the last (it hides the others) */
		if (!above || len < best)
			continue;
		best = len;
		mountinfo_unescape(mountpoint, mcap, at);
		snprintf(fstype, fcap, "%s", type);
		found = true;
	}
	free(line);
	fclose(f);
	return found;
}

int ckptfs_set_readahead(const char *mountpoint, unsigned kb, char *path, size_t pathcap)
{
	char majmin[64], fstype[64];
	snprintf(path, pathcap, "/sys/class/bdi");
	if (kb == 0)
		return 0;
	if (!ckptfs_find_mount(mountpoint, majmin, sizeof(majmin), fstype, sizeof(fstype)))
		return -ENOENT;
	snprintf(path, pathcap, "/sys/class/bdi/%s/read_ahead_kb", majmin);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char value[32];
	int len = snprintf(value, sizeof(value), "%u", kb);
	ssize_t written = write(fd, value, (size_t)len);
	int rc = written == len ? 0 : written < 0 ? -errno : -EIO;
	close(fd);
	return rc;
}

int ckptfs_session_init(struct fuse_session *se, ckptfs_ctx *ctx)
{
	struct fuse_buf buf;
	memset(&buf, 0, sizeof(buf));
	int n = fuse_session_receive_buf(se, &buf);
	if (n <= 0) {
		free(buf.mem);
		return n < 0 ? n : -EIO;
	}
	/* struct fuse_in_header: len, opcode (FUSE_INIT = 26), ... */
	uint32_t opcode = 0;
	if (!(buf.flags & FUSE_BUF_IS_FD) && buf.size >= 8)
		memcpy(&opcode, (const char *)buf.mem + 4, sizeof(opcode));
	if (opcode != 26) {
		free(buf.mem);
		return -EPROTO;
	}
	fuse_session_process_buf(se, &buf);
	free(buf.mem);
	return 0;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	ckptfs_ctx *ctx = userdata;
	/* splice from memory measured 6-9x slower than a plain write here */
	conn->want &=
	    ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (ctx->max_read)
		conn->max_read = ctx->max_read; /* libfuse 3.14: -o max_read alone is not enough */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	ckptfs_ctx *ctx = ctx_of(req);
	ckpt_view_attr a;
	int rc = ckpt_view_lookup(&a, ctx->view, parent, name); /* ENAMETOOLONG past f_namemax */
	if (rc) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	struct fuse_entry_param e;
	fill_entry(&e, &a, ctx);
	fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	fuse_reply_none(req);
}

/* The attributes of an open file of inode @p ino, as of its snapshot: the node may be gone from
 * the store (its epoch deleted) while the file is still open and readable. */
static bool open_file_attr(ckpt_view_attr *out, fuse_ino_t ino)
{
	bool found = false;
	pthread_mutex_lock(&files_lock);
	for (open_file *of = files_head; of && !found; of = of->next)
		if (of->attr.ino == ino) {
			*out = of->attr;
			found = true;
		}
	pthread_mutex_unlock(&files_lock);
	return found;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ckptfs_ctx *ctx = ctx_of(req);
	ckpt_view_attr a;
	int rc = 0;
	double timeout;
	if (fi && fi->fh) {
		/* asked through an open file (FUSE_GETATTR_FH): that file's snapshot */
		pthread_mutex_lock(&files_lock); /* a history.csv that follows updates it */
		a = ((open_file *)(uintptr_t)fi->fh)->attr;
		pthread_mutex_unlock(&files_lock);
		timeout = CKPTFS_LIVE_ATTR_TIMEOUT; /* not the path's: a newer commit may differ */
	} else {
		rc = ckpt_view_getattr(&a, ctx->view, ino);
		timeout = attr_timeout_of(&a);
		/* fstat of a file whose epoch retention deleted while it was open, or the kernel
		 * revalidating such an inode when its attributes time out: the open file answers
		 * (an ENOENT here would fail fstat, and every later read of the open file) */
		if (rc == -ENOENT && open_file_attr(&a, ino)) {
			rc = 0;
			timeout = CKPTFS_LIVE_TIMEOUT;
		}
	}
	if (rc) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	struct stat st;
	to_stat(&st, &a, ctx);
	fuse_reply_attr(req, &st, timeout);
}

/* What access(2) answers @p caller for @p mask on node @p a: what a local read-only file system
 * answers. W_OK is EROFS (also on a mount root remounted read-write); root may read anything and
 * execute what has an x bit (and search any directory); anyone else needs the bits of their
 * class. @return 0 or the errno. */
static int access_error(const ckpt_view_attr *a, const struct fuse_ctx *caller,
                        const ckptfs_ctx *ctx, int mask)
{
	if (mask & W_OK)
		return EROFS;
	if (caller->uid == 0)
		return (mask & X_OK) && a->kind != CKPT_VIEW_DIR && !(a->mode & 0111) ? EACCES : 0;
	unsigned bits = caller->uid == ctx->uid   ? a->mode >> 6
	                : caller->gid == ctx->gid ? a->mode >> 3
	                                          : a->mode;
	return ((mask & R_OK) && !(bits & 4)) || ((mask & X_OK) && !(bits & 1)) ? EACCES : 0;
}

/* access(2), faccessat(2) and chdir: without default_permissions the kernel asks here, and an
 * ENOSYS would make it answer every later access() "yes" (test -x true for 0444 files). Only
 * the mounting user, and root with allow_root, get here: allow_other brings
 * default_permissions, and then the kernel checks the modes itself. */
static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	ckptfs_ctx *ctx = ctx_of(req);
	ckpt_view_attr a;
	int rc = ckpt_view_getattr(&a, ctx->view, ino);
	if (rc == -ENOENT && open_file_attr(&a, ino))
		rc = 0; /* an open file of a deleted epoch: fstat answers it too */
	fuse_reply_err(req, rc ? errno_of(rc) : access_error(&a, fuse_req_ctx(req), ctx, mask));
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char target[64];
	int rc = ckpt_view_readlink(target, sizeof(target), ctx_of(req)->view, ino);
	if (rc)
		fuse_reply_err(req, errno_of(rc));
	else
		fuse_reply_readlink(req, target);
}

/* An open directory: the listing its readdirs serve. A readdir at offset 0 once some of it was
 * served is a rewinddir, which refers to the directory's current state (POSIX): a new listing
 * then. Replies copy the names, so the listing can be replaced between two readdirs. */
typedef struct open_dir {
	pthread_mutex_t lock; /* the kernel sends one readdir of a file at a time; a second guard */
	ckpt_view_listing listing;
	bool served;
} open_dir;

/* Listings past this many entries give their memory back to the system when freed. */
#define BIG_LISTING 10000

/* Free @p l; a big one's memory goes back to the system. Each FUSE worker thread allocates
 * from a malloc arena of its own, which kept what a listing of a root with a million epochs
 * freed (about 1 GB): every `ls` served by another thread grew the daemon by as much again. */
static void listing_free(ckpt_view_listing *l)
{
	bool big = l->count > BIG_LISTING;
	ckpt_view_listing_free(l);
#ifdef __GLIBC__
	if (big)
		malloc_trim(0);
#else
	(void)big;
#endif
}

static void open_dir_free(open_dir *d)
{
	listing_free(&d->listing);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	open_dir *d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int rc = ckpt_view_list(&d->listing, ctx_of(req)->view, ino);
	if (rc) {
		free(d);
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	pthread_mutex_init(&d->lock, NULL);
	fi->fh = (uintptr_t)d;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0)
		open_dir_free(d);
}

/* A rewound directory's listing as of now. A directory deleted meanwhile (an epoch retention
 * removed) lists empty, as a removed local directory does. @return 0 or a negative error code
 * (the old listing stays). */
static int relist(open_dir *d, ckpt_view *view, fuse_ino_t ino)
{
	ckpt_view_listing fresh;
	memset(&fresh, 0, sizeof(fresh));
	int rc = ckpt_view_list(&fresh, view, ino);
	if (rc == -ENOENT) {
		ckpt_view_listing_free(&fresh);
		memset(&fresh, 0, sizeof(fresh));
		fresh.self = d->listing.self;
		rc = 0;
	}
	if (rc)
		return rc;
	listing_free(&d->listing);
	d->listing = fresh;
	return 0;
}

/* Entry i of a listing including "." (0) and ".." (1). */
static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi, bool plus)
{
	ckptfs_ctx *ctx = ctx_of(req);
	open_dir *dir = (open_dir *)(uintptr_t)fi->fh;
	pthread_mutex_lock(&dir->lock);
	int rc = off == 0 && dir->served ? relist(dir, ctx->view, ino) : 0;
	char *buf = rc ? NULL : malloc(size);
	if (!buf) {
		pthread_mutex_unlock(&dir->lock);
		fuse_reply_err(req, rc ? errno_of(rc) : ENOMEM);
		return;
	}
	dir->served = true;
	const ckpt_view_listing *l = &dir->listing;
	size_t used = 0;
	for (size_t i = (size_t)off; i < l->count + 2; i++) {
		const char *name;
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			e.attr.st_ino = i == 0 ? ino : 1;
			e.attr.st_mode = S_IFDIR;
		} else {
			const ckpt_view_dirent *d = &l->entries[i - 2];
			name = d->name;
			if (plus && d->attr_rc == 0) {
				fill_entry(&e, &d->attr, ctx);
			} else {
				e.attr.st_ino = d->attr.ino;
				e.attr.st_mode = d->attr.kind == CKPT_VIEW_DIR       ? S_IFDIR
				                 : d->attr.kind == CKPT_VIEW_SYMLINK ? S_IFLNK
				                                                     : S_IFREG;
			}
		}
		size_t need = plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
		                                            (off_t)(i + 1))
		                   : fuse_add_direntry(req, buf + used, size - used, name, &e.attr,
		                                       (off_t)(i + 1));
		if (need > size - used)
			break;
		used += need;
	}
	pthread_mutex_unlock(&dir->lock);
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0); /* first: the caller need not wait for the memory's return */
	open_dir_free((open_dir *)(uintptr_t)fi->fh);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	open_file *of = calloc(1, sizeof(*of));
	if (!of) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ckpt_view_attr a;
	int rc = ckpt_view_open(&of->file, &a, ctx_of(req)->view, ino);
	if (rc) {
		free(of);
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	pthread_mutex_init(&of->lock, NULL);
	of->refs = 1;
	of->last_use_ns = monotonic_ns();
	of->attr = a;
	bool mixed = files_add(of);
	fi->fh = (uintptr_t)of;
	if (a.immutable && mixed) {
		/* A file of the epoch's earlier incarnation is open (its run was resumed from an
		 * earlier epoch meanwhile): the kernel's page cache is the inode's, shared by both,
		 * so each would read the other's bytes from it. This one bypasses it; the old one
		 * keeps it, and once they are closed the next open drops what it holds. */
		fi->direct_io = 1;
		seen_forget(a.ino);
	} else if (a.immutable) {
		fi->keep_cache = seen_unchanged(&a);
	} else {
		/* size may differ from what stat said a moment ago: read it as rendered now */
		fi->direct_io = 1;
	}
	if (fuse_reply_open(req, fi) != 0) {
		files_remove(of);
		ckpt_view_file_close(of->file);
		pthread_mutex_destroy(&of->lock);
		free(of);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	open_file *of = (open_file *)(uintptr_t)fi->fh;
	struct iovec iov[READ_IOV_CAP];
	size_t count = 0, got = 0;
	char *scratch = NULL;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	__atomic_add_fetch(&of->refs, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_lock(&of->lock);
	of->last_use_ns = monotonic_ns();
	uint64_t fsize = ckpt_view_file_size(of->file);
	/* A reply in flight for another read may still point into the layout: neither moves then.
	 * history.csv or metrics.json read again from 0 (a rewind: tail -f after "file truncated")
	 * reads the store's bytes now, as a local file rewritten in place; the first read does not
	 * (one cat is one version). history.csv read to its end follows appended rows. */
	bool moved = false;
	ckpt_view_attr a;
	int move_rc = -1; /* an error leaves the file as it was: it reads on from its version */
	if (of->busy == 0 && off == 0 && of->served)
		move_rc = ckpt_view_file_reread(of->file, &a, &moved);
	else if (of->busy == 0 && (uint64_t)off >= fsize)
		move_rc = ckpt_view_file_follow(of->file, &a, &moved);
	if (move_rc == 0 && moved) {
		pthread_mutex_lock(&files_lock); /* read by fstat through it and by opens */
		of->attr = a;
		pthread_mutex_unlock(&files_lock);
		fsize = ckpt_view_file_size(of->file);
	}
	of->served = true;
	if ((uint64_t)off >= fsize) {
		pthread_mutex_unlock(&of->lock);
		fuse_reply_buf(req, NULL, 0);
		open_file_put(of);
		return;
	}
	if (size > fsize - (uint64_t)off)
		size = (size_t)(fsize - (uint64_t)off);
	of->busy++;
	int rc = ckpt_view_file_iov(of->file, (uint64_t)off, size, iov, READ_IOV_CAP, &count, NULL,
	                            &got);
	if (rc == 0 && got < size) {
		/* widened bfloat16 or too many chunks for one iovec array: copy instead */
		scratch = malloc(size);
		if (!scratch)
			rc = -ENOMEM;
		else
			rc = ckpt_view_file_read(of->file, (uint64_t)off, scratch, size, &got);
	}
	pthread_mutex_unlock(&of->lock);
	if (rc)
		fuse_reply_err(req, errno_of(rc));
	else if (scratch)
		fuse_reply_buf(req, scratch, got);
	else
		fuse_reply_iov(req, iov, (int)count);
	free(scratch);
	pthread_mutex_lock(&of->lock);
	of->busy--;
	pthread_mutex_unlock(&of->lock);
	open_file_put(of);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	open_file *of = (open_file *)(uintptr_t)fi->fh;
	if (files_remove(of)) {
		/* the cache may hold the other incarnation's bytes, the inode its size */
		seen_forget(of->attr.ino);
		watcher_forget_inode(of->attr.ino);
	}
	open_file_put(of);
	fuse_reply_err(req, 0);
}

/* df shows what the store takes on its disk, all of it used, nothing free (a read-only image,
 * as squashfs shows one). */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	ckptfs_ctx *ctx = ctx_of(req);
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = CKPTFS_NAME_MAX;
	char data[4200];
	struct stat st;
	if (ctx->store_path &&
	    (size_t)snprintf(data, sizeof(data), "%s/data.mdb", ctx->store_path) < sizeof(data) &&
	    stat(data, &st) == 0)
		sv.f_blocks = ((uint64_t)st.st_size + sv.f_frsize - 1) / sv.f_frsize;
	fuse_reply_statfs(req, &sv);
}

/* No node has extended attributes: an empty list, so xattr-aware copies (tar --xattrs, rsync
 * -X) stay quiet. getxattr stays unimplemented: the kernel then answers every later one itself
 * (ls asks one per file). */
static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

static void op_write_refused(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	op_write_refused(req);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	op_write_refused(req);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	op_write_refused(req);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	op_write_refused(req);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	op_write_refused(req);
}

/* The mount is read-only, but root can remount it read-write (mount -i -o remount,rw): every
 * call that would change something still fails, with EROFS rather than ENOSYS/EPERM. */
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	op_write_refused(req);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	op_write_refused(req);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
	op_write_refused(req);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	op_write_refused(req);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .access = op_access,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .rename = op_rename,
    .create = op_create,
    .symlink = op_symlink,
    .link = op_link,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
    .listxattr = op_listxattr,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
};

const struct fuse_lowlevel_ops *ckptfs_ops(void)
{
	return &ops;
}
