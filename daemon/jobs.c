/* jobs.c — see jobs.h.
 *
 * Locking: one mutex (jobs.mu) guards the queue, the table of unfinished jobs and
 * every field of a job but its trainer, which only its worker touches. Workers hold
 * mu only to read control messages and publish their status snapshot, never across a
 * training step or a store call. Callers that wait for a worker (pause, cancel, a
 * schedule change) sleep on the job's condition variable.
 *
 * A job struct lives while anyone refers to it: the table holds one reference, a
 * running worker one, each waiting caller one. The last job_unref frees it. */
#include "daemon/jobs.h"
#include "daemon/paths.h"
#include "api/datasets.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon/bus.h"
#include "daemon/fork.h"
#include "daemon/log.h"
#include "vae/report.h"
#include "vae/spec.h"
#include "vae/train.h"

enum jstate { J_QUEUED, J_RUNNING, J_PAUSED, J_FINISHED };
static const char *jstate_name[] = {"queued", "running", "paused", "finished"};

enum { CTL_SCHED, CTL_LR };

/* A change posted by a client; answered by the worker (or by the caller itself for
 * queued and paused jobs). */
typedef struct ctl_msg {
    int kind;
    sched_spec s;
    double lr;
    double requested_at;
    int done, rc, abandoned;
    int64_t effective_step;
    sched_spec resolved;
    char msg[sizeof(((vaed_err *)0)->msg)];
    struct ctl_msg *next;
} ctl_msg;

typedef struct job {
    int64_t id;
    vae_spec spec;
    int64_t queue_seq;
    enum jstate state;
    int refs;
    int want_pause, want_cancel, want_ckpt;
    int64_t ckpt_result;        /* step of the last manual checkpoint, -1 none */
    int ckpt_rc;
    uint64_t ckpt_gen;          /* bumped when a manual checkpoint request is answered */
    ctl_msg *ctl_head, *ctl_tail;
    pthread_cond_t cv;          /* state changes and answered control messages */
    /* live snapshot */
    int has_live;
    int64_t step, total_steps, spe;
    double epoch, beta, loss, xent, kl, elbo, lr, grad_norm, sps, eta;
    char storage_wait[sizeof(((store_stats *)0)->last_error)]; /* non-empty: waiting for the store */
    struct job *next;           /* table of unfinished jobs */
} job;

struct jobs {
    store *st;
    jobs_config cfg;
    char data_dir[PATH_MAX];
    pthread_mutex_t mu;
    pthread_cond_t work;        /* a job was queued, or stopping */
    job *table;                 /* unfinished jobs */
    int stopping;
    int nworkers;
    pthread_t *workers;
};

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void jobs_config_default(jobs_config *c)
{
    memset(c, 0, sizeof *c);
    c->workers = 1;
    c->threads = 0;
    c->max_job_memory = (size_t)4 << 30;
    c->data_dir = NULL;
    c->max_queued = 1000;
    c->wait_s = 30.0;
}

/* ---- the table (all under mu) ------------------------------------------------------- */

static job *job_new(int64_t id, const vae_spec *spec, int64_t seq, enum jstate state)
{
    job *jb = xcalloc(1, sizeof *jb);
    jb->id = id;
    jb->spec = *spec;
    jb->queue_seq = seq;
    jb->state = state;
    jb->refs = 1;
    jb->ckpt_result = -1;
    pthread_cond_init(&jb->cv, NULL);
    return jb;
}

