/* tests/unit/test_dir.c - a fresh temporary directory per unit test, removed afterwards */
#include "test_dir.h"

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void test_dir_make(char *out, size_t cap, const char *suite)
{
	const char *base = getenv("TMPDIR");
	if (!base || !*base || strlen(base) > 200)
		base = "/tmp";
	int n = snprintf(out, cap, "%s/%s.XXXXXX", base, suite);
	ck_assert_msg(n > 0 && (size_t)n < cap, "temporary directory name too long");
	ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp %s failed", out);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void test_dir_remove(const char *dir)
{
	if (dir && *dir)
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void test_store_dir_make(char *dir, size_t dcap, char *store, size_t scap, const char *suite)
{
	test_dir_make(dir, dcap, suite);
	ck_assert_uint_lt((size_t)snprintf(store, scap, "%s/store", dir), scap);
}

ckpt_store *test_store_create(const char *path, uint32_t keep_last)
{
	ckpt_run_meta m = {.model = "mlp", .monitor = "val_loss", .monitor_mode = CKPT_MODE_MIN};
	ckpt_store_options o = {.chunk_size = 1 << 16, .keep_last = keep_last, .no_sync = true};
	ckpt_store *s = NULL;
	OK(ckpt_store_create(&s, path, &m, &o));
	return s;
}
