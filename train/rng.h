/* train/rng.h - the engine's deterministic random number generator (xoshiro256**)
 *
 * Its whole state is four 64-bit words, saved in every checkpoint, so a resumed run draws
 * exactly the numbers the uninterrupted run would have drawn.
 */
#ifndef TRAIN_RNG_H
#define TRAIN_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct train_rng {
	uint64_t s[4];
} train_rng;

/** Seed from one 64-bit value (expanded with splitmix64, so seed 0 is fine). */
void train_rng_seed(train_rng *rng, uint64_t seed);

/** Next 64 random bits. */
uint64_t train_rng_next(train_rng *rng);

/** Uniform integer in [0, bound), unbiased; @p bound must be > 0. */
uint32_t train_rng_below(train_rng *rng, uint32_t bound);

/** Uniform float in [0, 1) with 24 random bits. */
float train_rng_uniform(train_rng *rng);

/** Standard normal (Box-Muller on doubles). */
double train_rng_normal(train_rng *rng);

/** Fisher-Yates shuffle of @p n indices. */
void train_rng_shuffle(train_rng *rng, uint32_t *idx, uint32_t n);

#endif