static void job_unref(job *jb)
{
    if (--jb->refs > 0)
        return;
    for (ctl_msg *m = jb->ctl_head, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    pthread_cond_destroy(&jb->cv);
    free(jb);
}

static job *find(jobs *J, int64_t id)
{
    for (job *jb = J->table; jb; jb = jb->next)
        if (jb->id == id)
            return jb;
    return NULL;
}

static void table_add(jobs *J, job *jb)
{
    jb->next = J->table;
    J->table = jb;
}

/* Drop jb from the table (its table reference) and mark it finished. */
static void table_remove(jobs *J, job *jb)
{
    for (job **p = &J->table; *p; p = &(*p)->next)
        if (*p == jb) {
            *p = jb->next;
            jb->state = J_FINISHED;
            pthread_cond_broadcast(&jb->cv);
            job_unref(jb);
            return;
        }
}

/* The next job to run: highest priority, then lowest queue_seq. */
static job *next_queued(jobs *J)
{
    job *best = NULL;
    for (job *jb = J->table; jb; jb = jb->next)
        if (jb->state == J_QUEUED &&
            (!best || jb->spec.priority > best->spec.priority ||
             (jb->spec.priority == best->spec.priority && jb->queue_seq < best->queue_seq)))
            best = jb;
    return best;
}

static int count_queued(jobs *J)
{
    int n = 0;
    for (job *jb = J->table; jb; jb = jb->next)
        n += jb->state == J_QUEUED;
    return n;
}

/* Answer every pending control message of jb with rc (the job ended or cannot run). */
static void answer_all(job *jb, int rc, const char *why)
{
    while (jb->ctl_head) {
        ctl_msg *m = jb->ctl_head;
        jb->ctl_head = m->next;
        m->done = 1;
        m->rc = rc;
        snprintf(m->msg, sizeof m->msg, "%s", why);
        if (m->abandoned)
            free(m);
    }
    jb->ctl_tail = NULL;
    pthread_cond_broadcast(&jb->cv);
}

/* ---- the worker --------------------------------------------------------------------- */

typedef struct run {
    jobs *J;
    job *jb;
    vae_trainer *t;
    store_event *events;        /* overrides to re-apply after a restore */
    size_t n_events, next_event;
    int64_t last_ckpt_step;
    double last_ckpt_time;
    double rate_t0;
    int64_t rate_s0;
    double last_progress;
} run;

/* Sleep ms milliseconds: the pause between tries while the store cannot write. */
static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static int store_is_failing(store *st)
{
    store_stats ss;
    store_get_stats(st, &ss);
    return ss.failing;
}

/* Take a checkpoint. A waited one (pause, final, a learning-rate change) that the store
 * cannot write because it is failing (disk full, I/O errors) is tried again every
 * 200 ms until the store recovers, rather than failing the job: the training state is
 * still in memory and nothing is lost by waiting. Only a stopping daemon gives up, and
 * then the job resumes from its previous checkpoint at the next start. */
static int checkpoint(run *r, const char *kind, int wait, vaed_err *err)
{
    const vae_spec *s = &r->jb->spec;
    for (int attempt = 0;; attempt++) {
        void *blob = NULL;
        size_t len = 0;
        int rc = vae_trainer_save(r->t, &blob, &len, err);
        if (rc && (rc != VAED_ENOMEM || !wait))
            return rc;
        long step = vae_trainer_step_index(r->t);
        store_ckpt_put req = {
            .job = r->jb->id, .step = step,
            .epoch = (double)step / (double)vae_trainer_steps_per_epoch(r->t),
            .kind = kind, .blob = blob, .size = len, .keep = s->checkpoint.keep,
            .keep_epoch_end = s->checkpoint.keep_epoch_end, .wait = wait, .give = 1,
        };
        if (!wait && store_is_failing(r->J->st)) {
            /* A periodic or epoch-end checkpoint while the store cannot write would only
             * pile megabytes into its retry queue (and the queue is retried as one
             * transaction: on a full disk it could never fit). Skip it: the next one,
             * or a waited one, supersedes it. */
            free(blob);
            return 0;
        }
        if (rc == 0)
            rc = store_checkpoint_put(r->J->st, &req, err); /* the blob is the store's now */
        if (rc == 0) {
            r->last_ckpt_step = step;
            r->last_ckpt_time = mono();
            bus_publish_checkpoint(r->J->cfg.bus, r->jb->id, step, kind);
            if (attempt > 0)
                log_msg(LOG_INFO, "job %lld: %s checkpoint written after %d retries",
                        (long long)r->jb->id, kind, attempt);
            return 0;
        }
        pthread_mutex_lock(&r->J->mu);
        int stopping = r->J->stopping;
        /* Out of memory (the blob, or the store's copy) passes like a failing disk:
         * a job that trained to its end must not fail for one failed allocation. */
        int retry = rc == VAED_EDB || rc == VAED_ENOMEM;
        if (wait && retry && !stopping)
            snprintf(r->jb->storage_wait, sizeof r->jb->storage_wait, "%s", err->msg);
        pthread_mutex_unlock(&r->J->mu);
        if (!wait || !retry || stopping)
            return rc;
        if (attempt == 0)
            log_msg(LOG_WARN, "job %lld: %s checkpoint waits for the store: %s",
                    (long long)r->jb->id, kind, err->msg);
        nap_ms(200);
    }
}

/* Apply one schedule change now, at the top of the step about to run, and record it
 * durably before that step runs. */
static int apply_schedule(run *r, const sched_spec *s, double requested_at, int record,
                          int64_t *eff, sched_spec *resolved, vaed_err *err)
{
    long e;
    sched_spec res;
    vae_trainer_set_schedule(r->t, s, &res, &e);
    if (eff)
        *eff = e;
    if (resolved)
        *resolved = res;
    if (!record)
        return 0;
    json_t *sj = sched_to_json(&res);
    char *text = json_dumps(sj, JSON_COMPACT);
    json_decref(sj);
    int rc = store_event_add(r->J->st, r->jb->id, requested_at, e, text, "override", 1, NULL,
                             err);
    if (rc == 0)
        bus_publish_schedule(r->J->cfg.bus, r->jb->id, e, text);
    free(text);
    return rc;
}

/* Re-apply recorded overrides whose effective step is the step about to run. */
static int replay_events(run *r, vaed_err *err)
{
    long step = vae_trainer_step_index(r->t);
    while (r->next_event < r->n_events && r->events[r->next_event].effective_step <= step) {
        store_event *ev = &r->events[r->next_event++];
        if (ev->effective_step < step)
            continue; /* already part of the restored state */
        json_error_t je;
        json_t *doc = json_loads(ev->schedule, 0, &je);
        sched_spec s;
        int rc = doc ? sched_parse(&s, doc, "schedule", 0, err) : VAED_EINVAL;
        json_decref(doc);
        if (rc)
            return vaed_err_set(err, VAED_EINVAL, NULL,
                                "recorded schedule change %lld cannot be read back",
                                (long long)ev->seq);
        /* A fork's own schedule (its 'submit' event at its first step, daemon/fork.h) is
         * put in force only when it differs from the one its checkpoint carries: putting
         * the same schedule again would restart a controller's state, and a fork with no
         * overrides must continue exactly as its parent did. */
        if (!strcmp(ev->source, "submit") && fork_same_schedule(&s, vae_trainer_schedule(r->t)))
            continue;
        apply_schedule(r, &s, 0, 0, NULL, NULL, NULL);
    }
    return 0;
}

static void publish(run *r, const vae_metrics *m)
{
    job *jb = r->jb;
    double now = mono();
    if (now - r->rate_t0 >= 1.0) {
        int64_t steps = m->step + 1 - r->rate_s0;
        double rows = (double)steps * jb->spec.train.batch_size;
        jb->sps = rows / (now - r->rate_t0);
        r->rate_t0 = now;
        r->rate_s0 = m->step + 1;
    }
    jb->has_live = 1;
    jb->step = m->step + 1;
    jb->epoch = (double)(m->step + 1) / (double)jb->spe;
    jb->beta = m->beta;
    jb->loss = m->loss;
    jb->xent = m->xent;
    jb->kl = m->kl;
    jb->elbo = m->elbo;
    jb->lr = m->lr;
    jb->grad_norm = m->grad_norm;
    if (jb->sps > 0)
        jb->eta = (double)(jb->total_steps - jb->step) * jb->spec.train.batch_size / jb->sps;
}

static void store_step(run *r, const vae_metrics *m)
{
    store_metric row = {
        .step = m->step, .epoch = m->epoch, .beta = m->beta, .loss = m->loss,
        .xent = m->xent, .kl = m->kl, .elbo = m->elbo, .lr = m->lr,
        .grad_norm = m->grad_norm, .capacity = m->capacity, .time = m->time,
        .n_groups = m->n_groups, .kl_groups = m->kl_group,
    };
    vaed_err err;
    /* A failed allocation is worth waiting out: a row not queued is a step missing from
     * the job's metrics for good (nothing recomputes it unless the daemon restarts). */
    int rc;
    for (int tries = 0; (rc = store_metrics_append(r->J->st, r->jb->id, &row, 1, &err)) ==
                            VAED_ENOMEM && tries < 50; tries++) {
        nap_ms(10);
    }
    if (rc)
        log_msg(LOG_WARN, "job %lld: metrics not queued: %s", (long long)r->jb->id, err.msg);
}

/* Backpressure. When the store cannot write (disk full, I/O errors) it keeps what is
 * queued in memory and retries; a job that trained on would grow that queue without
 * bound and end up with rows refused. So while the store is failing with more than
 * STORE_WAIT_BYTES queued, the worker does not step: it sleeps a little and goes back
 * to the top of its loop (so pause, cancel and shutdown still act), and the job's status
 * says why. It also stops once the oldest unwritten operation is STORE_WAIT_LAG seconds
 * old: steps trained while nothing reaches the disk would be lost by a crash. Training
 * carries on by itself once the store has caught up. Returns 1 when the worker should
 * not step now. */
#define STORE_WAIT_BYTES ((size_t)64 << 20)
#define STORE_WAIT_LAG 2.0

static int storage_behind(run *r)
{
    store_stats ss;
    store_get_stats(r->J->st, &ss);
    int behind = ss.failing && (ss.pending_bytes > STORE_WAIT_BYTES || ss.lag > STORE_WAIT_LAG);
    job *jb = r->jb;
    pthread_mutex_lock(&r->J->mu);
    int was = jb->storage_wait[0] != '\0';
    if (behind)
        snprintf(jb->storage_wait, sizeof jb->storage_wait, "%s",
                 ss.last_error[0] ? ss.last_error : "the store is not writing");
    else
        jb->storage_wait[0] = '\0';
    pthread_mutex_unlock(&r->J->mu);
    if (behind && !was)
        log_msg(LOG_WARN, "job %lld waits: the store is failing with %zu MiB queued (%s)",
                (long long)jb->id, ss.pending_bytes >> 20, ss.last_error);
    else if (!behind && was)
        log_msg(LOG_INFO, "job %lld goes on: the store is writing again", (long long)jb->id);
    if (behind) {
        nap_ms(200);
    }
    return behind;
}

static void store_epoch_rows(run *r, const vae_epoch_metrics *e)
{
    store_epoch tr = {.epoch = e->epoch, .step = e->step, .xent = e->train_xent,
                      .kl = e->train_kl, .elbo = e->train_elbo, .time = now_unix()};
    snprintf(tr.split, sizeof tr.split, "train");
    store_epoch_put(r->J->st, r->jb->id, &tr, NULL);
    if (e->has_test) {
        store_epoch te = {.epoch = e->epoch, .step = e->step, .xent = e->xent, .kl = e->kl,
                          .elbo = e->elbo, .time = now_unix(), .active_units = e->active_units,
                          .n_dims = e->n_latent, .kl_dims = (double *)e->kl_dim};
        snprintf(te.split, sizeof te.split, "test");
        store_epoch_put(r->J->st, r->jb->id, &te, NULL);
    }
}

/* Set the stored state, logging (not failing) on a store error: the job's fate is
 * decided; a store that cannot write says so in its own stats and log. */
static void set_state(jobs *J, int64_t id, const char *state, const char *reason)
{
    vaed_err err;
    /* A few quick tries: a state write lost to one failed allocation would leave the
     * store saying "running" about a job that has ended, until the daemon restarts. */
    int rc;
    for (int tries = 0; (rc = store_job_set_state(J->st, id, state, reason, &err)) != 0 &&
                        (rc == VAED_ENOMEM || rc == VAED_EDB) && tries < 10; tries++) {
        nap_ms(50);
    }
    if (rc)
        log_msg(LOG_ERROR, "job %lld: could not record state %s: %s", (long long)id, state,
                err.msg);
    bus_publish_state(J->cfg.bus, id, state, reason);
    if (reason)
        log_msg(LOG_INFO, "job %lld %s: %s", (long long)id, state, reason);
    else
        log_msg(LOG_INFO, "job %lld %s", (long long)id, state);
}

/* Estimated bytes a job needs once its data is loaded. */
static size_t job_bytes(const vae_spec *s, const vae_dataset *train, const vae_dataset *test)
{
    return vae_model_bytes(s, (int)train->dim, s->train.batch_size) + vae_dataset_bytes(train) +
           (test ? vae_dataset_bytes(test) : 0);
}

enum outcome { OUT_COMPLETED, OUT_FAILED, OUT_CANCELLED, OUT_PAUSED, OUT_INTERRUPTED };

/* Train jb until it ends, pauses, is cancelled or the daemon stops. */
static int check_path(jobs *J, const char *path, const char *field, vaed_err *err);

static enum outcome run_job(jobs *J, job *jb, char *reason, size_t reason_len)
{
    run r = {.J = J, .jb = jb, .last_ckpt_step = -1};
    vaed_err err;
    vaed_err_clear(&err);
    enum outcome out = OUT_FAILED;
    vae_spec spec = jb->spec;
    if (J->cfg.threads > 0)
        spec.train.threads = J->cfg.threads;

    vae_dataset *train = NULL, *test = NULL;
    /* The paths were checked at submit; a symlink swapped in since must not lead out of
     * the data directory now (the window left is between this check and the open). */
    if (check_path(J, spec.dataset.path, "dataset.path", &err) ||
        check_path(J, spec.dataset.test_path, "dataset.test_path", &err))
        goto failed;
    if (vae_data_load(&spec.dataset, &train, &test, &err))
        goto failed;
    size_t need = job_bytes(&spec, train, test);
    if (need > J->cfg.max_job_memory) {
        vae_dataset_free(train);
        vae_dataset_free(test);
        vaed_err_set(&err, VAED_ETOOBIG, NULL,
                     "needs about %zu MiB, over --max-job-memory (%zu MiB)", need >> 20,
                     J->cfg.max_job_memory >> 20);
        goto failed;
    }
    if (vae_trainer_new_with_data(&r.t, &spec, train, test, &err))
        goto failed;

    /* Restore the newest checkpoint, if any, and the overrides recorded since. */
    void *blob = NULL;
    size_t len = 0;
    store_ckpt meta;
    int rc = store_checkpoint_get(J->st, jb->id, -1, &meta, &blob, &len, &err);
    if (rc == 0) {
        rc = vae_trainer_load(r.t, blob, len, &err);
        free(blob);
        if (rc)
            goto failed;
        /* A fork's starting checkpoint carries its parent's learning rate; the fork's
         * own (its spec's, daemon/fork.h) is in force from its first step. */
        if (!strcmp(meta.kind, "fork"))
            vae_trainer_set_lr(r.t, spec.optimizer.lr);
        log_msg(LOG_INFO, "job %lld resumes from its checkpoint at step %ld", (long long)jb->id,
                vae_trainer_step_index(r.t));
    } else if (rc != VAED_ENOTFOUND) {
        goto failed;
    }
    vaed_err_clear(&err);
    if (store_events_list(J->st, jb->id, &r.events, &r.n_events, &err))
        goto failed;
    /* keep the overrides that governed steps, in order, and a fork's starting schedule
     * (a 'submit' event past step 0) */
    size_t k = 0;
    for (size_t i = 0; i < r.n_events; i++) {
        if (!r.events[i].superseded && (!strcmp(r.events[i].source, "override") ||
                                        r.events[i].effective_step > 0)) {
            store_event tmp = r.events[k];
            r.events[k++] = r.events[i];
            r.events[i] = tmp;
        }
    }
    for (size_t i = k; i < r.n_events; i++)
        free(r.events[i].schedule);
    r.n_events = k;

    pthread_mutex_lock(&J->mu);
    jb->spe = vae_trainer_steps_per_epoch(r.t);
    jb->total_steps = vae_trainer_total_steps(r.t);
    jb->step = vae_trainer_step_index(r.t);
    jb->beta = vae_trainer_beta(r.t);
    jb->lr = spec.optimizer.lr;
    pthread_mutex_unlock(&J->mu);
    r.rate_t0 = mono();
    r.rate_s0 = vae_trainer_step_index(r.t);
    r.last_ckpt_time = mono();
    r.last_ckpt_step = vae_trainer_step_index(r.t);

    const vae_ckpt_spec *cs = &spec.checkpoint;
    for (;;) {
        if (replay_events(&r, &err))
            goto failed;
        /* Drain the control block. Changes first, so that a change posted just before a
         * pause is part of the paused state. */
        pthread_mutex_lock(&J->mu);
        ctl_msg *msgs = jb->ctl_head;
        jb->ctl_head = jb->ctl_tail = NULL;
        int stop = J->stopping, cancel = jb->want_cancel, pause = jb->want_pause,
            ckpt = jb->want_ckpt;
        jb->want_ckpt = 0;
        pthread_mutex_unlock(&J->mu);
        for (ctl_msg *m = msgs, *n; m; m = n) {
            n = m->next; /* m may be freed by its caller as soon as it is marked done */
            vaed_err e2;
            vaed_err_clear(&e2);
            int mrc = 0;
            if (vae_trainer_finished(r.t)) {
                mrc = vaed_err_set(&e2, VAED_ESTATE, NULL, "the job has finished");
            } else if (m->kind == CTL_SCHED) {
                mrc = apply_schedule(&r, &m->s, m->requested_at, 1, &m->effective_step,
                                     &m->resolved, &e2);
                /* A live change supersedes every recorded one still waiting to be
                 * replayed (they take effect at this step or later; the store has just
                 * marked them superseded too). */
                if (mrc == 0)
                    r.next_event = r.n_events;
            } else {
                /* The learning rate is part of the training state: a checkpoint taken
                 * now, and committed before the reply, is how the change survives a
                 * crash (recovery restarts from it, or from a later one). */
                vae_trainer_set_lr(r.t, m->lr);
                m->effective_step = vae_trainer_step_index(r.t);
                mrc = checkpoint(&r, "manual", 1, &e2);
            }
            pthread_mutex_lock(&J->mu);
            m->rc = mrc;
            snprintf(m->msg, sizeof m->msg, "%s", e2.msg);
            m->done = 1;
            if (m->abandoned) /* its caller gave up waiting: ours to free */
                free(m);
            else
                pthread_cond_broadcast(&jb->cv);
            pthread_mutex_unlock(&J->mu);
        }

        if (ckpt) {
            int crc = checkpoint(&r, "manual", 1, &err);
            pthread_mutex_lock(&J->mu);
            jb->ckpt_rc = crc;
            jb->ckpt_result = vae_trainer_step_index(r.t);
            jb->ckpt_gen++;
            pthread_cond_broadcast(&jb->cv);
            pthread_mutex_unlock(&J->mu);
        }
        if (cancel) {
            out = OUT_CANCELLED;
            break;
        }
        if (stop || pause) {
            if (checkpoint(&r, "pause", 1, &err)) {
                vaed_err_prefix(&err, "checkpoint at %s failed: ", pause ? "pause" : "shutdown");
                goto failed;
            }
            out = stop ? OUT_INTERRUPTED : OUT_PAUSED;
            if (pause && !stop) {
                pthread_mutex_lock(&J->mu);
                jb->step = vae_trainer_step_index(r.t);
                jb->beta = vae_trainer_beta(r.t);
                pthread_mutex_unlock(&J->mu);
            }
            break;
        }
        if (vae_trainer_finished(r.t)) {
            if (checkpoint(&r, "final", 1, &err)) {
                vaed_err_prefix(&err, "final checkpoint failed: ");
                goto failed;
            }
            out = OUT_COMPLETED;
            break;
        }

        if (storage_behind(&r))
            continue;
        vae_metrics m;
        if (vae_trainer_step(r.t, &m, &err))
            goto failed;
        store_step(&r, &m);
        pthread_mutex_lock(&J->mu);
        publish(&r, &m);
        double sps = jb->sps;
        pthread_mutex_unlock(&J->mu);
        if (J->cfg.bus) { /* O(1), throttled by the bus; never waits for a client */
            bus_step bs = {.step = m.step, .epoch = m.epoch, .beta = m.beta,
                           .capacity = m.capacity, .loss = m.loss, .xent = m.xent, .kl = m.kl,
                           .elbo = m.elbo, .lr = m.lr, .grad_norm = m.grad_norm,
                           .time = m.time, .samples_per_sec = sps};
            bus_publish_step(J->cfg.bus, jb->id, &bs);
        }

        long step = vae_trainer_step_index(r.t);
        if (vae_trainer_epoch_done(r.t)) {
            vae_epoch_metrics em;
            if (vae_trainer_evaluate(r.t, &em, &err))
                goto failed;
            store_epoch_rows(&r, &em);
            if (J->cfg.bus) {
                bus_epoch be = {.epoch = em.epoch, .step = em.step, .train_loss = em.train_loss,
                                .train_xent = em.train_xent, .train_kl = em.train_kl,
                                .train_elbo = em.train_elbo, .train_beta = em.train_beta,
                                .has_test = em.has_test, .xent = em.xent, .kl = em.kl,
                                .elbo = em.elbo, .active_units = em.active_units,
                                .eval_s = em.eval_s};
                bus_publish_epoch(J->cfg.bus, jb->id, &be);
            }
            log_msg(LOG_INFO, "job %lld epoch %d: train loss %.3f%s%.3f", (long long)jb->id,
                    em.epoch, em.train_loss, em.has_test ? ", test elbo " : ", train elbo ",
                    em.has_test ? em.elbo : em.train_elbo);
            if (cs->at_epoch_end && !vae_trainer_finished(r.t) &&
                checkpoint(&r, "epoch", 0, &err))
                log_msg(LOG_WARN, "job %lld: epoch checkpoint: %s", (long long)jb->id, err.msg);
        }
        if (r.last_ckpt_step != step && !vae_trainer_finished(r.t) &&
            ((cs->every_steps > 0 && step % cs->every_steps == 0) ||
             (cs->every_seconds > 0 && mono() - r.last_ckpt_time >= cs->every_seconds))) {
            if (checkpoint(&r, "periodic", 0, &err))
                log_msg(LOG_WARN, "job %lld: checkpoint: %s", (long long)jb->id, err.msg);
        }
        if (mono() - r.last_progress >= 1.0) {
            store_job_set_progress(J->st, jb->id, step, (double)step / jb->spe, 0, NULL);
            r.last_progress = mono();
        }
    }
    if (r.t) {
        long step = vae_trainer_step_index(r.t);
        store_job_set_progress(J->st, jb->id, step, (double)step / jb->spe, 0, NULL);
    }
    store_events_free(r.events, r.n_events);
    vae_trainer_free(r.t);
    return out;

failed:
    snprintf(reason, reason_len, "%s", err.msg[0] ? err.msg : "unknown error");
    store_events_free(r.events, r.n_events);
    if (r.t) {
        long step = vae_trainer_step_index(r.t);
        store_job_set_progress(J->st, jb->id, step, (double)step / (jb->spe ? jb->spe : 1), 0,
                               NULL);
    }
    vae_trainer_free(r.t);
    return OUT_FAILED;
}

static void *worker_main(void *arg)
{
    jobs *J = arg;
    pthread_mutex_lock(&J->mu);
    for (;;) {
        job *jb = NULL;
        while (!J->stopping && !(jb = next_queued(J)))
            pthread_cond_wait(&J->work, &J->mu);
        if (J->stopping)
            break;
        jb->state = J_RUNNING;
        jb->refs++;
        jb->want_pause = 0;
        pthread_mutex_unlock(&J->mu);

        set_state(J, jb->id, "running", NULL);
        char reason[512] = "";
        enum outcome out = run_job(J, jb, reason, sizeof reason);

        static const char *names[] = {"completed", "failed", "cancelled", "paused", "interrupted"};
        set_state(J, jb->id, names[out], out == OUT_FAILED ? reason : NULL);
        pthread_mutex_lock(&J->mu);
        jb->refs--; /* the worker's reference; the table still holds one */
        if (out == OUT_PAUSED) {
            jb->state = J_PAUSED;
            jb->want_pause = 0;
            answer_all(jb, VAED_ESTATE, "the job paused");
            pthread_cond_broadcast(&jb->cv);
        } else {
            answer_all(jb, VAED_ESTATE,
                       out == OUT_INTERRUPTED ? "the daemon is stopping" : "the job has finished");
            table_remove(J, jb);
        }
    }
    pthread_mutex_unlock(&J->mu);
    return NULL;
}

/* ---- start and stop ----------------------------------------------------------------- */

static int spec_from_text(const char *text, vae_spec *out, vaed_err *err)
{
    return vae_spec_parse_text(out, text, strlen(text), err);
}

int jobs_start(jobs **out, store *st, const jobs_config *cfg, vaed_err *err)
{
    *out = NULL;
    jobs *J = xcalloc(1, sizeof *J);
    J->st = st;
    J->cfg = *cfg;
    if (J->cfg.workers < 1)
        J->cfg.workers = 1;
    if (cfg->data_dir) {
        if (!realpath(cfg->data_dir, J->data_dir)) {
            int rc = vaed_err_set(err, VAED_EINVAL, "data-dir", "%s: %s", cfg->data_dir,
                                  strerror(errno));
            free(J);
            return rc;
        }
        J->cfg.data_dir = J->data_dir;
    }
    pthread_mutex_init(&J->mu, NULL);
    pthread_cond_init(&J->work, NULL);

    /* Unfinished jobs back into the queue, in their stored order. */
    store_job_list l = {0};
    int rc = store_jobs_resumable(st, &l, err);
    if (rc)
        goto fail;
    for (size_t i = 0; i < l.n; i++) {
        store_job *sj = &l.jobs[i];
        vae_spec spec;
        vaed_err e2;
        /* a second try first: jansson reports a failed allocation as a syntax error,
         * and a job must not fail for good on a transient one */
        if (spec_from_text(sj->spec, &spec, &e2) && spec_from_text(sj->spec, &spec, &e2)) {
            char why[600];
            snprintf(why, sizeof why, "stored spec no longer valid: %s", e2.msg);
            set_state(J, sj->id, "failed", why);
            continue;
        }
        if (strcmp(sj->state, "queued")) {
            log_msg(LOG_INFO, "job %lld was %s: queued to resume", (long long)sj->id, sj->state);
            set_state(J, sj->id, "queued", NULL);
        }
        table_add(J, job_new(sj->id, &spec, sj->queue_seq, J_QUEUED));
    }
    store_job_list_free(&l);
    /* Paused jobs wait for a resume. */
    int64_t after = 0;
    do {
        if ((rc = store_jobs_list(st, STORE_PAUSED, after, 500, &l, err)))
            goto fail;
        for (size_t i = 0; i < l.n; i++) {
            vae_spec spec;
            if (spec_from_text(l.jobs[i].spec, &spec, NULL) == 0 ||
                spec_from_text(l.jobs[i].spec, &spec, NULL) == 0) {
                job *jb = job_new(l.jobs[i].id, &spec, l.jobs[i].queue_seq, J_PAUSED);
                jb->step = l.jobs[i].step;
                table_add(J, jb);
            }
        }
        after = l.next_after;
        store_job_list_free(&l);
    } while (after > 0);

    J->nworkers = J->cfg.workers;
    J->workers = xcalloc((size_t)J->nworkers, sizeof *J->workers);
    for (int i = 0; i < J->nworkers; i++)
        if (pthread_create(&J->workers[i], NULL, worker_main, J)) {
            J->nworkers = i;
            jobs_stop(J);
            return vaed_err_set(err, VAED_ENOMEM, NULL, "could not start worker threads");
        }
    *out = J;
    return 0;
fail:
    store_job_list_free(&l);
    for (job *jb = J->table, *n; jb; jb = n) {
        n = jb->next;
        job_unref(jb);
    }
    pthread_mutex_destroy(&J->mu);
    pthread_cond_destroy(&J->work);
    free(J);
    return rc;
}

void jobs_stop(jobs *J)
{
    if (!J)
        return;
    pthread_mutex_lock(&J->mu);
    J->stopping = 1;
    pthread_cond_broadcast(&J->work);
    pthread_mutex_unlock(&J->mu);
    for (int i = 0; i < J->nworkers; i++)
        pthread_join(J->workers[i], NULL);
    free(J->workers);
    pthread_mutex_lock(&J->mu);
    for (job *jb = J->table, *n; jb; jb = n) {
        n = jb->next;
        answer_all(jb, VAED_ESTATE, "the daemon is stopping");
        job_unref(jb);
    }
    J->table = NULL;
    pthread_mutex_unlock(&J->mu);
    pthread_mutex_destroy(&J->mu);
    pthread_cond_destroy(&J->work);
    free(J);
}

/* ---- client calls ------------------------------------------------------------------- */

/* A server-side path must lie inside the data directory, both as written and once
 * every symlink is resolved. A path outside is refused (403) before the file system is
 * asked anything, so a client cannot learn which files exist elsewhere; only a path
 * inside can get "no such file" (422). */
static int check_path(jobs *J, const char *path, const char *field, vaed_err *err)
{
    if (!path[0] || api_datasets_owns_path(path)) /* an uploaded dataset (api/datasets.h) */
        return 0;
    if (!J->cfg.data_dir)
        return vaed_err_set(err, VAED_EPERM, field,
                            "server-side dataset paths are off (start the daemon with --data-dir)");
    return path_check_inside(path, J->cfg.data_dir, field, NULL, err);
}

/* Bytes a job is expected to need, before its data is read: the model at the data's
 * width and the data in memory. For built-in data both are known; for a file, its
 * size stands in for the data and the width is taken as 1 (the exact figure is
 * checked again once the data is loaded, failing the job if it is over). */
static size_t estimate(const vae_spec *s)
{
    long n = 70000, D = 784;
    size_t data = (size_t)n * D;
    if (s->dataset.path[0]) {
        struct stat sb;
        data = stat(s->dataset.path, &sb) == 0 ? (size_t)sb.st_size * 4 : 0;
        D = 1;
    } else if (s->dataset.limit > 0 && s->dataset.limit < 60000) {
        data = (size_t)(s->dataset.limit + 10000) * D;
    }
    return vae_model_bytes(s, (int)D, s->train.batch_size) + data;
}

/* jobs_submit of a spec document; fp says whether it is a fork (daemon/fork.h). */
static int submit_spec(jobs *J, const json_t *doc, fork_plan *fp, int64_t *id, vaed_err *err)
{
    vae_spec spec;
    int rc = api_datasets_spec_parse(J->st, &spec, doc, err); /* dataset.id → its file */
    if (rc)
        return rc;
    /* Resolve relative paths against the data directory, so the stored spec is the
     * file that is read, whatever the daemon's working directory later is. */
    const char *fields[2] = {"dataset.path", "dataset.test_path"};
    char *paths[2] = {spec.dataset.path, spec.dataset.test_path};
    for (int i = 0; i < 2; i++) {
        if ((rc = check_path(J, paths[i], fields[i], err)))
            return rc;
        if (paths[i][0] && paths[i][0] != '/') {
            char full[PATH_MAX * 2];
            snprintf(full, sizeof full, "%s/%s", J->cfg.data_dir, paths[i]);
            if (strlen(full) >= sizeof spec.dataset.path)
                return vaed_err_set(err, VAED_EINVAL, fields[i], "path too long");
            snprintf(paths[i], sizeof spec.dataset.path, "%s", full);
        }
    }
    size_t need = estimate(&spec);
    if (need > J->cfg.max_job_memory)
        return vaed_err_set(err, VAED_ETOOBIG, "model",
                            "the job needs about %zu MiB, over the daemon's --max-job-memory of "
                            "%zu MiB",
                            need >> 20, J->cfg.max_job_memory >> 20);
    pthread_mutex_lock(&J->mu);
    int queued = count_queued(J);
    pthread_mutex_unlock(&J->mu);
    if (queued >= J->cfg.max_queued)
        return vaed_err_set(err, VAED_EBUSY, "queue", "%d jobs are queued already (the limit)",
                            queued);

    json_t *full = vae_spec_to_json(&spec);
    char *text = json_dumps(full, JSON_COMPACT);
    json_t *sj = sched_to_json(&spec.schedule);
    char *stext = json_dumps(sj, JSON_COMPACT);
    json_decref(full);
    json_decref(sj);
    if (!text || !stext) {
        free(stext);
        free(text);
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory writing the job spec");
    }
    store_job_new nj = {.name = spec.name, .spec = text, .priority = spec.priority,
                        .parent_id = fp->parent, .parent_step = fp->step};
    /* Both texts were just written from a parsed spec: a store that calls them invalid
     * met a failed allocation (jansson's dump can drop a key then, SQLite's json_valid
     * says 0), so the client hears that, not that its spec was wrong. */
    rc = store_job_insert(J->st, &nj, id, err);
    int inserted = rc == 0;
    if (rc == VAED_EINVAL)
        rc = VAED_ENOMEM;
    if (rc == 0)
        rc = fork_commit(J->st, *id, fp, err); /* a fork's starting checkpoint; else no-op */
    if (rc == 0 && (rc = store_event_add(J->st, *id, 0, fp->step, stext, "submit", 1, NULL,
                                         err)) == VAED_EINVAL)
        rc = VAED_ENOMEM;
    free(stext);
    free(text);
    if (rc && inserted) {
        /* The row is in the store but the submission failed: left queued, the next
         * start of the daemon would run a job its client was told did not exist. */
        char why[sizeof err->msg + 32];
        snprintf(why, sizeof why, "submission failed: %s", err ? err->msg : "store error");
        store_job_set_state(J->st, *id, "failed", why, NULL);
    }
    if (rc)
        return rc;
    store_job sjb;
    int64_t seq = 0;
    if (store_job_get(J->st, *id, &sjb, NULL) == 0) {
        seq = sjb.queue_seq;
        store_job_clear(&sjb);
    }
    bus_publish_state(J->cfg.bus, *id, "queued", NULL); /* before a worker can start it */
    pthread_mutex_lock(&J->mu);
    table_add(J, job_new(*id, &spec, seq, J_QUEUED));
    pthread_cond_signal(&J->work);
    pthread_mutex_unlock(&J->mu);
    log_msg(LOG_INFO, "job %lld queued: %s", (long long)*id, spec.name);
    return 0;
}

int jobs_submit(jobs *J, const json_t *doc, int64_t *id, vaed_err *err)
{
    /* A request with "from" becomes the child's full spec first (daemon/fork.h). */
    json_t *forked = NULL;
    fork_plan fp;
    int rc = fork_prepare(J->st, doc, &forked, &fp, err);
    if (rc == 0)
        rc = submit_spec(J, forked ? forked : doc, &fp, id, err);
    json_decref(forked);
    fork_plan_free(&fp);
    return rc;
}

/* The state of a job that is not in the table (finished, or unknown). */
static int state_elsewhere(jobs *J, int64_t id, vaed_err *err)
{
    store_job sj;
    int rc = store_job_get(J->st, id, &sj, err);
    if (rc == VAED_ENOTFOUND)
        return vaed_err_set(err, VAED_ENOTFOUND, NULL, "no job %lld", (long long)id);
    if (rc)
        return rc;
    rc = vaed_err_set(err, VAED_ESTATE, NULL, "job %lld is %s", (long long)id, sj.state);
    store_job_clear(&sj);
    return rc;
}

/* Wait (mu held) on jb's cv until pred(jb) or the wait limit; returns 1 if pred held. */
static int wait_for(jobs *J, job *jb, int (*pred)(job *, void *), void *arg)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    double w = J->cfg.wait_s;
    dl.tv_sec += (time_t)w;
    dl.tv_nsec += (long)((w - floor(w)) * 1e9);
    if (dl.tv_nsec >= 1000000000L)
        dl.tv_sec++, dl.tv_nsec -= 1000000000L;
    while (!pred(jb, arg))
        if (pthread_cond_timedwait(&jb->cv, &J->mu, &dl) == ETIMEDOUT)
            return pred(jb, arg);
    return 1;
}

