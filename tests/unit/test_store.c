/* test_store.c — the SQLite store: schema and migrations, jobs, metrics through the
 * writer, replace semantics, checkpoints and retention, durability of the batch
 * before a checkpoint (seen from an independent sqlite3 connection), SQL
 * metacharacters, readers beside the writer, a full disk and recovery, a SIGKILLed
 * writer process, and integrity_check at the end. Everything lives in a mkdtemp
 * directory. Oracles: the value functions the rows were written from, and naive
 * re-implementations of the retention and supersede rules.
 * The min/max pyramid: downsampling against a naive oracle of the documented plan over
 * many ranges, planted spikes, replaced and late rows, and the v2 → v3 migration.
 * VAED_STORE_BENCH=1 also times a one-million-row range read and its downsample. */
#include "tests/unit/test_store_util.h"

static void test_open_and_version(void)
{
    store *st = open_or_die("a.db", NULL);
    if (!st)
        return;
    close_ok(st);
    char p[512], mode[32];
    path_of(p, sizeof p, "a.db");
    sqlite3 *db = raw_open(p);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "user_version %lld",
          (long long)raw_int(db, "PRAGMA user_version"));
    raw_text(db, "PRAGMA journal_mode", mode, sizeof mode);
    CHECK(strcmp(mode, "wal") == 0, "journal_mode %s", mode);
    CHECK(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE name IN ('jobs','metrics',"
                      "'epochs','schedule_events','checkpoints')") == 5, "tables missing");
    sqlite3_close(db);
    /* Reopening a current database is a no-op migration. */
    st = open_or_die("a.db", NULL);
    close_ok(st);
    CHECK(store_migration_sql(0) == NULL && store_migration_sql(STORE_SCHEMA_VERSION + 1) == NULL,
          "migration table bounds");
}

static void test_migration_from_v1(void)
{
    char p[512];
    path_of(p, sizeof p, "v1.db");
    sqlite3 *db = raw_open(p);
    int rc = sqlite3_exec(db, store_migration_sql(1), NULL, NULL, NULL);
    CHECK(rc == SQLITE_OK, "v1 sql: %s", sqlite3_errmsg(db));
    rc = sqlite3_exec(db,
                      "PRAGMA user_version = 1;"
                      "INSERT INTO jobs(id, name, spec, state, priority, queue_seq, created_at,"
                      " updated_at, step, epoch) VALUES (7, 'old job', '{\"a\":1}', 'paused', 3,"
                      " 1, 1000.5, 1001.5, 42, 0.5);"
                      "INSERT INTO metrics(job, step, epoch, beta, loss, xent, kl, elbo, lr,"
                      " grad_norm, capacity, time) VALUES (7, 42, 0.5, 0.25, 1, 2, 3, 4, 5, 6, 7, 8);",
                      NULL, NULL, NULL);
    CHECK(rc == SQLITE_OK, "v1 rows: %s", sqlite3_errmsg(db));
    sqlite3_close(db);

    store *st = open_or_die("v1.db", NULL);
    if (!st)
        return;
    db = raw_open(p);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "not upgraded: %lld",
          (long long)raw_int(db, "PRAGMA user_version"));
    CHECK(raw_int(db, "SELECT count(*) FROM pragma_table_info('metrics') WHERE name='kl_groups'")
              == 1, "kl_groups column missing after migration");
    sqlite3_close(db);
    store_job j;
    vaed_err e;
    rc = store_job_get(st, 7, &j, &e);
    CHECK(rc == 0, "old job: %d %s", rc, e.msg);
    if (rc == 0) {
        CHECK(strcmp(j.name, "old job") == 0 && strcmp(j.state, "paused") == 0 &&
                  j.priority == 3 && j.step == 42 && j.created_at == 1000.5 &&
                  strcmp(j.spec, "{\"a\":1}") == 0 && j.parent_id == 0,
              "old job kept: %s %s %d %lld", j.name, j.state, j.priority, (long long)j.step);
        store_job_clear(&j);
    }
    store_series s;
    rc = store_metrics_range(st, 7, -1, -1, STORE_MCOL_ALL | STORE_M_KL_GROUPS_BIT, 0, &s, &e);
    CHECK(rc == 0 && s.n == 1 && s.step[0] == 42 && s.col[STORE_M_BETA][0] == 0.25 &&
              s.col[STORE_M_TIME][0] == 8 && s.n_groups == 0,
          "old metric row: rc %d n %zu", rc, s.n);
    store_series_free(&s);
    /* The new column works on the migrated table. */
    double g[2] = {1.5, 2.5};
    store_metric m = mrow(43, 0);
    m.n_groups = 2;
    m.kl_groups = g;
    store_metrics_append(st, 7, &m, 1, NULL);
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    rc = store_metrics_range(st, 7, 42, -1, STORE_M_KL_GROUPS_BIT, 0, &s, &e);
    CHECK(rc == 0 && s.n == 1 && s.n_groups == 2 && s.kl_groups[0] == 1.5 &&
              s.kl_groups[1] == 2.5,
          "kl_groups after migration: rc %d n %zu groups %d", rc, s.n, s.n_groups);
    store_series_free(&s);
    close_ok(st);
}

