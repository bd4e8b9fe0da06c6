/* jobs.h — the job manager, the door of daemon/ for api/: submit a job, control it,
 * read its live figures. Inside, it is split by concern (daemon/job.h is the internal
 * contract): queue.c (the table and the workers), control.c (job_apply: every control
 * in every state), worker.c (the training loop of one job), recover.c (what a restart
 * does again), submit.c (validation and queueing).
 *
 * States and transitions (anything else is VAED_ESTATE, HTTP 409):
 *     queued → running ⇄ paused → completed | failed | cancelled
 *     queued | running | paused → cancelled
 *     running | paused --daemon stops--> interrupted --daemon starts--> queued
 * The store holds the truth; the manager keeps in memory only the jobs that are not
 * finished (queued, running, paused), each with a live status snapshot that the
 * worker publishes every step.
 *
 * One owner per job. Clients never touch a model: each call below posts a message to
 * the job, and the job's owner applies it through one function (control.c's job_apply)
 * — the worker of a running job at the top of its next step, or, for a queued or
 * paused job, the calling thread itself, which holds the job meanwhile so that no
 * worker starts it halfway through a change. The caller waits (bounded by wait_s) for
 * the answer, so a reply says what happened, and at which step, not what was asked.
 *
 * Queue order: priority descending, then FIFO (the store's queue_seq). A resumed job
 * goes to the front. A job whose dataset cannot be loaded, whose model does not fit,
 * or that diverges fails with its reason; the worker carries on with the next job.
 *
 * Recovery: at start, jobs that were running or interrupted are queued again and
 * resume from their newest checkpoint; the schedule changes recorded after that
 * checkpoint are applied again at their recorded steps, through job_apply, so the
 * steps after it are computed again identically and their metric rows replaced.
 *
 * Kernels: a job records what decided its latest steps' bits (vae_kernels_id: the
 * OpenBLAS core, the multiply libraries, the build's vector set) when it starts running.
 * A queued job whose record differs from this node's is not taken unless
 * accept_other_cores: resumed here, its steps would continue correctly but not bit for
 * bit. It waits, and its job object says for what ("waiting_for_kernels"); taken with
 * accept_other_cores, the log says so and the record becomes this node's.
 *
 * Cluster: on a store opened with a node name (a PostgreSQL database shared by several
 * daemons, daemon/cluster.c), a job runs where its lease is: a worker takes the job's
 * lease before it runs it (a job another node holds is skipped), renews it every third
 * of lease_ttl, and stops the job unrecorded when the lease is lost; every write of the
 * job carries the lease's generation and is refused once another node holds it. A
 * control call on a job another node holds is forwarded to it (control.c), and answered
 * VAED_EAWAY (503, the node named; nothing is guessed) when it does not answer in time;
 * on a queued or paused job it takes the lease for as long as it applies. The table follows the database once a second (jobs submitted,
 * finished, paused or resumed through other nodes). */
#ifndef VAED_JOBS_H
#define VAED_JOBS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "vae/err.h"
#include "vae/sched.h"
#include "vae/spec.h"
#include "vae/train.h"

typedef struct jobs jobs;

/* What the job manager asks of the dataset registry (api/datasets.h registers it; the
 * daemon does not include api/): parse a spec whose dataset may name a registered
 * dataset by id, tell whether a path is an uploaded dataset's file (allowed past the
 * --data-dir check), and give the file this node reads for a path (an upload's copy
 * here, written from the database when this node has none yet). */
typedef struct jobs_datasets {
    void *ctx;
    int (*spec_parse)(void *ctx, store *st, vae_spec *out, const json_t *doc, vaed_err *err);
    int (*owns_path)(void *ctx, store *st, const char *path);
    int (*local_path)(void *ctx, store *st, const char *path, char *out, size_t n,
                      vaed_err *err);
} jobs_datasets;

