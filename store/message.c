/* store/message.c - one-line error messages (see include/ckpt/message.h) */
#include "ckpt/message.h"

#include <stdlib.h>
#include <string.h>

void ckpt_vprint_line(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
	char small[1024];
	va_list copy;
	va_copy(copy, ap);
	int n = vsnprintf(small, sizeof(small), fmt, copy);
	va_end(copy);
	char *text = small;
	char *big = NULL;
	if (n >= (int)sizeof(small) && vasprintf(&big, fmt, ap) >= 0)
		text = big; /* otherwise (no memory) the cut message is still one line */
	flockfile(f);
	fputs(prefix, f);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			putc_unlocked(*p, f);
	}
	putc_unlocked('\n', f);
	funlockfile(f);
	free(big);
}

void ckpt_print_line(FILE *f, const char *prefix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ckpt_vprint_line(f, prefix, fmt, ap);
	va_end(ap);
}