/* Lock the manager and find job id in it. Returns the job with J->mu held, or NULL with
 * the lock released and *rc/err saying why: not found (404), finished (409), or — when
 * want >= 0 — not in the state `want` ("job 3 is paused; <only>"). */
static job *lock_job(jobs *J, int64_t id, int want, const char *only, int *rc, vaed_err *err)
{
    pthread_mutex_lock(&J->mu);
    job *jb = find(J, id);
    if (!jb) {
        pthread_mutex_unlock(&J->mu);
        *rc = state_elsewhere(J, id, err);
        return NULL;
    }
    if (want >= 0 && jb->state != (enum jstate)want) {
        *rc = vaed_err_set(err, VAED_ESTATE, NULL, "job %lld is %s; %s", (long long)id,
                           jstate_name[jb->state], only);
        pthread_mutex_unlock(&J->mu);
        return NULL;
    }
    return jb;
}

static int not_running(job *jb, void *arg)
{
    (void)arg;
    return jb->state != J_RUNNING;
}

int jobs_pause(jobs *J, int64_t id, vaed_err *err)
{
    int rc;
    job *jb = lock_job(J, id, J_RUNNING, "only a running job pauses", &rc, err);
    if (!jb)
        return rc;
    jb->want_pause = 1;
    jb->refs++;
    int ok = wait_for(J, jb, not_running, NULL);
    enum jstate st = jb->state;
    job_unref(jb);
    pthread_mutex_unlock(&J->mu);
    if (!ok)
        return vaed_err_set(err, VAED_EBUSY, NULL, "the job did not pause within %.0f s",
                            J->cfg.wait_s);
    if (st != J_PAUSED)
        return state_elsewhere(J, id, err);
    return 0;
}

