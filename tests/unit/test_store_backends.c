/* test_store_backends.c — the store (store/store.h) on SQLite and on PostgreSQL gives the
 * same answers. One scenario of writes — jobs and their states, metric rows (some
 * written twice: the upsert), epochs, schedule events, checkpoints with retention,
 * evaluations and the best checkpoint — runs against each database, and everything
 * read back is written to a transcript, doubles by their bits (%a). The oracles: the
 * values the scenario wrote (checked on each database), and the two transcripts,
 * which must be equal line for line. Times the store stamps itself (created_at and the
 * like) are left out of the transcript.
 *
 * The PostgreSQL half runs when VAED_TEST_PG names a server (tests/e2e/store_pg.sh
 * starts one); the test makes a fresh database there, vaed_backends. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/evals.h"
#include "store/sql.h"
#include "store/store.h"
#include "tests/unit/t.h"
#include "tests/unit/test_sql_util.h"

#define NSTEPS 3000

struct out {
    char *buf;
    size_t n, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    size_t len = (size_t)k < sizeof line ? (size_t)k : sizeof line - 1;
    if (o->n + len + 2 > o->cap) {
        o->cap = (o->n + len + 2) * 2;
        o->buf = realloc(o->buf, o->cap);
    }
    memcpy(o->buf + o->n, line, len);
    o->n += len;
    o->buf[o->n++] = '\n';
    o->buf[o->n] = '\0';
}

/* the value the scenario writes for metric column c at step s (version v: 0 first, 1
 * for the steps written again) */
static double mval(int64_t s, int c, int v)
{
    return (double)s * 0.001 + c + v * 0.5 + (s % 7 == 0 ? 1e-300 : 0.0);
}

static void metrics(store *st, int64_t job, const char *k, struct out *o)
{
    vaed_err e = {0};
    store_metric *rows = calloc(NSTEPS, sizeof *rows);
    static const double groups[3] = {0.25, -1.5, 1e-310};
    for (int v = 0; v < 2; v++) {
        size_t n = 0;
        for (int64_t s = 0; s < NSTEPS; s++) {
            if (v == 1 && s % 10 != 3)
                continue;       /* every tenth step written again, with new values */
            store_metric *m = &rows[n++];
            memset(m, 0, sizeof *m);
            m->step = s;
            double vals[STORE_M_NCOLS];
            for (int c = 0; c < STORE_M_NCOLS; c++)
                vals[c] = mval(s, c, v);
            int c = 0;
#define SET(ID, name, unit, flags, meaning) m->name = vals[c++];
            VAE_METRIC_FIELDS(SET)
#undef SET
            m->n_groups = s % 2 ? 3 : 0;
            m->kl_groups = groups;
        }
        CHECK(store_metrics_append(st, job, rows, n, &e) == 0, "%s: append: %s", k, e.msg);
    }
    free(rows);
    CHECK(store_flush(st, &e) == 0, "%s: flush: %s", k, e.msg);
    store_series s = {0};
    CHECK(store_metrics_range(st, job, -1, -1, STORE_MCOL_ALL | STORE_M_KL_GROUPS_BIT, 0, &s, &e) == 0,
          "%s: range: %s", k, e.msg);
    long bad = 0;
    for (size_t i = 0; i < s.n; i++) {
        int v = s.step[i] % 10 == 3;
        for (int c = 0; c < STORE_M_NCOLS; c++)
            bad += s.col[c][i] != mval(s.step[i], c, v);
        put(o, "m %lld %a %a %a", (long long)s.step[i], s.col[0][i], s.col[STORE_M_NCOLS - 1][i],
            s.kl_groups && s.n_groups == 3 ? s.kl_groups[i * 3 + 2] : -1.0);
    }
    CHECK(s.n == NSTEPS && bad == 0, "%s: %zu rows read back, %ld values differ from those written", k, s.n, bad);
    store_series_free(&s);
    CHECK(store_metrics_range(st, job, 100, 200, STORE_MCOL_ALL, 10, &s, &e) == 0 && s.n == 10 &&
              s.step[0] == 101,
          "%s: a range (100, 200] limited to 10: %zu rows from %lld %s", k, s.n, s.n ? (long long)s.step[0] : -1LL,
          e.msg);
    store_series_free(&s);
    for (size_t pts = 100; pts <= 1000; pts *= 10) {
        CHECK(store_metrics_downsample(st, job, -1, -1, STORE_MCOL_ALL, pts, &s, &e) == 0, "%s: downsample: %s", k,
              e.msg);
        put(o, "downsample %zu: %zu points of %zu", pts, s.n, s.total);
        for (size_t i = 0; i < s.n; i++)
            put(o, "d %lld %a %a", (long long)s.step[i], s.col[1][i], s.col[STORE_M_NCOLS - 1][i]);
        store_series_free(&s);
    }
}

