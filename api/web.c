/* web.c — the dashboard page and what it needs from the server.
 *
 * The page (web/index.html, web/app.js, web/access.js, web/style.css) is compiled into
 * the binary with the assembler's .incbin, as api/openapi.c does for its JSON: the
 * daemon needs no files of its own at run time, and the Makefile makes this object
 * depend on the files under web/ (the compiler's -MMD does not see .incbin). Paths
 * are relative to the repository root, where make runs.
 *
 * The charting library is not copied into the repository: Debian's libjs-dygraphs is
 * served from its install path (a documented Debian data path), so the page works
 * offline and a security update of the package reaches it.
 *
 * The image routes rebuild the job's model from its spec (vae/infer.h), load the
 * newest checkpoint's parameters and encode PNG grids with libpng. They read only the
 * 8 rows they show, never the training data. */
#include "api/web.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/errors.h"
#include "api/routes.h"
#include "vae/infer.h"
#include "vae/rng.h"
#include "vae/spec.h"

#define EMBED(sym, file)                                                                   \
    __asm__(".pushsection .rodata\n"                                                       \
            ".balign 16\n"                                                                 \
            ".globl " #sym "_start\n"                                                      \
            ".hidden " #sym "_start\n" #sym "_start:\n"                                    \
            ".incbin \"" file "\"\n"                                                       \
            ".globl " #sym "_end\n"                                                        \
            ".hidden " #sym "_end\n" #sym "_end:\n"                                        \
            ".byte 0\n"                                                                    \
            ".popsection\n");                                                              \
    extern const char sym##_start[] __attribute__((visibility("hidden")));                 \
    extern const char sym##_end[] __attribute__((visibility("hidden")))

EMBED(vaed_web_index, "web/index.html");
EMBED(vaed_web_app, "web/app.js");
EMBED(vaed_web_access, "web/access.js");
EMBED(vaed_web_style, "web/style.css");
EMBED(vaed_web_sweeps, "web/sweeps.js");

typedef struct asset {
    const char *name, *type;
    const char *start, *end;
} asset;

static const asset assets[] = {
    {"index.html", "text/html; charset=utf-8", vaed_web_index_start, vaed_web_index_end},
    {"app.js", "text/javascript; charset=utf-8", vaed_web_app_start, vaed_web_app_end},
    {"access.js", "text/javascript; charset=utf-8", vaed_web_access_start, vaed_web_access_end},
    {"style.css", "text/css; charset=utf-8", vaed_web_style_start, vaed_web_style_end},
    {"sweeps.js", "text/javascript; charset=utf-8", vaed_web_sweeps_start, vaed_web_sweeps_end},
};

static void reply_asset(api_req *req, const asset *a)
{
    /* no-cache: the browser revalidates, so a new binary's page is never mixed with
     * an old cached script. */
    api_set_header(req, "Cache-Control", "no-cache");
    api_reply_text(req, 200, a->type, a->start, (size_t)(a->end - a->start));
}

void api_h_web_index(api_req *req)
{
    reply_asset(req, &assets[0]);
}

void api_h_web_asset(api_req *req)
{
    const char *name = api_param(req, "name");
    for (size_t i = 1; i < sizeof assets / sizeof *assets; i++)
        if (!strcmp(name, assets[i].name)) {
            reply_asset(req, &assets[i]);
            return;
        }
    api_reply_error(req, 404, "not_found", NULL, "no such resource: %s", api_req_path(req));
}

/* ---- dygraphs from the Debian package ---------------------------------------------- */

#define DYGRAPHS_DIR "/usr/share/javascript/dygraphs"

static const struct {
    const char *name, *file, *type;
} statics[] = {
    {"dygraph.min.js", "dygraph.min.js", "text/javascript; charset=utf-8"},
    {"dygraph.min.css", "dygraph.min.css", "text/css; charset=utf-8"},
    {"synchronizer.js", "extras/synchronizer.js", "text/javascript; charset=utf-8"},
};

/* Read a whole file of at most max bytes. Returns 0 and *buf (malloc'd) and *len, or
 * VAED_EIO / VAED_ETOOBIG / VAED_ENOMEM. */
