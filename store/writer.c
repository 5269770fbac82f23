/* store/writer.c - writing one checkpoint in one LMDB write transaction
 *
 * Invariants: put_tensor only records a borrowed pointer plus the checksums computed then;
 * everything reaches LMDB inside commit's single transaction, which can therefore be redone
 * from scratch after MDB_MAP_FULL (abort, grow the map with no txn active, retry). The commit
 * takes references on content-addressed blobs first, then drops the references of a replaced
 * checkpoint, so unchanged bytes are never rewritten.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zlib.h>

#include "store/store_int.h"

typedef struct pending_tensor {
	ckpt_tensor_info info; /* name and device are set from the fields below at commit (the
	                          array of pending tensors moves when it grows) */
	char *name;
	char device[CKPT_MAX_DEVICE + 1];
	const void *data; /* borrowed until commit/abort returns */
	uint32_t *chunk_crcs;
} pending_tensor;

struct ckpt_writer {
	ckpt_store *store;
	uint64_t epoch, step;
	pending_tensor *tensors;
	size_t ntensors, cap;
	/* open-addressing index of (group, name) -> tensor index + 1 (0: empty slot); a power of
	 * two at least twice the tensor count, so duplicate names are found in O(1) */
	size_t *name_slots;
	size_t nslots;
	store_metric *metrics; /* names owned */
	size_t nmetrics;
	store_extra *extras; /* keys and data owned */
	size_t nextras;
	bool groups_unchecked; /* "optimizer.param_groups" was set as older versions took it
	                          (store_old_input_allowed()): commit leaves it unchecked too */
	uint64_t total_bytes;
};

/* tensors at least this big are hashed on a second thread while the CRC runs */
#define STORE_PARALLEL_HASH_MIN (4u << 20)

typedef struct hash_job {
	const void *data;
	size_t len;
	uint8_t digest[16];
} hash_job;

static void *hash_main(void *arg)
{
	hash_job *job = arg;
	XXH128_canonical_t canon;
	XXH128_canonicalFromHash(&canon, XXH3_128bits(job->data, job->len));
	memcpy(job->digest, canon.digest, 16);
	return NULL;
}

static size_t name_slot(const ckpt_writer *w, ckpt_tensor_group group, const char *name)
{
	return (size_t)XXH3_64bits_withSeed(name, strlen(name), (XXH64_hash_t)group) &
	       (w->nslots - 1);
}

/* True if a tensor of @p group named @p name was already put. */
static bool name_taken(const ckpt_writer *w, ckpt_tensor_group group, const char *name)
{
	if (w->nslots == 0)
		return false;
	for (size_t i = name_slot(w, group, name); w->name_slots[i]; i = (i + 1) & (w->nslots - 1)) {
		const pending_tensor *t = &w->tensors[w->name_slots[i] - 1];
		if (t->info.group == group && strcmp(t->name, name) == 0)
			return true;
	}
	return false;
}

static void name_insert(ckpt_writer *w, size_t index)
{
	const pending_tensor *t = &w->tensors[index];
	size_t i = name_slot(w, t->info.group, t->name);
	while (w->name_slots[i])
		i = (i + 1) & (w->nslots - 1);
	w->name_slots[i] = index + 1;
}

/* Make room in the name index for one more tensor, so that name_insert cannot fail. */
static int name_reserve(ckpt_writer *w)
{
	if ((w->ntensors + 1) * 2 <= w->nslots)
		return 0;
	size_t nslots = w->nslots ? w->nslots * 2 : 64;
	size_t *slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	free(w->name_slots);
	w->name_slots = slots;
	w->nslots = nslots;
	for (size_t i = 0; i < w->ntensors; i++)
		name_insert(w, i);
	return 0;
}

/* Tests write what earlier versions of this library accepted and stores may therefore hold
 * (epochs above CKPT_MAX_EPOCH, devices spelled "cuda:01", names that are not UTF-8): unit
 * tests set store_test_old_input, test programs the environment variable
 * CKPT_STORE_TEST_OLD_INPUT=1. */
#ifdef CKPT_TESTING
int store_test_old_input;
#else
static const int store_test_old_input = 0;
#endif

