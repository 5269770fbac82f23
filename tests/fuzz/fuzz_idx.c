/* tests/fuzz/fuzz_idx.c - libFuzzer harness for the engine's IDX loaders (train/data.c)
 *
 * The input is written to an in-memory file (memfd) and loaded as an image file (first byte
 * even) or a label file (odd; the second byte is the class count). A loader must succeed with
 * a consistent data set or fail with a message, never read out of bounds or leak.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "train/data.h"
#include "train/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int fd = memfd_create("idx", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data + 2, size - 2) != (ssize_t)(size - 2)) {
		close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (data[0] % 2 == 0) {
		train_dataset d = {0};
		if (train_idx_load_images(&d, path) == 0) {
			assert(d.features > 0 || d.count == 0);
			for (uint64_t i = 0; i < (uint64_t)d.count * d.features; i++)
				assert(d.x[i] >= 0.0f && d.x[i] <= 1.0f);
			train_dataset_free(&d);
		} else {
			assert(train_last_error()[0] != '\0');
		}
	} else {
		int32_t *labels = NULL;
		uint32_t count = 0, classes = 1 + data[1] % 16;
		if (train_idx_load_labels(&labels, &count, path, classes) == 0) {
			for (uint32_t i = 0; i < count; i++)
				assert(labels[i] >= 0 && (uint32_t)labels[i] < classes);
			free(labels);
		} else {
			assert(train_last_error()[0] != '\0');
		}
	}
	close(fd);
	return 0;
}
