/* test_alloc_fail.c — allocation-failure injection over the paths that must never
 * corrupt state (jansson's test_chaos, STYLE.md): job submission, job start (the
 * engine building a trainer, and a worker picking a job up), checkpoint save, and
 * schema migration of a fresh and of every older database.
 *
 * For N = 1, 2, 3, ... the Nth allocation made while the operation runs fails, once;
 * the loop ends at the first N the operation never reaches. For every N: no crash,
 * the call returns 0 or an error code with a message (VAED_ENOMEM or VAED_EDB; a job
 * that cannot start fails with its reason), the database passes PRAGMA
 * integrity_check, and the operation succeeds when retried without faults. Leaks are
 * LeakSanitizer's job: the test must run clean under SANITIZER=address, and there it
 * also checks for leaks after each operation's loop, so a leak names its operation.
 *
 * How allocations fail. This binary alone is linked with
 * -Wl,--wrap=malloc,calloc,realloc,strdup (see the Makefile): every call to them from
 * vaed's objects reaches the __wrap_ functions below, which count and fail the Nth;
 * __real_malloc is the C library's (or ASan's interceptor). jansson allocates through
 * json_set_alloc_funcs and SQLite through SQLITE_CONFIG_MALLOC, both counted into the
 * same counter. The xmalloc family is wrapped too, but only to mark its allocations
 * exempt: by the allocation policy (err.h) a small fixed-size allocation aborts on
 * failure, so failing one would test the policy, not the error paths. The counter is
 * shared by every thread (the store's writer, the job workers): a failure lands in
 * whichever thread makes the Nth allocation, as it would in the daemon. */
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