bool store_old_input_allowed(void)
{
	if (store_test_old_input)
		return true;
	const char *env = getenv("CKPT_STORE_TEST_OLD_INPUT");
	return env && strcmp(env, "1") == 0;
}

int ckpt_writer_begin(ckpt_writer **out, ckpt_store *store, uint64_t epoch)
{
	if (!out || !store)
		return store_error(-EINVAL, "ckpt_writer_begin: %s is NULL", out ? "store" : "out");
	*out = NULL;
	int rc = store_check_process(store);
	if (rc)
		return rc;
	if (store->readonly)
		return store_error(-EROFS, "store %s: opened read-only, cannot write epoch %llu",
		                   store->path, (unsigned long long)epoch);
	if (epoch > CKPT_MAX_EPOCH && !store_old_input_allowed())
		return store_error(-EINVAL, "store %s: epoch %llu is above the highest epoch %llu",
		                   store->path, (unsigned long long)epoch,
		                   (unsigned long long)CKPT_MAX_EPOCH);
	ckpt_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return store_error(-ENOMEM, "out of memory");
	w->store = store;
	w->epoch = epoch;
	*out = w;
	return 0;
}

static void pending_free(pending_tensor *t)
{
	free(t->name);
	free(t->chunk_crcs);
}

void ckpt_writer_abort(ckpt_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->ntensors; i++)
		pending_free(&w->tensors[i]);
	free(w->tensors);
	free(w->name_slots);
	for (size_t i = 0; i < w->nmetrics; i++)
		free((char *)w->metrics[i].name);
	free(w->metrics);
	for (size_t i = 0; i < w->nextras; i++) {
		free((char *)w->extras[i].key);
		free((void *)w->extras[i].data);
	}
	free(w->extras);
	free(w);
}

