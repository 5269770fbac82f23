/* tests/unit/check_render.c - the whole-checkpoint renderers: model.safetensors, model.pt,
 * checkpoint.pt (and the pickle and zip writers under them)
 *
 * Fixtures are written through the public store API into a fresh mkdtemp directory with a
 * tiny chunk size, so tensor windows cross chunk boundaries. Files are checked structurally
 * here (zip directory, CRCs, 64-byte alignment, safetensors header, pickle strings, range
 * reads); the integration tests load the same bytes with torch and numpy.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/store.h"
#include "fs/layout.h"
#include "fs/pickle.h"
#include "fs/render.h"
#include "fs/render_util.h"
#include "fs/view_int.h"
#include "fs/zip.h"
#include "test_dir.h"

/* ---- fixture ---------------------------------------------------------------------------- */

typedef struct fixture {
	char dir[256];
	ckpt_store *store;
	ckpt_snapshot *snap;
	const ckpt_checkpoint *ck;
} fixture;

static const char *const dtype_tensor_names[] = {
    [CKPT_DTYPE_FLOAT32] = "dtypes.float32", [CKPT_DTYPE_FLOAT64] = "dtypes.float64",
    [CKPT_DTYPE_FLOAT16] = "dtypes.float16", [CKPT_DTYPE_BFLOAT16] = "dtypes.bfloat16",
    [CKPT_DTYPE_INT64] = "dtypes.int64",     [CKPT_DTYPE_INT32] = "dtypes.int32",
    [CKPT_DTYPE_INT16] = "dtypes.int16",     [CKPT_DTYPE_INT8] = "dtypes.int8",
    [CKPT_DTYPE_UINT8] = "dtypes.uint8",     [CKPT_DTYPE_BOOL] = "dtypes.bool",
};

static uint8_t pattern[4096];

typedef struct fixture_spec {
	const char *device;   /* recorded device of every tensor */
	const char *bad_name; /* extra model tensor with this (hostile) name, or NULL */
	bool adam;
	bool momentum_zero;   /* SGD without momentum buffers */
} fixture_spec;

static void fixture_open(fixture *f, const fixture_spec *spec)
{
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 37 + 11);
	test_dir_make(f->dir, sizeof(f->dir), "check_render");
	char path[300];
	snprintf(path, sizeof(path), "%s/store", f->dir);
	ckpt_run_meta meta = {
	    .model = "mlp", .layers = "4,3,2", .optimizer = spec->adam ? "adam" : "sgd",
	    .hyperparams = "{\"lr\":0.1}", .dataset = "synthetic", .seed = 7,
	    .monitor = "val_loss", .monitor_mode = CKPT_MODE_MIN,
	};
	ckpt_store_options opts = {.chunk_size = 40, .no_sync = true};
	ck_assert_int_eq(ckpt_store_create(&f->store, path, &meta, &opts), 0);

	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, f->store, 5), 0);
	const char *dev = spec->device;
	static const uint64_t s_w1[2] = {3, 4}, s_b1[1] = {3}, s_w2[2] = {2, 3}, s_b2[1] = {2};
	static const char *const params[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
	const uint64_t *shapes[] = {s_w1, s_b1, s_w2, s_b2};
	static const uint32_t ndims[] = {2, 1, 2, 1};
	static const uint64_t nbytes[] = {48, 12, 24, 8};
	for (int p = 0; p < 4; p++)
		ck_assert_int_eq(ckpt_writer_put_tensor(w, params[p], CKPT_GROUP_MODEL,
		                                        CKPT_DTYPE_FLOAT32, ndims[p], shapes[p], dev,
		                                        pattern + 64 * p, nbytes[p]),
		                 0);
	uint64_t shape23[2] = {2, 3};
	/* the writer borrows tensor bytes until the commit */
	static uint8_t dtype_bytes[CKPT_DTYPE_BOOL + 1][48];
	for (int d = CKPT_DTYPE_FLOAT32; d <= CKPT_DTYPE_BOOL; d++) {
		uint8_t *bytes = dtype_bytes[d];
		memcpy(bytes, pattern + 300 + 8 * d, 48);
		if (d == CKPT_DTYPE_BOOL)
			for (int i = 0; i < 6; i++)
				bytes[i] = (uint8_t)(i & 1);
		ck_assert_int_eq(ckpt_writer_put_tensor(w, dtype_tensor_names[d], CKPT_GROUP_MODEL,
		                                        (ckpt_dtype)d, 2, shape23, dev, bytes,
		                                        6 * ckpt_dtype_itemsize((ckpt_dtype)d)),
		                 0);
	}
	static const float scalar = 3.5f;
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "dtypes.scalar", CKPT_GROUP_MODEL,
	                                        CKPT_DTYPE_FLOAT32, 0, NULL, dev, &scalar, 4),
	                 0);
	uint64_t empty_shape[2] = {0, 4};
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "dtypes.empty", CKPT_GROUP_MODEL,
	                                        CKPT_DTYPE_FLOAT32, 2, empty_shape, dev, pattern,
	                                        0),
	                 0);
	if (spec->bad_name)
		ck_assert_int_eq(ckpt_writer_put_tensor(w, spec->bad_name, CKPT_GROUP_MODEL,
		                                        CKPT_DTYPE_FLOAT32, 1, s_b2, dev, pattern,
		                                        8),
		                 0);
	char name[64];
	for (int p = 0; p < 4; p++) {
		if (spec->adam) {
			static const float step = 12;
			snprintf(name, sizeof(name), "%s.step", params[p]);
			ck_assert_int_eq(ckpt_writer_put_tensor(w, name, CKPT_GROUP_OPTIMIZER,
			                                        CKPT_DTYPE_FLOAT32, 0, NULL, dev,
			                                        &step, 4),
			                 0);
			snprintf(name, sizeof(name), "%s.exp_avg", params[p]);
			ck_assert_int_eq(ckpt_writer_put_tensor(w, name, CKPT_GROUP_OPTIMIZER,
			                                        CKPT_DTYPE_FLOAT32, ndims[p], shapes[p],
			                                        dev, pattern + 1000 + 64 * p, nbytes[p]),
			                 0);
			snprintf(name, sizeof(name), "%s.exp_avg_sq", params[p]);
			ck_assert_int_eq(ckpt_writer_put_tensor(w, name, CKPT_GROUP_OPTIMIZER,
			                                        CKPT_DTYPE_FLOAT32, ndims[p], shapes[p],
			                                        dev, pattern + 2000 + 64 * p, nbytes[p]),
			                 0);
		} else if (!spec->momentum_zero) {
			snprintf(name, sizeof(name), "%s.momentum_buffer", params[p]);
			ck_assert_int_eq(ckpt_writer_put_tensor(w, name, CKPT_GROUP_OPTIMIZER,
			                                        CKPT_DTYPE_FLOAT32, ndims[p], shapes[p],
			                                        dev, pattern + 1000 + 64 * p, nbytes[p]),
			                 0);
		}
	}
	const char *groups =
	    spec->adam ? "[{\"lr\":0.001,\"betas\":[0.9,0.999],\"eps\":1e-08,\"weight_decay\":0,"
	                 "\"amsgrad\":false,\"foreach\":null,\"params\":[0,1,2,3]}]"
	               : "[{\"lr\":0.1,\"momentum\":0.9,\"dampening\":0,\"weight_decay\":0,"
	                 "\"nesterov\":false,\"foreach\":null,\"params\":[0,1,2,3]}]";
	ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.param_groups", groups, strlen(groups)),
	                 0);
	const char *opt_name = spec->adam ? "adam" : "sgd";
	ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.name", opt_name, strlen(opt_name)),
	                 0);
	ck_assert_int_eq(ckpt_writer_set_extra(w, "rng", pattern, 32), 0);
	ckpt_writer_set_step(w, 1234);
	ck_assert_int_eq(ckpt_writer_set_metric(w, "val_loss", 0.25), 0);
	ck_assert_int_eq(ckpt_writer_set_metric(w, "val_acc", 0.875), 0);
	ck_assert_int_eq(ckpt_writer_commit(w), 0);

	ck_assert_int_eq(ckpt_snapshot_open(&f->snap, f->store), 0);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&f->ck, f->snap, 5), 0);
}

static void fixture_close(fixture *f)
{
	ckpt_snapshot_close(f->snap);
	ckpt_store_close(f->store);
	test_dir_remove(f->dir);
}

static const fixture_spec plain = {.device = "cpu"};

/* ---- helpers ---------------------------------------------------------------------------- */

