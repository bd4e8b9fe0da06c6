/* serving.c — see serving.h. A request finds its model in the cache (or loads it: the
 * job's spec, its checkpoint's parameters, the data width solved from their count),
 * takes that entry's lock, runs the encoder or decoder on its rows in batches of up to
 * SERVE_BATCH (each one or two GEMMs per layer), and replies.
 *
 * Limits: at most MAX_ROWS rows (or samples) per request, MAX_DRAWS posterior draws per
 * row for encode's "n"; a temperature in (0, 10]; interpolation steps in [2, 1000]. */
#include "api/serving.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/errors.h"
#include "api/routes.h"
#include "api/textbuf.h"
#include "vae/data.h"
#include "vae/infer.h"
#include "vae/rng.h"
#include "vae/spec.h"

#define SERVE_BATCH 256
#define MAX_ROWS 100000
#define MAX_DRAWS 1000

typedef struct entry {
    int64_t job, step;          /* key; job 0 = free slot */
    vae_model *m;
    vae_dataset *text;          /* categorical models: the training split, for its
                                   vocabulary (strings in and out); NULL otherwise */
    pthread_mutex_t use;        /* held while a request runs the model */
    unsigned long long last;    /* LRU clock */
    int refs;                   /* requests holding or waiting for it (under mu) */
    int own;                    /* 1: a request's private copy, never in the table; set
                                   before it is handed out and never changed, so read
                                   without mu (refs may not be: other requests write it) */
} entry;

struct api_models {
    pthread_mutex_t mu;         /* the table, refs, the clock, the counters */
    int cap;
    entry *e;
    unsigned long long clock, loads, hits;
};

api_models *api_models_new(int cap)
{
    api_models *c = xcalloc(1, sizeof *c);
    c->cap = cap < 1 ? 1 : cap;
    c->e = xcalloc((size_t)c->cap, sizeof *c->e);
    for (int i = 0; i < c->cap; i++)
        pthread_mutex_init(&c->e[i].use, NULL);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void api_models_free(api_models *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->cap; i++) {
        vae_model_free(c->e[i].m);
        vae_dataset_free(c->e[i].text);
        pthread_mutex_destroy(&c->e[i].use);
    }
    pthread_mutex_destroy(&c->mu);
    free(c->e);
    free(c);
}

void api_models_get_stats(api_models *c, api_models_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->cap; i++)
        out->loaded += c->e[i].job != 0;
    out->loads = c->loads;
    out->hits = c->hits;
    pthread_mutex_unlock(&c->mu);
}

/* ---- finding a model ------------------------------------------------------------------ */

/* The step of the checkpoint a request names: "final" (or absent) = the newest, "best",
 * or a step (jobs_checkpoint_resolve: the same rule as evaluations). */
static int which_step(api_ctx *cx, int64_t job, const json_t *ck, int64_t *step, vaed_err *err)
{
    char asked[JOBS_ASKED_LEN];
    return jobs_checkpoint_resolve(cx->J, job, ck, step, asked, err);
}

/* Load the model of job's checkpoint at step. */
static int load(api_ctx *cx, int64_t job, int64_t step, vae_model **out, vae_dataset **text,
                vaed_err *err)
{
    store_job sj = {0};
    void *blob = NULL;
    size_t len = 0;
    vae_spec spec;
    int rc = store_job_get(cx->st, job, &sj, err);
    if (rc == VAED_ENOTFOUND)
        vaed_err_set(err, rc, NULL, "no job %lld", (long long)job);
    if (rc == 0)
        rc = vae_spec_parse_text(&spec, sj.spec, strlen(sj.spec), err);
    /* a text model's width is its vocabulary's: read it as the job's worker did */
    if (rc == 0 && spec.model.likelihood == VAE_LIK_CATEGORICAL)
        rc = jobs_job_vocab(cx->J, &spec, text, err);
    if (rc == 0 && (rc = store_checkpoint_get(cx->st, job, step, NULL, &blob, &len, err)) ==
                       VAED_ENOTFOUND)
        vaed_err_set(err, rc, "checkpoint", "job %lld has no checkpoint at step %lld",
                     (long long)job, (long long)step);
    const float *p;
    long np = 0;
    if (rc == 0)
        rc = vae_ckpt_params(blob, len, &p, &np, err);
    long D = rc == 0 ? (*text ? (*text)->dim : vae_infer_width(&spec, np)) : 0;
    if (rc == 0 && (D <= 0 || D > (1L << 24)))
        rc = vaed_err_set(err, VAED_EINVAL, "checkpoint",
                          "the checkpoint's %ld parameters fit no data width of the job's model",
                          np);
    if (rc == 0)
        rc = vae_infer_model_vocab(out, &spec, (int)D, *text ? (*text)->vocab : 0, SERVE_BATCH,
                                   blob, len, err);
    if (rc) {
        vae_dataset_free(*text);
        *text = NULL;
    }
    free(blob);
    store_job_clear(&sj);
    return rc;
}

