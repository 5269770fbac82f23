/* fs/render_safetensors.c - model.safetensors of a checkpoint's model tensors
 *
 * u64le header length N, N bytes of compact JSON padded with spaces so 8 + N is a multiple of
 * 8, then the tensors back to back. Tensors are ordered as the reference writer orders them
 * (safetensors' prepare(): its Dtype enum descending, then name bytewise): I64, F64, F32, I32,
 * BF16, F16, I16, I8, U8, BOOL. That is alignment descending, so the data buffer needs no
 * holes, and the same file as safetensors.torch.save_file() writes for the same tensors. __metadata__ holds "format":"pt", the epoch and the monitored metric, as strings.
 * Names that are not valid UTF-8 are refused (-EILSEQ): JSON cannot carry them faithfully; a
 * tensor named "__metadata__" is refused (-ENOTSUP): readers would take it for the metadata.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/render.h"
#include "fs/render_util.h"

typedef struct strbuf {
	char *data;
	size_t len, cap;
	int err;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t len)
{
	if (b->err)
		return;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + len + 1)
			cap *= 2;
		char *data = realloc(b->data, cap);
		if (!data) {
			b->err = -ENOMEM;
			return;
		}
		b->data = data;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, len);
	b->len += len;
	b->data[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		if (!b->err)
			b->err = -EOVERFLOW;
		return;
	}
	sb_put(b, tmp, (size_t)n);
}

/* A JSON string: quotes, backslashes and control bytes escaped; the rest (UTF-8) verbatim. */
static void sb_json_string(strbuf *b, const char *s)
{
	sb_put(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			char esc[2] = {'\\', (char)*p};
			sb_put(b, esc, 2);
		} else if (*p < 0x20 || *p == 0x7f) {
			sb_printf(b, "\\u%04x", *p);
		} else {
			sb_put(b, (const char *)p, 1);
		}
	}
	sb_put(b, "\"", 1);
}

/* Position of a dtype in the reference writer's Dtype enum (BOOL < U8 < I8 < I16 < F16 < BF16
 * < I32 < F32 < F64 < I64 among ours; types we do not store lie between, in the same order). */
int render_safetensors_dtype_rank(ckpt_dtype dtype)
{
	switch (dtype) {
	case CKPT_DTYPE_BOOL:
		return 1;
	case CKPT_DTYPE_UINT8:
		return 2;
	case CKPT_DTYPE_INT8:
		return 3;
	case CKPT_DTYPE_INT16:
		return 4;
	case CKPT_DTYPE_FLOAT16:
		return 5;
	case CKPT_DTYPE_BFLOAT16:
		return 6;
	case CKPT_DTYPE_INT32:
		return 7;
	case CKPT_DTYPE_FLOAT32:
		return 8;
	case CKPT_DTYPE_FLOAT64:
		return 9;
	case CKPT_DTYPE_INT64:
		return 10;
	}
	return 0;
}

static int by_dtype_then_name(const void *a, const void *b)
{
	const ckpt_tensor_info *x = *(const ckpt_tensor_info *const *)a;
	const ckpt_tensor_info *y = *(const ckpt_tensor_info *const *)b;
	int rx = render_safetensors_dtype_rank(x->dtype), ry = render_safetensors_dtype_rank(y->dtype);
	if (rx != ry)
		return rx > ry ? -1 : 1;
	return strcmp(x->name, y->name); /* strcmp compares as unsigned char: bytewise */
}

int render_safetensors(view_layout *out, const ckpt_store *store, const ckpt_checkpoint *c)
{
	render_clear_error();
	int rc = 0;
	strbuf h = {0};
	size_t count = ckpt_checkpoint_tensor_count(c), n = 0;
	const ckpt_tensor_info **tensors = calloc(count ? count : 1, sizeof(*tensors));
	if (!tensors)
		return -ENOMEM;
	uint64_t epoch = ckpt_checkpoint_epoch(c);
	for (size_t i = 0; i < count; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, i);
		if (!t) {
			rc = render_fail(-EIO, "epoch %" PRIu64 ": tensor %zu of %zu missing", epoch,
			                 i, count);
			goto out;
		}
		if (t->group != CKPT_GROUP_MODEL)
			continue;
		if (!render_safetensors_dtype(t->dtype)) {
			rc = render_fail(-ENOTSUP,
			                 "epoch %" PRIu64 ": tensor '%s' has dtype %d, which "
			                 "safetensors cannot hold",
			                 epoch, t->name, (int)t->dtype);
			goto out;
		}
		if (!ckpt_utf8_valid(t->name)) {
			char printable[128];
			render_printable_name(printable, sizeof(printable), t->name);
			rc = render_fail(-EILSEQ,
			                 "epoch %" PRIu64 ": a model tensor name is not valid UTF-8: "
			                 "'%s' (safetensors names must be UTF-8)",
			                 epoch, printable);
			goto out;
		}
		if (strcmp(t->name, "__metadata__") == 0) {
			rc = render_fail(-ENOTSUP,
			                 "epoch %" PRIu64 ": a model tensor is named '__metadata__', "
			                 "the key safetensors reserves for its metadata",
			                 epoch);
			goto out;
		}
		tensors[n++] = t;
	}
	qsort(tensors, n, sizeof(*tensors), by_dtype_then_name);

	sb_puts(&h, "{\"__metadata__\":{\"format\":\"pt\",\"epoch\":");
	sb_printf(&h, "\"%" PRIu64 "\"", epoch);
	const ckpt_run_meta *meta = store ? ckpt_store_meta(store) : NULL;
	double value;
	if (meta && meta->monitor && meta->monitor[0] && strcmp(meta->monitor, "format") != 0 &&
	    strcmp(meta->monitor, "epoch") != 0 && ckpt_utf8_valid(meta->monitor) &&
	    ckpt_checkpoint_metric(c, meta->monitor, &value) == 0) {
		char num[64];
		render_format_double(num, sizeof(num), value);
		sb_puts(&h, ",");
		sb_json_string(&h, meta->monitor);
		sb_puts(&h, ":");
		sb_json_string(&h, num);
	}
	sb_puts(&h, "}");
	uint64_t data_offset = 0;
	for (size_t i = 0; i < n; i++) {
		const ckpt_tensor_info *t = tensors[i];
		sb_puts(&h, ",");
		sb_json_string(&h, t->name);
		sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", render_safetensors_dtype(t->dtype));
		for (uint32_t d = 0; d < t->ndim; d++)
			sb_printf(&h, d ? ",%" PRIu64 : "%" PRIu64, t->shape[d]);
		sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", data_offset,
		          data_offset + t->nbytes);
		data_offset += t->nbytes;
	}
	sb_puts(&h, "}");
	while (!h.err && (8 + h.len) % 8 != 0)
		sb_puts(&h, " ");
	if (h.err) {
		rc = render_fail(h.err, "epoch %" PRIu64 ": safetensors header: out of memory",
		                 epoch);
		goto out;
	}

	uint8_t len_le[8];
	for (int i = 0; i < 8; i++)
		len_le[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
	rc = view_layout_add_bytes(out, len_le, sizeof(len_le));
	if (!rc)
		rc = view_layout_add_bytes(out, h.data, h.len);
	for (size_t i = 0; !rc && i < n; i++)
		rc = view_layout_add_tensor(out, tensors[i], false);
	if (rc)
		render_fail(rc, "epoch %" PRIu64 ": model.safetensors: %s", epoch, strerror(-rc));
out:
	free(h.data);
	free(tensors);
	return rc;
}
