/* tests/tools/mkstore.c - write a test store through the public API
 *
 * Makes stores shaped like the engine's (fcN.weight/fcN.bias, optimizer buffers, param groups,
 * metrics with the best val_loss in the middle epoch) plus optional oddities the view and the
 * renderers must cope with: every dtype, 0-dim and empty tensors, hostile names, a big tensor,
 * GPU device tags, BatchNorm layers (model buffers without optimizer state between the
 * parameters), no param groups (only the run's hyper-parameters). Values are deterministic: the same arguments give the same bytes.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/store.h"

typedef struct options {
	const char *store;
	uint32_t epochs;
	const char *layers;
	const char *device;
	const char *optimizer;
	bool dtypes, hostile_names, no_sync, batchnorm, no_param_groups;
	uint64_t chunk_size, big_mib;
	uint32_t keep_last;
} options;

/* Buffers a checkpoint borrows until its commit. */
typedef struct buffers {
	void **items;
	size_t count, cap;
} buffers;

static void *buffers_alloc(buffers *b, size_t nbytes)
{
	if (b->count == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		void **items = realloc(b->items, cap * sizeof(*items));
		if (!items)
			return NULL;
		b->items = items;
		b->cap = cap;
	}
	void *p = calloc(1, nbytes ? nbytes : 1);
	if (p)
		b->items[b->count++] = p;
	return p;
}

static void buffers_free(buffers *b)
{
	for (size_t i = 0; i < b->count; i++)
		free(b->items[i]);
	free(b->items);
	memset(b, 0, sizeof(*b));
}

