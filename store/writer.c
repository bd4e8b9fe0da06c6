/* writer.c — the write queue and the one writer thread (see store.h, "Threads",
 * "Batching", "Durability", "Write failures").
 *
 * An op is a self-contained copy of one write call's arguments. Public write calls
 * build one, append it to st->head..tail under st->mu and return (or wait for it to
 * be resolved when the caller needs the result). The writer takes the whole queue as
 * one batch and runs it inside BEGIN IMMEDIATE ... COMMIT, each op in a SAVEPOINT, so
 * one op's constraint failure drops that op alone while a disk failure rolls the
 * whole batch back. Invariants:
 *   - ops are applied in enqueue order, and a batch is a prefix of the queue, so a
 *     commit that holds an op holds everything enqueued before it;
 *   - an op with a waiter or a callback is resolved exactly once (committed, or failed
 *     and dropped); any other op stays queued until it is committed or fails for a
 *     reason retrying cannot fix;
 *   - pending_ops/pending_bytes count ops enqueued and not yet resolved, including the
 *     batch in flight;
 *   - metrics_sum (the min/max pyramid, store/pyramid.h) is updated by the op that
 *     writes the rows, inside its savepoint: it commits or rolls back with them. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pyramid.h"
#include "store/store_impl.h"
#include "store/writer_call.h"
#include "store/writer_ops.h"

#define URGENT_BYTES (8u << 20)      /* commit early past this much queued data */
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 5.0
#define CLOSE_TRIES 3                /* batch attempts at close before giving up */

#define W_PARAM(ID, name, unit, flags, meaning) ", ?"
#define W_EXCLUDED(ID, name, unit, flags, meaning) ", " #name " = excluded." #name
/* A metric row's upsert: job, step, the metric fields (metric_fields.h), kl_groups,
 * bound by position; W_METRIC_MULTI has MULTI_ROWS rows of values (metric_multi_sql). */
#define METRIC_HEAD "INSERT INTO metrics(job, step" VAE_METRIC_SQL_COLUMNS ", kl_groups) VALUES "
#define METRIC_ROW "(?, ?" VAE_METRIC_FIELDS(W_PARAM) ", ?)"
#define METRIC_UPSERT                                                                      \
    " ON CONFLICT (job, step) DO UPDATE SET kl_groups = excluded.kl_groups"                \
    VAE_METRIC_FIELDS(W_EXCLUDED)
#define METRIC_PARAMS (3 + STORE_M_NCOLS)
/* Rows an INSERT when a run of them has ascending steps: on PostgreSQL every statement
 * is a round trip (scripts/bench-sql: 5x the rows a second at 100 rows a statement). */
#define MULTI_ROWS 32
/* The writer's statements, in the SQL both SQLite and PostgreSQL read (an upsert is
 * ON CONFLICT … DO UPDATE, never SQLite's INSERT OR REPLACE); W_BEGIN is SQLite's
 * (BEGIN IMMEDIATE: take the write lock at once), "BEGIN" on PostgreSQL. */
