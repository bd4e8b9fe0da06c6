/* eval.c — the importance-weighted bound (eval.h). A vae_model built with c samples per
 * input and room for B inputs does the work: its forward pass (no backward) fills each
 * decoder row's −log p(x | z) (row_xent), z and ε; the log-weights are formed here and
 * folded into each row's running log-sum-exp, c samples at a time. */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* Decoder rows per forward pass: enough for the decoder's GEMMs to run near full
 * speed, small enough for the workspace to stay a few MB for image-sized data. */
#define EVAL_ROWS 1024

struct vae_eval {
    vae_model *m;
    int k;                      /* samples per data row */
    int c;                      /* samples per row in one pass (the model's k) */
    int B;                      /* data rows per pass */
    double *mx, *acc, *sum;     /* per row of a pass: running max, Σ e^(lw − mx), Σ lw */
    int D;
    const atomic_int *stop;     /* non-zero: stop between passes (vae_eval_set_stop) */
    float *x;                   /* a block's rows (eval_run.c): VAE_EVAL_BLOCK × D */
    long *idx;                  /* their row numbers */
};

void vae_eval_plan(int k, int *c, int *B)
{
    *c = k < EVAL_ROWS ? k : EVAL_ROWS;
    *B = EVAL_ROWS / *c;
}

int vae_eval_new(vae_eval **out, const vae_spec *spec, int D, int vocab, const float *params,
                 long n, int k, vaed_err *err)
{
    *out = NULL;
    if (k < 1)
        return vaed_err_set(err, VAED_EINVAL, "k", "k must be at least 1 (got %d)", k);
    vae_eval *e = calloc(1, sizeof *e);
    if (!e)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    e->k = k;
    vae_eval_plan(k, &e->c, &e->B);
    vae_spec s = *spec;
    s.loss.samples = e->c;
    int rc = vae_model_new(&e->m, &s, D, vocab, e->B, err);
    if (rc) {
        free(e);
        return rc;
    }
    if (n != e->m->n_params) {
        rc = vaed_err_set(err, VAED_EINVAL, NULL,
                          "the parameters (%ld) do not fit the spec's model (%ld)", n,
                          e->m->n_params);
        vae_eval_free(e);
        return rc;
    }
    memcpy(e->m->params, params, sizeof(float) * (size_t)n);
    e->D = D;
    e->mx = malloc(sizeof(double) * (size_t)e->B * 3);
    e->x = malloc(sizeof(float) * (size_t)VAE_EVAL_BLOCK * (size_t)D);
    e->idx = malloc(sizeof(long) * VAE_EVAL_BLOCK);
    if (!e->mx || !e->x || !e->idx) {
        vae_eval_free(e);
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    }
    e->acc = e->mx + e->B;
    e->sum = e->acc + e->B;
    *out = e;
    return 0;
}

void vae_eval_free(vae_eval *e)
{
    if (!e)
        return;
    vae_model_free(e->m);
    free(e->mx);
    free(e->x);
    free(e->idx);
    free(e);
}

void vae_eval_set_stop(vae_eval *e, const atomic_int *stop) { e->stop = stop; }

int vae_eval_stopped(const vae_eval *e) { return e->stop && atomic_load(e->stop) != 0; }

void vae_eval_scratch(vae_eval *e, float **x, long **idx)
{
    *x = e->x;
    *idx = e->idx;
}

/* Fold the first `use` samples of each of B rows of the last pass into the rows' sums. */
static void fold(vae_eval *e, int B, int use)
{
    const vae_model *m = e->m;
    const int L = m->L, c = e->c;
    const float *head = m->enc_out[m->n_enc - 1];
    for (int i = 0; i < B; i++) {
        const float *lv = head + (long)i * 2 * L + L;
        for (int s = 0; s < use; s++) {
            const long r = (long)i * c + s;
            const float *z = m->z + r * L, *eps = m->eps + r * L;
            /* log p(z) − log q(z|x) = −Σ_j ½ (z² − ε² − lv) */
            double lpq = 0.0;
            for (int j = 0; j < L; j++)
                lpq -= 0.5 * ((double)z[j] * z[j] - (double)eps[j] * eps[j] - lv[j]);
            const double lw = -m->row_xent[r] + lpq;
            e->sum[i] += lw;
            if (lw > e->mx[i]) { /* rescale what was summed to the new maximum */
                e->acc[i] = e->acc[i] * exp(e->mx[i] - lw) + 1.0;
                e->mx[i] = lw;
            } else {
                e->acc[i] += exp(lw - e->mx[i]);
            }
        }
    }
}

