/* store/reader.c - read snapshots: listing, best/top-k, checkpoint records, tensor bytes
 *
 * Invariants: a snapshot is one LMDB read transaction; decoded checkpoint records are cached
 * in the snapshot and freed with it; tensor bytes are returned as pointers into the LMDB map
 * (valid until the snapshot closes). Chunk lookups need only the public ckpt_tensor_info (its
 * content hash, chunk size and count), so a caller's copy of an info works as well.
 * A snapshot may be used by several threads at once: every use of its LMDB transaction and of
 * its record cache is under its own mutex, which is never held while bytes are CRC-checked or
 * copied, so readers of different tensors of one snapshot run in parallel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zlib.h>

#include "store/store_int.h"

struct ckpt_checkpoint {
	store_ckpt_rec *rec;
	bool is_best;
};

struct ckpt_snapshot {
	ckpt_store *store;
	pthread_mutex_t lock; /* the transaction and the cache */
	MDB_txn *txn;
	bool has_best;
	uint64_t best;
	int best_rc;        /* CKPT_ECORRUPT when the best record is damaged and no rebuild worked */
	bool best_damaged;  /* the best record is damaged (best then rebuilt from the index) */
	char best_why[200]; /* then the reason */
	ckpt_checkpoint **cache;
	size_t ncache, cache_cap;
};

int ckpt_snapshot_open(ckpt_snapshot **out, ckpt_store *store)
{
	if (!out || !store)
		return store_error(-EINVAL, "ckpt_snapshot_open: %s is NULL", out ? "store" : "out");
	*out = NULL;
	ckpt_snapshot *snap = calloc(1, sizeof(*snap));
	if (!snap)
		return store_error(-ENOMEM, "out of memory");
	snap->store = store;
	if (pthread_mutex_init(&snap->lock, NULL) != 0) {
		free(snap);
		return store_error(-ENOMEM, "out of memory");
	}
	int rc = store_snapshot_txn(store, &snap->txn);
	if (rc) {
		pthread_mutex_destroy(&snap->lock);
		free(snap);
		return rc;
	}
	MDB_val key = {4, "best"}, val;
	int mrc = store_get(store, snap->txn, store->db_meta, &key, &val);
	store_best_rec best;
	if (mrc == STORE_EOUTSIDE) {
		snap->best_rc = CKPT_ECORRUPT;
		snprintf(snap->best_why, sizeof(snap->best_why), "it lies outside data.mdb");
		mrc = 0;
	} else if (mrc == 0) {
		snap->best_rc = store_best_decode(&best, val.mv_data, val.mv_size, snap->best_why,
		                                  sizeof(snap->best_why));
	}
	if (mrc == 0) {
		/* a damaged best record fails only the questions about the best checkpoint */
		if (snap->best_rc == 0) {
			/* a version 1 best record has no CRC-32, but must name a stored epoch (whose
			 * index record, read or not, is there: outside data.mdb is for its reader) */
			uint8_t k[8];
			store_epoch_key(k, best.epoch);
			MDB_val ekey = {8, k}, eval;
			mrc = store_get(store, snap->txn, store->db_index, &ekey, &eval);
			if (mrc == STORE_EOUTSIDE)
				mrc = 0;
			if (mrc == MDB_NOTFOUND) {
				snap->best_rc = CKPT_ECORRUPT;
				snprintf(snap->best_why, sizeof(snap->best_why),
				         "it names epoch %llu, which is not stored",
				         (unsigned long long)best.epoch);
				mrc = 0;
			}
		}
		snap->has_best = snap->best_rc == 0;
		snap->best = snap->has_best ? best.epoch : 0;
		if (snap->best_rc) {
			/* rebuilt from the index records, as a commit would: the mount, ckpt info and
			 * --resume best answer right; ckpt_snapshot_check_best() names the damage */
			uint64_t e;
			size_t n;
			snap->best_damaged = true;
			if (store_top_k(store, snap->txn, &e, 1, &n) == 0) {
				snap->best_rc = 0;
				snap->has_best = n > 0;
				snap->best = n > 0 ? e : 0;
			}
		}
	}
	if (mrc != 0 && mrc != MDB_NOTFOUND) {
		/* the message first: the store may close with its last snapshot */
		rc = store_lmdb_error(mrc, "store %s: reading the best epoch", store->path);
		mdb_txn_abort(snap->txn);
		store_snapshot_done(store);
		pthread_mutex_destroy(&snap->lock);
		free(snap);
		return rc;
	}
	*out = snap;
	return 0;
}

