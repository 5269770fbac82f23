/* train/model.c - MLP forward/backward through the backend ops
 *
 * Forward: Z = X W^T (GEMM), Z += b, ReLU (but not after the last layer). Backward:
 * dW = dZ^T X, db = column sums of dZ, dX = dZ W then masked by ReLU; the input's gradient is
 * never computed. The loss is the batch mean, as nn.CrossEntropyLoss's default.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/error.h"
#include "train/model.h"

int train_parse_layers(uint32_t *sizes, uint32_t *out_count, const char *text)
{
	uint32_t n = 0;
	const char *p = text;
	if (!*p)
		return train_fail(-EINVAL,
		                  "--layers is empty (expected sizes like 784,256,128,10)");
	for (;;) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(p, &end, 10);
		if (end == p || errno || (*end != ',' && *end != '\0') || *p < '0' || *p > '9')
			return train_fail(-EINVAL, "--layers '%s': '%.*s' is not a layer size",
			                  text, (int)strcspn(p, ","), p);
		if (v == 0 || v > TRAIN_MAX_WIDTH)
			return train_fail(-EINVAL, "--layers '%s': size %lu is outside 1..%u", text,
			                  v, TRAIN_MAX_WIDTH);
		if (n == TRAIN_MAX_LAYERS + 1)
			return train_fail(-EINVAL, "--layers '%s': more than %u Linear layers",
			                  text, TRAIN_MAX_LAYERS);
		sizes[n++] = (uint32_t)v;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	if (n < 2)
		return train_fail(-EINVAL,
		                  "--layers '%s' needs at least an input and an output size", text);
	*out_count = n;
	return 0;
}

void train_mlp_free(train_mlp *m)
{
	if (!m)
		return;
	train_backend *be = m->be;
	for (uint32_t l = 0; l < m->nlayers; l++) {
		be->free(be, m->weight[l]);
		be->free(be, m->bias[l]);
		be->free(be, m->grad_weight[l]);
		be->free(be, m->grad_bias[l]);
	}
	for (uint32_t l = 0; l <= m->nlayers; l++) {
		be->free(be, m->act[l]);
		be->free(be, m->dact[l]);
	}
	be->free(be, m->labels);
	free(m);
}

int train_mlp_create(train_mlp **out, train_backend *be, const uint32_t *sizes, uint32_t nsizes,
                     uint32_t max_rows)
{
	*out = NULL;
	if (nsizes < 2 || nsizes > TRAIN_MAX_LAYERS + 1 || max_rows == 0)
		return train_fail(-EINVAL, "bad model shape");
	train_mlp *m = calloc(1, sizeof(*m));
	if (!m)
		return train_fail(-ENOMEM, "out of memory creating the model");
	m->be = be;
	m->nlayers = nsizes - 1;
	m->max_rows = max_rows;
	memcpy(m->sizes, sizes, nsizes * sizeof(uint32_t));
	bool ok = true;
	for (uint32_t l = 0; l < m->nlayers; l++) {
		size_t wn = (size_t)sizes[l + 1] * sizes[l] * sizeof(float);
		size_t bn = (size_t)sizes[l + 1] * sizeof(float);
		ok &= (m->weight[l] = be->alloc(be, wn)) != NULL;
		ok &= (m->bias[l] = be->alloc(be, bn)) != NULL;
		ok &= (m->grad_weight[l] = be->alloc(be, wn)) != NULL;
		ok &= (m->grad_bias[l] = be->alloc(be, bn)) != NULL;
	}
	for (uint32_t l = 0; l <= m->nlayers; l++) {
		size_t an = (size_t)max_rows * sizes[l] * sizeof(float);
		ok &= (m->act[l] = be->alloc(be, an)) != NULL;
		if (l > 0)
			ok &= (m->dact[l] = be->alloc(be, an)) != NULL;
	}
	ok &= (m->labels = be->alloc(be, (size_t)max_rows * sizeof(int32_t))) != NULL;
	if (!ok) {
		train_mlp_free(m);
		return train_fail(-ENOMEM, "out of memory allocating the model's buffers");
	}
	*out = m;
	return 0;
}

size_t train_mlp_param_count(const train_mlp *m)
{
	return 2 * (size_t)m->nlayers;
}

void train_mlp_param_name(const train_mlp *m, size_t i, char *buf, size_t len)
{
	(void)m;
	snprintf(buf, len, "fc%zu.%s", i / 2 + 1, i % 2 ? "bias" : "weight");
}

size_t train_mlp_param_numel(const train_mlp *m, size_t i)
{
	size_t l = i / 2;
	return i % 2 ? m->sizes[l + 1] : (size_t)m->sizes[l + 1] * m->sizes[l];
}

uint32_t train_mlp_param_shape(const train_mlp *m, size_t i, uint64_t shape[2])
{
	size_t l = i / 2;
	shape[0] = m->sizes[l + 1];
	if (i % 2)
		return 1;
	shape[1] = m->sizes[l];
	return 2;
}

float *train_mlp_param(train_mlp *m, size_t i)
{
	return i % 2 ? m->bias[i / 2] : m->weight[i / 2];
}

float *train_mlp_grad(train_mlp *m, size_t i)
{
	return i % 2 ? m->grad_bias[i / 2] : m->grad_weight[i / 2];
}

int train_mlp_init(train_mlp *m, train_rng *rng)
{
	for (size_t i = 0; i < train_mlp_param_count(m); i++) {
		size_t n = train_mlp_param_numel(m, i);
		float *host = malloc(n * sizeof(float));
		if (!host)
			return train_fail(-ENOMEM, "out of memory initializing the model");
		/* kaiming_uniform_(a=sqrt(5)) and the bias rule both give bound 1/sqrt(fan_in) */
		double bound = 1.0 / sqrt((double)m->sizes[i / 2]);
		for (size_t j = 0; j < n; j++)
			host[j] = (float)((2.0 * train_rng_uniform(rng) - 1.0) * bound);
		m->be->upload(m->be, train_mlp_param(m, i), host, n * sizeof(float));
		free(host);
	}
	return 0;
}