static const char *const wsql[W_NSTMT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SAVEPOINT] = "SAVEPOINT op",
    [W_RELEASE] = "RELEASE op",
    [W_ROLLBACK_TO] = "ROLLBACK TO op",
    [W_METRIC] = METRIC_HEAD METRIC_ROW METRIC_UPSERT,
    [W_EPOCH] = "INSERT INTO epochs(job, epoch, split, step, xent, kl, elbo, "
                "active_units, kl_dims, time) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
                "ON CONFLICT (job, epoch, split) DO UPDATE SET step = excluded.step, "
                "xent = excluded.xent, kl = excluded.kl, elbo = excluded.elbo, "
                "active_units = excluded.active_units, kl_dims = excluded.kl_dims, "
                "time = excluded.time",
    [W_EVENT_SUPERSEDE] = "UPDATE schedule_events SET superseded = 1 "
                          "WHERE job = ?1 AND effective_step >= ?2 AND superseded = 0",
    [W_EVENT] = STORE_SQL_EVENT_INSERT,
    [W_CKPT] = "INSERT INTO checkpoints(job, step, epoch, created_at, kind, "
               "size, blob) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
               "ON CONFLICT (job, step) DO UPDATE SET epoch = excluded.epoch, "
               "created_at = excluded.created_at, kind = excluded.kind, "
               "size = excluded.size, blob = excluded.blob",
    /* Rotating kinds are periodic, manual, pause, and epoch unless ?3 keeps those.
     * Delete the rotating ones that are neither among the newest ?2 rotating ones
     * nor the job's newest checkpoint of any kind. 'final' never rotates. */
    [W_CKPT_RETAIN] =
        "DELETE FROM checkpoints WHERE job = ?1 "
        "AND (kind IN ('periodic', 'manual', 'pause') OR (kind = 'epoch' AND ?3 = 0)) "
        "AND step <> (SELECT max(step) FROM checkpoints WHERE job = ?1) "
        "AND step NOT IN (SELECT step FROM checkpoints WHERE job = ?1 "
        "  AND (kind IN ('periodic', 'manual', 'pause') OR (kind = 'epoch' AND ?3 = 0)) "
        "  ORDER BY step DESC LIMIT ?2) "
        /* never a checkpoint an evaluation still needs, nor the best evaluated one
         * (the checkpoint "best" names: store/evals.h) */
        "AND step NOT IN (SELECT ckpt_step FROM evaluations WHERE job = ?1 "
        "  AND state IN ('queued', 'running')) "
        "AND step IS DISTINCT FROM " STORE_SQL_BEST_STEP " "
        /* nor a PBT member's state at a boundary where it kept it: another member may
         * still take it (daemon/pbt_run.c) */
        "AND step NOT IN (SELECT step FROM pbt_decisions WHERE job = ?1 AND donor IS NULL)",
    [W_JOB_INSERT] = STORE_SQL_JOB_INSERT,
    [W_JOB_STATE] =
        "UPDATE jobs SET state = ?2, reason = ?3, updated_at = ?4, "
        "started_at = CASE WHEN ?2 = 'running' AND started_at IS NULL THEN ?4 "
        "                  ELSE started_at END, "
        "finished_at = CASE WHEN ?2 IN ('completed', 'failed', 'cancelled') THEN ?4 "
        "                   ELSE NULL END "
        "WHERE id = ?1",
    [W_JOB_PROGRESS] = "UPDATE jobs SET step = ?2, epoch = ?3, updated_at = ?4 WHERE id = ?1",
    [W_JOB_FRONT] = "UPDATE jobs SET queue_seq = (SELECT min(queue_seq) FROM jobs) - 1, "
                    "updated_at = ?2 WHERE id = ?1",
    [W_JOB_PRIO] = "UPDATE jobs SET priority = ?2, updated_at = ?3 WHERE id = ?1",
    [W_SUM_GET] = "SELECT n, agg FROM metrics_sum WHERE job = ?1 AND lvl = ?2 "
                  "AND bucket >= ?3 AND bucket <= ?4",
    [W_SUM_PUT] = STORE_SQL_SUM_PUT,
    [W_RAW] = "SELECT step" VAE_METRIC_SQL_COLUMNS
              " FROM metrics WHERE job = ?1 AND step >= ?2 AND step <= ?3",
};

static char multi_sql[4096];
static pthread_once_t multi_once = PTHREAD_ONCE_INIT;

static void metric_multi_sql(void)
{
    size_t w = (size_t)snprintf(multi_sql, sizeof multi_sql, "%s", METRIC_HEAD);
    for (int r = 0; r < MULTI_ROWS; r++)
        w += (size_t)snprintf(multi_sql + w, sizeof multi_sql - w, "%s" METRIC_ROW, r ? ", " : "");
    snprintf(multi_sql + w, sizeof multi_sql - w, "%s", METRIC_UPSERT);
}

_Static_assert(sizeof METRIC_HEAD + MULTI_ROWS * (sizeof METRIC_ROW + 2) + sizeof METRIC_UPSERT <
                   sizeof multi_sql, "room for W_METRIC_MULTI");

/* Bind row m of job as the row at parameter base + 1.. of s. */
static void bind_metric(sql_stmt *s, int base, int64_t job, const store_metric *m)
{
    sql_bind_int64(s, base + 1, job);
    sql_bind_int64(s, base + 2, m->step);
    double v[STORE_M_NCOLS];
    store_metric_values(m, v);
    for (int k = 0; k < STORE_M_NCOLS; k++)
        sql_bind_double(s, base + 3 + k, v[k]);
    if (m->n_groups > 0)
        sql_bind_blob(s, base + METRIC_PARAMS, m->kl_groups, (size_t)m->n_groups * sizeof(double));
    else
        sql_bind_null(s, base + METRIC_PARAMS);
}

