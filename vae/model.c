/* model.c — see model.h. Forward, loss and backward of one batch.
 *
 * Shapes, with B inputs, k samples each, R = B·k decoder rows, L latent units:
 *   x (B,D) → encoder → head (B,2L) = [mu | logvar]
 *   z (R,L) = mu + exp(logvar/2) · eps, row i·k+s is sample s of input i
 *   z → decoder → out (R,D): logits (bernoulli, categorical) or means (gaussian). */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rng.h"

#define LOG_2PI 1.8378770664093453

static long layers_plan(vae_model *m, const vae_spec *s)
{
    const vae_model_spec *ms = &s->model;
    long off = 0;
    int in = m->D;
    m->n_enc = 0;
    for (int i = 0; i < ms->n_enc; i++) {
        m->enc[m->n_enc++] = (vae_layer){in, ms->enc[i], (int)ms->activation, 0, 0};
        in = ms->enc[i];
    }
    m->enc[m->n_enc++] = (vae_layer){in, 2 * m->L, -1, 0, 0};
    in = m->L;
    m->n_dec = 0;
    for (int i = 0; i < ms->n_dec; i++) {
        m->dec[m->n_dec++] = (vae_layer){in, ms->dec[i], (int)ms->activation, 0, 0};
        in = ms->dec[i];
    }
    m->dec[m->n_dec++] = (vae_layer){in, m->D, -1, 0, 0};
    for (int i = 0; i < m->n_enc + m->n_dec; i++) {
        vae_layer *l = i < m->n_enc ? &m->enc[i] : &m->dec[i - m->n_enc];
        l->w = off;
        off += (long)l->in * l->out;
        l->b = off;
        off += l->out;
    }
    return off;
}

static int widest(const vae_model *m)
{
    int w = m->L > m->D ? m->L : m->D;
    for (int i = 0; i < m->n_enc; i++)
        if (m->enc[i].out > w)
            w = m->enc[i].out;
    for (int i = 0; i < m->n_dec; i++)
        if (m->dec[i].out > w)
            w = m->dec[i].out;
    return w;
}

/* Float counts of the workspace, in the order vae_model_new carves it. */
static size_t workspace_floats(const vae_model *m, int max_batch)
{
    size_t B = (size_t)max_batch, R = B * (size_t)m->k, n = 0;
    for (int i = 0; i < m->n_enc; i++)
        n += B * (size_t)m->enc[i].out;
    for (int i = 0; i < m->n_dec; i++)
        n += R * (size_t)m->dec[i].out;
    n += 3 * R * (size_t)m->L + B * 2 * (size_t)m->L + 2 * R * (size_t)widest(m) +
         B * (size_t)m->D + (size_t)m->D;
    return n;
}

static void shape_from_spec(vae_model *m, const vae_spec *s, int D, int vocab)
{
    memset(m, 0, sizeof *m);
    m->D = D;
    m->vocab = vocab;
    m->k = s->loss.samples;
    m->lik = s->model.likelihood;
    m->klkind = s->loss.kl;
    m->free_bits = s->loss.free_bits;
    m->sigma = s->model.sigma;
    m->n_groups = s->model.n_groups;
    m->group_off[0] = 0;
    for (int g = 0; g < m->n_groups; g++)
        m->group_off[g + 1] = m->group_off[g] + s->model.groups[g];
    m->L = m->group_off[m->n_groups];
}

void vae_model_shape(vae_model *m, const vae_spec *spec, int D, int vocab)
{
    shape_from_spec(m, spec, D, vocab);
    m->n_params = layers_plan(m, spec);
}

size_t vae_model_bytes(const vae_spec *spec, int D, int max_batch)
{
    vae_model m;
    vae_model_shape(&m, spec, D, 0);
    return sizeof(float) * (4 * (size_t)m.n_params + workspace_floats(&m, max_batch));
}

