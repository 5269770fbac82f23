/* fs/layout.c - a rendered file as a list of segments (see fs/layout.h)
 *
 * Reads locate the first segment by binary search on file_offset and walk forward. Tensor
 * windows are copied from ckpt_tensor_chunk() pointers into the LMDB map; a chunk is verified
 * once per layout, so a sequential read of a file checks each stored byte exactly once.
 */
#include "fs/layout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void view_layout_init(view_layout *l)
{
	memset(l, 0, sizeof(*l));
}

static int push_segment(view_layout *l, const view_segment *seg)
{
	if (seg->length > VIEW_LAYOUT_MAX_SIZE - l->size)
		return -EFBIG; /* sizes from a hostile store: offsets must not wrap */
	if (l->nsegs == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		view_segment *segs = realloc(l->segs, cap * sizeof(*segs));
		if (!segs)
			return -ENOMEM;
		unsigned char **verified = realloc(l->verified, cap * sizeof(*verified));
		if (!verified) {
			l->segs = segs;
			return -ENOMEM;
		}
		l->segs = segs;
		l->verified = verified;
		l->cap = cap;
	}
	l->segs[l->nsegs] = *seg;
	l->segs[l->nsegs].file_offset = l->size;
	l->verified[l->nsegs] = NULL;
	l->nsegs++;
	l->size += seg->length;
	return 0;
}

static int own_block(view_layout *l, uint8_t **out, size_t len)
{
	if (l->nblocks == l->blocks_cap) {
		size_t cap = l->blocks_cap ? l->blocks_cap * 2 : 8;
		uint8_t **blocks = realloc(l->blocks, cap * sizeof(*blocks));
		if (!blocks)
			return -ENOMEM;
		l->blocks = blocks;
		l->blocks_cap = cap;
	}
	uint8_t *block = malloc(len);
	if (!block)
		return -ENOMEM;
	l->blocks[l->nblocks++] = block;
	*out = block;
	return 0;
}

static int add_owned(view_layout *l, const void *bytes, size_t len)
{
	if (len == 0)
		return 0;
	uint8_t *block;
	int rc = own_block(l, &block, len);
	if (rc)
		return rc;
	if (bytes)
		memcpy(block, bytes, len);
	else
		memset(block, 0, len);
	view_segment seg = {.length = len, .bytes = block};
	return push_segment(l, &seg);
}

int view_layout_add_bytes(view_layout *l, const void *bytes, size_t len)
{
	return add_owned(l, bytes, len);
}

int view_layout_add_zeros(view_layout *l, size_t len)
{
	return add_owned(l, NULL, len);
}

int view_layout_add_tensor(view_layout *l, const ckpt_tensor_info *t, bool widen_bf16)
{
	if (widen_bf16 && t->dtype != CKPT_DTYPE_BFLOAT16)
		return -EINVAL;
	if (t->nbytes == 0)
		return 0;
	if (widen_bf16 && t->nbytes > VIEW_LAYOUT_MAX_SIZE / 2)
		return -EFBIG;
	view_segment seg = {
	    .length = widen_bf16 ? t->nbytes * 2 : t->nbytes,
	    .tensor = t,
	    .widen_bf16 = widen_bf16,
	};
	return push_segment(l, &seg);
}

size_t view_layout_find_segment(const view_layout *l, uint64_t offset)
{
	size_t lo = 0, hi = l->nsegs;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->segs[mid].file_offset <= offset)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Copy source bytes [src_off, src_off+len) of segment i's tensor into dst, verifying chunks. */
