/* tests/unit/check_store.c - Check suite for libckpt (store/)
 *
 * Each test works in a fresh mkdtemp directory that it removes. Small chunk sizes (64 bytes)
 * exercise many chunks on small data; no_sync is used wherever durability is not under test.
 * Tests that need two processes on one store fork: LMDB forbids opening one environment twice
 * in a process.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt/store.h"
#include "fs/cli.h"
#include "store/records.h"
#include "store/store_int.h"
#include "test_dir.h"

static char tmpdir[256];
static char storepath[512];

static void setup(void)
{
	test_store_dir_make(tmpdir, sizeof(tmpdir), storepath, sizeof(storepath), "check_store");
}

static void teardown(void)
{
	chmod(tmpdir, 0700);
	test_dir_remove(tmpdir);
}

static ckpt_run_meta test_meta(const char *monitor, ckpt_metric_mode mode)
{
	return (ckpt_run_meta){
	    .model = "mlp",
	    .layers = "784,256,10",
	    .optimizer = "sgd",
	    .hyperparams = "{\"lr\":0.1}",
	    .dataset = "fashion-mnist",
	    .seed = 42,
	    .monitor = monitor,
	    .monitor_mode = mode,
	};
}

static ckpt_store *make_store(uint64_t chunk, uint32_t keep_last, uint32_t keep_top,
                              ckpt_metric_mode mode)
{
	ckpt_run_meta m = test_meta("val_loss", mode);
	ckpt_store_options o = {
	    .chunk_size = chunk, .keep_last = keep_last, .keep_top = keep_top, .no_sync = true};
	ckpt_store *s = NULL;
	OK(ckpt_store_create(&s, storepath, &m, &o));
	return s;
}

static void fill(void *buf, size_t len, uint32_t seed)
{
	uint8_t *p = buf;
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/* commit one epoch holding one float32 tensor "w" of n elements filled from seed */
static void commit_simple(ckpt_store *s, uint64_t epoch, size_t n, uint32_t seed,
                          const char *metric, double value)
{
	float *w = malloc(n * sizeof(float) + 1);
	fill(w, n * sizeof(float), seed);
	uint64_t shape[1] = {n};
	ckpt_writer *wr;
	OK(ckpt_writer_begin(&wr, s, epoch));
	OK(ckpt_writer_put_tensor(wr, "w", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape, "cpu", w,
	                          n * sizeof(float)));
	if (metric)
		OK(ckpt_writer_set_metric(wr, metric, value));
	ckpt_writer_set_step(wr, epoch * 10);
	OK(ckpt_writer_commit(wr));
	free(w);
}

static ckpt_store_stats stats_of(ckpt_store *s)
{
	ckpt_snapshot *snap;
	ckpt_store_stats st;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_stats(&st, snap));
	ckpt_snapshot_close(snap);
	return st;
}

/* Whole-store invariants, read straight from LMDB: every blob's refcount equals the number of
 * tensors referencing it, every blob has exactly its chunks, no chunk is orphaned, the index
 * matches the checkpoints and "best" is what the index says. */
static void check_invariants(ckpt_store *s)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	ck_assert_int_eq(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
	struct ref {
		uint8_t hash[16];
		uint64_t count;
	} *refs = NULL;
	size_t nrefs = 0, nckpt = 0;
	ck_assert_int_eq(mdb_cursor_open(txn, s->db_ckpt, &cur), 0);
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		store_ckpt_rec *r;
		ck_assert_int_eq(store_ckpt_decode(&r, v.mv_data, v.mv_size, NULL, 0), 0);
		nckpt++;
		for (size_t i = 0; i < r->ntensors; i++) {
			size_t j = 0;
			while (j < nrefs && memcmp(refs[j].hash, r->tensors[i].hash, 16) != 0)
				j++;
			if (j == nrefs) {
				refs = realloc(refs, (nrefs + 1) * sizeof(*refs));
				memcpy(refs[nrefs].hash, r->tensors[i].hash, 16);
				refs[nrefs++].count = 0;
			}
			refs[j].count++;
		}
		store_ckpt_free(r);
	}
	mdb_cursor_close(cur);
	MDB_stat st;
	ck_assert_int_eq(mdb_stat(txn, s->db_index, &st), 0);
	ck_assert_uint_eq(st.ms_entries, nckpt);
	ck_assert_int_eq(mdb_stat(txn, s->db_blobs, &st), 0);
	ck_assert_uint_eq(st.ms_entries, nrefs);
	uint64_t chunks = 0;
	for (size_t j = 0; j < nrefs; j++) {
		MDB_val key = {16, refs[j].hash};
		store_blob_rec b;
		ck_assert_int_eq(mdb_get(txn, s->db_blobs, &key, &v), 0);
		ck_assert_int_eq(store_blob_decode(&b, v.mv_data, v.mv_size, NULL, 0), 0);
		ck_assert_uint_eq(b.refcount, refs[j].count);
		for (uint32_t i = 0; i < b.nchunks; i++) {
			uint8_t ck[STORE_CHUNK_KEY_LEN];
			store_chunk_key(ck, refs[j].hash, i);
			MDB_val ckey = {sizeof(ck), ck};
			ck_assert_int_eq(mdb_get(txn, s->db_chunks, &ckey, &v), 0);
			ck_assert_uint_eq(ckpt_crc32(0, v.mv_data, v.mv_size),
			                  store_blob_crc(&b, i));
		}
		chunks += b.nchunks;
	}
	ck_assert_int_eq(mdb_stat(txn, s->db_chunks, &st), 0);
	ck_assert_uint_eq(st.ms_entries, chunks);
	uint64_t best[1];
	size_t nbest;
	ck_assert_int_eq(store_top_k(s, txn, best, 1, &nbest), 0);
	MDB_val bk = {4, "best"};
	int rc = mdb_get(txn, s->db_meta, &bk, &v);
	if (nbest == 0) {
		ck_assert_int_eq(rc, MDB_NOTFOUND);
	} else {
		ck_assert_int_eq(rc, 0);
		store_best_rec stored;
		ck_assert_int_eq(store_best_decode(&stored, v.mv_data, v.mv_size, NULL, 0), 0);
		ck_assert_uint_eq(stored.version, STORE_REC_VERSION);
		ck_assert_uint_eq(stored.epoch, best[0]);
	}
	mdb_txn_abort(txn);
	/* ckpt verify's check of the same invariants agrees */
	ckpt_snapshot *snap;
	ckpt_refs_stats rs;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_check_refs(&rs, snap, NULL, NULL));
	ckpt_snapshot_close(snap);
	ck_assert(rs.complete);
	ck_assert_uint_eq(rs.problems, 0);
	ck_assert_uint_eq(rs.blobs, nrefs);
	ck_assert_uint_eq(rs.chunks, chunks);
	uint64_t nrefs_total = 0;
	for (size_t j = 0; j < nrefs; j++)
		nrefs_total += refs[j].count;
	ck_assert_uint_eq(rs.references, nrefs_total);
	free(refs);
}

/* Check every record and every tensor of every checkpoint in @p snap, the first of which must
 * be @p first_epoch; returns how many checkpoints there are. */
static size_t verify_every_checkpoint(ckpt_snapshot *snap, uint64_t first_epoch)
{
	uint64_t *epochs;
	size_t n;
	OK(ckpt_snapshot_list(&epochs, &n, snap));
	ck_assert_uint_ge(n, 1);
	ck_assert_uint_eq(epochs[0], first_epoch);
	for (size_t i = 0; i < n; i++) {
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, epochs[i]));
		OK(ckpt_snapshot_check_records(snap, epochs[i]));
		for (size_t k = 0; k < ckpt_checkpoint_tensor_count(c); k++)
			OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, k)));
	}
	free(epochs);
	return n;
}

/* ---- tensor helpers ---- */

START_TEST(test_dtype_table_and_crc32_are_right)
{
	static const char *names[] = {"float32", "float64", "float16", "bfloat16", "int64",
	                              "int32",   "int16",   "int8",    "uint8",    "bool"};
	static const size_t sizes[] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};
	for (int d = 1; d <= 10; d++) {
		ck_assert_str_eq(ckpt_dtype_name((ckpt_dtype)d), names[d - 1]);
		ck_assert_uint_eq(ckpt_dtype_itemsize((ckpt_dtype)d), sizes[d - 1]);
		ckpt_dtype back;
		OK(ckpt_dtype_from_name(&back, names[d - 1]));
		ck_assert_int_eq(back, d);
	}
	ck_assert_ptr_null(ckpt_dtype_name((ckpt_dtype)0));
	ck_assert_uint_eq(ckpt_dtype_itemsize((ckpt_dtype)11), 0);
	ckpt_dtype d;
	ck_assert_int_eq(ckpt_dtype_from_name(&d, "float"), -EINVAL);
	ck_assert_uint_eq(ckpt_crc32(0, "123456789", 9), 0xCBF43926u);
	uint64_t n, big[2] = {UINT64_MAX / 2, 3}, zero[3] = {5, 0, 7};
	OK(ckpt_shape_numel(&n, 0, NULL));
	ck_assert_uint_eq(n, 1);
	OK(ckpt_shape_numel(&n, 3, zero));
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(ckpt_shape_numel(&n, 2, big), -EOVERFLOW);
	ck_assert_int_eq(ckpt_shape_numel(&n, 9, zero), -EINVAL);
	ck_assert(ckpt_device_is_valid("cpu"));
	ck_assert(ckpt_device_is_valid("cuda:0"));
	ck_assert(ckpt_device_is_valid("cuda"));
	ck_assert(!ckpt_device_is_valid("cuda:"));
	ck_assert(!ckpt_device_is_valid("cuda:1000"));
	ck_assert(!ckpt_device_is_valid("tpu"));
	ck_assert(!ckpt_device_is_valid(NULL));
	ck_assert_str_ne(ckpt_strerror(CKPT_ECORRUPT), "");
	ck_assert_str_ne(ckpt_strerror(-ENOENT), "");
	ck_assert_ptr_nonnull(ckpt_strerror(12345));
}
END_TEST

START_TEST(test_crc32_matches_zlib_for_every_length_and_alignment)
{
	size_t cap = 1 << 16;
	unsigned char *buf = malloc(cap + 64);
	fill(buf, cap + 64, 3);
	for (size_t len = 0; len <= 600; len++)
		for (size_t off = 0; off < 16; off += 5)
			ck_assert_uint_eq(ckpt_crc32(0x12345678u, buf + off, len),
			                  (uint32_t)crc32(0x12345678u, buf + off, (uInt)len));
	srand(11);
	for (int i = 0; i < 300; i++) {
		size_t len = (size_t)rand() % cap, off = (size_t)rand() % 64;
		uint32_t seed = (uint32_t)rand();
		ck_assert_uint_eq(ckpt_crc32(seed, buf + off, len),
		                  (uint32_t)crc32(seed, buf + off, (uInt)len));
	}
	/* continuing a CRC across pieces equals one pass */
	uint32_t whole = ckpt_crc32(0, buf, cap), parts = 0;
	for (size_t off = 0; off < cap; off += 1000)
		parts = ckpt_crc32(parts, buf + off, cap - off < 1000 ? cap - off : 1000);
	ck_assert_uint_eq(whole, parts);
	free(buf);
}
END_TEST

/* ---- round trips ---- */

START_TEST(test_every_dtype_round_trips_including_scalars_and_empty)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	uint8_t data[10][1000];
	uint64_t shapes[10][3] = {{3, 5, 7}, {0},  {},     {4, 4}, {10},
	                          {2, 0, 3}, {33}, {1000}, {999},  {17}};
	uint32_t ndims[10] = {3, 1, 0, 2, 1, 3, 1, 1, 1, 1};
	const char *devs[10] = {"cpu", "cuda:0", NULL,  "cuda:1", "cpu",
	                        "cpu", "cuda",   "cpu", "cpu",    "cpu"};
	ckpt_writer *w;
	OK(ckpt_writer_begin(&w, s, 1));
	for (int d = 1; d <= 10; d++) {
		uint64_t numel;
		OK(ckpt_shape_numel(&numel, ndims[d - 1], shapes[d - 1]));
		uint64_t nbytes = numel * ckpt_dtype_itemsize((ckpt_dtype)d);
		ck_assert_uint_le(nbytes, sizeof(data[0]));
		fill(data[d - 1], sizeof(data[0]), (uint32_t)d);
		char name[32];
		snprintf(name, sizeof(name), "t%d.%s", d, ckpt_dtype_name((ckpt_dtype)d));
		OK(ckpt_writer_put_tensor(w, name, d % 2 ? CKPT_GROUP_MODEL : CKPT_GROUP_OPTIMIZER,
		                          (ckpt_dtype)d, ndims[d - 1], shapes[d - 1], devs[d - 1],
		                          data[d - 1], nbytes));
	}
	ckpt_writer_set_step(w, 1234);
	OK(ckpt_writer_set_metric(w, "val_loss", 0.5));
	OK(ckpt_writer_set_metric(w, "acc", 0.9));
	OK(ckpt_writer_set_metric(w, "val_loss", 0.25)); /* last value wins */
	OK(ckpt_writer_set_extra(w, "rng", "\x01\x02\x00\x03", 4));
	OK(ckpt_writer_set_extra(w, "empty", NULL, 0));
	int64_t before = (int64_t)time(NULL) * 1000000000;
	OK(ckpt_writer_commit(w));
	ckpt_store_close(s);

	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	const ckpt_run_meta *m = ckpt_store_meta(s);
	ck_assert_str_eq(m->model, "mlp");
	ck_assert_str_eq(m->layers, "784,256,10");
	ck_assert_str_eq(m->hyperparams, "{\"lr\":0.1}");
	ck_assert_str_eq(m->monitor, "val_loss");
	ck_assert_uint_eq(m->seed, 42);
	ck_assert_uint_eq(ckpt_store_chunk_size(s), 64);
	ck_assert_str_eq(ckpt_store_path(s), storepath);
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	ck_assert_uint_eq(ckpt_checkpoint_epoch(c), 1);
	ck_assert_uint_eq(ckpt_checkpoint_step(c), 1234);
	ck_assert_int_ge(ckpt_checkpoint_time_ns(c), before - 2000000000LL);
	ck_assert(ckpt_checkpoint_is_best(c));
	ck_assert_uint_eq(ckpt_checkpoint_metric_count(c), 2);
	const char *mn;
	double v;
	OK(ckpt_checkpoint_metric_at(c, 0, &mn, &v));
	ck_assert_str_eq(mn, "acc");
	OK(ckpt_checkpoint_metric(c, "val_loss", &v));
	ck_assert(v == 0.25);
	ck_assert_int_eq(ckpt_checkpoint_metric(c, "nope", &v), -ENOENT);
	ck_assert_int_eq(ckpt_checkpoint_metric_at(c, 2, &mn, &v), -ERANGE);
	const void *xd;
	size_t xl;
	OK(ckpt_checkpoint_extra(c, "rng", &xd, &xl));
	ck_assert_uint_eq(xl, 4);
	ck_assert_mem_eq(xd, "\x01\x02\x00\x03", 4);
	OK(ckpt_checkpoint_extra(c, "empty", &xd, &xl));
	ck_assert_uint_eq(xl, 0);
	ck_assert_uint_eq(ckpt_checkpoint_extra_count(c), 2);
	ck_assert_uint_eq(ckpt_checkpoint_tensor_count(c), 10);
	ck_assert_ptr_null(ckpt_checkpoint_tensor_at(c, 10));
	uint64_t total = 0;
	for (int d = 1; d <= 10; d++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, (size_t)d - 1);
		char name[32];
		snprintf(name, sizeof(name), "t%d.%s", d, ckpt_dtype_name((ckpt_dtype)d));
		ck_assert_str_eq(t->name, name);
		ck_assert_int_eq(t->dtype, d);
		ck_assert_uint_eq(t->index, (uint32_t)d - 1);
		ck_assert_uint_eq(t->ndim, ndims[d - 1]);
		for (uint32_t k = 0; k < t->ndim; k++)
			ck_assert_uint_eq(t->shape[k], shapes[d - 1][k]);
		ck_assert_str_eq(t->device, devs[d - 1] ? devs[d - 1] : "cpu");
		ck_assert_uint_eq(t->crc32, ckpt_crc32(0, data[d - 1], t->nbytes));
		ck_assert_uint_eq(t->nchunks, (t->nbytes + 63) / 64);
		const ckpt_tensor_info *found;
		OK(ckpt_checkpoint_find_tensor(&found, c, t->group, name));
		ck_assert_ptr_eq(found, t);
		ck_assert_int_eq(ckpt_checkpoint_find_tensor(&found, c, CKPT_GROUP_EXTRA, name),
		                 -ENOENT);
		uint8_t back[1000];
		OK(ckpt_tensor_read(back, snap, t, 0, t->nbytes));
		ck_assert_mem_eq(back, data[d - 1], t->nbytes);
		OK(ckpt_tensor_verify(snap, t));
		total += t->nbytes;
	}
	ck_assert_uint_eq(ckpt_checkpoint_nbytes(c), total);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_multi_chunk_tensors_read_across_chunk_boundaries)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	size_t n = 1001; /* 4004 bytes: 62 full chunks and one of 36 */
	commit_simple(s, 1, n, 7, "val_loss", 1.0);
	float *want = malloc(n * 4);
	fill(want, n * 4, 7);
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, 0);
	ck_assert_uint_eq(t->nchunks, 63);
	ck_assert_uint_eq(t->chunk_size, 64);
	uint32_t crc = 0;
	for (uint32_t i = 0; i < t->nchunks; i++) {
		const void *p;
		size_t len;
		OK(ckpt_tensor_chunk(&p, &len, snap, t, i, true));
		ck_assert_uint_eq(len, i == 62 ? 36 : 64);
		ck_assert_mem_eq(p, (uint8_t *)want + i * 64, len);
		crc = ckpt_crc32(crc, p, len);
	}
	ck_assert_uint_eq(crc, t->crc32);
	const void *p;
	size_t len;
	ck_assert_int_eq(ckpt_tensor_chunk(&p, &len, snap, t, 63, false), -ERANGE);
	uint8_t buf[300];
	for (uint64_t off = 0; off + sizeof(buf) <= n * 4; off += 37) {
		OK(ckpt_tensor_read(buf, snap, t, off, sizeof(buf)));
		ck_assert_mem_eq(buf, (uint8_t *)want + off, sizeof(buf));
	}
	OK(ckpt_tensor_read(buf, snap, t, n * 4, 0));
	ck_assert_int_eq(ckpt_tensor_read(buf, snap, t, n * 4 - 10, 11), -ERANGE);
	ck_assert_int_eq(ckpt_tensor_read(buf, snap, t, UINT64_MAX, 2), -ERANGE);
	ckpt_snapshot_close(snap);
	free(want);
	ckpt_store_close(s);
}
END_TEST