static void jobs(store *st, int64_t *ids, const char *k, struct out *o)
{
    vaed_err e = {0};
    const char *names[5] = {"plain", "it's \"quoted\"", "ünïcödé ✓", "", "back\\slash"};
    for (int i = 0; i < 5; i++) {
        store_job_new nj = {.name = names[i], .spec = "{\"model\":{\"latent\":2},\"x\":[1,2.5]}", .priority = i % 3};
        CHECK(store_job_insert(st, &nj, &ids[i], &e) == 0 && ids[i] == i + 1, "%s: insert job %d: id %lld %s", k, i,
              (long long)ids[i], e.msg);
    }
    CHECK(store_job_set_state(st, ids[1], "running", NULL, &e) == 0, "%s: running: %s", k, e.msg);
    CHECK(store_job_set_state(st, ids[2], "failed", "diverged at step 7", &e) == 0, "%s: failed: %s", k, e.msg);
    CHECK(store_job_set_progress(st, ids[1], 1234, 2.5, 1, &e) == 0, "%s: progress: %s", k, e.msg);
    CHECK(store_job_requeue_front(st, ids[4], &e) == 0, "%s: requeue: %s", k, e.msg);
    CHECK(store_job_set_priority(st, ids[0], 9, &e) == 0, "%s: priority: %s", k, e.msg);
    CHECK(store_job_set_state(st, 999, "running", NULL, &e) == VAED_ENOTFOUND, "%s: a missing job's state", k);
    CHECK(store_job_set_kernels(st, ids[1], "OpenBLAS core Zen; multiplies: OpenBLAS; built for avx2 fma", &e) == 0,
          "%s: kernels: %s", k, e.msg);
    CHECK(store_job_set_kernels(st, 999, "x", &e) == VAED_ENOTFOUND, "%s: a missing job's kernels", k);
    CHECK(store_job_set_kernels(st, ids[1], "", &e) == VAED_EINVAL, "%s: empty kernels", k);
    store_job_list l = {0};
    CHECK(store_jobs_list(st, 0, 0, 3, &l, &e) == 0, "%s: list: %s", k, e.msg);
    put(o, "list: %zu of %lld, next %lld", l.n, (long long)l.total, (long long)l.next_after);
    for (size_t i = 0; i < l.n; i++)
        put(o, "job %lld [%s] %s prio %d seq %lld step %lld epoch %a reason %s started %d finished %d kernels [%s] spec %s",
            (long long)l.jobs[i].id, l.jobs[i].name, l.jobs[i].state, l.jobs[i].priority,
            (long long)l.jobs[i].queue_seq, (long long)l.jobs[i].step, l.jobs[i].epoch,
            l.jobs[i].reason ? l.jobs[i].reason : "-", l.jobs[i].started_at > 0, l.jobs[i].finished_at > 0,
            l.jobs[i].kernels, l.jobs[i].spec);
    store_job_list_free(&l);
    CHECK(store_jobs_resumable(st, &l, &e) == 0, "%s: resumable: %s", k, e.msg);
    for (size_t i = 0; i < l.n; i++)
        put(o, "resumable %lld", (long long)l.jobs[i].id);
    store_job_list_free(&l);
    int64_t counts[STORE_NSTATES];
    CHECK(store_jobs_count_by_state(st, counts, &e) == 0, "%s: counts: %s", k, e.msg);
    for (int i = 0; i < STORE_NSTATES; i++)
        put(o, "count %d %lld", i, (long long)counts[i]);
    store_job j;
    CHECK(store_job_get(st, ids[2], &j, &e) == 0 && !strcmp(j.name, names[2]) && !strcmp(j.state, "failed") &&
              j.reason && !strcmp(j.reason, "diverged at step 7"),
          "%s: job 3 reads back as written: %s", k, e.msg);
    store_job_clear(&j);
}

