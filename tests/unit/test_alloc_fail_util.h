/* test_alloc_fail_util.h — what the allocation-failure programs share (test_alloc_fail.c:
 * the store's paths; test_alloc_fail_jobs.c: a job's paths): the fault injector, the
 * fixtures and the helpers. Each program uses a part of them, hence the pragmas. It
 * defines the __wrap_ allocators, so exactly one file of a program includes it.
 *
 * For N = 1, 2, 3, ... the Nth allocation made while the operation runs fails, once;
 * the loop ends at the first N the operation never reaches. For every N: no crash,
 * the call returns 0 or an error code with a message (VAED_ENOMEM or VAED_EDB; a job
 * that cannot start fails with its reason), the database passes PRAGMA
 * integrity_check, and the operation succeeds when retried without faults. Leaks are
 * LeakSanitizer's job: the test must run clean under SANITIZER=address, and there it
 * also checks for leaks after each operation's loop, so a leak names its operation.
 *
 * How allocations fail. These programs alone are linked with
 * -Wl,--wrap=malloc,calloc,realloc,strdup (see the Makefile): every call to them from
 * vaed's objects reaches the __wrap_ functions below, which count and fail the Nth;
 * __real_malloc is the C library's (or ASan's interceptor). jansson allocates through
 * json_set_alloc_funcs and SQLite through SQLITE_CONFIG_MALLOC, both counted into the
 * same counter. The xmalloc family is wrapped too, but only to mark its allocations
 * exempt: by the allocation policy (err.h) a small fixed-size allocation aborts on
 * failure, so failing one would test the policy, not the error paths. The counter is
 * shared by every thread (the store's writer, the job workers): a failure lands in
 * whichever thread makes the Nth allocation, as it would in the daemon. */
#ifndef VAED_TESTS_TEST_ALLOC_FAIL_UTIL_H
#define VAED_TESTS_TEST_ALLOC_FAIL_UTIL_H

#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#include <dirent.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/jobs.h"
#include "daemon/log.h"
#include "store/store.h"
#include "tests/unit/t.h"
#include "vae/spec.h"
#include "vae/train.h"

/* ---- the fault injector ------------------------------------------------------------ */

static atomic_long fi_at;       /* fail the allocation with this number; 0 = off */
static atomic_long fi_count;    /* counted allocations since fi_arm */
static atomic_long fi_sq_count; /* SQLite's allocations since fi_arm, counted or not */
static long fi_sq_stride = 1;   /* count one SQLite allocation in this many (AF_SQLITE_STRIDE) */
static atomic_long fi_hits;     /* failures injected since fi_arm (0 or 1) */
static _Thread_local int fi_exempt; /* > 0: this thread's allocations are not counted */

static int fi_fail(void)
{
    if (fi_exempt || atomic_load(&fi_at) == 0)
        return 0;
    long n = atomic_fetch_add(&fi_count, 1) + 1;
    if (n != atomic_load(&fi_at))
        return 0;
    atomic_fetch_add(&fi_hits, 1);
    return 1;
}

/* SQLite's own allocations: one in fi_sq_stride is a candidate (counted as above), the
 * others always succeed. Thousands of them happen inside one SQLite call (parsing the
 * schema, say), and every one that fails makes that call return SQLITE_NOMEM to the
 * same call of ours; a stride keeps every one of ours and jansson's, samples SQLite's
 * (which SQLite's own test suite fails one by one) evenly, and makes the loops several
 * times shorter. The stride is printed with the tallies. */
static int fi_fail_sqlite(void)
{
    if (fi_exempt || atomic_load(&fi_at) == 0)
        return 0;
    if ((atomic_fetch_add(&fi_sq_count, 1)) % fi_sq_stride != 0)
        return 0;
    return fi_fail();
}

static void fi_arm(long n)
{
    atomic_store(&fi_count, 0);
    atomic_store(&fi_sq_count, 0);
    atomic_store(&fi_hits, 0);
    atomic_store(&fi_at, n);
}

