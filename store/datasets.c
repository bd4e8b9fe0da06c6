/* datasets.c — the dataset registry's rows (see datasets.h).
 *
 * Writes are writer calls (writer_call.h): each runs on the one write connection, in
 * its own savepoint, and the caller waits for the commit. A delete checks in the same
 * call that no unfinished job uses the dataset, so the check and the delete see one
 * state of the jobs table. Reads open a read-only connection for the call: the read
 * pool's statements are store.c's own, and the registry is read rarely (a listing, a
 * job submission naming a dataset), so a connection per call costs nothing that shows. */
#include "store/datasets.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_impl.h"
#include "store/writer_call.h"

#define DS_COLS "id, name, source, spec, info, size, created_at, sha256"

static const char SQL_GET[] = "SELECT " DS_COLS " FROM datasets WHERE id = ?1";
static const char SQL_LIST[] = "SELECT " DS_COLS " FROM datasets ORDER BY id";
static const char SQL_INSERT[] = "INSERT INTO datasets(name, source, spec, info, size, created_at) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id";
/* The upload whose file a job's spec names (a job stores the resolved path). */
static const char SQL_BY_PATH[] = "SELECT " DS_COLS " FROM datasets WHERE source = 'upload' "
                                  "AND json_extract(spec, '$.path') = ?1 ORDER BY id";
static const char SQL_PART_INSERT[] =
    "INSERT INTO dataset_blobs(dataset, seq, data) VALUES (?1, ?2, ?3)";
static const char SQL_PART[] = "SELECT data FROM dataset_blobs WHERE dataset = ?1 AND seq = ?2";
static const char SQL_SET_SHA[] = "UPDATE datasets SET sha256 = ?2 WHERE id = ?1";
static const char SQL_SET_PATH[] = "UPDATE datasets SET spec = json_set(spec, '$.path', ?2) "
                                   "WHERE id = ?1";
/* Unfinished jobs whose dataset files are this dataset's: a job naming a dataset by id
 * is stored with the resolved path (api/datasets.c), so the path is what ties them. */
static const char SQL_USERS[] =
    "WITH d(p, t) AS (SELECT json_extract(spec, '$.path'), json_extract(spec, '$.test_path') "
    "                 FROM datasets WHERE id = ?1), "
    "u(id, p, t) AS (SELECT id, json_extract(spec, '$.dataset.path'), "
    "                json_extract(spec, '$.dataset.test_path') FROM jobs "
    "                WHERE state IN ('queued', 'running', 'paused', 'interrupted') "
    "                AND json_valid(spec)) "
    "SELECT u.id FROM u, d WHERE u.p IN (d.p, d.t) OR u.t IN (d.p, d.t) ORDER BY u.id";
static const char SQL_DELETE[] = "DELETE FROM datasets WHERE id = ?1";

void store_dataset_clear(store_dataset *d)
{
    if (!d)
        return;
    free(d->name);
    free(d->spec);
    free(d->info);
    memset(d, 0, sizeof *d);
}

void store_datasets_free(store_dataset *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++)
        store_dataset_clear(&d[i]);
    free(d);
}

static char *col_dup(sql_stmt *s, int i)
{
    const char *t = sql_column_text(s, i);
    return xstrdup(t ? (const char *)t : "");
}

static void read_row(sql_stmt *s, store_dataset *d)
{
    memset(d, 0, sizeof *d);
    d->id = sql_column_int64(s, 0);
    d->name = col_dup(s, 1);
    const char *src = sql_column_text(s, 2);
    snprintf(d->source, sizeof d->source, "%s", src ? (const char *)src : "");
    d->spec = col_dup(s, 3);
    d->info = col_dup(s, 4);
    d->size = sql_column_int64(s, 5);
    d->created_at = sql_column_double(s, 6);
    const char *h = sql_column_text(s, 7);
    snprintf(d->sha256, sizeof d->sha256, "%s", h ? h : "");
}

/* ---- SHA-256 (GnuTLS's, the library libmicrohttpd already brings) ------------------- */

typedef struct digest {
    gnutls_hash_hd_t h;
} digest;

static int digest_init(digest *d) { return gnutls_hash_init(&d->h, GNUTLS_DIG_SHA256) ? -1 : 0; }

static void digest_add(digest *d, const void *p, size_t n)
{
    gnutls_hash(d->h, p, n);
}