int jobs_resume(jobs *J, int64_t id, vaed_err *err)
{
    int rc;
    job *jb = lock_job(J, id, J_PAUSED, "only a paused job resumes", &rc, err);
    if (!jb)
        return rc;
    pthread_mutex_unlock(&J->mu);
    /* front of the queue, durably, before a worker can pick it up */
    rc = store_job_requeue_front(J->st, id, err);
    if (rc == 0)
        rc = store_job_set_state(J->st, id, "queued", NULL, err);
    store_job sj;
    int64_t seq = INT64_MIN;
    if (rc == 0 && store_job_get(J->st, id, &sj, NULL) == 0) {
        seq = sj.queue_seq;
        store_job_clear(&sj);
    }
    pthread_mutex_lock(&J->mu);
    if (rc == 0 && jb == find(J, id) && jb->state == J_PAUSED) {
        bus_publish_state(J->cfg.bus, id, "queued", NULL); /* before a worker can start it */
        jb->queue_seq = seq;
        jb->state = J_QUEUED;
        pthread_cond_signal(&J->work);
    }
    pthread_mutex_unlock(&J->mu);
    if (rc == 0)
        log_msg(LOG_INFO, "job %lld resumed: front of the queue", (long long)id);
    return rc;
}

static int gone(job *jb, void *arg)
{
    (void)arg;
    return jb->state == J_FINISHED;
}

