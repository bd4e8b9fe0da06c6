/* queue.c — the table of unfinished jobs, the queue order, the worker pool and the
 * manager's start and stop (daemon/jobs.h, daemon/job.h).
 *
 * Queue order: priority descending, then FIFO (the store's queue_seq); a resumed job
 * goes to the front (the store gives it the lowest seq). A worker takes the first
 * queued job that no client holds (job.owner), owns it while it trains, and puts it
 * down again: paused (it then applies what is left in the mailbox to the paused job),
 * or finished (the rest of the mailbox is refused with 409). */
#include "daemon/job.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/bus.h"
#include "daemon/log.h"
#include "vae/err.h"

static const char *const state_names[] = {"queued", "running", "paused", "finished"};

const char *job_state_name(enum job_state s) { return state_names[s]; }

double job_now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double job_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void job_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
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
    c->lease_ttl = 10.0;
}

/* ---- the table (all under mu) ------------------------------------------------------- */

job *job_new(int64_t id, const vae_spec *spec, int64_t seq, enum job_state state)
{
    job *jb = xcalloc(1, sizeof *jb);
    jb->id = id;
    jb->spec = *spec;
    jb->queue_seq = seq;
    jb->state = state;
    jb->owner = OWNER_NONE;
    jb->refs = 1;
    jb->born = job_mono();
    pthread_cond_init(&jb->cv, NULL);
    return jb;
}

