/* control.c — every control of a job goes through here: the client calls of jobs.h
 * post a message into the job's mailbox, and its owner applies it with job_apply
 * (daemon/job.h says who owns a job when). The table below is job_apply's switch:
 *
 *   message      queued                 running (worker)             paused
 *   schedule     recorded at its resume  applied at the next step,    recorded at its
 *                step (0, or its newest  recorded before that step     resume step
 *                checkpoint's)           runs
 *   lr           409 (set it in the      in force from the next step, 409
 *                spec)                   kept by a checkpoint
 *   pause        409                     pause checkpoint, paused      409
 *   resume       409                     409                           front of the queue
 *   cancel       cancelled               stops before the next step    cancelled
 *   checkpoint   409                     taken now, its step replied   409
 *
 * A finished job answers every message with 409. On recovery, the worker replays a
 * job's recorded schedule changes (recover.c) through the same job_apply: the change is
 * put in force, not recorded again. */
#include "daemon/job.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/bus.h"
#include "daemon/fork.h"
#include "daemon/log.h"
#include "vae/train.h"

/* "job 3 is paused; only a running job pauses" */
static int refuse(jobs *J, job *jb, job_msg *m, const char *why)
{
    (void)J;
    m->rc = VAED_ESTATE;
    snprintf(m->msg, sizeof m->msg, "job %lld is %s; %s", (long long)jb->id,
             job_state_name(jb->state), why);
    return m->rc;
}

static int fail_msg(job_msg *m, int rc, const vaed_err *e)
{
    m->rc = rc;
    snprintf(m->msg, sizeof m->msg, "%s", e->msg);
    return rc;
}

