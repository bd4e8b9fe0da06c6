/* job.h — inside the job manager: one job's record, the manager, the control messages
 * and the one function that applies them. Internal to daemon/ (queue.c, control.c,
 * worker.c, recover.c, submit.c); the door for everything else is daemon/jobs.h.
 *
 * One owner. A job is owned by at most one thread at a time, and only its owner changes
 * what training will see (the schedule, the learning rate, a checkpoint, the state):
 *   - a worker owns a running job from the moment it takes it from the queue until it
 *     has put it down (paused, finished or interrupted);
 *   - a queued or paused job has no owner. A client call that must change it takes it
 *     (owner = OWNER_CALLER) for as long as it applies messages, and workers skip a taken
 *     job, so a job never starts in the middle of a change (the race this closes: a
 *     worker copying a queued job's spec while a schedule change was being recorded for
 *     it, so the job trained the old schedule while its history said the new one);
 *   - on recovery, the worker that resumes a job replays its recorded history through
 *     job_apply before each step, as the same messages a client would have sent.
 *
 * Every control — schedule, learning rate, pause, resume, cancel, checkpoint now — is a
 * job_msg put in the job's mailbox (FIFO). Whoever owns the job drains the mailbox
 * through job_apply, which decides in one switch what each message does in each state;
 * a client that finds the job without an owner becomes its owner and drains it itself.
 * So a rule is written once, and a change posted before a pause is part of the paused
 * state, and one posted after it is applied to the paused job.
 *
 * Locking: jobs.mu guards the table, each job's state, owner, mailbox, answers and live
 * snapshot. A job's spec and state are written only by its owner, under mu; its owner
 * may read them without mu. job_apply runs without mu (it calls the store, which may
 * wait for a commit). The trainer is touched only by the worker that owns the job.
 *
 * Lifetime: the table holds one reference to each unfinished job, a worker running it
 * one, each client waiting on it one; the last job_unref frees it. */
#ifndef VAED_JOB_H
#define VAED_JOB_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "daemon/asha.h"
#include "daemon/pbt.h"
#include "daemon/jobs.h"
#include "store/store.h"
#include "vae/spec.h"
#include "vae/train.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_PAUSED, JOB_FINISHED };
enum job_owner { OWNER_NONE, OWNER_WORKER, OWNER_CALLER };

/* "queued", "running", "paused", "finished". */
const char *job_state_name(enum job_state s);

enum job_msg_kind { MSG_SCHEDULE, MSG_LR, MSG_PAUSE, MSG_RESUME, MSG_CANCEL, MSG_CHECKPOINT };

/* A control message. The poster fills the request; the owner fills the answer and sets
 * done (under mu). A poster that stops waiting sets abandoned, and then the owner frees
 * it when it answers. */
typedef struct job_msg {
    enum job_msg_kind kind;
    sched_spec sched;           /* MSG_SCHEDULE: as the client wrote it */
    double lr;                  /* MSG_LR */
    double requested_at;        /* unix seconds */
    const char *replay;         /* recovery: the recorded event's source ("submit",
                                   "override"); the change is applied, not recorded again.
                                   NULL for a client's message. */
    int remote;                 /* sent here by another node (cluster.c): never sent on */
    /* the answer */
    int done, rc, abandoned;
    int deferred;               /* answered only once the worker has put the job down */
    int64_t effective_step;     /* schedule, lr: the first step it governs; checkpoint: its step */
    sched_spec resolved;        /* MSG_SCHEDULE: the absolute schedule put in force */
    char msg[sizeof(((vaed_err *)0)->msg)];
    struct job_msg *next;
} job_msg;

typedef struct job {
    int64_t id;
    vae_spec spec;
    int64_t queue_seq;
    int64_t sweep_id;           /* the sweep this job is a trial of, 0 = none (fixed at */
    int sweep_conc;             /* creation); at most sweep_conc of its trials run at once */
    enum job_state state;
    enum job_owner owner;
    int refs;
    job_msg *mail_head, *mail_tail;
    pthread_cond_t cv;          /* answers, state and owner changes */
    /* live snapshot, published by the worker */
    int has_live;
    int64_t step, total_steps, spe;
    double epoch;               /* steps done / steps per epoch */
    vae_metrics last;           /* the last step's figures (beta, lr set before one runs) */
    double sps, eta;
    char storage_wait[sizeof(((store_stats *)0)->last_error)]; /* non-empty: waiting */
    char kernels[sizeof(((store_job *)0)->kernels)]; /* its latest run's (vae_kernels_id);
                                   "" = never ran. Under mu. */
    /* a cluster's node (cluster.c), under mu: */
    double born;                /* job_mono() when it entered the table */
    int leased;                 /* its worker holds the job's lease (renewed) */
    int taking;                 /* its owner is taking its lease: a control call waits
                                   until it has (cv), then finds the job here or away */
    atomic_int lease_lost;      /* the renew found it lost: the worker stops, unrecorded */
    double renewed_at;          /* job_mono() of the last renewal that succeeded */
    double away_until;          /* job_mono(): another node held it; not taken before */
    char away_node[64];         /* that node */
    int away_full;              /* away because its sweep ran its concurrency (cluster_take) */
    struct job *next;           /* table of unfinished jobs */
} job;

