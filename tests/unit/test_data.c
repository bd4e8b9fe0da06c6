/* test_data.c — the dataset readers against files this test writes (every value
 * checked against what was written), every error path named in data.h, batch_fill
 * against a naive loop, splits, and the real Debian data: Fashion-MNIST (checked
 * against an independent gzread + hand-parsed header) and /usr/share/dict/words. */
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

static void test_idx(void)
{
    enum { N = 5, R = 3, C = 4 };
    unsigned char px[N * R * C];
    for (int i = 0; i < N * R * C; i++)
        px[i] = (unsigned char)(i * 37 + 11);
    uint32_t dims[3] = {N, R, C};
    size_t len;
    unsigned char *f = make_idx(0x08, 3, dims, px, sizeof px, &len);
    const size_t flen = len;
    vaed_err e;
    const char *paths[2] = {write_file("img-idx3-ubyte", f, flen),
                            write_gz("img-idx3-ubyte.gz", f, flen)};
    for (int k = 0; k < 2; k++) {
        vae_dataset *d = NULL;
        int rc = vae_read_idx(paths[k], &d, &e);
        CHECK(rc == 0, "%s: %s", paths[k], e.msg);
        if (rc)
            continue;
        CHECK(d->kind == VAE_DATA_U8 && d->n == N && d->dim == R * C && d->rows == R && d->cols == C,
              "%s: kind %d n %ld dim %ld rows %ld cols %ld", paths[k], d->kind, d->n, d->dim,
              d->rows, d->cols);
        int bad = -1;
        for (int i = 0; i < N * R * C; i++)
            if (d->u8[i] != px[i] && bad < 0)
                bad = i;
        CHECK(bad < 0, "%s: byte %d is %d, wrote %d", paths[k], bad, bad < 0 ? 0 : d->u8[bad],
              bad < 0 ? 0 : px[bad]);
        CHECK(!strcmp(d->source, paths[k]), "source %s", d->source);
        vae_dataset_free(d);
    }

    /* 2-D and 1-D (labels: dim 1) from memory, with an exact-size buffer for ASan. */
    uint32_t d2[2] = {6, 10};
    unsigned char *f2 = make_idx(0x08, 2, d2, px, 60, &len);
    vae_dataset *d = NULL;
    CHECK(vae_parse_idx(f2, len, "two.idx", &d, &e) == 0, "2-D: %s", e.msg);
    if (d) {
        CHECK(d->n == 6 && d->dim == 10 && d->rows == 0 && !memcmp(d->u8, px, 60),
              "2-D: n %ld dim %ld rows %ld", d->n, d->dim, d->rows);
        vae_dataset_free(d);
    }
    free(f2);
    uint32_t d1[1] = {7};
    f2 = make_idx(0x08, 1, d1, px, 7, &len);
    CHECK(vae_parse_idx(f2, len, "labels", &d, &e) == 0, "1-D: %s", e.msg);
    if (d) {
        CHECK(d->n == 7 && d->dim == 1 && !memcmp(d->u8, px, 7), "1-D: n %ld dim %ld", d->n, d->dim);
        vae_dataset_free(d);
    }
    free(f2);

    /* float IDX (0x0D), big-endian. */
    float fv[6] = {0.5f, -1.25f, 3.0e-3f, 1e6f, -0.0f, 42.0f};
    unsigned char fb[24];
    for (int i = 0; i < 6; i++) {
        uint32_t u;
        memcpy(&u, &fv[i], 4);
        put_be32(fb + 4 * i, u);
    }
    uint32_t df[2] = {2, 3};
    f2 = make_idx(0x0D, 2, df, fb, 24, &len);
    CHECK(vae_parse_idx(f2, len, "f.idx", &d, &e) == 0, "float idx: %s", e.msg);
    if (d) {
        CHECK(d->kind == VAE_DATA_F32 && d->n == 2 && d->dim == 3, "float idx shape");
        for (int i = 0; i < 6; i++)
            CHECK(d->f32[i] == fv[i], "float idx [%d]: %g vs %g", i, d->f32[i], fv[i]);
        vae_dataset_free(d);
    }
    free(f2);

    /* Errors. */
    const char *missing = tpath("no-such-file.idx");
    expect_err("missing", vae_read_idx(missing, &d, &e), VAED_EIO, &e, missing,
               "No such file", NULL);
    CHECK(d == NULL, "missing: out not NULL");
    const char *tr = write_file("trunc-idx3-ubyte", f, flen - 5);
    expect_err("truncated", vae_read_idx(tr, &d, &e), VAED_EINVAL, &e, tr, "truncated", "5 items");
    unsigned char bad[16];
    memcpy(bad, f, 16);
    bad[0] = 0x12;
    expect_err("bad magic", vae_parse_idx(bad, 16, "bm", &d, &e), VAED_EINVAL, &e, "bm:",
               "bad magic", NULL);
    memcpy(bad, f, 16);
    bad[2] = 0x0B;
    expect_err("short type", vae_parse_idx(bad, 16, "st", &d, &e), VAED_EINVAL, &e, "st:", "0x0B",
               "not supported");
    memcpy(bad, f, 16);
    bad[3] = 4;
    expect_err("4-D", vae_parse_idx(bad, 16, "4d", &d, &e), VAED_EINVAL, &e, "4 dimensions", NULL,
               NULL);
    uint32_t huge[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    unsigned char *hb = make_idx(0x08, 3, huge, px, 10, &len);
    expect_err("overflow", vae_parse_idx(hb, len, "ov", &d, &e), VAED_EINVAL, &e, "ov:", "overflow",
               NULL);
    free(hb);
    uint32_t big[3] = {60000, 28, 28};
    hb = make_idx(0x08, 3, big, px, 10, &len);
    expect_err("60000 claimed", vae_parse_idx(hb, len, "claim", &d, &e), VAED_EINVAL, &e,
               "truncated", "60000 items", NULL);
    free(hb);
    unsigned char *tb = calloc(flen + 3, 1);
    memcpy(tb, f, flen);
    expect_err("trailing", vae_parse_idx(tb, flen + 3, "tl", &d, &e), VAED_EINVAL, &e,
               "tl:", "3 unexpected bytes", NULL);
    free(tb);

    /* gzip damage: cut in half, one byte flipped. */
    size_t glen = 0;
    unsigned char *gz = file_bytes(paths[1], &glen);
    if (!gz || glen < 20) {
        CHECK(0, "cannot read back %s", paths[1]);
        free(gz);
        free(f);
        return;
    }
    const char *gcut = write_file("cut-idx3-ubyte.gz", gz, glen / 2);
    expect_err("truncated gz", vae_read_idx(gcut, &d, &e), VAED_EINVAL, &e, gcut, "truncated gzip",
               NULL);
    gz[glen / 2] ^= 0x55;
    gz[glen / 2 + 1] ^= 0xAA;
    const char *gbad = write_file("bad-idx3-ubyte.gz", gz, glen);
    expect_err("corrupt gz", vae_read_idx(gbad, &d, &e), VAED_EINVAL, &e, gbad, "gzip", NULL);
    free(gz);
    free(f);
}

/* ---------- NPY ---------- */

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void test_npy(void)
{
    enum { N = 3, D = 4 };
    float fv[N * D];
    double dv[N * D];
    unsigned char uv[N * D];
    unsigned char f4[N * D * 4], f8[N * D * 8], f4be[N * D * 4];
    for (int i = 0; i < N * D; i++) {
        fv[i] = (float)(i - 5) * 0.37f + 1e-3f;
        dv[i] = (i - 6) * 1.0e-1 + 1.0 / 3.0;
        uv[i] = (unsigned char)(255 - i * 13);
        uint32_t u;
        uint64_t w;
        memcpy(&u, &fv[i], 4);
        memcpy(&w, &dv[i], 8);
        put_le(f4 + 4 * i, u, 4);
        put_le(f8 + 8 * i, w, 8);
        for (int k = 0; k < 4; k++)
            f4be[4 * i + k] = f4[4 * i + 3 - k];
    }
    struct {
        int major;
        const char *descr;
        const void *data;
        size_t dlen;
    } cases[] = {
        {1, "<f4", f4, sizeof f4}, {2, "<f4", f4, sizeof f4}, {1, "<f8", f8, sizeof f8},
        {2, "<f8", f8, sizeof f8}, {1, "|u1", uv, sizeof uv}, {2, "<u1", uv, sizeof uv},
        {1, ">f4", f4be, sizeof f4be},
    };
    vaed_err e;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t len;
        unsigned char *b = make_npy(cases[c].major, cases[c].descr, "False", "(3, 4)",
                                    cases[c].data, cases[c].dlen, &len);
        char name[64];
        snprintf(name, sizeof name, "c%zu-v%d.npy", c, cases[c].major);
        const char *p = write_file(name, b, len);
        free(b);
        vae_dataset *d = NULL;
        int rc = vae_read_npy(p, &d, &e);
        CHECK(rc == 0, "%s %s: %s", name, cases[c].descr, e.msg);
        if (rc)
            continue;
        CHECK(d->n == N && d->dim == D, "%s: n %ld dim %ld", name, d->n, d->dim);
        int is_u = cases[c].descr[1] == 'u';
        CHECK(d->kind == (is_u ? VAE_DATA_U8 : VAE_DATA_F32), "%s: kind %d", name, d->kind);
        for (int i = 0; i < N * D; i++) {
            if (is_u)
                CHECK(d->u8[i] == uv[i], "%s [%d]: %d vs %d", name, i, d->u8[i], uv[i]);
            else if (cases[c].descr[2] == '8')
                CHECK(d->f32[i] == (float)dv[i], "%s [%d]: %.9g vs %.9g", name, i, d->f32[i],
                      (float)dv[i]);
            else
                CHECK(d->f32[i] == fv[i], "%s [%d]: %.9g vs %.9g", name, i, d->f32[i], fv[i]);
        }
        vae_dataset_free(d);
    }

    /* Errors, from memory. */
    struct {
        const char *descr, *fortran, *shape;
        size_t dlen;
        const char *want1, *want2;
    } bad[] = {
        {"<i8", "False", "(3, 4)", 96, "'<i8'", "not supported"},
        {"<f4", "True", "(3, 4)", 48, "fortran_order", "C-order"},
        {"<f4", "False", "(2, 3, 2)", 48, "(2, 3, 2)", "must be 2-D"},
        {"<f4", "False", "(12,)", 48, "(12,)", "must be 2-D"},
        {"<f4", "False", "(3, 4)", 40, "truncated", "48 bytes"},
        {"<f4", "False", "(0, 4)", 0, "no rows", NULL},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        size_t len;
        unsigned char data[96] = {0};
        unsigned char *b = make_npy(1, bad[c].descr, bad[c].fortran, bad[c].shape, data,
                                    bad[c].dlen, &len);
        vae_dataset *d = NULL;
        char what[64];
        snprintf(what, sizeof what, "npy error %zu", c);
        expect_err(what, vae_parse_npy(b, len, "x.npy", &d, &e), VAED_EINVAL, &e, "x.npy:",
                   bad[c].want1, bad[c].want2);
        CHECK(d == NULL, "%s: out set", what);
        free(b);
    }
    vae_dataset *d = NULL;
    expect_err("npy magic", vae_parse_npy("PK\3\4 not numpy", 15, "m.npy", &d, &e), VAED_EINVAL,
               &e, "m.npy:", "not a .npy file", NULL);
    float nanv[4] = {1, 2, NAN, 4};
    size_t len;
    unsigned char *b = make_npy(1, "<f4", "False", "(2, 2)", nanv, sizeof nanv, &len);
    expect_err("npy NaN", vae_parse_npy(b, len, "n.npy", &d, &e), VAED_EINVAL, &e, "row 2, column 1",
               "not a finite number", NULL);
    free(b);
    const char *missing = tpath("missing.npy");
    expect_err("npy missing", vae_read_npy(missing, &d, &e), VAED_EIO, &e, missing, NULL, NULL);
}