/* The cache entry of (job, step), loaded if need be, with its use lock held. */
static entry *get_model(api_ctx *cx, int64_t job, int64_t step, vaed_err *err, int *rc)
{
    api_models *c = cx->models;
    pthread_mutex_lock(&c->mu);
    entry *e = NULL;
    for (int i = 0; i < c->cap && !e; i++)
        if (c->e[i].job == job && c->e[i].step == step)
            e = &c->e[i];
    if (e) {
        c->hits++;
        e->refs++;
        e->last = ++c->clock;
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_lock(&e->use);
        return e;
    }
    pthread_mutex_unlock(&c->mu);
    vae_model *m = NULL;
    vae_dataset *text = NULL;
    if ((*rc = load(cx, job, step, &m, &text, err)))
        return NULL;
    pthread_mutex_lock(&c->mu);
    /* a slot no request holds: free first, else the least recently used */
    for (int i = 0; i < c->cap; i++)
        if (c->e[i].refs == 0 && (!e || c->e[i].job == 0 ||
                                  (e->job != 0 && c->e[i].last < e->last)))
            e = &c->e[i];
    if (!e) { /* every model is in use: serve this request from its own copy */
        pthread_mutex_unlock(&c->mu);
        entry *own = xcalloc(1, sizeof *own);
        own->m = m;
        own->text = text;
        own->refs = -1;
        own->own = 1;
        return own;
    }
    vae_model_free(e->m);
    vae_dataset_free(e->text);
    e->m = m;
    e->text = text;
    e->job = job;
    e->step = step;
    e->refs = 1;
    e->last = ++c->clock;
    c->loads++;
    pthread_mutex_lock(&e->use); /* refs was 0: nobody holds it */
    pthread_mutex_unlock(&c->mu);
    return e;
}

static void put_model(api_ctx *cx, entry *e)
{
    if (e->own) {
        vae_model_free(e->m);
        vae_dataset_free(e->text);
        free(e);
        return;
    }
    pthread_mutex_unlock(&e->use);
    pthread_mutex_lock(&cx->models->mu);
    e->refs--;
    pthread_mutex_unlock(&cx->models->mu);
}

/* ---- bodies in, replies out -------------------------------------------------------- */

/* An (n, w) float array from JSON: key's value, a list of equal lists of numbers. */
static int rows_json(const json_t *doc, const char *key, int w, float **out, long *n,
                     vaed_err *err)
{
    const json_t *a = json_object_get(doc, key);
    if (!json_is_array(a) || json_array_size(a) == 0)
        return vaed_err_set(err, VAED_EINVAL, key, "%s: a non-empty list of rows", key);
    if (json_array_size(a) > MAX_ROWS)
        return vaed_err_set(err, VAED_ETOOBIG, key, "%s: at most %d rows", key, MAX_ROWS);
    *n = (long)json_array_size(a);
    float *x = malloc(sizeof(float) * (size_t)*n * w);
    if (!x)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    for (long i = 0; i < *n; i++) {
        const json_t *r = json_array_get(a, (size_t)i);
        if (!json_is_array(r) || (long)json_array_size(r) != w) {
            free(x);
            return vaed_err_set(err, VAED_EINVAL, key,
                                "%s[%ld]: %zu values, the model takes rows of %d", key, i,
                                json_is_array(r) ? json_array_size(r) : 0, w);
        }
        for (int j = 0; j < w; j++) {
            const json_t *v = json_array_get(r, (size_t)j);
            double d = json_number_value(v);
            if (!json_is_number(v) || !isfinite(d) || fabs(d) > 1e30) {
                free(x);
                return vaed_err_set(err, VAED_EINVAL, key, "%s[%ld][%d]: a finite number", key,
                                    i, j);
            }
            x[i * w + j] = (float)d;
        }
    }
    *out = x;
    return 0;
}

