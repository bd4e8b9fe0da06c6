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
    int c0, crows;    /* its first parameter chunk; rows of W per chunk */
    int nchunks;      /* its chunks */
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
    float *wt;                  /* NULL, or every layer's W transposed (vae_model_use_wt) */
    int n_chunks;               /* parameter chunks, over all layers (see below) */
    /* workspace for max_batch inputs (max_batch * k decoder rows) */
    int max_batch;
    float *enc_out[VAE_MAX_LAYERS + 1]; /* layer outputs (B, out); the last is [mu | logvar] */
    float *dec_out[VAE_MAX_LAYERS + 1]; /* (B*k, out); the last holds logits, then their gradient */
    float *enc_d[VAE_MAX_LAYERS + 1];   /* dLoss/d(pre-activation output) of each layer; */
    float *dec_d[VAE_MAX_LAYERS + 1];   /* the last ones alias dhead and dec_out[last] */
    float *z, *eps, *dz;        /* (B*k, L) */
    float *dhead;               /* (B, 2L) gradient of [mu | logvar] */
    float *x;                   /* the batch, (B, D) */
    float *rowtmp;              /* (shards, D) per-unit loss terms of one output row */
    double *row_xent;           /* (B*k) −log p(x|z) of each decoder row */
    double *row_kl;             /* (B, groups) KL of each input and group */
} vae_model;

/* What one batch gives; every figure is per example (averaged over the batch). */
typedef struct vae_terms {
    double xent, kl, klobj, loss;
    double kl_group[VAE_MAX_GROUPS];
    double coef;        /* dLoss/dKLobj, which the backward pass needs */
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
 * writes the gradient of t->loss over m->grads. The KL estimator, free bits and
 * likelihood come from the spec. This is the phases below, one after the other. */
void vae_model_step(vae_model *m, int B, const vae_klweight *w, int backward, vae_terms *t);

/* The phases of a step, for a trainer that runs them on several threads. The batch's
 * rows are split into shards and the parameters into chunks; both splits depend on the
 * batch size and the model only, never on the thread count, and no phase's numbers
 * depend on which thread computes which shard or chunk. So any number of threads
 * gives exactly the figures of one.
 *   1. vae_model_forward for every shard (the shards are independent): forward pass,
 *      each row's loss terms and, with backward, the likelihood's gradient.
 *   2. vae_model_terms, once all of 1 is done: the batch's figures, summed in row
 *      order, and the KL's weight in the objective (coef).
 *   3. vae_model_backward_decoder, then vae_model_backward_encoder, for every shard:
 *      the gradients with respect to every layer's output (each row's depend on that
 *      row only). The encoder half needs 2's figures only when vae_model_needs_terms
 *      says so (free bits, a capacity target); otherwise a vae_terms whose coef is
 *      w->beta will do, and a shard can go on from 1 to 3 at once.
 *   4. vae_model_grad for every chunk: that chunk's parameter gradient, a block of
 *      rows of one layer's W and b, reduced over the whole batch. Chunks are numbered
 *      in the order their layers complete. A chunk's gradient, and the update of its
 *      parameters, wait until no shard will read them again: vae_model_chunk_needs is
 *      1 for a decoder chunk (all of 3's decoder half done), 2 for an encoder one
 *      (all of 3 done). With add, the chunk's weight-gradient rows hold zeros and the
 *      product is added to them (vae_gemm_dw), as in a training step, whose update
 *      (vae_adam_update) clears the gradient it reads; else they are written over.
 * A shard is vae_model_shard_rows(B) consecutive inputs (the last may be shorter): half
 * the batch up to 128 inputs, 64 inputs beyond, so each multiply keeps enough rows to
 * run near its full speed. */
int vae_model_shard_rows(int B);
int vae_model_shards(int B);
int vae_model_needs_terms(const vae_model *m, const vae_klweight *w);
void vae_model_forward(vae_model *m, int B, int shard, int backward);
void vae_model_terms(const vae_model *m, int B, const vae_klweight *w, vae_terms *t);
void vae_model_backward_decoder(vae_model *m, int B, int shard);
void vae_model_backward_encoder(vae_model *m, int B, int shard, const vae_terms *t);
int vae_model_chunk_needs(const vae_model *m, int chunk);

/* A chunk's parameters: two runs of the parameter buffers, rows of W and their b, and
 * where they come from: rows [o0, o1) of layer `layer` (enc first, then dec). */
typedef struct vae_span {
    long w, nw, b, nb;
    int layer, o0, o1;
} vae_span;
void vae_model_grad(vae_model *m, int B, int chunk, vae_span *sp, int add);
void vae_model_chunk(const vae_model *m, int chunk, vae_span *sp);

/* The transposed weights the forward multiplies read when they run on libxsmm
 * (vae/kernels.h, vae_gemm_fwd_t): vae_model_use_wt gives the model m->wt, n_params
 * floats with each layer's W (OUT,IN) transposed to (IN,OUT) at the layer's offset w,
 * when vae_gemm_lib(VAE_GEMM_FORWARD) is libxsmm (and nothing otherwise; 0, or VAED_ENOMEM); from then
 * on vae_model_forward reads m->wt instead of W. It is a copy, so whatever writes W
 * syncs it: vae_model_sync_wt(m, sp) after the update of chunk sp, (m, NULL) after
 * every layer (the trainer: after its start and a restore; test_train checks that the
 * copy equals W after steps and after a restore). Only the trainer uses it. */
int vae_model_use_wt(vae_model *m);
void vae_model_sync_wt(vae_model *m, const vae_span *sp);

/* Layer i, counting the encoder's layers first, then the decoder's. */
static inline const vae_layer *vae_model_layer(const vae_model *m, int i)
{
    return i < m->n_enc ? &m->enc[i] : &m->dec[i - m->n_enc];
}

/* Layer i's (enc first, then dec) buffers in the workspace: its input, its output, the
 * gradient with respect to its pre-activation output, and the gradient with respect
 * to its input (NULL for the first encoder layer, whose input is data). Rows: B for
 * the encoder, B·k for the decoder. */
void vae_model_layer_bufs(const vae_model *m, int i, const float **in, float **out,
                          float **dout, float **din);

/* Per-example KL per latent dimension of the last forward pass (analytic, whatever
 * the estimator): out (B, L). Used for KL per dimension and active units. */
void vae_model_kl_dims(const vae_model *m, int B, double *out);

/* One Adam step over n parameters, PyTorch's formulation:
 *   m = b1 m + (1 − b1) g,  v = b2 v + (1 − b2) g²,  g = clip · grad
 *   p = p · (1 − lr · wd) − (lr / (1 − b1^t)) · m / (sqrt(v / (1 − b2^t)) + eps)
 * with decoupled weight decay wd (AdamW) and t the 1-based update count. One flat loop
 * that the compiler vectorises; it returns Σ grad² (before clipping), so a step without
 * clipping reads the gradient once. It leaves g at zero, so that the next step's
 * multiply adds to it (vae_model_grad with add) without a pass of its own. */
double vae_adam_update(float *restrict p, float *restrict g, float *restrict m,
                       float *restrict v, long n, const vae_optim_spec *o, double lr,
                       double clip, long t);

#endif
