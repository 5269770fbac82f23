/* train/error.h - the engine's per-thread error message
 *
 * Functions of train/ return 0 or a negative errno-style code and leave one line of context
 * (what, where, why) here; ckpt-train prints it once as "ckpt-train: error: <message>".
 */
#ifndef TRAIN_ERROR_H
#define TRAIN_ERROR_H

/** Set the message of this thread (printf-style). Always returns @p rc for `return
 * train_fail(...)`. */
int train_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** The last message set on this thread ("" if none). Valid until the next train_fail(). */
const char *train_last_error(void);

/** Forget the message of this thread. */
void train_clear_error(void);

#endif
