/* test_lease.c — leases with fencing (store/lease.h) on SQLite, and on PostgreSQL when
 * VAED_TEST_PG names a server (tests/e2e/store_pg.sh runs it so, never skipped in CI).
 * Nodes are connections of their own, as separate vaed processes would have; the
 * claims race from threads. The oracle is the bookkeeping of who was handed what:
 * each job to exactly one node at a time, each claim one generation above the last,
 * and a stale owner's renew, fence and release all refused. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/lease.h"
#include "tests/unit/t.h"
#include "tests/unit/test_sql_util.h"

static const char *K;   /* "sqlite" or "postgres", for messages */

static sql_conn *node_conn(const char *target, int busy_ms)
{
    sql_conn *c = NULL;
    vaed_err e = {0};
    sql_open_opts o = {.busy_ms = busy_ms};
    CHECK(sql_open(&c, target, &o, &e) == 0, "%s: open: %s", K, e.msg);
    return c;
}

/* ---- claims, releases, a stale generation refused --------------------------------- */
/* job's lease run out, in the database's clock, without waiting for it */
static void expire(sql_conn *c, int64_t job)
{
    vaed_err e = {0};
    char sql[96];
    snprintf(sql, sizeof sql, "UPDATE leases SET expires = expires - 1000 WHERE job = %lld", (long long)job);
    CHECK(sql_exec(c, sql, &e) == 0, "%s: expire %lld by hand: %s", K, (long long)job, e.msg);
}

static void test_rules(const char *target)
{
    vaed_err e = {0};
    sql_conn *n[3] = {node_conn(target, 2000), node_conn(target, 2000), node_conn(target, 2000)};
    const char *name[3] = {"node-a", "node-b", "node-c"};
    lease got[6], l;
    if (!n[0] || !n[1] || !n[2])
        goto out;
    sql_exec(n[0], "DROP TABLE IF EXISTS leases", &e);
    CHECK(lease_schema(n[0], &e) == 0, "%s: schema: %s", K, e.msg);
    for (int64_t j = 1; j <= 6; j++)
        CHECK(lease_offer(n[0], j, &e) == 0, "%s: offer %lld: %s", K, (long long)j, e.msg);
    CHECK(lease_offer(n[1], 1, &e) == 0 && t_sql_int(n[0], "SELECT count(*) FROM leases") == 6,
          "%s: offering a job twice keeps one row", K);
    for (int k = 0; k < 6; k++) {
        int rc = lease_claim(n[k % 3], name[k % 3], 30, &got[k], &e);
        CHECK(rc == 1 && got[k].job == k + 1 && got[k].gen == 1 && strcmp(got[k].node, name[k % 3]) == 0,
              "%s: claim %d: rc %d job %lld gen %lld %s", K, k, rc, (long long)got[k].job,
              (long long)got[k].gen, e.msg);
    }
    CHECK(lease_claim(n[0], "node-a", 30, &l, &e) == 0, "%s: all six held: no claim", K);
    CHECK(lease_claim(n[0], "", 30, &l, &e) == VAED_EINVAL, "%s: an empty node name is refused", K);
    CHECK(lease_claim(n[0], "node-a", NAN, &l, &e) == VAED_EINVAL && lease_claim(n[0], "node-a", 0, &l, &e) == VAED_EINVAL,
          "%s: a ttl that is not a positive number is refused", K);

    /* job 2 given back unfinished: claimable at once, one generation up */
    CHECK(lease_release(n[1], &got[1], 0, &e) == 0, "%s: release: %s", K, e.msg);
    CHECK(lease_claim(n[2], "node-c", 30, &l, &e) == 1 && l.job == 2 && l.gen == 2,
          "%s: the released job again, gen 2 (job %lld gen %lld)", K, (long long)l.job, (long long)l.gen);
    /* node-b's generation 1 is stale: renew, fence and release refused */
    CHECK(lease_renew(n[1], &got[1], 30, &e) == VAED_ESTATE, "%s: a stale renew is refused", K);
    sql_begin(n[1], 1, &e);
    CHECK(lease_fence(n[1], &got[1], &e) == VAED_ESTATE && strstr(e.msg, "fenced"),
          "%s: a stale fence is refused [%s]", K, e.msg);
    sql_rollback(n[1], &e);
    CHECK(lease_release(n[1], &got[1], 1, &e) == VAED_ESTATE, "%s: a stale release changes nothing", K);
    sql_begin(n[2], 1, &e);
    CHECK(lease_fence(n[2], &l, &e) == 0, "%s: the owner's fence holds: %s", K, e.msg);
    sql_commit(n[2], &e);

    /* job 3 done: never claimed again */
    CHECK(lease_release(n[2], &got[2], 1, &e) == 0, "%s: release done: %s", K, e.msg);
    CHECK(lease_claim(n[0], "node-a", 30, &l, &e) == 0, "%s: a done job is not claimable", K);

    /* expiry, in the database's clock */
    lease a, b;
    lease_offer(n[0], 100, &e);
    CHECK(lease_claim(n[0], "node-a", 30, &a, &e) == 1 && a.job == 100, "%s: claim 100", K);
    CHECK(lease_claim(n[1], "node-b", 30, &b, &e) == 0, "%s: a live lease is not taken", K);
    double was = a.expires;
    usleep(50000);
    CHECK(lease_renew(n[0], &a, 40, &e) == 0 && a.expires > was, "%s: renew moves the expiry (%.3f > %.3f) %s",
          K, a.expires, was, e.msg);
    expire(n[0], 100);
    CHECK(lease_claim(n[1], "node-b", 30, &b, &e) == 1 && b.job == 100 && b.gen == a.gen + 1,
          "%s: an expired lease is taken over, gen %lld -> %lld", K, (long long)a.gen, (long long)b.gen);
    CHECK(lease_renew(n[0], &a, 30, &e) == VAED_ESTATE, "%s: the old owner's renew is refused", K);
    sql_begin(n[0], 1, &e);
    int fenced = lease_fence(n[0], &a, &e);
    if (fenced == 0)   /* a write the fence would have let through: must not happen */
        sql_exec(n[0], "UPDATE leases SET done = 1 WHERE job = 100", &e);
    sql_rollback(n[0], &e);
    CHECK(fenced == VAED_ESTATE, "%s: the old owner's write transaction is fenced", K);

    /* expired but not taken yet: still fenced (the lease has run out) */
    lease_offer(n[0], 200, &e);
    CHECK(lease_claim(n[0], "node-a", 30, &a, &e) == 1 && a.job == 200, "%s: claim 200", K);
    expire(n[0], 200);
    sql_begin(n[0], 1, &e);
    CHECK(lease_fence(n[0], &a, &e) == VAED_ESTATE, "%s: an expired lease fences its own owner", K);
    sql_rollback(n[0], &e);
    CHECK(lease_release(n[0], &a, 1, &e) == 0, "%s: untaken, it can still be given back: %s", K, e.msg);

    /* a write transaction that passed its fence holds the lease until it ends: a
     * claim meanwhile does not take the job (PostgreSQL: the row is locked and
     * skipped; SQLite: the writer's lock, so the claim fails busy) */
    lease_offer(n[0], 300, &e);
    CHECK(lease_claim(n[0], "node-a", 1.5, &a, &e) == 1 && a.job == 300, "%s: claim 300", K);
    sql_begin(n[0], 1, &e);   /* the lease can't be expired by hand from here: it is held */
    CHECK(lease_fence(n[0], &a, &e) == 0, "%s: fence 300 (within 1.5 s of the claim): %s", K, e.msg);
    usleep(1700000);   /* expired now, inside the fenced transaction */
    sql_conn *quick = node_conn(target, 100);
    int rc = quick ? lease_claim(quick, "node-q", 30, &b, &e) : -99;
    int skipped = rc == 0 || (rc == 1 && b.job != 300) ||
                  (rc == VAED_EDB && sql_errclass_of(quick) == SQL_EC_BUSY);
    CHECK(skipped, "%s: no takeover during the owner's fenced write (rc %d job %lld) %s", K, rc,
          (long long)(rc == 1 ? b.job : 0), e.msg);
    sql_commit(n[0], &e);
    CHECK(lease_claim(quick, "node-q", 30, &b, &e) == 1 && b.job == 300 && b.gen == a.gen + 1,
          "%s: after it, the expired lease is taken over (job %lld)", K, (long long)b.job);
    sql_close(quick);
out:
    for (int k = 0; k < 3; k++)
        sql_close(n[k]);
}

