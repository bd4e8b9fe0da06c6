/* pbt.c — the exploit/explore rule of population-based training (pbt.h). */
#include "daemon/pbt.h"

#include <math.h>

/* higher is better; a value that is not finite (a diverged member) is the worst */
static double goodness(double x, int maximize)
{
    return !isfinite(x) ? -INFINITY : maximize ? x : -x;
}

/* 1 if member a ranks above member b: strictly better, or equal with a lower index. */
static int above(const double *v, size_t a, size_t b, int maximize)
{
    double x = goodness(v[a], maximize), y = goodness(v[b], maximize);
    if (x != y)
        return x > y;
    return a < b;
}

size_t pbt_select(const double *v, size_t n, int maximize, double quantile, long *donor)
{
    size_t m = (size_t)((double)n * quantile);
    if (m < 1 && n >= 2)
        m = 1;
    if (m > n / 2)
        m = n / 2;
    for (size_t i = 0; i < n; i++)
        donor[i] = -1;
    /* a member's rank from the top is the number of members above it; n is a
     * population (tens at most), so the quadratic count is the clearest sort */
    for (size_t i = 0; i < n; i++) {
        size_t r = 0;
        for (size_t j = 0; j < n; j++)
            r += j != i && above(v, j, i, maximize);
        size_t from_bottom = n - 1 - r;
        if (from_bottom >= m)
            continue;
        /* the member whose rank from the top is from_bottom */
        for (size_t j = 0; j < n; j++) {
            size_t rj = 0;
            for (size_t k = 0; k < n; k++)
                rj += k != j && above(v, k, j, maximize);
            if (rj == from_bottom)
                donor[i] = (long)j;
        }
    }
    return m;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

double pbt_factor(uint64_t seed, int generation, long member, int field, double down,
                  double up)
{
    uint64_t h = splitmix64(seed);
    h = splitmix64(h ^ (uint64_t)(unsigned)generation);
    h = splitmix64(h ^ (uint64_t)member);
    h = splitmix64(h ^ (uint64_t)(unsigned)field);
    return (h >> 63) ? up : down;
}
