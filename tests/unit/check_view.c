/* tests/unit/check_view.c - the view: tree, names, attributes, text files, .npy, range reads
 *
 * Each test writes a small store through the public API into a fresh mkdtemp directory: three
 * epochs (best val_loss at epoch 2), float32/bfloat16/scalar/empty model tensors, optimizer
 * buffers, param groups, hostile tensor names, and a 16-byte chunk size so every tensor window
 * crosses chunk boundaries. Everything is checked through include/ckpt/view.h, without FUSE.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/store.h"
#include "ckpt/view.h"
#include "fs/fuse_ops.h"
#include "test_dir.h"

#define EPOCHS 3
#define PATTERN_BYTES 4096

typedef struct vfixture {
	char dir[256];
	ckpt_store *store;
	ckpt_view *view;
	char log[2048];
	int log_lines;
} vfixture;

static const char *const hostile[] = {
    "../escape", "a/b", ".hidden", "ctl\x01name", "dot..", "..", ".", "pct%41", "x%~y",
};

static char long_name[301];

static void capture_log(void *ctx, const char *line)
{
	vfixture *f = ctx;
	f->log_lines++;
	snprintf(f->log, sizeof(f->log), "%s", line);
}

static float weight_value(uint64_t epoch, size_t i)
{
	return (float)epoch * 100.0f + (float)i * 0.5f;
}

/* bytes that appear nowhere else in the store (for the corruption test) */
static void fill_pattern(uint8_t *p)
{
	for (size_t i = 0; i < PATTERN_BYTES; i++)
		p[i] = (uint8_t)((i * 131 + 7) ^ (i >> 8) ^ 0x5a);
}

static void write_store(vfixture *f, uint64_t chunk_size)
{
	ckpt_run_meta meta = {
	    .model = "mlp",
	    .layers = "3,4",
	    .optimizer = "sgd",
	    .hyperparams = "{\"lr\": 0.1, \"momentum\": 0.9}",
	    .dataset = "fixture",
	    .seed = 7,
	    .monitor = "val_loss",
	    .monitor_mode = CKPT_MODE_MIN,
	};
	ckpt_store_options opts = {.chunk_size = chunk_size, .no_sync = true};
	ck_assert_int_eq(ckpt_store_create(&f->store, f->dir, &meta, &opts), 0);
	static const double val_loss[EPOCHS] = {0.5, 0.25, 0.375};
	for (uint64_t e = 1; e <= EPOCHS; e++) {
		ckpt_writer *w;
		ck_assert_int_eq(ckpt_writer_begin(&w, f->store, e), 0);
		float weight[12], bias[4], momentum[12], step = (float)e;
		uint16_t bf[5] = {0x3f80, 0xbf80, 0x4000, 0x0000, 0x7f80}; /* 1, -1, 2, 0, inf */
		float scalar = 3.25f;
		for (size_t i = 0; i < 12; i++) {
			weight[i] = weight_value(e, i);
			momentum[i] = -weight[i];
		}
		for (size_t i = 0; i < 4; i++)
			bias[i] = (float)i;
		uint64_t shape_w[2] = {4, 3}, shape_b[1] = {4}, shape_bf[1] = {5},
		         shape_empty[2] = {0, 4};
		uint64_t shape_p[1] = {PATTERN_BYTES};
		static uint8_t patt[PATTERN_BYTES];
		fill_pattern(patt);
		ck_assert_int_eq(ckpt_writer_put_tensor(w, "fc1.weight", CKPT_GROUP_MODEL,
		                                        CKPT_DTYPE_FLOAT32, 2, shape_w, "cuda:0",
		                                        weight, sizeof(weight)),
		                 0);
		ck_assert_int_eq(ckpt_writer_put_tensor(w, "fc1.bias", CKPT_GROUP_MODEL,
		                                        CKPT_DTYPE_FLOAT32, 1, shape_b, "cuda:0",
		                                        bias, sizeof(bias)),
		                 0);
		ck_assert_int_eq(ckpt_writer_put_tensor(w, "bf.weight", CKPT_GROUP_MODEL,
		                                        CKPT_DTYPE_BFLOAT16, 1, shape_bf, NULL, bf,
		                                        sizeof(bf)),
		                 0);
		ck_assert_int_eq(ckpt_writer_put_tensor(w, "scalar", CKPT_GROUP_MODEL,
		                                        CKPT_DTYPE_FLOAT32, 0, NULL, NULL, &scalar,
		                                        sizeof(scalar)),
		                 0);
		ck_assert_int_eq(ckpt_writer_put_tensor(w, "empty", CKPT_GROUP_MODEL,
		                                        CKPT_DTYPE_FLOAT32, 2, shape_empty, NULL,
		                                        NULL, 0),
		                 0);
		if (e == 1)
			ck_assert_int_eq(ckpt_writer_put_tensor(w, "pattern", CKPT_GROUP_MODEL,
			                                        CKPT_DTYPE_UINT8, 1, shape_p, NULL,
			                                        patt, sizeof(patt)),
			                 0);
		for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
			ck_assert_int_eq(ckpt_writer_put_tensor(w, hostile[i], CKPT_GROUP_MODEL,
			                                        CKPT_DTYPE_FLOAT32, 1, shape_b,
			                                        NULL, bias, sizeof(bias)),
			                 0);
		ck_assert_int_eq(ckpt_writer_put_tensor(w, long_name, CKPT_GROUP_MODEL,
		                                        CKPT_DTYPE_FLOAT32, 1, shape_b, NULL, bias,
		                                        sizeof(bias)),
		                 0);
		ck_assert_int_eq(ckpt_writer_put_tensor(w, "fc1.weight.momentum_buffer",
		                                        CKPT_GROUP_OPTIMIZER, CKPT_DTYPE_FLOAT32, 2,
		                                        shape_w, "cuda:0", momentum,
		                                        sizeof(momentum)),
		                 0);
		ck_assert_int_eq(ckpt_writer_put_tensor(w, "fc1.weight.step", CKPT_GROUP_OPTIMIZER,
		                                        CKPT_DTYPE_FLOAT32, 0, NULL, "cuda:0",
		                                        &step, sizeof(step)),
		                 0);
		ckpt_writer_set_step(w, e * 10);
		ck_assert_int_eq(ckpt_writer_set_metric(w, "val_loss", val_loss[e - 1]), 0);
		ck_assert_int_eq(ckpt_writer_set_metric(w, "train_loss", 0.1 * (double)e), 0);
		if (e == 3)
			ck_assert_int_eq(ckpt_writer_set_metric(w, "val_acc", 0.875), 0);
		const char *groups = "[{\"lr\":0.1,\"momentum\":0.9,\"params\":[0,1]}]";
		ck_assert_int_eq(
		    ckpt_writer_set_extra(w, "optimizer.param_groups", groups, strlen(groups)), 0);
		ck_assert_int_eq(ckpt_writer_commit(w), 0);
	}
}

static void open_view(vfixture *f)
{
	ckpt_view_options vo = {.log = capture_log, .log_ctx = f};
	ck_assert_int_eq(ckpt_view_new(&f->view, f->store, &vo), 0);
}

static void setup_fixture(vfixture *f, uint64_t chunk_size)
{
	memset(f, 0, sizeof(*f));
	memset(long_name, 'L', 300);
	long_name[300] = '\0';
	test_dir_make(f->dir, sizeof(f->dir), "check_view");
	write_store(f, chunk_size);
	open_view(f);
}

/* A fixture whose store is closed again, so data.mdb can be changed behind it. */
static void setup_closed_fixture(vfixture *f, uint64_t chunk_size)
{
	setup_fixture(f, chunk_size);
	ckpt_view_free(f->view);
	f->view = NULL;
	ckpt_store_close(f->store);
	f->store = NULL;
}

static void teardown_fixture(vfixture *f)
{
	ckpt_view_free(f->view);
	ckpt_store_close(f->store);
	test_dir_remove(f->dir);
}

/* Whole file by path, malloc'd; size in *len. */
static uint8_t *read_path(vfixture *f, const char *path, size_t *len)
{
	ckpt_view_attr a;
	ck_assert_msg(ckpt_view_resolve(&a, f->view, path, true) == 0, "resolve %s: %s", path,
	              ckpt_view_last_error());
	ckpt_view_file *file;
	ckpt_view_attr oa;
	ck_assert_msg(ckpt_view_open(&file, &oa, f->view, a.ino) == 0, "open %s", path);
	ck_assert_uint_eq(oa.size, a.size);
	ck_assert_uint_eq(ckpt_view_file_size(file), a.size);
	uint8_t *buf = malloc(a.size + 1);
	ck_assert_ptr_nonnull(buf);
	size_t got;
	ck_assert_int_eq(ckpt_view_file_read(file, 0, buf, a.size + 1, &got), 0);
	ck_assert_uint_eq(got, a.size);
	buf[got] = 0;
	ckpt_view_file_close(file);
	*len = got;
	return buf;
}