void ckpt_snapshot_close(ckpt_snapshot *snap)
{
	if (!snap)
		return;
	for (size_t i = 0; i < snap->ncache; i++) {
		store_ckpt_free(snap->cache[i]->rec);
		free(snap->cache[i]);
	}
	free(snap->cache);
	/* a child after fork(): the parent's read transaction holds a slot in the lock table that
	 * the parent still uses; aborting it here would free the parent's snapshot's pages */
	if (!store_forked(snap->store))
		mdb_txn_abort(snap->txn);
	store_snapshot_done(snap->store);
	pthread_mutex_destroy(&snap->lock);
	free(snap);
}

uint64_t ckpt_snapshot_generation(const ckpt_snapshot *snap)
{
	if (!snap)
		return 0;
	return (uint64_t)mdb_txn_id(snap->txn);
}

int ckpt_store_generation(uint64_t *out, ckpt_store *store)
{
	STORE_NEED(out, "ckpt_store_generation");
	STORE_NEED(store, "ckpt_store_generation");
	int rc = store_check_process(store);
	if (rc)
		return rc;
	MDB_envinfo info;
	int mrc = mdb_env_info(store->env, &info);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: reading its latest commit", store->path);
	*out = (uint64_t)info.me_last_txnid;
	return 0;
}

static int list_locked(uint64_t **out, size_t *out_count, ckpt_snapshot *snap)
{
	ckpt_store *s = snap->store;
	*out = NULL;
	*out_count = 0;
	MDB_stat st;
	int mrc = mdb_stat(snap->txn, s->db_ckpt, &st);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: listing checkpoints", s->path);
	if (st.ms_entries == 0)
		return 0;
	uint64_t *e = malloc(st.ms_entries * sizeof(*e));
	if (!e)
		return store_error(-ENOMEM, "out of memory");
	MDB_cursor *cur;
	if ((mrc = mdb_cursor_open(snap->txn, s->db_ckpt, &cur))) {
		free(e);
		return store_lmdb_error(mrc, "store %s: listing checkpoints", s->path);
	}
	size_t n = 0;
	MDB_val key;
	for (mrc = store_cursor_get(s, cur, &key, NULL, MDB_FIRST); mrc == 0 && n < st.ms_entries;
	     mrc = store_cursor_get(s, cur, &key, NULL, MDB_NEXT)) {
		if (key.mv_size != 8) {
			mdb_cursor_close(cur);
			free(e);
			return store_error(CKPT_ECORRUPT, "store %s: checkpoint key of %zu bytes",
			                   s->path, key.mv_size);
		}
		e[n++] = store_epoch_from_key(&key);
	}
	mdb_cursor_close(cur);
	if (mrc && mrc != MDB_NOTFOUND) {
		free(e);
		return store_lmdb_error(mrc, "store %s: listing checkpoints", s->path);
	}
	*out = e;
	*out_count = n;
	return 0;
}

int ckpt_snapshot_list(uint64_t **out, size_t *out_count, ckpt_snapshot *snap)
{
	STORE_NEED(out, "ckpt_snapshot_list");
	STORE_NEED(out_count, "ckpt_snapshot_list");
	STORE_NEED(snap, "ckpt_snapshot_list");
	pthread_mutex_lock(&snap->lock);
	int rc = list_locked(out, out_count, snap);
	pthread_mutex_unlock(&snap->lock);
	return rc;
}

static int latest_locked(uint64_t *out, ckpt_snapshot *snap)
{
	ckpt_store *s = snap->store;
	MDB_cursor *cur;
	int mrc = mdb_cursor_open(snap->txn, s->db_ckpt, &cur);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: finding the latest checkpoint", s->path);
	/* a key past CKPT_MAX_EPOCH (no version writes one: a damaged key) is not the latest: the
	 * newest epoch below it is, for every command and the mount alike */
	MDB_val key;
	mrc = store_cursor_get(s, cur, &key, NULL, MDB_LAST);
	while (mrc == 0 && key.mv_size == 8 && store_epoch_from_key(&key) > CKPT_MAX_EPOCH)
		mrc = store_cursor_get(s, cur, &key, NULL, MDB_PREV);
	mdb_cursor_close(cur);
	if (mrc == MDB_NOTFOUND)
		return store_error(-ENOENT, "store %s: no checkpoint stored", s->path);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: finding the latest checkpoint", s->path);
	if (key.mv_size != 8)
		return store_error(CKPT_ECORRUPT, "store %s: checkpoint key of %zu bytes", s->path,
		                   key.mv_size);
	*out = store_epoch_from_key(&key);
	return 0;
}

