/* store/message.c - one-line error messages (see include/ckpt/message.h) */
#include "ckpt/message.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
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

/* A line on its way out: filled in @p buf, sent whole by line_send(). */
typedef struct line_out {
	FILE *f;
	int fd; /* f's descriptor; -1: none (open_memstream), the bytes go by fwrite */
	char *buf;
	size_t cap, len;
} line_out;

/* Send what @p o holds with one write(2) to its descriptor (more only on short writes), so a
 * line is never mixed with a line another process writes at the same time. */
static void line_send(line_out *o)
{
	const char *p = o->buf;
	size_t left = o->len;
	o->len = 0;
	if (o->fd < 0) {
		fwrite(p, 1, left, o->f);
		return;
	}
	while (left > 0) {
		ssize_t w = write(o->fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to say so: the line was the error report */
		p += w;
		left -= (size_t)w;
	}
}

/* Append @p n bytes; a buffer too small for the whole line (no memory for a bigger one) goes
 * out in full chunks. */
static void line_put(line_out *o, const char *s, size_t n)
{
	while (n > 0) {
		if (o->len == o->cap)
			line_send(o);
		size_t part = n < o->cap - o->len ? n : o->cap - o->len;
		memcpy(o->buf + o->len, s, part);
		o->len += part;
		s += part;
		n -= part;
	}
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

	size_t prefix_len = strlen(prefix), text_len = strlen(text);
	char stack[4096];
	line_out o = {.f = f, .buf = stack, .cap = sizeof(stack)};
	/* a control character takes 4 bytes (\xNN); beyond SIZE_MAX / 8 no buffer is asked for */
	if (text_len < SIZE_MAX / 8 && prefix_len < SIZE_MAX / 8) {
		size_t need = prefix_len + 4 * text_len + 1;
		char *heap = need > sizeof(stack) ? malloc(need) : NULL;
		if (heap) {
			o.buf = heap;
			o.cap = need;
		}
	}
	flockfile(f);
	/* What f holds goes out first; then the line goes past f's buffer, by write(2): an
	 * unbuffered stream (stderr) would write it one byte at a time. */
	o.fd = fileno(f);
	if (o.fd >= 0 && fflush(f) != 0)
		o.fd = -1;
	line_put(&o, prefix, prefix_len);
	for (const unsigned char *p = (const unsigned char *)text; *p;) {
		size_t plain = 0;
		while (p[plain] && p[plain] >= 0x20 && p[plain] != 0x7f)
			plain++;
		line_put(&o, (const char *)p, plain);
		p += plain;
		if (*p) {
			char esc[5];
			snprintf(esc, sizeof(esc), "\\x%02x", *p++);
			line_put(&o, esc, 4);
		}
	}
	line_put(&o, "\n", 1);
	line_send(&o);
	funlockfile(f);
	if (o.buf != stack)
		free(o.buf);
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