int vae_model_new(vae_model **out, const vae_spec *spec, int D, int vocab, int max_batch,
                  vaed_err *err)
{
    *out = NULL;
    if (D <= 0)
        return vaed_err_set(err, VAED_EINVAL, "dataset", "data has no features");
    if (spec->model.likelihood == VAE_LIK_CATEGORICAL && (vocab <= 0 || D % vocab))
        return vaed_err_set(err, VAED_EINVAL, "model.likelihood",
                            "categorical needs one-hot sequence data (dataset.format text)");
    vae_model *m = xcalloc(1, sizeof *m);
    vae_model_shape(m, spec, D, vocab);
    m->max_batch = max_batch;
    size_t np = (size_t)m->n_params, nw = workspace_floats(m, max_batch);
    if (np > ((size_t)1 << 40) / 16 || nw > ((size_t)1 << 40) / 4) {
        free(m);
        return vaed_err_set(err, VAED_ETOOBIG, "model", "model of %zu parameters is too large", np);
    }
    /* One allocation each for the four parameter-shaped buffers and the workspace: the
     * sizes come from the spec, so failure fails the job instead of aborting. */
    m->params = calloc(np, sizeof(float));
    m->grads = calloc(np, sizeof(float));
    m->m = calloc(np, sizeof(float));
    m->v = calloc(np, sizeof(float));
    float *ws = calloc(nw, sizeof(float));
    if (!m->params || !m->grads || !m->m || !m->v || !ws) {
        free(ws);
        vae_model_free(m);
        return vaed_err_set(err, VAED_ENOMEM, "model", "out of memory for %zu parameters", np);
    }
    size_t B = (size_t)max_batch, R = B * (size_t)m->k;
    float *p = ws;
    for (int i = 0; i < m->n_enc; i++) {
        m->enc_out[i] = p;
        p += B * (size_t)m->enc[i].out;
    }
    for (int i = 0; i < m->n_dec; i++) {
        m->dec_out[i] = p;
        p += R * (size_t)m->dec[i].out;
    }
    m->z = p, p += R * (size_t)m->L;
    m->eps = p, p += R * (size_t)m->L;
    m->dz = p, p += R * (size_t)m->L;
    m->dhead = p, p += B * 2 * (size_t)m->L;
    m->scratch[0] = p, p += R * (size_t)widest(m);
    m->scratch[1] = p, p += R * (size_t)widest(m);
    m->x = p, p += B * (size_t)m->D;
    m->rowtmp = p;

    /* PyTorch's nn.Linear default: kaiming_uniform(a = sqrt 5) gives W and b uniform in
     * ±1/sqrt(fan_in); using it makes our runs comparable to a PyTorch reference. */
    vae_rng r;
    vae_rng_seed(&r, spec->train.seed, 1);
    for (int i = 0; i < m->n_enc + m->n_dec; i++) {
        const vae_layer *l = i < m->n_enc ? &m->enc[i] : &m->dec[i - m->n_enc];
        double bound = 1.0 / sqrt((double)l->in);
        for (long j = 0; j < (long)l->in * l->out; j++)
            m->params[l->w + j] = (float)((2.0 * vae_rng_uniform(&r) - 1.0) * bound);
        for (long j = 0; j < l->out; j++)
            m->params[l->b + j] = (float)((2.0 * vae_rng_uniform(&r) - 1.0) * bound);
    }
    *out = m;
    return 0;
}

void vae_model_free(vae_model *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m->m);
    free(m->v);
    free(m->enc_out[0]); /* the workspace starts at the first encoder output */
    free(m);
}

/* −log p(x|out) summed over the rows [r0, r1) of the decoder output, and, when g is not
 * NULL, its gradient w.r.t. out times `scale` written over g (which may alias out).
 * tmp is a scratch row of D floats. */
static double likelihood(const vae_model *m, float *out, int r0, int r1, float *g, float scale,
                         float *tmp)
{
    const int D = m->D, k = m->k;
    double total = 0.0;
    for (int r = r0; r < r1; r++) {
        const float *x = m->x + (long)(r / k) * D;
        float *y = out + (long)r * D, *gy = g ? g + (long)r * D : NULL;
        double row = 0.0;
        switch (m->lik) {
        case VAE_LIK_BERNOULLI: {
            /* −log p = softplus(y) − x·y, written stably as max(y,0) − x·y + log1p(e^−|y|);
             * d/dy = sigmoid(y) − x. Per-unit terms go to a scratch row so this loop has no
             * double-precision reduction and vectorises. */
            for (int d = 0; d < D; d++) {
                float yy = y[d], e = exp_nonpos(-fabsf(yy));
                tmp[d] = (yy > 0.0f ? yy : 0.0f) + log1p_unit(e) - x[d] * yy;
                if (gy) {
                    float inv = 1.0f / (1.0f + e);
                    gy[d] = scale * ((yy >= 0.0f ? inv : e * inv) - x[d]);
                }
            }
            row = sum_floats(tmp, D);
            break;
        }
        case VAE_LIK_CATEGORICAL: {
            /* per position: −Σ_v x_v log softmax(y)_v; d/dy = softmax(y)·Σx − x */
            const int V = m->vocab;
            for (int t = 0; t < D; t += V) {
                float mx = y[t];
                for (int v = 1; v < V; v++)
                    mx = y[t + v] > mx ? y[t + v] : mx;
                double se = 0.0, sx = 0.0, sxy = 0.0;
                for (int v = 0; v < V; v++) {
                    se += exp((double)(y[t + v] - mx));
                    sx += x[t + v];
                    sxy += (double)x[t + v] * (y[t + v] - mx);
                }
                double lse = log(se);
                row += sx * lse - sxy;
                if (gy)
                    for (int v = 0; v < V; v++)
                        gy[t + v] = scale * (float)(exp((double)(y[t + v] - mx) - lse) * sx -
                                                    x[t + v]);
            }
            break;
        }
        case VAE_LIK_GAUSSIAN: {
            /* −log N(x; y, σ²) = ½((x−y)/σ)² + log σ + ½ log 2π; d/dy = (y − x)/σ² */
            const double s2 = m->sigma * m->sigma;
            const double c = log(m->sigma) + 0.5 * LOG_2PI;
            for (int d = 0; d < D; d++) {
                double diff = (double)y[d] - x[d];
                row += 0.5 * diff * diff / s2 + c;
                if (gy)
                    gy[d] = scale * (float)(diff / s2);
            }
            break;
        }
        }
        total += row;
    }
    return total;
}

