/* tests/unit/check_store_pages.c - Check suite for what LMDB takes on trust (store/pages.c): a
 * node size damaged in data.mdb makes LMDB return a value reaching past the end of the file,
 * which readers refuse as a damaged record of its epoch (never SIGBUS), and which a writer
 * refuses, with the whole file, before it changes anything (never a crash inside LMDB)
 *
 * Each test works in a fresh mkdtemp directory that it removes. What could crash runs in a
 * forked child, so that a signal fails the test instead of ending the run.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt/store.h"
#include "test_dir.h"

#define TENSOR_FLOATS 64 /* 256 bytes: every record and chunk lies inline in a leaf page */
#define BIG_FLOATS 16384 /* 64 KiB in one chunk: an overflow value */

static char tmpdir[256];
static char storepath[512];
static char datapath[600];

static void setup(void)
{
	test_store_dir_make(tmpdir, sizeof(tmpdir), storepath, sizeof(storepath),
	                    "check_store_pages");
	snprintf(datapath, sizeof(datapath), "%s/data.mdb", storepath);
}

static void teardown(void)
{
	test_dir_remove(tmpdir);
}

static ckpt_store *make_store(void)
{
	ckpt_run_meta m = {.model = "mlp", .monitor = "val_loss", .monitor_mode = CKPT_MODE_MIN};
	ckpt_store_options o = {.chunk_size = 1 << 16, .no_sync = true};
	ckpt_store *s = NULL;
	OK(ckpt_store_create(&s, storepath, &m, &o));
	return s;
}

static void commit(ckpt_store *s, uint64_t epoch, size_t floats)
{
	float *w = malloc(floats * sizeof(float));
	ck_assert_ptr_nonnull(w);
	for (size_t i = 0; i < floats; i++)
		w[i] = (float)(epoch * 1000003 + i);
	uint64_t shape[1] = {floats};
	ckpt_writer *wr;
	OK(ckpt_writer_begin(&wr, s, epoch));
	ckpt_writer_set_metric(wr, "val_loss", 1.0 / (double)epoch);
	OK(ckpt_writer_put_tensor(wr, "w", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape, "cpu", w,
	                          floats * sizeof(float)));
	OK(ckpt_writer_commit(wr));
	free(w);
}

static ckpt_store *store_of_epochs(uint64_t n)
{
	ckpt_store *s = make_store();
	for (uint64_t e = 1; e <= n; e++)
		commit(s, e, e == n ? BIG_FLOATS : TENSOR_FLOATS);
	return s;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc(*len ? *len : 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, *len, f), *len);
	fclose(f);
	return buf;
}

/* The offset in data.mdb of the value stored under @p key in database @p db, through the map
 * of a read-only environment (which maps the file whole from offset 0), and its length. */
static size_t value_offset(const char *db, const void *key, size_t klen, size_t *vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)key}, v;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, storepath, MDB_RDONLY | MDB_NOLOCK, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, db, 0, &dbi), 0);
	ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
	*vlen = v.mv_size;
	uintptr_t at = (uintptr_t)v.mv_data;
	size_t off = SIZE_MAX;
	char line[4608];
	FILE *maps = fopen("/proc/self/maps", "r");
	ck_assert_ptr_nonnull(maps);
	while (fgets(line, sizeof(line), maps)) {
		unsigned long long lo, hi, o;
		if (sscanf(line, "%llx-%llx %*s %llx", &lo, &hi, &o) == 3 && at >= lo && at < hi &&
		    strstr(line, "/data.mdb"))
			off = (size_t)(at - lo + o);
	}
	fclose(maps);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	ck_assert_uint_ne(off, SIZE_MAX);
	return off;
}

/* OR @p bits into the high 16 bits of the data size in the node header of the inline value at
 * @p off (key of @p klen bytes): 0x10 adds 1 MiB, 0x08 512 KiB */