/* splitmix64: deterministic values for a given (epoch, tensor) seed */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float random_float(uint64_t *state)
{
	return (float)((double)(next_random(state) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill_float32(float *out, uint64_t n, uint64_t seed, bool non_negative)
{
	uint64_t state = seed;
	for (uint64_t i = 0; i < n; i++) {
		float v = random_float(&state) * 0.1f;
		out[i] = non_negative ? fabsf(v) : v;
	}
}

static int put(ckpt_writer *w, const char *name, ckpt_tensor_group group, ckpt_dtype dtype,
               uint32_t ndim, const uint64_t *shape, const char *device, const void *data,
               uint64_t nbytes)
{
	int rc = ckpt_writer_put_tensor(w, name, group, dtype, ndim, shape, device, data, nbytes);
	if (rc)
		fprintf(stderr, "mkstore: error: tensor '%s': %s (%s)\n", name, ckpt_strerror(rc),
		        ckpt_last_error());
	return rc;
}

static int put_float32(ckpt_writer *w, buffers *b, const char *name, ckpt_tensor_group group,
                       uint32_t ndim, const uint64_t *shape, const char *device, uint64_t seed,
                       bool non_negative)
{
	uint64_t numel = 1;
	for (uint32_t d = 0; d < ndim; d++)
		numel *= shape[d];
	float *data = buffers_alloc(b, numel * sizeof(float));
	if (!data)
		return -ENOMEM;
	fill_float32(data, numel, seed, non_negative);
	return put(w, name, group, CKPT_DTYPE_FLOAT32, ndim, shape, device, data,
	           numel * sizeof(float));
}

/* Every dtype as a 2x3 tensor with valid (finite, 0/1 for bool) values, a scalar, an empty. */
static int put_dtypes(ckpt_writer *w, buffers *b, const char *device, uint64_t epoch)
{
	static const ckpt_dtype all[] = {
	    CKPT_DTYPE_FLOAT32, CKPT_DTYPE_FLOAT64, CKPT_DTYPE_FLOAT16, CKPT_DTYPE_BFLOAT16,
	    CKPT_DTYPE_INT64,   CKPT_DTYPE_INT32,   CKPT_DTYPE_INT16,   CKPT_DTYPE_INT8,
	    CKPT_DTYPE_UINT8,   CKPT_DTYPE_BOOL,
	};
	const uint64_t shape[2] = {2, 3};
	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		size_t item = ckpt_dtype_itemsize(all[k]);
		uint8_t *data = buffers_alloc(b, 6 * item);
		if (!data)
			return -ENOMEM;
		for (int i = 0; i < 6; i++) {
			int64_t v = (int64_t)(i + 1) * (i % 2 ? -1 : 1) + (int64_t)epoch;
			uint8_t *p = data + (size_t)i * item;
			switch (all[k]) {
			case CKPT_DTYPE_FLOAT32: {
				float f = (float)v * 0.25f;
				memcpy(p, &f, 4);
				break;
			}
			case CKPT_DTYPE_FLOAT64: {
				double d = (double)v * 0.125;
				memcpy(p, &d, 8);
				break;
			}
			case CKPT_DTYPE_FLOAT16: {
				/* small integers are exact in half: sign, exponent 15+e, mantissa */
				uint16_t h = (uint16_t)(0x3c00 + (uint16_t)(i * 0x40));
				memcpy(p, &h, 2);
				break;
			}
			case CKPT_DTYPE_BFLOAT16: {
				float f = (float)v * 0.5f;
				uint32_t bits;
				memcpy(&bits, &f, 4);
				uint16_t h = (uint16_t)(bits >> 16);
				memcpy(p, &h, 2);
				break;
			}
			case CKPT_DTYPE_BOOL:
				p[0] = (uint8_t)((i + epoch) % 2);
				break;
			default:
				memcpy(p, &v, item); /* little-endian truncation */
				break;
			}
		}
		char name[64];
		snprintf(name, sizeof(name), "dtypes.%s", ckpt_dtype_name(all[k]));
		int rc = put(w, name, CKPT_GROUP_MODEL, all[k], 2, shape, device, data, 6 * item);
		if (rc)
			return rc;
	}
	int rc = put_float32(w, b, "dtypes.scalar", CKPT_GROUP_MODEL, 0, NULL, device, epoch, false);
	if (rc)
		return rc;
	const uint64_t empty[2] = {0, 4};
	return put(w, "dtypes.empty", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 2, empty, device, "",
	           0);
}

static int put_hostile(ckpt_writer *w, buffers *b, const char *device, uint64_t epoch)
{
	char longname[301];
	memset(longname, 'x', 300);
	longname[300] = '\0';
	const char *names[] = {"../escape", "a/b", ".hidden", "ctl\x01name", longname, "dot..", ".."};
	const uint64_t shape[1] = {3};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int rc = put_float32(w, b, names[i], CKPT_GROUP_MODEL, 1, shape, device,
		                     epoch * 1000 + 500 + i, false);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_layers(uint64_t **out, size_t *count, const char *text)
{
	size_t n = 0;
	uint64_t *sizes = NULL;
	const char *p = text;
	while (*p) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(p, &end, 10);
		if (errno || end == p || v == 0 || v > 100000 || (*end && *end != ',')) {
			free(sizes);
			return -EINVAL;
		}
		uint64_t *grown = realloc(sizes, (n + 1) * sizeof(*grown));
		if (!grown) {
			free(sizes);
			return -ENOMEM;
		}
		sizes = grown;
		sizes[n++] = v;
		p = *end ? end + 1 : end;
	}
	if (n < 2) {
		free(sizes);
		return -EINVAL;
	}
	*out = sizes;
	*count = n;
	return 0;
}

/* Parameter @p pname with its optimizer state (SGD's momentum buffer, Adam's step, exp_avg and
 * exp_avg_sq), its index appended to the param group's list @p params. */
static int put_param(ckpt_writer *w, buffers *b, const options *o, const char *pname,
                     uint32_t ndim, const uint64_t *shape, uint64_t seed, char *params,
                     size_t params_cap, size_t *nparams)
{
	bool adam = strcmp(o->optimizer, "sgd") != 0;
	char name[128];
	int rc = put_float32(w, b, pname, CKPT_GROUP_MODEL, ndim, shape, o->device, seed, false);
	if (!rc && !adam) {
		snprintf(name, sizeof(name), "%s.momentum_buffer", pname);
		rc = put_float32(w, b, name, CKPT_GROUP_OPTIMIZER, ndim, shape, o->device, seed + 7,
		                 false);
	} else if (!rc) {
		float *step = buffers_alloc(b, sizeof(float));
		rc = step ? 0 : -ENOMEM;
		if (!rc) {
			*step = (float)(seed / 1000 * 100);
			snprintf(name, sizeof(name), "%s.step", pname);
			rc = put(w, name, CKPT_GROUP_OPTIMIZER, CKPT_DTYPE_FLOAT32, 0, NULL,
			         o->device, step, sizeof(float));
		}
		snprintf(name, sizeof(name), "%s.exp_avg", pname);
		if (!rc)
			rc = put_float32(w, b, name, CKPT_GROUP_OPTIMIZER, ndim, shape, o->device,
			                 seed + 7, false);
		snprintf(name, sizeof(name), "%s.exp_avg_sq", pname);
		if (!rc)
			rc = put_float32(w, b, name, CKPT_GROUP_OPTIMIZER, ndim, shape, o->device,
			                 seed + 8, true);
	}
	size_t used = strlen(params);
	snprintf(params + used, params_cap - used, "%s%zu", *nparams ? "," : "", *nparams);
	(*nparams)++;
	return rc;
}

static int write_epoch(ckpt_store *store, const options *o, const uint64_t *layers,
                       size_t nlayers, uint64_t epoch)
{
	bool adam = strcmp(o->optimizer, "sgd") != 0;
	buffers b = {0};
	ckpt_writer *w = NULL;
	int rc = ckpt_writer_begin(&w, store, epoch);
	if (rc) {
		fprintf(stderr, "mkstore: error: begin epoch %" PRIu64 ": %s\n", epoch,
		        ckpt_last_error());
		return rc;
	}
	char params[4096] = "";
	size_t nparams = 0;
	for (size_t l = 0; l + 1 < nlayers && !rc; l++) {
		const uint64_t wshape[2] = {layers[l + 1], layers[l]};
		const uint64_t bshape[1] = {layers[l + 1]};
		char pname[64];
		for (int is_bias = 0; is_bias < 2 && !rc; is_bias++) {
			snprintf(pname, sizeof(pname), "fc%zu.%s", l + 1, is_bias ? "bias" : "weight");
			rc = put_param(w, &b, o, pname, is_bias ? 1 : 2, is_bias ? bshape : wshape,
			               epoch * 1000 + l * 10 + (uint64_t)is_bias, params,
			               sizeof(params), &nparams);
		}
		if (!o->batchnorm || l + 2 >= nlayers)
			continue;
		/* BatchNorm1d after each hidden layer: two parameters, then three buffers that
		 * have no optimizer state (torch's order: weight, bias, running_mean, running_var,
		 * num_batches_tracked) */
		for (int is_bias = 0; is_bias < 2 && !rc; is_bias++) {
			snprintf(pname, sizeof(pname), "bn%zu.%s", l + 1, is_bias ? "bias" : "weight");
			rc = put_param(w, &b, o, pname, 1, bshape,
			               epoch * 1000 + l * 10 + 4 + (uint64_t)is_bias, params,
			               sizeof(params), &nparams);
		}
		snprintf(pname, sizeof(pname), "bn%zu.running_mean", l + 1);
		if (!rc)
			rc = put_float32(w, &b, pname, CKPT_GROUP_MODEL, 1, bshape, o->device,
			                 epoch * 1000 + l * 10 + 6, false);
		snprintf(pname, sizeof(pname), "bn%zu.running_var", l + 1);
		if (!rc)
			rc = put_float32(w, &b, pname, CKPT_GROUP_MODEL, 1, bshape, o->device,
			                 epoch * 1000 + l * 10 + 7, true);
		int64_t *tracked = buffers_alloc(&b, sizeof(int64_t));
		rc = rc ? rc : tracked ? 0 : -ENOMEM;
		snprintf(pname, sizeof(pname), "bn%zu.num_batches_tracked", l + 1);
		if (!rc) {
			*tracked = (int64_t)epoch * 100;
			rc = put(w, pname, CKPT_GROUP_MODEL, CKPT_DTYPE_INT64, 0, NULL, o->device,
			         tracked, sizeof(int64_t));
		}
	}
	if (!rc && o->dtypes)
		rc = put_dtypes(w, &b, o->device, epoch);
	if (!rc && o->hostile_names)
		rc = put_hostile(w, &b, o->device, epoch);
	if (!rc && o->big_mib) {
		const uint64_t shape[2] = {o->big_mib * 1024, 256};
		rc = put_float32(w, &b, "big.weight", CKPT_GROUP_MODEL, 2, shape, o->device, epoch,
		                 false);
	}
	char groups[8192];
	if (adam)
		snprintf(groups, sizeof(groups),
		         "[{\"lr\": 0.001, \"betas\": [0.9, 0.999], \"eps\": 1e-08, "
		         "\"weight_decay\": 0, \"amsgrad\": false, \"maximize\": false, "
		         "\"foreach\": null, \"capturable\": false, \"differentiable\": false, "
		         "\"fused\": false, \"params\": [%s]}]",
		         params);
	else
		snprintf(groups, sizeof(groups),
		         "[{\"lr\": 0.1, \"momentum\": 0.9, \"dampening\": 0, \"weight_decay\": 0, "
		         "\"nesterov\": false, \"maximize\": false, \"foreach\": null, "
		         "\"differentiable\": false, \"params\": [%s]}]",
		         params);
	if (!rc && !o->no_param_groups)
		rc = ckpt_writer_set_extra(w, "optimizer.param_groups", groups, strlen(groups));
	if (!rc)
		rc = ckpt_writer_set_extra(w, "optimizer.name", o->optimizer, strlen(o->optimizer));
	double mid = (o->epochs + 1) / 2;
	double distance = fabs((double)epoch - mid);
	const struct {
		const char *name;
		double value;
	} metrics[] = {
	    {"train_loss", 1.0 / (double)epoch},
	    {"val_loss", 0.5 + 0.125 * distance},
	    {"val_acc", 0.875 - 0.0625 * distance},
	    {"test_acc", 0.75 - 0.0625 * distance},
	    {"lr", adam ? 0.001 : 0.1},
	    {"epoch_seconds", 1.5},
	    {"samples_per_second", 1000.0},
	};
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]) && !rc; i++)
		rc = ckpt_writer_set_metric(w, metrics[i].name, metrics[i].value);
	ckpt_writer_set_step(w, epoch * 100);
	if (rc) {
		ckpt_writer_abort(w);
		buffers_free(&b);
		return rc;
	}
	rc = ckpt_writer_commit(w);
	if (rc)
		fprintf(stderr, "mkstore: error: commit epoch %" PRIu64 ": %s (%s)\n", epoch,
		        ckpt_strerror(rc), ckpt_last_error());
	buffers_free(&b);
	return rc;
}

