/* test_eval.c — the importance-weighted bound (vae/eval.h) against independent oracles:
 *   - a naive double-precision loop over the same model and the same draws (forward
 *     pass, log-weights, log-sum-exp written out again here);
 *   - log p(x) itself, by quadrature: with a 2-unit latent, ∫ p(x|z) N(z; 0, I) dz is
 *     summed on a fine grid, so the bound must stay below it and close in on it as k
 *     grows (Burda et al.: L_1 ≤ L_k ≤ L_m ≤ log p(x) for k ≤ m, in expectation);
 *   - k = 1 is the ELBO: its mean over rows equals the analytic-KL ELBO's mean (same
 *     draws) within the standard error of their difference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/t.h"
#include "vae/eval.h"
#include "vae/model.h"
#include "vae/rng.h"

#define D 6
#define L 2
#define H 5

static vae_spec tiny(void)
{
    vae_spec s;
    memset(&s, 0, sizeof s);
    s.model.n_enc = 1;
    s.model.enc[0] = H;
    s.model.n_dec = 1;
    s.model.dec[0] = 4;
    s.model.n_groups = 1;
    s.model.groups[0] = L;
    s.model.activation = VAE_ACT_TANH;
    s.model.likelihood = VAE_LIK_BERNOULLI;
    s.model.sigma = 1.0;
    s.loss.kl = VAE_KL_ANALYTIC;
    s.loss.samples = 1;
    s.train.seed = 7;
    s.train.batch_size = 1;
    s.train.epochs = 1;
    s.train.threads = 1;
    s.optimizer.lr = 1e-3;
    return s;
}

/* The model's shape (offsets only) and random parameters, scaled up so that the
 * posterior is far from the prior and the bound's gap is visible. */
static vae_model shape;
static float *params;

static void make_params(const vae_spec *s)
{
    vae_model_shape(&shape, s, D, 0);
    params = malloc(sizeof(float) * (size_t)shape.n_params);
    vae_rng r;
    vae_rng_seed(&r, 99, 0);
    for (long i = 0; i < shape.n_params; i++)
        params[i] = (float)(2.0 * vae_rng_uniform(&r) - 1.0) * 1.5f;
}

/* y = W x + b for a layer of the shape, in double; act: tanh unless last. */
static void dense(const vae_layer *l, const double *in, double *out, int act)
{
    for (int o = 0; o < l->out; o++) {
        double a = params[l->b + o];
        for (int i = 0; i < l->in; i++)
            a += (double)params[l->w + (long)o * l->in + i] * in[i];
        out[o] = act ? tanh(a) : a;
    }
}

/* log p(x | z), bernoulli: Σ x y − softplus(y). */
static double log_px_z(const float *x, const double *z)
{
    double h[16], y[D];
    dense(&shape.dec[0], z, h, 1);
    dense(&shape.dec[1], h, y, 0);
    double lp = 0.0;
    for (int d = 0; d < D; d++)
        lp += x[d] * y[d] - (fmax(y[d], 0.0) + log1p(exp(-fabs(y[d]))));
    return lp;
}

/* The encoder's mu and logvar of x. */
static void encode(const float *x, double *mu, double *lv)
{
    double xd[D], h[H], head[2 * L];
    for (int d = 0; d < D; d++)
        xd[d] = x[d];
    dense(&shape.enc[0], xd, h, 1);
    dense(&shape.enc[1], h, head, 0);
    for (int j = 0; j < L; j++) {
        mu[j] = head[j];
        lv[j] = head[L + j];
    }
}