static uint8_t *read_whole(view_layout *l, ckpt_snapshot *snap)
{
	uint8_t *buf = malloc(l->size + 1);
	ck_assert_ptr_nonnull(buf);
	size_t got;
	ck_assert_int_eq(view_layout_read(l, snap, 0, buf, l->size, &got), 0);
	ck_assert_uint_eq(got, l->size);
	return buf;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Every BINUNICODE string of a pickle, in order, joined with '|'. */
static char *pickle_strings(const uint8_t *pk, size_t len)
{
	char *out = calloc(1, len + 1);
	ck_assert_ptr_nonnull(out);
	size_t o = 0;
	for (size_t i = 0; i + 5 <= len; i++) {
		/* only scan at plausible opcodes: we know our pickles have no raw bytes elsewhere
		 * that look like X + a length that fits */
		if (pk[i] != 'X')
			continue;
		uint32_t n = le32(pk + i + 1);
		if (n > len - i - 5)
			continue;
		memcpy(out + o, pk + i + 5, n);
		o += n;
		out[o++] = '|';
		i += 4 + n;
	}
	out[o] = '\0';
	return out;
}

typedef struct zip_member {
	char name[64];
	uint64_t offset, size; /* payload */
	uint32_t crc;
} zip_member;

/* Walk a whole zip (end records -> central directory -> local headers), checking the
 * structure; returns the members. */
static size_t parse_zip(const uint8_t *z, uint64_t size, zip_member *out, size_t cap)
{
	ck_assert_uint_ge(size, 98);
	ck_assert_int_eq(memcmp(z, "PK\x03\x04", 4), 0);
	const uint8_t *end = z + size - 22;
	ck_assert_uint_eq(le32(end), 0x06054b50u);
	const uint8_t *loc = end - 20;
	ck_assert_uint_eq(le32(loc), 0x07064b50u);
	uint64_t end64_off = le64(loc + 8);
	ck_assert_uint_eq(end64_off, size - 98);
	const uint8_t *end64 = z + end64_off;
	ck_assert_uint_eq(le32(end64), 0x06064b50u);
	uint64_t n = le64(end64 + 32), cd_size = le64(end64 + 40), cd_off = le64(end64 + 48);
	ck_assert_uint_eq(cd_off + cd_size, end64_off);
	ck_assert_uint_le(n, cap);
	const uint8_t *cd = z + cd_off;
	for (uint64_t i = 0; i < n; i++) {
		ck_assert_uint_eq(le32(cd), 0x02014b50u);
		uint16_t namelen = le16(cd + 28), extralen = le16(cd + 30);
		ck_assert_uint_lt(namelen, sizeof(out[i].name));
		memcpy(out[i].name, cd + 46, namelen);
		out[i].name[namelen] = '\0';
		out[i].crc = le32(cd + 16);
		uint64_t csize = le32(cd + 20), lho = le32(cd + 42);
		ck_assert_uint_eq(extralen, 0); /* small archives need no zip64 extras */
		const uint8_t *lh = z + lho;
		ck_assert_uint_eq(le32(lh), 0x04034b50u);
		ck_assert_uint_eq(le16(lh + 8), 0); /* stored */
		ck_assert_uint_eq(le32(lh + 14), out[i].crc);
		ck_assert_uint_eq(le32(lh + 18), csize);
		ck_assert_uint_eq(le16(lh + 26), namelen);
		ck_assert_int_eq(memcmp(lh + 30, out[i].name, namelen), 0);
		uint16_t lextra = le16(lh + 28);
		ck_assert_uint_eq(le16(lh + 30 + namelen), 0x4246); /* "FB" padding field */
		out[i].offset = lho + 30 + namelen + lextra;
		out[i].size = csize;
		ck_assert_uint_eq(out[i].offset % 64, 0);
		ck_assert_uint_eq(ckpt_crc32(0, z + out[i].offset, out[i].size), out[i].crc);
		cd += 46 + namelen + extralen;
	}
	ck_assert_ptr_eq(cd, z + cd_off + cd_size);
	return n;
}

/* The pickle (archive/data.pkl, the first member) of the torch zip @p file: its bytes, and its
 * size in @p len. */
static const uint8_t *data_pkl(const uint8_t *file, uint64_t size, size_t *len)
{
	zip_member m[64];
	parse_zip(file, size, m, 64);
	*len = (size_t)m[0].size;
	return file + m[0].offset;
}

/* ---- pickle ----------------------------------------------------------------------------- */

START_TEST(test_pickle_ints_use_the_shortest_opcode)
{
	pickle_buf p;
	pickle_init(&p);
	pickle_int(&p, 0);
	pickle_int(&p, 255);
	pickle_int(&p, 256);
	pickle_int(&p, 65536);
	pickle_int(&p, -1);
	pickle_int(&p, 1ll << 31);
	pickle_uint(&p, UINT64_MAX);
	pickle_int(&p, -129);
	ck_assert_int_eq(pickle_finish(&p), 0);
	static const uint8_t want[] = {
	    'K', 0, 'K', 0xff, 'M', 0x00, 0x01, 'J', 0, 0, 1, 0, 'J', 0xff, 0xff, 0xff, 0xff,
	    0x8a, 5, 0, 0, 0, 0x80, 0,                                     /* 2^31 needs 5 */
	    0x8a, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, /* 2^64-1 */
	    'J', 0x7f, 0xff, 0xff, 0xff,                                 /* -129 */
	    '.'};
	ck_assert_uint_eq(p.len, sizeof(want));
	ck_assert_int_eq(memcmp(p.data, want, sizeof(want)), 0);
	pickle_free(&p);
}
END_TEST

START_TEST(test_pickle_floats_are_big_endian_binfloat)
{
	pickle_buf p;
	pickle_init(&p);
	pickle_float(&p, 1.0);
	uint64_t shape[4] = {2, 3, 4, 5};
	pickle_uint_tuple(&p, shape, 0);
	pickle_uint_tuple(&p, shape, 2);
	pickle_uint_tuple(&p, shape, 4);
	ck_assert_int_eq(pickle_finish(&p), 0);
	static const uint8_t want[] = {'G', 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, ')', 'K', 2, 'K', 3,
	                               0x86, '(', 'K', 2, 'K', 3, 'K', 4, 'K', 5, 't', '.'};
	ck_assert_uint_eq(p.len, sizeof(want));
	ck_assert_int_eq(memcmp(p.data, want, sizeof(want)), 0);
	pickle_free(&p);
}
END_TEST

/* ---- safetensors ------------------------------------------------------------------------ */

START_TEST(test_safetensors_header_is_padded_sorted_and_covers_the_file)
{
	fixture f;
	fixture_open(&f, &plain);
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(render_safetensors(&l, f.store, f.ck), 0);
	uint8_t *file = read_whole(&l, f.snap);
	uint64_t n = le64(file);
	ck_assert_uint_eq((8 + n) % 8, 0);
	ck_assert_int_eq(file[8], '{');
	json_error_t err;
	json_t *h = json_loadb((const char *)file + 8, n, JSON_REJECT_DUPLICATES, &err);
	ck_assert_msg(h != NULL, "header: %s", err.text);
	json_t *meta = json_object_get(h, "__metadata__");
	ck_assert_str_eq(json_string_value(json_object_get(meta, "format")), "pt");
	ck_assert_str_eq(json_string_value(json_object_get(meta, "epoch")), "5");
	ck_assert_str_eq(json_string_value(json_object_get(meta, "val_loss")), "0.25");
	/* every model tensor, in the reference writer's order (dtype: I64 F64 F32 I32 BF16 F16 I16
	 * I8 U8 BOOL, then name), back to back */
	static const char *const dtype_order[] = {"I64", "F64", "F32", "I32", "BF16",
	                                          "F16", "I16", "I8",  "U8",  "BOOL"};
	ck_assert_uint_eq(json_object_size(h), 1 + 4 + 10 + 2);
	const char *key, *prev = NULL;
	json_t *v;
	uint64_t expect = 0;
	size_t prev_rank = 0;
	json_object_foreach(h, key, v)
	{
		if (strcmp(key, "__metadata__") == 0)
			continue;
		const ckpt_tensor_info *t = NULL;
		for (size_t i = 0; i < ckpt_checkpoint_tensor_count(f.ck); i++)
			if (strcmp(ckpt_checkpoint_tensor_at(f.ck, i)->name, key) == 0)
				t = ckpt_checkpoint_tensor_at(f.ck, i);
		ck_assert_ptr_nonnull(t);
		size_t rank = 0;
		while (rank < 10 && strcmp(dtype_order[rank], render_safetensors_dtype(t->dtype)) != 0)
			rank++;
		ck_assert_uint_lt(rank, 10);
		ck_assert_uint_ge(rank, prev_rank);
		if (prev && rank == prev_rank)
			ck_assert_int_lt(strcmp(prev, key), 0);
		prev_rank = rank;
		prev = key;
		ck_assert_str_eq(json_string_value(json_object_get(v, "dtype")),
		                 render_safetensors_dtype(t->dtype));
		json_t *shape = json_object_get(v, "shape");
		ck_assert_uint_eq(json_array_size(shape), t->ndim);
		for (uint32_t d = 0; d < t->ndim; d++)
			ck_assert_uint_eq(json_integer_value(json_array_get(shape, d)), t->shape[d]);
		json_t *offs = json_object_get(v, "data_offsets");
		uint64_t b = json_integer_value(json_array_get(offs, 0));
		uint64_t e = json_integer_value(json_array_get(offs, 1));
		ck_assert_uint_eq(b, expect);
		ck_assert_uint_eq(e - b, t->nbytes);
		uint8_t *bytes = malloc(t->nbytes + 1);
		ck_assert_int_eq(ckpt_tensor_read(bytes, f.snap, t, 0, t->nbytes), 0);
		ck_assert_int_eq(memcmp(file + 8 + n + b, bytes, t->nbytes), 0);
		free(bytes);
		expect = e;
	}
	ck_assert_uint_eq(8 + n + expect, l.size);
	json_decref(h);
	free(file);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

START_TEST(test_every_dtype_has_a_storage_class_and_safetensors_name)
{
	static const char *const st[] = {NULL, "F32", "F64", "F16", "BF16", "I64",
	                                 "I32", "I16", "I8",  "U8",  "BOOL"};
	static const char *const pt[] = {NULL,           "FloatStorage", "DoubleStorage",
	                                 "HalfStorage",  "BFloat16Storage", "LongStorage",
	                                 "IntStorage",   "ShortStorage", "CharStorage",
	                                 "ByteStorage",  "BoolStorage"};
	for (int d = CKPT_DTYPE_FLOAT32; d <= CKPT_DTYPE_BOOL; d++) {
		ck_assert_str_eq(render_safetensors_dtype((ckpt_dtype)d), st[d]);
		ck_assert_str_eq(render_torch_storage((ckpt_dtype)d), pt[d]);
	}
	ck_assert_ptr_null(render_torch_storage((ckpt_dtype)99));
	ck_assert_ptr_null(render_safetensors_dtype((ckpt_dtype)0));
}
END_TEST

/* ---- model.pt / checkpoint.pt ----------------------------------------------------------- */

START_TEST(test_model_pt_is_an_aligned_zip_with_correct_crcs_and_tensor_payloads)
{
	fixture f;
	fixture_open(&f, &plain);
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(render_model_pt(&l, f.store, f.ck, NULL), 0);
	uint8_t *file = read_whole(&l, f.snap);
	zip_member m[32];
	size_t n = parse_zip(file, l.size, m, 32);
	ck_assert_uint_eq(n, 3 + 16); /* data.pkl, byteorder, 16 storages, version */
	ck_assert_str_eq(m[0].name, "archive/data.pkl");
	ck_assert_str_eq(m[1].name, "archive/byteorder");
	ck_assert_uint_eq(m[1].size, 6);
	ck_assert_int_eq(memcmp(file + m[1].offset, "little", 6), 0);
	ck_assert_str_eq(m[n - 1].name, "archive/version");
	ck_assert_int_eq(memcmp(file + m[n - 1].offset, "3\n", 2), 0);
	size_t model_index = 0;
	for (size_t i = 0; i < ckpt_checkpoint_tensor_count(f.ck); i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(f.ck, i);
		if (t->group != CKPT_GROUP_MODEL)
			continue;
		zip_member *e = &m[2 + model_index];
		char want[32];
		snprintf(want, sizeof(want), "archive/data/%zu", model_index);
		ck_assert_str_eq(e->name, want);
		ck_assert_uint_eq(e->size, t->nbytes);
		ck_assert_uint_eq(e->crc, t->crc32);
		model_index++;
	}
	ck_assert_uint_eq(model_index, 16);
	char *strings = pickle_strings(file + m[0].offset, m[0].size);
	ck_assert_ptr_nonnull(strstr(strings, "fc1.weight|storage|0|cpu|fc1.bias|storage|1|cpu|"));
	ck_assert_ptr_nonnull(strstr(strings, "dtypes.bool|storage|13|cpu|"));
	ck_assert_ptr_null(strstr(strings, "momentum_buffer"));
	/* the pickle is protocol 2 and ends in STOP; storage classes by dtype */
	ck_assert_int_eq(file[m[0].offset], 0x80);
	ck_assert_int_eq(file[m[0].offset + 1], 2);
	ck_assert_int_eq(file[m[0].offset + m[0].size - 1], '.');
	ck_assert_ptr_nonnull(memmem(file + m[0].offset, m[0].size, "ctorch\nBFloat16Storage\n", 23));
	ck_assert_ptr_nonnull(memmem(file + m[0].offset, m[0].size, "ctorch\nBoolStorage\n", 19));
	free(strings);
	free(file);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

START_TEST(test_checkpoint_pt_keys_optimizer_state_by_parameter_index)
{
	fixture f;
	fixture_spec spec = {.device = "cpu", .adam = true};
	fixture_open(&f, &spec);
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(render_checkpoint_pt(&l, f.store, f.ck, NULL), 0);
	uint8_t *file = read_whole(&l, f.snap);
	zip_member m[64];
	size_t n = parse_zip(file, l.size, m, 64);
	ck_assert_uint_eq(n, 3 + 16 + 12);
	const uint8_t *pk = file + m[0].offset;
	char *strings = pickle_strings(pk, m[0].size);
	ck_assert_ptr_nonnull(strstr(strings, "|optimizer|state|step|storage|16|cpu|exp_avg|storage|"
	                                      "17|cpu|exp_avg_sq|storage|18|cpu|step|"));
	/* the group's keys, then those torch's Adam also keeps (maximize, ...: absent from this
	 * store's group) with its defaults, then params */
	ck_assert_ptr_nonnull(strstr(strings, "|param_groups|lr|betas|eps|weight_decay|amsgrad|"
	                                      "foreach|maximize|capturable|differentiable|fused|"
	                                      "params|epoch|step|metrics|val_acc|val_loss|"
	                                      "optimizer_name|adam|run|"));
	/* the binary "rng" extra is left out, the optimizer extras are not repeated */
	ck_assert_ptr_null(strstr(strings, "|rng|"));
	ck_assert_ptr_null(strstr(strings, "optimizer.param_groups"));
	/* param 0's state: K 0 } ( ...; betas is a tuple: ( G.. G.. t */
	ck_assert_ptr_nonnull(memmem(pk, m[0].size, "K\x00}(X\x04\x00\x00\x00step", 13));
	static const uint8_t betas[] = {'X', 5, 0, 0, 0, 'b', 'e', 't', 'a', 's', '(', 'G'};
	ck_assert_ptr_nonnull(memmem(pk, m[0].size, betas, sizeof(betas)));
	static const uint8_t params[] = {'p', 'a', 'r', 'a', 'm', 's', ']', '(', 'K', 0,
	                                 'K', 1,   'K', 2,   'K', 3,   'e'};
	ck_assert_ptr_nonnull(memmem(pk, m[0].size, params, sizeof(params)));
	free(strings);
	free(file);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* A hand-made store for @p f (no fsync) with run metadata @p meta, and a writer of its epoch 1. */
static ckpt_writer *begin_hand_made(fixture *f, const ckpt_run_meta *meta)
{
	test_dir_make(f->dir, sizeof(f->dir), "check_render");
	char path[300];
	snprintf(path, sizeof(path), "%s/store", f->dir);
	ckpt_store_options opts = {.no_sync = true};
	ck_assert_int_eq(ckpt_store_create(&f->store, path, meta, &opts), 0);
	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, f->store, 1), 0);
	return w;
}

/* Commit epoch 1 of @p w into @p f's store, open it, render its checkpoint.pt into @p l (freed
 * by the caller) and return the file's bytes (malloc'd). */
static uint8_t *commit_and_render_checkpoint_pt(fixture *f, ckpt_writer *w, view_layout *l)
{
	ck_assert_int_eq(ckpt_writer_commit(w), 0);
	ck_assert_int_eq(ckpt_snapshot_open(&f->snap, f->store), 0);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&f->ck, f->snap, 1), 0);
	view_layout_init(l);
	ck_assert_int_eq(render_checkpoint_pt(l, f->store, f->ck, NULL), 0);
	return read_whole(l, f->snap);
}