static void usage(FILE *to)
{
	fprintf(to, "usage: mkstore STORE [--epochs N] [--layers 8,16,4] [--device DEV]\n"
	            "               [--optimizer sgd|adam] [--dtypes] [--hostile-names] [--batchnorm]\n"
	            "               [--no-param-groups]\n"
	            "               [--chunk-size BYTES] [--big-mib N] [--keep-last N] [--no-sync]\n");
}

static int parse_u64(uint64_t *out, const char *text, const char *what)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-') {
		fprintf(stderr, "mkstore: error: %s '%s' is not a non-negative integer\n", what,
		        text);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	options o = {.epochs = 3, .layers = "8,16,4", .device = "cpu", .optimizer = "sgd"};
	static const struct option longopts[] = {
	    {"epochs", required_argument, NULL, 'e'},   {"layers", required_argument, NULL, 'l'},
	    {"device", required_argument, NULL, 'D'},   {"optimizer", required_argument, NULL, 'o'},
	    {"dtypes", no_argument, NULL, 't'},         {"hostile-names", no_argument, NULL, 'H'},
	    {"chunk-size", required_argument, NULL, 'c'}, {"big-mib", required_argument, NULL, 'b'},
	    {"keep-last", required_argument, NULL, 'k'}, {"no-sync", no_argument, NULL, 'n'},
	    {"batchnorm", no_argument, NULL, 'B'},      {"help", no_argument, NULL, 'h'},
	    {"no-param-groups", no_argument, NULL, 'P'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'e':
			if (parse_u64(&v, optarg, "--epochs") || v == 0 || v > 1000000)
				return 2;
			o.epochs = (uint32_t)v;
			break;
		case 'l':
			o.layers = optarg;
			break;
		case 'D':
			o.device = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "sgd") && strcmp(optarg, "adam")) {
				fprintf(stderr, "mkstore: error: --optimizer must be sgd or adam\n");
				return 2;
			}
			o.optimizer = optarg;
			break;
		case 't':
			o.dtypes = true;
			break;
		case 'H':
			o.hostile_names = true;
			break;
		case 'B':
			o.batchnorm = true;
			break;
		case 'P':
			o.no_param_groups = true;
			break;
		case 'c':
			if (parse_u64(&o.chunk_size, optarg, "--chunk-size"))
				return 2;
			break;
		case 'b':
			if (parse_u64(&o.big_mib, optarg, "--big-mib"))
				return 2;
			break;
		case 'k':
			if (parse_u64(&v, optarg, "--keep-last"))
				return 2;
			o.keep_last = (uint32_t)v;
			break;
		case 'n':
			o.no_sync = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	o.store = argv[optind];
	uint64_t *layers = NULL;
	size_t nlayers = 0;
	if (parse_layers(&layers, &nlayers, o.layers)) {
		fprintf(stderr, "mkstore: error: --layers '%s' is not a list like 8,16,4\n", o.layers);
		return 2;
	}
	const char *hyper = strcmp(o.optimizer, "sgd") ? "{\"lr\":0.001,\"betas\":[0.9,0.999]}"
	                                               : "{\"lr\":0.1,\"momentum\":0.9}";
	ckpt_run_meta meta = {
	    .model = "mlp",
	    .layers = o.layers,
	    .optimizer = o.optimizer,
	    .hyperparams = hyper,
	    .dataset = "fixture",
	    .seed = 0,
	    .monitor = "val_loss",
	    .monitor_mode = CKPT_MODE_MIN,
	};
	ckpt_store_options so = {
	    .chunk_size = o.chunk_size, .keep_last = o.keep_last, .no_sync = o.no_sync};
	ckpt_store *store = NULL;
	int rc = ckpt_store_create(&store, o.store, &meta, &so);
	if (rc) {
		fprintf(stderr, "mkstore: error: create '%s': %s (%s)\n", o.store, ckpt_strerror(rc),
		        ckpt_last_error());
		free(layers);
		return 1;
	}
	for (uint64_t e = 1; e <= o.epochs && !rc; e++)
		rc = write_epoch(store, &o, layers, nlayers, e);
	ckpt_store_close(store);
	free(layers);
	return rc ? 1 : 0;
}
