/* test_store_fence.c — a cluster node's fenced writes (store.h "cluster"), on SQLite and
 * on PostgreSQL when VAED_TEST_PG names a server (tests/e2e/store_pg.sh runs it so).
 * Node a takes a job's lease through its store and writes rows; node b (a connection
 * of its own, as another vaed process) takes the job over once a's lease has run out;
 * then everything a still writes for the job — rows with other values, a state, an
 * epoch row — must be refused inside a's write transaction: the oracle is the
 * database itself, read back (the rows a wrote while it held the lease, and none of
 * the later ones), and a's counters (refused writes counted as fenced, not errors).
 * Then a sweep's concurrency across nodes (store_lease_take_trial): two nodes' stores
 * take trials of one sweep; a take past the concurrency is refused while the other
 * leases hold, allowed once one is released (done or not) or expired; and three nodes
 * taking three trials of a concurrency-1 sweep at the same instant, round after round,
 * never get two (on PostgreSQL, without the sweep's row lock they do in most rounds);
 * on PostgreSQL, a take while another transaction holds the sweep's row is refused
 * after the lease connection's lock timeout, not waited on. */
#include "tests/unit/test_store_util.h"

#include "store/lease.h"
#include "store/sql.h"
#include "store/sweeps.h"

static const char *K;

