/* test_alloc_fail_jobs.c — allocation-failure injection over a job's paths that must
 * never corrupt state: the engine building a trainer, a job's submission, and a worker
 * picking a job up and running it (a job that cannot start fails with its reason). The
 * store's paths (migration, checkpoint save) are in test_alloc_fail.c; the method, the
 * injector and the shared fixtures in test_alloc_fail_util.h. */
#include "tests/unit/test_alloc_fail_util.h"

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

int main(void)
{
    int rc = test_alloc_fail_begin();
    if (rc)
        return rc;
    if (want("trainer"))
        test_trainer_new();
    if (want("submit"))
        test_submit();
    if (want("worker"))
        test_worker_start();
    return test_alloc_fail_end("test_alloc_fail_jobs");
}