int ckpt_snapshot_latest(uint64_t *out, ckpt_snapshot *snap)
{
	STORE_NEED(out, "ckpt_snapshot_latest");
	STORE_NEED(snap, "ckpt_snapshot_latest");
	pthread_mutex_lock(&snap->lock);
	int rc = latest_locked(out, snap);
	pthread_mutex_unlock(&snap->lock);
	return rc;
}

/* The newest commit time over the index records (44 bytes each: a store of 10,000 checkpoints
 * scans in about a millisecond); a damaged index record is read from its checkpoint record. */
typedef struct newest_scan {
	bool any;
	int64_t newest;
} newest_scan;

static int newest_one(void *arg, uint64_t epoch, const store_index_rec *ir)
{
	(void)epoch;
	newest_scan *x = arg;
	if (!x->any || ir->time_ns > x->newest)
		x->newest = ir->time_ns;
	x->any = true;
	return 0;
}

int ckpt_snapshot_newest_time(int64_t *out, ckpt_snapshot *snap)
{
	STORE_NEED(out, "ckpt_snapshot_newest_time");
	STORE_NEED(snap, "ckpt_snapshot_newest_time");
	newest_scan x = {0};
	pthread_mutex_lock(&snap->lock);
	int rc = store_index_each(snap->store, snap->txn, newest_one, &x);
	pthread_mutex_unlock(&snap->lock);
	if (rc)
		return rc;
	if (!x.any)
		return store_error(-ENOENT, "store %s: no checkpoint", snap->store->path);
	*out = x.newest;
	return 0;
}

int ckpt_snapshot_best(uint64_t *out, ckpt_snapshot *snap)
{
	STORE_NEED(out, "ckpt_snapshot_best");
	STORE_NEED(snap, "ckpt_snapshot_best");
	if (snap->best_rc)
		return store_error(snap->best_rc, "store %s: corrupt best record: %s",
		                   snap->store->path, snap->best_why);
	if (!snap->has_best)
		return store_error(-ENOENT, "store %s: no checkpoint has a finite '%s'",
		                   snap->store->path, snap->store->meta.monitor);
	*out = snap->best;
	return 0;
}

int ckpt_snapshot_check_best(ckpt_snapshot *snap)
{
	STORE_NEED(snap, "ckpt_snapshot_check_best");
	if (snap->best_damaged)
		return store_error(CKPT_ECORRUPT, "store %s: corrupt best record: %s",
		                   snap->store->path, snap->best_why);
	return 0;
}

int ckpt_snapshot_top_k(uint64_t *out, size_t cap, size_t *out_count, ckpt_snapshot *snap)
{
	if (cap)
		STORE_NEED(out, "ckpt_snapshot_top_k");
	STORE_NEED(out_count, "ckpt_snapshot_top_k");
	STORE_NEED(snap, "ckpt_snapshot_top_k");
	*out_count = 0;
	pthread_mutex_lock(&snap->lock);
	int rc = store_top_k(snap->store, snap->txn, out, cap, out_count);
	pthread_mutex_unlock(&snap->lock);
	return rc;
}

static int stats_one(void *arg, uint64_t epoch, const store_index_rec *ir)
{
	(void)epoch;
	ckpt_store_stats *out = arg;
	out->checkpoints++;
	out->tensors += ir->ntensors;
	out->bytes += ir->nbytes;
	return 0;
}

