/* test_model.c — the numerical core against independent oracles: BLAS kernels against
 * naive loops, every gradient against central finite differences, analytic KL against
 * a many-sample Monte-Carlo estimate, Adam against hand-computed numbers. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "vae/kernels.h"
#include "vae/model.h"
#include "vae/rng.h"

static void fill(float *a, long n, vae_rng *r, double scale)
{
    for (long i = 0; i < n; i++)
        a[i] = (float)((2.0 * vae_rng_uniform(r) - 1.0) * scale);
}

static double maxdiff(const float *a, const float *b, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        if (d > m)
            m = d;
    }
    return m;
}

/* The dense kernels against their naive twins, with the backward multiplies on the
 * library lib (vae_gemm_lib_set): OpenBLAS, and libxsmm's JIT kernels, which must hold
 * to the same bounds on every host (where libxsmm is not the default, too). The last
 * shapes are the reference model's: a shard of 64 rows through 784 -> 512, and a
 * chunk of 167 rows of that layer's weight gradient. */
static void kernels_on(int lib, const char *name)
{
    vae_gemm_lib_set(lib);
    CHECK(vae_gemm_lib(VAE_GEMM_FORWARD) == lib && vae_gemm_lib(VAE_GEMM_BACKWARD) == lib,
          "%s: the library is not the one set", name);
    vae_rng r;
    vae_rng_seed(&r, 42, 0);
    const int shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {17, 33, 9}, {64, 128, 40}, {64, 784, 512},
                             {128, 512, 167}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int B = shapes[si][0], IN = shapes[si][1], OUT = shapes[si][2];
        /* The naive twins sum in double; a float product's error grows with the length
         * of its sums (at most B, IN or OUT terms of order one): 1e-5 for the small
         * shapes, more for the reference model's. */
        const double tol = 1e-5 * (1.0 + (B + IN + OUT) / 64.0);
        float *in = malloc(sizeof(float) * B * IN), *W = malloc(sizeof(float) * OUT * IN);
        float *b = malloc(sizeof(float) * OUT), *o1 = malloc(sizeof(float) * B * OUT);
        float *o2 = malloc(sizeof(float) * B * OUT), *dout = malloc(sizeof(float) * B * OUT);
        float *dW1 = malloc(sizeof(float) * OUT * IN), *dW2 = malloc(sizeof(float) * OUT * IN);
        float *db1 = malloc(sizeof(float) * OUT), *db2 = malloc(sizeof(float) * OUT);
        float *di1 = malloc(sizeof(float) * B * IN), *di2 = malloc(sizeof(float) * B * IN);
        fill(in, (long)B * IN, &r, 1);
        fill(W, (long)OUT * IN, &r, 0.5);
        fill(b, OUT, &r, 0.5);
        fill(dout, (long)B * OUT, &r, 1);
        for (int act = -1; act <= VAE_ACT_ELU; act++) {
            dense_forward(o1, in, W, b, B, IN, OUT, act);
            dense_forward_naive(o2, in, W, b, B, IN, OUT, act);
            double d = maxdiff(o1, o2, (long)B * OUT);
            CHECK(d < tol, "%s: dense_forward %dx%dx%d act %d maxdiff=%g", name, B, IN, OUT,
                  act, d);
        }
        /* the gradients are written, not added: start from garbage */
        fill(dW1, (long)OUT * IN, &r, 1);
        fill(dW2, (long)OUT * IN, &r, 1);
        fill(db1, OUT, &r, 1);
        fill(db2, OUT, &r, 1);
        dense_backward(di1, dW1, db1, dout, in, W, B, IN, OUT);
        dense_backward_naive(di2, dW2, db2, dout, in, W, B, IN, OUT);
        double d1 = maxdiff(dW1, dW2, (long)OUT * IN), d2 = maxdiff(db1, db2, OUT),
               d3 = maxdiff(di1, di2, (long)B * IN);
        CHECK(d1 < tol && d2 < tol && d3 < tol,
              "%s: dense_backward %dx%dx%d maxdiff dW=%g db=%g din=%g", name, B, IN, OUT, d1, d2,
              d3);
        /* Row blocks of dW and db, as a training step computes them in chunks, against
         * the whole product. A block's dW rows come from an sgemm of another shape, and
         * OpenBLAS chooses its kernel, and so its summation order, by shape and by CPU
         * (Zen and Skylake-X differ): bitwise equality is not promised, and the engine
         * does not need it, since its chunks are fixed by the model and the batch (the
         * same chunking gives the same bits at 1, 2 and 3 threads: test_train's
         * test_thread_counts). What holds on every host is the rounding bound of a dot
         * product of B terms, each side within B·u·Σ|dout·in| of the exact sum (Higham,
         * Accuracy and Stability, 3.1; u = FLT_EPSILON/2), so they differ by at most
         * B·FLT_EPSILON·Σ|dout·in|; we allow twice that. A wrong or missing row is off by
         * the order of Σ|dout·in| itself. db is our own loop, the same order in any
         * block, so it stays bitwise. */
        fill(dW2, (long)OUT * IN, &r, 1);
        fill(db2, OUT, &r, 1);
        for (int lo = 0, step = 1; lo < OUT; lo += step, step = step * 2 + 1)
            dense_backward_params(dW2, db2, dout, in, B, IN, OUT, lo, lo + step < OUT ? lo + step : OUT, 0);
        double worst = 0; /* max over elements of |block - whole| / allowed */
        for (int o = 0; o < OUT; o++)
            for (int j = 0; j < IN; j++) {
                double mag = 0;
                for (int i = 0; i < B; i++)
                    mag += fabs((double)dout[(long)i * OUT + o] * in[(long)i * IN + j]);
                double allowed = 2.0 * B * FLT_EPSILON * mag + FLT_MIN;
                long k = (long)o * IN + j;
                worst = fmax(worst, fabs((double)dW2[k] - dW1[k]) / allowed);
            }
        CHECK(worst <= 1.0, "%s: dense_backward_params by row blocks %dx%dx%d: dW off by %g "
              "times the rounding bound", name, B, IN, OUT, worst);
        CHECK(memcmp(db1, db2, sizeof(float) * OUT) == 0,
              "%s: dense_backward_params by row blocks %dx%dx%d: db differs from the whole", name,
              B, IN, OUT);
        /* The same blocks added to zeros (add, as a training step does: β = 1 on
         * OpenBLAS) give the very bits of the blocks written over (β = 0). */
        memcpy(dW1, dW2, sizeof(float) * (size_t)OUT * IN);
        memset(dW2, 0, sizeof(float) * (size_t)OUT * IN);
        for (int lo = 0, step = 1; lo < OUT; lo += step, step = step * 2 + 1)
            dense_backward_params(dW2, db2, dout, in, B, IN, OUT, lo, lo + step < OUT ? lo + step : OUT, 1);
        CHECK(memcmp(dW1, dW2, sizeof(float) * (size_t)OUT * IN) == 0,
              "%s: dW by row blocks %dx%dx%d added to zeros differs from written over", name, B,
              IN, OUT);
        free(in), free(W), free(b), free(o1), free(o2), free(dout);
        free(dW1), free(dW2), free(db1), free(db2), free(di1), free(di2);
    }
}

