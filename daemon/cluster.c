/* cluster.c — a node of a cluster (jobs.h "Cluster"; issue 17): the jobs of one
 * PostgreSQL database, run by any number of vaed nodes with no coordinator of their own.
 *
 * Every node keeps every unfinished job in its table (the database is the truth; this
 * thread brings the table in line once a second: jobs another node submitted come in,
 * jobs another node finished leave, pauses and resumes follow). A worker that picks a
 * job takes the job's lease first (store_lease_take): the one node whose take succeeds
 * runs it, the others skip it for a while. A trial of a sweep is taken only while fewer
 * than its sweep's concurrency of its trials hold leases on any node (counted in the
 * take's transaction); past it the sweep's trials wait here a second. A thread of its
 * own (never behind the table's sync) renews the leases of the jobs and evaluations
 * this node runs every third of --lease-ttl (at most every second); a renew that
 * finds a lease lost (this node was paused or cut off past it, and another node took
 * the job, or it expired) stops the job here at its next step, writing nothing more —
 * and whatever it still tries to write is refused inside the database transaction by
 * the lease's generation (the writer's fence, store.h "cluster"). A node that dies
 * stops renewing; after the ttl another node takes the job and resumes it from its
 * newest checkpoint, as a restart would (recover.c). A client's change to a queued or
 * paused job takes the lease too, for as long as it is applied (control.c), so two
 * nodes never change one job at once. */
#include "daemon/job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"

int cluster_take(jobs *J, job *jb, int to_run, char owner[64])
{
    if (!J->cluster)
        return 1;
    store_lease l;
    vaed_err err;
    int64_t sweep = to_run ? jb->sweep_id : 0; /* fixed at creation: read without mu */
    int rc = sweep > 0 ? store_lease_take_trial(J->st, jb->id, sweep, J->cfg.lease_ttl, &l, &err)
                       : store_lease_take(J->st, jb->id, J->cfg.lease_ttl, &l, &err);
    if (rc < 0)
        log_msg(LOG_WARN, "job %lld: taking its lease: %s", (long long)jb->id, err.msg);
    if (owner)
        snprintf(owner, 64, "%s", rc == 0 && l.held ? l.node : "");
    if (rc == 0 && l.done)
        return CLUSTER_DONE;
    if (rc == 0 && l.full) {
        /* its sweep runs its concurrency's worth of trials (on any node): none of its
         * trials is tried here for a second, so one look a second asks the database */
        pthread_mutex_lock(&J->mu);
        double until = job_mono() + 1.0;
        for (job *o = J->table; o; o = o->next)
            if (o->sweep_id == sweep && (o == jb || o->state == JOB_QUEUED)) {
                o->away_until = until;
                o->away_full = 1;
                o->away_node[0] = '\0';
            }
        pthread_mutex_unlock(&J->mu);
        return 0;
    }
    pthread_mutex_lock(&J->mu);
    jb->away_full = 0;
    if (rc != 1) {
        /* held elsewhere (or unreachable): looked at again within a ttl, and at once
         * when the thread below sees the job free */
        jb->away_until = job_mono() + (rc == 0 && l.held ? J->cfg.lease_ttl / 3 : 1.0);
        snprintf(jb->away_node, sizeof jb->away_node, "%s", rc == 0 ? l.node : "");
    }
    pthread_mutex_unlock(&J->mu);
    return rc;
}

void cluster_sweep_wake(jobs *J, int64_t sweep)
{
    if (!J->cluster || sweep <= 0)
        return;
    for (job *o = J->table; o; o = o->next)
        if (o->sweep_id == sweep && o->away_full) {
            o->away_until = 0;
            o->away_full = 0;
        }
    pthread_cond_broadcast(&J->work);
}

