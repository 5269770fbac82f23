/* tests/tools/train_step.c - run optimizer steps of the engine on given weights and a batch
 *
 * For the comparison with torch.optim (tests/integration/train_torch_step.py): reads the
 * weights and one batch from IN, takes STEPS optimizer steps on that batch through the
 * engine's model, optimizer and CPU backend, and writes the first loss, the parameters and
 * the optimizer state to OUT.
 *
 * usage: train_step IN OUT OPTIMIZER LR MOMENTUM DAMPENING NESTEROV WEIGHT_DECAY BETA1 BETA2 EPS
 * IN:  "TSTP", u32 nsizes, u32 sizes[nsizes], u32 rows, u32 steps, float32 params in
 *      state_dict order, float32 x[rows * sizes[0]], int32 y[rows]   (little-endian)
 * OUT: float64 first loss, float32 params, then per parameter the state buffers
 *      (momentum_buffer; or exp_avg, exp_avg_sq), float64 step count
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/backend.h"
#include "train/error.h"
#include "train/model.h"
#include "train/optim.h"

static int fail(const char *what)
{
	fprintf(stderr, "train_step: error: %s (%s)\n", what, train_last_error());
	return 1;
}

static int read_all(FILE *f, void *buf, size_t len)
{
	return fread(buf, 1, len, f) == len ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc != 12) {
		fprintf(stderr, "usage: train_step IN OUT OPTIMIZER LR MOMENTUM DAMPENING NESTEROV "
		                "WEIGHT_DECAY BETA1 BETA2 EPS\n");
		return 2;
	}
	train_opt_config cfg = {0};
	if (train_opt_parse(&cfg.kind, argv[3]))
		return fail("bad optimizer");
	cfg.lr = atof(argv[4]);
	cfg.momentum = atof(argv[5]);
	cfg.dampening = atof(argv[6]);
	cfg.nesterov = atoi(argv[7]) != 0;
	cfg.weight_decay = atof(argv[8]);
	cfg.beta1 = atof(argv[9]);
	cfg.beta2 = atof(argv[10]);
	cfg.eps = atof(argv[11]);
	if (train_opt_validate(&cfg))
		return fail("bad hyper-parameters");
	FILE *in = fopen(argv[1], "rb");
	if (!in) {
		perror(argv[1]);
		return 1;
	}
	char magic[4];
	uint32_t nsizes, sizes[TRAIN_MAX_LAYERS + 1], rows, steps;
	if (read_all(in, magic, 4) || memcmp(magic, "TSTP", 4) || read_all(in, &nsizes, 4) ||
	    nsizes < 2 || nsizes > TRAIN_MAX_LAYERS + 1 || read_all(in, sizes, 4 * nsizes) ||
	    read_all(in, &rows, 4) || read_all(in, &steps, 4) || rows == 0 || rows > 100000) {
		fprintf(stderr, "train_step: error: bad input header in %s\n", argv[1]);
		return 1;
	}
	train_backend *be;
	train_mlp *model;
	train_optimizer *opt;
	if (train_backend_create(&be, "cpu", 1) ||
	    train_mlp_create(&model, be, sizes, nsizes, rows) ||
	    train_optimizer_create(&opt, be, &cfg, model))
		return fail("setup");
	for (size_t i = 0; i < train_mlp_param_count(model); i++) {
		if (read_all(in, train_mlp_param(model, i), train_mlp_param_numel(model, i) * 4)) {
			fprintf(stderr, "train_step: error: %s is truncated\n", argv[1]);
			return 1;
		}
	}
	float *x = malloc((size_t)rows * sizes[0] * 4);
	int32_t *y = malloc((size_t)rows * 4);
	uint32_t *idx = malloc((size_t)rows * 4);
	if (!x || !y || !idx || read_all(in, x, (size_t)rows * sizes[0] * 4) ||
	    read_all(in, y, (size_t)rows * 4)) {
		fprintf(stderr, "train_step: error: %s is truncated\n", argv[1]);
		return 1;
	}
	fclose(in);
	for (uint32_t i = 0; i < rows; i++) {
		idx[i] = i;
		if (y[i] < 0 || (uint32_t)y[i] >= sizes[nsizes - 1]) {
			fprintf(stderr, "train_step: error: label %d out of range\n", y[i]);
			return 1;
		}
	}
	double first_loss = 0;
	for (uint32_t s = 0; s < steps; s++) {
		double loss = 0;
		uint64_t correct = 0;
		train_mlp_load_batch(model, x, y, idx, rows);
		train_mlp_forward_backward(model, rows, &loss, &correct);
		if (s == 0)
			first_loss = loss / rows;
		train_optimizer_step(opt, model, cfg.lr);
	}
	FILE *out = fopen(argv[2], "wb");
	if (!out) {
		perror(argv[2]);
		return 1;
	}
	int bad = fwrite(&first_loss, 8, 1, out) != 1;
	for (size_t i = 0; i < train_mlp_param_count(model); i++)
		bad |= fwrite(train_mlp_param(model, i), 4, train_mlp_param_numel(model, i), out) !=
		       train_mlp_param_numel(model, i);
	for (size_t i = 0; i < train_mlp_param_count(model); i++) {
		for (size_t j = 0; j < train_optimizer_state_count(opt); j++) {
			float *buf = train_optimizer_state_buffer(opt, i, j);
			if (buf)
				bad |= fwrite(buf, 4, train_mlp_param_numel(model, i), out) !=
				       train_mlp_param_numel(model, i);
		}
	}
	double nsteps = (double)opt->steps;
	bad |= fwrite(&nsteps, 8, 1, out) != 1;
	bad |= fclose(out) != 0;
	if (bad) {
		fprintf(stderr, "train_step: error: cannot write %s\n", argv[2]);
		return 1;
	}
	free(x);
	free(y);
	free(idx);
	train_optimizer_free(opt);
	train_mlp_free(model);
	train_backend_destroy(be);
	return 0;
}