/* Put one float32 scalar tensor of value @p value (0 to 3) per name of @p names into @p group
 * of @p w (the writer reads the bytes at commit: they are static). */
static void put_scalars(ckpt_writer *w, const char *const *names, size_t n,
                        ckpt_tensor_group group, int value)
{
	static const float values[4] = {0, 1, 2, 3};
	static const uint64_t shape[1] = {1};
	ck_assert(value >= 0 && value < 4);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(ckpt_writer_put_tensor(w, names[i], group, CKPT_DTYPE_FLOAT32, 1,
		                                        shape, NULL, &values[value], 4),
		                 0);
}

/* begin_hand_made() of a store of an SGD run with lr 0.1. */
static ckpt_writer *begin_sgd_hand_made(fixture *f)
{
	static const ckpt_run_meta meta = {.model = "m", .optimizer = "sgd",
	                                   .hyperparams = "{\"lr\": 0.1}", .monitor = "val_loss"};
	return begin_hand_made(f, &meta);
}

/* commit_and_render_checkpoint_pt() of an SGD checkpoint at step 1 with param groups
 * @p groups (JSON). */
static uint8_t *render_sgd_checkpoint_pt(fixture *f, ckpt_writer *w, const char *groups,
                                         view_layout *l)
{
	ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.param_groups", groups, strlen(groups)),
	                 0);
	ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.name", "sgd", 3), 0);
	ckpt_writer_set_step(w, 1);
	return commit_and_render_checkpoint_pt(f, w, l);
}

/* Optimizer tensors go to the parameter whose name is their longest prefix before a '.':
 * with parameters "enc", "enc.w" and "enc.w.x", "enc.w.x.exp_avg" is param 2's exp_avg,
 * "enc.w.exp_avg" param 1's, "enc.q.exp_avg" param 0's "q.exp_avg"; a name with no parameter
 * prefix ("zz.exp_avg", "enc" + "." + nothing) is an extra tensor. Many parameters are
 * matched by binary search (checked here in both directions of the sorted order). */
