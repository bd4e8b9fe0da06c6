/* sweeps.c — a sweep's rows (see sweeps.h).
 *
 * The insert is a writer call (writer_call.h): the sweep, then per trial the job (the
 * writer's own job-insert text, store_impl.h), its "submit" schedule event (the
 * writer's event text) and the trial row, all in the call's savepoint of one batch
 * transaction. Reads open a read-only connection per call, as datasets.c does: a
 * sweep is read when a client asks for it, not per step. */
#include "store/sweeps.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_impl.h"
#include "store/writer_call.h"

static const char SQL_SWEEP_INSERT[] =
    "INSERT INTO sweeps(name, spec, concurrency, created_at) VALUES (?1, ?2, ?3, ?4) "
    "RETURNING id";
static const char SQL_TRIAL_INSERT[] =
    "INSERT INTO sweep_trials(sweep, trial, job, point) VALUES (?1, ?2, ?3, ?4)";
static const char SQL_GET[] =
    "SELECT id, name, spec, concurrency, created_at FROM sweeps WHERE id = ?1";
/* A trial's figures: its job's last test-epoch row, and the highest bound of its
 * completed evaluations (the "best" checkpoint's, store/evals.h). */
static const char SQL_TRIALS[] =
    "SELECT t.trial, t.job, t.point, j.state, e.kl, e.xent, e.elbo, e.active_units, "
    "  e.epoch IS NOT NULL, "
    "  (SELECT max(" STORE_SQL_BOUND ") FROM evaluations v "
    "   WHERE v.job = t.job AND v.state = 'completed'), e.epoch, j.reason "
    "FROM sweep_trials t JOIN jobs j ON j.id = t.job "
    "LEFT JOIN epochs e ON e.job = t.job AND e.split = 'test' AND e.epoch = "
    "  (SELECT max(epoch) FROM epochs WHERE job = t.job AND split = 'test') "
    "WHERE t.sweep = ?1 ORDER BY t.trial";
/* One statement per metric: the column is never built into the SQL text. */
#define SQL_RUNG(col)                                                                   \
    "SELECT e." col " FROM sweep_trials t JOIN epochs e ON e.job = t.job AND "          \
    "e.split = 'test' AND e.epoch = ?2 WHERE t.sweep = ?1 AND t.job != ?3 ORDER BY t.trial"
static const char *const SQL_RUNGS[][2] = {
    {"elbo", SQL_RUNG("elbo")}, {"kl", SQL_RUNG("kl")}, {"xent", SQL_RUNG("xent")}};
static const char SQL_IDS[] = "SELECT id FROM sweeps ORDER BY id";
static const char SQL_OF_JOB[] =
    "SELECT s.id, s.concurrency FROM sweep_trials t JOIN sweeps s ON s.id = t.sweep "
    "WHERE t.job = ?1";

static char *col_dup(sql_stmt *s, int i)
{
    const char *t = sql_column_text(s, i);
    return xstrdup(t ? (const char *)t : "");
}

void store_sweep_clear(store_sweep *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->spec);
    for (size_t i = 0; i < s->n; i++) {
        free(s->trials[i].point);
        free(s->trials[i].reason);
    }
    free(s->trials);
    memset(s, 0, sizeof *s);
}

/* ---- the insert ----------------------------------------------------------------- */

typedef struct ins_arg {
    const store_sweep_new *sw;
    int64_t *job_ids;
} ins_arg;

