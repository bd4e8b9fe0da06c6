/* cmd_fma.c — `vaed bench-fma [--threads N] [--seconds S]`: the FMA peak of N threads,
 * measured, for scripts/bench-train's fma_fraction (issue "Fast on every host": the
 * limit is the cores, not the sgemm-only bound). Each thread runs fused multiply-adds
 * on 12 independent vector accumulators (enough to cover the FMA latency on two ports)
 * at the widest width this build has: 512 bits with AVX-512F, 256 with FMA3, else
 * scalar fmaf. Prints one JSON object: {"gflops", "bits", "threads", "seconds"}: the
 * threads' FLOPs together (an FMA is 2 per lane) over the slowest thread's time. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

#include "daemon/cmd.h"

#define ACC 12
#define INNER 4096

typedef struct fma_arg {
    double seconds; /* in: how long */
    double flops, took, sink;
} fma_arg;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#if defined(__AVX512F__)
enum { BITS = 512, LANES = 16 };
typedef __m512 vec;
#define V_SET(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_SUM(v) _mm512_reduce_add_ps(v)
#elif defined(__FMA__)
enum { BITS = 256, LANES = 8 };
typedef __m256 vec;
#define V_SET(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
static float V_SUM(__m256 v)
{
    float f[8];
    _mm256_storeu_ps(f, v);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}
#else
enum { BITS = 32, LANES = 1 };
typedef float vec;
#define V_SET(x) (x)
#define V_FMA(a, b, c) fmaf(a, b, c)
#define V_SUM(v) (v)
#endif

static void *fma_thread(void *p)
{
    fma_arg *a = p;
    /* acc = acc * x + y converges to y / (1 - x): finite, never denormal */
    const vec x = V_SET(0.999f), y = V_SET(0.001f);
    /* twelve named registers, not an array: GCC kept an array in memory, and the
     * loads and stores, not the FMAs, set the pace */
    vec c0 = V_SET(0.f), c1 = V_SET(1.f), c2 = V_SET(2.f), c3 = V_SET(3.f), c4 = V_SET(4.f),
        c5 = V_SET(5.f), c6 = V_SET(6.f), c7 = V_SET(7.f), c8 = V_SET(8.f), c9 = V_SET(9.f),
        c10 = V_SET(10.f), c11 = V_SET(11.f);
    long rounds = 0;
    const double t0 = mono_s();
    double t;
    do {
        for (int r = 0; r < INNER; r++) {
            c0 = V_FMA(c0, x, y);
            c1 = V_FMA(c1, x, y);
            c2 = V_FMA(c2, x, y);
            c3 = V_FMA(c3, x, y);
            c4 = V_FMA(c4, x, y);
            c5 = V_FMA(c5, x, y);
            c6 = V_FMA(c6, x, y);
            c7 = V_FMA(c7, x, y);
            c8 = V_FMA(c8, x, y);
            c9 = V_FMA(c9, x, y);
            c10 = V_FMA(c10, x, y);
            c11 = V_FMA(c11, x, y);
        }
        rounds++;
    } while ((t = mono_s() - t0) < a->seconds);
    double s = V_SUM(c0) + V_SUM(c1) + V_SUM(c2) + V_SUM(c3) + V_SUM(c4) + V_SUM(c5) +
               V_SUM(c6) + V_SUM(c7) + V_SUM(c8) + V_SUM(c9) + V_SUM(c10) + V_SUM(c11);
    a->sink = s;
    a->took = t;
    a->flops = (double)rounds * INNER * ACC * 2.0 * LANES;
    return NULL;
}

int cmd_bench_fma(int argc, char **argv)
{
    int threads = 1;
    double seconds = 2.0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--threads"))
            threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--seconds"))
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: vaed bench-fma [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || !(seconds > 0 && seconds <= 600)) {
        fprintf(stderr, "vaed bench-fma: --threads 1..256, --seconds in (0, 600]\n");
        return 2;
    }
    fma_arg *a = calloc((size_t)threads, sizeof *a);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    if (!a || !t) {
        free(a);
        free(t);
        fprintf(stderr, "vaed bench-fma: out of memory\n");
        return 1;
    }
    int started = 0;
    for (; started < threads; started++) {
        a[started].seconds = seconds;
        if (pthread_create(&t[started], NULL, fma_thread, &a[started]))
            break;
    }
    double flops = 0, took = 0, sink = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        flops += a[i].flops;
        took = a[i].took > took ? a[i].took : took;
        sink += a[i].sink;
    }
    free(a);
    free(t);
    if (started < threads) {
        fprintf(stderr, "vaed bench-fma: could not start %d threads\n", threads);
        return 1;
    }
    printf("{\"gflops\": %.3f, \"bits\": %d, \"threads\": %d, \"seconds\": %.3f, \"sink\": %g}\n",
           flops / took * 1e-9, (int)BITS, threads, took, sink);
    return 0;
}