START_TEST(test_checkpoint_pt_matches_optimizer_tensors_to_the_longest_parameter_prefix)
{
	fixture f;
	ckpt_run_meta meta = {.model = "m", .optimizer = "adam", .hyperparams = "{\"lr\":0.1}",
	                      .monitor = "val_loss"};
	ckpt_writer *w = begin_hand_made(&f, &meta);
	/* model: "zeta" first so insertion order differs from name order */
	static const char *const params[] = {"zeta", "enc", "enc.w", "enc.w.x", "a"};
	put_scalars(w, params, 5, CKPT_GROUP_MODEL, 1);
	static const char *const opt[] = {"enc.w.x.exp_avg", "enc.w.exp_avg", "enc.q.exp_avg",
	                                  "zz.exp_avg",      "enc.",          "a.exp_avg",
	                                  "zeta.exp_avg"};
	put_scalars(w, opt, 7, CKPT_GROUP_OPTIMIZER, 1);
	view_layout l;
	uint8_t *file = commit_and_render_checkpoint_pt(&f, w, &l);
	size_t pklen;
	const uint8_t *pk = data_pkl(file, l.size, &pklen);
	/* state: K idx } ( X len buffer */
	static const uint8_t p0[] = "K\x00}(X\x07\x00\x00\x00" "exp_avg";
	static const uint8_t p1[] = "K\x01}(X\x09\x00\x00\x00q.exp_avg";
	static const uint8_t p2[] = "K\x02}(X\x07\x00\x00\x00" "exp_avg";
	static const uint8_t p3[] = "K\x03}(X\x07\x00\x00\x00" "exp_avg";
	static const uint8_t p4[] = "K\x04}(X\x07\x00\x00\x00" "exp_avg";
	ck_assert_ptr_nonnull(memmem(pk, pklen, p0, sizeof(p0) - 1));
	ck_assert_ptr_nonnull(memmem(pk, pklen, p1, sizeof(p1) - 1));
	ck_assert_ptr_nonnull(memmem(pk, pklen, p2, sizeof(p2) - 1));
	ck_assert_ptr_nonnull(memmem(pk, pklen, p3, sizeof(p3) - 1));
	ck_assert_ptr_nonnull(memmem(pk, pklen, p4, sizeof(p4) - 1));
	char *strings = pickle_strings(pk, pklen);
	/* "enc.w.x.exp_avg" is not param 1's "x.exp_avg", "enc.w.exp_avg" not param 1's "w..." */
	ck_assert_ptr_null(strstr(strings, "|x.exp_avg|"));
	ck_assert_ptr_null(strstr(strings, "|w.exp_avg|"));
	ck_assert_ptr_null(strstr(strings, "|w.x.exp_avg|"));
	ck_assert_ptr_nonnull(strstr(strings, "|extra_tensors|zz.exp_avg|storage|"));
	ck_assert_ptr_nonnull(strstr(strings, "|enc.|storage|"));
	free(strings);
	free(file);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* A stored group without lr takes the run's lr, not torch's default (torch 1.13's SGD has
 * none); hyper-parameters holding an integer past 64 bits (valid JSON jansson does not read)
 * are read, not dropped. */
START_TEST(test_param_groups_complete_from_the_run_hyperparameters)
{
	fixture f;
	ckpt_run_meta meta = {.model = "m", .optimizer = "sgd",
	                      .hyperparams = "{\"lr\": 0.25, \"momentum\": 0.5, "
	                                     "\"max_steps\": 18446744073709551616}",
	                      .monitor = "val_loss"};
	ckpt_writer *w = begin_hand_made(&f, &meta);
	static const float v[1] = {1};
	static const uint64_t shape[1] = {1};
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "fc1.bias", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32,
	                                        1, shape, NULL, v, 4),
	                 0);
	view_layout l;
	uint8_t *file =
	    render_sgd_checkpoint_pt(&f, w, "[{\"momentum\": 0.9, \"params\": [0]}]", &l);
	size_t pklen;
	const uint8_t *pk = data_pkl(file, l.size, &pklen);
	char *strings = pickle_strings(pk, pklen);
	/* the group's momentum, then lr from the run, then torch's defaults, then params */
	ck_assert_msg(strstr(strings, "|param_groups|momentum|lr|dampening|weight_decay|nesterov|"
	                              "maximize|foreach|differentiable|params|"),
	              "%s", strings);
	/* lr: BINFLOAT 0.25 (the run's), not 0.001 */
	static const uint8_t lr[] = {'X', 2, 0, 0, 0, 'l', 'r', 'G', 0x3f, 0xd0, 0, 0, 0, 0, 0, 0};
	ck_assert_ptr_nonnull(memmem(pk, pklen, lr, sizeof(lr)));
	/* the run's hyper-parameters are there in full */
	ck_assert_msg(strstr(strings, "|hyperparams|lr|momentum|max_steps|"), "%s", strings);
	free(strings);
	free(file);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* One integer outside int64 in the hyper-parameters leaves the others integers (they all
 * became floats) and is itself exact: its digits in run.json, an int (LONG1) in
 * checkpoint.pt's run, as Python's json and pickle keep it. */
START_TEST(test_hyperparameters_keep_integers_exact_beside_one_past_64_bits)
{
	fixture f;
	ckpt_run_meta meta = {.model = "m", .optimizer = "sgd",
	                      .hyperparams = "{\"batch_size\":128,\"seed_big\":18446744073709551616,"
	                                     "\"ids\":[7,8],\"neg\":-9223372036854775809,"
	                                     "\"s\":\"123456789012345678901\",\"lr\":0.5,"
	                                     "\"huge\":-123456789012345678901234567890}",
	                      .monitor = "val_loss"};
	ckpt_writer *w = begin_hand_made(&f, &meta);
	static const char *const model[] = {"fc1.weight"};
	put_scalars(w, model, 1, CKPT_GROUP_MODEL, 1);
	view_layout l;
	uint8_t *file = render_sgd_checkpoint_pt(&f, w, "[{\"params\": [0]}]", &l);
	size_t pklen;
	const uint8_t *pk = data_pkl(file, l.size, &pklen);
	/* batch_size: BININT1 128; ids: a list of K 7, K 8 (EMPTY_LIST MARK ... APPENDS), as
	 * json.loads gives every JSON array of the hyper-parameters */
	static const uint8_t batch[] = "batch_sizeK\x80";
	static const uint8_t ids[] = "ids](K\x07K\x08" "e";
	ck_assert_ptr_nonnull(memmem(pk, pklen, batch, sizeof(batch) - 1));
	ck_assert_ptr_nonnull(memmem(pk, pklen, ids, sizeof(ids) - 1));
	/* 2^64: LONG1 of 9 bytes; -(2^63 + 1): LONG1 ff*7 7f ff */
	static const uint8_t big[] = "seed_big\x8a\x09\0\0\0\0\0\0\0\0\x01";
	static const uint8_t neg[] = "neg\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\xff";
	ck_assert_ptr_nonnull(memmem(pk, pklen, big, sizeof(big) - 1));
	ck_assert_ptr_nonnull(memmem(pk, pklen, neg, sizeof(neg) - 1));
	/* -123456789012345678901234567890: 13 bytes */
	static const uint8_t huge[] = "huge\x8a\x0d\x2e\xf5\xc0\xb1\x11\x1f\x8c\x3c\x09\xf0"
	                              "\x16\x71\xfe";
	ck_assert_ptr_nonnull(memmem(pk, pklen, huge, sizeof(huge) - 1));
	char *strings = pickle_strings(pk, pklen);
	ck_assert_msg(strstr(strings, "|s|123456789012345678901|lr|"), "%s", strings);
	free(strings);
	free(file);
	view_layout_free(&l);

	view_layout_init(&l);
	ck_assert_int_eq(view_render_run_json(&l, f.store), 0);
	char *run = (char *)read_whole(&l, f.snap);
	run[l.size] = '\0';
	ck_assert_msg(strstr(run, "\"batch_size\": 128,\n"), "%s", run);
	ck_assert_msg(strstr(run, "\"seed_big\": 18446744073709551616,\n"), "%s", run);
	ck_assert_msg(strstr(run, "\"neg\": -9223372036854775809,\n"), "%s", run);
	ck_assert_msg(strstr(run, "\"huge\": -123456789012345678901234567890\n"), "%s", run);
	ck_assert_msg(strstr(run, "\"s\": \"123456789012345678901\""), "%s", run);
	ck_assert_msg(strstr(run, "\"lr\": 0.5,"), "%s", run);
	ck_assert_msg(strstr(run, "7,\n      8\n"), "%s", run);
	free(run);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* Param groups that are no JSON list, in a store written before libckpt checked them: the
 * error says the extra is malformed as written, not that the disk damaged a record. */
START_TEST(test_param_groups_stored_unchecked_are_named_malformed_not_damaged)
{
	fixture f;
	setenv("CKPT_STORE_TEST_OLD_INPUT", "1", 1); /* write what older versions accepted */
	ckpt_writer *w = begin_sgd_hand_made(&f);
	static const char *const model[] = {"fc1.weight"};
	put_scalars(w, model, 1, CKPT_GROUP_MODEL, 1);
	ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.param_groups", "not json", 8), 0);
	unsetenv("CKPT_STORE_TEST_OLD_INPUT");
	ck_assert_int_eq(ckpt_writer_commit(w), 0);
	ck_assert_int_eq(ckpt_snapshot_open(&f.snap, f.store), 0);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&f.ck, f.snap, 1), 0);
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(render_checkpoint_pt(&l, f.store, f.ck, NULL), CKPT_ECORRUPT);
	ck_assert_msg(strstr(render_last_error(), "not a JSON list") &&
	                  strstr(render_last_error(), "a malformed extra as its writer stored it"),
	              "%s", render_last_error());
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* A text extra a C program stored with its NUL (strlen + 1) was left out of checkpoint.pt's
 * 'extra' as binary: it is there as str, the NUL trimmed. Other control bytes (one NUL more, a
 * BEL) still mark binary state, left out. */
