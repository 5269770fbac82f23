/* tests/unit/test_dir.h - a fresh temporary directory per unit test, removed afterwards */
#ifndef TESTS_UNIT_TEST_DIR_H
#define TESTS_UNIT_TEST_DIR_H

#include <check.h>
#include <stddef.h>

#include "ckpt/store.h"

/** Assert that @p expr returns 0; the failure names the call, its code and libckpt's error. */
#define OK(expr)                                                                         \
	do {                                                                                 \
		int rc_ = (expr);                                                            \
		ck_assert_msg(rc_ == 0, "%s -> %d (%s)", #expr, rc_, ckpt_last_error());     \
	} while (0)

/** Create "$TMPDIR/<suite>.XXXXXX" (TMPDIR, else /tmp) and write its path to @p out; the test
 *  fails if it cannot. */
void test_dir_make(char *out, size_t cap, const char *suite);

/** test_dir_make() into @p dir, and "<dir>/store" (a store path not yet created) into
 *  @p store. */
void test_store_dir_make(char *dir, size_t dcap, char *store, size_t scap, const char *suite);

/** Remove @p dir and everything below it (symlinks are removed, never followed). */
void test_dir_remove(const char *dir);

/** Create a store at @p path (val_loss min, 64 KiB chunks, no fsync) keeping the newest
 *  @p keep_last checkpoints (0: all); the test fails if it cannot. */
ckpt_store *test_store_create(const char *path, uint32_t keep_last);

#endif