void vae_model_step(vae_model *m, int B, const vae_klweight *w, int backward, vae_terms *t)
{
    const int L = m->L, k = m->k, R = B * k, G = m->n_groups;
    memset(t, 0, sizeof *t);

    /* Encoder. */
    const float *in = m->x;
    for (int i = 0; i < m->n_enc; i++) {
        const vae_layer *l = &m->enc[i];
        dense_forward(m->enc_out[i], in, m->params + l->w, m->params + l->b, B, l->in, l->out,
                      l->act);
        in = m->enc_out[i];
    }
    const float *head = m->enc_out[m->n_enc - 1];

    /* Reparameterise: z = mu + sigma · eps, sigma = exp(logvar / 2). */
    for (int i = 0; i < B; i++) {
        const float *mu = head + (long)i * 2 * L, *lv = mu + L;
        for (int s = 0; s < k; s++) {
            long r = ((long)i * k + s) * L;
            for (int j = 0; j < L; j++)
                m->z[r + j] = mu[j] + expf(0.5f * lv[j]) * m->eps[r + j];
        }
    }

    /* Decoder. */
    in = m->z;
    for (int i = 0; i < m->n_dec; i++) {
        const vae_layer *l = &m->dec[i];
        dense_forward(m->dec_out[i], in, m->params + l->w, m->params + l->b, R, l->in, l->out,
                      l->act);
        in = m->dec_out[i];
    }
    float *out = m->dec_out[m->n_dec - 1];

    /* Reconstruction: the objective is the batch mean of (1/k) Σ_s −log p(x|z_s), so each
     * output row's gradient carries 1/(B·k). The gradient overwrites the output. */
    t->xent = likelihood(m, out, 0, R, backward ? out : NULL, 1.0f / (float)R, m->rowtmp) / R;

    /* KL per group, batch mean.
     * analytic: ½ Σ_j (mu² + e^lv − 1 − lv)
     * mc:       (1/k) Σ_s Σ_j ½ (z² − eps² − lv)   = log q(z|x) − log p(z), the seed's estimator */
    for (int g = 0; g < G; g++) {
        double kg = 0.0;
        for (int i = 0; i < B; i++) {
            const float *mu = head + (long)i * 2 * L, *lv = mu + L;
            if (m->klkind == VAE_KL_ANALYTIC) {
                for (int j = m->group_off[g]; j < m->group_off[g + 1]; j++)
                    kg += 0.5 * ((double)mu[j] * mu[j] + exp((double)lv[j]) - 1.0 - lv[j]);
            } else {
                for (int s = 0; s < k; s++) {
                    const float *z = m->z + ((long)i * k + s) * L;
                    const float *e = m->eps + ((long)i * k + s) * L;
                    for (int j = m->group_off[g]; j < m->group_off[g + 1]; j++)
                        kg += 0.5 * ((double)z[j] * z[j] - (double)e[j] * e[j] - lv[j]) / k;
                }
            }
        }
        t->kl_group[g] = kg / B;
        t->kl += t->kl_group[g];
        /* λ = 0 is the plain KL, even when a Monte-Carlo estimate dips below zero */
        t->klobj += (m->free_bits == 0.0 || t->kl_group[g] > m->free_bits) ? t->kl_group[g]
                                                                          : m->free_bits;
    }

    /* The KL term and its weight dObjective/dKLobj. */
    double coef;
    if (w->capacity) {
        double d = t->klobj - w->C;
        t->loss = t->xent + w->beta * fabs(d);
        coef = d > 0 ? w->beta : d < 0 ? -w->beta : 0.0;
    } else {
        t->loss = t->xent + w->beta * t->klobj;
        coef = w->beta;
    }
    if (!backward)
        return;

    /* Decoder backward: out holds dLoss/dout. Each layer's din becomes the next dout after
     * multiplying by the activation derivative of the layer below. */
    float *dcur = out;
    for (int i = m->n_dec - 1; i >= 0; i--) {
        const vae_layer *l = &m->dec[i];
        const float *lin = i > 0 ? m->dec_out[i - 1] : m->z;
        float *din = i > 0 ? m->scratch[i & 1] : m->dz;
        dense_backward(din, m->grads + l->w, m->grads + l->b, dcur, lin, m->params + l->w, R,
                       l->in, l->out, 1);
        if (i > 0)
            act_backward(din, m->dec_out[i - 1], (long)R * l->in, m->dec[i - 1].act);
        dcur = din;
    }

    /* Through the sampling step into [mu | logvar], adding the KL gradient. Free bits: a
     * group whose KL is below λ contributes the constant λ, so no gradient. */
    for (int i = 0; i < B; i++) {
        const float *mu = head + (long)i * 2 * L, *lv = mu + L;
        float *dmu = m->dhead + (long)i * 2 * L, *dlv = dmu + L;
        for (int g = 0; g < G; g++) {
            double c = (t->kl_group[g] >= m->free_bits || m->free_bits == 0.0) ? coef / B : 0.0;
            for (int j = m->group_off[g]; j < m->group_off[g + 1]; j++) {
                float sig = expf(0.5f * lv[j]);
                double gm = 0.0, gl = 0.0;
                for (int s = 0; s < k; s++) {
                    long r = ((long)i * k + s) * L + j;
                    double dz = m->dz[r];
                    if (m->klkind == VAE_KL_MC) /* d/dz of ½ z² / k */
                        dz += c * m->z[r] / k;
                    gm += dz;                               /* dz/dmu = 1 */
                    gl += dz * m->eps[r] * 0.5 * sig;       /* dz/dlogvar = ½ sigma eps */
                }
                if (m->klkind == VAE_KL_ANALYTIC) {
                    gm += c * mu[j];                        /* d/dmu     ½ mu² */
                    gl += c * 0.5 * (exp((double)lv[j]) - 1.0); /* d/dlogvar ½ (e^lv − lv) */
                } else {
                    gl += c * -0.5;                         /* d/dlogvar of −½ lv */
                }
                dmu[j] = (float)gm;
                dlv[j] = (float)gl;
            }
        }
    }

    /* Encoder backward; the first layer's input is data, so no din there. */
    dcur = m->dhead;
    for (int i = m->n_enc - 1; i >= 0; i--) {
        const vae_layer *l = &m->enc[i];
        const float *lin = i > 0 ? m->enc_out[i - 1] : m->x;
        float *din = i > 0 ? m->scratch[i & 1] : NULL;
        dense_backward(din, m->grads + l->w, m->grads + l->b, dcur, lin, m->params + l->w, B,
                       l->in, l->out, 1);
        if (i > 0)
            act_backward(din, m->enc_out[i - 1], (long)B * l->in, m->enc[i - 1].act);
        dcur = din;
    }
}