START_TEST(test_text_extras_stored_with_their_nul_are_in_checkpoint_pt)
{
	fixture f;
	ckpt_writer *w = begin_sgd_hand_made(&f);
	static const char *const model[] = {"fc1.weight"};
	put_scalars(w, model, 1, CKPT_GROUP_MODEL, 1);
	static const char sched[] = "{\"epoch\": 3}";
	ck_assert_int_eq(ckpt_writer_set_extra(w, "sched", sched, sizeof(sched)), 0);
	ck_assert_int_eq(ckpt_writer_set_extra(w, "two_nuls", "x\0", 3), 0);
	ck_assert_int_eq(ckpt_writer_set_extra(w, "bell", "a\ab", 3), 0);
	ck_assert_int_eq(ckpt_writer_set_extra(w, "plain", "cosine", 6), 0);
	view_layout l;
	uint8_t *file = render_sgd_checkpoint_pt(&f, w, "[{\"params\": [0]}]", &l);
	size_t pklen;
	const uint8_t *pk = data_pkl(file, l.size, &pklen);
	static const uint8_t exact[] = "X\x05\0\0\0schedX\x0c\0\0\0{\"epoch\": 3}";
	ck_assert_ptr_nonnull(memmem(pk, pklen, exact, sizeof(exact) - 1));
	char *strings = pickle_strings(pk, pklen);
	ck_assert_msg(strstr(strings, "|extra|plain|cosine|sched|{\"epoch\": 3}|"), "%s", strings);
	ck_assert_ptr_null(strstr(strings, "|bell|"));
	ck_assert_ptr_null(strstr(strings, "|two_nuls|"));
	free(strings);
	free(file);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* torch's class names ("SGD", "Adam", "AdamW"), as a C program writing through libckpt
 * names its optimizer, complete the groups as ckpt-train's lower-case names do: in the run's
 * metadata and in the "optimizer.name" extra. */
START_TEST(test_param_groups_complete_for_torch_class_names_of_the_optimizer)
{
	static const struct {
		const char *name;
		const char *keys;
	} cases[] = {
	    {"SGD", "|param_groups|lr|momentum|dampening|weight_decay|nesterov|maximize|foreach|"
	            "differentiable|params|"},
	    {"Adam", "|param_groups|lr|betas|eps|weight_decay|amsgrad|maximize|foreach|capturable|"
	             "differentiable|fused|params|"},
	    {"AdamW", "|param_groups|lr|betas|eps|weight_decay|amsgrad|foreach|maximize|"
	              "capturable|params|"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int in_extra = 0; in_extra < 2; in_extra++) {
			fixture f;
			ckpt_run_meta meta = {.model = "m", .optimizer = in_extra ? "x" : cases[i].name,
			                      .hyperparams = "{\"lr\": 0.1}", .monitor = "val_loss"};
			ckpt_writer *w = begin_hand_made(&f, &meta);
			static const char *const model[] = {"fc1.weight"};
			put_scalars(w, model, 1, CKPT_GROUP_MODEL, 1);
			static const char groups[] = "[{\"params\": [0]}]";
			ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.param_groups", groups,
			                                       strlen(groups)),
			                 0);
			if (in_extra)
				ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.name", cases[i].name,
				                                       strlen(cases[i].name)),
				                 0);
			view_layout l;
			uint8_t *file = commit_and_render_checkpoint_pt(&f, w, &l);
			size_t pklen;
			const uint8_t *pk = data_pkl(file, l.size, &pklen);
			char *strings = pickle_strings(pk, pklen);
			ck_assert_msg(strstr(strings, cases[i].keys), "%s (%s): %s", cases[i].name,
			              in_extra ? "extra" : "meta", strings);
			free(strings);
			free(file);
			view_layout_free(&l);
			fixture_close(&f);
		}
	}
}
END_TEST

/* A BatchNorm buffer between the parameters and optimizer state for only some of them: the
 * state keys count the parameters (the tensors that are no running statistics), so fc2's
 * buffer is parameter 1's, as torch's state_dict() numbers it (it was key 2, which no group
 * lists: torch.optim dropped it). */