static int stats_locked(ckpt_store_stats *out, ckpt_snapshot *snap)
{
	ckpt_store *s = snap->store;
	memset(out, 0, sizeof(*out));
	MDB_cursor *cur;
	MDB_val key, val;
	char why[200];
	int rc = store_index_each(s, snap->txn, stats_one, out);
	if (rc)
		return rc;
	int mrc;
	if ((mrc = mdb_cursor_open(snap->txn, s->db_blobs, &cur)))
		return store_lmdb_error(mrc, "store %s: stats", s->path);
	/* a damaged blob record is left out of stored_bytes and said, but the rest is counted:
	 * the caller shows what it can (the tensors using it fail on their own) */
	int damaged = 0;
	for (mrc = store_cursor_get(s, cur, &key, &val, MDB_FIRST); mrc == 0;
	     mrc = store_cursor_get(s, cur, &key, &val, MDB_NEXT)) {
		store_blob_rec b;
		if (store_blob_decode(&b, val.mv_data, val.mv_size, why, sizeof(why)) != 0) {
			if (!damaged) {
				const uint8_t *h = key.mv_data;
				damaged = key.mv_size >= 4
				              ? store_error(CKPT_ECORRUPT,
				                            "store %s: corrupt blob record %02x%02x%02x%02x...: "
				                            "%s (ckpt verify names the tensors using it)",
				                            s->path, h[0], h[1], h[2], h[3], why)
				              : store_error(CKPT_ECORRUPT, "store %s: corrupt blob record: %s",
				                            s->path, why);
			}
			continue;
		}
		out->stored_bytes += b.nbytes;
	}
	mdb_cursor_close(cur);
	if (mrc != MDB_NOTFOUND)
		return store_lmdb_error(mrc, "store %s: stats", s->path);
	MDB_stat st;
	if ((mrc = mdb_stat(snap->txn, s->db_chunks, &st)))
		return store_lmdb_error(mrc, "store %s: stats", s->path);
	out->chunks = st.ms_entries;
	MDB_envinfo info;
	mdb_env_info(s->env, &info);
	out->map_size = info.me_mapsize;
	return damaged;
}

int ckpt_snapshot_stats(ckpt_store_stats *out, ckpt_snapshot *snap)
{
	STORE_NEED(out, "ckpt_snapshot_stats");
	STORE_NEED(snap, "ckpt_snapshot_stats");
	pthread_mutex_lock(&snap->lock);
	int rc = stats_locked(out, snap);
	pthread_mutex_unlock(&snap->lock);
	return rc;
}

/* Index of the first cached record whose epoch is >= @p epoch (the cache is sorted by epoch,
 * so listing every checkpoint of a large store stays O(n log n)). */
