/* writer_ops.h — inside the store's writer: an operation of the write queue. The public
 * write calls (writes.c) build one and hand it to the writer (writer.c), which applies
 * each kind in apply_op. Internal to store/. */
#ifndef VAED_STORE_WRITER_OPS_H
#define VAED_STORE_WRITER_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "store/store_impl.h"
#include "store/writer_call.h"

enum op_kind {
    OP_FLUSH, OP_METRICS, OP_EPOCH, OP_EVENT, OP_CKPT, OP_JOB_INSERT, OP_JOB_STATE,
    OP_JOB_PROGRESS, OP_JOB_FRONT, OP_JOB_PRIO, OP_CALL,
};

struct waiter {
    int done, rc;
    int64_t id;
    char msg[512];
};

/* One write call's arguments, copied: a header every op has, and the payload of its
 * kind (u.<kind>), each field named for what it holds. Strings and blobs in the payload
 * are owned by the op (op_free frees them by kind). */
struct op {
    struct op *next;
    enum op_kind kind;
    int64_t job;
    int64_t gen;                     /* the lease generation it is fenced with, 0 = none
                                        (store.h "cluster"); set at enqueue */
    int fenced;                      /* refused by the fence in the last attempt */
    double t_enq;                    /* store_mono() at enqueue */
    size_t bytes;                    /* counted against max_pending_bytes */
    struct waiter *w;                /* NULL unless the caller waits */
    store_done_fn done;              /* OP_CKPT: told the checkpoint's fate */
    void *done_arg;
    int rc;                          /* this op's own outcome in the last attempt */
    int64_t out_id;                  /* job id (insert) or event seq */
    char msg[256];
    union {
        struct {                     /* OP_METRICS */
            size_t n;
            store_metric *rows;      /* n rows; their kl_groups point into this block */
        } metrics;
        store_epoch epoch;           /* OP_EPOCH; kl_dims owned */
        struct {                     /* OP_EVENT */
            double requested_at;     /* 0: now */
            int64_t effective_step;
            char *schedule;          /* JSON */
            char source[16];         /* "submit" | "override" */
        } event;
        struct {                     /* OP_CKPT */
            int64_t step;
            double epoch;
            char kind[16];
            void *blob;
            size_t size;
            int keep, keep_epoch_end;
        } ckpt;
        struct {                     /* OP_JOB_INSERT */
            char *name, *spec;
            char state[16];
            int64_t priority, parent_id, parent_step; /* parent_id 0: not a fork */
        } insert;
        struct {                     /* OP_JOB_STATE */
            char state[16];
            char *reason;            /* NULL: none */
        } state;
        struct {                     /* OP_JOB_PROGRESS */
            int64_t step;
            double epoch;
        } progress;
        struct {                     /* OP_JOB_PRIO */
            int64_t priority;
        } prio;
        struct {                     /* OP_CALL (writer_call.h) */
            store_call_fn fn;
            void *arg;               /* borrowed while the caller waits; owned (and
                                        freed with free_arg) when it does not */
            void (*free_arg)(void *);
        } call;
    } u;
};

/* The writer connection's prepared statements (st->wstmt, prepared by writer.c). */
enum wstmt_id {
    W_BEGIN, W_COMMIT, W_ROLLBACK, W_SAVEPOINT, W_RELEASE, W_ROLLBACK_TO,
    W_METRIC, W_METRIC_MULTI, W_EPOCH, W_EVENT_SUPERSEDE, W_EVENT, W_CKPT, W_CKPT_RETAIN,
    W_JOB_INSERT, W_JOB_STATE, W_JOB_PROGRESS, W_JOB_FRONT, W_JOB_PRIO,
    W_SUM_GET, W_SUM_PUT, W_RAW, W_NSTMT,
};
_Static_assert(W_NSTMT <= STORE_W_NSTMT, "room for the writer's statements");

/* Update the pyramid buckets that n new rows of job fall in (sums.c), inside the
 * writer's current savepoint. Returns SQL_DONE or the failing negative code. */
int store_sums_update(store *st, int64_t job, const store_metric *rows, size_t n);

/* Merge, in a batch taken off the queue, each job's metric ops that nobody waits for
 * into its first one (4,096 rows a merged op at most: a longer run makes several, in
 * order), within each run of metric ops (any other op is a barrier: rows
 * never move past it, and one job's rows keep their order): the pyramid is then updated
 * once per job and bucket, and one savepoint holds them, instead of once per step (a
 * transaction with thousands of savepoints and upserts of one row is slow on
 * PostgreSQL). A permanent failure then drops the merged rows together. Returns the
 * number of ops merged away (freed); an allocation failure leaves ops as they are. */
size_t store_metrics_merge(struct op *batch);

/* A new op of kind for job (small, fixed: aborts on failure); bytes = its own size. */
struct op *store_op_new(enum op_kind kind, int64_t job);
/* Free o and what its payload owns; NULL is a no-op. */
void store_op_free(struct op *o);
/* Append o to the queue; with wait, block until it is resolved and report its outcome
 * (and *id). Takes ownership of o in every case. Without wait, VAED_ETOOBIG when the
 * queue is over max_pending_bytes. */
int store_writer_submit(store *st, struct op *o, int wait, int64_t *id, vaed_err *err);

#endif
