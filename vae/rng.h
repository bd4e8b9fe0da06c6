/* rng.h — the job's random numbers: xoshiro256** seeded through splitmix64.
 *
 * The whole state is four uint64 words, saved in every checkpoint, so a resumed run
 * draws exactly the numbers the uninterrupted one would have. Normal deviates use
 * Box-Muller and draw exactly two uniforms per pair, with no cached spare, so the
 * state alone determines the stream. */
#ifndef VAED_RNG_H
#define VAED_RNG_H

#include <stdint.h>

typedef struct vae_rng {
    uint64_t s[4];
} vae_rng;

/* Seed from (seed, stream): different streams of one seed are independent. */
void vae_rng_seed(vae_rng *r, uint64_t seed, uint64_t stream);
uint64_t vae_rng_next(vae_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double vae_rng_uniform(vae_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t vae_rng_below(vae_rng *r, uint64_t n);
/* n standard normal floats into out (n may be odd). */
void vae_rng_normal(vae_rng *r, float *out, long n);
/* The same in two halves, so that the costly one can be shared out: the draws (the
 * uniforms, n rounded up to even of them, into u), then the transform of any range
 * [lo, hi) of the output, each range on its own. vae_rng_normal is exactly
 * vae_rng_normal_draw(r, u, n) then vae_rng_normal_from(u, out, 0, n). */
void vae_rng_normal_draw(vae_rng *r, double *u, long n);
void vae_rng_normal_from(const double *u, float *out, long lo, long hi);

#endif
