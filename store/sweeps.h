/* sweeps.h — a sweep's rows: the request (sweeps) and, per trial, the job that runs it
 * and its point in the search space (sweep_trials). The trials' jobs are ordinary rows
 * of jobs, each with its "submit" schedule event; store_sweep_insert writes the sweep,
 * every trial's job, event and trial row in ONE writer transaction, so a crash leaves
 * either the whole sweep queued or none of it. */
#ifndef VAED_STORE_SWEEPS_H
#define VAED_STORE_SWEEPS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct store_sweep_trial_new {
    const char *name;           /* the job's name */
    const char *spec;           /* the job's full spec, JSON text */
    int priority;
    const char *schedule;       /* its starting schedule, JSON text (the submit event) */
    const char *point;          /* the trial's point, a JSON object text */
} store_sweep_trial_new;

typedef struct store_sweep_new {
    const char *name;
    const char *spec;           /* the sweep request, JSON text */
    int concurrency;            /* >= 1 */
    size_t n;                   /* trials, numbered 0..n-1 */
    const store_sweep_trial_new *trials;
} store_sweep_new;

/* Insert the sweep and its n trials' jobs (queued, in trial order at the back of the
 * queue) in one transaction. OUT *id, job_ids[i] (n entries) the job of trial i.
 * VAED_EINVAL for a text that is not valid JSON, VAED_EDB when the store fails. */
int store_sweep_insert(store *st, const store_sweep_new *sw, int64_t *id, int64_t *job_ids,
                       vaed_err *err);

/* One trial as the sweep's table shows it: its job's state and, once there, the job's
 * last test-epoch figures and the best completed evaluation's bound. */
typedef struct store_sweep_trial {
    int64_t trial, job;
    char *point;                /* JSON object text, owned */
    char state[16];
    int has_epoch;              /* 0: no test epoch row yet */
    double kl, xent, elbo;
    int active_units;
    int has_bound;
    double bound;
    int epoch;                  /* the last test epoch's number (has_epoch) */
    char *reason;               /* the job's failure or stop reason, owned; NULL: none */
} store_sweep_trial;

typedef struct store_sweep {
    int64_t id;
    char *name, *spec;          /* owned */
    int concurrency;
    double created_at;
    size_t n;
    store_sweep_trial *trials;  /* n, by trial; owned */
} store_sweep;

void store_sweep_clear(store_sweep *s);

/* OUT *s: the sweep and its trials (trials: 0 = leave them out). VAED_ENOTFOUND. */
int store_sweep_get(store *st, int64_t id, int trials, store_sweep *s, vaed_err *err);

/* OUT *ids, *n: every sweep's id, ascending (free()). */
int store_sweeps_ids(store *st, int64_t **ids, size_t *n, vaed_err *err);

/* The sweep a job is a trial of: OUT *sweep (0 when none) and its *concurrency. */
int store_sweep_of_job(store *st, int64_t job, int64_t *sweep, int *concurrency,
                       vaed_err *err);

/* The values of metric ("elbo", "kl" or "xent") that the trials of sweep other than
 * job have recorded (committed) in their test row of epoch: ASHA's rung (daemon/asha.h).
 * OUT *vals (free()), *n. VAED_EINVAL for another metric. */
int store_sweep_rung_values(store *st, int64_t sweep, int64_t job, int epoch,
                            const char *metric, double **vals, size_t *n, vaed_err *err);

/* ---- population-based training (daemon/pbt.h) ------------------------------------- */

/* A member's decision at a generation boundary (its step and epoch). */
typedef struct store_pbt_decision {
    int64_t job, step;
    int epoch;
    int64_t donor;              /* 0: the member kept its own state */
    double value;               /* the member's objective there */
    char *schedule;             /* the perturbed schedule put in force at step (JSON
                                   text, owned); NULL when kept */
    double created_at;
    int64_t trial;              /* the member's trial (lists only) */
} store_pbt_decision;

/* Record d (its job and step; a decision already there stays: the first one wins), and
 * wait for the commit. VAED_EINVAL for a schedule that is not JSON. */
int store_pbt_decide(store *st, const store_pbt_decision *d, vaed_err *err);

/* OUT *d: job's decision at step (d->schedule owned). VAED_ENOTFOUND when none. */
int store_pbt_get(store *st, int64_t job, int64_t step, store_pbt_decision *d, vaed_err *err);

/* The members of job's sweep that may be ranked at the boundary (step, epoch): job
 * itself and every other member that kept its state there, each with its committed test
 * value of metric ("elbo", "kl" or "xent") at epoch, by trial. OUT jobs, trials, vals
 * (n entries each; free()). */
int store_pbt_members(store *st, int64_t sweep, int64_t job, int64_t step, int epoch,
                      const char *metric, int64_t **jobs, int64_t **trials, double **vals,
                      size_t *n, vaed_err *err);

/* Every decision of sweep's members, by trial then step. OUT *out, *n (free with
 * store_pbt_free). */
int store_pbt_list(store *st, int64_t sweep, store_pbt_decision **out, size_t *n,
                   vaed_err *err);
void store_pbt_free(store_pbt_decision *d, size_t n);

#endif
