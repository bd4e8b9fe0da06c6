/* evals.c — the rows of evaluations and their blocks (see evals.h).
 *
 * Writes are writer calls (writer_call.h): each runs on the one write connection in its
 * own savepoint and is waited for, so a block reported stored is committed together
 * with the rows_done that counts it. Reads open a short-lived read-only connection, as
 * store/datasets.c does. */
#include "store/evals.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_impl.h"
#include "store/writer_call.h"

#define EV_COLS "id, job, ckpt_step, asked, split, k, seed, rows, rows_done, state, reason, " \
                "result, created_at, started_at, finished_at, seconds"

static const char SQL_GET[] = "SELECT " EV_COLS " FROM evaluations WHERE id = ?1";
static const char SQL_LIST_JOB[] = "SELECT " EV_COLS " FROM evaluations WHERE job = ?1 "
                                   "ORDER BY id";
static const char SQL_LIST_ALL[] = "SELECT " EV_COLS " FROM evaluations ORDER BY id";
static const char SQL_LIST_OPEN[] = "SELECT " EV_COLS " FROM evaluations "
                                    "WHERE state IN ('queued', 'running') ORDER BY id";
static const char SQL_INSERT[] =
    "INSERT INTO evaluations(job, ckpt_step, asked, split, k, seed, rows, state, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8) RETURNING id";
static const char SQL_STATE[] =
    "UPDATE evaluations SET state = ?2, reason = ?3, result = coalesce(?4, result), "
    "rows = CASE WHEN ?6 >= 0 THEN ?6 ELSE rows END, "
    "started_at = CASE WHEN ?2 = 'running' THEN coalesce(started_at, ?5) ELSE started_at END, "
    "finished_at = CASE WHEN ?2 IN ('completed', 'failed', 'cancelled') THEN ?5 "
    "                   ELSE finished_at END "
    "WHERE id = ?1 AND state NOT IN ('completed', 'failed', 'cancelled')";
static const char SQL_EXISTS[] = "SELECT state FROM evaluations WHERE id = ?1";
static const char SQL_DROP_BLOCKS[] = "DELETE FROM eval_blocks WHERE eval = ?1";
static const char SQL_BLOCK_PUT[] =
    "INSERT INTO eval_blocks(eval, block, rows, data) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (eval, block) DO UPDATE SET rows = excluded.rows, data = excluded.data";
static const char SQL_BLOCK_COUNT[] =
    "UPDATE evaluations SET rows_done = (SELECT coalesce(sum(rows), 0) FROM eval_blocks "
    "WHERE eval = ?1), seconds = seconds + ?2 WHERE id = ?1 AND state IN ('queued', 'running')";
static const char SQL_BEST[] = "SELECT " STORE_SQL_BEST_STEP;
static const char SQL_BLOCKS[] = "SELECT block, rows, data FROM eval_blocks WHERE eval = ?1 "
                                 "ORDER BY block";

void store_eval_clear(store_eval *e)
{
    if (!e)
        return;
    free(e->reason);
    free(e->result);
    memset(e, 0, sizeof *e);
}

void store_evals_free(store_eval *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        store_eval_clear(&e[i]);
    free(e);
}