void train_mlp_load_batch(train_mlp *m, const float *x, const int32_t *y, const uint32_t *idx,
                          uint32_t rows)
{
	m->be->gather_rows(m->be, m->act[0], x, idx, rows, m->sizes[0]);
	m->be->gather_labels(m->be, m->labels, y, idx, rows);
}

static void forward(train_mlp *m, uint32_t rows)
{
	train_backend *be = m->be;
	for (uint32_t l = 0; l < m->nlayers; l++) {
		int in = (int)m->sizes[l], outw = (int)m->sizes[l + 1];
		be->gemm(be, false, true, (int)rows, outw, in, 1.0f, m->act[l], in, m->weight[l],
		         in, 0.0f, m->act[l + 1], outw);
		be->bias_act(be, m->act[l + 1], m->bias[l], (int)rows, outw, l + 1 < m->nlayers);
	}
}

void train_mlp_forward_eval(train_mlp *m, uint32_t rows, double *loss_sum, uint64_t *correct)
{
	forward(m, rows);
	m->be->softmax_xent(m->be, NULL, m->act[m->nlayers], m->labels, (int)rows,
	                    (int)m->sizes[m->nlayers], loss_sum, correct);
}

void train_mlp_forward_backward(train_mlp *m, uint32_t rows, double *loss_sum, uint64_t *correct)
{
	train_backend *be = m->be;
	forward(m, rows);
	be->softmax_xent(be, m->dact[m->nlayers], m->act[m->nlayers], m->labels, (int)rows,
	                 (int)m->sizes[m->nlayers], loss_sum, correct);
	for (uint32_t l = m->nlayers; l-- > 0;) {
		int in = (int)m->sizes[l], outw = (int)m->sizes[l + 1];
		be->gemm(be, true, false, outw, in, (int)rows, 1.0f, m->dact[l + 1], outw,
		         m->act[l], in, 0.0f, m->grad_weight[l], in);
		be->bias_grad(be, m->grad_bias[l], m->dact[l + 1], (int)rows, outw);
		if (l > 0) {
			be->gemm(be, false, false, (int)rows, in, outw, 1.0f, m->dact[l + 1], outw,
			         m->weight[l], in, 0.0f, m->dact[l], in);
			be->relu_backward(be, m->dact[l], m->act[l], (size_t)rows * in);
		}
	}
}
