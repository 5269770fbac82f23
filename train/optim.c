/* train/optim.c - optimizer state and steps (the arithmetic is in the backend)
 *
 * Bias corrections of Adam are computed here in double, as torch 1.13 computes them in
 * Python floats from step_t.item().
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "train/error.h"
#include "train/optim.h"

const char *train_opt_name(train_opt_kind kind)
{
	switch (kind) {
	case TRAIN_OPT_SGD:
		return "sgd";
	case TRAIN_OPT_ADAM:
		return "adam";
	case TRAIN_OPT_ADAMW:
		return "adamw";
	}
	return "?";
}

/* In any case, so torch's class names (SGD, Adam, AdamW) are names too; the kind keeps the
 * lower-case name, which is what a store records and a resume compares. */
int train_opt_parse(train_opt_kind *out, const char *name)
{
	for (int k = TRAIN_OPT_SGD; k <= TRAIN_OPT_ADAMW; k++) {
		if (strcasecmp(name, train_opt_name((train_opt_kind)k)) == 0) {
			*out = (train_opt_kind)k;
			return 0;
		}
	}
	return train_fail(
	    -EINVAL, "unknown optimizer '%s' (expected sgd, adam or adamw, in any case)", name);
}

int train_opt_validate(const train_opt_config *c)
{
	if (!(c->lr > 0) || !isfinite(c->lr))
		return train_fail(-EINVAL, "invalid --lr %s (must be a positive number)",
		                  TRAIN_DOUBLE_TEXT(c->lr));
	if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
		return train_fail(-EINVAL, "invalid --weight-decay %s (must be >= 0)",
		                  TRAIN_DOUBLE_TEXT(c->weight_decay));
	if (c->kind == TRAIN_OPT_SGD) {
		if (!(c->momentum >= 0) || !isfinite(c->momentum))
			return train_fail(-EINVAL, "invalid --momentum %s (must be >= 0)",
			                  TRAIN_DOUBLE_TEXT(c->momentum));
		if (!(c->dampening >= 0 && c->dampening <= 1))
			return train_fail(-EINVAL, "invalid --dampening %s (must be in [0, 1])",
			                  TRAIN_DOUBLE_TEXT(c->dampening));
		if (c->dampening != 0 && c->momentum == 0)
			return train_fail(
			    -EINVAL,
			    "--dampening %s has no effect with --momentum 0 (it damps "
			    "the momentum buffer)",
			    TRAIN_DOUBLE_TEXT(c->dampening));
		if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
			return train_fail(
			    -EINVAL,
			    "--nesterov requires --momentum > 0 and --dampening 0 (as torch)");
	} else {
		if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
			return train_fail(-EINVAL, "invalid --betas %s,%s (each must be in [0, 1))",
			                  TRAIN_DOUBLE_TEXT(c->beta1), TRAIN_DOUBLE_TEXT(c->beta2));
		if (!(c->eps >= 0) || !isfinite(c->eps))
			return train_fail(-EINVAL, "invalid --eps %s (must be >= 0)",
			                  TRAIN_DOUBLE_TEXT(c->eps));
	}
	return 0;
}

void train_optimizer_free(train_optimizer *opt)
{
	if (!opt)
		return;
	for (size_t i = 0; i < opt->nparams; i++) {
		if (opt->buf1)
			opt->be->free(opt->be, opt->buf1[i]);
		if (opt->buf2)
			opt->be->free(opt->be, opt->buf2[i]);
	}
	free(opt->buf1);
	free(opt->buf2);
	free(opt->numel);
	free(opt);
}

int train_optimizer_create(train_optimizer **out, train_backend *be, const train_opt_config *cfg,
                           const train_mlp *model)
{
	*out = NULL;
	train_optimizer *opt = calloc(1, sizeof(*opt));
	if (!opt)
		return train_fail(-ENOMEM, "out of memory creating the optimizer");
	opt->cfg = *cfg;
	opt->be = be;
	opt->nparams = train_mlp_param_count(model);
	opt->numel = calloc(opt->nparams, sizeof(size_t));
	opt->buf1 = calloc(opt->nparams, sizeof(float *));
	opt->buf2 = calloc(opt->nparams, sizeof(float *));
	if (!opt->numel || !opt->buf1 || !opt->buf2)
		goto nomem;
	bool adam = cfg->kind != TRAIN_OPT_SGD;
	for (size_t i = 0; i < opt->nparams; i++) {
		opt->numel[i] = train_mlp_param_numel(model, i);
		size_t nbytes = opt->numel[i] * sizeof(float);
		if (adam || cfg->momentum != 0) {
			if (!(opt->buf1[i] = be->alloc(be, nbytes)))
				goto nomem;
		}
		if (adam && !(opt->buf2[i] = be->alloc(be, nbytes)))
			goto nomem;
	}
	*out = opt;
	return 0;
nomem:
	train_optimizer_free(opt);
	return train_fail(-ENOMEM, "out of memory allocating optimizer state");
}