/* Ends d; OUT hex (65 bytes) the digest in lower-case hex. */
static void digest_hex(digest *d, char *hex)
{
    unsigned char b[32];
    gnutls_hash_deinit(d->h, b);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
}

/* ---- reads ---------------------------------------------------------------------- */

typedef struct rows_acc {
    store_dataset *arr;
    size_t n, cap;
} rows_acc;

static int add_row(void *arg, sql_stmt *s)
{
    rows_acc *a = arg;
    if (a->n == a->cap) {
        /* one row per registered dataset: small, so the abort-on-failure policy */
        a->cap = a->cap ? a->cap * 2 : 8;
        store_dataset *q = realloc(a->arr, a->cap * sizeof *a->arr);
        if (!q)
            abort();
        a->arr = q;
    }
    read_row(s, &a->arr[a->n++]);
    return 0;
}

/* Rows of sql (with ?1 = id when id > 0) into a new array. */
static int read_rows(store *st, const char *sql, int64_t id, store_dataset **out, size_t *n,
                     vaed_err *err)
{
    rows_acc a = {0};
    int rc = store_read_each(st, sql, id, add_row, &a, "reading datasets", err);
    if (rc) {
        store_datasets_free(a.arr, a.n);
        a.arr = NULL;
        a.n = 0;
    }
    *out = a.arr;
    *n = a.n;
    return rc;
}

int store_dataset_get(store *st, int64_t id, store_dataset *d, vaed_err *err)
{
    store_dataset *arr;
    size_t n;
    memset(d, 0, sizeof *d);
    int rc = read_rows(st, SQL_GET, id, &arr, &n, err);
    if (rc)
        return rc;
    if (n == 0) {
        free(arr);
        return vaed_err_set(err, VAED_ENOTFOUND, "", "dataset %" PRId64 " not found", id);
    }
    *d = arr[0];
    free(arr);
    return 0;
}

int store_datasets_list(store *st, store_dataset **out, size_t *n, vaed_err *err)
{
    return read_rows(st, SQL_LIST, 0, out, n, err);
}

int store_dataset_by_path(store *st, const char *path, store_dataset *d, vaed_err *err)
{
    memset(d, 0, sizeof *d);
    sql_conn *db = NULL;
    sql_stmt *s = NULL;
    int rc = store_read_open(st, SQL_BY_PATH, &db, &s, "reading datasets", err);
    if (rc)
        return rc;
    sql_bind_text(s, 1, path);
    int sr = sql_step(s, NULL);
    if (sr == SQL_ROW)
        read_row(s, d);
    else if (sr == SQL_DONE)
        rc = vaed_err_set(err, VAED_ENOTFOUND, "", "no uploaded dataset is kept at %s", path);
    else
        rc = store_dberr(err, db, "reading datasets");
    sql_finalize(s);
    sql_close(db);
    return rc;
}

/* write(2) all of n bytes; 0 or -1 (errno). */
static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int store_dataset_fetch(store *st, const store_dataset *d, int fd, vaed_err *err)
{
    if (!d->sha256[0])
        return vaed_err_set(err, VAED_ENOTFOUND, "", "dataset %" PRId64 "'s bytes are not kept "
                            "in the database (an upload of a build before schema v10)", d->id);
    sql_conn *db = NULL;
    sql_stmt *s = NULL;
    digest dg;
    if (digest_init(&dg))
        return vaed_err_set(err, VAED_ENOMEM, NULL, "starting a SHA-256");
    int rc = store_read_open(st, SQL_PART, &db, &s, "reading a dataset's bytes", err);
    if (!rc)
        store_read_begin(db); /* one snapshot: the parts of one upload */
    int64_t got = 0;
    for (int64_t seq = 0; !rc; seq++) {
        sql_bind_int64(s, 1, d->id);
        sql_bind_int64(s, 2, seq);
        int sr = sql_step(s, NULL);
        if (sr == SQL_DONE)
            break;
        if (sr != SQL_ROW) {
            rc = store_dberr(err, db, "reading dataset %" PRId64 "'s bytes", d->id);
            break;
        }
        const unsigned char *p = sql_column_blob(s, 0);
        size_t n = sql_column_bytes(s, 0);
        digest_add(&dg, p, n);
        got += (int64_t)n;
        if (write_all(fd, p, n))
            rc = vaed_err_set(err, VAED_EIO, "", "writing dataset %" PRId64 "'s copy: %s",
                              d->id, strerror(errno));
        sql_reset(s);
        sql_clear_bindings(s);
    }
    sql_finalize(s);
    sql_close(db);
    char hex[65];
    digest_hex(&dg, hex);
    if (!rc && (got != d->size || strcmp(hex, d->sha256)))
        rc = vaed_err_set(err, VAED_EIO, "", "dataset %" PRId64 "'s bytes in the database are "
                          "%" PRId64 " bytes of SHA-256 %s, not the %" PRId64 " bytes of %s "
                          "uploaded", d->id, got, hex, d->size, d->sha256);
    return rc;
}