/* ---------- CSV ---------- */

static void test_csv(void)
{
    enum { N = 7, D = 5 };
    float v[N * D];
    uint64_t s = 12345;
    char text[4096];
    size_t o = 0;
    o += (size_t)snprintf(text + o, sizeof text - o, "a, b,c ,d,e\r\n");
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            v[i * D + j] = (float)((double)(s >> 11) / 9007199254740992.0 * 200.0 - 100.0);
            /* %.9g round-trips a float exactly; vary the spacing around commas */
            o += (size_t)snprintf(text + o, sizeof text - o, j ? (j % 2 ? " , %.9g" : ",\t%.9g") : "%.9g",
                                  v[i * D + j]);
        }
        o += (size_t)snprintf(text + o, sizeof text - o, i == 3 ? "\n\n" : "\n");
    }
    vaed_err e;
    const char *with = write_str("with.csv", text);
    const char *without = write_str("without.csv", strchr(text, '\n') + 1);
    for (int k = 0; k < 2; k++) {
        vae_dataset *d = NULL;
        const char *p = k ? without : with;
        int rc = vae_read_csv(p, !k, &d, &e);
        CHECK(rc == 0, "%s: %s", p, e.msg);
        if (rc)
            continue;
        CHECK(d->kind == VAE_DATA_F32 && d->n == N && d->dim == D, "%s: n %ld dim %ld", p, d->n,
              d->dim);
        int bad = -1;
        for (int i = 0; i < N * D; i++)
            if (d->f32[i] != v[i] && bad < 0)
                bad = i;
        CHECK(bad < 0, "%s: value %d is %.9g, wrote %.9g", p, bad, bad < 0 ? 0 : d->f32[bad],
              bad < 0 ? 0 : v[bad]);
        vae_dataset_free(d);
    }
    /* The header line read as data names line 1 and hints at csv_header. */
    vae_dataset *d = NULL;
    expect_err("csv header as data", vae_read_csv(with, 0, &d, &e), VAED_EINVAL, &e, with,
               "line 1: 'a' is not a number", "dataset.header");

    struct {
        const char *text;
        int header;
        const char *want1, *want2;
    } bad[] = {
        {"1,2,3\n4,5,6\n7,8\n", 0, "line 3: 2 columns, expected 3", "line 1"},
        {"x,y\n1,2\n\n3,4,5\n", 1, "line 4: 3 columns, expected 2", "line 2"},
        {"1,2\n3\n", 0, "line 2: 1 column, expected 2", NULL},
        {"1,2\n\"3\",4\n", 0, "line 2: '\"3\"' is not a number", NULL},
        {"1,2\n3,abc\n", 0, "line 2: 'abc' is not a number", NULL},
        {"1,2\n3,4x\n", 0, "line 2: '4x' is not a number", NULL},
        {"1,2\nnan,4\n", 0, "line 2: 'nan' is not a finite number", NULL},
        {"1,2\n3,-inf\n", 0, "line 2: '-inf' is not a finite number", NULL},
        {"1,1e999\n", 0, "line 1: '1e999' is out of float32 range", NULL},
        {"1,1e300\n", 0, "'1e300' is out of float32 range", NULL},
        {"1,,2\n", 0, "line 1: column 2 is empty", NULL},
        {"", 0, "empty file", NULL},
        {"a,b\n", 1, "no data rows", NULL},
        {"\n \n", 0, "no data rows", NULL},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        char what[64];
        snprintf(what, sizeof what, "csv error %zu", c);
        size_t len = strlen(bad[c].text);
        char *buf = malloc(len ? len : 1); /* exactly len bytes, no NUL: ASan sees overreads */
        memcpy(buf, bad[c].text, len);
        expect_err(what, vae_parse_csv(buf, len, bad[c].header, "t.csv", &d, &e), VAED_EINVAL, &e,
                   "t.csv: ", bad[c].want1, bad[c].want2);
        CHECK(d == NULL, "%s: out set", what);
        free(buf);
    }
    /* A file without a final newline still has its last row. */
    CHECK(vae_parse_csv("1,2\n3,4", 7, 0, "nonl", &d, &e) == 0 && d && d->n == 2 && d->f32[3] == 4,
          "no final newline: %s", e.msg);
    vae_dataset_free(d);
    const char *gz = write_gz("g.csv.gz", "1,2\n3,4\n", 8);
    CHECK(vae_read_csv(gz, 0, &d, &e) == 0 && d && d->n == 2 && d->f32[2] == 3, "csv.gz: %s", e.msg);
    vae_dataset_free(d);
}

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