static void scenario(const char *target)
{
    vaed_err e = {0};
    store_opts o;
    store_opts_default(&o);
    o.node = "node-a";
    o.lease_ttl = 30;
    o.fsync_checkpoints = 0;
    o.flush_interval = 30;      /* a batch is what came between two flushes */
    store *st = NULL;
    CHECK(store_open(&st, target, &o, &e) == 0, "%s: open as node-a: %s", K, e.msg);
    if (!st)
        return;
    CHECK(!strcmp(store_node(st), "node-a"), "%s: the store's node is node-a", K);
    store_job_new nj = {.name = "fenced", .spec = "{}", .state = "queued"};
    int64_t job = 0;
    CHECK(store_job_insert(st, &nj, &job, &e) == 0, "%s: insert: %s", K, e.msg);
    store_lease l;
    CHECK(store_lease_take(st, job, 30, &l, &e) == 1 && l.gen == 1 && !strcmp(l.node, "node-a"),
          "%s: node-a takes job %lld: gen %lld %s", K, (long long)job, (long long)l.gen, e.msg);
    CHECK(append_range(st, job, 0, 10, 1.0, 3, 0) == 0, "%s: rows 0..9 appended", K);
    CHECK(store_job_set_state(st, job, "running", NULL, &e) == 0, "%s: running: %s", K, e.msg);
    CHECK(store_flush(st, &e) == 0, "%s: flush: %s", K, e.msg);

    /* GET /v1/nodes: a's heartbeat, and the lease it holds */
    json_t *nodes = NULL;
    CHECK(store_node_beat(st, "kernels-a", 1, &e) == 0, "%s: a's heartbeat: %s", K, e.msg);
    CHECK(store_nodes_json(st, &nodes, &e) == 0 && nodes, "%s: nodes: %s", K, e.msg);
    json_t *n0 = json_array_get(json_object_get(nodes, "nodes"), 0);
    json_t *j0 = json_array_get(json_object_get(n0, "jobs"), 0);
    CHECK(json_array_size(json_object_get(nodes, "nodes")) == 1 &&
          !strcmp(json_string_value(json_object_get(n0, "name")), "node-a") &&
          json_is_true(json_object_get(n0, "alive")) &&
          !strcmp(json_string_value(json_object_get(n0, "kernels")), "kernels-a") &&
          json_integer_value(json_object_get(j0, "job")) == job &&
          json_integer_value(json_object_get(j0, "gen")) == 1,
          "%s: node-a alive, with kernels-a and job %lld at gen 1", K, (long long)job);
    json_decref(nodes);
    /* node b: while a's lease holds, no take; once it has run out, b's */
    sql_conn *b = NULL;
    sql_open_opts bo = {.busy_ms = 2000};
    CHECK(sql_open(&b, target, &bo, &e) == 0, "%s: node-b connects: %s", K, e.msg);
    lease lb;
    CHECK(lease_take(b, job, "node-b", 30, &lb, &e) == 0, "%s: node-b cannot take a held job", K);
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE leases SET expires = expires - 1000 WHERE job = %lld",
             (long long)job);
    CHECK(sql_exec(b, sql, &e) == 0, "%s: a's lease run out by hand: %s", K, e.msg);
    CHECK(lease_take(b, job, "node-b", 30, &lb, &e) == 1 && lb.gen == 2,
          "%s: node-b takes the job over at gen 2 (%lld) %s", K, (long long)lb.gen, e.msg);

    /* a, unaware, writes on: all refused */
    store_stats s0, s1;
    store_get_stats(st, &s0);
    CHECK(append_range(st, job, 5, 20, 2.0, 4, 0) == 0, "%s: a appends rows 5..19 (queued)", K);
    int rc = store_job_set_state(st, job, "interrupted", "stale", &e);
    CHECK(rc == VAED_ESTATE, "%s: a's state write is refused: rc %d %s", K, rc, e.msg);
    rc = store_job_set_kernels(st, job, "stale-kernels", &e); /* a writer call of the job's */
    CHECK(rc == VAED_ESTATE, "%s: a's kernels write is refused: rc %d %s", K, rc, e.msg);
    CHECK(store_flush(st, &e) == 0, "%s: flush: %s", K, e.msg);
    store_get_stats(st, &s1);
    CHECK(s1.ops_fenced - s0.ops_fenced >= 2 && s1.write_errors == s0.write_errors,
          "%s: fenced ops counted (%llu), not as errors (%llu)", K,
          (unsigned long long)(s1.ops_fenced - s0.ops_fenced),
          (unsigned long long)(s1.write_errors - s0.write_errors));
    store_series ser = {0};
    CHECK(store_metrics_range(st, job, -1, -1, STORE_MCOL_ALL, 0, &ser, &e) == 0 && ser.n == 10,
          "%s: 10 rows stored, none of the stale owner's (%zu) %s", K, ser.n, e.msg);
    int same = ser.n == 10;
    for (size_t i = 0; same && i < ser.n; i++)
        same = ser.step[i] == (int64_t)i && ser.col[STORE_M_LOSS][i] == mval((int64_t)i, 2, 1.0);
    CHECK(same, "%s: rows 0..9 are the ones a wrote while it held the lease", K);
    store_series_free(&ser);
    store_job sj;
    CHECK(store_job_get(st, job, &sj, &e) == 0 && !strcmp(sj.state, "running") &&
              strcmp(sj.kernels, "stale-kernels"),
          "%s: the job is still running (%s), its kernels not the stale node's ('%s')", K,
          sj.state, sj.kernels);
    store_job_clear(&sj);
    CHECK(store_lease_renew(st, job, 30, &e) == VAED_ESTATE, "%s: a's renew: lost", K);
    CHECK(store_lease_get(st, job, &l, &e) == 1 && l.held && l.gen == 2 && !strcmp(l.node, "node-b"),
          "%s: the lease is node-b's, gen 2", K);
    /* forgotten: a's writes are no longer fenced (a change to a job it does not run) */
    CHECK(store_lease_release(st, job, 0, &e) == VAED_ESTATE, "%s: a's release: not its lease", K);
    CHECK(store_job_set_priority(st, job, 5, &e) == 0, "%s: an unfenced write lands: %s", K, e.msg);
    /* one batch holding a's rows of a stale generation and of its next one: the merge of
     * a job's rows (writes.c) must not carry the stale rows under the new generation */
    CHECK(sql_exec(b, sql, &e) == 0 && store_lease_take(st, job, 30, &l, &e) == 1 && l.gen == 3,
          "%s: node-a takes the job back at gen 3 (%lld) %s", K, (long long)l.gen, e.msg);
    CHECK(append_range(st, job, 20, 25, 3.0, 5, 0) == 0, "%s: a appends rows 20..24 at gen 3", K);
    CHECK(sql_exec(b, sql, &e) == 0 && lease_take(b, job, "node-b", 30, &lb, &e) == 1 && lb.gen == 4,
          "%s: node-b takes it at gen 4 (%lld) %s", K, (long long)lb.gen, e.msg);
    CHECK(sql_exec(b, sql, &e) == 0 && store_lease_take(st, job, 30, &l, &e) == 1 && l.gen == 5,
          "%s: node-a takes it at gen 5 (%lld) %s", K, (long long)l.gen, e.msg);
    CHECK(append_range(st, job, 25, 30, 5.0, 5, 0) == 0, "%s: a appends rows 25..29 at gen 5", K);
    CHECK(store_flush(st, &e) == 0, "%s: flush: %s", K, e.msg);
    CHECK(store_metrics_range(st, job, -1, -1, STORE_MCOL_ALL, 0, &ser, &e) == 0 && ser.n == 15,
          "%s: rows 0..9 and 25..29 stored, not gen 3's 20..24 (%zu rows) %s", K, ser.n, e.msg);
    same = ser.n == 15;
    for (size_t i = 10; same && i < ser.n; i++)
        same = ser.step[i] == (int64_t)i + 15 && ser.col[STORE_M_LOSS][i] == mval((int64_t)i + 15, 2, 5.0);
    CHECK(same, "%s: rows 25..29 are gen 5's", K);
    store_series_free(&ser);
    CHECK(store_lease_release(st, job, 0, &e) == 0, "%s: a gives it back: %s", K, e.msg);
    CHECK(lease_take(b, job, "node-b", 30, &lb, &e) == 1 && lb.gen == 6, "%s: node-b takes it at gen 6", K);
    CHECK(lease_take(b, job, "node-b", 30, &lb, &e) == 1 && lb.gen == 7,
          "%s: node-b restarted under its name takes its held job back at once, gen 7", K);
    CHECK(store_lease_take(st, job, 30, &l, &e) == 0 && l.held && !strcmp(l.node, "node-b"),
          "%s: node-a cannot: node-b holds it", K);
    /* b finishes; a done lease is never taken again */
    CHECK(lease_release(b, &lb, 1, &e) == 0, "%s: node-b releases it done", K);
    CHECK(store_lease_take(st, job, 30, &l, &e) == 0, "%s: a done job is not taken", K);
    sql_close(b);

    /* control requests: a's request to node-a itself (as another node would send it),
     * taken once, answered, read back and deleted */
    store_control c = {.job = job};
    snprintf(c.kind, sizeof c.kind, "lr");
    c.arg = strdup("0.0025");
    CHECK(store_control_send(st, "node-a", &c, &e) == 0 && c.id > 0, "%s: send: %s", K, e.msg);
    CHECK(store_control_wait(st, &c, 0.05, &e) == 0, "%s: no answer yet", K);
    store_control *rq = NULL;
    size_t n = 0;
    CHECK(store_control_take(st, &rq, &n, &e) == 0 && n == 1 && rq[0].id == c.id &&
          rq[0].job == job && !strcmp(rq[0].kind, "lr") && rq[0].arg && !strcmp(rq[0].arg, "0.0025"),
          "%s: taken once, as sent (%zu) %s", K, n, e.msg);
    store_control *again = NULL;
    size_t n2 = 9;
    CHECK(store_control_take(st, &again, &n2, &e) == 0 && n2 == 0, "%s: not taken twice", K);
    store_control_free(again, n2);
    if (n == 1) {
        rq[0].rc = VAED_ESTATE;
        snprintf(rq[0].msg, sizeof rq[0].msg, "job is paused");
        rq[0].step = 1234;
        rq[0].resolved = strdup("abc");
        CHECK(store_control_answer(st, &rq[0], &e) == 0, "%s: answer: %s", K, e.msg);
    }
    store_control_free(rq, n);
    CHECK(store_control_wait(st, &c, 5, &e) == 1 && c.rc == VAED_ESTATE && c.step == 1234 &&
          !strcmp(c.msg, "job is paused") && c.resolved && !strcmp(c.resolved, "abc"),
          "%s: the answer read back (rc %d step %lld '%s')", K, c.rc, (long long)c.step, c.msg);
    CHECK(store_control_wait(st, &c, 0, &e) == VAED_ENOTFOUND, "%s: and the request deleted", K);
    free(c.resolved);
    c.resolved = NULL;

    /* one not answered in time is withdrawn: no node takes it after (the owner may be
     * dead, and a node of its name come back); one taken already is not withdrawn */
    CHECK(store_control_send(st, "node-a", &c, &e) == 0 && store_control_wait(st, &c, 0.01, &e) == 0 &&
              store_control_withdraw(st, &c, &e) == 1,
          "%s: an untaken request is withdrawn: %s", K, e.msg);
    n = 9;
    CHECK(store_control_take(st, &rq, &n, &e) == 0 && n == 0, "%s: a withdrawn request is never taken (%zu)", K, n);
    store_control_free(rq, n);
    CHECK(store_control_send(st, "node-a", &c, &e) == 0 && store_control_take(st, &rq, &n, &e) == 0 && n == 1 &&
              store_control_withdraw(st, &c, &e) == 0,
          "%s: a taken request is not withdrawn (it is being applied)", K);
    if (n == 1) {
        CHECK(store_control_answer(st, &rq[0], &e) == 0 && store_control_wait(st, &c, 5, &e) == 1,
              "%s: its answer is still read", K);
    }
    store_control_free(rq, n);
    free(c.arg);
    free(c.resolved);
    store_close(st, NULL);
}