static void damage_node_size(size_t off, size_t klen, uint16_t bits)
{
	int fd = open(datapath, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t hi[2];
	off_t at = (off_t)(off - klen - 8 + 2); /* mn_lo 2, mn_hi 2, mn_flags 2, mn_ksize 2 */
	ck_assert_int_eq(pread(fd, hi, 2, at), 2);
	hi[0] |= (uint8_t)bits;
	hi[1] |= (uint8_t)(bits >> 8);
	ck_assert_int_eq(pwrite(fd, hi, 2, at), 2);
	close(fd);
}

static void epoch_key(uint8_t k[8], uint64_t e)
{
	for (int i = 0; i < 8; i++)
		k[i] = (uint8_t)(e >> (56 - 8 * i));
}

/* the content hash of epoch @p e's tensor */
static void tensor_hash(uint8_t out[16], uint64_t e)
{
	ckpt_store *s;
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_checkpoint(&c, snap, e));
	memcpy(out, ckpt_checkpoint_tensor_at(c, 0)->hash, 16);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}

/* Run @p fn in a child; fail (naming the signal) unless it exits 0. */
static void in_child(void (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(!WIFSIGNALED(status), "the child died of signal %d",
	              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed");
}

#define CHILD_CHECK(cond, ...)                                                                   \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, __VA_ARGS__);                                            \
			fprintf(stderr, " (%s)\n", ckpt_last_error());                           \
			_exit(1);                                                                \
		}                                                                                \
	} while (0)

static void readers_see_damaged_records_and_the_rest(void)
{
	ckpt_store *s;
	ckpt_snapshot *snap;
	CHILD_CHECK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY) == 0, "open");
	CHILD_CHECK(ckpt_snapshot_open(&snap, s) == 0, "snapshot");
	uint64_t *epochs;
	size_t n;
	CHILD_CHECK(ckpt_snapshot_list(&epochs, &n, snap) == 0 && n == 5, "list");
	free(epochs);
	const ckpt_checkpoint *c;
	int rc = ckpt_snapshot_checkpoint(&c, snap, 2);
	CHILD_CHECK(rc == CKPT_ECORRUPT &&
	                strstr(ckpt_last_error(), "the checkpoint record of epoch 2") &&
	                strstr(ckpt_last_error(), "reaches past the end") &&
	                strstr(ckpt_last_error(), storepath),
	            "epoch 2: rc %d", rc);
	CHILD_CHECK(ckpt_snapshot_checkpoint(&c, snap, 3) == 0, "epoch 3's record");
	rc = ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0));
	CHILD_CHECK(rc == CKPT_ECORRUPT && strstr(ckpt_last_error(), "the record of blob"),
	            "epoch 3's blob: rc %d", rc);
	CHILD_CHECK(ckpt_snapshot_checkpoint(&c, snap, 4) == 0, "epoch 4's record");
	rc = ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0));
	CHILD_CHECK(rc == CKPT_ECORRUPT && strstr(ckpt_last_error(), "chunk 0 of blob"),
	            "epoch 4's chunk: rc %d", rc);
	uint64_t sound[] = {1, 5};
	for (size_t i = 0; i < 2; i++) {
		CHILD_CHECK(ckpt_snapshot_checkpoint(&c, snap, sound[i]) == 0 &&
		                ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)) == 0,
		            "epoch %llu", (unsigned long long)sound[i]);
	}
	int64_t t;
	CHILD_CHECK(ckpt_snapshot_newest_time(&t, snap) == 0, "newest time");
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}

static void writers_refuse_the_file(void)
{
	ckpt_store *s;
	int rc = ckpt_store_open(&s, storepath, 0);
	CHILD_CHECK(rc == CKPT_ECORRUPT && strstr(ckpt_last_error(), "data.mdb is damaged") &&
	                strstr(ckpt_last_error(), "database: node") && !strchr(ckpt_last_error(), '\n'),
	            "open for writing: rc %d", rc);
	ckpt_store_compact_stats st;
	rc = ckpt_store_compact(&st, storepath);
	CHILD_CHECK(rc == CKPT_ECORRUPT && strstr(ckpt_last_error(), "data.mdb is damaged"),
	            "compact: rc %d", rc);
}

