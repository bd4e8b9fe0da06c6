/* test_safetensors.c — checkpoint → safetensors: models of several shapes are trained
 * a few steps through the engine, their checkpoint blobs converted, and the result
 * parsed back here by a small parser of its own (header length, padding, JSON, offsets
 * that tile the data section exactly). Every tensor is compared bit for bit with the
 * parameter read out of the blob by a naive loop over the engine's own layer offsets
 * (vae_model's enc/dec), W[o][i] = params[w + o·in + i] as nn.Linear holds it. The
 * names are spelled out here independently of the converter. Damaged blobs, blobs of
 * another model and bad extra metadata are refused with the reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "t.h"
#include "vae/infer.h"
#include "vae/rng.h"
#include "vae/safetensors.h"
#include "vae/spec.h"
#include "vae/train.h"

/* n rows of width dim in [0,1] with some structure (noisy prototypes). */
static vae_dataset *synthetic(long n, int dim, uint64_t seed)
{
    vae_dataset *d = xcalloc(1, sizeof *d);
    d->kind = VAE_DATA_F32;
    d->n = n;
    d->dim = dim;
    d->f32 = xmalloc(sizeof(float) * n * dim);
    vae_rng r;
    vae_rng_seed(&r, seed, 77);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < dim; j++)
            d->f32[i * dim + j] =
                (float)(((j * 4 / dim) == (int)(i % 4) ? 0.8 : 0.15) + 0.1 * vae_rng_uniform(&r));
    snprintf(d->source, sizeof d->source, "synthetic");
    return d;
}

static vae_spec base_spec(void)
{
    vae_spec s;
    vae_spec_default(&s);
    s.train.epochs = 2;
    s.train.batch_size = 16;
    s.train.seed = 99;
    s.train.threads = 1;
    s.optimizer.lr = 1e-2;
    return s;
}

/* ---- the independent reader ---------------------------------------------------- */

typedef struct rt {
    char name[64];
    long shape[2];
    int ndim;
    uint64_t begin, end;
} rt;

typedef struct reader {
    json_t *hdr;            /* whole header object */
    const uint8_t *data;    /* start of the data section */
    uint64_t data_len;
    rt t[256];
    int nt;
} reader;

