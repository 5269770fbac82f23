/* store/store.c - creating, opening and closing stores; map growth; retention and gc
 *
 * Invariants: opening never writes to a directory that does not already hold an LMDB data
 * file (data.mdb's header is checked before LMDB touches anything); a failed create removes
 * what it created; the map is only resized while no read snapshot of this process is open
 * (LMDB remaps it and borrowed pointers would dangle). Read-only handles map a large virtual
 * size so that writers in other processes can grow the file under them (under an address space
 * limit less, down to the size of data.mdb).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/holders.h"
#include "store/store_int.h"


static uint32_t load_u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static uint64_t load_u64le(const uint8_t *p)
{
	return (uint64_t)load_u32le(p) | ((uint64_t)load_u32le(p + 4) << 32);
}

int64_t store_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void store_epoch_key(uint8_t out[8], uint64_t epoch)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(epoch >> (56 - 8 * i));
}

uint64_t store_epoch_from_key(const MDB_val *key)
{
	const uint8_t *p = key->mv_data;
	uint64_t e = 0;
	if (key->mv_size != 8)
		return UINT64_MAX;
	for (int i = 0; i < 8; i++)
		e = (e << 8) | p[i];
	return e;
}

void store_chunk_key(uint8_t out[STORE_CHUNK_KEY_LEN], const uint8_t hash[16], uint32_t index)
{
	memcpy(out, hash, 16);
	out[16] = (uint8_t)(index >> 24);
	out[17] = (uint8_t)(index >> 16);
	out[18] = (uint8_t)(index >> 8);
	out[19] = (uint8_t)index;
}

bool store_metric_better(double a, double b, ckpt_metric_mode mode)
{
	return mode == CKPT_MODE_MAX ? a > b : a < b;
}

/* ---- map size ---- */

void store_map_usage(ckpt_store *s, uint64_t *used, uint64_t *size)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_env_info(s->env, &info);
	mdb_env_stat(s->env, &st);
	*used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	*size = info.me_mapsize;
}