static int copy_tensor_bytes(view_layout *l, size_t i, ckpt_snapshot *snap, uint64_t src_off,
                             uint8_t *dst, size_t len, bool widen)
{
	const ckpt_tensor_info *t = l->segs[i].tensor;
	if (!l->verified[i] && t->nchunks > 0) {
		l->verified[i] = calloc(t->nchunks, 1);
		if (!l->verified[i])
			return -ENOMEM;
	}
	while (len > 0) {
		uint32_t chunk = (uint32_t)(src_off / t->chunk_size);
		uint64_t in_chunk = src_off % t->chunk_size;
		bool verify = !__atomic_load_n(&l->verified[i][chunk], __ATOMIC_ACQUIRE);
		const void *data;
		size_t data_len;
		int rc = ckpt_tensor_chunk(&data, &data_len, snap, t, chunk, verify);
		if (rc)
			return -EIO;
		if (verify)
			__atomic_store_n(&l->verified[i][chunk], 1, __ATOMIC_RELEASE);
		if (in_chunk >= data_len)
			return -EIO;
		size_t n = data_len - in_chunk;
		if (n > len)
			n = len;
		const uint8_t *src = (const uint8_t *)data + in_chunk;
		if (widen) {
			/* n source bytes (even, element aligned) become 2n file bytes */
			for (size_t k = 0; k + 1 < n; k += 2) {
				dst[2 * k + 0] = 0;
				dst[2 * k + 1] = 0;
				dst[2 * k + 2] = src[k];
				dst[2 * k + 3] = src[k + 1];
			}
			dst += 2 * n;
		} else {
			memcpy(dst, src, n);
			dst += n;
		}
		src_off += n;
		len -= n;
	}
	return 0;
}

static int read_tensor_segment(view_layout *l, size_t i, ckpt_snapshot *snap, uint64_t seg_off,
                               uint8_t *dst, size_t len)
{
	const view_segment *seg = &l->segs[i];
	if (!seg->widen_bf16)
		return copy_tensor_bytes(l, i, snap, seg->tensor_offset + seg_off, dst, len, false);
	/* widened: file byte f maps to element f/4, byte f%4 (0,1 are zero; 2,3 are the source) */
	uint8_t tmp[4];
	while (len > 0) {
		uint64_t elem = seg_off / 4;
		size_t within = seg_off % 4;
		if (within != 0 || len < 4) {
			int rc = copy_tensor_bytes(l, i, snap, seg->tensor_offset + elem * 2, tmp, 2,
			                           true);
			if (rc)
				return rc;
			size_t n = 4 - within;
			if (n > len)
				n = len;
			memcpy(dst, tmp + within, n);
			dst += n;
			seg_off += n;
			len -= n;
			continue;
		}
		size_t whole = len / 4;
		int rc = copy_tensor_bytes(l, i, snap, seg->tensor_offset + elem * 2, dst, whole * 2,
		                           true);
		if (rc)
			return rc;
		dst += whole * 4;
		seg_off += whole * 4;
		len -= whole * 4;
	}
	return 0;
}

int view_layout_read(view_layout *l, ckpt_snapshot *snap, uint64_t offset, void *buf,
                     size_t len, size_t *out_read)
{
	*out_read = 0;
	if (offset >= l->size || len == 0)
		return 0;
	if (len > l->size - offset)
		len = (size_t)(l->size - offset);
	uint8_t *dst = buf;
	size_t done = 0;
	for (size_t i = view_layout_find_segment(l, offset); i < l->nsegs && done < len; i++) {
		const view_segment *seg = &l->segs[i];
		uint64_t seg_off = offset + done - seg->file_offset;
		size_t n = seg->length - seg_off;
		if (n > len - done)
			n = len - done;
		if (seg->bytes) {
			memcpy(dst + done, seg->bytes + seg_off, n);
		} else {
			int rc = read_tensor_segment(l, i, snap, seg_off, dst + done, n);
			if (rc)
				return rc;
		}
		done += n;
	}
	*out_read = done;
	return 0;
}

void view_layout_free(view_layout *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nblocks; i++)
		free(l->blocks[i]);
	for (size_t i = 0; i < l->nsegs; i++)
		free(l->verified[i]);
	free(l->blocks);
	free(l->verified);
	free(l->segs);
	view_layout_init(l);
}
