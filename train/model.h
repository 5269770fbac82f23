/* train/model.h - the MLP: Linear layers fc1..fcN with ReLU between them, cross-entropy loss
 *
 * Parameters are laid out exactly as PyTorch's nn.Linear: fcN.weight [out, in] row-major,
 * fcN.bias [out], in state_dict order (fc1.weight, fc1.bias, fc2.weight, ...); parameter
 * index i of the optimizer's state_dict is that order. All buffers live on the backend.
 */
#ifndef TRAIN_MODEL_H
#define TRAIN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "train/backend.h"
#include "train/rng.h"

#define TRAIN_MAX_LAYERS 16        /**< Linear layers at most */
#define TRAIN_MAX_WIDTH (1u << 16) /**< largest layer size */

typedef struct train_mlp {
	train_backend *be;
	uint32_t nlayers; /**< Linear layers (sizes has nlayers + 1 entries) */
	uint32_t sizes[TRAIN_MAX_LAYERS + 1];
	uint32_t max_rows; /**< largest batch the activations hold */
	float *weight[TRAIN_MAX_LAYERS], *bias[TRAIN_MAX_LAYERS];
	float *grad_weight[TRAIN_MAX_LAYERS], *grad_bias[TRAIN_MAX_LAYERS];
	float *act[TRAIN_MAX_LAYERS + 1];  /**< act[0] = input batch, act[l+1] = layer l output */
	float *dact[TRAIN_MAX_LAYERS + 1]; /**< gradients of the loss wrt act */
	int32_t *labels;                   /**< the batch's labels */
} train_mlp;

/**
 * Parse "784,256,128,10" into sizes. @return 0 or -EINVAL (fewer than 2 sizes, more than
 * TRAIN_MAX_LAYERS + 1, a size that is 0, not a number or above TRAIN_MAX_WIDTH).
 */
int train_parse_layers(uint32_t *sizes, uint32_t *out_count, const char *text);

/** Allocate a model (parameters zero) for batches of up to @p max_rows. */
int train_mlp_create(train_mlp **out, train_backend *be, const uint32_t *sizes, uint32_t nsizes,
                     uint32_t max_rows);
void train_mlp_free(train_mlp *m);

/** nn.Linear's default initialization, U(-1/sqrt(in), 1/sqrt(in)) for weight then bias of
 *  each layer in order, drawn from @p rng. */
int train_mlp_init(train_mlp *m, train_rng *rng);

/** 2 * nlayers */
size_t train_mlp_param_count(const train_mlp *m);
/** "fc1.weight", "fc1.bias", ... written into @p buf. */
void train_mlp_param_name(const train_mlp *m, size_t i, char *buf, size_t len);
/** Elements, dims and shape of parameter @p i. */
size_t train_mlp_param_numel(const train_mlp *m, size_t i);
uint32_t train_mlp_param_shape(const train_mlp *m, size_t i, uint64_t shape[2]);
float *train_mlp_param(train_mlp *m, size_t i);
float *train_mlp_grad(train_mlp *m, size_t i);

/**
 * Forward and backward over a batch already in act[0] (rows x sizes[0]) and labels: fills the
 * gradients of the mean loss. Adds the loss sum and hit count to the outputs.
 */
void train_mlp_forward_backward(train_mlp *m, uint32_t rows, double *loss_sum, uint64_t *correct);

/** Forward only (evaluation) over a batch in act[0] and labels. */
void train_mlp_forward_eval(train_mlp *m, uint32_t rows, double *loss_sum, uint64_t *correct);

/** Gather rows @p idx of the resident data (x: count x sizes[0], y) into act[0] and labels. */
void train_mlp_load_batch(train_mlp *m, const float *x, const int32_t *y, const uint32_t *idx,
                          uint32_t rows);

#endif
