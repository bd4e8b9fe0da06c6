/* kernels.c — see kernels.h. The BLAS versions fuse bias and activation into one
 * pass over the output, so each layer reads its output once after the sgemm. */
#include "kernels.h"

#include <cblas.h>
#ifndef VAED_NO_LIBXSMM
#include <libxsmm.h>
#endif
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- Which library multiplies (vae_gemm_lib) ---- */

static pthread_once_t gemm_once = PTHREAD_ONCE_INIT;
static int gemm_lib[2] = {VAE_GEMM_OPENBLAS, VAE_GEMM_OPENBLAS}; /* forward, backward */

int vae_gemm_env(void)
{
    const char *e = getenv("VAED_GEMM");
    if (!e || !*e || !strcmp(e, "auto"))
        return VAE_GEMM_AUTO;
    if (!strcmp(e, "openblas"))
        return VAE_GEMM_OPENBLAS;
    if (!strcmp(e, "libxsmm"))
        return VAE_GEMM_LIBXSMM;
    return -1;
}

int vae_blas_core_avx512(void)
{
    static const char *const wide[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    const char *core = openblas_get_corename();
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
        if (core && !strcasecmp(core, wide[i]))
            return 1;
    return 0;
}

static void gemm_apply(int lib)
{
#ifdef VAED_NO_LIBXSMM
    /* The allocation-failure test programs only (Makefile): libxsmm.a brings its own
     * malloc wrapping, which collides with theirs; their subject is not the multiplies. */
    (void)lib;
#else
    if (lib == VAE_GEMM_OPENBLAS || lib == VAE_GEMM_LIBXSMM) {
        gemm_lib[VAE_GEMM_FORWARD] = gemm_lib[VAE_GEMM_BACKWARD] = lib;
        return;
    }
    /* auto (and a wrong VAED_GEMM, which main() refuses before any multiply) */
    const int wide = libxsmm_get_target_archid() >= LIBXSMM_X86_AVX512_CORE;
    gemm_lib[VAE_GEMM_BACKWARD] = wide ? VAE_GEMM_LIBXSMM : VAE_GEMM_OPENBLAS;
    gemm_lib[VAE_GEMM_FORWARD] =
        wide && !vae_blas_core_avx512() ? VAE_GEMM_LIBXSMM : VAE_GEMM_OPENBLAS;
#endif
}

static void gemm_choose(void)
{
#ifndef VAED_NO_LIBXSMM
    libxsmm_init();
#endif
    gemm_apply(vae_gemm_env());
}

int vae_gemm_lib(int product)
{
    pthread_once(&gemm_once, gemm_choose);
    return gemm_lib[product];
}

void vae_gemm_lib_set(int lib)
{
    pthread_once(&gemm_once, gemm_choose);
    gemm_apply(lib == VAE_GEMM_AUTO ? vae_gemm_env() : lib);
}

void vae_gemm_describe(char *buf, size_t n)
{
    const int f = vae_gemm_lib(VAE_GEMM_FORWARD), b = vae_gemm_lib(VAE_GEMM_BACKWARD);
#ifndef VAED_NO_LIBXSMM
    const char *arch = libxsmm_get_target_arch();
    if (f == VAE_GEMM_LIBXSMM && b == VAE_GEMM_LIBXSMM) {
        snprintf(buf, n, "libxsmm %s", arch);
        return;
    }
    if (b == VAE_GEMM_LIBXSMM) {
        snprintf(buf, n, "libxsmm %s backward, OpenBLAS forward", arch);
        return;
    }
#endif
    (void)f, (void)b;
    snprintf(buf, n, "OpenBLAS");
}

/* libxsmm's kernel for column-major C (M,N) = op(A) (M,K) · op(B) (K,N), overwriting C,
 * or NULL when libxsmm is not the library of that product or has no kernel for the shape. The
 * kernel is generated once per shape and kept by libxsmm; the lock makes that
 * generation one thread's at a time, visibly to ThreadSanitizer. */
#ifdef VAED_NO_LIBXSMM
typedef void (*libxsmm_smmfunction)(const float *a, const float *b, float *c);
#define LIBXSMM_GEMM_FLAG_NONE 0
#define LIBXSMM_GEMM_FLAG_TRANS_B 0
static libxsmm_smmfunction xsmm(int product, int M, int N, int K, int lda, int ldb, int ldc,
                                int flags)
{
    return NULL;
}
#else
static pthread_mutex_t gemm_mu = PTHREAD_MUTEX_INITIALIZER;

static libxsmm_smmfunction xsmm(int product, int M, int N, int K, int lda, int ldb, int ldc,
                                int flags)
{
    if (vae_gemm_lib(product) != VAE_GEMM_LIBXSMM)
        return NULL;
    const libxsmm_blasint m = M, nn = N, k = K, a = lda, b = ldb, c = ldc;
    const float alpha = 1.0f, beta = 0.0f;
    pthread_mutex_lock(&gemm_mu);
    libxsmm_smmfunction f = libxsmm_smmdispatch(m, nn, k, &a, &b, &c, &alpha, &beta, &flags, NULL);
    pthread_mutex_unlock(&gemm_mu);
    return f;
}
#endif

/* Column-major C (M,N) = A (M,K) · op(B) on libxsmm, in blocks of XSMM_MB rows of A and
 * C: libxsmm's kernels stream A once for every few columns of C, so a block of A must
 * stay in the core's cache (a whole W of the reference model does not). Blocks of 64
 * made training 6-8% faster than none, 128 and 32 less (docs/benchmarks.md,
 * "libxsmm"). The blocks are fixed by the shape. Returns 0, or -1 (nothing written)
 * when libxsmm is not the product's library or has no kernel for a block's shape. */
enum { XSMM_MB = 64 };
static int xsmm_run(int product, int M, int N, int K, const float *a, int lda, const float *b,
                    int ldb, float *c, int ldc, int flags)
{
    const int mb = M < XSMM_MB ? M : XSMM_MB, rest = M % mb;
    libxsmm_smmfunction f = xsmm(product, mb, N, K, lda, ldb, ldc, flags);
    libxsmm_smmfunction fr = rest ? xsmm(product, rest, N, K, lda, ldb, ldc, flags) : f;
    if (!f || !fr)
        return -1;
    int m0 = 0;
    for (; m0 + mb <= M; m0 += mb)
        f(a + m0, b, c + m0);
    if (m0 < M)
        fr(a + m0, b, c + m0);
    return 0;
}

/* Row-major products are column-major products of the transposes: a row-major (r,c)
 * matrix is a column-major (c,r) one with the same leading dimension. */
void vae_gemm_dx(float *din, const float *dout, const float *W, int B, int IN, int OUT)
{
    /* din^T (IN,B) = W^T (IN,OUT) · dout^T (OUT,B) */
    if (xsmm_run(VAE_GEMM_BACKWARD, IN, B, OUT, W, IN, dout, OUT, din, IN,
                 LIBXSMM_GEMM_FLAG_NONE))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IN, OUT, 1.0f, dout, OUT, W,
                    IN, 0.0f, din, IN);
}

