/* fs/zip.c - stored zip archives as file layouts (see fs/zip.h)
 *
 * Layout per entry: 30-byte local header, name, [zip64 extra: 01 00 10 00 + u64 size + u64
 * size when size >= 0xFFFFFFFF], padding extra 46 42 u16 pad + pad bytes so the payload starts
 * on a multiple of 64, payload. Then one central directory entry per entry (46 bytes, name,
 * zip64 extra holding exactly the fields that overflow, in the order the spec gives), then the
 * zip64 end record (56), its locator (20) and the end record (22). Method 0, flags 0, time 0,
 * date 1980-01-01, so identical metadata renders identical bytes.
 */
#include "fs/zip.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define SIG_END 0x06054b50u
#define DOS_DATE_1980_01_01 0x0021u
#define U32_MAX_FIELD 0xFFFFFFFFull

typedef struct bytes_out {
	uint8_t *p;
	size_t len;
} bytes_out;

static void put16(bytes_out *b, uint16_t v)
{
	b->p[b->len++] = (uint8_t)v;
	b->p[b->len++] = (uint8_t)(v >> 8);
}

static void put32(bytes_out *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b->p[b->len++] = (uint8_t)(v >> (8 * i));
}

static void put64(bytes_out *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b->p[b->len++] = (uint8_t)(v >> (8 * i));
}

static void put_raw(bytes_out *b, const void *src, size_t len)
{
	memcpy(b->p + b->len, src, len);
	b->len += len;
}

static uint32_t clamp32(uint64_t v)
{
	return v >= U32_MAX_FIELD ? 0xFFFFFFFFu : (uint32_t)v;
}

static uint64_t entry_size(const zip_entry *e)
{
	return e->bytes ? e->len : e->tensor->nbytes;
}

static uint32_t entry_crc(const zip_entry *e)
{
	if (!e->bytes)
		return e->tensor->crc32;
	/* ckpt_crc32 takes size_t; synthesized payloads are small, but stay exact for any size */
	uint32_t crc = 0;
	const uint8_t *p = e->bytes;
	uint64_t left = e->len;
	while (left > 0) {
		size_t n = left > (1u << 30) ? (1u << 30) : (size_t)left;
		crc = ckpt_crc32(crc, p, n);
		p += n;
		left -= n;
	}
	return crc;
}

typedef struct entry_pos {
	uint64_t local_offset;
	uint64_t size;
	uint32_t crc;
} entry_pos;

