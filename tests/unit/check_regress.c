/* tests/unit/check_regress.c - regressions found by the reliability suite and by fuzzing
 *
 * Each test replays one input or state that once went wrong (found by tests/reliability/ or a
 * tests/fuzz/ harness) and checks the fixed behaviour. Inputs found by fuzzing are kept as
 * byte arrays here and as files in tests/fuzz/corpus/ (the seed corpora start from them).
 * Every test works in a fresh mkdtemp directory that it removes.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/store.h"
#include "ckpt/view.h"
#include "store/records.h"
#include "train/data.h"
#include "train/error.h"

/* the fuzz harnesses themselves, renamed, so their inputs replay here */
#define LLVMFuzzerTestOneInput fuzz_records_one
#include "../fuzz/fuzz_records.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_idx_one
#include "../fuzz/fuzz_idx.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_csv_one
#include "../fuzz/fuzz_csv.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_view_name_one
#include "../fuzz/fuzz_view_name.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_view_path_one
#define LLVMFuzzerInitialize fuzz_view_path_init
#define cleanup fuzz_cleanup
#include "../fuzz/fuzz_view_path.c"
#include "test_dir.h"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize
#undef cleanup

/* refuse allocations above 1 GiB (returning NULL) so a runaway allocation fails a test */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "max_allocation_size_mb=1024:allocator_may_return_null=1";
}

static char tmpdir[256];
static char storepath[512];

static void setup(void)
{
	test_store_dir_make(tmpdir, sizeof(tmpdir), storepath, sizeof(storepath), "check_regress");
}

static void teardown(void)
{
	test_dir_remove(tmpdir);
}

static const ckpt_run_meta test_meta = {
    .model = "mlp",
    .layers = "3,2",
    .optimizer = "sgd",
    .hyperparams = "{}",
    .dataset = "synthetic",
    .monitor = "val_loss",
    .monitor_mode = CKPT_MODE_MIN,
};

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* What ckpt_store_create leaves when SIGKILL lands after mdb_env_open, before its first
 * commit: an LMDB environment holding no database. */
static void make_empty_environment(const char *path)
{
	ck_assert_int_eq(mkdir(path, 0755), 0);
	MDB_env *env;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, path, MDB_NOSYNC, 0644), 0);
	mdb_env_close(env);
}

static void touch(const char *where, const char *name)
{
	char file[1024];
	snprintf(file, sizeof(file), "%s/%s", where, name);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

/* crash_trials.sh, seed 5 trial 6: ckpt-train killed inside ckpt_store_create; rerunning the
 * same command failed with "it exists and is not a usable store" forever. */
START_TEST(test_create_starts_over_in_an_environment_a_killed_create_left)
{
	make_empty_environment(storepath);
	ckpt_store *s;
	ck_assert_int_eq(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY), CKPT_ENOTSTORE);
	ckpt_store_options opts = {.no_sync = true};
	OK(ckpt_store_create(&s, storepath, &test_meta, &opts));
	ck_assert_str_eq(ckpt_store_meta(s)->layers, "3,2");
	ckpt_store_close(s);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_create_starts_over_when_a_killed_create_left_an_empty_data_file)
{
	ck_assert_int_eq(mkdir(storepath, 0755), 0);
	touch(storepath, "data.mdb");
	ckpt_store *s;
	ckpt_store_options opts = {.no_sync = true};
	OK(ckpt_store_create(&s, storepath, &test_meta, &opts));
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_create_still_refuses_a_real_store_and_foreign_files)
{
	ckpt_store *s;
	ckpt_store_options opts = {.no_sync = true};
	OK(ckpt_store_create(&s, storepath, &test_meta, &opts));
	ckpt_store_close(s);
	/* a store with run metadata but no checkpoint is still a store */
	ck_assert_int_eq(ckpt_store_create(&s, storepath, &test_meta, &opts), -EEXIST);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), storepath));

	/* an empty environment beside a file of the user's is not ours to reuse */
	char other[600];
	snprintf(other, sizeof(other), "%s/other", tmpdir);
	make_empty_environment(other);
	touch(other, "notes.txt");
	ck_assert_int_eq(ckpt_store_create(&s, other, &test_meta, &opts), -EEXIST);
	char file[700];
	snprintf(file, sizeof(file), "%s/data.mdb", other);
	struct stat st;
	ck_assert_int_eq(stat(file, &st), 0); /* left alone */
}
END_TEST

