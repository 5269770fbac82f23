/* train/ckpt_train_main.c - placeholder until implemented */
#include <stdio.h>

int main(void)
{
	fputs("ckpt-train: not implemented yet\n", stderr);
	return 1;
}
