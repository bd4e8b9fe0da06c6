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
/* A chunk's weight-gradient multiply packs the layer's whole input again, and Adam
 * follows it while its 4 bytes a weight of gradient are in cache: larger chunks pack
 * less, smaller ones keep the gradient nearer. 131,072 (512 KiB of gradient) was the
 * fastest of 32 Ki to 512 Ki on the reference spec with OpenBLAS's Cooperlake core of
 * the AMD EPYC development host, and as fast as 256 Ki with Haswell
 * (docs/benchmarks.md, "Levers tried"). The split never
 * depends on the thread count, so a step's bits do not either. */
#define CHUNK_PARAMS 131072L

/* The row blocks of a layer's chunks: crows rows each, the last one what is left.
 * Returns the number of chunks; for k >= 0 it also sets [*o0, *o1) of the k-th. */
static int layer_chunks(const vae_layer *l, int k, int *o0, int *o1)
{
    int o = 0, n = 0;
    while (o < l->out) {
        const int left = l->out - o;
        const int size = l->crows < left ? l->crows : left;
        if (n == k) {
            *o0 = o;
            *o1 = o + size;
        }
        o += size;
        n++;
    }
    return n;
}

/* vae_model_layer, writable, for the plan that sets the layers up. */
static vae_layer *layer_at(vae_model *m, int i)
{
    return (vae_layer *)vae_model_layer(m, i);
}

static long layers_plan(vae_model *m, const vae_spec *s)
{
    const vae_model_spec *ms = &s->model;
    long off = 0;
    int in = m->D;
    m->n_enc = 0;
    for (int i = 0; i < ms->n_enc; i++) {
        m->enc[m->n_enc++] = (vae_layer){in, ms->enc[i], (int)ms->activation, 0, 0, 0, 0, 0};
        in = ms->enc[i];
    }
    m->enc[m->n_enc++] = (vae_layer){in, 2 * m->L, -1, 0, 0, 0, 0, 0};
    in = m->L;
    m->n_dec = 0;
    for (int i = 0; i < ms->n_dec; i++) {
        m->dec[m->n_dec++] = (vae_layer){in, ms->dec[i], (int)ms->activation, 0, 0, 0, 0, 0};
        in = ms->dec[i];
    }
    m->dec[m->n_dec++] = (vae_layer){in, m->D, -1, 0, 0, 0, 0, 0};
    for (int i = 0; i < m->n_enc + m->n_dec; i++) {
        vae_layer *l = layer_at(m, i);
        l->w = off;
        off += (long)l->in * l->out;
        l->b = off;
        off += l->out;
        /* Chunks of about CHUNK_PARAMS weights, in whole multiples of 16 rows (the
         * sgemm kernel's row block), so that a step's parameter work shares out evenly. */
        long rows = l->in > 0 ? (CHUNK_PARAMS + l->in - 1) / l->in : CHUNK_PARAMS;
        rows = (rows + 15) / 16 * 16;
        l->crows = rows < l->out ? (int)rows : l->out > 0 ? l->out : 1;
    }
    /* Chunks are numbered in the order the backward pass finishes their layers: the
     * decoder's last layer first, the encoder's first layer last. */
    m->n_chunks = 0;
    for (int i = m->n_enc + m->n_dec - 1; i >= 0; i--) {
        vae_layer *l = layer_at(m, i);
        l->c0 = m->n_chunks;
        l->nchunks = layer_chunks(l, -1, NULL, NULL);
        m->n_chunks += l->nchunks;
    }
    return off;
}

int vae_model_shard_rows(int B)
{
    return B <= 128 ? (B + 1) / 2 : 64;
}

int vae_model_needs_terms(const vae_model *m, const vae_klweight *w)
{
    return m->free_bits != 0.0 || w->capacity;
}

int vae_model_shards(int B)
{
    const int r = vae_model_shard_rows(B);
    return (B + r - 1) / r;
}

/* Float counts of the workspace, in the order vae_model_new carves it: each layer's
 * output and output gradient (the last layers' gradients live in dhead and the
 * decoder's output), z, eps, dz, dhead, x and a scratch row per shard. */
static size_t workspace_floats(const vae_model *m, int max_batch)
{
    size_t B = (size_t)max_batch, R = B * (size_t)m->k, n = 0;
    for (int i = 0; i < m->n_enc; i++)
        n += B * (size_t)m->enc[i].out * (i < m->n_enc - 1 ? 2 : 1);
    for (int i = 0; i < m->n_dec; i++)
        n += R * (size_t)m->dec[i].out * (i < m->n_dec - 1 ? 2 : 1);
    n += 3 * R * (size_t)m->L + B * 2 * (size_t)m->L + B * (size_t)m->D +
         (size_t)vae_model_shards(max_batch) * (size_t)m->D;
    return n;
}