START_TEST(test_values_past_the_end_of_data_mdb_are_damaged_records_for_readers_and_refused_by_writers)
{
	ckpt_store *s = store_of_epochs(5);
	ckpt_store_close(s);
	uint8_t k[8], hash[16], chunk[20];
	size_t len;
	epoch_key(k, 2);
	damage_node_size(value_offset("ckpt", k, 8, &len), 8, 0x10);
	tensor_hash(hash, 3);
	damage_node_size(value_offset("blobs", hash, 16, &len), 16, 0x10);
	tensor_hash(hash, 4);
	memcpy(chunk, hash, 16);
	memset(chunk + 16, 0, 4);
	damage_node_size(value_offset("chunks", chunk, 20, &len), 20, 0x10);
	size_t before_len, after_len;
	uint8_t *before = read_file(datapath, &before_len);
	in_child(readers_see_damaged_records_and_the_rest);
	in_child(writers_refuse_the_file);
	uint8_t *after = read_file(datapath, &after_len);
	ck_assert(before_len == after_len && memcmp(before, after, before_len) == 0);
	free(before);
	free(after);
	char scratch[700];
	snprintf(scratch, sizeof(scratch), "%s/data.mdb.gc", storepath);
	ck_assert_int_ne(access(scratch, F_OK), 0);
}
END_TEST

static void writer_refuses_the_chunk(void)
{
	ckpt_store *s;
	int rc = ckpt_store_open(&s, storepath, 0);
	CHILD_CHECK(rc == CKPT_ECORRUPT && strstr(ckpt_last_error(), "'chunks' database"),
	            "open for writing: rc %d", rc);
}

/* A size that stays inside the file (a reader reads a chunk of the wrong length and says so)
 * but not inside its page: LMDB's delete would move 512 KiB of the page. */
START_TEST(test_a_writer_refuses_a_chunk_whose_size_leaves_its_page_within_the_file)
{
	ckpt_store *s = store_of_epochs(3);
	ckpt_store_close(s);
	uint8_t hash[16], chunk[20];
	size_t len;
	tensor_hash(hash, 1);
	memcpy(chunk, hash, 16);
	memset(chunk + 16, 0, 4);
	damage_node_size(value_offset("chunks", chunk, 20, &len), 20, 0x08);
	in_child(writer_refuses_the_chunk);
}
END_TEST

/* A size made smaller keeps every value inside the file, but the nodes no longer tile their
 * page: a delete would shift the wrong bytes. */
START_TEST(test_a_writer_refuses_a_node_size_made_smaller)
{
	ckpt_store *s = store_of_epochs(3);
	ckpt_store_close(s);
	uint8_t k[8];
	size_t len;
	epoch_key(k, 2);
	size_t off = value_offset("ckpt", k, 8, &len);
	int fd = open(datapath, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t lo[2] = {(uint8_t)((len - 16) & 0xff), (uint8_t)((len - 16) >> 8)};
	ck_assert_int_eq(pwrite(fd, lo, 2, (off_t)(off - 16)), 2);
	close(fd);
	int rc = ckpt_store_open(&s, storepath, 0);
	ck_assert_int_eq(rc, CKPT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "do not tile"));
	/* readers still serve it (its record then fails its CRC-32) */
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_store_close(s);
}
END_TEST

/* Fork a process that opens the store for writing and commits epochs @p first to @p last (the
 * odd ones an overflow value), keeping the last 10 every @p gc_every epochs (0: never); it
 * exits 0 when all of it succeeded. */
static pid_t fork_writer(uint64_t first, uint64_t last, uint64_t gc_every)
{
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		ckpt_store *w;
		if (ckpt_store_open(&w, storepath, 0) != 0)
			_exit(1);
		for (uint64_t e = first; e <= last; e++) {
			commit(w, e, e % 2 ? BIG_FLOATS : TENSOR_FLOATS);
			if (gc_every && e % gc_every == 0 && ckpt_store_gc(w, 10, 0, NULL) != 0)
				_exit(2);
		}
		ckpt_store_close(w);
		_exit(0);
	}
	return pid;
}