static int do_insert(sql_conn *db, void *arg, int *vrc, int64_t *out_id, char *msg,
                     size_t msgsz)
{
    (void)vrc, (void)msg, (void)msgsz;
    ins_arg *a = arg;
    const store_sweep_new *sw = a->sw;
    sql_stmt *st[4] = {NULL};
    const char *sql[4] = {SQL_SWEEP_INSERT, STORE_SQL_JOB_INSERT, STORE_SQL_EVENT_INSERT,
                          SQL_TRIAL_INSERT};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        rc = sql_prepare(db, sql[i], &st[i], NULL);
    if (rc != 0)
        goto done;
    double now = store_now();
    sql_bind_text(st[0], 1, sw->name ? sw->name : "");
    sql_bind_text(st[0], 2, sw->spec);
    sql_bind_int64(st[0], 3, sw->concurrency);
    sql_bind_double(st[0], 4, now);
    int64_t sid = 0;
    if ((rc = store_wrun(st[0], &sid)) != SQL_DONE)
        goto done;
    for (size_t i = 0; i < sw->n; i++) {
        const store_sweep_trial_new *t = &sw->trials[i];
        sql_bind_text(st[1], 1, t->name ? t->name : "");
        sql_bind_text(st[1], 2, t->spec);
        sql_bind_text(st[1], 3, "queued");
        sql_bind_int64(st[1], 4, t->priority);
        sql_bind_double(st[1], 5, now);
        sql_bind_null(st[1], 6);
        sql_bind_null(st[1], 7);
        int64_t job = 0;
        if ((rc = store_wrun(st[1], &job)) != SQL_DONE)
            goto done;
        sql_bind_int64(st[2], 1, job);
        sql_bind_double(st[2], 2, now);
        sql_bind_int64(st[2], 3, 0);
        sql_bind_text(st[2], 4, t->schedule);
        sql_bind_text(st[2], 5, "submit");
        if ((rc = store_wrun(st[2], NULL)) != SQL_DONE)
            goto done;
        sql_bind_int64(st[3], 1, sid);
        sql_bind_int64(st[3], 2, (int64_t)i);
        sql_bind_int64(st[3], 3, job);
        sql_bind_text(st[3], 4, t->point);
        if ((rc = store_wrun(st[3], NULL)) != SQL_DONE)
            goto done;
        a->job_ids[i] = job;
    }
    *out_id = sid;
done:
    for (int i = 0; i < 4; i++)
        sql_finalize(st[i]);
    return rc == 0 ? SQL_DONE : rc;
}

static int valid_json(const char *text, const char *field, vaed_err *err)
{
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    json_decref(j);
    return j ? 0 : vaed_err_set(err, VAED_EINVAL, field, "not valid JSON");
}

int store_sweep_insert(store *st, const store_sweep_new *sw, int64_t *id, int64_t *job_ids,
                       vaed_err *err)
{
    int rc = valid_json(sw->spec, "spec", err);
    for (size_t i = 0; !rc && i < sw->n; i++)
        if (!(rc = valid_json(sw->trials[i].spec, "spec", err)) &&
            !(rc = valid_json(sw->trials[i].schedule, "schedule", err)))
            rc = valid_json(sw->trials[i].point, "point", err);
    if (rc)
        return rc;
    if (sw->concurrency < 1)
        return vaed_err_set(err, VAED_EINVAL, "concurrency", "at least 1");
    ins_arg a = {sw, job_ids};
    return store_writer_call(st, 0, do_insert, &a, id, err);
}

/* ---- reads ---------------------------------------------------------------------- */

static int read_trials(sql_conn *db, store_sweep *s, vaed_err *err)
{
    sql_stmt *q = NULL;
    if (sql_prepare(db, SQL_TRIALS, &q, NULL) != 0)
        return store_dberr(err, db, "reading sweep trials");
    sql_bind_int64(q, 1, s->id);
    size_t cap = 0;
    int sr;
    while ((sr = sql_step(q, NULL)) == SQL_ROW) {
        if (s->n == cap) {
            /* one row per trial, bounded by max_trials: the abort-on-failure policy */
            cap = cap ? cap * 2 : 16;
            store_sweep_trial *p = realloc(s->trials, cap * sizeof *p);
            if (!p)
                abort();
            s->trials = p;
        }
        store_sweep_trial *t = &s->trials[s->n++];
        memset(t, 0, sizeof *t);
        t->trial = sql_column_int64(q, 0);
        t->job = sql_column_int64(q, 1);
        t->point = col_dup(q, 2);
        const char *stt = sql_column_text(q, 3);
        snprintf(t->state, sizeof t->state, "%s", stt ? (const char *)stt : "");
        t->has_epoch = (int)sql_column_int64(q, 8);
        t->kl = sql_column_double(q, 4);
        t->xent = sql_column_double(q, 5);
        t->elbo = sql_column_double(q, 6);
        t->active_units = (int)sql_column_int64(q, 7);
        t->has_bound = sql_column_type(q, 9) != SQL_NULL;
        t->bound = sql_column_double(q, 9);
        t->epoch = (int)sql_column_int64(q, 10);
        if (sql_column_type(q, 11) != SQL_NULL)
            t->reason = col_dup(q, 11);
    }
    int rc = sr == SQL_DONE ? 0 : store_dberr(err, db, "reading sweep trials");
    sql_finalize(q);
    return rc;
}