/* ---- many nodes claiming at once: each job exactly once ---------------------------- */
#define NJOBS 200
#define NNODES 4

static pthread_barrier_t start_line;   /* every node connected before the first claim */

struct racer {
    const char *target;
    int id;
    int64_t jobs[NJOBS];
    int n, errors;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    vaed_err e = {0};
    sql_open_opts o = {.busy_ms = 10000};
    sql_conn *c = NULL;
    char node[16];
    snprintf(node, sizeof node, "racer-%d", r->id);
    int opened = sql_open(&c, r->target, &o, &e);
    pthread_barrier_wait(&start_line);
    if (opened < 0) {
        r->errors++;
        return NULL;
    }
    for (int empty = 0; empty < 3;) {
        lease l;
        int rc = lease_claim(c, node, 60, &l, &e);
        if (rc == 1 && r->n < NJOBS && l.gen == 1) {
            r->jobs[r->n++] = l.job;
            empty = 0;
            usleep(200);   /* the node starts its job: the others get their turn */
        } else if (rc == 0) {
            empty++;
            usleep(2000);
        } else {
            r->errors++;
            break;
        }
    }
    sql_close(c);
    return NULL;
}

static void test_race(const char *target)
{
    vaed_err e = {0};
    sql_conn *c = node_conn(target, 2000);
    if (!c)
        return;
    sql_exec(c, "DELETE FROM leases", &e);
    for (int64_t j = 1; j <= NJOBS; j++)
        lease_offer(c, 1000 + j, &e);
    static struct racer r[NNODES];
    pthread_t th[NNODES];
    pthread_barrier_init(&start_line, NULL, NNODES);
    for (int k = 0; k < NNODES; k++) {
        memset(&r[k], 0, sizeof r[k]);
        r[k].target = target;
        r[k].id = k;
        pthread_create(&th[k], NULL, race, &r[k]);
    }
    int seen[NJOBS] = {0}, total = 0, errors = 0, nodes_used = 0;
    for (int k = 0; k < NNODES; k++) {
        pthread_join(th[k], NULL);
        errors += r[k].errors;
        nodes_used += r[k].n > 0;
        for (int i = 0; i < r[k].n; i++) {
            int64_t j = r[k].jobs[i] - 1001;
            if (j >= 0 && j < NJOBS)
                seen[j]++;
            total++;
        }
    }
    pthread_barrier_destroy(&start_line);
    int twice = 0, never = 0;
    for (int j = 0; j < NJOBS; j++)
        twice += seen[j] > 1, never += seen[j] == 0;
    CHECK(errors == 0 && total == NJOBS && twice == 0 && never == 0,
          "%s: %d nodes racing: %d claims of %d jobs, %d twice, %d never, %d errors", K, NNODES, total,
          NJOBS, twice, never, errors);
    printf("test_lease: %s: %d claims by %d of %d racing nodes\n", K, total, nodes_used, NNODES);
    sql_close(c);
}

