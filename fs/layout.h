/* fs/layout.h - a rendered file as a list of segments
 *
 * Every file the view shows (.npy, model.safetensors, model.pt, JSON, ...) is a layout: an
 * ordered list of segments, each either synthesized bytes owned by the layout or a window onto
 * one stored tensor's bytes. The size is known before any read and any byte range is served
 * without building the file. Tensor bytes are copied straight from the LMDB map of a snapshot.
 *
 * Invariants: segments are contiguous (segment i+1 starts where i ends), none is empty, and
 * size is the sum of their lengths. A layout borrows its tensor infos from the snapshot whose
 * checkpoint it was built from, so it must be freed before that snapshot is closed.
 */
#ifndef FS_LAYOUT_H
#define FS_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt/store.h"

/* Largest file a layout describes: st_size is a signed off_t. */
#define VIEW_LAYOUT_MAX_SIZE ((uint64_t)INT64_MAX)

typedef struct view_segment {
	uint64_t file_offset;            /* where the segment starts in the file */
	uint64_t length;                 /* bytes it contributes to the file */
	const uint8_t *bytes;            /* synthesized bytes, or NULL for a tensor window */
	const ckpt_tensor_info *tensor;  /* source tensor when bytes == NULL */
	uint64_t tensor_offset;          /* offset into the tensor's stored bytes */
	bool widen_bf16;                 /* file shows bfloat16 source as float32 (2x length) */
} view_segment;

typedef struct view_layout {
	view_segment *segs;
	size_t nsegs, cap;
	uint64_t size;
	uint8_t **blocks; /* synthesized byte blocks owned by the layout */
	size_t nblocks, blocks_cap;
	/* per tensor segment, one flag per chunk: verified against its stored CRC-32 */
	unsigned char **verified;
} view_layout;

/** Initialize an empty layout (no allocation). */
void view_layout_init(view_layout *l);

/** Append a copy of @p len bytes (len 0 is a no-op). @return 0, -ENOMEM or -EFBIG. */
int view_layout_add_bytes(view_layout *l, const void *bytes, size_t len);

/** Append @p len zero bytes (padding). @return 0, -ENOMEM or -EFBIG. */
int view_layout_add_zeros(view_layout *l, size_t len);

/**
 * Append all bytes of tensor @p t (borrowed). With @p widen_bf16 (only for bfloat16 tensors)
 * the file shows each 2-byte element as a 4-byte float32 (00 00 b0 b1).
 * @return 0, -ENOMEM, -EINVAL if widen_bf16 is set for another dtype, -EFBIG if the file
 * would grow past VIEW_LAYOUT_MAX_SIZE (only sizes from a hostile store get there).
 */
int view_layout_add_tensor(view_layout *l, const ckpt_tensor_info *t, bool widen_bf16);

/**
 * Copy up to @p len bytes at @p offset of the file into @p buf; *out_read receives how many
 * (fewer only at end of file; 0 at or past it). Each tensor chunk is checked against its
 * stored CRC-32 the first time it is read through this layout.
 * @return 0, -EIO if stored bytes fail their checksum or are missing (never wrong bytes).
 */
int view_layout_read(view_layout *l, ckpt_snapshot *snap, uint64_t offset, void *buf,
                     size_t len, size_t *out_read);

/**
 * Index of the segment holding file byte @p offset: the last one starting at or before it
 * (0 for an empty layout; the last segment for offsets at or past the end).
 */
size_t view_layout_find_segment(const view_layout *l, uint64_t offset);

/** Release everything the layout owns; the struct can be reused after view_layout_init(). */
void view_layout_free(view_layout *l);

#endif
