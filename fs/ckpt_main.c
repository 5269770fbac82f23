/* fs/ckpt_main.c - `ckpt`: inspect, verify and export checkpoint stores without a mount
 *
 * Dispatches to the subcommands of fs/cli.h. Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "ckpt/message.h"
#include "ckpt/store.h"
#include "fs/cli.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage, *what;
} commands[] = {
    {"info", cli_info, CLI_USAGE_INFO, "run metadata, sizes, best and latest"},
    {"log", cli_log, CLI_USAGE_LOG, "one row per checkpoint, '*' on the best"},
    {"show", cli_show, CLI_USAGE_SHOW, "one line per tensor"},
    {"verify", cli_verify, CLI_USAGE_VERIFY, "recompute every checksum"},
    {"gc", cli_gc, CLI_USAGE_GC, "apply retention now"},
    {"backup", cli_backup, CLI_USAGE_BACKUP, "copy the store safely, also while it trains"},
    {"ls", cli_ls, CLI_USAGE_LS, "list a directory of the mount's view"},
    {"cat", cli_cat, CLI_USAGE_CAT, "write a file of the view to stdout"},
    {"export", cli_export, CLI_USAGE_EXPORT, "write one checkpoint's file"},
};

/* Output that could not be written (a full disk, a closed pipe without SIGPIPE) is an error,
 * as for coreutils: one line and exit status 1 (a command that failed has said why already). */
static int finish_stdout(int status)
{
	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return status;
	if (status)
		return status;
	if (cli_done)
		cli_error("cannot write the output to stdout (%s); %s",
		          errno ? strerror(errno) : "write error", cli_done);
	else
		cli_error("cannot write the output to stdout (%s)",
		          errno ? strerror(errno) : "write error");
	return 1;
}

static void usage(void)
{
	printf("usage: ckpt [--help] [--version] COMMAND ARGS...\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		/* a usage too long for the column puts its description on the next line */
		if (strlen(commands[i].usage) <= 40)
			printf("  ckpt %-40s %s\n", commands[i].usage, commands[i].what);
		else
			printf("  ckpt %s\n  %-45s %s\n", commands[i].usage, "", commands[i].what);
	}
	printf("\nEPOCH is a number (4) or a directory name (epoch-0004).\n"
	       "Run 'ckpt COMMAND --help' or 'ckpt help COMMAND' for a command's options.\n");
}

/* `ckpt help [COMMAND]`, as git's: `ckpt --help`, or `ckpt COMMAND --help`; @p argv[0] is
 * "help". As for every command, --help (help is asked for already) may come before or after
 * COMMAND, and `--` ends the options. */
static int help(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
		if (c != 'h')
			return cli_bad_option(c, argv, opts, "help [COMMAND]");
	if (cli_check_arg_count(argv, argc - optind, 0, 1, "help [COMMAND]"))
		return 2;
	char *name = optind < argc ? argv[optind] : NULL;
	if (!name || strcmp(name, "help") == 0) {
		usage();
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(name, commands[i].name) == 0) {
			char option[] = "--help";
			char *help_argv[] = {name, option, NULL};
			optind = 0;
			return commands[i].run(2, help_argv);
		}
	}
	cli_error("unknown command '%s' (try 'ckpt --help')", name);
	return 2;
}

int main(int argc, char **argv)
{
	/* a closed stdout or stderr must not become the store's data.mdb, which printing (or an
	 * export to /dev/stdout) then overwrites */
	int fds_rc = ckpt_std_fds_open();
	if (fds_rc != 0) {
		cli_error("a standard stream is closed and /dev/null cannot be opened (%s)",
		          strerror(-fds_rc));
		return 1;
	}
	static const struct option options[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	/* past a file size limit (ulimit -f) a write fails with EFBIG and is reported, instead of
	 * SIGXFSZ killing the process without a word (gc writes the store, export a file) */
	signal(SIGXFSZ, SIG_IGN);
	int c;
	/* "+" stops at the first non-option: the subcommand parses the rest */
	opterr = 0; /* one error line of our own for a bad option (below) */
	while ((c = getopt_long(argc, argv, "+:hV", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage();
			return finish_stdout(0);
		case 'V':
			printf("ckpt %s (store schema %d)\n", CKPT_VERSION, CKPT_SCHEMA_VERSION);
			return finish_stdout(0);
		default:
			if (optind > 0 && strncmp(argv[optind - 1], "--", 2) == 0)
				cli_error("unknown option '%.*s' (try 'ckpt --help')",
				          (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
			else
				cli_error("unknown option '-%c' (try 'ckpt --help')", optopt);
			return 2;
		}
	}
	if (optind >= argc) {
		cli_error("no command given (try 'ckpt --help')");
		return 2;
	}
	int first = optind;
	const char *name = argv[first];
	if (strcmp(name, "help") == 0)
		return finish_stdout(help(argc - first, argv + first));
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(name, commands[i].name) == 0) {
			optind = 0; /* the subcommand runs getopt_long afresh on its own argv */
			return finish_stdout(commands[i].run(argc - first, argv + first));
		}
	}
	cli_error("unknown command '%s' (try 'ckpt --help')", name);
	return 2;
}