static void epochs_events_ckpts(store *st, int64_t job, const char *k, struct out *o)
{
    vaed_err e = {0};
    double dims[2] = {0.125, 3.0};
    for (int i = 1; i <= 3; i++) {
        store_epoch ep = {.epoch = i <= 2 ? i : 2, .step = 100 * i, .xent = 1.0 / i, .kl = 0.1 * i,
                          .elbo = -1.0 / i - 0.1 * i, .time = 0.5 * i, .active_units = i, .n_dims = 2,
                          .kl_dims = dims};
        snprintf(ep.split, sizeof ep.split, "%s", "test");
        CHECK(store_epoch_put(st, job, &ep, &e) == 0, "%s: epoch: %s", k, e.msg);
    }
    for (int i = 0; i < 3; i++) {
        int64_t seq = 0;
        CHECK(store_event_add(st, job, 1e9 + i, i == 2 ? 50 : 100 * i, "{\"kind\":\"constant\",\"value\":0.5}",
                              i ? "override" : "submit", 1, &seq, &e) == 0 && seq == i + 1,
              "%s: event %d: seq %lld %s", k, i, (long long)seq, e.msg);
    }
    size_t n = 4096 * 25 + 3;
    unsigned char *blob = malloc(n);
    for (size_t i = 0; i < n; i++)
        blob[i] = (unsigned char)(i * 131 + (i >> 8));
    for (int i = 1; i <= 5; i++) {
        blob[0] = (unsigned char)i;
        store_ckpt_put cp = {.job = job, .step = 10 * i, .epoch = i, .kind = i == 5 ? "final" : "periodic",
                             .blob = blob, .size = n, .keep = 2, .wait = 1};
        CHECK(store_checkpoint_put(st, &cp, &e) == 0, "%s: checkpoint %d: %s", k, i, e.msg);
    }
    store_ckpt_put again = {.job = job, .step = 40, .epoch = 4, .kind = "manual", .blob = blob, .size = 7, .wait = 1};
    CHECK(store_checkpoint_put(st, &again, &e) == 0, "%s: checkpoint at a step that has one: %s", k, e.msg);
    store_epoch *ev;
    CHECK(store_epochs_list(st, job, &ev, &n, &e) == 0, "%s: epochs: %s", k, e.msg);
    for (size_t i = 0; i < n; i++)
        put(o, "epoch %lld %s step %lld %a %a %a %d dims %d %a", (long long)ev[i].epoch, ev[i].split,
            (long long)ev[i].step, ev[i].xent, ev[i].kl, ev[i].elbo, ev[i].active_units, ev[i].n_dims,
            ev[i].n_dims ? ev[i].kl_dims[0] : 0.0);
    store_epochs_free(ev, n);
    store_event *evs;
    CHECK(store_events_list(st, job, &evs, &n, &e) == 0, "%s: events: %s", k, e.msg);
    for (size_t i = 0; i < n; i++)
        put(o, "event %lld at %lld %s %s superseded %d %a", (long long)evs[i].seq, (long long)evs[i].effective_step,
            evs[i].schedule, evs[i].source, evs[i].superseded, evs[i].requested_at);
    store_events_free(evs, n);
    store_ckpt *cs;
    CHECK(store_checkpoints_list(st, job, &cs, &n, &e) == 0, "%s: checkpoints: %s", k, e.msg);
    for (size_t i = 0; i < n; i++)
        put(o, "ckpt %lld %a %s %lld", (long long)cs[i].step, cs[i].epoch, cs[i].kind, (long long)cs[i].size);
    free(cs);
    store_ckpt meta;
    void *got = NULL;
    size_t sz = 0;
    blob[0] = 5;
    CHECK(store_checkpoint_get(st, job, 50, &meta, &got, &sz, &e) == 0 && sz == 4096 * 25 + 3 &&
              memcmp(got, blob, sz) == 0 && !strcmp(meta.kind, "final"),
          "%s: the final checkpoint's blob reads back byte for byte (%zu bytes) %s", k, sz, e.msg);
    free(got);
    free(blob);
}