void vae_eval_rows(vae_eval *e, const float *x, long n, vae_rng *rng, double *ll,
                   double *elbo, float *mu, float *lv)
{
    vae_model *m = e->m;
    const int D = m->D, L = m->L, c = e->c;
    for (long i0 = 0; i0 < n; i0 += e->B) {
        const int B = (int)(n - i0 < e->B ? n - i0 : e->B);
        memcpy(m->x, x + i0 * D, sizeof(float) * (size_t)B * D);
        for (int i = 0; i < B; i++) {
            e->mx[i] = -INFINITY;
            e->acc[i] = 0.0;
            e->sum[i] = 0.0;
        }
        for (int done = 0; done < e->k; done += c) {
            if (vae_eval_stopped(e))
                return; /* the caller throws away what this call wrote */
            const int use = e->k - done < c ? e->k - done : c;
            vae_rng_normal(rng, m->eps, (long)B * c * L);
            for (int s = 0; s < vae_model_shards(B); s++)
                vae_model_forward(m, B, s, 0);
            fold(e, B, use);
        }
        const float *head = m->enc_out[m->n_enc - 1]; /* (B, 2L): [mu | logvar] rows */
        for (int i = 0; mu && lv && i < B; i++) {
            memcpy(mu + (i0 + i) * L, head + (long)i * 2 * L, sizeof(float) * (size_t)L);
            memcpy(lv + (i0 + i) * L, head + (long)i * 2 * L + L, sizeof(float) * (size_t)L);
        }
        for (int i = 0; i < B; i++) {
            ll[i0 + i] = e->mx[i] + log(e->acc[i]) - log((double)e->k);
            if (elbo)
                elbo[i0 + i] = e->sum[i] / e->k;
        }
    }
}

void vae_eval_mean_se(const double *v, long n, double *mean, double *se)
{
    double s = 0.0;
    for (long i = 0; i < n; i++)
        s += v[i];
    const double mu = n > 0 ? s / (double)n : 0.0;
    double ss = 0.0;
    for (long i = 0; i < n; i++)
        ss += (v[i] - mu) * (v[i] - mu);
    *mean = mu;
    *se = n > 1 ? sqrt(ss / (double)(n - 1) / (double)n) : 0.0;
}

double vae_eval_mi(const float *mu, const float *lv, long N, int L, vae_rng *rng)
{
    if (N < 1 || L < 1)
        return 0.0;
    const double LOG2PI = 1.8378770664093453;
    double neg_ent = 0.0;
    for (long i = 0; i < N * L; i++)
        neg_ent -= 0.5 * (LOG2PI + 1.0 + lv[i]);
    float *z = malloc(sizeof(float) * (size_t)L);
    double *iv = malloc(sizeof(double) * (size_t)N * L), *c = malloc(sizeof(double) * (size_t)N);
    if (!z || !iv || !c) {
        free(z), free(iv), free(c);
        return NAN;
    }
    /* per row n: 1/σ² and the constant −½ Σ_j (log 2π + lv) of log q(· | x_n) */
    for (long n = 0; n < N; n++) {
        double cn = 0.0;
        for (int j = 0; j < L; j++) {
            iv[n * L + j] = exp(-(double)lv[n * L + j]);
            cn -= 0.5 * (LOG2PI + lv[n * L + j]);
        }
        c[n] = cn;
    }
    double cross = 0.0;
    for (long i = 0; i < N; i++) {
        vae_rng_normal(rng, z, L);
        for (int j = 0; j < L; j++)
            z[j] = mu[i * L + j] + expf(0.5f * lv[i * L + j]) * z[j];
        double mx = -INFINITY, acc = 0.0;
        for (long n = 0; n < N; n++) {
            double q = c[n];
            for (int j = 0; j < L; j++) {
                double d = (double)z[j] - mu[n * L + j];
                q -= 0.5 * d * d * iv[n * L + j];
            }
            if (q > mx) {
                acc = acc * exp(mx - q) + 1.0;
                mx = q;
            } else {
                acc += exp(q - mx);
            }
        }
        cross += mx + log(acc) - log((double)N);
    }
    free(z);
    free(iv);
    free(c);
    return (neg_ent - cross) / (double)N;
}

void vae_eval_posterior(const float *mu, const float *lv, long N, const vae_model_spec *ms,
                        vae_rng *rng, vae_eval_post *out)
{
    memset(out, 0, sizeof *out);
    int L = 0;
    for (int g = 0; g < ms->n_groups; g++)
        L += ms->groups[g];
    out->n_groups = ms->n_groups;
    if (N < 1)
        return;
    for (int j = 0, g = 0, end = ms->groups[0]; j < L; j++) {
        if (j == end)
            end += ms->groups[++g];
        double s = 0.0, ss = 0.0, kl = 0.0;
        for (long i = 0; i < N; i++) {
            const double m = mu[i * L + j], v = lv[i * L + j];
            s += m;
            ss += m * m;
            kl += 0.5 * (m * m + exp(v) - 1.0 - v);
        }
        const double mean = s / (double)N, var = ss / (double)N - mean * mean;
        out->active_units += var > 0.01;
        out->kl_group[g] += kl / (double)N;
        out->kl += kl / (double)N;
    }
    out->mi = vae_eval_mi(mu, lv, N, L, rng);
}