int ckpt_writer_put_tensor(ckpt_writer *w, const char *name, ckpt_tensor_group group,
                           ckpt_dtype dtype, uint32_t ndim, const uint64_t *shape,
                           const char *device, const void *data, uint64_t nbytes)
{
	STORE_NEED(w, "ckpt_writer_put_tensor");
	const char *path = w->store->path;
	unsigned long long epoch = w->epoch;
	if (!name || !*name || strlen(name) > CKPT_MAX_NAME)
		return store_error(-EINVAL,
		                   "store %s: epoch %llu: tensor name is empty or longer "
		                   "than %d bytes",
		                   path, epoch, CKPT_MAX_NAME);
	if (group != CKPT_GROUP_MODEL && group != CKPT_GROUP_OPTIMIZER && group != CKPT_GROUP_EXTRA)
		return store_error(-EINVAL, "store %s: epoch %llu: tensor %s: bad group %d", path,
		                   epoch, name, (int)group);
	size_t itemsize = ckpt_dtype_itemsize(dtype);
	if (!itemsize)
		return store_error(-EINVAL, "store %s: epoch %llu: tensor %s: bad dtype %d", path,
		                   epoch, name, (int)dtype);
	if (ndim > CKPT_MAX_DIMS)
		return store_error(-EINVAL,
		                   "store %s: epoch %llu: tensor %s: %u dimensions (at "
		                   "most %d)",
		                   path, epoch, name, ndim, CKPT_MAX_DIMS);
	if (ndim && !shape)
		return store_error(-EINVAL, "store %s: epoch %llu: tensor %s: no shape for its %u "
		                   "dimension(s)", path, epoch, name, ndim);
	uint64_t numel;
	if (ckpt_shape_numel(&numel, ndim, shape) != 0 || numel > UINT64_MAX / itemsize)
		return store_error(-EINVAL,
		                   "store %s: epoch %llu: tensor %s: its shape overflows (its "
		                   "dimensions times the item size exceed 2^64)",
		                   path, epoch, name);
	if (numel * itemsize != nbytes)
		return store_error(-EINVAL,
		                   "store %s: epoch %llu: tensor %s: %llu bytes do not "
		                   "match its shape and dtype",
		                   path, epoch, name, (unsigned long long)nbytes);
	/* torch and numpy index with int64: the extent of every dimension (strides included, so
	 * zero-sized dimensions count as 1) must stay below 2^63 bytes, even for an empty tensor */
	uint64_t extent = itemsize;
	for (uint32_t k = 0; k < ndim; k++) {
		uint64_t d = shape[k] ? shape[k] : 1;
		if (d > (uint64_t)INT64_MAX / extent)
			return store_error(-EINVAL,
			                   "store %s: epoch %llu: tensor %s: dimension %u of size "
			                   "%llu is too large (strides past 2^63 bytes)",
			                   path, epoch, name, k, (unsigned long long)shape[k]);
		extent *= d;
	}
	if (!device)
		device = "cpu";
	/* stores may hold "cuda:01" (ckpt_device_is_valid() reads it), but torch.device refuses it */
	if (!ckpt_device_is_valid(device) ||
	    (strncmp(device, "cuda:0", 6) == 0 && device[6] && !store_old_input_allowed()))
		return store_error(-EINVAL,
		                   "store %s: epoch %llu: tensor %s: bad device '%s' (cpu, cuda or "
		                   "cuda:N, N < 1000 without leading zeros)",
		                   path, epoch, name, device);
	if (nbytes && !data)
		return store_error(-EINVAL, "store %s: epoch %llu: tensor %s: no data", path, epoch,
		                   name);
	if (nbytes > SIZE_MAX)
		return store_error(-EINVAL, "store %s: tensor %s too large", path, name);
	if (name_taken(w, group, name))
		return store_error(-EEXIST, "store %s: epoch %llu: tensor %s given twice", path,
		                   epoch, name);
	if (name_reserve(w))
		return store_error(-ENOMEM, "out of memory");
	uint64_t cs = w->store->settings.chunk_size;
	uint32_t nchunks = store_nchunks(nbytes, cs);
	if (nbytes && (nbytes - 1) / cs >= UINT32_MAX)
		return store_error(-EINVAL, "store %s: tensor %s needs too many chunks", path,
		                   name);
	if (w->ntensors == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		pending_tensor *nt = realloc(w->tensors, cap * sizeof(*nt));
		if (!nt)
			return store_error(-ENOMEM, "out of memory");
		w->tensors = nt;
		w->cap = cap;
	}
	pending_tensor *t = &w->tensors[w->ntensors];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	t->chunk_crcs = malloc((nchunks ? nchunks : 1) * sizeof(uint32_t));
	if (!t->name || !t->chunk_crcs) {
		pending_free(t);
		return store_error(-ENOMEM, "out of memory");
	}
	snprintf(t->device, sizeof(t->device), "%s", device);
	t->data = data;
	/* per-chunk CRC-32s combine into the tensor's: one CRC pass over the bytes; the content
	 * hash of a big tensor is computed meanwhile on a second thread */
	hash_job job = {.data = nbytes ? data : "", .len = (size_t)nbytes};
	pthread_t thread;
	bool threaded = nbytes >= STORE_PARALLEL_HASH_MIN &&
	                store_thread_start(&thread, hash_main, &job) == 0;
	uint32_t crc = 0;
	const uint8_t *bytes = data;
	for (uint32_t i = 0; i < nchunks; i++) {
		uint64_t off = (uint64_t)i * cs;
		uint64_t len = nbytes - off < cs ? nbytes - off : cs;
		uint32_t c = ckpt_crc32(0, bytes + off, (size_t)len);
		t->chunk_crcs[i] = c;
		crc = i == 0 ? c : (uint32_t)crc32_combine(crc, c, (z_off_t)len);
	}
	if (threaded)
		pthread_join(thread, NULL);
	else
		hash_main(&job);
	ckpt_tensor_info *info = &t->info;
	info->name = t->name;
	info->group = group;
	info->dtype = dtype;
	info->ndim = ndim;
	for (uint32_t k = 0; k < ndim; k++)
		info->shape[k] = shape[k];
	info->device = t->device;
	info->nbytes = nbytes;
	info->crc32 = crc;
	memcpy(info->hash, job.digest, 16);
	info->index = (uint32_t)w->ntensors;
	info->nchunks = nchunks;
	info->chunk_size = cs;
	name_insert(w, w->ntensors);
	w->ntensors++;
	w->total_bytes += nbytes;
	return 0;
}

