/* train.h — the training loop of one job: data order, noise, schedule, Adam, metrics,
 * evaluation, and the complete training state as one binary blob.
 *
 * Steps are numbered from 0; step s of a run with S steps per epoch (S = ceil(N / B),
 * the last batch of an epoch may be smaller) is in epoch s / S. The order of the
 * training rows in epoch e is a Fisher-Yates shuffle drawn from the stream (seed, e),
 * so it needs no state; the reparameterisation noise and dynamic binarisation come
 * from one generator whose state is in every checkpoint. Same spec, seed and thread
 * count give the same metrics bit for bit, and a run restored from a blob continues
 * exactly as the uninterrupted run.
 *
 * The beta the loss uses is the only beta there is: the trainer evaluates its current
 * schedule at the top of every step, uses that value in the loss, and reports the same
 * value in the step's metrics. vae_trainer_set_schedule swaps the schedule between two
 * steps; the new one is in force from the next step on. */
#ifndef VAED_TRAIN_H
#define VAED_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "err.h"
#include "metric_fields.h"
#include "model.h"
#include "rng.h"
#include "sched.h"
#include "metric_fields.h"
#include "spec.h"

/* One step's figures; nats per example. */
typedef struct vae_metrics {
    long step;                  /* 0-based index of the step */
    VAE_METRIC_FIELDS(VAE_MF_DECL) /* epoch, beta, ..., time: metric_fields.h */
    int n_groups;
    double kl_group[VAE_MAX_GROUPS];
} vae_metrics;

/* One epoch's figures: training means over its steps, and the held-out split at
 * beta = 1 (has_test = 0 when the spec has no test split). */
typedef struct vae_epoch_metrics {
    int epoch;                  /* epochs completed, 1-based */
    long step;                  /* steps completed */
    double train_loss, train_xent, train_kl, train_elbo, train_beta;
    int has_test;
    long test_n;
    double xent, kl, elbo;
    int n_groups;
    double kl_group[VAE_MAX_GROUPS];
    int active_units;           /* Burda et al. 2016: Var_x E_q[z_j] > 0.01 */
    int n_latent;
    const double *kl_dim;       /* n_latent, mean KL per dimension; borrowed */
    const double *mu_var;       /* n_latent, variance of the posterior mean; borrowed */
    double eval_s;              /* seconds the held-out evaluation took */
} vae_epoch_metrics;

typedef struct vae_trainer vae_trainer;

/* Load the spec's data and build the trainer. Returns 0, or a negative code with err
 * naming the field or file (bad dataset, model too large, out of memory). */
int vae_trainer_new(vae_trainer **out, const vae_spec *spec, vaed_err *err);

/* The same with data already loaded; takes ownership of train and test (test may be
 * NULL) on success and on failure. */
int vae_trainer_new_with_data(vae_trainer **out, const vae_spec *spec, vae_dataset *train,
                              vae_dataset *test, vaed_err *err);

void vae_trainer_free(vae_trainer *t);

/* Run step number vae_trainer_step_index(t) and fill *m. Returns 0, or VAED_EDIVERGED
 * with err = "diverged at step N: <term> is <value>", after which the trainer refuses
 * further steps. A non-finite loss term (xent, kl, loss) is caught before the update, so
 * the parameters are left as they were; a gradient that overflows while the loss is
 * finite is caught by the same pass that applies it (the norm comes out of the Adam
 * pass), so the parameters are then spoiled — the run stops all the same. */
int vae_trainer_step(vae_trainer *t, vae_metrics *m, vaed_err *err);

/* Figures for the epoch that just ended (call when vae_trainer_epoch_done is true):
 * the training means since the previous call, and the held-out split at beta = 1. Uses
 * its own noise stream, so it does not disturb training. The borrowed arrays stay
 * valid until the next call. */
int vae_trainer_evaluate(vae_trainer *t, vae_epoch_metrics *e, vaed_err *err);

