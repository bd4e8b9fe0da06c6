/* datasets.c — the dataset registry (see datasets.h; README "Datasets").
 *
 * Registration, by path or by upload, goes through the same three steps, so both kinds
 * are validated alike:
 *   1. the dataset object ({"path", "format", options}) is parsed by the job spec's own
 *      parser (a job document holding just that dataset), so the keys, types and
 *      ranges accepted are exactly a job's, and errors name the field without the
 *      "dataset." prefix a job's would have;
 *   2. the file is loaded once with the real reader (vae_data_load): what does not parse
 *      is refused (422) with the reader's reason, and the shape is known;
 *   3. the row is stored: spec = the dataset object with every default written (what a
 *      job naming the dataset trains on), info = the shape.
 * A server-side path must lie inside --data-dir, as written and once symlinks are
 * resolved (the same rule as a job's dataset.path: outside is 403, decided by text
 * before the file system is asked). An upload is spooled to a file by the HTTP layer
 * (api_config.spool_routes), parsed there, fsync'ed, and renamed to <id>.<ext> after its
 * row is committed. A crash between that commit and the rename leaves a row whose file
 * is missing (a job naming it fails saying so; DELETE removes the row); partial
 * spool files left by a crash are deleted at the next start.
 *
 * The loads run on the HTTP thread that took the request: registering a large file
 * holds that thread for the load's time, which is the price of refusing a bad file at
 * once rather than in a job later. */
#include "api/datasets.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/errors.h"
#include "api/routes.h"
#include "daemon/paths.h"
#include "store/datasets.h"

#define MAX_JSON_BODY (1u << 20) /* a registration document, like any JSON body */
#define MAX_NAME 128

const char *const api_datasets_spool_routes[] = {"POST /v1/datasets", NULL};

/* The registry's configuration: set by api_datasets_new, read-only afterwards. */
struct api_datasets {
    char data_dir[PATH_MAX];    /* "" = server-side files are off */
    char upload_dir[PATH_MAX];
};

/* ---- configuration ---------------------------------------------------------------- */

static int configure(api_datasets *ds, const char *data_dir, const char *upload_dir,
                     vaed_err *err)
{
    if (data_dir && data_dir[0] && !realpath(data_dir, ds->data_dir))
        return vaed_err_set(err, VAED_EINVAL, "data-dir", "data-dir: %s: %s", data_dir,
                            strerror(errno));
    if (!upload_dir || !upload_dir[0])
        return vaed_err_set(err, VAED_EINVAL, "upload-dir", "upload-dir: must be given");
    if (mkdir(upload_dir, 0700) != 0 && errno != EEXIST)
        return vaed_err_set(err, VAED_EIO, "upload-dir", "upload-dir: %s: %s", upload_dir,
                            strerror(errno));
    struct stat sb;
    if (!realpath(upload_dir, ds->upload_dir) || stat(ds->upload_dir, &sb) != 0 ||
        !S_ISDIR(sb.st_mode)) {
        int e = errno ? errno : ENOTDIR;
        return vaed_err_set(err, VAED_EIO, "upload-dir", "upload-dir: %s: %s", upload_dir,
                            strerror(e));
    }
    /* Partial uploads a crash left behind: nothing refers to them. */
    DIR *d = opendir(ds->upload_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (!strncmp(e->d_name, API_SPOOL_PREFIX, strlen(API_SPOOL_PREFIX)))
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    return 0;
}

int api_datasets_new(api_datasets **out, const char *data_dir, const char *upload_dir,
                     vaed_err *err)
{
    api_datasets *ds = xcalloc(1, sizeof *ds);
    int rc = configure(ds, data_dir, upload_dir, err);
    if (rc) {
        free(ds);
        ds = NULL;
    }
    *out = ds;
    return rc;
}

void api_datasets_free(api_datasets *ds) { free(ds); }

const char *api_datasets_upload_dir(const api_datasets *ds) { return ds->upload_dir; }

/* ---- paths ------------------------------------------------------------------------ */

/* A registration's path (field names it): inside --data-dir by text and once resolved;
 * OUT real (PATH_MAX bytes) its real path. 403 outside or with no --data-dir, 422 when
 * it does not exist. */
static int check_path(const api_datasets *ds, const char *path, const char *field, char *real,
                      vaed_err *err)
{
    if (!ds->data_dir[0])
        return vaed_err_set(err, VAED_EPERM, field,
                            "server-side dataset paths are off (start the daemon with "
                            "--data-dir, or upload the file)");
    return path_check_inside(path, ds->data_dir, field, real, err);
}

/* ---- pure helpers ----------------------------------------------------------------- */

int api_datasets_merge(const json_t *job_ds, const json_t *registered, json_t **out,
                       vaed_err *err)
{
    static const char *const overridable[] = {"limit", "validation_fraction", "binarize", NULL};
    *out = NULL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)job_ds, key, v) {
        if (!strcmp(key, "id"))
            continue;
        int ok = 0;
        for (int i = 0; overridable[i] && !ok; i++)
            ok = !strcmp(key, overridable[i]);
        if (!ok) {
            char f[160];
            snprintf(f, sizeof f, "dataset.%s", key);
            return vaed_err_set(err, VAED_EINVAL, f,
                                "%s: cannot be combined with dataset.id (only limit, "
                                "validation_fraction and binarize can override a registered "
                                "dataset)", f);
        }
    }
    if (!json_is_object(registered))
        return vaed_err_set(err, VAED_EINVAL, "dataset.id",
                            "dataset.id: the registered dataset's spec is not an object");
    json_t *m = json_deep_copy(registered);
    if (!m)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    json_object_foreach((json_t *)job_ds, key, v)
        if (strcmp(key, "id"))
            json_object_set(m, key, v);
    *out = m;
    return 0;
}