extern int store_test_copy_threads;

/* Chunks of 8 MiB and more are copied into the transaction by several threads: every byte
 * lands where it belongs, with 2, 3 and 4 threads, also in a last chunk that is not a whole
 * number of pages. */
static void big_chunks_round_trip(int threads)
{
	store_test_copy_threads = threads;
	ckpt_store *s = make_store(12u << 20, 0, 0, CKPT_MODE_MIN);
	size_t n = (33u << 20) / 4 + 1237; /* 3 chunks: 12 MiB, 12 MiB and 9 MiB + 4948 bytes */
	commit_simple(s, 1, n, 11 + (uint32_t)threads, "val_loss", 1.0);
	store_test_copy_threads = 0;
	uint8_t *want = malloc(n * 4), *got = malloc(n * 4);
	ck_assert_ptr_nonnull(want);
	ck_assert_ptr_nonnull(got);
	fill(want, n * 4, 11 + (uint32_t)threads);
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, 0);
	ck_assert_uint_eq(t->nchunks, 3);
	OK(ckpt_tensor_read(got, snap, t, 0, n * 4));
	for (size_t i = 0; i < n * 4; i += 4096) /* first differing page, not a 120 MB dump */
		ck_assert_msg(memcmp(got + i, want + i, i + 4096 <= n * 4 ? 4096 : n * 4 - i) == 0,
		              "bytes differ in the page at offset %zu", i);
	uint32_t crc = ckpt_crc32(0, got, n * 4);
	ck_assert_uint_eq(crc, t->crc32);
	ckpt_snapshot_close(snap);
	free(want);
	free(got);
	ckpt_store_close(s);
	ck_assert_int_eq(ckpt_store_discard(storepath, false), 0);
}

static void *read_sigmask(void *arg)
{
	pthread_sigmask(SIG_BLOCK, NULL, (sigset_t *)arg);
	return NULL;
}

/* libckpt's helper threads leave signals to the program's threads, but not faults */
START_TEST(test_helper_threads_block_asynchronous_signals_only)
{
	sigset_t mine, theirs;
	sigemptyset(&mine);
	pthread_sigmask(SIG_BLOCK, NULL, &mine);
	pthread_t t;
	ck_assert_int_eq(store_thread_start(&t, read_sigmask, &theirs), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	int blocked[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGALRM, SIGCHLD, SIGUSR1};
	for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++)
		ck_assert_msg(sigismember(&theirs, blocked[i]) == 1, "signal %d not blocked",
		              blocked[i]);
	int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		ck_assert_msg(sigismember(&theirs, faults[i]) == 0, "fault %d blocked", faults[i]);
	sigset_t now;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	for (int sig = 1; sig < 32; sig++) /* the caller's own mask is as it was */
		ck_assert_int_eq(sigismember(&now, sig), sigismember(&mine, sig));
}
END_TEST

START_TEST(test_big_chunks_copied_by_several_threads_read_back_exactly)
{
	for (int threads = 2; threads <= 4; threads++)
		big_chunks_round_trip(threads);
}
END_TEST

START_TEST(test_abort_leaves_nothing)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	commit_simple(s, 1, 100, 1, "val_loss", 1.0);
	ckpt_store_stats before = stats_of(s);
	float data[500];
	fill(data, sizeof(data), 99);
	uint64_t shape[1] = {500};
	ckpt_writer *w;
	OK(ckpt_writer_begin(&w, s, 2));
	OK(ckpt_writer_put_tensor(w, "w", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape, NULL,
	                          data, sizeof(data)));
	OK(ckpt_writer_set_metric(w, "val_loss", 0.1));
	ckpt_writer_abort(w);
	ckpt_writer_abort(NULL);
	ckpt_store_stats after = stats_of(s);
	ck_assert_uint_eq(after.checkpoints, 1);
	ck_assert_uint_eq(after.chunks, before.chunks);
	ck_assert_uint_eq(after.stored_bytes, before.stored_bytes);
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	uint64_t e;
	const ckpt_checkpoint *c;
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&c, snap, 2), -ENOENT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "epoch 2"));
	OK(ckpt_snapshot_best(&e, snap));
	ck_assert_uint_eq(e, 1);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_bad_tensor_arguments_are_rejected)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	float d[6] = {0};
	uint64_t shape[2] = {2, 3}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
	ckpt_writer *w;
	OK(ckpt_writer_begin(&w, s, 1));
	ck_assert_int_eq(
	    ckpt_writer_put_tensor(w, "", 0, CKPT_DTYPE_FLOAT32, 2, shape, NULL, d, 24), -EINVAL);
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "a", 0, (ckpt_dtype)77, 2, shape, NULL, d, 24),
	                 -EINVAL);
	ck_assert_int_eq(
	    ckpt_writer_put_tensor(w, "a", 0, CKPT_DTYPE_FLOAT32, 2, shape, NULL, d, 20), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "a"));
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "a", 0, CKPT_DTYPE_FLOAT32, 9, nine, NULL, d, 4),
	                 -EINVAL);
	ck_assert_int_eq(
	    ckpt_writer_put_tensor(w, "a", 0, CKPT_DTYPE_FLOAT32, 2, shape, "gpu", d, 24), -EINVAL);
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "a", (ckpt_tensor_group)5, CKPT_DTYPE_FLOAT32, 2,
	                                        shape, NULL, d, 24),
	                 -EINVAL);
	char longname[CKPT_MAX_NAME + 2];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	ck_assert_int_eq(
	    ckpt_writer_put_tensor(w, longname, 0, CKPT_DTYPE_FLOAT32, 2, shape, NULL, d, 24),
	    -EINVAL);
	OK(ckpt_writer_put_tensor(w, "a", 0, CKPT_DTYPE_FLOAT32, 2, shape, NULL, d, 24));
	ck_assert_int_eq(
	    ckpt_writer_put_tensor(w, "a", 0, CKPT_DTYPE_FLOAT32, 2, shape, NULL, d, 24), -EEXIST);
	OK(ckpt_writer_put_tensor(w, "a", CKPT_GROUP_OPTIMIZER, CKPT_DTYPE_FLOAT32, 2, shape, NULL,
	                          d, 24));
	/* empty, but no client could load it: dims past int64, strides past 2^63 bytes */
	uint64_t huge[2] = {0, (uint64_t)1 << 63}, wide[3] = {0, (uint64_t)1 << 61, 4};
	ck_assert_int_eq(
	    ckpt_writer_put_tensor(w, "h", 0, CKPT_DTYPE_FLOAT32, 2, huge, NULL, NULL, 0), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "too large"));
	ck_assert_int_eq(
	    ckpt_writer_put_tensor(w, "h", 0, CKPT_DTYPE_FLOAT32, 3, wide, NULL, NULL, 0), -EINVAL);
	uint64_t ok_empty[2] = {0, (uint64_t)1 << 40};
	OK(ckpt_writer_put_tensor(w, "h", 0, CKPT_DTYPE_FLOAT32, 2, ok_empty, NULL, NULL, 0));
	ck_assert_int_eq(ckpt_writer_set_metric(w, "", 1.0), -EINVAL);
	ck_assert_int_eq(ckpt_writer_set_extra(w, "", "x", 1), -EINVAL);
	OK(ckpt_writer_commit(w));
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_many_tensors_keep_their_names_devices_and_order)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	static int32_t vals[300];
	ckpt_writer *w;
	OK(ckpt_writer_begin(&w, s, 1));
	for (int i = 0; i < 300; i++) {
		char name[32], dev[16];
		vals[i] = i;
		snprintf(name, sizeof(name), "layer%03d.bias", i);
		snprintf(dev, sizeof(dev), "cuda:%d", i % 8);
		OK(ckpt_writer_put_tensor(w, name, 0, CKPT_DTYPE_INT32, 0, NULL, dev, &vals[i], 4));
	}
	OK(ckpt_writer_commit(w));
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	ck_assert_uint_eq(ckpt_checkpoint_tensor_count(c), 300);
	for (int i = 0; i < 300; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, (size_t)i);
		char name[32], dev[16];
		snprintf(name, sizeof(name), "layer%03d.bias", i);
		snprintf(dev, sizeof(dev), "cuda:%d", i % 8);
		ck_assert_str_eq(t->name, name);
		ck_assert_str_eq(t->device, dev);
		int32_t v;
		OK(ckpt_tensor_read(&v, snap, t, 0, 4));
		ck_assert_int_eq(v, i);
	}
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

/* ---- best, top-k, retention ---- */

static uint64_t best_of(ckpt_store *s, int *rc)
{
	ckpt_snapshot *snap;
	uint64_t e = 0;
	OK(ckpt_snapshot_open(&snap, s));
	*rc = ckpt_snapshot_best(&e, snap);
	ckpt_snapshot_close(snap);
	return e;
}

START_TEST(test_best_tracks_min_and_max_and_ignores_nan)
{
	for (int mode = 0; mode <= 1; mode++) {
		ckpt_store *s = make_store(64, 0, 0, (ckpt_metric_mode)mode);
		int rc;
		commit_simple(s, 1, 4, 1, "val_loss", NAN);
		best_of(s, &rc);
		ck_assert_int_eq(rc, -ENOENT);
		commit_simple(s, 2, 4, 2, NULL, 0);
		commit_simple(s, 3, 4, 3, "val_loss", INFINITY);
		commit_simple(s, 4, 4, 4, "val_loss", -INFINITY);
		commit_simple(s, 5, 4, 5, "other", 0.0);
		best_of(s, &rc);
		ck_assert_int_eq(rc, -ENOENT);
		commit_simple(s, 6, 4, 6, "val_loss", 0.5);
		commit_simple(s, 7, 4, 7, "val_loss", 0.3);
		commit_simple(s, 8, 4, 8, "val_loss", 0.7);
		commit_simple(s, 9, 4, 9, "val_loss", 0.3); /* tie: earlier epoch stays best */
		commit_simple(s, 10, 4, 10, "val_loss", NAN);
		uint64_t best = best_of(s, &rc);
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(best, mode == CKPT_MODE_MIN ? 7 : 8);
		ckpt_snapshot *snap;
		OK(ckpt_snapshot_open(&snap, s));
		uint64_t top[10];
		size_t n;
		OK(ckpt_snapshot_top_k(top, 10, &n, snap));
		ck_assert_uint_eq(n, 4);
		uint64_t want_min[] = {7, 9, 6, 8}, want_max[] = {8, 6, 7, 9};
		for (size_t i = 0; i < n; i++)
			ck_assert_uint_eq(top[i],
			                  mode == CKPT_MODE_MIN ? want_min[i] : want_max[i]);
		OK(ckpt_snapshot_top_k(top, 2, &n, snap));
		ck_assert_uint_eq(n, 2);
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, best));
		ck_assert(ckpt_checkpoint_is_best(c));
		OK(ckpt_snapshot_checkpoint(&c, snap, 10));
		ck_assert(!ckpt_checkpoint_is_best(c));
		ckpt_snapshot_close(snap);
		/* replacing the best epoch with a worse value moves best */
		commit_simple(s, mode == CKPT_MODE_MIN ? 7 : 8, 4, 11, "val_loss",
		              mode == CKPT_MODE_MIN ? 9.0 : -9.0);
		best = best_of(s, &rc);
		ck_assert_uint_eq(best, mode == CKPT_MODE_MIN ? 9 : 6);
		ckpt_store_close(s);
		teardown();
		setup();
	}
}
END_TEST

static void list_epochs(ckpt_store *s, uint64_t *out, size_t *n)
{
	ckpt_snapshot *snap;
	uint64_t *e;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_list(&e, n, snap));
	memcpy(out, e, *n * sizeof(*e));
	free(e);
	ckpt_snapshot_close(snap);
}

/* Commits update the best incrementally (compare with the stored best); replacing the best
 * epoch, ties, NaNs, both modes and retention must give what a full scan of the index gives. */
START_TEST(test_incremental_best_matches_a_full_scan_through_replacements_and_ties)
{
	static const double values[] = {0.5, 0.25, 0.75, 0.25, NAN, 1.0};
	for (int round = 0; round < 4; round++) {
		ckpt_store *s = make_store(64, round >= 2 ? 3 : 0, round >= 2 ? 1 : 0,
		                           round % 2 ? CKPT_MODE_MAX : CKPT_MODE_MIN);
		srand(11 + (unsigned)round);
		for (int i = 0; i < 60; i++) {
			uint64_t epoch = 1 + (uint64_t)(rand() % 12); /* often an existing epoch */
			double v = values[rand() % 6];
			commit_simple(s, epoch, 4, (uint32_t)i, rand() % 7 ? "val_loss" : NULL, v);
			check_invariants(s); /* the stored best equals the index's top 1 */
		}
		ckpt_store_close(s);
		test_dir_remove(storepath);
	}
}
END_TEST