/* The naive bound of row x with the draws eps (k·L of them). */
static double naive_bound(const float *x, const float *eps, int k, double *elbo)
{
    double mu[L], lv[L], mx = -INFINITY, sum = 0.0;
    double *lw = malloc(sizeof(double) * (size_t)k);
    encode(x, mu, lv);
    for (int s = 0; s < k; s++) {
        double z[L], lq = 0.0;
        for (int j = 0; j < L; j++) {
            double e = eps[s * L + j];
            z[j] = mu[j] + exp(0.5 * lv[j]) * e;
            /* log N(z; 0, 1) − log N(z; mu, e^lv), the 2π terms cancelling */
            lq += -0.5 * z[j] * z[j] + 0.5 * e * e + 0.5 * lv[j];
        }
        lw[s] = log_px_z(x, z) + lq;
        mx = fmax(mx, lw[s]);
        sum += lw[s];
    }
    double acc = 0.0;
    for (int s = 0; s < k; s++)
        acc += exp(lw[s] - mx);
    free(lw);
    if (elbo)
        *elbo = sum / k;
    return mx + log(acc / k);
}

/* log p(x) by quadrature on [-8, 8]² (the prior's mass outside is < 1e-14). */
static double log_px(const float *x)
{
    const int n = 240;
    const double a = -8.0, h = 16.0 / n;
    double mx = -INFINITY;
    double *t = malloc(sizeof(double) * (size_t)(n + 1) * (n + 1));
    for (int i = 0; i <= n; i++)
        for (int j = 0; j <= n; j++) {
            double z[2] = {a + i * h, a + j * h};
            double v = log_px_z(x, z) - 0.5 * (z[0] * z[0] + z[1] * z[1]) - log(2 * M_PI);
            t[i * (n + 1) + j] = v;
            mx = fmax(mx, v);
        }
    double acc = 0.0;
    for (int i = 0; i <= n; i++)
        for (int j = 0; j <= n; j++) { /* trapezoid weights */
            double w = (i == 0 || i == n ? 0.5 : 1.0) * (j == 0 || j == n ? 0.5 : 1.0);
            acc += w * exp(t[i * (n + 1) + j] - mx);
        }
    free(t);
    return mx + log(acc * h * h);
}

static void random_rows(float *x, long n, uint64_t seed)
{
    vae_rng r;
    vae_rng_seed(&r, seed, 1);
    for (long i = 0; i < n * D; i++)
        x[i] = vae_rng_uniform(&r) < 0.5 ? 0.0f : 1.0f;
}

/* The evaluator against the naive loop on the same draws: one pass (n·k ≤ 1024) and
 * several passes of chunks (k > 1024: the draws are then taken chunk by chunk). */
static void test_against_naive(const vae_spec *s)
{
    const int ks[] = {1, 7, 100, 3000};
    for (int t = 0; t < 4; t++) {
        const int k = ks[t], n = k <= 100 ? 5 : 1;
        float x[5 * D];
        random_rows(x, n, 10 + (uint64_t)k);
        vae_eval *e = NULL;
        vaed_err err;
        int rc = vae_eval_new(&e, s, D, 0, params, shape.n_params, k, &err);
        CHECK(rc == 0, "vae_eval_new k=%d: %s", k, err.msg);
        if (rc)
            continue;
        double ll[5], el[5];
        vae_rng r;
        vae_rng_seed(&r, 5, 2);
        vae_eval_rows(e, x, n, &r, ll, el, NULL, NULL);
        /* the same draws: one pass of n·k·L when k fits, else chunks of 1024 samples */
        vae_rng_seed(&r, 5, 2);
        float *eps = malloc(sizeof(float) * (size_t)n * k * L);
        const int c = k < 1024 ? k : 1024;
        float *tmp = malloc(sizeof(float) * (size_t)n * c * L);
        for (int done = 0; done < k; done += c) {
            const int use = k - done < c ? k - done : c;
            vae_rng_normal(&r, tmp, (long)n * c * L);
            for (int i = 0; i < n; i++)
                memcpy(eps + ((long)i * k + done) * L, tmp + (long)i * c * L,
                       sizeof(float) * (size_t)use * L);
        }
        double maxdiff = 0.0;
        for (int i = 0; i < n; i++) {
            double nel, nb = naive_bound(x + i * D, eps + (long)i * k * L, k, &nel);
            maxdiff = fmax(maxdiff, fmax(fabs(nb - ll[i]), fabs(nel - el[i])));
        }
        CHECK(maxdiff < 2e-4, "k=%d: bound differs from the naive loop by %.3g", k, maxdiff);
        printf("naive k=%-5d rows %d maxdiff %.3g\n", k, n, maxdiff);
        free(tmp);
        free(eps);
        vae_eval_free(e);
    }
    vae_eval *e = NULL;
    vaed_err err;
    CHECK(vae_eval_new(&e, s, D, 0, params, shape.n_params - 1, 4, &err) == VAED_EINVAL,
          "parameters of the wrong count are refused");
    CHECK(vae_eval_new(&e, s, D, 0, params, shape.n_params, 0, &err) == VAED_EINVAL &&
              !strcmp(err.field, "k"),
          "k = 0 is refused naming k");
}

