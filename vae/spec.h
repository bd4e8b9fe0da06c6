/* spec.h — the job spec: one JSON document, the same for `vaed train` and the daemon.
 *
 * Parsing is strict: every key is known or it is an error (a typo must never
 * silently change a run), every value is type- and range-checked, and every error
 * names its dotted field path ("model.latent: must be a positive integer or a list
 * of positive integers"). Every number has a finite range, from the one table in
 * range.h; -0 is stored as +0. Fields left out take the defaults documented in
 * docs/spec.md; vae_spec_to_json writes the spec back with every default filled in,
 * which is what runs and what is stored. */
#ifndef VAED_SPEC_H
#define VAED_SPEC_H

#include <jansson.h>
#include <stdint.h>

#include "data.h"
#include "err.h"
#include "sched.h"

#define VAE_MAX_LAYERS 16
#define VAE_MAX_GROUPS 16

enum vae_act { VAE_ACT_RELU = 0, VAE_ACT_TANH, VAE_ACT_ELU };
enum vae_lik { VAE_LIK_BERNOULLI = 0, VAE_LIK_CATEGORICAL, VAE_LIK_GAUSSIAN };
enum vae_klkind { VAE_KL_ANALYTIC = 0, VAE_KL_MC };

typedef struct vae_model_spec {
    int n_enc, enc[VAE_MAX_LAYERS];   /* encoder hidden sizes */
    int n_dec, dec[VAE_MAX_LAYERS];   /* decoder hidden sizes */
    int n_groups, groups[VAE_MAX_GROUPS]; /* latent sizes per group ("latent": 32 or [16,16]) */
    enum vae_act activation;
    enum vae_lik likelihood;
    double sigma;                     /* gaussian likelihood: fixed std-dev, > 0 */
} vae_model_spec;

typedef struct vae_loss_spec {
    enum vae_klkind kl;
    int samples;                      /* z samples per input, >= 1 */
    double free_bits;                 /* lambda per group, nats, >= 0 */
} vae_loss_spec;

typedef struct vae_optim_spec {
    double lr, beta1, beta2, eps;
    double weight_decay;              /* decoupled (AdamW), >= 0 */
    double clip_norm;                 /* clip by global gradient norm; 0 = off */
} vae_optim_spec;

typedef struct vae_train_spec {
    int epochs;                       /* >= 1 */
    int batch_size;                   /* >= 1 */
    uint64_t seed;
    int threads;                      /* threads sharing each step, >= 1 */
} vae_train_spec;

typedef struct vae_ckpt_spec {
    long every_steps;                 /* 0 = off */
    double every_seconds;             /* 0 = off; default 60 */
    int at_epoch_end;                 /* default 1 */
    int keep;                         /* last N periodic checkpoints kept; default 3 */
    int keep_epoch_end;               /* keep every epoch-end checkpoint; default 1 */
} vae_ckpt_spec;

/* Evaluations during training (the daemon): at every every_epochs-th epoch end, the
 * epoch's checkpoint is queued for the importance-weighted bound (vae/eval.h) with k
 * samples per row over the first rows rows (0 = all) of the held-out split. */
typedef struct vae_eval_spec {
    int every_epochs;                 /* 0 = off (default) */
    int k;                            /* default 64 */
    long rows;                        /* 0 = all (default) */
} vae_eval_spec;

typedef struct vae_spec {
    char name[128];
    int priority;                     /* daemon queue: higher first; default 0 */
    vae_data_spec dataset;
    vae_model_spec model;
    vae_loss_spec loss;
    sched_spec schedule;
    vae_optim_spec optimizer;
    vae_train_spec train;
    vae_ckpt_spec checkpoint;
    vae_eval_spec eval;
} vae_spec;

/* Fill out with every default (dataset fashion-mnist, the reference model). */
void vae_spec_default(vae_spec *out);

/* Parse a job spec document. Returns 0, or VAED_EINVAL with err naming the field.
 * doc is borrowed. out is fully written on success, unspecified on error. */
int vae_spec_parse(vae_spec *out, const json_t *doc, vaed_err *err);

/* Parse from text; JSON syntax errors come back as "line L, column C: ..." with
 * err->field empty. */
int vae_spec_parse_text(vae_spec *out, const char *text, size_t len, vaed_err *err);

/* The spec with every default written (new reference). Parses back to the same spec. */
json_t *vae_spec_to_json(const vae_spec *s);

/* Whether lr is a learning rate the spec would accept (optimizer.lr's row of range.h),
 * for the route that changes a running job's lr. Returns 0, or VAED_EINVAL with err
 * naming `field` (the caller's name for it: "lr" in a PUT body). */
int vae_spec_check_lr(double lr, const char *field, vaed_err *err);

/* The one rule for a name a person reads (a job's, a dataset's): s[0..n), valid UTF-8
 * (jansson's strings are), non-empty, under cap bytes, no control characters (C0, DEL,
 * C1) and no Unicode bidi controls (U+202A..U+202E, U+2066..U+2069) that would show it
 * in another order than it is stored. Returns 0 or VAED_EINVAL naming field. */
int vae_spec_check_name(const char *s, size_t n, size_t cap, const char *field, vaed_err *err);

/* Total latent dimension (sum of groups). */
int vae_spec_latent(const vae_spec *s);

#endif