/* The rows notification (store.h STORE_ROWS_CHANNEL, PostgreSQL only): node a's writer
 * tells node b, listening, that a job it holds the lease of has new rows, in the
 * transaction that wrote them; rows of a job without a lease tell nobody. */
static void rows_notified(const char *target)
{
    vaed_err e = {0};
    store_opts o;
    store_opts_default(&o);
    o.lease_ttl = 30;
    o.fsync_checkpoints = 0;
    store *a = NULL, *b = NULL;
    o.node = "rows-a";
    CHECK(store_open(&a, target, &o, &e) == 0, "%s: open rows-a: %s", K, e.msg);
    o.node = "rows-b";
    CHECK(store_open(&b, target, &o, &e) == 0, "%s: open rows-b: %s", K, e.msg);
    if (!a || !b) {
        store_close(a, NULL);
        store_close(b, NULL);
        return;
    }
    CHECK(store_rows_listen(b, &e) == 0, "%s: b listens: %s", K, e.msg);
    CHECK(store_rows_nap(b, 100, NULL, 0, NULL) == 0, "%s: nothing yet", K);
    store_job_new nj = {.name = "rows", .spec = "{}", .state = "queued"};
    int64_t leased = 0, free_job = 0;
    CHECK(store_job_insert(a, &nj, &leased, &e) == 0 && store_job_insert(a, &nj, &free_job, &e) == 0,
          "%s: two jobs: %s", K, e.msg);
    CHECK(append_range(a, free_job, 0, 5, 1.0, 3, 0) == 0 && store_flush(a, &e) == 0,
          "%s: rows of a job without a lease: %s", K, e.msg);
    CHECK(store_rows_nap(b, 300, NULL, 0, NULL) == 0, "%s: a job without a lease tells nobody", K);
    store_lease l;
    CHECK(store_lease_take(a, leased, 30, &l, &e) == 1, "%s: a takes job %lld: %s", K,
          (long long)leased, e.msg);
    CHECK(append_range(a, leased, 0, 5, 1.0, 3, 0) == 0 && store_flush(a, &e) == 0,
          "%s: rows of the leased job: %s", K, e.msg);
    double t0 = now_s();
    int64_t named[4] = {0};
    size_t nn = 0;
    int n = store_rows_nap(b, 5000, named, 4, &nn);
    CHECK(n >= 1 && now_s() - t0 < 4.0, "%s: b is told at once (%d in %.3f s)", K, n, now_s() - t0);
    CHECK(nn == 1 && named[0] == leased, "%s: the notification names job %lld (%zu: %lld)", K,
          (long long)leased, nn, (long long)named[0]);
    CHECK(store_rows_nap(b, 200, NULL, 0, NULL) == 0, "%s: once", K);
    store_close(a, NULL);
    store_close(b, NULL);
}