void store_op_free(struct op *o)
{
    if (!o)
        return;
    switch (o->kind) {
    case OP_METRICS: free(o->u.metrics.rows); break;
    case OP_EPOCH: free(o->u.epoch.kl_dims); break;
    case OP_EVENT: free(o->u.event.schedule); break;
    case OP_CKPT: free(o->u.ckpt.blob); break;
    case OP_JOB_INSERT: free(o->u.insert.name), free(o->u.insert.spec); break;
    case OP_JOB_STATE: free(o->u.state.reason); break;
    case OP_CALL:
        if (o->u.call.free_arg)
            o->u.call.free_arg(o->u.call.arg);
        break;
    default: break;
    }
    free(o);
}

struct op *store_op_new(enum op_kind kind, int64_t job)
{
    struct op *o = xcalloc(1, sizeof *o);
    o->kind = kind;
    o->job = job;
    o->bytes = sizeof *o;
    return o;
}

/* Retrying can fix rc, a failure on db: the disk, the lock, the connection or memory
 * may come back (sql_transient is the one definition of which failures those are). */
static int transient(sql_conn *db, int rc)
{
    return rc == VAED_ENOMEM || sql_transient(sql_errclass_of(db));
}

/* Step s to completion and reset it; SQL_DONE on success. With row != NULL, the
 * first column of the first row is stored there. */
int store_wrun(sql_stmt *s, int64_t *row)
{
    int rc;
    while ((rc = sql_step(s, NULL)) == SQL_ROW)
        if (row)
            *row = sql_column_int64(s, 0);
    sql_reset(s);
    sql_clear_bindings(s);
    return rc;
}

static void bind_text_or_null(sql_stmt *s, int i, const char *t)
{
    if (t)
        sql_bind_text(s, i, t);
    else
        sql_bind_null(s, i);
}

static void bind_time(sql_stmt *s, int i, double t)
{
    if (t > 0)
        sql_bind_double(s, i, t);
    else
        sql_bind_null(s, i);
}

/* Mark o not found when the UPDATE just run touched no row. */
static void check_found(sql_stmt *s, struct op *o)
{
    if (sql_changes(s) == 0) {
        o->rc = VAED_ENOTFOUND;
        snprintf(o->msg, sizeof o->msg, "job %lld not found", (long long)o->job);
    }
}

