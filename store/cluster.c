/* cluster.c — the store's side of a cluster (issue 17; store.h "cluster"): this node's
 * leases on jobs, taken, renewed and released on a connection of their own (so a renew
 * never waits behind the writer's batch on the client side), and the generations the
 * writer fences each job's writes with. The rules are lease.h's; a sweep's trial is
 * taken in a transaction that counts its sweep's held leases first (take_trial). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/lease.h"
#include "store/store_impl.h"

int store_cluster_open(store *st, vaed_err *err)
{
    if (!st->opts.node || !*st->opts.node)
        return 0;
    if (strlen(st->opts.node) >= sizeof st->node)
        return vaed_err_set(err, VAED_EINVAL, "node", "node: a name of 1 to %zu bytes",
                            sizeof st->node - 1);
    /* a take must not wait behind a stopped node's row lock (its transaction ends
     * within half a lease; the take is tried again): a short busy timeout */
    int rc = store_conn_open(&st->ldb, st->path, 250, 0, err);
    if (rc == 0 && (rc = lease_schema(st->ldb, err)) == 0 &&
        (rc = store_controls_schema(st->ldb, err)) == 0)
        snprintf(st->node, sizeof st->node, "%s", st->opts.node);
    return rc;
}

void store_cluster_close(store *st)
{
    sql_close(st->ldb);
    st->ldb = NULL;
    sql_close(st->cdb);
    st->cdb = NULL;
    sql_close(st->ndb);
    st->ndb = NULL;
    free(st->fences);
    st->fences = NULL;
    pthread_mutex_destroy(&st->lmu);
    pthread_mutex_destroy(&st->fmu);
}

int store_session_pg(store *st, sql_conn *c, vaed_err *err)
{
    if (sql_kind_of(c) != SQL_POSTGRES)
        return 0;
    if (!st->opts.node || !*st->opts.node)
        return store_hold_pg(c, err);
    /* the nodes share the hold a store without a node name takes alone: such a store (a
     * daemon of a build before clusters) cannot open the database while a node has it,
     * nor a node while it does */
    sql_stmt *s = NULL;
    int rc = sql_prepare(c, "SELECT pg_try_advisory_lock_shared(" STORE_PG_HOLD_KEY ")", &s, err);
    if (rc == 0 && (rc = sql_step(s, err)) == SQL_ROW)
        rc = sql_column_int64(s, 0) ? 0 : vaed_err_set(err, VAED_EBUSY, "", "a vaed that is no "
                                                      "cluster node (a build before clusters, "
                                                      "or a store opened without a node "
                                                      "name) holds this database alone");
    else if (rc == SQL_DONE)
        rc = vaed_err_set(err, VAED_EDB, "", "pg_try_advisory_lock_shared returned no row");
    sql_finalize(s);
    if (rc)
        return rc;
    double ttl = st->opts.lease_ttl > 0 ? st->opts.lease_ttl : 10.0;
    long ms = (long)(ttl * 500.0);
    char sql[96];
    snprintf(sql, sizeof sql, "SET idle_in_transaction_session_timeout = %ld",
             ms < 500 ? 500 : ms);
    return sql_exec(c, sql, err) ? store_dberr(err, c, "idle_in_transaction_session_timeout") : 0;
}

const char *store_node(const store *st)
{
    return st->node;
}

/* Run fn on the lease connection (lmu held), once more after a reconnect when the
 * server went away under it. */
static int on_ldb(store *st, int (*fn)(store *, void *, vaed_err *), void *arg, vaed_err *err)
{
    if (!st->node[0])
        return vaed_err_set(err, VAED_ESTATE, "", "this store is no cluster node");
    pthread_mutex_lock(&st->lmu);
    int rc = fn(st, arg, err);
    if (rc < 0 && rc != VAED_ESTATE && (sql_errclass_of(st->ldb) == SQL_EC_CONN || !sql_alive(st->ldb))) {
        vaed_err e;
        if (sql_reconnect(st->ldb, &e) == 0)
            rc = fn(st, arg, err);
    }
    pthread_mutex_unlock(&st->lmu);
    return rc;
}

