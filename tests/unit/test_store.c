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
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/unit/t.h"

static char dir[256];

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The value of column k of a metric row at step, for job-specific salt. */
static double mval(int64_t step, int k, double salt)
{
    return salt + (double)step * 0.001 * (k + 1) + 1.0 / (double)(k + 2 + (step % 7));
}

static double gval(int64_t step, int g)
{
    return (double)(step % 1000) * 0.5 + g;
}

static store_metric mrow(int64_t step, double salt)
{
    store_metric m;
    memset(&m, 0, sizeof m);
    m.step = step;
    m.epoch = mval(step, 0, salt);
    m.beta = mval(step, 1, salt);
    m.loss = mval(step, 2, salt);
    m.xent = mval(step, 3, salt);
    m.kl = mval(step, 4, salt);
    m.elbo = mval(step, 5, salt);
    m.lr = mval(step, 6, salt);
    m.grad_norm = mval(step, 7, salt);
    m.capacity = mval(step, 8, salt);
    m.time = mval(step, 9, salt);
    return m;
}

/* Append steps [from, to) of job with salt, chunk rows per call; groups (0..3) KL
 * groups per row on odd steps. Returns the first error. */
static int append_range(store *st, int64_t job, int64_t from, int64_t to, double salt,
                        int chunk, int groups)
{
    store_metric rows[256];
    double g[256][4];
    vaed_err e;
    for (int64_t s = from; s < to;) {
        int n = 0;
        for (; n < chunk && s < to; n++, s++) {
            rows[n] = mrow(s, salt);
            if (groups && (s & 1)) {
                for (int k = 0; k < groups; k++)
                    g[n][k] = gval(s, k);
                rows[n].n_groups = groups;
                rows[n].kl_groups = g[n];
            }
        }
        int rc = store_metrics_append(st, job, rows, (size_t)n, &e);
        if (rc) {
            if (rc != VAED_ETOOBIG)   /* the queue-cap test expects that one */
                fprintf(stderr, "append: %s\n", e.msg);
            return rc;
        }
    }
    return 0;
}