static vfixture fx;

static void setup(void)
{
	setup_fixture(&fx, 16);
}

static void teardown(void)
{
	teardown_fixture(&fx);
}

static bool listing_has(const ckpt_view_listing *l, const char *name, ckpt_view_attr *out)
{
	for (size_t i = 0; i < l->count; i++) {
		if (strcmp(l->entries[i].name, name) == 0) {
			if (out)
				*out = l->entries[i].attr;
			return true;
		}
	}
	return false;
}

START_TEST(test_root_lists_run_files_links_and_one_directory_per_epoch)
{
	ckpt_view_listing l;
	ck_assert_int_eq(ckpt_view_list(&l, fx.view, CKPT_VIEW_ROOT_INO), 0);
	ck_assert_uint_eq(l.count, 4 + EPOCHS);
	const char *names[] = {"run.json",   "history.csv", "best",      "latest",
	                       "epoch-0001", "epoch-0002",  "epoch-0003"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ck_assert_msg(listing_has(&l, names[i], NULL), "missing %s", names[i]);
	ck_assert_uint_eq(l.self.kind, CKPT_VIEW_DIR);
	ck_assert_uint_eq(l.self.nlink, 2 + EPOCHS);
	ckpt_view_listing_free(&l);
	char target[64];
	ck_assert_int_eq(ckpt_view_readlink(target, sizeof(target), fx.view, 4), 0);
	ck_assert_str_eq(target, "epoch-0002");
	ck_assert_int_eq(ckpt_view_readlink(target, sizeof(target), fx.view, 5), 0);
	ck_assert_str_eq(target, "epoch-0003");
	ck_assert_int_eq(ckpt_view_readlink(target, 4, fx.view, 4), -ERANGE);
	ck_assert_int_eq(ckpt_view_readlink(target, sizeof(target), fx.view, 2), -EINVAL);
}
END_TEST

START_TEST(test_every_node_kind_has_exact_attributes)
{
	ckpt_view_attr a;
	ck_assert_int_eq(ckpt_view_getattr(&a, fx.view, CKPT_VIEW_ROOT_INO), 0);
	ck_assert_uint_eq(a.kind, CKPT_VIEW_DIR);
	ck_assert_uint_eq(a.mode, 0555);
	ck_assert(!a.immutable);
	int64_t latest_time = a.mtime_ns;

	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "best", false), 0);
	ck_assert_uint_eq(a.kind, CKPT_VIEW_SYMLINK);
	ck_assert_uint_eq(a.size, strlen("epoch-0002"));
	ck_assert_int_eq(a.mtime_ns, latest_time);

	ckpt_view_attr e2, e3;
	ck_assert_int_eq(ckpt_view_resolve(&e2, fx.view, "best", true), 0);
	ck_assert_uint_eq(e2.kind, CKPT_VIEW_DIR);
	ck_assert_uint_eq(e2.nlink, 4);
	ck_assert_int_eq(ckpt_view_resolve(&e3, fx.view, "/epoch-0003/", false), 0);
	ck_assert_int_eq(e3.mtime_ns, latest_time);
	ck_assert(e2.mtime_ns <= e3.mtime_ns);
	ck_assert(e2.ino != e3.ino);

	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "best/model", true), 0);
	ck_assert_uint_eq(a.kind, CKPT_VIEW_DIR);
	ck_assert_uint_eq(a.mode, 0555);
	ck_assert_int_eq(a.mtime_ns, e2.mtime_ns);

	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "epoch-0002/model/fc1.weight.npy", true),
	                 0);
	ck_assert_uint_eq(a.kind, CKPT_VIEW_FILE);
	ck_assert_uint_eq(a.mode, 0444);
	ck_assert_uint_eq(a.size, 128 + 48);
	ck_assert(a.immutable);
	ck_assert_int_eq(a.mtime_ns, e2.mtime_ns);

	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "epoch-0002/metrics.json", true), 0);
	ck_assert(!a.immutable); /* is_best moves */
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "run.json", true), 0);
	ck_assert(a.immutable);

	/* the same path resolves to the same inode in a second view of the same store */
	ckpt_view *other;
	ck_assert_int_eq(ckpt_view_new(&other, fx.store, NULL), 0);
	ckpt_view_attr b;
	ck_assert_int_eq(
	    ckpt_view_resolve(&a, fx.view, "epoch-0001/optimizer/fc1.weight.step.npy", true), 0);
	ck_assert_int_eq(
	    ckpt_view_resolve(&b, other, "epoch-0001/optimizer/fc1.weight.step.npy", true), 0);
	ck_assert_uint_eq(a.ino, b.ino);
	ck_assert_int_eq(ckpt_view_getattr(&b, other, a.ino), 0);
	ck_assert_uint_eq(b.size, a.size);
	ckpt_view_free(other);
}
END_TEST

START_TEST(test_missing_and_noncanonical_names_are_enoent)
{
	ckpt_view_attr a;
	const char *missing[] = {
	    "nope",
	    "epoch-1",
	    "epoch-00001",
	    "epoch-0009",
	    "epoch-0001/nope",
	    "epoch-0001/model/fc1.weight",
	    "epoch-0001/model/%66c1.weight.npy",
	    "epoch-0001/model/nope.npy",
	    "epoch-0001/optimizer/fc1.bias.npy",
	    "epoch-0001/model/fc1.weight.momentum_buffer.npy",
	    "../etc",
	    "epoch-0001/..",
	};
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
		ck_assert_msg(ckpt_view_resolve(&a, fx.view, missing[i], true) == -ENOENT, "%s",
		              missing[i]);
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "run.json/x", true), -ENOTDIR);
	/* a trailing slash after a file is ENOTDIR, as `cat mnt/run.json/` says */
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "run.json/", true), -ENOTDIR);
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "best/model/fc1.weight.npy//", false),
	                 -ENOTDIR);
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "best/", false), 0);
	ck_assert_int_eq(a.kind, CKPT_VIEW_DIR);
	ck_assert_int_eq(ckpt_view_lookup(&a, fx.view, 2, "x"), -ENOTDIR);
	ck_assert_int_eq(ckpt_view_getattr(&a, fx.view, 999), -ENOENT);
	ck_assert_int_eq(ckpt_view_getattr(&a, fx.view, (UINT64_C(100) << 24)), -ENOENT);
	ckpt_view_file *file;
	ck_assert_int_eq(ckpt_view_open(&file, NULL, fx.view, CKPT_VIEW_ROOT_INO), -EISDIR);
}
END_TEST

START_TEST(test_hostile_names_stay_single_safe_components_and_decode_back)
{
	ckpt_view_attr dir;
	ck_assert_int_eq(ckpt_view_resolve(&dir, fx.view, "epoch-0001/model", true), 0);
	ckpt_view_listing l;
	ck_assert_int_eq(ckpt_view_list(&l, fx.view, dir.ino), 0);
	size_t found = 0;
	for (size_t i = 0; i < l.count; i++) {
		const char *n = l.entries[i].name;
		ck_assert_msg(!strchr(n, '/') && n[0] != '.' && strlen(n) <= 255, "unsafe %s", n);
		for (const char *p = n; *p; p++)
			ck_assert((unsigned char)*p >= 0x20 && *p != 0x7f);
		ck_assert_int_eq(l.entries[i].attr_rc, 0);
		/* every listed name looks up to the same inode */
		ckpt_view_attr a;
		ck_assert_int_eq(ckpt_view_lookup(&a, fx.view, dir.ino, n), 0);
		ck_assert_uint_eq(a.ino, l.entries[i].attr.ino);
		char stem[256], back[1100];
		size_t stem_len = strlen(n) - 4;
		ck_assert_uint_lt(stem_len, sizeof(stem));
		memcpy(stem, n, stem_len);
		stem[stem_len] = '\0';
		if (strstr(stem, "%~")) {
			ck_assert_uint_eq(strlen(n), 255);
			ck_assert_int_eq(strncmp(n, long_name, 100), 0);
			found++;
			continue;
		}
		ck_assert_int_eq(ckpt_view_unescape_name(back, sizeof(back), stem), 0);
		for (size_t k = 0; k < sizeof(hostile) / sizeof(hostile[0]); k++)
			if (strcmp(back, hostile[k]) == 0)
				found++;
	}
	ck_assert_uint_eq(found, sizeof(hostile) / sizeof(hostile[0]) + 1);
	ck_assert(listing_has(&l, "%2E.%2Fescape.npy", NULL));
	ck_assert(listing_has(&l, "a%2Fb.npy", NULL));
	ck_assert(listing_has(&l, "%2Ehidden.npy", NULL));
	ck_assert(listing_has(&l, "ctl%01name.npy", NULL));
	ck_assert(listing_has(&l, "dot...npy", NULL));
	ck_assert(listing_has(&l, "%2E..npy", NULL));
	ck_assert(listing_has(&l, "pct%2541.npy", NULL));
	ckpt_view_listing_free(&l);

	/* escaping round trips and refuses malformed input */
	char out[256], back[64];
	ck_assert_int_eq(ckpt_view_escape_name(out, sizeof(out), "a%b/.c", 0), 0);
	ck_assert_str_eq(out, "a%25b%2F.c");
	ck_assert_int_eq(ckpt_view_unescape_name(back, sizeof(back), out), 0);
	ck_assert_str_eq(back, "a%b/.c");
	ck_assert_int_eq(ckpt_view_unescape_name(back, sizeof(back), "a%2"), -EINVAL);
	ck_assert_int_eq(ckpt_view_unescape_name(back, sizeof(back), "a%00"), -EINVAL);
	ck_assert_int_eq(ckpt_view_escape_name(out, sizeof(out), "", 0), -EINVAL);
	/* two long names sharing a prefix get different hashed names */
	char n1[400], n2[400], o1[256], o2[256];
	memset(n1, 'z', 399);
	n1[399] = 0;
	memcpy(n2, n1, 400);
	n2[398] = 'y';
	ck_assert_int_eq(ckpt_view_escape_name(o1, sizeof(o1), n1, 4), 0);
	ck_assert_int_eq(ckpt_view_escape_name(o2, sizeof(o2), n2, 4), 0);
	ck_assert_uint_eq(strlen(o1), 251);
	ck_assert_str_ne(o1, o2);
}
END_TEST

