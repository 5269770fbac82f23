/* store/message.c - one-line error messages (see include/ckpt/message.h) */
#include "ckpt/message.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned std_fds_closed; /* bit N: fd N was closed and now holds /dev/null */

bool ckpt_std_fd_was_closed(int fd)
{
	return fd >= 0 && fd <= 2 && (std_fds_closed >> fd & 1u);
}

int ckpt_std_fds_open(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		std_fds_closed |= 1u << fd;
		/* the lower ones are open: this open gets @p fd */
		int null = open("/dev/null", O_RDONLY);
		if (null < 0)
			return -errno;
		if (null != fd) {
			int rc = dup2(null, fd) < 0 ? -errno : 0;
			close(null);
			if (rc)
				return rc;
		}
	}
	return 0;
}

void ckpt_vprint_line(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
	if (!f || !fmt)
		return;
	if (!prefix)
		prefix = "";
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

const char *ckpt_shell_word(char *buf, size_t len, const char *s)
{
	if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	                    "._/-+:@,%=") == strlen(s))
		return s;
	if (len == 0)
		return "";
	bool control = false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		control |= *p < 0x20 || *p == 0x7f;
	size_t o = 0;
	if (control && o + 1 < len)
		buf[o++] = '$';
	if (o + 1 < len)
		buf[o++] = '\'';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool byte = control && (*p < 0x20 || *p == 0x7f);
		size_t need = byte || (!control && *p == '\'') ? 4
		              : control && (*p == '\'' || *p == '\\') ? 2
		                                                        : 1;
		if (o + need + 2 > len) /* room for it, the closing quote and the NUL */
			break;
		if (byte) {
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
		} else if (control && (*p == '\'' || *p == '\\')) {
			buf[o++] = '\\';
			buf[o++] = (char)*p;
		} else if (*p == '\'') {
			memcpy(buf + o, "'\\''", 4);
			o += 4;
		} else {
			buf[o++] = (char)*p;
		}
	}
	if (o + 1 < len)
		buf[o++] = '\'';
	buf[o] = 0;
	return buf;
}