/* corruption.sh: a data.mdb cut short (a copy that ran out of space, a bad transfer) made
 * every command die of SIGBUS when LMDB touched a page past the end of the file. */
START_TEST(test_truncated_data_file_is_a_clear_error_not_sigbus)
{
	ckpt_store *s;
	ckpt_store_options opts = {.no_sync = true, .chunk_size = 64};
	OK(ckpt_store_create(&s, storepath, &test_meta, &opts));
	static float big[4096];
	for (int e = 1; e <= 3; e++) {
		for (size_t i = 0; i < 4096; i++)
			big[i] = (float)(i * (size_t)e);
		ckpt_writer *w;
		uint64_t shape[1] = {4096};
		OK(ckpt_writer_begin(&w, s, (uint64_t)e));
		OK(ckpt_writer_put_tensor(w, "w", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape, NULL,
		                          big, sizeof(big)));
		OK(ckpt_writer_set_metric(w, "val_loss", 1.0 / e));
		OK(ckpt_writer_commit(w));
	}
	ckpt_store_close(s);
	char file[700];
	snprintf(file, sizeof(file), "%s/data.mdb", storepath);
	struct stat st;
	ck_assert_int_eq(stat(file, &st), 0);
	const off_t cuts[] = {st.st_size / 2, st.st_size - 4096, 8192, 4096 + 100};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		ck_assert_int_eq(truncate(file, cuts[i]), 0);
		int rc = ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY);
		ck_assert_msg(rc == CKPT_ECORRUPT || rc == CKPT_ENOTSTORE, "cut at %lld: rc %d",
		              (long long)cuts[i], rc);
		ck_assert_ptr_null(s);
		ck_assert_ptr_nonnull(strstr(ckpt_last_error(), storepath));
		ck_assert_int_eq(ckpt_store_open(&s, storepath, 0), rc);
	}
}
END_TEST

/* hostile stores: LMDB followed a symlinked lock.mdb and, as the first opener, ftruncated
 * and rewrote its target (any file the user can write); a symlinked data.mdb was read (and
 * by a writer written) wherever it pointed. Both are refused now, the targets untouched. */
START_TEST(test_symlinked_store_files_are_refused_and_their_targets_untouched)
{
	ckpt_store *s;
	ckpt_store_options opts = {.no_sync = true};
	OK(ckpt_store_create(&s, storepath, &test_meta, &opts));
	ckpt_store_close(s);
	char victim[600], lock[700], data[700], evil[600], evil_data[700];
	snprintf(victim, sizeof(victim), "%s/victim", tmpdir);
	write_file(victim, "precious\n", 9);
	snprintf(lock, sizeof(lock), "%s/lock.mdb", storepath);
	ck_assert_int_eq(unlink(lock), 0);
	ck_assert_int_eq(symlink(victim, lock), 0);
	ck_assert_int_eq(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY), CKPT_ENOTSTORE);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "lock.mdb is a symbolic link"));
	ck_assert_int_eq(ckpt_store_open(&s, storepath, 0), CKPT_ENOTSTORE);
	struct stat st;
	ck_assert_int_eq(stat(victim, &st), 0);
	ck_assert_int_eq(st.st_size, 9);

	/* a store whose data.mdb points at another store's */
	snprintf(evil, sizeof(evil), "%s/evil", tmpdir);
	ck_assert_int_eq(mkdir(evil, 0755), 0);
	snprintf(data, sizeof(data), "%s/data.mdb", storepath);
	snprintf(evil_data, sizeof(evil_data), "%s/data.mdb", evil);
	ck_assert_int_eq(symlink(data, evil_data), 0);
	ck_assert_int_eq(ckpt_store_open(&s, evil, 0), CKPT_ENOTSTORE);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "data.mdb is a symbolic link"));
}
END_TEST