void job_unref(job *jb)
{
    if (--jb->refs > 0)
        return;
    for (job_msg *m = jb->mail_head, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    pthread_cond_destroy(&jb->cv);
    free(jb);
}

job *job_find(jobs *J, int64_t id)
{
    for (job *jb = J->table; jb; jb = jb->next)
        if (jb->id == id)
            return jb;
    return NULL;
}

void job_table_add(jobs *J, job *jb)
{
    jb->next = J->table;
    J->table = jb;
}

/* Drop jb from the table (its table reference); it is finished. */
static void table_remove(jobs *J, job *jb)
{
    for (job **p = &J->table; *p; p = &(*p)->next)
        if (*p == jb) {
            *p = jb->next;
            jb->state = JOB_FINISHED;
            pthread_cond_broadcast(&jb->cv);
            job_unref(jb);
            return;
        }
}

/* Does jb's sweep have its concurrency's worth of trials running here (mu held)? On
 * one node the table holds every unfinished job, so counting its running ones with the
 * same sweep is the whole truth; a trial that ends broadcasts work, so a skipped one is
 * looked at again. A cluster's node counts the other nodes' trials too, in the
 * database, as the worker takes the lease (cluster_take). */
static int sweep_full(jobs *J, const job *jb)
{
    if (jb->sweep_id <= 0)
        return 0;
    int running = 0;
    for (job *o = J->table; o; o = o->next)
        running += o->sweep_id == jb->sweep_id && o->state == JOB_RUNNING;
    return running >= (jb->sweep_conc > 0 ? jb->sweep_conc : 1);
}

/* Did jb last run on kernels other than this node's, which it may not resume on (mu
 * held)? See jobs.h, "Kernels". */
static int other_kernels(const jobs *J, const job *jb)
{
    return jb->kernels[0] && strcmp(jb->kernels, J->kernels) && !J->cfg.accept_other_cores;
}

/* The next job a worker may take: queued, held by nobody, last run on this node's
 * kernels (or allowed not to have), not a trial of a sweep that runs its concurrency
 * already; highest priority, then lowest queue_seq. */
static job *next_queued(jobs *J)
{
    job *best = NULL;
    for (job *jb = J->table; jb; jb = jb->next)
        if (jb->state == JOB_QUEUED && jb->owner == OWNER_NONE && !other_kernels(J, jb) &&
            jb->away_until <= job_mono() &&
            (!best || jb->spec.priority > best->spec.priority ||
             (jb->spec.priority == best->spec.priority && jb->queue_seq < best->queue_seq)) &&
            !sweep_full(J, jb))
            best = jb;
    return best;
}

int job_count_queued(jobs *J)
{
    int n = 0;
    for (job *jb = J->table; jb; jb = jb->next)
        n += jb->state == JOB_QUEUED;
    return n;
}

void job_answer(job *jb, job_msg *m)
{
    m->done = 1;
    if (m->abandoned) /* its poster gave up waiting: ours to free */
        free(m);
    else
        pthread_cond_broadcast(&jb->cv);
}

void job_answer_all(job *jb, int rc, const char *why)
{
    while (jb->mail_head) {
        job_msg *m = jb->mail_head;
        jb->mail_head = m->next;
        m->rc = rc;
        snprintf(m->msg, sizeof m->msg, "%s", why);
        job_answer(jb, m);
    }
    jb->mail_tail = NULL;
}

void job_release(jobs *J, job *jb)
{
    int trial = jb->sweep_id > 0;
    jb->owner = OWNER_NONE;
    if (jb->state == JOB_FINISHED) {
        /* may drop the last reference (a caller that holds none: the cluster's sync
         * thread); it wakes jb's waiters itself, and jb is not touched after it */
        table_remove(J, jb);
        jb = NULL;
    } else if (jb->state == JOB_QUEUED) {
        pthread_cond_signal(&J->work);
    }
    if (trial) /* a trial put down: one of its sweep's may start now */
        pthread_cond_broadcast(&J->work);
    if (jb)
        pthread_cond_broadcast(&jb->cv);
}

void job_record_state(jobs *J, int64_t id, const char *state, const char *reason)
{
    vaed_err err;
    /* A few quick tries: a state write lost to one failed allocation would leave the
     * store saying "running" about a job that has ended, until the daemon restarts. */
    int rc;
    for (int tries = 0; (rc = store_job_set_state(J->st, id, state, reason, &err)) != 0 &&
                        (rc == VAED_ENOMEM || rc == VAED_EDB) && tries < 10; tries++) {
        job_nap_ms(50);
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

/* ---- the workers -------------------------------------------------------------------- */

static const char *const outcome_names[] = {"completed", "failed", "cancelled", "paused",
                                            "interrupted"};

/* The worker puts jb down after its run (mu held): answers the pause or cancel that
 * ended it, applies what is left in the mailbox to the paused job (a worker still owns
 * it until then), refuses the rest for a finished one, and lets go. */
static void put_down(jobs *J, job *jb, run *r, enum outcome out)
{
    jb->state = out == OUT_PAUSED ? JOB_PAUSED : JOB_FINISHED;
    for (job_msg *m = r->deferred, *n; m; m = n) {
        n = m->next;
        int asked = m->kind == MSG_PAUSE ? OUT_PAUSED : OUT_CANCELLED;
        m->rc = (int)out == asked ? 0 : VAED_ESTATE;
        if (m->rc)
            snprintf(m->msg, sizeof m->msg, "job %lld is %s", (long long)jb->id,
                     outcome_names[out]);
        job_answer(jb, m);
    }
    r->deferred = NULL;
    if (jb->state == JOB_PAUSED)
        job_drain(J, jb, NULL);
    else
        job_answer_all(jb, VAED_ESTATE,
                       out == OUT_INTERRUPTED ? "the daemon is stopping" : "the job has finished");
    job_release(J, jb);
}

/* A job starts running here: its record of kernels becomes this node's (jobs.h,
 * "Kernels"); a change is logged, for it ends the job's bit-for-bit reproducibility. */
static void record_kernels(jobs *J, job *jb)
{
    char was[sizeof jb->kernels];
    pthread_mutex_lock(&J->mu);
    snprintf(was, sizeof was, "%s", jb->kernels);
    pthread_mutex_unlock(&J->mu);
    if (!strcmp(was, J->kernels))
        return;
    if (was[0])
        log_msg(LOG_WARN, "job %lld last ran on other kernels (%s); it resumes on this "
                "node's (%s): its steps continue correctly, not bit for bit",
                (long long)jb->id, was, J->kernels);
    vaed_err err;
    int rc;
    for (int tries = 0; (rc = store_job_set_kernels(J->st, jb->id, J->kernels, &err)) != 0 &&
                        (rc == VAED_ENOMEM || rc == VAED_EDB) && tries < 10; tries++)
        job_nap_ms(50);
    if (rc)
        log_msg(LOG_ERROR, "job %lld: could not record its kernels: %s", (long long)jb->id,
                err.msg);
    pthread_mutex_lock(&J->mu);
    snprintf(jb->kernels, sizeof jb->kernels, "%s", J->kernels);
    pthread_mutex_unlock(&J->mu);
}

/* A cluster's worker that picked jb (owner, mu held) takes its lease: 1 when taken;
 * 0 when another node holds it (or the daemon began to stop meanwhile): jb is let go,
 * and what was posted to it meanwhile is answered with where it runs (mu held again). */
static int take_lease(jobs *J, job *jb)
{
    char owner[64] = "";
    jb->taking = 1;
    pthread_mutex_unlock(&J->mu);
    int got = cluster_take(J, jb, 1, owner);
    /* the job as the database has it now (the table may be a second behind): paused or
     * finished through another node meanwhile, it is let go; its kernels may have
     * changed if it ran elsewhere */
    store_job sj;
    int paused = 0, finished = 0;
    if (got == 1 && store_job_get(J->st, jb->id, &sj, NULL) == 0) {
        paused = !strcmp(sj.state, "paused");
        finished = strcmp(sj.state, "queued") && strcmp(sj.state, "running") &&
                   strcmp(sj.state, "interrupted") && !paused;
        pthread_mutex_lock(&J->mu);
        snprintf(jb->kernels, sizeof jb->kernels, "%s", sj.kernels);
        int other = other_kernels(J, jb);
        pthread_mutex_unlock(&J->mu);
        store_job_clear(&sj);
        if (other || paused || finished) {
            cluster_release(J, jb, 0);
            got = finished ? CLUSTER_DONE : 0;
        }
    }
    pthread_mutex_lock(&J->mu);
    if (paused)
        jb->state = JOB_PAUSED;
    jb->taking = 0;
    pthread_cond_broadcast(&jb->cv);
    if (got == CLUSTER_DONE) { /* it finished through another node */
        cluster_forget(J, jb);
        job_unref(jb);
        return 0;
    }
    if (got == 1 && J->stopping) {
        pthread_mutex_unlock(&J->mu);
        cluster_release(J, jb, 0);
        pthread_mutex_lock(&J->mu);
        got = 0;
    }
    if (got == 1) {
        jb->leased = 1;
        jb->renewed_at = job_mono();
        atomic_store(&jb->lease_lost, 0);
        return 1;
    }
    char why[160];
    if (jb->away_full)
        snprintf(why, sizeof why, "job %lld waits for a trial of its sweep to end: ask again",
                 (long long)jb->id);
    else
        snprintf(why, sizeof why, "job %lld runs on node %s: ask again", (long long)jb->id,
                 owner[0] ? owner : "(another)");
    job_answer_all(jb, VAED_EAWAY, why);
    job_release(J, jb);
    job_unref(jb);
    return 0;
}

/* The worker of a job whose lease was lost puts it away (called without mu, returns
 * with it held): its pause or
 * cancel is answered with where the job runs now, the job waits here as queued (the
 * thread of cluster.c keeps it in line with the database) and its lease is forgotten. */
static void put_away(jobs *J, job *jb, run *r)
{
    log_msg(LOG_WARN, "job %lld: this node lost its lease; the job goes on elsewhere, and "
            "nothing more of this run is recorded", (long long)jb->id);
    cluster_release(J, jb, 0);
    pthread_mutex_lock(&J->mu);
    for (job_msg *m = r->deferred, *n; m; m = n) {
        n = m->next;
        m->rc = VAED_EAWAY;
        snprintf(m->msg, sizeof m->msg, "job %lld: this node lost its lease; it runs on "
                 "another node: ask again", (long long)jb->id);
        job_answer(jb, m);
    }
    r->deferred = NULL;
    job_answer_all(jb, VAED_EAWAY, "this node lost the job's lease; it runs on another node: "
                   "ask again");
    jb->leased = 0;
    jb->state = JOB_QUEUED;
    jb->away_until = job_mono() + J->cfg.lease_ttl;
    job_release(J, jb);
    job_unref(jb); /* the worker's reference */
}

static void *worker_main(void *arg)
{
    jobs *J = arg;
    pthread_mutex_lock(&J->mu);
    for (;;) {
        job *jb = NULL;
        eval_unit *eu = NULL;
        while (!J->stopping && !(eu = evals_next(J)) && !(jb = next_queued(J)))
            pthread_cond_wait(&J->work, &J->mu);
        if (J->stopping)
            break;
        if (eu) { /* evaluations first: see daemon/evals.c */
            eu->running = 1;
            pthread_mutex_unlock(&J->mu);
            evals_run(J, eu);
            pthread_mutex_lock(&J->mu);
            continue;
        }
        jb->owner = OWNER_WORKER;
        jb->refs++;
        if (J->cluster && !take_lease(J, jb))
            continue;
        jb->state = JOB_RUNNING;
        pthread_mutex_unlock(&J->mu);

        job_record_state(J, jb->id, "running", NULL);
        record_kernels(J, jb);
        char reason[512] = "";
        run r = {.J = J, .jb = jb, .last_ckpt_step = -1, .outcome = OUT_NONE};
        enum outcome out = worker_run(&r, reason, sizeof reason);
        vaed_err le; /* a run that ended on a fenced write: was the lease lost? */
        if (jb->leased && !atomic_load(&jb->lease_lost) &&
            store_lease_renew(J->st, jb->id, J->cfg.lease_ttl, &le) == VAED_ESTATE)
            atomic_store(&jb->lease_lost, 1);
        if (atomic_load(&jb->lease_lost)) { /* another node has it: nothing is recorded */
            put_away(J, jb, &r);
            continue;
        }
        /* a reason for a failure, or for a trial's early stop (sweeps.c) */
        job_record_state(J, jb->id, outcome_names[out],
                         out == OUT_FAILED || reason[0] ? reason : NULL);
        int leased = jb->leased;
        pthread_mutex_lock(&J->mu);
        jb->leased = 0; /* renewed no more; still held while put_down applies the mail */
        put_down(J, jb, &r, out);
        if (leased) { /* given back: done unless it was paused or interrupted */
            pthread_mutex_unlock(&J->mu);
            cluster_release(J, jb, out != OUT_PAUSED && out != OUT_INTERRUPTED);
            pthread_mutex_lock(&J->mu);
            cluster_sweep_wake(J, jb->sweep_id); /* its sweep may start another now */
        }
        job_unref(jb); /* the worker's reference */
    }
    pthread_mutex_unlock(&J->mu);
    return NULL;
}

/* ---- start and stop ----------------------------------------------------------------- */

int jobs_start(jobs **out, store *st, const jobs_config *cfg, vaed_err *err)
{
    *out = NULL;
    jobs *J = xcalloc(1, sizeof *J);
    J->st = st;
    J->cfg = *cfg;
    if (J->cfg.workers < 1)
        J->cfg.workers = 1;
    if (cfg->data_dir) {
        char real[PATH_MAX];
        if (!realpath(cfg->data_dir, real) || strlen(real) >= sizeof J->data_dir) {
            int rc = vaed_err_set(err, VAED_EINVAL, "data-dir", "%s: %s", cfg->data_dir,
                                  strerror(errno ? errno : ENAMETOOLONG));
            free(J);
            return rc;
        }
        snprintf(J->data_dir, sizeof J->data_dir, "%s", real);
        J->cfg.data_dir = J->data_dir;
    }
    vae_kernels_id(J->kernels, sizeof J->kernels);
    pthread_mutex_init(&J->mu, NULL);
    pthread_cond_init(&J->work, NULL);
    pthread_cond_init(&J->evals_cv, NULL);
    pthread_cond_init(&J->cluster_cv, NULL);
    J->cluster = store_node(st)[0] != '\0';
    if (!(J->cfg.lease_ttl > 0))
        J->cfg.lease_ttl = 10.0;

    int rc = recover_jobs(J, err);
    if (!rc)
        rc = evals_recover(J, err);
    if (rc) {
        evals_free_all(J);
        for (job *jb = J->table, *n; jb; jb = n) {
            n = jb->next;
            job_unref(jb);
        }
        pthread_mutex_destroy(&J->mu);
        pthread_cond_destroy(&J->work);
        pthread_cond_destroy(&J->evals_cv);
        pthread_cond_destroy(&J->cluster_cv);
        free(J);
        return rc;
    }
    J->nworkers = J->cfg.workers;
    J->workers = xcalloc((size_t)J->nworkers, sizeof *J->workers);
    for (int i = 0; i < J->nworkers; i++)
        if (pthread_create(&J->workers[i], NULL, worker_main, J)) {
            J->nworkers = i;
            jobs_stop(J);
            return vaed_err_set(err, VAED_ENOMEM, NULL, "could not start worker threads");
        }
    if ((rc = cluster_start(J, err))) {
        jobs_stop(J);
        return rc;
    }
    *out = J;
    return 0;
}

void jobs_stop(jobs *J)
{
    if (!J)
        return;
    pthread_mutex_lock(&J->mu);
    J->stopping = 1;
    evals_stop_all(J);
    pthread_cond_broadcast(&J->work);
    pthread_mutex_unlock(&J->mu);
    for (int i = 0; i < J->nworkers; i++)
        pthread_join(J->workers[i], NULL);
    free(J->workers);
    cluster_stop(J); /* after the workers: their leases are renewed until they stop */
    pthread_mutex_lock(&J->mu);
    for (job *jb = J->table, *n; jb; jb = n) {
        n = jb->next;
        job_answer_all(jb, VAED_ESTATE, "the daemon is stopping");
        job_unref(jb);
    }
    J->table = NULL;
    evals_free_all(J);
    pthread_mutex_unlock(&J->mu);
    pthread_mutex_destroy(&J->mu);
    pthread_cond_destroy(&J->work);
    pthread_cond_destroy(&J->evals_cv);
    pthread_cond_destroy(&J->cluster_cv);
    free(J);
}

/* ---- live figures ------------------------------------------------------------------- */

/* What a job left queued for its kernels waits for (mu held). */
static json_t *kernels_wait(const jobs *J, const job *jb)
{
    return json_pack("{s:s, s:s, s:s}", "job", jb->kernels, "node", J->kernels, "hint",
                     "it last ran on other kernels: a node with the job's resumes it bit for "
                     "bit; vaed serve --accept-other-cores 1 resumes it here, correctly but "
                     "not bit for bit");
}

void jobs_decorate(jobs *J, int64_t id, json_t *obj)
{
    pthread_mutex_lock(&J->mu);
    job *jb = job_find(J, id);
    /* a cluster's node knows better than the database only about the jobs it runs (a
     * job another node runs is queued in this node's table) */
    if (jb && jb->state != JOB_FINISHED && J->cluster && jb->state != JOB_RUNNING) {
        if (jb->state == JOB_QUEUED && other_kernels(J, jb))
            json_object_set_new(obj, "waiting_for_kernels", kernels_wait(J, jb));
    } else if (jb && jb->state != JOB_FINISHED) {
        json_object_set_new(obj, "state", json_string(job_state_name(jb->state)));
        if (jb->state == JOB_QUEUED && other_kernels(J, jb))
            json_object_set_new(obj, "waiting_for_kernels", kernels_wait(J, jb));
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
            json_object_set_new(obj, "beta", json_real(jb->last.beta));
            json_object_set_new(obj, "last",
                                json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "loss",
                                          jb->last.loss, "xent", jb->last.xent, "kl",
                                          jb->last.kl, "elbo", jb->last.elbo, "lr", jb->last.lr,
                                          "grad_norm", jb->last.grad_norm));
            if (jb->storage_wait[0])
                json_object_set_new(obj, "waiting_for_storage", json_string(jb->storage_wait));
            if (jb->state == JOB_RUNNING) {
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
        if (jb->state != JOB_RUNNING)
            continue;
        jobs_live *l = &out[n++];
        l->id = jb->id;
        snprintf(l->name, sizeof l->name, "%s", jb->spec.name);
        snprintf(l->state, sizeof l->state, "%s", job_state_name(jb->state));
        l->step = jb->step;
        l->epoch = jb->epoch;
        l->last = jb->last;
        l->samples_per_sec = jb->sps;
    }
    pthread_mutex_unlock(&J->mu);
    return n;
}
