/* test_store_merge.c — the writer merges each job's metric ops within a batch
 * (store_metrics_merge, writer_ops.h): what is stored must be what would have been
 * stored op by op. Two jobs append rows interleaved, one row a call and three a call,
 * with KL groups of varying width, some steps written twice (the later row must win,
 * within a run of metric ops and across a barrier: an epoch row between them), all in
 * one batch (a long flush interval). Checked against a naive oracle: every row read
 * back; the merging happened (fewer ops committed than appended); and the min/max
 * pyramid the writer kept equals the one the v3 migration builds from the raw rows
 * (sum_build_all), row for row. */
#include "tests/unit/test_store_util.h"

#include "store/pyramid.h"
#include "store/sql.h"

#define N 10000              /* past a level-1 bucket (4096 steps); runs of one job
                                past a merged op's 4,096 rows (writes.c) */

static double salt_a[N], salt_b[N];   /* the oracle: the salt of each step's last write */

static int put(store *st, int64_t job, int64_t step, double salt)
{
    store_metric m = mrow(step, salt);
    double g[3];
    m.n_groups = (int)(step % 4 == 3 ? 0 : step % 4);
    for (int k = 0; k < m.n_groups; k++)
        g[k] = gval(step, k) + salt;
    m.kl_groups = m.n_groups ? g : NULL;
    vaed_err e;
    int rc = store_metrics_append(st, job, &m, 1, &e);
    CHECK(rc == 0, "append %lld: %s", (long long)step, e.msg);
    return rc;
}

static void check_job(store *st, int64_t job, const double *salt, const char *name)
{
    store_series s = {0};
    vaed_err e;
    int rc = store_metrics_range(st, job, -1, -1, STORE_MCOL_ALL | STORE_M_KL_GROUPS_BIT, 0, &s, &e);
    CHECK(rc == 0 && s.n == N, "%s: %zu rows (%s)", name, s.n, rc ? e.msg : "");
    long bad = 0;
    for (size_t i = 0; rc == 0 && i < s.n && i < N; i++) {
        int64_t step = (int64_t)i;
        int ng = (int)(step % 4 == 3 ? 0 : step % 4);
        int ok = s.step[i] == step;
        for (int k = 0; ok && k < STORE_M_NCOLS; k++)
            ok = s.col[k][i] == mval(step, k, salt[i]);
        for (int k = 0; ok && k < s.n_groups; k++) {
            double v = s.kl_groups[i * (size_t)s.n_groups + (size_t)k];
            ok = k < ng ? v == gval(step, k) + salt[i] : v != v;
        }
        if (!ok && bad++ < 5)
            fprintf(stderr, "%s: row %zu (step %lld) differs from the oracle\n", name, i,
                    (long long)s.step[i]);
    }
    CHECK(bad == 0, "%s: %ld rows differ from the oracle", name, bad);
    store_series_free(&s);
}

static void test_merge(void)
{
    store_opts o;
    store_opts_default(&o);
    o.flush_interval = 60;   /* one batch (and the two jobs' inserts): the test flushes */
    o.fsync_checkpoints = 0;
    store *st = open_or_die("merge.db", &o);
    if (!st)
        return;
    int64_t a = new_job(st, "a", 0), b = new_job(st, "b", 0);
    vaed_err e;
    int appends = 0;
    for (int64_t s = 0; s < N; s++) {
        put(st, a, s, salt_a[s] = 1.0);
        appends++;
        if (s % 3 == 2) {                 /* b: three rows a call */
            store_metric rows[3];
            for (int k = 0; k < 3; k++)
                rows[k] = mrow(s - 2 + k, salt_b[s - 2 + k] = 2.0);
            CHECK(store_metrics_append(st, b, rows, 3, &e) == 0, "append b: %s", e.msg);
            appends++;
        }
        if (s == 1 || s == 100) {         /* rewritten within a run of metric ops (the */
            put(st, a, s / 2, salt_a[s / 2] = 7.0);   /* first op of the run, one inside) */
            appends++;
        }
        if (s == N / 2) {                 /* a barrier, then a rewrite across it */
            store_epoch ep = {.epoch = 1, .split = "train", .step = s, .xent = 1, .kl = 2,
                              .elbo = -3, .time = 4};
            CHECK(store_epoch_put(st, a, &ep, &e) == 0, "epoch: %s", e.msg);
        }
        if (s == N / 2 + 10) {
            put(st, a, N / 2 - 5, salt_a[N / 2 - 5] = 9.0);
            put(st, a, N / 2 + 3, salt_a[N / 2 + 3] = 11.0);
            appends += 2;
        }
    }
    for (int64_t s = N - N % 3; s < N; s++) {   /* b's tail */
        store_metric m = mrow(s, salt_b[s] = 2.0);
        CHECK(store_metrics_append(st, b, &m, 1, &e) == 0, "append b tail: %s", e.msg);
        appends++;
    }
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    store_stats stats;
    store_get_stats(st, &stats);
    CHECK(stats.rows_committed == 2 * N + 4, "rows committed: %llu of %d",
          (unsigned long long)stats.rows_committed, 2 * N + 4);
    CHECK(stats.commits <= 3 && stats.ops_committed < (uint64_t)appends / 100,
          "merged: %llu ops committed in %llu commits for %d appends",
          (unsigned long long)stats.ops_committed, (unsigned long long)stats.commits, appends);
    printf("test_store_merge: %d appends, %llu ops committed, %llu commits\n", appends,
           (unsigned long long)stats.ops_committed, (unsigned long long)stats.commits);
    check_job(st, a, salt_a, "job a");
    check_job(st, b, salt_b, "job b");
    close_ok(st);

    /* the pyramid: the writer's incremental one against one built from the raw rows */
    char p[512];
    path_of(p, sizeof p, "merge.db");
    sql_conn *c = NULL;
    sql_open_opts so = {.busy_ms = 5000};
    CHECK(sql_open(&c, p, &so, &e) == 0, "raw open: %s", e.msg);
    if (!c)
        return;
    int rc = sql_exec(c, "BEGIN IMMEDIATE", &e);
    rc = rc ? rc : sql_exec(c, "CREATE TEMP TABLE kept AS SELECT * FROM metrics_sum", &e);
    rc = rc ? rc : sql_exec(c, "DELETE FROM metrics_sum", &e);
    rc = rc ? rc : sum_build_all(c, &e);
    CHECK(rc == 0, "rebuild: %s", e.msg);
    sql_stmt *s = NULL;
    int64_t kept = -1, diff = -1;
    if (sql_prepare(c, "SELECT (SELECT count(*) FROM kept), "
                       "(SELECT count(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM metrics_sum)) + "
                       "(SELECT count(*) FROM (SELECT * FROM metrics_sum EXCEPT SELECT * FROM kept))",
                    &s, &e) == 0 &&
        sql_step(s, &e) == SQL_ROW) {
        kept = sql_column_int64(s, 0);
        diff = sql_column_int64(s, 1);
    }
    sql_finalize(s);
    CHECK(kept > 2 * (N / 256) && diff == 0,
          "the pyramid equals a rebuild from the raw rows: %lld buckets, %lld differ",
          (long long)kept, (long long)diff);
    sql_exec(c, "ROLLBACK", NULL);
    sql_close(c);
}

int main(void)
{
    int rc = test_store_begin();
    if (rc)
        return rc;
    test_merge();
    return test_store_end("test_store_merge");
}