static void test_newer_refused(void)
{
    char p[512];
    path_of(p, sizeof p, "future.db");
    sqlite3 *db = raw_open(p);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE TABLE jobs(x); PRAGMA user_version = %d",
             STORE_SCHEMA_VERSION + 1);
    sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    store *st = (store *)&st;   /* poison: must come back NULL */
    vaed_err e;
    int rc = store_open(&st, p, NULL, &e);
    CHECK(rc == VAED_EDB && st == NULL, "newer schema: rc %d", rc);
    CHECK(strstr(e.msg, "newer") != NULL, "message: %s", e.msg);
    db = raw_open(p);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION + 1, "version changed");
    sqlite3_close(db);
}

static void test_jobs(void)
{
    store *st = open_or_die("jobs.db", NULL);
    if (!st)
        return;
    vaed_err e;
    int64_t ids[25];
    char name[32];
    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof name, "job-%d", i);
        ids[i] = new_job(st, name, i % 3);
    }
    /* Read-your-writes: each insert is visible to a read right after. */
    store_job j;
    int rc = store_job_get(st, ids[24], &j, &e);
    CHECK(rc == 0 && strcmp(j.name, "job-24") == 0 && strcmp(j.state, "queued") == 0 &&
              j.priority == 24 % 3 && j.created_at > 1e9 && j.started_at == 0,
          "get: rc %d", rc);
    store_job_clear(&j);
    CHECK(store_job_get(st, 999999, &j, &e) == VAED_ENOTFOUND, "missing job");

    /* States: every third job running, every fifth failed. */
    int n_running = 0, n_failed = 0;
    for (int i = 0; i < 25; i++) {
        if (i % 5 == 0) {
            rc = store_job_set_state(st, ids[i], "failed", "loss became NaN at step 7", &e);
            n_failed++;
        } else if (i % 3 == 0) {
            rc = store_job_set_state(st, ids[i], "running", NULL, &e);
            n_running++;
        }
        CHECK(rc == 0, "set_state %d: %s", i, e.msg);
    }
    rc = store_job_get(st, ids[3], &j, &e);
    CHECK(rc == 0 && strcmp(j.state, "running") == 0 && j.started_at > 0 &&
              j.finished_at == 0 && j.reason == NULL,
          "running job: %s started %g", j.state, j.started_at);
    store_job_clear(&j);
    rc = store_job_get(st, ids[5], &j, &e);
    CHECK(rc == 0 && strcmp(j.state, "failed") == 0 && j.finished_at > 0 && j.reason &&
              strcmp(j.reason, "loss became NaN at step 7") == 0,
          "failed job: %s reason %s", j.state, j.reason ? j.reason : "(null)");
    store_job_clear(&j);
    CHECK(store_job_set_state(st, 999999, "running", NULL, &e) == VAED_ENOTFOUND,
          "state of a missing job");
    CHECK(store_job_set_state(st, ids[1], "bogus", NULL, &e) == VAED_EINVAL, "bad state");
    store_job_new bad = {.name = "x", .spec = "{not json"};
    int64_t bid = 0;
    CHECK(store_job_insert(st, &bad, &bid, &e) == VAED_EINVAL, "bad spec accepted");
    rc = store_job_set_progress(st, ids[3], 1234, 2.5, 1, &e);
    CHECK(rc == 0, "progress: %s", e.msg);
    rc = store_job_get(st, ids[3], &j, &e);
    CHECK(rc == 0 && j.step == 1234 && j.epoch == 2.5, "progress read back %lld %g",
          (long long)j.step, j.epoch);
    store_job_clear(&j);
    CHECK(store_job_set_progress(st, 999999, 1, 1, 1, &e) == VAED_ENOTFOUND, "progress missing");

    /* Pagination: all jobs, 10 per page, ids strictly descending, every one once. */
    store_job_list l;
    int64_t after = 0, seen = 0, prev = INT64_MAX;
    int pages = 0;
    do {
        rc = store_jobs_list(st, 0, after, 10, &l, &e);
        CHECK(rc == 0 && l.total == 25, "list: rc %d total %lld %s", rc, (long long)l.total, e.msg);
        for (size_t i = 0; i < l.n; i++) {
            CHECK(l.jobs[i].id < prev, "order: %lld after %lld", (long long)l.jobs[i].id,
                  (long long)prev);
            prev = l.jobs[i].id;
        }
        seen += (int64_t)l.n;
        after = l.next_after;
        pages++;
        store_job_list_free(&l);
    } while (after && pages < 10);
    CHECK(seen == 25 && pages == 3, "paged %lld jobs in %d pages", (long long)seen, pages);

    /* Filters: count by state with a naive tally. */
    rc = store_jobs_list(st, STORE_FAILED, 0, 100, &l, &e);
    CHECK(rc == 0 && (int)l.n == n_failed && l.total == n_failed, "failed filter %zu/%d", l.n,
          n_failed);
    for (size_t i = 0; i < l.n; i++)
        CHECK(strcmp(l.jobs[i].state, "failed") == 0, "filter returned %s", l.jobs[i].state);
    store_job_list_free(&l);
    rc = store_jobs_list(st, STORE_RUNNING | STORE_FAILED, 0, 3, &l, &e);
    CHECK(rc == 0 && l.n == 3 && l.total == n_running + n_failed && l.next_after == l.jobs[2].id,
          "two-state filter n %zu total %lld", l.n, (long long)l.total);
    store_job_list_free(&l);
    CHECK(store_state_bit("paused") == STORE_PAUSED && store_state_bit("nope") == 0, "bits");

    /* Resumable: queued+running+interrupted by priority desc then queue_seq; putting
     * a job at the front makes it first within its priority. */
    rc = store_job_set_state(st, ids[2], "interrupted", NULL, &e);
    rc |= store_job_set_state(st, ids[4], "paused", NULL, &e);
    CHECK(rc == 0, "states: %s", e.msg);
    int64_t last_prio2 = 0;
    rc = store_jobs_resumable(st, &l, &e);
    CHECK(rc == 0, "resumable: %s", e.msg);
    int expect = 0;
    for (int i = 0; i < 25; i++)
        if (i % 5 != 0 && i != 4)
            expect++;
    CHECK((int)l.n == expect, "resumable %zu want %d", l.n, expect);
    for (size_t i = 1; i < l.n; i++) {
        const store_job *a = &l.jobs[i - 1], *b = &l.jobs[i];
        CHECK(a->priority > b->priority ||
                  (a->priority == b->priority && a->queue_seq < b->queue_seq),
              "queue order at %zu", i);
    }
    for (size_t i = 0; i < l.n; i++)
        if (l.jobs[i].priority == 2)
            last_prio2 = l.jobs[i].id;
    store_job_list_free(&l);
    rc = store_job_requeue_front(st, last_prio2, &e);
    CHECK(rc == 0, "requeue: %s", e.msg);
    rc = store_jobs_resumable(st, &l, &e);
    CHECK(rc == 0 && l.n > 0 && l.jobs[0].id == last_prio2, "front: first is %lld want %lld",
          l.n ? (long long)l.jobs[0].id : -1LL, (long long)last_prio2);
    store_job_list_free(&l);
    rc = store_job_set_priority(st, ids[1], 9, &e);
    rc |= store_jobs_resumable(st, &l, &e);
    CHECK(rc == 0 && l.n > 0 && l.jobs[0].id == ids[1], "priority 9 first");
    store_job_list_free(&l);

    /* JSON form. */
    rc = store_job_get(st, ids[5], &j, &e);
    json_t *js = rc == 0 ? store_job_json(&j) : NULL;
    CHECK(js && json_integer_value(json_object_get(js, "id")) == ids[5] &&
              json_is_object(json_object_get(js, "spec")) &&
              strcmp(json_string_value(json_object_get(js, "reason")), j.reason) == 0 &&
              json_is_null(json_object_get(js, "parent")) &&
              json_is_real(json_object_get(js, "finished_at")),
          "job json");
    json_decref(js);
    store_job_clear(&j);
    /* A forked job keeps its parent. */
    store_job_new fk = {.name = "fork", .spec = "{}", .parent_id = ids[3], .parent_step = 500};
    int64_t fid = 0;
    rc = store_job_insert(st, &fk, &fid, &e);
    rc |= store_job_get(st, fid, &j, &e);
    CHECK(rc == 0 && j.parent_id == ids[3] && j.parent_step == 500, "parent kept");
    store_job_clear(&j);
    close_ok(st);
}

