/* fs/render.h - renderers: stored tensors -> file layouts (see fs/layout.h, FORMATS.md)
 *
 * Each renderer appends to an initialized, empty layout and computes everything from stored
 * metadata (names, dtypes, shapes, byte lengths, stored CRC-32s): no tensor byte is read while
 * rendering. The layout borrows the checkpoint's tensor infos: free it before the snapshot.
 * On error the layout may hold a partial file: the caller frees it.
 */
#ifndef FS_RENDER_H
#define FS_RENDER_H

#include "ckpt/store.h"
#include "fs/layout.h"

/** Where .pt files say their storages live (torch.load's map_location, done at render time). */
typedef enum view_map_location {
	VIEW_MAP_CPU = 0,    /* default: every storage on "cpu" */
	VIEW_MAP_KEEP = 1,   /* the device recorded in the store */
	VIEW_MAP_DEVICE = 2, /* one fixed device string, e.g. "cuda:1" */
} view_map_location;

typedef struct view_render_options {
	view_map_location map_location;
	char map_device[CKPT_MAX_DEVICE + 1]; /* for VIEW_MAP_DEVICE */
} view_render_options;

/**
 * Parse a map_location value as the mount option, `ckpt cat` and `ckpt export` take it: NULL or
 * "cpu", "keep", "cuda" or "cuda:N". fs/render_util.c
 * @return 0, or -EINVAL (and @p out is the default, cpu).
 */
int render_parse_map_location(view_render_options *out, const char *value);

/** .npy v1.0 of one tensor (bfloat16 widened to <f4). fs/render_npy.c */
int render_npy(view_layout *out, const ckpt_tensor_info *t);

/** model.safetensors of the checkpoint's model tensors. fs/render_safetensors.c */
int render_safetensors(view_layout *out, const ckpt_store *store, const ckpt_checkpoint *c);

/** model.pt: torch.save(model.state_dict()) layout. fs/render_pt.c */
int render_model_pt(view_layout *out, const ckpt_store *store, const ckpt_checkpoint *c,
                    const view_render_options *opts);

/** checkpoint.pt: {'model','optimizer','epoch','step','metrics',...}. fs/render_pt.c */
int render_checkpoint_pt(view_layout *out, const ckpt_store *store, const ckpt_checkpoint *c,
                         const view_render_options *opts);

#endif