static void test_text(void)
{
    vaed_err e;
    vae_dataset *d = NULL, *t = NULL;
    /* Sorted by code point: a 61, b 62, h 68, l 6C, o 6F, é E9, 日 65E5, 本 672C. */
    static const char *const vocab[] = {"", "a", "b", "h", "l", "o", "\xC3\xA9", "\xE6\x97\xA5",
                                        "\xE6\x9C\xAC"};
    static const char *const rows[][8] = {
        {"h", "\xC3\xA9", "l", "l", "o"},
        {"\xE6\x97\xA5", "\xE6\x9C\xAC"},
        {"a", "b"},
    };
    const char *txt = "h\xC3\xA9llo\n\xE6\x97\xA5\xE6\x9C\xAC\n\nab\r\n";
    const char *p = write_str("t.txt", txt);
    CHECK(vae_read_text(p, 0, VAE_LONG_REJECT, NULL, &d, &e) == 0, "text: %s", e.msg);
    if (d)
        check_seq("text", d, vocab, 9, rows, 3, 5);
    /* Fixed max_len pads with 0. */
    CHECK(vae_read_text(p, 7, VAE_LONG_REJECT, NULL, &t, &e) == 0, "text max_len 7: %s", e.msg);
    if (t)
        check_seq("text max_len 7", t, vocab, 9, rows, 3, 7);
    vae_dataset_free(t);

    /* Overlong lines under each policy; max_len counts characters, not bytes:
     * "日本" is 6 bytes but 2 characters and fits max_len 2. */
    const char *lt = "ab\n\xE6\x97\xA5\xE6\x9C\xAC\nhello\n";
    size_t ll = strlen(lt);
    expect_err("overlong reject", vae_parse_text(lt, ll, 2, VAE_LONG_REJECT, NULL, "l.txt", &t, &e),
               VAED_EINVAL, &e, "l.txt: line 3", "5 characters", "max_len 2");
    CHECK(vae_parse_text(lt, ll, 2, VAE_LONG_TRUNCATE, NULL, "l.txt", &t, &e) == 0, "truncate: %s",
          e.msg);
    if (t) {
        static const char *const tv[] = {"", "a", "b", "e", "h", "\xE6\x97\xA5", "\xE6\x9C\xAC"};
        static const char *const tr[][8] = {{"a", "b"}, {"\xE6\x97\xA5", "\xE6\x9C\xAC"}, {"h", "e"}};
        check_seq("truncate", t, tv, 7, tr, 3, 2); /* 'l', 'o' were cut off: not in the vocabulary */
        vae_dataset_free(t);
    }
    CHECK(vae_parse_text(lt, ll, 2, VAE_LONG_SKIP, NULL, "l.txt", &t, &e) == 0, "skip: %s", e.msg);
    if (t) {
        static const char *const sv[] = {"", "a", "b", "\xE6\x97\xA5", "\xE6\x9C\xAC"};
        static const char *const sr[][8] = {{"a", "b"}, {"\xE6\x97\xA5", "\xE6\x9C\xAC"}};
        check_seq("skip", t, sv, 5, sr, 2, 2);
        vae_dataset_free(t);
    }
    expect_err("all skipped", vae_parse_text("hello\nworld\n", 12, 3, VAE_LONG_SKIP, NULL, "s.txt", &t, &e),
               VAED_EINVAL, &e, "s.txt:", "all 2 lines", NULL);

    /* Invalid UTF-8: bad continuation, overlong '/', surrogate, cut-off sequence, > U+10FFFF. */
    const char *inval[] = {"ok\n\xC3\x28\n", "ok\n\xC0\xAF\n", "ok\n\xED\xA0\x80\n", "ok\nab\xE6\x97",
                           "ok\n\xF4\x90\x80\x80\n"};
    for (int i = 0; i < 5; i++) {
        char what[32];
        snprintf(what, sizeof what, "invalid utf-8 %d", i);
        size_t n = strlen(inval[i]);
        char *buf = malloc(n);
        memcpy(buf, inval[i], n);
        expect_err(what, vae_parse_text(buf, n, 0, VAE_LONG_REJECT, NULL, "u.txt", &t, &e),
                   VAED_EINVAL, &e, "u.txt: line 2", "invalid UTF-8", NULL);
        free(buf);
    }
    expect_err("NUL", vae_parse_text("a\n\0b\n", 5, 0, VAE_LONG_REJECT, NULL, "z.txt", &t, &e),
               VAED_EINVAL, &e, "z.txt: line 2", "NUL", NULL);
    expect_err("empty text", vae_parse_text("", 0, 0, VAE_LONG_REJECT, NULL, "e.txt", &t, &e),
               VAED_EINVAL, &e, "e.txt:", "empty file", NULL);
    expect_err("blank text", vae_parse_text("\n\r\n", 3, 0, VAE_LONG_REJECT, NULL, "e.txt", &t, &e),
               VAED_EINVAL, &e, "e.txt:", "no non-empty lines", NULL);

    /* Test split reusing the training vocabulary and max_len (5). */
    if (d) {
        const char *ts = "ab\n\xC3\xA9t\xC3\xA9\n";
        expect_err("unknown symbol", vae_parse_text(ts, strlen(ts), 0, VAE_LONG_REJECT, d, "test.txt", &t, &e),
                   VAED_EINVAL, &e, "test.txt: line 2", "'t' (U+0074)", "not in the training vocabulary");
        const char *ok = "hob\n\n\xE6\x9C\xAC\xC3\xA9\n";
        CHECK(vae_parse_text(ok, strlen(ok), 0, VAE_LONG_REJECT, d, "test.txt", &t, &e) == 0,
              "test split: %s", e.msg);
        if (t) {
            static const char *const r2[][8] = {{"h", "o", "b"}, {"\xE6\x9C\xAC", "\xC3\xA9"}};
            check_seq("test split", t, vocab, 9, r2, 2, 5);
            vae_dataset_free(t);
        }
        const char *lng = "hellohello\n";
        expect_err("test split overlong", vae_parse_text(lng, strlen(lng), 0, VAE_LONG_REJECT, d, "test.txt", &t, &e),
                   VAED_EINVAL, &e, "line 1", "max_len 5", NULL);
    }
    vae_dataset_free(d);
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

static void test_batch_split(void)
{
    vaed_err e;
    vae_dataset *u = NULL, *f = NULL, *s = NULL, *tail = NULL, *orig = NULL;
    unsigned char px[6 * 4];
    for (int i = 0; i < 24; i++)
        px[i] = (unsigned char)(i * 11);
    uint32_t dims[3] = {6, 2, 2};
    size_t len;
    unsigned char *b = make_idx(0x08, 3, dims, px, 24, &len);
    CHECK(vae_parse_idx(b, len, "u", &u, &e) == 0, "%s", e.msg);
    CHECK(vae_parse_idx(b, len, "u", &orig, &e) == 0, "%s", e.msg);
    free(b);
    const char *csv = "1,2,3\n4,5,6\n7,8,9\n10,11,12\n";
    CHECK(vae_parse_csv(csv, strlen(csv), 0, "f", &f, &e) == 0, "%s", e.msg);
    const char *txt = "abc\nb\n\xC3\xA9\xC3\xA9\ncab\n";
    CHECK(vae_parse_text(txt, strlen(txt), 0, VAE_LONG_REJECT, NULL, "s", &s, &e) == 0, "%s", e.msg);
    if (!u || !f || !s || !orig)
        return;
    check_fill("fill u8", u);
    check_fill("fill f32", f);
    check_fill("fill seq", s);
    /* Padding positions are one-hot on symbol 0. */
    float row[3 * 5];
    long r1 = 1;
    vae_batch_fill(s, &r1, 1, row);
    CHECK(s->vocab == 5 && row[1 * 5 + 0] == 1.0f && row[2 * 5 + 0] == 1.0f && row[0 * 5 + 0] == 0,
          "padding one-hot: vocab %d", s->vocab);

    /* bytes: the struct plus the rows (plus the vocabulary for text). */
    CHECK(vae_dataset_bytes(u) == sizeof(vae_dataset) + 24, "bytes u8 %zu", vae_dataset_bytes(u));
    CHECK(vae_dataset_bytes(f) == sizeof(vae_dataset) + 12 * sizeof(float), "bytes f32 %zu",
          vae_dataset_bytes(f));
    size_t sym = 5 * sizeof(char *) + 1 + 2 + 2 + 2 + 3; /* "", a, b, c, é */
    CHECK(vae_dataset_bytes(s) == sizeof(vae_dataset) + 4 * 3 * sizeof(int32_t) + sym,
          "bytes seq %zu", vae_dataset_bytes(s));

    /* split_tail: the last rows move, values intact, nothing shared. */
    CHECK(vae_dataset_split_tail(u, 2, &tail, &e) == 0, "split u8: %s", e.msg);
    if (tail) {
        CHECK(u->n == 4 && tail->n == 2 && tail->rows == 2 && tail->cols == 2, "split sizes %ld %ld",
              u->n, tail->n);
        CHECK(tail->u8 != u->u8, "split shares memory");
        for (long r = 0; r < 4; r++)
            check_rows_equal("split head", u, r, orig, r);
        for (long r = 0; r < 2; r++)
            check_rows_equal("split tail", tail, r, orig, 4 + r);
        vae_dataset_free(tail);
    }
    CHECK(vae_dataset_split_tail(s, 1, &tail, &e) == 0, "split seq: %s", e.msg);
    if (tail) {
        CHECK(tail->vocab == s->vocab && tail->max_len == s->max_len && tail->symbols != s->symbols,
              "split seq vocabulary");
        for (int i = 0; i < s->vocab; i++)
            CHECK(!strcmp(tail->symbols[i], s->symbols[i]), "split symbol %d", i);
        CHECK(tail->seq[0] == 3 && tail->seq[1] == 1 && tail->seq[2] == 2, "split seq 'cab': %d %d %d",
              tail->seq[0], tail->seq[1], tail->seq[2]);
        vae_dataset_free(tail);
    }
    expect_err("split all", vae_dataset_split_tail(f, 4, &tail, &e), VAED_EINVAL, &e, "f:", "4 of 4",
               NULL);
    expect_err("split none", vae_dataset_split_tail(f, 0, &tail, &e), VAED_EINVAL, &e, "0 of 4", NULL,
               NULL);
    CHECK(tail == NULL && f->n == 4, "failed split changed things");
    vae_dataset_truncate(f, 2);
    CHECK(f->n == 2 && f->f32[5] == 6, "truncate: n %ld", f->n);
    vae_dataset_truncate(f, 9);
    CHECK(f->n == 2, "truncate past n grew it: %ld", f->n);
    vae_dataset_free(NULL);
    vae_dataset_free(u);
    vae_dataset_free(f);
    vae_dataset_free(s);
    vae_dataset_free(orig);
}

/* ---------- vae_data_load ---------- */

static void spec_init(vae_data_spec *s, const char *path, enum vae_data_format fmt)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    s->format = fmt;
}