static const uint8_t *npy_data(const uint8_t *buf, size_t len, const char *expect_header)
{
	ck_assert(len >= 10);
	ck_assert_int_eq(memcmp(buf, "\x93NUMPY\x01\x00", 8), 0);
	size_t hlen = buf[8] | (size_t)buf[9] << 8;
	ck_assert_uint_eq((10 + hlen) % 64, 0);
	ck_assert_uint_eq(buf[10 + hlen - 1], '\n');
	ck_assert_msg(memmem(buf + 10, hlen, expect_header, strlen(expect_header)) != NULL,
	              "header %.*s lacks %s", (int)hlen, buf + 10, expect_header);
	return buf + 10 + hlen;
}

START_TEST(test_npy_files_have_numpy_headers_and_the_stored_bytes)
{
	size_t len;
	uint8_t *buf = read_path(&fx, "epoch-0003/model/fc1.weight.npy", &len);
	const uint8_t *data =
	    npy_data(buf, len, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }");
	ck_assert_uint_eq(len - (size_t)(data - buf), 48);
	for (size_t i = 0; i < 12; i++) {
		float v;
		memcpy(&v, data + 4 * i, 4);
		ck_assert_float_eq(v, weight_value(3, i));
	}
	free(buf);
	buf = read_path(&fx, "latest/model/fc1.bias.npy", &len);
	npy_data(buf, len, "'shape': (4,), }");
	free(buf);
	buf = read_path(&fx, "best/model/scalar.npy", &len);
	data = npy_data(buf, len, "'shape': (), }");
	ck_assert_uint_eq(len - (size_t)(data - buf), 4);
	free(buf);
	buf = read_path(&fx, "best/model/empty.npy", &len);
	data = npy_data(buf, len, "'shape': (0, 4), }");
	ck_assert_uint_eq(len, (size_t)(data - buf));
	free(buf);
	/* bfloat16 widens to float32: 00 00 b0 b1 */
	buf = read_path(&fx, "best/model/bf.weight.npy", &len);
	data = npy_data(buf, len, "'descr': '<f4'");
	ck_assert_uint_eq(len - (size_t)(data - buf), 20);
	const float expect[5] = {1.0f, -1.0f, 2.0f, 0.0f, __builtin_inff()};
	for (size_t i = 0; i < 5; i++) {
		float v;
		memcpy(&v, data + 4 * i, 4);
		ck_assert_float_eq(v, expect[i]);
	}
	free(buf);
	buf = read_path(&fx, "epoch-0001/optimizer/fc1.weight.step.npy", &len);
	data = npy_data(buf, len, "'shape': (), }");
	float step;
	memcpy(&step, data, 4);
	ck_assert_float_eq(step, 1.0f);
	free(buf);
}
END_TEST

START_TEST(test_metrics_run_and_param_groups_are_json_and_history_is_csv)
{
	size_t len;
	json_error_t err;
	uint8_t *buf = read_path(&fx, "epoch-0002/metrics.json", &len);
	json_t *j = json_loadb((const char *)buf, len, 0, &err);
	ck_assert_msg(j != NULL, "metrics.json: %s", err.text);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "epoch")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "step")), 20);
	ck_assert(json_is_true(json_object_get(j, "is_best")));
	ck_assert_str_eq(json_string_value(json_object_get(j, "device")), "cuda:0");
	ck_assert_uint_eq(json_array_size(json_object_get(j, "devices")), 2);
	json_t *m = json_object_get(j, "metrics");
	ck_assert_double_eq(json_real_value(json_object_get(m, "val_loss")), 0.25);
	ck_assert_double_eq(json_real_value(json_object_get(m, "train_loss")), 0.2);
	ck_assert_ptr_nonnull(strstr((const char *)buf, "\"train_loss\": 0.2,"));
	ck_assert_ptr_nonnull(strstr((const char *)buf, "\"time\": \"20"));
	json_decref(j);
	free(buf);

	buf = read_path(&fx, "epoch-0003/metrics.json", &len);
	j = json_loadb((const char *)buf, len, 0, &err);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_is_false(json_object_get(j, "is_best")));
	json_decref(j);
	free(buf);

	buf = read_path(&fx, "run.json", &len);
	j = json_loadb((const char *)buf, len, 0, &err);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "monitor")), "val_loss");
	ck_assert_str_eq(json_string_value(json_object_get(j, "monitor_mode")), "min");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "seed")), 7);
	ck_assert_str_eq(json_string_value(json_object_get(j, "npy_bfloat16")), "<f4");
	ck_assert_double_eq(
	    json_real_value(json_object_get(json_object_get(j, "hyperparams"), "lr")), 0.1);
	json_decref(j);
	free(buf);

	buf = read_path(&fx, "best/optimizer/param_groups.json", &len);
	j = json_loadb((const char *)buf, len, 0, &err);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_is_array(j));
	ck_assert_uint_eq(json_array_size(json_object_get(json_array_get(j, 0), "params")), 2);
	ck_assert_ptr_nonnull(strchr((const char *)buf, '\n')); /* pretty-printed */
	json_decref(j);
	free(buf);

	buf = read_path(&fx, "history.csv", &len);
	const char *csv = (const char *)buf;
	ck_assert_msg(strncmp(csv, "epoch,step,time,train_loss,val_acc,val_loss,best\n", 48) == 0,
	              "%s", csv);
	size_t lines = 0;
	for (const char *p = csv; *p; p++)
		lines += *p == '\n';
	ck_assert_uint_eq(lines, 1 + EPOCHS);
	ck_assert_ptr_nonnull(strstr(csv, "\n2,20,"));
	ck_assert_ptr_nonnull(strstr(csv, ",0.2,,0.25,1\n"));
	ck_assert_ptr_nonnull(strstr(csv, ",0.875,0.375,0\n"));
	free(buf);
}
END_TEST

/* Metrics named like history.csv's own columns get "metric:" before their header, so every
 * header is unique (pandas and csv.DictReader key columns by header). */
START_TEST(test_history_headers_stay_unique_when_metrics_are_named_like_its_columns)
{
	vfixture f;
	memset(&f, 0, sizeof(f));
	test_dir_make(f.dir, sizeof(f.dir), "check_view_hist");
	ckpt_run_meta meta = {.model = "mlp", .layers = "1", .optimizer = "sgd",
	                      .hyperparams = "{}", .dataset = "x", .monitor = "val_loss",
	                      .monitor_mode = CKPT_MODE_MIN};
	ckpt_store_options opts = {.no_sync = true};
	ck_assert_int_eq(ckpt_store_create(&f.store, f.dir, &meta, &opts), 0);
	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, f.store, 1), 0);
	float v = 1.0f;
	uint64_t shape[1] = {1};
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "w", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1,
	                                        shape, "cpu", &v, sizeof(v)),
	                 0);
	static const struct {
		const char *name;
		double value;
	} metrics[] = {{"epoch", 11}, {"best", 12}, {"metric:epoch", 13}, {"time", 14},
	               {"val_loss", 15}};
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++)
		ck_assert_int_eq(ckpt_writer_set_metric(w, metrics[i].name, metrics[i].value), 0);
	ck_assert_int_eq(ckpt_writer_commit(w), 0);
	open_view(&f);
	size_t len;
	char *csv = (char *)read_path(&f, "history.csv", &len);
	ck_assert_msg(strncmp(csv,
	                      "epoch,step,time,metric:best,metric:metric:epoch,metric:epoch,"
	                      "metric:time,val_loss,best\n1,0,",
	                      strlen("epoch,step,time,metric:best,metric:metric:epoch,"
	                             "metric:epoch,metric:time,val_loss,best\n1,0,")) == 0,
	              "%s", csv);
	ck_assert_ptr_nonnull(strstr(csv, ",12,11,13,14,15,1\n"));
	free(csv);
	teardown_fixture(&f);
}
END_TEST

