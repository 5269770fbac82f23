/* train/error.c - the engine's per-thread error message
 *
 * One fixed buffer per thread: setting a message of up to 16 KiB never allocates, so it works
 * on ENOMEM paths. A longer one (paths of tens of KB) goes to the heap, so that nothing cuts it
 * off before its reason; without memory for it, its first 16 KiB are kept.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/error.h"

#define TRAIN_ERROR_FIXED 16384

static _Thread_local char train_error_message[TRAIN_ERROR_FIXED];
static _Thread_local char *train_error_long; /* a message longer than the fixed buffer */

int train_fail(int rc, const char *fmt, ...)
{
	/* formatted apart first: an argument may be the message being replaced */
	char line[TRAIN_ERROR_FIXED];
	va_list ap, again;
	va_start(ap, fmt);
	va_copy(again, ap);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char *longer = NULL;
	if (n >= (int)sizeof(line) && (longer = malloc((size_t)n + 1)))
		vsnprintf(longer, (size_t)n + 1, fmt, again);
	va_end(again);
	free(train_error_long);
	train_error_long = longer;
	if (!longer)
		memcpy(train_error_message, line, sizeof(line));
	return rc;
}

const char *train_last_error(void)
{
	return train_error_long ? train_error_long : train_error_message;
}

void train_clear_error(void)
{
	free(train_error_long);
	train_error_long = NULL;
	train_error_message[0] = '\0';
}
