/* test_jobs_race.c — one owner per job, under stress: schedule changes, learning-rate
 * changes and pause/resume hit jobs while they move queued → running → paused → queued →
 * running → completed on two workers. Afterwards every stored metric row's beta must be
 * the value of the schedule that the job's recorded history says governed that step
 * (the seed's silent bug is a row whose beta disagrees with its history). Every schedule
 * posted is a constant with a value of its own, so the oracle is the history alone: for
 * step s, the newest non-superseded event with effective_step <= s.
 *
 * Run under ThreadSanitizer by `make test SANITIZER=thread`: the race this guards against
 * (a worker copying a queued job's spec while a client changed its schedule) is a data
 * race TSan reports, and it fails the run. */
#include <jansson.h>
#include <pthread.h>
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
#include "vae/sched.h"

#define NJOBS 8
#define ROWS 200
#define BATCH 10
#define EPOCHS 200
#define STEPS (ROWS / BATCH * EPOCHS)
#define NTHREADS 5

static char dir[256];
static jobs *J;
static store *st;
static int64_t ids[NJOBS];
static atomic_int n_submitted;
static atomic_int stop_flag;
static atomic_int sched_seq;
static atomic_int n_sched_ok, n_lr_ok, n_pause_ok, n_resume_ok;

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int write_data(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    unsigned x = 12345;
    for (int i = 0; i < ROWS; i++) {
        for (int j = 0; j < 8; j++) {
            x = x * 1103515245u + 12345u;
            fprintf(f, "%s%.3f", j ? "," : "", (double)((x >> 16) & 1023) / 1023.0);
        }
        fputc('\n', f);
    }
    return fclose(f);
}