/* A text model's rows from JSON strings: key's value, a list of strings, each one line
 * of the model's symbols, made one-hot through the training vocabulary (a symbol it
 * does not have, or a line longer than its max_len, is 422 naming the row). */
static int rows_text(const json_t *doc, const char *key, const vae_dataset *voc, float **out,
                     long *n, vaed_err *err)
{
    const json_t *a = json_object_get(doc, key);
    const long cnt = (long)json_array_size(a);
    if (cnt > MAX_ROWS)
        return vaed_err_set(err, VAED_ETOOBIG, key, "%s: at most %d rows", key, MAX_ROWS);
    size_t total = 0;
    for (long i = 0; i < cnt; i++) {
        const char *t = json_string_value(json_array_get(a, (size_t)i));
        if (!t || !t[0] || strpbrk(t, "\r\n"))
            return vaed_err_set(err, VAED_EINVAL, key,
                                "%s[%ld]: a non-empty string of the model's symbols, one line",
                                key, i);
        total += strlen(t) + 1;
    }
    char *buf = malloc(total + 1);
    long *idx = malloc(sizeof(long) * SERVE_BATCH);
    float *x = malloc(sizeof(float) * (size_t)cnt * (size_t)voc->dim + 1);
    vae_dataset *d = NULL;
    int rc = 0;
    if (!buf || !idx || !x) {
        rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
        goto out;
    }
    size_t at = 0;
    for (long i = 0; i < cnt; i++) {
        const char *t = json_string_value(json_array_get(a, (size_t)i));
        size_t l = strlen(t);
        memcpy(buf + at, t, l);
        buf[at + l] = '\n';
        at += l + 1;
    }
    if ((rc = vae_parse_text(buf, total, 0, VAE_LONG_REJECT, voc, key, &d, err))) {
        /* its message names the line: line i + 1 is row i */
        rc = vaed_err_set(err, VAED_EINVAL, key, "%s (line N is %s[N-1])", err->msg, key);
        goto out;
    }
    if (d->n != cnt || d->dim != voc->dim) {
        rc = vaed_err_set(err, VAED_EINVAL, key, "%s: %ld strings became %ld rows", key, cnt,
                          d->n);
        goto out;
    }
    for (long i = 0; i < cnt; i += SERVE_BATCH) {
        const int b = (int)(cnt - i < SERVE_BATCH ? cnt - i : SERVE_BATCH);
        for (int r = 0; r < b; r++)
            idx[r] = i + r;
        vae_batch_fill(d, idx, b, x + i * voc->dim);
    }
    *out = x;
    *n = cnt;
    x = NULL;
out:
    vae_dataset_free(d);
    free(x);
    free(idx);
    free(buf);
    return rc;
}

/* "strings":[...] after a comma: each row of category probabilities (positions × V)
 * read as its most likely symbol per position, up to the first padding symbol. */
static void tb_strings(textbuf *b, const vae_dataset *voc, const float *p, long n)
{
    const int V = voc->vocab, T = voc->max_len;
    tb_put(b, ",\"strings\":[");
    for (long i = 0; i < n; i++) {
        textbuf one = {0};
        for (int t = 0; t < T; t++) {
            const float *q = p + (i * T + t) * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                best = q[v] > q[best] ? v : best;
            if (best == 0) /* padding: the sequence has ended */
                break;
            tb_put(&one, voc->symbols[best]);
        }
        b->oom |= one.oom;
        json_t *js = json_stringn(one.p ? one.p : "", one.len);
        char *enc = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        tb_put(b, i ? "," : "");
        tb_put(b, enc ? enc : "null");
        if (!enc)
            b->oom = 1;
        free(enc);
        json_decref(js);
        free(one.p);
    }
    tb_put(b, "]");
}

/* The same from an .npy body: 2-D, float32 or float64, w columns. */
static int rows_npy(api_req *req, const char *key, int w, float **out, long *n, vaed_err *err)
{
    size_t len;
    const char *body = api_req_body(req, &len);
    vae_dataset *d = NULL;
    int rc = vae_parse_npy(body, len, "body", &d, err);
    if (rc)
        return vaed_err_set(err, VAED_EINVAL, key, "%s: %s", key, err->msg);
    if (d->kind != VAE_DATA_F32 || d->dim != w || d->n < 1 || d->n > MAX_ROWS) {
        rc = vaed_err_set(err, VAED_EINVAL, key,
                          "%s: a 2-D float array of 1 to %d rows of %d columns (got %ld x %ld%s)",
                          key, MAX_ROWS, w, d->n, d->dim,
                          d->kind != VAE_DATA_F32 ? ", not floats" : "");
        vae_dataset_free(d);
        return rc;
    }
    *n = d->n;
    *out = d->f32;
    d->f32 = NULL;
    vae_dataset_free(d);
    return 0;
}

