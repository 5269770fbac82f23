/* tests/unit/check_train.c - the engine: maths, data loaders, optimizers, the epoch loop
 *
 * Gradients are checked against central finite differences; IDX and CSV files (good and
 * malformed) are written into a fresh mkdtemp directory; whole runs use the built-in synthetic
 * data with tiny layers, so every test takes well under a second even under ASan.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt/store.h"
#include "train/backend.h"
#include "train/data.h"
#include "train/engine.h"
#include "train/error.h"
#include "train/model.h"
#include "train/optim.h"
#include "train/rng.h"
#include "test_dir.h"

/* ---- temp dirs -------------------------------------------------------------------------- */

static char tmpdir[256];

static void setup(void)
{
	test_dir_make(tmpdir, sizeof(tmpdir), "check_train");
}

static void teardown(void)
{
	test_dir_remove(tmpdir);
}

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* ---- gradients -------------------------------------------------------------------------- */

static double batch_loss(train_mlp *m, uint32_t rows)
{
	double loss = 0;
	uint64_t correct = 0;
	train_mlp_forward_eval(m, rows, &loss, &correct);
	return loss / rows;
}

START_TEST(test_gradients_match_finite_differences)
{
	train_backend *be;
	ck_assert_int_eq(train_backend_create(&be, "cpu", 1), 0);
	uint32_t sizes[] = {6, 9, 7, 4};
	const uint32_t rows = 5;
	train_mlp *m;
	ck_assert_int_eq(train_mlp_create(&m, be, sizes, 4, rows), 0);
	train_rng rng;
	train_rng_seed(&rng, 42);
	ck_assert_int_eq(train_mlp_init(m, &rng), 0);
	/* larger weights make the ReLUs matter and the gradients big enough to compare */
	for (size_t i = 0; i < train_mlp_param_count(m); i++) {
		float *p = train_mlp_param(m, i);
		for (size_t j = 0; j < train_mlp_param_numel(m, i); j++)
			p[j] *= 2.0f;
	}
	float x[5 * 6];
	int32_t y[5] = {0, 3, 1, 2, 3};
	uint32_t idx[5] = {0, 1, 2, 3, 4};
	for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
		x[i] = train_rng_uniform(&rng);
	train_mlp_load_batch(m, x, y, idx, rows);
	double loss = 0;
	uint64_t correct = 0;
	train_mlp_forward_backward(m, rows, &loss, &correct);
	ck_assert(isfinite(loss));
	size_t checked = 0;
	for (size_t i = 0; i < train_mlp_param_count(m); i++) {
		float *p = train_mlp_param(m, i);
		const float *g = train_mlp_grad(m, i);
		float *grad = malloc(train_mlp_param_numel(m, i) * sizeof(float));
		memcpy(grad, g, train_mlp_param_numel(m, i) * sizeof(float));
		for (size_t j = 0; j < train_mlp_param_numel(m, i); j++) {
			const float h = 1e-2f;
			float saved = p[j];
			p[j] = saved + h;
			double up = batch_loss(m, rows);
			p[j] = saved - h;
			double down = batch_loss(m, rows);
			p[j] = saved;
			double numeric = (up - down) / (2.0 * (double)h);
			double diff = fabs(numeric - grad[j]);
			ck_assert_msg(diff <= 2e-3 + 2e-2 * fabs(numeric),
			              "param %zu[%zu]: analytic %g numeric %g", i, j, grad[j],
			              numeric);
			checked++;
		}
		free(grad);
	}
	ck_assert_uint_eq(checked, 6 * 9 + 9 + 9 * 7 + 7 + 7 * 4 + 4);
	train_mlp_free(m);
	train_backend_destroy(be);
}
END_TEST

/* Values in messages: the shortest text that reads back as the same double, as Python's repr,
 * subnormals included (1e-310 printed as 9.99999999999997e-311 with 15 digits or more). */
START_TEST(test_double_text_is_the_shortest_that_reads_back)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {{0.1, "0.1"},       {0.10000001, "0.10000001"}, {1e-310, "1e-310"},
	             {5e-324, "5e-324"}, {0.1 + 0.2, "0.30000000000000004"},
	             {1e-8, "1e-08"},    {0, "0"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32];
		ck_assert_str_eq(train_double_text(buf, sizeof(buf), cases[i].v), cases[i].text);
	}
}
END_TEST

START_TEST(test_cross_entropy_is_stable_for_huge_logits)
{
	train_backend *be;
	ck_assert_int_eq(train_backend_create(&be, "cpu", 1), 0);
	float logits[2 * 3] = {1000.0f, -1000.0f, 0.0f, -5000.0f, 5000.0f, 4999.0f};
	int32_t labels[2] = {1, 2};
	float d[6];
	double loss = 0;
	uint64_t correct = 0;
	be->softmax_xent(be, d, logits, labels, 2, 3, &loss, &correct);
	/* row 0: -log_softmax[1] = 2000; row 1: log(1 + e^-1 + ...) + 1 */
	ck_assert(isfinite(loss));
	ck_assert_double_eq_tol(loss, 2000.0 + (1.0 + log(1.0 + exp(-1.0))), 1e-3);
	ck_assert_uint_eq(correct, 0);
	for (int i = 0; i < 6; i++)
		ck_assert(isfinite(d[i]));
	ck_assert_float_eq_tol(d[0], 0.5f, 1e-6f);  /* (1 - 0) / 2 rows */
	ck_assert_float_eq_tol(d[1], -0.5f, 1e-6f); /* (0 - 1) / 2 */
	train_backend_destroy(be);
}
END_TEST

START_TEST(test_sgd_and_adam_steps_follow_torch_formulas)
{
	train_backend *be;
	ck_assert_int_eq(train_backend_create(&be, "cpu", 1), 0);
	/* SGD, momentum 0.9, dampening 0.1, weight decay 0.01, nesterov off, two steps */
	float p = 1.0f, g = 0.5f, buf = 0;
	train_sgd_params sp = {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01};
	be->sgd_step(be, &p, &g, &buf, 1, &sp, true);
	double d1 = 0.5 + 0.01 * 1.0; /* first step: buf = d_p */
	ck_assert_float_eq_tol(buf, (float)d1, 1e-7f);
	ck_assert_float_eq_tol(p, (float)(1.0 - 0.1 * d1), 1e-7f);
	double p1 = 1.0 - 0.1 * d1;
	be->sgd_step(be, &p, &g, &buf, 1, &sp, false);
	double d2 = 0.5 + 0.01 * p1, b2 = 0.9 * d1 + 0.9 * d2;
	ck_assert_float_eq_tol(buf, (float)b2, 1e-6f);
	ck_assert_float_eq_tol(p, (float)(p1 - 0.1 * b2), 1e-6f);
	/* Adam step 1 with weight decay: update is lr * sign-ish */
	float w = 1.0f, m = 0, v = 0, gr = 0.2f;
	train_adam_params ap = {.lr = 0.01,
	                        .beta1 = 0.9,
	                        .beta2 = 0.999,
	                        .eps = 1e-8,
	                        .weight_decay = 0.1,
	                        .step_size = 0.01 / (1 - 0.9),
	                        .bias_correction2_sqrt = sqrt(1 - 0.999)};
	be->adam_step(be, &w, &gr, &m, &v, 1, &ap);
	double geff = 0.2 + 0.1, mm = 0.1 * geff, vv = 0.001 * geff * geff;
	double expect = 1.0 - (0.01 / 0.1) * mm / (sqrt(vv) / sqrt(0.001) + 1e-8);
	ck_assert_float_eq_tol(m, (float)mm, 1e-7f);
	ck_assert_float_eq_tol(v, (float)vv, 1e-9f);
	ck_assert_float_eq_tol(w, (float)expect, 1e-6f);
	/* AdamW decays the weight, not the gradient */
	w = 1.0f, m = 0, v = 0;
	ap.decoupled = true;
	be->adam_step(be, &w, &gr, &m, &v, 1, &ap);
	ck_assert_float_eq_tol(w, (float)(1.0 * (1 - 0.01 * 0.1) - 0.01), 1e-6f);
	train_backend_destroy(be);
}
END_TEST