/* ---- writes --------------------------------------------------------------------- */

typedef struct ins_arg {
    const store_dataset_new *nd;
} ins_arg;

/* The upload's bytes as rows of dataset_blobs, and their SHA-256 on the dataset's row;
 * a file that does not read back as size bytes fails the insert (EIO). */
static int insert_parts(sql_conn *db, int64_t id, const store_dataset_new *nd, int *vrc,
                        char *msg, size_t msgsz)
{
    FILE *f = fopen(nd->bytes_path, "rb");
    const int open_errno = errno; /* before malloc or GnuTLS can change it */
    unsigned char *buf = malloc(STORE_DS_PART);
    digest dg;
    int dg_ok = digest_init(&dg) == 0;
    sql_stmt *s = NULL;
    int rc = SQL_DONE;
    int64_t got = 0;
    if (!f || !buf || !dg_ok) {
        *vrc = f ? VAED_ENOMEM : VAED_EIO;
        snprintf(msg, msgsz, "keeping the upload: %s", f ? "out of memory" : strerror(open_errno));
        goto out;
    }
    if ((rc = sql_prepare(db, SQL_PART_INSERT, &s, NULL)) != 0)
        goto out;
    size_t n;
    for (int64_t seq = 0; (n = fread(buf, 1, STORE_DS_PART, f)) > 0; seq++) {
        digest_add(&dg, buf, n);
        got += (int64_t)n;
        sql_bind_int64(s, 1, id);
        sql_bind_int64(s, 2, seq);
        sql_bind_blob(s, 3, buf, n);
        if ((rc = store_wrun(s, NULL)) != SQL_DONE)
            goto out;
    }
    if (ferror(f) || got != nd->size) {
        *vrc = VAED_EIO;
        snprintf(msg, msgsz, "keeping the upload: read %" PRId64 " of its %" PRId64 " bytes",
                 got, nd->size);
        goto out;
    }
    char hex[65];
    digest_hex(&dg, hex);
    dg_ok = 0;
    sql_finalize(s);
    if ((rc = sql_prepare(db, SQL_SET_SHA, &s, NULL)) != 0)
        goto out;
    sql_bind_int64(s, 1, id);
    sql_bind_text(s, 2, hex);
    rc = store_wrun(s, NULL);
out:
    if (dg_ok) {
        char unused[65];
        digest_hex(&dg, unused);
    }
    sql_finalize(s);
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

static int do_insert(sql_conn *db, void *arg, int *vrc, int64_t *out_id, char *msg, size_t msgsz)
{
    const store_dataset_new *nd = ((ins_arg *)arg)->nd;
    sql_stmt *s = NULL;
    int rc = sql_prepare(db, SQL_INSERT, &s, NULL);
    if (rc != 0)
        return rc;
    sql_bind_text(s, 1, nd->name ? nd->name : "");
    sql_bind_text(s, 2, nd->source);
    sql_bind_text(s, 3, nd->spec);
    sql_bind_text(s, 4, nd->info);
    sql_bind_int64(s, 5, nd->size);
    sql_bind_double(s, 6, store_now());
    rc = store_wrun(s, out_id);
    sql_finalize(s);
    if (rc != SQL_DONE)
        return rc;
    if (!nd->path_dir)
        return SQL_DONE;
    char path[4096];
    int w = snprintf(path, sizeof path, "%s/%" PRId64 ".%s", nd->path_dir, *out_id,
                     nd->path_ext ? nd->path_ext : "bin");
    if (w < 0 || (size_t)w >= sizeof path) {
        *vrc = VAED_EINVAL;
        snprintf(msg, msgsz, "upload path too long");
        return SQL_DONE;
    }
    if ((rc = sql_prepare(db, SQL_SET_PATH, &s, NULL)) != 0)
        return rc;
    sql_bind_int64(s, 1, *out_id);
    sql_bind_text(s, 2, path);
    rc = store_wrun(s, NULL);
    sql_finalize(s);
    if (rc != SQL_DONE || !nd->bytes_path)
        return rc;
    return insert_parts(db, *out_id, nd, vrc, msg, msgsz);
}

static int json_object_text(const char *text, const char *field, vaed_err *err)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    int ok = json_is_object(j);
    json_decref(j);
    return ok ? 0 : vaed_err_set(err, VAED_EINVAL, field, "%s: must be a JSON object", field);
}