static void test_kernels(void)
{
    kernels_on(VAE_GEMM_OPENBLAS, "OpenBLAS");
    kernels_on(VAE_GEMM_LIBXSMM, "libxsmm");
    vae_gemm_lib_set(VAE_GEMM_AUTO); /* this host's choice again, for the other tests */
    /* act_backward against the derivative by finite differences of the activation */
    for (int act = VAE_ACT_RELU; act <= VAE_ACT_ELU; act++) {
        double worst = 0;
        for (int i = 0; i < 200; i++) {
            float x = (float)(-3.0 + 6.0 * i / 199.0) + 0.013f, h = 1e-3f;
            float y, yp, ym, d = 1.0f, one = 1.0f, zero = 0.0f;
            float xs[3] = {x, x + h, x - h}, ys[3];
            for (int k = 0; k < 3; k++)
                dense_forward_naive(&ys[k], &one, &xs[k], &zero, 1, 1, 1, act);
            y = ys[0], yp = ys[1], ym = ys[2];
            act_backward(&d, &y, 1, act);
            double fd = ((double)yp - ym) / (2.0 * h);
            worst = fmax(worst, fabs(fd - d));
        }
        CHECK(worst < 2e-3, "act_backward act %d max abs err %g", act, worst);
    }
}

/* A small spec written field by field, independent of the spec parser. */
static vae_spec tiny_spec(int act, int lik, int kl, int groups, int k, double fb)
{
    vae_spec s;
    memset(&s, 0, sizeof s);
    s.model.n_enc = 1;
    s.model.enc[0] = 5;
    s.model.n_dec = 2;
    s.model.dec[0] = 4;
    s.model.dec[1] = 6;
    s.model.n_groups = groups;
    for (int g = 0; g < groups; g++)
        s.model.groups[g] = 2 + g;
    s.model.activation = act;
    s.model.likelihood = lik;
    s.model.sigma = 0.7;
    s.loss.kl = kl;
    s.loss.samples = k;
    s.loss.free_bits = fb;
    s.train.seed = 7;
    s.train.batch_size = 3;
    s.train.epochs = 1;
    s.train.threads = 1;
    s.optimizer.lr = 1e-3;
    s.optimizer.beta1 = 0.9;
    s.optimizer.beta2 = 0.999;
    s.optimizer.eps = 1e-8;
    return s;
}