START_TEST(test_param_groups_json_has_torch_keys)
{
	train_backend *be;
	ck_assert_int_eq(train_backend_create(&be, "cpu", 1), 0);
	uint32_t sizes[] = {3, 2};
	train_mlp *model;
	ck_assert_int_eq(train_mlp_create(&model, be, sizes, 2, 4), 0);
	train_opt_config c = {.kind = TRAIN_OPT_SGD, .lr = 0.1, .momentum = 0.9};
	train_optimizer *opt;
	ck_assert_int_eq(train_optimizer_create(&opt, be, &c, model), 0);
	char *json = train_optimizer_param_groups_json(opt, 0.1, 0);
	ck_assert_str_eq(json, "[{\"lr\":0.1,\"momentum\":0.9,\"dampening\":0,\"weight_decay\":0,"
	                       "\"nesterov\":false,\"maximize\":false,\"foreach\":null,"
	                       "\"differentiable\":false,\"params\":[0,1]}]");
	free(json);
	train_optimizer_free(opt);
	c.kind = TRAIN_OPT_ADAMW;
	c.beta1 = 0.9, c.beta2 = 0.999, c.eps = 1e-8, c.weight_decay = 0.01;
	ck_assert_int_eq(train_optimizer_create(&opt, be, &c, model), 0);
	json = train_optimizer_param_groups_json(opt, 0.001, 0.001);
	ck_assert_ptr_nonnull(strstr(json, "\"amsgrad\":false,\"foreach\":null,\"maximize\":"
	                                   "false,\"capturable\":false,\"params\":[0,1],"
	                                   "\"initial_lr\":0.001}]"));
	free(json);
	train_optimizer_free(opt);
	train_mlp_free(model);
	train_backend_destroy(be);
}
END_TEST

/* torch's class names are optimizer names too, in any case; the kind's name stays the
 * lower-case one a store records */
START_TEST(test_optimizer_names_are_read_in_any_case)
{
	static const struct {
		const char *name;
		train_opt_kind kind;
	} names[] = {{"sgd", TRAIN_OPT_SGD},     {"SGD", TRAIN_OPT_SGD},
	             {"Adam", TRAIN_OPT_ADAM},   {"ADAM", TRAIN_OPT_ADAM},
	             {"AdamW", TRAIN_OPT_ADAMW}, {"adamw", TRAIN_OPT_ADAMW}};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		train_opt_kind kind = TRAIN_OPT_SGD;
		ck_assert_msg(train_opt_parse(&kind, names[i].name) == 0, "%s: %s", names[i].name,
		              train_last_error());
		ck_assert_int_eq(kind, names[i].kind);
	}
	ck_assert_str_eq(train_opt_name(TRAIN_OPT_ADAMW), "adamw");
	train_opt_kind kind;
	ck_assert_int_eq(train_opt_parse(&kind, "RMSprop"), -EINVAL);
	ck_assert_int_eq(train_opt_parse(&kind, "adam "), -EINVAL);
	ck_assert_int_eq(train_opt_parse(&kind, ""), -EINVAL);
}
END_TEST