/* Check series s holds steps [from, to) of salt, every column; returns mismatches. */
static long check_series(const store_series *s, int64_t from, int64_t to, double salt,
                         unsigned mask)
{
    long bad = 0;
    if ((int64_t)s->n != to - from) {
        fprintf(stderr, "series has %zu rows, want %lld\n", s->n, (long long)(to - from));
        return 1 + (long)s->n;
    }
    for (size_t i = 0; i < s->n; i++) {
        int64_t step = from + (int64_t)i;
        if (s->step[i] != step) {
            if (bad++ < 5)
                fprintf(stderr, "row %zu: step %lld want %lld\n", i, (long long)s->step[i],
                        (long long)step);
            continue;
        }
        for (int k = 0; k < STORE_M_NCOLS; k++) {
            if (!(mask & STORE_MCOL(k))) {
                if (s->col[k] && bad++ < 5)
                    fprintf(stderr, "column %s returned but not asked\n", store_mcol_name(k));
                continue;
            }
            if (s->col[k][i] != mval(step, k, salt) && bad++ < 5)
                fprintf(stderr, "step %lld %s: %.17g want %.17g\n", (long long)step,
                        store_mcol_name(k), s->col[k][i], mval(step, k, salt));
        }
    }
    return bad;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        fprintf(stderr, "raw open %s: %s\n", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* First column of the first row of sql as an integer; -999 on error. */
static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    int64_t v = -999;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    else
        fprintf(stderr, "raw %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return v;
}

static void raw_text(sqlite3 *db, const char *sql, char *buf, size_t n)
{
    sqlite3_stmt *s = NULL;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        snprintf(buf, n, "%s", (const char *)sqlite3_column_text(s, 0));
    else
        fprintf(stderr, "raw %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(s);
}

static int64_t new_job(store *st, const char *name, int prio)
{
    store_job_new nj = {.name = name, .spec = "{\"model\":{\"latent\":2}}", .priority = prio};
    int64_t id = 0;
    vaed_err e;
    int rc = store_job_insert(st, &nj, &id, &e);
    CHECK(rc == 0 && id > 0, "insert %s: rc %d %s", name, rc, e.msg);
    return id;
}

static store *open_or_die(const char *name, const store_opts *o)
{
    char p[512];
    path_of(p, sizeof p, name);
    store *st = NULL;
    vaed_err e;
    int rc = store_open(&st, p, o, &e);
    CHECK(rc == 0 && st, "open %s: %d %s", p, rc, e.msg);
    return st;
}

static void close_ok(store *st)
{
    vaed_err e;
    int rc = store_close(st, &e);
    CHECK(rc == 0, "close: %d %s", rc, e.msg);
}

/* ---- schema ------------------------------------------------------------------------ */

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

/* ---- jobs ------------------------------------------------------------------------ */

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

/* ---- metrics ---------------------------------------------------------------------- */

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

static void bench_downsample(store *st, int64_t job, int64_t N);

static void bench_million(void)
{
    store_opts o;
    store_opts_default(&o);
    o.fsync_checkpoints = 0;
    store *st = open_or_die("bench.db", &o);
    if (!st)
        return;
    int64_t job = new_job(st, "bench", 0);
    const int64_t N = 1000000;
    double t0 = now_s();
    append_range(st, job, 0, N, 0.0, 256, 0);
    store_flush(st, NULL);
    double tw = now_s() - t0;
    store_series s;
    vaed_err e;
    t0 = now_s();
    int rc = store_metrics_range(st, job, -1, -1, STORE_MCOL_ALL, 0, &s, &e);
    double tr = now_s() - t0;
    printf("bench: wrote %lld rows in %.2f s, read all columns in %.3f s\n", (long long)N, tw, tr);
    CHECK(rc == 0 && s.n == (size_t)N, "bench read %zu", s.n);
    CHECK(tr < 1.0, "a million rows took %.3f s to read", tr);
    store_series_free(&s);
    bench_downsample(st, job, N);
    close_ok(st);
}

/* ---- downsampling from the min/max pyramid ----------------------------------------- */

/* The rows the test wrote, as the database should hold them: step ascending. */
struct orow {
    int64_t step;
    double v[STORE_M_NCOLS];
    double g0;                  /* kl_groups[0]; every row has 2 groups */
};

static uint64_t lcg_state = 88172645463325252ULL;
static uint64_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return lcg_state >> 33;
}

#define NSPIKE 24

/* Steps: dense 0..2999, then every 97 steps to ~580000, then a gap, then a dense tail
 * at 700000: every level of the pyramid, empty buckets and unaligned edges occur.
 * Columns: smooth curves with noise, lr constant and beta saturating (ties), and
 * NSPIKE planted spikes per sign, spread evenly over the steps, in loss and kl. */
static size_t ds_rows_make(struct orow *r, int64_t *spike_hi, int64_t *spike_lo)
{
    size_t n = 0;
    for (int64_t s = 0; s < 3000; s++)
        r[n++].step = s;
    for (int64_t s = 3000; s < 580000; s += 97)
        r[n++].step = s;
    for (int64_t s = 700000; s < 701500; s++)
        r[n++].step = s;
    for (size_t i = 0; i < n; i++) {
        double x = (double)r[i].step;
        for (int k = 0; k < STORE_M_NCOLS; k++)
            r[i].v[k] = sin(x * 1e-4 * (k + 1)) + (double)(lcg() % 1000) * 1e-4;
        r[i].v[STORE_M_LR] = 0.001;
        r[i].v[STORE_M_BETA] = x < 1000 ? x / 1000 : 1.0;
        r[i].v[STORE_M_EPOCH] = x / 600.0;
        r[i].v[STORE_M_TIME] = 1.7e9 + x * 0.01;
        r[i].g0 = (double)(lcg() % 100);
    }
    /* Spikes 24k steps apart in the sparse stretch: more than a bucket's width in every
     * whole-range downsample ds_spikes asks for, so no bucket holds two. */
    for (int i = 0; i < NSPIKE; i++) {
        int64_t target = 3000 + (int64_t)577000 * (2 * i + 1) / (2 * NSPIKE);
        size_t a = 0;
        while (r[a].step < target)
            a++;
        size_t b = a + 3;
        r[a].v[STORE_M_LOSS] = 50.0 + i;
        r[b].v[STORE_M_KL] = -50.0 - i;
        spike_hi[i] = r[a].step;
        spike_lo[i] = r[b].step;
    }
    return n;
}

static store_metric orow_metric(const struct orow *o, double *g)
{
    store_metric m;
    memset(&m, 0, sizeof m);
    m.step = o->step;
    double *f[STORE_M_NCOLS] = {&m.epoch, &m.beta, &m.loss, &m.xent, &m.kl,
                                &m.elbo, &m.lr, &m.grad_norm, &m.capacity, &m.time};
    for (int k = 0; k < STORE_M_NCOLS; k++)
        *f[k] = o->v[k];
    g[0] = o->g0;
    g[1] = 1.0;
    m.n_groups = 2;
    m.kl_groups = g;
    return m;
}

static int64_t floor_div(int64_t a, int64_t w) { return a >= 0 ? a / w : -((-a + w - 1) / w); }
static int64_t ceil_div(int64_t a, int64_t w) { return -floor_div(-a, w); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_step(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int plan_seen[STORE_SUM_LEVELS + 1];   /* raw, level 0, 1, 2: sweep coverage */

/* The plan documented for store_metrics_downsample, from the raw rows, naively.
 * OUT pick (room for n + 2): the steps expected, ascending; *total. */
static size_t oracle_ds(const struct orow *r, size_t n, int64_t since, int64_t until,
                        unsigned mask, size_t mp, int64_t *pick, size_t *total)
{
    size_t a = 0, b = n, np = 0;
    while (a < n && since >= 0 && r[a].step <= since)
        a++;
    while (b > a && until >= 0 && r[b - 1].step > until)
        b--;
    size_t m = b - a;
    *total = m;
    if (m <= mp) {
        for (size_t i = a; i < b; i++)
            pick[np++] = r[i].step;
        return np;
    }
    int nf = 0;
    for (int k = 0; k < STORE_M_NCOLS; k++)
        nf += (mask >> k) & 1;
    size_t nb = (mp - 2) / (2 * (size_t)(nf ? nf : 1));
    if (nb < 1)
        nb = 1;
    int64_t s0 = r[a].step, s1 = r[b - 1].step;
    pick[np++] = s0;
    pick[np++] = s1;
    if (nf == 0)
        return np;
    int lvl = -1;
    int64_t lo = 0, c = 0;
    for (int l = STORE_SUM_LEVELS - 1; l >= 0 && lvl < 0; l--) {
        int64_t w = STORE_SUM_WIDTH(l);
        int64_t cl = floor_div(s1 + 1, w) - ceil_div(s0, w);
        int64_t minb = (int64_t)nb < STORE_DS_MIN_BUCKETS ? (int64_t)nb : STORE_DS_MIN_BUCKETS;
        if (cl >= STORE_DS_QUALITY * (int64_t)nb || (l == 0 && cl >= minb))
            lvl = l, lo = ceil_div(s0, w), c = cl;
    }
    plan_seen[lvl + 1]++;
    /* Group of each row: by row index (raw) or by pyramid bucket. */
    size_t G = lvl < 0 ? nb : ((size_t)c < nb ? (size_t)c : nb);
    size_t *grp = malloc(m * sizeof *grp);
    for (size_t i = 0; i < m; i++) {
        if (lvl < 0) {
            size_t g = 0;
            while (g + 1 < G && m * (g + 1) / G <= i)
                g++;
            grp[i] = g;
            continue;
        }
        int64_t bk = floor_div(r[a + i].step, STORE_SUM_WIDTH(lvl));
        size_t g = 0;
        while (g + 1 < G && bk >= lo + (int64_t)((uint64_t)c * (g + 1) / G))
            g++;
        grp[i] = g;
    }
    for (size_t i0 = 0; i0 < m;) {
        size_t i1 = i0;
        while (i1 < m && grp[i1] == grp[i0])
            i1++;
        for (int k = 0; k < STORE_M_NCOLS; k++) {
            if (!((mask >> k) & 1))
                continue;
            size_t imin = i0, imax = i0;
            for (size_t i = i0 + 1; i < i1; i++) {
                if (r[a + i].v[k] < r[a + imin].v[k])
                    imin = i;
                if (r[a + i].v[k] > r[a + imax].v[k])
                    imax = i;
            }
            pick[np++] = r[a + imin].step;
            pick[np++] = r[a + imax].step;
        }
        i0 = i1;
    }
    free(grp);
    qsort(pick, np, sizeof *pick, cmp_step);
    size_t u = 0;
    for (size_t i = 0; i < np; i++)
        if (u == 0 || pick[i] != pick[u - 1])
            pick[u++] = pick[i];
    return u;
}

static const struct orow *orow_find(const struct orow *r, size_t n, int64_t step)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r[mid].step < step)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && r[lo].step == step ? &r[lo] : NULL;
}

/* Downsample and compare with the oracle: the same steps, whole real rows, the
 * range's row count. Returns 1 when they agree. */
static int ds_check(store *st, int64_t job, const struct orow *r, size_t n, int64_t since,
                    int64_t until, unsigned mask, size_t mp, int64_t *pick)
{
    store_series s;
    vaed_err e;
    size_t total = 0, np = oracle_ds(r, n, since, until, mask & STORE_MCOL_ALL, mp, pick, &total);
    int rc = store_metrics_downsample(st, job, since, until, mask, mp, &s, &e);
    int nf = 0;
    for (int k = 0; k < STORE_M_NCOLS; k++)
        nf += (mask >> k) & 1;
    size_t cap = mp > 2 + 2 * (size_t)nf ? mp : 2 + 2 * (size_t)nf;   /* see store.h */
    int ok = rc == 0 && s.n == np && s.total == total && s.n <= cap;
    for (size_t i = 0; ok && i < s.n; i++) {
        const struct orow *o = orow_find(r, n, s.step[i]);
        ok = s.step[i] == pick[i] && o;
        for (int k = 0; ok && k < STORE_M_NCOLS; k++)
            ok = (mask & STORE_MCOL(k)) ? s.col[k] && s.col[k][i] == o->v[k] : !s.col[k];
        if (ok && (mask & STORE_M_KL_GROUPS_BIT))
            ok = s.n_groups == 2 && s.kl_groups[2 * i] == o->g0;
    }
    if (!ok) {
        fprintf(stderr, "downsample since %lld until %lld mask %#x max %zu: rc %d (%s) got %zu "
                "rows (total %zu), want %zu (total %zu)\n", (long long)since, (long long)until,
                mask, mp, rc, rc ? e.msg : "", rc ? 0 : s.n, rc ? 0 : s.total, np, total);
        for (size_t i = 0; !rc && i < s.n && i < np; i++)
            if (s.step[i] != pick[i]) {
                fprintf(stderr, "  first difference at %zu: step %lld want %lld\n", i,
                        (long long)s.step[i], (long long)pick[i]);
                break;
            }
    }
    store_series_free(&s);
    return ok;
}

/* Many (since, until, max_points, mask) against the oracle; returns failures. */
static int ds_sweep(store *st, int64_t job, const struct orow *r, size_t n)
{
    static const size_t mps[] = {2, 3, 5, 9, 22, 50, 101, 300, 1000, 4000, 20000};
    const unsigned masks[] = {STORE_MCOL_ALL, STORE_MCOL(STORE_M_LOSS),
                              STORE_MCOL(STORE_M_KL) | STORE_MCOL(STORE_M_LR) |
                                  STORE_M_KL_GROUPS_BIT,
                              STORE_MCOL(STORE_M_BETA) | STORE_MCOL(STORE_M_TIME), 0,
                              STORE_M_KL_GROUPS_BIT};
    int64_t *pick = malloc((n + 2) * sizeof *pick);
    int bad = 0, runs = 0;
    for (int t = 0; t < 400; t++) {
        int64_t since = -1, until = -1;
        if (t % 4 != 0)
            since = (int64_t)(lcg() % 720000) - 5000;
        if (t % 3 != 0)
            until = since + (int64_t)(lcg() % 720000);
        if (t % 7 == 5 && since >= 0)   /* short ranges, the poll's shape */
            until = since + (int64_t)(lcg() % 3000);
        if (since < -1)
            since = -1;
        size_t mp = mps[lcg() % (sizeof mps / sizeof mps[0])];
        unsigned mask = masks[lcg() % (sizeof masks / sizeof masks[0])];
        bad += !ds_check(st, job, r, n, since, until, mask, mp, pick);
        runs++;
    }
    free(pick);
    CHECK(bad == 0, "%d of %d downsampled ranges differ from the oracle", bad, runs);
    for (int l = 0; l <= STORE_SUM_LEVELS; l++)
        CHECK(plan_seen[l] > 0, "the sweep never used plan %d (0 = raw rows)", l);
    printf("downsample sweep: plans raw %d, level 0 %d, level 1 %d, level 2 %d\n",
           plan_seen[0], plan_seen[1], plan_seen[2], plan_seen[3]);
    return bad;
}

/* Every planted spike of the asked column is in a whole-range downsample, when there
 * are more buckets than spikes (checked against the spike list, not the oracle). */
static void ds_spikes(store *st, int64_t job, const int64_t *hi, const int64_t *lo)
{
    static const size_t mps[] = {1000, 300, 2000};
    for (size_t t = 0; t < sizeof mps / sizeof mps[0]; t++) {
        store_series s;
        vaed_err e;
        unsigned mask = t == 1 ? STORE_MCOL(STORE_M_LOSS) | STORE_MCOL(STORE_M_KL)
                               : STORE_MCOL_ALL;
        int rc = store_metrics_downsample(st, job, -1, -1, mask, mps[t], &s, &e);
        CHECK(rc == 0 && s.n <= mps[t] && s.n > 2, "spikes: rc %d n %zu", rc, s.n);
        int missing = 0;
        for (int i = 0; rc == 0 && i < NSPIKE; i++) {
            int fh = 0, fl = 0;
            for (size_t j = 0; j < s.n; j++) {
                fh |= s.step[j] == hi[i] && s.col[STORE_M_LOSS][j] == 50.0 + i;
                fl |= s.step[j] == lo[i] && s.col[STORE_M_KL][j] == -50.0 - i;
            }
            if (!fh || !fl) {
                if (missing++ < 3)
                    fprintf(stderr, "max_points %zu: spike %d (steps %lld / %lld) missing\n",
                            mps[t], i, (long long)hi[i], (long long)lo[i]);
            }
        }
        CHECK(missing == 0, "max_points %zu: %d spikes lost", mps[t], missing);
        for (size_t j = 1; rc == 0 && j < s.n; j++)
            CHECK(s.step[j] > s.step[j - 1], "steps not ascending at %zu", j);
        store_series_free(&s);
    }
}

static int append_orows(store *st, int64_t job, const struct orow *r, size_t n)
{
    store_metric m[300];
    double g[300][2];
    for (size_t i = 0; i < n;) {
        size_t k = 0, want = 1 + lcg() % 300;
        for (; k < want && i < n; k++, i++)
            m[k] = orow_metric(&r[i], g[k]);
        int rc = store_metrics_append(st, job, m, k, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

/* Writes through the writer: appends in uneven batches, a batch held back and written
 * late (out of order), rows first written with a bogus spike then replaced (the
 * stale extreme must go), a replay of identical rows (crash recovery), and the same
 * step twice in one batch. Then the oracle sweep and the spikes. */
static void test_downsample(void)
{
    static struct orow r[12000];
    int64_t hi[NSPIKE], lo[NSPIKE];
    size_t n = ds_rows_make(r, hi, lo);
    store *st = open_or_die("ds.db", NULL);
    if (!st)
        return;
    int64_t job = new_job(st, "downsample", 0);
    vaed_err e;
    /* Bogus first versions of some rows, in both directions and several levels. */
    struct orow bogus[40];
    for (int i = 0; i < 40; i++) {
        bogus[i] = r[(size_t)(lcg() % n)];
        bogus[i].v[lcg() % STORE_M_NCOLS] = (i & 1) ? 1e6 + i : -1e6 - i;
    }
    size_t held_at = n / 3, held_n = 700;
    int rc = append_orows(st, job, r, held_at);
    rc |= append_orows(st, job, bogus, 20);
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    rc |= append_orows(st, job, r + held_at + held_n, n - held_at - held_n);
    rc |= append_orows(st, job, bogus + 20, 20);
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    rc |= append_orows(st, job, r + held_at, held_n);   /* late: before rows already there */
    /* The final versions of the bogus rows, once with the bogus value in the same
     * batch just before (the later row wins). */
    for (int i = 0; i < 40; i++) {
        store_metric m[2];
        double g[2][2];
        const struct orow *o = orow_find(r, n, bogus[i].step);
        m[0] = orow_metric(&bogus[i], g[0]);
        m[1] = orow_metric(o, g[1]);
        rc |= store_metrics_append(st, job, (i % 3 == 0) ? m : m + 1, (i % 3 == 0) ? 2 : 1, NULL);
    }
    /* A replay of identical rows over a stretch, as after a crash. */
    rc |= append_orows(st, job, r + n / 2, 900);
    CHECK(rc == 0, "appends failed");
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    ds_sweep(st, job, r, n);
    ds_spikes(st, job, hi, lo);
    /* Reopening (no migration) changes nothing; then the v2 → v3 migration test
     * checks the rebuild from raw rows gives the same answers. */
    close_ok(st);
    printf("downsample: %zu rows, oracle sweep done\n", n);
}

/* A v2 database with metric rows and no summaries: opening it migrates to v3 and
 * builds the pyramid for the rows already there; the downsample then matches the
 * oracle, and later appends keep it right. */
static void test_migration_v2_v3(void)
{
    static struct orow r[12000];
    int64_t hi[NSPIKE], lo[NSPIKE];
    size_t n = ds_rows_make(r, hi, lo);
    char p[512];
    path_of(p, sizeof p, "v2.db");
    sqlite3 *db = raw_open(p);
    int rc = sqlite3_exec(db, store_migration_sql(1), NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, store_migration_sql(2), NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA user_version = 2;"
                              "INSERT INTO jobs(id, name, spec, state, priority, queue_seq,"
                              " created_at, updated_at) VALUES (3, 'v2', '{}', 'completed', 0, 1,"
                              " 1, 1);", NULL, NULL, NULL);
    CHECK(rc == SQLITE_OK, "v2 database: %s", sqlite3_errmsg(db));
    sqlite3_stmt *ins = NULL;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO metrics(job, step, epoch, beta, loss, xent, kl, elbo,"
                           " lr, grad_norm, capacity, time, kl_groups) VALUES (3, ?1, ?2, ?3,"
                           " ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", -1, &ins, NULL);
    for (size_t i = 0; ins && i < n; i++) {
        double g[2] = {r[i].g0, 1.0};
        sqlite3_bind_int64(ins, 1, r[i].step);
        for (int k = 0; k < STORE_M_NCOLS; k++)
            sqlite3_bind_double(ins, 2 + k, r[i].v[k]);
        sqlite3_bind_blob(ins, 12, g, sizeof g, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE)
            CHECK(0, "v2 row: %s", sqlite3_errmsg(db));
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);

    store *st = open_or_die("v2.db", NULL);
    if (!st)
        return;
    db = raw_open(p);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "not upgraded: %lld",
          (long long)raw_int(db, "PRAGMA user_version"));
    int64_t l0 = raw_int(db, "SELECT count(*) FROM metrics_sum WHERE job = 3 AND lvl = 0");
    int64_t want0 = raw_int(db, "SELECT count(DISTINCT step >> 8) FROM metrics WHERE job = 3");
    CHECK(l0 == want0 && l0 > 0, "level-0 summaries after migration: %lld want %lld",
          (long long)l0, (long long)want0);
    CHECK(raw_int(db, "SELECT sum(n) FROM metrics_sum WHERE job = 3 AND lvl = 2") == (int64_t)n,
          "level-2 row count %lld want %zu",
          (long long)raw_int(db, "SELECT sum(n) FROM metrics_sum WHERE job = 3 AND lvl = 2"), n);
    sqlite3_close(db);
    ds_sweep(st, 3, r, n);
    ds_spikes(st, 3, hi, lo);
    close_ok(st);
}

/* A v3 database with a checkpoint: opening it migrates to v4, which widens the kind
 * check in place. The old row is intact, 'fork' is accepted (through the store and in
 * raw SQL), a kind outside the list is still refused by SQLite itself, the schema text
 * says what it should, and the file passes integrity_check. */
static void test_migration_v3_v4(void)
{
    char p[512];
    path_of(p, sizeof p, "v3.db");
    sqlite3 *db = raw_open(p);
    int rc = SQLITE_OK;
    for (int v = 1; v <= 3 && rc == SQLITE_OK; v++)
        rc = sqlite3_exec(db, store_migration_sql(v), NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA user_version = 3;"
                              "INSERT INTO jobs(id, name, spec, state, priority, queue_seq,"
                              " created_at, updated_at) VALUES (5, 'v3', '{}', 'paused', 0, 1,"
                              " 1, 1);"
                              "INSERT INTO checkpoints VALUES (5, 40, 1.5, 2, 'pause', 3, x'010203');",
                          NULL, NULL, NULL);
    CHECK(rc == SQLITE_OK, "v3 database: %s", sqlite3_errmsg(db));
    sqlite3_close(db);

    store *st = open_or_die("v3.db", NULL);
    if (!st)
        return;
    vaed_err e;
    unsigned char blob[5] = {9, 8, 7, 6, 5};
    store_ckpt_put put = {.job = 5, .step = 41, .epoch = 1.6, .kind = "fork",
                          .blob = blob, .size = sizeof blob, .wait = 1};
    rc = store_checkpoint_put(st, &put, &e);
    CHECK(rc == 0, "fork checkpoint after migration: %d %s", rc, e.msg);
    close_ok(st);

    db = raw_open(p);
    CHECK(raw_int(db, "PRAGMA user_version") == 4, "not at v4: %lld",
          (long long)raw_int(db, "PRAGMA user_version"));
    CHECK(raw_int(db, "SELECT count(*) FROM checkpoints WHERE job = 5 AND step = 40 AND "
                      "kind = 'pause' AND blob = x'010203'") == 1, "old checkpoint row changed");
    CHECK(raw_int(db, "SELECT count(*) FROM checkpoints WHERE job = 5 AND kind = 'fork' AND "
                      "size = 5") == 1, "fork checkpoint not stored");
    CHECK(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'checkpoints' AND "
                      "instr(sql, '''pause'',''fork''))') > 0") == 1,
          "schema text of checkpoints not widened");
    CHECK(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'datasets'") == 1,
          "datasets table missing");
    rc = sqlite3_exec(db, "INSERT INTO checkpoints VALUES (5, 50, 2, 3, 'bogus', 1, x'00')",
                      NULL, NULL, NULL);
    CHECK(rc == SQLITE_CONSTRAINT, "kind 'bogus' accepted by SQLite after migration: %d", rc);
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL);
    CHECK(s && sqlite3_step(s) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(s, 0), "ok") == 0,
          "integrity_check after v4 migration: %s",
          s ? (const char *)sqlite3_column_text(s, 0) : "?");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

static void bench_downsample(store *st, int64_t job, int64_t N)
{
    double t[21];
    store_series s;
    vaed_err e;
    int rc = 0;
    for (int i = 0; i < 21; i++) {
        double t0 = now_s();
        rc |= store_metrics_downsample(st, job, -1, -1, STORE_MCOL_ALL, 1000, &s, &e);
        t[i] = now_s() - t0;
        if (i == 0)
            CHECK(rc == 0 && s.n <= 1000 && s.total == (size_t)N, "bench downsample n %zu total %zu",
                  s.n, s.total);
        store_series_free(&s);
    }
    qsort(t, 21, sizeof t[0], cmp_double);
    double p[200];
    for (int i = 0; i < 200; i++) {
        double t0 = now_s();
        rc |= store_metrics_downsample(st, job, N - 10, -1, STORE_MCOL_ALL, 1000, &s, &e);
        p[i] = now_s() - t0;
        store_series_free(&s);
    }
    qsort(p, 200, sizeof p[0], cmp_double);
    printf("bench: downsample of %lld rows to 1000 points: median %.2f ms (max %.2f ms); "
           "since-poll of the newest 10 rows: median %.3f ms, p99 %.3f ms\n",
           (long long)N, t[10] * 1e3, t[20] * 1e3, p[100] * 1e3, p[197] * 1e3);
    CHECK(rc == 0, "bench downsample failed");
}

/* ---- checkpoints ------------------------------------------------------------------ */

struct ck {
    int64_t step;
    const char *kind;
    int keep, keep_epoch_end;
};

/* The retention rule, written naively from the brief: rotating kinds are periodic,
 * manual, pause, and epoch unless keep_epoch_end; keep the newest `keep` rotating
 * ones, every other kind, and the newest of all. present[] is by index into steps. */
static void oracle_retain(const struct ck *cks, int n, int upto, int *present)
{
    for (int i = 0; i <= upto; i++)
        present[i] = 1;
    for (int c = 0; c <= upto; c++) {
        /* Retention runs after checkpoint c, with c's settings. */
        if (cks[c].keep <= 0)
            continue;
        int64_t newest = -1;
        for (int i = 0; i <= c; i++)
            if (present[i] && cks[i].step > newest)
                newest = cks[i].step;
        for (int i = 0; i <= c; i++) {
            if (!present[i])
                continue;
            const char *k = cks[i].kind;
            int rot = !strcmp(k, "periodic") || !strcmp(k, "manual") || !strcmp(k, "pause") ||
                      (!strcmp(k, "epoch") && !cks[c].keep_epoch_end);
            if (!rot || cks[i].step == newest)
                continue;
            int newer = 0;   /* rotating, present, newer than i */
            for (int q = 0; q <= c; q++) {
                const char *kq = cks[q].kind;
                int rq = !strcmp(kq, "periodic") || !strcmp(kq, "manual") ||
                         !strcmp(kq, "pause") || (!strcmp(kq, "epoch") && !cks[c].keep_epoch_end);
                if (present[q] && rq && cks[q].step > cks[i].step)
                    newer++;
            }
            if (newer >= cks[c].keep)
                present[i] = 0;
        }
    }
    (void)n;
}

static size_t blob_size(int64_t step)
{
    return 1000 + (size_t)(step % 97) * 31;
}

static void fill_blob(unsigned char *b, int64_t step)
{
    for (size_t i = 0; i < blob_size(step); i++)
        b[i] = (unsigned char)((step * 31 + (int64_t)i * 7) & 0xff);
}

struct done_rec {
    pthread_mutex_t mu;
    int calls, rc;
    int64_t step;
};

static void on_done(void *arg, int64_t job, int64_t step, int rc, const char *msg)
{
    struct done_rec *d = arg;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->rc = rc;
    d->step = step;
    pthread_mutex_unlock(&d->mu);
}

static void test_checkpoints(void)
{
    store *st = open_or_die("ckpt.db", NULL);
    if (!st)
        return;
    vaed_err e;
    int64_t job = new_job(st, "ck", 0);
    static const struct ck cks[] = {
        {100, "periodic", 2, 1}, {150, "epoch", 2, 1},  {200, "periodic", 2, 1},
        {300, "manual", 2, 1},   {350, "epoch", 2, 1},  {400, "periodic", 2, 1},
        {450, "pause", 2, 1},    {500, "periodic", 2, 1}, {600, "final", 2, 1},
        {700, "periodic", 2, 0},
    };
    const int n = (int)(sizeof cks / sizeof cks[0]);
    unsigned char *buf = xmalloc(4096);
    struct done_rec d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    for (int c = 0; c < n; c++) {
        fill_blob(buf, cks[c].step);
        store_ckpt_put req = {.job = job, .step = cks[c].step, .epoch = cks[c].step / 100.0,
                              .kind = cks[c].kind, .blob = buf, .size = blob_size(cks[c].step),
                              .keep = cks[c].keep, .keep_epoch_end = cks[c].keep_epoch_end,
                              .wait = c % 2, .done = on_done, .done_arg = &d};
        int rc = store_checkpoint_put(st, &req, &e);
        CHECK(rc == 0, "put %lld: %s", (long long)cks[c].step, e.msg);
        memset(buf, 0, 4096);   /* the store copied it */
        if (c == 7) {
            /* Mid-way: the list matches the oracle so far. */
            store_flush(st, NULL);
            int present[16];
            oracle_retain(cks, n, c, present);
            store_ckpt *l = NULL;
            size_t ln = 0;
            store_checkpoints_list(st, job, &l, &ln, &e);
            size_t want = 0;
            for (int i = 0; i <= c; i++)
                want += (size_t)present[i];
            CHECK(ln == want, "mid-way list %zu want %zu", ln, want);
            free(l);
        }
    }
    int rc = store_flush(st, &e);
    CHECK(rc == 0, "flush: %s", e.msg);
    pthread_mutex_lock(&d.mu);
    CHECK(d.calls == n && d.rc == 0 && d.step == 700, "callbacks %d rc %d step %lld", d.calls,
          d.rc, (long long)d.step);
    pthread_mutex_unlock(&d.mu);

    int present[16];
    oracle_retain(cks, n, n - 1, present);
    store_ckpt *l = NULL;
    size_t ln = 0;
    rc = store_checkpoints_list(st, job, &l, &ln, &e);
    CHECK(rc == 0, "list: %s", e.msg);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (!present[i])
            continue;
        CHECK(k < ln && l[k].step == cks[i].step && strcmp(l[k].kind, cks[i].kind) == 0 &&
                  l[k].size == (int64_t)blob_size(cks[i].step) &&
                  l[k].epoch == cks[i].step / 100.0 && l[k].created_at > 1e9,
              "kept checkpoint %lld (%s) at list position %zu", (long long)cks[i].step,
              cks[i].kind, k);
        k++;
    }
    CHECK(k == ln, "list has %zu, oracle %zu", ln, k);
    free(l);

    /* Blobs: every kept one byte-exact, deleted ones gone, latest is the newest. */
    unsigned char *want = xmalloc(4096);
    for (int i = 0; i < n; i++) {
        void *b = NULL;
        size_t sz = 0;
        store_ckpt meta;
        rc = store_checkpoint_get(st, job, cks[i].step, &meta, &b, &sz, &e);
        if (present[i]) {
            fill_blob(want, cks[i].step);
            CHECK(rc == 0 && sz == blob_size(cks[i].step) && memcmp(b, want, sz) == 0 &&
                      meta.step == cks[i].step,
                  "blob %lld: rc %d size %zu", (long long)cks[i].step, rc, sz);
        } else {
            CHECK(rc == VAED_ENOTFOUND && b == NULL, "deleted %lld still there (rc %d)",
                  (long long)cks[i].step, rc);
        }
        free(b);
    }
    void *b = NULL;
    size_t sz = 0;
    store_ckpt meta;
    rc = store_checkpoint_get(st, job, -1, &meta, &b, &sz, &e);
    fill_blob(want, 700);
    CHECK(rc == 0 && meta.step == 700 && sz == blob_size(700) && memcmp(b, want, sz) == 0,
          "latest: rc %d step %lld", rc, (long long)meta.step);
    free(b);
    int64_t empty = new_job(st, "no ckpt", 0);
    CHECK(store_checkpoint_get(st, empty, -1, NULL, &b, &sz, &e) == VAED_ENOTFOUND,
          "latest of a job without checkpoints");
    store_ckpt_put badk = {.job = job, .step = 1, .kind = "weekly", .blob = buf, .size = 1};
    CHECK(store_checkpoint_put(st, &badk, &e) == VAED_EINVAL, "bad kind accepted");
    /* A waited-on checkpoint of an unknown job reports the failure. */
    store_ckpt_put nojob = {.job = 424242, .step = 1, .kind = "manual", .blob = buf, .size = 1,
                            .wait = 1};
    CHECK(store_checkpoint_put(st, &nojob, &e) == VAED_EDB && strstr(e.msg, "FOREIGN KEY"),
          "checkpoint of unknown job: %s", e.msg);
    free(buf);
    free(want);
    close_ok(st);
}

/* ---- durability of a checkpoint batch ---------------------------------------------- */

static void test_checkpoint_durability(void)
{
    store_opts o;
    store_opts_default(&o);
    o.flush_interval = 3600;   /* only a checkpoint or a wait commits */
    store *st = open_or_die("dur.db", &o);
    if (!st)
        return;
    char p[512];
    path_of(p, sizeof p, "dur.db");
    vaed_err e;
    int64_t job = new_job(st, "dur", 0);
    CHECK(append_range(st, job, 0, 5000, 3.0, 50, 0) == 0, "append");
    sqlite3 *raw = raw_open(p);
    /* Not yet committed: the batch waits for its deadline. */
    CHECK(raw_int(raw, "SELECT count(*) FROM metrics") == 0, "metrics committed early: %lld",
          (long long)raw_int(raw, "SELECT count(*) FROM metrics"));
    CHECK(store_write_lag_seconds(st) > 0, "lag with a queue: %g", store_write_lag_seconds(st));
    unsigned char blob[64] = {1, 2, 3};
    store_ckpt_put req = {.job = job, .step = 4999, .epoch = 1, .kind = "pause", .blob = blob,
                          .size = sizeof blob, .wait = 1};
    int rc = store_checkpoint_put(st, &req, &e);
    CHECK(rc == 0, "checkpoint: %s", e.msg);
    CHECK(raw_int(raw, "SELECT count(*) FROM metrics WHERE job = 1") == 5000 &&
              raw_int(raw, "SELECT max(step) FROM metrics") == 4999,
          "after the checkpoint an independent connection sees %lld rows",
          (long long)raw_int(raw, "SELECT count(*) FROM metrics"));
    CHECK(raw_int(raw, "SELECT count(*) FROM checkpoints WHERE step = 4999 AND size = 64") == 1,
          "checkpoint row");
    CHECK(store_write_lag_seconds(st) == 0, "lag after commit: %g", store_write_lag_seconds(st));
    /* Data enqueued and then the store closed without a flush is committed by close. */
    append_range(st, job, 5000, 6000, 3.0, 100, 0);
    close_ok(st);
    CHECK(raw_int(raw, "SELECT count(*) FROM metrics") == 6000, "close committed %lld",
          (long long)raw_int(raw, "SELECT count(*) FROM metrics"));
    sqlite3_close(raw);
}

/* ---- SQL metacharacters, epochs, schedule events ----------------------------------- */

static void test_verbatim_epochs_events(void)
{
    store *st = open_or_die("meta.db", NULL);
    if (!st)
        return;
    vaed_err e;
    const char *evil = "x'); DROP TABLE jobs;--";
    const char *spec = "{\"name\":\"x'); DROP TABLE jobs;--\",\"q\":\"\\\"\\\\ %s %n ?1 ;\"}";
    const char *reason = "bad \"quote\" 'single' ; -- DELETE FROM jobs; \xc3\xa9\xe2\x82\xac";
    store_job_new nj = {.name = evil, .spec = spec};
    int64_t id = 0;
    int rc = store_job_insert(st, &nj, &id, &e);
    CHECK(rc == 0, "insert: %s", e.msg);
    rc = store_job_set_state(st, id, "failed", reason, &e);
    store_job j;
    rc |= store_job_get(st, id, &j, &e);
    CHECK(rc == 0 && strcmp(j.name, evil) == 0 && strcmp(j.spec, spec) == 0 &&
              strcmp(j.reason, reason) == 0,
          "verbatim: name [%s] spec [%s] reason [%s]", j.name, j.spec, j.reason);
    store_job_clear(&j);
    store_job_list l;
    rc = store_jobs_list(st, 0, 0, 10, &l, &e);
    CHECK(rc == 0 && l.total == 1, "jobs table intact: total %lld", (long long)l.total);
    store_job_list_free(&l);

    /* Epochs: two splits, kl_dims round-trip. */
    double dims[5] = {0.1, 0.2, 0.0, 3.5, 1e-9};
    for (int ep = 1; ep <= 3; ep++) {
        store_epoch tr = {.epoch = ep, .split = "train", .step = ep * 600, .xent = 100.0 / ep,
                          .kl = ep, .elbo = -(100.0 / ep + ep), .active_units = ep + 1,
                          .n_dims = 5, .kl_dims = dims, .time = ep * 10.0};
        store_epoch va = tr;
        snprintf(va.split, sizeof va.split, "valid");
        va.xent += 1;
        va.n_dims = 0;
        va.kl_dims = NULL;
        rc = store_epoch_put(st, id, &tr, &e) | store_epoch_put(st, id, &va, &e);
        CHECK(rc == 0, "epoch put: %s", e.msg);
    }
    store_flush(st, NULL);
    store_epoch *eps = NULL;
    size_t ne = 0;
    rc = store_epochs_list(st, id, &eps, &ne, &e);
    CHECK(rc == 0 && ne == 6, "epochs: %zu", ne);
    for (size_t i = 0; rc == 0 && i < ne; i++) {
        int ep = (int)i / 2 + 1, valid = (int)i % 2;
        CHECK(eps[i].epoch == ep && strcmp(eps[i].split, valid ? "valid" : "train") == 0 &&
                  eps[i].step == ep * 600 && eps[i].xent == 100.0 / ep + valid &&
                  eps[i].active_units == ep + 1 && eps[i].n_dims == (valid ? 0 : 5) &&
                  (valid || memcmp(eps[i].kl_dims, dims, sizeof dims) == 0),
              "epoch row %zu: %lld %s", i, (long long)eps[i].epoch, eps[i].split);
    }
    store_epochs_free(eps, ne);

    /* Schedule events: supersede rule checked against a naive oracle. */
    static const struct { int64_t step; const char *src; } evs[] = {
        {0, "submit"}, {500, "override"}, {500, "override"}, {800, "override"}, {300, "override"},
    };
    const int nev = (int)(sizeof evs / sizeof evs[0]);
    for (int i = 0; i < nev; i++) {
        char sched[128];
        snprintf(sched, sizeof sched, "{\"kind\":\"linear\",\"to\":%d,\"note\":\"%s\"}", i,
                 i == 2 ? "it's; --" : "");
        int64_t seq = -1;
        rc = store_event_add(st, id, 1000.0 + i, evs[i].step, sched, evs[i].src, i % 2, &seq, &e);
        CHECK(rc == 0 && (i % 2 == 0 || seq == i + 1), "event %d: rc %d seq %lld %s", i, rc,
              (long long)seq, e.msg);
    }
    CHECK(store_event_add(st, id, 0, 1, "{}", "client", 0, NULL, &e) == VAED_EINVAL, "source");
    CHECK(store_event_add(st, id, 0, 1, "{bad", "override", 0, NULL, &e) == VAED_EINVAL, "json");
    store_flush(st, NULL);
    store_event *ev = NULL;
    size_t nv = 0;
    rc = store_events_list(st, id, &ev, &nv, &e);
    CHECK(rc == 0 && (int)nv == nev, "events: %zu", nv);
    for (int i = 0; rc == 0 && i < nev && i < (int)nv; i++) {
        int sup = 0;   /* a later event effective at or before this one's step */
        for (int q = i + 1; q < nev; q++)
            sup |= evs[q].step <= evs[i].step;
        json_t *js = json_loads(ev[i].schedule, 0, NULL);
        CHECK(ev[i].seq == i + 1 && ev[i].effective_step == evs[i].step &&
                  ev[i].requested_at == 1000.0 + i && strcmp(ev[i].source, evs[i].src) == 0 &&
                  ev[i].superseded == sup && js &&
                  json_integer_value(json_object_get(js, "to")) == i,
              "event %d: seq %lld step %lld superseded %d want %d", i, (long long)ev[i].seq,
              (long long)ev[i].effective_step, ev[i].superseded, sup);
        json_decref(js);
    }
    store_events_free(ev, nv);
    close_ok(st);
}

/* ---- concurrency ------------------------------------------------------------------ */

struct reader_arg {
    store *st;
    int64_t job;
    volatile int *stop_flag;   /* read under the mutex below */
    pthread_mutex_t *mu;
    long reads, errors, regressions;
};

static int stopped(struct reader_arg *a)
{
    pthread_mutex_lock(a->mu);
    int s = *a->stop_flag;
    pthread_mutex_unlock(a->mu);
    return s;
}

static void *reader_main(void *p)
{
    struct reader_arg *a = p;
    size_t last_n = 0;
    vaed_err e;
    while (!stopped(a)) {
        store_series s;
        int rc = store_metrics_range(a->st, a->job, -1, -1, STORE_MCOL(STORE_M_LOSS), 0, &s, &e);
        if (rc) {
            a->errors++;
            fprintf(stderr, "reader: %s\n", e.msg);
            continue;
        }
        /* Commits are prefixes of the enqueue order: rows 0..n-1, never fewer. */
        if (s.n < last_n || (s.n && s.step[s.n - 1] != (int64_t)s.n - 1))
            a->regressions++;
        for (size_t i = 0; i < s.n; i++)
            if (s.col[STORE_M_LOSS][i] != mval(s.step[i], STORE_M_LOSS, 5.0))
                a->regressions++;
        last_n = s.n;
        store_series_free(&s);
        store_job j;
        if (store_job_get(a->st, a->job, &j, &e) == 0)
            store_job_clear(&j);
        else
            a->errors++;
        store_ckpt *l = NULL;
        size_t n = 0;
        if (store_checkpoints_list(a->st, a->job, &l, &n, &e) != 0)
            a->errors++;
        free(l);
        store_job_list jl;
        if (store_jobs_list(a->st, 0, 0, 5, &jl, &e) != 0)
            a->errors++;
        store_job_list_free(&jl);
        a->reads++;
    }
    return NULL;
}

static void test_concurrent(void)
{
    store_opts o;
    store_opts_default(&o);
    o.flush_interval = 0.02;
    o.read_conns = 2;            /* fewer than readers: exercises waiting for the pool */
    o.fsync_checkpoints = 0;
    store *st = open_or_die("conc.db", &o);
    if (!st)
        return;
    int64_t job = new_job(st, "conc", 0);
    enum { NR = 4 };
    pthread_t th[NR];
    struct reader_arg ra[NR];
    volatile int stop_flag = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    for (int i = 0; i < NR; i++) {
        ra[i] = (struct reader_arg){.st = st, .job = job, .stop_flag = &stop_flag, .mu = &mu};
        pthread_create(&th[i], NULL, reader_main, &ra[i]);
    }
    unsigned char blob[2048];
    memset(blob, 0xab, sizeof blob);
    vaed_err e;
    int werr = 0;
    for (int64_t s = 0; s < 30000; s += 100) {
        werr |= append_range(st, job, s, s + 100, 5.0, 100, 0);
        if (s % 3000 == 0) {
            store_ckpt_put req = {.job = job, .step = s + 99, .kind = "periodic", .blob = blob,
                                  .size = sizeof blob, .keep = 3};
            werr |= store_checkpoint_put(st, &req, &e);
            werr |= store_job_set_progress(st, job, s + 99, 0, 0, &e);
        }
        if (s % 1000 == 0)
            usleep(1000);
    }
    werr |= store_flush(st, &e);
    usleep(50000);
    pthread_mutex_lock(&mu);
    stop_flag = 1;
    pthread_mutex_unlock(&mu);
    long reads = 0;
    for (int i = 0; i < NR; i++) {
        pthread_join(th[i], NULL);
        CHECK(ra[i].errors == 0 && ra[i].regressions == 0, "reader %d: %ld errors %ld bad",
              i, ra[i].errors, ra[i].regressions);
        reads += ra[i].reads;
    }
    CHECK(werr == 0, "writes failed: %s", e.msg);
    CHECK(reads > NR, "readers made %ld reads", reads);
    store_ckpt *l = NULL;
    size_t n = 0;
    store_checkpoints_list(st, job, &l, &n, &e);
    CHECK(n == 3, "retention under load kept %zu", n);
    free(l);
    printf("concurrent: %ld reads beside the writer\n", reads);
    close_ok(st);
}

/* ---- a full disk, and back ------------------------------------------------------- */

static void test_disk_full(void)
{
    store_opts o;
    store_opts_default(&o);
    o.flush_interval = 0.05;
    o.fsync_checkpoints = 0;
    store *st = open_or_die("full.db", &o);
    if (!st)
        return;
    vaed_err e;
    int64_t job = new_job(st, "full", 0);
    append_range(st, job, 0, 100, 0.0, 100, 0);
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    /* Cap the file at about its current size: the next large batch cannot fit. */
    char p[512];
    path_of(p, sizeof p, "full.db");
    sqlite3 *raw = raw_open(p);
    int64_t pages = raw_int(raw, "PRAGMA page_count"), psz = raw_int(raw, "PRAGMA page_size");
    store_set_max_db_bytes(st, (pages + 2) * psz);
    append_range(st, job, 100, 20100, 0.0, 100, 3);
    int rc = store_flush(st, &e);
    store_stats ss;
    store_get_stats(st, &ss);
    CHECK(rc == VAED_EDB && ss.failing && ss.write_errors > 0 && strstr(ss.last_error, "full"),
          "full disk: rc %d failing %d last_error %s", rc, ss.failing, ss.last_error);
    CHECK(ss.pending_ops >= 200, "queued data kept: %zu ops", ss.pending_ops);
    /* A synchronous write fails fast rather than hanging. */
    double t0 = now_s();
    rc = store_job_set_progress(st, job, 1, 1, 1, &e);
    CHECK(rc == VAED_EDB && now_s() - t0 < 10, "sync write while full: rc %d", rc);
    CHECK(raw_int(raw, "SELECT count(*) FROM metrics") == 100, "partial batch committed");
    /* Rows enqueued while failing are applied after the kept ones: these replace. */
    append_range(st, job, 20000, 20010, 4.0, 10, 0);
    /* Space again: the kept rows land, all of them, in order. */
    store_set_max_db_bytes(st, 0);
    rc = store_flush(st, &e);
    store_get_stats(st, &ss);
    CHECK(rc == 0 && !ss.failing && ss.pending_ops == 0, "after space: rc %d %s", rc, e.msg);
    store_series s;
    rc = store_metrics_range(st, job, -1, 19999, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && check_series(&s, 0, 20000, 0.0, STORE_MCOL_ALL) == 0, "rows after recovery %zu",
          s.n);
    store_series_free(&s);
    rc = store_metrics_range(st, job, 19999, 20009, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && check_series(&s, 20000, 20010, 4.0, STORE_MCOL_ALL) == 0,
          "newer rows lost to retried ones (%zu)", s.n);
    store_series_free(&s);
    rc = store_metrics_range(st, job, 20009, -1, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && check_series(&s, 20010, 20100, 0.0, STORE_MCOL_ALL) == 0, "tail %zu", s.n);
    store_series_free(&s);
    sqlite3_close(raw);
    close_ok(st);

    /* Closing while the disk stays full gives up after a few tries and says so. */
    st = open_or_die("lost.db", &o);
    if (!st)
        return;
    job = new_job(st, "lost", 0);
    store_set_max_db_bytes(st, 4096);
    append_range(st, job, 0, 5000, 0.0, 100, 0);
    rc = store_close(st, &e);
    CHECK(rc == VAED_EDB && strstr(e.msg, "50 operations not written"),
          "close with a full disk: rc %d %s", rc, e.msg);

    /* The queue cap: enqueue refuses instead of growing without bound. */
    o.flush_interval = 3600;
    o.max_pending_bytes = 64 * 1024;
    st = open_or_die("cap.db", &o);
    if (!st)
        return;
    job = new_job(st, "cap", 0);
    int64_t s0 = 0;
    rc = 0;
    while (rc == 0 && s0 < 100000) {
        rc = append_range(st, job, s0, s0 + 10, 0.0, 10, 0);
        s0 += 10;
    }
    CHECK(rc == VAED_ETOOBIG && s0 < 100000, "cap: rc %d after %lld rows", rc, (long long)s0);
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    CHECK(append_range(st, job, s0, s0 + 10, 0.0, 10, 0) == 0, "append after draining");
    close_ok(st);
}

/* ---- kill -9 mid-stream ------------------------------------------------------------ */

static void child_writer(const char *p, int fd)
{
    store_opts o;
    store_opts_default(&o);
    o.flush_interval = 0.05;
    store *st = NULL;
    if (store_open(&st, p, &o, NULL) != 0)
        _exit(2);
    store_job_new nj = {.name = "victim", .spec = "{}"};
    int64_t job = 0;
    if (store_job_insert(st, &nj, &job, NULL) != 0)
        _exit(3);
    unsigned char blob[4096];
    for (int64_t s = 0; s < 50000000; s += 50) {
        /* Paced so that several 50 ms flushes happen between checkpoints: the kill
         * then lands with committed rows past the last checkpoint and more queued. */
        if (append_range(st, job, s, s + 50, 9.0, 50, 2) != 0)
            usleep(1000);
        usleep(1000);
        if ((s + 50) % 5000 == 0) {
            memset(blob, (int)(s & 0xff), sizeof blob);
            store_ckpt_put req = {.job = job, .step = s + 49, .kind = "periodic", .blob = blob,
                                  .size = sizeof blob, .keep = 2, .wait = 1};
            if (store_checkpoint_put(st, &req, NULL) == 0) {
                int64_t step = s + 49;
                if (write(fd, &step, sizeof step) != (ssize_t)sizeof step)
                    _exit(4);
            }
        }
    }
    _exit(0);
}

static void test_kill9(void)
{
    char p[512];
    path_of(p, sizeof p, "kill.db");
    int fds[2];
    if (pipe(fds) != 0) {
        CHECK(0, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_writer(p, fds[1]);
    }
    close(fds[1]);
    int64_t last = -1, step;
    int got = 0;
    while (got < 3 && read(fds[0], &step, sizeof step) == (ssize_t)sizeof step) {
        last = step;
        got++;
    }
    usleep(80000);  /* past a few more flush intervals: mid-way through later batches */
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(fds[0]);
    CHECK(got == 3 && WIFSIGNALED(status), "child: %d checkpoints, status %d", got, status);

    sqlite3 *raw = raw_open(p);
    char ok[64];
    raw_text(raw, "PRAGMA integrity_check", ok, sizeof ok);
    CHECK(strcmp(ok, "ok") == 0, "integrity after kill -9: %s", ok);
    sqlite3_close(raw);
    store *st = open_or_die("kill.db", NULL);
    if (!st)
        return;
    store_ckpt meta;
    void *b = NULL;
    size_t sz;
    vaed_err e;
    int rc = store_checkpoint_get(st, 1, -1, &meta, &b, &sz, &e);
    free(b);
    CHECK(rc == 0 && meta.step >= last, "latest checkpoint %lld, last reported %lld",
          (long long)meta.step, (long long)last);
    store_series s;
    rc = store_metrics_range(st, 1, -1, -1, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && (int64_t)s.n >= meta.step + 1, "rows %zu, checkpoint at %lld", s.n,
          (long long)meta.step);
    /* Every row up to the checkpoint, and whatever came after, is whole and right. */
    int64_t n_ok = s.n > 0 ? s.step[s.n - 1] + 1 : 0;
    CHECK(rc == 0 && check_series(&s, 0, n_ok, 9.0, STORE_MCOL_ALL) == 0,
          "rows after kill -9 (%zu)", s.n);
    printf("kill -9: checkpoint at step %lld, %zu rows survived\n", (long long)meta.step, s.n);
    store_series_free(&s);
    close_ok(st);
}

/* ---- integrity of every file --------------------------------------------------- */

static void test_integrity_all(void)
{
    static const char *const files[] = {"a.db", "v1.db", "jobs.db", "metrics.db", "ckpt.db",
                                        "dur.db", "meta.db", "conc.db", "full.db", "cap.db",
                                        "kill.db", "lost.db", "ds.db", "v2.db"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[512], ok[64];
        path_of(p, sizeof p, files[i]);
        sqlite3 *raw = raw_open(p);
        raw_text(raw, "PRAGMA integrity_check", ok, sizeof ok);
        CHECK(strcmp(ok, "ok") == 0, "%s: integrity_check %s", files[i], ok);
        CHECK(raw_int(raw, "SELECT count(*) FROM pragma_foreign_key_check") == 0,
              "%s: foreign key violations", files[i]);
        sqlite3_close(raw);
    }
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/vaed-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    /* The forking test runs first, while this process has no threads. */
    test_kill9();
    test_open_and_version();
    test_migration_from_v1();
    test_newer_refused();
    test_jobs();
    test_metrics();
    test_downsample();
    test_migration_v2_v3();
    test_migration_v3_v4();
    test_checkpoints();
    test_checkpoint_durability();
    test_verbatim_epochs_events();
    test_concurrent();
    test_disk_full();
    test_integrity_all();
    if (getenv("VAED_STORE_BENCH"))
        bench_million();
    int rc = t_done("test_store");
    if (rc == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    } else {
        fprintf(stderr, "files kept in %s\n", dir);
    }
    return rc;
}
