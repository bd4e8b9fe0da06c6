/* lease.h — leases with fencing: how the nodes of a cluster (issue 17) take jobs from
 * one database without a coordinator of their own, and why a node that was paused
 * past its lease cannot write a row for a job another node now owns. Over the SQL
 * driver (sql.h), the same on SQLite and PostgreSQL. For store/ (and its tests); the
 * store's door (store.h) will carry it once the store runs on sql.h.
 *
 * Table (lease_schema; to be folded into the store's migrations):
 *   leases(job PK, node, gen, expires, done)
 * A row per job that nodes may run. gen is the fencing token: it grows by one at
 * every claim, so each claim of a job is told apart from every earlier one. expires
 * is in the DATABASE's clock (unix seconds), never a node's, so the nodes' clocks may
 * disagree without two of them believing they hold the same job.
 *
 * The rules (test_lease checks each, on both databases):
 *   claim    a job whose row is not done and whose lease is free (never claimed, or
 *            released, or expired) goes to the claiming node with gen + 1, in one
 *            statement; on PostgreSQL the candidate row is taken FOR UPDATE SKIP
 *            LOCKED, so nodes claiming at once take different jobs and never wait on
 *            each other; on SQLite the one writer makes the statement atomic.
 *   renew    extends the lease only while this node's gen still holds it and it has
 *            not expired; otherwise the lease is lost (VAED_ESTATE) and the node must
 *            stop the job.
 *   fence    inside the node's write transaction, before its writes: the lease row
 *            must still be this node's, this gen's and unexpired, and on PostgreSQL it
 *            is locked FOR SHARE, so a claim by another node skips the job until the
 *            write transaction ends (and then sees the lease it renewed, or takes it). A
 *            fence that fails means the transaction must roll back: not one row of
 *            the stale owner is written.
 *   release  gives the job back: done (it finished; never claimed again) or not (it
 *            is claimable at once, by gen + 1). */
#ifndef VAED_STORE_LEASE_H
#define VAED_STORE_LEASE_H

#include <stdint.h>

#include "store/sql.h"

typedef struct lease {
    int64_t job;
    int64_t gen;        /* the fencing token */
    double expires;     /* database clock, unix seconds */
    char node[64];
} lease;

/* Create the leases table, and the nodes table (a row per node: name, started, seen —
 * the database's clock —, kernels, lease_ttl), if they are missing. */
int lease_schema(sql_conn *c, vaed_err *err);
/* A node's heartbeat: its row, seen now (first: it started now; then the rows of nodes
 * not seen for LEASE_NODE_FORGET_S that hold no lease are deleted). */
#define LEASE_NODE_FORGET_S (7 * 86400.0)
int lease_beat(sql_conn *c, const char *node, const char *kernels, double ttl, int first,
               vaed_err *err);
/* The SQL expression of the database's clock, unix seconds (for reads of leases and
 * nodes beside these calls). */
const char *lease_now_sql(sql_kind k);
/* Make job claimable (a row, not done, no owner); an existing row is left as it is. */
int lease_offer(sql_conn *c, int64_t job, vaed_err *err);
/* Claim the free job with the lowest id (> 0: a negative key is an evaluation's lease,
 * store.h STORE_LEASE_EVAL) for node, for ttl seconds. Returns 1 with *out
 * filled, 0 when no job is free (a free job locked by a concurrent claim is skipped,
 * not waited for), or a negative error. node is at most 63 bytes. */
int lease_claim(sql_conn *c, const char *node, double ttl, lease *out, vaed_err *err);
/* Claim job itself for node, for ttl seconds, if it is free (never claimed — a row is
 * made —, released, or expired) or node's own (a node restarted under its name takes
 * its jobs back at once; its old process's writes are fenced by the new gen), and not
 * done: 1 with *out filled (gen one above the last claim's), 0 when another node holds
 * it or it is done, or a negative error. The daemon's claim: its own queue picks the
 * job, the lease makes the pick exclusive. */
int lease_take(sql_conn *c, int64_t job, const char *node, double ttl, lease *out,
               vaed_err *err);
/* Job's lease as the database has it: 1 with *out (node "" when free), *held (1 while
 * a node holds it unexpired) and *done; 0 when the job has no lease row. */
int lease_get(sql_conn *c, int64_t job, lease *out, int *held, int *done, vaed_err *err);
/* Extend l by ttl seconds from now; l->expires is updated. VAED_ESTATE when the lease
 * is lost (expired, or taken by a later gen). */
int lease_renew(sql_conn *c, lease *l, double ttl, vaed_err *err);
/* In a write transaction of c (sql_begin(c, 1, ...)): 0 when l still holds the job,
 * VAED_ESTATE when it does not (roll the transaction back). */
int lease_fence(sql_conn *c, const lease *l, vaed_err *err);
/* Give the job back: done (finished for good) or not (claimable again at once).
 * VAED_ESTATE when l no longer held it (nothing changes). */
int lease_release(sql_conn *c, const lease *l, int done, vaed_err *err);

#endif
