/* tests/fuzz/make_seeds.c - writes the committed seed corpora of tests/fuzz/corpus/
 *
 * usage: make_seeds CORPUS_DIR   (built and run by hand: see tests/fuzz/run.sh --seeds)
 * Valid records from the encoders (each prefixed with its harness selector byte), small IDX
 * and CSV files, tensor names and view paths. Not a harness: libFuzzer never links it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/records.h"

static const char *root;

static void put(const char *target, const char *name, uint8_t sel, const void *data, size_t len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", root, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(&sel, 1, 1, f) != 1 || (len && fwrite(data, 1, len, f) != len) || fclose(f)) {
		fprintf(stderr, "make_seeds: cannot write %s\n", path);
		exit(1);
	}
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
		return 2;
	}
	root = argv[1];
	mkdir(root, 0755);
	/* ---- records */
	ckpt_run_meta meta = {.model = "mlp", .layers = "784,256,10", .optimizer = "adam",
	                      .hyperparams = "{\"lr\":0.001}", .dataset = "fashion-mnist",
	                      .seed = 3, .monitor = "val_acc", .monitor_mode = CKPT_MODE_MAX};
	uint8_t *buf;
	size_t len;
	if (store_run_encode(&buf, &len, &meta))
		return 1;
	put("fuzz_records", "run", 0, buf, len);
	free(buf);
	uint8_t set[STORE_SETTINGS_LEN];
	store_settings_encode(set, &(store_settings_rec){.chunk_size = 64, .keep_last = 3, .keep_top = 1});
	put("fuzz_records", "settings", 1, set, sizeof(set));
	uint8_t idx[STORE_INDEX_LEN];
	store_index_encode(idx, &(store_index_rec){.has_monitor = true, .monitor = 0.25, .ntensors = 2,
	                                           .step = 100, .time_ns = 1, .nbytes = 48});
	put("fuzz_records", "index", 2, idx, sizeof(idx));
	uint8_t best[STORE_BEST_LEN];
	store_best_encode(best, 4);
	put("fuzz_records", "best", 5, best, sizeof(best));
	uint32_t crcs[3] = {1, 2, 3};
	uint8_t blob[STORE_BLOB_HEADER_LEN + 12 + STORE_REC_CRC_LEN];
	store_blob_encode(blob, &(store_blob_rec){.refcount = 2, .nbytes = 150, .chunk_size = 64, .nchunks = 3}, crcs);
	put("fuzz_records", "blob", 3, blob, sizeof(blob));
	store_metric metrics[2] = {{"val_acc", 0.9}, {"val_loss", 0.3}};
	store_extra extras[1] = {{"optimizer.param_groups", "[{\"lr\":0.1}]", 12}};
	ckpt_tensor_info t[2];
	memset(t, 0, sizeof(t));
	t[0] = (ckpt_tensor_info){.name = "fc1.weight", .group = CKPT_GROUP_MODEL, .dtype = CKPT_DTYPE_FLOAT32,
	                          .ndim = 2, .shape = {2, 3}, .device = "cuda:0", .nbytes = 24,
	                          .crc32 = 7, .nchunks = 1, .chunk_size = 64};
	t[1] = (ckpt_tensor_info){.name = "fc1.weight.step", .group = CKPT_GROUP_OPTIMIZER,
	                          .dtype = CKPT_DTYPE_FLOAT32, .ndim = 0, .device = "cpu", .nbytes = 4,
	                          .crc32 = 9, .nchunks = 1, .chunk_size = 64};
	store_ckpt_rec rec = {.epoch = 4, .step = 400, .time_ns = 123456789, .nmetrics = 2, .nextras = 1,
	                      .ntensors = 2, .metrics = metrics, .extras = extras, .tensors = t, .nbytes = 28};
	if (store_ckpt_encode(&buf, &len, &rec))
		return 1;
	put("fuzz_records", "ckpt", 4, buf, len);
	free(buf);

	/* ---- IDX: 2 images of 2x3, 2 labels (selector byte, then class-count byte) */
	uint8_t img[16 + 12] = {0, 0, 8, 3};
	be32(img + 4, 2), be32(img + 8, 2), be32(img + 12, 3);
	for (int i = 0; i < 12; i++)
		img[16 + i] = (uint8_t)(i * 20);
	uint8_t img_file[1 + sizeof(img)];
	img_file[0] = 10; /* class-count byte, unused for images */
	memcpy(img_file + 1, img, sizeof(img));
	put("fuzz_idx", "images", 0, img_file, sizeof(img_file));
	uint8_t lab[1 + 8 + 2] = {10, 0, 0, 8, 1};
	be32(lab + 5, 2);
	lab[9] = 3, lab[10] = 9;
	put("fuzz_idx", "labels", 1, lab, sizeof(lab));

	/* ---- CSV: features 3 (selector 2 -> 1 + 2 % 16), classes 4 */
	const char csv[] = "\x03label,p1,p2,p3\n1,0,128,255\n3,10,20,30\n\n0,1,2,3\r\n";
	put("fuzz_csv", "header", 2, csv, sizeof(csv) - 1);
	const char csv2[] = "\x03" "2,0,0,0\n1,255,255,255";
	put("fuzz_csv", "plain", 2, csv2, sizeof(csv2) - 1);

	/* ---- names */
	const char *names[] = {"fc1.weight", "../../etc/passwd", "a/b%c", ".hidden", "ctl\001\177",
	                       "\xc3\xa9t\xc3\xa9", "epoch-0001", "x%~0123456789abcdef"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char n[16];
		snprintf(n, sizeof(n), "name%zu", i);
		put("fuzz_view_name", n, (uint8_t)(i % 2), names[i], strlen(names[i]));
	}
	/* ---- view paths: flags, inode, offset, path */
	const char *paths[] = {"best/model/fc1.weight.npy", "latest/model.pt", "epoch-0001/../run.json",
	                       "/epoch-0002/optimizer/param_groups.json", "history.csv",
	                       "epoch-0002/model/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd.npy", "best", "./latest/",
	                       "epoch-1/metrics.json", "epoch-00001/model.safetensors"};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		uint8_t in[16 + 128];
		uint64_t ino = i % 2 ? ((uint64_t)3 << 24) | 16 : 1, off = i * 7;
		memcpy(in, &ino, 8);
		memcpy(in + 8, &off, 8);
		size_t pl = strlen(paths[i]);
		memcpy(in + 16, paths[i], pl);
		char n[16];
		snprintf(n, sizeof(n), "path%zu", i);
		put("fuzz_view_path", n, 7, in, 16 + pl);
	}
	return 0;
}