static int is_npy(const char *content_type)
{
    return content_type && !strncmp(content_type, "application/x-npy", 17);
}

/* "key":[[...],...] of an (n, w) float array, after a comma. Written by hand rather than
 * through json_real and json_dumps: a decode reply holds D values per row, and glibc's
 * "%.17g" of each (what jansson calls) was most of a batch's time; tb_num prints the same
 * text (api/textbuf.h) several times faster. */
static void tb_rows(textbuf *b, const char *key, const float *x, long n, int w)
{
    tb_put(b, ",\"");
    tb_put(b, key);
    tb_put(b, "\":[");
    for (long i = 0; i < n; i++) {
        tb_put(b, i ? ",[" : "[");
        for (int j = 0; j < w; j++) {
            if (j)
                tb_put(b, ",");
            tb_num(b, x[i * w + j]);
        }
        tb_put(b, "]");
    }
    tb_put(b, "]");
}

/* Reply an (n, w) float32 array as .npy, format version 1.0. */
static void reply_npy(api_req *req, const float *x, long n, int w)
{
    char hdr[128];
    int h = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %d), }",
                     n, w);
    int total = 10 + h + 1, pad = (64 - total % 64) % 64;
    size_t hl = (size_t)h + (size_t)pad + 1, len = 10 + hl + sizeof(float) * (size_t)n * w;
    char *b = malloc(len);
    if (!b) {
        api_reply_error(req, 503, "busy", NULL, "out of memory");
        return;
    }
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (char)(hl & 0xff);
    b[9] = (char)(hl >> 8);
    memcpy(b + 10, hdr, (size_t)h);
    memset(b + 10 + h, ' ', (size_t)pad);
    b[10 + h + pad] = '\n';
    memcpy(b + 10 + hl, x, sizeof(float) * (size_t)n * w); /* little-endian hosts only */
    api_reply_text(req, 200, "application/x-npy", b, len);
    free(b);
}

static int wants_npy(api_req *req)
{
    const char *a = api_header(req, "Accept");
    return a && strstr(a, "application/x-npy");
}

/* ---- the routes ----------------------------------------------------------------------- */


enum op { OP_ENCODE, OP_DECODE, OP_RECONSTRUCT, OP_SAMPLE, OP_INTERPOLATE };