static void fill_data(vae_model *m, int B, vae_rng *r)
{
    for (long i = 0; i < (long)B * m->D; i++)
        m->x[i] = (float)vae_rng_uniform(r);
    if (m->lik == VAE_LIK_CATEGORICAL) /* one-hot per position */
        for (int i = 0; i < B; i++)
            for (int t = 0; t < m->D; t += m->vocab) {
                int hot = (int)vae_rng_below(r, (uint64_t)m->vocab);
                for (int v = 0; v < m->vocab; v++)
                    m->x[(long)i * m->D + t + v] = v == hot ? 1.0f : 0.0f;
            }
    vae_rng_normal(r, m->eps, (long)B * m->k * m->L);
}

/* Which ReLU units are on, as a hash: a finite difference across a kink measures
 * nothing, so such parameters are skipped. */
static uint64_t relu_pattern(const vae_model *m, int B)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < m->n_enc - 1; i++)
        for (long j = 0; j < (long)B * m->enc[i].out; j++)
            h = (h ^ (m->enc_out[i][j] > 0.0f)) * 1099511628211ULL;
    for (int i = 0; i < m->n_dec - 1; i++)
        for (long j = 0; j < (long)B * m->k * m->dec[i].out; j++)
            h = (h ^ (m->dec_out[i][j] > 0.0f)) * 1099511628211ULL;
    return h;
}

/* Central differences of the loss over a sample of parameters, against the backward
 * pass. Returns the worst relative error among gradients large enough to measure. */
static double grad_check(const char *what, vae_spec s, int D, int vocab, const vae_klweight *w)
{
    vaed_err err;
    vae_model *m = NULL;
    const int B = 3;
    int rc = vae_model_new(&m, &s, D, vocab, B, &err);
    CHECK(rc == 0, "%s: model_new: %s", what, err.msg);
    if (rc)
        return 1;
    vae_rng r;
    vae_rng_seed(&r, 99, 5);
    fill_data(m, B, &r);
    vae_terms t;
    memset(m->grads, 0, sizeof(float) * m->n_params);
    vae_model_step(m, B, w, 1, &t);
    float *an = malloc(sizeof(float) * m->n_params);
    memcpy(an, m->grads, sizeof(float) * m->n_params);
    double worst = 0;
    int checked = 0;
    for (long i = 0; i < m->n_params; i++) {
        float p0 = m->params[i], h = 1e-2f;
        m->params[i] = p0 + h;
        vae_model_step(m, B, w, 0, &t);
        double lp = t.loss;
        uint64_t pat = relu_pattern(m, B);
        m->params[i] = p0 - h;
        vae_model_step(m, B, w, 0, &t);
        double lm = t.loss;
        m->params[i] = p0;
        if (s.model.activation == VAE_ACT_RELU && relu_pattern(m, B) != pat)
            continue;
        double fd = (lp - lm) / (2.0 * ((double)(p0 + h) - p0));
        double a = an[i], scale = fmax(fabs(fd), fabs(a));
        if (scale < 1e-2) /* too small to measure in float precision */
            continue;
        double rel = fabs(fd - a) / scale;
        if (rel > worst)
            worst = rel;
        checked++;
    }
    printf("gradcheck %-40s %5d params checked, max rel err %.2e\n", what, checked, worst);
    CHECK(checked > m->n_params / 3, "%s: only %d of %ld gradients measurable", what, checked,
          m->n_params);
    free(an);
    vae_model_free(m);
    return worst;
}