START_TEST(test_retention_keeps_last_and_top_and_never_drops_the_best)
{
	ckpt_store *s = make_store(64, 2, 0, CKPT_MODE_MIN);
	double vals[] = {0, 0.9, 0.1, 0.8, 0.7, 0.6, 0.5, 0.4};
	for (uint64_t e = 1; e <= 7; e++)
		commit_simple(s, e, 50, (uint32_t)e, "val_loss", vals[e]);
	uint64_t got[16];
	size_t n;
	list_epochs(s, got, &n);
	ck_assert_uint_eq(n, 3); /* best 2 + last two */
	ck_assert_uint_eq(got[0], 2);
	ck_assert_uint_eq(got[1], 6);
	ck_assert_uint_eq(got[2], 7);
	/* every unique chunk of deleted epochs is freed: 3 tensors x 4 chunks (200 bytes) */
	ckpt_store_stats st = stats_of(s);
	ck_assert_uint_eq(st.chunks, 12);
	ck_assert_uint_eq(st.stored_bytes, 600);
	check_invariants(s);

	/* gc with new settings persists them */
	uint32_t deleted;
	OK(ckpt_store_gc(s, 1, 0, &deleted));
	ck_assert_uint_eq(deleted, 1);
	list_epochs(s, got, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(got[0], 2);
	ck_assert_uint_eq(got[1], 7);
	ckpt_store_close(s);
	OK(ckpt_store_open(&s, storepath, 0));
	uint32_t kl, kt;
	ckpt_store_retention(s, &kl, &kt);
	ck_assert_uint_eq(kl, 1);
	ck_assert_uint_eq(kt, 0);
	commit_simple(s, 8, 50, 8, "val_loss", 0.05); /* new best: old best 2 may go now */
	list_epochs(s, got, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(got[0], 8);
	commit_simple(s, 9, 50, 9, "val_loss", 0.5);
	commit_simple(s, 10, 50, 10, NULL, 0);
	list_epochs(s, got, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(got[0], 8);
	ck_assert_uint_eq(got[1], 10);
	/* keep-top 2 */
	OK(ckpt_store_gc(s, 0, 0, NULL));
	for (uint64_t e = 11; e <= 14; e++)
		commit_simple(s, e, 50, (uint32_t)e, "val_loss", 0.01 * (double)e);
	OK(ckpt_store_gc(s, 1, 2, &deleted));
	list_epochs(s, got, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(got[0], 8);
	ck_assert_uint_eq(got[1], 11);
	ck_assert_uint_eq(got[2], 14);
	/* rewriting an old epoch keeps it (a commit never deletes what it just wrote) */
	commit_simple(s, 3, 50, 3, "val_loss", 0.9);
	list_epochs(s, got, &n);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(got[0], 3);
	check_invariants(s);
	ckpt_store_close(s);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ck_assert_int_eq(ckpt_store_gc(s, 1, 1, NULL), -EROFS);
	ckpt_store_close(s);
}
END_TEST

/* a random mix of commits (replacing epochs, sharing contents, NaN and missing metrics) and
 * gc calls, checked after every step against a simple model of retention and best */
typedef struct model_ckpt {
	bool present, has_value;
	double value;
	int pattern[3];
	int ntensors;
} model_ckpt;

static bool model_better(const model_ckpt *m, int a, int b)
{
	return m[a].value < m[b].value || (m[a].value == m[b].value && a < b);
}

static void model_retain(model_ckpt *m, int nepochs, uint32_t keep_last, uint32_t keep_top,
                         int protect)
{
	if (keep_last == 0)
		return;
	int ranked[64], nr = 0, present[64], np = 0;
	for (int e = 1; e <= nepochs; e++) {
		if (!m[e].present)
			continue;
		present[np++] = e;
		if (m[e].has_value) {
			int j = nr++;
			while (j > 0 && model_better(m, e, ranked[j - 1])) {
				ranked[j] = ranked[j - 1];
				j--;
			}
			ranked[j] = e;
		}
	}
	int top = keep_top ? (int)keep_top : 1;
	for (int i = 0; i + (int)keep_last < np; i++) {
		int e = present[i];
		bool keep = e == protect;
		for (int j = 0; j < top && j < nr; j++)
			keep = keep || ranked[j] == e;
		if (!keep)
			m[e].present = false;
	}
}

START_TEST(test_random_commits_and_gc_match_a_model_of_retention_and_best)
{
	ckpt_store *s = make_store(64, 3, 1, CKPT_MODE_MIN);
	enum { NEPOCHS = 12, NPATTERNS = 6 };
	model_ckpt m[NEPOCHS + 1];
	memset(m, 0, sizeof(m));
	uint32_t keep_last = 3, keep_top = 1;
	static float patterns[NPATTERNS][80];
	static const size_t plen[NPATTERNS] = {0, 1, 16, 17, 64, 80};
	for (int p = 0; p < NPATTERNS; p++)
		fill(patterns[p], sizeof(patterns[p]), (uint32_t)(1000 + p));
	srand(20261122);
	for (int step = 0; step < 150; step++) {
		if (rand() % 10 == 0) {
			keep_last = (uint32_t)(rand() % 5);
			keep_top = (uint32_t)(rand() % 4);
			if (keep_last == 0 && keep_top > 0) { /* refused: it would have no effect */
				ck_assert_int_eq(ckpt_store_gc(s, keep_last, keep_top, NULL), -EINVAL);
				keep_top = 0;
			}
			OK(ckpt_store_gc(s, keep_last, keep_top, NULL));
			model_retain(m, NEPOCHS, keep_last, keep_top, -1);
		} else {
			int e = 1 + rand() % NEPOCHS;
			model_ckpt c = {.present = true, .ntensors = 1 + rand() % 3};
			int kind = rand() % 10;
			c.has_value = kind >= 2;
			c.value = (double)(rand() % 8) / 8.0;
			ckpt_writer *w;
			OK(ckpt_writer_begin(&w, s, (uint64_t)e));
			for (int t = 0; t < c.ntensors; t++) {
				char name[16];
				c.pattern[t] = rand() % NPATTERNS;
				snprintf(name, sizeof(name), "t%d", t);
				uint64_t shape[1] = {plen[c.pattern[t]]};
				OK(ckpt_writer_put_tensor(w, name, 0, CKPT_DTYPE_FLOAT32, 1, shape,
				                          NULL, patterns[c.pattern[t]],
				                          shape[0] * 4));
			}
			if (kind == 0)
				OK(ckpt_writer_set_metric(w, "val_loss", NAN));
			else if (c.has_value)
				OK(ckpt_writer_set_metric(w, "val_loss", c.value));
			OK(ckpt_writer_commit(w));
			m[e] = c;
			model_retain(m, NEPOCHS, keep_last, keep_top, e);
		}
		/* compare */
		uint64_t got[NEPOCHS + 1];
		size_t n, k = 0;
		list_epochs(s, got, &n);
		int best = 0;
		for (int e = 1; e <= NEPOCHS; e++) {
			if (!m[e].present)
				continue;
			ck_assert_msg(k < n && got[k] == (uint64_t)e, "step %d: epoch %d missing",
			              step, e);
			k++;
			if (m[e].has_value && (!best || model_better(m, e, best)))
				best = e;
		}
		ck_assert_msg(k == n, "step %d: store has %zu epochs, model %zu", step, n, k);
		int rc;
		uint64_t b = best_of(s, &rc);
		if (best)
			ck_assert_msg(rc == 0 && b == (uint64_t)best,
			              "step %d: best %llu, model %d", step, (unsigned long long)b,
			              best);
		else
			ck_assert_int_eq(rc, -ENOENT);
		check_invariants(s);
	}
	/* and every stored tensor reads back as its pattern */
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	for (int e = 1; e <= NEPOCHS; e++) {
		if (!m[e].present)
			continue;
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, (uint64_t)e));
		ck_assert_uint_eq(ckpt_checkpoint_tensor_count(c), (size_t)m[e].ntensors);
		for (int t = 0; t < m[e].ntensors; t++) {
			const ckpt_tensor_info *ti = ckpt_checkpoint_tensor_at(c, (size_t)t);
			float back[80];
			ck_assert_uint_eq(ti->nbytes, plen[m[e].pattern[t]] * 4);
			OK(ckpt_tensor_read(back, snap, ti, 0, ti->nbytes));
			ck_assert_mem_eq(back, patterns[m[e].pattern[t]], ti->nbytes);
		}
	}
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

/* ---- dedup ---- */

START_TEST(test_dedup_stores_identical_bytes_once_and_gc_frees_the_last_reference)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	uint8_t frozen[640], moving[640];
	fill(frozen, sizeof(frozen), 1);
	uint64_t shape[1] = {160};
	for (uint64_t e = 1; e <= 3; e++) {
		fill(moving, sizeof(moving), (uint32_t)(100 + e));
		ckpt_writer *w;
		OK(ckpt_writer_begin(&w, s, e));
		OK(ckpt_writer_put_tensor(w, "frozen", 0, CKPT_DTYPE_FLOAT32, 1, shape, NULL,
		                          frozen, sizeof(frozen)));
		OK(ckpt_writer_put_tensor(w, "frozen_copy", 0, CKPT_DTYPE_FLOAT32, 1, shape, NULL,
		                          frozen, sizeof(frozen)));
		OK(ckpt_writer_put_tensor(w, "moving", 0, CKPT_DTYPE_FLOAT32, 1, shape, NULL,
		                          moving, sizeof(moving)));
		OK(ckpt_writer_set_metric(w, "val_loss", (double)e));
		OK(ckpt_writer_commit(w));
	}
	ckpt_store_stats st = stats_of(s);
	ck_assert_uint_eq(st.checkpoints, 3);
	ck_assert_uint_eq(st.tensors, 9);
	ck_assert_uint_eq(st.bytes, 9 * 640);
	ck_assert_uint_eq(st.stored_bytes, 4 * 640);
	ck_assert_uint_eq(st.chunks, 4 * 10);
	check_invariants(s);
	OK(ckpt_store_gc(s, 1, 0, NULL)); /* keeps 1 (best) and 3 (last) */
	st = stats_of(s);
	ck_assert_uint_eq(st.checkpoints, 2);
	ck_assert_uint_eq(st.stored_bytes, 3 * 640);
	ck_assert_uint_eq(st.chunks, 30);
	/* replacing an epoch with identical content frees nothing and rewrites nothing */
	fill(moving, sizeof(moving), 103);
	ckpt_writer *w;
	OK(ckpt_writer_begin(&w, s, 3));
	OK(ckpt_writer_put_tensor(w, "moving", 0, CKPT_DTYPE_FLOAT32, 1, shape, NULL, moving,
	                          sizeof(moving)));
	OK(ckpt_writer_commit(w));
	st = stats_of(s);
	ck_assert_uint_eq(st.stored_bytes, 3 * 640);
	ck_assert_uint_eq(st.tensors, 4);
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, snap, 3));
	ck_assert_uint_eq(ckpt_checkpoint_tensor_count(c), 1);
	OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)));
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	for (size_t i = 0; i < 3; i++)
		OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, i)));
	ckpt_snapshot_close(snap);
	OK(ckpt_store_gc(s, 1, 0, NULL)); /* 1 is still best; 3 is last: nothing to delete */
	commit_simple(s, 4, 8, 1, "val_loss", 0.5);
	OK(ckpt_store_gc(s, 1, 1, NULL)); /* only epoch 4 stays */
	st = stats_of(s);
	ck_assert_uint_eq(st.checkpoints, 1);
	ck_assert_uint_eq(st.stored_bytes, 32);
	ck_assert_uint_eq(st.chunks, 1);
	check_invariants(s);
	ckpt_store_close(s);
}
END_TEST

/* ---- map growth ---- */

START_TEST(test_map_grows_from_a_tiny_initial_map)
{
	ckpt_run_meta m = test_meta("val_loss", CKPT_MODE_MIN);
	ckpt_store_options o = {.chunk_size = 4096, .initial_map_size = 256 << 10, .no_sync = true};
	ckpt_store *s;
	OK(ckpt_store_create(&s, storepath, &m, &o));
	ckpt_store_stats st0 = stats_of(s);
	size_t n = 1 << 20; /* 4 MiB per epoch, 16x the initial map */
	for (uint64_t e = 1; e <= 3; e++)
		commit_simple(s, e, n, (uint32_t)e, "val_loss", 1.0 / (double)e);
	ckpt_store_stats st = stats_of(s);
	ck_assert_uint_gt(st.map_size, st0.map_size);
	ck_assert_uint_eq(st.stored_bytes, 3 * 4 * (uint64_t)n);
	/* the snapshot-open case: growth inside commit's retry path with no snapshot open */
	ckpt_store_close(s);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	for (uint64_t e = 1; e <= 3; e++) {
		OK(ckpt_snapshot_checkpoint(&c, snap, e));
		OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)));
	}
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

extern int store_test_no_pregrow;

START_TEST(test_map_full_is_retried_after_growing_and_waits_for_open_snapshots)
{
	ckpt_run_meta m = test_meta("val_loss", CKPT_MODE_MIN);
	ckpt_store_options o = {.chunk_size = 4096, .initial_map_size = 256 << 10, .no_sync = true};
	ckpt_store *s;
	OK(ckpt_store_create(&s, storepath, &m, &o));
	store_test_no_pregrow = 1;
	commit_simple(s, 1, 1 << 20, 1, "val_loss", 1.0); /* 4 MiB into 256 KiB: MAP_FULL */
	uint64_t size1 = stats_of(s).map_size;
	ck_assert_uint_ge(size1, 4 << 20);
	/* with a snapshot open in this process the map cannot be remapped: a clear error,
	 * nothing written, and the same commit works once the snapshot is closed */
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	size_t n = 8 << 20;
	float *buf = malloc(n * 4);
	fill(buf, n * 4, 2);
	uint64_t shape[1] = {n};
	ckpt_writer *w;
	OK(ckpt_writer_begin(&w, s, 2));
	OK(ckpt_writer_put_tensor(w, "w", 0, CKPT_DTYPE_FLOAT32, 1, shape, NULL, buf, n * 4));
	ck_assert_int_eq(ckpt_writer_commit(w), -EBUSY);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "snapshot"));
	ckpt_snapshot_close(snap);
	ck_assert_uint_eq(stats_of(s).checkpoints, 1);
	OK(ckpt_writer_begin(&w, s, 2));
	OK(ckpt_writer_put_tensor(w, "w", 0, CKPT_DTYPE_FLOAT32, 1, shape, NULL, buf, n * 4));
	OK(ckpt_writer_commit(w));
	store_test_no_pregrow = 0;
	ckpt_store_stats st = stats_of(s);
	ck_assert_uint_eq(st.checkpoints, 2);
	ck_assert_uint_gt(st.map_size, size1);
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, snap, 2));
	OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)));
	ckpt_snapshot_close(snap);
	free(buf);
	ckpt_store_close(s);
}
END_TEST

/* ---- concurrency and crashes ---- */

START_TEST(test_reader_snapshot_stays_consistent_while_a_writer_commits)
{
	ckpt_run_meta m = test_meta("val_loss", CKPT_MODE_MIN);
	ckpt_store_options o = {.chunk_size = 4096, .initial_map_size = 256 << 10, .no_sync = true};
	ckpt_store *s;
	OK(ckpt_store_create(&s, storepath, &m, &o));
	commit_simple(s, 1, 100, 1, "val_loss", 1.0);
	/* same handle: a snapshot does not see a later commit */
	ckpt_snapshot *old;
	OK(ckpt_snapshot_open(&old, s));
	commit_simple(s, 2, 100, 2, "val_loss", 0.5);
	commit_simple(s, 1, 100, 3, "val_loss", 2.0); /* replaces epoch 1 */
	uint64_t e;
	OK(ckpt_snapshot_latest(&e, old));
	ck_assert_uint_eq(e, 1);
	OK(ckpt_snapshot_best(&e, old));
	ck_assert_uint_eq(e, 1);
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, old, 1));
	float want[100], got[100];
	fill(want, sizeof(want), 1);
	OK(ckpt_tensor_read(got, old, ckpt_checkpoint_tensor_at(c, 0), 0, sizeof(got)));
	ck_assert_mem_eq(got, want, sizeof(got));
	ckpt_snapshot_close(old);
	ckpt_store_close(s);

	/* another process writes (and grows the map) while this one reads through a read-write
	 * handle (one handle per store per process), whose snapshots and commit adopt the grown
	 * map; a read-only handle opened afterwards sees it all */
	int pipefd[2];
	ck_assert_int_eq(pipe(pipefd), 0);
	pid_t pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(pipefd[0]);
		ckpt_store *ws;
		if (ckpt_store_open(&ws, storepath, 0))
			_exit(3);
		size_t n = 256 << 10;
		float *buf = malloc(n * 4);
		for (uint64_t ep = 3; ep <= 12; ep++) {
			fill(buf, n * 4, (uint32_t)ep);
			uint64_t shape[1] = {n};
			ckpt_writer *w;
			if (ckpt_writer_begin(&w, ws, ep) ||
			    ckpt_writer_put_tensor(w, "w", 0, CKPT_DTYPE_FLOAT32, 1, shape, NULL,
			                           buf, n * 4) ||
			    ckpt_writer_commit(w))
				_exit(4);
			if (ep == 3 && write(pipefd[1], "x", 1) != 1)
				_exit(5);
		}
		free(buf);
		ckpt_store_close(ws);
		_exit(0);
	}
	close(pipefd[1]);
	char ch;
	ck_assert_int_eq(read(pipefd[0], &ch, 1), 1);
	close(pipefd[0]);
	ckpt_store *rw;
	OK(ckpt_store_open(&rw, storepath, 0));
	int status;
	bool done = false;
	ckpt_snapshot *snap;
	while (!done) {
		done = waitpid(pid, &status, WNOHANG) == pid;
		OK(ckpt_snapshot_open(&snap, rw));
		uint64_t *epochs;
		size_t n;
		OK(ckpt_snapshot_list(&epochs, &n, snap));
		for (size_t i = 0; i < n; i++) {
			OK(ckpt_snapshot_checkpoint(&c, snap, epochs[i]));
			OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)));
		}
		free(epochs);
		ckpt_snapshot_close(snap);
	}
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	OK(ckpt_snapshot_open(&snap, rw));
	OK(ckpt_snapshot_latest(&e, snap));
	ck_assert_uint_eq(e, 12);
	ckpt_snapshot_close(snap);
	commit_simple(rw, 13, 1000, 13, "val_loss", 0.1);
	ckpt_store_close(rw);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_latest(&e, snap));
	ck_assert_uint_eq(e, 13);
	OK(ckpt_snapshot_checkpoint(&c, snap, 12));
	OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)));
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

typedef struct reader_arg {
	ckpt_store *store;
	int *stop;
	int errors, reads;
} reader_arg;