static void evals(store *st, int64_t job, const char *k, struct out *o)
{
    vaed_err e = {0};
    const char *results[3] = {"{\"bound\":-412.5,\"se\":1}", "{\"bound\":-411.25}", "{\"bound\":-1000}"};
    const int64_t steps[3] = {40, 50, 40};
    for (int i = 0; i < 3; i++) {
        store_eval_new ne = {.job = job, .ckpt_step = steps[i], .asked = "api", .split = "test", .k = 8, .seed = 1,
                             .rows = 100};
        int64_t id = 0;
        CHECK(store_eval_insert(st, &ne, &id, &e) == 0 && id == i + 1, "%s: eval %d: %s", k, i, e.msg);
        CHECK(store_eval_block_put(st, id, 0, 60, "abc", 3, 0.5, &e) == 0 &&
                  store_eval_block_put(st, id, 0, 100, "abcd", 4, 0.25, &e) == 0,
              "%s: eval blocks (one written twice): %s", k, e.msg);
        CHECK(store_eval_set_state(st, id, "completed", NULL, results[i], 100, &e) == 0, "%s: eval done: %s", k,
              e.msg);
    }
    store_eval_new missing = {.job = 999, .ckpt_step = 1, .asked = "api", .split = "test", .k = 1, .rows = 1};
    int64_t id;
    CHECK(store_eval_insert(st, &missing, &id, &e) == VAED_ENOTFOUND, "%s: an evaluation of a missing job: %s", k,
          e.msg);
    int64_t best = 0;
    CHECK(store_eval_best(st, job, &best, &e) == 0 && best == 50,
          "%s: the best checkpoint is the highest bound's as a number (-411.25 > -412.5, which compares higher as text): %lld %s", k,
          (long long)best, e.msg);
    put(o, "best %lld", (long long)best);
    store_eval *ev;
    size_t n;
    CHECK(store_evals_list(st, job, 0, &ev, &n, &e) == 0, "%s: evals: %s", k, e.msg);
    for (size_t i = 0; i < n; i++)
        put(o, "eval %lld step %lld %s rows %lld/%lld result %s", (long long)ev[i].id, (long long)ev[i].ckpt_step,
            ev[i].state, (long long)ev[i].rows_done, (long long)ev[i].rows, ev[i].result ? ev[i].result : "-");
    store_evals_free(ev, n);
}

/* The scenario on target: the transcript into o. */
static void scenario(const char *target, const char *k, struct out *o)
{
    vaed_err e = {0};
    store *st = NULL;
    CHECK(store_open(&st, target, NULL, &e) == 0 && st, "%s: open: %s", k, e.msg);
    if (!st)
        return;
    int64_t ids[5] = {0};
    jobs(st, ids, k, o);
    metrics(st, ids[0], k, o);
    epochs_events_ckpts(st, ids[1], k, o);
    evals(st, ids[1], k, o);
    CHECK(store_close(st, &e) == 0, "%s: close: %s", k, e.msg);
    /* opened again: the schema is there, nothing is migrated twice, the rows stay */
    CHECK(store_open(&st, target, NULL, &e) == 0, "%s: open again: %s", k, e.msg);
    store_job_list l = {0};
    CHECK(st && store_jobs_list(st, 0, 0, 100, &l, &e) == 0 && l.n == 5, "%s: 5 jobs after reopening (%zu) %s", k,
          l.n, e.msg);
    store_job_list_free(&l);
    store_close(st, NULL);
}

static int pg_fresh_db(const char *url, char *out, size_t n)
{
    vaed_err e = {0};
    int rc = t_pg_fresh(url, "vaed_backends", out, n, &e);
    CHECK(rc == 0, "postgres: a fresh database: %s", e.msg);
    return rc;
}

int main(void)
{
    char dir[] = "/tmp/vaed-backends.XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/t.db", dir);
    struct out lite = {0}, pg = {0};
    scenario(path, "sqlite", &lite);
    printf("test_store_backends: sqlite: %zu transcript bytes\n", lite.n);
    t_sqlite_remove(path, dir);
    const char *url = getenv("VAED_TEST_PG");
    char db[512];
    if (url && *url && pg_fresh_db(url, db, sizeof db) == 0) {
        scenario(db, "postgres", &pg);
        printf("test_store_backends: postgres: %zu transcript bytes\n", pg.n);
        size_t line = 1, i = 0;
        while (i < lite.n && i < pg.n && lite.buf[i] == pg.buf[i])
            line += lite.buf[i++] == '\n';
        if (i < lite.n || i < pg.n) {
            size_t a = i;
            while (a > 0 && lite.buf[a - 1] != '\n')
                a--;
            CHECK(0, "the transcripts differ at line %zu: sqlite [%.120s] postgres [%.120s]", line,
                  lite.buf ? lite.buf + a : "", pg.buf ? pg.buf + a : "");
        } else {
            CHECK(lite.n > 100000, "the transcripts are equal (%zu bytes) and not trivially short", lite.n);
        }
    } else if (!url || !*url) {
        printf("test_store_backends: PostgreSQL half not run here (VAED_TEST_PG unset; tests/e2e/store_pg.sh runs it)\n");
    }
    free(lite.buf);
    free(pg.buf);
    return t_done("test_store_backends");
}
