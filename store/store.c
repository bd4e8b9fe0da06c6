/* store.c — opening and closing the store, and every read (see store.h for the schema,
 * the writer's batching and the durability promise; writer.c for the write side).
 *
 * Connections. The write connection is opened here, put in WAL mode, migrated, then
 * handed to the writer thread. Reads run on a pool of up to opts.read_conns
 * connections opened on demand; a caller takes one under st->mu, uses it alone, and
 * gives it back, so a slow read (a million metric rows) stalls neither the writer
 * (WAL: readers see the last commit and never block it) nor the other readers beyond
 * the pool size. Each connection keeps its prepared statements for its whole life.
 * Read connections are query_only: nothing but the writer ever writes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pyramid.h"
#include "store/store_impl.h"

double store_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double store_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void store_opts_default(store_opts *o)
{
    memset(o, 0, sizeof *o);
    o->flush_interval = 1.0;
    o->busy_timeout_ms = 5000;
    o->read_conns = 4;
    o->fsync_checkpoints = 1;
    o->max_pending_bytes = (size_t)512 << 20;
}

/* Run a pragma that returns one text row; copy it into buf. */
static int pragma_text(sql_conn *db, const char *sql, char *buf, size_t n)
{
    sql_stmt *s = NULL;
    int rc = sql_prepare(db, sql, &s, NULL);
    if (rc == 0 && (rc = sql_step(s, NULL)) == SQL_ROW) {
        const char *t = sql_column_text(s, 0);
        snprintf(buf, n, "%s", t ? t : "");
        rc = 0;
    } else if (rc == SQL_DONE) {
        buf[0] = '\0';
        rc = 0;
    }
    sql_finalize(s);
    return rc;
}

int store_open(store **out, const char *path, const store_opts *opts, vaed_err *err)
{
    store *st = NULL;
    int rc;
    char mode[32];
    *out = NULL;
    st = xcalloc(1, sizeof *st);
    st->path = xstrdup(path);
    store_opts_default(&st->opts);
    if (opts) {
        st->opts = *opts;
        store_opts defaults;
        store_opts_default(&defaults);
        if (!(st->opts.flush_interval > 0))
            st->opts.flush_interval = defaults.flush_interval;
        if (st->opts.busy_timeout_ms <= 0)
            st->opts.busy_timeout_ms = defaults.busy_timeout_ms;
        if (st->opts.read_conns <= 0)
            st->opts.read_conns = defaults.read_conns;
        if (st->opts.max_pending_bytes == 0)
            st->opts.max_pending_bytes = defaults.max_pending_bytes;
    }
    st->want_max_pages = -1;
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->lmu, NULL);
    pthread_mutex_init(&st->fmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* deadlines use store_mono */
    pthread_cond_init(&st->work_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&st->done_cv, NULL);
    pthread_cond_init(&st->pool_cv, NULL);
    st->n_rc = st->opts.read_conns;
    st->rc = xcalloc((size_t)st->n_rc, sizeof *st->rc);

    if ((rc = store_conn_open(&st->wdb, path, st->opts.busy_timeout_ms, 1, err)))
        goto fail;
    if (sql_kind_of(st->wdb) == SQL_POSTGRES) {
        /* the server's durability (synchronous_commit) and MVCC stand for SQLite's WAL
         * and synchronous settings; a size cap is SQLite's (max_page_count) alone */
        char shown[256];
        if (st->opts.max_db_bytes > 0) {
            rc = vaed_err_set(err, VAED_EINVAL, "max_db_bytes",
                              "a size cap is for SQLite databases; PostgreSQL's is the server's");
            goto fail;
        }
        /* a cluster's node shares the database (leases); else one store holds it */
        if ((rc = store_migrate_pg(st->wdb, err)) || (rc = store_session_pg(st, st->wdb, err)) ||
            (rc = store_cluster_open(st, err))) {
            vaed_err_prefix(err, "%s: ", sql_display_name(path, shown, sizeof shown));
            goto fail;
        }
        goto start;
    }
    /* WAL first: it is persistent in the file, and readers then never block the
     * writer. An in-memory or otherwise WAL-less database is refused, because the
     * read connections would not see the writer's data. */
    if (pragma_text(st->wdb, "PRAGMA journal_mode = WAL", mode, sizeof mode) != 0) {
        rc = store_dberr(err, st->wdb, "%s: journal_mode", path);
        goto fail;
    }
    if (strcmp(mode, "wal") != 0) {
        rc = vaed_err_set(err, VAED_EDB, "", "%s: cannot use WAL (journal mode is %s)",
                          path, mode);
        goto fail;
    }
    /* NORMAL in WAL: commits survive a process crash; checkpoint batches switch to
     * FULL (writer.c). The size limit keeps the WAL from staying huge after a burst
     * of checkpoint blobs. */
    if (sql_exec(st->wdb, "PRAGMA synchronous = NORMAL; "
                              "PRAGMA journal_size_limit = 67108864", NULL) != 0) {
        rc = store_dberr(err, st->wdb, "%s: pragmas", path);
        goto fail;
    }
    if ((rc = store_migrate(st->wdb, err))) {
        vaed_err_prefix(err, "%s: ", path);
        goto fail;
    }
    if (st->opts.max_db_bytes > 0)
        st->want_max_pages = st->opts.max_db_bytes;
    if ((rc = store_cluster_open(st, err)))
        goto fail;
start:
    if ((rc = store_writer_start(st, err)))
        goto fail;
    *out = st;
    return 0;
fail:
    store_close(st, NULL);
    return rc;
}