int store_grow_map(ckpt_store *s, uint64_t min_size)
{
	uint64_t used, size;
	int rc = 0;
	pthread_mutex_lock(&s->lock);
	store_map_usage(s, &used, &size);
	if (min_size <= size)
		goto out;
	if (s->open_snapshots) {
		rc = store_error(-EBUSY,
		                 "store %s: the LMDB map (%llu bytes) must grow but %u read "
		                 "snapshot(s) of this store are open in this process",
		                 s->path, (unsigned long long)size, s->open_snapshots);
		goto out;
	}
	uint64_t next = size * 2 > min_size ? size * 2 : min_size;
	next = (next + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
	if (next > SIZE_MAX) {
		rc = store_error(-ENOSPC, "store %s: map would exceed the address space", s->path);
		goto out;
	}
	int mrc = mdb_env_set_mapsize(s->env, (size_t)next);
	if (mrc) { /* the environment has no map now: nothing to locate (mdb_env_info faults) */
		atomic_store_explicit(&s->map.base, 0, memory_order_relaxed);
		rc = store_lmdb_error(mrc, "store %s: growing the map to %llu bytes", s->path,
		                      (unsigned long long)next);
	} else {
		store_map_locate(&s->map, s->env); /* LMDB maps it anew, elsewhere */
	}
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* adopt a map size grown by another process (MDB_MAP_RESIZED); s->lock held */
static int adopt_map_size_locked(ckpt_store *s)
{
	if (s->open_snapshots)
		return store_error(-EAGAIN,
		                   "store %s: another process grew the map while snapshots of this "
		                   "process are open; close them and retry",
		                   s->path);
	int mrc = mdb_env_set_mapsize(s->env, 0);
	if (!mrc)
		store_map_locate(&s->map, s->env);
	else
		atomic_store_explicit(&s->map.base, 0, memory_order_relaxed);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: adopting the grown map", s->path);
	return 0;
}

/* A process that dies with a snapshot open (kill -9, or `ckpt cat | head` ended by SIGPIPE)
 * leaves its slot in lock.mdb's reader table. LMDB then keeps every page freed after that
 * snapshot for it, so a writer with retention never reuses a page and data.mdb grows without
 * bound; enough such slots also fill the table (MDB_READERS_FULL). LMDB frees the slots of
 * processes that no longer hold their lock on lock.mdb: one pass over at most STORE_MAX_READERS
 * slots and a lock probe per distinct pid, cheap beside a commit. A handle without lock.mdb
 * (MDB_NOLOCK) has no table: nothing to do. */
static int clear_dead_readers(ckpt_store *s)
{
	int dead = 0;
	int mrc = mdb_reader_check(s->env, &dead);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: clearing the reader slots of ended processes",
		                        s->path);
	return 0;
}

bool store_forked(const ckpt_store *s)
{
	return s->owner != getpid();
}

/* LMDB: "Use an MDB_env* in the process which opened it, without fork()ing". A child that used
 * its parent's environment took a reader slot under the parent's pid, which no check frees
 * while the parent lives: data.mdb grew without bound. */
int store_check_process(const ckpt_store *s)
{
	if (!store_forked(s))
		return 0;
	return store_error(-ECHILD,
	                   "store %s: the handle was opened by process %ld; open the store again "
	                   "in this process (a store handle does not survive fork())",
	                   s->path, (long)s->owner);
}

/* begin a txn; s->lock held, so no map resize can happen meanwhile. A write txn first frees
 * the reader slots of ended processes, so that the pages they held are reused by this one. */
static int begin_txn_locked(ckpt_store *s, MDB_txn **out, unsigned flags)
{
	int rc = store_check_process(s);
	if (rc)
		return rc;
	bool cleared = false;
	if (!(flags & MDB_RDONLY)) {
		rc = clear_dead_readers(s);
		if (rc)
			return rc;
		cleared = true;
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		int mrc = mdb_txn_begin(s->env, NULL, flags, out);
		if (mrc == 0)
			return 0;
		if (mrc == MDB_READERS_FULL && !cleared) {
			rc = clear_dead_readers(s);
			if (rc)
				return rc;
			cleared = true;
			attempt--;
			continue;
		}
		if (mrc != MDB_MAP_RESIZED)
			return store_lmdb_error(mrc, "store %s: beginning a %s transaction",
			                        s->path, (flags & MDB_RDONLY) ? "read" : "write");
		rc = adopt_map_size_locked(s);
		if (rc)
			return rc;
	}
	return store_error(-EAGAIN, "store %s: the map keeps being resized", s->path);
}

int store_snapshot_txn(ckpt_store *s, MDB_txn **out)
{
	pthread_mutex_lock(&s->lock);
	int rc = begin_txn_locked(s, out, MDB_RDONLY);
	if (rc == 0)
		s->open_snapshots++;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void store_free(ckpt_store *s);

void store_snapshot_done(ckpt_store *s)
{
	pthread_mutex_lock(&s->lock);
	s->open_snapshots--;
	bool close_now = s->close_pending && s->open_snapshots == 0;
	pthread_mutex_unlock(&s->lock);
	if (close_now)
		store_free(s); /* ckpt_store_close() came first: the last snapshot closes it */
}

int store_write_txn(ckpt_store *s, MDB_txn **out)
{
	if (s->readonly)
		return store_error(-EROFS, "store %s: opened read-only", s->path);
	pthread_mutex_lock(&s->lock);
	int rc = begin_txn_locked(s, out, 0);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ---- blobs ---- */

static int delete_chunks(ckpt_store *s, MDB_txn *txn, const uint8_t hash[16])
{
	MDB_cursor *cur;
	int mrc = mdb_cursor_open(txn, s->db_chunks, &cur);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: opening a chunk cursor", s->path);
	uint8_t k[STORE_CHUNK_KEY_LEN];
	store_chunk_key(k, hash, 0);
	MDB_val key = {sizeof(k), k};
	mrc = store_cursor_get(s, cur, &key, NULL, MDB_SET_RANGE);
	while (mrc == 0 && key.mv_size == STORE_CHUNK_KEY_LEN &&
	       memcmp(key.mv_data, hash, 16) == 0) {
		mrc = mdb_cursor_del(cur, 0);
		if (mrc)
			break;
		mrc = store_cursor_get(s, cur, &key, NULL, MDB_GET_CURRENT);
		if (mrc == MDB_NOTFOUND || mrc == EINVAL)
			break; /* deleted the last entry */
	}
	mdb_cursor_close(cur);
	if (mrc && mrc != MDB_NOTFOUND && mrc != EINVAL)
		return store_lmdb_error(mrc, "store %s: deleting chunks", s->path);
	return 0;
}

/* Rewrite the blob record @p val (as read in @p txn) with @p refcount. The record is copied
 * first: mdb_put may move the page @p val points into. */
static int put_refcount(ckpt_store *s, MDB_txn *txn, MDB_val *key, const MDB_val *val,
                        uint64_t refcount)
{
	uint8_t *copy = malloc(val->mv_size);
	if (!copy)
		return store_error(-ENOMEM, "out of memory");
	memcpy(copy, val->mv_data, val->mv_size);
	store_blob_set_refcount(copy, val->mv_size, refcount);
	MDB_val nv = {val->mv_size, copy};
	int mrc = mdb_put(txn, s->db_blobs, key, &nv, 0);
	free(copy);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: updating a blob refcount", s->path);
	return 0;
}

/* Chunks at least this big are copied into the transaction by several threads. Most of such a
 * copy's time is the first touch of the pages LMDB has just allocated for the chunk (a page
 * fault and a page to clear per 4 KiB); faults of different threads run in parallel. */
#define STORE_PARALLEL_COPY_MIN (8u << 20)
#define STORE_COPY_THREADS_MAX 4

typedef struct copy_job {
	void *dst;
	const void *src;
	size_t len;
} copy_job;

static void *copy_main(void *arg)
{
	copy_job *j = arg;
	memcpy(j->dst, j->src, j->len);
	return NULL;
}

int store_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	sigset_t block, old;
	sigfillset(&block);
	/* faults stay deliverable: a program's SIGSEGV/SIGBUS handler must see them */
	int sync_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
	for (size_t i = 0; i < sizeof(sync_signals) / sizeof(sync_signals[0]); i++)
		sigdelset(&block, sync_signals[i]);
	pthread_sigmask(SIG_SETMASK, &block, &old);
	int rc = pthread_create(thread, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

#ifdef CKPT_TESTING
/* tests set this to copy every big chunk on exactly this many threads, whatever the CPUs */
int store_test_copy_threads;
#else
static const int store_test_copy_threads = 0;
#endif

/* The CPUs this thread may run on (its affinity mask), at least 1. */
static long usable_cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? n : 1;
}

/* memcpy() on up to STORE_COPY_THREADS_MAX threads, fewer on fewer CPUs; a thread that cannot
 * be started leaves its part to this one. */
static void copy_parallel(void *dst, const void *src, size_t len)
{
	long cpus = len < STORE_PARALLEL_COPY_MIN ? 1
	            : store_test_copy_threads > 0 ? store_test_copy_threads
	                                          : usable_cpus();
	size_t n = cpus < 2                        ? 1
	           : cpus < STORE_COPY_THREADS_MAX ? (size_t)cpus
	                                           : STORE_COPY_THREADS_MAX;
	copy_job jobs[STORE_COPY_THREADS_MAX];
	pthread_t threads[STORE_COPY_THREADS_MAX];
	bool started[STORE_COPY_THREADS_MAX] = {false};
	/* parts end on page boundaries of the destination, so no page is touched by two threads */
	uintptr_t base = (uintptr_t)dst;
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		size_t end = len;
		if (i < n - 1) { /* the first page boundary at or after (i + 1) / n of the way */
			uintptr_t b = (base + len / n * (i + 1) + 4095) & ~(uintptr_t)4095;
			end = b - base < len ? (size_t)(b - base) : len;
		}
		jobs[i] = (copy_job){(char *)dst + off, (const char *)src + off, end - off};
		off = end;
	}
	for (size_t i = 1; i < n; i++)
		started[i] =
		    jobs[i].len && store_thread_start(&threads[i], copy_main, &jobs[i]) == 0;
	copy_main(&jobs[0]);
	for (size_t i = 1; i < n; i++) {
		if (started[i])
			pthread_join(threads[i], NULL);
		else
			copy_main(&jobs[i]);
	}
}

int store_blob_ref(ckpt_store *s, MDB_txn *txn, const uint8_t hash[16], uint64_t nbytes,
                   const void *data, const uint32_t *chunk_crcs, uint32_t nchunks)
{
	MDB_val key = {16, (void *)hash}, val;
	char why[256];
	int mrc = store_get(s, txn, s->db_blobs, &key, &val);
	if (mrc == 0) {
		store_blob_rec b;
		int rc = store_blob_decode(&b, val.mv_data, val.mv_size, why, sizeof(why));
		if (rc)
			return store_error(rc, "store %s: blob record: %s", s->path, why);
		bool same = b.nbytes == nbytes && b.chunk_size == s->settings.chunk_size &&
		            b.nchunks == nchunks;
		for (uint32_t i = 0; same && i < nchunks; i++)
			same = store_blob_crc(&b, i) == chunk_crcs[i];
		if (!same)
			return store_error(
			    CKPT_ECORRUPT,
			    "store %s: stored bytes of the same hash differ (%llu bytes, "
			    "not %llu, or other CRC-32s): damaged blob record or hash "
			    "collision",
			    s->path, (unsigned long long)b.nbytes, (unsigned long long)nbytes);
		if (b.refcount == UINT64_MAX)
			return store_error(CKPT_ECORRUPT, "store %s: blob refcount overflows",
			                   s->path);
		return put_refcount(s, txn, &key, &val, b.refcount + 1);
	}
	if (mrc != MDB_NOTFOUND)
		return store_lmdb_error(mrc, "store %s: looking up a blob", s->path);
	uint64_t cs = s->settings.chunk_size;
	const uint8_t *bytes = data;
	for (uint32_t i = 0; i < nchunks; i++) {
		uint8_t k[STORE_CHUNK_KEY_LEN];
		store_chunk_key(k, hash, i);
		uint64_t off = (uint64_t)i * cs;
		uint64_t len = nbytes - off < cs ? nbytes - off : cs;
		MDB_val ck = {sizeof(k), k}, cv = {(size_t)len, NULL};
		mrc = mdb_put(txn, s->db_chunks, &ck, &cv, MDB_RESERVE);
		if (mrc)
			return store_lmdb_error(mrc, "store %s: writing chunk %u", s->path, i);
		copy_parallel(cv.mv_data, bytes + off, (size_t)len);
	}
	size_t rlen = store_blob_len(nchunks);
	MDB_val rv = {rlen, NULL};
	mrc = mdb_put(txn, s->db_blobs, &key, &rv, MDB_RESERVE);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: writing a blob record", s->path);
	store_blob_rec b = {.refcount = 1, .nbytes = nbytes, .chunk_size = cs, .nchunks = nchunks};
	store_blob_encode(rv.mv_data, &b, chunk_crcs);
	return 0;
}

int store_blob_delete(ckpt_store *s, MDB_txn *txn, const uint8_t hash[16])
{
	MDB_val k = {16, (void *)hash};
	int mrc = mdb_del(txn, s->db_blobs, &k, NULL);
	if (mrc && mrc != MDB_NOTFOUND)
		return store_lmdb_error(mrc, "store %s: deleting a blob record", s->path);
	return delete_chunks(s, txn, hash);
}

int store_blob_set_count(ckpt_store *s, MDB_txn *txn, const uint8_t hash[16], uint64_t refcount)
{
	MDB_val key = {16, (void *)hash}, val;
	int mrc = store_get(s, txn, s->db_blobs, &key, &val);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: looking up a blob", s->path);
	return put_refcount(s, txn, &key, &val, refcount);
}

int store_blob_unref(ckpt_store *s, MDB_txn *txn, const uint8_t hash[16])
{
	MDB_val key = {16, (void *)hash}, val;
	char why[256];
	int mrc = store_get(s, txn, s->db_blobs, &key, &val);
	if (mrc == MDB_NOTFOUND)
		return delete_chunks(s, txn, hash); /* damaged store: drop what is there */
	if (mrc)
		return store_lmdb_error(mrc, "store %s: looking up a blob", s->path);
	store_blob_rec b;
	int rc = store_blob_decode(&b, val.mv_data, val.mv_size, why, sizeof(why));
	if (rc == 0 && b.refcount > 1) {
		return put_refcount(s, txn, &key, &val, b.refcount - 1);
	}
	/* last reference (or an undecodable record): free the blob and its chunks */
	return store_blob_delete(s, txn, hash);
}

/* ---- checkpoints ---- */

int store_get_checkpoint(const void **data, size_t *len, ckpt_store *s, MDB_txn *txn,
                         uint64_t epoch)
{
	uint8_t k[8];
	store_epoch_key(k, epoch);
	MDB_val key = {8, k}, val;
	int mrc = store_get(s, txn, s->db_ckpt, &key, &val);
	if (mrc == MDB_NOTFOUND)
		return store_error(-ENOENT, "store %s: epoch %llu: no such checkpoint", s->path,
		                   (unsigned long long)epoch);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: epoch %llu: reading the checkpoint",
		                        s->path, (unsigned long long)epoch);
	*data = val.mv_data;
	*len = val.mv_size;
	return 0;
}

int store_load_checkpoint(store_ckpt_rec **out, ckpt_store *s, MDB_txn *txn, uint64_t epoch)
{
	const void *data;
	size_t len;
	int rc = store_get_checkpoint(&data, &len, s, txn, epoch);
	return rc ? rc : store_decode_checkpoint(out, s, epoch, data, len);
}

int store_decode_checkpoint(store_ckpt_rec **out, ckpt_store *s, uint64_t epoch,
                            const void *data, size_t len)
{
	MDB_val val = {len, (void *)data};
	char why[256];
	int rc = store_ckpt_decode(out, val.mv_data, val.mv_size, why, sizeof(why));
	if (rc == -ENOMEM)
		return store_error(rc, "out of memory decoding epoch %llu",
		                   (unsigned long long)epoch);
	if (rc)
		return store_error(rc, "store %s: epoch %llu: corrupt checkpoint record: %s",
		                   s->path, (unsigned long long)epoch, why);
	if ((*out)->epoch != epoch) {
		unsigned long long stored = (*out)->epoch;
		store_ckpt_free(*out);
		*out = NULL;
		return store_error(CKPT_ECORRUPT,
		                   "store %s: epoch %llu: corrupt checkpoint record: it says epoch "
		                   "%llu",
		                   s->path, (unsigned long long)epoch, stored);
	}
	return 0;
}

int store_delete_checkpoint(ckpt_store *s, MDB_txn *txn, uint64_t epoch)
{
	store_ckpt_rec *rec = NULL;
	int rc = store_load_checkpoint(&rec, s, txn, epoch);
	if (rc && rc != CKPT_ECORRUPT)
		return rc;
	/* an undecodable record is deleted anyway (its blobs stay referenced): deleting must
	 * always be possible, or a damaged checkpoint would block every later commit */
	for (size_t i = 0; rec && i < rec->ntensors; i++) {
		rc = store_blob_unref(s, txn, rec->tensors[i].hash);
		if (rc) {
			store_ckpt_free(rec);
			return rc;
		}
	}
	store_ckpt_free(rec);
	uint8_t k[8];
	store_epoch_key(k, epoch);
	MDB_val key = {8, k};
	int mrc = mdb_del(txn, s->db_ckpt, &key, NULL);
	if (mrc && mrc != MDB_NOTFOUND)
		return store_lmdb_error(mrc, "store %s: deleting epoch %llu", s->path,
		                        (unsigned long long)epoch);
	mrc = mdb_del(txn, s->db_index, &key, NULL);
	if (mrc && mrc != MDB_NOTFOUND)
		return store_lmdb_error(mrc, "store %s: deleting index of epoch %llu", s->path,
		                        (unsigned long long)epoch);
	return 0;
}

/* ---- best, top-k, retention ---- */

typedef struct ranked {
	uint64_t epoch;
	double value;
} ranked;

/* Best first, ties to the earlier epoch: a total order (indexed values are finite), so the
 * ranking does not depend on the sort algorithm. */
static int rank_cmp(const void *a, const void *b, void *mode)
{
	const ranked *x = a, *y = b;
	ckpt_metric_mode m = *(const ckpt_metric_mode *)mode;
	if (store_metric_better(x->value, y->value, m))
		return -1;
	if (store_metric_better(y->value, x->value, m))
		return 1;
	return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

store_index_rec store_index_of_checkpoint(const ckpt_store *s, const store_ckpt_rec *rec)
{
	store_index_rec ir = {.step = rec->step,
	                      .time_ns = rec->time_ns,
	                      .nbytes = rec->nbytes,
	                      .ntensors = (uint32_t)rec->ntensors};
	for (size_t i = 0; i < rec->nmetrics; i++) {
		if (strcmp(rec->metrics[i].name, s->meta.monitor) == 0 &&
		    isfinite(rec->metrics[i].value)) {
			ir.has_monitor = true;
			ir.monitor = rec->metrics[i].value;
		}
	}
	return ir;
}

int store_index_read(store_index_rec *out, ckpt_store *s, MDB_txn *txn, const MDB_val *key,
                     const MDB_val *val)
{
	char why[200];
	uint64_t epoch = store_epoch_from_key(key);
	if (key->mv_size != 8)
		return store_error(CKPT_ECORRUPT, "store %s: index key of %zu bytes", s->path,
		                   key->mv_size);
	int rc = CKPT_ECORRUPT;
	if (!val->mv_data) /* store_map_check() found it outside data.mdb */
		snprintf(why, sizeof(why), "it lies outside data.mdb");
	else if ((rc = store_index_decode(out, val->mv_data, val->mv_size, why, sizeof(why))) !=
	         CKPT_ECORRUPT)
		return rc;
	/* the index only summarizes the checkpoint record, which has a CRC-32 of its own */
	store_ckpt_rec *rec;
	if (store_load_checkpoint(&rec, s, txn, epoch) == 0) {
		*out = store_index_of_checkpoint(s, rec);
		store_ckpt_free(rec);
		return 0;
	}
	return store_error(rc, "store %s: epoch %llu: corrupt index record: %s", s->path,
	                   (unsigned long long)epoch, why);
}

int store_index_each(ckpt_store *s, MDB_txn *txn,
                     int (*fn)(void *arg, uint64_t epoch, const store_index_rec *ir), void *arg)
{
	MDB_cursor *cur;
	int mrc = mdb_cursor_open(txn, s->db_index, &cur);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: reading the index", s->path);
	MDB_val key, val;
	int rc = 0;
	/* past an index record outside data.mdb: store_index_read() reads its checkpoint's */
	for (mrc = store_cursor_get(s, cur, &key, &val, MDB_FIRST);
	     mrc == 0 || (mrc == STORE_EOUTSIDE && key.mv_data);
	     mrc = store_cursor_get(s, cur, &key, &val, MDB_NEXT)) {
		store_index_rec ir;
		if ((rc = store_index_read(&ir, s, txn, &key, &val)) ||
		    (rc = fn(arg, store_epoch_from_key(&key), &ir)))
			break;
	}
	mdb_cursor_close(cur);
	if (!rc && mrc != MDB_NOTFOUND)
		rc = store_lmdb_error(mrc, "store %s: reading the index", s->path);
	return rc;
}

typedef struct index_scan {
	uint64_t *e;
	ranked *r;
	size_t n, ne, nr;
} index_scan;

static int scan_one(void *arg, uint64_t epoch, const store_index_rec *ir)
{
	index_scan *x = arg;
	if (x->ne == x->n)
		return 1; /* more records than counted: the rest is not ours to read */
	x->e[x->ne++] = epoch;
	if (ir->has_monitor)
		x->r[x->nr++] = (ranked){epoch, ir->monitor};
	return 0;
}

/* all epochs (ascending) and the ranked ones (best first) from the index */
static int scan_index(ckpt_store *s, MDB_txn *txn, uint64_t **epochs, size_t *nepochs,
                      ranked **rank, size_t *nrank)
{
	MDB_stat st;
	int mrc = mdb_stat(txn, s->db_index, &st);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: index", s->path);
	index_scan x = {.n = st.ms_entries};
	x.e = malloc((x.n ? x.n : 1) * sizeof(*x.e));
	x.r = malloc((x.n ? x.n : 1) * sizeof(*x.r));
	int rc = !x.e || !x.r ? store_error(-ENOMEM, "out of memory")
	                      : store_index_each(s, txn, scan_one, &x);
	if (rc < 0) {
		free(x.e);
		free(x.r);
		return rc;
	}
	/* O(n log n): an insertion sort here was quadratic for the usual run whose metric keeps
	 * improving (every new epoch moved to the front), on each commit */
	qsort_r(x.r, x.nr, sizeof(*x.r), rank_cmp, &s->meta.monitor_mode);
	*epochs = x.e;
	*nepochs = x.ne;
	*rank = x.r;
	*nrank = x.nr;
	return 0;
}

int store_top_k(ckpt_store *s, MDB_txn *txn, uint64_t *out, size_t cap, size_t *out_count)
{
	uint64_t *e;
	ranked *r;
	size_t ne, nr;
	int rc = scan_index(s, txn, &e, &ne, &r, &nr);
	if (rc)
		return rc;
	size_t n = nr < cap ? nr : cap;
	for (size_t i = 0; i < n; i++)
		out[i] = r[i].epoch;
	*out_count = n;
	free(e);
	free(r);
	return 0;
}

/* store @p n (0 or 1) best epochs as the best record */
static int put_best(ckpt_store *s, MDB_txn *txn, uint64_t best, size_t n)
{
	MDB_val key = {4, "best"};
	int mrc;
	if (n == 0) {
		mrc = mdb_del(txn, s->db_meta, &key, NULL);
		if (mrc == MDB_NOTFOUND)
			mrc = 0;
	} else {
		uint8_t v[STORE_BEST_LEN];
		store_best_encode(v, best);
		MDB_val val = {sizeof(v), v};
		mrc = mdb_put(txn, s->db_meta, &key, &val, 0);
	}
	if (mrc)
		return store_lmdb_error(mrc, "store %s: recording the best epoch", s->path);
	return 0;
}

int store_update_best(ckpt_store *s, MDB_txn *txn)
{
	uint64_t best;
	size_t n;
	int rc = store_top_k(s, txn, &best, 1, &n);
	if (rc)
		return rc;
	return put_best(s, txn, best, n);
}

int store_update_best_for(ckpt_store *s, MDB_txn *txn, uint64_t epoch, const store_index_rec *ir)
{
	MDB_val key = {4, "best"}, val;
	int mrc = store_get(s, txn, s->db_meta, &key, &val);
	if (mrc == MDB_NOTFOUND) /* no epoch had a monitored value: only this one may */
		return ir->has_monitor ? put_best(s, txn, epoch, 1) : 0;
	if (mrc == STORE_EOUTSIDE)
		return store_update_best(s, txn); /* a damaged best record is rebuilt */
	if (mrc)
		return store_lmdb_error(mrc, "store %s: reading the best epoch", s->path);
	store_best_rec best;
	char why[200];
	if (store_best_decode(&best, val.mv_data, val.mv_size, why, sizeof(why)) != 0 ||
	    best.epoch == epoch)
		return store_update_best(s, txn); /* damaged, or the best was just replaced */
	uint8_t k[8];
	store_epoch_key(k, best.epoch);
	MDB_val bkey = {8, k}, bval;
	store_index_rec bir;
	mrc = store_get(s, txn, s->db_index, &bkey, &bval);
	if (mrc || store_index_read(&bir, s, txn, &bkey, &bval) != 0 || !bir.has_monitor)
		return store_update_best(s, txn); /* a best record that names no ranked epoch */
	/* rank_cmp's order: the better value, ties to the earlier epoch */
	if (ir->has_monitor &&
	    (store_metric_better(ir->monitor, bir.monitor, s->meta.monitor_mode) ||
	     (ir->monitor == bir.monitor && epoch < best.epoch)))
		return put_best(s, txn, epoch, 1);
	return 0;
}

int store_apply_retention(ckpt_store *s, MDB_txn *txn, uint32_t keep_last, uint32_t keep_top,
                          const uint64_t *keep_epoch, uint32_t *out_deleted)
{
	uint32_t deleted = 0;
	if (out_deleted)
		*out_deleted = 0;
	if (keep_last == 0)
		return 0; /* keep everything */
	uint64_t *e;
	ranked *r;
	size_t ne, nr;
	int rc = scan_index(s, txn, &e, &ne, &r, &nr);
	if (rc)
		return rc;
	size_t top = keep_top ? keep_top : 1; /* the best always stays */
	for (size_t i = 0; i + keep_last < ne; i++) {
		bool keep = false;
		for (size_t j = 0; j < top && j < nr; j++)
			if (r[j].epoch == e[i])
				keep = true;
		if (keep || (keep_epoch && *keep_epoch == e[i]))
			continue;
		rc = store_delete_checkpoint(s, txn, e[i]);
		if (rc)
			break;
		deleted++;
	}
	free(e);
	free(r);
	if (rc)
		return rc;
	if (out_deleted)
		*out_deleted = deleted;
	/* the best is never deleted; a scan bounded by keep_last + keep_top confirms it */
	return deleted ? store_update_best(s, txn) : 0;
}

/* ---- create / open / close ---- */

static int put_meta(ckpt_store *s, MDB_txn *txn, const char *name, const void *data, size_t len)
{
	MDB_val key = {strlen(name), (void *)name}, val = {len, (void *)data};
	int mrc = mdb_put(txn, s->db_meta, &key, &val, 0);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: writing %s", s->path, name);
	return 0;
}

static int open_dbis(ckpt_store *s, MDB_txn *txn, unsigned flags)
{
	static const char *names[] = {"meta", "ckpt", "index", "blobs", "chunks"};
	MDB_dbi *dbis[] = {&s->db_meta, &s->db_ckpt, &s->db_index, &s->db_blobs, &s->db_chunks};
	for (int i = 0; i < 5; i++) {
		int mrc = mdb_dbi_open(txn, names[i], flags, dbis[i]);
		if (mrc == MDB_NOTFOUND)
			return store_error(i == 0 ? CKPT_ENOTSTORE : CKPT_ECORRUPT,
			                   i == 0
			                       ? "%s: an LMDB environment but not a ckpt store (no "
			                         "'%s' database)"
			                       : "%s: ckpt store lacks its '%s' database",
			                   s->path, names[i]);
		if (mrc == MDB_INCOMPATIBLE)
			return store_error(CKPT_ENOTSTORE,
			                   "%s: an LMDB environment but not a ckpt "
			                   "store ('%s' is not a database)",
			                   s->path, names[i]);
		if (mrc)
			return store_lmdb_error(mrc, "%s: opening database '%s'", s->path,
			                        names[i]);
	}
	return 0;
}

/* LMDB must not have one environment open twice in a process: its locks on lock.mdb are fcntl
 * locks, which belong to the process, so a second environment of the same files believes it is
 * alone, resets the reader table and lets commits reuse pages that the first one's snapshots
 * still read. Every handle claims its data.mdb (device and inode) here for as long as it is
 * open, before LMDB opens anything; a second claim is refused. A child made by fork() holds no
 * LMDB lock of its parent and may open the store itself: claims count in the process that made
 * them only. */
typedef struct open_store {
	dev_t dev;
	ino_t ino;
	pid_t pid;
	struct open_store *next;
} open_store;

static pthread_mutex_t open_stores_lock = PTHREAD_MUTEX_INITIALIZER;
static open_store *open_stores;
static pthread_once_t open_stores_once = PTHREAD_ONCE_INIT;

/* a fork while another thread holds the lock must not leave it locked in the child */
static void open_stores_lock_take(void)
{
	pthread_mutex_lock(&open_stores_lock);
}

static void open_stores_lock_give(void)
{
	pthread_mutex_unlock(&open_stores_lock);
}

static void open_stores_init(void)
{
	pthread_atfork(open_stores_lock_take, open_stores_lock_give, open_stores_lock_give);
}

static bool open_store_find_locked(dev_t dev, ino_t ino, pid_t pid)
{
	for (const open_store *o = open_stores; o; o = o->next)
		if (o->dev == dev && o->ino == ino && o->pid == pid)
			return true;
	return false;
}

static int refuse_second_handle(const char *path)
{
	return store_error(-EBUSY,
	                   "store %s is already open in this process (one handle per store per "
	                   "process: share it)",
	                   path);
}

/* Whether the data.mdb in @p path is held by a handle of this process (false if none). */
static bool open_store_held(const char *path)
{
	char file[4200];
	struct stat st;
	if ((size_t)snprintf(file, sizeof(file), "%s/data.mdb", path) >= sizeof(file) ||
	    stat(file, &st) != 0)
		return false;
	pthread_once(&open_stores_once, open_stores_init);
	open_stores_lock_take();
	bool held = open_store_find_locked(st.st_dev, st.st_ino, getpid());
	open_stores_lock_give();
	return held;
}

/* Claim @p s's data.mdb (the file in its directory now) for @p s, or -EBUSY. */
static int open_store_claim(ckpt_store *s)
{
	char file[4200];
	struct stat st;
	if ((size_t)snprintf(file, sizeof(file), "%s/data.mdb", s->path) >= sizeof(file))
		return store_error(-ENAMETOOLONG, "%s: path too long", s->path);
	if (stat(file, &st) != 0)
		return store_error(-errno, "%s: cannot read data.mdb (%s)", s->path, strerror(errno));
	open_store *o = malloc(sizeof(*o));
	if (!o)
		return store_error(-ENOMEM, "out of memory");
	pid_t self = getpid();
	pthread_once(&open_stores_once, open_stores_init);
	open_stores_lock_take();
	bool held = open_store_find_locked(st.st_dev, st.st_ino, self);
	if (!held) {
		*o = (open_store){st.st_dev, st.st_ino, self, open_stores};
		open_stores = o;
	}
	open_stores_lock_give();
	if (held) {
		free(o);
		return refuse_second_handle(s->path);
	}
	s->claim = (open_store_id){true, st.st_dev, st.st_ino, self};
	return 0;
}

static void open_store_release(ckpt_store *s)
{
	if (!s->claim.held)
		return;
	open_stores_lock_take();
	for (open_store **o = &open_stores; *o; o = &(*o)->next) {
		if ((*o)->dev == s->claim.dev && (*o)->ino == s->claim.ino &&
		    (*o)->pid == s->claim.pid) {
			open_store *gone = *o;
			*o = gone->next;
			free(gone);
			break;
		}
	}
	open_stores_lock_give();
	s->claim.held = false;
}

static ckpt_store *store_alloc(const char *path)
{
	ckpt_store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->path = strdup(path);
	if (!s->path) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->write_lock, NULL);
	s->reader_guard_fd = -1;
	s->owner = getpid();
	return s;
}

static void store_free(ckpt_store *s)
{
	if (!s)
		return;
	/* a child after fork() leaves LMDB's environment as fork() copied it (closing it there
	 * would work on the lock table the parent uses): the child's exit or exec releases it */
	if (s->env && !store_forked(s))
		mdb_env_close(s->env);
	open_store_release(s); /* after LMDB let go of the files */
	if (s->reader_guard_fd >= 0)
		close(s->reader_guard_fd);
	store_run_free(&s->run);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->write_lock);
	free(s->path);
	free(s);
}

