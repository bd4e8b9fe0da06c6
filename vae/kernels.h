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

/* Given dout (B,OUT) = dL/d(pre-activation output), accumulate dW += dout^T · in,
 * db += colsum(dout), and write din (B,IN) = dout · W (skipped when din is NULL, as for
 * the first layer, whose input is data). */
void dense_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                    const float *W, int B, int IN, int OUT);
void dense_backward_naive(float *din, float *dW, float *db, const float *dout, const float *in,
                          const float *W, int B, int IN, int OUT);

/* In place: d (n) *= act'(y) where y (n) is the activation's output (every supported
 * activation's derivative is a function of its output). */
void act_backward(float *d, const float *y, long n, int act);

#endif
