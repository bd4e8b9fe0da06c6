/* mirror.c — a cluster node's event streams of jobs another node runs (jobs.h
 * "Cluster"; issue 17: any node serves any read).
 *
 * The event bus (bus.h) is fed by the node's own workers, so a client following a job
 * through a node that does not run it would hear nothing but the state it started in.
 * This thread feeds the bus from the database instead, for every job some client here
 * follows and no worker here runs (its lease is not this node's): the job's new metric
 * rows as step events, then its new checkpoints, epochs and schedule changes, then its
 * state when it differs from the bus's. It is woken by the owner's writer, which
 * notifies STORE_ROWS_CHANNEL, with the job's id, in each transaction that wrote a
 * leased job's rows (store.h). A pass, at most every MIRROR_MIN_MS (the bus shows 10
 * steps a second anyway), reads the jobs the notifications since the last one named
 * (the database is read for the jobs that moved, not for every job followed); every
 * job followed here is read at least every MIRROR_FULL_MS (a change no notification
 * told of), and a job newly followed at once.
 *
 * The state is read first, the rows after: the owner's writer commits in order, so the
 * rows a final state follows are all read before that state is published, and a
 * client sees the figures a job stopped at. A client starts with what is new from the
 * moment this thread first sees it: rows from the job's progress on, and no earlier
 * epoch, checkpoint or schedule change. What the store does not keep is not in the
 * events: an epoch's train loss, train beta and evaluation time are null. A step's
 * samples_per_sec is worked out from the rows' finishing times and the job's batch
 * size, over a second or so as the worker's own. When a job moves to this node the thread lets go of
 * it and the worker publishes as usual (from the checkpoint it resumes from). */
#include "daemon/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/bus.h"

enum { MIRROR_IDLE_MS = 250, MIRROR_MIN_MS = 100, MIRROR_FULL_MS = 1000, MIRROR_HOT = 64 };

typedef struct cursor {
    int64_t job;
    int64_t step;               /* the newest row published: later rows are new */
    int batch;                  /* the job's train.batch_size (0: unknown) */
    int64_t ref_step;           /* a row a second or so back (ref_t > 0): the rate's base */
    double ref_t;
    int64_t epoch, seq, ckpt;   /* the newest epoch, schedule event, checkpoint step */
    int live;                   /* still followed here, by a client, run elsewhere */
} cursor;

typedef struct mirror {
    cursor *c;
    size_t n, cap;
} mirror;

