/* model.h — the VAE: MLP encoder → diagonal Gaussian latent (one or several groups)
 * → k reparameterised samples per input → MLP decoder → likelihood.
 *
 * Parameters, gradients and Adam's two moments are four float buffers of the same
 * layout (n_params each); every layer holds offsets into them. The workspace for a
 * batch of up to max_batch inputs is allocated once in vae_model_new: a training step
 * allocates nothing.
 *
 * The loss of one batch, per example and averaged over the batch (nats):
 *     xent = (1/k) Σ_s −log p(x | z_s)                      reconstruction
 *     KL_g = KL(q(z_g|x) ‖ N(0, I))  per latent group g      analytic or Monte-Carlo
 *     KLobj = Σ_g max(λ, KL_g)       free bits (λ = 0: the plain KL)
 *     loss = xent + beta · KLobj      or, for a capacity schedule,
 *     loss = xent + gamma · |KLobj − C|
 * Reported KL and ELBO = −(xent + KL) always use the raw KL. */
#ifndef VAED_MODEL_H
#define VAED_MODEL_H

#include <stddef.h>

#include "err.h"
#include "spec.h"

typedef struct vae_layer {
    int in, out, act; /* act < 0: linear */
    long w, b;        /* offsets of W (out,in) and b (out) in the parameter buffers */
} vae_layer;

typedef struct vae_model {
    int D;                      /* data width */
    int L;                      /* total latent width */
    int k;                      /* z samples per input */
    int n_groups, group_off[VAE_MAX_GROUPS + 1];
    enum vae_lik lik;
    enum vae_klkind klkind;
    double free_bits, sigma;
    int vocab;                  /* categorical: symbols per position */
    int n_enc, n_dec;           /* layers including the latent head / output layer */
    vae_layer enc[VAE_MAX_LAYERS + 1], dec[VAE_MAX_LAYERS + 1];
    long n_params;
    float *params, *grads, *m, *v;
    /* workspace for max_batch inputs (max_batch * k decoder rows) */
    int max_batch;
    float *enc_out[VAE_MAX_LAYERS + 1]; /* layer outputs (B, out); the last is [mu | logvar] */
    float *dec_out[VAE_MAX_LAYERS + 1]; /* (B*k, out); the last holds logits, then their gradient */
    float *z, *eps, *dz;        /* (B*k, L) */
    float *dhead;               /* (B, 2L) gradient of [mu | logvar] */
    float *scratch[2];          /* backward ping-pong, (B*k, widest layer) */
    float *x;                   /* the batch, (B, D) */
    float *rowtmp;              /* (D) per-unit loss terms of one output row */
} vae_model;

/* What one batch gives; every figure is per example (averaged over the batch). */
typedef struct vae_terms {
    double xent, kl, klobj, loss;
    double kl_group[VAE_MAX_GROUPS];
} vae_terms;

/* How the KL term enters the objective this step. */
typedef struct vae_klweight {
    double beta;        /* beta, or gamma for capacity */
    int capacity;       /* 1: gamma · |KLobj − C| */
    double C;
} vae_klweight;

/* Build the model for data of width D (vocab > 0 for categorical: D = positions ·
 * vocab). Parameters are initialised as PyTorch's nn.Linear does — W and b uniform in
 * ±1/sqrt(in) — from the stream of `seed` reserved for initialisation.
 * Returns 0, VAED_EINVAL (shape does not fit) or VAED_ENOMEM; *out is NULL on error. */
int vae_model_new(vae_model **out, const vae_spec *spec, int D, int vocab, int max_batch,
                  vaed_err *err);
void vae_model_free(vae_model *m);

/* Fill m's shape fields only — D, vocab, k, likelihood, KL kind, latent groups, the
 * layers with their parameter offsets, n_params — exactly as vae_model_new lays them
 * out, with no buffer (every pointer NULL). For readers of a parameter vector that
 * need its layout without a model (safetensors export, size estimates). */
void vae_model_shape(vae_model *m, const vae_spec *spec, int D, int vocab);

/* Bytes vae_model_new would allocate (for job memory estimates before anything runs). */
size_t vae_model_bytes(const vae_spec *spec, int D, int max_batch);

/* One batch: m->x holds B rows, m->eps holds B*k*L standard normal draws (row i*k+s is
 * sample s of input i). Runs the forward pass and fills *t; with backward set it also
 * adds the gradient of t->loss into m->grads, which must be zero (they start zeroed and
 * vae_adam_update clears them as it consumes them).
 * The KL estimator, free bits and likelihood come from the spec. */
void vae_model_step(vae_model *m, int B, const vae_klweight *w, int backward, vae_terms *t);

/* Per-example KL per latent dimension of the last forward pass (analytic, whatever
 * the estimator): out (B, L). Used for KL per dimension and active units. */
void vae_model_kl_dims(const vae_model *m, int B, double *out);

/* One Adam step over n parameters, PyTorch's formulation:
 *   m = b1 m + (1 − b1) g,  v = b2 v + (1 − b2) g²,  g = clip · grad
 *   p = p · (1 − lr · wd) − (lr / (1 − b1^t)) · m / (sqrt(v / (1 − b2^t)) + eps)
 * with decoupled weight decay wd (AdamW) and t the 1-based update count. One flat loop
 * that the compiler vectorises; it also zeroes g, ready for the next step, and returns
 * Σ grad² (before clipping), so a step without clipping reads the gradient once. */
double vae_adam_update(float *restrict p, float *restrict g, float *restrict m,
                       float *restrict v, long n, const vae_optim_spec *o, double lr,
                       double clip, long t);

#endif
