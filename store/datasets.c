/* datasets.c — the dataset registry's rows (see datasets.h).
 *
 * Writes are writer calls (writer_call.h): each runs on the one write connection, in
 * its own savepoint, and the caller waits for the commit. A delete checks in the same
 * call that no unfinished job uses the dataset, so the check and the delete see one
 * state of the jobs table. Reads open a read-only connection for the call: the read
 * pool's statements are store.c's own, and the registry is read rarely (a listing, a
 * job submission naming a dataset), so a connection per call costs nothing that shows. */
#include "store/datasets.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_impl.h"
#include "store/writer_call.h"

#define DS_COLS "id, name, source, spec, info, size, created_at"

static const char SQL_GET[] = "SELECT " DS_COLS " FROM datasets WHERE id = ?1";
static const char SQL_LIST[] = "SELECT " DS_COLS " FROM datasets ORDER BY id";
static const char SQL_INSERT[] = "INSERT INTO datasets(name, source, spec, info, size, created_at) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id";
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

/* ---- writes --------------------------------------------------------------------- */

typedef struct ins_arg {
    const store_dataset_new *nd;
} ins_arg;

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
    return rc;
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