void vae_gemm_dw(float *dW, const float *dout, const float *in, int B, int IN, int OUT, int o0,
                 int o1, int add)
{
    /* dW[o0:o1]^T (IN,o1-o0) = in^T (IN,B) · (dout[:, o0:o1]^T)^T */
    if (xsmm_run(VAE_GEMM_BACKWARD, IN, o1 - o0, B, in, IN, dout + o0, OUT, dW + (long)o0 * IN,
                 IN, LIBXSMM_GEMM_FLAG_TRANS_B))
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, IN, B, 1.0f, dout + o0,
                    OUT, in, IN, add ? 1.0f : 0.0f, dW + (long)o0 * IN, IN);
}

void vae_gemm_fwd(float *out, const float *in, const float *W, int B, int IN, int OUT)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OUT, IN, 1.0f, in, IN, W, IN, 0.0f,
                out, OUT);
}

void vae_gemm_fwd_t(float *out, const float *in, const float *Wt, int B, int IN, int OUT)
{
    /* out^T (OUT,B) = Wt^T (OUT,IN) · in^T (IN,B) */
    if (xsmm_run(VAE_GEMM_FORWARD, OUT, B, IN, Wt, OUT, in, IN, out, OUT, LIBXSMM_GEMM_FLAG_NONE))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, OUT, IN, 1.0f, in, IN, Wt, OUT,
                    0.0f, out, OUT);
}

void transpose_rows(float *Wt, const float *W, int IN, int OUT, int o0, int o1)
{
    enum { T = 16 }; /* tiles of 16 x 16: both sides touch whole cache lines */
    for (int oo = o0; oo < o1; oo += T) {
        const int oe = oo + T < o1 ? oo + T : o1;
        for (int kk = 0; kk < IN; kk += T) {
            const int ke = kk + T < IN ? kk + T : IN;
            for (int o = oo; o < oe; o++)
                for (int k = kk; k < ke; k++)
                    Wt[(long)k * OUT + o] = W[(long)o * IN + k];
        }
    }
}

/* ---- Dense layers ---- */

static inline float act_f(float x, int act)
{
    switch (act) {
    case VAE_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case VAE_ACT_TANH: return tanhf(x);
    case VAE_ACT_ELU: return x > 0.0f ? x : expm1f(x);
    default: return x;
    }
}

static void bias_act(float *out, const float *b, int B, int OUT, int act)
{
    for (int i = 0; i < B; i++) {
        float *o = out + (long)i * OUT;
        switch (act) {
        case VAE_ACT_RELU:
            for (int j = 0; j < OUT; j++) {
                float v = o[j] + b[j];
                o[j] = v > 0.0f ? v : 0.0f;
            }
            break;
        case VAE_ACT_TANH:
            for (int j = 0; j < OUT; j++)
                o[j] = tanhf(o[j] + b[j]);
            break;
        case VAE_ACT_ELU:
            for (int j = 0; j < OUT; j++) {
                float v = o[j] + b[j];
                o[j] = v > 0.0f ? v : expm1f(v);
            }
            break;
        default:
            for (int j = 0; j < OUT; j++)
                o[j] += b[j];
        }
    }
}

