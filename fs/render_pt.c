/* fs/render_pt.c - placeholder until implemented */
#include <errno.h>

#include "fs/render.h"

int render_model_pt(view_layout *out, const ckpt_store *store, const ckpt_checkpoint *c,
                    const view_render_options *opts)
{
	return -ENOSYS;
}

int render_checkpoint_pt(view_layout *out, const ckpt_store *store, const ckpt_checkpoint *c,
                         const view_render_options *opts)
{
	return -ENOSYS;
}