static int by_begin(const void *a, const void *b)
{
    const rt *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Parse and validate the container; returns 0 when well formed (each problem is a
 * failed CHECK naming it). */
static int st_read(reader *r, const uint8_t *f, size_t len)
{
    memset(r, 0, sizeof *r);
    CHECK(len >= 8, "file of %zu bytes", len);
    if (len < 8)
        return -1;
    uint64_t N = 0;
    for (int i = 7; i >= 0; i--)
        N = N << 8 | f[i]; /* little-endian by hand, not by memcpy */
    CHECK(N % 8 == 0, "header length %llu is not a multiple of 8", (unsigned long long)N);
    CHECK(N <= len - 8, "header length %llu past the end (%zu)", (unsigned long long)N, len);
    if (N > len - 8)
        return -1;
    const char *h = (const char *)f + 8;
    CHECK(N > 0 && h[0] == '{', "header does not start with '{'");
    size_t end = N;
    while (end > 0 && h[end - 1] == ' ')
        end--;
    CHECK(end > 0 && h[end - 1] == '}', "header does not end with '}' before its spaces");
    CHECK(N - end < 8, "%zu bytes of padding, more than needed", (size_t)(N - end));
    json_error_t je;
    r->hdr = json_loadb(h, end, JSON_REJECT_DUPLICATES, &je);
    CHECK(r->hdr && json_is_object(r->hdr), "header JSON: %s", je.text);
    if (!r->hdr)
        return -1;
    r->data = f + 8 + N;
    r->data_len = len - 8 - N;
    const char *key;
    json_t *v;
    json_object_foreach(r->hdr, key, v) {
        if (!strcmp(key, "__metadata__")) {
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv)
                CHECK(json_is_string(mv), "metadata %s is not a string", mk);
            continue;
        }
        if (r->nt >= 256)
            return -1;
        rt *t = &r->t[r->nt++];
        snprintf(t->name, sizeof t->name, "%s", key);
        CHECK(!strcmp(json_string_value(json_object_get(v, "dtype")) ?: "", "F32"),
              "%s: dtype is not F32", key);
        json_t *sh = json_object_get(v, "shape"), *of = json_object_get(v, "data_offsets");
        CHECK(json_is_array(sh) && json_array_size(sh) >= 1 && json_array_size(sh) <= 2,
              "%s: shape", key);
        CHECK(json_is_array(of) && json_array_size(of) == 2, "%s: data_offsets", key);
        CHECK(json_object_size(v) == 3, "%s: %zu keys, want dtype, shape, data_offsets", key,
              json_object_size(v));
        t->ndim = (int)json_array_size(sh);
        long count = 1;
        for (int d = 0; d < t->ndim && d < 2; d++) {
            t->shape[d] = (long)json_integer_value(json_array_get(sh, (size_t)d));
            count *= t->shape[d];
        }
        t->begin = (uint64_t)json_integer_value(json_array_get(of, 0));
        t->end = (uint64_t)json_integer_value(json_array_get(of, 1));
        CHECK(t->end >= t->begin && t->end - t->begin == 4 * (uint64_t)count,
              "%s: offsets [%llu, %llu) for %ld floats", key, (unsigned long long)t->begin,
              (unsigned long long)t->end, count);
    }
    /* The offsets must tile [0, data_len) with no gap and no overlap. */
    rt sorted[256];
    memcpy(sorted, r->t, sizeof(rt) * (size_t)r->nt);
    qsort(sorted, (size_t)r->nt, sizeof(rt), by_begin);
    uint64_t at = 0;
    for (int i = 0; i < r->nt; i++) {
        CHECK(sorted[i].begin == at, "%s begins at %llu, previous ended at %llu", sorted[i].name,
              (unsigned long long)sorted[i].begin, (unsigned long long)at);
        at = sorted[i].end;
    }
    CHECK(at == r->data_len, "tensors cover %llu bytes, data section has %llu",
          (unsigned long long)at, (unsigned long long)r->data_len);
    return 0;
}

static const rt *find(const reader *r, const char *name)
{
    for (int i = 0; i < r->nt; i++)
        if (!strcmp(r->t[i].name, name))
            return &r->t[i];
    return NULL;
}

static const char *meta(const reader *r, const char *key)
{
    return json_string_value(json_object_get(json_object_get(r->hdr, "__metadata__"), key));
}

/* Tensor name must hold rows [r0, r0+rows) of W (out, in) at offset w of params and
 * exactly those: shape [rows, in], element [o][i] = params[w + (r0+o)·in + i]. With
 * in == 0 it is a bias: shape [rows], element [o] = params[w + r0 + o]. */
static int mismatches;
static void expect_tensor(const reader *r, const char *name, const float *params, long w,
                          long r0, long rows, long in)
{
    const rt *t = find(r, name);
    CHECK(t != NULL, "no tensor %s", name);
    if (!t)
        return;
    CHECK(t->ndim == (in ? 2 : 1) && t->shape[0] == rows && (!in || t->shape[1] == in),
          "%s: shape [%ld%s%ld], want [%ld, %ld]", name, t->shape[0], t->ndim == 2 ? ", " : "",
          t->ndim == 2 ? t->shape[1] : 0L, rows, in);
    if (t->ndim != (in ? 2 : 1) || t->shape[0] != rows)
        return;
    long cols = in ? in : 1, bad = 0, first = -1;
    for (long o = 0; o < rows; o++)
        for (long i = 0; i < cols; i++) {
            const uint8_t *got = r->data + t->begin + 4 * (uint64_t)(o * cols + i);
            uint32_t g = (uint32_t)got[0] | (uint32_t)got[1] << 8 | (uint32_t)got[2] << 16 |
                         (uint32_t)got[3] << 24, want;
            memcpy(&want, params + w + (r0 + o) * cols + i, 4);
            if (g != want && bad++ == 0)
                first = o * cols + i;
        }
    CHECK(bad == 0, "%s: %ld of %ld values differ (first at flat index %ld)", name, bad,
          rows * cols, first);
    mismatches += bad > 0;
}

