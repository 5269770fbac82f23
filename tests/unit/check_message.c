/* tests/unit/check_message.c - Check suite for the one-line messages of libckpt (ckpt_print_line)
 *
 * A line goes out whole: processes writing lines to one file at the same time never mix them,
 * control characters come out as \xNN however long the line, and what a stream holds already
 * comes before it. Each test works in a fresh temporary directory.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt/message.h"
#include "test_dir.h"

#define WRITERS 8
#define LINES_EACH 60

static char tmpdir[256];
static char logpath[512];

static void setup(void)
{
	test_dir_make(tmpdir, sizeof(tmpdir), "check_message");
	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
}

static void teardown(void)
{
	test_dir_remove(tmpdir);
}

/* the whole of @p path, NUL-terminated, in memory the caller frees */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	char *all = NULL;
	size_t cap = 0;
	FILE *m = open_memstream(&all, &cap);
	ck_assert_ptr_nonnull(m);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, m);
	fclose(f);
	ck_assert_int_eq(fclose(m), 0);
	*len = cap;
	return all;
}

/* Writer @p id: LINES_EACH lines on stderr (the log, opened O_APPEND as 2>> does), each
 * "w<id>: error: " and @p width times the letter of @p id; never returns. */
static void writer(int id, size_t width)
{
	int fd = open(logpath, O_WRONLY | O_APPEND);
	if (fd < 0 || dup2(fd, 2) < 0)
		_exit(3);
	close(fd);
	char *body = malloc(width + 1);
	if (!body)
		_exit(3);
	memset(body, 'a' + id, width);
	body[width] = 0;
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "w%d: error: ", id);
	for (int i = 0; i < LINES_EACH; i++)
		ckpt_print_line(stderr, prefix, "%s", body);
	free(body);
	_exit(0);
}

/* WRITERS processes at once, lines of @p width letters: every line in the log is whole */
static void check_concurrent_lines(size_t width)
{
	int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	pid_t pids[WRITERS];
	for (int id = 0; id < WRITERS; id++) {
		pids[id] = fork();
		ck_assert_int_ge(pids[id], 0);
		if (pids[id] == 0)
			writer(id, width);
	}
	for (int id = 0; id < WRITERS; id++) {
		int status;
		ck_assert_int_eq(waitpid(pids[id], &status, 0), pids[id]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed",
		              id);
	}
	size_t len;
	char *all = slurp(logpath, &len);
	int count[WRITERS] = {0};
	int lines = 0, broken = 0;
	for (char *line = all; line < all + len;) {
		char *end = memchr(line, '\n', (size_t)(all + len - line));
		ck_assert_msg(end, "the log ends inside a line");
		int id = -1, skip = 0;
		bool whole = sscanf(line, "w%d: error: %n", &id, &skip) == 1 && skip > 0 &&
		             id >= 0 && id < WRITERS && (size_t)(end - line - skip) == width;
		for (size_t i = 0; whole && i < width; i++)
			whole = line[skip + i] == 'a' + id;
		if (whole)
			count[id]++;
		else
			broken++;
		lines++;
		line = end + 1;
	}
	free(all);
	ck_assert_msg(broken == 0, "%d of %d lines are mixed with others", broken, lines);
	for (int id = 0; id < WRITERS; id++)
		ck_assert_int_eq(count[id], LINES_EACH);
}

START_TEST(test_lines_of_concurrent_processes_are_never_mixed)
{
	check_concurrent_lines(300);
}
END_TEST

START_TEST(test_long_lines_of_concurrent_processes_are_never_mixed)
{
	check_concurrent_lines(20000); /* past every stack buffer */
}
END_TEST

/* a message of @p n bytes cycling through every byte value but NUL, and the line it prints as */
static void escaped_pair(size_t n, char **msg, char **want)
{
	*msg = malloc(n + 1);
	*want = malloc(4 * n + 32);
	ck_assert_ptr_nonnull(*msg);
	ck_assert_ptr_nonnull(*want);
	size_t o = (size_t)sprintf(*want, "p: ");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)(1 + i % 255);
		(*msg)[i] = (char)c;
		if (c < 0x20 || c == 0x7f)
			o += (size_t)sprintf(*want + o, "\\x%02x", c);
		else
			(*want)[o++] = (char)c;
	}
	(*msg)[n] = 0;
	strcpy(*want + o, "\n");
}

START_TEST(test_control_characters_are_escaped_in_short_and_long_lines)
{
	static const size_t sizes[] = {0, 1, 100, 1023, 1024, 3000, 4096, 50000};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		char *msg, *want;
		escaped_pair(sizes[k], &msg, &want);
		FILE *f = fopen(logpath, "w");
		ck_assert_ptr_nonnull(f);
		ckpt_print_line(f, "p: ", "%s", msg);
		ck_assert_int_eq(fclose(f), 0);
		size_t len;
		char *got = slurp(logpath, &len);
		ck_assert_msg(len == strlen(want) && memcmp(got, want, len) == 0,
		              "a message of %zu bytes printed as %zu bytes, not %zu", sizes[k], len,
		              strlen(want));
		free(got);

		/* a stream with no file descriptor gets the same line */
		char *mem = NULL;
		size_t memlen = 0;
		f = open_memstream(&mem, &memlen);
		ck_assert_ptr_nonnull(f);
		ckpt_print_line(f, "p: ", "%s", msg);
		ck_assert_int_eq(fclose(f), 0);
		ck_assert_msg(memlen == strlen(want) && memcmp(mem, want, memlen) == 0,
		              "a message of %zu bytes to a memory stream differs", sizes[k]);
		free(mem);
		free(msg);
		free(want);
	}
}
END_TEST

START_TEST(test_a_line_comes_after_what_the_stream_holds_and_before_what_follows)
{
	FILE *f = fopen(logpath, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(setvbuf(f, NULL, _IOFBF, 8192), 0);
	fputs("before\n", f);
	ckpt_print_line(f, "p: ", "line %d", 1);
	fputs("after\n", f);
	ckpt_print_line(f, NULL, "%s", "last");
	ck_assert_int_eq(fclose(f), 0);
	size_t len;
	char *got = slurp(logpath, &len);
	ck_assert_str_eq(got, "before\np: line 1\nafter\nlast\n");
	free(got);
}
END_TEST

static Suite *message_suite(void)
{
	Suite *su = suite_create("message");
	TCase *tc = tcase_create("message");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lines_of_concurrent_processes_are_never_mixed);
	tcase_add_test(tc, test_long_lines_of_concurrent_processes_are_never_mixed);
	tcase_add_test(tc, test_control_characters_are_escaped_in_short_and_long_lines);
	tcase_add_test(tc, test_a_line_comes_after_what_the_stream_holds_and_before_what_follows);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(message_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