int store_close(store *st, vaed_err *err)
{
    if (!st)
        return 0;
    size_t lost = store_writer_stop(st);
    for (int i = 0; i < st->n_rc; i++) {
        for (int k = 0; k < R_NSTMT; k++)
            sql_finalize(st->rc[i].stmt[k]);
        sql_close(st->rc[i].db);
    }
    store_cluster_close(st);
    /* The last connection to close checkpoints the WAL into the main file. */
    sql_close(st->wdb);
    char last[sizeof st->stats.last_error];
    snprintf(last, sizeof last, "%s", st->stats.last_error);
    pthread_cond_destroy(&st->work_cv);
    pthread_cond_destroy(&st->done_cv);
    pthread_cond_destroy(&st->pool_cv);
    pthread_mutex_destroy(&st->mu);
    free(st->rc);
    free(st->path);
    free(st);
    if (lost)
        return vaed_err_set(err, VAED_EDB, "",
                            "store closed with %zu writes lost (a metric row counts as "
                            "one): %s", lost, last);
    return 0;
}

/* ---- the read pool ---------------------------------------------------------------- */

#define JOB_COLS "id, name, spec, state, priority, queue_seq, created_at, started_at, " \
                 "finished_at, updated_at, reason, step, epoch, parent_id, parent_step, kernels"
#define STATE_BIT "CASE state WHEN 'queued' THEN 1 WHEN 'running' THEN 2 " \
                  "WHEN 'paused' THEN 4 WHEN 'interrupted' THEN 8 WHEN 'completed' THEN 16 " \
                  "WHEN 'failed' THEN 32 WHEN 'cancelled' THEN 64 ELSE 0 END"