/* Doubles of the workspace: the per-row loss terms. */
static size_t workspace_doubles(const vae_model *m, int max_batch)
{
    return (size_t)max_batch * ((size_t)m->k + (size_t)m->n_groups);
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
    return sizeof(float) * (4 * (size_t)m.n_params + workspace_floats(&m, max_batch)) +
           sizeof(double) * workspace_doubles(&m, max_batch);
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
    double *wd = calloc(workspace_doubles(m, max_batch), sizeof(double));
    if (!m->params || !m->grads || !m->m || !m->v || !ws || !wd) {
        free(ws);
        free(wd);
        vae_model_free(m);
        return vaed_err_set(err, VAED_ENOMEM, "model", "out of memory for %zu parameters", np);
    }
    size_t B = (size_t)max_batch, R = B * (size_t)m->k;
    float *p = ws;
    for (int i = 0; i < m->n_enc; i++) {
        m->enc_out[i] = p;
        p += B * (size_t)m->enc[i].out;
        if (i < m->n_enc - 1) {
            m->enc_d[i] = p;
            p += B * (size_t)m->enc[i].out;
        }
    }
    for (int i = 0; i < m->n_dec; i++) {
        m->dec_out[i] = p;
        p += R * (size_t)m->dec[i].out;
        if (i < m->n_dec - 1) {
            m->dec_d[i] = p;
            p += R * (size_t)m->dec[i].out;
        }
    }
    m->dec_d[m->n_dec - 1] = m->dec_out[m->n_dec - 1];
    m->z = p, p += R * (size_t)m->L;
    m->eps = p, p += R * (size_t)m->L;
    m->dz = p, p += R * (size_t)m->L;
    m->dhead = p, p += B * 2 * (size_t)m->L;
    m->enc_d[m->n_enc - 1] = m->dhead;
    m->x = p, p += B * (size_t)m->D;
    m->rowtmp = p;
    m->row_xent = wd;
    m->row_kl = wd + R;

    /* PyTorch's nn.Linear default: kaiming_uniform(a = sqrt 5) gives W and b uniform in
     * ±1/sqrt(fan_in); using it makes our runs comparable to a PyTorch reference. */
    vae_rng r;
    vae_rng_seed(&r, spec->train.seed, 1);
    for (int i = 0; i < m->n_enc + m->n_dec; i++) {
        const vae_layer *l = vae_model_layer(m, i);
        double bound = 1.0 / sqrt((double)l->in);
        for (long j = 0; j < (long)l->in * l->out; j++)
            m->params[l->w + j] = (float)((2.0 * vae_rng_uniform(&r) - 1.0) * bound);
        for (long j = 0; j < l->out; j++)
            m->params[l->b + j] = (float)((2.0 * vae_rng_uniform(&r) - 1.0) * bound);
    }
    *out = m;
    return 0;
}

int vae_model_use_wt(vae_model *m)
{
    if (vae_gemm_lib(VAE_GEMM_FORWARD) != VAE_GEMM_LIBXSMM || m->wt)
        return 0;
    if (!(m->wt = malloc(sizeof(float) * (size_t)m->n_params)))
        return VAED_ENOMEM;
    vae_model_sync_wt(m, NULL);
    return 0;
}

void vae_model_sync_wt(vae_model *m, const vae_span *sp)
{
    if (!m->wt)
        return;
    for (int i = 0; i < m->n_enc + m->n_dec; i++) {
        const vae_layer *l = vae_model_layer(m, i);
        if (!sp)
            transpose_rows(m->wt + l->w, m->params + l->w, l->in, l->out, 0, l->out);
        else if (i == sp->layer)
            transpose_rows(m->wt + l->w, m->params + l->w, l->in, l->out, sp->o0, sp->o1);
    }
}

void vae_model_free(vae_model *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m->m);
    free(m->v);
    free(m->wt);
    free(m->enc_out[0]); /* the workspace starts at the first encoder output */
    free(m->row_xent);
    free(m);
}

/* One unit's −log p(x|y) under the Bernoulli likelihood, e = e^−|y|: both of
 * likelihood()'s loops use it. */
static inline float bernoulli_nll(float y, float e, float x)
{
    return (y > 0.0f ? y : 0.0f) + log1p_unit(e) - x * y;
}

