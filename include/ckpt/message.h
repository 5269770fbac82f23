/* include/ckpt/message.h - one-line error messages for programs built on libckpt
 *
 * Errors name paths and tensor names, which may hold any byte: a newline in a store path must
 * not split the one line a script reads from stderr. These print a message whole (no fixed
 * buffer cuts a long path off) with control characters written as \xNN.
 */
#ifndef CKPT_MESSAGE_H
#define CKPT_MESSAGE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Write "@p prefix<message>\n" to @p f as one line: the message formatted from @p fmt, its
 * control characters (below 0x20, and 0x7f) as \xNN. @p prefix is written as is. A stream with
 * a file descriptor is flushed, then the line goes to the descriptor in one write(2) (lines of
 * processes sharing a file never mix); a write error is not recorded in the stream's error
 * flag, nor the line in its position (ftell). A stream without one (open_memstream) gets the line through fwrite.
 */
void ckpt_vprint_line(FILE *f, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/** ckpt_vprint_line() with variable arguments. */
void ckpt_print_line(FILE *f, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * @p s as one shell word, for a command to copy and paste: @p s itself when it is not empty and
 * holds only letters, digits and "._/-+:@,%=", else in single quotes ('\'' for a quote), and as
 * bash's $'...' (\xNN, \' and \\) when it holds control characters, which would otherwise
 * split the one line the command is printed on. Written into @p buf of @p len bytes, cut short
 * if that is too small (4 * strlen(s) + 4 always suffices).
 * @return @p s or @p buf.
 */
const char *ckpt_shell_word(char *buf, size_t len, const char *s);

/**
 * Make sure file descriptors 0, 1 and 2 are open, before a program opens anything else: each
 * closed one is opened on /dev/null, read-only. Otherwise a store's data.mdb or lock.mdb opened
 * later could become stdout or stderr, and printing would write into it. A write to a closed
 * stdout still fails (EBADF), as it would have. Call it first thing in main().
 * @return 0, or -errno when one is closed and /dev/null cannot be opened (then exit).
 */
int ckpt_std_fds_open(void);

/** True if ckpt_std_fds_open() found @p fd (0, 1 or 2) closed: a program that is asked to write
 *  to it by name (/dev/stdout) should fail as a write to a closed descriptor does (EBADF). */
bool ckpt_std_fd_was_closed(int fd);

#ifdef __cplusplus
}
#endif

#endif