int store_dataset_insert(store *st, const store_dataset_new *nd, int64_t *id, vaed_err *err)
{
    if (!nd->source || (strcmp(nd->source, "file") && strcmp(nd->source, "upload")))
        return vaed_err_set(err, VAED_EINVAL, "source", "source: must be \"file\" or \"upload\"");
    int rc = json_object_text(nd->spec, "spec", err);
    if (rc || (rc = json_object_text(nd->info, "info", err)))
        return rc;
    ins_arg a = {nd};
    return store_writer_call(st, 0, do_insert, &a, id, err);
}

typedef struct del_arg {
    int64_t id;
    store_dataset *gone;
    store_ds_users *users;
} del_arg;

static int do_delete(sql_conn *db, void *arg, int *vrc, int64_t *out_id, char *msg, size_t msgsz)
{
    del_arg *a = arg;
    sql_stmt *s = NULL;
    int rc = sql_prepare(db, SQL_GET, &s, NULL);
    if (rc != 0)
        return rc;
    sql_bind_int64(s, 1, a->id);
    rc = sql_step(s, NULL);
    if (rc == SQL_ROW)
        read_row(s, a->gone);
    sql_finalize(s);
    if (rc == SQL_DONE) {
        *vrc = VAED_ENOTFOUND;
        snprintf(msg, msgsz, "dataset %" PRId64 " not found", a->id);
        return SQL_DONE;
    }
    if (rc != SQL_ROW)
        return rc;

    if ((rc = sql_prepare(db, SQL_USERS, &s, NULL)) != 0)
        return rc;
    sql_bind_int64(s, 1, a->id);
    while ((rc = sql_step(s, NULL)) == SQL_ROW) {
        if (a->users->n < STORE_DS_MAX_USERS)
            a->users->ids[a->users->n] = sql_column_int64(s, 0);
        a->users->n++;
    }
    sql_finalize(s);
    if (rc != SQL_DONE)
        return rc;
    if (a->users->n > 0) {
        size_t used = (size_t)snprintf(msg, msgsz, "dataset %" PRId64 " is in use by job%s",
                                       a->id, a->users->n > 1 ? "s" : "");
        for (size_t i = 0; i < a->users->n && i < STORE_DS_MAX_USERS && used < msgsz; i++)
            used += (size_t)snprintf(msg + used, msgsz - used, "%s %" PRId64, i ? "," : "",
                                     a->users->ids[i]);
        if (used < msgsz)
            snprintf(msg + used, msgsz - used, " (queued, running or paused); delete it once "
                                                "they have finished or been cancelled");
        *vrc = VAED_ESTATE;
        return SQL_DONE;
    }

    if ((rc = sql_prepare(db, SQL_DELETE, &s, NULL)) != 0)
        return rc;
    sql_bind_int64(s, 1, a->id);
    rc = store_wrun(s, NULL);
    sql_finalize(s);
    *out_id = a->id;
    return rc;
}

int store_dataset_delete(store *st, int64_t id, store_dataset *gone, store_ds_users *users,
                         vaed_err *err)
{
    store_dataset g;
    store_ds_users u;
    memset(&g, 0, sizeof g);
    memset(&u, 0, sizeof u);
    del_arg a = {id, &g, &u};
    int rc = store_writer_call(st, 0, do_delete, &a, NULL, err);
    if (users)
        *users = u;
    if (rc == 0 && gone)
        *gone = g;
    else
        store_dataset_clear(&g);
    return rc;
}