int store_sweep_get(store *st, int64_t id, int trials, store_sweep *s, vaed_err *err)
{
    memset(s, 0, sizeof *s);
    sql_conn *db = NULL;
    sql_stmt *q = NULL;
    int rc = store_ropen(st, &db, err);
    if (rc)
        return rc;
    /* one snapshot for the sweep and its trials */
    store_read_begin(db);
    if (sql_prepare(db, SQL_GET, &q, NULL) != 0) {
        rc = store_dberr(err, db, "reading a sweep");
        goto done;
    }
    sql_bind_int64(q, 1, id);
    int sr = sql_step(q, NULL);
    if (sr == SQL_ROW) {
        s->id = sql_column_int64(q, 0);
        s->name = col_dup(q, 1);
        s->spec = col_dup(q, 2);
        s->concurrency = (int)sql_column_int64(q, 3);
        s->created_at = sql_column_double(q, 4);
    } else if (sr == SQL_DONE) {
        rc = vaed_err_set(err, VAED_ENOTFOUND, "", "sweep %" PRId64 " not found", id);
    } else {
        rc = store_dberr(err, db, "reading a sweep");
    }
    sql_finalize(q);
    if (!rc && trials)
        rc = read_trials(db, s, err);
done:
    sql_exec(db, "COMMIT", NULL);
    sql_close(db);
    if (rc)
        store_sweep_clear(s);
    return rc;
}

int store_sweeps_ids(store *st, int64_t **ids, size_t *n, vaed_err *err)
{
    *ids = NULL;
    *n = 0;
    sql_conn *db = NULL;
    sql_stmt *q = NULL;
    int rc = store_read_open(st, SQL_IDS, &db, &q, "listing sweeps", err);
    if (rc)
        return rc;
    size_t cap = 0;
    int sr;
    while ((sr = sql_step(q, NULL)) == SQL_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *p = realloc(*ids, cap * sizeof *p);
            if (!p)
                abort();
            *ids = p;
        }
        (*ids)[(*n)++] = sql_column_int64(q, 0);
    }
    if (sr != SQL_DONE) {
        rc = store_dberr(err, db, "listing sweeps");
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    sql_finalize(q);
    sql_close(db);
    return rc;
}

int store_sweep_of_job(store *st, int64_t job, int64_t *sweep, int *concurrency,
                       vaed_err *err)
{
    *sweep = 0;
    *concurrency = 0;
    sql_conn *db = NULL;
    sql_stmt *q = NULL;
    int rc = store_ropen(st, &db, err);
    if (rc)
        return rc;
    if (sql_prepare(db, SQL_OF_JOB, &q, NULL) != 0) {
        rc = store_dberr(err, db, "reading a job's sweep");
    } else {
        sql_bind_int64(q, 1, job);
        int sr = sql_step(q, NULL);
        if (sr == SQL_ROW) {
            *sweep = sql_column_int64(q, 0);
            *concurrency = (int)sql_column_int64(q, 1);
        } else if (sr != SQL_DONE) {
            rc = store_dberr(err, db, "reading a job's sweep");
        }
    }
    sql_finalize(q);
    sql_close(db);
    return rc;
}

