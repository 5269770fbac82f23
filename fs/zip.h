/* fs/zip.h - stored (uncompressed) zip archives as file layouts, the way torch.save lays them out
 *
 * Every payload starts on a 64-byte boundary (padding extra field "FB"), zip64 extra fields are
 * written where a size or offset does not fit 32 bits, and a zip64 end record, locator and end
 * record always close the archive (see FORMATS.md). Payloads are either synthesized bytes
 * (copied into the layout) or a stored tensor's bytes (a window onto the LMDB map).
 */
#ifndef FS_ZIP_H
#define FS_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/tensor.h"
#include "fs/layout.h"

/** Alignment of every payload in the archive. */
#define ZIP_ALIGN 64

typedef struct zip_entry {
	const char *name;               /* entry name (borrowed; at most 65535 bytes) */
	const void *bytes;              /* synthesized payload, or NULL for a tensor */
	uint64_t len;                   /* length of @bytes (ignored for a tensor) */
	const ckpt_tensor_info *tensor; /* payload when bytes == NULL: all its stored bytes; its
	                                   stored crc32 is used, no byte is read */
} zip_entry;

/**
 * Append a whole zip archive of @p n entries, in order, to the (empty) layout @p out.
 * CRC-32s of synthesized payloads are computed here.
 * @return 0, -ENOMEM, -ENAMETOOLONG for a name longer than 65535 bytes.
 */
int zip_render(view_layout *out, const zip_entry *entries, size_t n);

#endif