static void *reader_main(void *p)
{
	reader_arg *a = p;
	while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
		ckpt_snapshot *snap;
		uint64_t e;
		const ckpt_checkpoint *c;
		if (ckpt_snapshot_open(&snap, a->store)) {
			a->errors++;
			continue;
		}
		if (ckpt_snapshot_latest(&e, snap) == 0) {
			if (ckpt_snapshot_checkpoint(&c, snap, e) ||
			    ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)))
				a->errors++;
			a->reads++;
		}
		ckpt_snapshot_close(snap);
		struct timespec ts = {0, 200000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

START_TEST(test_threads_share_a_store_handle_while_it_commits_and_grows)
{
	ckpt_run_meta m = test_meta("val_loss", CKPT_MODE_MIN);
	ckpt_store_options o = {.chunk_size = 4096, .initial_map_size = 256 << 10, .no_sync = true};
	ckpt_store *s;
	OK(ckpt_store_create(&s, storepath, &m, &o));
	commit_simple(s, 1, 100, 1, "val_loss", 1.0);
	int stop = 0;
	reader_arg args[3];
	pthread_t th[3];
	for (int i = 0; i < 3; i++) {
		args[i] = (reader_arg){s, &stop, 0, 0};
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
	}
	size_t n = 64 << 10;
	float *buf = malloc(n * 4);
	int busy = 0;
	for (uint64_t e = 2; e <= 20; e++) {
		fill(buf, n * 4, (uint32_t)e);
		uint64_t shape[1] = {n};
		int rc;
		/* the map only grows while no snapshot is open: -EBUSY otherwise, then retry */
		for (int attempt = 0;; attempt++) {
			ckpt_writer *w;
			OK(ckpt_writer_begin(&w, s, e));
			OK(ckpt_writer_put_tensor(w, "w", 0, CKPT_DTYPE_FLOAT32, 1, shape, NULL,
			                          buf, n * 4));
			rc = ckpt_writer_commit(w);
			if (rc != -EBUSY || attempt > 2000)
				break;
			busy++;
			struct timespec ts = {0, 100000};
			nanosleep(&ts, NULL);
		}
		OK(rc);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(args[i].errors, 0);
		ck_assert_int_gt(args[i].reads, 0);
	}
	ckpt_store_stats st = stats_of(s);
	ck_assert_uint_eq(st.checkpoints, 20);
	ck_assert_uint_gt(st.map_size, 256 << 10);
	check_invariants(s);
	free(buf);
	ckpt_store_close(s);
}
END_TEST

/* The writer of test_commit_is_atomic_under_sigkill kills itself right after the Nth LMDB
 * commit that returns once this is set to N: every commit that the store makes is a state some
 * process may be left with. This definition of mdb_txn_commit is the one the store code linked
 * into this program calls; it passes on to LMDB's. */
static int kill_after_commits;

int mdb_txn_commit(MDB_txn *txn)
{
	static int (*real)(MDB_txn *);
	if (!real) {
		void *sym = dlsym(RTLD_NEXT, "mdb_txn_commit");
		if (!sym)
			abort();
		memcpy(&real, &sym, sizeof(real));
	}
	int rc = real(txn);
	if (kill_after_commits > 0 && --kill_after_commits == 0)
		raise(SIGKILL);
	return rc;
}

/* Rounds 0..NKILLED-1: the writer dies right after its (round+1)th LMDB commit since its first
 * checkpoint commit began (a commit split in two transactions leaves a state in which blobs
 * are referenced by no checkpoint: the invariants fail). Later rounds: SIGKILL after a random
 * delay, anywhere inside a synced commit. After each kill every checkpoint verifies and the
 * whole-store invariants hold (refcounts equal references, no orphan blob or chunk). */
#define NKILLED 4
START_TEST(test_commit_is_atomic_under_sigkill)
{
	ckpt_store *s = make_store(4096, 0, 0, CKPT_MODE_MIN);
	commit_simple(s, 1, 1000, 1, "val_loss", 1.0);
	ckpt_store_close(s);
	srand((unsigned)getpid());
	for (int round = 0; round < NKILLED + 8; round++) {
		int pipefd[2];
		ck_assert_int_eq(pipe(pipefd), 0);
		pid_t pid = fork();
		ck_assert_int_ne(pid, -1);
		if (pid == 0) {
			close(pipefd[0]);
			ckpt_store *ws;
			if (ckpt_store_open(&ws, storepath,
			                    0)) /* synced commits: slower, wider window */
				_exit(3);
			size_t n = round < NKILLED ? 1 << 16 : 4 << 20; /* 16 MiB: new bytes every time */
			float *buf = malloc(n * 4);
			for (uint64_t ep = 2;; ep++) {
				fill(buf, 1 << 16, (uint32_t)ep);
				for (size_t off = 1 << 16; off < n * 4; off += 1 << 16) {
					memcpy((uint8_t *)buf + off, buf, 1 << 16);
					buf[off / 4] = (float)ep;
				}
				uint64_t shape[1] = {n};
				ckpt_writer *w;
				if (ckpt_writer_begin(&w, ws, 2 + ep % 3) ||
				    ckpt_writer_put_tensor(w, "big", 0, CKPT_DTYPE_FLOAT32, 1,
				                           shape, NULL, buf, n * 4))
					_exit(4);
				/* tell the parent the (first) commit starts now */
				if (ep == 2) {
					if (round < NKILLED)
						kill_after_commits = round + 1;
					if (write(pipefd[1], "c", 1) != 1)
						_exit(5);
				}
				if (ckpt_writer_commit(w))
					_exit(6);
			}
		}
		close(pipefd[1]);
		char ch;
		ck_assert_int_eq(read(pipefd[0], &ch, 1), 1);
		close(pipefd[0]);
		if (round >= NKILLED) {
			/* somewhere inside the first commit (or a later one) */
			struct timespec ts = {0, (long)(rand() % 40) * 1000000L + rand() % 1000000};
			nanosleep(&ts, NULL);
			kill(pid, SIGKILL);
		}
		int status;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status), "round %d: writer exited early with %d", round,
		              WEXITSTATUS(status));
		/* the store opens for writing (stale lock recovered) and everything verifies */
		OK(ckpt_store_open(&s, storepath, 0));
		ckpt_snapshot *snap;
		OK(ckpt_snapshot_open(&snap, s));
		ck_assert_uint_ge(verify_every_checkpoint(snap, 1), 1);
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, 1));
		float want[1000], got[1000];
		fill(want, sizeof(want), 1);
		OK(ckpt_tensor_read(got, snap, ckpt_checkpoint_tensor_at(c, 0), 0, sizeof(got)));
		ck_assert_mem_eq(got, want, sizeof(got));
		ckpt_snapshot_close(snap);
		check_invariants(s);
		ckpt_store_close(s);
	}
}
END_TEST
#undef NKILLED

START_TEST(test_a_commit_past_the_file_size_limit_is_efbig_and_keeps_earlier_checkpoints)
{
	ckpt_store *s = make_store(1 << 16, 0, 0, CKPT_MODE_MIN);
	commit_simple(s, 1, 1000, 1, "val_loss", 1.0);
	ckpt_store_close(s);
	pid_t pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		/* a file size limit stands in for a full disk: writes past it fail with EFBIG,
		 * reported as such */
		signal(SIGXFSZ, SIG_IGN);
		struct stat st;
		char data[600];
		snprintf(data, sizeof(data), "%s/data.mdb", storepath);
		if (stat(data, &st))
			_exit(3);
		struct rlimit rl = {(rlim_t)st.st_size + (1 << 20), (rlim_t)st.st_size + (1 << 20)};
		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(4);
		ckpt_store *ws;
		if (ckpt_store_open(&ws, storepath, 0))
			_exit(5);
		size_t n = 4 << 20;
		float *buf = calloc(n, 4);
		fill(buf, n * 4, 5);
		uint64_t shape[1] = {n};
		ckpt_writer *w;
		if (ckpt_writer_begin(&w, ws, 2) ||
		    ckpt_writer_put_tensor(w, "w", 0, CKPT_DTYPE_FLOAT32, 1, shape, NULL, buf,
		                           n * 4))
			_exit(6);
		int rc = ckpt_writer_commit(w);
		if (rc != -EFBIG) {
			fprintf(stderr, "commit under a file size limit: %d (%s)\n", rc,
			        ckpt_last_error());
			_exit(7);
		}
		if (!strstr(ckpt_last_error(), storepath))
			_exit(8);
		ckpt_store_close(ws);
		free(buf);
		_exit(0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	OK(ckpt_store_open(&s, storepath, 0));
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	uint64_t *epochs;
	size_t n;
	OK(ckpt_snapshot_list(&epochs, &n, snap));
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(epochs[0], 1);
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)));
	free(epochs);
	ckpt_snapshot_close(snap);
	/* and the store still takes new checkpoints */
	commit_simple(s, 2, 1000, 2, "val_loss", 0.5);
	ckpt_store_close(s);
}
END_TEST

/* ---- bad stores and bad paths ---- */

static bool exists(const char *dir, const char *name)
{
	char p[700];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0;
}

START_TEST(test_non_store_paths_give_clear_errors_and_change_nothing)
{
	ckpt_store *s = NULL;
	char p[600];
	snprintf(p, sizeof(p), "%s/missing", tmpdir);
	ck_assert_int_eq(ckpt_store_open(&s, p, 0), -ENOENT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), p));
	ck_assert_ptr_null(s);
	/* an empty directory */
	snprintf(p, sizeof(p), "%s/empty", tmpdir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	ck_assert_int_eq(ckpt_store_open(&s, p, 0), CKPT_ENOTSTORE);
	ck_assert_int_eq(ckpt_store_open(&s, p, CKPT_OPEN_READONLY), CKPT_ENOTSTORE);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), p));
	ck_assert(!exists(p, "data.mdb"));
	ck_assert(!exists(p, "lock.mdb"));
	/* a directory whose data.mdb is not LMDB */
	char f[700];
	snprintf(f, sizeof(f), "%s/data.mdb", p);
	FILE *fp = fopen(f, "w");
	ck_assert_ptr_nonnull(fp);
	for (int i = 0; i < 3000; i++)
		fputs("not lmdb ", fp);
	fclose(fp);
	ck_assert_int_eq(ckpt_store_open(&s, p, 0), CKPT_ENOTSTORE);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "LMDB"));
	ck_assert(!exists(p, "lock.mdb"));
	/* a regular file */
	ck_assert_int_eq(ckpt_store_open(&s, f, CKPT_OPEN_READONLY), CKPT_ENOTSTORE);
	/* create refuses a non-empty directory and a file */
	ckpt_run_meta m = test_meta("val_loss", CKPT_MODE_MIN);
	ck_assert_int_eq(ckpt_store_create(&s, p, &m, NULL), -EEXIST);
	ck_assert_int_eq(ckpt_store_create(&s, f, &m, NULL), -EEXIST);
	snprintf(p, sizeof(p), "%s/no/such/parent", tmpdir);
	ck_assert_int_eq(ckpt_store_create(&s, p, &m, NULL), -ENOENT);
	/* bad options */
	ckpt_store_options o = {.chunk_size = 100};
	ck_assert_int_eq(ckpt_store_create(&s, storepath, &m, &o), -EINVAL);
	o.chunk_size = 2ull << 30;
	ck_assert_int_eq(ckpt_store_create(&s, storepath, &m, &o), -EINVAL);
	ckpt_run_meta nomon = test_meta("", CKPT_MODE_MIN);
	ck_assert_int_eq(ckpt_store_create(&s, storepath, &nomon, NULL), -EINVAL);
	ck_assert(!exists(tmpdir, "store"));
	/* an existing store */
	s = make_store(64, 0, 0, CKPT_MODE_MIN);
	ckpt_store_close(s);
	ck_assert_int_eq(ckpt_store_create(&s, storepath, &m, NULL), -EEXIST);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "already holds a store"));
	/* remnants of a create killed early are replaced by a new create: a lock.mdb alone, or
	 * an environment without any database */
	snprintf(p, sizeof(p), "%s/killed", tmpdir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(f, sizeof(f), "%s/killed/lock.mdb", tmpdir);
	fp = fopen(f, "w");
	ck_assert_ptr_nonnull(fp);
	fclose(fp);
	ck_assert_int_eq(ckpt_store_open(&s, p, 0), CKPT_ENOTSTORE);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "interrupted create"));
	OK(ckpt_store_create(&s, p, &m, NULL));
	ckpt_store_close(s);
	OK(ckpt_store_open(&s, p, CKPT_OPEN_READONLY));
	ckpt_store_close(s);
	/* an LMDB environment that is not a store */
	snprintf(p, sizeof(p), "%s/plainlmdb", tmpdir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	MDB_env *env;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_open(env, p, 0, 0644), 0);
	mdb_env_close(env);
	ck_assert_int_eq(ckpt_store_open(&s, p, CKPT_OPEN_READONLY), CKPT_ENOTSTORE);
	snprintf(f, sizeof(f), "%s/plainlmdb/lock.mdb", tmpdir);
	ck_assert_int_eq(unlink(f), 0);
	ck_assert_int_eq(ckpt_store_open(&s, p, 0), CKPT_ENOTSTORE);
	ck_assert_int_eq(access(f, F_OK), -1); /* no lock.mdb left behind */
}
END_TEST

/* put raw bytes under a key of a named database of the (closed) store */
static void raw_put(const char *db, const void *key, size_t klen, const void *val, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, storepath, 0, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, db, 0, &dbi), 0);
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static size_t raw_get(const char *db, const void *key, size_t klen, void *out, size_t cap)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, storepath, MDB_RDONLY, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, db, 0, &dbi), 0);
	MDB_val k = {klen, (void *)key}, v;
	ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
	ck_assert_uint_le(v.mv_size, cap);
	memcpy(out, v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return v.mv_size;
}

START_TEST(test_newer_schema_is_refused)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	ckpt_store_close(s);
	uint8_t v[4] = {CKPT_SCHEMA_VERSION + 1, 0, 0, 0};
	raw_put("meta", "schema", 6, v, 4);
	ck_assert_int_eq(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY), CKPT_ESCHEMA);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), storepath));
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "newer"));
	ck_assert_int_eq(ckpt_store_open(&s, storepath, 0), CKPT_ESCHEMA);
	/* refused as it was found: no lock.mdb left where there was none */
	char lock[600];
	snprintf(lock, sizeof(lock), "%s/lock.mdb", storepath);
	ck_assert_int_eq(unlink(lock), 0);
	ck_assert_int_eq(ckpt_store_open(&s, storepath, 0), CKPT_ESCHEMA);
	ck_assert_int_eq(access(lock, F_OK), -1);
}
END_TEST

START_TEST(test_corrupt_records_give_errors_with_context)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	commit_simple(s, 3, 100, 3, "val_loss", 1.0);
	commit_simple(s, 4, 100, 4, "val_loss", 2.0);
	ckpt_store_close(s);
	uint8_t key[8] = {0, 0, 0, 0, 0, 0, 0, 3};
	uint8_t rec[4096];
	size_t len = raw_get("ckpt", key, 8, rec, sizeof(rec));
	/* every truncation and many bit flips decode to an error or a valid record, never a crash
	 */
	for (size_t cut = 0; cut < len; cut++) {
		store_ckpt_rec *r = NULL;
		char why[200];
		uint8_t *copy = malloc(cut + 1);
		memcpy(copy, rec, cut);
		ck_assert_int_eq(store_ckpt_decode(&r, copy, cut, why, sizeof(why)), CKPT_ECORRUPT);
		ck_assert_ptr_null(r);
		free(copy);
	}
	srand(7);
	for (int i = 0; i < 3000; i++) {
		uint8_t copy[4096];
		memcpy(copy, rec, len);
		for (int k = 0; k < 1 + i % 4; k++)
			copy[rand() % len] ^= (uint8_t)(1u << (rand() % 8));
		store_ckpt_rec *r = NULL;
		char why[200];
		int rc = store_ckpt_decode(&r, copy, len, why, sizeof(why));
		ck_assert(rc == 0 || rc == CKPT_ECORRUPT);
		store_ckpt_free(r);
	}
	/* random bytes of random lengths through every decoder */
	for (int i = 0; i < 4000; i++) {
		uint8_t junk[256];
		size_t jl = (size_t)rand() % sizeof(junk);
		for (size_t b = 0; b < jl; b++)
			junk[b] = (uint8_t)rand();
		if (i % 3 == 0 && jl >= 8) /* often a plausible version field */
			junk[0] = 1, junk[1] = 0;
		char why[200];
		store_run_rec run;
		store_blob_rec blob;
		store_index_rec idx;
		store_settings_rec set;
		store_ckpt_rec *r = NULL;
		if (store_run_decode(&run, junk, jl, why, sizeof(why)) == 0)
			store_run_free(&run);
		if (store_blob_decode(&blob, junk, jl, why, sizeof(why)) == 0)
			ck_assert_uint_eq(jl, store_blob_len(blob.nchunks) -
			                          (blob.version == STORE_REC_VERSION ? 0 : STORE_REC_CRC_LEN));
		(void)store_index_decode(&idx, junk, jl, why, sizeof(why));
		(void)store_settings_decode(&set, junk, jl, why, sizeof(why));
		if (store_ckpt_decode(&r, junk, jl, why, sizeof(why)) == 0)
			store_ckpt_free(r);
	}
	raw_put("ckpt", key, 8, rec, len / 2);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&c, snap, 3), CKPT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), storepath));
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "epoch 3"));
	OK(ckpt_snapshot_checkpoint(&c, snap, 4)); /* others still read */
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	/* a damaged chunk fails verification */
	store_ckpt_rec *r;
	OK(store_ckpt_decode(&r, rec, len, NULL, 0));
	uint8_t ckey[20];
	memcpy(ckey, r->tensors[0].hash, 16);
	memset(ckey + 16, 0, 4);
	store_ckpt_free(r);
	uint8_t chunk[64];
	ck_assert_uint_eq(raw_get("chunks", ckey, 20, chunk, sizeof(chunk)), 64);
	chunk[5] ^= 1;
	raw_put("chunks", ckey, 20, chunk, 64);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	OK(ckpt_snapshot_open(&snap, s));
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&c, snap, 3), CKPT_ECORRUPT);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	raw_put("ckpt", key, 8, rec, len);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_checkpoint(&c, snap, 3));
	const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, 0);
	const void *p;
	size_t plen;
	ck_assert_int_eq(ckpt_tensor_verify(snap, t), CKPT_ECHECKSUM);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "w"));
	ck_assert_int_eq(ckpt_tensor_chunk(&p, &plen, snap, t, 0, true), CKPT_ECHECKSUM);
	OK(ckpt_tensor_chunk(&p, &plen, snap, t, 0, false));
	OK(ckpt_tensor_chunk(&p, &plen, snap, t, 1, true));
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

/* get the value under @p key of @p dbi (copied: the txn writes), delete it, put it under @p nkey */
static void move_value(MDB_txn *txn, MDB_dbi dbi, const void *key, const void *nkey, size_t klen)
{
	MDB_val k = {klen, (void *)key}, nk = {klen, (void *)nkey}, v;
	ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
	void *copy = malloc(v.mv_size);
	memcpy(copy, v.mv_data, v.mv_size);
	MDB_val nv = {v.mv_size, copy};
	ck_assert_int_eq(mdb_del(txn, dbi, &k, NULL), 0);
	ck_assert_int_eq(mdb_put(txn, dbi, &nk, &nv, 0), 0);
	free(copy);
}

