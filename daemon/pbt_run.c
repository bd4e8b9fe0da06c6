/* pbt_run.c — a PBT member's generation boundary, carried out by the worker that owns
 * it (job.h: pbt_boundary; the rule is pbt.h's, the sweep's docs are docs/sweeps.md).
 *
 * Asynchronous, as Jaderberg et al.'s members are: at the end of its test epoch e, a
 * multiple of pbt.interval, a member is ranked with the members that have kept their
 * own state at e so far (a member that took a donor's is no longer what its value says).
 * The bottom quantile takes a donor from the top; the first member at a boundary has
 * nobody to compare with and keeps its state.
 *
 * Order, so that a crash anywhere redoes exactly what was decided:
 *   1. the member's state at the boundary step S is checkpointed (kind "epoch", waited;
 *      the test row of e is committed before it, the writer being FIFO);
 *   2. the decision (donor or none, the perturbed schedule) is recorded, waited;
 *   3. exploit: the donor's checkpoint at S is loaded, the member's learning rate (its
 *      spec's) put back, and the state checkpointed as the member's own at S (kind
 *      "fork", replacing the one of step 1);
 *   4. explore: the perturbed schedule is put in force through job_apply, recorded as an
 *      override effective at S like a client's PUT.
 * A restart resumes from the member's checkpoint at S: "epoch" with no decision → from 2;
 * "epoch" with an exploit → from 3; any other kind at S was written after 3 ("fork", or
 * a pause, manual or periodic one taken since) → 4 is the override recovery replays at
 * S, or, if the crash came before it was recorded, done here. The donor's
 * checkpoint at S is its kept state there, which never changes (PBT members keep their
 * epoch-end checkpoints: worker.c), so doing 3 twice gives the same bits. */
#include "daemon/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "store/sweeps.h"

/* The boundary's epoch when the member is at one, else -1. */
static int boundary_epoch(const run *r)
{
    long spe = vae_trainer_steps_per_epoch(r->t);
    long step = vae_trainer_step_index(r->t);
    if (!r->pbt.on || spe <= 0 || step <= 0 || step % spe || vae_trainer_finished(r->t))
        return -1;
    int e = (int)(step / spe);
    return e % r->pbt.interval == 0 ? e : -1;
}

/* Load donor's state at step into the member and give it back its own learning rate. */
static int take_donor(run *r, int64_t donor, int64_t step, vaed_err *err)
{
    void *blob = NULL;
    size_t len = 0;
    int rc = store_checkpoint_get(r->J->st, donor, step, NULL, &blob, &len, err);
    if (rc == VAED_ENOTFOUND)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "PBT: the donor job %lld has no checkpoint at step %lld any more",
                            (long long)donor, (long long)step);
    if (rc)
        return rc;
    rc = vae_trainer_load(r->t, blob, len, err);
    free(blob);
    if (rc)
        return rc;
    vae_trainer_set_lr(r->t, r->jb->spec.optimizer.lr);
    return 0;
}

