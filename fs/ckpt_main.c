/* fs/ckpt_main.c - `ckpt`: inspect, verify and export checkpoint stores without a mount
 *
 * Dispatches to the subcommands of fs/cli.h. Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ckpt/store.h"
#include "fs/cli.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
} commands[] = {
	{"info", cli_info, "info STORE                      run metadata, sizes, best and latest"},
	{"log", cli_log, "log STORE                       one row per checkpoint, '*' on the best"},
	{"show", cli_show, "show STORE EPOCH|best|latest    one line per tensor"},
	{"verify", cli_verify, "verify STORE                    recompute every checksum"},
	{"gc", cli_gc, "gc STORE --keep-last N --keep-top K   apply retention now"},
	{"ls", cli_ls, "ls STORE [PATH]                 list a directory of the mount's view"},
	{"cat", cli_cat, "cat STORE PATH                  write a file of the view to stdout"},
	{"export", cli_export,
	 "export STORE EPOCH|best|latest --format safetensors|pt|checkpoint -o FILE"},
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
	cli_error("cannot write the output to stdout (%s)",
	          errno ? strerror(errno) : "write error");
	return 1;
}

static void usage(FILE *to)
{
	fprintf(to, "usage: ckpt [--help] [--version] COMMAND ARGS...\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(to, "  ckpt %s\n", commands[i].usage);
	fprintf(to, "\nEPOCH is a number (4) or a directory name (epoch-0004).\n"
	            "Run 'ckpt COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	/* "+" stops at the first non-option: the subcommand parses the rest */
	opterr = 0; /* one error line of our own for a bad option (below) */
	while ((c = getopt_long(argc, argv, "+:hV", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
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
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(name, commands[i].name) == 0) {
			optind = 0; /* the subcommand runs getopt_long afresh on its own argv */
			return finish_stdout(commands[i].run(argc - first, argv + first));
		}
	}
	cli_error("unknown command '%s' (try 'ckpt --help')", name);
	return 2;
}