/* A reader that measured data.mdb when it opened reads what another process committed since
 * (the file grew under it): values past the size it knew are measured again, not refused. */
START_TEST(test_a_reader_reads_what_another_process_appended_after_it_opened)
{
	ckpt_store *s = store_of_epochs(1);
	ckpt_store_close(s);
	ckpt_store *r;
	OK(ckpt_store_open(&r, storepath, CKPT_OPEN_READONLY));
	pid_t pid = fork_writer(2, 40, 0);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, r));
	for (uint64_t e = 1; e <= 40; e++) {
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, e));
		OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)));
	}
	ckpt_snapshot_close(snap);
	ckpt_store_close(r);
}
END_TEST

/* Sound stores of every shape open for writing: after commits, gc, shared blobs and
 * compaction (the walk must never refuse a file LMDB wrote). */
START_TEST(test_sound_stores_pass_the_walk_through_commits_gc_and_compaction)
{
	ckpt_store *s = make_store();
	for (uint64_t e = 1; e <= 120; e++) {
		commit(s, e, e % 7 == 0 ? BIG_FLOATS : TENSOR_FLOATS * (1 + e % 5));
		if (e % 25 == 0) {
			OK(ckpt_store_gc(s, 10, 2, NULL));
			ckpt_store_close(s);
			OK(ckpt_store_open(&s, storepath, 0));
		}
	}
	ckpt_store_close(s);
	ckpt_store_compact_stats st;
	OK(ckpt_store_compact(&st, storepath));
	OK(ckpt_store_open(&s, storepath, 0));
	commit(s, 121, BIG_FLOATS);
	ckpt_store_close(s);
}
END_TEST

/* damage the page header of the leaf holding epoch @p e's checkpoint record: mp_lower (how
 * many node offsets the page has) grown by @p add bytes */
static void damage_leaf_lower(uint64_t e, uint16_t add)
{
	uint8_t k[8];
	size_t len;
	epoch_key(k, e);
	size_t off = value_offset("ckpt", k, 8, &len);
	long psize = sysconf(_SC_PAGESIZE); /* LMDB's page size: the OS's */
	off_t lower_at = (off_t)(off / (size_t)psize * (size_t)psize + 12);
	int fd = open(datapath, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t lo[2];
	ck_assert_int_eq(pread(fd, lo, 2, lower_at), 2);
	uint16_t lower = (uint16_t)(lo[0] | lo[1] << 8);
	lower = (uint16_t)(lower + add);
	lo[0] = (uint8_t)lower;
	lo[1] = (uint8_t)(lower >> 8);
	ck_assert_int_eq(pwrite(fd, lo, 2, lower_at), 2);
	close(fd);
}

static void readers_refuse_a_broken_tree(void)
{
	ckpt_store *s;
	int rc = ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY);
	CHILD_CHECK(rc == CKPT_ECORRUPT && strstr(ckpt_last_error(), "data.mdb is damaged (page ") &&
	                strstr(ckpt_last_error(), "of the 'ckpt' database") &&
	                strstr(ckpt_last_error(), "no record can be read safely") &&
	                !strchr(ckpt_last_error(), '\n'),
	            "open read-only: rc %d", rc);
	rc = ckpt_store_open(&s, storepath, 0);
	CHILD_CHECK(rc == CKPT_ECORRUPT &&
	                strstr(ckpt_last_error(), "so it is neither written to nor read"),
	            "open for writing: rc %d", rc);
}

/* A closed store of 300 epochs (several leaf pages of checkpoint records), in a fresh
 * directory when @p again. */
static void fresh_store_of_300(bool again)
{
	if (again) {
		test_dir_remove(tmpdir);
		setup();
	}
	ckpt_store_close(store_of_epochs(300));
}

/* Write @p n bytes @p back bytes before the checkpoint record of @p epoch in data.mdb (its
 * 8-byte key lies just before it, the node header before that). */
static void patch_before_record(uint64_t epoch, size_t back, const void *bytes, size_t n)
{
	uint8_t k[8];
	size_t len;
	epoch_key(k, epoch);
	size_t off = value_offset("ckpt", k, 8, &len);
	int fd = open(datapath, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, bytes, n, (off_t)(off - back)), (ssize_t)n);
	close(fd);
}

