/* train/optim_elem.h - the per-element arithmetic of the optimizer steps, shared by the CPU and
 * CUDA backends
 *
 * Both backends update each parameter with these functions (host functions in C, device
 * functions under nvcc) and take their float constants from the same conversions, so a CPU and
 * a GPU run do the same float operations in the same order, as torch.optim does them.
 */
#ifndef TRAIN_OPTIM_ELEM_H
#define TRAIN_OPTIM_ELEM_H

#include "train/backend.h"
#include "train/xent_row.h" /* TRAIN_HOST_DEVICE */

/** torch casts each Python-float scalar (computed in double) to float for its kernel. */
typedef struct train_sgd_k {
	float wd, m, one_minus_damp, neg_lr;
	bool nesterov;
} train_sgd_k;

static inline train_sgd_k train_sgd_k_of(const train_sgd_params *p)
{
	train_sgd_k k = {(float)p->weight_decay, (float)p->momentum, (float)(1.0 - p->dampening),
	                 (float)-p->lr, p->nesterov};
	return k;
}

/** The step direction before momentum: the gradient, plus weight decay. */
static inline TRAIN_HOST_DEVICE float train_sgd_dir(float g, float w, const train_sgd_k *k)
{
	return k->wd != 0.0f ? g + k->wd * w : g;
}

/** The momentum buffer after this step (not the first one). */
static inline TRAIN_HOST_DEVICE float train_sgd_buf(float b, float d, const train_sgd_k *k)
{
	return b * k->m + k->one_minus_damp * d;
}

/** The parameter after a step without momentum. */
static inline TRAIN_HOST_DEVICE float train_sgd_plain(float w, float d, const train_sgd_k *k)
{
	return w + k->neg_lr * d;
}

/** The parameter after a step with direction @p d and momentum buffer @p b. */
static inline TRAIN_HOST_DEVICE float train_sgd_apply(float w, float d, float b,
                                                      const train_sgd_k *k)
{
	return w + k->neg_lr * (k->nesterov ? d + k->m * b : b);
}

typedef struct train_adam_k {
	float b1, b2, one_minus_b1, one_minus_b2, bc2_sqrt, eps, neg_step, wd, decay;
	bool decoupled;
} train_adam_k;

static inline train_adam_k train_adam_k_of(const train_adam_params *p)
{
	train_adam_k k = {(float)p->beta1,
	                  (float)p->beta2,
	                  (float)(1.0 - p->beta1),
	                  (float)(1.0 - p->beta2),
	                  (float)p->bias_correction2_sqrt,
	                  (float)p->eps,
	                  (float)-p->step_size,
	                  (float)p->weight_decay,
	                  (float)(1.0 - p->lr * p->weight_decay),
	                  p->decoupled};
	return k;
}

/** One Adam/AdamW step of one element: updates *param, *exp_avg and *exp_avg_sq. */
static inline TRAIN_HOST_DEVICE void train_adam_elem(float *param, float g, float *exp_avg,
                                                     float *exp_avg_sq, const train_adam_k *k)
{
	float w = *param;
	if (k->decoupled)
		w = w * k->decay;
	else if (k->wd != 0.0f)
		g = g + k->wd * w;
	float m = *exp_avg * k->b1 + k->one_minus_b1 * g;
	float v = *exp_avg_sq * k->b2 + k->one_minus_b2 * (g * g);
	*exp_avg = m;
	*exp_avg_sq = v;
	float denom = sqrtf(v) / k->bc2_sqrt + k->eps;
	*param = w + k->neg_step * (m / denom);
}

#endif
