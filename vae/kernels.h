/* kernels.h — the dense-layer and elementwise kernels of the VAE, on plain float
 * arrays with explicit sizes. Row-major, batch-major: a batch of B rows of width N
 * is (B,N). Weights are (OUT,IN) as in PyTorch's nn.Linear, so checkpoints map to
 * PyTorch tensors without transposes.
 *
 * Each BLAS kernel has a naive-loop twin (suffix _naive), the oracle of the tests.
 * Backward kernels accumulate into parameter gradients (+=); the caller zeroes the
 * gradient buffer once per step. */
#ifndef VAED_KERNELS_H
#define VAED_KERNELS_H

#include <stddef.h>

#include "spec.h"

/* The multiplies of a dense layer, the only place vaed's training and evaluation call a
 * GEMM (vaed bench-sgemm times these same functions):
 *   vae_gemm_fwd:   out (B,OUT) = in (B,IN) · W^T                 (OpenBLAS)
 *   vae_gemm_fwd_t: the same from Wt (IN,OUT) = W^T, the weights transposed
 *   vae_gemm_dx:    din (B,IN) = dout (B,OUT) · W
 *   vae_gemm_dw:    rows [o0,o1) of dW (OUT,IN) = dout[:, o0:o1]^T · in
 * each writing over its output, except vae_gemm_dw with add: then dW's rows hold zeros
 * and the product is added to them (OpenBLAS's β = 1), which spares OpenBLAS the pass
 * that zeroes them first (β = 0) — the same bits, as x + 0 = x, at 2-8% of a training
 * step on an AVX2 host (docs/benchmarks.md). The trainer keeps the weight gradient at
 * zero between steps for it: vae_adam_update clears what it reads. fwd_t, dx and dw run on libxsmm's JIT kernels when
 * vae_gemm_lib() of their product is VAE_GEMM_LIBXSMM (and on OpenBLAS for a shape
 * libxsmm has no kernel for), else on OpenBLAS. (libxsmm 1.17 has no kernel for W^T read in place, hence the
 * transposed copy the trainer keeps: vae_model_use_wt.) Either way a product's bits
 * depend only on its shape and the host, never on the thread that runs it. */
void vae_gemm_fwd(float *out, const float *in, const float *W, int B, int IN, int OUT);
void vae_gemm_fwd_t(float *out, const float *in, const float *Wt, int B, int IN, int OUT);
void vae_gemm_dx(float *din, const float *dout, const float *W, int B, int IN, int OUT);
void vae_gemm_dw(float *dW, const float *dout, const float *in, int B, int IN, int OUT, int o0,
                 int o1, int add);

/* The library of each product, decided once per process. VAED_GEMM=openblas or
 * =libxsmm puts all three on that library; unset or "auto" chooses by what
 * docs/benchmarks.md ("libxsmm") measured on the step's shapes:
 *   backward (dx, dw): libxsmm where it generates AVX-512 code (it beats OpenBLAS there,
 *            with either kind of OpenBLAS core; with AVX2 it does not), else OpenBLAS;
 *   forward:  libxsmm only where, besides, the OpenBLAS core in use has no AVX-512
 *            kernels (vae_blas_core_avx512() is 0: a core forced by
 *            OPENBLAS_CORETYPE, say); against an AVX-512 core, the transposed copy
 *            costs more than libxsmm gains.
 * OpenBLAS stays the reference: evaluation and serving are its. vae_gemm_env is what
 * VAED_GEMM asks for (VAE_GEMM_AUTO when unset), or -1 for a value it cannot hold;
 * vae_gemm_lib_set puts both products on one library (VAE_GEMM_AUTO: the process's own
 * choice again), for the tests, which check each library against the naive oracle;
 * vae_gemm_describe names the choice ("libxsmm avx512", "libxsmm cpx backward,
 * OpenBLAS forward", "OpenBLAS"). */
enum { VAE_GEMM_AUTO = 0, VAE_GEMM_OPENBLAS = 1, VAE_GEMM_LIBXSMM = 2 };
enum { VAE_GEMM_FORWARD = 0, VAE_GEMM_BACKWARD = 1 };
int vae_gemm_env(void);
int vae_gemm_lib(int product);
void vae_gemm_lib_set(int lib);
void vae_gemm_describe(char *buf, size_t n);
/* 1 when the OpenBLAS core in use has AVX-512 kernels (SkylakeX, Cooperlake,
 * SapphireRapids). */