START_TEST(test_optimizer_state_of_some_parameters_skips_norm_buffers)
{
	fixture f;
	ckpt_writer *w = begin_sgd_hand_made(&f);
	static const char *const model[] = {"fc1.weight", "bn1.running_mean", "fc2.weight"};
	put_scalars(w, model, 3, CKPT_GROUP_MODEL, 1);
	static const char *const state[] = {"fc2.weight.momentum_buffer"};
	put_scalars(w, state, 1, CKPT_GROUP_OPTIMIZER, 1);
	view_layout l;
	uint8_t *file = render_sgd_checkpoint_pt(
	    &f, w, "[{\"lr\": 0.1, \"momentum\": 0.9, \"params\": [0, 1]}]", &l);
	size_t pklen;
	const uint8_t *pk = data_pkl(file, l.size, &pklen);
	static const uint8_t fc2[] = "K\x01}(X\x0f\x00\x00\x00momentum_buffer";
	static const uint8_t none0[] = "K\x00}X\x0f\x00\x00\x00momentum_bufferNs";
	static const uint8_t key2[] = "K\x02}";
	ck_assert_ptr_nonnull(memmem(pk, pklen, fc2, sizeof(fc2) - 1));
	ck_assert_ptr_nonnull(memmem(pk, pklen, none0, sizeof(none0) - 1));
	ck_assert_ptr_null(memmem(pk, pklen, key2, sizeof(key2) - 1));
	free(file);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* Groups that carry torch's "param_names" decide the numbering, whatever the model order
 * and buffers: a custom buffer (no running statistic) between the parameters and state for
 * only one of them would otherwise be numbered by model position. */
START_TEST(test_param_names_in_the_groups_number_the_optimizer_state)
{
	fixture f;
	ckpt_writer *w = begin_sgd_hand_made(&f);
	static const char *const model[] = {"fc1.weight", "scale", "fc2.weight", "fc3.weight"};
	put_scalars(w, model, 4, CKPT_GROUP_MODEL, 1);
	static const char *const state[] = {"fc2.weight.momentum_buffer",
	                                    "fc3.weight.momentum_buffer"};
	put_scalars(w, &state[0], 1, CKPT_GROUP_OPTIMIZER, 2);
	put_scalars(w, &state[1], 1, CKPT_GROUP_OPTIMIZER, 3);
	view_layout l;
	uint8_t *file = render_sgd_checkpoint_pt(
	    &f, w,
	    "[{\"lr\": 0.1, \"momentum\": 0.9, \"params\": [0, 1],"
	    " \"param_names\": [\"fc3.weight\", \"fc1.weight\"]},"
	    " {\"lr\": 0.2, \"momentum\": 0.9, \"params\": [2],"
	    " \"param_names\": [\"fc2.weight\"]}]",
	    &l);
	zip_member m[16];
	size_t n = parse_zip(file, l.size, m, 16);
	const uint8_t *pk = file + m[0].offset;
	/* fc3's buffer is key 0, fc2's key 2, fc1 (no state, stepped) a None buffer at key 1 */
	static const uint8_t fc3[] = "K\x00}(X\x0f\x00\x00\x00momentum_buffer";
	static const uint8_t none1[] = "K\x01}X\x0f\x00\x00\x00momentum_bufferNs";
	static const uint8_t fc2[] = "K\x02}(X\x0f\x00\x00\x00momentum_buffer";
	static const uint8_t key3[] = "K\x03}";
	ck_assert_ptr_nonnull(memmem(pk, m[0].size, fc3, sizeof(fc3) - 1));
	ck_assert_ptr_nonnull(memmem(pk, m[0].size, none1, sizeof(none1) - 1));
	ck_assert_ptr_nonnull(memmem(pk, m[0].size, fc2, sizeof(fc2) - 1));
	ck_assert_ptr_null(memmem(pk, m[0].size, key3, sizeof(key3) - 1));
	/* storages are numbered as emitted: the model's 0-3, then key 0's buffer (fc3's, 3.0)
	 * storage 4, key 2's (fc2's, 2.0) storage 5 */
	char *strings = pickle_strings(pk, m[0].size);
	ck_assert_msg(strstr(strings, "|state|momentum_buffer|storage|4|cpu|momentum_buffer|"
	                              "momentum_buffer|storage|5|cpu|"),
	              "%s", strings);
	float seen[2] = {0, 0};
	for (size_t i = 1; i < n; i++)
		for (size_t k = 0; k < 2; k++)
			if (strcmp(m[i].name, k ? "archive/data/5" : "archive/data/4") == 0) {
				ck_assert_uint_eq(m[i].size, 4);
				memcpy(&seen[k], file + m[i].offset, 4);
			}
	ck_assert_msg(seen[0] == 3 && seen[1] == 2, "storage 4: %g, 5: %g", seen[0], seen[1]);
	ck_assert_msg(strstr(strings, "|param_names|fc3.weight|fc1.weight|"), "%s", strings);
	free(strings);
	free(file);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* Param groups that do not fit the model tensors are stored (the commit refuses only groups
 * listing no parameter: torch >= 2.6 names parameters relative to the module the optimizer was
 * built from, an optimizer may hold tensors that are no model tensor): checkpoint.pt, which
 * cannot map them, is refused in one line (more parameters than model tensors made a file
 * torch's load_state_dict() rejected), while model.safetensors and model.pt serve. */
START_TEST(test_param_groups_that_do_not_fit_the_model_tensors_fail_checkpoint_pt_only)
{
	static const struct {
		const char *groups, *why;
	} cases[] = {
	    {"[{\"params\": [0, 1, 2]}]",
	     "epoch 1: checkpoint.pt: optimizer.param_groups lists 3 parameters, the checkpoint "
	     "has 2 model tensors"},
	    {"[{\"params\": [0], \"param_names\": [\"module.fc1.weight\"]}]",
	     "epoch 1: checkpoint.pt: param group 0 names 'module.fc1.weight', which is no model "
	     "tensor"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fixture f;
		ckpt_writer *w = begin_sgd_hand_made(&f);
		static const char *const model[] = {"fc1.weight", "fc1.bias"};
		put_scalars(w, model, 2, CKPT_GROUP_MODEL, 1);
		ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.param_groups", cases[i].groups,
		                                       strlen(cases[i].groups)),
		                 0);
		ck_assert_msg(ckpt_writer_commit(w) == 0, "%s: %s", cases[i].groups,
		              ckpt_last_error());
		ck_assert_int_eq(ckpt_snapshot_open(&f.snap, f.store), 0);
		ck_assert_int_eq(ckpt_snapshot_checkpoint(&f.ck, f.snap, 1), 0);
		view_layout l;
		view_layout_init(&l);
		ck_assert_int_eq(render_checkpoint_pt(&l, f.store, f.ck, NULL), -EINVAL);
		ck_assert_msg(strstr(render_last_error(), cases[i].why) &&
		                  !strchr(render_last_error(), '\n'),
		              "%s: %s", cases[i].groups, render_last_error());
		view_layout_free(&l);
		view_layout_init(&l);
		ck_assert_int_eq(render_safetensors(&l, f.store, f.ck), 0);
		view_layout_free(&l);
		view_layout_init(&l);
		ck_assert_int_eq(render_model_pt(&l, f.store, f.ck, NULL), 0);
		view_layout_free(&l);
		fixture_close(&f);
	}
}
END_TEST

START_TEST(test_sgd_without_momentum_keeps_a_none_buffer_per_parameter)
{
	fixture f;
	fixture_spec spec = {.device = "cpu", .momentum_zero = true};
	fixture_open(&f, &spec);
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(render_checkpoint_pt(&l, f.store, f.ck, NULL), 0);
	uint8_t *file = read_whole(&l, f.snap);
	zip_member m[64];
	size_t n = parse_zip(file, l.size, m, 64);
	ck_assert_uint_eq(n, 3 + 16);
	const uint8_t *pk = file + m[0].offset;
	/* 0..3 are in the param group: {'momentum_buffer': None}; 4.. are not grouped */
	static const uint8_t none3[] = {'K', 3, '}', 'X', 15, 0, 0, 0, 'm', 'o', 'm', 'e', 'n', 't',
	                                'u', 'm', '_', 'b', 'u', 'f', 'f', 'e', 'r', 'N', 's'};
	ck_assert_ptr_nonnull(memmem(pk, m[0].size, none3, sizeof(none3)));
	uint8_t none4[sizeof(none3)];
	memcpy(none4, none3, sizeof(none3));
	none4[1] = 4;
	ck_assert_ptr_null(memmem(pk, m[0].size, none4, sizeof(none4)));
	free(file);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

static char *model_pt_strings(fixture *f, const view_render_options *opts, int want_rc)
{
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(render_model_pt(&l, f->store, f->ck, opts), want_rc);
	if (want_rc) {
		view_layout_free(&l);
		return NULL;
	}
	uint8_t *file = read_whole(&l, f->snap);
	zip_member m[32];
	parse_zip(file, l.size, m, 32);
	char *s = pickle_strings(file + m[0].offset, m[0].size);
	free(file);
	view_layout_free(&l);
	return s;
}

START_TEST(test_gpu_tensors_are_written_cpu_unless_told_to_keep_or_map)
{
	fixture f;
	fixture_spec spec = {.device = "cuda:0"};
	fixture_open(&f, &spec);
	char *s = model_pt_strings(&f, NULL, 0);
	ck_assert_ptr_nonnull(strstr(s, "fc1.weight|storage|0|cpu|"));
	ck_assert_ptr_null(strstr(s, "cuda"));
	free(s);
	view_render_options keep = {.map_location = VIEW_MAP_KEEP};
	s = model_pt_strings(&f, &keep, 0);
	ck_assert_ptr_nonnull(strstr(s, "fc1.weight|storage|0|cuda:0|"));
	ck_assert_ptr_null(strstr(s, "|cpu|"));
	free(s);
	view_render_options dev = {.map_location = VIEW_MAP_DEVICE, .map_device = "cuda:3"};
	s = model_pt_strings(&f, &dev, 0);
	ck_assert_ptr_nonnull(strstr(s, "fc1.bias|storage|1|cuda:3|"));
	ck_assert_ptr_null(strstr(s, "cuda:0"));
	free(s);
	view_render_options bad = {.map_location = VIEW_MAP_DEVICE, .map_device = "gpu0"};
	ck_assert_ptr_null(model_pt_strings(&f, &bad, -EINVAL));
	ck_assert_ptr_nonnull(strstr(render_last_error(), "gpu0"));
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(render_checkpoint_pt(&l, f.store, f.ck, &bad), -EINVAL);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* libckpt's writer refuses what older versions accepted unless this is set */
extern int store_test_old_input;

/* Param groups stored with C's strlen + 1 (libckpt drops that NUL now; older stores hold it)
 * are read without it, by checkpoint.pt and param_groups.json alike (jansson refused them). */
START_TEST(test_param_groups_stored_with_their_nul_by_an_older_version_are_read)
{
	fixture f;
	ckpt_writer *w = begin_sgd_hand_made(&f);
	static const char *const model[] = {"fc1.weight"};
	put_scalars(w, model, 1, CKPT_GROUP_MODEL, 1);
	static const char groups[] = "[{\"momentum\": 0.5, \"params\": [0]}]";
	store_test_old_input = 1;
	ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.param_groups", groups, sizeof(groups)),
	                 0);
	store_test_old_input = 0;
	ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.name", "sgd", 3), 0);
	ckpt_writer_set_step(w, 1);
	view_layout l;
	uint8_t *file = commit_and_render_checkpoint_pt(&f, w, &l);
	ck_assert_ptr_nonnull(file);
	free(file);
	view_layout_free(&l);
	view_layout_init(&l);
	ck_assert_int_eq(view_render_param_groups(&l, f.ck), 0);
	file = read_whole(&l, f.snap);
	ck_assert_ptr_null(memchr(file, 0, l.size));
	ck_assert_ptr_nonnull(memmem(file, l.size, "\"momentum\": 0.5", 15));
	free(file);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* Only device strings torch reads back as themselves: torch 1.13 rejects "cuda:01" and keeps
 * the index in an int8, so "cuda:255" loads onto the current device and "cuda:200" as -56. */
START_TEST(test_map_location_takes_only_devices_torch_reads_back)
{
	view_render_options o;
	ck_assert_int_eq(render_parse_map_location(&o, "cuda:127"), 0);
	ck_assert_int_eq(o.map_location, VIEW_MAP_DEVICE);
	ck_assert_str_eq(o.map_device, "cuda:127");
	ck_assert_int_eq(render_parse_map_location(&o, "cuda"), 0);
	ck_assert_int_eq(render_parse_map_location(&o, "cuda:0"), 0);
	ck_assert_int_eq(render_parse_map_location(&o, "cuda:128"), -EINVAL);
	ck_assert_int_eq(render_parse_map_location(&o, "cuda:255"), -EINVAL);
	ck_assert_int_eq(render_parse_map_location(&o, "cuda:01"), -EINVAL);
	ck_assert_int_eq(render_parse_map_location(&o, "cuda:00"), -EINVAL);
	ck_assert_int_eq(o.map_location, VIEW_MAP_CPU);

	char loc[CKPT_MAX_DEVICE + 1];
	ck_assert_int_eq(render_torch_location(loc, "cuda:007"), 0);
	ck_assert_str_eq(loc, "cuda:7");
	ck_assert_int_eq(render_torch_location(loc, "cpu"), 0);
	ck_assert_str_eq(loc, "cpu");
	ck_assert_int_eq(render_torch_location(loc, "cuda:200"), -EINVAL);

	/* a store recorded on "cuda:01" (libckpt refuses it now; older stores hold it): keep
	 * writes the spelling torch reads */
	fixture f;
	fixture_spec spec = {.device = "cuda:01"};
	store_test_old_input = 1;
	fixture_open(&f, &spec);
	store_test_old_input = 0;
	view_render_options keep = {.map_location = VIEW_MAP_KEEP};
	char *s = model_pt_strings(&f, &keep, 0);
	ck_assert_ptr_nonnull(strstr(s, "fc1.weight|storage|0|cuda:1|"));
	ck_assert_ptr_null(strstr(s, "cuda:01"));
	free(s);
	view_render_options dev = {.map_location = VIEW_MAP_DEVICE, .map_device = "cuda:255"};
	ck_assert_ptr_null(model_pt_strings(&f, &dev, -EINVAL));
	fixture_close(&f);
	/* recorded on "cuda:200": keep refuses rather than name another device */
	spec.device = "cuda:200";
	fixture_open(&f, &spec);
	ck_assert_ptr_null(model_pt_strings(&f, &keep, -EIO));
	ck_assert_ptr_nonnull(strstr(render_last_error(), "cuda:200"));
	s = model_pt_strings(&f, NULL, 0);
	ck_assert_ptr_nonnull(strstr(s, "|cpu|"));
	free(s);
	fixture_close(&f);
}
END_TEST

START_TEST(test_names_that_are_not_utf8_are_refused_with_a_message)
{
	fixture f;
	fixture_spec spec = {.device = "cpu", .bad_name = "bad\xff\xfename"};
	fixture_open(&f, &spec);
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(render_safetensors(&l, f.store, f.ck), -EILSEQ);
	ck_assert_ptr_nonnull(strstr(render_last_error(), "UTF-8"));
	ck_assert_ptr_nonnull(strstr(render_last_error(), "'bad\\xff\\xfename'"));
	view_layout_free(&l);
	ck_assert_int_eq(render_model_pt(&l, f.store, f.ck, NULL), -EILSEQ);
	ck_assert_ptr_nonnull(strstr(render_last_error(), "UTF-8"));
	ck_assert_ptr_nonnull(strstr(render_last_error(), "a model tensor name"));
	ck_assert_ptr_nonnull(strstr(render_last_error(), "'bad\\xff\\xfename'"));
	view_layout_free(&l);
	ck_assert_int_eq(render_checkpoint_pt(&l, f.store, f.ck, NULL), -EILSEQ);
	view_layout_free(&l);
	fixture_close(&f);

	char buf[16];
	render_printable_name(buf, sizeof(buf), "a\\b\x01\xff");
	ck_assert_str_eq(buf, "a\\x5cb\\x01\\xff");
	render_printable_name(buf, sizeof(buf), "0123456789abcdefghij");
	ck_assert_str_eq(buf, "0123456789ab...");
	ck_assert_uint_eq(strlen(buf), 15);
	ck_assert(ckpt_utf8_valid("fc1.weight"));
	ck_assert(ckpt_utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80"));
	ck_assert(!ckpt_utf8_valid("\xc0\xaf"));         /* overlong '/' */
	ck_assert(!ckpt_utf8_valid("\xed\xa0\x80"));     /* surrogate */
	ck_assert(!ckpt_utf8_valid("\xf4\x90\x80\x80")); /* > U+10FFFF */
	ck_assert(!ckpt_utf8_valid("\xe2\x82"));         /* truncated */
	ck_assert_uint_eq(ckpt_utf8_sequence("\xf0\x9f\x98\x80!"), 4);
	ck_assert_uint_eq(ckpt_utf8_sequence("\xc3\xa9"), 2);
	ck_assert_uint_eq(ckpt_utf8_sequence("\xff"), 0);
}
END_TEST

START_TEST(test_hostile_but_valid_names_are_escaped_in_safetensors_json)
{
	fixture f;
	fixture_spec spec = {.device = "cpu", .bad_name = "q\"uo\\te\x01/../x"};
	fixture_open(&f, &spec);
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(render_safetensors(&l, f.store, f.ck), 0);
	uint8_t *file = read_whole(&l, f.snap);
	json_error_t err;
	json_t *h = json_loadb((const char *)file + 8, le64(file), 0, &err);
	ck_assert_msg(h != NULL, "%s", err.text);
	ck_assert_ptr_nonnull(json_object_get(h, "q\"uo\\te\x01/../x"));
	json_decref(h);
	free(file);
	view_layout_free(&l);
	ck_assert_int_eq(render_model_pt(&l, f.store, f.ck, NULL), 0);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* A model tensor named "__metadata__" would be a second "__metadata__" key in the header, which
 * safetensors readers reject (or take for the metadata): refused with a message. model.pt can
 * hold the name. */
START_TEST(test_safetensors_refuses_a_tensor_named_metadata)
{
	fixture f;
	fixture_spec spec = {.device = "cpu", .bad_name = "__metadata__"};
	fixture_open(&f, &spec);
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(render_safetensors(&l, f.store, f.ck), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(render_last_error(), "__metadata__"));
	view_layout_free(&l);
	ck_assert_int_eq(render_model_pt(&l, f.store, f.ck, NULL), 0);
	view_layout_free(&l);
	fixture_close(&f);
}
END_TEST

/* Any byte range equals the same range of the whole file, across segment and chunk edges. */
static void check_ranges(view_layout *l, ckpt_snapshot *snap)
{
	uint8_t *whole = read_whole(l, snap);
	uint8_t *buf = malloc(l->size + 16);
	ck_assert_ptr_nonnull(buf);
	uint64_t state = 0x1234567;
	for (int i = 0; i < 400; i++) {
		state = state * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t off = (state >> 20) % (l->size + 8);
		state = state * 6364136223846793005ull + 1442695040888963407ull;
		size_t len = (size_t)((state >> 20) % (i % 4 == 0 ? l->size + 8 : 130));
		size_t got;
		ck_assert_int_eq(view_layout_read(l, snap, off, buf, len, &got), 0);
		uint64_t want = off >= l->size ? 0 : (len < l->size - off ? len : l->size - off);
		ck_assert_uint_eq(got, want);
		if (got)
			ck_assert_int_eq(memcmp(buf, whole + off, got), 0);
	}
	/* every segment boundary, one byte either side */
	for (size_t s = 0; s < l->nsegs; s++) {
		uint64_t off = l->segs[s].file_offset;
		uint64_t start = off >= 3 ? off - 3 : 0;
		size_t got;
		ck_assert_int_eq(view_layout_read(l, snap, start, buf, 7, &got), 0);
		ck_assert_int_eq(memcmp(buf, whole + start, got), 0);
	}
	free(buf);
	free(whole);
}

START_TEST(test_random_range_reads_equal_the_whole_file)
{
	fixture f;
	fixture_spec spec = {.device = "cuda:0", .adam = true};
	fixture_open(&f, &spec);
	for (int which = 0; which < 3; which++) {
		view_layout l;
		view_layout_init(&l);
		int rc = which == 0 ? render_safetensors(&l, f.store, f.ck) :
		         which == 1 ? render_model_pt(&l, f.store, f.ck, NULL) :
		                      render_checkpoint_pt(&l, f.store, f.ck, NULL);
		ck_assert_int_eq(rc, 0);
		check_ranges(&l, f.snap);
		/* the same render twice gives the same size and bytes (stable st_size) */
		view_layout again;
		view_layout_init(&again);
		rc = which == 0 ? render_safetensors(&again, f.store, f.ck) :
		     which == 1 ? render_model_pt(&again, f.store, f.ck, NULL) :
		                  render_checkpoint_pt(&again, f.store, f.ck, NULL);
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(again.size, l.size);
		uint8_t *a = read_whole(&l, f.snap), *b = read_whole(&again, f.snap);
		ck_assert_int_eq(memcmp(a, b, l.size), 0);
		free(a);
		free(b);
		view_layout_free(&again);
		view_layout_free(&l);
	}
	fixture_close(&f);
}
END_TEST

/* ---- zip64 ------------------------------------------------------------------------------ */

START_TEST(test_zip64_extras_appear_for_sizes_and_offsets_past_4gib)
{
	/* renders need no tensor bytes: a 5 GiB tensor is only metadata here, and only the
	 * synthesized header bytes are read back */
	ckpt_tensor_info big = {.name = "big", .dtype = CKPT_DTYPE_UINT8, .ndim = 1,
	                        .shape = {5ull << 30}, .device = "cpu", .nbytes = 5ull << 30,
	                        .crc32 = 0xdeadbeef, .nchunks = 5, .chunk_size = 1ull << 30};
	ckpt_tensor_info small = {.name = "small", .dtype = CKPT_DTYPE_UINT8, .ndim = 1,
	                          .shape = {4}, .device = "cpu", .nbytes = 4, .crc32 = 0x01020304,
	                          .nchunks = 1, .chunk_size = 1ull << 30};
	zip_entry entries[] = {
	    {.name = "archive/data.pkl", .bytes = "\x80\x02.", .len = 3},
	    {.name = "archive/data/0", .tensor = &big},
	    {.name = "archive/data/1", .tensor = &small},
	};
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(zip_render(&l, entries, 3), 0);
	/* local header of entry 1 starts right after entry 0's 64-aligned payload */
	uint8_t head[30 + 14 + 24]; /* up to the padding field; the payload is not readable */
	size_t got;
	ck_assert_int_eq(view_layout_read(&l, NULL, 64 + 3, head, sizeof(head), &got), 0);
	ck_assert_uint_eq(got, sizeof(head));
	ck_assert_uint_eq(le32(head), 0x04034b50u);
	ck_assert_uint_eq(le16(head + 4), 45);
	ck_assert_uint_eq(le32(head + 18), 0xFFFFFFFFu);
	ck_assert_uint_eq(le32(head + 22), 0xFFFFFFFFu);
	uint16_t namelen = le16(head + 26), extralen = le16(head + 28);
	const uint8_t *extra = head + 30 + namelen;
	ck_assert_uint_eq(le16(extra), 1);
	ck_assert_uint_eq(le16(extra + 2), 16);
	ck_assert_uint_eq(le64(extra + 4), 5ull << 30);
	ck_assert_uint_eq(le64(extra + 12), 5ull << 30);
	ck_assert_uint_eq(le16(extra + 20), 0x4246);
	uint64_t payload = 67 + 30 + namelen + extralen;
	ck_assert_uint_eq(payload % 64, 0);

	/* the end records and the central directory */
	uint8_t tail[98];
	ck_assert_int_eq(view_layout_read(&l, NULL, l.size - 98, tail, 98, &got), 0);
	ck_assert_uint_eq(got, 98);
	uint64_t cd_size = le64(tail + 40), cd_off = le64(tail + 48);
	ck_assert_uint_eq(le64(tail + 32), 3);
	ck_assert_uint_eq(le32(tail + 56 + 20 + 16), 0xFFFFFFFFu); /* end record: cd offset */
	uint8_t *cd = malloc(cd_size);
	ck_assert_int_eq(view_layout_read(&l, NULL, cd_off, cd, cd_size, &got), 0);
	ck_assert_uint_eq(got, cd_size);
	const uint8_t *e0 = cd, *e1 = e0 + 46 + le16(e0 + 28) + le16(e0 + 30);
	const uint8_t *e2 = e1 + 46 + le16(e1 + 28) + le16(e1 + 30);
	ck_assert_uint_eq(le16(e0 + 30), 0); /* small, low offset: no extra */
	ck_assert_uint_eq(le16(e1 + 30), 20); /* sizes only */
	ck_assert_uint_eq(le32(e1 + 20), 0xFFFFFFFFu);
	ck_assert_uint_eq(le32(e1 + 16), 0xdeadbeefu);
	ck_assert_uint_eq(le64(e1 + 46 + 14 + 4), 5ull << 30);
	ck_assert_uint_eq(le16(e2 + 30), 12); /* offset only */
	ck_assert_uint_eq(le32(e2 + 42), 0xFFFFFFFFu);
	uint64_t off2 = le64(e2 + 46 + 14 + 4);
	ck_assert_uint_eq(off2, payload + (5ull << 30));
	uint64_t header2 = 30 + 14 + 4; /* fixed header, "archive/data/1", padding field */
	uint64_t pad2 = (64 - (off2 + header2) % 64) % 64;
	ck_assert_uint_eq(cd_off, off2 + header2 + pad2 + 4);
	free(cd);
	view_layout_free(&l);
}
END_TEST

/* sizes come from the store: a hostile one must not make file offsets wrap or st_size
 * negative */
START_TEST(test_layouts_refuse_to_grow_past_the_largest_file_size)
{
	ckpt_tensor_info big = {
	    .name = "big",
	    .dtype = CKPT_DTYPE_UINT8,
	    .ndim = 1,
	    .shape = {UINT64_C(1) << 62},
	    .nbytes = UINT64_C(1) << 62,
	    .chunk_size = UINT64_C(1) << 30,
	    .nchunks = UINT32_MAX,
	};
	ckpt_tensor_info bf = big;
	bf.dtype = CKPT_DTYPE_BFLOAT16;
	bf.shape[0] = big.nbytes / 2;
	view_layout l;
	view_layout_init(&l);
	ck_assert_int_eq(view_layout_add_bytes(&l, "header", 6), 0);
	ck_assert_int_eq(view_layout_add_tensor(&l, &big, false), 0);
	ck_assert_int_eq(view_layout_add_tensor(&l, &big, false), -EFBIG);
	ck_assert_int_eq(view_layout_add_tensor(&l, &bf, true), -EFBIG);
	ck_assert_uint_eq(l.size, 6 + big.nbytes);
	ck_assert_uint_eq(l.nsegs, 2);
	view_layout_free(&l);
	view_layout_init(&l);
	ck_assert_int_eq(view_layout_add_tensor(&l, &bf, true), -EFBIG); /* 2^63 > INT64_MAX */
	bf.nbytes -= 2;
	bf.shape[0] -= 1;
	ck_assert_int_eq(view_layout_add_tensor(&l, &bf, true), 0);
	ck_assert_uint_eq(l.size, 2 * bf.nbytes);
	ck_assert_int_eq(view_layout_add_bytes(&l, "x", 1), 0);
	ck_assert_int_eq(view_layout_add_zeros(&l, 8), -EFBIG);
	view_layout_free(&l);
}
END_TEST

/* safetensors metadata and the view's JSON/CSV print numbers alike (one formatter) */
START_TEST(test_doubles_print_shortest_without_exponent_like_python_repr)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
	    {0.1, "0.1"},
	    {1000, "1000"},
	    {0.25, "0.25"},
	    {1e-08, "1e-08"},
	    {1e16, "1e+16"},
	    {123456.5, "123456.5"},
	    {-2.5, "-2.5"},
	    {1.0 / 3, "0.3333333333333333"},
	};
	char buf[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		render_format_double(buf, sizeof(buf), cases[i].v);
		ck_assert_str_eq(buf, cases[i].text);
	}
	render_format_double(buf, sizeof(buf), NAN);
	ck_assert_str_eq(buf, "nan");
	render_format_double(buf, sizeof(buf), -INFINITY);
	ck_assert_str_eq(buf, "-inf");
}
END_TEST

static Suite *render_suite(void)
{
	Suite *s = suite_create("render");
	TCase *tc = tcase_create("render");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pickle_ints_use_the_shortest_opcode);
	tcase_add_test(tc, test_pickle_floats_are_big_endian_binfloat);
	tcase_add_test(tc, test_safetensors_header_is_padded_sorted_and_covers_the_file);
	tcase_add_test(tc, test_every_dtype_has_a_storage_class_and_safetensors_name);
	tcase_add_test(tc, test_model_pt_is_an_aligned_zip_with_correct_crcs_and_tensor_payloads);
	tcase_add_test(tc, test_checkpoint_pt_keys_optimizer_state_by_parameter_index);
	tcase_add_test(tc, test_checkpoint_pt_matches_optimizer_tensors_to_the_longest_parameter_prefix);
	tcase_add_test(tc, test_param_groups_complete_from_the_run_hyperparameters);
	tcase_add_test(tc, test_hyperparameters_keep_integers_exact_beside_one_past_64_bits);
	tcase_add_test(tc, test_param_groups_stored_unchecked_are_named_malformed_not_damaged);
	tcase_add_test(tc, test_text_extras_stored_with_their_nul_are_in_checkpoint_pt);
	tcase_add_test(tc, test_param_groups_complete_for_torch_class_names_of_the_optimizer);
	tcase_add_test(tc, test_optimizer_state_of_some_parameters_skips_norm_buffers);
	tcase_add_test(tc, test_param_names_in_the_groups_number_the_optimizer_state);
	tcase_add_test(tc, test_param_groups_that_do_not_fit_the_model_tensors_fail_checkpoint_pt_only);
	tcase_add_test(tc, test_sgd_without_momentum_keeps_a_none_buffer_per_parameter);
	tcase_add_test(tc, test_gpu_tensors_are_written_cpu_unless_told_to_keep_or_map);
	tcase_add_test(tc, test_map_location_takes_only_devices_torch_reads_back);
	tcase_add_test(tc, test_param_groups_stored_with_their_nul_by_an_older_version_are_read);
	tcase_add_test(tc, test_names_that_are_not_utf8_are_refused_with_a_message);
	tcase_add_test(tc, test_hostile_but_valid_names_are_escaped_in_safetensors_json);
	tcase_add_test(tc, test_safetensors_refuses_a_tensor_named_metadata);
	tcase_add_test(tc, test_random_range_reads_equal_the_whole_file);
	tcase_add_test(tc, test_zip64_extras_appear_for_sizes_and_offsets_past_4gib);
	tcase_add_test(tc, test_doubles_print_shortest_without_exponent_like_python_repr);
	tcase_add_test(tc, test_layouts_refuse_to_grow_past_the_largest_file_size);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(render_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