/* Every file of the tree: random ranges equal the whole-file render, by copy and by iovecs. */
static void check_ranges(vfixture *f, uint64_t ino, const char *name)
{
	ckpt_view_file *file;
	ckpt_view_attr a;
	int rc = ckpt_view_open(&file, &a, f->view, ino);
	if (rc == -ENOSYS || rc == -EIO)
		return; /* whole-checkpoint renderers are tested in check_render */
	ck_assert_msg(rc == 0, "open %s: %d", name, rc);
	size_t size = (size_t)a.size;
	uint8_t *whole = malloc(size + 1), *part = malloc(size + 1), *scratch = malloc(size + 1);
	ck_assert(whole && part && scratch);
	size_t got;
	ck_assert_int_eq(ckpt_view_file_read(file, 0, whole, size, &got), 0);
	ck_assert_uint_eq(got, size);
	ck_assert_int_eq(ckpt_view_file_read(file, size, part, 10, &got), 0);
	ck_assert_uint_eq(got, 0);
	unsigned seed = (unsigned)ino;
	for (int k = 0; k < 200 && size > 0; k++) {
		size_t off = (size_t)rand_r(&seed) % size;
		size_t len = 1 + (size_t)rand_r(&seed) % (size - off + 8);
		ck_assert_int_eq(ckpt_view_file_read(file, off, part, len, &got), 0);
		size_t want = len < size - off ? len : size - off;
		ck_assert_msg(got == want && memcmp(part, whole + off, want) == 0,
		              "%s: range %zu+%zu", name, off, len);
		struct iovec iov[3];
		size_t count;
		ck_assert_int_eq(ckpt_view_file_iov(file, off, want, iov, 3, &count, scratch, &got),
		                 0);
		ck_assert(count <= 3 && got <= want && (got > 0 || want == 0));
		size_t pos = 0;
		for (size_t i = 0; i < count; i++) {
			ck_assert_int_eq(memcmp(iov[i].iov_base, whole + off + pos, iov[i].iov_len),
			                 0);
			pos += iov[i].iov_len;
		}
		ck_assert_uint_eq(pos, got);
	}
	free(whole);
	free(part);
	free(scratch);
	ckpt_view_file_close(file);
}

static size_t walk(vfixture *f, uint64_t ino, const char *name, int depth)
{
	ckpt_view_listing l;
	ck_assert_int_eq(ckpt_view_list(&l, f->view, ino), 0);
	size_t files = 0;
	for (size_t i = 0; i < l.count; i++) {
		const ckpt_view_dirent *d = &l.entries[i];
		if (d->attr.kind == CKPT_VIEW_DIR) {
			ck_assert(depth < 4);
			files += walk(f, d->attr.ino, d->name, depth + 1);
		} else if (d->attr.kind == CKPT_VIEW_FILE) {
			/* listing attributes agree with getattr */
			ckpt_view_attr a;
			int rc = ckpt_view_getattr(&a, f->view, d->attr.ino);
			ck_assert_int_eq(rc, d->attr_rc);
			if (!rc)
				ck_assert_uint_eq(a.size, d->attr.size);
			check_ranges(f, d->attr.ino, d->name);
			files++;
		}
	}
	ckpt_view_listing_free(&l);
	(void)name;
	return files;
}

START_TEST(test_random_range_reads_equal_whole_file_renders)
{
	size_t files = walk(&fx, CKPT_VIEW_ROOT_INO, "", 0);
	ck_assert_uint_ge(files, 2 + EPOCHS * 10);
}
END_TEST

START_TEST(test_open_file_keeps_its_snapshot_after_its_epoch_is_deleted)
{
	ckpt_view_attr a;
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "epoch-0001/model/fc1.weight.npy", true),
	                 0);
	ckpt_view_file *file;
	ck_assert_int_eq(ckpt_view_open(&file, NULL, fx.view, a.ino), 0);
	uint32_t deleted = 0;
	ck_assert_int_eq(ckpt_store_gc(fx.store, 1, 0, &deleted), 0);
	ck_assert_uint_eq(deleted, 1); /* epoch 1 goes; 2 (best) and 3 (latest) stay */
	ckpt_view_attr gone;
	ck_assert_int_eq(ckpt_view_resolve(&gone, fx.view, "epoch-0001", true), -ENOENT);
	ck_assert_int_eq(ckpt_view_getattr(&gone, fx.view, a.ino), -ENOENT);
	uint8_t buf[256];
	size_t got;
	ck_assert_int_eq(ckpt_view_file_read(file, 0, buf, sizeof(buf), &got), 0);
	ck_assert_uint_eq(got, a.size);
	float v;
	memcpy(&v, buf + 128 + 4 * 5, 4);
	ck_assert_float_eq(v, weight_value(1, 5));
	ckpt_view_file_close(file);
	ckpt_view_listing l;
	ck_assert_int_eq(ckpt_view_list(&l, fx.view, CKPT_VIEW_ROOT_INO), 0);
	ck_assert(!listing_has(&l, "epoch-0001", NULL));
	ck_assert_uint_eq(l.count, 4 + 2);
	ckpt_view_listing_free(&l);
}
END_TEST

START_TEST(test_corrupted_tensor_bytes_read_as_eio_with_one_log_line)
{
	/* flip one byte of the unique pattern tensor inside data.mdb */
	vfixture f;
	setup_closed_fixture(&f, 1024);
	char path[300];
	snprintf(path, sizeof(path), "%s/data.mdb", f.dir);
	FILE *fp = fopen(path, "r+b");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	long size = ftell(fp);
	uint8_t *db = malloc((size_t)size);
	ck_assert_ptr_nonnull(db);
	rewind(fp);
	ck_assert_uint_eq(fread(db, 1, (size_t)size, fp), (size_t)size);
	uint8_t patt[PATTERN_BYTES];
	fill_pattern(patt);
	/* every copy of the second chunk (free pages may hold stale ones) */
	int hits = 0;
	for (uint8_t *p = db; (p = memmem(p, (size_t)size - (size_t)(p - db), patt + 1024, 1024));
	     p += 1024) {
		long pos = (long)(p - db) + 100;
		ck_assert_int_eq(fseek(fp, pos, SEEK_SET), 0);
		ck_assert_int_eq(fputc(db[pos] ^ 0xff, fp), db[pos] ^ 0xff);
		hits++;
	}
	ck_assert_int_ge(hits, 1);
	ck_assert_int_eq(fclose(fp), 0);
	free(db);

	ck_assert_int_eq(ckpt_store_open(&f.store, f.dir, CKPT_OPEN_READONLY), 0);
	open_view(&f);
	ckpt_view_attr a;
	ck_assert_int_eq(ckpt_view_resolve(&a, f.view, "epoch-0001/model/pattern.npy", true), 0);
	ckpt_view_file *file;
	ck_assert_int_eq(ckpt_view_open(&file, NULL, f.view, a.ino), 0);
	uint8_t buf[PATTERN_BYTES + 128];
	size_t got;
	/* the first chunk is fine */
	ck_assert_int_eq(ckpt_view_file_read(file, 128, buf, 1024, &got), 0);
	ck_assert_int_eq(memcmp(buf, patt, 1024), 0);
	ck_assert_int_eq(ckpt_view_file_read(file, 0, buf, sizeof(buf), &got), -EIO);
	struct iovec iov[8];
	size_t count;
	ck_assert_int_eq(ckpt_view_file_iov(file, 128 + 1024, 1024, iov, 8, &count, buf, &got),
	                 -EIO);
	ck_assert_int_eq(f.log_lines, 1);
	ck_assert_ptr_nonnull(strstr(f.log, "'pattern'"));
	ck_assert_ptr_nonnull(strstr(f.log, "epoch 1"));
	ckpt_view_file_close(file);
	teardown_fixture(&f);
}
END_TEST

/* Change one byte in the middle of epoch @p epoch's checkpoint record, through LMDB (the
 * record's CRC-32 then fails); the store must be closed. */
