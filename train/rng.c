/* train/rng.c - xoshiro256** (Blackman and Vigna), seeded through splitmix64
 *
 * Only integer arithmetic decides the stream, so it is the same on every machine and build.
 */
#include <math.h>

#include "train/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void train_rng_seed(train_rng *rng, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t train_rng_next(train_rng *rng)
{
	uint64_t *s = rng->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint32_t train_rng_below(train_rng *rng, uint32_t bound)
{
	/* Lemire's multiply-and-reject: unbiased without a division in the common case */
	uint64_t m = (uint64_t)(uint32_t)(train_rng_next(rng) >> 32) * bound;
	uint32_t low = (uint32_t)m;
	if (low < bound) {
		uint32_t threshold = (uint32_t)(-bound) % bound;
		while (low < threshold) {
			m = (uint64_t)(uint32_t)(train_rng_next(rng) >> 32) * bound;
			low = (uint32_t)m;
		}
	}
	return (uint32_t)(m >> 32);
}

float train_rng_uniform(train_rng *rng)
{
	return (float)(train_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

double train_rng_normal(train_rng *rng)
{
	double u1 = ((double)(train_rng_next(rng) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
	double u2 = (double)(train_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void train_rng_shuffle(train_rng *rng, uint32_t *idx, uint32_t n)
{
	for (uint32_t i = n; i > 1; i--) {
		uint32_t j = train_rng_below(rng, i);
		uint32_t tmp = idx[i - 1];
		idx[i - 1] = idx[j];
		idx[j] = tmp;
	}
}