static int apply_op(store *st, struct op *o)
{
    sql_stmt **w = st->wstmt, *s;
    int rc = SQL_DONE;
    double now = store_now();
    switch (o->kind) {
    case OP_FLUSH:
        break;
    case OP_METRICS: {
        /* MULTI_ROWS an INSERT where their steps ascend (a step twice in one INSERT
         * is an error on PostgreSQL), else a row at a time: the later row wins. */
        const store_metric *rows = o->u.metrics.rows;
        size_t n = o->u.metrics.n, i = 0, r;
        while (i < n && rc == SQL_DONE) {
            for (r = 1; n - i >= MULTI_ROWS && r < MULTI_ROWS; r++)
                if (rows[i + r].step <= rows[i + r - 1].step)
                    break;
            if (n - i >= MULTI_ROWS && r == MULTI_ROWS) {
                for (r = 0; r < MULTI_ROWS; r++)
                    bind_metric(w[W_METRIC_MULTI], (int)r * METRIC_PARAMS, o->job, &rows[i + r]);
                rc = store_wrun(w[W_METRIC_MULTI], NULL);
                i += MULTI_ROWS;
            } else {
                bind_metric(w[W_METRIC], 0, o->job, &rows[i]);
                rc = store_wrun(w[W_METRIC], NULL);
                i++;
            }
        }
        if (rc == SQL_DONE)
            rc = store_sums_update(st, o->job, o->u.metrics.rows, o->u.metrics.n);
        break;
    }
    case OP_EPOCH:
        s = w[W_EPOCH];
        sql_bind_int64(s, 1, o->job);
        sql_bind_int64(s, 2, o->u.epoch.epoch);
        sql_bind_text(s, 3, o->u.epoch.split);
        sql_bind_int64(s, 4, o->u.epoch.step);
        sql_bind_double(s, 5, o->u.epoch.xent);
        sql_bind_double(s, 6, o->u.epoch.kl);
        sql_bind_double(s, 7, o->u.epoch.elbo);
        sql_bind_int64(s, 8, o->u.epoch.active_units);
        if (o->u.epoch.n_dims > 0)
            sql_bind_blob(s, 9, o->u.epoch.kl_dims, (size_t)(o->u.epoch.n_dims * (int)sizeof(double)));
        else
            sql_bind_null(s, 9);
        sql_bind_double(s, 10, o->u.epoch.time);
        rc = store_wrun(s, NULL);
        break;
    case OP_EVENT:
        s = w[W_EVENT_SUPERSEDE];
        sql_bind_int64(s, 1, o->job);
        sql_bind_int64(s, 2, o->u.event.effective_step);
        rc = store_wrun(s, NULL);
        if (rc != SQL_DONE)
            break;
        s = w[W_EVENT];
        sql_bind_int64(s, 1, o->job);
        sql_bind_double(s, 2, o->u.event.requested_at > 0 ? o->u.event.requested_at : now);
        sql_bind_int64(s, 3, o->u.event.effective_step);
        sql_bind_text(s, 4, o->u.event.schedule);
        sql_bind_text(s, 5, o->u.event.source);
        rc = store_wrun(s, &o->out_id);
        break;
    case OP_CKPT:
        s = w[W_CKPT];
        sql_bind_int64(s, 1, o->job);
        sql_bind_int64(s, 2, o->u.ckpt.step);
        sql_bind_double(s, 3, o->u.ckpt.epoch);
        sql_bind_double(s, 4, now);
        sql_bind_text(s, 5, o->u.ckpt.kind);
        sql_bind_int64(s, 6, (int64_t)o->u.ckpt.size);
        sql_bind_blob(s, 7, o->u.ckpt.blob ? o->u.ckpt.blob : "", o->u.ckpt.size);
        rc = store_wrun(s, NULL);
        if (rc != SQL_DONE || o->u.ckpt.keep <= 0)
            break;
        s = w[W_CKPT_RETAIN];
        sql_bind_int64(s, 1, o->job);
        sql_bind_int64(s, 2, o->u.ckpt.keep);
        sql_bind_int64(s, 3, o->u.ckpt.keep_epoch_end);
        rc = store_wrun(s, NULL);
        break;
    case OP_JOB_INSERT:
        s = w[W_JOB_INSERT];
        sql_bind_text(s, 1, o->u.insert.name);
        sql_bind_text(s, 2, o->u.insert.spec);
        sql_bind_text(s, 3, o->u.insert.state);
        sql_bind_int64(s, 4, o->u.insert.priority);
        sql_bind_double(s, 5, now);
        if (o->u.insert.parent_id > 0) {
            sql_bind_int64(s, 6, o->u.insert.parent_id);
            sql_bind_int64(s, 7, o->u.insert.parent_step);
        } else {
            sql_bind_null(s, 6);
            sql_bind_null(s, 7);
        }
        rc = store_wrun(s, &o->out_id);
        break;
    case OP_JOB_STATE:
        s = w[W_JOB_STATE];
        sql_bind_int64(s, 1, o->job);
        sql_bind_text(s, 2, o->u.state.state);
        bind_text_or_null(s, 3, o->u.state.reason);
        sql_bind_double(s, 4, now);
        rc = store_wrun(s, NULL);
        if (rc == SQL_DONE)
            check_found(s, o);
        break;
    case OP_JOB_PROGRESS:
        s = w[W_JOB_PROGRESS];
        sql_bind_int64(s, 1, o->job);
        sql_bind_int64(s, 2, o->u.progress.step);
        sql_bind_double(s, 3, o->u.progress.epoch);
        bind_time(s, 4, now);
        rc = store_wrun(s, NULL);
        if (rc == SQL_DONE)
            check_found(s, o);
        break;
    case OP_JOB_FRONT:
        s = w[W_JOB_FRONT];
        sql_bind_int64(s, 1, o->job);
        sql_bind_double(s, 2, now);
        rc = store_wrun(s, NULL);
        if (rc == SQL_DONE)
            check_found(s, o);
        break;
    case OP_JOB_PRIO:
        s = w[W_JOB_PRIO];
        sql_bind_int64(s, 1, o->job);
        sql_bind_int64(s, 2, o->u.prio.priority);
        sql_bind_double(s, 3, now);
        rc = store_wrun(s, NULL);
        if (rc == SQL_DONE)
            check_found(s, o);
        break;
    case OP_CALL:
        rc = o->u.call.fn(st->wdb, o->u.call.arg, &o->rc, &o->out_id, o->msg, sizeof o->msg);
        if (rc == SQL_DONE && o->rc)
            store_wrun(w[W_ROLLBACK_TO], NULL); /* a refused call leaves nothing behind */
        break;
    }
    return rc;
}