/* ---- the cases ------------------------------------------------------------------- */

static vae_trainer *trained(const vae_spec *s, vae_dataset *train, int steps)
{
    vae_trainer *t = NULL;
    vaed_err err;
    int rc = vae_trainer_new_with_data(&t, s, train, NULL, &err);
    CHECK(rc == 0, "trainer_new: %s", err.msg);
    for (int i = 0; t && i < steps && !vae_trainer_finished(t); i++) {
        vae_metrics m;
        CHECK(vae_trainer_step(t, &m, &err) == 0, "step: %s", err.msg);
    }
    return t;
}

/* Train spec a few steps, convert its checkpoint and check everything. */
static void check_model(const char *what, const vae_spec *s, vae_dataset *train)
{
    vaed_err err;
    vae_trainer *t = trained(s, train, 5);
    if (!t)
        return;
    void *blob = NULL, *st = NULL;
    size_t blen = 0, slen = 0;
    CHECK(vae_trainer_save(t, &blob, &blen, &err) == 0, "%s: save: %s", what, err.msg);
    static const char *const extra[] = {"vaed_version", "test", "job_id", "42", NULL};
    int rc = vae_safetensors_from_ckpt(s, blob, blen, extra, &st, &slen, &err);
    CHECK(rc == 0, "%s: convert: %s", what, err.msg);
    reader r;
    if (rc || st_read(&r, st, slen)) {
        free(blob);
        free(st);
        vae_trainer_free(t);
        return;
    }
    const vae_model *m = vae_trainer_model(t);
    const float *params;
    long n;
    CHECK(vae_ckpt_params(blob, blen, &params, &n, NULL) == 0 && n == m->n_params, "%s: params", what);
    CHECK(vae_ckpt_fits(blob, blen, m), "%s: the blob does not fit its own model", what);
    CHECK(r.data_len == 4 * (uint64_t)n, "%s: data section %llu bytes for %ld parameters "
          "(weights only, no Adam moments)", what, (unsigned long long)r.data_len, n);

    /* The names, spelled out here: hidden layers at nn.Sequential's even indices. */
    char name[64];
    int expected = 0;
    mismatches = 0;
    for (int i = 0; i + 1 < m->n_enc; i++) {
        const vae_layer *l = &m->enc[i];
        snprintf(name, sizeof name, "encoder.%d.weight", 2 * i);
        expect_tensor(&r, name, params, l->w, 0, l->out, l->in);
        snprintf(name, sizeof name, "encoder.%d.bias", 2 * i);
        expect_tensor(&r, name, params, l->b, 0, l->out, 0);
        expected += 2;
    }
    const vae_layer *head = &m->enc[m->n_enc - 1];
    for (int g = 0; g < m->n_groups; g++) {
        long g0 = m->group_off[g], lg = m->group_off[g + 1] - g0;
        char sfx[16] = "";
        if (m->n_groups > 1)
            snprintf(sfx, sizeof sfx, ".%d", g);
        snprintf(name, sizeof name, "z_mean%s.weight", sfx);
        expect_tensor(&r, name, params, head->w, g0, lg, head->in);
        snprintf(name, sizeof name, "z_mean%s.bias", sfx);
        expect_tensor(&r, name, params, head->b, g0, lg, 0);
        snprintf(name, sizeof name, "z_logvar%s.weight", sfx);
        expect_tensor(&r, name, params, head->w, m->L + g0, lg, head->in);
        snprintf(name, sizeof name, "z_logvar%s.bias", sfx);
        expect_tensor(&r, name, params, head->b, m->L + g0, lg, 0);
        expected += 4;
    }
    for (int i = 0; i + 1 < m->n_dec; i++) {
        const vae_layer *l = &m->dec[i];
        snprintf(name, sizeof name, "decoder.%d.weight", 2 * i);
        expect_tensor(&r, name, params, l->w, 0, l->out, l->in);
        snprintf(name, sizeof name, "decoder.%d.bias", 2 * i);
        expect_tensor(&r, name, params, l->b, 0, l->out, 0);
        expected += 2;
    }
    const vae_layer *o = &m->dec[m->n_dec - 1];
    expect_tensor(&r, "output.weight", params, o->w, 0, o->out, o->in);
    expect_tensor(&r, "output.bias", params, o->b, 0, o->out, 0);
    expected += 2;
    CHECK(r.nt == expected, "%s: %d tensors, expected %d", what, r.nt, expected);
    CHECK(o->out == m->D && o->in == (m->n_dec > 1 ? s->model.dec[s->model.n_dec - 1] : m->L),
          "%s: output layer [%d, %d]", what, o->out, o->in);

    /* Metadata. */
    json_t *sj = vae_spec_to_json(s);
    char *stext = json_dumps(sj, JSON_COMPACT | JSON_SORT_KEYS);
    json_t *back = json_loads(meta(&r, "spec") ?: "", 0, NULL);
    CHECK(back && json_equal(back, sj), "%s: metadata spec differs: %s", what,
          meta(&r, "spec") ?: "(none)");
    vae_spec reparsed;
    CHECK(back && vae_spec_parse(&reparsed, back, &err) == 0,
          "%s: metadata spec does not parse: %s", what, err.msg);
    char buf[64];
    snprintf(buf, sizeof buf, "%ld", vae_trainer_step_index(t));
    CHECK(!strcmp(meta(&r, "step") ?: "", buf), "%s: step %s, want %s", what,
          meta(&r, "step") ?: "(none)", buf);
    snprintf(buf, sizeof buf, "%d", m->D);
    CHECK(!strcmp(meta(&r, "data_width") ?: "", buf), "%s: data_width %s, want %s", what,
          meta(&r, "data_width") ?: "(none)", buf);
    CHECK(!strcmp(meta(&r, "format") ?: "", "pt"), "%s: format", what);
    CHECK(!strcmp(meta(&r, "vaed_version") ?: "", "test"), "%s: extra vaed_version", what);
    CHECK(!strcmp(meta(&r, "job_id") ?: "", "42"), "%s: extra job_id", what);
    json_t *groups = json_loads(meta(&r, "latent_groups") ?: "", 0, NULL);
    CHECK(json_is_array(groups) && (int)json_array_size(groups) == m->n_groups,
          "%s: latent_groups %s", what, meta(&r, "latent_groups") ?: "(none)");
    for (int g = 0; groups && g < m->n_groups; g++)
        CHECK(json_integer_value(json_array_get(groups, (size_t)g)) ==
                  m->group_off[g + 1] - m->group_off[g], "%s: latent group %d size", what, g);
    const char *lik = json_string_value(json_object_get(json_object_get(sj, "model"), "likelihood"));
    CHECK(!strcmp(meta(&r, "likelihood") ?: "", lik), "%s: likelihood", what);
    CHECK(!strcmp(meta(&r, "output") ?: "",
                  s->model.likelihood == VAE_LIK_GAUSSIAN ? "mean" : "logits"), "%s: output", what);
    printf("%s: %d tensors, %ld parameters, %zu bytes, %d mismatched\n", what, r.nt, n, slen,
           mismatches);
    json_decref(groups);
    json_decref(back);
    json_decref(sj);
    free(stext);
    json_decref(r.hdr);
    free(blob);
    free(st);
    vae_trainer_free(t);
}