static void test_metrics(void)
{
    store *st = open_or_die("metrics.db", NULL);
    if (!st)
        return;
    vaed_err e;
    int64_t job = new_job(st, "m", 0), other = new_job(st, "other", 0);
    const int64_t N = 100000;
    double t0 = now_s();
    CHECK(append_range(st, job, 0, N, 0.0, 100, 3) == 0, "append");
    CHECK(append_range(st, other, 0, 1000, 7.0, 100, 0) == 0, "append other");
    double t_enq = now_s() - t0;
    int rc = store_flush(st, &e);
    CHECK(rc == 0, "flush: %s", e.msg);
    printf("metrics: enqueued %lld rows in %.3f s, committed in %.3f s\n", (long long)N, t_enq,
           now_s() - t0);
    store_stats ss;
    store_get_stats(st, &ss);
    CHECK(ss.rows_committed == (uint64_t)N + 1000 && ss.pending_ops == 0 && ss.lag == 0 &&
              ss.write_errors == 0,
          "stats rows %llu pending %zu lag %g errors %llu", (unsigned long long)ss.rows_committed,
          ss.pending_ops, ss.lag, (unsigned long long)ss.write_errors);

    store_series s;
    t0 = now_s();
    rc = store_metrics_range(st, job, -1, -1, STORE_MCOL_ALL | STORE_M_KL_GROUPS_BIT, 0, &s, &e);
    printf("metrics: read %zu rows in %.3f s\n", s.n, now_s() - t0);
    CHECK(rc == 0, "range: %s", e.msg);
    long bad = check_series(&s, 0, N, 0.0, STORE_MCOL_ALL);
    CHECK(bad == 0, "%ld mismatches over the full range", bad);
    long gbad = 0;
    CHECK(s.n_groups == 3, "n_groups %d", s.n_groups);
    for (size_t i = 0; s.n_groups == 3 && i < s.n; i++)
        for (int k = 0; k < 3; k++) {
            double want = (s.step[i] & 1) ? gval(s.step[i], k) : NAN;
            double got = s.kl_groups[i * 3 + k];
            if (!((isnan(want) && isnan(got)) || want == got))
                gbad++;
        }
    CHECK(gbad == 0, "%ld kl_groups mismatches", gbad);
    store_series_free(&s);

    /* since is exclusive, until inclusive, limit caps, mask picks columns. */
    unsigned mask = STORE_MCOL(STORE_M_BETA) | STORE_MCOL(STORE_M_KL);
    rc = store_metrics_range(st, job, 999, 1999, mask, 0, &s, &e);
    CHECK(rc == 0 && check_series(&s, 1000, 2000, 0.0, mask) == 0 && s.kl_groups == NULL,
          "since/until: n %zu", s.n);
    store_series_free(&s);
    rc = store_metrics_range(st, job, 50000, -1, mask, 10, &s, &e);
    CHECK(rc == 0 && check_series(&s, 50001, 50011, 0.0, mask) == 0, "limit: n %zu", s.n);
    store_series_free(&s);
    rc = store_metrics_range(st, job, N - 1, -1, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && s.n == 0, "past the end: n %zu", s.n);
    store_series_free(&s);
    rc = store_metrics_range(st, other, -1, -1, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && check_series(&s, 0, 1000, 7.0, STORE_MCOL_ALL) == 0, "other job: n %zu", s.n);
    store_series_free(&s);
    CHECK(store_mcol_by_name("grad_norm") == STORE_M_GRAD_NORM &&
              store_mcol_by_name("nope") == -1 &&
              strcmp(store_mcol_name(STORE_M_ELBO), "elbo") == 0,
          "column names");

    /* INSERT OR REPLACE: 0..99 salt 1, then 50..99 salt 2 → 100 rows, new values. */
    int64_t rj = new_job(st, "replace", 0);
    append_range(st, rj, 0, 100, 1.0, 30, 0);
    append_range(st, rj, 50, 100, 2.0, 30, 0);
    rc = store_flush(st, &e);
    rc |= store_metrics_range(st, rj, -1, -1, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && s.n == 100, "replace: %zu rows", s.n);
    store_series a = s, b = s;
    a.n = 50;
    b.n = 50;
    b.step = s.step + 50;
    for (int k = 0; k < STORE_M_NCOLS; k++)
        b.col[k] = s.col[k] ? s.col[k] + 50 : NULL;
    if (s.n == 100) {
        CHECK(check_series(&a, 0, 50, 1.0, STORE_MCOL_ALL) == 0, "rows 0..49 changed");
        CHECK(check_series(&b, 50, 100, 2.0, STORE_MCOL_ALL) == 0, "rows 50..99 not replaced");
    }
    store_series_free(&s);

    /* Rows of an unknown job are dropped and counted, and the writer keeps going. */
    store_get_stats(st, &ss);
    uint64_t dropped = ss.dropped_ops;
    store_metric m = mrow(1, 0);
    store_metrics_append(st, 987654, &m, 1, NULL);
    append_range(st, rj, 100, 110, 1.0, 10, 0);
    rc = store_flush(st, &e);
    store_get_stats(st, &ss);
    CHECK(rc == 0 && ss.dropped_ops == dropped + 1 && strstr(ss.last_error, "FOREIGN KEY"),
          "unknown job: dropped %llu last_error %s", (unsigned long long)ss.dropped_ops,
          ss.last_error);
    rc = store_metrics_range(st, rj, 99, -1, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && check_series(&s, 100, 110, 1.0, STORE_MCOL_ALL) == 0,
          "rows after a dropped op: %zu", s.n);
    store_series_free(&s);
    close_ok(st);
}

int main(void)
{
    int rc = test_store_begin();
    if (rc)
        return rc;
    test_open_and_version();
    test_migration_from_v1();
    test_newer_refused();
    test_jobs();
    test_metrics();
    return test_store_end("test_store");
}
