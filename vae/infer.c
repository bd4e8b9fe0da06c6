/* infer.c — a checkpoint's model used for inference: reconstructions and samples.
 *
 * The model is built from the spec exactly as training built it (vae_model_new lays
 * the parameters out from the spec alone), so the parameter section of a blob of the
 * same spec drops into it with one memcpy. The passes below are the forward halves
 * of vae_model_step with no noise: reconstructions go through the posterior mean,
 * samples decode z drawn by the caller. */
#include "infer.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kernels.h"

int vae_infer_model(vae_model **out, const vae_spec *spec, int D, int max_batch,
                    const void *blob, size_t len, vaed_err *err)
{
    return vae_infer_model_vocab(out, spec, D, 0, max_batch, blob, len, err);
}

int vae_infer_model_vocab(vae_model **out, const vae_spec *spec, int D, int vocab,
                          int max_batch, const void *blob, size_t len, vaed_err *err)
{
    *out = NULL;
    const float *p;
    long n;
    int rc = vae_ckpt_params(blob, len, &p, &n, err);
    if (rc)
        return rc;
    vae_model *m = NULL;
    if ((rc = vae_model_new(&m, spec, D, vocab, max_batch, err)))
        return rc;
    if (n != m->n_params) {
        vaed_err_set(err, VAED_EINVAL, NULL,
                     "checkpoint: it holds %ld parameters, the job's model has %ld", n,
                     m->n_params);
        vae_model_free(m);
        return VAED_EINVAL;
    }
    memcpy(m->params, p, (size_t)n * sizeof(float));
    *out = m;
    return 0;
}

