/* store/refs.c - reference counts checked against the checkpoints that hold them, and repaired
 *
 * Every blob record stores how many checkpoint tensors reference its bytes; a commit adds one
 * per tensor, deleting a checkpoint takes them back, and the last one frees the blob and its
 * chunks, all inside one write transaction each. Only damage breaks that: a checkpoint record
 * that no longer decodes can still be deleted (retention must never stall), but which blobs
 * it referenced is then unknown, so their counts stay too high and their bytes are never freed.
 * store_refs_check() counts the references of every checkpoint record of a transaction and
 * compares them with the blob records and their chunks; store_refs_repair() (ckpt gc) sets the
 * counts to what it found and frees what nothing references, as far as that is certain: while
 * a checkpoint record does not decode, it may reference any blob, so only counts below the
 * references found are raised and only stray chunks are freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

typedef struct hash_list {
	uint8_t (*h)[16];
	size_t n, cap;
} hash_list;

static int hash_push(hash_list *l, const uint8_t h[16])
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		void *p = realloc(l->h, cap * sizeof(*l->h));
		if (!p)
			return store_error(-ENOMEM, "out of memory");
		l->h = p;
		l->cap = cap;
	}
	memcpy(l->h[l->n++], h, 16);
	return 0;
}

static int hash_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

/* how many times @p h is in the sorted list */
static uint64_t hash_count(const hash_list *l, const uint8_t h[16])
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) { /* first entry >= h */
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(l->h[mid], h, 16) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint64_t n = 0;
	while (lo + n < l->n && memcmp(l->h[lo + n], h, 16) == 0)
		n++;
	return n;
}

static int push_finding(store_refs_result *r, const store_ref_finding *f)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		void *p = realloc(r->findings, cap * sizeof(*r->findings));
		if (!p)
			return store_error(-ENOMEM, "out of memory");
		r->findings = p;
		r->cap = cap;
	}
	r->findings[r->n++] = *f;
	return 0;
}