typedef struct jobs_config {
    int workers;                /* jobs trained at once, >= 1 */
    int threads;                /* training threads per job; 0 = the spec's train.threads */
    size_t max_job_memory;      /* bytes; a job estimated above it is refused (422) */
    const char *data_dir;       /* server-side dataset paths must lie inside; NULL =
                                   none allowed. Borrowed. */
    int max_queued;             /* queued jobs at most; past it submit is refused */
    double wait_s;              /* how long a control call waits for the worker */
    struct bus *bus;            /* live events (daemon/bus.h); NULL = none. Borrowed,
                                   must outlive the manager. */
    const jobs_datasets *datasets; /* NULL = specs name files only. Borrowed. */
    int accept_other_cores;     /* take jobs whose latest run had other kernels (see
                                   "Kernels") */
    double lease_ttl;           /* a cluster's node: seconds a job's lease lasts
                                   unrenewed (see "Cluster"); 10 */
} jobs_config;

void jobs_config_default(jobs_config *c);

/* Start the manager: re-queue the store's unfinished jobs (see Recovery), load paused
 * ones, and start the workers. st is borrowed and must outlive the manager. */
int jobs_start(jobs **out, store *st, const jobs_config *cfg, vaed_err *err);

/* Stop: no new work is taken; running jobs checkpoint and become interrupted (their
 * workers finish the step in progress first). Joins the workers and frees j. */
void jobs_stop(jobs *j);

/* Validate and queue a job spec (borrowed). A doc with "from" is a fork
 * (daemon/fork.h): 422 naming from.job, from.step or a field a fork cannot change.
 * Errors: VAED_EINVAL (422, err names the
 * field), VAED_ETOOBIG (422 over --max-job-memory; 429 when the queue is full is
 * VAED_ESTATE with err.field "queue"), VAED_ENOTFOUND never. OUT *id. */
int jobs_submit(jobs *j, const json_t *spec, int64_t *id, vaed_err *err);

/* Pause a running job: it checkpoints, frees its worker and becomes paused. Resume
 * puts a paused job at the front of the queue. Cancel ends a queued, running or
 * paused job. VAED_ENOTFOUND (404), VAED_ESTATE (409) with the state in err, VAED_EBUSY
 * (503) when the owner did not answer within wait_s. */
int jobs_pause(jobs *j, int64_t id, vaed_err *err);
int jobs_resume(jobs *j, int64_t id, vaed_err *err);
int jobs_cancel(jobs *j, int64_t id, vaed_err *err);

/* Put a new schedule in force for a job (PUT /v1/jobs/{id}/schedule). Queued: it
 * replaces the initial schedule (effective step 0). Running: applied by the worker at
 * the start of its next step. Paused: in force from the resume step. Finished: 409.
 * OUT: *effective_step, *resolved (absolute; may be NULL). */
int jobs_set_schedule(jobs *j, int64_t id, const sched_spec *s, int64_t *effective_step,
                      sched_spec *resolved, vaed_err *err);

/* The learning rate from the next step on, the same way (PUT /v1/jobs/{id}/optimizer). */
int jobs_set_lr(jobs *j, int64_t id, double lr, int64_t *effective_step, vaed_err *err);

/* Take a checkpoint of a running job now (kind "manual"); OUT *step. 409 unless running. */
int jobs_checkpoint_now(jobs *j, int64_t id, int64_t *step, vaed_err *err);

/* Live figures of an unfinished job merged into obj (a job object from
 * store_job_json): state, progress, beta, last losses, samples_per_sec, eta_s. Jobs
 * not in memory (finished) are left as the store has them. */
void jobs_decorate(jobs *j, int64_t id, json_t *obj);

/* The training split of a categorical (text) job's spec, read as its worker reads it
 * (paths inside --data-dir): its vocabulary (symbols, max_len) is what turns strings into
 * the model's rows and back (the serving routes). OUT *out (vae_dataset_free).
 * VAED_EINVAL for a model that is not categorical, or the loader's errors. */
struct vae_dataset;
int jobs_job_vocab(jobs *j, const vae_spec *spec, struct vae_dataset **out, vaed_err *err);

/* ---- evaluations (daemon/evals.c) ----
 * POST /v1/jobs/{id}/evaluations: the importance-weighted bound of one checkpoint of a
 * job (vae/eval.h), queued like a job and run by a worker (see evals.c for the
 * scheduling and how it survives a crash). */
#define JOBS_EVAL_MAX_K 100000

