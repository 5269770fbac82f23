/* fs/cli_export.c - placeholder until implemented */
#include "fs/cli.h"

int cli_export(int argc, char **argv)
{
	cli_error("export: not implemented yet");
	return 1;
}
