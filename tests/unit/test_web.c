/* test_web.c — the dashboard's server-side pieces that need no server:
 *  - api_png_gray: the PNG decodes (with libpng's own reader, the oracle) to exactly
 *    the clamped, rounded pixels, including out-of-range and NaN inputs;
 *  - vae_ckpt_params / vae_infer_model: a real trainer's blob loads the very
 *    parameters the trainer holds; a damaged blob and a blob of another model shape
 *    are refused;
 *  - vae_infer_reconstruct / vae_infer_decode: equal to a naive forward pass written
 *    here with plain loops over the parameter layout (no BLAS), sigmoid of the logits. */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "api/web.h"
#include "t.h"
#include "vae/infer.h"
#include "vae/rng.h"
#include "vae/train.h"

static void test_png(void)
{
    const int W = 37, H = 23;
    float *px = malloc(sizeof(float) * W * H);
    vae_rng r;
    vae_rng_seed(&r, 7, 1);
    for (int i = 0; i < W * H; i++)
        px[i] = (float)(vae_rng_uniform(&r) * 1.4 - 0.2);
    px[5] = NAN;
    unsigned char *png = NULL;
    size_t len = 0;
    CHECK(api_png_gray(px, W, H, &png, &len) == 0 && png && len > 8, "encode failed");
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    int ok = png && png_image_begin_read_from_memory(&im, png, len);
    CHECK(ok, "libpng cannot read it: %s", im.message);
    if (ok) {
        CHECK(im.width == (png_uint_32)W && im.height == (png_uint_32)H, "size %ux%u", im.width,
              im.height);
        im.format = PNG_FORMAT_GRAY;
        unsigned char *out = malloc((size_t)W * H);
        CHECK(png_image_finish_read(&im, NULL, out, W, NULL), "finish: %s", im.message);
        int bad = 0, first = -1;
        for (int i = 0; i < W * H; i++) {
            float v = px[i];
            int want = isnan(v) ? 0 : v <= 0 ? 0 : v >= 1 ? 255 : (int)lrintf(v * 255.0f);
            if (abs(out[i] - want) > (isnan(v) || v <= 0 || v >= 1 ? 0 : 1)) {
                bad++;
                if (first < 0)
                    first = i;
            }
        }
        CHECK(bad == 0, "%d pixels differ, first at %d: %d vs %g", bad, first,
              first >= 0 ? out[first] : 0, first >= 0 ? px[first] : 0);
        free(out);
    }
    free(png);
    free(px);
}

/* Naive forward over the model's layers: plain loops, activations as kernels.h's. */
static void naive_layer(const vae_model *m, const vae_layer *l, const float *in, float *out, int B)
{
    for (int b = 0; b < B; b++)
        for (int o = 0; o < l->out; o++) {
            double s = m->params[l->b + o];
            for (int i = 0; i < l->in; i++)
                s += (double)m->params[l->w + (long)o * l->in + i] * in[(long)b * l->in + i];
            if (l->act == VAE_ACT_RELU)
                s = s > 0 ? s : 0;
            else if (l->act == VAE_ACT_TANH)
                s = tanh(s);
            else if (l->act == VAE_ACT_ELU)
                s = s > 0 ? s : expm1(s);
            out[(long)b * l->out + o] = (float)s;
        }
}

static void naive_decode(const vae_model *m, const float *z, int B, float *out)
{
    float *a = calloc((size_t)B * 4096, sizeof(float)), *b = calloc((size_t)B * 4096, sizeof(float));
    memcpy(a, z, sizeof(float) * (size_t)B * m->L);
    for (int i = 0; i < m->n_dec; i++) {
        naive_layer(m, &m->dec[i], a, b, B);
        float *t = a;
        a = b, b = t;
    }
    for (long i = 0; i < (long)B * m->D; i++)
        out[i] = (float)(1.0 / (1.0 + exp(-(double)a[i])));
    free(a);
    free(b);
}