/* Open the store of node name on target (OUT *st). */
static int open_node(store **st, const char *target, const char *name)
{
    vaed_err e = {0};
    store_opts o;
    store_opts_default(&o);
    o.node = name;
    o.lease_ttl = 30;
    o.fsync_checkpoints = 0;
    int rc = store_open(st, target, &o, &e);
    CHECK(rc == 0, "%s: open as %s: %s", K, name, e.msg);
    return rc;
}

/* A sweep of n trials (jobs[0..n)) of concurrency conc. */
static int64_t sweep_new(store *st, int conc, size_t n, int64_t *jobs)
{
    store_sweep_trial_new t[4];
    for (size_t i = 0; i < n && i < 4; i++)
        t[i] = (store_sweep_trial_new){.name = "trial", .spec = "{}", .schedule = "{}",
                                       .point = "{}"};
    store_sweep_new sw = {.name = "sw", .spec = "{}", .concurrency = conc, .n = n, .trials = t};
    int64_t id = 0;
    vaed_err e = {0};
    CHECK(store_sweep_insert(st, &sw, &id, jobs, &e) == 0 && id > 0,
          "%s: a sweep of %zu trials, concurrency %d: %s", K, n, conc, e.msg);
    return id;
}

/* Take a trial: 1 taken, 0 refused because the sweep is full, 2 otherwise (held
 * elsewhere, or an error). */