/* Make room for one more element in *pp (n used of *cap, size bytes each). */
static int grow(void *pp, size_t n, size_t *cap, size_t size)
{
    void **p = pp;
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *q = realloc(*p, c * size);
    if (!q)
        return VAED_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* Run sql with its int64 parameters, handing each row to row(q, ctx); 0 or the error. */
static int each_row(store *st, const char *sql, const int64_t *par, int npar,
                     int (*row)(sql_stmt *, void *), void *ctx, const char *what,
                     vaed_err *err)
{
    sql_conn *db = NULL;
    sql_stmt *q = NULL;
    int rc = store_read_open(st, sql, &db, &q, what, err);
    if (rc)
        return rc;
    for (int i = 0; i < npar; i++)
        sql_bind_int64(q, i + 1, par[i]);
    int sr;
    while ((sr = sql_step(q, NULL)) == SQL_ROW)
        if ((rc = row(q, ctx)))
            break;
    if (!rc && sr != SQL_DONE)
        rc = store_dberr(err, db, "%s", what);
    sql_finalize(q);
    sql_close(db);
    return rc;
}

typedef struct rung_vals {
    double *v;
    size_t n, cap;
} rung_vals;

static int rung_collect(sql_stmt *q, void *ctx)
{
    rung_vals *r = ctx;
    if (grow(&r->v, r->n, &r->cap, sizeof *r->v))
        return VAED_ENOMEM;
    r->v[r->n++] = sql_column_double(q, 0);
    return 0;
}

int store_sweep_rung_values(store *st, int64_t sweep, int64_t job, int epoch,
                            const char *metric, double **vals, size_t *n, vaed_err *err)
{
    *vals = NULL;
    *n = 0;
    const char *sql = NULL;
    for (size_t i = 0; i < sizeof SQL_RUNGS / sizeof SQL_RUNGS[0]; i++)
        if (!strcmp(metric, SQL_RUNGS[i][0]))
            sql = SQL_RUNGS[i][1];
    if (!sql)
        return vaed_err_set(err, VAED_EINVAL, "metric", "elbo, kl or xent");
    rung_vals r = {0};
    int64_t par[3] = {sweep, epoch, job};
    int rc = each_row(st, sql, par, 3, rung_collect, &r, "reading a sweep's rung", err);
    if (rc == VAED_ENOMEM)
        vaed_err_set(err, rc, NULL, "out of memory");
    if (rc) {
        free(r.v);
        return rc;
    }
    *vals = r.v;
    *n = r.n;
    return 0;
}

/* ---- PBT decisions ------------------------------------------------------------------ */

static const char SQL_PBT_INSERT[] =
    "INSERT INTO pbt_decisions(job, step, epoch, donor, value, schedule, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (job, step) DO NOTHING";
static const char SQL_PBT_GET[] =
    "SELECT d.job, d.step, d.epoch, d.donor, d.value, d.schedule, d.created_at, "
    "  coalesce(t.trial, -1) FROM pbt_decisions d LEFT JOIN sweep_trials t ON t.job = d.job "
    "WHERE d.job = ?1 AND d.step = ?2";
static const char SQL_PBT_LIST[] =
    "SELECT d.job, d.step, d.epoch, d.donor, d.value, d.schedule, d.created_at, t.trial "
    "FROM pbt_decisions d JOIN sweep_trials t ON t.job = d.job WHERE t.sweep = ?1 "
    "ORDER BY t.trial, d.step";
/* One statement per metric: the column is never built into the SQL text. */
#define SQL_PBT_MEMBERS(col)                                                               \
    "SELECT t.job, t.trial, e." col " FROM sweep_trials t JOIN epochs e ON e.job = t.job "  \
    "AND e.split = 'test' AND e.epoch = ?3 WHERE t.sweep = ?1 AND (t.job = ?4 OR EXISTS "    \
    "(SELECT 1 FROM pbt_decisions d WHERE d.job = t.job AND d.step = ?2 AND d.donor IS NULL)) " \
    "ORDER BY t.trial"
static const char *const SQL_PBT_MEMBERS_BY[][2] = {{"elbo", SQL_PBT_MEMBERS("elbo")},
                                                    {"kl", SQL_PBT_MEMBERS("kl")},
                                                    {"xent", SQL_PBT_MEMBERS("xent")}};

static int do_pbt_insert(sql_conn *db, void *arg, int *vrc, int64_t *out_id, char *msg,
                         size_t msgsz)
{
    (void)vrc, (void)out_id, (void)msg, (void)msgsz;
    const store_pbt_decision *d = arg;
    sql_stmt *s = NULL;
    int rc = sql_prepare(db, SQL_PBT_INSERT, &s, NULL);
    if (rc != 0)
        return rc;
    sql_bind_int64(s, 1, d->job);
    sql_bind_int64(s, 2, d->step);
    sql_bind_int64(s, 3, d->epoch);
    if (d->donor > 0)
        sql_bind_int64(s, 4, d->donor);
    if (isfinite(d->value))
        sql_bind_double(s, 5, d->value);
    if (d->schedule)
        sql_bind_text(s, 6, d->schedule);
    sql_bind_double(s, 7, store_now());
    rc = store_wrun(s, NULL);
    sql_finalize(s);
    return rc;
}

int store_pbt_decide(store *st, const store_pbt_decision *d, vaed_err *err)
{
    if (d->schedule) {
        json_error_t je;
        json_t *j = json_loads(d->schedule, 0, &je);
        json_decref(j);
        if (!j)
            return vaed_err_set(err, VAED_EINVAL, "schedule", "not JSON");
    }
    return store_writer_call(st, d->job, do_pbt_insert, (void *)d, NULL, err);
}

static void pbt_row(sql_stmt *q, store_pbt_decision *d)
{
    d->job = sql_column_int64(q, 0);
    d->step = sql_column_int64(q, 1);
    d->epoch = (int)sql_column_int64(q, 2);
    d->donor = sql_column_type(q, 3) == SQL_NULL ? 0 : sql_column_int64(q, 3);
    d->value = sql_column_type(q, 4) == SQL_NULL ? NAN : sql_column_double(q, 4);
    d->schedule = sql_column_type(q, 5) == SQL_NULL ? NULL : col_dup(q, 5);
    d->created_at = sql_column_double(q, 6);
    d->trial = sql_column_int64(q, 7);
}

typedef struct pbt_rows {
    store_pbt_decision *d;
    size_t n, cap;
} pbt_rows;

static int pbt_collect(sql_stmt *q, void *ctx)
{
    pbt_rows *r = ctx;
    if (grow(&r->d, r->n, &r->cap, sizeof *r->d))
        return VAED_ENOMEM;
    pbt_row(q, &r->d[r->n++]);
    return 0;
}

void store_pbt_free(store_pbt_decision *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++)
        free(d[i].schedule);
    free(d);
}