/* A tensor whose bytes pass every chunk CRC-32 and the whole-tensor CRC-32 but not its XXH3-128
 * content hash: its blob (record and chunks) is moved to another hash and the checkpoint record
 * points there, its own CRC-32 resealed, so the store is consistent but for the hash. */
/* Run the ckpt command @p cmd (cli_verify, cli_info, ...) on @p store with descriptor @p fd (1
 * or 2) written to @p path; its exit status. */
static int run_cli_into(const char *path, int fd, int (*cmd)(int, char **), const char *name,
                        const char *store)
{
	fflush(stdout);
	int ofd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600), saved = dup(fd);
	ck_assert_int_ge(ofd, 0);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(ofd, fd), fd);
	char *argv[] = {(char *)name, (char *)store, NULL};
	optind = 0;
	int rc = cmd(2, argv);
	fflush(stdout);
	ck_assert_int_eq(dup2(saved, fd), fd);
	close(saved);
	close(ofd);
	return rc;
}

/* Run `ckpt verify STORE` (cli_verify): it exits 1 with exactly one line on stderr, which
 * contains @p want. */
static void verify_says_one_line(const char *store, const char *want)
{
	char errpath[600], line[1024] = "";
	snprintf(errpath, sizeof(errpath), "%s/verify.err", tmpdir);
	ck_assert_int_eq(run_cli_into(errpath, 2, cli_verify, "verify", store), 1);
	FILE *ef = fopen(errpath, "r");
	ck_assert_ptr_nonnull(ef);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), ef));
	ck_assert_msg(strstr(line, want) != NULL, "ckpt verify: %s", line);
	ck_assert_ptr_null(fgets(line, sizeof(line), ef));
	fclose(ef);
}

START_TEST(test_bytes_that_do_not_match_the_content_hash_fail_verify)
{
	ckpt_store *s = make_store(4096, 0, 0, CKPT_MODE_MIN);
	float w[3000];
	fill(w, sizeof(w), 7);
	uint64_t shape[1] = {3000};
	ckpt_writer *wr;
	OK(ckpt_writer_begin(&wr, s, 1));
	OK(ckpt_writer_put_tensor(wr, "fc1.weight", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape,
	                          "cpu", w, sizeof(w)));
	uint64_t bshape[1] = {2999};
	OK(ckpt_writer_put_tensor(wr, "fc1.bias", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, bshape,
	                          "cpu", w + 1, sizeof(w) - 4));
	OK(ckpt_writer_commit(wr));
	MDB_txn *txn;
	ck_assert_int_eq(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
	uint8_t k[8];
	store_epoch_key(k, 1);
	MDB_val key = {8, k}, v;
	ck_assert_int_eq(mdb_get(txn, s->db_ckpt, &key, &v), 0);
	store_ckpt_rec *r;
	OK(store_ckpt_decode(&r, v.mv_data, v.mv_size, NULL, 0));
	ck_assert_uint_eq(r->ntensors, 2);
	size_t i = strcmp(r->tensors[0].name, "fc1.weight") == 0 ? 0 : 1;
	ck_assert_str_eq(r->tensors[i].name, "fc1.weight");
	ck_assert_uint_gt(r->tensors[i].nchunks, 1);
	ckpt_tensor_info *t = (ckpt_tensor_info *)&r->tensors[i];
	uint8_t old[16];
	memcpy(old, t->hash, 16);
	t->hash[7] ^= 0x20;
	move_value(txn, s->db_blobs, old, t->hash, 16);
	for (uint32_t c = 0; c < t->nchunks; c++) {
		uint8_t ck[STORE_CHUNK_KEY_LEN], nck[STORE_CHUNK_KEY_LEN];
		store_chunk_key(ck, old, c);
		store_chunk_key(nck, t->hash, c);
		move_value(txn, s->db_chunks, ck, nck, sizeof(ck));
	}
	uint8_t *rec;
	size_t len;
	OK(store_ckpt_encode(&rec, &len, r)); /* a fresh record CRC-32 */
	store_ckpt_free(r);
	v = (MDB_val){len, rec};
	ck_assert_int_eq(mdb_put(txn, s->db_ckpt, &key, &v, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	free(rec);
	check_invariants(s); /* refcounts and chunks agree: only the hash is wrong */
	ckpt_store_close(s);

	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_checkpoint(&c, snap, 1)); /* the record itself decodes */
	for (size_t j = 0; j < 2; j++) {
		const ckpt_tensor_info *ti = ckpt_checkpoint_tensor_at(c, j);
		if (strcmp(ti->name, "fc1.weight") != 0) {
			OK(ckpt_tensor_verify(snap, ti));
			continue;
		}
		ck_assert_int_eq(ckpt_tensor_verify(snap, ti), CKPT_ECHECKSUM);
		ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "tensor fc1.weight: bytes do not match"));
	}
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	/* `ckpt verify` says so on stderr, in one line naming the tensor, and exits 1 */
	verify_says_one_line(storepath, "epoch-0001: bad tensor fc1.weight (");
}
END_TEST

/* A key past CKPT_MAX_EPOCH (a damaged key; stores of old versions may hold one): the mount
 * cannot show it, so `ckpt verify` reports it, in one line, and exits 1. */
extern int store_test_old_input;

START_TEST(test_verify_reports_an_epoch_key_past_the_last_epoch)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	commit_simple(s, 3, 10, 3, "val_loss", 0.5);
	store_test_old_input = 1;
	commit_simple(s, CKPT_MAX_EPOCH + 1, 10, 4, "val_loss", 0.6);
	store_test_old_input = 0;
	ckpt_store_close(s);
	verify_says_one_line(storepath, "epoch-549755813888: bad key (past the last epoch");
}
END_TEST

/* ---- record checksums ---- */

/* one encoded record of each type (version 2), as the store writes them */
typedef struct sample_records {
	uint8_t *run, *ckpt;
	size_t run_len, ckpt_len;
	uint8_t settings[STORE_SETTINGS_LEN], index[STORE_INDEX_LEN], best[STORE_BEST_LEN];
	uint8_t blob[STORE_BLOB_HEADER_LEN + 3 * 4 + STORE_REC_CRC_LEN];
} sample_records;

static void sample_records_make(sample_records *r)
{
	ckpt_run_meta meta = test_meta("val_acc", CKPT_MODE_MAX);
	OK(store_run_encode(&r->run, &r->run_len, &meta));
	store_settings_encode(r->settings,
	                      &(store_settings_rec){.chunk_size = 64, .keep_last = 3, .keep_top = 1});
	store_index_encode(r->index, &(store_index_rec){.has_monitor = true, .monitor = 0.25,
	                                                .ntensors = 2, .step = 100, .time_ns = 1,
	                                                .nbytes = 28});
	store_best_encode(r->best, 7);
	uint32_t crcs[3] = {0x11111111, 0x22222222, 0x33333333};
	ck_assert_uint_eq(sizeof(r->blob), store_blob_len(3));
	store_blob_encode(r->blob,
	                  &(store_blob_rec){.refcount = 2, .nbytes = 150, .chunk_size = 64,
	                                    .nchunks = 3},
	                  crcs);
	store_metric metrics[2] = {{"val_acc", 0.9}, {"val_loss", 0.3}};
	store_extra extras[1] = {{"optimizer.param_groups", "[{\"lr\":0.1}]", 12}};
	ckpt_tensor_info t[2] = {
	    {.name = "fc1.weight", .group = CKPT_GROUP_MODEL, .dtype = CKPT_DTYPE_FLOAT32,
	     .ndim = 2, .shape = {2, 3}, .device = "cuda:0", .nbytes = 24, .crc32 = 7,
	     .nchunks = 1, .chunk_size = 64},
	    {.name = "fc1.weight.step", .group = CKPT_GROUP_OPTIMIZER, .dtype = CKPT_DTYPE_FLOAT32,
	     .ndim = 0, .device = "cpu", .nbytes = 4, .crc32 = 9, .nchunks = 1, .chunk_size = 64},
	};
	store_ckpt_rec rec = {.epoch = 4, .step = 400, .time_ns = 123456789, .nmetrics = 2,
	                      .nextras = 1, .ntensors = 2, .metrics = metrics, .extras = extras,
	                      .tensors = t};
	OK(store_ckpt_encode(&r->ckpt, &r->ckpt_len, &rec));
}

static void sample_records_free(sample_records *r)
{
	free(r->run);
	free(r->ckpt);
}

/* decode @p buf as record type @p type (0 run, 1 settings, 2 index, 3 best, 4 blob, 5 ckpt);
 * the decoded version in *version */
static int decode_any(int type, const uint8_t *buf, size_t len, uint16_t *version, char *why,
                      size_t whylen)
{
	int rc;
	switch (type) {
	case 0: {
		store_run_rec r;
		rc = store_run_decode(&r, buf, len, why, whylen);
		*version = r.version;
		store_run_free(&r);
		return rc;
	}
/* a record type whose decoder fills a struct with a version field */
#define DECODE_INTO(rec_type, decoder)                                                             \
	{                                                                                          \
		rec_type r;                                                                        \
		rc = decoder(&r, buf, len, why, whylen);                                           \
		*version = rc ? 0 : r.version;                                                     \
		return rc;                                                                         \
	}
	case 1:
		DECODE_INTO(store_settings_rec, store_settings_decode)
	case 2:
		DECODE_INTO(store_index_rec, store_index_decode)
	case 3:
		DECODE_INTO(store_best_rec, store_best_decode)
	case 4:
		DECODE_INTO(store_blob_rec, store_blob_decode)
#undef DECODE_INTO
	default: {
		store_ckpt_rec *r = NULL;
		rc = store_ckpt_decode(&r, buf, len, why, whylen);
		*version = rc ? 0 : r->version;
		store_ckpt_free(r);
		return rc;
	}
	}
}

START_TEST(test_every_changed_byte_of_every_record_type_is_detected)
{
	static const char *names[] = {"run", "settings", "index", "best", "blob", "checkpoint"};
	sample_records r;
	sample_records_make(&r);
	const uint8_t *recs[6] = {r.run, r.settings, r.index, r.best, r.blob, r.ckpt};
	size_t lens[6] = {r.run_len, sizeof(r.settings), sizeof(r.index), sizeof(r.best),
	                  sizeof(r.blob), r.ckpt_len};
	size_t tried = 0;
	for (int type = 0; type < 6; type++) {
		uint16_t version;
		char why[256] = "";
		uint8_t *copy = malloc(lens[type]);
		memcpy(copy, recs[type], lens[type]);
		OK(decode_any(type, copy, lens[type], &version, why, sizeof(why)));
		ck_assert_uint_eq(version, STORE_REC_VERSION);
		/* every position, every other value: always an error, never a record */
		for (size_t at = 0; at < lens[type]; at++) {
			for (unsigned x = 1; x < 256; x++) {
				copy[at] ^= (uint8_t)x;
				int rc = decode_any(type, copy, lens[type], &version, why, sizeof(why));
				ck_assert_msg(rc == CKPT_ECORRUPT,
				              "%s record with byte %zu ^ 0x%02x decodes (rc %d)",
				              names[type], at, x, rc);
				copy[at] ^= (uint8_t)x;
				tried++;
			}
		}
		/* the CRC-32 is what catches it: the reason says so for a metric's byte */
		copy[lens[type] / 2] ^= 0x01;
		ck_assert_int_eq(decode_any(type, copy, lens[type], &version, why, sizeof(why)),
		                 CKPT_ECORRUPT);
		ck_assert_msg(strstr(why, "damaged") != NULL, "%s: %s", names[type], why);
		ck_assert_ptr_nonnull(strstr(why, names[type]));
		/* and every truncation (but the first 8 bytes of a best record, which are a
		 * version 1 best record of an epoch past 2^32: readers find it is not stored) */
		copy[lens[type] / 2] ^= 0x01;
		for (size_t cut = 0; cut < lens[type]; cut++)
			if (type != 3 || cut != STORE_BEST_V1_LEN)
				ck_assert_int_eq(
				    decode_any(type, copy, cut, &version, why, sizeof(why)),
				    CKPT_ECORRUPT);
		free(copy);
	}
	ck_assert_uint_gt(tried, 100000);
	sample_records_free(&r);
}
END_TEST

/* Rewrite a version 2 record in @p buf (@p *len bytes) as the version 1 encoders wrote it:
 * version field 1, no trailer; the best record as a bare u64le. */
static void to_version_1(int type, uint8_t *buf, size_t *len)
{
	if (type == 3) {
		uint8_t epoch[8];
		memcpy(epoch, buf + 4, 8);
		memcpy(buf, epoch, 8);
		*len = 8;
		return;
	}
	size_t at = type == 5 ? 4 : 0;
	buf[at] = 1;
	buf[at + 1] = 0;
	*len -= STORE_REC_CRC_LEN;
}

START_TEST(test_version_1_records_without_checksums_still_decode)
{
	sample_records r;
	sample_records_make(&r);
	const uint8_t *recs[6] = {r.run, r.settings, r.index, r.best, r.blob, r.ckpt};
	size_t lens[6] = {r.run_len, sizeof(r.settings), sizeof(r.index), sizeof(r.best),
	                  sizeof(r.blob), r.ckpt_len};
	for (int type = 0; type < 6; type++) {
		uint8_t *v1 = malloc(lens[type]);
		size_t len = lens[type];
		memcpy(v1, recs[type], len);
		to_version_1(type, v1, &len);
		uint16_t version;
		char why[256] = "";
		OK(decode_any(type, v1, len, &version, why, sizeof(why)));
		ck_assert_uint_eq(version, STORE_REC_VERSION_UNCHECKED);
		/* a version 2 record whose version field reads 1 keeps its trailer: too long */
		memcpy(v1, recs[type], lens[type]);
		v1[type == 5 ? 4 : 0] = 1;
		ck_assert_int_eq(decode_any(type, v1, lens[type], &version, why, sizeof(why)),
		                 CKPT_ECORRUPT);
		free(v1);
	}
	/* the fields read back the same from either version */
	uint8_t v1[512];
	size_t len = r.ckpt_len;
	ck_assert_uint_le(len, sizeof(v1));
	memcpy(v1, r.ckpt, len);
	to_version_1(5, v1, &len);
	store_ckpt_rec *a, *b;
	OK(store_ckpt_decode(&a, r.ckpt, r.ckpt_len, NULL, 0));
	OK(store_ckpt_decode(&b, v1, len, NULL, 0));
	ck_assert_uint_eq(a->epoch, b->epoch);
	ck_assert_uint_eq(a->nmetrics, b->nmetrics);
	ck_assert_double_eq(a->metrics[1].value, b->metrics[1].value);
	ck_assert_str_eq(a->tensors[1].name, b->tensors[1].name);
	ck_assert_uint_eq(a->tensors[0].shape[1], b->tensors[0].shape[1]);
	store_ckpt_free(a);
	store_ckpt_free(b);
	sample_records_free(&r);
}
END_TEST

/* rewrite every record of the (closed) store as version 1 code wrote it */
static void downgrade_store_to_version_1(void)
{
	MDB_env *env;
	MDB_txn *txn;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, storepath, 0, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	static const struct {
		const char *db;
		int type; /* -1: by key in meta */
	} dbs[] = {{"meta", -1}, {"ckpt", 5}, {"index", 2}, {"blobs", 4}};
	for (size_t d = 0; d < sizeof(dbs) / sizeof(dbs[0]); d++) {
		MDB_dbi dbi;
		MDB_cursor *cur;
		MDB_val k, v;
		struct {
			uint8_t key[32], *val;
			size_t klen, vlen;
		} put[64];
		size_t nput = 0;
		ck_assert_int_eq(mdb_dbi_open(txn, dbs[d].db, 0, &dbi), 0);
		ck_assert_int_eq(mdb_cursor_open(txn, dbi, &cur), 0);
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			int type = dbs[d].type;
			if (type < 0) {
				if (k.mv_size == 3 && memcmp(k.mv_data, "run", 3) == 0)
					type = 0;
				else if (k.mv_size == 8 && memcmp(k.mv_data, "settings", 8) == 0)
					type = 1;
				else if (k.mv_size == 4 && memcmp(k.mv_data, "best", 4) == 0)
					type = 3;
				else
					continue;
			}
			ck_assert_uint_lt(nput, 64);
			ck_assert_uint_le(k.mv_size, 32);
			memcpy(put[nput].key, k.mv_data, k.mv_size);
			put[nput].klen = k.mv_size;
			put[nput].vlen = v.mv_size;
			put[nput].val = malloc(v.mv_size);
			memcpy(put[nput].val, v.mv_data, v.mv_size);
			to_version_1(type, put[nput].val, &put[nput].vlen);
			nput++;
		}
		mdb_cursor_close(cur);
		for (size_t i = 0; i < nput; i++) {
			MDB_val nk = {put[i].klen, put[i].key}, nv = {put[i].vlen, put[i].val};
			ck_assert_int_eq(mdb_put(txn, dbi, &nk, &nv, 0), 0);
			free(put[i].val);
		}
	}
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

