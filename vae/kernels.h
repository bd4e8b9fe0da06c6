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

#include "spec.h"

/* out (B,OUT) = act(in (B,IN) · W^T + b); W (OUT,IN), b (OUT). act < 0: identity. */
void dense_forward(float *out, const float *in, const float *W, const float *b, int B, int IN,
                   int OUT, int act);
void dense_forward_naive(float *out, const float *in, const float *W, const float *b, int B,
                         int IN, int OUT, int act);

/* Given dout (B,OUT) = dL/d(pre-activation output), the two halves of a layer's
 * backward pass, which a training step runs at different times (vae/model.h):
 *   dense_backward_data:   din (B,IN) = dout · W;
 *   dense_backward_params: the rows [o0, o1) of dW = dout^T · in and of
 *                          db = colsum(dout), written over what dW and db held.
 * A row block of dW is the same numbers as those rows of the whole product: the
 * reduction over the batch runs the same way whatever the block. */
void dense_backward_data(float *din, const float *dout, const float *W, int B, int IN, int OUT);
void dense_backward_params(float *dW, float *db, const float *dout, const float *in, int B,
                           int IN, int OUT, int o0, int o1);
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