void cluster_release(jobs *J, job *jb, int done)
{
    if (!J->cluster)
        return;
    vaed_err err;
    int rc = 0;
    for (int tries = 0; (rc = store_lease_release(J->st, jb->id, done, &err)) != 0 &&
                        rc != VAED_ESTATE && tries < 10; tries++)
        job_nap_ms(100);
    if (rc && rc != VAED_ESTATE)
        log_msg(LOG_WARN, "job %lld: releasing its lease: %s (it frees itself after "
                "--lease-ttl)", (long long)jb->id, err.msg);
}

int cluster_learn(jobs *J, const store_job *sj)
{
    enum job_state state = JOB_QUEUED;
    if (!strcmp(sj->state, "paused"))
        state = JOB_PAUSED;
    else if (strcmp(sj->state, "queued") && strcmp(sj->state, "running") &&
             strcmp(sj->state, "interrupted"))
        return 0;
    job *nj = NULL;
    vaed_err err;
    if (recover_job(J, sj, state, &nj, &err) || !nj)
        return 0;
    pthread_mutex_lock(&J->mu);
    if (job_find(J, sj->id)) {
        job_unref(nj);
    } else {
        job_table_add(J, nj);
        pthread_cond_signal(&J->work);
    }
    pthread_mutex_unlock(&J->mu);
    return 1;
}

void cluster_forget(jobs *J, job *jb)
{
    jb->state = JOB_FINISHED;
    job_answer_all(jb, VAED_ESTATE, "the job has finished");
    job_release(J, jb); /* drops the table's reference: jb may be gone after it */
}