static void test_gradients(void)
{
    const char *acts[] = {"relu", "tanh", "elu"}, *liks[] = {"bernoulli", "categorical", "gaussian"};
    const vae_klweight w = {.beta = 0.7};
    char name[128];
    for (int lik = 0; lik < 3; lik++)
        for (int act = 0; act < 3; act++)
            for (int kl = 0; kl < 2; kl++) {
                vae_spec s = tiny_spec(act, lik, kl, 2, kl ? 3 : 1, 0.0);
                int vocab = lik == VAE_LIK_CATEGORICAL ? 3 : 0;
                snprintf(name, sizeof name, "%s/%s/%s", liks[lik], acts[act], kl ? "mc k=3" : "analytic");
                double e = grad_check(name, s, 6, vocab, &w);
                CHECK(e < 1e-2, "%s: max rel err %g", name, e);
            }
    /* free bits: one group above λ (gradient flows), one below (no KL gradient) */
    vae_spec s = tiny_spec(VAE_ACT_TANH, VAE_LIK_BERNOULLI, VAE_KL_ANALYTIC, 2, 1, 0.05);
    double e = grad_check("free bits 0.05 tanh analytic", s, 6, 0, &w);
    CHECK(e < 1e-2, "free bits: max rel err %g", e);
    s = tiny_spec(VAE_ACT_TANH, VAE_LIK_BERNOULLI, VAE_KL_MC, 2, 2, 0.05);
    e = grad_check("free bits 0.05 tanh mc", s, 6, 0, &w);
    CHECK(e < 1e-2, "free bits mc: max rel err %g", e);
    s = tiny_spec(VAE_ACT_TANH, VAE_LIK_BERNOULLI, VAE_KL_ANALYTIC, 1, 2, 0.0);
    const vae_klweight cap = {.beta = 3.0, .capacity = 1, .C = 0.01};
    e = grad_check("capacity gamma 3 C 0.01", s, 6, 0, &cap);
    CHECK(e < 1e-2, "capacity: max rel err %g", e);
}

/* Free bits: a group whose KL is below λ contributes λ and no gradient at all. */
static void test_free_bits_clamp(void)
{
    vae_spec s = tiny_spec(VAE_ACT_TANH, VAE_LIK_BERNOULLI, VAE_KL_ANALYTIC, 1, 1, 1000.0);
    vae_model *m = NULL;
    vaed_err err;
    CHECK(vae_model_new(&m, &s, 6, 0, 3, &err) == 0, "%s", err.msg);
    vae_rng r;
    vae_rng_seed(&r, 3, 3);
    fill_data(m, 3, &r);
    vae_terms t;
    const vae_klweight w = {.beta = 1.0};
    memset(m->grads, 0, sizeof(float) * m->n_params);
    vae_model_step(m, 3, &w, 1, &t);
    CHECK_CLOSE(t.klobj, 1000.0, 1e-12, "klobj clamped to lambda");
    CHECK(t.kl < 1000.0 && t.kl > 0, "raw kl reported: %g", t.kl);
    CHECK_CLOSE(t.loss, t.xent + 1000.0, 1e-12, "loss = xent + beta*lambda");
    vae_model_free(m);
}