/* Bounds for n rows at k: per-row values into out. */
static void bounds(const vae_spec *s, const float *x, long n, int k, uint64_t seed, double *out,
                   double *elbo)
{
    vae_eval *e = NULL;
    vaed_err err;
    if (vae_eval_new(&e, s, D, 0, params, shape.n_params, k, &err)) {
        CHECK(0, "vae_eval_new: %s", err.msg);
        return;
    }
    vae_rng r;
    vae_rng_seed(&r, seed, 3);
    vae_eval_rows(e, x, n, &r, out, elbo, NULL, NULL);
    vae_eval_free(e);
}

static void test_towards_log_px(const vae_spec *s)
{
    enum { N = 400, NQ = 40 }; /* rows; rows given log p(x) by quadrature */
    float *x = malloc(sizeof(float) * N * D);
    random_rows(x, N, 77);
    static double lp[N], b1[N], b10[N], b100[N], b1000[N], el1[N], d[N];
    for (int i = 0; i < NQ; i++)
        lp[i] = log_px(x + i * D);
    bounds(s, x, N, 1, 1, b1, el1);
    bounds(s, x, N, 10, 2, b10, NULL);
    bounds(s, x, N, 100, 3, b100, NULL);
    bounds(s, x, N, 1000, 4, b1000, NULL);
    double m[5], se[5];
    double *v[5] = {b1, b10, b100, b1000, lp};
    for (int j = 0; j < 5; j++)
        vae_eval_mean_se(v[j], j < 4 ? N : NQ, &m[j], &se[j]);
    printf("mean over %d rows: L1 %.4f (se %.4f)  L10 %.4f  L100 %.4f  L1000 %.4f (se %.4f)  "
           "log p(x) %.4f (first %d rows)\n", N, m[0], se[0], m[1], m[2], m[3], se[3], m[4], NQ);
    /* paired differences: each step up in k raises the bound, beyond 3 standard errors */
    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < N; i++)
            d[i] = v[j + 1][i] - v[j][i];
        double md, sd;
        vae_eval_mean_se(d, N, &md, &sd);
        CHECK(md > -3 * sd, "L at k=%d is below L at k=%d: %.4f (se %.4f)",
              j == 0 ? 10 : j == 1 ? 100 : 1000, j == 0 ? 1 : j == 1 ? 10 : 100, md, sd);
    }
    /* every bound stays below log p(x) in expectation, and the gap closes as k grows */
    double gap[4];
    for (int j = 0; j < 4; j++) {
        for (int i = 0; i < NQ; i++)
            d[i] = v[j][i] - lp[i];
        double sd;
        vae_eval_mean_se(d, NQ, &gap[j], &sd);
        CHECK(gap[j] < 3 * sd + 1e-9, "bound %d is above log p(x): %.4f (se %.4f)", j, gap[j],
              sd);
        if (j > 0)
            CHECK(-gap[j] < -gap[j - 1], "the gap to log p(x) did not shrink: %.4f then %.4f",
                  -gap[j - 1], -gap[j]);
    }
    /* k = 1: the bound is the one-sample ELBO, exactly, and its mean is the analytic-KL
     * ELBO's: E_q[log p(x|z)] − KL(q‖p), with the same draws */
    double worst = 0.0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(b1[i] - el1[i]));
    CHECK(worst == 0.0, "k = 1: bound and ELBO differ by %.3g", worst);
    vae_rng r;
    vae_rng_seed(&r, 1, 3); /* the draws bounds(…, 1, 1, …) used: one pass of N·1·L */
    float *eps = malloc(sizeof(float) * N * L);
    vae_rng_normal(&r, eps, (long)N * L);
    for (int i = 0; i < N; i++) {
        double mu[L], lv[L], z[L], kl = 0.0;
        encode(x + i * D, mu, lv);
        for (int j = 0; j < L; j++) {
            z[j] = mu[j] + exp(0.5 * lv[j]) * eps[i * L + j];
            kl += 0.5 * (mu[j] * mu[j] + exp(lv[j]) - 1.0 - lv[j]);
        }
        d[i] = b1[i] - (log_px_z(x + i * D, z) - kl);
    }
    double md, sd;
    vae_eval_mean_se(d, N, &md, &sd);
    CHECK(fabs(md) < 4 * sd, "k = 1 bound vs analytic ELBO: mean difference %.4f (se %.4f)", md,
          sd);
    free(eps);
    free(x);
}

