/* train/xent_row.h - cross-entropy of one row of logits, shared by the CPU and CUDA backends
 *
 * Both backends compute the loss, the argmax and the gradient of a row with this one function
 * (a host function in C, a device function under nvcc), so a CPU and a GPU run do the same
 * arithmetic in the same order: a stable log-softmax in double, the gradient rounded to float.
 */
#ifndef TRAIN_XENT_ROW_H
#define TRAIN_XENT_ROW_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define TRAIN_HOST_DEVICE __host__ __device__
#else
#define TRAIN_HOST_DEVICE
#endif

/**
 * -log_softmax(z)[y] for the @p cols logits @p z; *hit is 1 if the (first) largest logit is
 * at @p y. If @p d is not NULL it receives d(mean loss)/d(z): (softmax(z) - onehot(y)) *
 * @p inv_rows.
 */
static inline TRAIN_HOST_DEVICE double train_xent_row(float *d, const float *z, int32_t y,
                                                      int cols, float inv_rows, int *hit)
{
	int best = 0;
	float zmax = z[0];
	for (int c = 1; c < cols; c++) {
		if (z[c] > zmax) {
			zmax = z[c];
			best = c;
		}
	}
	double sum = 0.0;
	for (int c = 0; c < cols; c++)
		sum += exp((double)z[c] - (double)zmax);
	double log_sum = log(sum);
	*hit = best == y;
	if (d) {
		for (int c = 0; c < cols; c++) {
			float p = (float)exp((double)z[c] - (double)zmax - log_sum);
			d[c] = (p - (c == y ? 1.0f : 0.0f)) * inv_rows;
		}
	}
	/* -log_softmax[y] = log(sum exp(z - max)) - (z[y] - max) */
	return log_sum - ((double)z[y] - (double)zmax);
}

#endif