/* An unfinished evaluation (evals.c): its record is in the store; this is its place in
 * the queue. running: a worker has it (under mu); stop: set by a client's cancel
 * (EVAL_STOP_CANCEL), by jobs_stop (EVAL_STOP_DAEMON) or, on a cluster's node, when its
 * lease was lost or it was cancelled through another node (EVAL_STOP_GONE: nothing
 * more is recorded here), read by the evaluator between its forward passes, so each
 * takes effect within milliseconds. The first reason set stays. */
enum { EVAL_STOP_CANCEL = 1, EVAL_STOP_DAEMON = 2, EVAL_STOP_GONE = 3 };
typedef struct eval_unit {
    int64_t id, job;
    int running;
    atomic_int stop;
    double born;                /* job_mono() when it came into the list */
    /* a cluster's node (under mu): it runs under its own lease (STORE_LEASE_EVAL) */
    int leased;                 /* this node holds it */
    double renewed_at;          /* job_mono() of the last renewal that succeeded */
    double away_until;          /* another node held it: not tried before (job_mono()) */
    struct eval_unit *next;
} eval_unit;

struct jobs {
    store *st;
    jobs_config cfg;
    char data_dir[PATH_MAX];
    pthread_mutex_t mu;
    pthread_cond_t work;        /* a job became takeable, or stopping */
    job *table;                 /* unfinished jobs */
    char kernels[sizeof(((store_job *)0)->kernels)]; /* this node's (vae_kernels_id) */
    eval_unit *evals;           /* unfinished evaluations, oldest first */
    pthread_cond_t evals_cv;    /* an evaluation ended */
    int stopping;
    int nworkers;
    pthread_t *workers;
    /* a cluster's node (cluster.c): store_node(st) is non-empty */
    int cluster;
    pthread_t cluster_thread, control_thread, renew_thread;
    int cluster_started, cluster_quit;
    pthread_cond_t cluster_cv;  /* cluster_quit set: wakes the cluster and renewal threads */
    pthread_t mirror_thread;    /* mirror.c: event streams of jobs run elsewhere */
    int mirror_started;
};

enum outcome { OUT_NONE = -1, OUT_COMPLETED, OUT_FAILED, OUT_CANCELLED, OUT_PAUSED,
               OUT_INTERRUPTED };

/* A worker's hold on a running job (worker.c). */
typedef struct run {
    jobs *J;
    job *jb;
    vae_trainer *t;
    store_event *events;        /* recorded changes still to replay (recover.c) */
    size_t n_events, next_event;
    int64_t last_ckpt_step;
    double last_ckpt_time;
    double rate_t0;
    int64_t rate_s0;
    double last_progress;
    enum outcome outcome;       /* OUT_NONE while the job goes on */
    job_msg *deferred;          /* pause/cancel answers held until the job is put down */
    asha_cfg asha;              /* its sweep's early stopping (off when none) */
    pbt_cfg pbt;                /* its sweep's population-based training (off when none) */
} run;

/* ---- the one door for controls (control.c) ---------------------------------------- */

/* Apply m to jb as jb's owner, in jb's state: r is the worker's run when the job is
 * running (or being replayed on recovery), NULL when the caller owns a queued or paused
 * job. Called without mu. Fills m's answer (rc, msg, effective_step, resolved, deferred)
 * and returns m->rc. */
int job_apply(jobs *J, job *jb, run *r, job_msg *m);

/* The owner applies every message in jb's mailbox, in order (mu held; released around
 * each job_apply). A running job's drain stops after a message that ends its run
 * (r->outcome set): the rest wait for the job to be put down. */
void job_drain(jobs *J, job *jb, run *r);

/* Mark m answered (mu held): wakes its poster, or frees it if abandoned. */
void job_answer(job *jb, job_msg *m);

/* The owner lets go (mu held): owner = none; a finished job leaves the table, a queued
 * one is offered to the workers. A finished job may be freed by it when the caller
 * holds no reference of its own. */