/* ---- a node's start forgets the nodes long gone ----------------------------------- */
static int64_t count_of(sql_conn *c, const char *sql)
{
    sql_stmt *s = NULL;
    vaed_err e = {0};
    int64_t v = -1;
    if (sql_prepare(c, sql, &s, &e) == 0 && sql_step(s, &e) == SQL_ROW)
        v = sql_column_int64(s, 0);
    sql_finalize(s);
    return v;
}

static void test_forget(const char *target)
{
    vaed_err e = {0};
    sql_conn *c = node_conn(target, 2000);
    if (!c)
        return;
    CHECK(lease_schema(c, &e) == 0, "%s: schema: %s", K, e.msg);
    sql_exec(c, "DELETE FROM nodes", &e);
    const char *now = lease_now_sql(sql_kind_of(c));
    char sql[640];
    /* seen 8 days ago; a day ago; 8 days ago but holding a lease that ran out */
    snprintf(sql, sizeof sql, "INSERT INTO nodes(name, started, seen, kernels, lease_ttl) VALUES "
             "('gone', %s - 800000, %s - 700000, '', 5), ('recent', %s - 90000, %s - 86400, '', 5), "
             "('holder', %s - 800000, %s - 700000, '', 5)", now, now, now, now, now, now);
    CHECK(sql_exec(c, sql, &e) == 0, "%s: old nodes: %s", K, e.msg);
    lease_offer(c, 9000, &e);
    CHECK(sql_exec(c, "UPDATE leases SET node = 'holder', gen = 1, expires = 0, done = 0 "
                      "WHERE job = 9000", &e) == 0, "%s: a lease of 'holder': %s", K, e.msg);
    CHECK(lease_beat(c, "node-a", "k", 5, 0, &e) == 0 &&
              count_of(c, "SELECT count(*) FROM nodes WHERE name = 'gone'") == 1,
          "%s: a heartbeat that is not a start forgets no node: %s", K, e.msg);
    CHECK(lease_beat(c, "node-a", "k", 5, 1, &e) == 0, "%s: a start's heartbeat: %s", K, e.msg);
    CHECK(count_of(c, "SELECT count(*) FROM nodes WHERE name = 'gone'") == 0,
          "%s: a node not seen for %.0f days that holds no lease is forgotten", K,
          LEASE_NODE_FORGET_S / 86400);
    CHECK(count_of(c, "SELECT count(*) FROM nodes WHERE name IN ('recent', 'holder', 'node-a')") == 3,
          "%s: one seen a day ago, one that still holds a lease, and the node itself stay", K);
    sql_close(c);
}

static void suite(const char *target)
{
    sql_conn *c = node_conn(target, 0);
    if (!c)
        return;
    K = sql_kind_of(c) == SQL_POSTGRES ? "postgres" : "sqlite";
    sql_close(c);
    test_rules(target);
    test_race(target);
    test_forget(target);
}

int main(void)
{
    char dir[] = "/tmp/vaed-lease.XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/l.db", dir);
    sql_conn *c = NULL;
    vaed_err e = {0};
    sql_open_opts o = {.create = 1};
    CHECK(sql_open(&c, path, &o, &e) == 0 && sql_exec(c, "PRAGMA journal_mode = WAL", &e) == 0,
          "sqlite: create %s: %s", path, e.msg);
    sql_close(c);
    suite(path);
    t_sqlite_remove(path, dir);
    const char *pg = getenv("VAED_TEST_PG");
    if (pg && *pg)
        suite(pg);
    else
        printf("test_lease: PostgreSQL half not run here (VAED_TEST_PG unset; tests/e2e/store_pg.sh runs it)\n");
    return t_done("test_lease");
}
