/* eval.h — judging a trained model by the number papers report: the importance-weighted
 * bound (IWAE; Burda, Grosse & Salakhutdinov 2016) on log p(x),
 *
 *     L_k(x) = log (1/k) Σ_{s=1..k} w_s,   w_s = p(x | z_s) p(z_s) / q(z_s | x),
 *     z_s ~ q(z | x) independently,
 *
 * whose expectation rises with k towards log p(x) (L_1 is the ELBO estimator with a
 * Monte-Carlo KL). Per data row, the k log-weights are summed with a running
 * log-sum-exp in double, so k = 5000 neither overflows nor loses the small terms.
 *
 * Cost: the encoder runs once per row and chunk of samples, the decoder on every sample:
 * the samples of several rows are batched into the decoder's GEMMs, up to about 1,024
 * decoder rows at a time. log p(x | z) is the model's own likelihood term (the negative
 * of the training xent's per-row term: for bernoulli data in [0, 1] it is the
 * cross-entropy, a true log-likelihood only for binary data; for gaussian it includes
 * the normalising constant), and log p(z) − log q(z | x) = −Σ_j ½ (z_j² − ε_j² − lv_j)
 * with z = μ + e^{lv/2} ε, the constants cancelling.
 *
 * Determinism: the draws come from the caller's rng, in row-group order, B·c·L normals
 * per pass (B rows, c samples each): the same rng state and arguments give the same
 * numbers on one host. */
#ifndef VAED_EVAL_H
#define VAED_EVAL_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "err.h"
#include "rng.h"
#include "spec.h"

typedef struct vae_eval vae_eval;

/* How the work of k samples per row is cut: OUT *c samples per row in one forward pass,
 * *B rows per pass (c·B is about 1,024 decoder rows); a group of B rows takes
 * ceil(k / c) passes, each running the encoder on B rows and the decoder on B·c. */
void vae_eval_plan(int k, int *c, int *B);

/* An evaluator for spec's model (data width D; vocab > 0 for categorical, as
 * vae_model_new) with the n parameters params (copied; the layout of vae_model_new),
 * drawing k >= 1 samples per row. Returns 0, VAED_EINVAL (k < 1, or n is not the
 * model's parameter count: the message gives both), VAED_ENOMEM; *out NULL on error. */
int vae_eval_new(vae_eval **out, const vae_spec *spec, int D, int vocab, const float *params,
                 long n, int k, vaed_err *err);
void vae_eval_free(vae_eval *e);

/* The bound for each of n rows of x (n, D): OUT ll[i] = L_k(x_i); elbo[i] (may be
 * NULL) = the mean of the same k log-weights, the k-sample ELBO estimate; mu and lv
 * (may be NULL; (n, L) each) the posterior's means and log-variances. */
void vae_eval_rows(vae_eval *e, const float *x, long n, vae_rng *rng, double *ll,
                   double *elbo, float *mu, float *lv);

/* The posterior's figures over a split of N rows (mu, lv: (N, L)): the mutual
 * information (vae_eval_mi, drawing from rng), the active units (Burda et al.'s
 * definition: latent dimensions j with Var_x(mu_j) > 0.01), and the analytic KL to the
 * prior per latent group (spec's groups, in order) and in all, each a mean over rows. */
typedef struct vae_eval_post {
    double mi, kl;
    int active_units, n_groups;
    double kl_group[VAE_MAX_GROUPS];
} vae_eval_post;
void vae_eval_posterior(const float *mu, const float *lv, long N, const vae_model_spec *ms,
                        vae_rng *rng, vae_eval_post *out);

/* The mutual information I(x; z) under q, over a whole split (not a minibatch), as He et
 * al. (2019) estimate it after Hoffman & Johnson (2016):
 *     I = E_x E_{q(z|x)} [log q(z|x)] − E_x E_{q(z|x)} [log q(z)],
 *     q(z) = (1/N) Σ_n q(z | x_n), the aggregate posterior of the N rows.
 * The first term is the closed-form negative entropy of each diagonal Gaussian,
 * −Σ_j ½ (log 2π + 1 + lv_j); the second draws one z_i ~ q(z | x_i) per row and sums
 * log q(z_i | x_n) over every row n with log-sum-exp: O(N² L), exact in N, no minibatch
 * bias. mu, lv: (N, L) posterior means and log-variances. It lies in [0, log N] up to
 * Monte-Carlo noise. */
double vae_eval_mi(const float *mu, const float *lv, long N, int L, vae_rng *rng);

/* Mean of v[0..n) and its standard error, sd / sqrt(n) with the n − 1 sample variance
 * (0 when n < 2). */
void vae_eval_mean_se(const double *v, long n, double *mean, double *se);

/* ---- a split in blocks (eval_run.c) -------------------------------------------------
 * Rows [b·VAE_EVAL_BLOCK, (b + 1)·VAE_EVAL_BLOCK) of a split form block b. Each block
 * draws from its own stream, (seed, b), so its numbers do not depend on which blocks
 * ran before it or where: an evaluation stopped after any block and resumed (the
 * daemon's, after a SIGKILL) gives the same bits as one that never stopped, and `vaed
 * eval` gives the daemon's numbers for the same checkpoint, rows, k and seed. */
#define VAE_EVAL_BLOCK 256

/* Let another thread stop a long evaluation: once *stop (borrowed; NULL = never) is
 * non-zero, vae_eval_rows returns at its next forward pass (a few milliseconds), leaving
 * its outputs incomplete, and vae_eval_block returns -1. */
void vae_eval_set_stop(vae_eval *e, const atomic_int *stop);
int vae_eval_stopped(const vae_eval *e);

/* The evaluator's room for one block: VAE_EVAL_BLOCK rows of its data width, their row
 * numbers. */
void vae_eval_scratch(vae_eval *e, float **x, long **idx);

/* The number of blocks of n rows. */
long vae_eval_blocks(long n);

/* Evaluate block b of the first n rows of d: OUT, for its rows r (at most
 * VAE_EVAL_BLOCK, from row b·VAE_EVAL_BLOCK), ll[r], elbo[r], mu[r·L..], lv[r·L..]
 * as vae_eval_rows. Returns the block's row count (0 past the end), or -1 when it was
 * stopped (vae_eval_set_stop) before it was complete. */
long vae_eval_block(vae_eval *e, const struct vae_dataset *d, long n, uint64_t seed, long b,
                    double *ll, double *elbo, float *mu, float *lv);

/* What an evaluation reports: the mean bound and k-sample ELBO over its rows, each with
 * its standard error over rows, and the posterior's figures (vae_eval_posterior, drawn
 * from the stream (seed, "mi")). One definition for `vaed eval` and the daemon. */
typedef struct vae_eval_result {
    long rows;
    int k;
    uint64_t seed;
    double bound, bound_se, elbo, elbo_se;
    vae_eval_post post;
} vae_eval_result;

/* Summarise the per-row figures of n rows (the blocks' outputs, in row order). */
void vae_eval_summarize(const double *ll, const double *elbo, const float *mu, const float *lv,
                        long n, int k, uint64_t seed, const vae_model_spec *ms,
                        vae_eval_result *out);

/* A new JSON object: rows, k, seed, bound, bound_se, elbo, elbo_se, kl, mi,
 * active_units, kl_groups. NULL on allocation failure. */
json_t *vae_eval_result_json(const vae_eval_result *r);

#endif
