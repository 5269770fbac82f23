/* tests/fuzz/fuzz_view_name.c - libFuzzer harness for the view's name escaping (fs/view_name.c)
 *
 * Any tensor name (the input, NUL-terminated; byte 0 picks the suffix length) must escape to a
 * single safe path component: no '/', no NUL, not "." or "..", no leading '.', no control byte,
 * at most 255 bytes with the suffix; unescaping gives the name back unless it was shortened
 * with a hash ("%~"). Any stem must unescape without reading past its end. Epoch directory
 * names parse only in their canonical form.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/view_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	size_t suffix = data[0] % 2 ? 4 : 0; /* ".npy" or none */
	char *name = malloc(size);
	if (!name)
		return 0;
	memcpy(name, data + 1, size - 1);
	name[size - 1] = '\0';

	char stem[256];
	int rc = ckpt_view_escape_name(stem, sizeof(stem), name, suffix);
	if (name[0] == '\0') {
		assert(rc == -EINVAL);
	} else {
		assert(rc == 0);
		size_t n = strlen(stem);
		assert(n > 0 && n + suffix <= 255);
		assert(stem[0] != '.');
		assert(strcmp(stem, ".") != 0 && strcmp(stem, "..") != 0);
		for (size_t i = 0; i < n; i++)
			assert(stem[i] != '/' && (unsigned char)stem[i] >= 0x20 && stem[i] != 0x7f);
		char back[4096];
		if (!strstr(stem, "%~")) {
			assert(ckpt_view_unescape_name(back, sizeof(back), stem) == 0);
			assert(strcmp(back, name) == 0);
		}
	}
	/* the raw input as a stem and as an epoch directory name */
	char back[4096];
	rc = ckpt_view_unescape_name(back, sizeof(back), name);
	assert(rc == 0 || rc == -EINVAL || rc == -ERANGE);
	if (rc == 0)
		assert(strlen(back) > 0);
	uint64_t epoch;
	if (view_parse_epoch_name(&epoch, name) == 0) {
		char canonical[32];
		view_epoch_name(canonical, sizeof(canonical), epoch);
		assert(strcmp(canonical, name) == 0);
	}
	free(name);
	return 0;
}
