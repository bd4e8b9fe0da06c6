/* fork.h — forking a job: POST /v1/jobs with "from": {"job": ID, "step": S} starts a
 * new job from the parent's checkpoint at step S, the same run continued under other
 * settings (another warm-up, another learning rate, more epochs) for comparison.
 *
 * The child's spec is the parent's stored spec with the request's overrides merged in:
 *   - "schedule" replaces the schedule whole (a schedule is one kind and its fields;
 *     merging a linear into a constant means nothing). It may be relative ("origin":
 *     "now", "from": "current"), resolved here against step S and the parent's beta
 *     there. Left out: the schedule that governed the parent's step S carries on.
 *   - "optimizer", "checkpoint" and "train" merge key by key into the parent's
 *     ({"optimizer": {"lr": 5e-4}} keeps the parent's other Adam settings). Without
 *     optimizer.lr, the learning rate in force in the parent at S carries on (which is
 *     the spec's unless the parent's was changed with PUT /optimizer).
 *   - "name" and "priority" replace; the name defaults to the parent's with
 *     " (fork of job ID at step S)" after it.
 *   - Nothing that shapes the model or the data may change: dataset.*, model.*,
 *     loss.kl, loss.samples, train.batch_size, train.seed. A key there that is absent
 *     or restates the parent's value (by value: 32 and 32.0 are equal) is fine; any
 *     other is VAED_EINVAL naming the field ("model.latent: a fork cannot change the
 *     model's shape (job 3 has 32)"). loss.free_bits and train.threads may change.
 *   - train.epochs must leave steps after S (epochs × steps per epoch > S).
 * The merged document is then parsed like any spec, so every other error names its
 * field as for a plain submission. The stored spec is the merged one, without "from":
 * it is what runs, and resubmitting it trains those settings from scratch. Where the
 * job came from is in its row (parent_id, parent_step; "parent" in the job object).
 *
 * At submit the parent's checkpoint is copied into the child's own checkpoints as
 * kind 'fork' at step S, so the parent's retention, cancellation or anything else
 * that happens to the parent never touches the child. The child resumes from it like
 * any resumed job; the daemon then puts the child's learning rate in force (the blob
 * carries the parent's) and replays the child's schedule event at S (recorded with
 * source 'submit'), skipping it when it is the schedule already in force so that a
 * fork with no overrides continues bit for bit as the parent did. */
#ifndef VAED_FORK_H
#define VAED_FORK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "vae/err.h"
#include "vae/sched.h"

/* Where the child starts, as read from the parent. */
typedef struct fork_point {
    int64_t job;                /* the parent's id */
    int64_t step;               /* S: steps done in the checkpoint */
    long steps_per_epoch;       /* of the parent's run (the child's is the same) */
    double beta;                /* beta of the parent's step S-1 (for "from": "current") */
    double lr;                  /* learning rate in force at S; <= 0: the spec's */
    const json_t *schedule;     /* schedule that governed the parent's step S, absolute;
                                   borrowed; NULL: the parent spec's own */
    const char *name;           /* the parent's name, borrowed */
} fork_point;

/* Pure: the child's spec document from the parent's stored spec (borrowed) and the
 * request (borrowed; its "from" key is ignored), by the rules above. Returns 0 with
 * *child a new reference, or VAED_EINVAL with err naming the field and *child NULL.
 * Errors the spec parser would find anyway (bad types, unknown top-level keys) are
 * left to it: *child is only known to be a valid spec after vae_spec_parse. */
int fork_merge(const json_t *parent_spec, const json_t *request, const fork_point *pt,
               json_t **child, vaed_err *err);

/* Whether two schedules are the same schedule (every field of their JSON form equal). */
int fork_same_schedule(const sched_spec *a, const sched_spec *b);

/* A fork being submitted: what fork_commit needs once the child's row exists. */
typedef struct fork_plan {
    int64_t parent;             /* 0: the request is not a fork (everything else 0) */
    int64_t step;               /* S */
    double epoch;               /* S / steps per epoch */
    void *blob;                 /* the parent's checkpoint at S, owned (malloc'd) */
    size_t size;
} fork_plan;

/* If the request (borrowed) has "from", read the parent (job row, spec, schedule
 * events, checkpoint at from.step — or its newest when step is left out) and build the
 * child's spec with fork_merge. Returns 0 with *child NULL and *plan zeroed when there
 * is no "from"; 0 with *child (new reference) and *plan filled for a fork; else the
 * error with *child NULL and *plan zeroed: VAED_EINVAL naming "from", "from.job" (no
 * such job: 422, the request is well formed but names nothing), "from.step" (no
 * checkpoint there: the message lists the steps that have one) or an override's field;
 * VAED_EDB / VAED_ENOMEM from the store. Free *plan with fork_plan_free. */
int fork_prepare(store *st, const json_t *request, json_t **child, fork_plan *plan,
                 vaed_err *err);

/* Once the child's row (id child) is inserted: copy the checkpoint into the child's as
 * kind 'fork' at step S (committed before return; the blob passes to the store) and
 * record the child's progress as step S. A plan with parent 0 is a no-op. On error the
 * child is marked failed with the reason (it must never train from step 0 instead)
 * and the error is returned. */
int fork_commit(store *st, int64_t child, fork_plan *plan, vaed_err *err);

/* Free what plan owns and zero it; NULL is a no-op. */
void fork_plan_free(fork_plan *plan);

#endif