static void damage_checkpoint_record(const char *dir, uint64_t epoch)
{
	uint8_t k[8];
	for (int i = 0; i < 8; i++)
		k[i] = (uint8_t)(epoch >> (56 - 8 * i));
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val key = {sizeof(k), k}, val;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "ckpt", 0, &dbi), 0);
	ck_assert_int_eq(mdb_get(txn, dbi, &key, &val), 0);
	uint8_t *copy = malloc(val.mv_size);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, val.mv_data, val.mv_size);
	copy[val.mv_size / 2] ^= 0x5a;
	MDB_val changed = {val.mv_size, copy};
	ck_assert_int_eq(mdb_put(txn, dbi, &key, &changed, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	free(copy);
	mdb_env_close(env);
}

START_TEST(test_damaged_checkpoint_record_fails_its_epoch_only_with_one_log_line)
{
	vfixture f;
	setup_closed_fixture(&f, 1024);
	damage_checkpoint_record(f.dir, 1);
	ck_assert_int_eq(ckpt_store_open(&f.store, f.dir, CKPT_OPEN_READONLY), 0);
	open_view(&f);

	/* the root lists every entry; only epoch-0001 has no attributes */
	ckpt_view_listing l;
	ck_assert_int_eq(ckpt_view_list(&l, f.view, CKPT_VIEW_ROOT_INO), 0);
	ck_assert_uint_eq(l.count, 4 + EPOCHS);
	uint64_t history_size = 0, epoch1_ino = 0;
	for (size_t i = 0; i < l.count; i++) {
		const ckpt_view_dirent *d = &l.entries[i];
		bool damaged = strcmp(d->name, "epoch-0001") == 0;
		ck_assert_msg(damaged ? d->attr_rc != 0 : d->attr_rc == 0, "%s: attr_rc %d",
		              d->name, d->attr_rc);
		if (damaged)
			epoch1_ino = d->attr.ino;
		if (strcmp(d->name, "history.csv") == 0)
			history_size = d->attr.size;
	}
	ckpt_view_listing_free(&l);
	ck_assert_uint_ne(epoch1_ino, 0);
	ckpt_view_attr a;
	ck_assert_int_eq(ckpt_view_getattr(&a, f.view, CKPT_VIEW_ROOT_INO), 0);

	/* history.csv: the same size in the listing, stat and the file; an empty row for epoch 1 */
	ck_assert_int_eq(ckpt_view_resolve(&a, f.view, "history.csv", true), 0);
	ck_assert_uint_eq(a.size, history_size);
	size_t len;
	char *csv = (char *)read_path(&f, "history.csv", &len);
	ck_assert_uint_eq(len, history_size);
	ck_assert_msg(strstr(csv, "\n1,,,,,,\n2,20,") != NULL, "history.csv:\n%s", csv);
	ck_assert_ptr_nonnull(strstr(csv, "\n3,30,"));
	free(csv);

	/* the damaged epoch fails however it is reached; its neighbours and the links do not */
	ck_assert_int_eq(ckpt_view_resolve(&a, f.view, "epoch-0001", true), CKPT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(ckpt_view_last_error(), "epoch 1"));
	ck_assert_int_eq(ckpt_view_resolve(&a, f.view, "epoch-0001/metrics.json", true),
	                 CKPT_ECORRUPT);
	ck_assert_int_eq(ckpt_view_getattr(&a, f.view, epoch1_ino), CKPT_ECORRUPT);
	ck_assert_int_eq(ckpt_view_lookup(&a, f.view, CKPT_VIEW_ROOT_INO, "epoch-0001"),
	                 CKPT_ECORRUPT);
	ckpt_view_file *file;
	ck_assert_int_ne(ckpt_view_open(&file, NULL, f.view, epoch1_ino + 1), 0);
	char target[64];
	ck_assert_int_eq(ckpt_view_readlink(target, sizeof(target), f.view, 4), 0);
	ck_assert_str_eq(target, "epoch-0002");
	ck_assert_int_eq(ckpt_view_readlink(target, sizeof(target), f.view, 5), 0);
	ck_assert_str_eq(target, "epoch-0003");
	char *json = (char *)read_path(&f, "best/metrics.json", &len);
	ck_assert_ptr_nonnull(strstr(json, "\"is_best\": true"));
	free(json);
	free(read_path(&f, "epoch-0003/model/fc1.weight.npy", &len));

	/* one line for all of that, naming the epoch and why */
	ck_assert_int_eq(f.log_lines, 1);
	ck_assert_msg(strstr(f.log, "epoch-0001") && strstr(f.log, "corrupt checkpoint record"),
	              "log: %s", f.log);
	teardown_fixture(&f);
}
END_TEST

START_TEST(test_map_location_values_are_validated)
{
	ck_assert_int_eq(ckpt_view_check_map_location("cpu"), 0);
	ck_assert_int_eq(ckpt_view_check_map_location("keep"), 0);
	ck_assert_int_eq(ckpt_view_check_map_location("cuda:1"), 0);
	ck_assert_int_eq(ckpt_view_check_map_location("cuda"), 0);
	ck_assert_int_eq(ckpt_view_check_map_location("gpu"), -EINVAL);
	ck_assert_int_eq(ckpt_view_check_map_location("cuda:x"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ckpt_view_last_error(), "cuda:x"));
	ckpt_view *v;
	ckpt_view_options o = {.map_location = "tpu"};
	ck_assert_int_eq(ckpt_view_new(&v, fx.store, &o), -EINVAL);
	o.map_location = "cuda:3";
	ck_assert_int_eq(ckpt_view_new(&v, fx.store, &o), 0);
	ckpt_view_free(v);
}
END_TEST

START_TEST(test_empty_store_has_no_links_and_an_empty_history)
{
	vfixture f;
	memset(&f, 0, sizeof(f));
	test_dir_make(f.dir, sizeof(f.dir), "check_view");
	ckpt_run_meta meta = {.model = "mlp", .monitor = "val_acc", .monitor_mode = CKPT_MODE_MAX};
	ck_assert_int_eq(ckpt_store_create(&f.store, f.dir, &meta, NULL), 0);
	open_view(&f);
	ckpt_view_listing l;
	ck_assert_int_eq(ckpt_view_list(&l, f.view, CKPT_VIEW_ROOT_INO), 0);
	ck_assert_uint_eq(l.count, 2);
	ckpt_view_listing_free(&l);
	ckpt_view_attr a;
	ck_assert_int_eq(ckpt_view_resolve(&a, f.view, "best", false), -ENOENT);
	ck_assert_int_eq(ckpt_view_getattr(&a, f.view, 4), -ENOENT);
	size_t len;
	uint8_t *buf = read_path(&f, "history.csv", &len);
	ck_assert_str_eq((const char *)buf, "epoch,step,time,best\n");
	free(buf);
	buf = read_path(&f, "run.json", &len);
	ck_assert_ptr_nonnull(strstr((const char *)buf, "\"monitor_mode\": \"max\""));
	free(buf);
	teardown_fixture(&f);
}
END_TEST

/* jansson's integers are signed: a seed or step of 2^63 or more came out negative */
START_TEST(test_seeds_and_steps_past_int64_are_written_as_they_are)
{
	vfixture f;
	memset(&f, 0, sizeof(f));
	test_dir_make(f.dir, sizeof(f.dir), "check_view");
	ckpt_run_meta meta = {.model = "mlp", .dataset = "\x01u77", .seed = UINT64_MAX,
	                      .monitor = "val_loss"};
	ck_assert_int_eq(ckpt_store_create(&f.store, f.dir, &meta, NULL), 0);
	static const uint64_t steps[] = {UINT64_C(9223372036854775808), UINT64_MAX, 5};
	for (uint64_t e = 1; e <= 3; e++) {
		ckpt_writer *w;
		ck_assert_int_eq(ckpt_writer_begin(&w, f.store, e), 0);
		ckpt_writer_set_step(w, steps[e - 1]);
		ck_assert_int_eq(ckpt_writer_set_metric(w, e == 2 ? "\x01m" : "val_loss", 0.5), 0);
		ck_assert_int_eq(ckpt_writer_commit(w), 0);
	}
	open_view(&f);
	size_t len;
	uint8_t *buf = read_path(&f, "run.json", &len);
	ck_assert_msg(strstr((const char *)buf, "\"seed\": 18446744073709551615,\n"), "%s", buf);
	ck_assert_msg(strstr((const char *)buf, "\"dataset\": \"\\u0001u77\","), "%s", buf);
	free(buf);
	static const char *const want[] = {"\"step\": 9223372036854775808,\n",
	                                   "\"step\": 18446744073709551615,\n", "\"step\": 5,\n"};
	for (int e = 1; e <= 3; e++) {
		char path[64];
		snprintf(path, sizeof(path), "epoch-%04d/metrics.json", e);
		buf = read_path(&f, path, &len);
		ck_assert_msg(strstr((const char *)buf, want[e - 1]), "%s", buf);
		free(buf);
	}
	teardown_fixture(&f);
}
END_TEST

/* libckpt refuses epochs above CKPT_MAX_EPOCH; stores written before it may hold them */
extern int store_test_old_input;

/* Epochs past the view's inode space have no directory, so a link naming one would dangle:
 * `latest` names the newest epoch shown, `best` (the store's best is one of them) is absent,
 * and the root's link count counts shown epochs only. */
START_TEST(test_links_to_epochs_past_the_inode_space_are_absent_not_dangling)
{
	vfixture f;
	memset(&f, 0, sizeof(f));
	test_dir_make(f.dir, sizeof(f.dir), "check_view");
	ckpt_run_meta meta = {.model = "mlp", .monitor = "val_loss"};
	ckpt_store_options so = {.no_sync = true};
	ck_assert_int_eq(ckpt_store_create(&f.store, f.dir, &meta, &so), 0);
	const uint64_t epochs[] = {3, UINT64_MAX};
	const double loss[] = {0.5, 0.1};
	store_test_old_input = 1;
	for (size_t i = 0; i < 2; i++) {
		ckpt_writer *w;
		float x[2] = {1, 2};
		uint64_t shape[1] = {2};
		ck_assert_int_eq(ckpt_writer_begin(&w, f.store, epochs[i]), 0);
		ck_assert_int_eq(ckpt_writer_put_tensor(w, "w", CKPT_GROUP_MODEL,
		                                        CKPT_DTYPE_FLOAT32, 1, shape, NULL, x,
		                                        sizeof(x)),
		                 0);
		ck_assert_int_eq(ckpt_writer_set_metric(w, "val_loss", loss[i]), 0);
		ck_assert_int_eq(ckpt_writer_commit(w), 0);
	}
	store_test_old_input = 0;
	open_view(&f);
	ckpt_view_attr a;
	ck_assert_int_eq(ckpt_view_resolve(&a, f.view, "best", false), -ENOENT);
	ck_assert_int_eq(ckpt_view_resolve(&a, f.view, "latest", false), 0);
	ck_assert_int_eq(a.kind, CKPT_VIEW_SYMLINK);
	char target[64];
	ck_assert_int_eq(ckpt_view_readlink(target, sizeof(target), f.view, a.ino), 0);
	ck_assert_str_eq(target, "epoch-0003");
	ck_assert_int_eq(ckpt_view_resolve(&a, f.view, "epoch-0003", false), 0);
	ck_assert_int_eq(ckpt_view_getattr(&a, f.view, CKPT_VIEW_ROOT_INO), 0);
	ck_assert_uint_eq(a.nlink, 3);
	ckpt_view_listing l;
	ck_assert_int_eq(ckpt_view_list(&l, f.view, CKPT_VIEW_ROOT_INO), 0);
	ck_assert_uint_eq(l.count, 4); /* run.json, history.csv, latest, epoch-0003 */
	for (size_t i = 0; i < l.count; i++)
		ck_assert_int_ne(strcmp(l.entries[i].name, "best"), 0);
	ckpt_view_listing_free(&l);
	teardown_fixture(&f);
}
END_TEST

/* A whole-checkpoint file that cannot be rendered says why (ckpt cat printed an empty "()"). */
START_TEST(test_render_failure_reason_reaches_the_view_error)
{
	vfixture f;
	memset(&f, 0, sizeof(f));
	test_dir_make(f.dir, sizeof(f.dir), "check_view");
	ckpt_run_meta meta = {.model = "mlp", .monitor = "val_loss"};
	ckpt_store_options so = {.no_sync = true};
	ck_assert_int_eq(ckpt_store_create(&f.store, f.dir, &meta, &so), 0);
	ckpt_writer *w;
	float x[2] = {1, 2};
	uint64_t shape[1] = {2};
	ck_assert_int_eq(ckpt_writer_begin(&w, f.store, 1), 0);
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "bad\xff\xfename", CKPT_GROUP_MODEL,
	                                        CKPT_DTYPE_FLOAT32, 1, shape, NULL, x, sizeof(x)),
	                 0);
	ck_assert_int_eq(ckpt_writer_commit(w), 0);
	open_view(&f);
	const char *files[] = {"epoch-0001/model.pt", "epoch-0001/model.safetensors",
	                       "epoch-0001/checkpoint.pt"};
	for (size_t i = 0; i < 3; i++) {
		ckpt_view_attr a;
		ck_assert_int_eq(ckpt_view_resolve(&a, f.view, files[i], true), -EILSEQ);
		ck_assert_msg(strstr(ckpt_view_last_error(), "not valid UTF-8") != NULL, "%s: '%s'",
		              files[i], ckpt_view_last_error());
	}
	teardown_fixture(&f);
}
END_TEST

