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

#define URGENT_BYTES (8u << 20)      /* commit early past this much queued data */
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 5.0
#define CLOSE_TRIES 3                /* batch attempts at close before giving up */

enum op_kind {
    OP_FLUSH, OP_METRICS, OP_EPOCH, OP_EVENT, OP_CKPT, OP_JOB_INSERT, OP_JOB_STATE,
    OP_JOB_PROGRESS, OP_JOB_FRONT, OP_JOB_PRIO, OP_CALL,
};

struct waiter {
    int done, rc;
    int64_t id;
    char msg[512];
};

struct op {
    struct op *next;
    enum op_kind kind;
    int64_t job;
    double t_enq;                    /* store_mono() at enqueue */
    size_t bytes;                    /* counted against max_pending_bytes */
    struct waiter *w;                /* NULL unless the caller waits */
    store_done_fn done;
    void *done_arg;
    int rc;                          /* this op's own outcome in the last attempt */
    int64_t out_id;                  /* job id (insert) or event seq */
    char msg[256];
    /* payload: which fields mean what depends on kind */
    size_t n;
    store_metric *rows;              /* OP_METRICS: n rows, kl_groups point into blob */
    store_epoch ep;                  /* OP_EPOCH: kl_dims points into blob */
    int64_t i1, i2, i3;
    double d1;
    int keep, keep_epoch_end;
    char s_kind[16];                 /* state, checkpoint kind or event source */
    char *s1, *s2;                   /* owned strings */
    void *blob;                      /* owned */
    size_t size;
    store_call_fn call;              /* OP_CALL (writer_call.h): call(call_arg) */
    void *call_arg;                  /* borrowed: the caller waits */
};

enum wstmt_id {
    W_BEGIN, W_COMMIT, W_ROLLBACK, W_SAVEPOINT, W_RELEASE, W_ROLLBACK_TO,
    W_METRIC, W_EPOCH, W_EVENT_SUPERSEDE, W_EVENT, W_CKPT, W_CKPT_RETAIN,
    W_JOB_INSERT, W_JOB_STATE, W_JOB_PROGRESS, W_JOB_FRONT, W_JOB_PRIO,
    W_SUM_GET, W_SUM_PUT, W_RAW, W_NSTMT,
};
_Static_assert(W_NSTMT <= STORE_W_NSTMT, "room for the writer's statements");

static const char *const wsql[W_NSTMT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SAVEPOINT] = "SAVEPOINT op",
    [W_RELEASE] = "RELEASE op",
    [W_ROLLBACK_TO] = "ROLLBACK TO op",
    [W_METRIC] = "INSERT OR REPLACE INTO metrics(job, step, epoch, beta, loss, xent, kl, "
                 "elbo, lr, grad_norm, capacity, time, kl_groups) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [W_EPOCH] = "INSERT OR REPLACE INTO epochs(job, epoch, split, step, xent, kl, elbo, "
                "active_units, kl_dims, time) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [W_EVENT_SUPERSEDE] = "UPDATE schedule_events SET superseded = 1 "
                          "WHERE job = ?1 AND effective_step >= ?2 AND superseded = 0",
    [W_EVENT] = "INSERT INTO schedule_events(job, seq, requested_at, effective_step, "
                "schedule, source, superseded) VALUES (?1, "
                "(SELECT coalesce(max(seq), 0) + 1 FROM schedule_events WHERE job = ?1), "
                "?2, ?3, ?4, ?5, 0) RETURNING seq",
    [W_CKPT] = "INSERT OR REPLACE INTO checkpoints(job, step, epoch, created_at, kind, "
               "size, blob) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* Rotating kinds are periodic, manual, pause, and epoch unless ?3 keeps those.
     * Delete the rotating ones that are neither among the newest ?2 rotating ones
     * nor the job's newest checkpoint of any kind. 'final' never rotates. */
    [W_CKPT_RETAIN] =
        "DELETE FROM checkpoints WHERE job = ?1 "
        "AND (kind IN ('periodic', 'manual', 'pause') OR (kind = 'epoch' AND ?3 = 0)) "
        "AND step <> (SELECT max(step) FROM checkpoints WHERE job = ?1) "
        "AND step NOT IN (SELECT step FROM checkpoints WHERE job = ?1 "
        "  AND (kind IN ('periodic', 'manual', 'pause') OR (kind = 'epoch' AND ?3 = 0)) "
        "  ORDER BY step DESC LIMIT ?2)",
    [W_JOB_INSERT] = "INSERT INTO jobs(name, spec, state, priority, queue_seq, created_at, "
                     "updated_at, parent_id, parent_step) VALUES (?1, ?2, ?3, ?4, "
                     "(SELECT coalesce(max(queue_seq), 0) + 1 FROM jobs), ?5, ?5, ?6, ?7)",
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
    [W_SUM_PUT] = "INSERT OR REPLACE INTO metrics_sum(job, lvl, bucket, n, agg) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
    [W_RAW] = "SELECT step, epoch, beta, loss, xent, kl, elbo, lr, grad_norm, capacity, time "
              "FROM metrics WHERE job = ?1 AND step >= ?2 AND step <= ?3",
};