void dense_forward(float *out, const float *in, const float *W, const float *b, int B, int IN,
                   int OUT, int act)
{
    vae_gemm_fwd(out, in, W, B, IN, OUT);
    bias_act(out, b, B, OUT, act);
}

void dense_forward_t(float *out, const float *in, const float *Wt, const float *b, int B, int IN,
                     int OUT, int act)
{
    vae_gemm_fwd_t(out, in, Wt, B, IN, OUT);
    bias_act(out, b, B, OUT, act);
}

void dense_forward_naive(float *out, const float *in, const float *W, const float *b, int B,
                         int IN, int OUT, int act)
{
    for (int i = 0; i < B; i++)
        for (int o = 0; o < OUT; o++) {
            double s = b[o];
            for (int k = 0; k < IN; k++)
                s += (double)in[(long)i * IN + k] * W[(long)o * IN + k];
            out[(long)i * OUT + o] = act_f((float)s, act);
        }
}

void dense_backward_data(float *din, const float *dout, const float *W, int B, int IN, int OUT)
{
    vae_gemm_dx(din, dout, W, B, IN, OUT);
}

void dense_backward_params(float *dW, float *db, const float *dout, const float *in, int B,
                           int IN, int OUT, int o0, int o1, int add)
{
    vae_gemm_dw(dW, dout, in, B, IN, OUT, o0, o1, add);
    for (int o = o0; o < o1; o++)
        db[o] = 0.0f;
    for (int i = 0; i < B; i++) {
        const float *d = dout + (long)i * OUT;
        for (int o = o0; o < o1; o++)
            db[o] += d[o];
    }
}

void dense_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                    const float *W, int B, int IN, int OUT)
{
    dense_backward_params(dW, db, dout, in, B, IN, OUT, 0, OUT, 0);
    if (din)
        dense_backward_data(din, dout, W, B, IN, OUT);
}

void dense_backward_naive(float *din, float *dW, float *db, const float *dout, const float *in,
                          const float *W, int B, int IN, int OUT)
{
    for (int o = 0; o < OUT; o++) {
        for (int k = 0; k < IN; k++) {
            double s = 0;
            for (int i = 0; i < B; i++)
                s += (double)dout[(long)i * OUT + o] * in[(long)i * IN + k];
            dW[(long)o * IN + k] = (float)s;
        }
        double s = 0;
        for (int i = 0; i < B; i++)
            s += dout[(long)i * OUT + o];
        db[o] = (float)s;
    }
    if (din)
        for (int i = 0; i < B; i++)
            for (int k = 0; k < IN; k++) {
                double s = 0;
                for (int o = 0; o < OUT; o++)
                    s += (double)dout[(long)i * OUT + o] * W[(long)o * IN + k];
                din[(long)i * IN + k] = (float)s;
            }
}

void act_backward(float *d, const float *y, long n, int act)
{
    switch (act) {
    case VAE_ACT_RELU:
        for (long i = 0; i < n; i++)
            d[i] = y[i] > 0.0f ? d[i] : 0.0f;
        break;
    case VAE_ACT_TANH: /* tanh' = 1 - y^2 */
        for (long i = 0; i < n; i++)
            d[i] *= 1.0f - y[i] * y[i];
        break;
    case VAE_ACT_ELU: /* elu' = 1 for y > 0, else e^x = y + 1 */
        for (long i = 0; i < n; i++)
            d[i] *= y[i] > 0.0f ? 1.0f : y[i] + 1.0f;
        break;
    default:
        break;
    }
}

/* Σ x[i] or Σ x[i]²: 16 float partial sums per block of 4096 (a loop the compiler
 * vectorises without reassociating anything), each block added up in double. */
static double blocked_sum(const float *x, long n, int square)
{
    double total = 0.0;
    for (long b = 0; b < n; b += 4096) {
        long e = b + 4096 < n ? b + 4096 : n;
        float acc[16] = {0};
        long i = b;
        if (square) {
            for (; i + 16 <= e; i += 16)
                for (int k = 0; k < 16; k++)
                    acc[k] += x[i + k] * x[i + k];
            for (; i < e; i++)
                acc[0] += x[i] * x[i];
        } else {
            for (; i + 16 <= e; i += 16)
                for (int k = 0; k < 16; k++)
                    acc[k] += x[i + k];
            for (; i < e; i++)
                acc[0] += x[i];
        }
        double part = 0.0;
        for (int k = 0; k < 16; k++)
            part += acc[k];
        total += part;
    }
    return total;
}

double sum_squares(const float *x, long n) { return blocked_sum(x, n, 1); }
double sum_floats(const float *x, long n) { return blocked_sum(x, n, 0); }