/* The mount's watcher finds epochs committed again by their commit times. */
START_TEST(test_epoch_times_change_when_an_epoch_is_committed_again)
{
	uint64_t *e1, *e2;
	int64_t *t1, *t2;
	size_t n1, n2;
	ck_assert_int_eq(ckpt_view_epoch_times(&e1, &t1, &n1, fx.view), 0);
	ck_assert_uint_eq(n1, EPOCHS);
	ckpt_view_attr a;
	for (size_t i = 0; i < n1; i++) {
		ck_assert_uint_eq(e1[i], i + 1);
		char path[32];
		snprintf(path, sizeof(path), "epoch-%04zu", i + 1);
		ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, path, false), 0);
		ck_assert_int_eq(t1[i], a.mtime_ns);
	}
	struct timespec pause = {0, 2000000};
	nanosleep(&pause, NULL);
	ckpt_writer *w;
	float x = 1;
	uint64_t shape[1] = {1};
	ck_assert_int_eq(ckpt_writer_begin(&w, fx.store, 2), 0);
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "w", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1,
	                                        shape, NULL, &x, 4),
	                 0);
	ck_assert_int_eq(ckpt_writer_commit(w), 0);
	ck_assert_int_eq(ckpt_view_epoch_times(&e2, &t2, &n2, fx.view), 0);
	ck_assert_uint_eq(n2, EPOCHS);
	ck_assert_int_eq(t2[0], t1[0]);
	ck_assert_int_gt(t2[1], t1[1]);
	ck_assert_int_eq(t2[2], t1[2]);
	free(e1);
	free(t1);
	free(e2);
	free(t2);
}
END_TEST

static uint8_t big_byte(size_t i)
{
	uint64_t z = (uint64_t)(i / 8) * 0x9e3779b97f4a7c15ull;
	z ^= z >> 29;
	return (uint8_t)(z >> (8 * (i % 8)));
}

START_TEST(test_verify_ahead_never_serves_a_corrupt_chunk)
{
	const size_t mib = 1 << 20, nbytes = 9 * mib;
	vfixture f;
	memset(&f, 0, sizeof(f));
	test_dir_make(f.dir, sizeof(f.dir), "check_view");
	uint8_t *big = malloc(nbytes);
	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < nbytes; i++)
		big[i] = big_byte(i);
	ckpt_run_meta meta = {.model = "mlp", .monitor = "val_loss"};
	ckpt_store_options opts = {.chunk_size = mib, .no_sync = true};
	ck_assert_int_eq(ckpt_store_create(&f.store, f.dir, &meta, &opts), 0);
	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, f.store, 1), 0);
	uint64_t shape[1] = {nbytes};
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "big", CKPT_GROUP_MODEL, CKPT_DTYPE_UINT8, 1,
	                                        shape, NULL, big, nbytes),
	                 0);
	ck_assert_int_eq(ckpt_writer_commit(w), 0);
	ckpt_store_close(f.store);
	/* damage chunk 5 */
	char path[300];
	snprintf(path, sizeof(path), "%s/data.mdb", f.dir);
	FILE *fp = fopen(path, "r+b");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	long size = ftell(fp);
	uint8_t *db = malloc((size_t)size);
	ck_assert_ptr_nonnull(db);
	rewind(fp);
	ck_assert_uint_eq(fread(db, 1, (size_t)size, fp), (size_t)size);
	int hits = 0;
	for (uint8_t *p = db; (p = memmem(p, (size_t)size - (size_t)(p - db), big + 5 * mib, 4096));
	     p += 4096) {
		long pos = (long)(p - db) + 1000;
		ck_assert_int_eq(fseek(fp, pos, SEEK_SET), 0);
		ck_assert_int_eq(fputc(db[pos] ^ 0x55, fp), db[pos] ^ 0x55);
		hits++;
	}
	ck_assert_int_ge(hits, 1);
	ck_assert_int_eq(fclose(fp), 0);
	free(db);
	ck_assert_int_eq(ckpt_store_open(&f.store, f.dir, CKPT_OPEN_READONLY), 0);
	open_view(&f);
	ckpt_view_attr a;
	ck_assert_int_eq(ckpt_view_resolve(&a, f.view, "epoch-0001/model/big.npy", true), 0);
	ckpt_view_file *file;
	ck_assert_int_eq(ckpt_view_open(&file, NULL, f.view, a.ino), 0);
	const uint64_t header = a.size - nbytes;
	uint8_t *buf = malloc(mib);
	ck_assert_ptr_nonnull(buf);
	for (size_t k = 0; k < 9; k++) {
		struct iovec iov[8];
		size_t count, got;
		int rc = ckpt_view_file_iov(file, header + k * mib, mib, iov, 8, &count, buf, &got);
		if (k == 5) {
			ck_assert_int_eq(rc, -EIO);
			continue;
		}
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(got, mib);
		size_t pos = 0;
		for (size_t i = 0; i < count; i++) {
			ck_assert_int_eq(
			    memcmp(iov[i].iov_base, big + k * mib + pos, iov[i].iov_len), 0);
			pos += iov[i].iov_len;
		}
		if (k == 0) {
			struct timespec pause = {0,
			                         200 * 1000 * 1000}; /* let the helper run ahead */
			nanosleep(&pause, NULL);
		}
	}
	ck_assert_int_eq(f.log_lines, 1);
	ckpt_view_file_close(file);
	free(buf);
	free(big);
	teardown_fixture(&f);
}
END_TEST