/* Stop failing; returns 1 if a failure was injected since fi_arm. */
static int fi_disarm(void)
{
    atomic_store(&fi_at, 0);
    return atomic_load(&fi_hits) > 0;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__real_xmalloc(size_t n);
void *__real_xcalloc(size_t n, size_t size);
char *__real_xstrdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void *__wrap_xmalloc(size_t n);
void *__wrap_xcalloc(size_t n, size_t size);
char *__wrap_xstrdup(const char *s);

void *__wrap_malloc(size_t n) { return fi_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return fi_fail() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return fi_fail() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fi_fail() ? NULL : __real_strdup(s); }

void *__wrap_xmalloc(size_t n)
{
    fi_exempt++;
    void *p = __real_xmalloc(n);
    fi_exempt--;
    return p;
}

void *__wrap_xcalloc(size_t n, size_t size)
{
    fi_exempt++;
    void *p = __real_xcalloc(n, size);
    fi_exempt--;
    return p;
}

char *__wrap_xstrdup(const char *s)
{
    fi_exempt++;
    char *p = __real_xstrdup(s);
    fi_exempt--;
    return p;
}

static void *json_alloc(size_t n) { return fi_fail() ? NULL : __real_malloc(n); }

static sqlite3_mem_methods sq_default;
static void *sq_malloc(int n) { return fi_fail_sqlite() ? NULL : sq_default.xMalloc(n); }
static void *sq_realloc(void *p, int n) { return fi_fail_sqlite() ? NULL : sq_default.xRealloc(p, n); }

/* Route jansson's and SQLite's allocations through the counter. Must run before either
 * library allocates anything. */
static int fi_install(void)
{
    const char *st = getenv("AF_SQLITE_STRIDE");
    fi_sq_stride = st && atol(st) > 0 ? atol(st) : 1;
    json_set_alloc_funcs(json_alloc, free);
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sq_default) != SQLITE_OK)
        return -1;
    sqlite3_mem_methods m = sq_default;
    m.xMalloc = sq_malloc;
    m.xRealloc = sq_realloc;
    return sqlite3_config(SQLITE_CONFIG_MALLOC, &m) == SQLITE_OK ? 0 : -1;
}

/* LeakSanitizer, when linked in (SANITIZER=address): a leak check that reports and
 * goes on. Weak, so the plain build links without it. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static void leak_check(const char *what)
{
    if (__lsan_do_recoverable_leak_check)
        CHECK(__lsan_do_recoverable_leak_check() == 0, "%s: LeakSanitizer found leaks (above)",
              what);
}

/* ---- helpers --------------------------------------------------------------------------- */

/* To replay a failure: AF_ONLY=<test> (migration, trainer, checkpoint, submit, worker)
 * runs that one, AF_FROM=N starts its loop at allocation N. */
static long first_n(void)
{
    const char *v = getenv("AF_FROM");
    return v && atol(v) > 0 ? atol(v) : 1;
}

static int want(const char *name)
{
    const char *v = getenv("AF_ONLY");
    return !v || !*v || strcmp(v, name) == 0;
}

#define MAX_N 200000L           /* a loop past this many allocations is a runaway */