int store_read_settings(store_settings_rec *out, ckpt_store *s, MDB_txn *txn)
{
	MDB_val key = {8, "settings"}, val;
	char why[256];
	int mrc = store_get(s, txn, s->db_meta, &key, &val);
	if (mrc)
		return mrc == MDB_NOTFOUND
		           ? store_error(CKPT_ECORRUPT, "%s: store settings missing", s->path)
		           : store_lmdb_error(mrc, "%s: reading store settings", s->path);
	int rc = store_settings_decode(out, val.mv_data, val.mv_size, why, sizeof(why));
	if (rc)
		return store_error(rc, "%s: corrupt store settings: %s", s->path, why);
	return 0;
}

/* decode run meta and settings inside txn into s */
static int load_meta(ckpt_store *s, MDB_txn *txn)
{
	MDB_val key = {6, "schema"}, val;
	char why[256];
	int mrc = store_get(s, txn, s->db_meta, &key, &val);
	if (mrc == MDB_NOTFOUND)
		return store_error(CKPT_ENOTSTORE, "%s: not a ckpt store (no schema version)",
		                   s->path);
	if (mrc)
		return store_lmdb_error(mrc, "%s: reading the schema version", s->path);
	if (val.mv_size != 4)
		return store_error(CKPT_ECORRUPT, "%s: corrupt schema version (%zu bytes)", s->path,
		                   val.mv_size);
	const uint8_t *p = val.mv_data;
	uint32_t schema = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	                  ((uint32_t)p[3] << 24);
	if (schema > CKPT_SCHEMA_VERSION)
		return store_error(CKPT_ESCHEMA,
		                   "%s: store schema version %u is newer than this library's %d "
		                   "(upgrade ckpt)",
		                   s->path, schema, CKPT_SCHEMA_VERSION);
	if (schema == 0)
		return store_error(CKPT_ECORRUPT, "%s: corrupt schema version 0", s->path);
	key = (MDB_val){3, "run"};
	mrc = store_get(s, txn, s->db_meta, &key, &val);
	if (mrc)
		return mrc == MDB_NOTFOUND
		           ? store_error(CKPT_ECORRUPT, "%s: run metadata missing", s->path)
		           : store_lmdb_error(mrc, "%s: reading run metadata", s->path);
	int rc = store_run_decode(&s->run, val.mv_data, val.mv_size, why, sizeof(why));
	if (rc)
		return store_error(rc, "%s: corrupt run metadata: %s", s->path, why);
	if ((rc = store_read_settings(&s->settings, s, txn)))
		return rc;
	s->meta = (ckpt_run_meta){
	    .model = s->run.model,
	    .layers = s->run.layers,
	    .optimizer = s->run.optimizer,
	    .hyperparams = s->run.hyperparams,
	    .dataset = s->run.dataset,
	    .seed = s->run.seed,
	    .monitor = s->run.monitor,
	    .monitor_mode = s->run.mode,
	    .created_ns = s->run.created_ns,
	};
	return 0;
}