void job_release(jobs *J, job *jb);

/* ---- the table and its workers (queue.c) ------------------------------------------ */

job *job_new(int64_t id, const vae_spec *spec, int64_t seq, enum job_state state);
void job_unref(job *jb);
job *job_find(jobs *J, int64_t id);        /* mu held */
int job_count_queued(jobs *J);             /* mu held */
void job_table_add(jobs *J, job *jb);      /* mu held */
/* Answer every message in jb's mailbox with rc/why (mu held). */
void job_answer_all(job *jb, int rc, const char *why);

/* Record a job's state in the store (a few retries), publish it on the bus and log it.
 * Logs, never fails: the job's fate is decided. */
void job_record_state(jobs *J, int64_t id, const char *state, const char *reason);

/* ---- the worker (worker.c) -------------------------------------------------------- */

/* Train jb (owned by the caller, a worker) until it ends, pauses, is cancelled or the
 * daemon stops; r is zeroed by the caller with J and jb set. OUT reason on failure. */
enum outcome worker_run(run *r, char *reason, size_t reason_len);

/* Take a checkpoint of the running job now (worker.c: wait = 1 retries a failing
 * store until it writes, or the daemon stops). */
int worker_checkpoint(run *r, const char *kind, int wait, vaed_err *err);

/* ---- recovery (recover.c) --------------------------------------------------------- */

/* At start: the store's unfinished jobs into the table, queued (running and interrupted
 * ones resume from their newest checkpoint) or paused. mu not needed (no workers yet). */
int recover_jobs(jobs *J, vaed_err *err);

/* The store's unfinished job sj as a job for the table (*out; mu not held), queued or
 * paused as state says; a spec no longer valid fails the job (*out NULL). 0 or an
 * error. */
int recover_job(jobs *J, const store_job *sj, enum job_state state, job **out, vaed_err *err);

/* ---- a cluster's node (cluster.c; jobs.h "Cluster") -------------------------------- */

/* Start / stop the thread that renews this node's leases and brings the table in line
 * with the database (jobs other nodes submitted, finished or paused). No-ops when the
 * store is no cluster node. */
int cluster_start(jobs *J, vaed_err *err);
void cluster_stop(jobs *J);
/* Take jb's lease for this node (mu not held): 1 taken, 0 another node has it (jb is
 * then skipped for a while, and *owner names the node when given), CLUSTER_DONE when
 * the job is done for good (it finished through another node), or an error. 1 at once
 * when the store is no cluster node. to_run: a worker takes it to run it, so a trial
 * of a sweep is taken only while fewer than the sweep's concurrency of its trials hold
 * leases anywhere in the cluster (store_lease_take_trial); when the sweep is full, 0,
 * and every queued trial of the sweep here waits a second (the sync thread wakes the
 * workers every second; a trial that ends here wakes them at once: cluster_sweep_wake).
 * A control call's take (to_run 0) is not limited. */
#define CLUSTER_DONE 2
int cluster_take(jobs *J, job *jb, int to_run, char owner[64]);
/* A trial of sweep gave its lease back here: its queued trials that wait because the
 * sweep was full are looked at again now (mu held). */
void cluster_sweep_wake(jobs *J, int64_t sweep);
/* Apply a control request another node sent for a job here (control.c), as a client's
 * call would be: c's answer is filled. */
void job_control_remote(jobs *J, store_control *c);
/* Give jb's lease back (done: finished for good); mu not held. */
void cluster_release(jobs *J, job *jb, int done);
/* An unfinished job of the store the table lacks (submitted through another node since
 * the last look) comes in now (mu not held): 1 when it is in the table, else 0. */
int cluster_learn(jobs *J, const store_job *sj);
/* A job the table holds that finished through another node leaves it (mu held; jb
 * held by the caller, OWNER_CALLER or OWNER_WORKER). */
void cluster_forget(jobs *J, job *jb);
/* The node's mirror (mirror.c): the bus fed from the database for the jobs clients
 * follow here that another node runs. Started by cluster_start (a no-op without a bus),
 * joined by cluster_stop once cluster_quit is set. */
int mirror_start(jobs *J, vaed_err *err);
void mirror_join(jobs *J);

/* Load the recorded schedule changes that the resumed run must apply again (r->events). */
int recover_history(run *r, vaed_err *err);

/* Apply again, through job_apply, the recorded changes whose effective step is the step
 * about to run. */
int recover_replay(run *r, vaed_err *err);

/* ---- evaluations (evals.c) ------------------------------------------------------- */