static char *col_dup_or_null(sql_stmt *s, int i)
{
    const char *t = sql_column_text(s, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static void col_copy(sql_stmt *s, int i, char *dst, size_t n)
{
    const char *t = sql_column_text(s, i);
    snprintf(dst, n, "%s", t ? (const char *)t : "");
}

static void read_row(sql_stmt *s, store_eval *e)
{
    memset(e, 0, sizeof *e);
    e->id = sql_column_int64(s, 0);
    e->job = sql_column_int64(s, 1);
    e->ckpt_step = sql_column_int64(s, 2);
    col_copy(s, 3, e->asked, sizeof e->asked);
    col_copy(s, 4, e->split, sizeof e->split);
    e->k = (int)sql_column_int64(s, 5);
    e->seed = sql_column_int64(s, 6);
    e->rows = sql_column_int64(s, 7);
    e->rows_done = sql_column_int64(s, 8);
    col_copy(s, 9, e->state, sizeof e->state);
    e->reason = col_dup_or_null(s, 10);
    e->result = col_dup_or_null(s, 11);
    e->created_at = sql_column_double(s, 12);
    e->started_at = sql_column_double(s, 13);
    e->finished_at = sql_column_double(s, 14);
    e->seconds = sql_column_double(s, 15);
}

/* ---- reads ---------------------------------------------------------------------- */

typedef struct rows_acc {
    store_eval *arr;
    size_t n, cap;
} rows_acc;

static int add_row(void *arg, sql_stmt *s)
{
    rows_acc *a = arg;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        store_eval *q = realloc(a->arr, cap * sizeof *a->arr);
        if (!q)
            return VAED_ENOMEM;
        a->arr = q;
        a->cap = cap;
    }
    read_row(s, &a->arr[a->n++]);
    return 0;
}

static int read_rows(store *st, const char *sql, int64_t id, store_eval **out, size_t *n,
                     vaed_err *err)
{
    rows_acc a = {0};
    int rc = store_read_each(st, sql, id, add_row, &a, "reading evaluations", err);
    if (rc == VAED_ENOMEM)
        vaed_err_set(err, rc, NULL, "out of memory reading evaluations");
    if (rc) {
        store_evals_free(a.arr, a.n);
        a.arr = NULL;
        a.n = 0;
    }
    *out = a.arr;
    *n = a.n;
    return rc;
}

int store_eval_get(store *st, int64_t id, store_eval *e, vaed_err *err)
{
    store_eval *arr;
    size_t n;
    memset(e, 0, sizeof *e);
    int rc = read_rows(st, SQL_GET, id, &arr, &n, err);
    if (rc)
        return rc;
    if (n == 0) {
        free(arr);
        return vaed_err_set(err, VAED_ENOTFOUND, "", "evaluation %" PRId64 " not found", id);
    }
    *e = arr[0];
    free(arr);
    return 0;
}

int store_evals_list(store *st, int64_t job, int unfinished, store_eval **out, size_t *n,
                     vaed_err *err)
{
    if (unfinished)
        return read_rows(st, SQL_LIST_OPEN, 0, out, n, err);
    return read_rows(st, job > 0 ? SQL_LIST_JOB : SQL_LIST_ALL, job, out, n, err);
}

typedef struct blocks_arg {
    store_eval_block_fn fn;
    void *arg;
} blocks_arg;

static int each_block(void *arg, sql_stmt *s)
{
    blocks_arg *b = arg;
    return b->fn(b->arg, sql_column_int64(s, 0), sql_column_int64(s, 1),
                 sql_column_blob(s, 2), (size_t)(int)sql_column_bytes(s, 2));
}

int store_eval_blocks(store *st, int64_t id, store_eval_block_fn fn, void *arg, vaed_err *err)
{
    blocks_arg b = {fn, arg};
    return store_read_each(st, SQL_BLOCKS, id, each_block, &b, "reading evaluation blocks", err);
}

static int best_row(void *arg, sql_stmt *s)
{
    int64_t *step = arg;
    if (sql_column_type(s, 0) != SQL_NULL)
        *step = sql_column_int64(s, 0);
    return 0;
}

int store_eval_best(store *st, int64_t job, int64_t *step, vaed_err *err)
{
    int64_t best = -1;
    int rc = store_read_each(st, SQL_BEST, job, best_row, &best, "reading the best evaluation",
                             err);
    if (!rc && best < 0)
        rc = vaed_err_set(err, VAED_ENOTFOUND, "checkpoint",
                          "checkpoint \"best\": job %" PRId64
                          " has no completed evaluation to choose it by", job);
    if (!rc)
        *step = best;
    return rc;
}

/* ---- writes --------------------------------------------------------------------- */

static int do_insert(sql_conn *db, void *arg, int *vrc, int64_t *out_id, char *msg, size_t msgsz)
{
    const store_eval_new *ne = arg;
    sql_stmt *s = NULL;
    int rc = sql_prepare(db, SQL_INSERT, &s, NULL);
    if (rc != 0)
        return rc;
    sql_bind_int64(s, 1, ne->job);
    sql_bind_int64(s, 2, ne->ckpt_step);
    sql_bind_text(s, 3, ne->asked);
    sql_bind_text(s, 4, ne->split);
    sql_bind_int64(s, 5, ne->k);
    sql_bind_int64(s, 6, ne->seed);
    sql_bind_int64(s, 7, ne->rows);
    sql_bind_double(s, 8, store_now());
    rc = store_wrun(s, out_id);
    sql_finalize(s);
    if (rc != SQL_DONE && sql_errclass_of(db) == SQL_EC_CONSTRAINT) {
        *vrc = VAED_ENOTFOUND;
        snprintf(msg, msgsz, "job %" PRId64 " not found", ne->job);
        return SQL_DONE;
    }
    return rc;
}

int store_eval_insert(store *st, const store_eval_new *ne, int64_t *id, vaed_err *err)
{
    if (!ne->split || (strcmp(ne->split, "test") && strcmp(ne->split, "train")))
        return vaed_err_set(err, VAED_EINVAL, "split", "split: \"test\" or \"train\"");
    return store_writer_call(st, 0, do_insert, (void *)ne, id, err);
}

typedef struct state_arg {
    int64_t id;
    const char *state, *reason, *result;
    int64_t rows;
} state_arg;

static int do_state(sql_conn *db, void *arg, int *vrc, int64_t *out_id, char *msg, size_t msgsz)
{
    const state_arg *a = arg;
    sql_stmt *s = NULL;
    int rc = sql_prepare(db, SQL_STATE, &s, NULL);
    if (rc != 0)
        return rc;
    sql_bind_int64(s, 1, a->id);
    sql_bind_text(s, 2, a->state);
    if (a->reason)
        sql_bind_text(s, 3, a->reason);
    if (a->result)
        sql_bind_text(s, 4, a->result);
    sql_bind_double(s, 5, store_now());
    sql_bind_int64(s, 6, a->rows);
    rc = store_wrun(s, NULL);
    int64_t changed = sql_changes(s);
    sql_finalize(s);
    if (rc != SQL_DONE)
        return rc;
    if (changed == 0) { /* gone, or finished already: say which */
        if ((rc = sql_prepare(db, SQL_EXISTS, &s, NULL)) != 0)
            return rc;
        sql_bind_int64(s, 1, a->id);
        int found = sql_step(s, NULL) == SQL_ROW;
        if (found)
            snprintf(msg, msgsz, "evaluation %" PRId64 " is %s", a->id,
                     (const char *)sql_column_text(s, 0));
        else
            snprintf(msg, msgsz, "evaluation %" PRId64 " not found", a->id);
        *vrc = found ? VAED_ESTATE : VAED_ENOTFOUND;
        sql_finalize(s);
        return SQL_DONE;
    }
    if (strcmp(a->state, "completed") && strcmp(a->state, "failed") &&
        strcmp(a->state, "cancelled"))
        return SQL_DONE;
    if ((rc = sql_prepare(db, SQL_DROP_BLOCKS, &s, NULL)) != 0)
        return rc;
    sql_bind_int64(s, 1, a->id);
    rc = store_wrun(s, NULL);
    sql_finalize(s);
    return rc;
}

int store_eval_set_state(store *st, int64_t id, const char *state, const char *reason,
                         const char *result, int64_t rows, vaed_err *err)
{
    static const char *const names[] = {STORE_EVAL_STATES};
    int ok = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        ok |= state && !strcmp(state, names[i]);
    if (!ok)
        return vaed_err_set(err, VAED_EINVAL, "state", "not an evaluation state: %s",
                            state ? state : "(null)");
    state_arg a = {id, state, reason, result, rows};
    return store_writer_call(st, STORE_LEASE_EVAL(id), do_state, &a, NULL, err);
}

typedef struct block_arg {
    int64_t id, block, rows;
    const void *data;
    size_t len;
    double secs;
} block_arg;

static int do_block(sql_conn *db, void *arg, int *vrc, int64_t *out_id, char *msg, size_t msgsz)
{
    const block_arg *a = arg;
    sql_stmt *s = NULL;
    int rc = sql_prepare(db, SQL_BLOCK_PUT, &s, NULL);
    if (rc != 0)
        return rc;
    sql_bind_int64(s, 1, a->id);
    sql_bind_int64(s, 2, a->block);
    sql_bind_int64(s, 3, a->rows);
    sql_bind_blob(s, 4, a->data, (size_t)((int)a->len));
    rc = store_wrun(s, NULL);
    sql_finalize(s);
    if (rc != SQL_DONE && sql_errclass_of(db) == SQL_EC_CONSTRAINT) {
        *vrc = VAED_ENOTFOUND;
        snprintf(msg, msgsz, "evaluation %" PRId64 " not found", a->id);
        return SQL_DONE;
    }
    if (rc != SQL_DONE)
        return rc;
    if ((rc = sql_prepare(db, SQL_BLOCK_COUNT, &s, NULL)) != 0)
        return rc;
    sql_bind_int64(s, 1, a->id);
    sql_bind_double(s, 2, a->secs);
    rc = store_wrun(s, NULL);
    int64_t changed = sql_changes(s);
    sql_finalize(s);
    if (rc == SQL_DONE && changed == 0) { /* finished (cancelled through another node):
                                             the savepoint drops the block */
        *vrc = VAED_ESTATE;
        snprintf(msg, msgsz, "evaluation %" PRId64 " has finished", a->id);
    }
    return rc;
}

int store_eval_block_put(store *st, int64_t id, int64_t block, int64_t rows, const void *data,
                         size_t len, double secs, vaed_err *err)
{
    if (len > (size_t)1 << 30)
        return vaed_err_set(err, VAED_ETOOBIG, NULL, "evaluation block of %zu bytes", len);
    block_arg a = {id, block, rows, data, len, secs};
    return store_writer_call(st, STORE_LEASE_EVAL(id), do_block, &a, NULL, err);
}

json_t *store_eval_json(const store_eval *e)
{
    json_t *o = json_pack("{s:I, s:I, s:{s:I, s:s}, s:s, s:i, s:I, s:I, s:I, s:s, s:f}", "id",
                          (json_int_t)e->id, "job", (json_int_t)e->job, "checkpoint", "step",
                          (json_int_t)e->ckpt_step, "asked", e->asked, "split", e->split, "k",
                          e->k, "seed", (json_int_t)e->seed, "rows", (json_int_t)e->rows,
                          "rows_done", (json_int_t)e->rows_done, "state", e->state,
                          "created_at", e->created_at);
    if (!o)
        return NULL;
    json_object_set_new(o, "reason", e->reason ? json_string(e->reason) : json_null());
    json_object_set_new(o, "started_at", e->started_at > 0 ? json_real(e->started_at) : json_null());
    json_object_set_new(o, "finished_at",
                        e->finished_at > 0 ? json_real(e->finished_at) : json_null());
    json_object_set_new(o, "seconds", json_real(e->seconds));
    /* the rate of the committed blocks' compute time: stays right across restarts */
    const double rate = e->seconds > 0 ? (double)e->rows_done / e->seconds : 0;
    json_object_set_new(o, "rows_per_sec", rate > 0 ? json_real(rate) : json_null());
    json_object_set_new(o, "eta_s", rate > 0 && e->rows > 0 && strcmp(e->state, "completed")
                                        ? json_real((double)(e->rows - e->rows_done) / rate)
                                        : json_null());
    json_t *res = e->result ? json_loads(e->result, 0, NULL) : NULL;
    json_object_set_new(o, "result", res ? res : json_null());
    return o;
}