void train_optimizer_step(train_optimizer *opt, train_mlp *model, double lr)
{
	const train_opt_config *c = &opt->cfg;
	train_backend *be = opt->be;
	if (c->kind == TRAIN_OPT_SGD) {
		train_sgd_params p = {
		    .lr = lr,
		    .momentum = c->momentum,
		    .dampening = c->dampening,
		    .weight_decay = c->weight_decay,
		    .nesterov = c->nesterov,
		};
		for (size_t i = 0; i < opt->nparams; i++)
			be->sgd_step(be, train_mlp_param(model, i), train_mlp_grad(model, i),
			             opt->buf1[i], opt->numel[i], &p, opt->steps == 0);
	} else {
		double step = (double)(float)(opt->steps + 1); /* torch keeps step as float32 */
		train_adam_params p = {
		    .lr = lr,
		    .beta1 = c->beta1,
		    .beta2 = c->beta2,
		    .eps = c->eps,
		    .weight_decay = c->weight_decay,
		    .decoupled = c->kind == TRAIN_OPT_ADAMW,
		    .step_size = lr / (1.0 - pow(c->beta1, step)),
		    .bias_correction2_sqrt = sqrt(1.0 - pow(c->beta2, step)),
		};
		for (size_t i = 0; i < opt->nparams; i++)
			be->adam_step(be, train_mlp_param(model, i), train_mlp_grad(model, i),
			              opt->buf1[i], opt->buf2[i], opt->numel[i], &p);
	}
	opt->steps++;
}

size_t train_optimizer_state_count(const train_optimizer *opt)
{
	if (opt->steps == 0)
		return 0;
	if (opt->cfg.kind == TRAIN_OPT_SGD)
		return opt->cfg.momentum != 0 ? 1 : 0;
	return 3;
}

const char *train_optimizer_state_name(const train_optimizer *opt, size_t j)
{
	if (opt->cfg.kind == TRAIN_OPT_SGD)
		return "momentum_buffer";
	static const char *const adam[] = {"step", "exp_avg", "exp_avg_sq"};
	return j < 3 ? adam[j] : "?";
}

float *train_optimizer_state_buffer(train_optimizer *opt, size_t i, size_t j)
{
	if (opt->cfg.kind == TRAIN_OPT_SGD)
		return opt->buf1[i];
	return j == 0 ? NULL : j == 1 ? opt->buf1[i] : opt->buf2[i];
}

static int shortest_precision(double v)
{
	char buf[40];
	for (int p = 1; p < 17; p++) { /* from 1: a subnormal's shortest text has fewer digits */
		snprintf(buf, sizeof(buf), "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			return p;
	}
	return 17;
}

const char *train_double_text(char *buf, size_t len, double v)
{
	snprintf(buf, len, "%.*g", shortest_precision(v), v);
	return buf;
}

static void max_precision(json_t *j, int *p)
{
	size_t i;
	json_t *v;
	const char *k;
	if (json_is_real(j)) {
		int q = shortest_precision(json_real_value(j));
		if (q > *p)
			*p = q;
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) max_precision(v, p);
	} else if (json_is_object(j)) {
		json_object_foreach(j, k, v) max_precision(v, p);
	}
}

char *train_json_dumps(const json_t *j)
{
	int p = 15;
	max_precision((json_t *)j, &p);
	return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(p));
}

/* torch keeps whatever Python number the user gave; defaults that are int 0 stay ints */
static json_t *number(double v, bool int_if_whole)
{
	if (int_if_whole && v == floor(v) && fabs(v) < 1e15)
		return json_integer((json_int_t)v);
	return json_real(v);
}

char *train_optimizer_param_groups_json(const train_optimizer *opt, double lr, double initial_lr)
{
	const train_opt_config *c = &opt->cfg;
	json_t *group = json_object();
	json_t *params = json_array();
	json_t *groups = json_array();
	char *text = NULL;
	if (!group || !params || !groups)
		goto out;
	int rc = 0;
	rc |= json_object_set_new(group, "lr", json_real(lr));
	if (c->kind == TRAIN_OPT_SGD) {
		rc |= json_object_set_new(group, "momentum", number(c->momentum, true));
		rc |= json_object_set_new(group, "dampening", number(c->dampening, true));
		rc |= json_object_set_new(group, "weight_decay", number(c->weight_decay, true));
		rc |= json_object_set_new(group, "nesterov", json_boolean(c->nesterov));
		rc |= json_object_set_new(group, "maximize", json_false());
		rc |= json_object_set_new(group, "foreach", json_null());
		rc |= json_object_set_new(group, "differentiable", json_false());
	} else {
		rc |= json_object_set_new(group, "betas", json_pack("[ff]", c->beta1, c->beta2));
		rc |= json_object_set_new(group, "eps", json_real(c->eps));
		rc |= json_object_set_new(group, "weight_decay",
		                          number(c->weight_decay, c->kind == TRAIN_OPT_ADAM));
		rc |= json_object_set_new(group, "amsgrad", json_false());
		if (c->kind == TRAIN_OPT_ADAM) {
			rc |= json_object_set_new(group, "maximize", json_false());
			rc |= json_object_set_new(group, "foreach", json_null());
			rc |= json_object_set_new(group, "capturable", json_false());
			rc |= json_object_set_new(group, "differentiable", json_false());
			rc |= json_object_set_new(group, "fused", json_false());
		} else {
			/* torch 1.13's AdamW has this order and no differentiable/fused keys */
			rc |= json_object_set_new(group, "foreach", json_null());
			rc |= json_object_set_new(group, "maximize", json_false());
			rc |= json_object_set_new(group, "capturable", json_false());
		}
	}
	for (size_t i = 0; i < opt->nparams; i++)
		rc |= json_array_append_new(params, json_integer((json_int_t)i));
	rc |= json_object_set(group, "params", params);
	if (initial_lr > 0)
		rc |= json_object_set_new(group, "initial_lr", json_real(initial_lr));
	rc |= json_array_append(groups, group);
	if (rc == 0)
		text = train_json_dumps(groups);
out:
	json_decref(params);
	json_decref(group);
	json_decref(groups);
	return text;
}
