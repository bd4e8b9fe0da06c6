/* evals.h — the store's side of evaluations (POST /v1/jobs/{id}/evaluations): one row
 * per evaluation in `evaluations`, and the per-row figures of the blocks it has done in
 * `eval_blocks` (schema v5, store.h), so that an evaluation interrupted by a SIGTERM
 * or a SIGKILL resumes from the blocks it had committed. What a block's bytes mean is
 * the daemon's business (daemon/evals.c); the store keeps them verbatim.
 *
 * Writes go through the writer thread (writer_call.h) and are waited for: a block
 * reported stored is committed, and the evaluation's rows_done says so in the same
 * transaction. Reads open their own short-lived read connection (evaluations are read
 * by a client polling one, not per training step).
 *
 * On a cluster's node, an evaluation runs under its own lease (store.h,
 * STORE_LEASE_EVAL(id)): while this node holds it, the evaluation's block and state
 * writes are fenced by it like a job's rows (a node paused past the lease writes
 * nothing more); without it they are not (a client's cancel through any node). */
#ifndef VAED_STORE_EVALS_H
#define VAED_STORE_EVALS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Evaluation states, as stored. */
#define STORE_EVAL_STATES "queued", "running", "completed", "failed", "cancelled"

typedef struct store_eval {
    int64_t id, job;
    int64_t ckpt_step;          /* the checkpoint evaluated */
    char asked[24];             /* what the client named: "final", "best" or the step */
    char split[8];              /* "test" | "train" */
    int k;
    int64_t seed;
    int64_t rows, rows_done;    /* rows to evaluate, rows in committed blocks */
    char state[12];
    char *reason;               /* owned; NULL when none */
    char *result;               /* owned JSON text; NULL until completed */
    double created_at, started_at, finished_at; /* unix seconds; 0 = not yet */
    double seconds;             /* compute time of the committed blocks */
} store_eval;

typedef struct store_eval_new {
    int64_t job, ckpt_step;
    const char *asked, *split;
    int k;
    int64_t seed, rows;
} store_eval_new;

/* Insert a queued evaluation (committed before return). OUT *id. VAED_ENOTFOUND when
 * the job does not exist, VAED_EINVAL for a bad split. */
int store_eval_insert(store *st, const store_eval_new *ne, int64_t *id, vaed_err *err);

/* OUT *e (free with store_eval_clear). VAED_ENOTFOUND when none. */
int store_eval_get(store *st, int64_t id, store_eval *e, vaed_err *err);

/* The evaluations of job (0: of every job), by id; unfinished = 1: only queued and
 * running ones. OUT *out (free with store_evals_free), *n. */
int store_evals_list(store *st, int64_t job, int unfinished, store_eval **out, size_t *n,
                     vaed_err *err);

/* OUT *step: job's best checkpoint, the one whose completed evaluation has the highest
 * bound (the oldest such evaluation on a tie). Checkpoint retention never deletes it,
 * nor one that a queued or running evaluation names. VAED_ENOTFOUND (field
 * "checkpoint") when the job has no completed evaluation. */
int store_eval_best(store *st, int64_t job, int64_t *step, vaed_err *err);

void store_eval_clear(store_eval *e);
void store_evals_free(store_eval *e, size_t n);

/* Set state ("queued", "running", "completed", "failed", "cancelled"), reason (NULL
 * clears it), when result is not NULL the result (JSON text), and when rows >= 0 the
 * rows to evaluate (known once the split is loaded). started_at is set on
 * the first "running", finished_at on completed, failed or cancelled; a finished
 * evaluation's blocks are deleted in the same transaction (the result holds what they
 * were for). A finished evaluation's state is not changed again: VAED_ESTATE. */
int store_eval_set_state(store *st, int64_t id, const char *state, const char *reason,
                         const char *result, int64_t rows, vaed_err *err);

/* A new JSON object describing e, as GET /v1/jobs/{id}/evaluations/{eid} shows it: id,
 * job, checkpoint {step, asked}, split, k, seed, rows, rows_done, state, reason,
 * created_at, started_at, finished_at (null until set), seconds, rows_per_sec and eta_s
 * (from the committed blocks' compute time; null before the first), result (null until
 * completed). NULL on allocation failure. */
json_t *store_eval_json(const store_eval *e);

/* Store block `block` of evaluation id (rows rows, len bytes of data), raise rows_done
 * by rows and seconds by secs, in one transaction (committed before return). Storing a
 * block again replaces it (rows_done counts it once). VAED_ESTATE, nothing stored, when
 * the evaluation has finished (cancelled meanwhile, maybe through another node) or this
 * node's lease on it was lost. */
int store_eval_block_put(store *st, int64_t id, int64_t block, int64_t rows, const void *data,
                         size_t len, double secs, vaed_err *err);

/* Call fn for each stored block of evaluation id, by block number; fn's non-zero
 * return stops the walk and is returned. */
typedef int (*store_eval_block_fn)(void *arg, int64_t block, int64_t rows, const void *data,
                                   size_t len);
int store_eval_blocks(store *st, int64_t id, store_eval_block_fn fn, void *arg, vaed_err *err);

#endif
