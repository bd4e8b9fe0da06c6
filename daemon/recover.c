/* recover.c — what a restart must do again. At start, the store's unfinished jobs go
 * back into the table: running and interrupted ones queued again (they resume from their
 * newest checkpoint), queued ones in their stored order, paused ones paused. When a
 * worker resumes a job, the schedule changes recorded after its checkpoint are applied
 * again at their recorded steps, through job_apply like a client's (control.c), so the
 * steps after the checkpoint are computed again identically and their rows replaced. A
 * fork's 'submit' event at its first step is replayed too, unless it equals the
 * schedule in force. */
#include "daemon/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "store/sweeps.h"
#include "vae/spec.h"

int recover_history(run *r, vaed_err *err)
{
    int rc = store_events_list(r->J->st, r->jb->id, &r->events, &r->n_events, err);
    if (rc)
        return rc;
    /* keep the overrides that governed steps, in order, and a fork's starting schedule
     * (a 'submit' event past step 0) */
    size_t k = 0;
    for (size_t i = 0; i < r->n_events; i++) {
        if (!r->events[i].superseded && (!strcmp(r->events[i].source, "override") ||
                                         r->events[i].effective_step > 0)) {
            store_event tmp = r->events[k];
            r->events[k++] = r->events[i];
            r->events[i] = tmp;
        }
    }
    for (size_t i = k; i < r->n_events; i++)
        free(r->events[i].schedule);
    r->n_events = k;
    r->next_event = 0;
    return 0;
}

int recover_replay(run *r, vaed_err *err)
{
    long step = vae_trainer_step_index(r->t);
    while (r->next_event < r->n_events && r->events[r->next_event].effective_step <= step) {
        store_event *ev = &r->events[r->next_event++];
        if (ev->effective_step < step)
            continue; /* already part of the restored state */
        json_error_t je;
        json_t *doc = json_loads(ev->schedule, 0, &je);
        job_msg m = {.kind = MSG_SCHEDULE, .replay = ev->source};
        int rc = doc ? sched_parse(&m.sched, doc, "schedule", 0, err) : VAED_EINVAL;
        json_decref(doc);
        if (rc)
            return vaed_err_set(err, VAED_EINVAL, NULL,
                                "recorded schedule change %lld cannot be read back",
                                (long long)ev->seq);
        job_apply(r->J, r->jb, r, &m);
    }
    return 0;
}

static int spec_from_text(const char *text, vae_spec *out, vaed_err *err)
{
    return vae_spec_parse_text(out, text, strlen(text), err);
}

/* A reloaded job's sweep and its concurrency, from the store (0 when it is no trial),
 * so the queue keeps the sweep's limit across a restart. */
static int sweep_fill(jobs *J, job *jb, vaed_err *err)
{
    return store_sweep_of_job(J->st, jb->id, &jb->sweep_id, &jb->sweep_conc, err);
}

int recover_job(jobs *J, const store_job *sj, enum job_state state, job **out, vaed_err *err)
{
    *out = NULL;
    vae_spec spec;
    vaed_err e2;
    /* a second try first: jansson reports a failed allocation as a syntax error,
     * and a job must not fail for good on a transient one */
    if (spec_from_text(sj->spec, &spec, &e2) && spec_from_text(sj->spec, &spec, &e2)) {
        if (state == JOB_PAUSED)
            return 0;
        char why[600];
        snprintf(why, sizeof why, "stored spec no longer valid: %s", e2.msg);
        job_record_state(J, sj->id, "failed", why);
        return 0;
    }
    /* a cluster's node leaves a running job's state to the node that takes it */
    if (state == JOB_QUEUED && strcmp(sj->state, "queued") && !J->cluster) {
        log_msg(LOG_INFO, "job %lld was %s: queued to resume", (long long)sj->id, sj->state);
        job_record_state(J, sj->id, "queued", NULL);
    }
    job *jb = job_new(sj->id, &spec, sj->queue_seq, state);
    snprintf(jb->kernels, sizeof jb->kernels, "%s", sj->kernels);
    if (state == JOB_PAUSED)
        jb->step = sj->step;
    else if (jb->kernels[0] && strcmp(jb->kernels, J->kernels))
        log_msg(J->cfg.accept_other_cores ? LOG_INFO : LOG_WARN,
                "job %lld last ran on other kernels (%s; this node: %s): %s",
                (long long)sj->id, sj->kernels, J->kernels,
                J->cfg.accept_other_cores
                    ? "resumed here (--accept-other-cores): correctly, not bit for bit"
                    : "it waits for a node with its kernels (--accept-other-cores 1 "
                      "resumes it here, correctly but not bit for bit)");
    int rc = sweep_fill(J, jb, err);
    if (rc) {
        job_unref(jb);
        return rc;
    }
    *out = jb;
    return 0;
}

static int recover_add(jobs *J, const store_job *sj, enum job_state state, vaed_err *err)
{
    job *jb;
    int rc = recover_job(J, sj, state, &jb, err);
    if (jb)
        job_table_add(J, jb);
    return rc;
}

int recover_jobs(jobs *J, vaed_err *err)
{
    store *st = J->st;
    /* Unfinished jobs back into the queue, in their stored order. */
    store_job_list l = {0};
    int rc = store_jobs_resumable(st, &l, err);
    if (rc)
        goto fail;
    for (size_t i = 0; i < l.n; i++)
        if ((rc = recover_add(J, &l.jobs[i], JOB_QUEUED, err)))
            goto fail;
    store_job_list_free(&l);
    /* Paused jobs wait for a resume. */
    int64_t after = 0;
    do {
        if ((rc = store_jobs_list(st, STORE_PAUSED, after, 500, &l, err)))
            goto fail;
        for (size_t i = 0; i < l.n; i++)
            if ((rc = recover_add(J, &l.jobs[i], JOB_PAUSED, err)))
                goto fail;
        after = l.next_after;
        store_job_list_free(&l);
    } while (after > 0);

    return 0;
fail:
    store_job_list_free(&l);
    return rc;
}