START_TEST(test_a_store_of_version_1_records_reads_and_takes_new_checkpoints)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	commit_simple(s, 1, 100, 1, "val_loss", 0.5);
	commit_simple(s, 2, 100, 2, "val_loss", 0.7);
	commit_simple(s, 3, 100, 1, "val_loss", 0.9); /* the same bytes as epoch 1: a shared blob */
	ckpt_store_close(s);
	downgrade_store_to_version_1();
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	uint64_t best;
	OK(ckpt_snapshot_best(&best, snap));
	ck_assert_uint_eq(best, 1);
	for (uint64_t e = 1; e <= 3; e++) {
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, e));
		OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)));
	}
	ckpt_store_stats st;
	OK(ckpt_snapshot_stats(&st, snap));
	ck_assert_uint_eq(st.checkpoints, 3);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	/* a writer adds version 2 records beside them, drops a reference to a version 1 blob */
	OK(ckpt_store_open(&s, storepath, 0));
	commit_simple(s, 4, 100, 1, "val_loss", 0.2);
	OK(ckpt_store_gc(s, 2, 1, NULL));
	check_invariants(s);
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_best(&best, snap));
	ck_assert_uint_eq(best, 4);
	ck_assert_uint_eq(verify_every_checkpoint(snap, 3), 2);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

/* flip one bit in the middle of the record under @p key of database @p db */
static void damage_record(const char *db, const void *key, size_t klen)
{
	uint8_t rec[4096];
	size_t len = raw_get(db, key, klen, rec, sizeof(rec));
	rec[len / 2] ^= 0x04;
	raw_put(db, key, klen, rec, len);
}

START_TEST(test_damaged_metadata_records_fail_their_epoch_and_spare_the_others)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	for (uint64_t e = 1; e <= 4; e++)
		commit_simple(s, e, 50, (uint32_t)e, "val_loss", 1.0 / (double)e);
	ckpt_store_close(s);
	uint8_t k2[8] = {0, 0, 0, 0, 0, 0, 0, 2}, k3[8] = {0, 0, 0, 0, 0, 0, 0, 3};
	damage_record("ckpt", k2, 8);  /* epoch 2's checkpoint record */
	damage_record("index", k3, 8); /* epoch 3's summary: rebuilt from its checkpoint record */
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&c, snap, 2), CKPT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "epoch 2"));
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "damaged"));
	ck_assert_int_eq(ckpt_snapshot_check_records(snap, 3), CKPT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "epoch 3: corrupt index record"));
	OK(ckpt_snapshot_check_records(snap, 4));
	for (uint64_t e = 1; e <= 4; e += 1 + (e == 1)) {
		OK(ckpt_snapshot_checkpoint(&c, snap, e));
		double v;
		OK(ckpt_checkpoint_metric(c, "val_loss", &v));
		ck_assert_double_eq(v, 1.0 / (double)e);
	}
	uint64_t top[4];
	size_t n;
	OK(ckpt_snapshot_top_k(top, 4, &n, snap));
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(top[0], 4);
	ck_assert_uint_eq(top[1], 3);
	ckpt_store_stats st;
	OK(ckpt_snapshot_stats(&st, snap));
	ck_assert_uint_eq(st.checkpoints, 4);
	ck_assert_uint_eq(st.bytes, 4 * 50 * sizeof(float));
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	/* index and checkpoint record both damaged: top-k names the epoch */
	damage_record("index", k2, 8);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	OK(ckpt_snapshot_open(&snap, s));
	ck_assert_int_eq(ckpt_snapshot_top_k(top, 4, &n, snap), CKPT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "epoch 2: corrupt index record"));
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	/* a damaged best record: the best is unknown, with the reason; the rest reads */
	damage_record("meta", "best", 4);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	OK(ckpt_snapshot_open(&snap, s));
	uint64_t best;
	ck_assert_int_eq(ckpt_snapshot_best(&best, snap), CKPT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "corrupt best record"));
	OK(ckpt_snapshot_checkpoint(&c, snap, 4));
	ck_assert(!ckpt_checkpoint_is_best(c));
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	/* damaged run metadata or settings: the store does not open, and says why */
	damage_record("meta", "run", 3);
	ck_assert_int_eq(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY), CKPT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "corrupt run metadata"));
	damage_record("meta", "run", 3); /* flipped back */
	damage_record("meta", "settings", 8);
	ck_assert_int_eq(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY), CKPT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "corrupt store settings"));
}
END_TEST

/* Readers index chunks with 32 bits: a record claiming the saturated UINT32_MAX chunks for
 * more bytes than that many chunks hold is corrupt, not a tensor of 2^62 bytes. */
START_TEST(test_tensor_records_needing_more_than_2_32_chunks_are_corrupt)
{
	const uint64_t cs = 64;
	struct {
		uint64_t nbytes;
		int rc;
	} cases[] = {
	    {(uint64_t)UINT32_MAX * cs, 0},                   /* exactly UINT32_MAX chunks */
	    {(uint64_t)UINT32_MAX * cs + 1, CKPT_ECORRUPT},   /* one more chunk needed */
	    {(uint64_t)1 << 62, CKPT_ECORRUPT},               /* far more */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ckpt_tensor_info t = {
		    .name = "huge",
		    .group = CKPT_GROUP_MODEL,
		    .dtype = CKPT_DTYPE_UINT8,
		    .ndim = 1,
		    .shape = {cases[i].nbytes},
		    .device = "cpu",
		    .nbytes = cases[i].nbytes,
		    .chunk_size = cs,
		    .nchunks = store_nchunks(cases[i].nbytes, cs), /* saturates at UINT32_MAX */
		};
		ck_assert_uint_eq(t.nchunks, UINT32_MAX);
		store_ckpt_rec rec = {.epoch = 1, .ntensors = 1, .tensors = &t};
		uint8_t *buf;
		size_t len;
		OK(store_ckpt_encode(&buf, &len, &rec));
		store_ckpt_rec *r = NULL;
		char why[200] = "";
		int rc = store_ckpt_decode(&r, buf, len, why, sizeof(why));
		free(buf);
		ck_assert_msg(rc == cases[i].rc, "case %zu: rc %d (%s)", i, rc, why);
		if (rc)
			ck_assert_ptr_nonnull(strstr(why, "chunks"));
		store_ckpt_free(r);
	}
}
END_TEST

/* two files of one name in a view directory: a record the writer would never produce */
START_TEST(test_tensor_records_with_a_name_twice_in_one_group_are_corrupt)
{
	float v[2] = {1, 2};
	uint64_t shape[1] = {2};
	ckpt_tensor_info t[3];
	const char *names[3] = {"w", "b", "w"};
	ckpt_tensor_group groups[3] = {CKPT_GROUP_MODEL, CKPT_GROUP_MODEL, CKPT_GROUP_OPTIMIZER};
	for (int round = 0; round < 2; round++) {
		if (round == 1)
			groups[2] = CKPT_GROUP_MODEL; /* now "w" is twice in the model group */
		for (int i = 0; i < 3; i++) {
			t[i] = (ckpt_tensor_info){
			    .name = names[i],
			    .group = groups[i],
			    .dtype = CKPT_DTYPE_FLOAT32,
			    .ndim = 1,
			    .shape = {shape[0]},
			    .device = "cpu",
			    .nbytes = sizeof(v),
			    .chunk_size = 64,
			    .nchunks = 1,
			};
		}
		store_ckpt_rec rec = {.epoch = 1, .ntensors = 3, .tensors = t};
		uint8_t *buf;
		size_t len;
		OK(store_ckpt_encode(&buf, &len, &rec));
		store_ckpt_rec *r = NULL;
		char why[200] = "";
		int rc = store_ckpt_decode(&r, buf, len, why, sizeof(why));
		free(buf);
		if (round == 0) {
			ck_assert_msg(rc == 0, "same name in two groups: %s", why);
			ck_assert_uint_eq(r->ntensors, 3);
		} else {
			ck_assert_int_eq(rc, CKPT_ECORRUPT);
			ck_assert_ptr_nonnull(strstr(why, "twice"));
		}
		store_ckpt_free(r);
	}
}
END_TEST

START_TEST(test_read_only_store_refuses_writes_and_opens_in_a_read_only_directory)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	commit_simple(s, 1, 10, 1, "val_loss", 1.0);
	ckpt_store_close(s);
	char lock[700];
	snprintf(lock, sizeof(lock), "%s/lock.mdb", storepath);
	unlink(lock); /* a copied store without its lock file, in a read-only directory */
	ck_assert_int_eq(chmod(storepath, 0555), 0);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, s, 2), -EROFS);
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	uint64_t e;
	OK(ckpt_snapshot_latest(&e, snap));
	ck_assert_uint_eq(e, 1);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	ck_assert(!exists(storepath, "lock.mdb"));
	if (geteuid() != 0) {
		ck_assert_int_eq(ckpt_store_open(&s, storepath, 0), -EACCES);
		ck_assert_ptr_nonnull(strstr(ckpt_last_error(), storepath));
	}
	chmod(storepath, 0755);
}
END_TEST

/* what a read-only opener could change: names, sizes and times of the store's files */
/* The store's files as a text: presence, size and times; lock.mdb's times are left out, as
 * every reader that registers in it writes it, as LMDB intends (its presence and size count) */
static void store_files_state(char *out, size_t cap)
{
	size_t used = 0;
	static const char *const names[] = {".", "data.mdb", "lock.mdb"};
	for (size_t i = 0; i < 3; i++) {
		char p[700];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", storepath, names[i]);
		if (stat(p, &st) != 0) {
			used += (size_t)snprintf(out + used, cap - used, "%s: none\n", names[i]);
			continue;
		}
		if (i == 2)
			used += (size_t)snprintf(out + used, cap - used, "%s: %lld\n", names[i],
			                         (long long)st.st_size);
		else
			used += (size_t)snprintf(out + used, cap - used,
			                         "%s: %lld %lld.%09ld %lld.%09ld\n", names[i],
			                         (long long)st.st_size, (long long)st.st_mtim.tv_sec,
			                         st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
			                         st.st_ctim.tv_nsec);
		ck_assert_uint_lt(used, cap);
	}
}

START_TEST(test_read_only_opens_never_create_a_missing_lock_file_and_keep_writers_out)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	commit_simple(s, 1, 10, 1, "val_loss", 1.0);
	ckpt_store_close(s);
	char lock[700], data[700], before[1024], after[1024];
	snprintf(lock, sizeof(lock), "%s/lock.mdb", storepath);
	snprintf(data, sizeof(data), "%s/data.mdb", storepath);
	ck_assert_int_eq(unlink(lock), 0); /* a copy made with cp or rsync of data.mdb alone */
	store_files_state(before, sizeof(before));
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)));
	/* while this lockless reader is open, ckpt-train's exclusive flock is refused */
	int fd = open(data, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	store_files_state(after, sizeof(after));
	ck_assert_str_eq(before, after);
	/* and while ckpt-train writes (it holds that flock), a lockless open is refused */
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	ck_assert_int_eq(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY), -EBUSY);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "no lock.mdb"));
	close(fd);
	/* a writer creates the lock file; read-only opens then use it (and leave data.mdb be) */
	OK(ckpt_store_open(&s, storepath, 0));
	ckpt_store_close(s);
	ck_assert(exists(storepath, "lock.mdb"));
	struct stat st0, st1;
	ck_assert_int_eq(stat(data, &st0), 0);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	OK(ckpt_snapshot_open(&snap, s));
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	ck_assert_int_eq(stat(data, &st1), 0);
	ck_assert_int_eq(st0.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
	ck_assert_int_eq(st0.st_size, st1.st_size);
}
END_TEST

START_TEST(test_checkpoints_load_in_any_order_and_repeat_lookups_return_the_same_record)
{
	ckpt_store *s = make_store(0, 0, 0, CKPT_MODE_MIN);
	for (uint64_t e = 1; e <= 9; e++)
		commit_simple(s, e, 4, (uint32_t)e, "val_loss", (double)e);
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	static const uint64_t order[] = {5, 1, 9, 3, 7, 2, 8, 4, 6};
	const ckpt_checkpoint *first[10] = {0};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, order[i]));
		ck_assert_uint_eq(ckpt_checkpoint_epoch(c), order[i]);
		ck_assert_uint_eq(ckpt_checkpoint_step(c), order[i] * 10);
		first[order[i]] = c;
	}
	for (uint64_t e = 1; e <= 9; e++) {
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, e));
		ck_assert_ptr_eq(c, first[e]);
		double v;
		OK(ckpt_checkpoint_metric(c, "val_loss", &v));
		ck_assert_double_eq(v, (double)e);
	}
	const ckpt_checkpoint *missing = NULL;
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&missing, snap, 10), -ENOENT);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&missing, snap, 0), -ENOENT);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

/* one thread of the shared-snapshot test: every epoch's record, tensor chunks CRC-checked,
 * the listing and the stats, many times over, against what one thread read before */
typedef struct shared_reader {
	ckpt_snapshot *snap;
	unsigned seed;
	const ckpt_checkpoint *seen[33]; /* the record each epoch gave this thread */
	int failures;
} shared_reader;

static void *shared_reader_main(void *p)
{
	shared_reader *r = p;
	unsigned x = r->seed;
	for (int round = 0; round < 400; round++) {
		x = x * 1103515245u + 12345u;
		uint64_t e = 1 + (x >> 8) % 32;
		const ckpt_checkpoint *c;
		if (ckpt_snapshot_checkpoint(&c, r->snap, e) != 0 ||
		    ckpt_checkpoint_epoch(c) != e || ckpt_checkpoint_step(c) != e * 10 ||
		    (r->seen[e] && r->seen[e] != c)) {
			r->failures++;
			continue;
		}
		r->seen[e] = c;
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, 0);
		for (uint32_t k = 0; t && k < t->nchunks; k++) {
			const void *data;
			size_t len;
			if (ckpt_tensor_chunk(&data, &len, r->snap, t, k, true) != 0)
				r->failures++;
		}
		if (round % 50 == 0) {
			uint64_t *epochs;
			size_t n;
			ckpt_store_stats st;
			if (ckpt_snapshot_list(&epochs, &n, r->snap) != 0 || n != 32 ||
			    ckpt_snapshot_stats(&st, r->snap) != 0 || st.checkpoints != 32)
				r->failures++;
			free(epochs);
		}
	}
	return NULL;
}

START_TEST(test_one_snapshot_serves_many_threads_at_once_and_generations_tell_commits_apart)
{
	ckpt_store *s = make_store(256, 0, 0, CKPT_MODE_MIN);
	for (uint64_t e = 1; e <= 32; e++)
		commit_simple(s, e, 1000, (uint32_t)e, "val_loss", (double)e);
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	uint64_t gen, now;
	gen = ckpt_snapshot_generation(snap);
	OK(ckpt_store_generation(&now, s));
	ck_assert_uint_eq(gen, now);
	/* a second snapshot of the same commit has the same generation */
	ckpt_snapshot *again;
	OK(ckpt_snapshot_open(&again, s));
	ck_assert_uint_eq(ckpt_snapshot_generation(again), gen);
	ckpt_snapshot_close(again);

	/* the records are decoded by the threads themselves, concurrently, on first use */
	shared_reader readers[8];
	pthread_t threads[8];
	memset(readers, 0, sizeof(readers));
	for (int i = 0; i < 8; i++) {
		readers[i].snap = snap;
		readers[i].seed = (unsigned)i * 7919u + 1;
	}
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL, shared_reader_main, &readers[i]),
		                 0);
	/* a commit meanwhile moves the store's generation, not the snapshot's */
	commit_simple(s, 33, 1000, 33, "val_loss", 33.0);
	for (int i = 0; i < 8; i++) {
		pthread_join(threads[i], NULL);
		ck_assert_int_eq(readers[i].failures, 0);
	}
	/* one decoded record per epoch, whichever thread decoded it */
	for (uint64_t e = 1; e <= 32; e++) {
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, e));
		for (int i = 0; i < 8; i++)
			ck_assert(readers[i].seen[e] == NULL || readers[i].seen[e] == c);
	}
	ck_assert_uint_eq(ckpt_snapshot_generation(snap), gen);
	OK(ckpt_store_generation(&now, s));
	ck_assert_uint_gt(now, gen);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

static int64_t time_of(ckpt_snapshot *snap, uint64_t epoch)
{
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, snap, epoch));
	return ckpt_checkpoint_time_ns(c);
}

START_TEST(test_newest_time_is_the_last_commit_even_when_it_rewrote_an_earlier_epoch)
{
	ckpt_store *s = make_store(256, 0, 0, CKPT_MODE_MIN);
	ckpt_snapshot *snap;
	int64_t t;
	OK(ckpt_snapshot_open(&snap, s));
	ck_assert_int_eq(ckpt_snapshot_newest_time(&t, snap), -ENOENT);
	ckpt_snapshot_close(snap);
	for (uint64_t e = 1; e <= 3; e++)
		commit_simple(s, e, 100, (uint32_t)e, "val_loss", (double)e);
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_newest_time(&t, snap));
	ck_assert_int_eq(t, time_of(snap, 3));
	int64_t t3 = t;
	ckpt_snapshot_close(snap);
	struct timespec pause = {0, 2000000};
	nanosleep(&pause, NULL);
	commit_simple(s, 2, 100, 22, "val_loss", 2.5); /* a resume from epoch 1 rewrites epoch 2 */
	OK(ckpt_snapshot_open(&snap, s));
	uint64_t latest;
	OK(ckpt_snapshot_latest(&latest, snap));
	ck_assert_uint_eq(latest, 3);
	OK(ckpt_snapshot_newest_time(&t, snap));
	ck_assert_int_eq(t, time_of(snap, 2));
	ck_assert_int_gt(t, t3);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_duplicate_names_are_refused_per_group_among_many_tensors)
{
	ckpt_store *s = make_store(0, 0, 0, CKPT_MODE_MIN);
	ckpt_writer *w;
	OK(ckpt_writer_begin(&w, s, 1));
	static const float value = 1.5f;
	const uint64_t shape[1] = {1};
	char name[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		OK(ckpt_writer_put_tensor(w, name, CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape,
		                          NULL, &value, sizeof(value)));
	}
	/* after the name index has grown several times, first, middle and last still clash */
	static const char *const again[] = {"t0", "t500", "t999"};
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(ckpt_writer_put_tensor(w, again[i], CKPT_GROUP_MODEL,
		                                        CKPT_DTYPE_FLOAT32, 1, shape, NULL, &value,
		                                        sizeof(value)),
		                 -EEXIST);
		OK(ckpt_writer_put_tensor(w, again[i], CKPT_GROUP_OPTIMIZER, CKPT_DTYPE_FLOAT32, 1,
		                          shape, NULL, &value, sizeof(value)));
	}
	OK(ckpt_writer_commit(w));
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	ck_assert_uint_eq(ckpt_checkpoint_tensor_count(c), 1003);
	const ckpt_tensor_info *t;
	OK(ckpt_checkpoint_find_tensor(&t, c, CKPT_GROUP_OPTIMIZER, "t500"));
	ck_assert_uint_eq(t->index, 1001);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