long vae_trainer_step_index(const vae_trainer *t);  /* steps done so far */
long vae_trainer_steps_per_epoch(const vae_trainer *t);
long vae_trainer_total_steps(const vae_trainer *t);
int vae_trainer_finished(const vae_trainer *t);
/* True when the last step completed an epoch. */
int vae_trainer_epoch_done(const vae_trainer *t);
const vae_spec *vae_trainer_spec(const vae_trainer *t);
const vae_model *vae_trainer_model(const vae_trainer *t);
long vae_trainer_train_rows(const vae_trainer *t);

/* The beta of the last step that ran (the schedule's value at step 0 before any). */
double vae_trainer_beta(const vae_trainer *t);
/* The schedule in force (absolute). */
const sched_spec *vae_trainer_schedule(const vae_trainer *t);

/* Put s in force from the next step on. Relative parts ("origin": "now", "from":
 * "current") are resolved against that step and the beta of the last step that ran;
 * OUT: *resolved (may be NULL) gets the absolute schedule, *effective_step the step. */
void vae_trainer_set_schedule(vae_trainer *t, const sched_spec *s, sched_spec *resolved,
                              long *effective_step);
/* The learning rate from the next step on (> 0). */
void vae_trainer_set_lr(vae_trainer *t, double lr);

/* The complete training state as one blob (format: top of vae/ckpt.c). OUT: *blob
 * (malloc'd, caller frees) and *len. Returns 0 or VAED_ENOMEM. */
int vae_trainer_save(const vae_trainer *t, void **blob, size_t *len, vaed_err *err);

/* Restore a blob into a trainer built from the same spec and data. The blob is checked
 * (magic, version, length, checksum, model shape, data size) before anything changes;
 * on error the trainer is untouched and err says what is wrong. */
int vae_trainer_load(vae_trainer *t, const void *blob, size_t len, vaed_err *err);

/* The step stored in a blob, without a trainer (for listings); -1 if not a valid blob. */
long vae_ckpt_step(const void *blob, size_t len);
/* What a blob says about where its run stands, without a trainer. */
typedef struct vae_ckpt_info {
    long step;                  /* steps done */
    double beta;                /* beta of the last step */
    double lr;                  /* learning rate in force */
    long rows, batch, steps_per_epoch;
} vae_ckpt_info;
/* Returns 0, or VAED_EINVAL when blob is not a valid checkpoint. */
int vae_ckpt_peek(const void *blob, size_t len, vae_ckpt_info *out);

/* A run in the foreground: steps until finished, calling the hooks. A hook returning
 * non-zero stops the run early (returns 0). */
typedef struct vae_hooks {
    void *user;
    int (*on_step)(void *user, const vae_metrics *m);
    int (*on_epoch)(void *user, const vae_epoch_metrics *e);
} vae_hooks;
int vae_trainer_run(vae_trainer *t, const vae_hooks *h, vaed_err *err);

/* The OpenBLAS build and thread settings and the library of each multiply
 * (vae_gemm_describe), for start-up logs and `vaed --version`. */
void vae_blas_info(char *buf, size_t n);
/* What decides a training step's bits on this host besides the job itself: the
 * OpenBLAS core, the library of each multiply and the vector set vaed was built for, as
 * one string ("OpenBLAS core Haswell; multiplies: libxsmm avx512 backward, OpenBLAS
 * forward; built for avx512f"). Not the thread
 * count: a step's bits do not depend on it. Two nodes with equal strings resume each
 * other's jobs bit for bit; the daemon records it on each job (jobs.kernels). */
void vae_kernels_id(char *buf, size_t n);
/* 1, with a sentence for the log in buf, when this CPU has AVX-512 (F, BW, DQ, VL) and
 * the OpenBLAS core in use has only AVX2 kernels (Haswell, Zen, ...): set by
 * OPENBLAS_CORETYPE, or picked by an OpenBLAS that does not know the CPU. Evaluation
 * and serving then run at about two thirds of the speed they could; training loses
 * less, since its multiplies are libxsmm's there (vae/kernels.h; docs/benchmarks.md,
 * "The OpenBLAS core" and "libxsmm"). 0 otherwise. */
int vae_blas_narrow(char *buf, size_t n);
/* One OpenBLAS thread per multiply: a job's train.threads are vaed's own (vae/par.h),
 * which split each step's work themselves. vae_trainer_new calls it. */
void vae_blas_init(void);

#endif