static void test_load(void)
{
    vaed_err e;
    vae_data_spec s;
    vae_dataset *tr = NULL, *te = NULL;
    char csv[512];
    size_t o = 0;
    for (int i = 0; i < 10; i++)
        o += (size_t)snprintf(csv + o, sizeof csv - o, "%d,%d,%d\n", i, 10 * i, 100 * i);
    const char *p = write_str("ten.csv", csv);

    /* limit first, then split: 10 rows, limit 8, fraction 0.25 → 6 train + rows 6, 7. */
    spec_init(&s, p, VAE_FMT_NONE); /* format from the .csv suffix */
    s.limit = 8;
    s.validation_fraction = 0.25;
    CHECK(vae_data_load(&s, &tr, &te, &e) == 0, "load csv: %s", e.msg);
    if (tr && te) {
        CHECK(tr->n == 6 && te->n == 2 && tr->dim == 3, "split sizes %ld %ld", tr->n, te->n);
        for (long r = 0; r < tr->n; r++)
            CHECK(tr->f32[r * 3 + 1] == 10.0f * r, "train row %ld", r);
        CHECK(te->f32[0] == 6 && te->f32[3] == 7 && te->f32[5] == 700, "test rows: %g %g", te->f32[0],
              te->f32[3]);
        CHECK(vae_dataset_bytes(tr) == sizeof(vae_dataset) + 18 * sizeof(float), "bytes after load");
    }
    vae_dataset_free(tr);
    vae_dataset_free(te);
    /* No test split asked for: test is NULL; limit past n keeps all rows. */
    spec_init(&s, p, VAE_FMT_CSV);
    s.limit = 50;
    CHECK(vae_data_load(&s, &tr, &te, &e) == 0 && tr && tr->n == 10 && te == NULL, "plain load: %s",
          e.msg);
    vae_dataset_free(tr);

    struct {
        const char *what;
        long limit;
        double vf;
        const char *name, *path, *test_path;
        enum vae_data_format fmt;
        int code;
        const char *field, *want;
    } bad[] = {
        {"fraction leaves 0 test", 8, 0.01, "", p, "", VAE_FMT_CSV, VAED_EINVAL,
         "dataset.validation_fraction", "holds out 0"},
        {"fraction leaves 0 train", 0, 0.99, "", p, "", VAE_FMT_CSV, VAED_EINVAL,
         "dataset.validation_fraction", "holds out 10"},
        {"fraction 1", 0, 1.0, "", p, "", VAE_FMT_CSV, VAED_EINVAL, "dataset.validation_fraction",
         "[0, 1)"},
        {"negative limit", -1, 0, "", p, "", VAE_FMT_CSV, VAED_EINVAL, "dataset.limit", ">= 0"},
        {"unknown name", 0, 0, "cifar-10", "", "", VAE_FMT_NONE, VAED_EINVAL, "dataset.name",
         "'cifar-10'"},
        {"no path", 0, 0, "", "", "", VAE_FMT_CSV, VAED_EINVAL, "dataset.path", "required"},
        {"missing file", 0, 0, "", tpath("nope.csv"), "", VAE_FMT_CSV, VAED_EIO, "dataset.path",
         "nope.csv: No such file"},
        {"missing test file", 0, 0, "", p, tpath("nope2.csv"), VAE_FMT_CSV, VAED_EIO,
         "dataset.test_path", "nope2.csv"},
        {"unknown suffix", 0, 0, "", tpath("data.bin"), "", VAE_FMT_NONE, VAED_EINVAL,
         "dataset.format", "data.bin"},
        {"name and path", 0, 0, "fashion-mnist", p, "", VAE_FMT_NONE, VAED_EINVAL, "dataset.path",
         "fashion-mnist"},
        {"test_path and fraction", 0, 0.5, "", p, p, VAE_FMT_CSV, VAED_EINVAL,
         "dataset.validation_fraction", "test_path"},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        spec_init(&s, bad[c].path, bad[c].fmt);
        snprintf(s.name, sizeof s.name, "%s", bad[c].name);
        snprintf(s.test_path, sizeof s.test_path, "%s", bad[c].test_path);
        s.limit = bad[c].limit;
        s.validation_fraction = bad[c].vf;
        tr = te = (vae_dataset *)&s; /* must be reset to NULL */
        expect_err(bad[c].what, vae_data_load(&s, &tr, &te, &e), bad[c].code, &e, bad[c].field,
                   bad[c].want, NULL);
        CHECK(!strcmp(e.field, bad[c].field), "%s: field '%s', want '%s'", bad[c].what, e.field,
              bad[c].field);
        CHECK(!strncmp(e.msg, bad[c].field, strlen(bad[c].field)), "%s: msg does not start with field",
              bad[c].what);
        CHECK(tr == NULL && te == NULL, "%s: outputs not NULL", bad[c].what);
    }
    /* A content error names the file, not a field. */
    const char *rag = write_str("rag.csv", "1,2\n3\n");
    spec_init(&s, rag, VAE_FMT_CSV);
    expect_err("ragged via load", vae_data_load(&s, &tr, &te, &e), VAED_EINVAL, &e, rag, "line 2",
               NULL);
    /* Test file with another width. */
    const char *wide = write_str("wide.csv", "1,2,3,4\n");
    spec_init(&s, p, VAE_FMT_CSV);
    snprintf(s.test_path, sizeof s.test_path, "%s", wide);
    expect_err("test width", vae_data_load(&s, &tr, &te, &e), VAED_EINVAL, &e, "dataset.test_path",
               "4", NULL);

    /* Text with a test file: the training vocabulary and max_len are reused. */
    const char *ttr = write_str("train.txt", "abc\nba\n");
    const char *tte = write_str("test.txt", "cab\nc\n");
    const char *tbad = write_str("testbad.txt", "ab\nabd\n");
    spec_init(&s, ttr, VAE_FMT_TEXT);
    snprintf(s.test_path, sizeof s.test_path, "%s", tte);
    CHECK(vae_data_load(&s, &tr, &te, &e) == 0, "text load: %s", e.msg);
    if (tr && te) {
        CHECK(te->vocab == tr->vocab && te->max_len == 3 && te->dim == tr->dim && te->n == 2,
              "text test split: vocab %d max_len %d", te->vocab, te->max_len);
        CHECK(te->seq[0] == 3 && te->seq[1] == 1 && te->seq[2] == 2 && te->seq[3] == 3 &&
                  te->seq[4] == 0,
              "text test ids %d %d %d %d %d", te->seq[0], te->seq[1], te->seq[2], te->seq[3],
              te->seq[4]);
    }
    vae_dataset_free(tr);
    vae_dataset_free(te);
    snprintf(s.test_path, sizeof s.test_path, "%s", tbad);
    expect_err("text test unknown", vae_data_load(&s, &tr, &te, &e), VAED_EINVAL, &e, tbad,
               "line 2: character 'd'", NULL);

    /* fashion-mnist from VAED_FASHION_MNIST_DIR: tiny stand-in files. */
    const char *old = getenv("VAED_FASHION_MNIST_DIR");
    char *saved = old ? strdup(old) : NULL;
    unsigned char px[5 * 6];
    for (int i = 0; i < 30; i++)
        px[i] = (unsigned char)(200 - i);
    uint32_t d5[3] = {5, 2, 3}, d2[3] = {2, 2, 3};
    size_t len;
    unsigned char *b = make_idx(0x08, 3, d5, px, 30, &len);
    write_gz("train-images-idx3-ubyte.gz", b, len);
    free(b);
    b = make_idx(0x08, 3, d2, px + 18, 12, &len);
    write_gz("t10k-images-idx3-ubyte.gz", b, len);
    free(b);
    setenv("VAED_FASHION_MNIST_DIR", tmpdir, 1);
    memset(&s, 0, sizeof s);
    snprintf(s.name, sizeof s.name, "fashion-mnist");
    s.limit = 4;
    CHECK(vae_data_load(&s, &tr, &te, &e) == 0, "fashion-mnist from env dir: %s", e.msg);
    if (tr && te) {
        CHECK(tr->n == 4 && te->n == 2 && tr->dim == 6 && tr->rows == 2 && tr->cols == 3,
              "env dir: n %ld/%ld dim %ld", tr->n, te->n, tr->dim);
        CHECK(!memcmp(tr->u8, px, 24) && !memcmp(te->u8, px + 18, 12), "env dir values");
    }
    vae_dataset_free(tr);
    vae_dataset_free(te);
    s.validation_fraction = 0.1;
    expect_err("fashion + fraction", vae_data_load(&s, &tr, &te, &e), VAED_EINVAL, &e,
               "dataset.validation_fraction", NULL, NULL);
    s.validation_fraction = 0;
    setenv("VAED_FASHION_MNIST_DIR", tpath("empty-dir"), 1);
    expect_err("fashion missing", vae_data_load(&s, &tr, &te, &e), VAED_EIO, &e, "dataset.name",
               "dataset-fashion-mnist", "empty-dir/train-images-idx3-ubyte.gz");
    if (saved) {
        setenv("VAED_FASHION_MNIST_DIR", saved, 1);
        free(saved);
    } else {
        unsetenv("VAED_FASHION_MNIST_DIR");
    }
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

static void test_fashion_mnist(void)
{
    const char *dir = getenv("VAED_FASHION_MNIST_DIR");
    if (!dir || !dir[0])
        dir = VAE_FASHION_MNIST_DIR;
    vae_data_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.name, sizeof s.name, "fashion-mnist");
    vae_dataset *tr = NULL, *te = NULL;
    vaed_err e;
    int rc = vae_data_load(&s, &tr, &te, &e);
    CHECK(rc == 0, "fashion-mnist (Debian package dataset-fashion-mnist): %s", e.msg);
    if (rc)
        return;
    CHECK(tr->kind == VAE_DATA_U8 && tr->n == 60000 && tr->dim == 784 && tr->rows == 28 &&
              tr->cols == 28,
          "train: n %ld dim %ld %ldx%ld", tr->n, tr->dim, tr->rows, tr->cols);
    CHECK(te && te->n == 10000 && te->dim == 784, "test: n %ld", te ? te->n : -1);
    const char *names[2] = {"train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"};
    vae_dataset *ds[2] = {tr, te};
    for (int k = 0; k < 2 && te; k++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, names[k]);
        size_t len = 0;
        unsigned char *b = gz_all(p, &len);
        CHECK(b && len >= 16 && be32(b) == 0x803 && be32(b + 4) == (uint32_t)ds[k]->n &&
                  be32(b + 8) == 28 && be32(b + 12) == 28,
              "%s: hand-parsed header differs", p);
        if (!b || len != 16 + (size_t)ds[k]->n * 784) {
            CHECK(0, "%s: %zu decoded bytes, expected %zu", p, len, 16 + (size_t)ds[k]->n * 784);
            free(b);
            continue;
        }
        unsigned long sum_ref = 0, sum = 0;
        for (int i = 0; i < 784; i++) {
            sum_ref += b[16 + i] * (unsigned long)(i + 1);
            sum += ds[k]->u8[i] * (unsigned long)(i + 1);
        }
        CHECK(sum == sum_ref && sum_ref > 0, "%s: first image checksum %lu vs %lu", p, sum, sum_ref);
        CHECK(!memcmp(ds[k]->u8, b + 16, len - 16), "%s: pixels differ from gzread's", p);
        free(b);
    }
    /* Scaling of a real batch. */
    long rows[2] = {0, 59999};
    float *out = malloc(2 * 784 * sizeof(float));
    vae_batch_fill(tr, rows, 2, out);
    int bad = 0;
    for (int i = 0; i < 784; i++)
        bad += out[i] != tr->u8[i] / 255.0f || out[784 + i] != tr->u8[59999L * 784 + i] / 255.0f;
    CHECK(bad == 0, "fashion batch: %d values differ", bad);
    free(out);
    vae_dataset_free(tr);
    vae_dataset_free(te);
}

