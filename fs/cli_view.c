/* fs/cli_view.c - placeholder until implemented */
#include "fs/cli.h"

int cli_ls(int argc, char **argv)
{
	cli_error("ls: not implemented yet");
	return 1;
}

int cli_cat(int argc, char **argv)
{
	cli_error("cat: not implemented yet");
	return 1;
}
