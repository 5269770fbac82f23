/* fs/pickle.h - a writer for the subset of pickle protocol 2 that torch.save files use
 *
 * Emits opcodes into a growable buffer. Errors are sticky: after the first failed allocation
 * every call is a no-op and pickle_finish() returns -ENOMEM, so callers check once at the end.
 * No memo opcodes are written (every object is written out in full; pickle files stay valid).
 */
#ifndef FS_PICKLE_H
#define FS_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pickle_buf {
	uint8_t *data;
	size_t len, cap;
	int err; /* 0 or the first error (-ENOMEM) */
} pickle_buf;

/* Opcodes used directly by callers (the others are behind the helpers below). */
#define PICKLE_MARK ((uint8_t)'(')
#define PICKLE_EMPTY_TUPLE ((uint8_t)')')
#define PICKLE_TUPLE ((uint8_t)'t')
#define PICKLE_TUPLE1 ((uint8_t)0x85)
#define PICKLE_TUPLE2 ((uint8_t)0x86)
#define PICKLE_TUPLE3 ((uint8_t)0x87)
#define PICKLE_REDUCE ((uint8_t)'R')
#define PICKLE_BINPERSID ((uint8_t)'Q')
#define PICKLE_EMPTY_DICT ((uint8_t)'}')
#define PICKLE_SETITEMS ((uint8_t)'u')
#define PICKLE_SETITEM ((uint8_t)'s')
#define PICKLE_BUILD ((uint8_t)'b')
#define PICKLE_EMPTY_LIST ((uint8_t)']')
#define PICKLE_APPENDS ((uint8_t)'e')
#define PICKLE_STOP ((uint8_t)'.')

/** Initialize an empty buffer (no allocation). */
void pickle_init(pickle_buf *p);
/** Release the buffer; accepts NULL. */
void pickle_free(pickle_buf *p);

/** Append one opcode byte. */
void pickle_op(pickle_buf *p, uint8_t op);
/** PROTO 2. */
void pickle_proto(pickle_buf *p);
/** GLOBAL "module\nname\n". */
void pickle_global(pickle_buf *p, const char *module, const char *name);
/** BINUNICODE of @p len bytes (the caller guarantees valid UTF-8). */
void pickle_str_n(pickle_buf *p, const char *s, size_t len);
/** BINUNICODE of a NUL-terminated string. */
void pickle_str(pickle_buf *p, const char *s);
/** Smallest int opcode: K (u8), M (u16), J (i32), else LONG1. */
void pickle_int(pickle_buf *p, int64_t v);
/** Unsigned variant (LONG1 above INT64_MAX). */
void pickle_uint(pickle_buf *p, uint64_t v);
/** LONG1 (LONG4 past 255 bytes) of the integer of any size written in decimal in @p digits
 *  (@p len bytes: an optional '-', then at least one digit), as Python's int(). */
void pickle_int_text(pickle_buf *p, const char *digits, size_t len);
/** BINFLOAT (8 bytes big-endian IEEE double). */
void pickle_float(pickle_buf *p, double v);
/** NEWTRUE / NEWFALSE. */
void pickle_bool(pickle_buf *p, bool v);
/** NONE. */
void pickle_none(pickle_buf *p);
/** A tuple of unsigned ints: EMPTY_TUPLE, TUPLE1..3 or MARK ... TUPLE. */
void pickle_uint_tuple(pickle_buf *p, const uint64_t *v, size_t n);

/** STOP, then return 0 or the sticky error (-ENOMEM). */
int pickle_finish(pickle_buf *p);

#endif