void ckpt_writer_set_step(ckpt_writer *w, uint64_t step)
{
	if (!w)
		return;
	w->step = step;
}

int ckpt_writer_set_metric(ckpt_writer *w, const char *name, double value)
{
	STORE_NEED(w, "ckpt_writer_set_metric");
	if (!name || !*name || strlen(name) > STORE_MAX_METRIC_NAME)
		return store_error(-EINVAL,
		                   "store %s: epoch %llu: metric name is empty or longer "
		                   "than %d bytes",
		                   w->store->path, (unsigned long long)w->epoch,
		                   STORE_MAX_METRIC_NAME);
	if (!ckpt_utf8_valid(name) && !store_old_input_allowed())
		return store_error(-EINVAL, "store %s: epoch %llu: a metric name is not valid UTF-8",
		                   w->store->path, (unsigned long long)w->epoch);
	/* kept sorted by name: insert in place */
	size_t i = 0;
	while (i < w->nmetrics && strcmp(w->metrics[i].name, name) < 0)
		i++;
	if (i < w->nmetrics && strcmp(w->metrics[i].name, name) == 0) {
		w->metrics[i].value = value;
		return 0;
	}
	char *copy = strdup(name);
	store_metric *nm = realloc(w->metrics, (w->nmetrics + 1) * sizeof(*nm));
	if (!copy || !nm) {
		free(copy);
		if (nm)
			w->metrics = nm;
		return store_error(-ENOMEM, "out of memory");
	}
	w->metrics = nm;
	memmove(&nm[i + 1], &nm[i], (w->nmetrics - i) * sizeof(*nm));
	nm[i] = (store_metric){copy, value};
	w->nmetrics++;
	return 0;
}

int ckpt_writer_set_extra(ckpt_writer *w, const char *key, const void *data, size_t len)
{
	STORE_NEED(w, "ckpt_writer_set_extra");
	if (!key || !*key || strlen(key) > STORE_MAX_EXTRA_KEY)
		return store_error(-EINVAL,
		                   "store %s: epoch %llu: extra key is empty or longer "
		                   "than %d bytes",
		                   w->store->path, (unsigned long long)w->epoch,
		                   STORE_MAX_EXTRA_KEY);
	if (!ckpt_utf8_valid(key) && !store_old_input_allowed())
		return store_error(-EINVAL, "store %s: epoch %llu: an extra key is not valid UTF-8",
		                   w->store->path, (unsigned long long)w->epoch);
	if (len && !data)
		return store_error(-EINVAL, "store %s: epoch %llu: extra %s: no data for %zu bytes",
		                   w->store->path, (unsigned long long)w->epoch, key, len);
	char *copy = malloc(len + 1);
	if (!copy)
		return store_error(-ENOMEM, "out of memory");
	if (len)
		memcpy(copy, data, len);
	copy[len] = '\0';
	char why[256];
	bool groups = strcmp(key, "optimizer.param_groups") == 0 && !store_old_input_allowed();
	bool groups_unchecked = strcmp(key, "optimizer.param_groups") == 0 && !groups;
	if (groups && len > 0 && copy[len - 1] == '\0')
		len--; /* text given with C's strlen + 1: stored without the NUL, the JSON text the
		        * renderers read with jansson (as other text extras are shown without it) */
	if (groups && store_json_check_param_groups(copy, len, why, sizeof(why)) != 0) {
		free(copy);
		return store_error(-EINVAL, "store %s: epoch %llu: extra %s: %s", w->store->path,
		                   (unsigned long long)w->epoch, key, why);
	}
	size_t i = 0;
	while (i < w->nextras && strcmp(w->extras[i].key, key) < 0)
		i++;
	if (i < w->nextras && strcmp(w->extras[i].key, key) == 0) {
		free((void *)w->extras[i].data);
		w->extras[i].data = copy;
		w->extras[i].len = len;
		if (strcmp(key, "optimizer.param_groups") == 0)
			w->groups_unchecked = groups_unchecked;
		return 0;
	}
	char *kcopy = strdup(key);
	store_extra *ne = realloc(w->extras, (w->nextras + 1) * sizeof(*ne));
	if (!kcopy || !ne) {
		free(kcopy);
		free(copy);
		if (ne)
			w->extras = ne;
		return store_error(-ENOMEM, "out of memory");
	}
	w->extras = ne;
	memmove(&ne[i + 1], &ne[i], (w->nextras - i) * sizeof(*ne));
	ne[i] = (store_extra){kcopy, copy, len};
	w->nextras++;
	if (strcmp(key, "optimizer.param_groups") == 0)
		w->groups_unchecked = groups_unchecked;
	return 0;
}

