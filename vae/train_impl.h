/* train_impl.h — the trainer's insides, shared by train.c (the loop) and ckpt.c (its
 * state blob) only. Nothing else includes this. */
#ifndef VAED_TRAIN_IMPL_H
#define VAED_TRAIN_IMPL_H

#include "par.h"
#include "train.h"

struct vae_trainer {
    vae_spec spec;
    vae_model *model;
    vae_dataset *train, *test;
    long N, S, total;           /* training rows, steps per epoch, steps in the run */
    long step;                  /* steps done */
    long *perm;                 /* row order of epoch perm_epoch */
    long perm_epoch;
    vae_rng rng;                /* noise and dynamic binarisation; checkpointed */
    sched_spec sched;           /* in force, absolute */
    sched_state sst;
    double beta_last, kl_last;
    double lr;
    int diverged;
    /* running sums of the epoch in progress; checkpointed so a resumed epoch reports
     * the same means */
    double acc_loss, acc_xent, acc_kl, acc_beta;
    long acc_n;
    vae_par *par;               /* the step's threads beside the caller (NULL: one thread) */
    /* evaluation buffers, sized once */
    double *kl_dim, *mu_var, *mu_sum, *mu_sq, *kl_tmp;
    double *chunk_sq;           /* per chunk of the parameters: Σ g² of the last pass */
    double *unif;               /* the step's uniform draws for its normal noise */
};

void vae_trainer_order(vae_trainer *t, long epoch);

#endif