int vae_blas_core_avx512(void);

/* out (B,OUT) = act(in (B,IN) · W^T + b); W (OUT,IN), b (OUT). act < 0: identity. */
void dense_forward(float *out, const float *in, const float *W, const float *b, int B, int IN,
                   int OUT, int act);
/* The same from Wt (IN,OUT), the weights transposed (vae_gemm_fwd_t). */
void dense_forward_t(float *out, const float *in, const float *Wt, const float *b, int B, int IN,
                     int OUT, int act);
/* Wt (IN,OUT) columns [o0,o1) = the rows [o0,o1) of W (OUT,IN), transposed. */
void transpose_rows(float *Wt, const float *W, int IN, int OUT, int o0, int o1);
void dense_forward_naive(float *out, const float *in, const float *W, const float *b, int B,
                         int IN, int OUT, int act);

/* Given dout (B,OUT) = dL/d(pre-activation output), the two halves of a layer's
 * backward pass, which a training step runs at different times (vae/model.h):
 *   dense_backward_data:   din (B,IN) = dout · W;
 *   dense_backward_params: the rows [o0, o1) of dW = dout^T · in and of
 *                          db = colsum(dout), written over what dW and db held
 *                          (dW with add: added to its rows, which hold zeros;
 *                          vae_gemm_dw).
 * A row block of dW is the same numbers as those rows of the whole product: the
 * reduction over the batch runs the same way whatever the block. */
void dense_backward_data(float *din, const float *dout, const float *W, int B, int IN, int OUT);
void dense_backward_params(float *dW, float *db, const float *dout, const float *in, int B,
                           int IN, int OUT, int o0, int o1, int add);
/* Both: dW, db (every row) and, unless din is NULL, din. The naive twin is the oracle. */
void dense_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                    const float *W, int B, int IN, int OUT);
void dense_backward_naive(float *din, float *dW, float *db, const float *dout, const float *in,
                          const float *W, int B, int IN, int OUT);

/* In place: d (n) *= act'(y) where y (n) is the activation's output (every supported
 * activation's derivative is a function of its output). */
void act_backward(float *d, const float *y, long n, int act);

/* Σ x[i]², in double precision, vectorised: float partial sums over short blocks
 * (so rounding stays at float epsilon per block), added up in double. */
double sum_squares(const float *x, long n);

/* Σ x[i] in double precision, vectorised the same way. */
double sum_floats(const float *x, long n);

/* Vectorisable exp(x) for x <= 0 (relative error < 3e-7; 0 below -87) and
 * log1p(e) for e in [0, 1] (absolute error < 1e-7): the likelihood's inner loop calls
 * them on every output unit, where libm's scalar calls were a fifth of a step. */
static inline float exp_nonpos(float x)
{
    x = x < -87.0f ? -87.0f : x;
    float n = __builtin_rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693145751953125f - n * 1.42860682030941723e-6f; /* ln 2 in two parts */
    /* e^r on |r| <= ln2/2, Taylor to r^7/5040 */
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666667e-1f + r * (4.16666667e-2f +
              r * (8.33333333e-3f + r * (1.38888889e-3f + r * 1.98412698e-4f))))));
    /* A NaN input (a diverging run's logits) must come out NaN, not be converted to
     * int: that conversion is undefined behaviour. p is already NaN then. */
    union { int i; float f; } u = {.i = ((int)(n == n ? n : 0.0f) + 127) << 23};
    return p * u.f;
}

static inline float log1p_unit(float e)
{
    /* log(1+e) = 2 atanh(s), s = e/(2+e) in [0, 1/3]: odd series to s^13 */
    float s = e / (2.0f + e), s2 = s * s;
    float q = 1.0f + s2 * (0.333333333f + s2 * (0.2f + s2 * (0.142857143f + s2 * (0.111111111f +
              s2 * (0.0909090909f + s2 * 0.0769230769f)))));
    return 2.0f * s * q;
}

#endif
