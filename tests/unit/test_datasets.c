/* test_datasets.c — the pure parts of the dataset registry (api/datasets.h) and its
 * store rows (store/datasets.h):
 *  - lexical containment: a table of paths against a directory, the expected answer
 *    written by hand;
 *  - api_datasets_owns_path: only "<upload dir>/<digits>.<ext>";
 *  - the merge of a job's dataset.id with the registered object: overrides applied,
 *    every other key refused naming dataset.<key>;
 *  - query values typed for the spec parser;
 *  - info of a dataset parsed from a .npy built here (rows, width, shape from the
 *    numbers the test wrote);
 *  - the store: insert (an upload's path gets its id), get, list in id order, delete
 *    refused while an unfinished job's spec names the file, done once it finished. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/datasets.h"
#include "store/datasets.h"
#include "daemon/paths.h"
#include "t.h"

static void test_inside(void)
{
    static const struct { const char *path; int want; } cases[] = {
        {"x.npy", 1}, {"sub/x.npy", 1}, {"./x.npy", 1}, {"sub/../x.npy", 1},
        {"/d/data/x.npy", 1}, {"/d/data", 1}, {"../x.npy", 0}, {"sub/../../x.npy", 0},
        {"/d/datax/x.npy", 0}, {"/d/x.npy", 0}, {"/etc/passwd", 0},
        {"//d//data//a", 1}, {"a/b/../../../data/x", 1}, {"a/b/../../../other/x", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = path_lexically_inside(cases[i].path, "/d/data");
        CHECK(got == cases[i].want, "inside(%s, /d/data) = %d, want %d", cases[i].path, got,
              cases[i].want);
    }
}

static void test_owns(const api_datasets *ds, const char *up)
{
    char p[4200];
    static const struct { const char *name; int want; } cases[] = {
        {"12.npy", 1}, {"3.csv", 1}, {"4.txt", 1}, {"5.idx", 1}, {"12.npz", 0},
        {"x12.npy", 0}, {".npy", 0}, {"12", 0}, {"sub/12.npy", 0}, {".spool-abc", 0},
        {"../12.npy", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", up, cases[i].name);
        int got = api_datasets_owns_path(ds, NULL, p);
        CHECK(got == cases[i].want, "owns(%s) = %d, want %d", cases[i].name, got, cases[i].want);
    }
    CHECK(!api_datasets_owns_path(ds, NULL, "/tmp/12.npy"), "a path elsewhere is not an upload");
}

static void test_merge(void)
{
    json_t *reg = json_pack("{s:s, s:s, s:I, s:f, s:s}", "path", "/u/3.npy", "format", "npy",
                            "limit", (json_int_t)0, "validation_fraction", 0.0, "binarize",
                            "none");
    json_t *job = json_pack("{s:I, s:I, s:s}", "id", (json_int_t)3, "limit", (json_int_t)100,
                            "binarize", "static");
    json_t *out = NULL;
    vaed_err err;
    vaed_err_clear(&err);
    CHECK(api_datasets_merge(job, reg, &out, &err) == 0, "merge: %s", err.msg);
    CHECK(out && !json_object_get(out, "id"), "the id is not part of the dataset object");
    CHECK(json_integer_value(json_object_get(out, "limit")) == 100, "limit overridden");
    CHECK(!strcmp(json_string_value(json_object_get(out, "binarize")), "static"),
          "binarize overridden");
    CHECK(!strcmp(json_string_value(json_object_get(out, "path")), "/u/3.npy"),
          "path from the registry");
    CHECK(json_integer_value(json_object_get(reg, "limit")) == 0, "the registered object is left alone");
    json_decref(out);
    json_decref(job);

    static const char *const refused[] = {"path", "format", "test_path", "max_len", "header",
                                          "overlong", "name", "colour"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        job = json_pack("{s:I, s:s}", "id", (json_int_t)3, refused[i], "x");
        out = NULL;
        int rc = api_datasets_merge(job, reg, &out, &err);
        char want[64];
        snprintf(want, sizeof want, "dataset.%s", refused[i]);
        CHECK(rc == VAED_EINVAL && !out && !strcmp(err.field, want),
              "%s with an id: rc %d field '%s'", refused[i], rc, err.field);
        json_decref(job);
    }
    json_decref(reg);
}

static void test_query(void)
{
    json_t *v;
    v = api_datasets_query_value("header", "true");
    CHECK(json_is_true(v), "header=true");
    json_decref(v);
    v = api_datasets_query_value("header", "0");
    CHECK(json_is_false(v), "header=0");
    json_decref(v);
    v = api_datasets_query_value("header", "maybe");
    CHECK(json_is_string(v), "header=maybe stays text for the parser to refuse");
    json_decref(v);
    v = api_datasets_query_value("max_len", "32");
    CHECK(json_is_integer(v) && json_integer_value(v) == 32, "max_len=32");
    json_decref(v);
    v = api_datasets_query_value("limit", "12x");
    CHECK(json_is_string(v), "limit=12x stays text");
    json_decref(v);
    v = api_datasets_query_value("validation_fraction", "0.25");
    CHECK(json_is_real(v) && json_real_value(v) == 0.25, "validation_fraction=0.25");
    json_decref(v);
    v = api_datasets_query_value("format", "npy");
    CHECK(json_is_string(v) && !strcmp(json_string_value(v), "npy"), "format stays text");
    json_decref(v);
}

/* A version 1 .npy of n x d float32 values i * 0.001 (row-major). */
static unsigned char *make_npy(long n, long d, size_t *len)
{
    char hdr[128];
    int h = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %ld), }",
                     n, d);
    int total = 10 + h + 1;
    int pad = (64 - total % 64) % 64;
    size_t hl = (size_t)(h + pad + 1);
    *len = 10 + hl + (size_t)(n * d) * 4;
    unsigned char *b = calloc(1, *len);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hl & 0xff);
    b[9] = (unsigned char)(hl >> 8);
    memcpy(b + 10, hdr, (size_t)h);
    memset(b + 10 + h, ' ', (size_t)pad);
    b[10 + hl - 1] = '\n';
    for (long i = 0; i < n * d; i++) {
        float f = (float)i * 0.001f;
        memcpy(b + 10 + hl + (size_t)i * 4, &f, 4);
    }
    return b;
}