/* ---- compaction ---- */

static off_t data_file_size(void)
{
	char data[700];
	struct stat st;
	snprintf(data, sizeof(data), "%s/data.mdb", storepath);
	ck_assert_int_eq(stat(data, &st), 0);
	return st.st_size;
}

/* Both meta pages of data.mdb: their transaction ids and their database records. */
static void read_metas(uint64_t txnid[2], uint8_t dbs[2][112])
{
	char data[700];
	uint8_t page[LMDB_META_END];
	snprintf(data, sizeof(data), "%s/data.mdb", storepath);
	int fd = open(data, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	uint32_t psize = 0;
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(pread(fd, page, sizeof(page), (off_t)i * psize), sizeof(page));
		memcpy(&psize, page + LMDB_META_PSIZE, 4);
		txnid[i] = 0;
		for (int k = 7; k >= 0; k--)
			txnid[i] = txnid[i] << 8 | page[LMDB_META_TXNID + k];
		memcpy(dbs[i], page + 24, 112); /* mm_dbs and mm_last_pg */
	}
	close(fd);
}

START_TEST(test_compact_gives_back_what_gc_freed_and_every_checkpoint_reads_the_same)
{
	ckpt_store *s = make_store(1 << 16, 0, 0, CKPT_MODE_MIN);
	for (uint64_t e = 1; e <= 8; e++)
		commit_simple(s, e, 20000, (uint32_t)e, "val_loss", 1.0 / (double)e);
	uint32_t deleted;
	OK(ckpt_store_gc(s, 2, 0, &deleted));
	ck_assert_uint_eq(deleted, 6);
	ckpt_store_stats st0 = stats_of(s);
	ckpt_store_close(s);
	/* a copy left by a compaction that was killed is never the store's */
	char leftover[700];
	snprintf(leftover, sizeof(leftover), "%s/data.mdb.compact", storepath);
	FILE *f = fopen(leftover, "w");
	ck_assert_ptr_nonnull(f);
	fputs("left by a killed compaction", f);
	fclose(f);
	uint64_t txnid[2];
	uint8_t dbs[2][112];
	for (int round = 0; round < 2; round++) { /* T odd and even: the other meta page first */
		read_metas(txnid, dbs);
		uint64_t t = txnid[0] > txnid[1] ? txnid[0] : txnid[1];
		off_t before = data_file_size();
		ckpt_store_compact_stats cs;
		OK(ckpt_store_compact(&cs, storepath));
		ck_assert_uint_eq(cs.size_before, (uint64_t)before);
		ck_assert_uint_eq(cs.size_after, (uint64_t)data_file_size());
		ck_assert_uint_le(cs.size_after, round ? cs.size_before : cs.size_before / 3);
		ck_assert(!exists(storepath, "data.mdb.compact"));
		/* the copy goes on from the old transaction id, in both meta pages, so whichever id
		 * lock.mdb holds names the compacted commit */
		read_metas(txnid, dbs);
		ck_assert_uint_eq(txnid[t & 1], t);
		ck_assert_uint_eq(txnid[!(t & 1)], t - 1);
		ck_assert_int_eq(memcmp(dbs[0], dbs[1], sizeof(dbs[0])), 0);
		OK(ckpt_store_open(&s, storepath, 0));
		check_invariants(s);
		ckpt_store_stats st = stats_of(s);
		ck_assert_uint_eq(st.checkpoints, st0.checkpoints);
		ck_assert_uint_eq(st.stored_bytes, st0.stored_bytes);
		ck_assert_uint_eq(st.chunks, st0.chunks);
		ckpt_snapshot *snap;
		OK(ckpt_snapshot_open(&snap, s));
		ck_assert_uint_eq(verify_every_checkpoint(snap, 7 + round), 2);
		ckpt_snapshot_close(snap);
		/* and writers go on in the compacted file */
		commit_simple(s, 9 + round, 20000, 9 + round, "val_loss", 0.01 / (round + 1));
		st0 = stats_of(s);
		ckpt_store_close(s);
	}
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_snapshot *snap;
	uint64_t latest;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_latest(&latest, snap));
	ck_assert_uint_eq(latest, 10);
	ck_assert_uint_eq(verify_every_checkpoint(snap, 9), 2);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_compact_is_refused_while_a_writer_holds_the_store_or_another_process_has_it_open)
{
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	commit_simple(s, 1, 1000, 1, "val_loss", 1.0);
	commit_simple(s, 2, 1000, 2, "val_loss", 0.5);
	ckpt_store_close(s);
	char data[700], files[1024], now[1024];
	snprintf(data, sizeof(data), "%s/data.mdb", storepath);
	/* ckpt-train (or ckpt gc) holds its exclusive flock; a lockless reader a shared one */
	int fd = open(data, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX), 0);
	ck_assert_int_eq(ckpt_store_compact(NULL, storepath), -EBUSY);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "being written by ckpt-train or ckpt gc"));
	ck_assert_int_eq(flock(fd, LOCK_SH), 0);
	ck_assert_int_eq(ckpt_store_compact(NULL, storepath), -EBUSY);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "opened it without lock.mdb"));
	close(fd);
	/* another process with the store open, even without a snapshot, would keep mapping the
	 * old file */
	int ready[2], done[2];
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(done), 0);
	pid_t pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		ckpt_store *rs;
		char c = 0;
		if (ckpt_store_open(&rs, storepath, CKPT_OPEN_READONLY))
			_exit(3);
		if (write(ready[1], &c, 1) != 1 || read(done[0], &c, 1) != 1)
			_exit(4);
		ckpt_store_close(rs);
		_exit(0);
	}
	char c;
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	store_files_state(files, sizeof(files));
	ck_assert_int_eq(ckpt_store_compact(NULL, storepath), -EBUSY);
	char who[64];
	snprintf(who, sizeof(who), "is open in process %ld", (long)pid);
	ck_assert_msg(strstr(ckpt_last_error(), who), "%s", ckpt_last_error());
	store_files_state(now, sizeof(now));
	ck_assert_str_eq(files, now);
	ck_assert_int_eq(write(done[1], &c, 1), 1);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < 2; i++) {
		close(ready[i]);
		close(done[i]);
	}
	OK(ckpt_store_compact(NULL, storepath));
}
END_TEST

START_TEST(test_compact_that_cannot_write_its_copy_leaves_the_store_as_it_was)
{
	ckpt_store *s = make_store(1 << 16, 0, 0, CKPT_MODE_MIN);
	for (uint64_t e = 1; e <= 4; e++)
		commit_simple(s, e, 20000, (uint32_t)e, "val_loss", 1.0 / (double)e);
	OK(ckpt_store_gc(s, 1, 0, NULL));
	ckpt_store_close(s);
	char data[700];
	snprintf(data, sizeof(data), "%s/data.mdb", storepath);
	size_t len = (size_t)data_file_size();
	uint8_t *before = malloc(len), *after = malloc(len);
	ck_assert_ptr_nonnull(before);
	ck_assert_ptr_nonnull(after);
	FILE *f = fopen(data, "rb");
	ck_assert_uint_eq(fread(before, 1, len, f), len);
	fclose(f);
	pid_t pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		/* a file size limit stands in for a full disk: writes past it fail with EFBIG */
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = {16384, 16384};
		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(3);
		int rc = ckpt_store_compact(NULL, storepath);
		if (rc != -EFBIG || !strstr(ckpt_last_error(), "the file size limit (ulimit -f) is")) {
			fprintf(stderr, "compact under a file size limit: %d (%s)\n", rc,
			        ckpt_last_error());
			_exit(4);
		}
		_exit(0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_uint_eq((size_t)data_file_size(), len);
	f = fopen(data, "rb");
	ck_assert_uint_eq(fread(after, 1, len, f), len);
	fclose(f);
	ck_assert_int_eq(memcmp(before, after, len), 0);
	ck_assert(!exists(storepath, "data.mdb.compact"));
	free(before);
	free(after);
	/* with room, and without a lock.mdb (a copied store): compacted, lock.mdb made ready */
	char lock[700];
	snprintf(lock, sizeof(lock), "%s/lock.mdb", storepath);
	ck_assert_int_eq(unlink(lock), 0);
	ckpt_store_compact_stats cs;
	OK(ckpt_store_compact(&cs, storepath));
	ck_assert_uint_lt(cs.size_after, len);
	struct stat st;
	ck_assert_int_eq(stat(lock, &st), 0);
	ck_assert_int_gt(st.st_size, 0);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	ck_assert_uint_eq(verify_every_checkpoint(snap, 4), 1);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_compact_of_what_is_not_a_store_is_a_clear_error)
{
	char p[600];
	ck_assert_int_eq(ckpt_store_compact(NULL, ""), -EINVAL);
	snprintf(p, sizeof(p), "%s/missing", tmpdir);
	ck_assert_int_eq(ckpt_store_compact(NULL, p), -ENOENT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), p));
	ck_assert_int_eq(ckpt_store_compact(NULL, tmpdir), CKPT_ENOTSTORE);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "no data.mdb"));
	ck_assert(!exists(tmpdir, "lock.mdb") && !exists(tmpdir, "data.mdb.compact"));
}
END_TEST

/* A store created and closed at @p path (no_sync). */
static void make_store_at(const char *path)
{
	ckpt_run_meta m = test_meta("val_loss", CKPT_MODE_MIN);
	ckpt_store_options o = {.chunk_size = 64, .no_sync = true};
	ckpt_store *s = NULL;
	OK(ckpt_store_create(&s, path, &m, &o));
	ckpt_store_close(s);
}

/* What a create in another process shows before its store is whole: lock.mdb alone (0), an
 * empty data.mdb beside it (1), an LMDB environment without any database (2). */
static bool make_creating_state(const char *dir, int state)
{
	char f[700];
	snprintf(f, sizeof(f), "%s/lock.mdb", dir);
	int fd = open(f, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return false;
	close(fd);
	snprintf(f, sizeof(f), "%s/data.mdb", dir);
	if (state == 1 && (fd = open(f, O_RDWR | O_CREAT, 0644)) >= 0)
		close(fd);
	MDB_env *env;
	if (state == 2) {
		if (mdb_env_create(&env) || mdb_env_open(env, dir, 0, 0644))
			return false;
		mdb_env_close(env);
	}
	return state != 1 || fd >= 0;
}

/* A new empty directory @p name in the test's directory, its path into @p out */
static void make_test_dir(char out[600], const char *name)
{
	snprintf(out, 600, "%s/%s", tmpdir, name);
	ck_assert_int_eq(mkdir(out, 0755), 0);
}

/* fork(), with a child that is killed when the test process ends: a failed assertion ends it
 * while the child may hold a lock that later tests would wait for */
static pid_t fork_tied(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent))
		_exit(9);
	return pid;
}

/* A process of a test that holds a store directory's flock as another program would, until a
 * byte comes on release[1] (or the test process ends) */
typedef struct lock_holder {
	pid_t pid;
	int ready[2], release[2];
} lock_holder;

/* Fork @p h's process, and return once it holds @p dir's flock @p how: LOCK_SH plays a reader
 * in its second open; LOCK_EX plays a create, which shows @p state (make_creating_state) and,
 * once released, moves the data.mdb of the closed store @p whole into @p dir (none when NULL).
 * Released, it ends, which releases the lock. */
static void hold_dir_lock(lock_holder *h, const char *dir, int how, int state, const char *whole)
{
	ck_assert_int_eq(pipe(h->ready), 0);
	ck_assert_int_eq(pipe(h->release), 0);
	if ((h->pid = fork_tied())) {
		char c;
		ck_assert_int_eq(read(h->ready[0], &c, 1), 1);
		return;
	}
	close(h->release[1]);
	int lock = open(dir, O_RDONLY | O_DIRECTORY);
	char c = 0, from[700], to[700];
	if (lock < 0 || flock(lock, how) != 0 ||
	    (how == LOCK_EX && !make_creating_state(dir, state)) ||
	    write(h->ready[1], &c, 1) != 1 || read(h->release[0], &c, 1) != 1)
		_exit(3);
	if (whole) {
		snprintf(from, sizeof(from), "%s/data.mdb", whole);
		snprintf(to, sizeof(to), "%s/data.mdb", dir);
		if (rename(from, to) != 0)
			_exit(4);
	}
	_exit(0);
}

/* Wait for @p h's process (released or killed) to end: its wait status */
static int lock_holder_reap(lock_holder *h)
{
	int status;
	ck_assert_int_eq(waitpid(h->pid, &status, 0), h->pid);
	for (int i = 0; i < 2; i++) {
		close(h->ready[i]);
		close(h->release[i]);
	}
	return status;
}

/* A thread that, a moment after it starts, tells another process to release its lock (a byte
 * to @p fd): a call made meanwhile that must wait for that lock may return only once @p sent
 * is set. The moment only lets the call start waiting; no result depends on its length. */
typedef struct release_later {
	pthread_t thread;
	int fd;
	atomic_bool sent;
	bool written;
} release_later;

static void *release_after_a_moment(void *arg)
{
	release_later *r = arg;
	usleep(50 * 1000);
	atomic_store(&r->sent, true);
	char c = 0;
	r->written = write(r->fd, &c, 1) == 1;
	return NULL;
}

static void release_later_start(release_later *r, int fd)
{
	r->fd = fd;
	atomic_init(&r->sent, false);
	r->written = false;
	ck_assert_int_eq(pthread_create(&r->thread, NULL, release_after_a_moment, r), 0);
}

/* Whether the release had been sent when this is called; waits for the thread and asserts that
 * the byte went out. */
static bool release_later_end(release_later *r)
{
	bool sent = atomic_load(&r->sent);
	ck_assert_int_eq(pthread_join(r->thread, NULL), 0);
	ck_assert(r->written);
	return sent;
}

START_TEST(test_a_read_only_open_during_a_create_waits_for_it_and_opens_the_whole_store)
{
	for (int state = 0; state < 3; state++) {
		char dir[600], whole[600], name[32];
		snprintf(name, sizeof(name), "creating%d", state);
		make_test_dir(dir, name);
		snprintf(whole, sizeof(whole), "%s/whole%d", tmpdir, state);
		make_store_at(whole);
		lock_holder create;
		hold_dir_lock(&create, dir, LOCK_EX, state, whole);
		release_later r;
		release_later_start(&r, create.release[1]);
		ckpt_store *s = NULL;
		int rc = ckpt_store_open(&s, dir, CKPT_OPEN_READONLY);
		bool after_the_create = release_later_end(&r);
		ck_assert_msg(rc == 0, "state %d: %s", state, ckpt_last_error());
		ck_assert_msg(after_the_create, "state %d: the open did not wait for the create",
		              state);
		ck_assert_str_eq(ckpt_store_meta(s)->monitor, "val_loss");
		ckpt_store_close(s);
		int status = lock_holder_reap(&create);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}
END_TEST

START_TEST(test_a_create_that_holds_its_lock_too_long_is_named_and_never_called_interrupted)
{
	store_dir_wait_ms = 300;
	char dir[600];
	make_test_dir(dir, "creating");
	lock_holder create;
	hold_dir_lock(&create, dir, LOCK_EX, 0, NULL); /* never released: killed below */
	char who[64];
	snprintf(who, sizeof(who), "being created by pid %ld", (long)create.pid);
	ckpt_store *s = NULL;
	ck_assert_int_eq(ckpt_store_open(&s, dir, CKPT_OPEN_READONLY), -EBUSY);
	ck_assert_msg(strstr(ckpt_last_error(), who), "%s", ckpt_last_error());
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "for a minute"));
	/* a read-write open does not wait, and says the same */
	ck_assert_int_eq(ckpt_store_open(&s, dir, 0), CKPT_ENOTSTORE);
	ck_assert_msg(strstr(ckpt_last_error(), who), "%s", ckpt_last_error());
	ck_assert_ptr_null(strstr(ckpt_last_error(), "interrupted"));
	/* another create names it as the holder of the exclusive lock */
	ckpt_run_meta m = test_meta("val_loss", CKPT_MODE_MIN);
	ckpt_store_options o = {.chunk_size = 64, .no_sync = true};
	snprintf(who, sizeof(who), "locked for a minute by pid %ld (", (long)create.pid);
	ck_assert_int_eq(ckpt_store_create(&s, dir, &m, &o), -EBUSY);
	ck_assert_msg(strstr(ckpt_last_error(), who), "%s", ckpt_last_error());
	/* killed: now its lock.mdb is the remnant of an interrupted create */
	kill(create.pid, SIGKILL);
	lock_holder_reap(&create);
	ck_assert_int_eq(ckpt_store_open(&s, dir, CKPT_OPEN_READONLY), CKPT_ENOTSTORE);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "interrupted create"));
	store_dir_wait_ms = 60 * 1000;
}
END_TEST