static size_t cache_lower_bound(const ckpt_snapshot *snap, uint64_t epoch)
{
	size_t lo = 0, hi = snap->ncache;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (snap->cache[mid]->rec->epoch < epoch)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Insert @p c at its place in the cache unless another thread did so meanwhile (then that
 * record is used and @p c freed); under the lock. */
static int cache_insert_locked(const ckpt_checkpoint **out, ckpt_snapshot *snap, ckpt_checkpoint *c)
{
	uint64_t epoch = c->rec->epoch;
	size_t at = cache_lower_bound(snap, epoch);
	if (at < snap->ncache && snap->cache[at]->rec->epoch == epoch) {
		store_ckpt_free(c->rec);
		free(c);
		*out = snap->cache[at];
		return 0;
	}
	if (snap->ncache == snap->cache_cap) {
		size_t cap = snap->cache_cap ? snap->cache_cap * 2 : 8;
		ckpt_checkpoint **nc = realloc(snap->cache, cap * sizeof(*nc));
		if (!nc) {
			store_ckpt_free(c->rec);
			free(c);
			return store_error(-ENOMEM, "out of memory");
		}
		snap->cache = nc;
		snap->cache_cap = cap;
	}
	memmove(&snap->cache[at + 1], &snap->cache[at], (snap->ncache - at) * sizeof(*snap->cache));
	snap->cache[at] = c;
	snap->ncache++;
	*out = c;
	return 0;
}

/* The lookup and the cache are under the snapshot's lock; decoding the record is not, so that
 * threads sharing a snapshot (the mount's requests) decode different epochs in parallel. */
int ckpt_snapshot_checkpoint(const ckpt_checkpoint **out, ckpt_snapshot *snap, uint64_t epoch)
{
	STORE_NEED(out, "ckpt_snapshot_checkpoint");
	STORE_NEED(snap, "ckpt_snapshot_checkpoint");
	*out = NULL;
	pthread_mutex_lock(&snap->lock);
	size_t at = cache_lower_bound(snap, epoch);
	if (at < snap->ncache && snap->cache[at]->rec->epoch == epoch) {
		*out = snap->cache[at];
		pthread_mutex_unlock(&snap->lock);
		return 0;
	}
	const void *data;
	size_t len;
	int rc = store_get_checkpoint(&data, &len, snap->store, snap->txn, epoch);
	pthread_mutex_unlock(&snap->lock);
	if (rc)
		return rc;
	ckpt_checkpoint *c = calloc(1, sizeof(*c));
	if (!c)
		return store_error(-ENOMEM, "out of memory");
	rc = store_decode_checkpoint(&c->rec, snap->store, epoch, data, len);
	if (rc) {
		free(c);
		return rc;
	}
	c->is_best = snap->has_best && snap->best == epoch;
	pthread_mutex_lock(&snap->lock);
	rc = cache_insert_locked(out, snap, c);
	pthread_mutex_unlock(&snap->lock);
	return rc;
}

int ckpt_snapshot_check_records(ckpt_snapshot *snap, uint64_t epoch)
{
	STORE_NEED(snap, "ckpt_snapshot_check_records");
	ckpt_store *s = snap->store;
	const ckpt_checkpoint *c;
	int rc = ckpt_snapshot_checkpoint(&c, snap, epoch);
	if (rc)
		return rc;
	uint8_t k[8];
	store_epoch_key(k, epoch);
	MDB_val key = {8, k}, val;
	pthread_mutex_lock(&snap->lock);
	int mrc = store_get(s, snap->txn, s->db_index, &key, &val);
	pthread_mutex_unlock(&snap->lock);
	if (mrc == MDB_NOTFOUND)
		return store_error(CKPT_ECORRUPT, "store %s: epoch %llu: index record missing",
		                   s->path, (unsigned long long)epoch);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: epoch %llu: reading the index", s->path,
		                        (unsigned long long)epoch);
	store_index_rec ir;
	char why[200];
	if ((rc = store_index_decode(&ir, val.mv_data, val.mv_size, why, sizeof(why))))
		return store_error(rc, "store %s: epoch %llu: corrupt index record: %s", s->path,
		                   (unsigned long long)epoch, why);
	store_index_rec want = store_index_of_checkpoint(s, c->rec);
	if (ir.has_monitor != want.has_monitor || (ir.has_monitor && ir.monitor != want.monitor) ||
	    ir.step != want.step || ir.time_ns != want.time_ns || ir.nbytes != want.nbytes ||
	    ir.ntensors != want.ntensors)
		return store_error(CKPT_ECORRUPT,
		                   "store %s: epoch %llu: index record does not match the "
		                   "checkpoint record",
		                   s->path, (unsigned long long)epoch);
	return 0;
}

uint64_t ckpt_checkpoint_epoch(const ckpt_checkpoint *c)
{
	if (!c)
		return 0;
	return c->rec->epoch;
}

uint64_t ckpt_checkpoint_step(const ckpt_checkpoint *c)
{
	if (!c)
		return 0;
	return c->rec->step;
}

int64_t ckpt_checkpoint_time_ns(const ckpt_checkpoint *c)
{
	if (!c)
		return 0;
	return c->rec->time_ns;
}

bool ckpt_checkpoint_is_best(const ckpt_checkpoint *c)
{
	if (!c)
		return false;
	return c->is_best;
}

uint64_t ckpt_checkpoint_nbytes(const ckpt_checkpoint *c)
{
	if (!c)
		return 0;
	return c->rec->nbytes;
}

size_t ckpt_checkpoint_metric_count(const ckpt_checkpoint *c)
{
	if (!c)
		return 0;
	return c->rec->nmetrics;
}

int ckpt_checkpoint_metric_at(const ckpt_checkpoint *c, size_t i, const char **name, double *value)
{
	STORE_NEED(c, "ckpt_checkpoint_metric_at");
	if (i >= c->rec->nmetrics)
		return store_error(-ERANGE, "epoch %llu: metric %zu of %zu",
		                   (unsigned long long)c->rec->epoch, i, c->rec->nmetrics);
	if (name)
		*name = c->rec->metrics[i].name;
	if (value)
		*value = c->rec->metrics[i].value;
	return 0;
}