json_t *api_datasets_query_value(const char *key, const char *value)
{
    char *end;
    if (!strcmp(key, "header")) {
        if (!strcmp(value, "true") || !strcmp(value, "1"))
            return json_true();
        if (!strcmp(value, "false") || !strcmp(value, "0"))
            return json_false();
    } else if (!strcmp(key, "max_len") || !strcmp(key, "limit")) {
        errno = 0;
        long long x = strtoll(value, &end, 10);
        if (value[0] && !*end && !errno)
            return json_integer(x);
    } else if (!strcmp(key, "validation_fraction")) {
        errno = 0;
        double x = strtod(value, &end);
        if (value[0] && !*end && !errno && isfinite(x))
            return json_real(x);
    }
    return json_string(value);
}

static const char *kind_name(enum vae_data_kind k)
{
    return k == VAE_DATA_U8 ? "uint8" : k == VAE_DATA_F32 ? "float" : "text";
}

static const char *const fmt_names[] = {"", "idx", "npy", "csv", "text"};

json_t *api_datasets_info(enum vae_data_format fmt, const vae_dataset *train,
                          const vae_dataset *test)
{
    json_t *o = json_object();
    json_t *shape = json_array();
    json_array_append_new(shape, json_integer(train->n));
    if (train->kind == VAE_DATA_SEQ) {
        json_array_append_new(shape, json_integer(train->max_len));
    } else if (train->rows > 0 && train->cols > 0) {
        json_array_append_new(shape, json_integer(train->rows));
        json_array_append_new(shape, json_integer(train->cols));
    } else {
        json_array_append_new(shape, json_integer(train->dim));
    }
    json_object_set_new(o, "format",
                        json_string(fmt >= VAE_FMT_IDX && fmt <= VAE_FMT_TEXT ? fmt_names[fmt]
                                                                              : "?"));
    json_object_set_new(o, "kind", json_string(kind_name(train->kind)));
    json_object_set_new(o, "rows", json_integer(train->n));
    json_object_set_new(o, "width", json_integer(train->dim));
    json_object_set_new(o, "shape", shape);
    if (train->kind == VAE_DATA_SEQ) {
        json_object_set_new(o, "max_len", json_integer(train->max_len));
        json_object_set_new(o, "vocab", json_integer(train->vocab));
    }
    if (test)
        json_object_set_new(o, "test_rows", json_integer(test->n));
    return o;
}

/* ---- errors ----------------------------------------------------------------------- */


/* Registration fields are the job's dataset fields without "dataset.": take the prefix
 * out of err's field and message. */
static void unprefix(vaed_err *e)
{
    static const char pre[] = "dataset.";
    size_t k = sizeof pre - 1;
    if (!strncmp(e->field, pre, k))
        memmove(e->field, e->field + k, strlen(e->field + k) + 1);
    if (!strncmp(e->msg, pre, k))
        memmove(e->msg, e->msg + k, strlen(e->msg + k) + 1);
}