static int commit_once(ckpt_writer *w)
{
	ckpt_store *s = w->store;
	MDB_txn *txn = NULL;
	uint8_t *rec = NULL;
	size_t rec_len = 0;
	ckpt_tensor_info *infos = NULL;
	store_settings_rec set;
	int rc = store_write_txn(s, &txn);
	if (rc)
		return rc;
	/* no reader without lock.mdb may be reading pages this commit could reuse; and the
	 * retention in force is the stored one (ckpt gc --keep-last N may have changed it since
	 * this handle was opened) */
	if ((rc = store_refuse_lockless_readers(s->path)) ||
	    (rc = store_read_settings(&set, s, txn)))
		goto fail;
	for (size_t i = 0; i < w->ntensors; i++) {
		pending_tensor *t = &w->tensors[i];
		rc = store_blob_ref(s, txn, t->info.hash, t->info.nbytes, t->data, t->chunk_crcs,
		                    t->info.nchunks);
		if (rc)
			goto fail;
	}
	uint8_t k[8];
	store_epoch_key(k, w->epoch);
	MDB_val key = {8, k}, val;
	int mrc = store_get(s, txn, s->db_ckpt, &key, &val);
	if (mrc == 0) {
		rc = store_delete_checkpoint(s, txn, w->epoch);
		if (rc)
			goto fail;
	} else if (mrc != MDB_NOTFOUND) {
		rc = store_lmdb_error(mrc, "store %s: epoch %llu: looking up the checkpoint",
		                      s->path, (unsigned long long)w->epoch);
		goto fail;
	}
	infos = malloc((w->ntensors ? w->ntensors : 1) * sizeof(*infos));
	if (!infos) {
		rc = store_error(-ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < w->ntensors; i++) {
		/* the tensors array may have moved since put: re-point into its current place */
		infos[i] = w->tensors[i].info;
		infos[i].name = w->tensors[i].name;
		infos[i].device = w->tensors[i].device;
	}
	store_ckpt_rec r = {
	    .epoch = w->epoch,
	    .step = w->step,
	    .time_ns = store_now_ns(),
	    .nmetrics = w->nmetrics,
	    .nextras = w->nextras,
	    .ntensors = w->ntensors,
	    .metrics = w->metrics,
	    .extras = w->extras,
	    .tensors = infos,
	};
	rc = store_ckpt_encode(&rec, &rec_len, &r);
	if (rc) {
		rc = store_error(rc, "store %s: epoch %llu: encoding the checkpoint record",
		                 s->path, (unsigned long long)w->epoch);
		goto fail;
	}
	val = (MDB_val){rec_len, rec};
	if ((mrc = mdb_put(txn, s->db_ckpt, &key, &val, 0))) {
		rc = store_lmdb_error(mrc, "store %s: epoch %llu: writing the checkpoint record",
		                      s->path, (unsigned long long)w->epoch);
		goto fail;
	}
	r.nbytes = w->total_bytes;
	store_index_rec ir = store_index_of_checkpoint(s, &r);
	uint8_t ibuf[STORE_INDEX_LEN];
	store_index_encode(ibuf, &ir);
	val = (MDB_val){sizeof(ibuf), ibuf};
	if ((mrc = mdb_put(txn, s->db_index, &key, &val, 0))) {
		rc = store_lmdb_error(mrc, "store %s: epoch %llu: writing the index", s->path,
		                      (unsigned long long)w->epoch);
		goto fail;
	}
	if ((rc = store_update_best_for(s, txn, w->epoch, &ir)) ||
	    (rc = store_apply_retention(s, txn, set.keep_last, set.keep_top, &w->epoch, NULL)))
		goto fail;
	free(rec);
	free(infos);
	mrc = store_write_errno(s->path, mdb_txn_commit(txn), w->total_bytes);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: epoch %llu: committing", s->path,
		                        (unsigned long long)w->epoch);
	store_set_retention(s, set.keep_last, set.keep_top);
	return 0;
fail:
	free(rec);
	free(infos);
	mdb_txn_abort(txn);
	return rc;
}