/* q = the prior and a decoder that ignores z: every weight w_s is p(x), so L_k = log p(x)
 * exactly for every k, the closed form Σ_d x_d y_d − softplus(y_d), y = W2 tanh(b1) + b2. */
static void test_exact_case(const vae_spec *s)
{
    float *saved = malloc(sizeof(float) * (size_t)shape.n_params);
    memcpy(saved, params, sizeof(float) * (size_t)shape.n_params);
    const vae_layer *head = &shape.enc[1], *d0 = &shape.dec[0];
    memset(params + head->w, 0, sizeof(float) * (size_t)head->in * head->out);
    memset(params + head->b, 0, sizeof(float) * (size_t)head->out);
    memset(params + d0->w, 0, sizeof(float) * (size_t)d0->in * d0->out);
    float x[8 * D];
    random_rows(x, 8, 3);
    double ll[8], worst = 0.0;
    for (int k = 1; k <= 50; k += 49) {
        bounds(s, x, 8, k, 9, ll, NULL);
        for (int i = 0; i < 8; i++) {
            const double z0[L] = {0};
            worst = fmax(worst, fabs(ll[i] - log_px_z(x + i * D, z0)));
        }
    }
    CHECK(worst < 1e-5, "q = prior, z ignored: the bound differs from log p(x) by %.3g", worst);
    memcpy(params, saved, sizeof(float) * (size_t)shape.n_params);
    free(saved);
}

/* I(x; z) against a naive loop on the same draws, and two closed forms: posteriors far
 * apart (each z is plausible under its own row only: I = log N) and identical ones
 * (q(z) = q(z|x): I = 0), both up to Monte-Carlo noise of standard error sqrt(L/2/N). */