int ckpt_checkpoint_metric(const ckpt_checkpoint *c, const char *name, double *value)
{
	STORE_NEED(c, "ckpt_checkpoint_metric");
	STORE_NEED(name, "ckpt_checkpoint_metric");
	for (size_t i = 0; i < c->rec->nmetrics; i++) {
		if (strcmp(c->rec->metrics[i].name, name) == 0) {
			if (value)
				*value = c->rec->metrics[i].value;
			return 0;
		}
	}
	return store_error(-ENOENT, "epoch %llu: no metric '%s'", (unsigned long long)c->rec->epoch,
	                   name);
}

size_t ckpt_checkpoint_extra_count(const ckpt_checkpoint *c)
{
	if (!c)
		return 0;
	return c->rec->nextras;
}

int ckpt_checkpoint_extra_at(const ckpt_checkpoint *c, size_t i, const char **key,
                             const void **data, size_t *len)
{
	STORE_NEED(c, "ckpt_checkpoint_extra_at");
	if (i >= c->rec->nextras)
		return store_error(-ERANGE, "epoch %llu: extra %zu of %zu",
		                   (unsigned long long)c->rec->epoch, i, c->rec->nextras);
	if (key)
		*key = c->rec->extras[i].key;
	if (data)
		*data = c->rec->extras[i].data;
	if (len)
		*len = c->rec->extras[i].len;
	return 0;
}

int ckpt_checkpoint_extra(const ckpt_checkpoint *c, const char *key, const void **data, size_t *len)
{
	STORE_NEED(c, "ckpt_checkpoint_extra");
	STORE_NEED(key, "ckpt_checkpoint_extra");
	for (size_t i = 0; i < c->rec->nextras; i++)
		if (strcmp(c->rec->extras[i].key, key) == 0)
			return ckpt_checkpoint_extra_at(c, i, NULL, data, len);
	return store_error(-ENOENT, "epoch %llu: no extra '%s'", (unsigned long long)c->rec->epoch,
	                   key);
}

size_t ckpt_checkpoint_tensor_count(const ckpt_checkpoint *c)
{
	if (!c)
		return 0;
	return c->rec->ntensors;
}

const ckpt_tensor_info *ckpt_checkpoint_tensor_at(const ckpt_checkpoint *c, size_t i)
{
	if (!c)
		return NULL;
	return i < c->rec->ntensors ? &c->rec->tensors[i] : NULL;
}

int ckpt_checkpoint_find_tensor(const ckpt_tensor_info **out, const ckpt_checkpoint *c,
                                ckpt_tensor_group group, const char *name)
{
	STORE_NEED(out, "ckpt_checkpoint_find_tensor");
	STORE_NEED(c, "ckpt_checkpoint_find_tensor");
	STORE_NEED(name, "ckpt_checkpoint_find_tensor");
	for (size_t i = 0; i < c->rec->ntensors; i++) {
		const ckpt_tensor_info *t = &c->rec->tensors[i];
		if (t->group == group && strcmp(t->name, name) == 0) {
			*out = t;
			return 0;
		}
	}
	*out = NULL;
	return store_error(-ENOENT, "epoch %llu: no %s tensor '%s'",
	                   (unsigned long long)c->rec->epoch,
	                   group == CKPT_GROUP_OPTIMIZER ? "optimizer"
	                   : group == CKPT_GROUP_EXTRA   ? "extra"
	                                                 : "model",
	                   name);
}

/* the blob record of a tensor, decoded (crcs borrowed from the map) */
static int load_blob(store_blob_rec *out, ckpt_snapshot *snap, const ckpt_tensor_info *t)
{
	ckpt_store *s = snap->store;
	MDB_val key = {16, (void *)t->hash}, val;
	char why[200];
	pthread_mutex_lock(&snap->lock);
	int mrc = store_get(s, snap->txn, s->db_blobs, &key, &val);
	pthread_mutex_unlock(&snap->lock);
	if (mrc == MDB_NOTFOUND)
		return store_error(CKPT_ECORRUPT,
		                   "store %s: tensor %s: its stored bytes are missing", s->path,
		                   t->name);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: tensor %s", s->path, t->name);
	int rc = store_blob_decode(out, val.mv_data, val.mv_size, why, sizeof(why));
	if (rc)
		return store_error(rc, "store %s: tensor %s: corrupt blob record: %s", s->path,
		                   t->name, why);
	if (out->nbytes != t->nbytes || out->nchunks != t->nchunks ||
	    out->chunk_size != t->chunk_size)
		return store_error(CKPT_ECORRUPT,
		                   "store %s: tensor %s: blob record does not match "
		                   "the tensor (%llu bytes in %u chunks)",
		                   s->path, t->name, (unsigned long long)out->nbytes, out->nchunks);
	return 0;
}