/* every reference of every checkpoint record; r->complete false when one does not decode */
static int collect_refs(hash_list *refs, store_refs_result *r, ckpt_store *s, MDB_txn *txn)
{
	MDB_cursor *cur;
	int mrc = mdb_cursor_open(txn, s->db_ckpt, &cur);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: opening a checkpoint cursor", s->path);
	MDB_val key, val;
	int rc = 0;
	char why[256];
	for (mrc = store_cursor_get(s, cur, &key, &val, MDB_FIRST); mrc == 0 || mrc == STORE_EOUTSIDE;
	     mrc = store_cursor_get(s, cur, &key, &val, MDB_NEXT)) {
		store_ckpt_rec *rec;
		if (mrc == STORE_EOUTSIDE || !val.mv_data ||
		    store_ckpt_decode(&rec, val.mv_data, val.mv_size, why, sizeof(why)) != 0) {
			r->complete = false;
			continue;
		}
		for (size_t i = 0; i < rec->ntensors && !rc; i++)
			rc = hash_push(refs, rec->tensors[i].hash);
		store_ckpt_free(rec);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	if (!rc && mrc != MDB_NOTFOUND)
		rc = store_lmdb_error(mrc, "store %s: reading the checkpoint records", s->path);
	return rc;
}

/* compare each blob record with the references counted */
static int check_blobs(store_refs_result *r, const hash_list *refs, ckpt_store *s, MDB_txn *txn)
{
	MDB_cursor *cur;
	int mrc = mdb_cursor_open(txn, s->db_blobs, &cur);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: opening a blob cursor", s->path);
	MDB_val key, val;
	int rc = 0;
	char why[256];
	for (mrc = store_cursor_get(s, cur, &key, &val, MDB_FIRST); mrc == 0 || mrc == STORE_EOUTSIDE;
	     mrc = store_cursor_get(s, cur, &key, &val, MDB_NEXT)) {
		if (!key.mv_data || key.mv_size != 16) { /* the page walk at open refuses these */
			rc = store_error(CKPT_ECORRUPT, "store %s: a damaged blob key", s->path);
			break;
		}
		store_ref_finding f = {0};
		memcpy(f.key, key.mv_data, 16);
		r->blobs++;
		store_blob_rec b;
		bool decoded = mrc == 0 && val.mv_data &&
		               store_blob_decode(&b, val.mv_data, val.mv_size, why, sizeof(why)) == 0;
		f.used = hash_count(refs, key.mv_data);
		if (!decoded) {
			f.kind = STORE_REF_BAD_BLOB;
		} else if (f.used == 0 || b.refcount != f.used) { /* also a stored count of 0 */
			f.kind = STORE_REF_MISCOUNT;
			f.stored = b.refcount;
			f.nbytes = b.nbytes;
		} else {
			continue;
		}
		if ((rc = push_finding(r, &f)))
			break;
	}
	mdb_cursor_close(cur);
	if (!rc && mrc != MDB_NOTFOUND && mrc != 0)
		rc = store_lmdb_error(mrc, "store %s: reading the blob records", s->path);
	return rc;
}

/* chunks of no blob record, or past the last chunk of theirs */
static int check_chunks(store_refs_result *r, ckpt_store *s, MDB_txn *txn)
{
	MDB_cursor *cur;
	int mrc = mdb_cursor_open(txn, s->db_chunks, &cur);
	if (mrc)
		return store_lmdb_error(mrc, "store %s: opening a chunk cursor", s->path);
	MDB_val key, val;
	int rc = 0;
	uint8_t last[16];
	bool have_last = false, last_known = false;
	uint32_t last_nchunks = 0;
	char why[256];
	for (mrc = store_cursor_get(s, cur, &key, &val, MDB_FIRST); mrc == 0 || mrc == STORE_EOUTSIDE;
	     mrc = store_cursor_get(s, cur, &key, &val, MDB_NEXT)) {
		if (!key.mv_data || key.mv_size != STORE_CHUNK_KEY_LEN) { /* as for blobs */
			rc = store_error(CKPT_ECORRUPT, "store %s: a damaged chunk key", s->path);
			break;
		}
		r->chunks++;
		store_ref_finding f = {.kind = STORE_REF_STRAY_CHUNK,
		                       .nbytes = val.mv_data ? val.mv_size : 0};
		memcpy(f.key, key.mv_data, STORE_CHUNK_KEY_LEN);
		if (!have_last || memcmp(last, key.mv_data, 16) != 0) {
			/* the first chunk of another blob: look its record up */
			memcpy(last, key.mv_data, 16);
			have_last = true;
			MDB_val bk = {16, last}, bv;
			store_blob_rec b;
			int g = store_get(s, txn, s->db_blobs, &bk, &bv);
			if (g == 0 &&
			    store_blob_decode(&b, bv.mv_data, bv.mv_size, why, sizeof(why)) == 0) {
				last_known = true;
				last_nchunks = b.nchunks;
			} else if (g == MDB_NOTFOUND) {
				last_known = true;
				last_nchunks = 0;
			} else if (g == 0 || g == STORE_EOUTSIDE) {
				last_known = false; /* a damaged blob record: check_blobs names it */
			} else {
				rc = store_lmdb_error(g, "store %s: looking up a blob", s->path);
				break;
			}
		}
		const uint8_t *k = key.mv_data;
		uint32_t index = (uint32_t)k[16] << 24 | (uint32_t)k[17] << 16 |
		                 (uint32_t)k[18] << 8 | k[19];
		if (!last_known || index < last_nchunks)
			continue;
		if ((rc = push_finding(r, &f)))
			break;
	}
	mdb_cursor_close(cur);
	if (!rc && mrc != MDB_NOTFOUND && mrc != 0)
		rc = store_lmdb_error(mrc, "store %s: reading the chunks", s->path);
	return rc;
}

int store_refs_check(store_refs_result *r, ckpt_store *s, MDB_txn *txn)
{
	memset(r, 0, sizeof(*r));
	r->complete = true;
	hash_list refs = {0};
	int rc = collect_refs(&refs, r, s, txn);
	if (!rc) {
		if (refs.n)
			qsort(refs.h, refs.n, sizeof(*refs.h), hash_cmp);
		r->references = refs.n;
		rc = check_blobs(r, &refs, s, txn);
	}
	if (!rc)
		rc = check_chunks(r, s, txn);
	free(refs.h);
	if (rc)
		store_refs_free(r);
	return rc;
}

void store_refs_free(store_refs_result *r)
{
	free(r->findings);
	r->findings = NULL;
	r->n = r->cap = 0;
}

bool store_ref_certain(const store_refs_result *r, const store_ref_finding *f)
{
	switch (f->kind) {
	case STORE_REF_MISCOUNT: /* too low is certain: a record not read adds references */
		return r->complete || f->used > f->stored;
	case STORE_REF_BAD_BLOB: /* still referenced: its tensors are damaged (verify says) */
		return r->complete && f->used == 0;
	case STORE_REF_STRAY_CHUNK: /* no record makes a chunk outside its blob readable */
		return true;
	}
	return false;
}

int store_refs_repair(ckpt_store *s, MDB_txn *txn, const store_refs_result *r,
                      ckpt_refs_repair *out)
{
	int rc = 0;
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < r->n && !rc; i++) {
		const store_ref_finding *f = &r->findings[i];
		if (!store_ref_certain(r, f))
			continue;
		if (f->kind == STORE_REF_STRAY_CHUNK) {
			MDB_val key = {STORE_CHUNK_KEY_LEN, (void *)f->key};
			int mrc = mdb_del(txn, s->db_chunks, &key, NULL);
			if (mrc && mrc != MDB_NOTFOUND) /* gone with a blob deleted just before */
				rc = store_lmdb_error(mrc, "store %s: deleting a stray chunk",
				                      s->path);
			if (mrc == 0) { /* counted once: not with a blob deleted just before */
				out->chunks++;
				out->bytes += f->nbytes;
			}
		} else if (f->used == 0) {
			rc = store_blob_delete(s, txn, f->key);
			out->blobs++;
			out->bytes += f->nbytes;
		} else {
			rc = store_blob_set_count(s, txn, f->key, f->used);
			out->counts++;
		}
	}
	return rc;
}
