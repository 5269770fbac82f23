/* fs/cli_common.c - what every `ckpt` subcommand shares: the error line, option and argument
 * checks, epoch specs, store path spelling
 *
 * Every error is exactly one line on stderr, "ckpt: error: <what> (<why>)": control characters
 * that a path or a name may carry (a newline, a tab) are written as \xNN so that they cannot
 * split it. Bad usage is exit status 2, a failure 1 (the callers return them).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/message.h"
#include "ckpt/store.h"
#include "fs/cli.h"

const char *cli_done;

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ckpt_vprint_line(stderr, "ckpt: error: ", fmt, ap);
	va_end(ap);
}

/* How many bytes at @p p print as they are: a byte that needs no escape, or with
 * CLI_ESC_NOT_UTF8 a whole valid UTF-8 sequence that is no C1 control (U+0080-U+009F); 0: the
 * byte at @p p is written as \xNN. */
static size_t plain_bytes(const unsigned char *p, unsigned flags)
{
	unsigned char c = *p;
	if (c < 0x20 || c == 0x7f || ((flags & CLI_ESC_SPACE) && (c == ' ' || c == '\\')))
		return 0;
	if (c < 0x80 || !(flags & CLI_ESC_NOT_UTF8))
		return 1;
	size_t n = ckpt_utf8_sequence((const char *)p);
	return n == 2 && c == 0xc2 && p[1] < 0xa0 ? 0 : n;
}

size_t cli_escaped_len(const char *s, unsigned flags)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t plain = plain_bytes(p, flags);
		n += plain ? plain : 4;
		p += plain ? plain : 1;
	}
	return n;
}

void cli_print_escaped(const char *s, unsigned flags)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t plain = plain_bytes(p, flags);
		if (plain)
			fwrite(p, 1, plain, stdout);
		else
			printf("\\x%02x", *p);
		p += plain ? plain : 1;
	}
}

int cli_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int cli_parse_u64(uint64_t *out, const char *s)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	uint64_t v = 0;
	bool overflow = false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	if (overflow)
		return -ERANGE;
	*out = v;
	return 0;
}

int cli_resolve_epoch(uint64_t *out, ckpt_snapshot *snap, const char *spec)
{
	uint64_t e;
	if (!spec)
		return -EINVAL;
	if (strcmp(spec, "best") == 0)
		return ckpt_snapshot_best(out, snap);
	if (strcmp(spec, "latest") == 0)
		return ckpt_snapshot_latest(out, snap);
	const char *num = strncmp(spec, "epoch-", 6) == 0 ? spec + 6 : spec;
	int rc = cli_parse_u64(&e, num);
	if (rc)
		return rc;
	if (e > CKPT_MAX_EPOCH) /* no store holds it: the limit, not "no such checkpoint" */
		return -ERANGE;
	const ckpt_checkpoint *c;
	rc = ckpt_snapshot_checkpoint(&c, snap, e);
	if (rc)
		return rc;
	*out = e;
	return 0;
}

int cli_find_epoch(uint64_t *out, ckpt_snapshot *snap, const char *cmd, const char *store,
                   const char *spec)
{
	int rc = cli_resolve_epoch(out, snap, spec);
	if (rc == -EINVAL) {
		cli_error("%s: bad epoch '%s' (expected a number, epoch-NNNN, best or latest)", cmd,
		          spec);
		return 2;
	}
	if (rc == -ERANGE) {
		cli_error("%s: bad epoch '%s' (too large: epochs go up to %" PRIu64 ")", cmd, spec,
		          (uint64_t)CKPT_MAX_EPOCH);
		return 2;
	}
	if (rc == CKPT_ECORRUPT) { /* it is there, damaged */
		cli_error("%s: checkpoint '%s' of %s is damaged (%s)", cmd, spec, store,
		          ckpt_last_error()[0] ? ckpt_last_error() : ckpt_strerror(rc));
		return 1;
	}
	if (rc) {
		cli_error("%s: no checkpoint '%s' in %s (%s)", cmd, spec, store,
		          ckpt_last_error()[0] ? ckpt_last_error() : ckpt_strerror(rc));
		return 1;
	}
	return 0;
}

/* The argument getopt_long refused: for a long option the element itself (optind has moved
 * past it); for a short one the first element that holds it, as getopt may still be inside a
 * cluster ("-lx"). */
static const char *refused_argument(char **argv, int argc_hint)
{
	if (optind > 0 && strncmp(argv[optind - 1], "--", 2) == 0)
		return argv[optind - 1];
	for (int i = 1; i < argc_hint && argv[i]; i++)
		if (argv[i][0] == '-' && argv[i][1] != '-' && strchr(argv[i] + 1, optopt))
			return argv[i];
	return NULL;
}