static int get_chunk(const void **out, size_t *out_len, ckpt_snapshot *snap,
                     const ckpt_tensor_info *t, uint32_t i)
{
	ckpt_store *s = snap->store;
	uint8_t k[STORE_CHUNK_KEY_LEN];
	store_chunk_key(k, t->hash, i);
	MDB_val key = {sizeof(k), k}, val;
	pthread_mutex_lock(&snap->lock);
	int mrc = store_get(s, snap->txn, s->db_chunks, &key, &val);
	pthread_mutex_unlock(&snap->lock);
	if (mrc == MDB_NOTFOUND)
		return store_error(CKPT_ECORRUPT, "store %s: tensor %s: chunk %u is missing",
		                   s->path, t->name, i);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: tensor %s: chunk %u", s->path, t->name, i);
	uint64_t off = (uint64_t)i * t->chunk_size;
	uint64_t want = t->nbytes - off < t->chunk_size ? t->nbytes - off : t->chunk_size;
	if (val.mv_size != want)
		return store_error(CKPT_ECORRUPT,
		                   "store %s: tensor %s: chunk %u has %zu bytes, "
		                   "expected %llu",
		                   s->path, t->name, i, val.mv_size, (unsigned long long)want);
	*out = val.mv_data;
	*out_len = val.mv_size;
	return 0;
}

int ckpt_tensor_chunk(const void **out, size_t *out_len, ckpt_snapshot *snap,
                      const ckpt_tensor_info *t, uint32_t chunk_index, bool verify)
{
	STORE_NEED(out, "ckpt_tensor_chunk");
	STORE_NEED(out_len, "ckpt_tensor_chunk");
	STORE_NEED(snap, "ckpt_tensor_chunk");
	STORE_NEED(t, "ckpt_tensor_chunk");
	if (chunk_index >= t->nchunks)
		return store_error(-ERANGE, "store %s: tensor %s: chunk %u of %u",
		                   snap->store->path, t->name, chunk_index, t->nchunks);
	int rc = get_chunk(out, out_len, snap, t, chunk_index);
	if (rc || !verify)
		return rc;
	store_blob_rec b;
	if ((rc = load_blob(&b, snap, t)))
		return rc;
	uint32_t crc = ckpt_crc32(0, *out, *out_len);
	if (crc != store_blob_crc(&b, chunk_index))
		return store_error(CKPT_ECHECKSUM,
		                   "store %s: tensor %s: chunk %u fails its CRC-32 "
		                   "(0x%08x, stored 0x%08x)",
		                   snap->store->path, t->name, chunk_index, crc,
		                   store_blob_crc(&b, chunk_index));
	return 0;
}

int ckpt_tensor_read(void *buf, ckpt_snapshot *snap, const ckpt_tensor_info *t, uint64_t offset,
                     size_t len)
{
	if (len)
		STORE_NEED(buf, "ckpt_tensor_read");
	STORE_NEED(snap, "ckpt_tensor_read");
	STORE_NEED(t, "ckpt_tensor_read");
	if (offset > t->nbytes || len > t->nbytes - offset)
		return store_error(-ERANGE,
		                   "store %s: tensor %s: read of %zu bytes at %llu past "
		                   "its %llu bytes",
		                   snap->store->path, t->name, len, (unsigned long long)offset,
		                   (unsigned long long)t->nbytes);
	uint8_t *dst = buf;
	while (len > 0) {
		uint32_t i = (uint32_t)(offset / t->chunk_size);
		uint64_t in = offset - (uint64_t)i * t->chunk_size;
		const void *data;
		size_t clen;
		int rc = get_chunk(&data, &clen, snap, t, i);
		if (rc)
			return rc;
		size_t n = clen - in < len ? (size_t)(clen - in) : len;
		memcpy(dst, (const uint8_t *)data + in, n);
		dst += n;
		offset += n;
		len -= n;
	}
	return 0;
}

