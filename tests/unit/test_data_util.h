/* test_data_util.h — what test_data.c (the format readers) and test_data_load.c (the
 * dataset object, vae_data_load, real data) share: includes, file writers in a scratch
 * directory, IDX and NPY builders, expect_err, the batch-fill oracle. Each program uses
 * a part of them, hence the pragmas. */
#ifndef VAED_TESTS_TEST_DATA_UTIL_H
#define VAED_TESTS_TEST_DATA_UTIL_H

#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#include "vae/data.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "t.h"

static char tmpdir[256];
static char *made[64];
static int n_made;

/* A path in the temp dir; remembered for cleanup. */
static const char *tpath(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    for (int i = 0; i < n_made; i++)
        if (!strcmp(made[i], p))
            return made[i];
    made[n_made] = strdup(p);
    return made[n_made++];
}

static const char *write_file(const char *name, const void *buf, size_t len)
{
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(2);
    }
    fclose(f);
    return p;
}

static const char *write_str(const char *name, const char *s)
{
    return write_file(name, s, strlen(s));
}

static const char *write_gz(const char *name, const void *buf, size_t len)
{
    const char *p = tpath(name);
    gzFile g = gzopen(p, "wb");
    if (!g || gzwrite(g, buf, (unsigned)len) != (int)len) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(2);
    }
    gzclose(g);
    return p;
}

static unsigned char *file_bytes(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    *len = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len + 1);
    if (fread(b, 1, *len, f) != *len)
        *len = 0;
    fclose(f);
    return b;
}

/* Check an error: code, and that msg contains each of the given substrings. */
static void expect_err(const char *what, int rc, int code, const vaed_err *e, const char *s1,
                       const char *s2, const char *s3)
{
    CHECK(rc == code, "%s: rc %d, expected %d (msg: %s)", what, rc, code, e->msg);
    const char *subs[3] = {s1, s2, s3};
    for (int i = 0; i < 3; i++)
        if (subs[i])
            CHECK(strstr(e->msg, subs[i]) != NULL, "%s: message \"%s\" lacks \"%s\"", what,
                  e->msg, subs[i]);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* An IDX file: header for type/dims, then data bytes as given. */
static unsigned char *make_idx(int type, int nd, const uint32_t *dims, const void *data,
                               size_t dlen, size_t *len)
{
    *len = 4 + 4 * (size_t)nd + dlen;
    unsigned char *b = malloc(*len);
    b[0] = b[1] = 0;
    b[2] = (unsigned char)type;
    b[3] = (unsigned char)nd;
    for (int i = 0; i < nd; i++)
        put_be32(b + 4 + 4 * i, dims[i]);
    memcpy(b + 4 + 4 * nd, data, dlen);
    return b;
}

/* A .npy file the way numpy writes it: header padded with spaces to a multiple of 64
 * and ended by '\n'. shape is the Python tuple text, e.g. "(3, 4)". */
static unsigned char *make_npy(int major, const char *descr, const char *fortran,
                               const char *shape, const void *data, size_t dlen, size_t *len)
{
    char h[512];
    int hl = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr,
                      fortran, shape);
    size_t pre = major == 1 ? 10 : 12;
    while ((pre + (size_t)hl + 1) % 64)
        h[hl++] = ' ';
    h[hl++] = '\n';
    *len = pre + (size_t)hl + dlen;
    unsigned char *b = malloc(*len);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    b[8] = (unsigned char)(hl & 0xFF);
    b[9] = (unsigned char)(hl >> 8);
    if (major != 1)
        b[10] = b[11] = 0;
    memcpy(b + pre, h, (size_t)hl);
    memcpy(b + pre + hl, data, dlen);
    return b;
}

/* ---------- IDX ---------- */


/* ---------- NPY ---------- */

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}


/* ---------- CSV ---------- */


/* ---------- text ---------- */

static int index_of(const char *const *list, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return i;
    return -1;
}

/* Check d's rows against expected rows given as lists of single-character strings,
 * through an expected vocabulary listed by hand in code-point order. */
