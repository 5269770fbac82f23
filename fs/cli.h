/* fs/cli.h - subcommands of the `ckpt` command line tool
 *
 * Each subcommand takes the argv that follows the subcommand name (argv[0] is the subcommand)
 * and returns the process exit status: 0 on success, 1 for a failure (bad store, bad epoch,
 * verification failed), 2 for bad usage. Errors are printed once to stderr as
 * "ckpt: error: <what> (<why>)".
 */
#ifndef FS_CLI_H
#define FS_CLI_H

#include <stdint.h>

#include "ckpt/store.h"

/* store commands: fs/cli_store.c */
int cli_info(int argc, char **argv);
int cli_log(int argc, char **argv);
int cli_show(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_gc(int argc, char **argv);

/* file commands through the view: fs/cli_view.c */
int cli_ls(int argc, char **argv);
int cli_cat(int argc, char **argv);

/* whole-checkpoint export: fs/cli_export.c */
int cli_export(int argc, char **argv);

/**
 * One error line for what getopt_long (run with opterr = 0 and a leading ':' in its optstring)
 * returned as '?' (unknown option) or ':' (missing value), naming the option and @p usage.
 * @return 2, the exit status for bad usage.
 */
int cli_bad_option(int c, char **argv, const char *usage);

/** Print "ckpt: error: " + printf-style message + newline to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** write(2) all of @p buf, retrying on EINTR and short writes. @return 0 or -errno. */
int cli_write_all(int fd, const void *buf, size_t len);

/**
 * Resolve an epoch argument as the CLI accepts it everywhere: "4", "epoch-0004", "best",
 * "latest". @return 0, -EINVAL for a malformed spec, -ENOENT if no such checkpoint is stored
 * (a message naming the spec is left in ckpt_last_error()).
 */
int cli_resolve_epoch(uint64_t *out, ckpt_snapshot *snap, const char *spec);

#endif