/* Remove @p path's data.mdb and lock.mdb, and with @p remove_dir the directory: 0, or the
 * -errno of the first that could not be removed (-ENOTEMPTY: the directory holds other files,
 * which stay). A reader that opened the store just before may make a new lock.mdb (it drops it
 * again when its open fails), so while one has come back, removing the directory is tried
 * again for a moment. */
static int remove_env_files(const char *path, bool remove_dir)
{
	char data[4096], lock[4096];
	snprintf(data, sizeof(data), "%s/data.mdb", path);
	snprintf(lock, sizeof(lock), "%s/lock.mdb", path);
	int rc = 0;
	if (unlink(data) != 0 && errno != ENOENT)
		rc = -errno;
	if (unlink(lock) != 0 && errno != ENOENT && !rc)
		rc = -errno;
	struct stat st;
	for (int attempt = 0; !rc && remove_dir && rmdir(path) != 0; attempt++) {
		int e = errno == EEXIST ? ENOTEMPTY : errno;
		if (e != ENOTEMPTY || attempt == 100 || lstat(lock, &st) != 0) {
			rc = -e;
			break;
		}
		struct timespec one_ms = {0, 1000 * 1000};
		nanosleep(&one_ms, NULL);
		ckpt_drop_unused_lock_file(path);
	}
	return rc;
}

/* -EBUSY for a create or removal of the store at @p path that has waited store_dir_wait_ms
 * for the directory's flock: the message names who held it exclusively (another create or
 * removal, ckpt gc), or else the readers that kept it busy (each holds it shared for one open
 * of a store it found half made), and ends with @p outcome. */
static int dir_busy_error(const char *path, const char *outcome)
{
	char who[512];
	if (store_flock_writers(who, sizeof(who), path) > 0)
		return store_error(-EBUSY,
		                   "%s: the directory has been locked for a minute by %s (a create, "
		                   "removal or ckpt gc of the store); %s",
		                   path, who, outcome);
	if (store_flock_readers(who, sizeof(who), path) > 0)
		return store_error(-EBUSY,
		                   "%s: readers opening the store kept the directory busy for a minute "
		                   "(now %s); %s",
		                   path, who, outcome);
	return store_error(-EBUSY,
	                   "%s: the directory has been locked for a minute by other processes; %s",
	                   path, outcome);
}

/* The transaction ids in the two meta pages (@p psize bytes each) of the data file @p fd;
 * UINT64_MAX for a page that is no LMDB meta page. False when they cannot be read. */
static bool read_meta_txnids(uint64_t out[2], int fd, uint32_t psize)
{
	for (int i = 0; i < 2; i++) {
		uint8_t page[LMDB_META_END];
		if (pread(fd, page, sizeof(page), (off_t)i * psize) != (ssize_t)sizeof(page))
			return false;
		out[i] = load_u32le(page + 16) == LMDB_MAGIC ? load_u64le(page + LMDB_META_TXNID)
		                                             : UINT64_MAX;
	}
	return true;
}

/* Whether @p lock_txnid, the id lock.mdb gives a transaction, names a commit of the data file
 * whose meta pages hold @p metas. LMDB reads a transaction's commit from meta page (id & 1):
 * that page must hold the id, and the other page no commit after the next one (a commit
 * writes its meta page before its id into lock.mdb, and a writer that died between the two
 * leaves lock.mdb one commit behind until the next write). */
static bool lock_txnid_fits(uint64_t lock_txnid, const uint64_t metas[2])
{
	uint64_t other = metas[!(lock_txnid & 1)];
	return metas[lock_txnid & 1] == lock_txnid &&
	       (other == UINT64_MAX || other <= lock_txnid + 1);
}

/* LMDB keeps the id of the newest commit in lock.mdb, set from data.mdb by the environment's
 * first user only (the one that finds no other process holding lock.mdb), and every
 * transaction reads the commit in the meta page of that id's parity. A data.mdb replaced (mv,
 * rsync without --inplace) while another process keeps the environment open leaves lock.mdb
 * with the old file's id: readers and writers of the new file would take whichever of its
 * meta pages has that parity (an older commit, or none: "no 'meta' database") and a writer
 * would build on it. Such an environment @p env of store @p path is refused before anything
 * is read from it or written, naming the processes that hold it (-EBUSY). The ids tell (a
 * commit racing the check moves the meta pages: it reads again until they stay the same
 * across a reading); where they fit by chance, a holder that maps another file at the store's
 * data.mdb path tells (store_env_holder_maps_other()). Nothing to
 * check without lock.mdb (MDB_NOLOCK: LMDB takes the newest meta page itself), and a read
 * transaction that cannot begin is left to the caller's own, which reports it. */
static int check_lock_belongs(MDB_env *env, const char *path)
{
	unsigned flags;
	int fd;
	MDB_stat st;
	if (mdb_env_get_flags(env, &flags) != 0 || (flags & MDB_NOLOCK) ||
	    mdb_env_get_fd(env, &fd) != 0 || mdb_env_stat(env, &st) != 0)
		return 0;
	uint64_t metas[2] = {0, 0};
	bool replaced = false, fits = false;
	for (int attempt = 0; !replaced && !fits && attempt < 50; attempt++) {
		uint64_t metas_before[2] = {metas[0], metas[1]};
		MDB_txn *txn;
		if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
			return 0;
		uint64_t txnid = mdb_txn_id(txn);
		mdb_txn_abort(txn);
		if (!read_meta_txnids(metas, fd, st.ms_psize))
			return 0; /* LMDB has just read them: what fails is for it to report */
		fits = lock_txnid_fits(txnid, metas);
		/* pages that stayed the same across a reading of the lock's id would fit it in a
		 * healthy store (the id is their newest, or one before while a commit is in flight
		 * or its writer died): two misfits over unchanged pages are a replaced file */
		replaced = !fits && attempt > 0 && metas[0] == metas_before[0] &&
		           metas[1] == metas_before[1];
	}
	/* ids that fit (or pages a live writer keeps moving) may still be another file's: a copy
	 * of the store as it was, a backup's 0/1. The holders' maps tell, where /proc lets them;
	 * an open that raced `ckpt gc --compact` maps the old file for moments before it opens
	 * the new one (open_current()): only a holder that keeps mapping another file for 2 s
	 * tells */
	struct stat data_st;
	if (!replaced && fstat(fd, &data_st) == 0) {
		replaced = true;
		for (int i = 0; replaced && i < 40; i++) {
			replaced = store_env_holder_maps_other(path, &data_st);
			if (replaced && i < 39)
				nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
		}
	}
	if (!replaced)
		return 0;
	char who[512];
	int n = store_env_holders(who, sizeof(who), path);
	return store_error(
	    -EBUSY,
	    "%s: data.mdb was replaced while %s had the store open, and lock.mdb still belongs to "
	    "the old data.mdb (LMDB would read the new one at the wrong commit): unmount or stop "
	    "%s, then open the store again",
	    path, n ? who : "a process (a ckptfs mount, ckpt-train, a program using libckpt)",
	    n > 1 ? "them" : "it");
}

/* A create killed before its first commit leaves a data.mdb that is empty or holds no
 * database at all: no store, nothing to lose, so a new create may start over in its place.
 * 1 when abandoned, 0 when not, or a negative error code with its message: a data.mdb put in
 * place of another while a process holds the environment (check_lock_belongs()), which LMDB
 * would read at the wrong commit, possibly as an empty one. */
static int is_abandoned_env(const char *path)
{
	char file[4096];
	struct stat st;
	snprintf(file, sizeof(file), "%s/data.mdb", path);
	if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	if (st.st_size == 0)
		return true;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat ms;
	int abandoned = 0;
	if (mdb_env_create(&env))
		return 0;
	/* a look must not create a lock.mdb (LMDB would, even read-only): the directory stays
	 * as it was found when its data.mdb turns out to be no store at all */
	snprintf(file, sizeof(file), "%s/lock.mdb", path);
	unsigned nolock = stat(file, &st) == 0 && store_prepare_lock_file(path, NULL) == 0 ? 0 : MDB_NOLOCK;
	if (!mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS | nolock, 0644) &&
	    !(abandoned = check_lock_belongs(env, path)) &&
	    !mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) {
		if (!mdb_dbi_open(txn, NULL, 0, &dbi) && !mdb_stat(txn, dbi, &ms))
			abandoned = ms.ms_entries == 0;
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	return abandoned;
}

/* make the new files' directory entries (and a new directory's own) durable */
static void sync_dirs(const char *path, bool made_dir)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	if (made_dir) {
		char *parent = strdup(path);
		if (!parent)
			return;
		char *slash = strrchr(parent, '/');
		const char *dir = slash ? (slash == parent ? "/" : parent) : ".";
		if (slash && slash != parent)
			*slash = 0;
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
		free(parent);
	}
}

/* A directory a store may be created in: empty, or holding only the remnants of a create
 * that was killed (removed here). */
static int check_create_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return store_error(-errno, "%s: cannot read directory (%s)", path, strerror(errno));
	struct dirent *de;
	bool has_store = false, empty = true, only_env = true;
	int abandoned = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		empty = false;
		if (strcmp(de->d_name, "data.mdb") == 0)
			has_store = true;
		else if (strcmp(de->d_name, "lock.mdb") != 0)
			only_env = false;
	}
	closedir(d);
	/* a lock.mdb alone (killed before data.mdb was written) is a remnant as well */
	if (!empty && only_env && (!has_store || (abandoned = is_abandoned_env(path)) > 0)) {
		remove_env_files(path, false);
		empty = true;
	}
	if (abandoned < 0)
		return abandoned;
	if (!empty)
		return store_error(-EEXIST, "%s: %s", path,
		                   has_store ? "already holds a store" : "directory is not empty");
	if (access(path, W_OK) != 0)
		return store_error(-errno, "%s: cannot write to the directory (%s)", path,
		                   strerror(errno));
	return 0;
}

static int create_store(ckpt_store **out, const char *path, const ckpt_run_meta *meta,
                        const ckpt_store_options *opts);

int ckpt_store_create(ckpt_store **out, const char *path, const ckpt_run_meta *meta,
                      const ckpt_store_options *opts)
{
	store_owner owner;
	if (out)
		*out = NULL;
	int rc = out && path && *path ? store_owner_enter(&owner, path) : 0;
	if (rc)
		return rc;
	if (!out || !path || !*path)
		return create_store(out, path, meta, opts);
	rc = create_store(out, path, meta, opts);
	return store_owner_leave(&owner, rc, path);
}