void vae_model_kl_dims(const vae_model *m, int B, double *out)
{
    const int L = m->L;
    const float *head = m->enc_out[m->n_enc - 1];
    for (int i = 0; i < B; i++) {
        const float *mu = head + (long)i * 2 * L, *lv = mu + L;
        for (int j = 0; j < L; j++)
            out[(long)i * L + j] =
                0.5 * ((double)mu[j] * mu[j] + exp((double)lv[j]) - 1.0 - lv[j]);
    }
}

double vae_adam_update(float *restrict p, float *restrict g, float *restrict m,
                       float *restrict v, long n, const vae_optim_spec *o, double lr, double clip,
                       long t)
{
    const double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float step_size = (float)(lr / bc1), inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float decay = (float)(1.0 - lr * o->weight_decay), c = (float)clip;
    /* Blocks of 4096 with 16 float partial sums of g² each, folded into a double, as in
     * sum_squares: the inner loop stays one vectorised pass over the four buffers. */
    double total = 0.0;
    for (long b0 = 0; b0 < n; b0 += 4096) {
        const long e = b0 + 4096 < n ? b0 + 4096 : n;
        float acc[16] = {0};
        long i = b0;
        for (; i + 16 <= e; i += 16)
            for (int k = 0; k < 16; k++) {
                const long j = i + k;
                const float gr = g[j], gi = gr * c;
                acc[k] += gr * gr;
                g[j] = 0.0f; /* cleared here, while in cache, for the next step */
                m[j] = b1 * m[j] + (1.0f - b1) * gi;
                v[j] = b2 * v[j] + (1.0f - b2) * gi * gi;
                p[j] = p[j] * decay - step_size * m[j] / (sqrtf(v[j]) * inv_sqrt_bc2 + eps);
            }
        for (; i < e; i++) {
            const float gr = g[i], gi = gr * c;
            acc[0] += gr * gr;
            g[i] = 0.0f;
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            p[i] = p[i] * decay - step_size * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
        }
        double part = 0.0;
        for (int k = 0; k < 16; k++)
            part += acc[k];
        total += part;
    }
    return total;
}
