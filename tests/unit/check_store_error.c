/* tests/unit/check_store_error.c - the per-thread error message: as long as its text, one per
 * thread and freed at the thread's exit (LeakSanitizer checks that), cut with a marker only when
 * memory runs out
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/store.h"
#include "store/store_int.h"

extern int store_test_error_alloc_fails;

#define CUT_MARKER "[message cut short: out of memory]"

static char *repeated(char c, size_t n)
{
	char *s = malloc(n + 1);
	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), k = strlen(tail);
	return n >= k && strcmp(s + n - k, tail) == 0;
}

/* The message was cut at 16 KiB: a long path lost the reason after it. */
START_TEST(test_a_path_of_70000_bytes_keeps_the_reason_after_it)
{
	char *name = repeated('y', 70000);
	size_t len = strlen("/tmp/") + 70000;
	char *path = malloc(len + 1);
	ck_assert_ptr_nonnull(path);
	snprintf(path, len + 1, "/tmp/%s", name);
	ckpt_store *s = NULL;
	ck_assert_int_eq(ckpt_store_open(&s, path, CKPT_OPEN_READONLY), -ENAMETOOLONG);
	const char *msg = ckpt_last_error();
	ck_assert_msg(ends_with(msg, "File name too long"), "message of %zu bytes ends in '%s'",
	              strlen(msg), msg + (strlen(msg) > 60 ? strlen(msg) - 60 : 0));
	ck_assert_ptr_nonnull(strstr(msg, path));
	free(path);
	free(name);
}
END_TEST

START_TEST(test_a_message_of_a_megabyte_is_kept_whole)
{
	char *big = repeated('x', 1 << 20);
	ck_assert_int_eq(store_error(-EIO, "%s: the reason", big), -EIO);
	ck_assert_uint_eq(strlen(ckpt_last_error()), (1u << 20) + strlen(": the reason"));
	ck_assert(ends_with(ckpt_last_error(), "x: the reason"));
	free(big);
}
END_TEST

/* Callers add context to the message they were given: the old text is read while the new one
 * is made. */
START_TEST(test_a_message_may_quote_the_message_before_it)
{
	store_error(-EIO, "inner");
	for (int i = 0; i < 12; i++)
		store_error(-EIO, "outer %d (%s) %s", i, ckpt_last_error(), ckpt_last_error());
	const char *msg = ckpt_last_error();
	ck_assert_ptr_nonnull(strstr(msg, "outer 11 (outer 10 ("));
	ck_assert(ends_with(msg, "inner"));
	ck_assert_uint_gt(strlen(msg), 4096u * 2);
	ck_assert_int_eq(store_lmdb_error(ENOENT, "%s", ckpt_last_error()), -ENOENT);
	ck_assert(ends_with(ckpt_last_error(), "inner: No such file or directory"));
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "outer 11 (outer 10 ("));
}
END_TEST

static void *set_long_message(void *arg)
{
	char *big = arg;
	store_error(-EIO, "thread: %s", big);
	ck_assert_uint_eq(strlen(ckpt_last_error()), strlen("thread: ") + strlen(big));
	return NULL; /* the thread's message is freed at its exit, or LeakSanitizer reports it */
}

START_TEST(test_each_thread_keeps_its_own_message_freed_at_its_exit)
{
	char *big = repeated('t', 100000);
	store_error(-EIO, "main thread");
	for (int i = 0; i < 4; i++) {
		pthread_t thread;
		ck_assert_int_eq(pthread_create(&thread, NULL, set_long_message, big), 0);
		ck_assert_int_eq(pthread_join(thread, NULL), 0);
	}
	ck_assert_str_eq(ckpt_last_error(), "main thread");
	free(big);
}
END_TEST

START_TEST(test_out_of_memory_keeps_the_start_of_the_message_with_a_marker)
{
	char *big = repeated('m', 5000);
	store_error(-EIO, "a long one: %s", big);
	store_test_error_alloc_fails = 1;
	ck_assert_int_eq(store_error(-ENOMEM, "cannot open '%s' (%s)", big, "reason"), -ENOMEM);
	const char *msg = ckpt_last_error();
	ck_assert_uint_lt(strlen(msg), 1024);
	ck_assert(strncmp(msg, "cannot open 'mmm", 16) == 0);
	ck_assert(ends_with(msg, CUT_MARKER));
	/* a short one fits whole; it may quote the cut one it replaces */
	store_error(-ENOMEM, "short");
	ck_assert_str_eq(ckpt_last_error(), "short");
	store_error(-ENOMEM, "again: %s", ckpt_last_error());
	ck_assert_str_eq(ckpt_last_error(), "again: short");
	store_test_error_alloc_fails = 0;
	store_error(-EIO, "whole: %s", big);
	ck_assert_uint_eq(strlen(ckpt_last_error()), strlen("whole: ") + 5000);
	free(big);
}
END_TEST

int main(void)
{
	const TTest *tests[] = {
	    test_a_path_of_70000_bytes_keeps_the_reason_after_it,
	    test_a_message_of_a_megabyte_is_kept_whole,
	    test_a_message_may_quote_the_message_before_it,
	    test_each_thread_keeps_its_own_message_freed_at_its_exit,
	    test_out_of_memory_keeps_the_start_of_the_message_with_a_marker,
	};
	Suite *su = suite_create("store_error");
	TCase *tc = tcase_create("core");
	suite_add_tcase(su, tc);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		tcase_add_test(tc, tests[i]);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