static int take(store *st, int64_t job, int64_t sweep)
{
    store_lease l;
    vaed_err e = {0};
    int rc = store_lease_take_trial(st, job, sweep, 30, &l, &e);
    if (rc < 0)
        printf("# %s: %s: take of job %lld: %s\n", K, store_node(st), (long long)job, e.msg);
    return rc == 1 ? 1 : rc == 0 && l.full && !l.held ? 0 : 2;
}

struct racer {
    store *st;
    int64_t job, sweep;
    pthread_barrier_t *go;
    int got[100];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    vaed_err e;
    for (int i = 0; i < 100; i++) {
        pthread_barrier_wait(r->go);
        store_lease l;
        r->got[i] = store_lease_take_trial(r->st, r->job, r->sweep, 30, &l, &e) == 1;
        pthread_barrier_wait(r->go);
        if (r->got[i])
            store_lease_release(r->st, r->job, 0, &e);
    }
    return NULL;
}

static void sweep_scenario(const char *target)
{
    store *a = NULL, *b = NULL, *c = NULL;
    if (open_node(&a, target, "node-a") || open_node(&b, target, "node-b") ||
        open_node(&c, target, "node-c")) {
        store_close(a, NULL);
        store_close(b, NULL);
        store_close(c, NULL);
        return;
    }
    vaed_err e = {0};
    int64_t t[4], u[3], v[3];
    int64_t s1 = sweep_new(a, 1, 4, t);
    CHECK(take(a, t[0], s1) == 1, "%s: a takes trial 0 of a concurrency-1 sweep", K);
    CHECK(take(b, t[1], s1) == 0, "%s: b's take of trial 1 is refused: the sweep is full", K);
    CHECK(take(a, t[2], s1) == 0, "%s: so is a's of trial 2", K);
    CHECK(take(a, t[0], s1) == 1, "%s: a takes trial 0 again (its own lease is not counted)", K);
    store_lease l;
    CHECK(store_lease_take(b, t[3], 30, &l, &e) == 1,
          "%s: a control call's take (store_lease_take) is not limited", K);
    CHECK(store_lease_release(b, t[3], 0, &e) == 0, "%s: and given back: %s", K, e.msg);
    CHECK(take(b, t[1], s1) == 0, "%s: b still refused while a's lease holds", K);
    CHECK(store_lease_release(a, t[0], 1, &e) == 0, "%s: a releases trial 0 done: %s", K, e.msg);
    CHECK(take(b, t[1], s1) == 1, "%s: then b takes trial 1", K);
    CHECK(take(a, t[2], s1) == 0, "%s: and a's take of trial 2 is refused", K);
    sql_conn *x = NULL;
    CHECK(sql_open(&x, target, NULL, &e) == 0, "%s: connect: %s", K, e.msg);
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE leases SET expires = expires - 1000 WHERE job = %lld",
             (long long)t[1]);
    CHECK(sql_exec(x, sql, &e) == 0, "%s: b's lease run out by hand: %s", K, e.msg);
    CHECK(take(a, t[2], s1) == 1, "%s: a takes trial 2 once b's lease expired", K);
    CHECK(take(b, t[3], s1) == 0, "%s: b's take of trial 3 is refused", K);
    sql_close(x);

    int64_t s2 = sweep_new(a, 2, 3, u);
    CHECK(take(a, u[0], s2) == 1 && take(b, u[1], s2) == 1,
          "%s: concurrency 2: a and b each take a trial", K);
    CHECK(take(b, u[2], s2) == 0, "%s: a third is refused", K);
    CHECK(store_lease_release(a, u[0], 0, &e) == 0, "%s: a gives its trial back (paused)", K);
    CHECK(take(b, u[2], s2) == 1, "%s: then b takes the third", K);
    CHECK(take(a, t[3], s1) == 0, "%s: the other sweep is still full", K);

    /* three nodes at the same instant, 100 rounds: never two trials */
    int64_t s3 = sweep_new(a, 1, 3, v);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 3);
    struct racer r[3] = {{a, v[0], s3, &go, {0}}, {b, v[1], s3, &go, {0}}, {c, v[2], s3, &go, {0}}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, race, &r[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    int two = 0, rounds = 0;
    for (int i = 0; i < 100; i++) {
        int n = r[0].got[i] + r[1].got[i] + r[2].got[i];
        two += n > 1;
        rounds += n == 1;
    }
    CHECK(two == 0, "%s: 3 nodes racing for a concurrency-1 sweep: %d of 100 rounds gave two "
          "trials at once", K, two);
    CHECK(rounds >= 50, "%s: and a trial was taken in %d of 100 rounds", K, rounds);
    if (!strcmp(K, "postgres")) { /* another take holding the sweep: refused, not waited on */
        sql_conn *y = NULL;
        CHECK(sql_open(&y, target, NULL, &e) == 0 && sql_begin(y, 1, &e) == 0, "%s: y: %s", K, e.msg);
        snprintf(sql, sizeof sql, "SELECT 1 FROM sweeps WHERE id = %lld FOR UPDATE", (long long)s3);
        CHECK(sql_exec(y, sql, &e) == 0, "%s: y locks the sweep's row: %s", K, e.msg);
        double t0 = now_s();
        CHECK(take(a, v[0], s3) == 0, "%s: a's take while y holds the sweep: refused", K);
        CHECK(now_s() - t0 < 2.0, "%s: after the lock timeout (%.2f s)", K, now_s() - t0);
        sql_rollback(y, NULL);
        sql_close(y);
        CHECK(take(a, v[0], s3) == 1, "%s: taken once y is done", K);
    }
    store_close(a, NULL);
    store_close(b, NULL);
    store_close(c, NULL);
}

/* PostgreSQL: the nodes share the hold a store without a node name (a daemon of a build
 * before clusters) takes alone: neither kind opens the database while the other has it. */
static void shared_hold(const char *target)
{
    vaed_err e = {0};
    store_opts o;
    store_opts_default(&o);
    o.lease_ttl = 30;
    o.node = "node-a";
    store *a = NULL, *b = NULL, *lone = NULL;
    CHECK(store_open(&a, target, &o, &e) == 0, "%s: node-a opens: %s", K, e.msg);
    o.node = "node-b";
    CHECK(store_open(&b, target, &o, &e) == 0, "%s: node-b opens beside it: %s", K, e.msg);
    o.node = NULL;
    CHECK(store_open(&lone, target, &o, &e) == VAED_EBUSY && !lone,
          "%s: a store without a node name is refused while nodes have the database: %s", K, e.msg);
    store_close(a, NULL);
    store_close(b, NULL);
    CHECK(store_open(&lone, target, &o, &e) == 0, "%s: it opens once they are gone: %s", K, e.msg);
    o.node = "node-c";
    store *c = NULL;
    CHECK(store_open(&c, target, &o, &e) == VAED_EBUSY && !c && strstr(e.msg, "no cluster node"),
          "%s: a node is refused while such a store holds the database alone: %s", K, e.msg);
    store_close(c, NULL);
    store_close(lone, NULL);
}

int main(void)
{
    char tmpl[] = "/tmp/vaed-fence.XXXXXX", path[128];
    CHECK(mkdtemp(tmpl) != NULL, "mkdtemp");
    snprintf(dir, sizeof dir, "%s", tmpl);
    snprintf(path, sizeof path, "%s/f.db", tmpl);
    K = "sqlite";
    scenario(path);
    sweep_scenario(path);
    const char *url = getenv("VAED_TEST_PG");
    if (url && *url) {
        K = "postgres";
        sql_conn *c = NULL;
        vaed_err e = {0};
        int rc = sql_open(&c, url, NULL, &e);
        if (rc == 0)
            rc = sql_exec(c, "DROP DATABASE IF EXISTS vaed_fence", &e);
        if (rc == 0)
            rc = sql_exec(c, "CREATE DATABASE vaed_fence", &e);
        CHECK(rc == 0, "postgres: a fresh database: %s", e.msg);
        sql_close(c);
        const char *slash = strrchr(url, '/');
        char db[512];
        snprintf(db, sizeof db, "%.*s/vaed_fence", (int)(slash - url), url);
        if (rc == 0) {
            scenario(db);
            rows_notified(db);
            sweep_scenario(db);
            shared_hold(db);
        }
    } else {
        printf("test_store_fence: PostgreSQL half not run here (VAED_TEST_PG unset; "
               "tests/e2e/store_pg.sh runs it)\n");
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpl);
    CHECK(system(cmd) == 0, "rm");
    return t_done("test_store_fence");
}