static void test_mi(void)
{
    enum { N = 30, Lm = 3 };
    float mu[N * Lm], lv[N * Lm], z[Lm];
    vae_rng r;
    vae_rng_seed(&r, 4, 4);
    for (int i = 0; i < N * Lm; i++) {
        mu[i] = (float)(4.0 * vae_rng_uniform(&r) - 2.0);
        lv[i] = (float)(3.0 * vae_rng_uniform(&r) - 2.0);
    }
    vae_rng_seed(&r, 5, 5);
    double got = vae_eval_mi(mu, lv, N, Lm, &r);
    vae_rng_seed(&r, 5, 5);
    double h = 0.0, cross = 0.0;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < Lm; j++) /* entropy of N(mu, σ²): ½ log(2πe σ²) */
            h += 0.5 * log(2 * M_PI * M_E * exp((double)lv[i * Lm + j]));
        vae_rng_normal(&r, z, Lm);
        for (int j = 0; j < Lm; j++)
            z[j] = mu[i * Lm + j] + expf(0.5f * lv[i * Lm + j]) * z[j];
        double terms[N], mx = -INFINITY, sum = 0.0;
        for (int n = 0; n < N; n++) {
            double lq = 0.0;
            for (int j = 0; j < Lm; j++) {
                double var = exp((double)lv[n * Lm + j]), d = z[j] - mu[n * Lm + j];
                lq += -0.5 * log(2 * M_PI * var) - d * d / (2 * var);
            }
            terms[n] = lq;
            mx = fmax(mx, lq);
        }
        for (int n = 0; n < N; n++)
            sum += exp(terms[n] - mx);
        cross += mx + log(sum / N);
    }
    double want = (-h - cross) / N;
    CHECK(fabs(got - want) < 1e-7 * fmax(1.0, fabs(want)), "MI %.12g, naive loop %.12g", got,
          want);

    enum { M = 2000 };
    float *mu2 = calloc(M * Lm, sizeof(float)), *lv2 = calloc(M * Lm, sizeof(float));
    for (int i = 0; i < M; i++)
        mu2[i * Lm] = 100.0f * (float)i;
    /* both: log N or 0 plus the noise of −H − mean log q(z_i|x_i), whose terms have
     * variance L/2 */
    double far = vae_eval_mi(mu2, lv2, M, Lm, &r), se = sqrt(Lm / 2.0 / M);
    CHECK(fabs(far - log((double)M)) < 5 * se, "posteriors far apart: MI %.9g, log N %.9g", far,
          log((double)M));
    memset(mu2, 0, sizeof(float) * M * Lm);
    double same = vae_eval_mi(mu2, lv2, M, Lm, &r);
    CHECK(fabs(same) < 5 * se, "identical posteriors: MI %.4f, expected 0 within %.4f", same,
          5 * se);
    /* the posterior's figures: 1 active unit (dimension 0 varies, the others do not),
     * the KL of N(100 i, 1) per group (½ mean of mu², dims 0 | 1-2) */
    for (int i = 0; i < M; i++)
        mu2[i * Lm] = (float)i / M;
    vae_eval_post post;
    vae_model_spec ms = {.n_groups = 2, .groups = {1, 2}};
    vae_eval_posterior(mu2, lv2, M, &ms, &r, &post);
    double kl0 = 0.0;
    for (int i = 0; i < M; i++)
        kl0 += 0.5 * (double)mu2[i * Lm] * mu2[i * Lm] / M;
    CHECK(post.active_units == 1, "active units %d, expected 1 (Var of mu_0 = 1/12 > 0.01)",
          post.active_units);
    CHECK(fabs(post.kl_group[0] - kl0) < 1e-9 && post.kl_group[1] == 0.0 &&
              fabs(post.kl - kl0) < 1e-9 && post.n_groups == 2,
          "KL per group %.9g %.9g (want %.9g 0), total %.9g", post.kl_group[0], post.kl_group[1],
          kl0, post.kl);
    printf("MI: naive %.6f got %.6f; far apart %.6f (log N %.6f); identical %.4f (se %.4f)\n",
           want, got, far, log((double)M), same, se);
    free(mu2);
    free(lv2);
}

static void test_mean_se(void)
{
    const double v[4] = {1, 2, 3, 6};
    double m, se;
    vae_eval_mean_se(v, 4, &m, &se);
    /* mean 3, sample variance (4+1+0+9)/3 = 14/3, se = sqrt(14/3/4) */
    CHECK_CLOSE(m, 3.0, 1e-15, "mean");
    CHECK_CLOSE(se, sqrt(14.0 / 12.0), 1e-15, "standard error");
    vae_eval_mean_se(v, 1, &m, &se);
    CHECK(m == 1.0 && se == 0.0, "one value: mean %g se %g", m, se);
}

int main(void)
{
    vae_spec s = tiny();
    make_params(&s);
    test_mean_se();
    test_mi();
    test_against_naive(&s);
    test_exact_case(&s);
    test_towards_log_px(&s);
    free(params);
    return t_done("test_eval");
}
