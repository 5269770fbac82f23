/* fs/ckptfs_main.c - placeholder until implemented */
#include <stdio.h>

int main(void)
{
	fputs("ckptfs: not implemented yet\n", stderr);
	return 1;
}