int store_pbt_get(store *st, int64_t job, int64_t step, store_pbt_decision *d, vaed_err *err)
{
    memset(d, 0, sizeof *d);
    pbt_rows r = {0};
    int64_t par[2] = {job, step};
    int rc = each_row(st, SQL_PBT_GET, par, 2, pbt_collect, &r, "reading a PBT decision", err);
    if (rc == VAED_ENOMEM)
        vaed_err_set(err, rc, NULL, "out of memory");
    if (!rc && r.n == 0)
        rc = vaed_err_set(err, VAED_ENOTFOUND, NULL, "no decision of job %lld at step %lld",
                          (long long)job, (long long)step);
    if (!rc) {
        *d = r.d[0];
        r.d[0].schedule = NULL;
    }
    store_pbt_free(r.d, r.n);
    return rc;
}

int store_pbt_list(store *st, int64_t sweep, store_pbt_decision **out, size_t *n,
                   vaed_err *err)
{
    pbt_rows r = {0};
    int rc = each_row(st, SQL_PBT_LIST, &sweep, 1, pbt_collect, &r, "reading a sweep's PBT "
                                                                     "decisions", err);
    if (rc == VAED_ENOMEM)
        vaed_err_set(err, rc, NULL, "out of memory");
    if (rc) {
        store_pbt_free(r.d, r.n);
        r.d = NULL;
        r.n = 0;
    }
    *out = r.d;
    *n = r.n;
    return rc;
}

typedef struct pbt_members {
    int64_t *jobs, *trials;
    double *vals;
    size_t n, cap;
} pbt_members;

static int members_collect(sql_stmt *q, void *ctx)
{
    pbt_members *m = ctx;
    size_t c0 = m->cap, c1 = m->cap, c2 = m->cap;
    if (grow(&m->jobs, m->n, &c0, sizeof *m->jobs) || grow(&m->trials, m->n, &c1, sizeof *m->trials) ||
        grow(&m->vals, m->n, &c2, sizeof *m->vals))
        return VAED_ENOMEM; /* a grown one keeps its block: freed by the caller */
    m->cap = c0;
    m->jobs[m->n] = sql_column_int64(q, 0);
    m->trials[m->n] = sql_column_int64(q, 1);
    m->vals[m->n++] = sql_column_type(q, 2) == SQL_NULL ? NAN : sql_column_double(q, 2);
    return 0;
}

int store_pbt_members(store *st, int64_t sweep, int64_t job, int64_t step, int epoch,
                      const char *metric, int64_t **jobs, int64_t **trials, double **vals,
                      size_t *n, vaed_err *err)
{
    *jobs = *trials = NULL;
    *vals = NULL;
    *n = 0;
    const char *sql = NULL;
    for (size_t i = 0; i < sizeof SQL_PBT_MEMBERS_BY / sizeof SQL_PBT_MEMBERS_BY[0]; i++)
        if (!strcmp(metric, SQL_PBT_MEMBERS_BY[i][0]))
            sql = SQL_PBT_MEMBERS_BY[i][1];
    if (!sql)
        return vaed_err_set(err, VAED_EINVAL, "metric", "elbo, kl or xent");
    pbt_members m = {0};
    int64_t par[4] = {sweep, step, epoch, job};
    int rc = each_row(st, sql, par, 4, members_collect, &m, "reading a PBT generation", err);
    if (rc == VAED_ENOMEM)
        vaed_err_set(err, rc, NULL, "out of memory");
    if (rc) {
        free(m.jobs);
        free(m.trials);
        free(m.vals);
        return rc;
    }
    *jobs = m.jobs;
    *trials = m.trials;
    *vals = m.vals;
    *n = m.n;
    return 0;
}
