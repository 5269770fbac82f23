/* fs/cli_backup.c - `ckpt backup STORE DEST`: a consistent copy of a store, also while it trains
 *
 * ckpt_store_backup() copies one read snapshot of the store, opened read-only as every ckpt
 * command opens it, into DEST/data.mdb.tmp/, reads it back there and renames it to
 * DEST/data.mdb. A signal that ends the command meanwhile (SIGINT, SIGTERM, SIGHUP, SIGQUIT;
 * one ignored, as under nohup, stays ignored) first removes what the backup made.
 * Output (stable, scripts parse it), one line:
 *   backup: DEST/data.mdb, N checkpoints (latest epoch-NNNN), BYTES bytes
 * and with --verify "; verify: ok, T tensors, B bytes" after it. Without --verify, checkpoint
 * records damaged in the store are copied as they are: the line is printed, then one error
 * line names them.
 * Exit status: 0 ok, 1 failure (nothing of the backup left) or a backup of a store with
 * damaged records (the backup line printed), 2 usage.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "ckpt/store.h"
#include "fs/cli.h"
#include "fs/view_int.h"

#define HELP_BACKUP                                                                                \
	"Copy the store's newest commit, compacted, into DEST/data.mdb: a complete store of its\n" \
	"own (ckpt info, log, verify, ckptfs and ckpt-train --resume work on it). Safe while\n"    \
	"ckpt-train commits to the store and while it is mounted; the store is never changed.\n"   \
	"DEST is a new directory (its parent must exist) or an empty one, outside the store.\n"    \
	"The copy is checked (every database walked, every checkpoint record decoded) before it\n" \
	"becomes DEST/data.mdb; on failure, or when interrupted, nothing of it is left.\n"         \
	"A checkpoint record damaged in the store is copied as it is (it hides only its epoch,\n"  \
	"as in the store): the backup is made and one error line names the damage.\n"              \
	"  --verify   also read every tensor back against its CRC-32s and hash (as ckpt\n"         \
	"             verify); any damage then fails the backup\n"                                 \
	"Prints \"backup: DEST/data.mdb, N checkpoints (latest epoch-NNNN), BYTES bytes\", with\n" \
	"--verify followed by \"; verify: ok, T tensors, B bytes\".\n"                             \
	"Exit status: 0; 1 if the store cannot be read or the backup cannot be written or\n"       \
	"checked (nothing of it is left), or if the store has damaged records (the backup is\n"    \
	"made and printed, holding them as they are: ckpt verify STORE names them); 2 for bad\n"   \
	"usage.\n"

static char *backup_line; /* "ckpt: error: backup of STORE to DEST was interrupted by " */

/* One line, then the end the signal would have brought (exit 130, 143, 129, 131). */
static void remove_backup_and_die(int sig)
{
	ckpt_store_backup_interrupted();
	cli_write_stderr(backup_line ? backup_line : "ckpt: error: backup was interrupted by ");
	cli_write_stderr(cli_stop_signal_name(sig));
	cli_write_stderr(": a copy not yet renamed to data.mdb is removed (a data.mdb in the "
	                 "destination is the whole backup)\n");
	signal(sig, SIG_DFL);
	raise(sig);
}

int cli_backup(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"verify", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned flags = 0;
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: ckpt %s\n%s", CLI_USAGE_BACKUP, HELP_BACKUP);
			return 0;
		}
		if (c != 'v')
			return cli_bad_option(c, argv, opts, CLI_USAGE_BACKUP);
		flags |= CKPT_BACKUP_VERIFY;
	}
	if (cli_check_arg_count(argv, argc - optind, 2, 2, CLI_USAGE_BACKUP))
		return 2;
	const char *path = cli_trim_store_path(argv[optind]);
	const char *dest = cli_trim_store_path(argv[optind + 1]);
	ckpt_store *s;
	int rc = ckpt_store_open(&s, path, CKPT_OPEN_READONLY);
	if (rc) {
		cli_error("cannot open store '%s' (%s)", path,
		          ckpt_last_error()[0] ? ckpt_last_error() : ckpt_strerror(rc));
		return 1;
	}
	backup_line = cli_error_prefix("backup of %s to %s was interrupted by ", path, dest);
	static const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction sa = {.sa_handler = remove_backup_and_die}, old[4];
	sigemptyset(&sa.sa_mask); /* the others wait while one is handled: one line, whole */
	for (size_t i = 0; i < 4; i++)
		sigaddset(&sa.sa_mask, signals[i]);
	for (size_t i = 0; i < 4; i++) {
		sigaction(signals[i], NULL, &old[i]);
		if (old[i].sa_handler != SIG_IGN) /* nohup's SIGHUP stays ignored */
			sigaction(signals[i], &sa, NULL);
	}
	ckpt_store_backup_stats st;
	rc = ckpt_store_backup(&st, s, dest, flags);
	for (size_t i = 0; i < 4; i++)
		sigaction(signals[i], &old[i], NULL);
	free(backup_line);
	backup_line = NULL;
	ckpt_store_close(s);
	if (rc) {
		cli_error("backup of %s to %s failed (%s)", path, dest, ckpt_last_error());
		return 1;
	}
	cli_done = "the backup itself was made";
	printf("backup: ");
	cli_print_escaped(dest, 0);
	printf("/data.mdb, %" PRIu64 " checkpoint%s", st.checkpoints, st.checkpoints == 1 ? "" : "s");
	if (st.has_latest) {
		char name[32];
		view_epoch_name(name, sizeof(name), st.latest);
		printf(" (latest %s)", name);
	}
	printf(", %" PRIu64 " bytes", st.size);
	if (flags & CKPT_BACKUP_VERIFY)
		printf("; verify: ok, %" PRIu64 " tensor%s, %" PRIu64 " bytes", st.tensors,
		       st.tensors == 1 ? "" : "s", st.tensor_bytes);
	putchar('\n');
	if (st.damaged_records == 0)
		return 0;
	fflush(stdout); /* the backup line first */
	cli_error("%s (ckpt verify %s names every damaged record)", ckpt_last_error(), path);
	return 1;
}