/* −log p(x|out) of each of the rows [r0, r1) of the decoder output into m->row_xent,
 * and, when g is not NULL, its gradient w.r.t. out times `scale` written over g (which
 * may alias out). tmp is a scratch row of D floats. */
static void likelihood(vae_model *m, float *out, int r0, int r1, float *g, float scale,
                       float *tmp)
{
    const int D = m->D, k = m->k;
    for (int r = r0; r < r1; r++) {
        const float *x = m->x + (long)(r / k) * D;
        float *y = out + (long)r * D, *gy = g ? g + (long)r * D : NULL;
        double row = 0.0;
        switch (m->lik) {
        case VAE_LIK_BERNOULLI: {
            /* −log p = softplus(y) − x·y, written stably as max(y,0) − x·y + log1p(e^−|y|);
             * d/dy = sigmoid(y) − x. Per-unit terms go to a scratch row so this loop has no
             * double-precision reduction and vectorises: a loop of its own for each case,
             * since a branch in the loop (on gy) keeps the compiler from vectorising it.
             * Both compute each unit's term by the same operations. */
            if (gy) {
                for (int d = 0; d < D; d++) {
                    float yy = y[d], e = exp_nonpos(-fabsf(yy)), inv = 1.0f / (1.0f + e);
                    tmp[d] = bernoulli_nll(yy, e, x[d]);
                    gy[d] = scale * ((yy >= 0.0f ? inv : e * inv) - x[d]);
                }
            } else {
                for (int d = 0; d < D; d++)
                    tmp[d] = bernoulli_nll(y[d], exp_nonpos(-fabsf(y[d])), x[d]);
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
        m->row_xent[r] = row;
    }
}

/* The rows [i0, i1) of shard s of a batch of B. */
static int shard_range(int B, int s, int *i0)
{
    const int r = vae_model_shard_rows(B);
    *i0 = s * r;
    return *i0 + r < B ? r : B - *i0;
}

void vae_model_forward(vae_model *m, int B, int s, int backward)
{
    const int L = m->L, k = m->k, G = m->n_groups, R = B * k;
    int i0;
    const int n = shard_range(B, s, &i0);
    const long r0 = (long)i0 * k;

    /* Encoder. */
    const float *in = m->x + (long)i0 * m->D;
    for (int i = 0; i < m->n_enc; i++) {
        const vae_layer *l = &m->enc[i];
        float *o = m->enc_out[i] + (long)i0 * l->out;
        if (m->wt)
            dense_forward_t(o, in, m->wt + l->w, m->params + l->b, n, l->in, l->out, l->act);
        else
            dense_forward(o, in, m->params + l->w, m->params + l->b, n, l->in, l->out, l->act);
        in = o;
    }
    const float *head = m->enc_out[m->n_enc - 1];

    /* Reparameterise: z = mu + sigma · eps, sigma = exp(logvar / 2). */
    for (int i = i0; i < i0 + n; i++) {
        const float *mu = head + (long)i * 2 * L, *lv = mu + L;
        for (int s2 = 0; s2 < k; s2++) {
            long r = ((long)i * k + s2) * L;
            for (int j = 0; j < L; j++)
                m->z[r + j] = mu[j] + expf(0.5f * lv[j]) * m->eps[r + j];
        }
    }

    /* Decoder, on the shard's n·k sample rows. */
    in = m->z + r0 * L;
    for (int i = 0; i < m->n_dec; i++) {
        const vae_layer *l = &m->dec[i];
        float *o = m->dec_out[i] + r0 * l->out;
        if (m->wt)
            dense_forward_t(o, in, m->wt + l->w, m->params + l->b, n * k, l->in, l->out,
                            l->act);
        else
            dense_forward(o, in, m->params + l->w, m->params + l->b, n * k, l->in, l->out,
                          l->act);
        in = o;
    }
    float *out = m->dec_out[m->n_dec - 1];

    /* Reconstruction: the objective is the batch mean of (1/k) Σ_s −log p(x|z_s), so each
     * output row's gradient carries 1/(B·k). The gradient overwrites the output. */
    likelihood(m, out, (int)r0, (int)r0 + n * k, backward ? out : NULL, 1.0f / (float)R,
               m->rowtmp + (long)s * m->D);

    /* KL of each input and group.
     * analytic: ½ Σ_j (mu² + e^lv − 1 − lv)
     * mc:       (1/k) Σ_s Σ_j ½ (z² − eps² − lv)   = log q(z|x) − log p(z), the seed's estimator */
    for (int i = i0; i < i0 + n; i++) {
        const float *mu = head + (long)i * 2 * L, *lv = mu + L;
        for (int g = 0; g < G; g++) {
            double kg = 0.0;
            if (m->klkind == VAE_KL_ANALYTIC) {
                for (int j = m->group_off[g]; j < m->group_off[g + 1]; j++)
                    kg += 0.5 * ((double)mu[j] * mu[j] + exp((double)lv[j]) - 1.0 - lv[j]);
            } else {
                for (int s2 = 0; s2 < k; s2++) {
                    const float *z = m->z + ((long)i * k + s2) * L;
                    const float *e = m->eps + ((long)i * k + s2) * L;
                    for (int j = m->group_off[g]; j < m->group_off[g + 1]; j++)
                        kg += 0.5 * ((double)z[j] * z[j] - (double)e[j] * e[j] - lv[j]) / k;
                }
            }
            m->row_kl[(long)i * G + g] = kg;
        }
    }
}

void vae_model_terms(const vae_model *m, int B, const vae_klweight *w, vae_terms *t)
{
    const int G = m->n_groups, R = B * m->k;
    memset(t, 0, sizeof *t);
    double sx = 0.0;
    for (int r = 0; r < R; r++)
        sx += m->row_xent[r];
    t->xent = sx / R;
    for (int g = 0; g < G; g++) {
        double kg = 0.0;
        for (int i = 0; i < B; i++)
            kg += m->row_kl[(long)i * G + g];
        t->kl_group[g] = kg / B;
        t->kl += t->kl_group[g];
        /* λ = 0 is the plain KL, even when a Monte-Carlo estimate dips below zero */
        t->klobj += (m->free_bits == 0.0 || t->kl_group[g] > m->free_bits) ? t->kl_group[g]
                                                                          : m->free_bits;
    }
    /* The KL term and its weight dObjective/dKLobj. */
    if (w->capacity) {
        double d = t->klobj - w->C;
        t->loss = t->xent + w->beta * fabs(d);
        t->coef = d > 0 ? w->beta : d < 0 ? -w->beta : 0.0;
    } else {
        t->loss = t->xent + w->beta * t->klobj;
        t->coef = w->beta;
    }
}

void vae_model_backward_decoder(vae_model *m, int B, int s)
{
    const int k = m->k;
    int i0;
    const int n = shard_range(B, s, &i0);
    const long r0 = (long)i0 * k;

    /* Decoder: dec_d[i] holds dLoss/d(pre-activation output) of layer i (the last is the
     * likelihood's gradient over the logits); its input gradient, times the derivative
     * of the activation below, is the layer below's. */
    for (int i = m->n_dec - 1; i >= 0; i--) {
        const vae_layer *l = &m->dec[i];
        float *din = (i > 0 ? m->dec_d[i - 1] : m->dz) + r0 * l->in;
        dense_backward_data(din, m->dec_d[i] + r0 * l->out, m->params + l->w, n * k, l->in,
                            l->out);
        if (i > 0)
            act_backward(din, m->dec_out[i - 1] + r0 * l->in, (long)n * k * l->in,
                         m->dec[i - 1].act);
    }
}

void vae_model_backward_encoder(vae_model *m, int B, int s, const vae_terms *t)
{
    const int L = m->L, k = m->k, G = m->n_groups;
    int i0;
    const int n = shard_range(B, s, &i0);

    /* Through the sampling step into [mu | logvar], adding the KL gradient. Free bits: a
     * group whose KL is below λ contributes the constant λ, so no gradient. */
    const float *head = m->enc_out[m->n_enc - 1];
    for (int i = i0; i < i0 + n; i++) {
        const float *mu = head + (long)i * 2 * L, *lv = mu + L;
        float *dmu = m->dhead + (long)i * 2 * L, *dlv = dmu + L;
        for (int g = 0; g < G; g++) {
            double c = (t->kl_group[g] >= m->free_bits || m->free_bits == 0.0) ? t->coef / B
                                                                               : 0.0;
            for (int j = m->group_off[g]; j < m->group_off[g + 1]; j++) {
                float sig = expf(0.5f * lv[j]);
                double gm = 0.0, gl = 0.0;
                for (int s2 = 0; s2 < k; s2++) {
                    long r = ((long)i * k + s2) * L + j;
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

    /* Encoder; the first layer's input is data, so no input gradient there. */
    for (int i = m->n_enc - 1; i > 0; i--) {
        const vae_layer *l = &m->enc[i];
        float *din = m->enc_d[i - 1] + (long)i0 * l->in;
        dense_backward_data(din, m->enc_d[i] + (long)i0 * l->out, m->params + l->w, n, l->in,
                            l->out);
        act_backward(din, m->enc_out[i - 1] + (long)i0 * l->in, (long)n * l->in,
                     m->enc[i - 1].act);
    }
}

void vae_model_chunk(const vae_model *m, int c, vae_span *sp)
{
    const vae_layer *l = NULL;
    int i = 0;
    for (; i < m->n_enc + m->n_dec; i++) {
        l = vae_model_layer(m, i);
        if (c >= l->c0 && c < l->c0 + l->nchunks)
            break;
    }
    sp->layer = i;
    sp->o0 = sp->o1 = 0;
    layer_chunks(l, c - l->c0, &sp->o0, &sp->o1);
    sp->w = l->w + (long)sp->o0 * l->in;
    sp->nw = (long)(sp->o1 - sp->o0) * l->in;
    sp->b = l->b + sp->o0;
    sp->nb = sp->o1 - sp->o0;
}

int vae_model_chunk_needs(const vae_model *m, int c)
{
    vae_span sp;
    vae_model_chunk(m, c, &sp);
    return sp.layer >= m->n_enc ? 1 : 2;
}

void vae_model_layer_bufs(const vae_model *m, int i, const float **in, float **out,
                          float **dout, float **din)
{
    if (i < m->n_enc) {
        *in = i > 0 ? m->enc_out[i - 1] : m->x;
        *out = m->enc_out[i];
        *dout = m->enc_d[i];
        *din = i > 0 ? m->enc_d[i - 1] : NULL;
    } else {
        const int j = i - m->n_enc;
        *in = j > 0 ? m->dec_out[j - 1] : m->z;
        *out = m->dec_out[j];
        *dout = m->dec_d[j];
        *din = j > 0 ? m->dec_d[j - 1] : m->dz;
    }
}

void vae_model_grad(vae_model *m, int B, int c, vae_span *sp, int add)
{
    vae_span here;
    if (!sp)
        sp = &here;
    vae_model_chunk(m, c, sp);
    const vae_layer *l = vae_model_layer(m, sp->layer);
    const float *in;
    float *out, *dy, *din;
    vae_model_layer_bufs(m, sp->layer, &in, &out, &dy, &din);
    dense_backward_params(m->grads + l->w, m->grads + l->b, dy, in,
                          sp->layer < m->n_enc ? B : B * m->k, l->in, l->out, sp->o0, sp->o1,
                          add);
}

void vae_model_step(vae_model *m, int B, const vae_klweight *w, int backward, vae_terms *t)
{
    const int S = vae_model_shards(B);
    for (int s = 0; s < S; s++)
        vae_model_forward(m, B, s, backward);
    vae_model_terms(m, B, w, t);
    if (!backward)
        return;
    for (int s = 0; s < S; s++) {
        vae_model_backward_decoder(m, B, s);
        vae_model_backward_encoder(m, B, s, t);
    }
    for (int c = 0; c < m->n_chunks; c++)
        vae_model_grad(m, B, c, NULL, 0);
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

/* Adam reads and writes the parameters and both moments, 12 bytes a weight, and in a
 * training step they come from beyond the core's cache: the multiplies between two
 * updates pass more data through it than the caches hold. The hardware prefetcher
 * follows a stream only within a 4 KiB page, so each of the three streams stalls at
 * every page boundary; asking for them 8 KiB ahead keeps them flowing. It changes no
 * number, and made the reference spec's step 3-4% faster (`vaed train`, alternating
 * runs); alone on data that fits in the last-level cache it changes nothing. */
#define ADAM_AHEAD 2048 /* floats */

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
        for (; i + 16 <= e; i += 16) {
            if (i + ADAM_AHEAD < n) {
                __builtin_prefetch(p + i + ADAM_AHEAD, 1, 3);
                __builtin_prefetch(m + i + ADAM_AHEAD, 1, 3);
                __builtin_prefetch(v + i + ADAM_AHEAD, 1, 3);
            }
            for (int k = 0; k < 16; k++) {
                const long j = i + k;
                const float gr = g[j], gi = gr * c;
                g[j] = 0.0f;
                acc[k] += gr * gr;
                m[j] = b1 * m[j] + (1.0f - b1) * gi;
                v[j] = b2 * v[j] + (1.0f - b2) * gi * gi;
                p[j] = p[j] * decay - step_size * m[j] / (sqrtf(v[j]) * inv_sqrt_bc2 + eps);
            }
        }
        for (; i < e; i++) {
            const float gr = g[i], gi = gr * c;
            g[i] = 0.0f;
            acc[0] += gr * gr;
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
