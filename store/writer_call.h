/* writer_call.h — a write run by the store's writer thread on the one write
 * connection, for store modules beside writer.c (store/datasets.c). Internal to
 * store/: it belongs with store_impl.h and is kept apart only so that the datasets
 * module could add it without touching that shared header.
 *
 * The call is one operation of the writer's queue like any other: applied in enqueue
 * order, inside its own savepoint of the batch transaction, and waited for (the
 * caller blocks until the batch holding it is committed or has failed), so arg may
 * live on the caller's stack. */
#ifndef VAED_STORE_WRITER_CALL_H
#define VAED_STORE_WRITER_CALL_H

#include <stddef.h>
#include <stdint.h>

#include "store/sql.h"
#include "store/store.h"

/* Runs on the writer thread inside a savepoint. Returns SQL_DONE, or the negative code
 * of a failing statement (the writer tells transient failures, which roll the batch
 * back, from permanent ones, which drop this operation alone, by sql_errclass_of(db)). A logical failure (no
 * such row, a refused state) returns SQL_DONE with *vrc set to the VAED_E* code and
 * msg (msgsz bytes) saying why; the savepoint is then rolled back. *out_id is handed
 * back to the caller. Must not call any store_* function. */
typedef int (*store_call_fn)(sql_conn *db, void *arg, int *vrc, int64_t *out_id, char *msg,
                             size_t msgsz);

/* Enqueue fn(arg) and wait for its commit. Returns 0 with *out_id (may be NULL) set,
 * the *vrc the call reported (err says why), or VAED_EDB when the batch failed.
 * job: the job the write belongs to (an evaluation's: STORE_LEASE_EVAL(id), store.h), 0
 * for none. A cluster's node fences it like the
 * job's other writes (store.h "cluster"): written only while the node still holds the
 * job's lease it held at the call, else dropped, VAED_ESTATE. */
int store_writer_call(store *st, int64_t job, store_call_fn fn, void *arg, int64_t *out_id,
                      vaed_err *err);

/* Enqueue fn(arg) and return at once (a write nobody waits for, like a metric row: it
 * commits with the next batch, within flush_interval; a transient failure keeps it
 * queued and retried). arg is owned by the queue from here on, also on error: free_arg
 * (may be NULL) frees it once fn has run for good or the op is dropped. bytes: arg's
 * size, counted against max_pending_bytes. Returns 0, or VAED_ETOOBIG when the queue is
 * full (arg already freed). fn's *out_id goes nowhere. */
int store_writer_cast(store *st, store_call_fn fn, void *arg, void (*free_arg)(void *),
                      size_t bytes, vaed_err *err);

#endif