static int create_store(ckpt_store **out, const char *path, const ckpt_run_meta *meta,
                        const ckpt_store_options *opts)
{
	if (!out)
		return store_error(-EINVAL, "ckpt_store_create: no place for the handle (out is NULL)");
	*out = NULL;
	ckpt_store_options o = opts ? *opts : (ckpt_store_options){0};
	if (!path || !*path)
		return store_error(-EINVAL, "store path is empty");
	if (!meta || !meta->monitor || !*meta->monitor)
		return store_error(-EINVAL, "%s: run metadata needs a monitored metric", path);
	if (meta->monitor_mode != CKPT_MODE_MIN && meta->monitor_mode != CKPT_MODE_MAX)
		return store_error(-EINVAL, "%s: bad monitor mode %d", path,
		                   (int)meta->monitor_mode);
	if (strlen(meta->monitor) > STORE_MAX_METRIC_NAME)
		return store_error(-EINVAL,
		                   "%s: the monitored metric's name is %zu bytes; a metric name has "
		                   "at most %d, so no checkpoint could ever be ranked",
		                   path, strlen(meta->monitor), STORE_MAX_METRIC_NAME);
	if (opts && opts->keep_top > 0 && opts->keep_last == 0)
		return store_error(-EINVAL,
		                   "%s: keep_top %u has no effect with keep_last 0 (every checkpoint "
		                   "is kept)",
		                   path, opts->keep_top);
	const struct {
		const char *field, *text;
	} strings[] = {{"model", meta->model},         {"layers", meta->layers},
	               {"optimizer", meta->optimizer}, {"hyperparams", meta->hyperparams},
	               {"dataset", meta->dataset},     {"monitor", meta->monitor}};
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (strings[i].text && !ckpt_utf8_valid(strings[i].text) && !store_old_input_allowed())
			return store_error(-EINVAL, "%s: run metadata: %s is not valid UTF-8", path,
			                   strings[i].field);
	char why[256];
	if (meta->hyperparams && *meta->hyperparams && !store_old_input_allowed() &&
	    store_json_check_object(meta->hyperparams, strlen(meta->hyperparams), why,
	                            sizeof(why)) != 0)
		return store_error(-EINVAL, "%s: run metadata: hyperparams is not a JSON object (%s)",
		                   path, why);
	if (!o.chunk_size)
		o.chunk_size = STORE_DEFAULT_CHUNK_SIZE;
	if (o.chunk_size > STORE_MAX_CHUNK_SIZE || o.chunk_size % 8)
		return store_error(-EINVAL,
		                   "%s: chunk size %llu must be a multiple of 8 and at most 1 GiB",
		                   path, (unsigned long long)o.chunk_size);
	if (!o.initial_map_size)
		o.initial_map_size = STORE_DEFAULT_MAP_SIZE;
	if (o.initial_map_size < (256u << 10))
		o.initial_map_size = 256u << 10;
	if (o.initial_map_size > SIZE_MAX)
		return store_error(-EINVAL, "%s: initial map size too large", path);

	/* looking at an abandoned data.mdb opens it in LMDB: not while this process has it open */
	if (open_store_held(path))
		return refuse_second_handle(path);
	bool made_dir = false;
	struct stat st, locked;
	int dir_lock = -1;
	/* Creates of one path in several processes: one at a time (the directory's flock, which
	 * gc holds too), so that none takes another's fresh environment for the remnant of a
	 * killed create and removes it under it; the later ones find a store there. The lock must
	 * be the directory's at @p path still: a create that failed may have removed it, and
	 * another made a new one, meanwhile. */
	for (int attempt = 0;; attempt++) {
		if (stat(path, &st) != 0 && errno == ENOENT) {
			if (mkdir(path, 0755) == 0)
				made_dir = true;
			else if (errno != EEXIST) /* EEXIST: another create made it meanwhile */
				return store_error(-errno, "%s: cannot create the directory (%s)",
				                   path, strerror(errno));
		}
		if (stat(path, &st) != 0)
			return store_error(-errno, "%s: %s", path, strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return store_error(-EEXIST, "%s: exists and is not a directory", path);
		dir_lock = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		/* others hold it for moments (a create, a reader that found no store yet) or while
		 * they run (ckpt gc): up to a minute; without flock there is nothing to wait for */
		if (dir_lock >= 0 &&
		    store_flock_wait(dir_lock, LOCK_EX, store_dir_wait_ms) == -EWOULDBLOCK) {
			int rc = dir_busy_error(path, "try again when it is done");
			close(dir_lock);
			if (made_dir)
				rmdir(path);
			return rc;
		}
		if (dir_lock < 0 || attempt >= 100 ||
		    (fstat(dir_lock, &locked) == 0 && stat(path, &st) == 0 &&
		     locked.st_dev == st.st_dev && locked.st_ino == st.st_ino))
			break;
		close(dir_lock); /* a directory that is gone: lock the one there now */
		dir_lock = -1;
		made_dir = false;
	}
	int rc = check_create_dir(path);
	if (rc) {
		if (made_dir)
			rmdir(path);
		if (dir_lock >= 0)
			close(dir_lock);
		return rc;
	}
	ckpt_store *s = store_alloc(path);
	if (!s) {
		if (made_dir)
			rmdir(path);
		if (dir_lock >= 0)
			close(dir_lock);
		return store_error(-ENOMEM, "out of memory");
	}
	int mrc;
	MDB_txn *txn = NULL;
	uint8_t *run = NULL;
	size_t run_len;
	s->no_sync = o.no_sync;
	if ((mrc = store_prepare_lock_file(path, NULL)) || (mrc = mdb_env_create(&s->env)) ||
	    (mrc = mdb_env_set_maxdbs(s->env, 8)) ||
	    (mrc = mdb_env_set_maxreaders(s->env, STORE_MAX_READERS)) ||
	    (mrc = mdb_env_set_mapsize(s->env, (size_t)o.initial_map_size)) ||
	    (mrc = mdb_env_open(s->env, path, MDB_NOTLS | (o.no_sync ? MDB_NOSYNC : 0), 0644))) {
		rc = store_lmdb_error(store_write_errno(path, mrc, 0),
		                      "%s: creating the LMDB environment", path);
		goto fail;
	}
	if ((rc = open_store_claim(s))) {
		/* another thread's create or open has these files now: they are not ours to remove */
		store_free(s);
		if (dir_lock >= 0)
			close(dir_lock);
		return rc;
	}
	store_map_locate(&s->map, s->env);
	if ((mrc = mdb_txn_begin(s->env, NULL, 0, &txn))) {
		rc = store_lmdb_error(mrc, "%s: beginning the first transaction", path);
		goto fail;
	}
	if ((rc = open_dbis(s, txn, MDB_CREATE)))
		goto fail;
	ckpt_run_meta m = *meta;
	m.created_ns = store_now_ns();
	if ((rc = store_run_encode(&run, &run_len, &m))) {
		rc = store_error(rc, "%s: encoding run metadata", path);
		goto fail;
	}
	uint8_t schema[4] = {CKPT_SCHEMA_VERSION, 0, 0, 0};
	store_settings_rec set = {
	    .chunk_size = o.chunk_size, .keep_last = o.keep_last, .keep_top = o.keep_top};
	uint8_t setbuf[STORE_SETTINGS_LEN];
	store_settings_encode(setbuf, &set);
	if ((rc = put_meta(s, txn, "schema", schema, 4)) ||
	    (rc = put_meta(s, txn, "run", run, run_len)) ||
	    (rc = put_meta(s, txn, "settings", setbuf, sizeof(setbuf))))
		goto fail;
	mrc = store_write_errno(path, mdb_txn_commit(txn), 0);
	txn = NULL;
	if (mrc) {
		rc = store_lmdb_error(mrc, "%s: writing the new store", path);
		goto fail;
	}
	free(run);
	run = NULL;
	if ((mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))) {
		rc = store_lmdb_error(mrc, "%s: reading the new store", path);
		goto fail;
	}
	rc = load_meta(s, txn);
	mdb_txn_abort(txn);
	txn = NULL;
	if (rc)
		goto fail;
	if (!o.no_sync)
		sync_dirs(path, made_dir);
	if (dir_lock >= 0)
		close(dir_lock);
	*out = s;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	free(run);
	store_free(s);
	remove_env_files(path, made_dir);
	if (dir_lock >= 0)
		close(dir_lock);
	return rc == STORE_EMAPFULL ? -ENOSPC : rc;
}

static int discard_store(const char *path, bool remove_dir);

int ckpt_store_discard(const char *path, bool remove_dir)
{
	STORE_NEED(path, "ckpt_store_discard");
	store_owner owner;
	int rc = store_owner_enter(&owner, path);
	if (rc)
		return rc;
	rc = discard_store(path, remove_dir);
	return store_owner_leave(&owner, rc, path);
}

static int discard_store(const char *path, bool remove_dir)
{
	if (open_store_held(path))
		return refuse_second_handle(path);
	int dir_lock = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_lock < 0)
		return store_error(-errno, "%s: %s", path, strerror(errno));
	/* a create's lock, so that readers opening the store meanwhile wait and then find none
	 * (ckpt_store_open()); they hold it shared for one open at most */
	if (store_flock_wait(dir_lock, LOCK_EX, store_dir_wait_ms) == -EWOULDBLOCK) {
		int rc = dir_busy_error(path, "the store was not removed");
		close(dir_lock);
		return rc;
	}
	int rc = remove_env_files(path, remove_dir);
	close(dir_lock);
	if (rc == -ENOTEMPTY)
		return store_error(rc,
		                   "%s: the store was removed; the directory stays, as it holds "
		                   "other files",
		                   path);
	if (rc)
		return store_error(rc, "%s: cannot remove the store (%s)", path, strerror(-rc));
	return 0;
}

static bool has_file(const char *dir, const char *name)
{
	char file[4096];
	struct stat st;
	snprintf(file, sizeof(file), "%s/%s", dir, name);
	return stat(file, &st) == 0;
}

/* refuse anything that is not an LMDB data file before LMDB may create files */
/* The newer of @p fd's two LMDB meta pages into @p meta, and the page size into *@p psize (0 when
 * it is not one LMDB uses); false when the file does not start with an LMDB meta page. */
static bool read_newest_meta(uint8_t meta[LMDB_META_END], uint32_t *psize, int fd)
{
	uint8_t other[LMDB_META_END];
	*psize = 0;
	if (pread(fd, meta, LMDB_META_END, 0) != LMDB_META_END || load_u32le(meta + 16) != LMDB_MAGIC)
		return false;
	uint32_t p = load_u32le(meta + LMDB_META_PSIZE);
	if (p < 512 || p > 65536 || (p & (p - 1)) != 0)
		return true;
	*psize = p;
	if (pread(fd, other, sizeof(other), p) == (ssize_t)sizeof(other) &&
	    load_u32le(other + 16) == LMDB_MAGIC &&
	    load_u64le(other + LMDB_META_TXNID) > load_u64le(meta + LMDB_META_TXNID))
		memcpy(meta, other, sizeof(other));
	return true;
}

/* The exact check behind store_check_data_file's quick one: LMDB's last page counts pages that a
 * write transaction allocated and freed again before they were written (a gc that deletes
 * many epochs leaves such pages at the end), so a sound file may end before it. Walk every
 * B-tree the newest commit references (store_walk_pages) and find the highest page any of them
 * uses, overflow pages included; a walk that fails means a damaged file.
 * *@p no_files, when not NULL, is set when it fails because @p path holds neither data.mdb nor
 * lock.mdb: no part of a store (a directory where a create may start, or one emptied). */
static int check_data_file(const char *path, bool *no_files)
{
	char file[4096];
	if (no_files)
		*no_files = false;
	/* LMDB follows symlinks and would read, and when writing ftruncate and overwrite,
	 * whatever data.mdb or lock.mdb point at: a store's files must be its own */
	struct stat lst;
	snprintf(file, sizeof(file), "%s/lock.mdb", path);
	if (lstat(file, &lst) == 0 && !S_ISREG(lst.st_mode))
		return store_error(CKPT_ENOTSTORE, "%s: not a ckpt store (lock.mdb is a %s, not a "
		                   "regular file)", path, S_ISLNK(lst.st_mode) ? "symbolic link" : "special file");
	snprintf(file, sizeof(file), "%s/data.mdb", path);
	if (lstat(file, &lst) == 0 && !S_ISREG(lst.st_mode))
		return store_error(CKPT_ENOTSTORE, "%s: not a ckpt store (data.mdb is a %s, not a "
		                   "regular file)", path, S_ISLNK(lst.st_mode) ? "symbolic link" : "special file");
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		char who[512];
		if (errno != ENOENT)
			return store_error(-errno, "%s: cannot read data.mdb (%s)", path,
			                   strerror(errno));
		if (!has_file(path, "lock.mdb")) {
			if (no_files)
				*no_files = true;
			return store_error(CKPT_ENOTSTORE, "%s: not a ckpt store (no data.mdb)", path);
		}
		/* a create holds the directory's flock from before lock.mdb until its store is
		 * whole: only one that nobody holds was interrupted */
		if (store_dir_locked_by_other(who, sizeof(who), path))
			return store_error(CKPT_ENOTSTORE,
			                   "%s: not a ckpt store yet (no data.mdb: it is being created "
			                   "by %s)",
			                   path, who[0] ? who : "another process");
		return store_error(CKPT_ENOTSTORE,
		                   "%s: not a ckpt store (no data.mdb; a lock.mdb left by an "
		                   "interrupted create, which creating the store again replaces)",
		                   path);
	}
	uint8_t meta[LMDB_META_END];
	uint32_t psize;
	if (!read_newest_meta(meta, &psize, fd)) {
		close(fd);
		return store_error(CKPT_ENOTSTORE,
		                   "%s: not a ckpt store (data.mdb is not an LMDB "
		                   "file)",
		                   path);
	}
	/* LMDB maps data.mdb and takes its pages on trust: pages past the end of a truncated
	 * file would raise SIGBUS on first touch. The newer of the two meta pages names the last
	 * page its commit uses; the file must reach it. */
	uint64_t need = 0;
	struct stat st;
	int rc = fstat(fd, &st) ? -errno : 0;
	if (!rc && psize) {
		uint64_t last = load_u64le(meta + LMDB_META_LAST_PG);
		need = last >= UINT64_MAX / psize ? UINT64_MAX : (last + 1) * psize;
		uint64_t highest;
		if ((uint64_t)st.st_size < need && st.st_size >= 2 * (off_t)psize) {
			int wrc = store_walk_pages(fd, psize, (uint64_t)st.st_size, meta,
			                           STORE_WALK_QUICK, &highest,
			                           NULL, 0);
			if (wrc == -ENOMEM)
				rc = wrc;
			else if (!wrc)
				need = highest * psize; /* the pages past it were never written */
		}
	} else if (!rc) {
		need = UINT64_MAX;
	}
	close(fd);
	if (rc)
		return store_error(rc, "%s: cannot check data.mdb (%s)", path, strerror(-rc));
	if ((uint64_t)st.st_size < need)
		return store_error(
		    CKPT_ECORRUPT,
		    "%s: data.mdb is truncated or damaged (%llu bytes; its last commit "
		    "needs %llu)",
		    path, (unsigned long long)st.st_size,
		    need == UINT64_MAX ? 0ull : (unsigned long long)need);
	return 0;
}