static int count_args(char **argv)
{
	int n = 0;
	while (argv[n])
		n++;
	return n;
}

/* Options whose name starts with @p name (@p len bytes); *exact is set to the exact match. */
static int prefix_matches(const struct option *options, const char *name, size_t len,
                          const struct option **exact, const struct option **first)
{
	int n = 0;
	*exact = *first = NULL;
	for (const struct option *o = options; o->name; o++) {
		if (strncmp(o->name, name, len) != 0)
			continue;
		if (strlen(o->name) == len)
			*exact = o;
		if (!*first)
			*first = o;
		n++;
	}
	return n;
}

int cli_bad_option(int c, char **argv, const struct option *options, const char *usage)
{
	const char *cmd = argv[0];
	const char *arg = refused_argument(argv, count_args(argv));
	if (arg && arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9' && strstr(usage, "EPOCH")) {
		cli_error("%s: bad epoch '%s' (expected a number, epoch-NNNN, best or latest)", cmd,
		          arg);
		return 2;
	}
	if (!arg || arg[1] != '-') {
		if (c == ':')
			cli_error("%s: option '-%c' needs a value (usage: ckpt %s)", cmd, optopt,
			          usage);
		else
			cli_error("%s: unknown option '-%c' (usage: ckpt %s)", cmd, optopt, usage);
		return 2;
	}
	size_t len = strcspn(arg + 2, "=");
	const struct option *exact, *first;
	int n = prefix_matches(options, arg + 2, len, &exact, &first);
	const struct option *o = exact ? exact : n == 1 ? first : NULL;
	if (o && c == ':')
		cli_error("%s: option '--%s' needs a value (usage: ckpt %s)", cmd, o->name, usage);
	else if (o && arg[2 + len] == '=' && o->has_arg == no_argument)
		cli_error("%s: option '--%s' takes no value (usage: ckpt %s)", cmd, o->name, usage);
	else if (n > 1 && !exact)
		cli_error("%s: ambiguous option '%.*s' (usage: ckpt %s)", cmd, (int)len + 2, arg,
		          usage);
	else
		cli_error("%s: unknown option '%.*s' (usage: ckpt %s)", cmd, (int)len + 2, arg,
		          usage);
	return 2;
}

int cli_check_arg_count(char **argv, int given, int min, int max, const char *usage)
{
	if (given >= min && given <= max)
		return 0;
	if (min == max)
		cli_error("%s: expected %d argument%s, got %d (usage: ckpt %s)", argv[0], min,
		          min == 1 ? "" : "s", given, usage);
	else
		cli_error("%s: expected %d to %d arguments, got %d (usage: ckpt %s)", argv[0], min,
		          max, given, usage);
	return 2;
}

char *cli_trim_store_path(char *path)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	return path;
}

/* True if @output is the store's own data.mdb or lock.mdb (writing or renaming over it would
 * destroy the store being read). */
static bool is_store_file(const char *store_path, const char *output)
{
	struct stat out_st, st;
	if (stat(output, &out_st) != 0)
		return false;
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *path = NULL;
		if (asprintf(&path, "%s/%s", store_path, files[i]) < 0)
			return false;
		bool same = stat(path, &st) == 0 && st.st_dev == out_st.st_dev &&
		            st.st_ino == out_st.st_ino;
		free(path);
		if (same)
			return true;
	}
	return false;
}

/* Refuse (one line) to write @output when it is a file of the store: checked before the store
 * is opened, and again right before writing, when the store is open: /proc/self/fd/N, or
 * /dev/stdout on a store file, may name it only then. */
bool cli_refuse_store_file(const char *cmd, const char *store_path, const char *output,
                           const char *shown)
{
	if (!is_store_file(store_path, output))
		return false;
	cli_error("%s: '%s' is a file of the store '%s' (writing it would destroy the store)", cmd,
	          shown, store_path);
	return true;
}

void cli_write_stderr(const char *text)
{
	(void)!write(STDERR_FILENO, text, strlen(text)); /* both async-signal-safe */
}

const char *cli_stop_signal_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "SIGQUIT";
}

char *cli_error_prefix(const char *fmt, ...)
{
	char *text = NULL, *line = NULL;
	size_t len = 0;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	FILE *f = open_memstream(&line, &len);
	if (f) {
		ckpt_print_line(f, "ckpt: error: ", "%s", text);
		if (fclose(f) != 0) {
			free(line);
			line = NULL;
		} else if (len > 0) {
			line[len - 1] = '\0'; /* the newline */
		}
	}
	free(text);
	return line;
}