/* The checkpoint a request names (one rule for evaluations and the serving routes):
 * ck NULL or "final" = the job's newest, "best" = the one whose completed evaluation has
 * the highest bound (store_eval_best), a whole number >= 0 = that step. OUT *step, and
 * asked: ck as text ("final", "best", "1200"). VAED_EINVAL (field "checkpoint") for
 * anything else, VAED_ENOTFOUND (no such job; no such checkpoint: field "checkpoint"),
 * VAED_ESTATE ("best" before any evaluation has completed). */
#define JOBS_ASKED_LEN 24
int jobs_checkpoint_resolve(jobs *j, int64_t job, const json_t *ck, int64_t *step,
                            char asked[JOBS_ASKED_LEN], vaed_err *err);

typedef struct jobs_eval_req {
    int64_t job;
    const json_t *checkpoint;   /* as jobs_checkpoint_resolve takes it; NULL = "final" */
    const char *split;          /* "test" | "train" */
    int k;                      /* samples per row, 1..JOBS_EVAL_MAX_K */
    int64_t seed;               /* >= 0 */
    int64_t rows;               /* the first rows of the split; 0 = all */
} jobs_eval_req;

/* Queue an evaluation. OUT *id. VAED_EINVAL (422 naming k, split, rows or
 * dataset.binarize), VAED_ENOTFOUND (404: no such job, or no such checkpoint: field
 * "checkpoint"), VAED_ESTATE ("best" without a completed evaluation). */
int jobs_eval_submit(jobs *j, const jobs_eval_req *r, int64_t *id, vaed_err *err);

/* Stop an evaluation of job: a queued one is cancelled at once, a running one at the end
 * of its current block (waited for up to wait_s: VAED_EBUSY past it). VAED_ESTATE when
 * it has finished, VAED_ENOTFOUND when job has no such evaluation. */
int jobs_eval_cancel(jobs *j, int64_t job, int64_t id, vaed_err *err);

/* OUT *out: evaluation id of job (store_eval_json). VAED_ENOTFOUND, VAED_ENOMEM. */
int jobs_eval_json(jobs *j, int64_t job, int64_t id, json_t **out, vaed_err *err);

/* Every evaluation of job, oldest first, as an array; NULL with err on failure. */
json_t *jobs_evals_json(jobs *j, int64_t job, vaed_err *err);

/* ---- sweeps (daemon/sweeps.c) ----
 * POST /v1/sweeps: a base spec and a search space over its fields (daemon/sweep_gen.h);
 * each trial is an ordinary job, stored with the sweep in one transaction
 * (store/sweeps.h), and at most the sweep's concurrency of its trials run at once (the
 * queue skips the others). Objective metrics: elbo, kl, xent (the trial's last test
 * epoch), bound (its best completed evaluation). */
#define JOBS_SWEEP_METRICS "elbo", "kl", "xent", "bound"

/* Validate a sweep request and queue its trials: every trial's spec is parsed and
 * checked as jobs_submit checks a job, before anything is stored. OUT *id.
 * VAED_EINVAL naming the field (name, base.<field>, space.<path>, method, seed,
 * max_trials, concurrency, objective.metric, objective.direction), VAED_ETOOBIG and
 * VAED_EPERM as jobs_submit (naming space.<path> when a trial's point causes it),
 * VAED_EBUSY (field "queue") when the trials do not fit in the queue. */
int jobs_sweep_submit(jobs *j, const json_t *doc, int64_t *id, vaed_err *err);

/* Cancel the sweep's unfinished trials (jobs_cancel each; queued ones first, so none
 * starts meanwhile). OUT *n (may be NULL): how many were cancelled. VAED_ENOTFOUND. */
int jobs_sweep_cancel(jobs *j, int64_t id, int *n, vaed_err *err);

/* Per running job, for /metrics: calls fn once per job under no lock of the caller. */
typedef struct jobs_live {
    int64_t id;
    char name[128];
    char state[16];
    int64_t step;
    double epoch, samples_per_sec;
    vae_metrics last;           /* the last step's figures (vae/metric_fields.h) */
} jobs_live;
size_t jobs_snapshot(jobs *j, jobs_live *out, size_t max);

#endif