START_TEST(test_parked_file_reads_on_while_content_is_unchanged_else_estale)
{
	ckpt_view_attr a, b;
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "epoch-0001/model/fc1.weight.npy", true),
	                 0);
	ck_assert_int_eq(ckpt_view_resolve(&b, fx.view, "epoch-0003/model/fc1.weight.npy", true),
	                 0);
	ckpt_view_file *old, *kept;
	ck_assert_int_eq(ckpt_view_open(&old, NULL, fx.view, a.ino), 0);
	ck_assert_int_eq(ckpt_view_open(&kept, NULL, fx.view, b.ino), 0);
	uint8_t first[256], again[256];
	size_t got;
	ck_assert_int_eq(ckpt_view_file_read(kept, 0, first, sizeof(first), &got), 0);
	ck_assert_int_eq(ckpt_view_file_park(kept), 0);
	ck_assert_int_eq(ckpt_view_file_park(old), 0);
	ck_assert(ckpt_view_file_is_parked(kept));
	ck_assert_uint_eq(ckpt_view_file_size(kept), b.size);
	/* epoch 1 goes away while parked; epoch 3 stays */
	uint32_t deleted;
	ck_assert_int_eq(ckpt_store_gc(fx.store, 1, 0, &deleted), 0);
	ck_assert_int_eq(ckpt_view_file_read(kept, 0, again, sizeof(again), &got), 0);
	ck_assert_uint_eq(got, b.size);
	ck_assert_int_eq(memcmp(first, again, got), 0);
	ck_assert(!ckpt_view_file_is_parked(kept));
	ck_assert_int_eq(ckpt_view_file_read(old, 0, again, sizeof(again), &got), -ESTALE);
	ck_assert(ckpt_view_file_is_parked(old));
	ckpt_view_file_close(old);
	ckpt_view_file_close(kept);
}
END_TEST

/* Open history.csv and read it to its end; *out_old receives its bytes (to free). */
static ckpt_view_file *open_history_read_to_end(uint8_t **out_old, size_t *out_len)
{
	ckpt_view_attr a;
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "history.csv", true), 0);
	ckpt_view_file *f;
	ck_assert_int_eq(ckpt_view_open(&f, NULL, fx.view, a.ino), 0);
	*out_old = read_path(&fx, "history.csv", out_len);
	uint8_t buf[4096];
	size_t got;
	ck_assert_int_eq(ckpt_view_file_read(f, 0, buf, sizeof(buf), &got), 0);
	ck_assert_uint_eq(got, *out_len);
	ck_assert_int_eq(memcmp(buf, *out_old, got), 0);
	return f;
}

/* Commit epoch EPOCHS + 1 with the best val_loss yet: best moves onto it. */
static void commit_new_best_epoch(void)
{
	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, fx.store, EPOCHS + 1), 0);
	ckpt_writer_set_step(w, (EPOCHS + 1) * 10);
	ck_assert_int_eq(ckpt_writer_set_metric(w, "val_loss", 0.125), 0);
	ck_assert_int_eq(ckpt_writer_commit(w), 0);
}

/* A history.csv idle past snapshot_idle gives its snapshot up but keeps its bytes: once read to
 * its end it still follows the rows committed meanwhile (tail -f of a slow run). */
START_TEST(test_parked_history_still_follows_appended_rows)
{
	ckpt_view_attr moved;
	size_t old_len, got;
	uint8_t *old;
	ckpt_view_file *f = open_history_read_to_end(&old, &old_len);
	uint8_t buf[4096];
	bool did_move;
	ck_assert_int_eq(ckpt_view_file_follow(f, &moved, &did_move), 0); /* its end, once */
	ck_assert(!did_move);
	ck_assert_int_eq(ckpt_view_file_park(f), 0);
	ck_assert(ckpt_view_file_is_parked(f));
	ck_assert_int_eq(ckpt_view_file_read(f, 0, buf, sizeof(buf), &got), 0);
	ck_assert_uint_eq(got, old_len); /* its own bytes, no snapshot taken */
	ck_assert_int_eq(memcmp(buf, old, old_len), 0);
	ck_assert(ckpt_view_file_is_parked(f));
	ck_assert_int_eq(ckpt_view_file_follow(f, &moved, &did_move), 0); /* its end again */
	ck_assert(!did_move);
	commit_new_best_epoch();
	size_t new_len;
	uint8_t *now = read_path(&fx, "history.csv", &new_len);
	ck_assert_uint_gt(new_len, old_len);
	ck_assert_int_eq(ckpt_view_file_follow(f, &moved, &did_move), 0);
	ck_assert(did_move);
	ck_assert(!ckpt_view_file_is_parked(f));
	ck_assert_uint_eq(moved.size, new_len);
	ck_assert_uint_eq(ckpt_view_file_size(f), new_len);
	ck_assert_int_eq(ckpt_view_file_read(f, old_len, buf, sizeof(buf), &got), 0);
	ck_assert_uint_eq(got, new_len - old_len);
	ck_assert_int_eq(memcmp(buf, now + old_len, got), 0);
	free(old);
	free(now);
	ckpt_view_file_close(f);
}
END_TEST

/* Read again from 0 (tail -f after "file truncated", a rewind), history.csv and metrics.json
 * read the store's bytes now, whatever changed: is_best flipped, rows deleted by gc; parked
 * ones too. At its end a history.csv whose rows were deleted keeps its version; a metrics.json
 * whose epoch was deleted keeps its bytes. */
