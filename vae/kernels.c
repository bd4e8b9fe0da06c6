/* kernels.c — see kernels.h. The BLAS versions fuse bias and activation into one
 * pass over the output, so each layer reads its output once after the sgemm. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

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
    /* out = in · W^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OUT, IN, 1.0f, in, IN, W, IN, 0.0f,
                out, OUT);
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IN, OUT, 1.0f, dout, OUT, W, IN,
                0.0f, din, IN);
}

void dense_backward_params(float *dW, float *db, const float *dout, const float *in, int B,
                           int IN, int OUT, int o0, int o1)
{
    /* dW[o0:o1] = dout[:, o0:o1]^T · in */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, IN, B, 1.0f, dout + o0, OUT,
                in, IN, 0.0f, dW + (long)o0 * IN, IN);
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
    dense_backward_params(dW, db, dout, in, B, IN, OUT, 0, OUT);
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
