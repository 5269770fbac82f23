/* train/optim.h - SGD, Adam and AdamW with torch.optim's update rules and state names
 *
 * State per parameter, named as torch 1.13's optimizer.state_dict()['state'][i]:
 * SGD with momentum: momentum_buffer (absent before the first step and without momentum);
 * Adam/AdamW: step (0-dim float32), exp_avg, exp_avg_sq (absent before the first step).
 */
#ifndef TRAIN_OPTIM_H
#define TRAIN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "train/backend.h"
#include "train/model.h"

typedef enum train_opt_kind {
	TRAIN_OPT_SGD = 0,
	TRAIN_OPT_ADAM = 1,
	TRAIN_OPT_ADAMW = 2,
} train_opt_kind;

typedef struct train_opt_config {
	train_opt_kind kind;
	double lr;           /**< base learning rate (> 0) */
	double momentum;     /**< SGD */
	double dampening;    /**< SGD */
	bool nesterov;       /**< SGD */
	double weight_decay; /**< all */
	double beta1, beta2; /**< Adam/AdamW */
	double eps;          /**< Adam/AdamW */
} train_opt_config;

typedef struct train_optimizer {
	train_opt_config cfg;
	train_backend *be;
	size_t nparams;
	size_t *numel;
	float **buf1;   /**< momentum_buffer or exp_avg (NULL entries when unused) */
	float **buf2;   /**< exp_avg_sq */
	uint64_t steps; /**< optimizer steps taken (torch's per-parameter 'step') */
} train_optimizer;

/** "sgd" | "adam" | "adamw" */
const char *train_opt_name(train_opt_kind kind);
/** A name in any case ("Adam", torch's class name, is adam). @return 0 or -EINVAL for an
 *  unknown name. */
int train_opt_parse(train_opt_kind *out, const char *name);

/**
 * Check hyper-parameters as torch.optim's constructors do (lr > 0 here, momentum >= 0,
 * 0 <= beta < 1, eps >= 0, weight_decay >= 0; nesterov needs momentum > 0 and dampening 0),
 * and what torch lets pass but cannot mean anything: dampening outside [0, 1], or not 0
 * without momentum.
 * @return 0 or -EINVAL with a message naming the option.
 */
int train_opt_validate(const train_opt_config *cfg);

/** Allocate state for the parameters of @p model (all zero, steps 0). */
int train_optimizer_create(train_optimizer **out, train_backend *be, const train_opt_config *cfg,
                           const train_mlp *model);
void train_optimizer_free(train_optimizer *opt);

/** One step over every parameter of @p model with learning rate @p lr. */
void train_optimizer_step(train_optimizer *opt, train_mlp *model, double lr);

/** Number of per-parameter state buffers as stored now (0 before the first step; 0 for SGD
 *  without momentum; 1 for SGD with momentum; 3 for Adam: step, exp_avg, exp_avg_sq). */
size_t train_optimizer_state_count(const train_optimizer *opt);
/** Name suffix of state buffer @p j ("momentum_buffer", "step", "exp_avg", "exp_avg_sq"). */
const char *train_optimizer_state_name(const train_optimizer *opt, size_t j);
/** Device buffer of state @p j of parameter @p i, or NULL for "step" (a host scalar). */
float *train_optimizer_state_buffer(train_optimizer *opt, size_t i, size_t j);

/**
 * JSON text of torch 1.13's optimizer.state_dict()['param_groups'] for this optimizer: one
 * group with every key torch has, in torch's order, "params": [0..n-1], and "initial_lr" when
 * an LR scheduler is attached (@p initial_lr > 0). Caller frees. NULL on ENOMEM.
 */
char *train_optimizer_param_groups_json(const train_optimizer *opt, double lr, double initial_lr);

/**
 * json_dumps (compact, key order kept) with the fewest digits (15..17) that still read back
 * every real in @p j exactly: 0.1 prints as 0.1, yet nothing is rounded. Caller frees.
 */
struct json_t;
char *train_json_dumps(const struct json_t *j);

/**
 * @p v as the shortest text (%.15g, %.16g or %.17g) that strtod() reads back as @p v, in
 * @p buf of @p len bytes (32 hold any double). @return @p buf.
 */
const char *train_double_text(char *buf, size_t len, double v);
/** train_double_text() into a buffer (a compound literal) that lives until the end of the
 * enclosing block (for printf-style arguments). */
#define TRAIN_DOUBLE_TEXT(v) train_double_text((char[32]){0}, 32, (v))

#endif
