/* fs/cli.h - subcommands of the `ckpt` command line tool
 *
 * Each subcommand takes the argv that follows the subcommand name (argv[0] is the subcommand)
 * and returns the process exit status: 0 on success, 1 for a failure (bad store, bad epoch,
 * verification failed), 2 for bad usage. Errors are printed once to stderr as
 * "ckpt: error: <what> (<why>)".
 */
#ifndef FS_CLI_H
#define FS_CLI_H

#include <getopt.h>
#include <stdint.h>

#include "ckpt/store.h"

/* store commands: fs/cli_store.c */
int cli_info(int argc, char **argv);
int cli_log(int argc, char **argv);
int cli_show(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_gc(int argc, char **argv);

/* a consistent copy of a store: fs/cli_backup.c */
int cli_backup(int argc, char **argv);

/* file commands through the view: fs/cli_view.c */
int cli_ls(int argc, char **argv);
int cli_cat(int argc, char **argv);

/* whole-checkpoint export: fs/cli_export.c */
int cli_export(int argc, char **argv);

/* Usage lines, shared by each command's errors and --help and by `ckpt --help`. */
#define CLI_USAGE_INFO "info STORE"
#define CLI_USAGE_LOG "log STORE"
#define CLI_USAGE_SHOW "show STORE EPOCH|best|latest"
#define CLI_USAGE_VERIFY "verify STORE"
#define CLI_USAGE_GC "gc STORE [--keep-last N] [--keep-top K] [--compact]"
#define CLI_USAGE_BACKUP "backup STORE DEST [--verify]"
#define CLI_USAGE_LS "ls [-l] STORE [PATH]"
#define CLI_USAGE_CAT "cat [--map-location cpu|keep|cuda|cuda:N] STORE PATH"
#define CLI_USAGE_EXPORT                                                                           \
	"export STORE EPOCH|best|latest --format safetensors|pt|checkpoint -o FILE "               \
	"[--map-location cpu|keep|cuda|cuda:N]"

/**
 * One error line for what getopt_long (run with opterr = 0 and a leading ':' in its optstring)
 * returned as '?' (unknown or ambiguous option) or ':' (missing value), naming the option and
 * @p usage; a negative number ("-1") where @p usage takes an EPOCH is reported as a bad epoch.
 * @param options the table given to getopt_long, to tell an ambiguous abbreviation apart.
 * @return 2, the exit status for bad usage.
 */
int cli_bad_option(int c, char **argv, const struct option *options, const char *usage);

/**
 * Check the number of positional arguments: @p given must lie in [@p min, @p max].
 * @return 0, or 2 after one error line naming the count and @p usage.
 */
int cli_check_arg_count(char **argv, int given, int min, int max, const char *usage);

/** Print "ckpt: error: " + printf-style message + newline to stderr, control characters
 * written as \xNN so that the message stays one line. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** What a command that changes something has done, once done (NULL before): a report that
 * cannot be written to stdout then says so, as the work stands ("the backup DEST was made"). */
extern const char *cli_done;
/** Write @p text to stderr (async-signal-safe, for signal handlers). */
void cli_write_stderr(const char *text);
/** "SIGINT", "SIGTERM", "SIGHUP" or "SIGQUIT" (any other: "SIGQUIT"), async-signal-safe. */
const char *cli_stop_signal_name(int sig);
/** The start of an error line, escaped as cli_error() escapes, made from @p fmt (malloc'd,
 *  without the newline), for a signal handler to write later; NULL if out of memory. */
char *cli_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** What cli_print_escaped() writes as \xNN besides bytes below 0x20 and 0x7f. */
#define CLI_ESC_SPACE 0x1u    /**< ' ' and '\\': a name in whitespace-separated columns */
#define CLI_ESC_NOT_UTF8 0x2u /**< bytes 0x80-0xff that are no valid UTF-8, and C1 controls */
/** The flag's earlier name: it escaped every byte 0x80-0xff, valid UTF-8 too. */
#define CLI_ESC_NONASCII CLI_ESC_NOT_UTF8

/** Print store-provided @p s to stdout so that it cannot split or forge a line: bytes below 0x20
 * and 0x7f (and those @p flags name) as \xNN. */
void cli_print_escaped(const char *s, unsigned flags);

/** The number of bytes cli_print_escaped(@p s, @p flags) prints. */
size_t cli_escaped_len(const char *s, unsigned flags);

/** write(2) all of @p buf, retrying on EINTR and short writes. @return 0 or -errno. */
int cli_write_all(int fd, const void *buf, size_t len);

/** Strict unsigned decimal (no sign, space or junk). @return 0, -EINVAL, -ERANGE. */
int cli_parse_u64(uint64_t *out, const char *s);

/**
 * Resolve an epoch argument as the CLI accepts it everywhere: "4", "epoch-0004", "best",
 * "latest". @return 0, -EINVAL for a malformed spec, -ERANGE for a number above
 * CKPT_MAX_EPOCH (the last epoch a store can hold, however many digits it has),
 * -ENOENT if no such checkpoint is stored (a message naming the spec is left in
 * ckpt_last_error()).
 */
int cli_resolve_epoch(uint64_t *out, ckpt_snapshot *snap, const char *spec);

/**
 * cli_resolve_epoch() with the error line: "@p cmd: bad epoch ..." (returns 2) or "@p cmd: no
 * checkpoint '@p spec' in @p store (...)" (returns 1). @return 0 with *out set, 1 or 2.
 */
int cli_find_epoch(uint64_t *out, ckpt_snapshot *snap, const char *cmd, const char *store,
                   const char *spec);

/**
 * The store path as every command opens and prints it: trailing slashes removed in place
 * ("run/" -> "run"; "/" stays). @return @p path.
 */
char *cli_trim_store_path(char *path);

/** Refuse, with one line "CMD: 'SHOWN' is a file of the store ...", to write @p output (a path;
 *  /proc/self/fd/1 for stdout) when it is the store's data.mdb or lock.mdb. @return true if
 *  refused. */
bool cli_refuse_store_file(const char *cmd, const char *store_path, const char *output,
                           const char *shown);

#endif