static int read_file(const char *path, size_t max, char **buf, size_t *len)
{
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return VAED_EIO;
    int rc = 0;
    char *b = NULL;
    if (fseek(f, 0, SEEK_END) || ftell(f) < 0) {
        rc = VAED_EIO;
        goto done;
    }
    size_t n = (size_t)ftell(f);
    if (n > max) {
        rc = VAED_ETOOBIG;
        goto done;
    }
    rewind(f);
    b = malloc(n + 1);
    if (!b) {
        rc = VAED_ENOMEM;
        goto done;
    }
    if (fread(b, 1, n, f) != n) {
        rc = VAED_EIO;
        goto done;
    }
    *buf = b;
    *len = n;
    b = NULL;
done:
    free(b);
    fclose(f);
    return rc;
}

void api_h_web_static(api_req *req)
{
    const char *name = api_param(req, "name");
    for (size_t i = 0; i < sizeof statics / sizeof *statics; i++) {
        if (strcmp(name, statics[i].name))
            continue;
        const char *dir = getenv("VAED_DYGRAPHS_DIR");
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir && dir[0] ? dir : DYGRAPHS_DIR, statics[i].file);
        char *buf;
        size_t len;
        int rc = read_file(path, 8u << 20, &buf, &len);
        if (rc) {
            api_reply_error(req, 503, "unavailable", NULL,
                            "%s: cannot be read (install the Debian package libjs-dygraphs, or "
                            "set VAED_DYGRAPHS_DIR)", path);
            return;
        }
        api_set_header(req, "Cache-Control", "max-age=3600");
        api_reply_text(req, 200, statics[i].type, buf, len);
        free(buf);
        return;
    }
    api_reply_error(req, 404, "not_found", NULL, "no such resource: %s", api_req_path(req));
}

/* ---- PNG -------------------------------------------------------------------------- */

typedef struct membuf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} membuf;

static void png_mem_write(png_structp png, png_bytep data, png_size_t n)
{
    membuf *m = png_get_io_ptr(png);
    if (m->oom)
        return;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n)
            cap *= 2;
        unsigned char *q = realloc(m->p, cap);
        if (!q) {
            m->oom = 1;
            return;
        }
        m->p = q, m->cap = cap;
    }
    memcpy(m->p + m->len, data, n);
    m->len += n;
}

static void png_mem_flush(png_structp png) { (void)png; }

int api_png_gray(const float *px, int w, int h, unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    /* Locals that live across setjmp are volatile or set before it and not changed. */
    membuf m = {0};
    unsigned char *volatile row = malloc((size_t)w);
    if (!row)
        return VAED_ENOMEM;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        free(row);
        return VAED_ENOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(row);
        free(m.p);
        return VAED_EIO;
    }
    png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            float v = px[(size_t)y * (size_t)w + (size_t)x];
            v = v != v ? 0.0f : v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            row[x] = (unsigned char)(v * 255.0f + 0.5f);
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    if (m.oom) {
        free(m.p);
        return VAED_ENOMEM;
    }
    *out = m.p;
    *len = m.len;
    return 0;
}

/* ---- images of a job ---------------------------------------------------------------- */

#define GRID_N 8     /* images per row */
#define GAP 2        /* pixels between cells */
#define SAMPLE_SEED 20160601u


/* Copy nimg images of r × c into a grid row `gr` of a (W × H) canvas. */
static void blit(float *canvas, int W, int gr, const float *img, int nimg, int r, int c)
{
    for (int i = 0; i < nimg; i++)
        for (int y = 0; y < r; y++)
            for (int x = 0; x < c; x++)
                canvas[(size_t)(GAP + gr * (r + GAP) + y) * (size_t)W + (size_t)(GAP + i * (c + GAP) + x)] =
                    img[(size_t)i * (size_t)r * (size_t)c + (size_t)y * (size_t)c + (size_t)x];
}