START_TEST(test_history_and_metrics_read_again_from_0_read_the_store_now)
{
	ckpt_view_attr h, m, t, moved;
	ck_assert_int_eq(ckpt_view_resolve(&h, fx.view, "history.csv", true), 0);
	ck_assert_int_eq(ckpt_view_resolve(&m, fx.view, "epoch-0002/metrics.json", true), 0);
	ck_assert_int_eq(ckpt_view_resolve(&t, fx.view, "epoch-0003/model/fc1.weight.npy", true), 0);
	size_t old_len, got;
	uint8_t *old;
	ckpt_view_file *f = open_history_read_to_end(&old, &old_len), *parked, *metrics, *tensor;
	ck_assert_int_eq(ckpt_view_open(&parked, NULL, fx.view, h.ino), 0);
	ck_assert_int_eq(ckpt_view_open(&metrics, NULL, fx.view, m.ino), 0);
	ck_assert_int_eq(ckpt_view_open(&tensor, NULL, fx.view, t.ino), 0);
	uint8_t buf[4096];
	ck_assert_int_eq(ckpt_view_file_park(parked), 0);
	bool did_move;
	ck_assert_int_eq(ckpt_view_file_reread(f, &moved, &did_move), 0); /* nothing changed */
	ck_assert(!did_move);
	/* best moves off epoch 2: its metrics.json says "is_best": false in place */
	commit_new_best_epoch();
	size_t metrics_len;
	uint8_t *metrics_now = read_path(&fx, "epoch-0002/metrics.json", &metrics_len);
	ck_assert_uint_ne(metrics_len, m.size);
	ck_assert_int_eq(ckpt_view_file_park(metrics), 0);
	ck_assert_int_eq(ckpt_view_file_reread(metrics, &moved, &did_move), 0);
	ck_assert(did_move);
	ck_assert_uint_eq(moved.size, metrics_len);
	ck_assert_int_eq(ckpt_view_file_read(metrics, 0, buf, sizeof(buf), &got), 0);
	ck_assert_uint_eq(got, metrics_len);
	ck_assert_int_eq(memcmp(buf, metrics_now, got), 0);
	uint32_t deleted;
	ck_assert_int_eq(ckpt_store_gc(fx.store, 1, 0, &deleted), 0); /* epochs 1-3 go */
	size_t new_len;
	uint8_t *now = read_path(&fx, "history.csv", &new_len);
	ck_assert_uint_lt(new_len, old_len);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(ckpt_view_file_follow(f, &moved, &did_move), 0); /* at its end */
		ck_assert(!did_move);
	}
	ck_assert_uint_eq(ckpt_view_file_size(f), old_len);
	ckpt_view_file *both[] = {f, parked};
	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(ckpt_view_file_reread(both[i], &moved, &did_move), 0);
		ck_assert(did_move);
		ck_assert(!ckpt_view_file_is_parked(both[i]));
		ck_assert_uint_eq(moved.size, new_len);
		ck_assert_uint_eq(ckpt_view_file_size(both[i]), new_len);
		ck_assert_int_eq(ckpt_view_file_read(both[i], 0, buf, sizeof(buf), &got), 0);
		ck_assert_uint_eq(got, new_len);
		ck_assert_int_eq(memcmp(buf, now, got), 0);
		ck_assert_int_eq(ckpt_view_file_reread(both[i], &moved, &did_move), 0);
		ck_assert(!did_move); /* now current */
	}
	/* its epoch deleted: it keeps the bytes it has */
	ck_assert_int_eq(ckpt_view_file_reread(metrics, &moved, &did_move), 0);
	ck_assert(!did_move);
	ck_assert_int_eq(ckpt_view_file_read(metrics, 0, buf, sizeof(buf), &got), 0);
	ck_assert_uint_eq(got, metrics_len);
	ck_assert_int_eq(memcmp(buf, metrics_now, got), 0);
	/* every other file keeps what it was opened on */
	ck_assert_int_eq(ckpt_view_file_reread(tensor, &moved, &did_move), 0);
	ck_assert(!did_move);
	free(old);
	free(now);
	free(metrics_now);
	ckpt_view_file_close(f);
	ckpt_view_file_close(parked);
	ckpt_view_file_close(metrics);
	ckpt_view_file_close(tensor);
}
END_TEST

/* ENAMETOOLONG is the view's answer, so ckpt ls/cat and the mount agree. */
START_TEST(test_names_longer_than_255_bytes_are_enametoolong_in_lookup_and_resolve)
{
	char name[301], path[340];
	ckpt_view_attr root, dir, a;
	ck_assert_int_eq(ckpt_view_resolve(&root, fx.view, "", true), 0);
	ck_assert_int_eq(ckpt_view_resolve(&dir, fx.view, "epoch-0001/model", true), 0);
	memset(name, 'a', 300);
	name[255] = '\0';
	ck_assert_int_eq(ckpt_view_lookup(&a, fx.view, root.ino, name), -ENOENT);
	ck_assert_int_eq(ckpt_view_lookup(&a, fx.view, dir.ino, name), -ENOENT);
	name[255] = 'a';
	name[256] = '\0';
	ck_assert_int_eq(ckpt_view_lookup(&a, fx.view, root.ino, name), -ENAMETOOLONG);
	ck_assert_int_eq(ckpt_view_lookup(&a, fx.view, dir.ino, name), -ENAMETOOLONG);
	name[256] = 'a';
	name[300] = '\0';
	snprintf(path, sizeof(path), "epoch-0001/%s", name);
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, name, true), -ENAMETOOLONG);
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, path, true), -ENAMETOOLONG);
	ck_assert_ptr_nonnull(strstr(ckpt_view_last_error(), "300 bytes"));
}
END_TEST

/* fs/view.c, CKPT_TESTING builds: how many tensors get a file (2^24 - 16 in production) */
extern size_t view_test_max_tensor_files;

START_TEST(test_tensors_past_the_inode_space_get_no_file_not_another_epochs_inode)
{
	size_t saved = view_test_max_tensor_files;
	view_test_max_tensor_files = 2; /* fc1.weight, fc1.bias: the rest is "past the space" */
	ckpt_view_attr dir, a;
	ck_assert_int_eq(ckpt_view_resolve(&dir, fx.view, "epoch-0001/model", true), 0);
	ckpt_view_listing l;
	int rc = ckpt_view_list(&l, fx.view, dir.ino);
	int rc_fc1 = ckpt_view_resolve(&a, fx.view, "epoch-0001/model/fc1.bias.npy", true);
	int rc_bf = ckpt_view_resolve(&a, fx.view, "epoch-0001/model/bf.weight.npy", true);
	view_test_max_tensor_files = saved;
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(l.count, 2);
	for (size_t i = 0; i < l.count; i++)
		ck_assert_uint_eq(l.entries[i].attr.ino >> 24, dir.ino >> 24);
	ckpt_view_listing_free(&l);
	ck_assert_int_eq(rc_fc1, 0);
	ck_assert_int_eq(rc_bf, -ENOENT);
	/* with the real limit the file is there */
	ck_assert_int_eq(ckpt_view_resolve(&a, fx.view, "epoch-0001/model/bf.weight.npy", true), 0);
}
END_TEST

START_TEST(test_only_immutable_files_of_one_inode_at_two_commits_are_mixed_incarnations)
{
	ckpt_view_attr old = {.ino = 77, .kind = CKPT_VIEW_FILE, .size = 207998,
	                      .mtime_ns = 1000000000, .immutable = true};
	ckpt_view_attr rewritten = old, longer = old, other = old, live = old, live_later = old;
	rewritten.mtime_ns += 1000;
	longer.size += 64;
	other.ino = 78;
	other.mtime_ns += 1000;
	live.immutable = false;
	live_later.immutable = false;
	live_later.mtime_ns += 1000;
	live_later.size += 120;
	ck_assert(ckptfs_incarnations_mixed(&old, &rewritten));
	ck_assert(ckptfs_incarnations_mixed(&longer, &old));
	ck_assert(!ckptfs_incarnations_mixed(&old, &old));
	ck_assert(!ckptfs_incarnations_mixed(&old, &other));
	/* history.csv and metrics.json open at two commits: direct_io both, nothing to forget */
	ck_assert(!ckptfs_incarnations_mixed(&live, &live_later));
	ck_assert(!ckptfs_incarnations_mixed(&old, &live_later));
}
END_TEST

static Suite *view_suite(void)
{
	Suite *s = suite_create("view");
	TCase *tc = tcase_create("view");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_root_lists_run_files_links_and_one_directory_per_epoch);
	tcase_add_test(tc, test_every_node_kind_has_exact_attributes);
	tcase_add_test(tc, test_missing_and_noncanonical_names_are_enoent);
	tcase_add_test(tc, test_hostile_names_stay_single_safe_components_and_decode_back);
	tcase_add_test(tc, test_npy_files_have_numpy_headers_and_the_stored_bytes);
	tcase_add_test(tc, test_metrics_run_and_param_groups_are_json_and_history_is_csv);
	tcase_add_test(tc, test_history_headers_stay_unique_when_metrics_are_named_like_its_columns);
	tcase_add_test(tc, test_random_range_reads_equal_whole_file_renders);
	tcase_add_test(tc, test_open_file_keeps_its_snapshot_after_its_epoch_is_deleted);
	tcase_add_test(tc, test_corrupted_tensor_bytes_read_as_eio_with_one_log_line);
	tcase_add_test(tc, test_damaged_checkpoint_record_fails_its_epoch_only_with_one_log_line);
	tcase_add_test(tc, test_map_location_values_are_validated);
	tcase_add_test(tc, test_empty_store_has_no_links_and_an_empty_history);
	tcase_add_test(tc, test_seeds_and_steps_past_int64_are_written_as_they_are);
	tcase_add_test(tc, test_links_to_epochs_past_the_inode_space_are_absent_not_dangling);
	tcase_add_test(tc, test_epoch_times_change_when_an_epoch_is_committed_again);
	tcase_add_test(tc, test_render_failure_reason_reaches_the_view_error);
	tcase_add_test(tc, test_verify_ahead_never_serves_a_corrupt_chunk);
	tcase_add_test(tc, test_parked_file_reads_on_while_content_is_unchanged_else_estale);
	tcase_add_test(tc, test_parked_history_still_follows_appended_rows);
	tcase_add_test(tc, test_history_and_metrics_read_again_from_0_read_the_store_now);
	tcase_add_test(tc, test_names_longer_than_255_bytes_are_enametoolong_in_lookup_and_resolve);
	tcase_add_test(tc, test_tensors_past_the_inode_space_get_no_file_not_another_epochs_inode);
	tcase_add_test(tc, test_only_immutable_files_of_one_inode_at_two_commits_are_mixed_incarnations);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(view_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