static json_t *spec_json(int k)
{
    char p[512], name[32];
    snprintf(p, sizeof p, "%s/d.csv", dir);
    snprintf(name, sizeof name, "race-%d", k);
    return json_pack("{s:s, s:{s:s, s:s}, s:{s:[i], s:i, s:[i]}, s:{s:i, s:i, s:i, s:i},"
                     " s:{s:s, s:f}, s:{s:i, s:f, s:b}}",
                     "name", name, "dataset", "path", p, "format", "csv", "model", "encoder", 8,
                     "latent", 2, "decoder", 8, "train", "epochs", EPOCHS, "batch_size", BATCH,
                     "seed", 3 + k, "threads", 1, "schedule", "kind", "constant", "value", 0.5,
                     "checkpoint", "every_steps", 0, "every_seconds", 0.0, "at_epoch_end", 1);
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static int64_t any_job(unsigned *s)
{
    int n = atomic_load(&n_submitted);
    return n ? ids[rnd(s) % (unsigned)n] : 0;
}

/* Constant schedules, each with a value no other change has: 0.001 .. */
static void *lr_changer(void *arg)
{
    unsigned s = 2;
    while (!atomic_load(&stop_flag)) {
        int64_t id = any_job(&s), eff;
        vaed_err e;
        if (id && jobs_set_lr(J, id, (rnd(&s) & 1) ? 1e-3 : 2e-3, &eff, &e) == 0)
            atomic_fetch_add(&n_lr_ok, 1);
        sleep_us(2000 + rnd(&s) % 3000);
    }
    return arg;
}

/* A constant schedule with a value no other change has. */
static int post_schedule(int64_t id)
{
    sched_spec sp;
    json_t *doc = json_pack("{s:s, s:f}", "kind", "constant", "value",
                            0.001 * (atomic_fetch_add(&sched_seq, 1) + 1));
    vaed_err e;
    int64_t eff;
    int rc = sched_parse(&sp, doc, "schedule", 1, &e);
    json_decref(doc);
    if (rc == 0 && (rc = jobs_set_schedule(J, id, &sp, &eff, NULL, &e)) == 0)
        atomic_fetch_add(&n_sched_ok, 1);
    return rc;
}

/* Pause a job, resume it, and change its schedule at once: the change meets the job
 * while a worker is taking it from the queue (the window of the old race). */
static void *pauser(void *arg)
{
    unsigned s = 3;
    while (!atomic_load(&stop_flag)) {
        int64_t id = any_job(&s);
        vaed_err e;
        if (id && jobs_pause(J, id, &e) == 0) {
            atomic_fetch_add(&n_pause_ok, 1);
            sleep_us(rnd(&s) % 3000);
            if (jobs_resume(J, id, &e) == 0)
                atomic_fetch_add(&n_resume_ok, 1);
            post_schedule(id);
        }
        /* resume whatever is paused, so every job completes */
        for (int i = 0; i < atomic_load(&n_submitted); i++)
            if (jobs_resume(J, ids[i], &e) == 0)
                atomic_fetch_add(&n_resume_ok, 1);
        sleep_us(1000 + rnd(&s) % 2000);
    }
    return arg;
}

static void *scheduler(void *arg)
{
    unsigned s = (unsigned)(size_t)arg;
    while (!atomic_load(&stop_flag)) {
        int64_t id = any_job(&s);
        if (id)
            post_schedule(id);
        sleep_us(300 + rnd(&s) % 700);
    }
    return arg;
}

static double beta_of(const char *schedule_json)
{
    json_error_t je;
    json_t *j = json_loads(schedule_json, 0, &je);
    double v = j ? json_number_value(json_object_get(j, "value")) : -1.0;
    json_decref(j);
    return v;
}

/* Every row of job id: step 0..STEPS-1 once, and beta = the value its history gives. */
static void check_job(sqlite3 *db, int64_t id)
{
    store_event *ev = NULL;
    size_t nev = 0;
    vaed_err e;
    CHECK(store_events_list(st, id, &ev, &nev, &e) == 0, "job %lld: history: %s", (long long)id,
          e.msg);
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(db, "SELECT step, beta FROM metrics WHERE job = ? ORDER BY step", -1, &q,
                       NULL);
    sqlite3_bind_int64(q, 1, id);
    int64_t expect_step = 0;
    int bad = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t step = sqlite3_column_int64(q, 0);
        double beta = sqlite3_column_double(q, 1);
        const store_event *gov = NULL;
        for (size_t i = 0; i < nev; i++)
            if (!ev[i].superseded && ev[i].effective_step <= step &&
                (!gov || ev[i].effective_step >= gov->effective_step))
                gov = &ev[i];
        double want = gov ? beta_of(gov->schedule) : -1.0;
        if (step != expect_step || beta != want) {
            if (bad++ < 5)
                fprintf(stderr, "job %lld step %lld (expected step %lld): beta %.17g, its "
                        "history says %.17g (event %lld)\n", (long long)id, (long long)step,
                        (long long)expect_step, beta, want, gov ? (long long)gov->seq : -1LL);
        }
        expect_step = step + 1;
    }
    sqlite3_finalize(q);
    CHECK(bad == 0, "job %lld: %d rows disagree with the recorded schedule history",
          (long long)id, bad);
    CHECK(expect_step == STEPS, "job %lld: %lld rows, expected %d", (long long)id,
          (long long)expect_step, STEPS);
    store_events_free(ev, nev);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/vaed-race-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char p[512];
    snprintf(p, sizeof p, "%s/d.csv", dir);
    if (write_data(p)) {
        perror(p);
        return 1;
    }
    snprintf(p, sizeof p, "%s/race.db", dir);
    store_opts o;
    store_opts_default(&o);
    o.fsync_checkpoints = 0;
    o.flush_interval = 0.05;
    vaed_err e;
    jobs_config c;
    jobs_config_default(&c);
    c.workers = 2;
    c.threads = 1;
    c.data_dir = dir;
    c.wait_s = 30;
    if (store_open(&st, p, &o, &e) || jobs_start(&J, st, &c, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return 1;
    }
    /* three clients changing schedules, one the learning rate, one pausing and resuming */
    pthread_t th[NTHREADS];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, scheduler, (void *)(size_t)(i + 1));
    pthread_create(&th[3], NULL, lr_changer, NULL);
    pthread_create(&th[4], NULL, pauser, NULL);
    for (int k = 0; k < NJOBS; k++) {
        json_t *sj = spec_json(k);
        int rc = jobs_submit(J, sj, &ids[k], &e);
        json_decref(sj);
        CHECK(rc == 0, "submit %d: %s", k, e.msg);
        atomic_store(&n_submitted, k + 1);
        sleep_us(2000);
    }
    /* until every job has completed (bounded: 120 s) */
    int done = 0;
    for (int t = 0; t < 1200 && !done; t++) {
        done = 1;
        for (int k = 0; k < NJOBS; k++) {
            store_job sj;
            if (store_job_get(st, ids[k], &sj, NULL) == 0) {
                done &= !strcmp(sj.state, "completed");
                store_job_clear(&sj);
            }
        }
        sleep_us(100000);
    }
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    CHECK(done, "not every job completed within 120 s");
    printf("changes applied: %d schedules, %d learning rates, %d pauses, %d resumes\n",
           atomic_load(&n_sched_ok), atomic_load(&n_lr_ok), atomic_load(&n_pause_ok),
           atomic_load(&n_resume_ok));
    CHECK(atomic_load(&n_sched_ok) > NJOBS && atomic_load(&n_pause_ok) > 0,
          "the stress did not stress: %d schedule changes, %d pauses", atomic_load(&n_sched_ok),
          atomic_load(&n_pause_ok));
    jobs_stop(J);
    store_flush(st, NULL);
    sqlite3 *db = NULL;
    sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL);
    for (int k = 0; k < NJOBS; k++)
        check_job(db, ids[k]);
    sqlite3_close(db);
    store_close(st, NULL);
    const char *sfx[] = {"d.csv", "race.db", "race.db-wal", "race.db-shm"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
    return t_done("test_jobs_race");
}
