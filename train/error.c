/* train/error.c - the engine's per-thread error message
 *
 * One fixed buffer per thread: setting a message never allocates, so it works on ENOMEM paths.
 */
#include <stdarg.h>
#include <stdio.h>

#include "train/error.h"

/* room for a message naming a few PATH_MAX paths: never cut off before its reason */
static _Thread_local char train_error_message[16384];

int train_fail(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(train_error_message, sizeof(train_error_message), fmt, ap);
	va_end(ap);
	return rc;
}

const char *train_last_error(void)
{
	return train_error_message;
}

void train_clear_error(void)
{
	train_error_message[0] = '\0';
}