static char dir[256];

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static void remove_db(const char *name)
{
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s%s", dir, name, sfx[i]);
        unlink(p);
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static sqlite3 *raw_open(const char *name)
{
    char p[512];
    path_of(p, sizeof p, name);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", p, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of the first row of sql, or -1. */
static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* PRAGMA integrity_check of the database file name says "ok" (one check). */
static void integrity_ok(const char *name, const char *what, long n)
{
    sqlite3 *db = raw_open(name);
    char res[256] = "cannot open";
    sqlite3_stmt *s = NULL;
    if (db && sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        snprintf(res, sizeof res, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    CHECK(strcmp(res, "ok") == 0, "%s, allocation %ld failed: integrity_check says %s", what, n,
          res);
}

/* An error return must be one of `allowed` (a 0-terminated list) and carry a message. */
static int code_ok(int rc, const int *allowed)
{
    for (; *allowed; allowed++)
        if (rc == *allowed)
            return 1;
    return 0;
}

static const int mem_or_db[] = {VAED_ENOMEM, VAED_EDB, 0};
static const int mem_only[] = {VAED_ENOMEM, 0};

/* What one operation's loop saw. */
typedef struct tally {
    long n;                     /* allocations the operation makes (the final N - 1) */
    long failed, survived;      /* N that returned an error / succeeded anyway */
} tally;

static void tally_print(const char *what, const tally *t)
{
    printf("%-34s %5ld allocations: %5ld returned an error, %5ld succeeded despite the "
           "failure (SQLite's: 1 in %ld)\n",
           what, t->n, t->failed, t->survived, fi_sq_stride);
}

/* ---- the job spec and its data ----------------------------------------------------------- */

#define ROWS 24
#define COLS 6
#define BATCH 8
#define STEPS_PER_EPOCH (ROWS / BATCH)

/* A CSV file of ROWS rows in [0, 1] (data for a bernoulli likelihood). */
static int write_csv(void)
{
    char p[512];
    path_of(p, sizeof p, "d.csv");
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++)
            fprintf(f, "%.3f%c", (double)((r * 7 + c * 3) % 11) / 10.0, c + 1 < COLS ? ',' : '\n');
    return fclose(f);
}

/* The job spec (new reference); epochs of STEPS_PER_EPOCH steps; no periodic
 * checkpoints. */
static json_t *spec_json(const char *name, int epochs)
{
    char p[512];
    path_of(p, sizeof p, "d.csv");
    json_error_t je;
    json_t *j = json_pack_ex(
        &je, 0,
        "{s:s, s:{s:s, s:s}, s:{s:[i], s:i, s:[i]}, s:{s:i, s:i, s:i, s:i},"
        " s:{s:i, s:f, s:b}}",
        "name", name, "dataset", "path", p, "format", "csv", "model", "encoder", 8, "latent", 2,
        "decoder", 8, "train", "epochs", epochs, "batch_size", BATCH, "seed", 3, "threads", 1,
        "checkpoint", "every_steps", 0, "every_seconds", 0.0, "at_epoch_end", 1);
    if (!j)
        fprintf(stderr, "spec_json: %s\n", je.text);
    return j;
}

static int spec_parse(vae_spec *s, const char *name, int epochs)
{
    json_t *j = spec_json(name, epochs);
    vaed_err e;
    int rc = j ? vae_spec_parse(s, j, &e) : VAED_ENOMEM;
    if (rc)
        fprintf(stderr, "spec: %s\n", e.msg);
    json_decref(j);
    return rc;
}

static store_opts quick_opts(void)
{
    store_opts o;
    store_opts_default(&o);
    o.fsync_checkpoints = 0;
    o.flush_interval = 0.05;
    return o;
}

/* ---- schema migration --------------------------------------------------------------------- */

/* A database at schema version v (0: no file) with one finished job, 300 metric rows
 * and a checkpoint, so each migration step has rows to carry. */
static int build_old(const char *name, int v)
{
    remove_db(name);
    if (v == 0)
        return 0;
    sqlite3 *db = raw_open(name);
    if (!db)
        return -1;
    int rc = SQLITE_OK;
    for (int k = 1; k <= v && rc == SQLITE_OK; k++)
        rc = sqlite3_exec(db, store_migration_sql(k), NULL, NULL, NULL);
    char sql[256];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db,
                          "BEGIN;"
                          "INSERT INTO jobs(id, name, spec, state, priority, queue_seq,"
                          " created_at, updated_at) VALUES (7, 'old', '{}', 'completed', 0, 1,"
                          " 1, 1);"
                          "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s"
                          " WHERE i < 299)"
                          " INSERT INTO metrics(job, step, epoch, beta, loss, xent, kl, elbo,"
                          " lr, grad_norm, capacity, time) SELECT 7, i, i / 100.0, 0.5, i % 7,"
                          " i % 5, i % 3, -(i % 7), 0.001, 1, 0, 1 FROM s;"
                          "INSERT INTO checkpoints(job, step, epoch, created_at, kind, size,"
                          " blob) VALUES (7, 299, 3, 1, 'final', 3, x'010203');"
                          "COMMIT;",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "building a v%d database: %s\n", v, sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* After a migration that succeeded, or its retry: the current version, and the old
 * rows intact. */
static void migrated_ok(const char *name, int v0, const char *what, long n)
{
    sqlite3 *db = raw_open(name);
    if (!db) {
        CHECK(0, "%s: cannot open", what);
        return;
    }
    int64_t uv = raw_int(db, "PRAGMA user_version");
    CHECK(uv == STORE_SCHEMA_VERSION, "%s, allocation %ld failed: user_version %lld", what, n,
          (long long)uv);
    if (v0 > 0) {
        int64_t rows = raw_int(db, "SELECT count(*) FROM metrics WHERE job = 7");
        int64_t ck = raw_int(db, "SELECT count(*) FROM checkpoints WHERE job = 7 AND "
                                 "blob = x'010203'");
        CHECK(rows == 300 && ck == 1, "%s, allocation %ld failed: %lld metric rows (want 300), "
              "%lld checkpoints (want 1)", what, n, (long long)rows, (long long)ck);
    }
    sqlite3_close(db);
}

/* Copy file from to file to (no fsync: a scratch copy). */
static int copy_file(const char *from, const char *to)
{
    char a[512], b[512], buf[65536];
    path_of(a, sizeof a, from);
    path_of(b, sizeof b, to);
    FILE *in = fopen(a, "rb"), *out = in ? fopen(b, "wb") : NULL;
    int rc = in && out ? 0 : -1;
    size_t k;
    while (rc == 0 && (k = fread(buf, 1, sizeof buf, in)) > 0)
        rc = fwrite(buf, 1, k, out) == k ? 0 : -1;
    if (in)
        fclose(in);
    if (out && fclose(out))
        rc = -1;
    return rc;
}


/* ---- job start: the engine -------------------------------------------------------------- */


/* ---- the job manager ------------------------------------------------------------------- */

static int finished_state(const char *s)
{
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

/* Wait (not counted) until job id is finished in the store, at most secs. OUT: state
 * and reason ("" when none). Returns 1 when finished. */
static int wait_finished(store *st, int64_t id, double secs, char *state, size_t sn,
                         char *reason, size_t rn)
{
    fi_exempt++;
    int done = 0;
    for (int i = 0; i < (int)(secs * 500) && !done; i++) {
        store_job j;
        if (store_job_get(st, id, &j, NULL) == 0) {
            snprintf(state, sn, "%s", j.state);
            snprintf(reason, rn, "%s", j.reason ? j.reason : "");
            done = finished_state(j.state);
            store_job_clear(&j);
        }
        if (!done)
            sleep_ms(2);
    }
    fi_exempt--;
    return done;
}

/* The job's stored metrics are steps 0..steps-1, each once. */
static void metrics_complete(const char *db_name, int64_t id, int64_t steps, const char *what,
                             long n)
{
    sqlite3 *db = raw_open(db_name);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM metrics WHERE job = %lld", (long long)id);
    int64_t cnt = raw_int(db, sql);
    snprintf(sql, sizeof sql, "SELECT coalesce(min(step), -1) FROM metrics WHERE job = %lld",
             (long long)id);
    int64_t lo = raw_int(db, sql);
    snprintf(sql, sizeof sql, "SELECT coalesce(max(step), -1) FROM metrics WHERE job = %lld",
             (long long)id);
    int64_t hi = raw_int(db, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM checkpoints WHERE job = %lld AND "
             "kind = 'final' AND step = %lld", (long long)id, (long long)steps);
    int64_t fin = raw_int(db, sql);
    sqlite3_close(db);
    CHECK(cnt == steps && lo == 0 && hi == steps - 1 && fin == 1,
          "%s, allocation %ld failed: job %lld completed with %lld metric rows (steps %lld..%lld, "
          "want 0..%lld) and %lld final checkpoints", what, n, (long long)id, (long long)cnt,
          (long long)lo, (long long)hi, (long long)steps - 1, (long long)fin);
}

/* Jobs in the store that are not finished: after a submission that failed, nothing
 * must be left that a later start would run behind the client's back. */
static int64_t unfinished_jobs(const char *db_name)
{
    sqlite3 *db = raw_open(db_name);
    int64_t n = raw_int(db, "SELECT count(*) FROM jobs WHERE state NOT IN "
                            "('completed', 'failed', 'cancelled')");
    sqlite3_close(db);
    return n;
}

static jobs_config manager_config(void)
{
    jobs_config c;
    jobs_config_default(&c);
    c.workers = 1;
    c.threads = 1;
    c.data_dir = dir;
    c.wait_s = 10;
    return c;
}

#define EPOCHS 1


/* Queue a job straight in the store (as a daemon that stopped would leave it). */
static int64_t queue_job(store *st, const char *spec_text, const char *sched_text)
{
    store_job_new nj = {.name = "worker", .spec = spec_text};
    int64_t id = 0;
    vaed_err e;
    if (store_job_insert(st, &nj, &id, &e) ||
        store_event_add(st, id, 0, 0, sched_text, "submit", 1, NULL, &e)) {
        fprintf(stderr, "queue_job: %s\n", e.msg);
        return 0;
    }
    return id;
}


/* ---- checkpoint save ----------------------------------------------------------------------- */

#define KEEP 2

/* What every test_alloc_fail program does first: its scratch directory and fixtures. 0, or the
 * exit status to stop with. */
static int test_alloc_fail_begin(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (fi_install()) {
        fprintf(stderr, "cannot install the allocators\n");
        return 1;
    }
    /* Thousands of databases are opened, committed and closed: on a disk their syncs
     * take minutes, so a memory file system is preferred when there is one (this
     * test is about error paths, not about durability). */
    const char *tmp = getenv("TMPDIR");
    if (access("/dev/shm", W_OK) == 0)
        tmp = "/dev/shm";
    snprintf(dir, sizeof dir, "%s/vaed-allocfail-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir) || write_csv()) {
        perror(dir);
        return 1;
    }
    /* A job's life logs a few lines; thousands of them would drown the failures. */
    log_set_level(getenv("AF_LOG") ? LOG_DEBUG : LOG_ERROR + 1);
    vae_blas_init();

    return 0;
}

/* ... and last: the closing line "name: N passed, N failed", the scratch cleaned up. */
static int test_alloc_fail_end(const char *name)
{
    char p[512];
    path_of(p, sizeof p, "d.csv");
    unlink(p);
    rmdir(dir);
    return t_done(name);
}

#endif
