/* eval_run.c — a split evaluated in blocks, and the one summary of an evaluation
 * (eval.h): shared by `vaed eval` and the daemon's evaluations. */
#include "eval.h"

#include <math.h>

#include "data.h"

long vae_eval_blocks(long n) { return n > 0 ? (n + VAE_EVAL_BLOCK - 1) / VAE_EVAL_BLOCK : 0; }

long vae_eval_block(vae_eval *e, const vae_dataset *d, long n, uint64_t seed, long b,
                    double *ll, double *elbo, float *mu, float *lv)
{
    const long first = b * VAE_EVAL_BLOCK;
    if (b < 0 || first >= n)
        return 0;
    const long rows = n - first < VAE_EVAL_BLOCK ? n - first : VAE_EVAL_BLOCK;
    float *x;
    long *idx;
    vae_eval_scratch(e, &x, &idx);
    for (long i = 0; i < rows; i++)
        idx[i] = first + i;
    vae_batch_fill(d, idx, (int)rows, x);
    vae_rng rng;
    /* stream: "eval" in the high half, the block in the low: disjoint from the
     * trainer's streams and from the "mi" stream of the summary */
    vae_rng_seed(&rng, seed, ((uint64_t)0x6576616c << 32) | (uint64_t)b);
    vae_eval_rows(e, x, rows, &rng, ll, elbo, mu, lv);
    return vae_eval_stopped(e) ? -1 : rows;
}

void vae_eval_summarize(const double *ll, const double *elbo, const float *mu, const float *lv,
                        long n, int k, uint64_t seed, const vae_model_spec *ms,
                        vae_eval_result *out)
{
    out->rows = n;
    out->k = k;
    out->seed = seed;
    vae_eval_mean_se(ll, n, &out->bound, &out->bound_se);
    vae_eval_mean_se(elbo, n, &out->elbo, &out->elbo_se);
    vae_rng rng;
    vae_rng_seed(&rng, seed, 0x6d69); /* "mi": its own stream */
    vae_eval_posterior(mu, lv, n, ms, &rng, &out->post);
}

json_t *vae_eval_result_json(const vae_eval_result *r)
{
    json_t *groups = json_array();
    for (int g = 0; groups && g < r->post.n_groups; g++)
        json_array_append_new(groups, json_real(r->post.kl_group[g]));
    if (!groups)
        return NULL;
    return json_pack("{s:I, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:o}", "rows",
                     (json_int_t)r->rows, "k", r->k, "seed", (json_int_t)r->seed, "bound",
                     r->bound, "bound_se", r->bound_se, "elbo", r->elbo, "elbo_se", r->elbo_se,
                     "kl", r->post.kl, "mi", r->post.mi, "active_units",
                     r->post.active_units, "kl_groups", groups);
}