START_TEST(test_layers_and_schedule_parsing)
{
	uint32_t sizes[TRAIN_MAX_LAYERS + 1], n;
	ck_assert_int_eq(train_parse_layers(sizes, &n, "784,256,128,10"), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(sizes[1], 256);
	ck_assert_int_eq(train_parse_layers(sizes, &n, "784"), -EINVAL);
	ck_assert_int_eq(train_parse_layers(sizes, &n, "784,0,10"), -EINVAL);
	ck_assert_int_eq(train_parse_layers(sizes, &n, "784,-3,10"), -EINVAL);
	ck_assert_int_eq(train_parse_layers(sizes, &n, "784,x,10"), -EINVAL);
	ck_assert_int_eq(train_parse_layers(sizes, &n, ""), -EINVAL);
	train_config c;
	train_config_defaults(&c);
	ck_assert_int_eq(train_parse_schedule(&c, "step:2:0.5"), 0);
	ck_assert_double_eq(train_schedule_lr(&c, 0), 0.1);
	ck_assert_double_eq(train_schedule_lr(&c, 1), 0.1);
	ck_assert_double_eq_tol(train_schedule_lr(&c, 2), 0.05, 1e-15);
	ck_assert_double_eq_tol(train_schedule_lr(&c, 5), 0.025, 1e-15);
	ck_assert_int_eq(train_parse_schedule(&c, "cosine"), 0);
	c.schedule_t_max = 10;
	ck_assert_double_eq_tol(train_schedule_lr(&c, 5), 0.05, 1e-15);
	ck_assert_int_eq(train_parse_schedule(&c, "step:0:0.5"), -EINVAL);
	ck_assert_int_eq(train_parse_schedule(&c, "linear"), -EINVAL);
}
END_TEST

/* ---- IDX and CSV -------------------------------------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

/* write (mode "wb") or append ("ab") @p len bytes to the file @p name in the test directory */
static void put_file(const char *name, const char *mode, const void *bytes, size_t len)
{
	char path[512];
	path_in(path, sizeof(path), name);
	FILE *f = fopen(path, mode);
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* write an IDX file; gz selects gzip; truncate_by drops bytes from the end */
static void write_idx(const char *name, bool gz, uint32_t magic, uint32_t count, uint32_t rows,
                      uint32_t cols, size_t truncate_by, uint8_t label_max)
{
	char path[512];
	path_in(path, sizeof(path), name);
	unsigned char hdr[16];
	size_t hlen = magic == 0x803 ? 16 : 8;
	put_be32(hdr, magic);
	put_be32(hdr + 4, count);
	put_be32(hdr + 8, rows);
	put_be32(hdr + 12, cols);
	size_t body = magic == 0x803 ? (size_t)count * rows * cols : count;
	unsigned char *buf = malloc(hlen + body);
	memcpy(buf, hdr, hlen);
	for (size_t i = 0; i < body; i++)
		buf[hlen + i] = magic == 0x803 ? (unsigned char)(i * 37)
		                               : (unsigned char)(i % (label_max + 1u));
	size_t len = hlen + body - truncate_by;
	if (gz) {
		gzFile f = gzopen(path, "wb");
		ck_assert_ptr_nonnull(f);
		ck_assert_int_eq(gzwrite(f, buf, (unsigned)len), (int)len);
		ck_assert_int_eq(gzclose(f), Z_OK);
	} else {
		FILE *f = fopen(path, "wb");
		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
		ck_assert_int_eq(fclose(f), 0);
	}
	free(buf);
}

static void write_good_idx_set(bool gz)
{
	write_idx(gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte", gz, 0x803, 30, 2,
	          3, 0, 0);
	write_idx(gz ? "train-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte", gz, 0x801, 30, 0,
	          0, 0, 3);
	write_idx("t10k-images-idx3-ubyte", false, 0x803, 7, 2, 3, 0, 0);
	write_idx("t10k-labels-idx1-ubyte.gz", true, 0x801, 7, 0, 0, 0, 3);
}

START_TEST(test_idx_loads_gzipped_and_plain_files)
{
	for (int gz = 0; gz < 2; gz++) {
		teardown();
		setup();
		write_good_idx_set(gz);
		train_data d;
		ck_assert_msg(train_data_load(&d, tmpdir, 6, 4) == 0, "%s", train_last_error());
		ck_assert_uint_eq(d.train.count, 30);
		ck_assert_uint_eq(d.train.features, 6);
		ck_assert_uint_eq(d.test.count, 7);
		ck_assert_float_eq(d.train.x[1], 37.0f / 255.0f);
		ck_assert_int_eq(d.train.y[5], 1);
		for (size_t i = 0; i < 30 * 6; i++)
			ck_assert(d.train.x[i] >= 0.0f && d.train.x[i] <= 1.0f);
		train_data_free(&d);
	}
}
END_TEST

static void expect_load_error(uint32_t features, uint32_t classes, const char *needle)
{
	train_data d;
	int rc = train_data_load(&d, tmpdir, features, classes);
	ck_assert_int_lt(rc, 0);
	ck_assert_msg(strstr(train_last_error(), needle) != NULL, "message '%s' lacks '%s'",
	              train_last_error(), needle);
	ck_assert_ptr_null(d.train.x);
	ck_assert_ptr_null(d.test.x);
}

START_TEST(test_idx_rejects_malformed_files)
{
	write_good_idx_set(true);
	expect_load_error(784, 4, "--layers starts with 784");
	expect_load_error(6, 3, "out of range for 3 classes");
	write_idx("train-images-idx3-ubyte.gz", true, 0x803, 30, 2, 3, 5, 0);
	expect_load_error(6, 4, "truncated");
	write_idx("train-images-idx3-ubyte.gz", true, 0x802, 30, 2, 3, 0, 0);
	expect_load_error(6, 4,
	                  "train-images-idx3-ubyte.gz is an IDX file of unsigned-byte elements "
	                  "with 2 dimensions: only unsigned-byte images (3 dimensions) and labels "
	                  "(1 dimension) are supported");
	write_idx("train-images-idx3-ubyte.gz", true, 0x803, 31, 2, 3, 0, 0);
	expect_load_error(6, 4, "has 30 labels but its images file has 31");
	write_idx("train-images-idx3-ubyte.gz", true, 0x803, 30, 2, 3, 0, 0);
	char path[512];
	path_in(path, sizeof(path), "t10k-labels-idx1-ubyte.gz");
	ck_assert_int_eq(unlink(path), 0);
	expect_load_error(6, 4, "missing data file");
	/* a gzip stream cut in the middle */
	write_idx("t10k-labels-idx1-ubyte.gz", true, 0x801, 7, 0, 0, 0, 3);
	path_in(path, sizeof(path), "train-images-idx3-ubyte.gz");
	ck_assert_int_eq(truncate(path, 30), 0);
	expect_load_error(6, 4, "train-images-idx3-ubyte.gz");
}
END_TEST

/* IDX files of element types or dimension counts ckpt-train does not read say what they are;
 * a label file where images belong (and the reverse) says so; garbage is "not an IDX file" */
START_TEST(test_idx_names_unsupported_types_and_dimensions)
{
	static const struct {
		const char *name;
		uint32_t magic;
		const char *needle;
	} cases[] = {
	    {"train-images-idx3-ubyte", 0xD03,
	     "train-images-idx3-ubyte is an IDX file of float32 elements with 3 dimensions: only "
	     "unsigned-byte images (3 dimensions) and labels (1 dimension) are supported"},
	    {"train-images-idx3-ubyte", 0x801,
	     "train-images-idx3-ubyte is not an IDX image file: it is an IDX label file (magic "
	     "0x00000801, expected 0x00000803)"},
	    {"train-images-idx3-ubyte", 0x12345678,
	     "train-images-idx3-ubyte is not an IDX image file (magic 0x12345678, expected "
	     "0x00000803)"},
	    /* only the 4-byte magic is read, however short the rest of the file */
	    {"train-labels-idx1-ubyte", 0xC01,
	     "train-labels-idx1-ubyte is an IDX file of int32 elements with 1 dimension: only "
	     "unsigned-byte images"},
	    {"train-labels-idx1-ubyte", 0x803,
	     "train-labels-idx1-ubyte is not an IDX label file: it is an IDX image file"},
	    {"train-labels-idx1-ubyte", 0x900,
	     "is an IDX file of signed-byte elements with 0 dimensions"},
	    {"train-labels-idx1-ubyte", 0xE02,
	     "is an IDX file of float64 elements with 2 dimensions"},
	    {"train-labels-idx1-ubyte", 0xB01, "is an IDX file of int16 elements with 1 dimension"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_good_idx_set(false);
		unsigned char magic[4];
		put_be32(magic, cases[i].magic);
		put_file(cases[i].name, "wb", magic, sizeof(magic));
		expect_load_error(6, 4, cases[i].needle);
	}
}
END_TEST

/* gzip: concatenated members are one stream, as `gzip -d` reads them; anything else after the
 * last member is refused, as trailing bytes in a plain file are (zlib's gzread ignored it) */
START_TEST(test_idx_gzip_members_concatenate_and_trailing_bytes_are_refused)
{
	write_good_idx_set(true);
	/* the training labels (8 + 30 bytes) as two members: 10 bytes, then 28 */
	unsigned char labels[38];
	put_be32(labels, 0x801);
	put_be32(labels + 4, 30);
	for (int i = 0; i < 30; i++)
		labels[8 + i] = (unsigned char)(i % 4);
	char path[512];
	path_in(path, sizeof(path), "train-labels-idx1-ubyte.gz");
	for (int part = 0; part < 2; part++) {
		gzFile gz = gzopen(path, part ? "ab" : "wb");
		ck_assert_ptr_nonnull(gz);
		ck_assert_int_eq(gzwrite(gz, labels + (part ? 10 : 0), part ? 28 : 10),
		                 part ? 28 : 10);
		ck_assert_int_eq(gzclose(gz), Z_OK);
	}
	train_data d;
	ck_assert_msg(train_data_load(&d, tmpdir, 6, 4) == 0, "%s", train_last_error());
	ck_assert_uint_eq(d.train.count, 30);
	for (int i = 0; i < 30; i++)
		ck_assert_int_eq(d.train.y[i], i % 4);
	train_data_free(&d);
	put_file("train-labels-idx1-ubyte.gz", "ab", "JUNK", 4);
	expect_load_error(6, 4,
	                  "train-labels-idx1-ubyte.gz has trailing bytes after its gzip data (not "
	                  "another gzip member)");
	/* one byte after the member, and data past the IDX body inside the gzip stream */
	write_good_idx_set(true);
	put_file("train-images-idx3-ubyte.gz", "ab", "\0", 1);
	expect_load_error(6, 4,
	                  "train-images-idx3-ubyte.gz has trailing bytes after its gzip data");
	write_good_idx_set(true);
	gzFile gz = gzopen(path, "ab");
	ck_assert_ptr_nonnull(gz);
	ck_assert_int_eq(gzwrite(gz, "x", 1), 1);
	ck_assert_int_eq(gzclose(gz), Z_OK);
	expect_load_error(6, 4, "train-labels-idx1-ubyte.gz has trailing bytes after its data");
	/* a stream cut inside its member */
	write_good_idx_set(true);
	path_in(path, sizeof(path), "train-images-idx3-ubyte.gz");
	ck_assert_int_eq(truncate(path, 30), 0);
	expect_load_error(6, 4, "cannot read");
	expect_load_error(6, 4, "train-images-idx3-ubyte.gz (its gzip data is truncated)");
}
END_TEST

static void write_text(const char *name, const char *text)
{
	put_file(name, "w", text, strlen(text));
}

/* write @p text as the CSV file @p name and load it, which must succeed */
static void load_csv_text(train_data *out, const char *name, const char *text, uint32_t features,
                          uint32_t classes)
{
	write_text(name, text);
	char path[512];
	path_in(path, sizeof(path), name);
	ck_assert_msg(train_data_load(out, path, features, classes) == 0, "%s: %s", name,
	              train_last_error());
}

START_TEST(test_csv_loads_header_rows_and_test_sibling)
{
	write_text("digits_train.csv", "label,p1,p2,p3\n1,0,255,51\r\n0,255,0,0\n\n2,1,2,3\n");
	write_text("digits_test.csv", "2,0,0,255\n");
	char path[512];
	path_in(path, sizeof(path), "digits_train.csv");
	train_data d;
	ck_assert_msg(train_data_load(&d, path, 3, 3) == 0, "%s", train_last_error());
	ck_assert_uint_eq(d.train.count, 3);
	ck_assert_uint_eq(d.test.count, 1);
	ck_assert_int_eq(d.train.y[0], 1);
	ck_assert_float_eq(d.train.x[1], 1.0f);
	ck_assert_float_eq_tol(d.train.x[2], 0.2f, 1e-7f);
	ck_assert_int_eq(d.test.y[0], 2);
	train_data_free(&d);
	/* no sibling: no test set */
	write_text("plain.csv", "1,0,255,51\n");
	path_in(path, sizeof(path), "plain.csv");
	ck_assert_int_eq(train_data_load(&d, path, 3, 3), 0);
	ck_assert_uint_eq(d.test.count, 0);
	train_data_free(&d);
	/* a UTF-8 byte order mark (spreadsheet exports) does not turn row 1 into a header */
	write_text("bom.csv", "\xef\xbb\xbf" "1,0,255,51\n2,1,2,3\n");
	path_in(path, sizeof(path), "bom.csv");
	ck_assert_msg(train_data_load(&d, path, 3, 3) == 0, "%s", train_last_error());
	ck_assert_uint_eq(d.train.count, 2);
	ck_assert_int_eq(d.train.y[0], 1);
	train_data_free(&d);
	write_text("bomhdr.csv", "\xef\xbb\xbf" "label,a,b,c\n1,0,255,51\n");
	path_in(path, sizeof(path), "bomhdr.csv");
	ck_assert_msg(train_data_load(&d, path, 3, 3) == 0, "%s", train_last_error());
	ck_assert_uint_eq(d.train.count, 1);
	train_data_free(&d);
	/* a first field that only starts like a number ("inf", "nan", "1") is a header's */
	static const char *const headers[] = {"information,a,b,c\n", "nan_label,a,b,c\n",
	                                      "1st_label,a,b,c\n", " 0x ,a,b,c\n"};
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		char text[64];
		snprintf(text, sizeof(text), "%s1,0,255,51\n", headers[i]);
		write_text("hdr.csv", text);
		path_in(path, sizeof(path), "hdr.csv");
		ck_assert_msg(train_data_load(&d, path, 3, 3) == 0, "%s: %s", headers[i],
		              train_last_error());
		ck_assert_uint_eq(d.train.count, 1);
		train_data_free(&d);
	}
}
END_TEST

/* pandas writes the column indices 0,1,...,n-1 as the header of a DataFrame built from an
 * array (pd.DataFrame(np.column_stack([y, X])).to_csv(index=False)): not a sample */
START_TEST(test_csv_header_of_column_indices_is_not_a_sample)
{
	train_data d;
	load_csv_text(&d, "pd_train.csv", "0,1,2,3\n1,0,255,51\n2,1,2,3\n", 3, 3);
	ck_assert_uint_eq(d.train.count, 2);
	ck_assert_int_eq(d.train.y[0], 1);
	ck_assert(d.train.index_header); /* ckpt-train notes it */
	train_data_free(&d);
	/* indices of another count than a label and the features: a sample (refused here as a
	 * row of the wrong length, not dropped) */
	char path[512];
	write_text("short_train.csv", "0,1,2\n1,0,255,51\n");
	path_in(path, sizeof(path), "short_train.csv");
	ck_assert_int_eq(train_data_load(&d, path, 3, 3), -EINVAL);
	ck_assert_ptr_nonnull(strstr(train_last_error(), "short_train.csv:1: expected 4 fields"));
	/* a named header is not an index header */
	load_csv_text(&d, "named_train.csv", "label,a,b,c\n1,0,255,51\n", 3, 3);
	ck_assert(!d.train.index_header);
	train_data_free(&d);
	/* 784 pixels: the header's 257th field (256) was refused as a pixel */
	size_t cap = 785 * 5 + 785 * 2 + 2, used = 0;
	char *text = malloc(cap);
	ck_assert_ptr_nonnull(text);
	for (int i = 0; i <= 784; i++)
		used += (size_t)snprintf(text + used, cap - used, i ? ",%d" : "%d", i);
	used += (size_t)snprintf(text + used, cap - used, "\n2");
	for (int i = 0; i < 784; i++)
		used += (size_t)snprintf(text + used, cap - used, ",0");
	snprintf(text + used, cap - used, "\n");
	load_csv_text(&d, "wide_train.csv", text, 784, 10);
	free(text);
	ck_assert_uint_eq(d.train.count, 1);
	ck_assert_int_eq(d.train.y[0], 2);
	train_data_free(&d);
	/* blanks around the indices, as around values */
	load_csv_text(&d, "blank_train.csv", " 0 , 1,\t2,3 \n1,0,255,51\n", 3, 3);
	ck_assert_uint_eq(d.train.count, 1);
	train_data_free(&d);
	/* anything else that is numbers is a sample: other numbers, another order, leading zeros,
	 * a point, the indices on line 2 */
	static const char *const samples[] = {"0,1,2,4\n", "0,2,1,3\n", "0,1,02,3\n", "0,1,2.0,3\n",
	                                      "1,0,0,0\n0,1,2,3\n"};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		load_csv_text(&d, "num_train.csv", samples[i], 3, 3);
		ck_assert_msg(d.train.count == (i == 4 ? 2 : 1), "'%s': %u samples", samples[i],
		              d.train.count);
		train_data_free(&d);
	}
}
END_TEST

/* the test file's name replaces the last "train" that stands as a word, else the last one */
START_TEST(test_csv_test_sibling_replaces_train_as_a_word)
{
	static const char *const cases[][2] = {
	    {"train_constrained.csv", "test_constrained.csv"},
	    {"data/x_train.csv", "data/x_test.csv"},
	    {"mytrain.csv", "mytest.csv"},
	    {"constrained.csv", "constested.csv"},
	    {"trainer-train2.csv", "trainer-test2.csv"},
	    {"train.restrained.csv", "test.restrained.csv"},
	    {"a/TRAIN-Train.train.csv", "a/TRAIN-Train.test.csv"},
	    {"train/trains.csv", "train/tests.csv"},
	    {"train/x_train_v1.csv", "train/x_test_v1.csv"},
	};
	char buf[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(train_csv_test_sibling(buf, sizeof(buf), cases[i][0]), "%s",
		              cases[i][0]);
		ck_assert_str_eq(buf, cases[i][1]);
	}
	ck_assert(!train_csv_test_sibling(buf, sizeof(buf), "train/blobs.csv"));
}
END_TEST

/* a number below the normal range is what it rounds to (a pixel of about 0), as Python's
 * float() reads it; one too large for a double is refused (test_csv_rejects_bad_rows) */
START_TEST(test_csv_reads_values_that_underflow)
{
	train_data d;
	load_csv_text(&d, "tiny.csv", "1,2,1e-310,1e-400\n1e-400,4.9e-324,-1e-400,255\n", 3, 3);
	static const float pixels[] = {2.0f / 255.0f, 0, 0, 0, 0, 1};
	ck_assert_uint_eq(d.train.count, 2);
	for (size_t i = 0; i < sizeof(pixels) / sizeof(pixels[0]); i++)
		ck_assert_float_eq_tol(d.train.x[i], pixels[i], 1e-7f);
	/* the label 1e-400 is 0, and on line 1 it is a sample, not a header */
	ck_assert_int_eq(d.train.y[1], 0);
	train_data_free(&d);
	load_csv_text(&d, "tiny.csv", "1e-400,0,0,0\n", 3, 3);
	ck_assert_uint_eq(d.train.count, 1);
	train_data_free(&d);
}
END_TEST

/* pixels scaled to [0, 1] before the CSV was written are flagged (ckpt-train notes it) and
 * divided by 255 all the same; one value above 1 in the file clears the flag, and a file of
 * zeros only is not flagged (it looks like neither); a test file is flagged on its own */
START_TEST(test_csv_values_within_0_1_are_flagged_as_scaled_and_still_divided)
{
	train_data d;
	load_csv_text(&d, "unit_train.csv", "1,0.5,0,1\n2,0.25,0.75,0\n", 3, 3);
	ck_assert(d.train.unit_range);
	ck_assert_float_eq_tol(d.train.x[0], 0.5f / 255.0f, 1e-9f);
	ck_assert_float_eq_tol(d.train.x[2], 1.0f / 255.0f, 1e-9f);
	train_data_free(&d);
	load_csv_text(&d, "mixed_train.csv", "1,0.5,0,1\n2,0.25,1.5,0\n", 3, 3);
	ck_assert(!d.train.unit_range);
	train_data_free(&d);
	load_csv_text(&d, "bytes_train.csv", "1,0,255,51\n", 3, 3);
	ck_assert(!d.train.unit_range);
	train_data_free(&d);
	load_csv_text(&d, "zeros_train.csv", "1,0,0,0\n2,0,0.0,0e5\n", 3, 3);
	ck_assert(!d.train.unit_range);
	train_data_free(&d);
	write_text("split_test.csv", "1,0.5,0,1\n");
	load_csv_text(&d, "split_train.csv", "1,0,255,51\n", 3, 3);
	ck_assert_uint_eq(d.test.count, 1);
	ck_assert(!d.train.unit_range);
	ck_assert(d.test.unit_range);
	train_data_free(&d);
	/* IDX and synthetic sets are never flagged */
	ck_assert_int_eq(train_data_load(&d, "synthetic", 4, 3), 0);
	ck_assert(!d.train.unit_range);
	train_data_free(&d);
}
END_TEST

static void expect_csv_error(const char *text, uint32_t classes, const char *needle)
{
	write_text("bad.csv", text);
	char path[512];
	path_in(path, sizeof(path), "bad.csv");
	train_data d;
	ck_assert_int_lt(train_data_load(&d, path, 3, classes), 0);
	ck_assert_msg(strstr(train_last_error(), needle) != NULL, "message '%s' lacks '%s'",
	              train_last_error(), needle);
	ck_assert_ptr_null(d.train.x);
}

START_TEST(test_csv_rejects_bad_rows)
{
	expect_csv_error("1,0,0,0\n1,0,x,0\n", 3, "bad.csv:2: field 3 'x' is not a number");
	expect_csv_error("1,0,0,0\n1,0,0\n", 3, "bad.csv:2: expected 4 fields");
	expect_csv_error("1,0,0,0,9\n", 3, "bad.csv:1: expected 4 fields");
	expect_csv_error("1,0,0,256\n", 3, "outside [0, 255]");
	expect_csv_error("5,0,0,0\n", 3, "label 5 is not an integer in [0, 3)");
	expect_csv_error("1.5,0,0,0\n", 3, "label 1.5");
	expect_csv_error("label,a,b,c\n", 3, "holds no samples");
	expect_csv_error("1,0,,0\n", 3, "field 3 '' is not a number");
	expect_csv_error("1,0,0,1e400\n", 3, "bad.csv:1: field 4 '1e400' is out of range");
	expect_csv_error("1,0,0,-1e400\n", 3, "field 4 '-1e400' is out of range");
	expect_csv_error("1e400,0,0,0\n", 3, "bad.csv:1: field 1 '1e400' is out of range");
	expect_csv_error("1,0,0,inf\n", 3, "field 4 'inf' is not a number");
	/* a NUL byte ended the row early (the rest of the line was dropped unseen) */
	static const char nul[] = "1,2,3\0,4\n0,1,1\n";
	put_file("bad.csv", "wb", nul, sizeof(nul) - 1);
	char path[512];
	path_in(path, sizeof(path), "bad.csv");
	train_data d;
	ck_assert_int_lt(train_data_load(&d, path, 3, 3), 0);
	ck_assert_msg(strstr(train_last_error(), "bad.csv:1: contains a NUL byte (at byte 6 of the "
	                                         "line)") != NULL,
	              "%s", train_last_error());
	static const char nul2[] = "1,2,3,4\n0,\0,1,1\n";
	put_file("bad.csv", "wb", nul2, sizeof(nul2) - 1);
	ck_assert_int_lt(train_data_load(&d, path, 3, 3), 0);
	ck_assert_msg(strstr(train_last_error(), "bad.csv:2: contains a NUL byte") != NULL, "%s",
	              train_last_error());
}
END_TEST

START_TEST(test_synthetic_data_is_deterministic)
{
	train_data a, b;
	ck_assert_int_eq(train_data_load(&a, "synthetic", 8, 3), 0);
	ck_assert_int_eq(train_data_load(&b, "synthetic", 8, 3), 0);
	ck_assert_uint_eq(a.train.count, TRAIN_SYNTHETIC_TRAIN);
	ck_assert_uint_eq(a.test.count, TRAIN_SYNTHETIC_TEST);
	ck_assert_mem_eq(a.train.x, b.train.x, (size_t)a.train.count * 8 * sizeof(float));
	ck_assert_mem_eq(a.test.y, b.test.y, a.test.count * sizeof(int32_t));
	train_data_free(&a);
	train_data_free(&b);
}
END_TEST

/* ---- whole runs ----------------------------------------------------------------------------- */

static void small_config(train_config *c, const char *store, const char *optimizer, uint32_t epochs)
{
	train_config_defaults(c);
	c->store_path = store;
	snprintf(c->data, sizeof(c->data), "synthetic");
	snprintf(c->layers, sizeof(c->layers), "16,12,4");
	ck_assert_int_eq(train_parse_layers(c->sizes, &c->nsizes, c->layers), 0);
	c->epochs = epochs;
	c->batch_size = 64;
	c->val_split = 2000;
	c->threads = 1;
	c->quiet = true;
	c->no_sync = true;
	ck_assert_int_eq(train_opt_parse(&c->opt.kind, optimizer), 0);
	if (c->opt.kind != TRAIN_OPT_SGD)
		c->opt.lr = 0.01;
	c->opt.weight_decay = 1e-3;
}

static void run_ok(train_config *c)
{
	train_result r;
	int rc = train_run(c, &r);
	ck_assert_msg(rc == 0, "train_run: %d %s", rc, train_last_error());
}

/* every tensor, step and non-timing metric of @p epoch is byte-identical in both stores */
static void assert_same_checkpoint(const char *a_path, const char *b_path, uint64_t epoch)
{
	ckpt_store *a, *b;
	ckpt_snapshot *sa, *sb;
	const ckpt_checkpoint *ca, *cb;
	ck_assert_int_eq(ckpt_store_open(&a, a_path, CKPT_OPEN_READONLY), 0);
	ck_assert_int_eq(ckpt_store_open(&b, b_path, CKPT_OPEN_READONLY), 0);
	ck_assert_int_eq(ckpt_snapshot_open(&sa, a), 0);
	ck_assert_int_eq(ckpt_snapshot_open(&sb, b), 0);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&ca, sa, epoch), 0);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&cb, sb, epoch), 0);
	ck_assert_uint_eq(ckpt_checkpoint_step(ca), ckpt_checkpoint_step(cb));
	size_t n = ckpt_checkpoint_tensor_count(ca);
	ck_assert_uint_eq(n, ckpt_checkpoint_tensor_count(cb));
	ck_assert_uint_gt(n, 0);
	for (size_t i = 0; i < n; i++) {
		const ckpt_tensor_info *ta = ckpt_checkpoint_tensor_at(ca, i);
		const ckpt_tensor_info *tb = ckpt_checkpoint_tensor_at(cb, i);
		ck_assert_str_eq(ta->name, tb->name);
		ck_assert_uint_eq(ta->nbytes, tb->nbytes);
		ck_assert_msg(memcmp(ta->hash, tb->hash, 16) == 0 && ta->crc32 == tb->crc32,
		              "tensor %s differs", ta->name);
	}
	static const char *const metrics[] = {"train_loss", "val_loss", "val_acc", "test_acc",
	                                      "lr"};
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
		double va, vb;
		ck_assert_int_eq(ckpt_checkpoint_metric(ca, metrics[i], &va), 0);
		ck_assert_int_eq(ckpt_checkpoint_metric(cb, metrics[i], &vb), 0);
		ck_assert_msg(va == vb, "%s: %.17g vs %.17g", metrics[i], va, vb);
	}
	const void *ra, *rb;
	size_t la, lb;
	ck_assert_int_eq(ckpt_checkpoint_extra(ca, "train.rng", &ra, &la), 0);
	ck_assert_int_eq(ckpt_checkpoint_extra(cb, "train.rng", &rb, &lb), 0);
	ck_assert_uint_eq(la, lb);
	ck_assert_mem_eq(ra, rb, la);
	ckpt_snapshot_close(sa);
	ckpt_snapshot_close(sb);
	ckpt_store_close(a);
	ckpt_store_close(b);
}