/* The analytic KL of a Gaussian against the mean of many Monte-Carlo samples. */
static void test_kl_estimators(void)
{
    vae_spec s = tiny_spec(VAE_ACT_TANH, VAE_LIK_BERNOULLI, VAE_KL_ANALYTIC, 2, 4000, 0.0);
    vae_spec smc = s;
    smc.loss.kl = VAE_KL_MC;
    vae_model *a = NULL, *mc = NULL;
    vaed_err err;
    CHECK(vae_model_new(&a, &s, 6, 0, 2, &err) == 0, "%s", err.msg);
    CHECK(vae_model_new(&mc, &smc, 6, 0, 2, &err) == 0, "%s", err.msg);
    /* make the posterior far from the prior so the KL is sizeable */
    for (long i = 0; i < a->n_params; i++)
        a->params[i] = mc->params[i] = a->params[i] * 3.0f;
    vae_rng r;
    vae_rng_seed(&r, 11, 0);
    fill_data(a, 2, &r);
    memcpy(mc->x, a->x, sizeof(float) * 2 * a->D);
    memcpy(mc->eps, a->eps, sizeof(float) * 2 * a->k * a->L);
    vae_terms ta, tm;
    const vae_klweight w = {.beta = 1.0};
    vae_model_step(a, 2, &w, 0, &ta);
    vae_model_step(mc, 2, &w, 0, &tm);
    printf("KL analytic %.5f, Monte-Carlo (k=4000) %.5f\n", ta.kl, tm.kl);
    CHECK(ta.kl > 0.1, "kl sizeable: %g", ta.kl);
    /* the MC estimator's standard error with 4000 samples of a few-unit latent is ~2%% */
    CHECK(fabs(ta.kl - tm.kl) < 0.06 * ta.kl + 0.01, "analytic %g vs mc %g", ta.kl, tm.kl);
    for (int g = 0; g < 2; g++)
        CHECK(fabs(ta.kl_group[g] - tm.kl_group[g]) < 0.08 * ta.kl_group[g] + 0.02,
              "group %d analytic %g vs mc %g", g, ta.kl_group[g], tm.kl_group[g]);
    CHECK_CLOSE(ta.xent, tm.xent, 1e-12, "same xent for the same noise");
    vae_model_free(a);
    vae_model_free(mc);
}

/* Two Adam steps on one parameter, worked by hand:
 *   lr 0.1, b1 0.9, b2 0.999, eps 1e-8, p0 = 1
 *   t=1, g = 0.5: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25, p = 1 − 0.1·0.5/0.5 = 0.9
 *   t=2, g = −1:  m = 0.045 − 0.1 = −0.055, v = 0.00024975 + 0.001 = 0.00124975,
 *                 m̂ = −0.055/0.19 = −0.2894737, v̂ = 0.00124975/0.001999 = 0.6251876,
 *                 p = 0.9 + 0.1·0.2894737/0.7906880 = 0.9366104 */
static void test_adam(void)
{
    vae_optim_spec o = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    float p = 1.0f, g = 0.5f, m = 0.0f, v = 0.0f;
    vae_adam_update(&p, &g, &m, &v, 1, &o, o.lr, 1.0, 1);
    CHECK(g == 0.0f, "adam leaves the gradient at zero (the next step's multiply adds to it)");
    CHECK_CLOSE(m, 0.05, 1e-6, "adam m1");
    CHECK_CLOSE(v, 0.00025, 1e-6, "adam v1");
    CHECK_CLOSE(p, 0.9, 1e-6, "adam p1");
    g = -1.0f;
    vae_adam_update(&p, &g, &m, &v, 1, &o, o.lr, 1.0, 2);
    CHECK_CLOSE(m, -0.055, 1e-6, "adam m2");
    CHECK_CLOSE(v, 0.00124975, 1e-6, "adam v2");
    CHECK_CLOSE(p, 0.9366104, 1e-6, "adam p2");
    /* clipping halves the gradient; decoupled weight decay 0.5 shrinks p by lr·wd first:
     * g = 0.25, p = 1·(1 − 0.05) − 0.1·0.25/0.25 = 0.85 */
    o.weight_decay = 0.5;
    p = 1.0f, g = 0.5f, m = 0.0f, v = 0.0f;
    vae_adam_update(&p, &g, &m, &v, 1, &o, o.lr, 0.5, 1);
    CHECK_CLOSE(m, 0.025, 1e-6, "adam clipped m1");
    CHECK_CLOSE(p, 0.85, 1e-6, "adam weight decay p1");
}

