/* audit.c — the audit trail's rows (see audit.h).
 *
 * An append is a writer call nobody waits for (store_writer_cast): the row's strings are
 * copied into one block the queue owns, the insert and the retention delete run on the
 * writer thread in the op's savepoint. Retention deletes by id (ids only grow:
 * AUTOINCREMENT), so in steady state each append deletes one row through the primary
 * key. Reads open their own read-only connection (store_read_each): the trail is read
 * rarely, by an administrator. */
#include "store/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_impl.h"
#include "store/writer_call.h"

#define AU_COLS "id, time, token, remote, method, path, status, created"

static const char SQL_INSERT[] =
    "INSERT INTO audit(time, token, remote, method, path, status, created) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id";
static const char SQL_RETAIN[] = "DELETE FROM audit WHERE id <= ?1 - ?2";
static const char SQL_AFTER[] = "SELECT " AU_COLS " FROM audit WHERE id > coalesce(?1, 0) "
                                "ORDER BY id";
static const char SQL_NEWEST[] = "SELECT " AU_COLS " FROM audit ORDER BY id DESC";

/* The queued row: the struct, then its strings, in one allocation. */
typedef struct au_op {
    store_audit_new a;
    int64_t keep;
    char text[];
} au_op;

static void bind_opt(sql_stmt *s, int i, const char *t)
{
    if (t)
        sql_bind_text(s, i, t);
    else
        sql_bind_null(s, i);
}

static int do_append(sql_conn *db, void *arg, int *vrc, int64_t *out_id, char *msg, size_t msgsz)
{
    const au_op *o = arg;
    sql_stmt *s = NULL;
    int rc = sql_prepare(db, SQL_INSERT, &s, NULL);
    if (rc != 0)
        return rc;
    sql_bind_double(s, 1, o->a.time);
    bind_opt(s, 2, o->a.token);
    sql_bind_text(s, 3, o->a.remote);
    sql_bind_text(s, 4, o->a.method);
    sql_bind_text(s, 5, o->a.path);
    sql_bind_int64(s, 6, o->a.status);
    bind_opt(s, 7, o->a.created);
    rc = store_wrun(s, out_id);
    sql_finalize(s);
    if (rc != SQL_DONE)
        return rc;
    if ((rc = sql_prepare(db, SQL_RETAIN, &s, NULL)) != 0)
        return rc;
    sql_bind_int64(s, 1, *out_id);
    sql_bind_int64(s, 2, o->keep);
    rc = store_wrun(s, NULL);
    sql_finalize(s);
    return rc;
}

/* Append src (may be NULL: *dst stays NULL) at *p, advancing it. */
static void put(char **p, const char *src, const char **dst)
{
    if (!src)
        return;
    size_t n = strlen(src) + 1;
    memcpy(*p, src, n);
    *dst = *p;
    *p += n;
}

int store_audit_append(store *st, const store_audit_new *a, int64_t keep, vaed_err *err)
{
    if (!a->method || !a->path || keep < 1)
        return vaed_err_set(err, VAED_EINVAL, "audit", "an audit row needs a method, a path "
                                                       "and keep >= 1");
    const char *remote = a->remote ? a->remote : "";
    size_t len = strlen(remote) + strlen(a->method) + strlen(a->path) + 3 +
                 (a->token ? strlen(a->token) + 1 : 0) + (a->created ? strlen(a->created) + 1 : 0);
    /* small, bounded by the HTTP layer (a path of 1 KiB at most): the abort policy */
    au_op *o = xmalloc(sizeof *o + len);
    memset(&o->a, 0, sizeof o->a);
    o->a.time = a->time;
    o->a.status = a->status;
    o->keep = keep;
    char *p = o->text;
    put(&p, remote, &o->a.remote);
    put(&p, a->method, &o->a.method);
    put(&p, a->path, &o->a.path);
    put(&p, a->token, &o->a.token);
    put(&p, a->created, &o->a.created);
    return store_writer_cast(st, do_append, o, free, sizeof *o + len, err);
}

/* ---- reads ---------------------------------------------------------------------- */

typedef struct rows_acc {
    store_audit *arr;
    size_t n, cap;
    int limit, more;
} rows_acc;

static char *col_dup(sql_stmt *s, int i, int null_ok)
{
    const char *t = sql_column_text(s, i);
    if (!t && null_ok)
        return NULL;
    return xstrdup(t ? (const char *)t : "");
}

static int add_row(void *arg, sql_stmt *s)
{
    rows_acc *a = arg;
    if (a->n == (size_t)a->limit) {
        a->more = 1;
        return 1; /* stop: one row past the page says there are more */
    }
    if (a->n == a->cap) {
        /* a page of at most limit rows (the API caps it at 1000): the abort policy */
        a->cap = a->cap ? a->cap * 2 : 16;
        store_audit *q = realloc(a->arr, a->cap * sizeof *a->arr);
        if (!q)
            abort();
        a->arr = q;
    }
    store_audit *r = &a->arr[a->n++];
    r->id = sql_column_int64(s, 0);
    r->time = sql_column_double(s, 1);
    r->token = col_dup(s, 2, 1);
    r->remote = col_dup(s, 3, 0);
    r->method = col_dup(s, 4, 0);
    r->path = col_dup(s, 5, 0);
    r->status = (int)sql_column_int64(s, 6);
    r->created = col_dup(s, 7, 1);
    return 0;
}

int store_audit_list(store *st, int64_t after, int limit, store_audit **out, size_t *n,
                     int *more, vaed_err *err)
{
    *out = NULL;
    *n = 0;
    *more = 0;
    if (limit < 1)
        return vaed_err_set(err, VAED_EINVAL, "limit", "limit: must be at least 1");
    rows_acc a = {.limit = limit};
    /* store_read_each binds ?1 only when the id is positive: "after 0" reads as NULL,
     * which coalesce turns back into 0 */
    int rc = store_read_each(st, after >= 0 ? SQL_AFTER : SQL_NEWEST, after, add_row, &a,
                             "reading the audit trail", err);
    if (rc < 0) {
        store_audits_free(a.arr, a.n);
        return rc;
    }
    if (after < 0) /* newest first from the query: oldest first for the caller */
        for (size_t i = 0; i < a.n / 2; i++) {
            store_audit t = a.arr[i];
            a.arr[i] = a.arr[a.n - 1 - i];
            a.arr[a.n - 1 - i] = t;
        }
    *out = a.arr;
    *n = a.n;
    *more = a.more;
    return 0;
}

void store_audits_free(store_audit *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++) {
        free(a[i].token);
        free(a[i].remote);
        free(a[i].method);
        free(a[i].path);
        free(a[i].created);
    }
    free(a);
}
