/* test_infer.c — the serving side of a model (vae/infer.h) against a naive forward pass
 * in double written here: the encoder's means and log-variances, and the likelihood's
 * parameters for each likelihood (bernoulli probabilities, categorical probabilities
 * per position that sum to 1, gaussian means). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/t.h"
#include "vae/infer.h"
#include "vae/model.h"
#include "vae/rng.h"

static vae_spec tiny(int lik)
{
    vae_spec s;
    memset(&s, 0, sizeof s);
    s.model.n_enc = 1;
    s.model.enc[0] = 7;
    s.model.n_dec = 1;
    s.model.dec[0] = 5;
    s.model.n_groups = 2;
    s.model.groups[0] = 2;
    s.model.groups[1] = 1;
    s.model.activation = VAE_ACT_TANH;
    s.model.likelihood = lik;
    s.model.sigma = 0.5;
    s.loss.samples = 1;
    s.train.seed = 3;
    s.train.batch_size = 4;
    s.train.epochs = 1;
    s.train.threads = 1;
    return s;
}

/* y = act(W x + b) in double, W (out, in) at l->w of params. */
static void dense(const vae_model *m, const vae_layer *l, const double *in, double *out)
{
    for (int o = 0; o < l->out; o++) {
        double a = m->params[l->b + o];
        for (int i = 0; i < l->in; i++)
            a += (double)m->params[l->w + (long)o * l->in + i] * in[i];
        out[o] = l->act < 0 ? a : tanh(a);
    }
}

static void check_lik(int lik, int D, int vocab)
{
    vae_spec s = tiny(lik);
    vae_model *m = NULL;
    vaed_err err;
    enum { B = 4 };
    if (vae_model_new(&m, &s, D, vocab, B, &err)) {
        CHECK(0, "model: %s", err.msg);
        return;
    }
    vae_rng r;
    vae_rng_seed(&r, 8, (uint64_t)lik);
    float x[B * 12], mu[B * 3], lv[B * 3], z[B * 3], out[B * 12];
    for (int i = 0; i < B * D; i++)
        x[i] = (float)vae_rng_uniform(&r);
    vae_infer_encode(m, x, B, mu, lv);
    for (int i = 0; i < B * 3; i++)
        z[i] = (float)(2.0 * vae_rng_uniform(&r) - 1.0);
    vae_infer_lik_params(m, z, B, out);
    double de = 0.0, dd = 0.0, sums = 0.0;
    for (int b = 0; b < B; b++) {
        double in[12], h[16], head[6], y[12];
        for (int d = 0; d < D; d++)
            in[d] = x[b * D + d];
        dense(m, &m->enc[0], in, h);
        dense(m, &m->enc[1], h, head);
        for (int j = 0; j < 3; j++)
            de = fmax(de, fmax(fabs(head[j] - mu[b * 3 + j]), fabs(head[3 + j] - lv[b * 3 + j])));
        double zz[3] = {z[b * 3], z[b * 3 + 1], z[b * 3 + 2]};
        dense(m, &m->dec[0], zz, h);
        dense(m, &m->dec[1], h, y);
        for (int d = 0; d < D; d++) {
            double want = y[d];
            if (lik == VAE_LIK_BERNOULLI)
                want = 1.0 / (1.0 + exp(-y[d]));
            if (lik == VAE_LIK_CATEGORICAL) { /* exp(y_d) / Σ over d's position */
                int t0 = d / vocab * vocab;
                double se = 0.0;
                for (int v = 0; v < vocab; v++)
                    se += exp(y[t0 + v]);
                want = exp(y[d]) / se;
                if (d % vocab == vocab - 1) {
                    double ps = 0.0;
                    for (int v = 0; v < vocab; v++)
                        ps += out[b * D + t0 + v];
                    sums = fmax(sums, fabs(ps - 1.0));
                }
            }
            dd = fmax(dd, fabs(want - out[b * D + d]));
        }
    }
    CHECK(de < 1e-5, "likelihood %d: encoder differs from the naive pass by %.3g", lik, de);
    CHECK(dd < 1e-5, "likelihood %d: parameters differ from the naive pass by %.3g", lik, dd);
    CHECK(sums < 1e-5, "categorical probabilities of a position sum to 1 within %.3g", sums);
    printf("likelihood %d: encoder maxdiff %.3g, parameters maxdiff %.3g\n", lik, de, dd);
    vae_model_free(m);
}

int main(void)
{
    check_lik(VAE_LIK_BERNOULLI, 6, 0);
    check_lik(VAE_LIK_GAUSSIAN, 6, 0);
    check_lik(VAE_LIK_CATEGORICAL, 12, 4); /* 3 positions of 4 symbols */
    return t_done("test_infer");
}