static void check_resume_is_bit_exact(const char *optimizer, const char *schedule)
{
	char straight[512], resumed[512];
	path_in(straight, sizeof(straight), "straight");
	path_in(resumed, sizeof(resumed), "resumed");
	train_config c;
	small_config(&c, straight, optimizer, 4);
	ck_assert_int_eq(train_parse_schedule(&c, schedule), 0);
	run_ok(&c);
	small_config(&c, resumed, optimizer, 4);
	ck_assert_int_eq(train_parse_schedule(&c, schedule), 0);
	c.epochs = 1;
	run_ok(&c);
	/* resume with defaults only: everything else comes from the store */
	train_config r;
	train_config_defaults(&r);
	r.store_path = resumed;
	r.resume = true;
	r.epochs = 2;
	r.explicit_set = TRAIN_SET_EPOCHS;
	r.threads = 1;
	r.quiet = true;
	r.no_sync = true;
	run_ok(&r);
	r.epochs = 4;
	run_ok(&r);
	assert_same_checkpoint(straight, resumed, 4);
	assert_same_checkpoint(straight, resumed, 2);
}

START_TEST(test_resume_is_bit_exact_for_sgd)
{
	check_resume_is_bit_exact("sgd", "step:2:0.5");
}
END_TEST

START_TEST(test_resume_is_bit_exact_for_adam)
{
	check_resume_is_bit_exact("adam", "none");
}
END_TEST