/* (fmu held) */
static struct store_fence *fence_find(store *st, int64_t job)
{
    for (size_t i = 0; i < st->n_fences; i++)
        if (st->fences[i].job == job)
            return &st->fences[i];
    return NULL;
}

/* Room for one more generation (before a lease is taken: a taken lease must be
 * fenced). 0, or VAED_ENOMEM. */
static int fence_room(store *st, vaed_err *err)
{
    pthread_mutex_lock(&st->fmu);
    int rc = 0;
    if (st->n_fences >= st->cap_fences) {
        size_t cap = st->cap_fences ? 2 * st->cap_fences : 16;
        struct store_fence *f = realloc(st->fences, cap * sizeof *f);
        if (f) {
            st->fences = f;
            st->cap_fences = cap;
        } else {
            rc = vaed_err_set(err, VAED_ENOMEM, "", "lease: out of memory");
        }
    }
    pthread_mutex_unlock(&st->fmu);
    return rc;
}

static void fence_set(store *st, int64_t job, int64_t gen)
{
    pthread_mutex_lock(&st->fmu);
    struct store_fence *f = fence_find(st, job);
    if (!f) {
        f = &st->fences[st->n_fences++];
        f->job = job;
    }
    f->gen = gen;
    pthread_mutex_unlock(&st->fmu);
}

static void fence_drop(store *st, int64_t job)
{
    pthread_mutex_lock(&st->fmu);
    struct store_fence *f = fence_find(st, job);
    if (f)
        *f = st->fences[--st->n_fences];
    pthread_mutex_unlock(&st->fmu);
}

struct take_arg {
    int64_t job;
    double ttl;
    store_lease *out;
    int64_t sweep;      /* the job's sweep (store_lease_take_trial), else 0 */
};

static void from_lease(store_lease *o, const lease *l)
{
    memset(o, 0, sizeof *o);
    o->job = l->job;
    o->gen = l->gen;
    o->expires = l->expires;
    snprintf(o->node, sizeof o->node, "%s", l->node);
}

/* Run sql with ?1 = a and, when b >= 0, ?2 = b: 1 with *v the first row's first
 * column, 0 when there is no row, or an error. */
static int query_int(sql_conn *c, const char *sql, int64_t a, int64_t b, int64_t *v,
                     vaed_err *err)
{
    sql_stmt *s = NULL;
    int rc = sql_prepare(c, sql, &s, err);
    if (rc < 0)
        return rc;
    if (sql_bind_int64(s, 1, a) || (b >= 0 && sql_bind_int64(s, 2, b))) {
        sql_finalize(s);
        return vaed_err_set(err, VAED_ENOMEM, "", "lease: binding");
    }
    rc = sql_step(s, err);
    if (rc == SQL_ROW) {
        *v = sql_column_int64(s, 0);
        rc = 1;
    } else if (rc == SQL_DONE) {
        rc = 0;
    }
    sql_finalize(s);
    return rc;
}

#define SQL_SWEEP_LOCK "SELECT concurrency FROM sweeps WHERE id = ?1"
#define SQL_SWEEP_HELD                                                                   \
    "SELECT count(*) FROM leases l JOIN sweep_trials t ON t.job = l.job WHERE t.sweep = " \
    "?1 AND l.job <> ?2 AND l.done = 0 AND l.node IS NOT NULL AND l.expires > "

/* Take a->job, a trial of a->sweep, in one transaction (lmu held). The sweep's row is
 * locked first, so that two nodes taking two of its trials at once go one after the
 * other and the second counts the first's lease (read committed: each statement sees
 * what committed before it); then the trials whose leases nodes hold are counted and
 * the lease is taken only below the sweep's concurrency. 1 taken, 0 held elsewhere or
 * a->out->full (also when another node's take holds the sweep past the lock timeout:
 * tried again within a second), or an error. */