START_TEST(test_readers_that_keep_a_create_out_are_called_readers)
{
	store_dir_wait_ms = 300;
	char dir[600];
	make_test_dir(dir, "read");
	lock_holder reader;
	hold_dir_lock(&reader, dir, LOCK_SH, 0, NULL);
	ckpt_run_meta m = test_meta("val_loss", CKPT_MODE_MIN);
	ckpt_store_options o = {.chunk_size = 64, .no_sync = true};
	ckpt_store *s;
	ck_assert_int_eq(ckpt_store_create(&s, dir, &m, &o), -EBUSY);
	char who[160];
	snprintf(who, sizeof(who),
	         "readers opening the store kept the directory busy for a minute (now pid %ld (",
	         (long)reader.pid);
	ck_assert_msg(strstr(ckpt_last_error(), who), "%s", ckpt_last_error());
	ck_assert_ptr_null(strstr(ckpt_last_error(), "locked for a minute by"));
	ck_assert_int_eq(ckpt_store_discard(dir, false), -EBUSY);
	ck_assert_msg(strstr(ckpt_last_error(), who), "%s", ckpt_last_error());
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "the store was not removed"));
	char c = 0;
	ck_assert_int_eq(write(reader.release[1], &c, 1), 1);
	int status = lock_holder_reap(&reader);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	store_dir_wait_ms = 60 * 1000;
}
END_TEST

START_TEST(test_read_only_opens_of_an_empty_directory_never_hold_up_its_create)
{
	enum { READERS = 6 };
	char dir[600];
	make_test_dir(dir, "empty");
	int ready[2], stop[2];
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(stop), 0);
	pid_t readers[READERS];
	for (int i = 0; i < READERS; i++) {
		if ((readers[i] = fork_tied()))
			continue;
		/* open until the test closes its end of @p stop */
		close(stop[1]);
		if (fcntl(stop[0], F_SETFL, O_NONBLOCK) != 0)
			_exit(3);
		for (long n = 0;; n++) {
			ckpt_store *s;
			int rc = ckpt_store_open(&s, dir, CKPT_OPEN_READONLY);
			if (rc == 0)
				ckpt_store_close(s);
			else if (rc != CKPT_ENOTSTORE)
				_exit(4);
			char c = 0;
			if (n == 10 && write(ready[1], &c, 1) != 1)
				_exit(5);
			if (n > 10 && read(stop[0], &c, 1) == 0)
				_exit(0);
		}
	}
	close(stop[0]);
	for (int i = 0; i < READERS; i++) {
		char c;
		ck_assert_int_eq(read(ready[0], &c, 1), 1);
	}
	/* while they look, the lock that a create takes first is never held by any of them */
	int refused = 0;
	for (int i = 0; i < 2000; i++) {
		int fd = open(dir, O_RDONLY | O_DIRECTORY);
		ck_assert_int_ge(fd, 0);
		refused += flock(fd, LOCK_EX | LOCK_NB) != 0;
		close(fd);
	}
	ck_assert_int_eq(refused, 0);
	/* so a create that would not wait for it at all goes through */
	ckpt_run_meta m = test_meta("val_loss", CKPT_MODE_MIN);
	ckpt_store_options o = {.chunk_size = 64, .no_sync = true};
	ckpt_store *s;
	store_dir_wait_ms = 0;
	int rc = ckpt_store_create(&s, dir, &m, &o);
	store_dir_wait_ms = 60 * 1000;
	ck_assert_msg(rc == 0, "%s", ckpt_last_error());
	ckpt_store_close(s);
	close(stop[1]);
	for (int i = 0; i < READERS; i++) {
		int status;
		ck_assert_int_eq(waitpid(readers[i], &status, 0), readers[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader %d: status %d",
		              i, status);
	}
	close(ready[0]);
	close(ready[1]);
}
END_TEST

typedef struct open_result {
	const char *path;
	int rc;
	char monitor[32], error[512];
} open_result;

static void *open_read_only(void *arg)
{
	open_result *r = arg;
	ckpt_store *s;
	r->rc = ckpt_store_open(&s, r->path, CKPT_OPEN_READONLY);
	snprintf(r->error, sizeof(r->error), "%s", r->rc ? ckpt_last_error() : "");
	if (r->rc == 0)
		snprintf(r->monitor, sizeof(r->monitor), "%s", ckpt_store_meta(s)->monitor);
	ckpt_store_close(s);
	return NULL;
}

START_TEST(test_a_reader_that_comes_while_a_create_waits_for_the_lock_lets_it_go_first)
{
	char dir[600];
	make_test_dir(dir, "remnant");
	ck_assert(make_creating_state(dir, 0)); /* the lock.mdb of an interrupted create */
	/* a reader in its second open holds the lock shared */
	int held = open(dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_eq(flock(held, LOCK_SH), 0);
	pid_t pid = fork_tied();
	if (pid == 0) {
		close(held); /* its lock is the parent's to release */
		ckpt_run_meta m = test_meta("val_acc", CKPT_MODE_MAX);
		ckpt_store_options o = {.chunk_size = 64, .no_sync = true};
		ckpt_store *s;
		_exit(ckpt_store_create(&s, dir, &m, &o) == 0 ? 0 : 3);
	}
	int status;
	while (!store_dir_writer_waiting(dir)) {
		ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0, "the create ended: status %d",
		              status);
		usleep(1000);
	}
	/* a reader that finds the remnant now waits for the create, instead of sharing the lock
	 * with the one who holds it and calling the remnant an interrupted create */
	open_result r = {.path = dir};
	pthread_t reader;
	ck_assert_int_eq(pthread_create(&reader, NULL, open_read_only, &r), 0);
	usleep(50 * 1000); /* lets it look; the result does not depend on how long */
	close(held);
	ck_assert_int_eq(pthread_join(reader, NULL), 0);
	ck_assert_msg(r.rc == 0, "%s", r.error);
	ck_assert_str_eq(r.monitor, "val_acc");
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(!store_dir_writer_waiting(dir));
}
END_TEST

START_TEST(test_read_only_opens_racing_creates_and_discards_see_a_whole_store_or_none)
{
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/cycling", tmpdir);
	pid_t pid = fork_tied();
	if (pid == 0) {
		ckpt_run_meta m = test_meta("val_loss", CKPT_MODE_MIN);
		ckpt_store_options o = {.chunk_size = 64, .no_sync = true};
		for (int i = 0; i < 60; i++) {
			ckpt_store *s;
			if (ckpt_store_create(&s, dir, &m, &o))
				_exit(3);
			ckpt_store_close(s);
			if (ckpt_store_discard(dir, true))
				_exit(4);
		}
		_exit(0);
	}
	int opened = 0, status;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		ckpt_store *s;
		int rc = ckpt_store_open(&s, dir, CKPT_OPEN_READONLY);
		/* or the empty directory that a create makes before it locks it */
		static const char empty[] = ": not a ckpt store (no data.mdb)";
		const char *msg = ckpt_last_error();
		bool empty_dir = rc == CKPT_ENOTSTORE && strlen(msg) >= strlen(empty) &&
		                 strcmp(msg + strlen(msg) - strlen(empty), empty) == 0;
		ck_assert_msg(rc == 0 || rc == -ENOENT || empty_dir, "%s", ckpt_last_error());
		opened += rc == 0;
		ckpt_store_close(s);
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	ck_assert(!exists(tmpdir, "cycling"));
	(void)opened; /* how many opens fell between a create and its discard varies */
}
END_TEST

/* This program's rmdir (the store code linked into it calls this one): counts its calls and,
 * when rmdir_adds_lock_file names the directory, first makes a lock.mdb there once, as a
 * reader whose open fails under a discard leaves one for a moment. */
static int rmdir_calls;
static char rmdir_adds_lock_file[600];

int rmdir(const char *path)
{
	static int (*real)(const char *);
	if (!real) {
		void *sym = dlsym(RTLD_NEXT, "rmdir");
		if (!sym)
			abort();
		memcpy(&real, &sym, sizeof(real));
	}
	rmdir_calls++;
	if (rmdir_adds_lock_file[0] && strcmp(path, rmdir_adds_lock_file) == 0) {
		char f[700];
		snprintf(f, sizeof(f), "%s/lock.mdb", path);
		rmdir_adds_lock_file[0] = '\0';
		int fd = open(f, O_RDWR | O_CREAT, 0644);
		if (fd >= 0)
			close(fd);
	}
	return real(path);
}

START_TEST(test_discard_removes_the_store_under_the_directory_lock)
{
	make_store_at(storepath);
	ckpt_store *s;
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ck_assert_int_eq(ckpt_store_discard(storepath, true), -EBUSY); /* open here */
	ckpt_store_close(s);
	/* it waits for a reader holding the lock for its second open */
	lock_holder reader;
	hold_dir_lock(&reader, storepath, LOCK_SH, 0, NULL);
	release_later r;
	release_later_start(&r, reader.release[1]);
	int rc = ckpt_store_discard(storepath, false);
	bool after_the_reader = release_later_end(&r);
	ck_assert_msg(rc == 0, "%s", ckpt_last_error());
	ck_assert(after_the_reader);
	int status = lock_holder_reap(&reader);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(exists(tmpdir, "store"));
	ck_assert(!exists(storepath, "data.mdb"));
	ck_assert(!exists(storepath, "lock.mdb"));
	ck_assert_int_eq(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY), CKPT_ENOTSTORE);
	/* a directory holding other files keeps them and stays, and says so at once: the
	 * store itself is removed */
	make_store_at(storepath);
	char f[700];
	snprintf(f, sizeof(f), "%s/notes.txt", storepath);
	close(open(f, O_RDWR | O_CREAT, 0644));
	rmdir_calls = 0;
	ck_assert_int_eq(ckpt_store_discard(storepath, true), -ENOTEMPTY);
	ck_assert_int_eq(rmdir_calls, 1);
	ck_assert_msg(
	    strstr(ckpt_last_error(),
	           ": the store was removed; the directory stays, as it holds other files"),
	    "%s", ckpt_last_error());
	ck_assert(exists(storepath, "notes.txt"));
	ck_assert(!exists(storepath, "data.mdb"));
	ck_assert(!exists(storepath, "lock.mdb"));
	unlink(f);
	/* a lock.mdb that a reader's failed open makes for a moment is waited out */
	make_store_at(storepath);
	snprintf(rmdir_adds_lock_file, sizeof(rmdir_adds_lock_file), "%s", storepath);
	rmdir_calls = 0;
	OK(ckpt_store_discard(storepath, true));
	ck_assert_int_eq(rmdir_calls, 2);
	ck_assert(!exists(tmpdir, "store"));
	ck_assert_int_eq(ckpt_store_discard(storepath, true), -ENOENT);
	ck_assert_int_eq(ckpt_store_discard(NULL, true), -EINVAL);
}
END_TEST

/* `ckpt info STORE` (cli_info): its exit status, its output into @p out */
static int info_output(char *out, size_t cap, const char *store)
{
	char outpath[600];
	snprintf(outpath, sizeof(outpath), "%s/info.out", tmpdir);
	int rc = run_cli_into(outpath, 1, cli_info, "info", store);
	FILE *f = fopen(outpath, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
	return rc;
}

START_TEST(test_info_prints_best_value_none_when_no_checkpoint_is_best)
{
	char out[4096];
	ckpt_store *s = make_store(64, 0, 0, CKPT_MODE_MIN);
	ckpt_store_close(s);
	ck_assert_int_eq(info_output(out, sizeof(out), storepath), 0);
	ck_assert_msg(strstr(out, "\nbest: none\nbest-value: none\n"), "%s", out);
	/* every monitored value NaN or infinite: checkpoints, but none of them is best */
	OK(ckpt_store_open(&s, storepath, 0));
	commit_simple(s, 1, 10, 1, "val_loss", NAN);
	commit_simple(s, 2, 10, 2, "val_loss", INFINITY);
	ckpt_store_close(s);
	ck_assert_int_eq(info_output(out, sizeof(out), storepath), 0);
	ck_assert_msg(strstr(out, "\ncheckpoints: 2\nlatest: epoch-0002\nbest: none\n"
	                          "best-value: none\n"),
	              "%s", out);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *su = suite_create("store");
	TCase *tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_dtype_table_and_crc32_are_right);
	tcase_add_test(tc, test_crc32_matches_zlib_for_every_length_and_alignment);
	tcase_add_test(tc, test_every_dtype_round_trips_including_scalars_and_empty);
	tcase_add_test(tc, test_multi_chunk_tensors_read_across_chunk_boundaries);
	tcase_add_test(tc, test_big_chunks_copied_by_several_threads_read_back_exactly);
	tcase_add_test(tc, test_helper_threads_block_asynchronous_signals_only);
	tcase_add_test(tc, test_abort_leaves_nothing);
	tcase_add_test(tc, test_bad_tensor_arguments_are_rejected);
	tcase_add_test(tc, test_many_tensors_keep_their_names_devices_and_order);
	tcase_add_test(tc, test_duplicate_names_are_refused_per_group_among_many_tensors);
	tcase_add_test(
	    tc, test_one_snapshot_serves_many_threads_at_once_and_generations_tell_commits_apart);
	tcase_add_test(tc, test_checkpoints_load_in_any_order_and_repeat_lookups_return_the_same_record);
	tcase_add_test(tc, test_best_tracks_min_and_max_and_ignores_nan);
	tcase_add_test(tc, test_incremental_best_matches_a_full_scan_through_replacements_and_ties);
	tcase_add_test(tc, test_retention_keeps_last_and_top_and_never_drops_the_best);
	tcase_add_test(tc, test_dedup_stores_identical_bytes_once_and_gc_frees_the_last_reference);
	tcase_add_test(tc, test_random_commits_and_gc_match_a_model_of_retention_and_best);
	tcase_add_test(tc, test_map_grows_from_a_tiny_initial_map);
	tcase_add_test(tc, test_map_full_is_retried_after_growing_and_waits_for_open_snapshots);
	tcase_add_test(tc, test_reader_snapshot_stays_consistent_while_a_writer_commits);
	tcase_add_test(tc, test_threads_share_a_store_handle_while_it_commits_and_grows);
	tcase_add_test(tc, test_commit_is_atomic_under_sigkill);
	tcase_add_test(tc, test_bytes_that_do_not_match_the_content_hash_fail_verify);
	tcase_add_test(tc, test_a_commit_past_the_file_size_limit_is_efbig_and_keeps_earlier_checkpoints);
	tcase_add_test(tc, test_non_store_paths_give_clear_errors_and_change_nothing);
	tcase_add_test(tc, test_newer_schema_is_refused);
	tcase_add_test(tc, test_corrupt_records_give_errors_with_context);
	tcase_add_test(tc, test_every_changed_byte_of_every_record_type_is_detected);
	tcase_add_test(tc, test_version_1_records_without_checksums_still_decode);
	tcase_add_test(tc, test_a_store_of_version_1_records_reads_and_takes_new_checkpoints);
	tcase_add_test(tc, test_damaged_metadata_records_fail_their_epoch_and_spare_the_others);
	tcase_add_test(tc, test_tensor_records_needing_more_than_2_32_chunks_are_corrupt);
	tcase_add_test(tc, test_tensor_records_with_a_name_twice_in_one_group_are_corrupt);
	tcase_add_test(tc, test_read_only_store_refuses_writes_and_opens_in_a_read_only_directory);
	tcase_add_test(tc, test_read_only_opens_never_create_a_missing_lock_file_and_keep_writers_out);
	tcase_add_test(tc, test_compact_gives_back_what_gc_freed_and_every_checkpoint_reads_the_same);
	tcase_add_test(tc, test_compact_is_refused_while_a_writer_holds_the_store_or_another_process_has_it_open);
	tcase_add_test(tc, test_compact_that_cannot_write_its_copy_leaves_the_store_as_it_was);
	tcase_add_test(tc, test_compact_of_what_is_not_a_store_is_a_clear_error);
	tcase_add_test(tc, test_newest_time_is_the_last_commit_even_when_it_rewrote_an_earlier_epoch);
	tcase_add_test(tc, test_verify_reports_an_epoch_key_past_the_last_epoch);
	tcase_add_test(tc, test_a_read_only_open_during_a_create_waits_for_it_and_opens_the_whole_store);
	tcase_add_test(tc, test_a_create_that_holds_its_lock_too_long_is_named_and_never_called_interrupted);
	tcase_add_test(tc, test_readers_that_keep_a_create_out_are_called_readers);
	tcase_add_test(tc, test_read_only_opens_of_an_empty_directory_never_hold_up_its_create);
	tcase_add_test(tc,
	               test_a_reader_that_comes_while_a_create_waits_for_the_lock_lets_it_go_first);
	tcase_add_test(tc, test_read_only_opens_racing_creates_and_discards_see_a_whole_store_or_none);
	tcase_add_test(tc, test_discard_removes_the_store_under_the_directory_lock);
	tcase_add_test(tc, test_info_prints_best_value_none_when_no_checkpoint_is_best);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