static const char *kind_name(enum op_kind k)
{
    static const char *const n[] = {"flush", "metrics", "epoch", "schedule event",
                                    "checkpoint", "job insert", "job state",
                                    "job progress", "job requeue", "job priority",
                                    "call"};
    return n[k];
}

/* Run a batch in one transaction. Returns 0 when committed (ops may carry their own
 * rc), or -1 after a transient failure: rolled back, emsg says why. */
static int run_batch(store *st, struct op *batch, char *emsg, size_t emsz)
{
    sql_conn *db = st->wdb;
    sql_stmt **w = st->wstmt;
    int full = 0, rc;
    struct op *o;
    struct store_fence fenced[32];  /* leases checked in this transaction */
    size_t n_fenced = 0;
    /* A server that went away (restarted, a network cut): a new session first
     * (store_session_pg); the statements prepare themselves anew. */
    if (sql_errclass_of(db) == SQL_EC_CONN || st->unheld || !sql_alive(db)) {
        vaed_err e = {0};
        st->unheld = 1;
        if (sql_reconnect(db, &e) != 0 || store_session_pg(st, db, &e) != 0) {
            snprintf(emsg, emsz, "reconnecting to the database: %.400s", e.msg);
            return -1;
        }
        st->unheld = 0;
    }
    for (o = batch; o; o = o->next)
        full |= o->kind == OP_CKPT && st->opts.fsync_checkpoints;
    full = full && sql_kind_of(db) == SQL_SQLITE;   /* PostgreSQL: the server's setting */
    if (full)
        sql_exec(db, "PRAGMA synchronous = FULL", NULL);
    if ((rc = store_wrun(w[W_BEGIN], NULL)) != SQL_DONE) {
        snprintf(emsg, emsz, "begin: %s", sql_errmsg(db));
        goto fail;
    }
    for (o = batch; o; o = o->next) {
        o->rc = 0;
        o->msg[0] = '\0';
        o->fenced = 0;
        /* a job's lease is checked before its first write in the transaction; a lease
         * lost drops the op whole (store.h "cluster") */
        if (o->gen > 0 &&
            (rc = store_fence_check(st, db, o->job, o->gen, fenced, &n_fenced, 32)) != 1) {
            if (rc < 0) {
                snprintf(emsg, emsz, "lease of job %lld: %s", (long long)o->job, sql_errmsg(db));
                goto fail;
            }
            o->fenced = 1;
            o->rc = VAED_ESTATE;
            snprintf(o->msg, sizeof o->msg, "%s of job %lld: fenced (lease gen %lld lost)",
                     kind_name(o->kind), (long long)o->job, (long long)o->gen);
            continue;
        }
        if ((rc = store_wrun(w[W_SAVEPOINT], NULL)) != SQL_DONE) {
            snprintf(emsg, emsz, "savepoint: %s", sql_errmsg(db));
            goto fail;
        }
        rc = apply_op(st, o);
        if (rc != SQL_DONE && (transient(db, rc) || !sql_in_transaction(db))) {
            snprintf(emsg, emsz, "%s of job %lld: %s", kind_name(o->kind),
                     (long long)o->job, sql_errmsg(db));
            goto fail;
        }
        if (rc != SQL_DONE) {
            /* A constraint or similar: retrying cannot help, drop this op alone. */
            o->rc = VAED_EDB;
            snprintf(o->msg, sizeof o->msg, "%s of job %lld: %s", kind_name(o->kind),
                     (long long)o->job, sql_errmsg(db));
            if (o->kind == OP_JOB_INSERT &&
                sql_errclass_of(db) == SQL_EC_CONSTRAINT)   /* checked before enqueue, but */
                o->rc = VAED_EINVAL;               /* the schema is the last word */
            store_wrun(w[W_ROLLBACK_TO], NULL);
        }
        if (o->rc == VAED_ENOTFOUND)
            store_wrun(w[W_ROLLBACK_TO], NULL);
        if ((rc = store_wrun(w[W_RELEASE], NULL)) != SQL_DONE) {
            snprintf(emsg, emsz, "release: %s", sql_errmsg(db));
            goto fail;
        }
    }
    if (store_rows_notify(db, fenced, n_fenced) < 0) { /* the other nodes' event streams */
        snprintf(emsg, emsz, "notify: %s", sql_errmsg(db));
        goto fail;
    }
    if ((rc = store_wrun(w[W_COMMIT], NULL)) != SQL_DONE) {
        snprintf(emsg, emsz, "commit: %s", sql_errmsg(db));
        goto fail;
    }
    if (full)
        sql_exec(db, "PRAGMA synchronous = NORMAL", NULL);
    return 0;
fail:
    if (sql_in_transaction(db))
        store_wrun(w[W_ROLLBACK], NULL);
    if (full)
        sql_exec(db, "PRAGMA synchronous = NORMAL", NULL);
    return -1;
}