static void fi_arm(long n)
{
    atomic_store(&fi_count, 0);
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
static void *sq_malloc(int n) { return fi_fail() ? NULL : sq_default.xMalloc(n); }
static void *sq_realloc(void *p, int n) { return fi_fail() ? NULL : sq_default.xRealloc(p, n); }

/* Route jansson's and SQLite's allocations through the counter. Must run before either
 * library allocates anything. */
static int fi_install(void)
{
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
           "failure\n",
           what, t->n, t->failed, t->survived);
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

static void test_migration(int v0)
{
    char what[64], p[512];
    if (v0 == 0)
        snprintf(what, sizeof what, "store_open, fresh database");
    else
        snprintf(what, sizeof what, "store_open, migrating v%d to v%d", v0, STORE_SCHEMA_VERSION);
    path_of(p, sizeof p, "mig.db");
    store_opts o = quick_opts();
    tally t = {0};
    if (build_old("old.db", v0)) {
        CHECK(0, "%s: cannot build the old database", what);
        return;
    }
    for (long n = first_n();; n++) {
        remove_db("mig.db");
        if (v0 > 0 && copy_file("old.db", "mig.db")) {
            CHECK(0, "%s: cannot copy the old database", what);
            break;
        }
        store *st = NULL;
        vaed_err e;
        vaed_err_clear(&e);
        fi_arm(n);
        int rc = store_open(&st, p, &o, &e);
        int hit = fi_disarm();
        if (rc == 0)
            store_close(st, NULL);
        if (!hit) {
            CHECK(rc == 0, "%s without a failure: %d %s", what, rc, e.msg);
            t.n = n - 1;
            if (rc == 0)
                migrated_ok("mig.db", v0, what, n);
            break;
        }
        if (rc) {
            t.failed++;
            CHECK(code_ok(rc, mem_or_db) && e.msg[0], "%s, allocation %ld failed: rc %d, \"%s\"",
                  what, n, rc, e.msg);
            CHECK(st == NULL, "%s, allocation %ld failed: *out set on error", what, n);
            if (access(p, F_OK) == 0) {
                integrity_ok("mig.db", what, n);
                /* each step is one transaction: a whole version, never newer */
                sqlite3 *db = raw_open("mig.db");
                int64_t uv = db ? raw_int(db, "PRAGMA user_version") : -1;
                sqlite3_close(db);
                CHECK(uv >= v0 && uv <= STORE_SCHEMA_VERSION,
                      "%s, allocation %ld failed: left at user_version %lld", what, n,
                      (long long)uv);
            }
            /* the retry, without faults */
            rc = store_open(&st, p, &o, &e);
            CHECK(rc == 0, "%s, allocation %ld failed: the retry failed: %s", what, n, e.msg);
            if (rc == 0)
                store_close(st, NULL);
        } else {
            t.survived++;
        }
        integrity_ok("mig.db", what, n);
        migrated_ok("mig.db", v0, what, n);
        if (n >= MAX_N) {
            CHECK(0, "%s: still allocating after %ld", what, n);
            break;
        }
    }
    tally_print(what, &t);
    remove_db("mig.db");
    remove_db("old.db");
    leak_check(what);
}

/* ---- job start: the engine -------------------------------------------------------------- */

static void test_trainer_new(void)
{
    const char *what = "vae_trainer_new (CSV data)";
    vae_spec spec;
    if (spec_parse(&spec, "start", 1))
        return;
    tally t = {0};
    for (long n = first_n();; n++) {
        vae_trainer *tr = NULL;
        vaed_err e;
        vaed_err_clear(&e);
        fi_arm(n);
        int rc = vae_trainer_new(&tr, &spec, &e);
        int hit = fi_disarm();
        if (rc == 0) {
            /* the trainer it built works */
            vae_metrics m;
            int src = vae_trainer_step(tr, &m, &e);
            CHECK(src == 0 && m.step == 0, "%s, allocation %ld failed: a step of the new "
                  "trainer: %d %s", what, n, src, e.msg);
            vae_trainer_free(tr);
        }
        if (!hit) {
            CHECK(rc == 0, "%s without a failure: %d %s", what, rc, e.msg);
            t.n = n - 1;
            break;
        }
        if (rc) {
            t.failed++;
            CHECK(code_ok(rc, mem_only) && e.msg[0], "%s, allocation %ld failed: rc %d, \"%s\"",
                  what, n, rc, e.msg);
            rc = vae_trainer_new(&tr, &spec, &e);
            CHECK(rc == 0, "%s, allocation %ld failed: the retry failed: %s", what, n, e.msg);
            vae_trainer_free(tr);
        } else {
            t.survived++;
        }
        if (n >= MAX_N) {
            CHECK(0, "%s: still allocating after %ld", what, n);
            break;
        }
    }
    tally_print(what, &t);
    leak_check(what);
}

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

static void test_submit(void)
{
    const char *what = "jobs_submit";
    char p[512], state[16], reason[512];
    remove_db("submit.db");
    path_of(p, sizeof p, "submit.db");
    store_opts o = quick_opts();
    store *st = NULL;
    jobs *J = NULL;
    vaed_err e;
    jobs_config cfg = manager_config();
    if (store_open(&st, p, &o, &e) || jobs_start(&J, st, &cfg, &e)) {
        CHECK(0, "%s: setting up: %s", what, e.msg);
        if (st)
            store_close(st, NULL);
        return;
    }
    json_t *spec = spec_json("submitted", EPOCHS);
    tally t = {0};
    for (long n = first_n(); spec; n++) {
        int64_t id = 0;
        vaed_err_clear(&e);
        fi_arm(n);
        int rc = jobs_submit(J, spec, &id, &e);
        int hit = fi_disarm();
        if (rc == 0) {
            /* a job that was queued runs; a failure injected in its worker while the
             * window was open fails it with its reason */
            int done = wait_finished(st, id, 20, state, sizeof state, reason, sizeof reason);
            CHECK(done, "%s, allocation %ld failed: job %lld not finished (%s)", what, n,
                  (long long)id, state);
            CHECK(strcmp(state, "failed") || reason[0], "%s, allocation %ld failed: job failed "
                  "without a reason", what, n);
        }
        if (!hit) {
            CHECK(rc == 0, "%s without a failure: %d %s", what, rc, e.msg);
            CHECK(!strcmp(state, "completed"), "%s without a failure: job %s (%s)", what,
                  state, reason);
            if (!strcmp(state, "completed"))
                metrics_complete("submit.db", id, STEPS_PER_EPOCH * EPOCHS, what, n);
            t.n = n - 1;
            break;
        }
        if (rc) {
            t.failed++;
            CHECK(code_ok(rc, mem_or_db) && e.msg[0], "%s, allocation %ld failed: rc %d, \"%s\"",
                  what, n, rc, e.msg);
            int64_t left = unfinished_jobs("submit.db");
            CHECK(left == 0, "%s, allocation %ld failed (%s): %lld unfinished jobs left in the "
                  "store", what, n, e.msg, (long long)left);
            rc = jobs_submit(J, spec, &id, &e);
            CHECK(rc == 0, "%s, allocation %ld failed: the retry failed: %s", what, n, e.msg);
            if (rc == 0) {
                wait_finished(st, id, 20, state, sizeof state, reason, sizeof reason);
                CHECK(!strcmp(state, "completed"), "%s, allocation %ld failed: the retried job "
                      "is %s (%s)", what, n, state, reason);
            }
        } else {
            t.survived++;
        }
        integrity_ok("submit.db", what, n);
        if (n >= MAX_N) {
            CHECK(0, "%s: still allocating after %ld", what, n);
            break;
        }
    }
    json_decref(spec);
    jobs_stop(J);
    CHECK(store_close(st, &e) == 0, "%s: close: %s", what, e.msg);
    integrity_ok("submit.db", what, 0);
    tally_print(what, &t);
    remove_db("submit.db");
    leak_check(what);
}

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

/* A worker picking a job up: the manager starts (re-queueing the stored job), its
 * worker loads the data, builds the trainer, trains, checkpoints and records the end. */
static void test_worker_start(void)
{
    const char *what = "jobs_start + the job's run";
    char p[512], state[16], reason[512];
    remove_db("worker.db");
    path_of(p, sizeof p, "worker.db");
    store_opts o = quick_opts();
    store *st = NULL;
    vaed_err e;
    vae_spec spec;
    if (spec_parse(&spec, "worker", EPOCHS) || store_open(&st, p, &o, &e)) {
        CHECK(0, "%s: setting up", what);
        return;
    }
    json_t *sj = vae_spec_to_json(&spec), *schj = sched_to_json(&spec.schedule);
    char *spec_text = json_dumps(sj, JSON_COMPACT), *sched_text = json_dumps(schj, JSON_COMPACT);
    json_decref(sj);
    json_decref(schj);
    jobs_config cfg = manager_config();
    tally t = {0};
    for (long n = first_n();; n++) {
        int64_t id = queue_job(st, spec_text, sched_text);
        if (!id) {
            CHECK(0, "%s: cannot queue a job", what);
            break;
        }
        jobs *J = NULL;
        vaed_err_clear(&e);
        state[0] = reason[0] = '\0';
        fi_arm(n);
        int rc = jobs_start(&J, st, &cfg, &e);
        int done = rc == 0 && wait_finished(st, id, 20, state, sizeof state, reason, sizeof reason);
        int hit = fi_disarm();
        jobs_stop(J);
        if (rc)
            CHECK(code_ok(rc, mem_or_db) && e.msg[0] && J == NULL,
                  "%s, allocation %ld failed: jobs_start: rc %d, \"%s\"", what, n, rc, e.msg);
        else
            CHECK(done, "%s, allocation %ld failed: job %lld not finished (%s)", what, n,
                  (long long)id, state);
        CHECK(strcmp(state, "failed") || reason[0], "%s, allocation %ld failed: job failed "
              "without a reason", what, n);
        int ok = rc == 0 && done && !strcmp(state, "completed");
        if (ok)
            metrics_complete("worker.db", id, STEPS_PER_EPOCH * EPOCHS, what, n);
        if (!hit) {
            CHECK(ok, "%s without a failure: rc %d, job %s (%s %s)", what, rc, state, reason,
                  e.msg);
            t.n = n - 1;
            break;
        }
        if (ok) {
            t.survived++;
        } else {
            t.failed++;
            /* the retry: a manager started without faults finishes what is unfinished
             * (a job left queued or running is resumed) and runs a new job */
            int64_t again = queue_job(st, spec_text, sched_text);
            rc = jobs_start(&J, st, &cfg, &e);
            CHECK(rc == 0, "%s, allocation %ld failed: the retry failed: %s", what, n, e.msg);
            if (rc == 0) {
                int fin = wait_finished(st, again, 20, state, sizeof state, reason,
                                        sizeof reason);
                CHECK(fin && !strcmp(state, "completed"), "%s, allocation %ld failed: the "
                      "retried job is %s (%s)", what, n, state, reason);
                if (fin)
                    metrics_complete("worker.db", again, STEPS_PER_EPOCH * EPOCHS, what, n);
                wait_finished(st, id, 20, state, sizeof state, reason, sizeof reason);
                jobs_stop(J);
            }
        }
        int64_t left = unfinished_jobs("worker.db");
        CHECK(left == 0, "%s, allocation %ld failed: %lld jobs left unfinished", what, n,
              (long long)left);
        integrity_ok("worker.db", what, n);
        if (n >= MAX_N) {
            CHECK(0, "%s: still allocating after %ld", what, n);
            break;
        }
    }
    free(spec_text);
    free(sched_text);
    CHECK(store_close(st, &e) == 0, "%s: close: %s", what, e.msg);
    integrity_ok("worker.db", what, 0);
    tally_print(what, &t);
    remove_db("worker.db");
    leak_check(what);
}

/* ---- checkpoint save ----------------------------------------------------------------------- */

#define KEEP 2

static void test_checkpoint(void)
{
    const char *what = "checkpoint save (blob + store)";
    char p[512];
    remove_db("ckpt.db");
    path_of(p, sizeof p, "ckpt.db");
    store_opts o = quick_opts();
    store *st = NULL;
    vae_trainer *tr = NULL;
    vaed_err e;
    vae_spec spec;
    if (spec_parse(&spec, "ckpt", 1000) || store_open(&st, p, &o, &e) ||
        vae_trainer_new(&tr, &spec, &e)) {
        CHECK(0, "%s: setting up", what);
        if (st)
            store_close(st, NULL);
        return;
    }
    store_job_new nj = {.name = "ckpt", .spec = "{}", .state = "running"};
    int64_t job = 0;
    CHECK(store_job_insert(st, &nj, &job, &e) == 0, "%s: job: %s", what, e.msg);
    tally t = {0};
    for (long n = first_n();; n++) {
        vae_metrics m;
        if (vae_trainer_step(tr, &m, &e)) {
            CHECK(0, "%s: step: %s", what, e.msg);
            break;
        }
        long step = vae_trainer_step_index(tr);
        void *want = NULL;
        size_t want_len = 0;
        if (vae_trainer_save(tr, &want, &want_len, &e)) {
            CHECK(0, "%s: reference save: %s", what, e.msg);
            break;
        }
        void *blob = NULL;
        size_t len = 0;
        vaed_err_clear(&e);
        fi_arm(n);
        int rc = vae_trainer_save(tr, &blob, &len, &e);
        if (rc == 0) {
            store_ckpt_put req = {.job = job, .step = step, .epoch = m.epoch, .kind = "periodic",
                                  .blob = blob, .size = len, .give = 1, .keep = KEEP,
                                  .wait = 1};
            rc = store_checkpoint_put(st, &req, &e); /* the blob is the store's now */
        }
        int hit = fi_disarm();
        if (rc) {
            CHECK(code_ok(rc, mem_or_db) && e.msg[0], "%s, allocation %ld failed: rc %d, \"%s\"",
                  what, n, rc, e.msg);
            /* a waited checkpoint that failed was not written */
            void *got = NULL;
            size_t glen = 0;
            int grc = store_checkpoint_get(st, job, step, NULL, &got, &glen, &e);
            CHECK(grc == VAED_ENOTFOUND, "%s, allocation %ld failed: reported failed, but the "
                  "checkpoint at %ld reads back with %d", what, n, step, grc);
            free(got);
            integrity_ok("ckpt.db", what, n);
            /* the retry, without faults */
            store_ckpt_put req = {.job = job, .step = step, .epoch = m.epoch, .kind = "periodic",
                                  .blob = want, .size = want_len, .keep = KEEP, .wait = 1};
            rc = store_checkpoint_put(st, &req, &e);
            CHECK(rc == 0, "%s, allocation %ld failed: the retry failed: %s", what, n, e.msg);
            t.failed++;
        } else if (hit) {
            t.survived++;
        }
        /* what is stored is exactly the trainer's state */
        void *got = NULL;
        size_t glen = 0;
        int grc = store_checkpoint_get(st, job, -1, NULL, &got, &glen, &e);
        CHECK(grc == 0 && glen == want_len && !memcmp(got, want, glen),
              "%s, allocation %ld failed: newest checkpoint differs from the state (rc %d, %zu "
              "bytes, want %zu)", what, n, grc, glen, want_len);
        free(got);
        free(want);
        store_ckpt *list = NULL;
        size_t nl = 0;
        if (store_checkpoints_list(st, job, &list, &nl, &e) == 0) {
            CHECK(nl <= KEEP && nl > 0 && list[nl - 1].step == step,
                  "%s, allocation %ld failed: %zu checkpoints kept (keep %d), newest at %lld, "
                  "want %ld", what, n, nl, KEEP, nl ? (long long)list[nl - 1].step : -1LL,
                  step);
            free(list);
        }
        if (!hit) {
            CHECK(rc == 0, "%s without a failure: %d %s", what, rc, e.msg);
            t.n = n - 1;
            break;
        }
        if (n >= MAX_N || vae_trainer_finished(tr)) {
            CHECK(0, "%s: still allocating after %ld", what, n);
            break;
        }
    }
    vae_trainer_free(tr);
    CHECK(store_close(st, &e) == 0, "%s: close: %s", what, e.msg);
    integrity_ok("ckpt.db", what, 0);
    tally_print(what, &t);
    remove_db("ckpt.db");
    leak_check(what);
}

int main(void)
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

    for (int v = 0; v < STORE_SCHEMA_VERSION && want("migration"); v++)
        test_migration(v);
    if (want("trainer"))
        test_trainer_new();
    if (want("checkpoint"))
        test_checkpoint();
    if (want("submit"))
        test_submit();
    if (want("worker"))
        test_worker_start();

    char p[512];
    path_of(p, sizeof p, "d.csv");
    unlink(p);
    rmdir(dir);
    return t_done("test_alloc_fail");
}
