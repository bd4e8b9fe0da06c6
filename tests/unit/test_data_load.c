/* test_data_load.c — the dataset object and vae_data_load, beside test_data.c's
 * format readers (same fixtures: test_data_util.h): batch fill against a naive loop for
 * every kind, truncation and tail splits; vae_data_load by format, name, test path and
 * validation fraction, with its errors naming the field; the shipped Fashion-MNIST
 * (checked against an independent gzread and a hand-parsed header) and
 * /usr/share/dict/words; out-of-memory on a data-sized allocation. */
#include "tests/unit/test_data_util.h"

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
    int rc = test_data_begin();
    if (rc)
        return rc;
    test_batch_split();
    test_load();
    test_fashion_mnist();
    test_words();
    test_enomem();
    return test_data_end("test_data_load");
}