int store_check_data_file(const char *path)
{
	return check_data_file(path, NULL);
}

int store_check_pages(const char *path, store_walk_mode mode)
{
	char file[4200], why[256];
	if ((size_t)snprintf(file, sizeof(file), "%s/data.mdb", path) >= sizeof(file))
		return store_error(-ENAMETOOLONG, "%s: path too long", path);
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return store_error(-errno, "%s: cannot read data.mdb (%s)", path, strerror(errno));
	uint8_t meta[LMDB_META_END], again[LMDB_META_END];
	uint32_t psize = 0, psize_again;
	uint64_t highest;
	struct stat st, st_again;
	int rc = 0;
	/* A writer in another process may commit meanwhile: grow the file after the fstat, or
	 * write the meta page while it is read (a torn copy). A walk that fails is done again
	 * while the file's size or its newest meta page has changed since: damage stays put. */
	for (int attempt = 0; attempt < 8; attempt++) {
		if (fstat(fd, &st) != 0) {
			rc = -errno;
			break;
		}
		if (!read_newest_meta(meta, &psize, fd) || !psize) {
			rc = CKPT_ECORRUPT;
			break;
		}
		rc = store_walk_pages(fd, psize, (uint64_t)st.st_size, meta, mode, &highest, why,
		                      sizeof(why));
		if (rc != CKPT_ECORRUPT || fstat(fd, &st_again) != 0 ||
		    !read_newest_meta(again, &psize_again, fd) ||
		    (st_again.st_size == st.st_size && memcmp(again, meta, sizeof(meta)) == 0))
			break;
	}
	if (rc < 0 && rc != -ENOMEM && rc != CKPT_ECORRUPT)
		rc = store_error(rc, "%s: cannot read data.mdb (%s)", path, strerror(-rc));
	else if (rc == CKPT_ECORRUPT && !psize)
		rc = store_error(CKPT_ECORRUPT, "%s: data.mdb has no sound LMDB meta page", path);
	else if (rc == -ENOMEM)
		rc = store_error(rc, "out of memory checking %s/data.mdb", path);
	else if (rc && mode == STORE_WALK_FULL &&
	         store_walk_pages(fd, psize, (uint64_t)st.st_size, meta, STORE_WALK_READ,
	                          &highest, NULL, 0) == 0)
		rc = store_error(rc,
		                 "store %s: data.mdb is damaged (%s), so it is not written to: "
		                 "ckpt verify names the damaged records; restore the store from a "
		                 "backup",
		                 path, why);
	else if (rc && mode == STORE_WALK_FULL) /* readers refuse it too: verify cannot help */
		rc = store_error(rc,
		                 "store %s: data.mdb is damaged (%s): the B-tree that leads to the "
		                 "records is broken, so it is neither written to nor read; restore "
		                 "the store from a backup",
		                 path, why);
	else if (rc)
		rc = store_error(rc,
		                 "store %s: data.mdb is damaged (%s): the B-tree that leads to the "
		                 "records is broken, so no record can be read safely; restore the "
		                 "store from a backup",
		                 path, why);
	close(fd);
	return rc;
}

/* the first byte of lock.mdb's reserve: past the reader slots, on a page boundary */
#define LOCK_RESERVE_START ((STORE_LOCK_FILE_BYTES + 4095) / 4096 * 4096)

int store_prepare_lock_file(const char *dir, bool *was_created)
{
	char file[4200];
	if (was_created)
		*was_created = false;
	if ((size_t)snprintf(file, sizeof(file), "%s/lock.mdb", dir) >= sizeof(file))
		return 0; /* LMDB refuses the path itself */
	bool created = false;
	int fd = open(file, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		created = fd >= 0;
		if (fd < 0 && errno == EEXIST)
			fd = open(file, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0) /* a link in its place: LMDB, which follows it, must not open it */
		return errno == ELOOP ? ELOOP : 0;
	struct stat st;
	/* an existing one keeps its size (LMDB reads the reader count from it) */
	off_t len = fstat(fd, &st) == 0 && st.st_size > 0
	                ? st.st_size
	                : (off_t)STORE_LOCK_FILE_BYTES + STORE_LOCK_RESERVE;
	int e = posix_fallocate(fd, 0, len);
	/* the reserve may be spent (a gc on a full disk used it): the reader slots LMDB uses must
	 * be backed, the rest comes back when there is room */
	if ((e == ENOSPC || e == EDQUOT) && len > LOCK_RESERVE_START)
		e = posix_fallocate(fd, 0, LOCK_RESERVE_START);
	close(fd);
	if (e == EOPNOTSUPP || e == EINVAL || e == ENOSYS)
		e = 0; /* a file system without it: LMDB as before */
	if (e && created)
		unlink(file);
	if (was_created)
		*was_created = created && !e;
	return e;
}

bool store_release_lock_reserve(const char *dir)
{
	char file[4200];
	if ((size_t)snprintf(file, sizeof(file), "%s/lock.mdb", dir) >= sizeof(file))
		return false;
	int fd = open(file, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	struct stat st;
	bool freed = fstat(fd, &st) == 0 && st.st_size > LOCK_RESERVE_START &&
	             st.st_blocks * 512 > LOCK_RESERVE_START &&
	             fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, LOCK_RESERVE_START,
	                       st.st_size - LOCK_RESERVE_START) == 0;
	close(fd);
	return freed;
}

void store_restore_lock_reserve(const char *dir)
{
	char file[4200];
	if ((size_t)snprintf(file, sizeof(file), "%s/lock.mdb", dir) >= sizeof(file))
		return;
	int fd = open(file, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size > 0)
		(void)posix_fallocate(fd, 0, st.st_size);
	close(fd);
}

static int env_open(ckpt_store *s, unsigned flags, size_t mapsize)
{
	int mrc;
	if (!(flags & MDB_NOLOCK) && (mrc = store_prepare_lock_file(s->path, &s->lock_created)))
		return mrc;
	if ((mrc = mdb_env_create(&s->env)))
		return mrc;
	if ((mrc = mdb_env_set_maxdbs(s->env, 8)) ||
	    (mrc = mdb_env_set_maxreaders(s->env, STORE_MAX_READERS)) ||
	    (mapsize && (mrc = mdb_env_set_mapsize(s->env, mapsize))) ||
	    (mrc = mdb_env_open(s->env, s->path, flags, 0644))) {
		mdb_env_close(s->env);
		s->env = NULL;
	}
	return mrc;
}

/* A reader without LMDB's lock file is invisible to writers, which may then reuse the pages it
 * reads. ckpt-train holds an exclusive flock on data.mdb while it writes: take a shared one for
 * as long as the handle is open, so that no ckpt-train writes meanwhile, and refuse if one is
 * writing now. @p why_nolock says why there is no lock file, for the message. */
static int guard_lockless_reader(ckpt_store *s, const char *why_nolock)
{
	char file[4096];
	snprintf(file, sizeof(file), "%s/data.mdb", s->path);
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return store_error(-errno, "%s: cannot read data.mdb (%s)", s->path,
		                   strerror(errno));
	if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return store_error(-EBUSY,
			                   "%s: a writer (ckpt-train or ckpt gc) holds this store and "
			                   "%s, so reading it now could return pages the writer reuses; "
			                   "wait for it to end",
			                   s->path, why_nolock);
		return 0; /* no flock on this file system: nothing to guard with */
	}
	s->reader_guard_fd = fd;
	return 0;
}

/* Open the environment of a read-only handle. LMDB creates lock.mdb when it is missing and
 * writes its reader table into it: a missing lock file is never created (a copied store, read-
 * only media), and one this process cannot write is left alone; both are read with MDB_NOLOCK
 * under guard_lockless_reader(). An existing, writable lock.mdb is used, as every LMDB reader
 * does: registering there is what keeps a concurrent writer off the pages a snapshot reads. */
static int open_readonly_env(ckpt_store *s)
{
	char lock[4096];
	struct stat st;
	snprintf(lock, sizeof(lock), "%s/lock.mdb", s->path);
	bool no_lock_file = lstat(lock, &st) != 0 && errno == ENOENT;
	/* the least map that serves: data.mdb, whole, in MiB (LMDB also raises a map below the
	 * last page its newest commit uses to that) */
	char data[4096];
	snprintf(data, sizeof(data), "%s/data.mdb", s->path);
	if (stat(data, &st) != 0)
		return store_error(-errno, "%s: cannot read data.mdb (%s)", s->path, strerror(errno));
	uint64_t least = ((uint64_t)st.st_size + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
	if (least == 0)
		least = 1u << 20;
	if (least > SIZE_MAX)
		return store_error(-ENOMEM, "%s: data.mdb (%llu bytes) is larger than the address space",
		                   s->path, (unsigned long long)st.st_size);
	/* a big virtual map so writers elsewhere can grow the file under us */
	size_t map = sizeof(size_t) >= 8 ? (size_t)1 << 40 : (size_t)1 << 30;
	if (map < least)
		map = (size_t)least;
	/* LMDB itself, read-only, silently runs without locking when lock.mdb is on a read-only
	 * file system (EROFS: a read-only bind mount, read-only media): no reader slot would then
	 * keep a writer off our pages, so such a lock.mdb counts as one that cannot be written */
	bool lock_unwritable = !no_lock_file && access(lock, W_OK) != 0;
	unsigned f = MDB_NOTLS | MDB_RDONLY | (no_lock_file || lock_unwritable ? MDB_NOLOCK : 0);
	int mrc;
	bool lock_unfilled = false;
	for (;;) {
		mrc = env_open(s, f, map);
		if ((mrc == EACCES || mrc == EROFS || mrc == EPERM) && !(f & MDB_NOLOCK)) {
			f |= MDB_NOLOCK; /* lock.mdb exists but cannot be written */
			continue;
		}
		if ((mrc == ENOSPC || mrc == EDQUOT || mrc == EFBIG) && !(f & MDB_NOLOCK)) {
			f |= MDB_NOLOCK; /* a full disk has no blocks for lock.mdb (SIGBUS in LMDB) */
			lock_unfilled = true;
			continue;
		}
		/* address space limits (ulimit -v, valgrind) refuse huge maps: a quarter each time,
		 * down to the least (a writer that outgrows it makes the next snapshot remap) */
		if ((mrc == ENOMEM || mrc == EINVAL) && map > least) {
			map = map / 4 > least ? map / 4 : (size_t)least;
			continue;
		}
		break;
	}
	struct rlimit rl;
	if (mrc == ENOMEM && getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		return store_error(-ENOMEM,
		                   "%s: not enough address space to map data.mdb: it needs %llu "
		                   "bytes, and ulimit -v is %llu KiB in all; raise ulimit -v",
		                   s->path, (unsigned long long)map,
		                   (unsigned long long)(rl.rlim_cur / 1024));
	if (mrc == ENOMEM)
		return store_error(-ENOMEM,
		                   "%s: not enough address space to map data.mdb: it needs %llu bytes",
		                   s->path, (unsigned long long)map);
	if (mrc == ELOOP) /* lock.mdb replaced by a link after check_data_file() */
		return store_error(
		    CKPT_ENOTSTORE,
		    "%s: not a ckpt store (lock.mdb is a symbolic link, not a regular "
		    "file)",
		    s->path);
	if (mrc)
		return store_lmdb_error(mrc, "%s: opening the LMDB environment", s->path);
	if (f & MDB_NOLOCK)
		return guard_lockless_reader(s, no_lock_file    ? "it has no lock.mdb"
		                                : lock_unfilled ? "the disk has no room for its lock.mdb"
		                                                : "its lock.mdb cannot be written");
	return 0;
}

int store_refuse_lockless_readers(const char *path)
{
	char file[4200], who[512];
	if ((size_t)snprintf(file, sizeof(file), "%s/data.mdb", path) >= sizeof(file))
		return store_error(-ENAMETOOLONG, "%s: path too long", path);
	if (store_flock_readers(who, sizeof(who), file) == 0)
		return 0;
	return store_error(-EBUSY,
	                   "store %s is being read by %s without lock.mdb, so writing now could "
	                   "reuse pages it reads: wait for it to end, or give it a writable "
	                   "lock.mdb",
	                   path, who);
}

/* A writer needs data.mdb and lock.mdb writable, and the directory too where lock.mdb is
 * still to be created: name the first that is not, so that the user knows what to fix. */
static int check_writable(const char *path)
{
	char data[4200], lock[4200];
	struct stat st;
	if ((size_t)snprintf(data, sizeof(data), "%s/data.mdb", path) >= sizeof(data) ||
	    (size_t)snprintf(lock, sizeof(lock), "%s/lock.mdb", path) >= sizeof(lock))
		return store_error(-ENAMETOOLONG, "%s: path too long", path);
	/* no lock.mdb: LMDB creates it, so the directory must be writable */
	const char *need[2] = {data, stat(lock, &st) == 0 ? lock : path};
	for (size_t i = 0; i < 2; i++)
		if (access(need[i], W_OK) != 0) {
			int e = errno;
			return store_error(-e, "%s is not writable (%s)", need[i], strerror(e));
		}
	return 0;
}

/* CKPT_OPEN_TEST_PAUSE=FILE: the first open of this process creates FILE after its checks of
 * data.mdb and lock.mdb and waits (up to a minute) until FILE is removed before LMDB opens
 * them, so that a test can replace them there. */
static void open_test_pause(void)
{
	static atomic_bool paused;
	const char *file = getenv("CKPT_OPEN_TEST_PAUSE");
	if (!file || !*file || atomic_exchange(&paused, true))
		return;
	int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	close(fd);
	for (int i = 0; i < 6000 && access(file, F_OK) == 0; i++)
		usleep(10000);
}

/* The data file LMDB opened (by path, following links) must be the regular file data.mdb that
 * was checked before (@p before, NULL when there was none) and that is there now: not a file
 * a link put in its place meanwhile. */
static int check_mapped_file(ckpt_store *s, const struct stat *before)
{
	char file[4200];
	struct stat mapped, now;
	int fd;
	snprintf(file, sizeof(file), "%s/data.mdb", s->path);
	if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &mapped) != 0 || lstat(file, &now) != 0 ||
	    !S_ISREG(now.st_mode) || now.st_dev != mapped.st_dev || now.st_ino != mapped.st_ino ||
	    (before && (before->st_dev != mapped.st_dev || before->st_ino != mapped.st_ino)))
		return store_error(CKPT_ENOTSTORE,
		                   "%s: not a ckpt store (data.mdb was replaced while it was "
		                   "opened: the file opened is not the regular file checked)",
		                   s->path);
	return 0;
}