static void op_free(struct op *o)
{
    if (!o)
        return;
    free(o->rows);
    free(o->s1);
    free(o->s2);
    free(o->blob);
    free(o);
}

static struct op *op_new(enum op_kind kind, int64_t job)
{
    struct op *o = xcalloc(1, sizeof *o);
    o->kind = kind;
    o->job = job;
    o->bytes = sizeof *o;
    return o;
}

/* Retrying can fix these: the disk, the lock or memory may come back. */
static int transient(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL: case SQLITE_IOERR: case SQLITE_BUSY: case SQLITE_LOCKED:
    case SQLITE_NOMEM: case SQLITE_CANTOPEN: case SQLITE_PROTOCOL: case SQLITE_READONLY:
    case SQLITE_INTERRUPT:
        return 1;
    default:
        return 0;
    }
}

/* Step s to completion and reset it; SQLITE_DONE on success. With row != NULL, the
 * first column of the first row is stored there. */
static int run(sqlite3_stmt *s, int64_t *row)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (row)
            *row = sqlite3_column_int64(s, 0);
    int rrc = sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? SQLITE_DONE : (rrc != SQLITE_OK ? rrc : rc);
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
    if (t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static void bind_time(sqlite3_stmt *s, int i, double t)
{
    if (t > 0)
        sqlite3_bind_double(s, i, t);
    else
        sqlite3_bind_null(s, i);
}

/* Mark o not found when the UPDATE just run touched no row. */
static void check_found(store *st, struct op *o)
{
    if (sqlite3_changes(st->wdb) == 0) {
        o->rc = VAED_ENOTFOUND;
        snprintf(o->msg, sizeof o->msg, "job %lld not found", (long long)o->job);
    }
}

/* ---- the min/max pyramid ------------------------------------------------------------ */

/* Merge into acc the level-lvl summaries of job for buckets lo..hi. SQLITE_DONE or the
 * failing code (SQLITE_CORRUPT for a blob of the wrong size). */
static int sum_get(store *st, int64_t job, int lvl, int64_t lo, int64_t hi, struct sum *acc)
{
    sqlite3_stmt *s = st->wstmt[W_SUM_GET];
    sqlite3_bind_int64(s, 1, job);
    sqlite3_bind_int(s, 2, lvl);
    sqlite3_bind_int64(s, 3, lo);
    sqlite3_bind_int64(s, 4, hi);
    int rc, bad = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct sum one;
        if (sum_decode(&one, sqlite3_column_int64(s, 0), sqlite3_column_blob(s, 1),
                       sqlite3_column_bytes(s, 1)) != 0)
            bad = 1;
        else
            sum_merge(acc, &one);
    }
    int rrc = sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return rrc != SQLITE_OK ? rrc : rc;
    return bad ? SQLITE_CORRUPT : SQLITE_DONE;
}

/* The summary of job's raw rows with lo <= step <= hi, into acc. */
static int sum_raw(store *st, int64_t job, int64_t lo, int64_t hi, struct sum *acc)
{
    sqlite3_stmt *s = st->wstmt[W_RAW];
    sqlite3_bind_int64(s, 1, job);
    sqlite3_bind_int64(s, 2, lo);
    sqlite3_bind_int64(s, 3, hi);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        sum_add_stmt(acc, s, 0, 1);
    int rrc = sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? SQLITE_DONE : (rrc != SQLITE_OK ? rrc : rc);
}