static int take_trial(store *st, struct take_arg *a, lease *l, vaed_err *err)
{
    sql_conn *c = st->ldb;
    int pg = sql_kind_of(c) == SQL_POSTGRES;
    char held[320], set[96];
    snprintf(held, sizeof held, "%s%s", SQL_SWEEP_HELD, lease_now_sql(sql_kind_of(c)));
    /* a node stopped inside this transaction must not hold its sweep for long */
    double ttl = st->opts.lease_ttl > 0 ? st->opts.lease_ttl : 10.0;
    snprintf(set, sizeof set, "SET LOCAL idle_in_transaction_session_timeout = %ld",
             ttl * 500.0 < 500 ? 500L : (long)(ttl * 500.0));
    int64_t conc = 0, n = 0;
    a->out->full = 0;
    int rc = sql_begin(c, 1, err), found = 0;
    if (rc == 0 && pg) /* whatever the server's default: the count must see the commits */
        rc = sql_exec(c, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", err);
    if (rc == 0 && pg)
        rc = sql_exec(c, set, err);
    if (rc == 0) {
        rc = query_int(c, pg ? SQL_SWEEP_LOCK " FOR NO KEY UPDATE" : SQL_SWEEP_LOCK, a->sweep,
                       -1, &conc, err);
        found = rc == 1;
        if (rc < 0 && sql_errclass_of(c) == SQL_EC_BUSY) {
            rc = 0;
            a->out->full = 1;
        }
    }
    if (rc >= 0 && found)
        rc = query_int(c, held, a->sweep, a->job, &n, err);
    if (rc >= 0 && found && n >= conc)
        a->out->full = 1;
    if (rc >= 0 && !a->out->full) {
        rc = lease_take(c, a->job, st->node, a->ttl, l, err);
        int cr = rc >= 0 ? sql_commit(c, err) : 0;
        rc = cr < 0 ? cr : rc;
    }
    if (sql_in_transaction(c))
        sql_rollback(c, NULL);
    return rc < 0 ? rc : a->out->full ? 0 : rc;
}

static int do_take(store *st, void *arg, vaed_err *err)
{
    struct take_arg *a = arg;
    lease l;
    if (fence_room(st, err))
        return VAED_ENOMEM;
    /* a plain read first: a lease another node holds is not tried for (the take's row
     * lock would queue behind its writer's, and its renewal behind the take) */
    int held = 0, done = 0;
    int rc = lease_get(st->ldb, a->job, &l, &held, &done, err);
    if (rc < 0)
        return rc;
    if (rc == 1 && (done || (held && strcmp(l.node, st->node)))) {
        from_lease(a->out, &l);
        a->out->held = held;
        a->out->done = done;
        return 0;
    }
    rc = a->sweep > 0 ? take_trial(st, a, &l, err)
                      : lease_take(st->ldb, a->job, st->node, a->ttl, &l, err);
    if (rc == 0 && a->out->full) {
        a->out->job = a->job;
        return 0;
    }
    if (rc == 1) {
        from_lease(a->out, &l);
        a->out->held = 1;
        fence_set(st, a->job, l.gen);
    } else if (rc == 0) {
        if (lease_get(st->ldb, a->job, &l, &held, &done, err) >= 0) {
            from_lease(a->out, &l);
            a->out->held = held;
            a->out->done = done;
        }
    }
    return rc;
}

int store_lease_take(store *st, int64_t job, double ttl, store_lease *out, vaed_err *err)
{
    struct take_arg a = {job, ttl, out, 0};
    memset(out, 0, sizeof *out);
    return on_ldb(st, do_take, &a, err);
}

int store_lease_take_trial(store *st, int64_t job, int64_t sweep, double ttl,
                           store_lease *out, vaed_err *err)
{
    struct take_arg a = {job, ttl, out, sweep};
    memset(out, 0, sizeof *out);
    return on_ldb(st, do_take, &a, err);
}

/* The lease this node holds on a->job, as lease.h's (lmu held): 0, or VAED_ESTATE. */
static int held_lease(store *st, int64_t job, lease *l, vaed_err *err)
{
    pthread_mutex_lock(&st->fmu);
    struct store_fence *f = fence_find(st, job);
    int64_t gen = f ? f->gen : 0;
    pthread_mutex_unlock(&st->fmu);
    if (!gen)
        return vaed_err_set(err, VAED_ESTATE, "", "job %lld: this node holds no lease on it",
                            (long long)job);
    memset(l, 0, sizeof *l);
    l->job = job;
    l->gen = gen;
    snprintf(l->node, sizeof l->node, "%s", st->node);
    return 0;
}

static int do_renew(store *st, void *arg, vaed_err *err)
{
    struct take_arg *a = arg;
    lease l;
    int rc = held_lease(st, a->job, &l, err);
    if (rc)
        return rc;
    /* a renewal waits for this node's own writer to commit (its fence holds the row
     * FOR SHARE): the store's busy timeout, not the takes' short one */
    int pg = sql_kind_of(st->ldb) == SQL_POSTGRES;
    char set[64];
    snprintf(set, sizeof set, "SET lock_timeout = %d", st->opts.busy_timeout_ms);
    if (pg)
        sql_exec(st->ldb, set, NULL);
    rc = lease_renew(st->ldb, &l, a->ttl, err);
    if (pg)
        sql_exec(st->ldb, "SET lock_timeout = 250", NULL);
    return rc;
}

int store_lease_renew(store *st, int64_t job, double ttl, vaed_err *err)
{
    struct take_arg a = {job, ttl, NULL, 0};
    return on_ldb(st, do_renew, &a, err);
}

static int do_release(store *st, void *arg, vaed_err *err)
{
    struct take_arg *a = arg;
    lease l;
    int rc = held_lease(st, a->job, &l, err);
    if (rc == 0) {
        rc = lease_release(st->ldb, &l, a->ttl > 0, err);
        if (rc == 0 || rc == VAED_ESTATE)
            fence_drop(st, a->job);
    }
    return rc;
}

int store_lease_release(store *st, int64_t job, int done, vaed_err *err)
{
    struct take_arg a = {job, done ? 1.0 : 0.0, NULL, 0};
    return on_ldb(st, do_release, &a, err);
}

static int do_get(store *st, void *arg, vaed_err *err)
{
    struct take_arg *a = arg;
    lease l;
    int held = 0, done = 0;
    int rc = lease_get(st->ldb, a->job, &l, &held, &done, err);
    if (rc == 1) {
        from_lease(a->out, &l);
        a->out->held = held;
        a->out->done = done;
    }
    return rc;
}

int store_lease_get(store *st, int64_t job, store_lease *out, vaed_err *err)
{
    struct take_arg a = {job, 0, out, 0};
    memset(out, 0, sizeof *out);
    return on_ldb(st, do_get, &a, err);
}

int64_t store_fence_gen(store *st, int64_t job)
{
    if (!st->node[0] || job == 0) /* a job's id, or an evaluation's STORE_LEASE_EVAL */
        return 0;
    pthread_mutex_lock(&st->fmu);
    struct store_fence *f = fence_find(st, job);
    int64_t gen = f ? f->gen : 0;
    pthread_mutex_unlock(&st->fmu);
    return gen;
}

int store_fence_check(store *st, sql_conn *db, int64_t job, int64_t gen,
                      struct store_fence *cache, size_t *n, size_t cap)
{
    for (size_t i = 0; i < *n; i++)
        if (cache[i].job == job && cache[i].gen == gen)
            return 1;
    lease l = {.job = job, .gen = gen};
    snprintf(l.node, sizeof l.node, "%s", st->node);
    vaed_err e;
    int rc = lease_fence(db, &l, &e);
    if (rc == VAED_ESTATE)
        return 0;
    if (rc < 0)
        return rc;
    if (*n < cap)
        cache[(*n)++] = (struct store_fence){job, gen};
    return 1;
}

/* ---- control requests for the node that holds a job ------------------------------- */

static const char CTL_LITE[] =
    "CREATE TABLE IF NOT EXISTS controls(id INTEGER PRIMARY KEY, job INTEGER NOT NULL, "
    "node TEXT NOT NULL, kind TEXT NOT NULL, arg TEXT, state TEXT NOT NULL DEFAULT 'pending', "
    "rc INTEGER, msg TEXT, step INTEGER, resolved TEXT, sent REAL, deadline REAL)";
static const char CTL_PG[] =
    "CREATE TABLE IF NOT EXISTS controls(id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY "
    "KEY, job bigint NOT NULL, node text NOT NULL, kind text NOT NULL, arg text, state text "
    "NOT NULL DEFAULT 'pending', rc integer, msg text, step bigint, resolved text, sent "
    "double precision, deadline double precision)";

/* A table of a build before deadlines gets the two columns (its rows keep NULL: no
 * deadline), in a transaction that first looks whether it has them: an ALTER TABLE at
 * every node's start would take the table's exclusive lock on PostgreSQL and wait
 * behind the other nodes' requests, up to the connection's lock timeout. There ADD
 * COLUMN IF NOT EXISTS, decided under that lock, lets nodes starting at once add them
 * once. */
int store_controls_schema(sql_conn *c, vaed_err *err)
{
    int pg = sql_kind_of(c) == SQL_POSTGRES;
    int rc = sql_exec(c, pg ? CTL_PG : CTL_LITE, err);
    if (rc || (rc = sql_begin(c, 1, err)) != 0)
        return rc;
    sql_stmt *s = NULL;
    int has = 0;
    rc = sql_prepare(c, pg ? "SELECT count(*) FROM information_schema.columns WHERE "
                             "table_schema = current_schema() AND table_name = 'controls' "
                             "AND column_name = 'deadline'"
                           : "SELECT count(*) FROM pragma_table_info('controls') WHERE name "
                             "= 'deadline'", &s, err);
    if (rc == 0 && (rc = sql_step(s, err)) == SQL_ROW) {
        has = sql_column_int64(s, 0) > 0;
        rc = 0;
    }
    sql_finalize(s);
    if (rc == 0 && !has)
        rc = sql_exec(c, pg ? "ALTER TABLE controls ADD COLUMN IF NOT EXISTS sent double "
                              "precision; ALTER TABLE controls ADD COLUMN IF NOT EXISTS "
                              "deadline double precision"
                            : "ALTER TABLE controls ADD COLUMN sent REAL; ALTER TABLE controls "
                              "ADD COLUMN deadline REAL", err);
    if (rc == 0)
        return sql_commit(c, err);
    sql_rollback(c, NULL);
    return rc < 0 ? rc : vaed_err_set(err, VAED_EDB, "", "controls: adding the deadline");
}

void store_control_free(store_control *c, size_t n)
{
    for (size_t i = 0; c && i < n; i++) {
        free(c[i].arg);
        free(c[i].resolved);
    }
    free(c);
}

/* Prepare sql on the lease connection; 0 or an error (lmu held). */
static int lprep(store *st, const char *sql, sql_stmt **s, vaed_err *err)
{
    return sql_prepare(st->ldb, sql, s, err) ? store_dberr(err, st->ldb, "controls") : 0;
}

static char *dup_col(sql_stmt *s, int i)
{
    const char *t = sql_column_text(s, i);
    return t ? strdup(t) : NULL;
}

struct ctl_arg {
    store_control *c;
    const char *to;
    double wait_s;
    store_control **list;
    size_t *n;
    int found;
};

static int do_send(store *st, void *arg, vaed_err *err)
{
    struct ctl_arg *a = arg;
    sql_stmt *s = NULL;
    const char *now = lease_now_sql(sql_kind_of(st->ldb));
    char sql[512];
    snprintf(sql, sizeof sql, "INSERT INTO controls(job, node, kind, arg, sent, deadline) "
             "VALUES (?1, ?2, ?3, ?4, %s, %s + ?5) RETURNING id", now, now);
    int rc = lprep(st, sql, &s, err);
    if (rc)
        return rc;
    sql_bind_double(s, 5, a->wait_s);
    sql_bind_int64(s, 1, a->c->job);
    sql_bind_text(s, 2, a->to);
    sql_bind_text(s, 3, a->c->kind);
    if (a->c->arg)
        sql_bind_text(s, 4, a->c->arg);
    else
        sql_bind_null(s, 4);
    rc = sql_step(s, err);
    if (rc == SQL_ROW) {
        a->c->id = sql_column_int64(s, 0);
        rc = 0;
    } else if (rc == SQL_DONE) {
        rc = vaed_err_set(err, VAED_EDB, "", "controls: no id returned");
    }
    sql_finalize(s);
    if (rc == 0 && sql_kind_of(st->ldb) == SQL_POSTGRES)
        sql_notify(st->ldb, STORE_CONTROL_CHANNEL, a->to, NULL); /* the table is the record */
    return rc;
}

int store_control_send(store *st, const char *to_node, store_control *c, double wait_s,
                       vaed_err *err)
{
    struct ctl_arg a = {.c = c, .to = to_node, .wait_s = wait_s > 0 ? wait_s : 0};
    return on_ldb(st, do_send, &a, err);
}

static int do_poll(store *st, void *arg, vaed_err *err)
{
    struct ctl_arg *a = arg;
    sql_stmt *s = NULL;
    int rc = lprep(st, "SELECT state, rc, msg, step, resolved FROM controls WHERE id = ?1", &s, err);
    if (rc)
        return rc;
    sql_bind_int64(s, 1, a->c->id);
    rc = sql_step(s, err);
    a->found = 0;
    if (rc == SQL_ROW) {
        const char *state = sql_column_text(s, 0);
        if (state && !strcmp(state, "done")) {
            const char *m = sql_column_text(s, 2);
            a->c->rc = (int)sql_column_int64(s, 1);
            snprintf(a->c->msg, sizeof a->c->msg, "%s", m ? m : "");
            a->c->step = sql_column_int64(s, 3);
            free(a->c->resolved);
            a->c->resolved = dup_col(s, 4);
            a->found = 1;
        }
        rc = 0;
    } else if (rc == SQL_DONE) {
        rc = vaed_err_set(err, VAED_ENOTFOUND, "", "control request %lld is gone",
                          (long long)a->c->id);
    }
    sql_finalize(s);
    if (rc == 0 && a->found &&
        lprep(st, "DELETE FROM controls WHERE id = ?1", &s, err) == 0) {
        sql_bind_int64(s, 1, a->c->id);
        sql_step(s, NULL);
        sql_finalize(s);
    }
    return rc;
}

int store_control_wait(store *st, store_control *c, double timeout_s, vaed_err *err)
{
    struct ctl_arg a = {.c = c};
    double until = store_mono() + timeout_s;
    for (long nap_us = 2000;; nap_us = nap_us < 50000 ? nap_us * 2 : 50000) {
        int rc = on_ldb(st, do_poll, &a, err);
        if (rc < 0)
            return rc;
        if (a.found)
            return 1;
        if (store_mono() >= until)
            return 0;
        usleep((useconds_t)nap_us);
    }
}

static int do_withdraw(store *st, void *arg, vaed_err *err)
{
    struct ctl_arg *a = arg;
    sql_stmt *s = NULL;
    int rc = lprep(st, "DELETE FROM controls WHERE id = ?1 AND state = 'pending'", &s, err);
    if (rc)
        return rc;
    sql_bind_int64(s, 1, a->c->id);
    rc = sql_step(s, err);
    a->found = rc == SQL_DONE && sql_changes(s) == 1;
    sql_finalize(s);
    return rc < 0 ? rc : 0;
}

int store_control_withdraw(store *st, const store_control *c, vaed_err *err)
{
    struct ctl_arg a = {.c = (store_control *)c};
    int rc = on_ldb(st, do_withdraw, &a, err);
    return rc < 0 ? rc : a.found;
}

static int do_take_ctl(store *st, void *arg, vaed_err *err)
{
    struct ctl_arg *a = arg;
    sql_stmt *s = NULL;
    *a->list = NULL;
    *a->n = 0;
    const char *now = lease_now_sql(sql_kind_of(st->ldb));
    char sql[512];
    /* the requests of senders gone for good: past their deadline by twice their wait
     * (a sender waits once more for one taken), nobody reads them */
    snprintf(sql, sizeof sql, "DELETE FROM controls WHERE node = ?1 AND deadline < %s - "
             "2 * (deadline - sent) - 60", now);
    int rc = lprep(st, sql, &s, err);
    if (rc)
        return rc;
    sql_bind_text(s, 1, st->node);
    rc = sql_step(s, err);
    sql_finalize(s);
    if (rc < 0)
        return rc;
    /* past its deadline a request is never taken: its sender gave up (and withdraws
     * it), or died waiting */
    snprintf(sql, sizeof sql, "UPDATE controls SET state = 'taken' WHERE node = ?1 AND state = "
             "'pending' AND (deadline IS NULL OR deadline > %s) RETURNING id, job, kind, arg", now);
    if ((rc = lprep(st, sql, &s, err)) != 0)
        return rc;
    sql_bind_text(s, 1, st->node);
    size_t cap = 0;
    while ((rc = sql_step(s, err)) == SQL_ROW) {
        if (*a->n == cap) {
            cap = cap ? 2 * cap : 4;
            store_control *g = realloc(*a->list, cap * sizeof *g);
            if (!g) {
                rc = vaed_err_set(err, VAED_ENOMEM, "", "controls: out of memory");
                break;
            }
            *a->list = g;
        }
        store_control *c = &(*a->list)[(*a->n)++];
        memset(c, 0, sizeof *c);
        c->id = sql_column_int64(s, 0);
        c->job = sql_column_int64(s, 1);
        const char *k = sql_column_text(s, 2);
        snprintf(c->kind, sizeof c->kind, "%s", k ? k : "");
        c->arg = dup_col(s, 3);
    }
    sql_finalize(s);
    return rc < 0 ? rc : 0;
}

int store_control_take(store *st, store_control **out, size_t *n, vaed_err *err)
{
    struct ctl_arg a = {.list = out, .n = n};
    int rc = on_ldb(st, do_take_ctl, &a, err);
    if (rc) {
        store_control_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int do_answer(store *st, void *arg, vaed_err *err)
{
    struct ctl_arg *a = arg;
    sql_stmt *s = NULL;
    int rc = lprep(st, "UPDATE controls SET state = 'done', rc = ?2, msg = ?3, step = ?4, "
                       "resolved = ?5 WHERE id = ?1", &s, err);
    if (rc)
        return rc;
    sql_bind_int64(s, 1, a->c->id);
    sql_bind_int64(s, 2, a->c->rc);
    sql_bind_text(s, 3, a->c->msg);
    sql_bind_int64(s, 4, a->c->step);
    if (a->c->resolved)
        sql_bind_text(s, 5, a->c->resolved);
    else
        sql_bind_null(s, 5);
    rc = sql_step(s, err);
    sql_finalize(s);
    return rc < 0 ? rc : 0;
}

int store_control_answer(store *st, const store_control *c, vaed_err *err)
{
    struct ctl_arg a = {.c = (store_control *)c};
    return on_ldb(st, do_answer, &a, err);
}

/* A listening connection of its own: *c opened (once) and listening to channel. */
static int listen_on(store *st, sql_conn **c, const char *channel, vaed_err *err)
{
    if (!st->node[0] || *c)
        return 0;
    int rc = store_conn_open(c, st->path, st->opts.busy_timeout_ms, 0, err);
    if (rc == 0 && sql_kind_of(*c) == SQL_POSTGRES)
        rc = sql_listen(*c, channel, err);
    return rc;
}

/* Add the job a notification's payload names to ids[0..cap) unless it is there (*n: how
 * many; cap + 1 once one more did not fit). */
static void note_job(const char *payload, int64_t *ids, size_t cap, size_t *n)
{
    char *end = NULL;
    long long v = payload ? strtoll(payload, &end, 10) : 0;
    if (!ids || !payload || end == payload || *n > cap)
        return;
    for (size_t i = 0; i < *n; i++)
        if (ids[i] == v)
            return;
    if (*n < cap)
        ids[*n] = v;
    (*n)++;
}

/* Up to ms for a notification on c (listening to channel), read and dropped: the table
 * or the rows are the record; the jobs the payloads name go to ids (note_job). Returns
 * how many were read. A connection lost is opened again, listening. */
static int nap_on(sql_conn *c, const char *channel, int ms, int64_t *ids, size_t cap,
                  size_t *named)
{
    int fd = c ? sql_socket(c) : -1;
    if (fd < 0) {
        usleep((useconds_t)ms * 1000);
        return 0;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, ms);
    char *ch, *pl;
    vaed_err e;
    int rc, n = 0;
    while ((rc = sql_next_notify(c, &ch, &pl, &e)) == 1) {
        note_job(pl, ids, cap, named);
        free(ch);
        free(pl);
        n++;
    }
    if (rc < 0 && sql_reconnect(c, &e) == 0)
        sql_listen(c, channel, &e);
    return n;
}

int store_control_listen(store *st, vaed_err *err)
{
    return listen_on(st, &st->cdb, STORE_CONTROL_CHANNEL, err);
}

void store_control_nap(store *st, int ms)
{
    (void)nap_on(st->cdb, STORE_CONTROL_CHANNEL, ms, NULL, 0, NULL);
}

int store_rows_listen(store *st, vaed_err *err)
{
    return listen_on(st, &st->ndb, STORE_ROWS_CHANNEL, err);
}

int store_rows_nap(store *st, int ms, int64_t *jobs, size_t cap, size_t *n)
{
    size_t none = 0;
    if (!n)
        n = &none;
    *n = 0;
    return nap_on(st->ndb, STORE_ROWS_CHANNEL, ms, jobs, cap, n);
}

int store_rows_notify(sql_conn *db, const struct store_fence *fenced, size_t n)
{
    if (sql_kind_of(db) != SQL_POSTGRES)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (fenced[i].job < 0) /* an evaluation's lease: no rows a stream follows */
            continue;
        char job[24];
        vaed_err e;
        snprintf(job, sizeof job, "%lld", (long long)fenced[i].job);
        int rc = sql_notify(db, STORE_ROWS_CHANNEL, job, &e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- the nodes' heartbeats (GET /v1/nodes: nodes.c) -------------------------------- */

struct beat_arg {
    const char *kernels;
    int first;
};

static int do_beat(store *st, void *arg, vaed_err *err)
{
    struct beat_arg *a = arg;
    double ttl = st->opts.lease_ttl > 0 ? st->opts.lease_ttl : 10.0;
    return lease_beat(st->ldb, st->node, a->kernels, ttl, a->first, err);
}

int store_node_beat(store *st, const char *kernels, int first, vaed_err *err)
{
    struct beat_arg a = {kernels, first};
    return on_ldb(st, do_beat, &a, err);
}