int jobs_cancel(jobs *J, int64_t id, vaed_err *err)
{
    pthread_mutex_lock(&J->mu);
    job *jb = find(J, id);
    if (!jb) {
        pthread_mutex_unlock(&J->mu);
        return state_elsewhere(J, id, err);
    }
    if (jb->state == J_QUEUED || jb->state == J_PAUSED) {
        /* no worker has it: end it here */
        answer_all(jb, VAED_ESTATE, "the job was cancelled");
        table_remove(J, jb);
        pthread_mutex_unlock(&J->mu);
        set_state(J, id, "cancelled", NULL);
        return 0;
    }
    jb->want_cancel = 1;
    jb->refs++;
    int ok = wait_for(J, jb, gone, NULL);
    job_unref(jb);
    pthread_mutex_unlock(&J->mu);
    if (!ok)
        return vaed_err_set(err, VAED_EBUSY, NULL, "the job did not stop within %.0f s",
                            J->cfg.wait_s);
    return 0;
}

static int msg_done(job *jb, void *arg)
{
    (void)jb;
    return ((ctl_msg *)arg)->done;
}

/* The beta a paused job stopped at, and the step it resumes from: from its newest
 * checkpoint. */
static int paused_point(jobs *J, int64_t id, int64_t *step, double *beta, long *spe,
                        vaed_err *err)
{
    void *blob = NULL;
    size_t len = 0;
    int rc = store_checkpoint_get(J->st, id, -1, NULL, &blob, &len, err);
    if (rc)
        return rc;
    vae_ckpt_info info;
    rc = vae_ckpt_peek(blob, len, &info);
    free(blob);
    if (rc)
        return vaed_err_set(err, VAED_EINVAL, NULL, "the job's checkpoint is unreadable");
    *step = info.step;
    *beta = info.beta;
    *spe = info.steps_per_epoch;
    return 0;
}