/* Re-seal a blob after changing it (the CRC-32 of every byte before the last four). */
static void reseal(uint8_t *b, size_t len)
{
    uint32_t c = (uint32_t)crc32(0L, b, (uInt)(len - 4));
    memcpy(b + len - 4, &c, 4);
}

static void expect_refused(const char *what, const vae_spec *s, const void *blob, size_t len,
                           const char *const *extra, int want, const char *needle)
{
    void *out = (void *)1;
    size_t olen = 99;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = vae_safetensors_from_ckpt(s, blob, len, extra, &out, &olen, &err);
    CHECK(rc == want, "%s: rc %d, want %d (%s)", what, rc, want, err.msg);
    CHECK(out == NULL && olen == 0, "%s: output not cleared on error", what);
    CHECK(strstr(err.msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err.msg,
          needle);
    free(out);
}

/* A damaged blob: the converter refuses it with exactly the reason vae_ckpt_params
 * gives (there is one checker, in ckpt.c), which must name the damage. */
static void expect_blob_refused(const char *what, const vae_spec *s, const void *blob,
                                size_t len, const char *needle)
{
    expect_refused(what, s, blob, len, NULL, VAED_EINVAL, needle);
    vaed_err want, got;
    vaed_err_clear(&want);
    vaed_err_clear(&got);
    const float *p;
    long n;
    void *out = NULL;
    size_t olen = 0;
    CHECK(vae_ckpt_params(blob, len, &p, &n, &want) == VAED_EINVAL, "%s: params accepted it",
          what);
    vae_safetensors_from_ckpt(s, blob, len, NULL, &out, &olen, &got);
    CHECK(!strcmp(got.msg, want.msg), "%s: converter says \"%s\", vae_ckpt_params \"%s\"",
          what, got.msg, want.msg);
    free(out);
}

static void check_errors(void)
{
    vae_spec s = base_spec();
    s.model.n_enc = 1, s.model.enc[0] = 8;
    s.model.n_dec = 1, s.model.dec[0] = 8;
    s.model.n_groups = 2, s.model.groups[0] = 2, s.model.groups[1] = 3;
    vae_trainer *t = trained(&s, synthetic(40, 12, 3), 2);
    if (!t)
        return;
    void *blob = NULL;
    size_t len = 0;
    vaed_err err;
    CHECK(vae_trainer_save(t, &blob, &len, &err) == 0, "save: %s", err.msg);
    uint8_t *b = blob, *copy = xmalloc(len);

    /* Damaged blobs: refused with ckpt.c's own reason, word for word. */
    expect_blob_refused("truncated by one byte", &s, b, len - 1, "truncated");
    expect_blob_refused("only 10 bytes", &s, b, 10, "too short");
    memcpy(copy, b, len);
    copy[len / 2] ^= 0x10;
    expect_blob_refused("a flipped bit", &s, copy, len, "checksum");
    memcpy(copy, b, len);
    copy[0] = 'X';
    expect_blob_refused("bad magic", &s, copy, len, "magic");
    memcpy(copy, b, len);
    copy[8] = 2; /* format version 2, re-sealed: only the version is wrong */
    reseal(copy, len);
    expect_blob_refused("another format version", &s, copy, len, "format version 2");
    memcpy(copy, b, len);
    copy[32] ^= 1; /* parameter count off by one, re-sealed */
    reseal(copy, len);
    expect_blob_refused("parameter count off by one", &s, copy, len, "section sizes");

    /* Blobs of other models: the same parameter count with the groups swapped or
     * another activation (caught by the fingerprint); another hidden size (no width
     * fits). */
    vae_spec o = s;
    o.model.groups[0] = 3, o.model.groups[1] = 2;
    expect_refused("groups swapped", &o, b, len, NULL, VAED_EINVAL, "another model");
    o = s;
    o.model.activation = VAE_ACT_TANH;
    expect_refused("other activation", &o, b, len, NULL, VAED_EINVAL, "another model");
    o = s;
    o.loss.samples = 3;
    expect_refused("other sample count", &o, b, len, NULL, VAED_EINVAL, "another model");
    o = s;
    o.model.enc[0] = 9;
    expect_refused("other hidden size", &o, b, len, NULL, VAED_EINVAL, "fit no data width");

    static const char *const dup[] = {"step", "7", NULL};
    expect_refused("extra repeats a built-in", &s, b, len, dup, VAED_EINVAL, "already set");
    static const char *const odd[] = {"lonely", NULL};
    expect_refused("extra key without value", &s, b, len, odd, VAED_EINVAL, "no value");

    /* A diverged run's parameters may be NaN or Inf: copied bit for bit, payload
     * included. The blob is re-sealed so only the values changed. */
    const float *params;
    long n;
    CHECK(vae_ckpt_params(b, len, &params, &n, NULL) == 0, "params");
    memcpy(copy, b, len);
    size_t p0 = (size_t)((const uint8_t *)params - b);
    const uint32_t nan_bits = 0x7fc01234u, inf_bits = 0xff800000u;
    memcpy(copy + p0, &nan_bits, 4);
    memcpy(copy + p0 + 4 * (size_t)(n - 1), &inf_bits, 4);
    reseal(copy, len);
    void *out = NULL;
    size_t olen = 0;
    int rc = vae_safetensors_from_ckpt(&s, copy, len, NULL, &out, &olen, &err);
    CHECK(rc == 0, "non-finite values: %s", err.msg);
    reader r;
    if (rc == 0 && st_read(&r, out, olen) == 0) {
        const rt *w0 = find(&r, "encoder.0.weight"), *ob = find(&r, "output.bias");
        uint32_t a = 0, z = 0;
        if (w0)
            memcpy(&a, r.data + w0->begin, 4);
        if (ob)
            memcpy(&z, r.data + ob->end - 4, 4);
        CHECK(a == nan_bits, "NaN payload: %08x, want %08x", a, nan_bits);
        CHECK(z == inf_bits, "-Inf: %08x, want %08x", z, inf_bits);
        json_decref(r.hdr);
    }
    free(out);
    free(copy);
    free(blob);
    vae_trainer_free(t);
}

int main(void)
{
    vaed_err err;

    /* Two encoder and one decoder hidden layers, two latent groups, tanh. */
    vae_spec a = base_spec();
    a.model.n_enc = 2, a.model.enc[0] = 12, a.model.enc[1] = 7;
    a.model.n_dec = 1, a.model.dec[0] = 9;
    a.model.n_groups = 2, a.model.groups[0] = 2, a.model.groups[1] = 3;
    a.model.activation = VAE_ACT_TANH;
    a.loss.samples = 2;
    check_model("two groups", &a, synthetic(64, 20, 1));

    /* No hidden layers at all, one group, gaussian: only heads and output. */
    vae_spec b = base_spec();
    b.model.n_enc = 0, b.model.n_dec = 0;
    b.model.n_groups = 1, b.model.groups[0] = 4;
    b.model.likelihood = VAE_LIK_GAUSSIAN;
    b.model.sigma = 0.5;
    check_model("no hidden layers, gaussian", &b, synthetic(48, 10, 2));

    /* Categorical over one-hot sequences: D = positions · vocab. */
    vae_spec c = base_spec();
    c.model.n_enc = 1, c.model.enc[0] = 6;
    c.model.n_dec = 2, c.model.dec[0] = 5, c.model.dec[1] = 7;
    c.model.n_groups = 3, c.model.groups[0] = 1, c.model.groups[1] = 2, c.model.groups[2] = 1;
    c.model.likelihood = VAE_LIK_CATEGORICAL;
    c.model.activation = VAE_ACT_ELU;
    c.loss.kl = VAE_KL_MC;
    c.dataset.name[0] = '\0'; /* so the spec in the metadata parses back: text data */
    snprintf(c.dataset.path, sizeof c.dataset.path, "seq.txt");
    c.dataset.format = VAE_FMT_TEXT;
    c.dataset.max_len = 3;
    const char *text = "abc\nbca\ncab\naab\nbbc\ncca\nab\nc\n";
    vae_dataset *seq = NULL;
    int rc = vae_parse_text(text, strlen(text), 3, VAE_LONG_REJECT, NULL, "seq.txt", &seq, &err);
    CHECK(rc == 0, "text data: %s", err.msg);
    if (rc == 0)
        check_model("categorical, three groups", &c, seq);

    check_errors();
    return t_done("test_safetensors");
}
