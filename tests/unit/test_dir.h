/* tests/unit/test_dir.h - a fresh temporary directory per unit test, removed afterwards */
#ifndef TESTS_UNIT_TEST_DIR_H
#define TESTS_UNIT_TEST_DIR_H

#include <stddef.h>

/** Create "$TMPDIR/<suite>.XXXXXX" (TMPDIR, else /tmp) and write its path to @p out; the test
 *  fails if it cannot. */
void test_dir_make(char *out, size_t cap, const char *suite);

/** Remove @p dir and everything below it (symlinks are removed, never followed). */
void test_dir_remove(const char *dir);

#endif