/* room the transaction may need: bytes plus page overhead, B-tree pages and slack */
static uint64_t estimate_need(const ckpt_writer *w)
{
	uint64_t need = w->total_bytes + w->total_bytes / 16 + (4u << 20);
	for (size_t i = 0; i < w->ntensors; i++)
		need += (uint64_t)w->tensors[i].info.nchunks * 256 + 4096;
	return need;
}

#ifdef CKPT_TESTING
/* tests set this to reach the MDB_MAP_FULL retry path without the up-front growth */
int store_test_no_pregrow;
#else
static const int store_test_no_pregrow = 0;
#endif

/* The param groups as every torch optimizer needs them (a parameter listed), checked at
 * commit as ckpt_writer_commit() documents: 0, or -EINVAL with the message set. Not in the
 * transaction: a refusal leaves the store as it was. */
static int check_groups_loadable(const ckpt_writer *w)
{
	const store_extra *groups = NULL;
	for (size_t i = 0; i < w->nextras && !groups; i++)
		if (strcmp(w->extras[i].key, "optimizer.param_groups") == 0)
			groups = &w->extras[i];
	if (!groups || w->groups_unchecked)
		return 0;
	char why[512];
	int rc = store_json_check_param_groups_loadable(groups->data, groups->len, why,
	                                                sizeof(why));
	if (rc)
		return store_error(rc, "store %s: epoch %llu: %s", w->store->path,
		                   (unsigned long long)w->epoch, why);
	return 0;
}

int ckpt_writer_commit(ckpt_writer *w)
{
	if (!w)
		return store_error(-EINVAL, "ckpt_writer_commit: no writer (NULL)");
	ckpt_store *s = w->store;
	int rc = check_groups_loadable(w);
	if (rc) {
		ckpt_writer_abort(w); /* freed in every case, as after any failed commit */
		return rc;
	}
	uint64_t used, size, need = estimate_need(w);
	pthread_mutex_lock(&s->write_lock);
	/* grow before the transaction when the estimate does not fit; MAP_FULL stays possible
	 * (freed pages, B-tree splits) and is handled by the retry below */
	store_map_usage(s, &used, &size);
	if (used + need > size && !store_test_no_pregrow) {
		pthread_mutex_lock(&s->lock);
		bool can = s->open_snapshots == 0;
		pthread_mutex_unlock(&s->lock);
		if (can && (rc = store_grow_map(s, (used + need) + (used + need) / 2)))
			goto out;
	}
	bool touched = false;
	for (int attempt = 0; attempt < 8; attempt++) {
		rc = commit_once(w);
		/* a full disk: the pages the last commit freed (its retention) are reusable only
		 * after one more commit; make it, and try once more */
		if (rc == -ENOSPC && !touched) {
			char why[1024];
			int mrc;
			snprintf(why, sizeof(why), "%s", ckpt_last_error());
			touched = true;
			if (store_touch_commit(s, &mrc) == 0)
				continue;
			rc = store_error(-ENOSPC, "%s", why); /* the commit's own message */
		}
		if (rc != STORE_EMAPFULL)
			break;
		store_map_usage(s, &used, &size);
		uint64_t target = size + need > size * 2 ? size + need : size * 2;
		int grc = store_grow_map(s, target);
		if (grc) {
			rc = grc;
			break;
		}
	}
	if (rc == STORE_EMAPFULL)
		rc = store_error(-ENOSPC, "store %s: epoch %llu: the map keeps filling up", s->path,
		                 (unsigned long long)w->epoch);
out:
	pthread_mutex_unlock(&s->write_lock);
	ckpt_writer_abort(w);
	return rc;
}
