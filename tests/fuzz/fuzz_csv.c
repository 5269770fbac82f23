/* tests/fuzz/fuzz_csv.c - libFuzzer harness for the engine's CSV loader (train/data.c)
 *
 * Byte 0 is the expected feature count (1..16), byte 1 the class count (1..16), the rest is the
 * file, written to an in-memory file (memfd). The loader must give rows of exactly that many
 * features in [0, 1] with labels below the class count, or fail with a message.
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
	uint32_t features = 1 + data[0] % 16, classes = 1 + data[1] % 16;
	int fd = memfd_create("csv", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data + 2, size - 2) != (ssize_t)(size - 2)) {
		close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	train_dataset d = {0};
	if (train_csv_load(&d, path, features, classes) == 0) {
		assert(d.features == features);
		for (uint32_t i = 0; i < d.count; i++)
			assert(d.y[i] >= 0 && (uint32_t)d.y[i] < classes);
		for (uint64_t i = 0; i < (uint64_t)d.count * features; i++)
			assert(d.x[i] >= 0.0f && d.x[i] <= 1.0f);
		train_dataset_free(&d);
	} else {
		assert(train_last_error()[0] != '\0');
	}
	close(fd);
	return 0;
}
