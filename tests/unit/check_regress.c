/* tests/unit/check_regress.c - regressions found by the reliability suite and by fuzzing
 *
 * Each test replays one input or state that once went wrong (found by tests/reliability/ or a
 * tests/fuzz/ harness) and checks the fixed behaviour. Inputs found by fuzzing are kept as
 * byte arrays here and as files in tests/fuzz/corpus/ (the seed corpora start from them).
 * Every test works in a fresh mkdtemp directory that it removes.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/store.h"
#include "ckpt/view.h"
#include "store/records.h"

static char tmpdir[256];
static char storepath[512];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/check_regress.XXXXXX", base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(storepath, sizeof(storepath), "%s/store", tmpdir);
}

static void teardown(void)
{
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#define OK(expr)                                                                              \
	do {                                                                                  \
		int rc_ = (expr);                                                             \
		ck_assert_msg(rc_ == 0, "%s -> %d (%s)", #expr, rc_, ckpt_last_error());       \
	} while (0)

static const ckpt_run_meta test_meta = {
    .model = "mlp",
    .layers = "3,2",
    .optimizer = "sgd",
    .hyperparams = "{}",
    .dataset = "synthetic",
    .monitor = "val_loss",
    .monitor_mode = CKPT_MODE_MIN,
};

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

static void touch(const char *dir, const char *name)
{
	char file[1024];
	snprintf(file, sizeof(file), "%s/%s", dir, name);
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

static Suite *regress_suite(void)
{
	Suite *su = suite_create("regress");
	TCase *tc = tcase_create("regress");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_create_starts_over_in_an_environment_a_killed_create_left);
	tcase_add_test(tc, test_create_starts_over_when_a_killed_create_left_an_empty_data_file);
	tcase_add_test(tc, test_create_still_refuses_a_real_store_and_foreign_files);
	tcase_add_test(tc, test_truncated_data_file_is_a_clear_error_not_sigbus);
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