static void test_words(void)
{
    const char *p = "/usr/share/dict/words";
    FILE *f = fopen(p, "rb");
    CHECK(f != NULL, "%s missing (Debian package wamerican)", p);
    if (!f)
        return;
    /* Oracle: characters counted as bytes that are not UTF-8 continuation bytes, the
     * distinct characters collected by a linear search. */
    char line[512], chars[512][5];
    int nchars = 0;
    long n = 0, longest = 0;
    while (fgets(line, sizeof line, f)) {
        size_t l = strcspn(line, "\r\n");
        long c = 0;
        for (size_t i = 0; i < l;) {
            size_t k = 1;
            while (i + k < l && ((unsigned char)line[i + k] & 0xC0) == 0x80)
                k++;
            char ch[5] = {0};
            memcpy(ch, line + i, k < 5 ? k : 4);
            int j = 0;
            while (j < nchars && strcmp(chars[j], ch))
                j++;
            if (j == nchars && nchars < 512)
                memcpy(chars[nchars++], ch, 5);
            i += k;
            c++;
        }
        if (c) {
            n++;
            if (c > longest)
                longest = c;
        }
    }
    vae_dataset *d = NULL;
    vaed_err e;
    int rc = vae_read_text(p, 0, VAE_LONG_REJECT, NULL, &d, &e);
    CHECK(rc == 0, "words: %s", e.msg);
    if (!rc) {
        CHECK(d->n == n && d->max_len == longest && d->vocab == nchars + 1 &&
                  d->dim == longest * (nchars + 1),
              "words: n %ld/%ld max_len %d/%ld vocab %d/%d", d->n, n, d->max_len, longest, d->vocab,
              nchars + 1);
        CHECK(d->vocab > 27 && d->vocab < 200, "words vocabulary size %d", d->vocab);
        /* Every row spells its line again. */
        rewind(f);
        long r = 0, bad = -1;
        while (fgets(line, sizeof line, f) && r < d->n) {
            line[strcspn(line, "\r\n")] = '\0';
            if (!line[0])
                continue;
            char back[512] = "";
            size_t o = 0;
            for (int i = 0; i < d->max_len && d->seq[r * d->max_len + i]; i++) {
                const char *sym = d->symbols[d->seq[r * d->max_len + i]];
                memcpy(back + o, sym, strlen(sym) + 1);
                o += strlen(sym);
            }
            if (strcmp(back, line) && bad < 0)
                bad = r;
            r++;
        }
        CHECK(bad < 0, "words: row %ld does not spell its line", bad);
        for (int i = 2; i < d->vocab; i++)
            CHECK(strcmp(d->symbols[i - 1], d->symbols[i]) < 0, "vocabulary not sorted at %d", i);
        vae_dataset_free(d);
    }
    fclose(f);
}