static float sigmoidf(float x)
{
    return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

/* The layers of one MLP (n of them, outputs in outs) on B rows of x; returns the last
 * layer's output: the encoder's [mu | logvar] head, or the decoder's logits or means. */
static const float *mlp(vae_model *m, const vae_layer *layers, int n, float *const *outs,
                        const float *x, int B)
{
    const float *in = x;
    for (int i = 0; i < n; i++) {
        const vae_layer *l = &layers[i];
        dense_forward(outs[i], in, m->params + l->w, m->params + l->b, B, l->in, l->out, l->act);
        in = outs[i];
    }
    return in;
}

void vae_infer_decode(vae_model *m, const float *z, int B, float *out)
{
    const float *in = mlp(m, m->dec, m->n_dec, m->dec_out, z, B);
    /* The output layer is linear: logits for bernoulli, the mean for gaussian. */
    long total = (long)B * m->D;
    for (long i = 0; i < total; i++)
        out[i] = m->lik == VAE_LIK_BERNOULLI ? sigmoidf(in[i]) : in[i];
}

long vae_infer_width(const vae_spec *s, long n)
{
    vae_model m0, m1;
    vae_model_shape(&m0, s, 0, 0);
    vae_model_shape(&m1, s, 1, 0);
    long c0 = m0.n_params, slope = m1.n_params - m0.n_params;
    if (slope <= 0 || n <= c0 || (n - c0) % slope)
        return 0;
    return (n - c0) / slope;
}

void vae_infer_encode(vae_model *m, const float *x, int B, float *mu, float *lv)
{
    const float *in = mlp(m, m->enc, m->n_enc, m->enc_out, x, B);
    const int L = m->L; /* the head is [mu | logvar] per row */
    for (int i = 0; i < B; i++) {
        memcpy(mu + (long)i * L, in + (long)i * 2 * L, sizeof(float) * (size_t)L);
        memcpy(lv + (long)i * L, in + (long)i * 2 * L + L, sizeof(float) * (size_t)L);
    }
}

void vae_infer_lik_params(vae_model *m, const float *z, int B, float *out)
{
    if (m->lik != VAE_LIK_CATEGORICAL) {
        vae_infer_decode(m, z, B, out);
        return;
    }
    const float *in = mlp(m, m->dec, m->n_dec, m->dec_out, z, B);
    /* softmax over each position's V logits, shifted by their maximum */
    const int V = m->vocab;
    for (long t = 0; t < (long)B * m->D; t += V) {
        float mx = in[t];
        for (int v = 1; v < V; v++)
            mx = in[t + v] > mx ? in[t + v] : mx;
        double se = 0.0;
        for (int v = 0; v < V; v++)
            se += exp((double)(in[t + v] - mx));
        for (int v = 0; v < V; v++)
            out[t + v] = (float)(exp((double)(in[t + v] - mx)) / se);
    }
}

void vae_infer_reconstruct(vae_model *m, const float *x, int B, float *out)
{
    const float *in = mlp(m, m->enc, m->n_enc, m->enc_out, x, B);
    /* The head is [mu | logvar] per row; z = mu (no noise: the mean reconstruction). */
    const int L = m->L;
    for (int i = 0; i < B; i++)
        memcpy(m->z + (long)i * L, in + (long)i * 2 * L, (size_t)L * sizeof(float));
    vae_infer_decode(m, m->z, B, out);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int vae_infer_read_rows(const vae_data_spec *ds, int n, float **out, int *got, int *D,
                        int *rows, int *cols, int *test, vaed_err *err)
{
    *out = NULL;
    *got = *D = *rows = *cols = *test = 0;
    char path[1200];
    if (ds->name[0]) {
        const char *dir = getenv("VAED_FASHION_MNIST_DIR");
        snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz",
                 dir && dir[0] ? dir : VAE_FASHION_MNIST_DIR);
        *test = 1;
    } else if (ds->format != VAE_FMT_IDX) {
        return vaed_err_set(err, VAED_EINVAL, "dataset.format",
                            "dataset.format: images need an IDX dataset");
    } else if (ds->test_path[0]) {
        snprintf(path, sizeof path, "%s", ds->test_path);
        *test = 1;
    } else {
        snprintf(path, sizeof path, "%s", ds->path);
    }
    int rc = 0;
    float *x = NULL;
    unsigned char *raw = NULL;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return vaed_err_set(err, VAED_EIO, NULL, "%s: cannot open", path);
    unsigned char h[4 + 3 * 4];
    if (gzread(f, h, 4) != 4 || h[0] || h[1]) {
        rc = vaed_err_set(err, VAED_EINVAL, NULL, "%s: not an IDX file", path);
        goto done;
    }
    int type = h[2], nd = h[3];
    int esize = type == 0x08 ? 1 : type == 0x0D ? 4 : type == 0x0E ? 8 : 0;
    if (!esize || nd < 1 || nd > 3 || gzread(f, h + 4, (unsigned)(4 * nd)) != 4 * nd) {
        rc = vaed_err_set(err, VAED_EINVAL, NULL, "%s: unsupported IDX header", path);
        goto done;
    }
    uint64_t items = be32(h + 4), width = 1;
    for (int i = 1; i < nd; i++)
        width *= be32(h + 4 + 4 * i);
    if (width == 0 || width > (1u << 24)) {
        rc = vaed_err_set(err, VAED_EINVAL, NULL, "%s: rows of %llu elements", path,
                          (unsigned long long)width);
        goto done;
    }
    if (nd == 3)
        *rows = (int)be32(h + 8), *cols = (int)be32(h + 12);
    long want = (long)(items < (uint64_t)n ? items : (uint64_t)n);
    size_t nraw = (size_t)want * width * (size_t)esize;
    x = malloc(((size_t)want * width + 1) * sizeof(float));
    raw = malloc(nraw + 1);
    if (!x || !raw) {
        rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory for %ld rows", want);
        goto done;
    }
    if (gzread(f, raw, (unsigned)nraw) != (int)nraw) {
        rc = vaed_err_set(err, VAED_EIO, NULL, "%s: truncated", path);
        goto done;
    }
    /* IDX stores big-endian; unsigned bytes are scaled to [0, 1] as training does. */
    for (size_t i = 0; i < (size_t)want * width; i++) {
        const unsigned char *e = raw + i * (size_t)esize;
        if (esize == 1) {
            x[i] = (float)e[0] / 255.0f;
        } else if (esize == 4) {
            uint32_t u = be32(e);
            float v;
            memcpy(&v, &u, 4);
            x[i] = v;
        } else {
            uint64_t u = (uint64_t)be32(e) << 32 | be32(e + 4);
            double v;
            memcpy(&v, &u, 8);
            x[i] = (float)v;
        }
    }
    *out = x;
    x = NULL;
    *got = (int)want;
    *D = (int)width;
done:
    free(x);
    free(raw);
    gzclose(f);
    return rc;
}
