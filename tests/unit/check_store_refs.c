/* tests/unit/check_store_refs.c - Check suite for reference counting checked against the
 * checkpoints (ckpt_snapshot_check_refs) and repaired (ckpt_store_repair_refs)
 *
 * Damage is made through LMDB inside the store's own write transactions (store_int.h): a
 * checkpoint record with a changed byte, a blob record with a wrong count but a valid CRC,
 * chunks that belong to no blob. Each test works in a fresh temporary directory.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/store.h"
#include "store/store_int.h"
#include "test_dir.h"

#define FLOATS 4096
#define TENSOR_BYTES (FLOATS * sizeof(float))

static char tmpdir[256];
static char storepath[512];

static void setup(void)
{
	test_store_dir_make(tmpdir, sizeof(tmpdir), storepath, sizeof(storepath),
	                    "check_store_refs");
}

static void teardown(void)
{
	test_dir_remove(tmpdir);
}

/* commit @p epoch with tensor "own" (bytes of this epoch only) and "shared" (the same bytes in
 * every epoch: one blob referenced by each) */
static void commit(ckpt_store *s, uint64_t epoch)
{
	static float own[FLOATS], shared[FLOATS];
	for (size_t i = 0; i < FLOATS; i++) {
		own[i] = (float)(epoch * FLOATS + i);
		shared[i] = (float)i * 0.5f;
	}
	uint64_t shape[1] = {FLOATS};
	ckpt_writer *w;
	OK(ckpt_writer_begin(&w, s, epoch));
	OK(ckpt_writer_put_tensor(w, "own", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape, "cpu",
	                          own, TENSOR_BYTES));
	OK(ckpt_writer_put_tensor(w, "shared", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape,
	                          "cpu", shared, TENSOR_BYTES));
	OK(ckpt_writer_commit(w));
}

typedef struct lines {
	int n;
	char all[4096]; /* every line, each ending in '\n' */
} lines;

static void collect(void *arg, const char *problem)
{
	lines *l = arg;
	size_t used = strlen(l->all);
	l->n++;
	snprintf(l->all + used, sizeof(l->all) - used, "%s\n", problem);
}

static ckpt_refs_stats check(ckpt_store *s, lines *l)
{
	ckpt_snapshot *snap;
	ckpt_refs_stats st;
	OK(ckpt_snapshot_open(&snap, s));
	memset(l, 0, sizeof(*l));
	OK(ckpt_snapshot_check_refs(&st, snap, collect, l));
	ckpt_snapshot_close(snap);
	ck_assert_int_eq((int)st.problems, l->n);
	return st;
}

static uint64_t stored_bytes(ckpt_store *s)
{
	ckpt_snapshot *snap;
	ckpt_store_stats st;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_stats(&st, snap));
	ckpt_snapshot_close(snap);
	return st.stored_bytes;
}

/* the hash of tensor @p name of @p epoch */
static void tensor_hash(uint8_t out[16], ckpt_store *s, uint64_t epoch, const char *name)
{
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	const ckpt_tensor_info *t;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_checkpoint(&c, snap, epoch));
	OK(ckpt_checkpoint_find_tensor(&t, c, CKPT_GROUP_MODEL, name));
	memcpy(out, t->hash, 16);
	ckpt_snapshot_close(snap);
}

/* change one byte in the middle of the checkpoint record of @p epoch */
static void damage_checkpoint(ckpt_store *s, uint64_t epoch)
{
	MDB_txn *txn;
	OK(store_write_txn(s, &txn));
	uint8_t k[8];
	store_epoch_key(k, epoch);
	MDB_val key = {8, k}, val;
	ck_assert_int_eq(mdb_get(txn, s->db_ckpt, &key, &val), 0);
	uint8_t *copy = malloc(val.mv_size);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, val.mv_data, val.mv_size);
	copy[val.mv_size / 2] ^= 0x5a;
	MDB_val nv = {val.mv_size, copy};
	ck_assert_int_eq(mdb_put(txn, s->db_ckpt, &key, &nv, 0), 0);
	free(copy);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
}

