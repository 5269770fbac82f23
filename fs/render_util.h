/* fs/render_util.h - helpers shared by the whole-checkpoint renderers (.pt, .safetensors)
 *
 * A thread-local message explains the last renderer failure (which tensor, why), so a command
 * can print one clear line; dtype tables map ckpt dtypes to torch storage classes and
 * safetensors dtype names; names are checked for valid UTF-8 before they reach a pickle or JSON.
 */
#ifndef FS_RENDER_UTIL_H
#define FS_RENDER_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "ckpt/tensor.h"

/** Message describing the last renderer error on this thread ("" if none). */
const char *render_last_error(void);

/** Keep a printf-style message for render_last_error() and return @p rc. */
int render_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Clear the message (at the start of a render). */
void render_clear_error(void);

/**
 * The location string torch accepts for @p device ("cpu", "cuda", "cuda:N") into @p out
 * (CKPT_MAX_DEVICE + 1 bytes), written canonically ("cuda:01" -> "cuda:1"): torch 1.13 rejects
 * leading zeros and keeps device indices in an int8, so "cuda:255" would load as the current
 * device. @return 0, or -EINVAL if @p device is not one torch reads back as itself (N > 127).
 */
int render_torch_location(char *out, const char *device);

/**
 * @p name printable for a message into @p buf: bytes outside printable ASCII as \xNN, cut
 * with "..." to fit @p cap (>= 8).
 */
void render_printable_name(char *buf, size_t cap, const char *name);

/** torch storage class name ("FloatStorage", "BFloat16Storage", ...) or NULL if none. */
const char *render_torch_storage(ckpt_dtype dtype);

/** safetensors dtype ("F32", "BF16", "BOOL", ...) or NULL if none. */
const char *render_safetensors_dtype(ckpt_dtype dtype);

/** Rank of @p dtype in the order model.safetensors stores tensors (higher first, then name):
 *  the reference writer's Dtype enum order (I64 > F64 > F32 > I32 > BF16 > F16 > I16 > I8 > U8
 *  > BOOL). */
int render_safetensors_dtype_rank(ckpt_dtype dtype);

/**
 * Shortest decimal text that reads back as @p v ("0.1", "1e-08", "nan", "inf") into buf
 * (>= 32 bytes); like Python's repr, values in [1e-4, 1e16) have no exponent ("1000").
 */
void render_format_double(char *buf, size_t cap, double v);

/** Said of an "optimizer.param_groups" extra that cannot be read: its record's CRC-32 held,
 *  so the text is as its writer stored it, not damaged on disk. */
#define RENDER_MALFORMED_PARAM_GROUPS                                                          \
	"a malformed extra as its writer stored it, not disk damage (libckpt refuses such text at " \
	"ckpt_writer_set_extra since this version)"

struct json_t;

/** The run's hyper-parameters (JSON text; @p any: any JSON value, else an object or array
 *  only) parsed, or NULL when they are no JSON jansson reads. An integer outside int64 (valid
 *  JSON, which jansson refuses) is read as a render_json_bigint() marker, exact; the other
 *  integers stay integers. Free with json_decref(). */
struct json_t *render_load_hyperparams(const char *text, bool any);

/** A JSON string that stands for the integer @p digits (@p len bytes: an optional '-', then
 *  decimal digits) outside jansson's int64: "\x01u", a nonce random per process, ':', the
 *  digits. Writers print the digits (run.json) or an int (pickle) for it. NULL without
 *  memory. */
struct json_t *render_json_bigint(const char *digits, size_t len);

/** If @p s (@p len bytes: a string's text after its first byte, \x01) is the rest of a
 *  render_json_bigint() marker, the number of bytes of its integer text (set in *@p digits);
 *  else 0. */
size_t render_bigint_digits(const char *s, size_t len, const char **digits);

#endif
