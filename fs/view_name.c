/* fs/view_name.c - file names of the view: tensor name escaping, epoch directory names
 *
 * Escaping is reversible and injective: '/', '%', bytes < 0x20, 0x7f and a leading '.' become
 * %XX; everything else (UTF-8 included) stays. An encoding that would not fit a 255-byte file
 * name is cut at a whole escape / UTF-8 sequence and ends in "%~" + 16 hex digits of the full
 * name's XXH3-64; ordinary encodings never contain "%~", so hashed names cannot collide with
 * them (only with each other, at 2^-64).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fs/view_int.h"

static _Thread_local char view_error[16384]; /* long paths keep their reason */

void view_set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(view_error, sizeof(view_error), fmt, ap);
	va_end(ap);
}

const char *ckpt_view_last_error(void)
{
	return view_error;
}

void view_epoch_name(char *buf, size_t cap, uint64_t epoch)
{
	snprintf(buf, cap, "epoch-%04" PRIu64, epoch);
}

int view_parse_epoch_name(uint64_t *out, const char *name)
{
	if (strncmp(name, "epoch-", 6) != 0)
		return -ENOENT;
	const char *digits = name + 6;
	if (*digits < '0' || *digits > '9')
		return -ENOENT;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(digits, &end, 10);
	if (errno || *end || v > VIEW_MAX_EPOCH)
		return -ENOENT;
	char canonical[32];
	view_epoch_name(canonical, sizeof(canonical), v);
	if (strcmp(canonical, name) != 0)
		return -ENOENT;
	*out = v;
	return 0;
}

static bool must_escape(unsigned char b, size_t pos)
{
	return b == '/' || b == '%' || b < 0x20 || b == 0x7f || (pos == 0 && b == '.');
}

int ckpt_view_escape_name(char *out, size_t cap, const char *name, size_t suffix_len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(name);
	if (len == 0)
		return -EINVAL;
	if (suffix_len > VIEW_NAME_MAX - 19)
		return -ERANGE;
	size_t limit = VIEW_NAME_MAX - suffix_len; /* longest stem */
	size_t hashed_limit = limit - 18;          /* prefix before "%~" + 16 hex */
	size_t n = 0, cut = 0; /* cut: stem length at the last unit <= hashed_limit */
	bool overflow = false;
	for (size_t i = 0; i < len;) {
		const unsigned char *p = (const unsigned char *)name + i;
		char unit[8];
		size_t ulen, consumed;
		if (must_escape(p[0], i)) {
			unit[0] = '%';
			unit[1] = hex[p[0] >> 4];
			unit[2] = hex[p[0] & 15];
			ulen = 3;
			consumed = 1;
		} else {
			consumed = 1;
			if (p[0] >= 0xc0)
				while (consumed < 4 && i + consumed < len &&
				       (p[consumed] & 0xc0) == 0x80)
					consumed++;
			memcpy(unit, p, consumed);
			ulen = consumed;
		}
		if (n + ulen > limit) {
			overflow = true;
			break;
		}
		if (n + ulen + 1 > cap)
			return -ERANGE;
		memcpy(out + n, unit, ulen);
		n += ulen;
		if (n <= hashed_limit)
			cut = n;
		i += consumed;
	}
	if (overflow) {
		if (cut + 19 > cap)
			return -ERANGE;
		snprintf(out + cut, cap - cut, "%%~%016" PRIx64, (uint64_t)XXH3_64bits(name, len));
		return 0;
	}
	out[n] = '\0';
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ckpt_view_unescape_name(char *out, size_t cap, const char *stem)
{
	size_t n = 0;
	for (const char *p = stem; *p;) {
		char c = *p;
		if (c == '%') {
			int hi = hex_value(p[1]);
			int lo = hi < 0 ? -1 : hex_value(p[2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			c = (char)(hi * 16 + lo);
			p += 3;
		} else {
			p++;
		}
		if (n + 2 > cap)
			return -ERANGE;
		out[n++] = c;
	}
	if (n == 0)
		return -EINVAL;
	out[n] = '\0';
	return 0;
}