static void check_seq(const char *what, const vae_dataset *d, const char *const *vocab, int nv,
                      const char *const rows[][8], int nrows, int max_len)
{
    CHECK(d->kind == VAE_DATA_SEQ && d->n == nrows && d->max_len == max_len && d->vocab == nv &&
              d->dim == (long)max_len * nv,
          "%s: kind %d n %ld (want %d) max_len %d (want %d) vocab %d (want %d) dim %ld", what,
          d->kind, d->n, nrows, d->max_len, max_len, d->vocab, nv, d->dim);
    if (d->vocab != nv || d->n != nrows || d->max_len != max_len)
        return;
    for (int i = 0; i < nv; i++)
        CHECK(!strcmp(d->symbols[i], vocab[i]), "%s: symbol %d is '%s', want '%s'", what, i,
              d->symbols[i], vocab[i]);
    for (int r = 0; r < nrows; r++)
        for (int p = 0; p < max_len; p++) {
            int want = rows[r][p] ? index_of(vocab, nv, rows[r][p]) : 0;
            CHECK(d->seq[r * max_len + p] == want, "%s: row %d pos %d id %d, want %d ('%s')", what,
                  r, p, d->seq[r * max_len + p], want, rows[r][p] ? rows[r][p] : "");
        }
}


/* ---------- batch_fill, truncate, split, bytes ---------- */

static void naive_fill(const vae_dataset *d, const long *rows, int b, float *out)
{
    for (int i = 0; i < b; i++)
        for (long j = 0; j < d->dim; j++) {
            long r = rows[i];
            float v;
            if (d->kind == VAE_DATA_U8) {
                v = (float)d->u8[r * d->dim + j] / 255.0f;
            } else if (d->kind == VAE_DATA_F32) {
                v = d->f32[r * d->dim + j];
            } else {
                long pos = j / d->vocab, sym = j % d->vocab;
                v = d->seq[r * d->max_len + pos] == sym ? 1.0f : 0.0f;
            }
            out[i * d->dim + j] = v;
        }
}

static void check_fill(const char *what, const vae_dataset *d)
{
    long rows[5] = {d->n - 1, 0, d->n - 1, d->n / 2, 1 % d->n};
    size_t sz = 5 * (size_t)d->dim;
    float *a = malloc(sz * sizeof(float)), *b = malloc(sz * sizeof(float));
    for (size_t i = 0; i < sz; i++)
        a[i] = -7.0f; /* every output must be written */
    vae_batch_fill(d, rows, 5, a);
    naive_fill(d, rows, 5, b);
    size_t nbad = 0, first = 0;
    for (size_t i = 0; i < sz; i++)
        if (a[i] != b[i] && !nbad++)
            first = i;
    CHECK(nbad == 0, "%s: %zu of %zu values differ, first at %zu: %g vs %g", what, nbad, sz, first,
          nbad ? a[first] : 0, nbad ? b[first] : 0);
    free(a);
    free(b);
}

static void check_rows_equal(const char *what, const vae_dataset *a, long ra, const vae_dataset *b,
                             long rb)
{
    float *x = malloc((size_t)a->dim * sizeof(float)), *y = malloc((size_t)b->dim * sizeof(float));
    vae_batch_fill(a, &ra, 1, x);
    vae_batch_fill(b, &rb, 1, y);
    CHECK(a->dim == b->dim && !memcmp(x, y, (size_t)a->dim * sizeof(float)),
          "%s: row %ld of %s differs from row %ld of %s", what, ra, a->source, rb, b->source);
    free(x);
    free(y);
}


/* ---------- vae_data_load ---------- */

static void spec_init(vae_data_spec *s, const char *path, enum vae_data_format fmt)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    s->format = fmt;
}


/* ---------- the real data ---------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Independent decode: gzread the whole file, parse the IDX header by hand. */
static unsigned char *gz_all(const char *path, size_t *len)
{
    gzFile g = gzopen(path, "rb");
    if (!g)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    int r;
    while ((r = gzread(g, b + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)r;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    gzclose(g);
    *len = n;
    return b;
}

/* What every test_data program does first: its scratch directory and fixtures. 0, or the
 * exit status to stop with. */
static int test_data_begin(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/vaed-test-data-XXXXXX", t && t[0] ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    return 0;
}

/* ... and last: the closing line "name: N passed, N failed", the scratch cleaned up. */
static int test_data_end(const char *name)
{
    for (int i = 0; i < n_made; i++) {
        unlink(made[i]);
        free(made[i]);
    }
    rmdir(tmpdir);
    return t_done(name);
}

#endif