int zip_render(view_layout *out, const zip_entry *entries, size_t n)
{
	int rc = 0;
	entry_pos *pos = calloc(n ? n : 1, sizeof(*pos));
	/* big enough for any one header: 46 + name + 28 zip64 + 4 + 63 padding */
	uint8_t *scratch = malloc(65535 + 256);
	if (!pos || !scratch) {
		rc = -ENOMEM;
		goto out;
	}
	uint64_t offset = out->size;
	for (size_t i = 0; i < n; i++) {
		const zip_entry *e = &entries[i];
		size_t namelen = strlen(e->name);
		if (namelen > 65535) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		uint64_t size = entry_size(e);
		bool zip64 = size >= U32_MAX_FIELD;
		size_t z64len = zip64 ? 20 : 0;
		size_t pad = (size_t)((ZIP_ALIGN - (offset + 30 + namelen + z64len + 4) % ZIP_ALIGN) %
		                      ZIP_ALIGN);
		pos[i] = (entry_pos){.local_offset = offset, .size = size, .crc = entry_crc(e)};

		bytes_out b = {scratch, 0};
		put32(&b, SIG_LOCAL);
		put16(&b, zip64 ? 45 : 20);
		put16(&b, 0); /* flags */
		put16(&b, 0); /* method: stored */
		put16(&b, 0); /* time */
		put16(&b, DOS_DATE_1980_01_01);
		put32(&b, pos[i].crc);
		put32(&b, clamp32(size));
		put32(&b, clamp32(size));
		put16(&b, (uint16_t)namelen);
		put16(&b, (uint16_t)(z64len + 4 + pad));
		put_raw(&b, e->name, namelen);
		if (zip64) {
			put16(&b, 0x0001);
			put16(&b, 16);
			put64(&b, size);
			put64(&b, size);
		}
		put16(&b, 0x4246); /* "FB": torch's padding field */
		put16(&b, (uint16_t)pad);
		memset(b.p + b.len, 'Z', pad);
		b.len += pad;
		rc = view_layout_add_bytes(out, b.p, b.len);
		if (rc)
			goto out;
		if (e->bytes)
			rc = view_layout_add_bytes(out, e->bytes, (size_t)e->len);
		else
			rc = view_layout_add_tensor(out, e->tensor, false);
		if (rc)
			goto out;
		offset += b.len + size;
	}

	uint64_t cd_offset = offset;
	for (size_t i = 0; i < n; i++) {
		const zip_entry *e = &entries[i];
		size_t namelen = strlen(e->name);
		bool big_size = pos[i].size >= U32_MAX_FIELD;
		bool big_offset = pos[i].local_offset >= U32_MAX_FIELD;
		size_t nfields = (big_size ? 2 : 0) + (big_offset ? 1 : 0);
		size_t extralen = nfields ? 4 + 8 * nfields : 0;
		uint16_t version = nfields ? 45 : 20;

		bytes_out b = {scratch, 0};
		put32(&b, SIG_CENTRAL);
		put16(&b, version); /* made by: MS-DOS, spec version */
		put16(&b, version); /* needed to extract */
		put16(&b, 0);
		put16(&b, 0);
		put16(&b, 0);
		put16(&b, DOS_DATE_1980_01_01);
		put32(&b, pos[i].crc);
		put32(&b, clamp32(pos[i].size));
		put32(&b, clamp32(pos[i].size));
		put16(&b, (uint16_t)namelen);
		put16(&b, (uint16_t)extralen);
		put16(&b, 0); /* comment */
		put16(&b, 0); /* disk */
		put16(&b, 0); /* internal attributes */
		put32(&b, 0); /* external attributes */
		put32(&b, clamp32(pos[i].local_offset));
		put_raw(&b, e->name, namelen);
		if (nfields) {
			put16(&b, 0x0001);
			put16(&b, (uint16_t)(8 * nfields));
			if (big_size) {
				put64(&b, pos[i].size); /* uncompressed */
				put64(&b, pos[i].size); /* compressed */
			}
			if (big_offset)
				put64(&b, pos[i].local_offset);
		}
		rc = view_layout_add_bytes(out, b.p, b.len);
		if (rc)
			goto out;
		offset += b.len;
	}

	uint64_t cd_size = offset - cd_offset;
	uint64_t end64_offset = offset;
	bytes_out b = {scratch, 0};
	put32(&b, SIG_END64);
	put64(&b, 44); /* size of the rest of this record */
	put16(&b, 45);
	put16(&b, 45);
	put32(&b, 0); /* this disk */
	put32(&b, 0); /* disk with the central directory */
	put64(&b, n);
	put64(&b, n);
	put64(&b, cd_size);
	put64(&b, cd_offset);

	put32(&b, SIG_LOCATOR64);
	put32(&b, 0);
	put64(&b, end64_offset);
	put32(&b, 1); /* total disks */

	put32(&b, SIG_END);
	put16(&b, 0);
	put16(&b, 0);
	put16(&b, (uint16_t)(n >= 0xFFFF ? 0xFFFF : n));
	put16(&b, (uint16_t)(n >= 0xFFFF ? 0xFFFF : n));
	put32(&b, clamp32(cd_size));
	put32(&b, clamp32(cd_offset));
	put16(&b, 0);
	rc = view_layout_add_bytes(out, b.p, b.len);
out:
	free(scratch);
	free(pos);
	return rc;
}