/* Rank the member at (step, epoch) and record the decision. */
static int decide(run *r, long step, int epoch, vaed_err *err)
{
    job *jb = r->jb;
    int64_t *jobs_, *trials;
    double *vals;
    size_t n;
    int rc = store_pbt_members(r->J->st, jb->sweep_id, jb->id, step, epoch, r->pbt.metric,
                               &jobs_, &trials, &vals, &n, err);
    if (rc)
        return rc;
    size_t me = n;
    for (size_t i = 0; i < n; i++)
        if (jobs_[i] == jb->id)
            me = i;
    store_pbt_decision d = {.job = jb->id, .step = step, .epoch = epoch,
                            .value = me < n ? vals[me] : NAN};
    long *donor = calloc(n ? n : 1, sizeof *donor);
    char *text = NULL;
    if (!donor)
        rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    if (!rc && me < n && n >= 2) {
        pbt_select(vals, n, r->pbt.maximize, r->pbt.quantile, donor);
        if (donor[me] >= 0) {
            d.donor = jobs_[donor[me]];
            /* the donor's schedule at step, perturbed: read from its checkpoint there */
            sched_spec ps;
            if (!(rc = take_donor(r, d.donor, step, err)) &&
                !(rc = pbt_perturb(&r->pbt, vae_trainer_schedule(r->t), epoch / r->pbt.interval,
                                   (long)trials[me], &ps, err))) {
                json_t *j = sched_to_json(&ps);
                text = j ? json_dumps(j, JSON_COMPACT) : NULL;
                json_decref(j);
                if (!text)
                    rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
            }
            d.schedule = text;
        }
    }
    if (!rc) {
        rc = store_pbt_decide(r->J->st, &d, err);
        if (rc == VAED_EINVAL)
            rc = VAED_ENOMEM; /* a text just written: a failed allocation (submit.c) */
    }
    if (!rc && d.donor)
        log_msg(LOG_INFO, "job %lld: pbt: epoch %d, %s %.6g: takes job %lld's state, schedule %s",
                (long long)jb->id, epoch, r->pbt.metric, d.value, (long long)d.donor, text);
    else if (!rc)
        log_msg(LOG_INFO, "job %lld: pbt: epoch %d, %s %.6g: keeps its state", (long long)jb->id,
                epoch, r->pbt.metric, d.value);
    free(text);
    free(donor);
    free(jobs_);
    free(trials);
    free(vals);
    return rc;
}

/* Whether the recorded history that recovery replays holds a change at step. */
static int replays_at(const run *r, long step)
{
    for (size_t i = 0; i < r->n_events; i++)
        if (r->events[i].effective_step == step && !r->events[i].superseded)
            return 1;
    return 0;
}

int pbt_boundary(run *r, const char *resumed_kind, vaed_err *err)
{
    int epoch = boundary_epoch(r);
    if (epoch < 0)
        return 0;
    job *jb = r->jb;
    long step = vae_trainer_step_index(r->t);
    store_pbt_decision d;
    int rc = store_pbt_get(r->J->st, jb->id, step, &d, err);
    int fresh = rc == VAED_ENOTFOUND;
    if (fresh) {
        /* decide() may already hold the donor's state in r->t: it is the exploit's */
        if ((rc = decide(r, step, epoch, err)) ||
            (rc = store_pbt_get(r->J->st, jb->id, step, &d, err)))
            return rc;
    } else if (rc) {
        return rc;
    }
    if (!d.donor) {
        free(d.schedule);
        return 0;
    }
    /* 3: the donor's state as the member's own, unless the member resumed from it */
    /* only from the boundary's own "epoch" checkpoint: any other kind at this step
     * (fork, pause, manual, periodic) was taken after the exploit, and a client's
     * change since (an lr PUT) is in it */
    if (!resumed_kind || !strcmp(resumed_kind, "epoch")) {
        if ((!fresh && (rc = take_donor(r, d.donor, step, err))) ||
            (rc = worker_checkpoint(r, "fork", 1, err))) {
            free(d.schedule);
            return rc;
        }
    }
    /* 4: the perturbed schedule, unless recovery replays it at this step */
    if (!(resumed_kind && replays_at(r, step))) {
        json_error_t je;
        json_t *doc = d.schedule ? json_loads(d.schedule, 0, &je) : NULL;
        job_msg m = {.kind = MSG_SCHEDULE, .requested_at = 0};
        rc = doc ? sched_parse(&m.sched, doc, "schedule", 0, err)
                 : vaed_err_set(err, VAED_EINVAL, NULL,
                                "PBT: the decision at step %ld has no readable schedule", step);
        json_decref(doc);
        if (!rc && job_apply(r->J, jb, r, &m))
            rc = vaed_err_set(err, m.rc, NULL, "PBT: the perturbed schedule: %s", m.msg);
    }
    free(d.schedule);
    if (!rc) {
        pthread_mutex_lock(&r->J->mu);
        jb->last.beta = vae_trainer_beta(r->t);
        pthread_mutex_unlock(&r->J->mu);
    }
    return rc;
}