START_TEST(test_resume_is_bit_exact_for_adamw)
{
	check_resume_is_bit_exact("adamw", "step:1:0.7");
}
END_TEST

START_TEST(test_resume_without_epochs_goes_to_the_runs_target)
{
	char store_path[512];
	path_in(store_path, sizeof(store_path), "target");
	train_config c;
	train_result res;
	small_config(&c, store_path, "sgd", 3);
	run_ok(&c);
	train_config r;
	train_config_defaults(&r);
	r.store_path = store_path;
	r.resume = true;
	snprintf(r.resume_from, sizeof(r.resume_from), "1");
	r.quiet = true;
	r.no_sync = true;
	ck_assert_int_eq(train_run(&r, &res), 0);
	ck_assert_uint_eq(res.last_epoch, 3);
	ck_assert_uint_eq(r.epochs, 3);
	ck_assert_int_eq(r.threads, 1); /* the run's thread count, not the default */
}
END_TEST

static void check_best_tracking(const char *monitor)
{
	char store_path[512];
	path_in(store_path, sizeof(store_path), "best");
	train_config c;
	small_config(&c, store_path, "sgd", 6);
	c.opt.lr = 0.5; /* noisy enough that the best is not simply the last epoch */
	snprintf(c.monitor, sizeof(c.monitor), "%s", monitor);
	train_result res;
	ck_assert_int_eq(train_run(&c, &res), 0);
	bool maximize = strcmp(monitor, "val_acc") == 0;
	ckpt_store *s;
	ckpt_snapshot *snap;
	ck_assert_int_eq(ckpt_store_open(&s, store_path, CKPT_OPEN_READONLY), 0);
	ck_assert_int_eq(ckpt_snapshot_open(&snap, s), 0);
	uint64_t expect = 0;
	double best_value = maximize ? -INFINITY : INFINITY;
	for (uint64_t e = 1; e <= 6; e++) {
		const ckpt_checkpoint *ck;
		double v;
		ck_assert_int_eq(ckpt_snapshot_checkpoint(&ck, snap, e), 0);
		ck_assert_int_eq(ckpt_checkpoint_metric(ck, monitor, &v), 0);
		if (maximize ? v > best_value : v < best_value) {
			best_value = v;
			expect = e;
		}
	}
	uint64_t best;
	ck_assert_int_eq(ckpt_snapshot_best(&best, snap), 0);
	ck_assert_uint_eq(best, expect);
	ck_assert_uint_eq(res.best_epoch, expect);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}