/* Renew the leases of the jobs this node runs; mark those lost. */
static void renew_all(jobs *J)
{
    int64_t ids[256];
    size_t n = 0;
    pthread_mutex_lock(&J->mu);
    for (job *jb = J->table; jb && n < sizeof ids / sizeof *ids; jb = jb->next)
        if (jb->leased && !atomic_load(&jb->lease_lost))
            ids[n++] = jb->id;
    pthread_mutex_unlock(&J->mu);
    for (size_t i = 0; i < n; i++) {
        vaed_err err;
        double sent = job_mono();
        int rc = store_lease_renew(J->st, ids[i], J->cfg.lease_ttl, &err);
        pthread_mutex_lock(&J->mu);
        job *jb = job_find(J, ids[i]);
        if (jb && jb->leased && rc == 0) {
            jb->renewed_at = sent;
        } else if (jb && jb->leased && rc != VAED_ESTATE &&
                   job_mono() - jb->renewed_at < J->cfg.lease_ttl * 0.8) {
            log_msg(LOG_WARN, "job %lld: renewing its lease: %s", (long long)ids[i], err.msg);
        } else if (jb && jb->leased) {
            /* lost, or not renewed for most of a lease (the database out of reach):
             * another node may hold it by now, so it stops here */
            atomic_store(&jb->lease_lost, 1);
            log_msg(LOG_WARN, "job %lld: lease lost (%s): it stops here, and its writes from "
                    "this node are refused", (long long)ids[i],
                    rc == VAED_ESTATE ? "another node took it, or it expired"
                                      : "not renewed for most of a lease");
        }
        pthread_mutex_unlock(&J->mu);
    }
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Is id in the sorted ids[0..n)? */
static int has_id(const int64_t *ids, size_t n, int64_t id)
{
    return n && bsearch(&id, ids, n, sizeof *ids, cmp_id);
}

/* Jobs of l the table lacks come in, as state (their specs read and their sweeps
 * looked up without mu); one the table has in the other waiting state, and nobody here
 * holds, changes to state (a pause or resume through another node). */
static void sync_list(jobs *J, const store_job_list *l, enum job_state state)
{
    for (size_t i = 0; i < l->n; i++) {
        pthread_mutex_lock(&J->mu);
        job *jb = job_find(J, l->jobs[i].id);
        if (jb && jb->owner == OWNER_NONE && jb->state != state &&
            (jb->state == JOB_QUEUED || jb->state == JOB_PAUSED)) {
            jb->state = state;
            if (state == JOB_PAUSED)
                jb->step = l->jobs[i].step;
        }
        pthread_mutex_unlock(&J->mu);
        if (jb)
            continue;
        vaed_err err;
        job *nj = NULL;
        if (recover_job(J, &l->jobs[i], state, &nj, &err) || !nj)
            continue;
        pthread_mutex_lock(&J->mu);
        if (job_find(J, nj->id))
            job_unref(nj);
        else
            job_table_add(J, nj);
        pthread_mutex_unlock(&J->mu);
    }
}

/* Append l's ids to *ids (n of cap). 0, or -1 when out of memory. */
static int push_ids(int64_t **ids, size_t *n, size_t *cap, const store_job_list *l)
{
    if (*n + l->n > *cap) {
        size_t c = 2 * (*n + l->n) + 16;
        int64_t *g = realloc(*ids, c * sizeof *g);
        if (!g)
            return -1;
        *ids = g;
        *cap = c;
    }
    for (size_t i = 0; i < l->n; i++)
        (*ids)[(*n)++] = l->jobs[i].id;
    return 0;
}

/* Bring the table in line with the database: unfinished jobs it lacks come in, paused
 * and queued follow the database for jobs nobody here holds, and jobs the database no
 * longer has unfinished (finished or cancelled through another node) leave. */
static void sync_table(jobs *J)
{
    double t0 = job_mono();
    store_job_list l = {0};
    vaed_err err;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int complete = store_jobs_resumable(J->st, &l, &err) == 0;
    if (complete) {
        sync_list(J, &l, JOB_QUEUED);
        complete = push_ids(&ids, &n, &cap, &l) == 0;
    }
    store_job_list_free(&l);
    for (int64_t after = 0; complete;) {
        complete = store_jobs_list(J->st, STORE_PAUSED, after, 500, &l, &err) == 0;
        if (complete) {
            sync_list(J, &l, JOB_PAUSED);
            complete = push_ids(&ids, &n, &cap, &l) == 0;
            after = l.next_after;
        }
        store_job_list_free(&l);
        if (after <= 0)
            break;
    }
    if (complete && n)
        qsort(ids, n, sizeof *ids, cmp_id);
    pthread_mutex_lock(&J->mu);
    for (job *jb = J->table, *next; complete && jb; jb = next) {
        next = jb->next;
        if (jb->owner != OWNER_NONE || jb->born >= t0 || has_id(ids, n, jb->id))
            continue;
        /* finished (or cancelled) through another node */
        jb->owner = OWNER_CALLER;
        cluster_forget(J, jb);
    }
    /* a job another node held may be free now: the workers look again */
    pthread_cond_broadcast(&J->work);
    pthread_mutex_unlock(&J->mu);
    free(ids);
    evals_sync(J, t0);
}

/* Wait on cluster_cv up to every seconds (mu held): 0, or 1 once cluster_quit is set. */
static int cluster_nap(jobs *J, double every)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    long ns = dl.tv_nsec + (long)(every * 1e9);
    dl.tv_sec += ns / 1000000000L;
    dl.tv_nsec = ns % 1000000000L;
    if (!J->cluster_quit)
        pthread_cond_timedwait(&J->cluster_cv, &J->mu, &dl);
    return J->cluster_quit;
}

/* The renewals, on a thread of their own: a long table sync (a very long queue, a slow
 * database read) never delays them past the lease. */
static void *renew_main(void *arg)
{
    jobs *J = arg;
    double every = J->cfg.lease_ttl / 3 < 1.0 ? J->cfg.lease_ttl / 3 : 1.0;
    pthread_mutex_lock(&J->mu);
    while (!cluster_nap(J, every)) {
        pthread_mutex_unlock(&J->mu);
        renew_all(J);
        evals_renew(J);
        pthread_mutex_lock(&J->mu);
    }
    pthread_mutex_unlock(&J->mu);
    return NULL;
}

