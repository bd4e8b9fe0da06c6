/* test_data.c — the format readers (IDX, NPY, CSV, text) against files this test
 * writes, plain and gzipped (every value checked against what was written), and every
 * error path named in data.h. The dataset object, vae_data_load and the real Debian
 * data are in test_data_load.c; both share test_data_util.h. */
#include "tests/unit/test_data_util.h"

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

int main(void)
{
    int rc = test_data_begin();
    if (rc)
        return rc;
    test_idx();
    test_npy();
    test_csv();
    test_text();
    return test_data_end("test_data");
}