static void test_info(void)
{
    size_t len;
    unsigned char *buf = make_npy(37, 5, &len);
    vae_dataset *d = NULL;
    vaed_err err;
    CHECK(vae_parse_npy(buf, len, "t.npy", &d, &err) == 0, "parse npy: %s", err.msg);
    if (d) {
        json_t *info = api_datasets_info(VAE_FMT_NPY, d, NULL);
        CHECK(json_integer_value(json_object_get(info, "rows")) == 37, "rows");
        CHECK(json_integer_value(json_object_get(info, "width")) == 5, "width");
        json_t *shape = json_object_get(info, "shape");
        CHECK(json_array_size(shape) == 2 && json_integer_value(json_array_get(shape, 0)) == 37 &&
                  json_integer_value(json_array_get(shape, 1)) == 5,
              "shape [37, 5]");
        CHECK(!strcmp(json_string_value(json_object_get(info, "format")), "npy"), "format");
        CHECK(!json_object_get(info, "test_rows"), "no test split");
        json_decref(info);
    }
    vae_dataset_free(d);
    free(buf);

    const char text[] = "abc\nca\nbbbb\n";
    d = NULL;
    CHECK(vae_parse_text(text, sizeof text - 1, 0, VAE_LONG_REJECT, NULL, "t.txt", &d, &err) == 0,
          "parse text: %s", err.msg);
    if (d) {
        json_t *info = api_datasets_info(VAE_FMT_TEXT, d, NULL);
        /* 3 lines, longest 4 characters, symbols a b c + padding */
        CHECK(json_integer_value(json_object_get(info, "rows")) == 3, "text rows");
        CHECK(json_integer_value(json_object_get(info, "max_len")) == 4, "text max_len");
        CHECK(json_integer_value(json_object_get(info, "vocab")) == 4, "text vocab");
        CHECK(json_integer_value(json_object_get(info, "width")) == 16, "text width 4 x 4");
        json_decref(info);
    }
    vae_dataset_free(d);
}