static void apply_max_pages(store *st, int64_t bytes)
{
    if (sql_kind_of(st->wdb) != SQL_SQLITE)    /* refused at open; never set there */
        return;
    sql_stmt *s = NULL;
    int64_t page = 4096;
    if (sql_prepare(st->wdb, "PRAGMA page_size", &s, NULL) == 0 &&
        sql_step(s, NULL) == SQL_ROW)
        page = sql_column_int64(s, 0);
    sql_finalize(s);
    /* 0 removes the cap: SQLite's own maximum. PRAGMA takes no parameters; the
     * number is formatted from an integer, never from text. */
    int64_t pages = bytes > 0 ? (bytes + page - 1) / page : 4294967294LL;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)pages);
    sql_exec(st->wdb, sql, NULL);
}

static void deadline_ts(struct timespec *ts, double mono_when)
{
    double s = mono_when < 0 ? 0 : mono_when;
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)((s - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void set_error_locked(store *st, const char *msg)
{
    snprintf(st->stats.last_error, sizeof st->stats.last_error, "%s", msg);
}

/* Resolve o with its outcome (rc 0 or an error): wake its waiter, count it. Called
 * with st->mu held. Returns 1 when o must be kept for its done callback. */
static int resolve_locked(store *st, struct op *o, int rc, const char *msg)
{
    st->pending_ops--;
    st->pending_bytes -= o->bytes;
    if (rc == 0) {
        st->stats.ops_committed++;
        if (o->kind == OP_METRICS)
            st->stats.rows_committed += o->u.metrics.n;
    } else if (o->fenced) {
        st->stats.ops_fenced++;     /* refused by design, not a failure */
    } else {
        st->stats.dropped_ops++;
        if (!o->w && !o->done) {
            /* Nobody else will hear of it: the counters and last_error are the record. */
            st->stats.write_errors++;
            set_error_locked(st, msg);
        }
    }
    if (o->w) {
        o->w->rc = rc;
        o->w->id = o->out_id;
        snprintf(o->w->msg, sizeof o->w->msg, "%s", rc ? msg : "");
        o->w->done = 1;
        o->w = NULL;
    }
    return o->done != NULL;
}

static void *writer_main(void *arg)
{
    store *st = arg;
    double backoff = 0, retry_at = 0;
    int close_tries = 0;
    char emsg[512];

    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->head && !st->stop)
            pthread_cond_wait(&st->work_cv, &st->mu);
        if (!st->head && st->stop)
            break;
        /* Wait for the flush deadline (or the retry time after a failure) unless the
         * batch is wanted now. At close, failures retry at a short fixed pace. */
        for (;;) {
            double now = store_mono();
            double when = st->head->t_enq + st->opts.flush_interval;
            if (st->urgent || st->pending_bytes > URGENT_BYTES)
                when = 0;
            if (backoff > 0 && !st->urgent && retry_at > when)
                when = retry_at;
            if (st->stop)   /* at close: at once, then CLOSE_TRIES at a short pace */
                when = close_tries > 0 ? retry_at : 0;
            if (now >= when)
                break;
            struct timespec ts;
            deadline_ts(&ts, when);
            pthread_cond_timedwait(&st->work_cv, &st->mu, &ts);
        }
        struct op *batch = st->head;
        st->head = st->tail = NULL;
        st->urgent = 0;
        st->inflight_since = batch->t_enq;
        int64_t max_pages = st->want_max_pages;
        st->want_max_pages = -1;
        pthread_mutex_unlock(&st->mu);

        if (max_pages >= 0)
            apply_max_pages(st, max_pages);
        /* Outside the lock: a backlog's merge copies megabytes, and a training thread
         * appending its row must not wait for that. The ops merged away are resolved
         * with the batch (they stay counted in pending_ops until then). */
        size_t merged = store_metrics_merge(batch);
        emsg[0] = '\0';
        int ok = run_batch(st, batch, emsg, sizeof emsg) == 0;

        struct op *callbacks = NULL, **cb_tail = &callbacks, *keep = NULL, **keep_tail = &keep;
        pthread_mutex_lock(&st->mu);
        st->pending_ops -= merged;
        if (ok) {
            st->stats.commits++;
            atomic_store_explicit(&st->generation, st->stats.commits, memory_order_release);
            st->stats.failing = 0;
            backoff = 0;
        } else {
            st->stats.write_errors++;
            st->stats.failing = 1;
            set_error_locked(st, emsg);
            backoff = backoff > 0 ? backoff * 2 : BACKOFF_MIN;
            if (backoff > BACKOFF_MAX)
                backoff = BACKOFF_MAX;
            retry_at = store_mono() + (st->stop ? BACKOFF_MIN : backoff);
            if (st->stop)
                close_tries++;
        }
        for (struct op *o = batch, *next; o; o = next) {
            next = o->next;
            o->next = NULL;
            int rc = ok ? o->rc : VAED_EDB;
            const char *msg = ok ? o->msg : emsg;
            int give_up = st->stop && close_tries >= CLOSE_TRIES;
            if (!ok && !o->w && !o->done && !give_up) {
                *keep_tail = o;               /* retried, in order, ahead of newer ops */
                keep_tail = &o->next;
                continue;
            }
            if (!ok && give_up && !o->w && !o->done)
                st->lost_at_close += o->kind == OP_METRICS ? o->u.metrics.n : 1;
            if (!ok && (o->w || o->done))
                snprintf(o->msg, sizeof o->msg, "%s", emsg);
            if (resolve_locked(st, o, rc, msg)) {
                o->rc = rc;
                *cb_tail = o;
                cb_tail = &o->next;
            } else {
                store_op_free(o);
            }
        }
        if (keep) {
            /* Retried ops go back in front of anything enqueued meanwhile. */
            struct op *last = keep;
            while (last->next)
                last = last->next;
            last->next = st->head;
            if (!st->head)
                st->tail = last;
            st->head = keep;
        }
        st->inflight_since = 0;
        pthread_cond_broadcast(&st->done_cv);
        pthread_mutex_unlock(&st->mu);

        for (struct op *o = callbacks, *next; o; o = next) {
            next = o->next;
            o->done(o->done_arg, o->job, o->u.ckpt.step, o->rc, o->rc ? o->msg : "");
            store_op_free(o);
        }
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

int store_writer_start(store *st, vaed_err *err)
{
    pthread_once(&multi_once, metric_multi_sql);
    for (int i = 0; i < W_NSTMT; i++) {
        const char *q = i == W_BEGIN && sql_kind_of(st->wdb) == SQL_POSTGRES ? "BEGIN"
                        : i == W_METRIC_MULTI                                 ? multi_sql
                                                                              : wsql[i];
        if (sql_prepare(st->wdb, q, &st->wstmt[i], NULL) != 0)
            return store_dberr(err, st->wdb, "preparing writer statement %d", i);
    }
    if (pthread_create(&st->writer, NULL, writer_main, st) != 0)
        return vaed_err_set(err, VAED_EIO, "", "cannot start the store writer thread");
    st->writer_started = 1;
    return 0;
}

size_t store_writer_stop(store *st)
{
    if (st->writer_started) {
        pthread_mutex_lock(&st->mu);
        st->stop = 1;
        pthread_cond_broadcast(&st->work_cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->writer, NULL);
        st->writer_started = 0;
    }
    for (int i = 0; i < STORE_W_NSTMT; i++) {
        sql_finalize(st->wstmt[i]);
        st->wstmt[i] = NULL;
    }
    return st->lost_at_close;
}

/* ---- enqueueing ------------------------------------------------------------------ */

/* Append o to the queue; with wait, block until it is resolved and report its
 * outcome (and *id). Takes ownership of o in every case. */
int store_writer_submit(store *st, struct op *o, int wait, int64_t *id, vaed_err *err)
{
    struct waiter w;
    memset(&w, 0, sizeof w);
    if (wait)
        o->w = &w;
    o->gen = store_fence_gen(st, o->job);
    pthread_mutex_lock(&st->mu);
    if (!wait && st->pending_bytes + o->bytes > st->opts.max_pending_bytes) {
        char last[sizeof st->stats.last_error];
        snprintf(last, sizeof last, "%s", st->stats.last_error);
        size_t pend = st->pending_bytes;
        pthread_mutex_unlock(&st->mu);
        store_op_free(o);
        return vaed_err_set(err, VAED_ETOOBIG, "",
                            "store write queue full (%zu bytes pending); last write error: %s",
                            pend, last[0] ? last : "none");
    }
    o->t_enq = store_mono();
    o->next = NULL;
    const int was_empty = st->head == NULL, was_urgent = st->urgent;
    const int was_big = st->pending_bytes > URGENT_BYTES;
    if (st->tail)
        st->tail->next = o;
    else
        st->head = o;
    st->tail = o;
    st->pending_ops++;
    st->pending_bytes += o->bytes;
    if (wait || o->kind == OP_CKPT)
        st->urgent = 1;
    /* Wake the writer only when this op changes when it should commit: the queue was
     * empty (it sleeps without a deadline), or the batch just became urgent or big.
     * Otherwise it already sleeps until the oldest op's deadline, which a newer op
     * does not move; a wake per metric row would cost a context switch on a core the
     * training needs, every step. */
    if (was_empty || (st->urgent && !was_urgent) ||
        (st->pending_bytes > URGENT_BYTES && !was_big))
        pthread_cond_signal(&st->work_cv);
    if (wait)
        while (!w.done)
            pthread_cond_wait(&st->done_cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
    if (!wait)
        return 0;
    if (w.rc)
        return vaed_err_set(err, w.rc, "", "%s", w.msg);
    if (id)
        *id = w.id;
    return 0;
}

int store_flush(store *st, vaed_err *err)
{
    return store_writer_submit(st, store_op_new(OP_FLUSH, 0), 1, NULL, err);
}

int store_writer_call(store *st, int64_t job, store_call_fn fn, void *arg, int64_t *out_id,
                      vaed_err *err)
{
    struct op *o = store_op_new(OP_CALL, job);
    o->u.call.fn = fn;
    o->u.call.arg = arg;
    return store_writer_submit(st, o, 1, out_id, err);
}

int store_writer_cast(store *st, store_call_fn fn, void *arg, void (*free_arg)(void *),
                      size_t bytes, vaed_err *err)
{
    struct op *o = store_op_new(OP_CALL, 0);
    o->u.call.fn = fn;
    o->u.call.arg = arg;
    o->u.call.free_arg = free_arg;
    o->bytes += bytes;
    return store_writer_submit(st, o, 0, NULL, err);
}

void store_set_max_db_bytes(store *st, int64_t bytes)
{
    pthread_mutex_lock(&st->mu);
    st->want_max_pages = bytes > 0 ? bytes : 0;
    /* Apply it now, also to a batch that is waiting to retry after a failure; with
     * nothing queued it is applied before the next batch. */
    if (st->head)
        st->urgent = 1;
    pthread_cond_signal(&st->work_cv);
    pthread_mutex_unlock(&st->mu);
}

/* ---- health ------------------------------------------------------------------- */

static double lag_locked(store *st)
{
    double oldest = st->inflight_since;
    if (st->head && (oldest == 0 || st->head->t_enq < oldest))
        oldest = st->head->t_enq;
    return oldest > 0 ? store_mono() - oldest : 0;
}

double store_write_lag_seconds(store *st)
{
    pthread_mutex_lock(&st->mu);
    double l = lag_locked(st);
    pthread_mutex_unlock(&st->mu);
    return l;
}

uint64_t store_generation(store *st)
{
    return atomic_load_explicit(&st->generation, memory_order_acquire);
}

void store_get_stats(store *st, store_stats *out)
{
    pthread_mutex_lock(&st->mu);
    *out = st->stats;
    out->pending_ops = st->pending_ops;
    out->pending_bytes = st->pending_bytes;
    out->lag = lag_locked(st);
    pthread_mutex_unlock(&st->mu);
}
