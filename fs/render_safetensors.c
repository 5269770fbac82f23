/* fs/render_safetensors.c - placeholder until implemented */
#include <errno.h>

#include "fs/render.h"

int render_safetensors(view_layout *out, const ckpt_store *store, const ckpt_checkpoint *c)
{
	return -ENOSYS;
}