/* Post a change to a running job and wait for its worker to apply it. */
static int post(jobs *J, job *jb, ctl_msg *m, int64_t *eff, sched_spec *resolved, vaed_err *err)
{
    m->requested_at = now_unix();
    if (jb->ctl_tail)
        jb->ctl_tail->next = m;
    else
        jb->ctl_head = m;
    jb->ctl_tail = m;
    jb->refs++;
    int ok = wait_for(J, jb, msg_done, m);
    job_unref(jb);
    if (!ok) {
        m->abandoned = 1; /* the worker frees it */
        return vaed_err_set(err, VAED_EBUSY, NULL,
                            "the job did not reach its next step within %.0f s; the change "
                            "stays queued and will apply then",
                            J->cfg.wait_s);
    }
    int rc = m->rc;
    if (rc)
        vaed_err_set(err, rc, NULL, "%s", m->msg);
    else {
        *eff = m->effective_step;
        if (resolved)
            *resolved = m->resolved;
    }
    free(m);
    return rc;
}

int jobs_set_schedule(jobs *J, int64_t id, const sched_spec *s, int64_t *eff,
                      sched_spec *resolved, vaed_err *err)
{
    pthread_mutex_lock(&J->mu);
    job *jb = find(J, id);
    if (!jb) {
        pthread_mutex_unlock(&J->mu);
        return state_elsewhere(J, id, err);
    }
    if (jb->state == J_RUNNING) {
        ctl_msg *m = xcalloc(1, sizeof *m);
        m->kind = CTL_SCHED;
        m->s = *s;
        int rc = post(J, jb, m, eff, resolved, err);
        pthread_mutex_unlock(&J->mu);
        return rc;
    }
    /* Queued or paused: no worker holds it, so the change is made here. The job stays
     * in the table while we work (a reference), but its state can change: a worker may
     * pick up a queued job meanwhile, so re-check after the store calls. */
    enum jstate st = jb->state;
    const sched_spec initial = jb->spec.schedule; /* read under the lock */
    jb->refs++;
    pthread_mutex_unlock(&J->mu);
    int64_t step = 0;
    long spe = 1; /* a queued job's change takes effect at step 0, where no origin shifts */
    double beta_now = 0.0;
    sched_spec n = *s;
    int rc = 0;
    /* A paused job goes on from its newest checkpoint; so does a queued one that has
     * one (a fork, or a job queued again after the daemon stopped): a change recorded at
     * step 0 would be taken as already part of that checkpoint and never applied. */
    rc = paused_point(J, id, &step, &beta_now, &spe, err);
    if (rc == VAED_ENOTFOUND && st == J_QUEUED) {
        vaed_err_clear(err);
        rc = 0;
        step = 0;
        spe = 1;
        sched_state z = {0};
        beta_now = sched_beta(&initial, &z, 0, 1, 0.0);
    }
    if (rc == 0) {
        sched_resolve(&n, step, spe, beta_now);
        json_t *sj = sched_to_json(&n);
        char *text = json_dumps(sj, JSON_COMPACT);
        json_decref(sj);
        rc = store_event_add(J->st, id, 0, step, text, "override", 1, NULL, err);
        if (rc == 0)
            bus_publish_schedule(J->cfg.bus, id, step, text);
        free(text);
    }
    pthread_mutex_lock(&J->mu);
    if (rc == 0) {
        if (st == J_QUEUED)
            jb->spec.schedule = n;
        *eff = step;
        if (resolved)
            *resolved = n;
    }
    job_unref(jb);
    pthread_mutex_unlock(&J->mu);
    return rc;
}