START_TEST(test_best_follows_val_loss_min)
{
	check_best_tracking("val_loss");
}
END_TEST

START_TEST(test_best_follows_val_acc_max)
{
	check_best_tracking("val_acc");
}
END_TEST

START_TEST(test_checkpoint_holds_torch_named_state)
{
	char store_path[512];
	path_in(store_path, sizeof(store_path), "names");
	train_config c;
	small_config(&c, store_path, "adam", 1);
	run_ok(&c);
	ckpt_store *s;
	ckpt_snapshot *snap;
	const ckpt_checkpoint *ck;
	ck_assert_int_eq(ckpt_store_open(&s, store_path, CKPT_OPEN_READONLY), 0);
	ck_assert_str_eq(ckpt_store_meta(s)->layers, "16,12,4");
	ck_assert_str_eq(ckpt_store_meta(s)->optimizer, "adam");
	ck_assert_int_eq(ckpt_snapshot_open(&snap, s), 0);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&ck, snap, 1), 0);
	static const char *const names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
	for (size_t i = 0; i < 4; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(ck, i);
		ck_assert_str_eq(t->name, names[i]);
		ck_assert_int_eq(t->group, CKPT_GROUP_MODEL);
	}
	const ckpt_tensor_info *t;
	ck_assert_int_eq(ckpt_checkpoint_find_tensor(&t, ck, CKPT_GROUP_MODEL, "fc1.weight"), 0);
	ck_assert_uint_eq(t->ndim, 2);
	ck_assert_uint_eq(t->shape[0], 12);
	ck_assert_uint_eq(t->shape[1], 16);
	ck_assert_int_eq(ckpt_checkpoint_find_tensor(&t, ck, CKPT_GROUP_OPTIMIZER, "fc2.bias.step"),
	                 0);
	ck_assert_uint_eq(t->ndim, 0);
	float step;
	ck_assert_int_eq(ckpt_tensor_read(&step, snap, t, 0, 4), 0);
	ck_assert_float_eq(step, (float)ckpt_checkpoint_step(ck));
	ck_assert_uint_eq(ckpt_checkpoint_step(ck), (10000 - 2000 + 63) / 64);
	ck_assert_int_eq(
	    ckpt_checkpoint_find_tensor(&t, ck, CKPT_GROUP_OPTIMIZER, "fc1.weight.exp_avg_sq"), 0);
	static const char *const metrics[] = {"train_loss",        "val_loss", "val_acc",
	                                      "test_acc",          "lr",       "epoch_seconds",
	                                      "samples_per_second"};
	for (size_t i = 0; i < 7; i++) {
		double v;
		ck_assert_msg(ckpt_checkpoint_metric(ck, metrics[i], &v) == 0, "%s", metrics[i]);
		ck_assert(isfinite(v));
	}
	const void *data;
	size_t len;
	ck_assert_int_eq(ckpt_checkpoint_extra(ck, "optimizer.name", &data, &len), 0);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(data, "adam", 4);
	ck_assert_int_eq(ckpt_checkpoint_extra(ck, "optimizer.param_groups", &data, &len), 0);
	ck_assert_ptr_nonnull(memmem(data, len, "\"fused\":false,\"params\":[0,1,2,3]", 32));
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_bad_input_leaves_no_store)
{
	char store_path[512];
	path_in(store_path, sizeof(store_path), "never");
	train_config c;
	train_result r;
	small_config(&c, store_path, "sgd", 1);
	c.val_split = 10000;
	ck_assert_int_eq(train_run(&c, &r), -EINVAL);
	ck_assert_ptr_nonnull(strstr(train_last_error(), "--val-split 10000"));
	small_config(&c, store_path, "sgd", 1);
	c.opt.lr = -1;
	ck_assert_int_eq(train_run(&c, &r), TRAIN_EUSAGE); /* the options alone are wrong */
	ck_assert_ptr_nonnull(strstr(train_last_error(), "--lr"));
	small_config(&c, store_path, "sgd", 1);
	snprintf(c.data, sizeof(c.data), "%s/missing-dir", tmpdir);
	ck_assert_int_eq(train_run(&c, &r), -ENOENT);
	small_config(&c, store_path, "sgd", 1);
	c.resume = true;
	ck_assert_int_lt(train_run(&c, &r), 0);
	ck_assert_ptr_nonnull(strstr(train_last_error(), "nothing to resume"));
	ck_assert(!exists(store_path));
}
END_TEST

