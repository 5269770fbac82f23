/* tests/tools/bench_store.c - timing of libckpt for tests/bench/bench_store.sh
 *
 *   bench_store commit DIR MIB NTENSORS RUN   commit one checkpoint of NTENSORS float32 tensors
 *                                           (MIB in all, fresh bytes per RUN) into the store at
 *                                           DIR (created on first use, synced commits, keep
 *                                           last 1); prints "commit_s <seconds> bytes <n>"
 *   bench_store read DIR                    read every tensor of the latest checkpoint out of
 *                                           a snapshot into a buffer (twice), and memcpy the
 *                                           same bytes; prints "read_s <s> read2_s <s>
 *                                           memcpy_s <s> bytes <n>"
 * The timed part of commit is begin + put_tensor (CRC-32 and hashing) + commit (with fsync).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ckpt/store.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *what)
{
	fprintf(stderr, "bench_store: %s: %s\n", what, ckpt_last_error());
	return 1;
}

static int commit(const char *dir, uint64_t mib, uint32_t ntensors, uint64_t run)
{
	ckpt_store *s;
	struct stat st;
	if (stat(dir, &st) == 0) {
		if (ckpt_store_open(&s, dir, 0))
			return fail("open");
	} else {
		ckpt_run_meta meta = {.model = "bench", .monitor = "val_loss"};
		ckpt_store_options opts = {.keep_last = 1, .initial_map_size = 64 << 20};
		if (ckpt_store_create(&s, dir, &meta, &opts))
			return fail("create");
	}
	uint64_t total = mib << 20, per = total / ntensors;
	per -= per % 4;
	uint8_t *data = malloc(total);
	if (!data) {
		fprintf(stderr, "bench_store: out of memory for %llu MiB\n",
		        (unsigned long long)mib);
		return 1;
	}
	/* fresh, incompressible bytes every run so that nothing deduplicates */
	uint64_t x = 0x9E3779B97F4A7C15ull * (run + 1);
	for (uint64_t i = 0; i + 8 <= total; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(data + i, &x, 8);
	}
	double t0 = now();
	ckpt_writer *w;
	if (ckpt_writer_begin(&w, s, run))
		return fail("begin");
	for (uint32_t i = 0; i < ntensors; i++) {
		char name[32];
		uint64_t shape[1] = {per / 4};
		snprintf(name, sizeof(name), "layer%u.weight", i);
		if (ckpt_writer_put_tensor(w, name, CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape,
		                           NULL, data + i * per, per)) {
			ckpt_writer_abort(w);
			return fail("put");
		}
	}
	if (ckpt_writer_set_metric(w, "val_loss", 1.0 / (double)(run + 1)))
		return fail("metric");
	if (ckpt_writer_commit(w))
		return fail("commit");
	double t1 = now();
	printf("commit_s %.6f bytes %llu\n", t1 - t0, (unsigned long long)(per * ntensors));
	free(data);
	ckpt_store_close(s);
	return 0;
}

static int read_back(const char *dir)
{
	ckpt_store *s;
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	uint64_t epoch;
	if (ckpt_store_open(&s, dir, CKPT_OPEN_READONLY))
		return fail("open");
	if (ckpt_snapshot_open(&snap, s) || ckpt_snapshot_latest(&epoch, snap) ||
	    ckpt_snapshot_checkpoint(&c, snap, epoch))
		return fail("snapshot");
	uint64_t total = ckpt_checkpoint_nbytes(c);
	uint8_t *buf = malloc(total), *src = malloc(total);
	if (!buf || !src)
		return fail("out of memory");
	double times[2];
	memset(buf, 0, total); /* fault the destination in: time only the reading */
	for (int pass = 0; pass < 2; pass++) {
		double t0 = now();
		uint64_t off = 0;
		for (size_t i = 0; i < ckpt_checkpoint_tensor_count(c); i++) {
			const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, i);
			if (ckpt_tensor_read(buf + off, snap, t, 0, t->nbytes))
				return fail("read");
			off += t->nbytes;
		}
		times[pass] = now() - t0;
	}
	memset(src, 1, total); /* fault the pages in before timing */
	memset(buf, 2, total);
	double t0 = now();
	memcpy(buf, src, total);
	double tm = now() - t0;
	if (buf[total - 1] != 1)
		return fail("memcpy");
	printf("read_s %.6f read2_s %.6f memcpy_s %.6f bytes %llu\n", times[0], times[1], tm,
	       (unsigned long long)total);
	free(buf);
	free(src);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "commit") == 0)
		return commit(argv[2], strtoull(argv[3], NULL, 10),
		              (uint32_t)strtoul(argv[4], NULL, 10), strtoull(argv[5], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "read") == 0)
		return read_back(argv[2]);
	fprintf(stderr, "usage: bench_store commit DIR MIB NTENSORS RUN | read DIR\n");
	return 2;
}