/* A page header that counts more nodes than the page holds made LMDB follow offsets read from
 * node data: listing the checkpoints crashed inside LMDB (SIGSEGV). Readers walk the tree's
 * structure when they open the store and refuse it in one line. */
START_TEST(test_readers_refuse_a_page_whose_header_counts_nodes_it_does_not_hold)
{
	static const uint16_t adds[] = {2, 64, 0x800};
	for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++) {
		fresh_store_of_300(i > 0);
		damage_leaf_lower(150, adds[i]);
		in_child(readers_refuse_a_broken_tree);
	}
	/* a node's key size changed inside its page (8 -> 72, 8 -> 0): LMDB reads the wrong
	 * bytes as the key, and listing the checkpoints failed with "a checkpoint key of 72
	 * bytes" while ckpt info said nothing */
	static const uint8_t sizes[] = {72, 0};
	for (size_t i = 0; i < sizeof(sizes); i++) {
		fresh_store_of_300(true);
		uint8_t ks[2] = {sizes[i], 0};
		patch_before_record(150, 8 + 8 - 6, ks, 2); /* the node's mn_ksize */
		in_child(readers_refuse_a_broken_tree);
	}
	/* a key changed within its size: epoch 150's key made 149's (the listing showed 149 twice
	 * and lost 150 without a word) and 0 (out of order) */
	static const uint8_t last_byte[] = {149, 0};
	for (size_t i = 0; i < sizeof(last_byte); i++) {
		fresh_store_of_300(true);
		patch_before_record(150, 1, &last_byte[i], 1); /* the key's last byte */
		in_child(readers_refuse_a_broken_tree);
	}
}
END_TEST

/* the record's count at @p off (from its first byte) in data.mdb, and then XORed with @p bits */
static uint64_t flip_count(size_t off, uint64_t bits)
{
	int fd = open(datapath, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t b[8];
	ck_assert_int_eq(pread(fd, b, 8, (off_t)off), 8);
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	for (int i = 0; i < 8; i++)
		b[i] ^= (uint8_t)(bits >> (8 * i));
	ck_assert_int_eq(pwrite(fd, b, 8, (off_t)off), 8);
	close(fd);
	return v;
}

static char want_count[160];

static void every_open_refuses_the_count(void)
{
	ckpt_store *s;
	int rc = ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY);
	CHILD_CHECK(rc == CKPT_ECORRUPT && strstr(ckpt_last_error(), want_count) &&
	                strstr(ckpt_last_error(), "data.mdb is damaged (") &&
	                !strchr(ckpt_last_error(), '\n'),
	            "open read-only: rc %d, wanted '%s'", rc, want_count);
	rc = ckpt_store_open(&s, storepath, 0);
	CHILD_CHECK(rc == CKPT_ECORRUPT && strstr(ckpt_last_error(), want_count),
	            "open for writing: rc %d", rc);
	ckpt_store_compact_stats st;
	rc = ckpt_store_compact(&st, storepath);
	CHILD_CHECK(rc == CKPT_ECORRUPT && strstr(ckpt_last_error(), want_count), "compact: rc %d",
	            rc);
}

/* MDB_db: md_pad 4, md_flags 2, md_depth 2, md_branch_pages, md_leaf_pages, md_overflow_pages,
 * md_entries, md_root (8 each) */
#define DB_LEAF_PAGES 16
#define DB_ENTRIES 32

/* A named database's record (a value of the main database) whose entry count lost its
 * agreement with its pages (one flipped bit): verify and info passed it, and backup and
 * gc --compact failed blaming their copy (mdb_env_copy2 trusts the count). Every open refuses
 * it in one line naming the database; a page count likewise. */