static void set_count(ckpt_store *s, const uint8_t hash[16], uint64_t count)
{
	MDB_txn *txn;
	OK(store_write_txn(s, &txn));
	OK(store_blob_set_count(s, txn, hash, count));
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
}

static void put_chunk(ckpt_store *s, const uint8_t hash[16], uint32_t index, size_t len)
{
	MDB_txn *txn;
	OK(store_write_txn(s, &txn));
	uint8_t k[STORE_CHUNK_KEY_LEN];
	store_chunk_key(k, hash, index);
	char *bytes = calloc(1, len);
	ck_assert_ptr_nonnull(bytes);
	MDB_val key = {sizeof(k), k}, val = {len, bytes};
	ck_assert_int_eq(mdb_put(txn, s->db_chunks, &key, &val, 0), 0);
	free(bytes);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
}

static void verify_all(ckpt_store *s)
{
	ckpt_snapshot *snap;
	uint64_t *epochs;
	size_t n;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_list(&epochs, &n, snap));
	for (size_t i = 0; i < n; i++) {
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, epochs[i]));
		for (size_t k = 0; k < ckpt_checkpoint_tensor_count(c); k++)
			OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, k)));
	}
	free(epochs);
	ckpt_snapshot_close(snap);
}

START_TEST(test_a_sound_store_has_every_count_right)
{
	ckpt_store *s = test_store_create(storepath, 0);
	for (uint64_t e = 1; e <= 3; e++)
		commit(s, e);
	lines l;
	ckpt_refs_stats st = check(s, &l);
	ck_assert(st.complete);
	ck_assert_uint_eq(st.references, 6);
	ck_assert_uint_eq(st.blobs, 4); /* three "own", one "shared" */
	ck_assert_uint_eq(st.chunks, 4);
	ck_assert_uint_eq(st.problems, 0);
	ckpt_refs_repair r;
	OK(ckpt_store_repair_refs(s, &r));
	ck_assert_uint_eq(r.blobs + r.chunks + r.counts, 0);
	ckpt_store_close(s);
}
END_TEST

/* retention deletes a checkpoint whose record does not decode without knowing its blobs */
START_TEST(test_blobs_of_a_damaged_checkpoint_deleted_by_retention_are_freed)
{
	ckpt_store *s = test_store_create(storepath, 0);
	for (uint64_t e = 1; e <= 3; e++)
		commit(s, e);
	uint64_t before = stored_bytes(s);
	damage_checkpoint(s, 1);
	lines l;
	ckpt_refs_stats st = check(s, &l);
	ck_assert(!st.complete); /* epoch 1 might reference anything: no leak is certain */
	ck_assert_uint_eq(st.problems, 0);
	uint32_t deleted;
	OK(ckpt_store_gc(s, 2, 0, &deleted));
	ck_assert_uint_eq(deleted, 1);
	st = check(s, &l);
	ck_assert(st.complete);
	ck_assert_uint_eq(st.problems, 2); /* epoch 1's "own" blob, "shared"'s count */
	ck_assert_uint_eq(st.wasted_bytes, TENSOR_BYTES);
	ck_assert_msg(strstr(l.all, "reference count 3, but 2 tensors of the checkpoints "
	                            "reference it (ckpt gc"),
	              "%s", l.all);
	ck_assert_msg(strstr(l.all, "no checkpoint references it") != NULL, "%s", l.all);
	ck_assert_uint_eq(stored_bytes(s), before); /* still stored */
	ckpt_refs_repair r;
	OK(ckpt_store_repair_refs(s, &r));
	ck_assert_uint_eq(r.blobs, 1);
	ck_assert_uint_eq(r.counts, 1); /* "shared": 3 stored, 2 references */
	ck_assert_uint_eq(r.bytes, TENSOR_BYTES);
	st = check(s, &l);
	ck_assert_uint_eq(st.problems, 0);
	ck_assert_uint_eq(stored_bytes(s), before - TENSOR_BYTES);
	verify_all(s);
	/* with the counts right, deleting the rest frees the shared blob too */
	OK(ckpt_store_gc(s, 1, 0, &deleted));
	ck_assert_uint_eq(deleted, 1);
	ck_assert_uint_eq(stored_bytes(s), 2 * TENSOR_BYTES);
	st = check(s, &l);
	ck_assert_uint_eq(st.problems, 0);
	ckpt_store_close(s);
}
END_TEST