/* The chunks a step shares its parameter work out in cover every parameter exactly
 * once: for the reference model's widths, a layer wider than a chunk, and layers
 * narrower than one. */
static void test_chunks_cover(void)
{
    const int encs[][2] = {{512, 256}, {6000, 0}, {7, 0}};
    const int Ds[] = {784, 24, 5};
    for (int v = 0; v < 3; v++) {
        vae_spec s = tiny_spec(VAE_ACT_RELU, VAE_LIK_BERNOULLI, VAE_KL_ANALYTIC, 1, 1, 0.0);
        s.model.n_enc = encs[v][1] ? 2 : 1;
        s.model.enc[0] = encs[v][0];
        s.model.enc[1] = encs[v][1];
        vae_model m;
        vae_model_shape(&m, &s, Ds[v], 0);
        unsigned char *seen = calloc((size_t)m.n_params, 1);
        int bad = 0, smallest = 1 << 30;
        for (int c = 0; c < m.n_chunks; c++) {
            vae_span sp;
            vae_model_chunk(&m, c, &sp);
            bad += sp.nw <= 0 || sp.nb <= 0;
            if (sp.nb < smallest)
                smallest = (int)sp.nb;
            for (long i = sp.w; i < sp.w + sp.nw; i++)
                bad += seen[i]++ != 0;
            for (long i = sp.b; i < sp.b + sp.nb; i++)
                bad += seen[i]++ != 0;
        }
        for (long i = 0; i < m.n_params; i++)
            bad += seen[i] != 1;
        CHECK(bad == 0, "model %d: %d parameters not covered exactly once by %d chunks", v, bad,
              m.n_chunks);
        printf("chunks: model %d, %ld parameters in %d chunks, smallest %d rows\n", v,
               m.n_params, m.n_chunks, smallest);
        free(seen);
    }
}

/* Normal noise in two halves, as the trainer draws it (the uniforms in order, the
 * transform by shards): any split of the output, odd boundaries included, gives
 * exactly vae_rng_normal's numbers and leaves the generator in the same state; and
 * the numbers are standard normal (mean and variance over 100,000 draws against 0
 * and 1, four standard errors). */
static void test_normal_halves(void)
{
    enum { N = 100001 };
    float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    double *u = malloc(sizeof(double) * (N + 1));
    vae_rng r1, r2;
    vae_rng_seed(&r1, 9, 4);
    r2 = r1;
    vae_rng_normal(&r1, a, N);
    vae_rng_normal_draw(&r2, u, N);
    const long cuts[] = {0, 1, 2, 7, 300, 301, 4096, 50001, N};
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof *cuts; i++)
        vae_rng_normal_from(u, b, cuts[i], cuts[i + 1]);
    CHECK(memcmp(a, b, sizeof(float) * N) == 0, "normal noise by ranges differs from the whole");
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0, "the generator's state differs after the draws");
    double s = 0, s2 = 0;
    for (long i = 0; i < N; i++)
        s += a[i], s2 += (double)a[i] * a[i];
    double mean = s / N, var = s2 / N - mean * mean;
    CHECK(fabs(mean) < 4.0 / sqrt((double)N) && fabs(var - 1.0) < 4.0 * sqrt(2.0 / N),
          "normal draws: mean %g variance %g", mean, var);
    free(a), free(b), free(u);
}

int main(void)
{
    test_kernels();
    test_gradients();
    test_free_bits_clamp();
    test_kl_estimators();
    test_adam();
    test_normal_halves();
    test_chunks_cover();
    return t_done("test_model");
}