START_TEST(test_a_database_record_whose_counts_disagree_with_its_pages_is_refused_by_every_open)
{
	static const struct {
		const char *db;
		size_t field;
		uint64_t bits;
		const char *what;
	} cases[] = {{"blobs", DB_ENTRIES, 1ull << 60, "entries, its pages hold"},
	             {"ckpt", DB_ENTRIES, 1, "entries, its pages hold"},
	             {"chunks", DB_LEAF_PAGES, 2, "leaf pages, its tree has"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fresh_store_of_300(i > 0);
		size_t len;
		size_t rec = value_offset(NULL, cases[i].db, strlen(cases[i].db), &len);
		ck_assert_uint_eq(len, 48);
		uint64_t n = flip_count(rec + cases[i].field, cases[i].bits);
		snprintf(want_count, sizeof(want_count), "(the '%s' database records %llu %s %llu)",
		         cases[i].db, (unsigned long long)(n ^ cases[i].bits), cases[i].what,
		         (unsigned long long)n);
		in_child(every_open_refuses_the_count);
	}
	/* the main database's own count, in both meta pages (a commit writes the older one next) */
	fresh_store_of_300(true);
	size_t psize = (size_t)sysconf(_SC_PAGESIZE), main_entries = 16 + 24 + 48 + DB_ENTRIES;
	uint64_t n = flip_count(main_entries, 8);
	flip_count(psize + main_entries, 8);
	snprintf(want_count, sizeof(want_count),
	         "(the main database records %llu entries, its pages hold %llu)",
	         (unsigned long long)(n ^ 8), (unsigned long long)n);
	in_child(every_open_refuses_the_count);
	/* the free list's (compaction counts its pages to place the copy's root) */
	fresh_store_of_300(true);
	size_t free_entries = 16 + 24 + DB_ENTRIES;
	n = flip_count(free_entries, 1ull << 40);
	flip_count(psize + free_entries, 1ull << 40);
	snprintf(want_count, sizeof(want_count),
	         "(the free list records %llu entries, its pages hold %llu)",
	         (unsigned long long)(n ^ (1ull << 40)), (unsigned long long)n);
	in_child(every_open_refuses_the_count);
}
END_TEST

/* Sound stores are never refused for their counts: many commits, a gc that frees many pages
 * (a free list of several records), reopened by readers and writers, and readers opening
 * while another process commits and collects. */
START_TEST(test_sound_stores_keep_counts_that_agree_with_their_pages_while_another_process_commits)
{
	ckpt_store *s = make_store();
	for (uint64_t e = 1; e <= 400; e++)
		commit(s, e, e % 9 == 0 ? BIG_FLOATS : TENSOR_FLOATS);
	OK(ckpt_store_gc(s, 20, 0, NULL));
	ckpt_store_close(s);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_store_close(s);
	pid_t pid = fork_writer(401, 700, 50);
	int status, opens = 0;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		ckpt_store *r;
		int rc = ckpt_store_open(&r, storepath, CKPT_OPEN_READONLY);
		ck_assert_msg(rc == 0, "open %d while another process commits: %s", opens,
		              ckpt_last_error());
		ckpt_store_close(r);
		opens++;
	}
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_gt(opens, 0);
	OK(ckpt_store_open(&s, storepath, 0));
	ckpt_store_close(s);
}
END_TEST

static Suite *store_pages_suite(void)
{
	Suite *su = suite_create("store_pages");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(
	    tc, test_values_past_the_end_of_data_mdb_are_damaged_records_for_readers_and_refused_by_writers);
	tcase_add_test(tc, test_a_writer_refuses_a_chunk_whose_size_leaves_its_page_within_the_file);
	tcase_add_test(tc, test_a_writer_refuses_a_node_size_made_smaller);
	tcase_add_test(tc, test_a_reader_reads_what_another_process_appended_after_it_opened);
	tcase_add_test(tc, test_sound_stores_pass_the_walk_through_commits_gc_and_compaction);
	tcase_add_test(tc, test_readers_refuse_a_page_whose_header_counts_nodes_it_does_not_hold);
	tcase_add_test(tc,
	               test_a_database_record_whose_counts_disagree_with_its_pages_is_refused_by_every_open);
	tcase_add_test(
	    tc, test_sound_stores_keep_counts_that_agree_with_their_pages_while_another_process_commits);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(store_pages_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