static int open_once(ckpt_store **out, const char *path, unsigned flags, bool *no_files)
{
	*out = NULL;
	*no_files = false;
	struct stat st;
	if (!path || !*path)
		return store_error(-EINVAL, "store path is empty");
	if (stat(path, &st) != 0) {
		int e = errno;
		*no_files = e == ENOENT || e == ENOTDIR;
		return store_error(-e, "%s: %s", path, strerror(e));
	}
	*no_files = !S_ISDIR(st.st_mode);
	if (*no_files)
		return store_error(CKPT_ENOTSTORE, "%s: not a ckpt store (not a directory)", path);
	int rc = check_data_file(path, no_files);
	if (rc)
		return rc;
	char data[4200];
	struct stat data_st;
	snprintf(data, sizeof(data), "%s/data.mdb", path);
	bool had_data = lstat(data, &data_st) == 0;
	open_test_pause();
	bool readonly = flags & CKPT_OPEN_READONLY;
	/* before LMDB creates a lock.mdb that the refused open would leave behind */
	if (!readonly && ((rc = check_writable(path)) || (rc = store_refuse_lockless_readers(path))))
		return rc;
	ckpt_store *s = store_alloc(path);
	if (!s)
		return store_error(-ENOMEM, "out of memory");
	s->readonly = readonly;
	int mrc;
	MDB_txn *txn = NULL;
	if ((rc = open_store_claim(s)))
		goto fail;
	if (readonly) {
		if ((rc = open_readonly_env(s)))
			goto fail;
	} else if ((mrc = env_open(s, MDB_NOTLS, 0))) {
		rc = store_lmdb_error(mrc, "%s: opening the LMDB environment", path);
		goto fail;
	}
	if ((rc = check_mapped_file(s, had_data ? &data_st : NULL)))
		goto fail;
	store_map_locate(&s->map, s->env);
	/* slots left by readers that ended, before this open takes one of its own */
	if ((rc = clear_dead_readers(s)) || (rc = check_lock_belongs(s->env, path)))
		goto fail;
	if ((mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))) {
		rc = store_lmdb_error(mrc, "%s: reading the store", path);
		goto fail;
	}
	/* LMDB writes on trust what it reads: a writer checks every page of the newest commit
	 * first. A reader checks what LMDB follows to find a record (a damaged page header or node
	 * offset made it read wild pointers and crash) and relies on store_get()'s checks for the
	 * values. The read txn keeps the pages that commit, or a newer one the walk finds, uses
	 * from being reused by a writer meanwhile. */
	if ((rc = store_check_pages(path, readonly ? STORE_WALK_READ : STORE_WALK_FULL)))
		goto fail;
	if ((rc = open_dbis(s, txn, 0)) || (rc = load_meta(s, txn)))
		goto fail;
	mrc = mdb_txn_commit(txn); /* keeps the dbi handles */
	txn = NULL;
	if (mrc) {
		rc = store_lmdb_error(mrc, "%s: reading the store", path);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	/* a directory that is no store of ours (or a damaged one) is refused as it was found:
	 * without the lock.mdb this open made (-ENOENT: a store removed while it opened) */
	bool drop_lock = s->lock_created && (rc == CKPT_ENOTSTORE || rc == CKPT_ESCHEMA ||
	                                     rc == CKPT_ECORRUPT || rc == -ENOENT);
	store_free(s);
	if (drop_lock) /* unless a reader opened the store meanwhile */
		ckpt_drop_unused_lock_file(path);
	return rc;
}

/* The device and inode of @p path's data.mdb (by its name), or of the file @p s has mapped;
 * false when they cannot be read. */
static bool data_file_id(struct stat *out, const char *path, const ckpt_store *s)
{
	char file[4200];
	int fd;
	if (s)
		return mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, out) == 0;
	return (size_t)snprintf(file, sizeof(file), "%s/data.mdb", path) < sizeof(file) &&
	       stat(file, out) == 0;
}

/* `ckpt gc --compact` renames a compacted copy over data.mdb (store/compact.c). A read-only
 * open opens data.mdb before it waits in LMDB for the compaction's lock, so it may map the old
 * file once that lock is released: the compaction clears the old file's header, which makes
 * such an open fail, and a hard-linked old file would be mapped without an error. Either way
 * data.mdb is another file by then: open that one, as if the open had started after the
 * compaction. */
static int open_current(ckpt_store **out, const char *path, unsigned flags, bool *no_files)
{
	for (int attempt = 0;; attempt++) {
		struct stat before, mapped, now;
		bool known = path && *path && data_file_id(&before, path, NULL);
		int rc = open_once(out, path, flags, no_files);
		bool replaced =
		    known && data_file_id(&now, path, NULL) &&
		    (rc ? now.st_ino != before.st_ino || now.st_dev != before.st_dev
		        : data_file_id(&mapped, path, *out) &&
		              (now.st_ino != mapped.st_ino || now.st_dev != mapped.st_dev));
		if (!replaced || attempt == 8) /* 8 compactions in a row: give up */
			return rc;
		if (rc == 0) {
			ckpt_store_close(*out);
			*out = NULL;
		}
	}
}

/* Whether an open that returned @p rc (open_current()) found no store but part of one */
static bool failed_on_part(int rc, bool no_files)
{
	return (rc == CKPT_ENOTSTORE || rc == -ENOENT) && !no_files;
}

/* A create holds the store directory's flock exclusively from before its first file until the
 * store is whole, and the removal of a store that a failed run made (ckpt_store_discard())
 * from its first unlink to its rmdir: a reader that looks meanwhile finds part of an
 * environment, or files vanishing under it. A read-only open that fails having seen part of a
 * store waits for that lock (shared: other readers and ckpt-train's ckpt_writer_lock() share
 * it) and opens once more holding it, which no create or removal can then be in the middle of:
 * it sees the whole store or none, and says which for a true reason. Opens that succeed, and
 * those that find no directory or one without data.mdb and lock.mdb (where every create
 * starts, and every removal ends), never look at the lock: readers polling for a store to
 * appear never hold up its create, and one that finds part of a store holds the lock for that
 * second open only. */
static int open_as_owner(ckpt_store **out, const char *path, unsigned flags);

int ckpt_store_open(ckpt_store **out, const char *path, unsigned flags)
{
	if (!out)
		return store_error(-EINVAL, "ckpt_store_open: no place for the handle (out is NULL)");
	*out = NULL;
	if (flags & ~CKPT_OPEN_READONLY)
		return store_error(-EINVAL, "%s: unknown open flags 0x%x", path ? path : "(null)",
		                   flags & ~CKPT_OPEN_READONLY);
	store_owner owner;
	int rc = store_owner_enter(&owner, path);
	if (rc)
		return rc;
	rc = open_as_owner(out, path, flags);
	return store_owner_leave(&owner, rc, path);
}

static int open_as_owner(ckpt_store **out, const char *path, unsigned flags)
{
	bool no_files;
	int rc = open_current(out, path, flags, &no_files);
	for (int round = 0;
	     (flags & CKPT_OPEN_READONLY) && failed_on_part(rc, no_files) && round < 100; round++) {
		int dir_lock;
		char who[512];
		int locked = store_dir_lock_wait(&dir_lock, path, who, sizeof(who));
		if (locked == -EWOULDBLOCK)
			return store_error(-EBUSY,
			                   "%s: not a ckpt store yet: it is being created by %s, which "
			                   "has held the directory's lock for a minute; try again when it "
			                   "is done",
			                   path, who[0] ? who : "another process");
		rc = open_current(out, path, flags, &no_files);
		if (dir_lock >= 0)
			close(dir_lock);
		/* only a directory removed before it could be locked is looked into again: another
		 * create may have made a new one, which this open saw part of without the lock */
		if (locked != -ENOENT)
			break;
	}
	return rc;
}

void ckpt_store_close(ckpt_store *store)
{
	if (!store)
		return;
	/* LMDB would unmap under the snapshots' pointers: a store closed with snapshots open is
	 * closed by the last of them (a wrong call order, which must not end the process) */
	pthread_mutex_lock(&store->lock);
	bool later = store->open_snapshots > 0;
	store->close_pending = later;
	pthread_mutex_unlock(&store->lock);
	if (!later)
		store_free(store);
}

const ckpt_run_meta *ckpt_store_meta(const ckpt_store *store)
{
	if (!store)
		return NULL;
	return &store->meta;
}

const char *ckpt_store_path(const ckpt_store *store)
{
	if (!store)
		return NULL;
	return store->path;
}

uint64_t ckpt_store_chunk_size(const ckpt_store *store)
{
	if (!store)
		return 0;
	return store->settings.chunk_size;
}

void store_set_retention(ckpt_store *s, uint32_t keep_last, uint32_t keep_top)
{
	pthread_mutex_lock(&s->lock);
	s->settings.keep_last = keep_last;
	s->settings.keep_top = keep_top;
	pthread_mutex_unlock(&s->lock);
}

/* Another process (ckpt gc --keep-last N) may have persisted new settings since this handle
 * read them: the stored record is the truth; the handle's copy only stands in where it cannot
 * be read. */
void ckpt_store_retention(const ckpt_store *store, uint32_t *keep_last, uint32_t *keep_top)
{
	if (!store) {
		if (keep_last)
			*keep_last = 0;
		if (keep_top)
			*keep_top = 0;
		return;
	}
	ckpt_store *s = (ckpt_store *)store; /* its lock and a read txn; nothing it shows changes */
	MDB_txn *txn;
	pthread_mutex_lock(&s->lock);
	store_settings_rec set = s->settings;
	if (begin_txn_locked(s, &txn, MDB_RDONLY) == 0) {
		store_settings_rec stored;
		if (store_read_settings(&stored, s, txn) == 0) {
			set.keep_last = stored.keep_last;
			set.keep_top = stored.keep_top;
		}
		mdb_txn_abort(txn);
	}
	pthread_mutex_unlock(&s->lock);
	if (keep_last)
		*keep_last = set.keep_last;
	if (keep_top)
		*keep_top = set.keep_top;
}