START_TEST(test_resume_refuses_other_architecture_and_optimizer)
{
	char store_path[512];
	path_in(store_path, sizeof(store_path), "arch");
	train_config c;
	train_result r;
	small_config(&c, store_path, "sgd", 1);
	run_ok(&c);
	small_config(&c, store_path, "sgd", 2);
	c.resume = true;
	c.explicit_set = TRAIN_SET_LAYERS;
	snprintf(c.layers, sizeof(c.layers), "16,8,4");
	ck_assert_int_eq(train_parse_layers(c.sizes, &c.nsizes, c.layers), 0);
	ck_assert_int_eq(train_run(&c, &r), -EINVAL);
	ck_assert_ptr_nonnull(strstr(train_last_error(), "architecture is --layers 16,12,4"));
	small_config(&c, store_path, "adam", 2);
	c.resume = true;
	c.explicit_set = TRAIN_SET_OPTIMIZER;
	ck_assert_int_eq(train_run(&c, &r), -EINVAL);
	ck_assert_ptr_nonnull(strstr(train_last_error(), "optimizer is sgd, not adam"));
	small_config(&c, store_path, "sgd", 2);
	c.resume = true;
	c.opt.lr = 0.3;
	c.explicit_set = TRAIN_SET_LR;
	ck_assert_int_eq(train_run(&c, &r), -EINVAL);
	/* values that differ in the 8th digit print with every digit that tells them apart */
	c.opt.lr = 0.10000001;
	ck_assert_int_eq(train_run(&c, &r), -EINVAL);
	ck_assert_msg(strstr(train_last_error(), "--lr 0.10000001 differs from the run's 0.1 "),
	              "%s", train_last_error());
	c.opt.lr = 0.1;
	c.opt.weight_decay = 0.0010000000000000002;
	c.explicit_set = TRAIN_SET_WEIGHT_DECAY;
	ck_assert_int_eq(train_run(&c, &r), -EINVAL);
	ck_assert_msg(strstr(train_last_error(),
	                     "--weight-decay 0.0010000000000000002 differs from the run's 0.001 "),
	              "%s", train_last_error());
	small_config(&c, store_path, "sgd", 2);
	c.resume = true;
	c.opt.momentum = 0.90000000000000013;
	c.explicit_set = TRAIN_SET_MOMENTUM;
	ck_assert_int_eq(train_run(&c, &r), -EINVAL);
	ck_assert_msg(strstr(train_last_error(), "--momentum 0.9000000000000001 differs from the "
	                                         "run's 0.9 "),
	              "%s", train_last_error());
	/* a fresh start on a store that holds a run is refused too */
	small_config(&c, store_path, "sgd", 2);
	ck_assert_int_eq(train_run(&c, &r), -EEXIST);
	/* nothing was added */
	small_config(&c, store_path, "sgd", 1);
	c.resume = true;
	run_ok(&c);
	ckpt_store *s;
	ckpt_snapshot *snap;
	uint64_t latest;
	ck_assert_int_eq(ckpt_store_open(&s, store_path, CKPT_OPEN_READONLY), 0);
	ck_assert_int_eq(ckpt_snapshot_open(&snap, s), 0);
	ck_assert_int_eq(ckpt_snapshot_latest(&latest, snap), 0);
	ck_assert_uint_eq(latest, 1);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_non_finite_loss_stops_without_checkpoint)
{
	char store_path[512];
	path_in(store_path, sizeof(store_path), "nan");
	train_config c;
	train_result r;
	small_config(&c, store_path, "sgd", 2);
	c.opt.lr = 1e30;
	ck_assert_int_eq(train_run(&c, &r), TRAIN_ENONFINITE);
	ck_assert_ptr_nonnull(strstr(train_last_error(), "training loss became"));
	ck_assert_uint_eq(r.last_epoch, 0);
	/* the store this run created holds nothing, so it is removed again */
	struct stat st;
	ck_assert_int_eq(stat(store_path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_retention_keeps_last_and_best)
{
	char store_path[512];
	path_in(store_path, sizeof(store_path), "keep");
	train_config c;
	small_config(&c, store_path, "sgd", 5);
	c.opt.lr = 0.5;
	c.keep_last = 2;
	run_ok(&c);
	ckpt_store *s;
	ckpt_snapshot *snap;
	uint64_t *epochs, best;
	size_t n;
	ck_assert_int_eq(ckpt_store_open(&s, store_path, CKPT_OPEN_READONLY), 0);
	ck_assert_int_eq(ckpt_snapshot_open(&snap, s), 0);
	ck_assert_int_eq(ckpt_snapshot_list(&epochs, &n, snap), 0);
	ck_assert_int_eq(ckpt_snapshot_best(&best, snap), 0);
	ck_assert_uint_eq(n, best >= 4 ? 2 : 3);
	ck_assert_uint_eq(epochs[n - 1], 5);
	ck_assert_uint_eq(epochs[n - 2], 4);
	free(epochs);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

static Suite *train_suite(void)
{
	Suite *s = suite_create("train");
	TCase *maths = tcase_create("maths");
	tcase_add_test(maths, test_gradients_match_finite_differences);
	tcase_add_test(maths, test_double_text_is_the_shortest_that_reads_back);
	tcase_add_test(maths, test_cross_entropy_is_stable_for_huge_logits);
	tcase_add_test(maths, test_sgd_and_adam_steps_follow_torch_formulas);
	tcase_add_test(maths, test_param_groups_json_has_torch_keys);
	tcase_add_test(maths, test_layers_and_schedule_parsing);
	tcase_add_test(maths, test_optimizer_names_are_read_in_any_case);
	suite_add_tcase(s, maths);
	TCase *data = tcase_create("data");
	tcase_add_checked_fixture(data, setup, teardown);
	tcase_add_test(data, test_idx_loads_gzipped_and_plain_files);
	tcase_add_test(data, test_idx_rejects_malformed_files);
	tcase_add_test(data, test_idx_names_unsupported_types_and_dimensions);
	tcase_add_test(data, test_idx_gzip_members_concatenate_and_trailing_bytes_are_refused);
	tcase_add_test(data, test_csv_loads_header_rows_and_test_sibling);
	tcase_add_test(data, test_csv_rejects_bad_rows);
	tcase_add_test(data, test_csv_header_of_column_indices_is_not_a_sample);
	tcase_add_test(data, test_csv_test_sibling_replaces_train_as_a_word);
	tcase_add_test(data, test_csv_reads_values_that_underflow);
	tcase_add_test(data, test_csv_values_within_0_1_are_flagged_as_scaled_and_still_divided);
	tcase_add_test(data, test_synthetic_data_is_deterministic);
	suite_add_tcase(s, data);
	TCase *runs = tcase_create("runs");
	tcase_add_checked_fixture(runs, setup, teardown);
	tcase_set_timeout(runs, 120);
	tcase_add_test(runs, test_resume_is_bit_exact_for_sgd);
	tcase_add_test(runs, test_resume_is_bit_exact_for_adam);
	tcase_add_test(runs, test_resume_is_bit_exact_for_adamw);
	tcase_add_test(runs, test_resume_without_epochs_goes_to_the_runs_target);
	tcase_add_test(runs, test_best_follows_val_loss_min);
	tcase_add_test(runs, test_best_follows_val_acc_max);
	tcase_add_test(runs, test_checkpoint_holds_torch_named_state);
	tcase_add_test(runs, test_bad_input_leaves_no_store);
	tcase_add_test(runs, test_resume_refuses_other_architecture_and_optimizer);
	tcase_add_test(runs, test_non_finite_loss_stops_without_checkpoint);
	tcase_add_test(runs, test_retention_keeps_last_and_best);
	suite_add_tcase(s, runs);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(train_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