/* a count below its references would free bytes still in use at the next deletion */
START_TEST(test_a_count_below_its_references_is_reported_and_raised)
{
	ckpt_store *s = test_store_create(storepath, 0);
	for (uint64_t e = 1; e <= 3; e++)
		commit(s, e);
	uint8_t h[16];
	tensor_hash(h, s, 1, "shared");
	set_count(s, h, 1);
	damage_checkpoint(s, 3); /* certain even while a record does not decode */
	lines l;
	ckpt_refs_stats st = check(s, &l);
	ck_assert(!st.complete);
	ck_assert_uint_eq(st.problems, 1);
	ck_assert_msg(strstr(l.all, "reference count 1, but 2 tensors") &&
	                  strstr(l.all, "free bytes still in use"),
	              "%s", l.all);
	ckpt_refs_repair r;
	OK(ckpt_store_repair_refs(s, &r));
	ck_assert_uint_eq(r.counts, 1);
	ck_assert_uint_eq(r.blobs, 0); /* epoch 3's blobs are not freed while it is unreadable */
	st = check(s, &l);
	ck_assert_uint_eq(st.problems, 0);
	uint32_t deleted;
	OK(ckpt_store_gc(s, 2, 0, &deleted)); /* deletes epoch 1 */
	ck_assert_uint_eq(deleted, 1);
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	const ckpt_tensor_info *t;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_checkpoint(&c, snap, 2));
	OK(ckpt_checkpoint_find_tensor(&t, c, CKPT_GROUP_MODEL, "shared"));
	OK(ckpt_tensor_verify(snap, t)); /* with the count left at 1 its bytes were gone */
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_stray_chunks_are_reported_and_freed)
{
	ckpt_store *s = test_store_create(storepath, 0);
	commit(s, 1);
	uint8_t h[16], other[16];
	tensor_hash(h, s, 1, "own");
	memset(other, 0xab, sizeof(other));
	put_chunk(s, h, 1, 100);      /* past the blob's only chunk */
	put_chunk(s, other, 0, 200);  /* of no blob */
	lines l;
	ckpt_refs_stats st = check(s, &l);
	ck_assert_uint_eq(st.problems, 2);
	ck_assert_uint_eq(st.wasted_bytes, 300);
	ck_assert_msg(strstr(l.all, "#0 (200 bytes) belongs to no blob"), "%s", l.all);
	ckpt_refs_repair r;
	OK(ckpt_store_repair_refs(s, &r));
	ck_assert_uint_eq(r.chunks, 2);
	ck_assert_uint_eq(r.bytes, 300);
	st = check(s, &l);
	ck_assert_uint_eq(st.problems, 0);
	ck_assert_uint_eq(st.chunks, 2);
	verify_all(s);
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_repair_of_a_read_only_store_is_refused)
{
	ckpt_store *s = test_store_create(storepath, 0);
	commit(s, 1);
	ckpt_store_close(s);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_refs_repair r;
	ck_assert_int_eq(ckpt_store_repair_refs(s, &r), -EROFS);
	ckpt_store_close(s);
}
END_TEST

static Suite *refs_suite(void)
{
	Suite *su = suite_create("store_refs");
	TCase *tc = tcase_create("refs");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_a_sound_store_has_every_count_right);
	tcase_add_test(tc, test_blobs_of_a_damaged_checkpoint_deleted_by_retention_are_freed);
	tcase_add_test(tc, test_a_count_below_its_references_is_reported_and_raised);
	tcase_add_test(tc, test_stray_chunks_are_reported_and_freed);
	tcase_add_test(tc, test_repair_of_a_read_only_store_is_refused);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(refs_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
