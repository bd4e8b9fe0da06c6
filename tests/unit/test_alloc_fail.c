/* test_alloc_fail.c — allocation-failure injection (jansson's test_chaos, STYLE.md) over
 * the store's paths that must never corrupt state: schema migration of a fresh database,
 * of a v1 one (every step) and of the newest step, and a checkpoint save (the engine's blob, then the store's
 * transaction). The job paths (a trainer built, a job submitted, a worker starting a
 * job) are in test_alloc_fail_jobs.c. The method, the injector and the shared fixtures
 * are in test_alloc_fail_util.h; both programs are linked with the allocators wrapped
 * (the Makefile's test_alloc_fail% rule). */
#include "tests/unit/test_alloc_fail_util.h"

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
    int rc = test_alloc_fail_begin();
    if (rc)
        return rc;
    /* A fresh database, the whole chain from v1 (every migration step's code runs in
     * it) and the newest step alone. The starting points in between ran only a tail of
     * the v1 chain's code again, at about a minute each under ASan. */
    const int starts[] = {0, 1, STORE_SCHEMA_VERSION - 1};
    for (size_t i = 0; i < sizeof starts / sizeof *starts && want("migration"); i++)
        if (i == 0 || starts[i] > starts[i - 1])
            test_migration(starts[i]);
    if (want("checkpoint"))
        test_checkpoint();
    return test_alloc_fail_end("test_alloc_fail");
}