int jobs_set_lr(jobs *J, int64_t id, double lr, int64_t *eff, vaed_err *err)
{
    int rc;
    job *jb = lock_job(J, id, J_RUNNING, "the learning rate of a queued job is set in its spec",
                       &rc, err);
    if (!jb)
        return rc;
    ctl_msg *m = xcalloc(1, sizeof *m);
    m->kind = CTL_LR;
    m->lr = lr;
    rc = post(J, jb, m, eff, NULL, err);
    pthread_mutex_unlock(&J->mu);
    return rc;
}

typedef struct gen_arg {
    uint64_t gen;
} gen_arg;

static int ckpt_answered(job *jb, void *arg)
{
    return jb->ckpt_gen != ((gen_arg *)arg)->gen || jb->state != J_RUNNING;
}

int jobs_checkpoint_now(jobs *J, int64_t id, int64_t *step, vaed_err *err)
{
    int rc;
    job *jb = lock_job(J, id, J_RUNNING, "only a running job takes a checkpoint on demand", &rc,
                       err);
    if (!jb)
        return rc;
    gen_arg g = {jb->ckpt_gen};
    jb->want_ckpt = 1;
    jb->refs++;
    int ok = wait_for(J, jb, ckpt_answered, &g);
    rc = 0;
    if (!ok)
        rc = vaed_err_set(err, VAED_EBUSY, NULL, "no checkpoint within %.0f s", J->cfg.wait_s);
    else if (jb->ckpt_gen == g.gen)
        rc = vaed_err_set(err, VAED_ESTATE, NULL, "the job stopped running before its checkpoint");
    else if (jb->ckpt_rc)
        rc = vaed_err_set(err, jb->ckpt_rc, NULL, "the checkpoint could not be written");
    else
        *step = jb->ckpt_result;
    job_unref(jb);
    pthread_mutex_unlock(&J->mu);
    return rc;
}