/* fuzz_idx: a 16-byte IDX file whose header claims 65536 images of 512x512 made the loader
 * allocate 16 GiB + 64 GiB before reading a byte (libFuzzer: out-of-memory). Now buffers grow
 * with the data read, and the file fails as truncated. The allocator here refuses anything
 * above 1 GiB (see __asan_default_options), so the old code failed this test with -ENOMEM. */
START_TEST(test_idx_header_claiming_gigabytes_fails_as_truncated_without_allocating_them)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/images-idx3-ubyte", tmpdir);
	unsigned char img[16 + 100] = {0, 0, 8, 3, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0};
	write_file(path, img, sizeof(img));
	train_dataset d;
	ck_assert_int_eq(train_idx_load_images(&d, path), -EINVAL);
	ck_assert_ptr_nonnull(strstr(train_last_error(), "truncated"));
	ck_assert_ptr_nonnull(strstr(train_last_error(), path));
	ck_assert_ptr_null(d.x);

	snprintf(path, sizeof(path), "%s/labels-idx1-ubyte", tmpdir);
	unsigned char lab[8 + 10] = {0, 0, 8, 1, 0x40, 0, 0, 0}; /* 2^30 labels */
	write_file(path, lab, sizeof(lab));
	int32_t *labels = NULL;
	uint32_t count = 7;
	ck_assert_int_eq(train_idx_load_labels(&labels, &count, path, 10), -EINVAL);
	ck_assert_ptr_nonnull(strstr(train_last_error(), "truncated"));
	ck_assert_ptr_null(labels);
	ck_assert_uint_eq(count, 0);
}
END_TEST

/* Every input of the committed seed corpora (tests/fuzz/corpus/<harness>/), crash inputs
 * included, replayed through the harness itself, under ASan and UBSan. */
typedef int (*fuzz_one_fn)(const uint8_t *data, size_t size);

static size_t replay_corpus(const char *harness, fuzz_one_fn one)
{
	char path[1024];
	snprintf(path, sizeof(path), "tests/fuzz/corpus/%s", harness);
	DIR *d = opendir(path);
	ck_assert_msg(d != NULL, "cannot open %s (run the unit tests from the repository root)", path);
	struct dirent *de;
	size_t n = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char file[1400];
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		FILE *f = fopen(file, "rb");
		ck_assert_ptr_nonnull(f);
		static uint8_t buf[1 << 16];
		size_t len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
		ck_assert_ptr_nonnull(copy);
		memcpy(copy, buf, len);
		one(copy, len);
		free(copy);
		n++;
	}
	closedir(d);
	ck_assert_msg(n > 0, "%s is empty", path);
	return n;
}

START_TEST(test_fuzz_corpora_replay_without_crashing)
{
	replay_corpus("fuzz_records", fuzz_records_one);
	replay_corpus("fuzz_idx", fuzz_idx_one);
	replay_corpus("fuzz_csv", fuzz_csv_one);
	replay_corpus("fuzz_view_name", fuzz_view_name_one);
	fuzz_view_path_init(NULL, NULL);
	replay_corpus("fuzz_view_path", fuzz_view_path_one);
}
END_TEST

static Suite *regress_suite(void)
{
	Suite *su = suite_create("regress");
	TCase *tc = tcase_create("regress");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_create_starts_over_in_an_environment_a_killed_create_left);
	tcase_add_test(tc, test_create_starts_over_when_a_killed_create_left_an_empty_data_file);
	tcase_add_test(tc, test_create_still_refuses_a_real_store_and_foreign_files);
	tcase_add_test(tc, test_truncated_data_file_is_a_clear_error_not_sigbus);
	tcase_add_test(tc, test_symlinked_store_files_are_refused_and_their_targets_untouched);
	tcase_add_test(tc, test_idx_header_claiming_gigabytes_fails_as_truncated_without_allocating_them);
	tcase_add_test(tc, test_fuzz_corpora_replay_without_crashing);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(regress_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