static int sum_put(store *st, int64_t job, int lvl, int64_t bucket, const struct sum *v)
{
    unsigned char blob[SUM_BLOB_BYTES];
    sqlite3_stmt *s = st->wstmt[W_SUM_PUT];
    sum_encode(v, blob);
    sqlite3_bind_int64(s, 1, job);
    sqlite3_bind_int(s, 2, lvl);
    sqlite3_bind_int64(s, 3, bucket);
    sqlite3_bind_int64(s, 4, v->n);
    sqlite3_bind_blob(s, 5, blob, SUM_BLOB_BYTES, SQLITE_STATIC);
    return run(s, NULL);
}

struct step_ix {
    int64_t step;
    size_t i;
};

static int by_step(const void *a, const void *b)
{
    const struct step_ix *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* A bucket the batch touched: dirty when a row may have replaced an older one (its
 * step is not past the bucket's last step), so the bucket is recomputed; otherwise
 * delta, the summary of the batch's rows in it, is merged into the stored one. */
struct touched {
    int64_t bucket;
    int dirty;
    struct sum delta;
};

/* Bring job's summaries up to date with rows, just written by INSERT OR REPLACE.
 *
 * Appends (the common case: each row's step is past the last step of its level-0
 * bucket) are a read-modify-write of the one or two buckets per level a batch
 * touches. A row that may have replaced an older one — after crash recovery the
 * recomputed steps overwrite the rows that survived, with the same values except
 * `time` — makes its level-0 bucket dirty: that bucket is recomputed from its raw rows
 * (at most 256), and each dirty bucket's parent from its 16 children, so no stale
 * extreme of a replaced value survives. Returns SQLITE_DONE or the failing code. */
static int sums_update(store *st, int64_t job, const store_metric *rows, size_t n)
{
    struct step_ix *ix = malloc(n * sizeof *ix);
    struct touched *t = malloc(n * sizeof *t);
    int rc = SQLITE_DONE;
    if (!ix || !t) {
        rc = SQLITE_NOMEM;   /* transient: the batch is retried */
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        ix[i] = (struct step_ix){rows[i].step, i};
    qsort(ix, n, sizeof *ix, by_step);

    /* Level 0, from the rows. */
    size_t nt = 0;
    const int64_t w0 = STORE_SUM_WIDTH(0);
    for (size_t i = 0; i < n && rc == SQLITE_DONE;) {
        int64_t b = sum_floor_div(ix[i].step, w0), first = ix[i].step;
        struct touched *e = &t[nt++];
        e->bucket = b;
        e->dirty = 0;
        e->delta.n = 0;
        for (; i < n && sum_floor_div(ix[i].step, w0) == b; i++) {
            const store_metric *m = &rows[ix[i].i];
            if (i + 1 < n && ix[i + 1].step == m->step)
                continue;   /* the same step twice in a batch: the later row won */
            const double v[STORE_M_NCOLS] = {m->epoch, m->beta, m->loss, m->xent, m->kl,
                                             m->elbo, m->lr, m->grad_norm, m->capacity,
                                             m->time};
            sum_add(&e->delta, m->step, v);
        }
        struct sum cur = {0};
        if ((rc = sum_get(st, job, 0, b, b, &cur)) != SQLITE_DONE)
            break;
        if (cur.n > 0 && first <= cur.last) {
            /* Maybe a replacement: recompute the bucket from its raw rows. */
            e->dirty = 1;
            cur.n = 0;
            if ((rc = sum_raw(st, job, b * w0, b * w0 + w0 - 1, &cur)) != SQLITE_DONE)
                break;
        } else {
            sum_merge(&cur, &e->delta);
        }
        if (cur.n > 0)
            rc = sum_put(st, job, 0, b, &cur);
    }

    /* Each higher level from the one below: t[] is sorted by bucket, so the children
     * of a parent are adjacent; the parents are written back over t[] in place. */
    for (int l = 1; l < STORE_SUM_LEVELS && rc == SQLITE_DONE; l++) {
        const int64_t fan = STORE_SUM_WIDTH(l) / STORE_SUM_WIDTH(l - 1);
        size_t np = 0;
        for (size_t i = 0; i < nt && rc == SQLITE_DONE;) {
            int64_t p = sum_floor_div(t[i].bucket, fan);
            struct touched par = {.bucket = p};
            for (; i < nt && sum_floor_div(t[i].bucket, fan) == p; i++) {
                par.dirty |= t[i].dirty;
                sum_merge(&par.delta, &t[i].delta);
            }
            struct sum cur = {0};
            if (par.dirty)
                rc = sum_get(st, job, l - 1, p * fan, p * fan + fan - 1, &cur);
            else if ((rc = sum_get(st, job, l, p, p, &cur)) == SQLITE_DONE)
                sum_merge(&cur, &par.delta);
            if (rc == SQLITE_DONE && cur.n > 0)
                rc = sum_put(st, job, l, p, &cur);
            t[np++] = par;
        }
        nt = np;
    }
done:
    free(ix);
    free(t);
    return rc;
}

/* Run one op's statements. Returns SQLITE_DONE, or the failing SQLite code (the
 * caller tells transient from permanent). Sets o->rc/msg for logical failures. */
static int apply_op(store *st, struct op *o)
{
    sqlite3_stmt **w = st->wstmt, *s;
    int rc = SQLITE_DONE;
    double now = store_now();
    switch (o->kind) {
    case OP_FLUSH:
        break;
    case OP_METRICS:
        s = w[W_METRIC];
        for (size_t i = 0; i < o->n && rc == SQLITE_DONE; i++) {
            const store_metric *m = &o->rows[i];
            sqlite3_bind_int64(s, 1, o->job);
            sqlite3_bind_int64(s, 2, m->step);
            const double v[10] = {m->epoch, m->beta, m->loss, m->xent, m->kl,
                                  m->elbo, m->lr, m->grad_norm, m->capacity, m->time};
            for (int k = 0; k < 10; k++)
                sqlite3_bind_double(s, 3 + k, v[k]);
            if (m->n_groups > 0)
                sqlite3_bind_blob(s, 13, m->kl_groups, m->n_groups * (int)sizeof(double),
                                  SQLITE_STATIC);
            else
                sqlite3_bind_null(s, 13);
            rc = run(s, NULL);
        }
        if (rc == SQLITE_DONE)
            rc = sums_update(st, o->job, o->rows, o->n);
        break;
    case OP_EPOCH:
        s = w[W_EPOCH];
        sqlite3_bind_int64(s, 1, o->job);
        sqlite3_bind_int64(s, 2, o->ep.epoch);
        sqlite3_bind_text(s, 3, o->ep.split, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, o->ep.step);
        sqlite3_bind_double(s, 5, o->ep.xent);
        sqlite3_bind_double(s, 6, o->ep.kl);
        sqlite3_bind_double(s, 7, o->ep.elbo);
        sqlite3_bind_int(s, 8, o->ep.active_units);
        if (o->ep.n_dims > 0)
            sqlite3_bind_blob(s, 9, o->ep.kl_dims, o->ep.n_dims * (int)sizeof(double),
                              SQLITE_STATIC);
        else
            sqlite3_bind_null(s, 9);
        sqlite3_bind_double(s, 10, o->ep.time);
        rc = run(s, NULL);
        break;
    case OP_EVENT:
        s = w[W_EVENT_SUPERSEDE];
        sqlite3_bind_int64(s, 1, o->job);
        sqlite3_bind_int64(s, 2, o->i1);
        rc = run(s, NULL);
        if (rc != SQLITE_DONE)
            break;
        s = w[W_EVENT];
        sqlite3_bind_int64(s, 1, o->job);
        sqlite3_bind_double(s, 2, o->d1 > 0 ? o->d1 : now);
        sqlite3_bind_int64(s, 3, o->i1);
        sqlite3_bind_text(s, 4, o->s1, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, o->s_kind, -1, SQLITE_STATIC);
        rc = run(s, &o->out_id);
        break;
    case OP_CKPT:
        s = w[W_CKPT];
        sqlite3_bind_int64(s, 1, o->job);
        sqlite3_bind_int64(s, 2, o->i1);
        sqlite3_bind_double(s, 3, o->d1);
        sqlite3_bind_double(s, 4, now);
        sqlite3_bind_text(s, 5, o->s_kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 6, (sqlite3_int64)o->size);
        sqlite3_bind_blob64(s, 7, o->blob ? o->blob : "", o->size, SQLITE_STATIC);
        rc = run(s, NULL);
        if (rc != SQLITE_DONE || o->keep <= 0)
            break;
        s = w[W_CKPT_RETAIN];
        sqlite3_bind_int64(s, 1, o->job);
        sqlite3_bind_int(s, 2, o->keep);
        sqlite3_bind_int(s, 3, o->keep_epoch_end);
        rc = run(s, NULL);
        break;
    case OP_JOB_INSERT:
        s = w[W_JOB_INSERT];
        sqlite3_bind_text(s, 1, o->s1, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, o->s2, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, o->s_kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, o->i1);
        sqlite3_bind_double(s, 5, now);
        if (o->i2 > 0) {
            sqlite3_bind_int64(s, 6, o->i2);
            sqlite3_bind_int64(s, 7, o->i3);
        } else {
            sqlite3_bind_null(s, 6);
            sqlite3_bind_null(s, 7);
        }
        rc = run(s, NULL);
        if (rc == SQLITE_DONE)
            o->out_id = sqlite3_last_insert_rowid(st->wdb);
        break;
    case OP_JOB_STATE:
        s = w[W_JOB_STATE];
        sqlite3_bind_int64(s, 1, o->job);
        sqlite3_bind_text(s, 2, o->s_kind, -1, SQLITE_STATIC);
        bind_text_or_null(s, 3, o->s1);
        sqlite3_bind_double(s, 4, now);
        rc = run(s, NULL);
        if (rc == SQLITE_DONE)
            check_found(st, o);
        break;
    case OP_JOB_PROGRESS:
        s = w[W_JOB_PROGRESS];
        sqlite3_bind_int64(s, 1, o->job);
        sqlite3_bind_int64(s, 2, o->i1);
        sqlite3_bind_double(s, 3, o->d1);
        bind_time(s, 4, now);
        rc = run(s, NULL);
        if (rc == SQLITE_DONE)
            check_found(st, o);
        break;
    case OP_JOB_FRONT:
        s = w[W_JOB_FRONT];
        sqlite3_bind_int64(s, 1, o->job);
        sqlite3_bind_double(s, 2, now);
        rc = run(s, NULL);
        if (rc == SQLITE_DONE)
            check_found(st, o);
        break;
    case OP_JOB_PRIO:
        s = w[W_JOB_PRIO];
        sqlite3_bind_int64(s, 1, o->job);
        sqlite3_bind_int64(s, 2, o->i1);
        sqlite3_bind_double(s, 3, now);
        rc = run(s, NULL);
        if (rc == SQLITE_DONE)
            check_found(st, o);
        break;
    case OP_CALL:
        rc = o->call(st->wdb, o->call_arg, &o->rc, &o->out_id, o->msg, sizeof o->msg);
        if (rc == SQLITE_DONE && o->rc)
            run(w[W_ROLLBACK_TO], NULL); /* a refused call leaves nothing behind */
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
    sqlite3 *db = st->wdb;
    sqlite3_stmt **w = st->wstmt;
    int full = 0, rc;
    struct op *o;
    for (o = batch; o; o = o->next)
        full |= o->kind == OP_CKPT && st->opts.fsync_checkpoints;
    if (full)
        sqlite3_exec(db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    if ((rc = run(w[W_BEGIN], NULL)) != SQLITE_DONE) {
        snprintf(emsg, emsz, "begin: %s", sqlite3_errmsg(db));
        goto fail;
    }
    for (o = batch; o; o = o->next) {
        o->rc = 0;
        o->msg[0] = '\0';
        if ((rc = run(w[W_SAVEPOINT], NULL)) != SQLITE_DONE) {
            snprintf(emsg, emsz, "savepoint: %s", sqlite3_errmsg(db));
            goto fail;
        }
        rc = apply_op(st, o);
        if (rc != SQLITE_DONE && (transient(rc) || sqlite3_get_autocommit(db))) {
            snprintf(emsg, emsz, "%s of job %lld: %s", kind_name(o->kind),
                     (long long)o->job, sqlite3_errmsg(db));
            goto fail;
        }
        if (rc != SQLITE_DONE) {
            /* A constraint or similar: retrying cannot help, drop this op alone. */
            o->rc = VAED_EDB;
            snprintf(o->msg, sizeof o->msg, "%s of job %lld: %s", kind_name(o->kind),
                     (long long)o->job, sqlite3_errmsg(db));
            if (o->kind == OP_JOB_INSERT &&
                (rc & 0xff) == SQLITE_CONSTRAINT)   /* checked before enqueue, but */
                o->rc = VAED_EINVAL;               /* the schema is the last word */
            run(w[W_ROLLBACK_TO], NULL);
        }
        if (o->rc == VAED_ENOTFOUND)
            run(w[W_ROLLBACK_TO], NULL);
        if ((rc = run(w[W_RELEASE], NULL)) != SQLITE_DONE) {
            snprintf(emsg, emsz, "release: %s", sqlite3_errmsg(db));
            goto fail;
        }
    }
    if ((rc = run(w[W_COMMIT], NULL)) != SQLITE_DONE) {
        snprintf(emsg, emsz, "commit: %s", sqlite3_errmsg(db));
        goto fail;
    }
    if (full)
        sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    return 0;
fail:
    if (!sqlite3_get_autocommit(db))
        run(w[W_ROLLBACK], NULL);
    if (full)
        sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    return -1;
}

static void apply_max_pages(store *st, int64_t bytes)
{
    sqlite3_stmt *s = NULL;
    int64_t page = 4096;
    if (sqlite3_prepare_v2(st->wdb, "PRAGMA page_size", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        page = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    /* 0 removes the cap: SQLite's own maximum. PRAGMA takes no parameters; the
     * number is formatted from an integer, never from text. */
    int64_t pages = bytes > 0 ? (bytes + page - 1) / page : 4294967294LL;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)pages);
    sqlite3_exec(st->wdb, sql, NULL, NULL, NULL);
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
            st->stats.rows_committed += o->n;
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
        emsg[0] = '\0';
        int ok = run_batch(st, batch, emsg, sizeof emsg) == 0;

        struct op *callbacks = NULL, **cb_tail = &callbacks, *keep = NULL, **keep_tail = &keep;
        pthread_mutex_lock(&st->mu);
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
                st->lost_at_close++;
            if (!ok && (o->w || o->done))
                snprintf(o->msg, sizeof o->msg, "%s", emsg);
            if (resolve_locked(st, o, rc, msg)) {
                o->rc = rc;
                *cb_tail = o;
                cb_tail = &o->next;
            } else {
                op_free(o);
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
            o->done(o->done_arg, o->job, o->i1, o->rc, o->rc ? o->msg : "");
            op_free(o);
        }
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

int store_writer_start(store *st, vaed_err *err)
{
    for (int i = 0; i < W_NSTMT; i++) {
        if (sqlite3_prepare_v3(st->wdb, wsql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &st->wstmt[i], NULL) != SQLITE_OK)
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
        sqlite3_finalize(st->wstmt[i]);
        st->wstmt[i] = NULL;
    }
    return st->lost_at_close;
}

/* ---- enqueueing ------------------------------------------------------------------ */

/* Append o to the queue; with wait, block until it is resolved and report its
 * outcome (and *id). Takes ownership of o in every case. */
static int submit(store *st, struct op *o, int wait, int64_t *id, vaed_err *err)
{
    struct waiter w;
    memset(&w, 0, sizeof w);
    if (wait)
        o->w = &w;
    pthread_mutex_lock(&st->mu);
    if (!wait && st->pending_bytes + o->bytes > st->opts.max_pending_bytes) {
        char last[sizeof st->stats.last_error];
        snprintf(last, sizeof last, "%s", st->stats.last_error);
        size_t pend = st->pending_bytes;
        pthread_mutex_unlock(&st->mu);
        op_free(o);
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
    return submit(st, op_new(OP_FLUSH, 0), 1, NULL, err);
}

int store_writer_call(store *st, store_call_fn fn, void *arg, int64_t *out_id, vaed_err *err)
{
    struct op *o = op_new(OP_CALL, 0);
    o->call = fn;
    o->call_arg = arg;
    return submit(st, o, 1, out_id, err);
}

static const char *const state_names[] = {STORE_STATE_NAMES};

unsigned store_state_bit(const char *state)
{
    for (size_t i = 0; state && i < sizeof state_names / sizeof state_names[0]; i++)
        if (strcmp(state, state_names[i]) == 0)
            return 1u << i;
    return 0;
}

static int check_state(const char *state, vaed_err *err)
{
    if (!store_state_bit(state))
        return vaed_err_set(err, VAED_EINVAL, "state", "unknown job state \"%s\"",
                            state ? state : "(null)");
    return 0;
}

/* json_valid() in the schema is the last word; this catches the common mistake at
 * the caller, with a message, instead of in the writer. */
static int check_json(const char *text, const char *field, vaed_err *err)
{
    json_error_t je;
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, &je) : NULL;
    /* jansson reports a failed allocation as a syntax error (or as nothing) on some
     * paths: parse a text that failed once again before calling it invalid. */
    if (!j && text)
        j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j && text && json_error_code(&je) == json_error_out_of_memory)
        return vaed_err_set(err, VAED_ENOMEM, field, "out of memory checking the JSON");
    if (!j)
        return vaed_err_set(err, VAED_EINVAL, field, "not valid JSON: %s",
                            text ? je.text : "missing");
    json_decref(j);
    return 0;
}

int store_job_insert(store *st, const store_job_new *nj, int64_t *id, vaed_err *err)
{
    const char *state = nj->state ? nj->state : "queued";
    int rc = check_state(state, err);
    if (rc || (rc = check_json(nj->spec, "spec", err)))
        return rc;
    struct op *o = op_new(OP_JOB_INSERT, 0);
    o->s1 = xstrdup(nj->name ? nj->name : "");
    o->s2 = xstrdup(nj->spec);
    snprintf(o->s_kind, sizeof o->s_kind, "%s", state);
    o->i1 = nj->priority;
    o->i2 = nj->parent_id;
    o->i3 = nj->parent_step;
    return submit(st, o, 1, id, err);
}

int store_job_set_state(store *st, int64_t id, const char *state, const char *reason,
                        vaed_err *err)
{
    int rc = check_state(state, err);
    if (rc)
        return rc;
    struct op *o = op_new(OP_JOB_STATE, id);
    snprintf(o->s_kind, sizeof o->s_kind, "%s", state);
    o->s1 = reason ? xstrdup(reason) : NULL;
    return submit(st, o, 1, NULL, err);
}

int store_job_set_progress(store *st, int64_t id, int64_t step, double epoch, int wait,
                           vaed_err *err)
{
    struct op *o = op_new(OP_JOB_PROGRESS, id);
    o->i1 = step;
    o->d1 = epoch;
    return submit(st, o, wait, NULL, err);
}

int store_job_requeue_front(store *st, int64_t id, vaed_err *err)
{
    return submit(st, op_new(OP_JOB_FRONT, id), 1, NULL, err);
}

int store_job_set_priority(store *st, int64_t id, int priority, vaed_err *err)
{
    struct op *o = op_new(OP_JOB_PRIO, id);
    o->i1 = priority;
    return submit(st, o, 1, NULL, err);
}

int store_metrics_append(store *st, int64_t job, const store_metric *rows, size_t n,
                         vaed_err *err)
{
    if (n == 0)
        return 0;
    size_t groups = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].n_groups > 0)
            groups += (size_t)rows[i].n_groups;
    /* n comes from the caller's batch: request-sized, so a plain checked malloc. */
    if (n > SIZE_MAX / 2 / sizeof(store_metric))
        return vaed_err_set(err, VAED_ETOOBIG, "", "too many metric rows (%zu)", n);
    size_t sz = n * sizeof(store_metric) + groups * sizeof(double);
    store_metric *copy = malloc(sz);
    if (!copy)
        return vaed_err_set(err, VAED_ENOMEM, "", "no memory for %zu metric rows", n);
    double *g = (double *)(copy + n);
    for (size_t i = 0; i < n; i++) {
        copy[i] = rows[i];
        if (rows[i].n_groups > 0 && rows[i].kl_groups) {
            memcpy(g, rows[i].kl_groups, (size_t)rows[i].n_groups * sizeof(double));
            copy[i].kl_groups = g;
            g += rows[i].n_groups;
        } else {
            copy[i].n_groups = 0;
            copy[i].kl_groups = NULL;
        }
    }
    struct op *o = op_new(OP_METRICS, job);
    o->rows = copy;
    o->n = n;
    o->bytes += sz;
    return submit(st, o, 0, NULL, err);
}

int store_epoch_put(store *st, int64_t job, const store_epoch *e, vaed_err *err)
{
    struct op *o = op_new(OP_EPOCH, job);
    o->ep = *e;
    o->ep.split[sizeof o->ep.split - 1] = '\0';
    o->ep.kl_dims = NULL;
    if (e->n_dims > 0 && e->kl_dims) {
        size_t sz = (size_t)e->n_dims * sizeof(double);
        o->blob = malloc(sz);
        if (!o->blob) {
            op_free(o);
            return vaed_err_set(err, VAED_ENOMEM, "", "no memory for %d KL dims", e->n_dims);
        }
        memcpy(o->blob, e->kl_dims, sz);
        o->ep.kl_dims = o->blob;
        o->bytes += sz;
    } else {
        o->ep.n_dims = 0;
    }
    return submit(st, o, 0, NULL, err);
}

int store_event_add(store *st, int64_t job, double requested_at, int64_t effective_step,
                    const char *schedule_json, const char *source, int wait,
                    int64_t *seq, vaed_err *err)
{
    if (!source || (strcmp(source, "submit") != 0 && strcmp(source, "override") != 0))
        return vaed_err_set(err, VAED_EINVAL, "source",
                            "must be \"submit\" or \"override\"");
    int rc = check_json(schedule_json, "schedule", err);
    if (rc)
        return rc;
    struct op *o = op_new(OP_EVENT, job);
    o->d1 = requested_at;
    o->i1 = effective_step;
    o->s1 = xstrdup(schedule_json);
    o->bytes += strlen(schedule_json);
    snprintf(o->s_kind, sizeof o->s_kind, "%s", source);
    return submit(st, o, wait, seq, err);
}

int store_checkpoint_put(store *st, const store_ckpt_put *req, vaed_err *err)
{
    static const char *const kinds[] = {"periodic", "epoch", "final", "manual", "pause",
                                         "fork"};
    int known = 0;
    for (size_t i = 0; req->kind && i < sizeof kinds / sizeof kinds[0]; i++)
        known |= strcmp(req->kind, kinds[i]) == 0;
    if (!known) {
        if (req->give)
            free((void *)req->blob);
        return vaed_err_set(err, VAED_EINVAL, "kind", "unknown checkpoint kind \"%s\"",
                            req->kind ? req->kind : "(null)");
    }
    struct op *o = op_new(OP_CKPT, req->job);
    o->i1 = req->step;
    o->d1 = req->epoch;
    snprintf(o->s_kind, sizeof o->s_kind, "%s", req->kind);
    o->keep = req->keep;
    o->keep_epoch_end = req->keep_epoch_end;
    o->done = req->done;
    o->done_arg = req->done_arg;
    if (req->size > 0 && req->give) {
        o->blob = (void *)req->blob;
        o->size = req->size;
        o->bytes += req->size;
    } else if (req->size > 0) {
        o->blob = malloc(req->size);
        if (!o->blob) {
            op_free(o);
            return vaed_err_set(err, VAED_ENOMEM, "",
                                "no memory to copy a %zu-byte checkpoint", req->size);
        }
        memcpy(o->blob, req->blob, req->size);
        o->size = req->size;
        o->bytes += req->size;
    }
    return submit(st, o, req->wait, NULL, err);
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