static void publish_rows(jobs *J, cursor *c)
{
    store_series s = {0};
    vaed_err err;
    if (store_metrics_range(J->st, c->job, c->step, -1, STORE_MCOL_ALL, 0, &s, &err))
        return;
    for (size_t i = 0; i < s.n; i++) {
        bus_step bs = {.step = s.step[i]};
#define COPY(ID, name, unit, flags, meaning) \
    bs.name = s.col[STORE_M_##ID] ? s.col[STORE_M_##ID][i] : NAN;
        VAE_METRIC_FIELDS(COPY)
#undef COPY
        /* the rate from the rows' finishing times, over a second or so as the worker's
         * (batches of train.batch_size: an epoch's short last batch counts whole) */
        const double t = bs.time;
        if (c->batch > 0 && c->ref_t > 0 && t > c->ref_t && bs.step > c->ref_step)
            bs.samples_per_sec = (double)c->batch * (double)(bs.step - c->ref_step) / (t - c->ref_t);
        if (isfinite(t) && t > 0 && (c->ref_t <= 0 || t - c->ref_t >= 1.0 || t < c->ref_t)) {
            c->ref_t = t;
            c->ref_step = bs.step;
        }
        bus_publish_step(J->cfg.bus, c->job, &bs);
        c->step = s.step[i];
    }
    store_series_free(&s);
}

/* Epochs past c->epoch whose rows are all there: the test row (written right after the
 * train row), or a later step's row, or a finished job. */
static void publish_epochs(jobs *J, cursor *c, int first, int final)
{
    store_epoch *e = NULL;
    size_t n = 0;
    vaed_err err;
    if (store_epochs_list(J->st, c->job, &e, &n, &err))
        return;
    for (size_t i = 0; i < n; i++) {
        if (e[i].epoch <= c->epoch)
            continue;
        if (first) {
            c->epoch = e[i].epoch;
            continue;
        }
        if (strcmp(e[i].split, "train"))
            continue;
        const store_epoch *te = NULL; /* the same epoch's test row (the list is by split) */
        for (size_t j = 0; j < n; j++)
            if (e[j].epoch == e[i].epoch && !strcmp(e[j].split, "test"))
                te = &e[j];
        if (!te && !final && c->step < e[i].step)
            break; /* its test row may be on its way */
        bus_epoch be = {.epoch = (int)e[i].epoch, .step = e[i].step, .train_loss = NAN,
                        .train_xent = e[i].xent, .train_kl = e[i].kl, .train_elbo = e[i].elbo,
                        .train_beta = NAN, .has_test = te != NULL, .eval_s = NAN};
        if (te) {
            be.xent = te->xent;
            be.kl = te->kl;
            be.elbo = te->elbo;
            be.active_units = te->active_units;
        }
        bus_publish_epoch(J->cfg.bus, c->job, &be);
        c->epoch = e[i].epoch;
    }
    store_epochs_free(e, n);
}

static void publish_changes(jobs *J, cursor *c, int first)
{
    store_event *ev = NULL;
    size_t n = 0;
    vaed_err err;
    if (store_events_list(J->st, c->job, &ev, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++)
            if (ev[i].seq > c->seq) {
                if (!first)
                    bus_publish_schedule(J->cfg.bus, c->job, ev[i].effective_step,
                                         ev[i].schedule);
                c->seq = ev[i].seq;
            }
        store_events_free(ev, n);
    }
    store_ckpt *k = NULL;
    if (store_checkpoints_list(J->st, c->job, &k, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++)
            if (k[i].step > c->ckpt) {
                if (!first)
                    bus_publish_checkpoint(J->cfg.bus, c->job, k[i].step, k[i].kind);
                c->ckpt = k[i].step;
            }
        free(k);
    }
}

/* One look at a job run elsewhere: what is new since the last. */
static void follow(jobs *J, cursor *c, int first)
{
    store_job sj;
    vaed_err err;
    if (store_job_get(J->st, c->job, &sj, &err))
        return;
    if (first) {
        c->step = sj.step - 1;
        json_t *spec = json_loads(sj.spec ? sj.spec : "", 0, NULL);
        json_int_t b = json_integer_value(json_object_get(json_object_get(spec, "train"),
                                                          "batch_size"));
        c->batch = b > 0 && b < INT32_MAX ? (int)b : 0;
        json_decref(spec);
    }
    int final = bus_state_final(sj.state);
    publish_rows(J, c);
    publish_changes(J, c, first);
    publish_epochs(J, c, first, final);
    /* Under mu, and only while no worker here holds the job: a worker sets leased before
     * it publishes "running", so a state read before its take cannot follow that one.
     * A final state is never followed by another (a worker here may have published
     * its job's end before the row said so). */
    char now[16];
    pthread_mutex_lock(&J->mu);
    job *jb = job_find(J, c->job);
    if (!(jb && jb->leased) &&
        (!bus_state_of(J->cfg.bus, c->job, now) || (strcmp(now, sj.state) && !bus_state_final(now))))
        bus_publish_state(J->cfg.bus, c->job, sj.state, sj.reason);
    pthread_mutex_unlock(&J->mu);
    store_job_clear(&sj);
}

/* Is job run by a worker of this node (it holds its lease)? */
static int runs_here(jobs *J, int64_t id)
{
    pthread_mutex_lock(&J->mu);
    job *jb = job_find(J, id);
    int here = jb && jb->leased;
    pthread_mutex_unlock(&J->mu);
    return here;
}

static int named(const int64_t *ids, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return 1;
    return 0;
}

/* A pass over the jobs followed here: every one when full, else those hot names (and
 * the newly followed). */
static void pass(jobs *J, mirror *m, const int64_t *hot, size_t nhot, int full)
{
    int64_t ids[256];
    size_t n = bus_watched(J->cfg.bus, ids, 256);
    if (n > 256)
        n = 256; /* the rest at a later pass: the order varies */
    for (size_t i = 0; i < m->n; i++)
        m->c[i].live = 0;
    for (size_t k = 0; k < n; k++) {
        if (runs_here(J, ids[k]))
            continue;
        cursor *c = NULL;
        for (size_t i = 0; i < m->n && !c; i++)
            if (m->c[i].job == ids[k])
                c = &m->c[i];
        int first = !c;
        if (!c) {
            if (m->n == m->cap) {
                size_t nc = m->cap ? 2 * m->cap : 16;
                cursor *g = realloc(m->c, nc * sizeof *g);
                if (!g)
                    continue;
                m->c = g;
                m->cap = nc;
            }
            c = &m->c[m->n++];
            *c = (cursor){.job = ids[k], .step = -1};
        }
        c->live = 1;
        if (first || full || named(hot, nhot, c->job))
            follow(J, c, first);
    }
    size_t w = 0; /* forget the jobs no longer followed here, or run here now */
    for (size_t i = 0; i < m->n; i++)
        if (m->c[i].live)
            m->c[w++] = m->c[i];
    m->n = w;
}

static void *mirror_main(void *arg)
{
    jobs *J = arg;
    mirror m = {0};
    double last_full = 0;
    for (;;) {
        double t0 = job_mono();
        int64_t hot[MIRROR_HOT];
        size_t nhot = 0;
        /* (notifications that come during the nap below are read by the next one) */
        store_rows_nap(J->st, MIRROR_IDLE_MS, hot, MIRROR_HOT, &nhot);
        pthread_mutex_lock(&J->mu);
        int quit = J->cluster_quit;
        pthread_mutex_unlock(&J->mu);
        if (quit)
            break;
        double took_ms = (job_mono() - t0) * 1e3;
        if (took_ms < MIRROR_MIN_MS)
            job_nap_ms((long)(MIRROR_MIN_MS - took_ms));
        const int full = nhot > MIRROR_HOT || (job_mono() - last_full) * 1e3 >= MIRROR_FULL_MS;
        if (full)
            last_full = job_mono();
        pass(J, &m, hot, full ? 0 : nhot, full);
    }
    free(m.c);
    return NULL;
}

int mirror_start(jobs *J, vaed_err *err)
{
    if (!J->cluster || !J->cfg.bus)
        return 0;
    int rc = store_rows_listen(J->st, err);
    if (rc)
        return rc;
    if (pthread_create(&J->mirror_thread, NULL, mirror_main, J))
        return vaed_err_set(err, VAED_ENOMEM, NULL, "could not start the mirror thread");
    J->mirror_started = 1;
    return 0;
}

void mirror_join(jobs *J)
{
    if (J->mirror_started)
        pthread_join(J->mirror_thread, NULL);
    J->mirror_started = 0;
}