int ckpt_tensor_verify(ckpt_snapshot *snap, const ckpt_tensor_info *t)
{
	STORE_NEED(snap, "ckpt_tensor_verify");
	STORE_NEED(t, "ckpt_tensor_verify");
	ckpt_store *s = snap->store;
	store_blob_rec b;
	int rc = load_blob(&b, snap, t);
	if (rc)
		return rc;
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return store_error(-ENOMEM, "out of memory");
	XXH3_128bits_reset(st);
	uint32_t crc = 0;
	for (uint32_t i = 0; i < t->nchunks; i++) {
		const void *data;
		size_t len;
		if ((rc = get_chunk(&data, &len, snap, t, i)))
			goto out;
		uint32_t c = ckpt_crc32(0, data, len);
		if (c != store_blob_crc(&b, i)) {
			rc = store_error(CKPT_ECHECKSUM,
			                 "store %s: tensor %s: chunk %u fails its "
			                 "CRC-32",
			                 s->path, t->name, i);
			goto out;
		}
		crc = i == 0 ? c : (uint32_t)crc32_combine(crc, c, (z_off_t)len);
		XXH3_128bits_update(st, data, len);
	}
	XXH128_canonical_t canon;
	XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(st));
	if (crc != t->crc32 || memcmp(canon.digest, t->hash, 16) != 0)
		rc = store_error(CKPT_ECHECKSUM,
		                 "store %s: tensor %s: bytes do not match the "
		                 "stored CRC-32/hash",
		                 s->path, t->name);
out:
	XXH3_freeState(st);
	return rc;
}

/* ---- reference counts ---- */

static void hex_key(char *out, const uint8_t *key, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[key[i] >> 4];
		out[2 * i + 1] = digits[key[i] & 15];
	}
	out[2 * len] = '\0';
}

/* one line naming finding @p f (its key as hex, a chunk as HASH#INDEX) */
static void describe_finding(char *line, size_t len, const store_ref_finding *f)
{
	char hex[2 * 16 + 1];
	hex_key(hex, f->key, 16);
	if (f->kind == STORE_REF_STRAY_CHUNK) {
		const uint8_t *k = f->key;
		unsigned long index = (unsigned long)k[16] << 24 | (unsigned long)k[17] << 16 |
		                      (unsigned long)k[18] << 8 | k[19];
		snprintf(line, len,
		         "chunk %s#%lu (%llu bytes) belongs to no blob: no checkpoint can read it "
		         "(ckpt gc frees it)",
		         hex, index, (unsigned long long)f->nbytes);
		return;
	}
	if (f->kind == STORE_REF_BAD_BLOB)
		snprintf(line, len,
		         "blob %s: a damaged record that no checkpoint references (ckpt gc frees "
		         "it)",
		         hex);
	else if (f->used == 0)
		snprintf(line, len,
		         "blob %s (%llu bytes): stored with reference count %llu, but no "
		         "checkpoint references it: bytes no one can read (ckpt gc frees them)",
		         hex, (unsigned long long)f->nbytes, (unsigned long long)f->stored);
	else
		snprintf(line, len,
		         "blob %s: stored with reference count %llu, but %llu tensor%s of the "
		         "checkpoints reference it%s (ckpt gc sets it right)",
		         hex, (unsigned long long)f->stored, (unsigned long long)f->used,
		         f->used == 1 ? "" : "s",
		         f->used > f->stored ? ": deleting checkpoints would free bytes still in use"
		                             : "");
}

int ckpt_snapshot_check_refs(ckpt_refs_stats *out, ckpt_snapshot *snap, ckpt_refs_problem_fn fn,
                             void *arg)
{
	STORE_NEED(out, "ckpt_snapshot_check_refs");
	STORE_NEED(snap, "ckpt_snapshot_check_refs");
	memset(out, 0, sizeof(*out));
	store_refs_result r;
	pthread_mutex_lock(&snap->lock);
	int rc = store_refs_check(&r, snap->store, snap->txn);
	pthread_mutex_unlock(&snap->lock);
	if (rc)
		return rc;
	out->references = r.references;
	out->blobs = r.blobs;
	out->chunks = r.chunks;
	out->complete = r.complete;
	for (size_t i = 0; i < r.n; i++) {
		const store_ref_finding *f = &r.findings[i];
		if (!store_ref_certain(&r, f))
			continue;
		out->problems++;
		if (f->used == 0)
			out->wasted_bytes += f->nbytes;
		if (fn) {
			char line[512];
			describe_finding(line, sizeof(line), f);
			fn(arg, line);
		}
	}
	store_refs_free(&r);
	return 0;
}