static void job_images(api_req *req, int samples)
{
    static const char *const allowed[] = {"step", NULL};
    if (api_query_only(req, allowed))
        return;
    api_ctx *cx = api_req_user(req);
    int64_t id = api_param_int(req, "id"), step = -1;
    const char *qs = api_query_get(req, "step");
    if (qs) {
        char *end;
        long long v = strtoll(qs, &end, 10);
        if (!*qs || *end || v < 0) {
            api_reply_error(req, 400, "bad_param", "step", "step: must be a non-negative integer");
            return;
        }
        step = v;
    }
    vaed_err err;
    vaed_err_clear(&err);
    store_job sj = {0};
    vae_spec spec;
    vae_model *m = NULL;
    void *blob = NULL;
    size_t blen = 0;
    float *x = NULL, *y = NULL, *canvas = NULL, *z = NULL;
    unsigned char *png = NULL;
    size_t plen = 0;
    int rc = store_job_get(cx->st, id, &sj, &err);
    if (rc) {
        if (rc == VAED_ENOTFOUND)
            vaed_err_set(&err, rc, NULL, "no job %lld", (long long)id);
        goto fail;
    }
    if ((rc = vae_spec_parse_text(&spec, sj.spec, strlen(sj.spec), &err)))
        goto fail;
    if (spec.model.likelihood == VAE_LIK_CATEGORICAL) {
        rc = vaed_err_set(&err, VAED_EINVAL, "model.likelihood",
                          "model.likelihood: images need image data, this job's is text");
        goto fail;
    }
    int got, D, r, c, test;
    if ((rc = vae_infer_read_rows(&spec.dataset, GRID_N, &x, &got, &D, &r, &c, &test, &err)))
        goto fail;
    if (r <= 0 || c <= 0 || r * c != D || got < 1) {
        rc = vaed_err_set(&err, VAED_EINVAL, "dataset", "dataset: not images (IDX 3-D data)");
        goto fail;
    }
    store_ckpt meta;
    rc = store_checkpoint_get(cx->st, id, step, &meta, &blob, &blen, &err);
    if (rc) {
        if (rc == VAED_ENOTFOUND)
            vaed_err_set(&err, rc, NULL, step < 0 ? "job %lld has no checkpoint yet"
                                                  : "job %lld has no checkpoint at step %lld",
                         (long long)id, (long long)step);
        goto fail;
    }
    if ((rc = vae_infer_model(&m, &spec, D, GRID_N, blob, blen, &err)))
        goto fail;
    int rows = samples ? 1 : 2, n = samples ? GRID_N : got;
    int W = GAP + GRID_N * (c + GAP), H = GAP + rows * (r + GAP);
    y = malloc((size_t)GRID_N * (size_t)D * sizeof *y);
    canvas = malloc((size_t)W * (size_t)H * sizeof *canvas);
    z = malloc((size_t)GRID_N * (size_t)m->L * sizeof *z);
    if (!y || !canvas || !z) {
        rc = vaed_err_set(&err, VAED_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < (size_t)W * (size_t)H; i++)
        canvas[i] = 0.5f;
    if (samples) {
        /* A fixed seed: the same z every time, so successive checkpoints show how the
         * decoder's picture of the same points changes. */
        vae_rng g;
        vae_rng_seed(&g, SAMPLE_SEED, 0);
        vae_rng_normal(&g, z, (long)GRID_N * m->L);
        vae_infer_decode(m, z, GRID_N, y);
        blit(canvas, W, 0, y, n, r, c);
    } else {
        vae_infer_reconstruct(m, x, got, y);
        blit(canvas, W, 0, x, n, r, c);
        blit(canvas, W, 1, y, n, r, c);
    }
    if ((rc = api_png_gray(canvas, W, H, &png, &plen))) {
        vaed_err_set(&err, rc, NULL, "could not encode the PNG");
        goto fail;
    }
    api_set_header(req, "Cache-Control", "no-cache");
    api_set_header(req, "X-Vaed-Rows", test ? "test" : "train");
    char stepbuf[24];
    snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)meta.step);
    api_set_header(req, "X-Vaed-Step", stepbuf);
    api_reply_text(req, 200, "image/png", (const char *)png, plen);
    goto done;
fail:
    api_reply_vaed(req, rc, &err);
done:
    free(png);
    free(z);
    free(canvas);
    free(y);
    free(x);
    free(blob);
    vae_model_free(m);
    store_job_clear(&sj);
}

void api_h_web_recon(api_req *req) { job_images(req, 0); }
void api_h_web_samples(api_req *req) { job_images(req, 1); }