/* The next evaluation a worker may take (mu held), NULL when none is waiting. */
eval_unit *evals_next(jobs *J);
/* Run u on the calling worker (u->running set by it, mu not held) to its end, record
 * its outcome, and drop it from the list. */
void evals_run(jobs *J, eval_unit *u);
/* The spec's eval block (vae_eval_spec) at work: queue an evaluation of jb's checkpoint
 * at step (an epoch end's, or the final one) unless one from the block exists for it
 * already (a resumed job passes the same epoch ends again). Logs, never fails the job. */
void evals_queue_checkpoint(jobs *J, const job *jb, int64_t step);
/* At start: the store's queued and running evaluations into the list. */
int evals_recover(jobs *J, vaed_err *err);
/* Ask every running evaluation to stop (mu held; jobs_stop). */
void evals_stop_all(jobs *J);
/* A cluster's node, from its cluster thread (mu not held): renew the leases of the
 * evaluations this node runs, and stop those whose lease is lost or that were cancelled
 * through another node (evals_renew); bring the list in line with the database: the
 * evaluations queued through other nodes come in, those finished elsewhere leave, but
 * not one that came into the list at or after t0 (evals_sync). */
void evals_renew(jobs *J);
void evals_sync(jobs *J, double t0);
/* Free the list (mu held, no worker left). */
void evals_free_all(jobs *J);

/* ---- submission and paths (submit.c) ---------------------------------------------- */

/* A server-side dataset path must lie inside --data-dir (or be an uploaded dataset). */
int job_check_path(jobs *J, const char *path, const char *field, vaed_err *err);

/* Load a job's data: its paths checked (job_check_path) and replaced by the files this
 * node reads for them (an upload's copy here, jobs_datasets.local_path), then
 * vae_data_load. spec's paths are changed: pass the worker's own copy. */
int job_data_load(jobs *J, vae_spec *spec, vae_dataset **train, vae_dataset **test,
                  vaed_err *err);

/* Parse and check a job spec document as jobs_submit does (the dataset registry's
 * parser when configured, paths inside --data-dir and made absolute, --max-job-memory).
 * OUT *spec, *text (the full spec) and *stext (its starting schedule), both JSON text
 * to free(). The errors of jobs_submit, except the queue's. */
int job_prepare(jobs *J, const json_t *doc, vae_spec *spec, char **text, char **stext,
                vaed_err *err);

/* A job just committed to the store as queued: published on the bus and put in the
 * table for the workers (mu not held), with its sweep (0 = none) and that sweep's
 * concurrency. */
void job_enqueue_new(jobs *J, int64_t id, const vae_spec *spec, int64_t sweep,
                     int sweep_conc);

/* ---- a trial's early stopping and PBT (sweeps.c, pbt_run.c) ---------------------- */

/* OUT *asha, *pbt: the early stopping and the population-based training of the sweep jb
 * is a trial of, from one read of its stored request (each off for a job of no sweep, or
 * a sweep without early_stop or pbt). */
int sweep_policies_load(jobs *J, const job *jb, asha_cfg *asha, pbt_cfg *pbt, vaed_err *err);

/* The owner of PBT member r->jb at a generation boundary, with its state at the boundary
 * step checkpointed (kind "epoch") and its test row there committed (pbt_run.c): decide
 * (the decision recorded before anything acts on it), and on "exploit" load the donor's
 * checkpoint there, checkpoint it as the member's own (kind "fork") and put the perturbed
 * schedule in force (recorded as an override at that step). resumed_kind: the kind of
 * the checkpoint the worker resumed from at this step, NULL when the step was just run;
 * a decision made before a crash is then carried out, never made again. A step that is
 * no boundary is a no-op. */
int pbt_boundary(run *r, const char *resumed_kind, vaed_err *err);

/* The owner of trial jb, at the end of its test epoch `epoch` with objective value v:
 * when the epoch is a rung, compare v with the values the sweep's other trials have
 * recorded there (asha.h). Returns 1 when the trial must stop (OUT reason: "asha: rung
 * k (epoch e): ..."), 0 to go on; a store failure is logged and lets the trial go on. */
int sweep_asha_stop(jobs *J, const job *jb, const asha_cfg *cfg, int epoch, double v,
                    char *reason, size_t reason_len);

/* ---- (control.c) -------------------------------------------------------------------- */

/* The step a paused (or queued, checkpointed) job resumes from, the beta in force
 * there and its epoch length: from its newest checkpoint. VAED_ENOTFOUND: none. */
int job_resume_point(jobs *J, int64_t id, int64_t *step, double *beta, long *spe,
                     vaed_err *err);

double job_now_unix(void);
double job_mono(void);
void job_nap_ms(long ms);

#endif