static const char *const rsql[R_NSTMT] = {
    [R_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [R_JOBS_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE (?1 = 0 OR (?1 & " STATE_BIT ") <> 0) "
                    "AND (?2 <= 0 OR id < ?2) ORDER BY id DESC LIMIT ?3",
    [R_JOBS_COUNT] = "SELECT count(*) FROM jobs WHERE (?1 = 0 OR (?1 & " STATE_BIT ") <> 0)",
    [R_JOBS_BY_STATE] = "SELECT state, count(*) FROM jobs GROUP BY state",
    [R_JOBS_RESUMABLE] = "SELECT " JOB_COLS " FROM jobs "
                         "WHERE state IN ('queued', 'running', 'interrupted') "
                         "ORDER BY priority DESC, queue_seq ASC",
    [R_METRICS] = "SELECT step" VAE_METRIC_SQL_COLUMNS ", kl_groups FROM metrics "
                  "WHERE job = ?1 AND step > ?2 AND step <= ?3 ORDER BY step LIMIT ?4",
    [R_EPOCHS] = "SELECT epoch, split, step, xent, kl, elbo, active_units, kl_dims, time "
                 "FROM epochs WHERE job = ?1 ORDER BY epoch, split",
    [R_EVENTS] = "SELECT seq, requested_at, effective_step, schedule, source, superseded "
                 "FROM schedule_events WHERE job = ?1 ORDER BY seq",
    [R_CKPTS] = "SELECT step, epoch, created_at, kind, size FROM checkpoints "
                "WHERE job = ?1 ORDER BY step",
    [R_CKPT_AT] = "SELECT step, epoch, created_at, kind, size, blob FROM checkpoints "
                  "WHERE job = ?1 AND step = ?2",
    [R_CKPT_LATEST] = "SELECT step, epoch, created_at, kind, size, blob FROM checkpoints "
                      "WHERE job = ?1 ORDER BY step DESC LIMIT 1",
};

/* Take a read connection, opening one if the pool has room, else waiting for one. */
int store_racquire(store *st, struct rconn **out, vaed_err *err)
{
    struct rconn *c = NULL;
    pthread_mutex_lock(&st->mu);
    while (!c) {
        struct rconn *fresh = NULL;
        for (int i = 0; i < st->n_rc && !c; i++) {
            if (st->rc[i].busy)
                continue;
            if (st->rc[i].db)
                c = &st->rc[i];
            else if (!fresh)
                fresh = &st->rc[i];
        }
        if (!c && fresh)
            c = fresh;
        if (!c)
            pthread_cond_wait(&st->pool_cv, &st->mu);
    }
    c->busy = 1;
    pthread_mutex_unlock(&st->mu);
    if (c->db && !sql_alive(c->db)) {      /* its server restarted meanwhile: anew */
        for (int k = 0; k < R_NSTMT; k++) {
            sql_finalize(c->stmt[k]);
            c->stmt[k] = NULL;
        }
        sql_close(c->db);
        c->db = NULL;
    }
    if (!c->db) {
        int rc = store_ropen(st, &c->db, err);
        if (rc) {
            sql_close(c->db);
            c->db = NULL;
            pthread_mutex_lock(&st->mu);
            c->busy = 0;
            pthread_cond_signal(&st->pool_cv);
            pthread_mutex_unlock(&st->mu);
            return rc;
        }
    }
    *out = c;
    return 0;
}

void store_rrelease(store *st, struct rconn *c)
{
    /* A connection goes back to the pool outside any transaction: one left open (a
     * COMMIT that failed for want of memory) would serve its old snapshot to every
     * later read, and keep the WAL from being checkpointed. */
    if (c->db && sql_in_transaction(c->db))
        sql_exec(c->db, "ROLLBACK", NULL);
    /* ... and one whose server went away is closed, to be opened anew */
    if (c->db && (sql_in_transaction(c->db) || sql_errclass_of(c->db) == SQL_EC_CONN)) {
        for (int k = 0; k < R_NSTMT; k++) {
            sql_finalize(c->stmt[k]);
            c->stmt[k] = NULL;
        }
        sql_close(c->db);
        c->db = NULL;   /* reopened by the next racquire */
    }
    pthread_mutex_lock(&st->mu);
    c->busy = 0;
    pthread_cond_signal(&st->pool_cv);
    pthread_mutex_unlock(&st->mu);
}

sql_stmt *store_rstmt(struct rconn *c, enum rstmt_id id, vaed_err *err)
{
    if (!c->stmt[id] &&
        sql_prepare(c->db, rsql[id], &c->stmt[id], NULL) != 0) {
        store_dberr(err, c->db, "preparing read statement %d", (int)id);
        return NULL;
    }
    return c->stmt[id];
}

/* Finish a statement: reset it, and turn a step result that is neither a row nor the
 * end into VAED_EDB with the connection's message. */
int store_rdone(struct rconn *c, sql_stmt *s, int step_rc, const char *what,
                 vaed_err *err)
{
    int rc = 0;
    if (step_rc == VAED_ENOMEM)
        rc = vaed_err_set(err, VAED_ENOMEM, "", "%s: out of memory", what);
    else if (step_rc != SQL_DONE && step_rc != SQL_ROW)
        rc = store_dberr(err, c->db, "%s", what);
    sql_reset(s);
    sql_clear_bindings(s);
    return rc;
}

static char *col_strdup(sql_stmt *s, int i)
{
    const char *t = sql_column_text(s, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static void col_strcpy(sql_stmt *s, int i, char *dst, size_t n)
{
    const char *t = sql_column_text(s, i);
    snprintf(dst, n, "%s", t ? (const char *)t : "");
}

/* Copy a blob of doubles into a new array. OUT *n: its length (0 → NULL). */
double *store_col_doubles(sql_stmt *s, int i, int *n)
{
    int bytes = (int)sql_column_bytes(s, i);
    const void *b = sql_column_blob(s, i);
    *n = b ? bytes / (int)sizeof(double) : 0;
    if (*n == 0)
        return NULL;
    double *d = xmalloc((size_t)*n * sizeof(double));
    memcpy(d, b, (size_t)*n * sizeof(double));
    return d;
}

/* ---- jobs ------------------------------------------------------------------------- */

void store_job_clear(store_job *j)
{
    if (!j)
        return;
    free(j->name);
    free(j->spec);
    free(j->reason);
    memset(j, 0, sizeof *j);
}

static void read_job(sql_stmt *s, store_job *j)
{
    memset(j, 0, sizeof *j);
    j->id = sql_column_int64(s, 0);
    j->name = col_strdup(s, 1);
    if (!j->name)
        j->name = xstrdup("");
    j->spec = col_strdup(s, 2);
    col_strcpy(s, 3, j->state, sizeof j->state);
    j->priority = (int)sql_column_int64(s, 4);
    j->queue_seq = sql_column_int64(s, 5);
    j->created_at = sql_column_double(s, 6);
    j->started_at = sql_column_double(s, 7);     /* NULL reads as 0 */
    j->finished_at = sql_column_double(s, 8);
    j->updated_at = sql_column_double(s, 9);
    j->reason = col_strdup(s, 10);
    j->step = sql_column_int64(s, 11);
    j->epoch = sql_column_double(s, 12);
    j->parent_id = sql_column_int64(s, 13);
    j->parent_step = sql_column_int64(s, 14);
    col_strcpy(s, 15, j->kernels, sizeof j->kernels);
}

int store_job_get(store *st, int64_t id, store_job *j, vaed_err *err)
{
    struct rconn *c;
    memset(j, 0, sizeof *j);
    int rc = store_racquire(st, &c, err);
    if (rc)
        return rc;
    sql_stmt *s = store_rstmt(c, R_JOB_GET, err);
    if (!s) {
        store_rrelease(st, c);
        return VAED_EDB;
    }
    sql_bind_int64(s, 1, id);
    int sr = sql_step(s, NULL);
    if (sr == SQL_ROW)
        read_job(s, j);
    rc = store_rdone(c, s, sr, "reading a job", err);
    store_rrelease(st, c);
    if (!rc && sr == SQL_DONE)
        rc = vaed_err_set(err, VAED_ENOTFOUND, "", "job %lld not found", (long long)id);
    return rc;
}

static json_t *time_or_null(double t)
{
    return t > 0 ? json_real(t) : json_null();
}

json_t *store_job_json(const store_job *j)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_t *spec = j->spec ? json_loads(j->spec, JSON_DECODE_ANY, NULL) : NULL;
    if (!spec)
        spec = j->spec ? json_string(j->spec) : json_null();
    json_t *parent = j->parent_id > 0
                         ? json_pack("{s:I, s:I}", "id", (json_int_t)j->parent_id, "step",
                                     (json_int_t)j->parent_step)
                         : json_null();
    /* The "o" format steals each reference, so nothing leaks if packing fails. */
    json_t *rest = json_pack("{s:I, s:s, s:o, s:s, s:i, s:I, s:o, s:o, s:o, s:o, s:o, s:I, "
                             "s:f, s:o, s:o}",
                             "id", (json_int_t)j->id, "name", j->name ? j->name : "",
                             "spec", spec, "state", j->state, "priority", j->priority,
                             "queue_seq", (json_int_t)j->queue_seq,
                             "created_at", time_or_null(j->created_at),
                             "started_at", time_or_null(j->started_at),
                             "finished_at", time_or_null(j->finished_at),
                             "updated_at", time_or_null(j->updated_at),
                             "reason", j->reason ? json_string(j->reason) : json_null(),
                             "step", (json_int_t)j->step, "epoch", j->epoch,
                             "parent", parent, "kernels",
                             j->kernels[0] ? json_string(j->kernels) : json_null());
    if (!rest || json_object_update(o, rest) != 0) {
        json_decref(rest);
        json_decref(o);
        return NULL;
    }
    json_decref(rest);
    return o;
}

void store_job_list_free(store_job_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        store_job_clear(&l->jobs[i]);
    free(l->jobs);
    memset(l, 0, sizeof *l);
}

/* Append the rows of s to l->jobs, at most max (0 = all); returns the step code. */
static int collect_jobs(sql_stmt *s, store_job_list *l, size_t max, int *more)
{
    int sr;
    size_t cap = 0;
    *more = 0;
    while ((sr = sql_step(s, NULL)) == SQL_ROW) {
        if (max && l->n == max) {
            *more = 1;
            sr = SQL_DONE;
            break;
        }
        if (l->n == cap) {
            /* sized by `limit` or by the number of live jobs: checked, not aborted on */
            size_t ncap = cap ? cap * 2 : 16;
            store_job *nj = realloc(l->jobs, ncap * sizeof *l->jobs);
            if (!nj) {
                sr = VAED_ENOMEM;
                break;
            }
            l->jobs = nj;
            cap = ncap;
        }
        read_job(s, &l->jobs[l->n++]);
    }
    return sr;
}

int store_jobs_list(store *st, unsigned states, int64_t after, int limit,
                    store_job_list *out, vaed_err *err)
{
    struct rconn *c;
    memset(out, 0, sizeof *out);
    if (limit <= 0)
        limit = 100;
    int rc = store_racquire(st, &c, err);
    if (rc)
        return rc;
    /* One read transaction: the page and the total come from the same snapshot. */
    store_read_begin(c->db);
    sql_stmt *s = store_rstmt(c, R_JOBS_LIST, err), *n = s ? store_rstmt(c, R_JOBS_COUNT, err) : NULL;
    if (!n) {
        rc = VAED_EDB;
        goto done;
    }
    sql_bind_int64(s, 1, states);
    sql_bind_int64(s, 2, after);
    sql_bind_int64(s, 3, (int64_t)limit + 1);   /* one more tells if a page follows */
    int more = 0, sr = collect_jobs(s, out, (size_t)limit, &more);
    if ((rc = store_rdone(c, s, sr, "listing jobs", err)))
        goto done;
    if (more)
        out->next_after = out->jobs[out->n - 1].id;
    sql_bind_int64(n, 1, states);
    sr = sql_step(n, NULL);
    if (sr == SQL_ROW)
        out->total = sql_column_int64(n, 0);
    rc = store_rdone(c, n, sr, "counting jobs", err);
done:
    sql_exec(c->db, "COMMIT", NULL);
    store_rrelease(st, c);
    if (rc)
        store_job_list_free(out);
    return rc;
}

int store_jobs_count_by_state(store *st, int64_t counts[STORE_NSTATES], vaed_err *err)
{
    struct rconn *c;
    for (int i = 0; i < STORE_NSTATES; i++)
        counts[i] = 0;
    int rc = store_racquire(st, &c, err);
    if (rc)
        return rc;
    sql_stmt *s = store_rstmt(c, R_JOBS_BY_STATE, err);
    if (!s) {
        store_rrelease(st, c);
        return VAED_EDB;
    }
    /* One statement, so the counts come from one snapshot. A state outside the known
     * list cannot be stored (the schema checks it); were one there, it is skipped. */
    int sr;
    while ((sr = sql_step(s, NULL)) == SQL_ROW) {
        unsigned bit = store_state_bit((const char *)sql_column_text(s, 0));
        for (int i = 0; i < STORE_NSTATES; i++)
            if (bit == 1u << i)
                counts[i] = sql_column_int64(s, 1);
    }
    rc = store_rdone(c, s, sr, "counting jobs by state", err);
    store_rrelease(st, c);
    if (rc)
        for (int i = 0; i < STORE_NSTATES; i++)
            counts[i] = 0;
    return rc;
}

int store_jobs_resumable(store *st, store_job_list *out, vaed_err *err)
{
    struct rconn *c;
    memset(out, 0, sizeof *out);
    int rc = store_racquire(st, &c, err);
    if (rc)
        return rc;
    sql_stmt *s = store_rstmt(c, R_JOBS_RESUMABLE, err);
    if (!s) {
        store_rrelease(st, c);
        return VAED_EDB;
    }
    int more, sr = collect_jobs(s, out, 0, &more);
    rc = store_rdone(c, s, sr, "listing resumable jobs", err);
    store_rrelease(st, c);
    if (rc)
        store_job_list_free(out);
    return rc;
}

/* ---- epochs, events, checkpoints ------------------------------------------------ */

/* Run s (already bound) and hand each row to fn, which appends to a growing array of
 * elements of size esz at *arr; small allocations (one row per epoch or event). */
static int collect(struct rconn *c, sql_stmt *s, void **arr, size_t *n, size_t esz,
                   void (*fn)(sql_stmt *, void *), const char *what, vaed_err *err)
{
    size_t cap = 0;
    int sr;
    *arr = NULL;
    *n = 0;
    while ((sr = sql_step(s, NULL)) == SQL_ROW) {
        if (*n == cap) {
            /* what is collected so far stays in *arr for the caller to free */
            size_t ncap = cap ? cap * 2 : 16;
            void *q = realloc(*arr, ncap * esz);
            if (!q) {
                sr = VAED_ENOMEM;
                break;
            }
            *arr = q;
            cap = ncap;
        }
        fn(s, (char *)*arr + *n * esz);
        (*n)++;
    }
    return store_rdone(c, s, sr, what, err);
}

static void row_epoch(sql_stmt *s, void *p)
{
    store_epoch *e = p;
    memset(e, 0, sizeof *e);
    e->epoch = sql_column_int64(s, 0);
    col_strcpy(s, 1, e->split, sizeof e->split);
    e->step = sql_column_int64(s, 2);
    e->xent = sql_column_double(s, 3);
    e->kl = sql_column_double(s, 4);
    e->elbo = sql_column_double(s, 5);
    e->active_units = (int)sql_column_int64(s, 6);
    e->kl_dims = store_col_doubles(s, 7, &e->n_dims);
    e->time = sql_column_double(s, 8);
}

static void row_event(sql_stmt *s, void *p)
{
    store_event *e = p;
    memset(e, 0, sizeof *e);
    e->seq = sql_column_int64(s, 0);
    e->requested_at = sql_column_double(s, 1);
    e->effective_step = sql_column_int64(s, 2);
    e->schedule = col_strdup(s, 3);
    col_strcpy(s, 4, e->source, sizeof e->source);
    e->superseded = (int)sql_column_int64(s, 5);
}

static void row_ckpt(sql_stmt *s, void *p)
{
    store_ckpt *k = p;
    memset(k, 0, sizeof *k);
    k->step = sql_column_int64(s, 0);
    k->epoch = sql_column_double(s, 1);
    k->created_at = sql_column_double(s, 2);
    col_strcpy(s, 3, k->kind, sizeof k->kind);
    k->size = sql_column_int64(s, 4);
}

/* The common shape of the per-job list reads. */
static int list_by_job(store *st, enum rstmt_id id, int64_t job, void **arr, size_t *n,
                       size_t esz, void (*fn)(sql_stmt *, void *), const char *what,
                       vaed_err *err)
{
    struct rconn *c;
    *arr = NULL;
    *n = 0;
    int rc = store_racquire(st, &c, err);
    if (rc)
        return rc;
    sql_stmt *s = store_rstmt(c, id, err);
    if (!s) {
        store_rrelease(st, c);
        return VAED_EDB;
    }
    sql_bind_int64(s, 1, job);
    rc = collect(c, s, arr, n, esz, fn, what, err);
    store_rrelease(st, c);
    return rc;
}

int store_epochs_list(store *st, int64_t job, store_epoch **out, size_t *n, vaed_err *err)
{
    int rc = list_by_job(st, R_EPOCHS, job, (void **)out, n, sizeof **out, row_epoch,
                         "reading epochs", err);
    if (rc) {
        store_epochs_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

void store_epochs_free(store_epoch *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        free(e[i].kl_dims);
    free(e);
}

int store_events_list(store *st, int64_t job, store_event **out, size_t *n, vaed_err *err)
{
    int rc = list_by_job(st, R_EVENTS, job, (void **)out, n, sizeof **out, row_event,
                         "reading schedule events", err);
    if (rc) {
        store_events_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

void store_events_free(store_event *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        free(e[i].schedule);
    free(e);
}

int store_checkpoints_list(store *st, int64_t job, store_ckpt **out, size_t *n,
                           vaed_err *err)
{
    int rc = list_by_job(st, R_CKPTS, job, (void **)out, n, sizeof **out, row_ckpt,
                         "listing checkpoints", err);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int store_checkpoint_get(store *st, int64_t job, int64_t step, store_ckpt *meta,
                         void **blob, size_t *size, vaed_err *err)
{
    struct rconn *c;
    *blob = NULL;
    *size = 0;
    int rc = store_racquire(st, &c, err);
    if (rc)
        return rc;
    sql_stmt *s = store_rstmt(c, step < 0 ? R_CKPT_LATEST : R_CKPT_AT, err);
    if (!s) {
        store_rrelease(st, c);
        return VAED_EDB;
    }
    sql_bind_int64(s, 1, job);
    if (step >= 0)
        sql_bind_int64(s, 2, step);
    int sr = sql_step(s, NULL);
    if (sr == SQL_ROW) {
        store_ckpt k;
        row_ckpt(s, &k);
        const void *b = sql_column_blob(s, 5);
        size_t n = (size_t)(int)sql_column_bytes(s, 5);
        /* A checkpoint is model-sized: a checked malloc, the request fails cleanly. */
        void *copy = malloc(n ? n : 1);
        if (!copy) {
            sql_reset(s);
            sql_clear_bindings(s);
            store_rrelease(st, c);
            return vaed_err_set(err, VAED_ENOMEM, "", "no memory for a %zu-byte checkpoint", n);
        }
        if (n)
            memcpy(copy, b, n);
        *blob = copy;
        *size = n;
        if (meta)
            *meta = k;
    }
    rc = store_rdone(c, s, sr, "reading a checkpoint", err);
    store_rrelease(st, c);
    if (rc) {
        free(*blob);
        *blob = NULL;
        *size = 0;
    } else if (sr == SQL_DONE) {
        rc = step < 0 ? vaed_err_set(err, VAED_ENOTFOUND, "", "job %lld has no checkpoint",
                                     (long long)job)
                      : vaed_err_set(err, VAED_ENOTFOUND, "",
                                     "job %lld has no checkpoint at step %lld",
                                     (long long)job, (long long)step);
    }
    return rc;
}