/* Replace every occurrence of from in e->msg by to (a spool file's name by "upload"). */
static void msg_replace(vaed_err *e, const char *from, const char *to)
{
    char out[sizeof e->msg];
    size_t o = 0, fl = strlen(from), tl = strlen(to);
    const char *p = e->msg;
    while (*p && o + 1 < sizeof out) {
        if (fl && !strncmp(p, from, fl) && o + tl < sizeof out) {
            memcpy(out + o, to, tl);
            o += tl;
            p += fl;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    memcpy(e->msg, out, o + 1);
}

/* ---- registration ----------------------------------------------------------------- */

static api_ctx *ctx(api_req *req) { return api_req_user(req); }

/* Whether a dataset object names a text file (so the check document needs the
 * categorical likelihood the spec parser requires with text). */
static int is_text(const json_t *ds)
{
    const char *f = json_string_value(json_object_get(ds, "format"));
    if (f)
        return !strcmp(f, "text");
    const char *p = json_string_value(json_object_get(ds, "path"));
    size_t n = p ? strlen(p) : 0;
    return (n >= 4 && !strcasecmp(p + n - 4, ".txt")) ||
           (n >= 7 && !strcasecmp(p + n - 7, ".txt.gz"));
}

/* Parse ds (borrowed) as a job's dataset object. OUT *spec. Errors without "dataset.". */
static int parse_ds(const json_t *ds, vae_spec *spec, vaed_err *err)
{
    json_t *doc = json_pack("{s:O}", "dataset", ds);
    if (is_text(ds))
        json_object_set_new(doc, "model", json_pack("{s:s}", "likelihood", "categorical"));
    int rc = vae_spec_parse(spec, doc, err);
    json_decref(doc);
    if (rc)
        unprefix(err);
    else if (!spec->dataset.path[0])
        rc = vaed_err_set(err, VAED_EINVAL, "path", "path: required (the file to register)");
    return rc;
}

/* Load spec's dataset with the real reader. OUT *info (new reference). */
static int load_info(const vae_spec *spec, json_t **info, vaed_err *err)
{
    vae_dataset *train = NULL, *test = NULL;
    *info = NULL;
    int rc = vae_data_load(&spec->dataset, &train, &test, err);
    if (rc) {
        unprefix(err);
        if (!err->field[0])
            snprintf(err->field, sizeof err->field, "path");
        if (rc == VAED_EIO)
            rc = VAED_EINVAL;
        return rc;
    }
    enum vae_data_format fmt = spec->dataset.format;
    if (fmt == VAE_FMT_NONE) { /* left out: the loader took it from the file name */
        const char *p = spec->dataset.path;
        size_t n = strlen(p);
        if (n > 3 && !strcasecmp(p + n - 3, ".gz"))
            n -= 3;
        fmt = n >= 4 && !strncasecmp(p + n - 4, ".npy", 4)   ? VAE_FMT_NPY
              : n >= 4 && !strncasecmp(p + n - 4, ".csv", 4) ? VAE_FMT_CSV
              : n >= 4 && !strncasecmp(p + n - 4, ".txt", 4) ? VAE_FMT_TEXT
                                                             : VAE_FMT_IDX;
    }
    *info = api_datasets_info(fmt, train, test);
    vae_dataset_free(train);
    vae_dataset_free(test);
    return 0;
}

/* The dataset object of the API: the row's id, name, source, created_at and size, its
 * info (format, rows, shape...) and its spec. New reference. */
static json_t *ds_object(const store_dataset *d)
{
    json_t *o = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)d->id, "name", d->name,
                          "source", d->source);
    json_t *info = json_loads(d->info, 0, NULL);
    if (json_is_object(info))
        json_object_update(o, info);
    json_decref(info);
    json_t *spec = json_loads(d->spec, 0, NULL);
    json_object_set_new(o, "spec", spec ? spec : json_null());
    json_object_set_new(o, "size", json_integer(d->size));
    if (d->sha256[0])
        json_object_set_new(o, "sha256", json_string(d->sha256));
    json_object_set_new(o, "created_at", json_real(d->created_at));
    return o;
}