/* The heartbeat and the table's sync, once a second (at most every third of a lease). */
static void *cluster_main(void *arg)
{
    jobs *J = arg;
    double every = J->cfg.lease_ttl / 3 < 1.0 ? J->cfg.lease_ttl / 3 : 1.0;
    pthread_mutex_lock(&J->mu);
    while (!cluster_nap(J, every)) {
        pthread_mutex_unlock(&J->mu);
        vaed_err err;
        if (store_node_beat(J->st, J->kernels, 0, &err))
            log_msg(LOG_WARN, "cluster node %s: heartbeat: %s", store_node(J->st), err.msg);
        sync_table(J);
        pthread_mutex_lock(&J->mu);
    }
    pthread_mutex_unlock(&J->mu);
    return NULL;
}

/* The node's control thread: requests other nodes sent for the jobs it holds, woken by a
 * notification (or every half second: the table is the record), applied one by one as
 * a client's calls would be, each answer written back. */
static void *control_main(void *arg)
{
    jobs *J = arg;
    for (;;) {
        pthread_mutex_lock(&J->mu);
        int quit = J->cluster_quit;
        pthread_mutex_unlock(&J->mu);
        if (quit)
            break;
        store_control *rq = NULL;
        size_t n = 0;
        vaed_err err;
        if (store_control_take(J->st, &rq, &n, &err) == 0)
            for (size_t i = 0; i < n; i++) {
                job_control_remote(J, &rq[i]);
                log_msg(LOG_INFO, "job %lld: %s sent through another node: %s", (long long)rq[i].job,
                        rq[i].kind, rq[i].rc ? rq[i].msg : "applied");
                if (store_control_answer(J->st, &rq[i], &err))
                    log_msg(LOG_WARN, "job %lld: answering a control request: %s",
                            (long long)rq[i].job, err.msg);
            }
        store_control_free(rq, n);
        if (n == 0)
            store_control_nap(J->st, 500);
    }
    return NULL;
}

int cluster_start(jobs *J, vaed_err *err)
{
    if (!J->cluster)
        return 0;
    int rc = store_control_listen(J->st, err);
    if (rc == 0)
        rc = store_node_beat(J->st, J->kernels, 1, err);
    if (rc)
        return rc;
    if (pthread_create(&J->cluster_thread, NULL, cluster_main, J))
        return vaed_err_set(err, VAED_ENOMEM, NULL, "could not start the cluster thread");
    J->cluster_started = 1;
    if (pthread_create(&J->renew_thread, NULL, renew_main, J)) {
        cluster_stop(J);
        return vaed_err_set(err, VAED_ENOMEM, NULL, "could not start the renewal thread");
    }
    J->cluster_started = 2;
    if (pthread_create(&J->control_thread, NULL, control_main, J)) {
        cluster_stop(J);
        return vaed_err_set(err, VAED_ENOMEM, NULL, "could not start the control thread");
    }
    J->cluster_started = 3;
    if ((rc = mirror_start(J, err)) != 0) {
        cluster_stop(J);
        return rc;
    }
    log_msg(LOG_INFO, "cluster node %s: jobs are taken by lease (--lease-ttl %.0f s)",
            store_node(J->st), J->cfg.lease_ttl);
    return 0;
}

void cluster_stop(jobs *J)
{
    if (!J->cluster_started)
        return;
    pthread_mutex_lock(&J->mu);
    J->cluster_quit = 1;
    pthread_cond_broadcast(&J->cluster_cv);
    pthread_mutex_unlock(&J->mu);
    pthread_join(J->cluster_thread, NULL);
    if (J->cluster_started >= 2)
        pthread_join(J->renew_thread, NULL);
    if (J->cluster_started >= 3)
        pthread_join(J->control_thread, NULL);
    mirror_join(J);
    J->cluster_started = 0;
}