static void test_store(const char *dir, const char *up)
{
    char db[4200];
    snprintf(db, sizeof db, "%s/t.db", dir);
    store *st = NULL;
    vaed_err err;
    store_opts o;
    store_opts_default(&o);
    o.fsync_checkpoints = 0;
    CHECK(store_open(&st, db, &o, &err) == 0, "open: %s", err.msg);
    if (!st)
        return;
    int64_t a = 0, b = 0;
    store_dataset_new f = {.name = "f", .source = "file",
                           .spec = "{\"path\":\"/d/x.npy\",\"format\":\"npy\"}",
                           .info = "{\"rows\":3}", .size = 10};
    CHECK(store_dataset_insert(st, &f, &a, &err) == 0 && a > 0, "insert file: %s", err.msg);
    store_dataset_new u = {.name = "u", .source = "upload",
                           .spec = "{\"path\":\"/tmp/.spool-x\",\"format\":\"csv\"}",
                           .info = "{\"rows\":4}", .size = 20, .path_dir = up, .path_ext = "csv"};
    CHECK(store_dataset_insert(st, &u, &b, &err) == 0 && b == a + 1, "insert upload: %s", err.msg);
    store_dataset_new bad = {.name = "b", .source = "ftp", .spec = "{}", .info = "{}"};
    int64_t c = 0;
    CHECK(store_dataset_insert(st, &bad, &c, &err) == VAED_EINVAL, "bad source refused");

    store_dataset d;
    CHECK(store_dataset_get(st, b, &d, &err) == 0, "get: %s", err.msg);
    char want[4300];
    snprintf(want, sizeof want, "%s/%lld.csv", up, (long long)b);
    json_t *spec = json_loads(d.spec ? d.spec : "", 0, NULL);
    const char *path = json_string_value(json_object_get(spec, "path"));
    CHECK(path && !strcmp(path, want), "upload path holds the id: %s vs %s", path ? path : "-", want);
    CHECK(!strcmp(d.source, "upload") && d.size == 20 && d.created_at > 0, "row fields");
    json_decref(spec);
    store_dataset_clear(&d);
    CHECK(store_dataset_get(st, 999, &d, &err) == VAED_ENOTFOUND, "unknown id");

    store_dataset *all = NULL;
    size_t n = 0;
    CHECK(store_datasets_list(st, &all, &n, &err) == 0 && n == 2 && all[0].id == a &&
              all[1].id == b,
          "list by id (%zu)", n);
    store_datasets_free(all, n);

    /* A queued job whose spec names the upload's file holds it. */
    char jspec[4500];
    snprintf(jspec, sizeof jspec, "{\"dataset\":{\"path\":\"%s\",\"format\":\"csv\"}}", want);
    int64_t job = 0;
    store_job_new nj = {.name = "j", .spec = jspec};
    CHECK(store_job_insert(st, &nj, &job, &err) == 0, "job: %s", err.msg);
    store_ds_users users;
    store_dataset gone;
    memset(&gone, 0, sizeof gone);
    int rc = store_dataset_delete(st, b, &gone, &users, &err);
    CHECK(rc == VAED_ESTATE && users.n == 1 && users.ids[0] == job, "refused while used: rc %d n %zu",
          rc, users.n);
    char jobname[32];
    snprintf(jobname, sizeof jobname, "job %lld", (long long)job);
    CHECK(strstr(err.msg, jobname) != NULL, "message names the job: %s", err.msg);
    CHECK(store_dataset_get(st, b, &d, &err) == 0, "still there");
    store_dataset_clear(&d);
    /* The file dataset is not used by it. */
    CHECK(store_dataset_delete(st, a, &gone, &users, &err) == 0 && gone.id == a, "delete file: %s",
          err.msg);
    store_dataset_clear(&gone);
    CHECK(store_job_set_state(st, job, "completed", NULL, &err) == 0, "job done");
    CHECK(store_dataset_delete(st, b, &gone, &users, &err) == 0 && !strcmp(gone.source, "upload"),
          "delete after the job: %s", err.msg);
    store_dataset_clear(&gone);
    CHECK(store_dataset_delete(st, b, NULL, NULL, &err) == VAED_ENOTFOUND, "gone");
    CHECK(store_close(st, &err) == 0, "close: %s", err.msg);
}

int main(void)
{
    char dir[] = "/tmp/vaed-test-datasets.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char up[sizeof dir + 16];
    snprintf(up, sizeof up, "%s/up", dir);
    vaed_err err;
    api_datasets *ds = NULL, *ds2 = NULL;
    CHECK(api_datasets_new(&ds, NULL, up, &err) == 0, "new: %s", err.msg);
    char spool[sizeof up + 32];
    snprintf(spool, sizeof spool, "%s/.spool-left", up);
    FILE *f = fopen(spool, "w");
    if (f)
        fclose(f);
    CHECK(api_datasets_new(&ds2, NULL, up, &err) == 0, "new again: %s", err.msg);
    CHECK(access(spool, F_OK) != 0, "a partial upload left by a crash is deleted at start");
    api_datasets_free(ds2);
    CHECK(api_datasets_new(&ds2, dir, "", &err) == VAED_EINVAL && ds2 == NULL &&
              !strcmp(err.field, "upload-dir"),
          "no upload dir: refused naming it (%s)", err.msg);

    test_inside();
    if (!ds)
        return t_done("test_datasets");
    test_owns(ds, api_datasets_upload_dir(ds));
    test_merge();
    test_query();
    test_info();
    test_store(dir, api_datasets_upload_dir(ds));
    api_datasets_free(ds);

    char cmd[sizeof dir + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return t_done("test_datasets");
}