/* Reply 201 with dataset id as stored, and its Location. */
static void reply_created(api_req *req, int64_t id)
{
    store_dataset d;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = store_dataset_get(ctx(req)->st, id, &d, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    char loc[64];
    snprintf(loc, sizeof loc, "/v1/datasets/%lld", (long long)id);
    api_set_header(req, "Location", loc);
    api_reply_json(req, 201, ds_object(&d));
    store_dataset_clear(&d);
}

/* A dataset's name: the same rule as a job's (vae_spec_check_name). */
static int check_name(const json_t *v, char *name, vaed_err *err)
{
    const char *s = json_string_value(v);
    if (!s || !s[0] || strlen(s) >= MAX_NAME || strlen(s) != json_string_length(v))
        return vaed_err_set(err, VAED_EINVAL, "name",
                            "required, a non-empty string of at most %d bytes", MAX_NAME - 1);
    int rc = vae_spec_check_name(s, strlen(s), MAX_NAME, "name", err);
    if (rc)
        return rc;
    snprintf(name, MAX_NAME, "%s", s);
    return 0;
}

/* Bytes of the file at path, or 0. */
static int64_t file_size(const char *path)
{
    struct stat sb;
    return path[0] && stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

/* Put a resolved path back into the spec's field (n bytes). */
static int set_real(char *dst, size_t n, const char *real, const char *field, vaed_err *err)
{
    if (strlen(real) >= n)
        return vaed_err_set(err, VAED_EINVAL, field, "%s: the resolved path is too long", field);
    memcpy(dst, real, strlen(real) + 1);
    return 0;
}

/* Store the dataset row: spec's dataset object and info as compact JSON, the rest of
 * the row (name, source, size, where an upload goes) from nd. Returns 0 and OUT *id,
 * VAED_ENOMEM, or the store's error. */
static int insert_row(api_req *req, const vae_spec *spec, const json_t *info,
                      store_dataset_new *nd, int64_t *id, vaed_err *err)
{
    json_t *full = vae_spec_to_json(spec);
    char *spec_text = full ? json_dumps(json_object_get(full, "dataset"), JSON_COMPACT) : NULL;
    char *info_text = json_dumps(info, JSON_COMPACT);
    int rc;
    if (!spec_text || !info_text) {
        rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory writing the dataset's row");
    } else {
        nd->spec = spec_text;
        nd->info = info_text;
        rc = store_dataset_insert(ctx(req)->st, nd, id, err);
        nd->spec = nd->info = NULL; /* freed below */
    }
    free(spec_text);
    free(info_text);
    json_decref(full);
    return rc;
}

/* POST /v1/datasets with a JSON document: register a server-side file. */
static void register_file(api_req *req, const char *body_path, uint64_t body_len)
{
    json_t *doc = NULL, *ds = NULL, *info = NULL;
    char name[MAX_NAME], real[PATH_MAX], treal[PATH_MAX];
    vae_spec spec;
    vaed_err err;
    vaed_err_clear(&err);
    int rc;

    if (api_query_only(req, (const char *const[]){NULL}))
        return;
    if (body_len > MAX_JSON_BODY) {
        api_reply_error(req, 413, "payload_too_large", NULL,
                        "a registration document over %u bytes; upload files with another "
                        "Content-Type", MAX_JSON_BODY);
        return;
    }
    json_error_t je;
    doc = body_path ? json_load_file(body_path, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!doc) {
        if (body_path)
            api_reply_error(req, 400, "bad_json", NULL, "invalid JSON at line %d, column %d: %s",
                            je.line, je.column, je.text);
        else
            api_reply_error(req, 400, "bad_json", NULL,
                            "request body is empty; a JSON document was expected");
        return;
    }
    if (!json_is_object(doc)) {
        api_reply_error(req, 422, "invalid", NULL, "the registration must be a JSON object");
        goto done;
    }
    if ((rc = check_name(json_object_get(doc, "name"), name, &err)))
        goto fail;
    ds = json_deep_copy(doc);
    json_object_del(ds, "name");
    if ((rc = parse_ds(ds, &spec, &err)))
        goto fail;
    if ((rc = check_path(ctx(req)->datasets, spec.dataset.path, "path", real, &err)) ||
        (rc = set_real(spec.dataset.path, sizeof spec.dataset.path, real, "path", &err)))
        goto fail;
    if (spec.dataset.test_path[0] &&
        ((rc = check_path(ctx(req)->datasets, spec.dataset.test_path, "test_path", treal,
                          &err)) ||
         (rc = set_real(spec.dataset.test_path, sizeof spec.dataset.test_path, treal,
                        "test_path", &err))))
        goto fail;
    if ((rc = load_info(&spec, &info, &err)))
        goto fail;
    store_dataset_new nd = {
        .name = name, .source = "file",
        .size = file_size(spec.dataset.path) + file_size(spec.dataset.test_path),
    };
    int64_t id;
    if ((rc = insert_row(req, &spec, info, &nd, &id, &err)))
        goto fail;
    reply_created(req, id);
    goto done;
fail:
    api_reply_vaed(req, rc, &err);
done:
    json_decref(info);
    json_decref(ds);
    json_decref(doc);
}

static const char *upload_ext(enum vae_data_format f)
{
    switch (f) {
    case VAE_FMT_NPY: return "npy";
    case VAE_FMT_CSV: return "csv";
    case VAE_FMT_TEXT: return "txt";
    case VAE_FMT_IDX: return "idx";
    default: return NULL;
    }
}

/* POST /v1/datasets?name=N&format=F[&options] with the file as the body. */
static void register_upload(api_req *req, const char *body_path, uint64_t body_len)
{
    static const char *const allowed[] = {"name", "format", "header", "max_len", "overlong",
                                          "limit", "validation_fraction", "binarize", NULL};
    json_t *ds = NULL, *info = NULL;
    char name[MAX_NAME];
    vae_spec spec;
    vaed_err err;
    vaed_err_clear(&err);
    int rc;

    if (api_query_only(req, allowed))
        return;
    const char *qname = api_query_get(req, "name");
    json_t *jn = qname ? json_string(qname) : NULL;
    rc = check_name(jn, name, &err);
    json_decref(jn);
    if (rc)
        goto fail;
    if (!api_query_get(req, "format")) {
        rc = vaed_err_set(&err, VAED_EINVAL, "format",
                          "format: required for an upload (npy, csv, text or idx)");
        goto fail;
    }
    if (!body_path || body_len == 0) {
        rc = vaed_err_set(&err, VAED_EINVAL, "body", "body: the upload is empty");
        goto fail;
    }
    ds = json_object();
    json_object_set_new(ds, "path", json_string(body_path));
    for (size_t i = 0, n = api_query_count(req); i < n; i++) {
        const char *k, *v;
        api_query_at(req, i, &k, &v);
        if (strcmp(k, "name"))
            json_object_set_new(ds, k, api_datasets_query_value(k, v));
    }
    if ((rc = parse_ds(ds, &spec, &err)))
        goto fail;
    if ((rc = load_info(&spec, &info, &err))) {
        msg_replace(&err, body_path, "upload");
        if (!strcmp(err.field, "path"))
            snprintf(err.field, sizeof err.field, "body");
        goto fail;
    }
    /* The data must be on disk before its row says it exists. */
    if (path_fsync(body_path, 0) != 0) {
        rc = vaed_err_set(&err, VAED_EIO, NULL, "syncing the upload: %s", strerror(errno));
        api_reply_from_err(req, 500, "internal", &err);
        goto done;
    }
    store_dataset_new nd = {
        .name = name, .source = "upload",
        .size = (int64_t)body_len, .path_dir = ctx(req)->datasets->upload_dir,
        .path_ext = upload_ext(spec.dataset.format), .bytes_path = body_path,
    };
    int64_t id;
    if ((rc = insert_row(req, &spec, info, &nd, &id, &err)))
        goto fail;
    char final[PATH_MAX + 32];
    snprintf(final, sizeof final, "%s/%lld.%s", ctx(req)->datasets->upload_dir, (long long)id,
             nd.path_ext);
    if (rename(body_path, final) != 0) {
        int e = errno;
        store_dataset_delete(ctx(req)->st, id, NULL, NULL, NULL);
        api_reply_error(req, 500, "internal", NULL, "moving the upload into place: %s",
                        strerror(e));
        goto done;
    }
    api_req_body_file_keep(req);
    path_fsync(ctx(req)->datasets->upload_dir, 1);
    reply_created(req, id);
    goto done;
fail:
    api_reply_vaed(req, rc, &err);
done:
    json_decref(info);
    json_decref(ds);
}

/* Content-Type without parameters, lower-case compared. */
static int ctype_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    return ct && !strncasecmp(ct, want, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

void api_h_datasets_post(api_req *req)
{
    uint64_t len = 0;
    const char *path = api_req_body_file(req, &len);
    const char *ct = api_header(req, "Content-Type");
    if (ctype_is(ct, "application/json")) {
        register_file(req, path, len);
        return;
    }
    if (ct && !ctype_is(ct, "application/octet-stream") && !ctype_is(ct, "text/csv") &&
        !ctype_is(ct, "text/plain")) {
        api_reply_error(req, 415, "unsupported_media_type", NULL,
                        "Content-Type %s: a registration is application/json, an upload "
                        "application/octet-stream, text/csv or text/plain (curl: add -H "
                        "'Content-Type: application/octet-stream' to --data-binary)",
                        ct);
        return;
    }
    register_upload(req, path, len);
}

/* ---- reading and deleting --------------------------------------------------------- */

void api_h_datasets_list(api_req *req)
{
    if (api_query_only(req, (const char *const[]){NULL}))
        return;
    store_dataset *d = NULL;
    size_t n = 0;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = store_datasets_list(ctx(req)->st, &d, &n, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, ds_object(&d[i]));
    store_datasets_free(d, n);
    api_reply_json(req, 200, json_pack("{s:o}", "datasets", arr));
}

void api_h_datasets_get(api_req *req)
{
    int64_t id = api_param_int(req, "id");
    store_dataset d;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = store_dataset_get(ctx(req)->st, id, &d, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    api_reply_json(req, 200, ds_object(&d));
    store_dataset_clear(&d);
}

void api_h_datasets_delete(api_req *req)
{
    int64_t id = api_param_int(req, "id");
    store_dataset d;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = store_dataset_delete(ctx(req)->st, id, &d, NULL, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    if (!strcmp(d.source, "upload")) {
        json_t *spec = json_loads(d.spec, 0, NULL);
        const char *name = api_datasets_upload_name(json_string_value(json_object_get(spec, "path")));
        char local[PATH_MAX + 32];
        snprintf(local, sizeof local, "%s/%s", ctx(req)->datasets->upload_dir,
                 name ? name : "");
        /* this node's copy; other nodes' go at their next start (api_datasets_prune) */
        if (name && unlink(local) == 0)
            path_fsync(ctx(req)->datasets->upload_dir, 1);
        json_decref(spec);
    }
    store_dataset_clear(&d);
    api_reply_text(req, 204, NULL, "", 0);
}

/* ---- jobs naming a dataset -------------------------------------------------------- */

int api_datasets_spec_parse(store *st, vae_spec *out, const json_t *doc, vaed_err *err)
{
    const json_t *ds = json_is_object(doc) ? json_object_get(doc, "dataset") : NULL;
    const json_t *idv = json_is_object(ds) ? json_object_get(ds, "id") : NULL;
    if (!idv)
        return vae_spec_parse(out, doc, err);
    vaed_err_clear(err);
    json_int_t id = json_is_integer(idv) ? json_integer_value(idv) : 0;
    if (id <= 0)
        return vaed_err_set(err, VAED_EINVAL, "dataset.id",
                            "dataset.id: must be a positive integer (a registered dataset)");
    json_t *merged = NULL, *reg = NULL, *copy = NULL;
    store_dataset d;
    int rc = store_dataset_get(st, id, &d, err);
    if (rc == VAED_ENOTFOUND)
        return vaed_err_set(err, VAED_EINVAL, "dataset.id",
                            "dataset.id: no registered dataset %lld (GET /v1/datasets lists them)",
                            (long long)id);
    if (rc)
        return rc;
    reg = json_loads(d.spec, 0, NULL);
    store_dataset_clear(&d);
    if ((rc = api_datasets_merge(ds, reg, &merged, err)))
        goto done;
    copy = json_copy((json_t *)doc); /* shallow: only "dataset" is replaced */
    if (!copy)
        json_decref(merged);
    if (!copy || json_object_set_new(copy, "dataset", merged)) { /* steals merged */
        rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
        goto done;
    }
    rc = vae_spec_parse(out, copy, err);
done:
    json_decref(copy);
    json_decref(reg);
    return rc;
}