/* An integer field of doc in [lo, hi], or def when absent. */
static int int_field(const json_t *doc, const char *key, long lo, long hi, long def, long *out,
                     vaed_err *err)
{
    const json_t *v = json_object_get(doc, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return vaed_err_set(err, VAED_EINVAL, key, "%s: an integer from %ld to %ld", key, lo, hi);
    *out = (long)json_integer_value(v);
    return 0;
}

static const char *const known_keys[] = {"rows", "z", "checkpoint", "n", "seed", "temperature",
                                         "steps", NULL};

static void serve(api_req *req, enum op op)
{
    api_ctx *cx = api_req_user(req);
    const int64_t job = api_param_int(req, "id");
    vaed_err err;
    vaed_err_clear(&err);
    json_t *doc = NULL;
    textbuf tb = {0};
    float *x = NULL, *y = NULL, *mu = NULL, *lv = NULL, *z = NULL;
    entry *e = NULL;
    int rc = 0;
    const int npy_in = is_npy(api_header(req, "Content-Type"));
    if (npy_in) {
        /* the array is the body; the other fields come from the query */
        doc = json_object();
        const char *ck = api_query_get(req, "checkpoint");
        if (ck) {
            char *end;
            long long v = strtoll(ck, &end, 10);
            json_object_set_new(doc, "checkpoint",
                                *end || !*ck ? json_string(ck) : json_integer(v));
        }
    } else if (api_body_json(req, &doc)) {
        return;
    }
    if (!json_is_object(doc)) {
        rc = vaed_err_set(&err, VAED_EINVAL, NULL, "the body must be a JSON object");
        goto fail;
    }
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v) {
        int ok = 0;
        for (int i = 0; known_keys[i] && !ok; i++)
            ok = !strcmp(k, known_keys[i]);
        if (!ok) {
            rc = vaed_err_set(&err, VAED_EINVAL, k, "%s: not a field of this request", k);
            goto fail;
        }
    }
    int64_t step = 0;
    if ((rc = which_step(cx, job, json_object_get(doc, "checkpoint"), &step, &err)))
        goto fail;
    if (!(e = get_model(cx, job, step, &err, &rc)))
        goto fail;
    vae_model *m = e->m;
    const int D = m->D, L = m->L;
    long n = 0, draws = 0, seed = 0, steps = 0;
    double temp = 1.0;
    const char *key = op == OP_DECODE ? "z" : "rows";
    int width = op == OP_DECODE ? L : D;
    if (op == OP_SAMPLE) {
        const json_t *t = json_object_get(doc, "temperature");
        if (t && (!json_is_number(t) || !(json_number_value(t) > 0) || json_number_value(t) > 10)) {
            rc = vaed_err_set(&err, VAED_EINVAL, "temperature", "temperature: a number in (0, 10]");
            goto fail;
        }
        temp = t ? json_number_value(t) : 1.0;
        if ((rc = int_field(doc, "n", 1, MAX_ROWS, 16, &n, &err)) ||
            (rc = int_field(doc, "seed", 0, (1L << 53), 0, &seed, &err)))
            goto fail;
    } else {
        const int strings = e->text && op != OP_DECODE &&
                            json_is_string(json_array_get(json_object_get(doc, key), 0));
        rc = npy_in    ? rows_npy(req, key, width, &x, &n, &err)
             : strings ? rows_text(doc, key, e->text, &x, &n, &err)
                       : rows_json(doc, key, width, &x, &n, &err);
        if (rc)
            goto fail;
    }
    if (op == OP_ENCODE && ((rc = int_field(doc, "n", 0, MAX_DRAWS, 0, &draws, &err)) ||
                            (rc = int_field(doc, "seed", 0, (1L << 53), 0, &seed, &err))))
        goto fail;
    if (op == OP_ENCODE && draws * n > MAX_ROWS) {
        rc = vaed_err_set(&err, VAED_ETOOBIG, "n", "n: rows times draws at most %d", MAX_ROWS);
        goto fail;
    }
    if (op == OP_INTERPOLATE) {
        if (n != 2) {
            rc = vaed_err_set(&err, VAED_EINVAL, "rows", "rows: exactly two rows to go between");
            goto fail;
        }
        if ((rc = int_field(doc, "steps", 2, 1000, 8, &steps, &err)))
            goto fail;
    }
    const long nz = op == OP_SAMPLE ? n : op == OP_INTERPOLATE ? steps : n;
    mu = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1) * L);
    lv = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1) * L);
    z = malloc(sizeof(float) * (size_t)(nz + (op == OP_ENCODE ? n * draws : 0)) * L + 1);
    y = malloc(sizeof(float) * (size_t)nz * D + 1);
    if (!mu || !lv || !z || !y) {
        rc = vaed_err_set(&err, VAED_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    /* the encoder, in batches */
    if (op == OP_ENCODE || op == OP_RECONSTRUCT || op == OP_INTERPOLATE)
        for (long i = 0; i < n; i += SERVE_BATCH) {
            int b = (int)(n - i < SERVE_BATCH ? n - i : SERVE_BATCH);
            vae_infer_encode(m, x + i * D, b, mu + i * L, lv + i * L);
        }
    vae_rng g;
    vae_rng_seed(&g, (uint64_t)seed, op == OP_SAMPLE ? 0x73616d70 : 0x656e63); /* "samp", "enc" */
    switch (op) {
    case OP_ENCODE: /* z = mu + sigma · eps, draws per row, row after row */
        vae_rng_normal(&g, z, n * draws * L);
        for (long i = 0; i < n; i++)
            for (long s = 0; s < draws; s++)
                for (int j = 0; j < L; j++) {
                    float *zz = &z[(i * draws + s) * L + j];
                    *zz = mu[i * L + j] + expf(0.5f * lv[i * L + j]) * *zz;
                }
        break;
    case OP_DECODE:
        memcpy(z, x, sizeof(float) * (size_t)n * L);
        break;
    case OP_RECONSTRUCT: /* through the posterior mean */
        memcpy(z, mu, sizeof(float) * (size_t)n * L);
        break;
    case OP_SAMPLE: /* z ~ N(0, temperature² I) */
        vae_rng_normal(&g, z, n * L);
        for (long i = 0; i < n * L; i++)
            z[i] = (float)(temp * z[i]);
        break;
    case OP_INTERPOLATE: /* the posterior means, and the straight line between them */
        for (long t = 0; t < steps; t++) {
            double a = (double)t / (double)(steps - 1);
            for (int j = 0; j < L; j++)
                z[t * L + j] = (float)((1.0 - a) * mu[j] + a * mu[L + j]);
        }
        break;
    }
    if (op != OP_ENCODE)
        for (long i = 0; i < nz; i += SERVE_BATCH) {
            int b = (int)(nz - i < SERVE_BATCH ? nz - i : SERVE_BATCH);
            vae_infer_lik_params(m, z + i * L, b, y + i * D);
        }
    if (wants_npy(req)) {
        if (op == OP_ENCODE) { /* [mu | logvar] per row, as the encoder's head */
            float *h = malloc(sizeof(float) * (size_t)n * 2 * L);
            if (!h) {
                rc = vaed_err_set(&err, VAED_ENOMEM, NULL, "out of memory");
                goto fail;
            }
            for (long i = 0; i < n; i++) {
                memcpy(h + i * 2 * L, mu + i * L, sizeof(float) * (size_t)L);
                memcpy(h + i * 2 * L + L, lv + i * L, sizeof(float) * (size_t)L);
            }
            reply_npy(req, h, n, 2 * L);
            free(h);
        } else {
            reply_npy(req, y, nz, D);
        }
        goto done;
    }
    tb_printf(&tb, "{\"checkpoint\":%lld,\"likelihood\":\"%s\"", (long long)step,
              m->lik == VAE_LIK_BERNOULLI     ? "bernoulli"
              : m->lik == VAE_LIK_CATEGORICAL ? "categorical"
                                              : "gaussian");
    if (m->lik == VAE_LIK_GAUSSIAN) {
        tb_put(&tb, ",\"variance\":");
        tb_num(&tb, m->sigma * m->sigma);
    }
    if (op == OP_ENCODE) {
        tb_rows(&tb, "mu", mu, n, L);
        tb_rows(&tb, "logvar", lv, n, L);
        if (draws > 0)
            tb_rows(&tb, "z", z, n * draws, L);
    } else {
        if (op == OP_SAMPLE || op == OP_INTERPOLATE)
            tb_rows(&tb, "z", z, nz, L);
        tb_rows(&tb, "params", y, nz, D);
        if (e->text)
            tb_strings(&tb, e->text, y, nz);
    }
    tb_put(&tb, "}\n"); /* the newline as api_reply_json ends a reply */
    if (tb.oom) {
        rc = vaed_err_set(&err, VAED_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    api_reply_text(req, 200, "application/json", tb.p, tb.len);
    goto done;
fail:
    api_reply_vaed(req, rc, &err);
done:
    if (e)
        put_model(cx, e);
    json_decref(doc);
    free(tb.p);
    free(x);
    free(y);
    free(mu);
    free(lv);
    free(z);
}

static void h_encode(api_req *req) { serve(req, OP_ENCODE); }
static void h_decode(api_req *req) { serve(req, OP_DECODE); }
static void h_reconstruct(api_req *req) { serve(req, OP_RECONSTRUCT); }
static void h_sample(api_req *req) { serve(req, OP_SAMPLE); }
static void h_interpolate(api_req *req) { serve(req, OP_INTERPOLATE); }

static const api_route routes[] = {
    {"POST", "/v1/jobs/{id}/encode", h_encode, API_SCOPE_READ},
    {"POST", "/v1/jobs/{id}/decode", h_decode, API_SCOPE_READ},
    {"POST", "/v1/jobs/{id}/reconstruct", h_reconstruct, API_SCOPE_READ},
    {"POST", "/v1/jobs/{id}/sample", h_sample, API_SCOPE_READ},
    {"POST", "/v1/jobs/{id}/interpolate", h_interpolate, API_SCOPE_READ},
};

const api_route *api_serving_routes(size_t *n)
{
    *n = sizeof routes / sizeof *routes;
    return routes;
}