int job_resume_point(jobs *J, int64_t id, int64_t *step, double *beta, long *spe,
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

/* Record a schedule in force from step eff: the durable history, then the bus. */
static int record_schedule(jobs *J, job *jb, const sched_spec *res, int64_t eff,
                           double requested_at, vaed_err *err)
{
    json_t *sj = sched_to_json(res);
    char *text = sj ? json_dumps(sj, JSON_COMPACT) : NULL;
    json_decref(sj);
    if (!text)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory writing the schedule");
    int rc = store_event_add(J->st, jb->id, requested_at, eff, text, "override", 1, NULL, err);
    if (rc == 0)
        bus_publish_schedule(J->cfg.bus, jb->id, eff, text);
    free(text);
    return rc;
}

/* A schedule change to a running job: in force from the step about to run, recorded
 * durably before that step runs. A replayed one is only put in force. */
static int schedule_running(jobs *J, job *jb, run *r, job_msg *m)
{
    if (m->replay) {
        /* A fork's own schedule (its 'submit' event at its first step, daemon/fork.h) is
         * put in force only when it differs from the one its checkpoint carries: putting
         * the same schedule again would restart a controller's state, and a fork with no
         * overrides must continue exactly as its parent did. */
        if (!strcmp(m->replay, "submit") &&
            fork_same_schedule(&m->sched, vae_trainer_schedule(r->t)))
            return m->rc = 0;
    } else if (vae_trainer_finished(r->t)) {
        snprintf(m->msg, sizeof m->msg, "the job has finished");
        return m->rc = VAED_ESTATE;
    }
    long eff;
    vae_trainer_set_schedule(r->t, &m->sched, &m->resolved, &eff);
    m->effective_step = eff;
    if (m->replay)
        return m->rc = 0;
    vaed_err e;
    vaed_err_clear(&e);
    int rc = record_schedule(J, jb, &m->resolved, eff, m->requested_at, &e);
    if (rc)
        return fail_msg(m, rc, &e);
    /* A live change supersedes every recorded one still waiting to be replayed (they
     * take effect at this step or later; the store has just marked them superseded). */
    r->next_event = r->n_events;
    return m->rc = 0;
}

/* A schedule change to a queued or paused job: in force from the step it will resume
 * from — its newest checkpoint's (a paused job, a fork, a job queued again after the
 * daemon stopped), else step 0. A change recorded at step 0 of a checkpointed job would
 * be taken as already part of that checkpoint and never applied. */
static int schedule_waiting(jobs *J, job *jb, job_msg *m)
{
    vaed_err e;
    vaed_err_clear(&e);
    int64_t step = 0;
    long spe = 1; /* at step 0 no origin shifts */
    double beta_now = 0.0;
    int rc = job_resume_point(J, jb->id, &step, &beta_now, &spe, &e);
    if (rc == VAED_ENOTFOUND && jb->state == JOB_QUEUED) {
        step = 0;
        spe = 1;
        sched_state z = {0};
        beta_now = sched_beta(&jb->spec.schedule, &z, 0, 1, 0.0);
        rc = 0;
    }
    if (rc)
        return fail_msg(m, rc, &e);
    sched_spec n = m->sched;
    sched_resolve(&n, step, spe, beta_now);
    if ((rc = record_schedule(J, jb, &n, step, m->requested_at, &e)))
        return fail_msg(m, rc, &e);
    if (jb->state == JOB_QUEUED) { /* the spec its worker will start from */
        pthread_mutex_lock(&J->mu);
        jb->spec.schedule = n;
        pthread_mutex_unlock(&J->mu);
    }
    m->effective_step = step;
    m->resolved = n;
    return m->rc = 0;
}

static void set_state_locked(jobs *J, job *jb, enum job_state s)
{
    pthread_mutex_lock(&J->mu);
    jb->state = s;
    pthread_mutex_unlock(&J->mu);
}

int job_apply(jobs *J, job *jb, run *r, job_msg *m)
{
    vaed_err e;
    vaed_err_clear(&e);
    int rc;
    m->rc = 0;
    m->msg[0] = '\0';
    if (jb->state == JOB_FINISHED) {
        snprintf(m->msg, sizeof m->msg, "job %lld has finished", (long long)jb->id);
        return m->rc = VAED_ESTATE;
    }
    if (r) { /* running: the worker owns it and holds its trainer */
        switch (m->kind) {
        case MSG_SCHEDULE:
            return schedule_running(J, jb, r, m);
        case MSG_LR:
            if (vae_trainer_finished(r->t)) {
                snprintf(m->msg, sizeof m->msg, "the job has finished");
                return m->rc = VAED_ESTATE;
            }
            /* The learning rate is part of the training state: a checkpoint taken now,
             * and committed before the reply, is how the change survives a crash
             * (recovery restarts from it, or from a later one). */
            vae_trainer_set_lr(r->t, m->lr);
            m->effective_step = vae_trainer_step_index(r->t);
            if ((rc = worker_checkpoint(r, "manual", 1, &e)))
                return fail_msg(m, rc, &e);
            return m->rc = 0;
        case MSG_CHECKPOINT:
            if ((rc = worker_checkpoint(r, "manual", 1, &e)))
                return fail_msg(m, rc, &e);
            m->effective_step = vae_trainer_step_index(r->t);
            return m->rc = 0;
        case MSG_PAUSE:
            r->outcome = OUT_PAUSED;
            m->deferred = 1;
            return 0;
        case MSG_CANCEL:
            r->outcome = OUT_CANCELLED;
            m->deferred = 1;
            return 0;
        case MSG_RESUME:
            return refuse(J, jb, m, "only a paused job resumes");
        }
    }
    switch (m->kind) { /* queued or paused: its owner is the client that posted */
    case MSG_SCHEDULE:
        return schedule_waiting(J, jb, m);
    case MSG_LR:
        return refuse(J, jb, m,
                      jb->state == JOB_QUEUED
                          ? "the learning rate of a queued job is set in its spec"
                          : "resume it first; a paused job's learning rate is in its checkpoint");
    case MSG_CHECKPOINT:
        return refuse(J, jb, m, "only a running job takes a checkpoint on demand");
    case MSG_PAUSE:
        return refuse(J, jb, m, "only a running job pauses");
    case MSG_RESUME: {
        if (jb->state != JOB_PAUSED)
            return refuse(J, jb, m, "only a paused job resumes");
        /* front of the queue, durably, before a worker can take it */
        rc = store_job_requeue_front(J->st, jb->id, &e);
        if (rc == 0)
            rc = store_job_set_state(J->st, jb->id, "queued", NULL, &e);
        if (rc)
            return fail_msg(m, rc, &e);
        store_job sj;
        int64_t seq = INT64_MIN;
        if (store_job_get(J->st, jb->id, &sj, NULL) == 0) {
            seq = sj.queue_seq;
            store_job_clear(&sj);
        }
        bus_publish_state(J->cfg.bus, jb->id, "queued", NULL); /* before a worker starts it */
        pthread_mutex_lock(&J->mu);
        jb->queue_seq = seq;
        jb->state = JOB_QUEUED;
        pthread_mutex_unlock(&J->mu);
        log_msg(LOG_INFO, "job %lld resumed: front of the queue", (long long)jb->id);
        return 0;
    }
    case MSG_CANCEL:
        set_state_locked(J, jb, JOB_FINISHED); /* leaves the table when its owner lets go */
        job_record_state(J, jb->id, "cancelled", NULL);
        return 0;
    }
    return m->rc = VAED_EINVAL;
}

void job_drain(jobs *J, job *jb, run *r)
{
    while (jb->mail_head) {
        job_msg *m = jb->mail_head;
        jb->mail_head = m->next;
        if (!jb->mail_head)
            jb->mail_tail = NULL;
        m->next = NULL;
        pthread_mutex_unlock(&J->mu);
        job_apply(J, jb, r, m);
        pthread_mutex_lock(&J->mu);
        if (m->deferred && r) {
            m->next = r->deferred;
            r->deferred = m;
        } else {
            job_answer(jb, m);
        }
        if (r && r->outcome != OUT_NONE)
            break; /* the rest wait until the job is put down */
    }
}

/* ---- the client calls of jobs.h: post, and drain when nobody owns the job ---------- */

/* ---- a cluster: control requests between nodes (store.h "control requests") ---------- */

static const char *const kind_names[] = {
    [MSG_SCHEDULE] = "schedule", [MSG_LR] = "lr", [MSG_PAUSE] = "pause",
    [MSG_RESUME] = "resume", [MSG_CANCEL] = "cancel", [MSG_CHECKPOINT] = "checkpoint",
};

/* A schedule as sent between nodes: its fields, relative parts included, as hex (the
 * nodes of a cluster run one build; the size is checked). */
static char *sched_hex(const sched_spec *s)
{
    const unsigned char *b = (const unsigned char *)s;
    char *out = xcalloc(2 * sizeof *s + 1, 1);
    for (size_t i = 0; i < sizeof *s; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return out;
}

static int sched_unhex(const char *hex, sched_spec *s)
{
    if (!hex || strlen(hex) != 2 * sizeof *s)
        return -1;
    unsigned char *b = (unsigned char *)s;
    for (size_t i = 0; i < sizeof *s; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        b[i] = (unsigned char)v;
    }
    return 0;
}

/* Send m for job id to node owner, which holds it, and wait (--control-wait) for its
 * answer: that node's worker decides the step, as for a call sent to it. Not answered
 * in time, the request is withdrawn, so it never applies later (the owner may be dead,
 * and a node of its name may come back holding the job); one the owner has taken
 * already is being applied, and is waited for once more. Had this node died waiting,
 * no node takes the request after its deadline (store_control_send). */
static int forward(jobs *J, int64_t id, const job_msg *m, const char *owner, int64_t *step,
                   sched_spec *resolved, vaed_err *err)
{
    store_control c = {.job = id};
    char lr[32];
    snprintf(c.kind, sizeof c.kind, "%s", kind_names[m->kind]);
    if (m->kind == MSG_SCHEDULE)
        c.arg = sched_hex(&m->sched);
    else if (m->kind == MSG_LR)
        snprintf(lr, sizeof lr, "%.17g", m->lr), c.arg = xstrdup(lr);
    int rc = store_control_send(J->st, owner, &c, J->cfg.wait_s, err);
    int withdrawn = 0;
    if (rc == 0 && (rc = store_control_wait(J->st, &c, J->cfg.wait_s, err)) == 0) {
        /* not answered in time: withdrawn unless the owner has taken it (then it is being
         * applied, and its answer is waited for once more) */
        vaed_err we;
        int w = store_control_withdraw(J->st, &c, &we);
        withdrawn = w == 1;
        if (w == 0)
            rc = store_control_wait(J->st, &c, J->cfg.wait_s, err);
    }
    if (rc == 0 && withdrawn)
        rc = vaed_err_set(err, VAED_EAWAY, NULL, "job %lld runs on node %s, which did not "
                          "answer within %.0f s: the request was withdrawn and will not "
                          "apply; ask again", (long long)id, owner, J->cfg.wait_s);
    else if (rc == 0)
        rc = vaed_err_set(err, VAED_EAWAY, NULL, "job %lld runs on node %s, which took the "
                          "request but did not answer in time: it may still apply there; "
                          "read the job's history before asking again", (long long)id, owner);
    if (rc > 0) {
        if (rc == 1 && c.rc)
            rc = vaed_err_set(err, c.rc, NULL, "%s", c.msg);
        else if (rc == 1) {
            rc = 0;
            if (step)
                *step = c.step;
            if (resolved && m->kind == MSG_SCHEDULE && sched_unhex(c.resolved, resolved))
                rc = vaed_err_set(err, VAED_EAWAY, NULL, "job %lld: node %s answered with a "
                                  "schedule this build cannot read (run one build on every "
                                  "node)", (long long)id, owner);
        }
    }
    free(c.arg);
    free(c.resolved);
    return rc;
}

static int post(jobs *J, int64_t id, job_msg *m, const char *slow, int64_t *step,
                sched_spec *resolved, vaed_err *err);

void job_control_remote(jobs *J, store_control *c)
{
    job_msg *m = xcalloc(1, sizeof *m);
    m->remote = 1;
    int kind = -1;
    for (int k = 0; k < (int)(sizeof kind_names / sizeof *kind_names); k++)
        if (kind_names[k] && !strcmp(kind_names[k], c->kind))
            kind = k;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = 0;
    if (kind < 0)
        rc = vaed_err_set(&err, VAED_EINVAL, NULL, "unknown control request '%s'", c->kind);
    else if (kind == MSG_SCHEDULE && sched_unhex(c->arg, &m->sched))
        rc = vaed_err_set(&err, VAED_EINVAL, NULL, "a schedule this build cannot read (run one "
                          "build on every node)");
    else if (kind == MSG_LR && !(c->arg && sscanf(c->arg, "%lf", &m->lr) == 1))
        rc = vaed_err_set(&err, VAED_EINVAL, NULL, "a learning rate that is no number");
    sched_spec resolved;
    int64_t step = 0;
    if (rc == 0) {
        m->kind = (enum job_msg_kind)kind;
        rc = post(J, c->job, m, "the job did not answer in time; the request stays queued "
                  "there and applies then", &step, &resolved, &err);
    } else {
        free(m);
    }
    c->rc = rc;
    snprintf(c->msg, sizeof c->msg, "%s", rc ? err.msg : "");
    c->step = step;
    free(c->resolved);
    c->resolved = rc == 0 && kind == MSG_SCHEDULE ? sched_hex(&resolved) : NULL;
}

/* Post m (heap-allocated; taken) to job id and wait, at most --control-wait, for its
 * answer. A job no one owns (queued or paused) is owned by this thread while it drains
 * the mailbox, its own message included. OUT *step and *resolved (either may be NULL):
 * the answer's effective step and resolved schedule. A wait that runs out leaves the
 * message to the owner (503; it still applies, at the owner's next drain). */
static int post_at(jobs *J, int64_t id, job_msg *m, const char *slow, int64_t *step,
                   sched_spec *resolved, vaed_err *err, int again)
{
    pthread_mutex_lock(&J->mu);
    job *jb = job_find(J, id);
    if (!jb) {
        pthread_mutex_unlock(&J->mu);
        store_job sj;
        int rc = store_job_get(J->st, id, &sj, err);
        if (rc == VAED_ENOTFOUND)
            rc = vaed_err_set(err, VAED_ENOTFOUND, NULL, "no job %lld", (long long)id);
        else if (rc == 0 && J->cluster && !again && cluster_learn(J, &sj)) {
            store_job_clear(&sj);   /* submitted through another node a moment ago: */
            return post_at(J, id, m, slow, step, resolved, err, 1); /* in the table now */
        } else if (rc == 0)
            rc = vaed_err_set(err, VAED_ESTATE, NULL, "job %lld is %s", (long long)id, sj.state);
        if (rc != VAED_ENOTFOUND)
            store_job_clear(&sj);
        free(m);
        return rc;
    }
    jb->refs++;
    while (jb->taking) /* a worker or caller is taking its lease: see where it is after */
        pthread_cond_wait(&jb->cv, &J->mu);
    int leased = 0;
    if (jb->owner == OWNER_NONE && J->cluster) {
        /* a cluster's node: the job's lease first, so no other node runs or changes it
         * while this change is applied (cluster.c) */
        jb->owner = OWNER_CALLER;
        jb->taking = 1;
        pthread_mutex_unlock(&J->mu);
        char owner[64] = "";
        int got = cluster_take(J, jb, 0, owner);
        pthread_mutex_lock(&J->mu);
        jb->taking = 0;
        pthread_cond_broadcast(&jb->cv);
        if (got == CLUSTER_DONE) { /* it finished through another node */
            cluster_forget(J, jb);
            job_unref(jb);
            pthread_mutex_unlock(&J->mu);
            if (again) { /* its lease says done, its row does not: no second round */
                free(m);
                return vaed_err_set(err, VAED_ESTATE, NULL, "job %lld has finished",
                                    (long long)id);
            }
            return post_at(J, id, m, slow, step, resolved, err, 1); /* the store's answer */
        }
        if (got == 0 && owner[0] && !m->remote) { /* sent to the node that holds it */
            job_answer_all(jb, VAED_EAWAY, "the job runs on another node: ask again");
            job_release(J, jb);
            job_unref(jb);
            pthread_mutex_unlock(&J->mu);
            int rc = forward(J, id, m, owner, step, resolved, err);
            free(m);
            return rc;
        }
        if (got != 1) {
            vaed_err e;
            int rc = got < 0 ? vaed_err_set(&e, VAED_EDB, NULL, "job %lld: its lease could not "
                                            "be taken (the database?): ask again", (long long)id)
                             : vaed_err_set(&e, VAED_EAWAY, NULL, "job %lld runs on node %s: ask "
                                            "again, or ask that node", (long long)id,
                                            owner[0] ? owner : "(another)");
            job_answer_all(jb, rc, e.msg); /* what others posted meanwhile */
            job_release(J, jb);
            job_unref(jb);
            pthread_mutex_unlock(&J->mu);
            free(m);
            return vaed_err_set(err, rc, NULL, "%s", e.msg);
        }
        jb->owner = OWNER_NONE;
        leased = 1;
    }
    /* stamped as it joins the mailbox, under mu: in the history the order of arrival
     * (seq) and of the requested times agree even for calls that race */
    m->requested_at = job_now_unix();
    if (jb->mail_tail)
        jb->mail_tail->next = m;
    else
        jb->mail_head = m;
    jb->mail_tail = m;
    if (jb->owner == OWNER_NONE) {
        jb->owner = OWNER_CALLER;
        job_drain(J, jb, NULL);
        if (leased) { /* given back: done when the change finished the job */
            int done = jb->state == JOB_FINISHED;
            pthread_mutex_unlock(&J->mu);
            cluster_release(J, jb, done);
            pthread_mutex_lock(&J->mu);
            job_drain(J, jb, NULL); /* what was posted meanwhile (rare: not under a lease) */
        }
        job_release(J, jb);
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    double w = J->cfg.wait_s;
    dl.tv_sec += (time_t)w;
    dl.tv_nsec += (long)((w - floor(w)) * 1e9);
    if (dl.tv_nsec >= 1000000000L)
        dl.tv_sec++, dl.tv_nsec -= 1000000000L;
    int timed_out = 0;
    while (!m->done && !timed_out)
        timed_out = pthread_cond_timedwait(&jb->cv, &J->mu, &dl) == ETIMEDOUT;
    int rc;
    if (!m->done) {
        m->abandoned = 1; /* its owner frees it */
        rc = vaed_err_set(err, VAED_EBUSY, NULL, "%s (waited %.0f s)", slow, J->cfg.wait_s);
    } else {
        rc = m->rc;
        if (rc)
            vaed_err_set(err, rc, NULL, "%s", m->msg);
        else {
            if (step)
                *step = m->effective_step;
            if (resolved)
                *resolved = m->resolved;
        }
        free(m);
    }
    job_unref(jb);
    pthread_mutex_unlock(&J->mu);
    return rc;
}

static int post(jobs *J, int64_t id, job_msg *m, const char *slow, int64_t *step,
                sched_spec *resolved, vaed_err *err)
{
    return post_at(J, id, m, slow, step, resolved, err, 0);
}

static job_msg *msg_new(enum job_msg_kind kind)
{
    job_msg *m = xcalloc(1, sizeof *m);
    m->kind = kind;
    return m;
}

int jobs_pause(jobs *J, int64_t id, vaed_err *err)
{
    return post(J, id, msg_new(MSG_PAUSE), "the job did not pause in time", NULL, NULL, err);
}

int jobs_resume(jobs *J, int64_t id, vaed_err *err)
{
    return post(J, id, msg_new(MSG_RESUME), "the job was not resumed in time", NULL, NULL, err);
}

int jobs_cancel(jobs *J, int64_t id, vaed_err *err)
{
    return post(J, id, msg_new(MSG_CANCEL), "the job did not stop in time", NULL, NULL, err);
}

int jobs_set_schedule(jobs *J, int64_t id, const sched_spec *s, int64_t *eff,
                      sched_spec *resolved, vaed_err *err)
{
    job_msg *m = msg_new(MSG_SCHEDULE);
    m->sched = *s;
    return post(J, id, m,
                "the job did not reach its next step in time; the change stays queued "
                "and applies then",
                eff, resolved, err);
}

int jobs_set_lr(jobs *J, int64_t id, double lr, int64_t *eff, vaed_err *err)
{
    job_msg *m = msg_new(MSG_LR);
    m->lr = lr;
    return post(J, id, m,
                "the job did not reach its next step in time; the change stays queued "
                "and applies then",
                eff, NULL, err);
}

int jobs_checkpoint_now(jobs *J, int64_t id, int64_t *step, vaed_err *err)
{
    return post(J, id, msg_new(MSG_CHECKPOINT), "no checkpoint was taken in time", step, NULL, err);
}
