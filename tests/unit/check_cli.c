/* tests/unit/check_cli.c - what the ckpt commands print of strings from a store (fs/cli_common.c)
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/cli.h"

/* What cli_print_escaped(@p s, @p flags) prints (malloc'd); checked against cli_escaped_len. */
static char *printed(const char *s, unsigned flags)
{
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	FILE *capture = tmpfile();
	ck_assert(saved >= 0 && capture);
	dup2(fileno(capture), STDOUT_FILENO);
	cli_print_escaped(s, flags);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	long len = ftell(capture);
	ck_assert_int_ge(len, 0);
	char *out = calloc(1, (size_t)len + 1);
	ck_assert_ptr_nonnull(out);
	rewind(capture);
	ck_assert_uint_eq(fread(out, 1, (size_t)len, capture), (size_t)len);
	fclose(capture);
	ck_assert_uint_eq(cli_escaped_len(s, flags), (size_t)len);
	return out;
}

/* `ckpt show` escaped every byte past ASCII ("poids.\xe6\x9d\x83...") where `ls` and `log`
 * show the name: valid UTF-8 is printed as it is, other bytes and C1 controls as \xNN. */
START_TEST(test_show_names_keep_valid_utf8_and_escape_the_rest)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"poids.\xe6\x9d\x83\xe9\x87\x8d", "poids.\xe6\x9d\x83\xe9\x87\x8d"},
	    {"caf\xc3\xa9 \xf0\x9f\x98\x80", "caf\xc3\xa9\\x20\xf0\x9f\x98\x80"},
	    {"a\xff" "b", "a\\xff" "b"},
	    {"cut\xe6\x9d", "cut\\xe6\\x9d"},
	    {"nel\xc2\x85.", "nel\\xc2\\x85."},
	    {"over\xc0\xaf", "over\\xc0\\xaf"},
	    {"tab\there\\", "tab\\x09here\\x5c"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = printed(cases[i].in, CLI_ESC_SPACE | CLI_ESC_NOT_UTF8);
		ck_assert_str_eq(out, cases[i].out);
		free(out);
	}
	/* without the flag, bytes past ASCII pass as they are (info's values) */
	char *out = printed("a\xff\x01", 0);
	ck_assert_str_eq(out, "a\xff\\x01");
	free(out);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("cli");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_show_names_keep_valid_utf8_and_escape_the_rest);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