/* A data-sized allocation that fails returns VAED_ENOMEM instead of aborting. Run in
 * a child under a 1 GiB address-space limit, so the outcome does not depend on the
 * machine's overcommit policy: 10 lines at max_len 10^8 need 4 GB of symbol ids.
 * Sanitizer runtimes reserve far more address space than that, so they skip it. */
static void test_enomem(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    printf("test_enomem: skipped under a sanitizer\n");
#else
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};
        setrlimit(RLIMIT_AS, &rl);
        vae_dataset *d = NULL;
        vaed_err e;
        const char *txt = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        int rc = vae_parse_text(txt, strlen(txt), 100000000, VAE_LONG_REJECT, NULL, "big.txt", &d, &e);
        if (rc != VAED_ENOMEM || d || !strstr(e.msg, "big.txt"))
            fprintf(stderr, "enomem child: rc %d msg %s\n", rc, e.msg);
        _exit(rc == VAED_ENOMEM && !d && strstr(e.msg, "big.txt") ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "allocation failure did not give VAED_ENOMEM "
          "(child status 0x%x)", st);
#endif
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/vaed-test-data-XXXXXX", t && t[0] ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_idx();
    test_npy();
    test_csv();
    test_text();
    test_batch_split();
    test_load();
    test_fashion_mnist();
    test_words();
    test_enomem();
    for (int i = 0; i < n_made; i++) {
        unlink(made[i]);
        free(made[i]);
    }
    rmdir(tmpdir);
    return t_done("test_data");
}