static void test_infer(void)
{
    const int N = 40, D = 12, B = 8;
    vae_spec s;
    vae_spec_default(&s);
    s.model.n_enc = 1, s.model.enc[0] = 10;
    s.model.n_dec = 2, s.model.dec[0] = 9, s.model.dec[1] = 7;
    s.model.n_groups = 1, s.model.groups[0] = 3;
    s.model.activation = VAE_ACT_TANH;
    s.train.batch_size = 8, s.train.epochs = 1, s.train.seed = 3;
    /* data in [0, 1] as CSV text, parsed by the real reader */
    char csv[4096];
    size_t k = 0;
    vae_rng r;
    vae_rng_seed(&r, 11, 2);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            k += (size_t)snprintf(csv + k, sizeof csv - k, "%.3f%c", vae_rng_uniform(&r),
                                  j == D - 1 ? '\n' : ',');
    vaed_err err;
    vae_dataset *tr = NULL;
    CHECK(vae_parse_csv(csv, k, 0, "t.csv", &tr, &err) == 0, "csv: %s", err.msg);
    if (!tr)
        return;
    vae_trainer *t = NULL;
    CHECK(vae_trainer_new_with_data(&t, &s, tr, NULL, &err) == 0, "trainer: %s", err.msg);
    if (!t)
        return;
    vae_metrics mm;
    for (int i = 0; i < 3; i++)
        vae_trainer_step(t, &mm, &err); /* parameters away from their initial values */
    void *blob = NULL;
    size_t len = 0;
    CHECK(vae_trainer_save(t, &blob, &len, &err) == 0, "save: %s", err.msg);
    const vae_model *tm = vae_trainer_model(t);

    vae_model *m = NULL;
    CHECK(vae_infer_model(&m, &s, D, B, blob, len, &err) == 0, "infer_model: %s", err.msg);
    if (m) {
        CHECK(m->n_params == tm->n_params &&
                  !memcmp(m->params, tm->params, sizeof(float) * (size_t)m->n_params),
              "parameters differ from the trainer's");
        /* reconstruct: x → mu (naive encoder) → naive decoder */
        float x[8 * 12], got[8 * 12], want[8 * 12], h[8 * 64], head[8 * 64];
        vae_rng_seed(&r, 5, 5);
        for (int i = 0; i < B * D; i++)
            x[i] = (float)vae_rng_uniform(&r);
        vae_infer_reconstruct(m, x, B, got);
        naive_layer(m, &m->enc[0], x, h, B);
        naive_layer(m, &m->enc[1], h, head, B);
        float z[8 * 3];
        for (int b = 0; b < B; b++)
            for (int j = 0; j < 3; j++)
                z[b * 3 + j] = head[b * 6 + j]; /* [mu | logvar]: mu */
        naive_decode(m, z, B, want);
        double md = 0;
        for (int i = 0; i < B * D; i++)
            md = fmax(md, fabs(got[i] - want[i]));
        CHECK(md < 1e-5, "reconstruction vs naive: maxdiff=%g", md);
        /* decode prior draws */
        vae_rng_normal(&r, z, B * 3);
        vae_infer_decode(m, z, B, got);
        naive_decode(m, z, B, want);
        md = 0;
        for (int i = 0; i < B * D; i++)
            md = fmax(md, fabs(got[i] - want[i]));
        CHECK(md < 1e-5, "decode vs naive: maxdiff=%g", md);
        vae_model_free(m);
        m = NULL;
    }
    /* a blob of another shape */
    vae_spec s2 = s;
    s2.model.dec[1] = 8;
    int rc = vae_infer_model(&m, &s2, D, B, blob, len, &err);
    CHECK(rc == VAED_EINVAL && !m && strstr(err.msg, "parameters"), "other shape: rc=%d %s", rc,
          err.msg);
    /* a damaged blob */
    ((unsigned char *)blob)[len / 2] ^= 1;
    const float *p;
    long n;
    CHECK(vae_ckpt_params(blob, len, &p, &n, NULL) == VAED_EINVAL, "damaged blob accepted");
    rc = vae_infer_model(&m, &s, D, B, blob, len, &err);
    CHECK(rc == VAED_EINVAL && !m, "damaged blob: rc=%d", rc);
    free(blob);
    vae_trainer_free(t);
}

int main(void)
{
    test_png();
    test_infer();
    return t_done("test_web");
}
