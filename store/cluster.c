/* cluster.c — the store's side of a cluster (issue 17; store.h "cluster"): this node's
 * leases on jobs, taken, renewed and released on a connection of their own (so a renew
 * never waits behind the writer's batch on the client side), and the generations the
 * writer fences each job's writes with. The rules are lease.h's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/lease.h"
#include "store/store_impl.h"

int store_cluster_open(store *st, vaed_err *err)
{
    if (!st->opts.node || !*st->opts.node)
        return 0;
    if (strlen(st->opts.node) >= sizeof st->node)
        return vaed_err_set(err, VAED_EINVAL, "node", "node: a name of 1 to %zu bytes",
                            sizeof st->node - 1);
    int rc = store_conn_open(&st->ldb, st->path, st->opts.busy_timeout_ms, 0, err);
    if (rc == 0 && (rc = lease_schema(st->ldb, err)) == 0)
        snprintf(st->node, sizeof st->node, "%s", st->opts.node);
    return rc;
}

void store_cluster_close(store *st)
{
    sql_close(st->ldb);
    st->ldb = NULL;
    free(st->fences);
    st->fences = NULL;
    pthread_mutex_destroy(&st->lmu);
}

int store_session_pg(store *st, sql_conn *c, vaed_err *err)
{
    if (sql_kind_of(c) != SQL_POSTGRES)
        return 0;
    if (!st->opts.node || !*st->opts.node)
        return store_hold_pg(c, err);
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
    if (st->n_fences < st->cap_fences)
        return 0;
    size_t cap = st->cap_fences ? 2 * st->cap_fences : 16;
    struct store_fence *f = realloc(st->fences, cap * sizeof *f);
    if (!f)
        return vaed_err_set(err, VAED_ENOMEM, "", "lease: out of memory");
    st->fences = f;
    st->cap_fences = cap;
    return 0;
}

static void fence_set(store *st, int64_t job, int64_t gen)
{
    struct store_fence *f = fence_find(st, job);
    if (!f) {
        f = &st->fences[st->n_fences++];
        f->job = job;
    }
    f->gen = gen;
}

static void fence_drop(store *st, int64_t job)
{
    struct store_fence *f = fence_find(st, job);
    if (f)
        *f = st->fences[--st->n_fences];
}

struct take_arg {
    int64_t job;
    double ttl;
    store_lease *out;
};

static void from_lease(store_lease *o, const lease *l)
{
    memset(o, 0, sizeof *o);
    o->job = l->job;
    o->gen = l->gen;
    o->expires = l->expires;
    snprintf(o->node, sizeof o->node, "%s", l->node);
}

static int do_take(store *st, void *arg, vaed_err *err)
{
    struct take_arg *a = arg;
    lease l;
    if (!fence_find(st, a->job) && fence_room(st, err))
        return VAED_ENOMEM;
    int rc = lease_take(st->ldb, a->job, st->node, a->ttl, &l, err);
    if (rc == 1) {
        from_lease(a->out, &l);
        a->out->held = 1;
        fence_set(st, a->job, l.gen);
    } else if (rc == 0) {
        int held = 0, done = 0;
        if (lease_get(st->ldb, a->job, &l, &held, &done, err) >= 0) {
            from_lease(a->out, &l);
            a->out->held = held;
        }
    }
    return rc;
}

int store_lease_take(store *st, int64_t job, double ttl, store_lease *out, vaed_err *err)
{
    struct take_arg a = {job, ttl, out};
    memset(out, 0, sizeof *out);
    return on_ldb(st, do_take, &a, err);
}

/* The lease this node holds on a->job, as lease.h's (lmu held): 0, or VAED_ESTATE. */
static int held_lease(store *st, int64_t job, lease *l, vaed_err *err)
{
    struct store_fence *f = fence_find(st, job);
    if (!f)
        return vaed_err_set(err, VAED_ESTATE, "", "job %lld: this node holds no lease on it",
                            (long long)job);
    memset(l, 0, sizeof *l);
    l->job = job;
    l->gen = f->gen;
    snprintf(l->node, sizeof l->node, "%s", st->node);
    return 0;
}

static int do_renew(store *st, void *arg, vaed_err *err)
{
    struct take_arg *a = arg;
    lease l;
    int rc = held_lease(st, a->job, &l, err);
    return rc ? rc : lease_renew(st->ldb, &l, a->ttl, err);
}

int store_lease_renew(store *st, int64_t job, double ttl, vaed_err *err)
{
    struct take_arg a = {job, ttl, NULL};
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
    struct take_arg a = {job, done ? 1.0 : 0.0, NULL};
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
    }
    return rc;
}

int store_lease_get(store *st, int64_t job, store_lease *out, vaed_err *err)
{
    struct take_arg a = {job, 0, out};
    memset(out, 0, sizeof *out);
    return on_ldb(st, do_get, &a, err);
}

int64_t store_fence_gen(store *st, int64_t job)
{
    if (!st->node[0] || job <= 0)
        return 0;
    pthread_mutex_lock(&st->lmu);
    struct store_fence *f = fence_find(st, job);
    int64_t gen = f ? f->gen : 0;
    pthread_mutex_unlock(&st->lmu);
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