static int gc_once(ckpt_store *s, uint32_t keep_last, uint32_t keep_top, uint32_t *deleted)
{
	MDB_txn *txn;
	int rc = store_write_txn(s, &txn);
	if (rc)
		return rc;
	store_settings_rec set = s->settings;
	set.keep_last = keep_last;
	set.keep_top = keep_top;
	uint8_t buf[STORE_SETTINGS_LEN];
	store_settings_encode(buf, &set);
	if ((rc = store_refuse_lockless_readers(s->path)) ||
	    (rc = put_meta(s, txn, "settings", buf, sizeof(buf))) ||
	    (rc = store_apply_retention(s, txn, keep_last, keep_top, NULL, deleted))) {
		mdb_txn_abort(txn);
		return rc;
	}
	int mrc = store_write_errno(s->path, mdb_txn_commit(txn), 0);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: committing gc", s->path);
	store_set_retention(s, keep_last, keep_top);
	return 0;
}

/* LMDB reuses a page freed by transaction T only from T+2 on: until T+1 has replaced it, the
 * meta page of T-1, whose tree still holds that page, stays valid. A commit right after a gc
 * that deleted checkpoints would find none of their pages reusable and, on a full disk, fail
 * with ENOSPC. One more small commit (the settings record written again, unchanged) lets the
 * next one reuse them. A crash before it commits loses nothing but that reuse, for one commit.
 * Its cost: one small commit (and its fsync) per gc that deleted anything. */
int store_touch_commit(ckpt_store *s, int *mdb_rc)
{
	*mdb_rc = 0;
	MDB_txn *txn;
	int rc = store_write_txn(s, &txn);
	if (rc)
		return rc;
	/* the settings record as stored (another process may have changed it), written again */
	MDB_val key = {8, "settings"}, val;
	uint8_t buf[64];
	int mrc = store_get(s, txn, s->db_meta, &key, &val);
	if (mrc == 0 && val.mv_size <= sizeof(buf)) {
		memcpy(buf, val.mv_data, val.mv_size);
		rc = put_meta(s, txn, "settings", buf, val.mv_size);
	} else {
		rc = mrc ? store_lmdb_error(mrc, "store %s: reading the settings", s->path)
		         : store_error(CKPT_ECORRUPT, "store %s: settings record of %zu bytes",
		                       s->path, val.mv_size);
	}
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	*mdb_rc = store_write_errno(s->path, mdb_txn_commit(txn), 0);
	return *mdb_rc ? store_lmdb_error(*mdb_rc, "store %s: an empty commit", s->path) : 0;
}

static int release_freed_pages(ckpt_store *s, uint32_t deleted)
{
	int mrc;
	int rc = store_touch_commit(s, &mrc);
	if (rc && !mrc)
		return rc;
	if (mrc && deleted == 0) /* ckpt_store_repair_refs() freed blobs */
		return store_lmdb_error(mrc,
		                        "store %s: gc freed blobs no checkpoint references, but the "
		                        "commit that makes their pages reusable failed",
		                        s->path);
	if (mrc)
		return store_lmdb_error(mrc,
		                        "store %s: gc deleted %u checkpoint%s, but the commit that "
		                        "makes their pages reusable failed",
		                        s->path, deleted, deleted == 1 ? "" : "s");
	return 0;
}

/* A read transaction of the store's own (gc's looks before it writes). */
static int read_txn(ckpt_store *s, MDB_txn **txn)
{
	pthread_mutex_lock(&s->lock);
	int rc = begin_txn_locked(s, txn, MDB_RDONLY);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int count_checkpoints(ckpt_store *s, uint32_t *out)
{
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_stat st;
	int mrc = mdb_stat(txn, s->db_index, &st);
	mdb_txn_abort(txn);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: index", s->path);
	*out = st.ms_entries > UINT32_MAX ? UINT32_MAX : (uint32_t)st.ms_entries;
	return 0;
}

/* A gc on a full disk (ENOSPC): deleting many checkpoints in one transaction needs new pages,
 * as LMDB copies every page it changes and records every page it frees, and the disk has none.
 * Deleting them oldest first, a few at a time, needs fewer, and each step's freed pages serve
 * the next (release_freed_pages): a keep-last above the one asked for, lowered step by step
 * (each step deletes a subset of what the whole gc deletes); a step that succeeds doubles the
 * next one, one that fails halves it, down to a single checkpoint. A crash in between leaves a
 * store that keeps more than asked, with that step's keep-last stored. */
static int gc_in_steps(ckpt_store *s, uint32_t keep_last, uint32_t keep_top, uint32_t *deleted)
{
	uint32_t l = 0;
	int rc = count_checkpoints(s, &l);
	if (rc)
		return rc;
	if (l <= keep_last)
		return -ENOSPC; /* nothing to delete: only the settings could not be written */
	uint32_t step = 1;
	bool reserve_used = false;
	while (l > keep_last) {
		uint32_t target = l - keep_last > step ? l - step : keep_last;
		uint32_t d = 0;
		rc = gc_once(s, target, keep_top, &d);
		if (rc == -ENOSPC && step > 1) {
			step /= 2;
			continue;
		}
		/* not even one checkpoint: its commit needs a few pages the disk does not have;
		 * lock.mdb's reserve gives them, and the steps after it reuse what it frees */
		if (rc == -ENOSPC && !reserve_used && store_release_lock_reserve(s->path)) {
			reserve_used = true;
			continue;
		}
		if (rc) {
			if (reserve_used)
				store_restore_lock_reserve(s->path);
			return rc;
		}
		*deleted += d;
		if (d && (rc = release_freed_pages(s, d)))
			return rc;
		l = target;
		if (step < UINT32_MAX / 2)
			step *= 2;
	}
	if (reserve_used)
		store_restore_lock_reserve(s->path);
	return 0;
}

/* Retention counts the index records and deletes checkpoint records by their keys: a key
 * damaged in either (one without the other, or past CKPT_MAX_EPOCH) would make it keep the
 * wrong "newest" and delete the newest readable checkpoint. Such a store is not collected.
 * @return 0, or CKPT_ECORRUPT naming the first such epoch. */
static int check_keys_agree(ckpt_store *s)
{
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_cursor *ck = NULL, *ix = NULL;
	int mrc = mdb_cursor_open(txn, s->db_ckpt, &ck);
	if (!mrc)
		mrc = mdb_cursor_open(txn, s->db_index, &ix);
	MDB_val k1, k2;
	int r1 = mrc ? mrc : store_cursor_get(s, ck, &k1, NULL, MDB_FIRST);
	int r2 = mrc ? mrc : store_cursor_get(s, ix, &k2, NULL, MDB_FIRST);
	while (!rc && !mrc && (r1 == 0 || r2 == 0)) {
		if ((r1 && r1 != MDB_NOTFOUND) || (r2 && r2 != MDB_NOTFOUND)) {
			mrc = r1 && r1 != MDB_NOTFOUND ? r1 : r2;
			break;
		}
		uint64_t e1 = r1 == 0 && k1.mv_size == 8 ? store_epoch_from_key(&k1) : UINT64_MAX;
		uint64_t e2 = r2 == 0 && k2.mv_size == 8 ? store_epoch_from_key(&k2) : UINT64_MAX;
		const char *what = NULL;
		uint64_t e = e1 < e2 ? e1 : e2;
		if ((r1 == 0 && k1.mv_size != 8) || (r2 == 0 && k2.mv_size != 8))
			what = "a key that is no epoch";
		else if (e > CKPT_MAX_EPOCH)
			what = "a key past the last epoch a store holds (2^39 - 1)";
		else if (e1 != e2)
			what = e1 < e2 ? "a checkpoint record without an index record"
			               : "an index record without a checkpoint record";
		if (what) {
			rc = store_error(CKPT_ECORRUPT,
			                 "store %s: epoch %llu has %s: a damaged key, so gc would keep "
			                 "or delete the wrong checkpoints; nothing is deleted (ckpt "
			                 "verify names the damage)",
			                 s->path, (unsigned long long)e, what);
			break;
		}
		r1 = store_cursor_get(s, ck, &k1, NULL, MDB_NEXT);
		r2 = store_cursor_get(s, ix, &k2, NULL, MDB_NEXT);
	}
	if (ck)
		mdb_cursor_close(ck);
	if (ix)
		mdb_cursor_close(ix);
	mdb_txn_abort(txn);
	if (!rc && mrc)
		rc = store_lmdb_error(mrc, "store %s: reading the keys", s->path);
	return rc;
}

/* ckpt_store_repair_refs() once: @p out set when it committed */
static int repair_refs_once(ckpt_store *s, ckpt_refs_repair *out)
{
	MDB_txn *txn;
	int rc = store_write_txn(s, &txn);
	if (rc)
		return rc;
	store_refs_result r;
	if ((rc = store_refs_check(&r, s, txn))) {
		mdb_txn_abort(txn);
		return rc;
	}
	ckpt_refs_repair done;
	rc = store_refs_repair(s, txn, &r, &done);
	store_refs_free(&r);
	if (rc || (done.blobs | done.chunks | done.counts) == 0) {
		mdb_txn_abort(txn); /* nothing to write: no commit */
		return rc;
	}
	int mrc = store_write_errno(s->path, mdb_txn_commit(txn), 0);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: committing the repaired reference counts",
		                        s->path);
	*out = done;
	return 0;
}

int ckpt_store_repair_refs(ckpt_store *store, ckpt_refs_repair *out)
{
	STORE_NEED(store, "ckpt_store_repair_refs");
	ckpt_refs_repair done = {0};
	if (out)
		*out = done;
	if (store->readonly)
		return store_error(-EROFS, "store %s: opened read-only", store->path);
	int rc;
	pthread_mutex_lock(&store->write_lock);
	for (int attempt = 0;; attempt++) {
		rc = repair_refs_once(store, &done);
		if (rc != STORE_EMAPFULL || attempt == 5)
			break;
		uint64_t used, size;
		store_map_usage(store, &used, &size);
		if ((rc = store_grow_map(store, size * 2)))
			break;
	}
	if (rc == 0 && (done.blobs || done.chunks))
		rc = release_freed_pages(store, 0);
	pthread_mutex_unlock(&store->write_lock);
	if (rc == STORE_EMAPFULL)
		rc = -ENOSPC;
	if (out)
		*out = done;
	return rc;
}

int ckpt_store_gc(ckpt_store *store, uint32_t keep_last, uint32_t keep_top, uint32_t *out_deleted)
{
	STORE_NEED(store, "ckpt_store_gc");
	uint32_t deleted = 0;
	if (out_deleted)
		*out_deleted = 0;
	if (store->readonly)
		return store_error(-EROFS, "store %s: opened read-only", store->path);
	if (keep_top > 0 && keep_last == 0) /* as ckpt_store_create() and ckpt gc refuse it */
		return store_error(-EINVAL,
		                   "store %s: keep_top %u has no effect with keep_last 0 (every "
		                   "checkpoint is kept)",
		                   store->path, keep_top);
	int rc = check_keys_agree(store);
	if (rc)
		return rc;
	rc = -ENOSPC;
	pthread_mutex_lock(&store->write_lock);
	bool collected = false;
	uint32_t stepped = 0; /* deleted by committed steps (gc_in_steps), over every attempt */
	for (int attempt = 0; attempt < 6; attempt++) {
		if (!collected) {
			rc = gc_once(store, keep_last, keep_top, &deleted);
			if (rc == -ENOSPC && keep_last > 0) {
				deleted = 0;
				rc = gc_in_steps(store, keep_last, keep_top, &stepped);
				if (rc == 0)
					break; /* each step has released its pages */
			}
			collected = rc == 0;
		}
		if (collected && deleted)
			rc = release_freed_pages(store, deleted);
		if (rc != STORE_EMAPFULL)
			break;
		uint64_t used, size;
		store_map_usage(store, &used, &size);
		rc = store_grow_map(store, size * 2);
		if (rc)
			break;
		rc = STORE_EMAPFULL;
	}
	pthread_mutex_unlock(&store->write_lock);
	if (rc == STORE_EMAPFULL)
		rc = -ENOSPC;
	if (out_deleted) /* also on an error: the steps before it are committed */
		*out_deleted = deleted + stepped;
	return rc;
}
