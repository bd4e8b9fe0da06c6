/* rng.c — see rng.h. xoshiro256** and splitmix64 are Vigna's public-domain designs,
 * written here from their published definitions. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void vae_rng_seed(vae_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t vae_rng_next(vae_rng *r)
{
    uint64_t *s = r->s;
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

double vae_rng_uniform(vae_rng *r) { return (double)(vae_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t vae_rng_below(vae_rng *r, uint64_t n)
{
    /* Reject the top partial range so every value is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = vae_rng_next(r);
    while (x >= limit);
    return x % n;
}

void vae_rng_normal_draw(vae_rng *r, double *u, long n)
{
    for (long i = 0; i < n; i += 2) {
        u[i] = 1.0 - vae_rng_uniform(r); /* 1 − u keeps the log argument in (0, 1] */
        u[i + 1] = vae_rng_uniform(r);
    }
}

/* Box-Muller: pair p (outputs 2p and 2p+1) from uniforms 2p and 2p+1. */
void vae_rng_normal_from(const double *u, float *out, long lo, long hi)
{
    for (long i = lo & ~1L; i < hi; i += 2) {
        double rad = sqrt(-2.0 * log(u[i])), th = 6.283185307179586 * u[i + 1];
        if (i >= lo)
            out[i] = (float)(rad * cos(th));
        if (i + 1 < hi)
            out[i + 1] = (float)(rad * sin(th));
    }
}

void vae_rng_normal(vae_rng *r, float *out, long n)
{
    double u[256];
    for (long i = 0; i < n; i += 256) {
        const long e = i + 256 < n ? i + 256 : n;
        vae_rng_normal_draw(r, u, e - i);
        vae_rng_normal_from(u, out + i, 0, e - i);
    }
}