void jobs_decorate(jobs *J, int64_t id, json_t *obj)
{
    pthread_mutex_lock(&J->mu);
    job *jb = find(J, id);
    if (jb && jb->state != J_FINISHED) {
        json_object_set_new(obj, "state", json_string(jstate_name[jb->state]));
        if (jb->total_steps > 0) {
            json_object_set_new(obj, "step", json_integer(jb->step));
            json_object_set_new(obj, "epoch", json_real(jb->epoch));
            json_object_set_new(
                obj, "progress",
                json_pack("{s:I, s:I, s:I, s:f}", "step", (json_int_t)jb->step, "total_steps",
                          (json_int_t)jb->total_steps, "steps_per_epoch", (json_int_t)jb->spe,
                          "fraction", (double)jb->step / (double)jb->total_steps));
        }
        if (jb->has_live) {
            json_object_set_new(obj, "beta", json_real(jb->beta));
            json_object_set_new(obj, "last",
                                json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "loss", jb->loss,
                                          "xent", jb->xent, "kl", jb->kl, "elbo", jb->elbo, "lr",
                                          jb->lr, "grad_norm", jb->grad_norm));
            if (jb->storage_wait[0])
                json_object_set_new(obj, "waiting_for_storage", json_string(jb->storage_wait));
            if (jb->state == J_RUNNING) {
                json_object_set_new(obj, "samples_per_sec", json_real(jb->sps));
                if (jb->sps > 0)
                    json_object_set_new(obj, "eta_s", json_real(jb->eta));
            }
        }
    }
    pthread_mutex_unlock(&J->mu);
}

size_t jobs_snapshot(jobs *J, jobs_live *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&J->mu);
    for (job *jb = J->table; jb && n < max; jb = jb->next) {
        if (jb->state != J_RUNNING)
            continue;
        jobs_live *l = &out[n++];
        l->id = jb->id;
        snprintf(l->name, sizeof l->name, "%s", jb->spec.name);
        snprintf(l->state, sizeof l->state, "%s", jstate_name[jb->state]);
        l->step = jb->step;
        l->epoch = jb->epoch;
        l->beta = jb->beta;
        l->loss = jb->loss;
        l->xent = jb->xent;
        l->kl = jb->kl;
        l->elbo = jb->elbo;
        l->samples_per_sec = jb->sps;
    }
    pthread_mutex_unlock(&J->mu);
    return n;
}
