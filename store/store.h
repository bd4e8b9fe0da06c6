/* store.h — vaed's SQLite store: jobs, per-step metrics, per-epoch figures, schedule
 * events and checkpoint blobs. It knows nothing of training or of HTTP.
 *
 * Schema (PRAGMA user_version = STORE_SCHEMA_VERSION; see schema.c for the SQL):
 *   jobs(id PK, name, spec JSON, state, priority, queue_seq, created_at, started_at,
 *        finished_at, updated_at, reason, step, epoch, parent_id, parent_step, kernels)
 *   metrics(job, step, epoch, beta, loss, xent, kl, elbo, lr, grad_norm, capacity,
 *           time, kl_groups BLOB)                PK(job, step) WITHOUT ROWID
 *   epochs(job, epoch, split, step, xent, kl, elbo, active_units, kl_dims BLOB, time)
 *                                                PK(job, epoch, split) WITHOUT ROWID
 *   schedule_events(job, seq, requested_at, effective_step, schedule JSON, source,
 *                   superseded)                  PK(job, seq)
 *   checkpoints(job, step, epoch, created_at, kind, size, blob)  PK(job, step)
 *   metrics_sum(job, lvl, bucket, n, agg BLOB)   PK(job, lvl, bucket) WITHOUT ROWID
 *       the min/max pyramid of the metrics (v3; layout in store/pyramid.h): per level
 *       lvl, per bucket of STORE_SUM_WIDTH(lvl) steps, the row count and, for each
 *       metric column, the min and the max and the steps holding them. The writer
 *       keeps it in the transaction that writes the rows it summarises.
 *   datasets(id PK, name, source 'file'|'upload', spec JSON, info JSON, size,
 *            created_at)  registered datasets (v4): spec is the dataset object a job
 *       naming this dataset trains on, info its shape as GET /v1/datasets shows it;
 *       sha256 (v10) the digest of an upload's bytes
 *   dataset_blobs(dataset, seq, data BLOB)       PK(dataset, seq)
 *       an upload's bytes in parts (v10; store/datasets.h), so every node can read them
 *   evaluations(id PK, job, ckpt_step, asked, split, k, seed, rows, rows_done, state,
 *               reason, result JSON, created_at, started_at, finished_at, seconds)
 *   eval_blocks(eval, block, rows, data BLOB)    PK(eval, block) WITHOUT ROWID
 *       evaluations of a checkpoint and the blocks they have done (v5; store/evals.h)
 *   sweeps(id PK, name, spec JSON, concurrency, created_at)
 *   sweep_trials(sweep, trial, job UNIQUE, point JSON)  PK(sweep, trial) WITHOUT ROWID
 *       a sweep's request and the job of each of its trials (v6; store/sweeps.h)
 *   audit(id PK AUTOINCREMENT, time, token, remote, method, path, status, created)
 *       every state-changing request: the token's name (never its secret), the
 *       client's address and the reply's status (v7; store/audit.h)
 * Times are unix seconds (REAL); 0 in a struct means "not set" (NULL in SQL).
 * BLOB arrays (kl_groups, kl_dims) are native-endian IEEE-754 doubles.
 *
 * Threads. One writer thread owns the only write connection. Every write call copies
 * its arguments into an operation, appends it to a FIFO and returns; the writer takes
 * everything queued and applies it in ONE transaction, each operation inside its own
 * savepoint. Operations are applied in the order they were enqueued, so a commit
 * that contains an operation contains everything enqueued before it. Job writes
 * (insert, state, priority, requeue) go through the same queue and wait for their
 * commit: the API reads its own writes, and since only one connection ever writes,
 * our own connections never meet SQLITE_BUSY (busy_timeout covers other processes).
 * Readers use a small pool of read connections (WAL lets them run beside the writer).
 *
 * Batching. The writer commits when the oldest queued operation is flush_interval old
 * (default 1 s), at once when an operation is waited on (job writes, store_flush,
 * `wait` flags) or is a checkpoint, and when the queue holds more than 8 MiB. In a
 * batch, each job's metric appends that lie between two other operations are applied
 * as one (store_metrics_merge, writer_ops.h: in order, the later row of a step winning
 * as before), so the pyramid is updated once per job and bucket, not once per step.
 *
 * Durability. WAL mode with synchronous=NORMAL: a committed transaction survives a
 * crash or kill -9 of the process (the WAL is in the OS page cache, which the kernel
 * keeps); after a power loss the last transactions before the last WAL sync may be
 * lost, but the file is never corrupt. A batch that contains a checkpoint is committed
 * with synchronous=FULL (fsync of the WAL), so a checkpoint reported durable and every
 * metric row enqueued before it survive power loss too. Metrics enqueued after the
 * last commit are lost by a crash: the daemon recomputes them from the last
 * checkpoint and INSERT OR REPLACE overwrites whatever rows did survive.
 *
 * Write failures. A transient failure (disk full, I/O error, busy, out of memory)
 * rolls the batch back: waited-on operations fail with VAED_EDB and are dropped
 * (their caller knows), the rest stay queued in order and are retried with a backoff
 * (from 100 ms up to 5 s), so nothing is silently lost and writing resumes when the
 * disk has space again. A permanent failure of one operation (a constraint: unknown
 * job, bad state) drops that operation only. Both are counted and the last one is
 * kept in store_stats. Nothing here exits or aborts except on small fixed-size
 * allocation failure (xmalloc policy).
 *
 * Every function returns 0 or a negative VAED_E*; the detail, including
 * the database's own message, goes to the caller's vaed_err (may be NULL). */
#ifndef VAED_STORE_H
#define VAED_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "vae/err.h"
#include "vae/metric_fields.h"

#define STORE_SCHEMA_VERSION 10

typedef struct store store;

typedef struct store_opts {
    double flush_interval;      /* seconds between commits at most; <= 0 → 1.0 */
    int busy_timeout_ms;        /* <= 0 → 5000 */
    int read_conns;             /* size of the read pool; <= 0 → 4 */
    int fsync_checkpoints;      /* 1 (default when opts is NULL): FULL for checkpoint
                                   batches; 0: NORMAL for everything (tests, benches) */
    size_t max_pending_bytes;   /* enqueue refuses (VAED_ETOOBIG) past this; 0 → 512 MiB */
    int64_t max_db_bytes;       /* cap on the database size (max_page_count); 0 = none */
    const char *node;           /* PostgreSQL: this node's name in a cluster (1 to 63
                                   bytes; see "Cluster" below); NULL: the store holds
                                   the database alone */
    double lease_ttl;           /* with node: the daemon's --lease-ttl (seconds; <= 0 →
                                   10). A write transaction left idle half as long (its
                                   node stopped, SIGSTOP) is ended by the server, so its
                                   row locks never keep a lease from moving */
} store_opts;

/* Fill o with the defaults described above. */
void store_opts_default(store_opts *o);

/* Open (creating if needed) the database at path, set WAL and the pragmas, migrate
 * the schema forward to STORE_SCHEMA_VERSION (each step one transaction) and start
 * the writer thread. opts may be NULL (defaults). A database whose user_version is
 * newer than this code knows is refused (VAED_EDB) and left untouched.
 * OUT *out: the store, to be closed with store_close; NULL on error.
 *
 * path may instead be a PostgreSQL URL ("postgresql://…", libpq's own settings and
 * environment apply: PGPASSWORD, service files, TLS): the same schema, migrated in
 * one transaction, and the same answers to every call (test_store_backends). Until
 * opts->node is set, one store holds such a database at a time: a second store_open on
 * it is refused (VAED_EBUSY) while the first is open; with a node name, any number of
 * stores share it and take jobs by lease (below). */
int store_open(store **out, const char *path, const store_opts *opts, vaed_err *err);

/* ---- cluster: leases on jobs, fenced writes (issue 17; store/lease.h has the rules) --
 *
 * On a store opened with opts->node, a job this node runs is held under a lease with a
 * generation (the fencing token). Every write call for that job made while the lease is
 * held carries its generation, and the writer checks it inside the write transaction,
 * before the op's rows (lease_fence): a write of a lease that another node has since
 * taken, or that expired, is dropped — not one row of it lands — and counted in
 * store_stats.ops_fenced, not as an error. Writes for a job this node holds no lease on
 * are not fenced (a client's change to a queued job takes its lease while it applies:
 * daemon/control.c), nor writes that belong to no lease (datasets, sweeps). A job's
 * kernels and a PBT member's decision are fenced.
 *
 * An evaluation (store/evals.h) runs under a lease of its own, in the same table, whose
 * key is STORE_LEASE_EVAL(its id): minus the id, so it never meets a job's. Every call
 * below takes such a key where it says job; an evaluation's block and state writes
 * carry its lease's generation as a job's rows do. */
#define STORE_LEASE_EVAL(eval_id) (-(int64_t)(eval_id))
typedef struct store_lease {
    int64_t job, gen;           /* gen: the fencing token */
    double expires;             /* the database's clock, unix seconds */
    char node[64];              /* the holder; "" when free */
    int held;                   /* a node holds it, unexpired */
    int done;                   /* finished for good: never taken again */
    int full;                   /* store_lease_take_trial refused: its sweep runs its
                                   concurrency's worth of trials already */
} store_lease;

/* This node's name ("" when the store is not a cluster node). */
const char *store_node(const store *st);
/* Take job for this node for ttl seconds: 1 (and *out) when taken — from now on the
 * job's writes carry out->gen —, 0 when another node holds it (*out names it) or it is
 * done for good, or a negative error. VAED_ESTATE when the store is no cluster node. */
int store_lease_take(store *st, int64_t job, double ttl, store_lease *out, vaed_err *err);
/* Take job, a trial of sweep, to run it: as store_lease_take, and also 0 with out->full
 * (held 0, node "") when sweep already has its concurrency's worth of trials whose
 * leases nodes hold (unexpired, not done; job's own lease aside), or when another
 * node's take of one of its trials holds the sweep past the lease connection's lock
 * timeout (250 ms). One transaction: the sweep's row is locked first (PostgreSQL: FOR
 * NO KEY UPDATE), so the takes of a sweep's trials run one at a time across the nodes
 * and the limit is exact cluster-wide (test_store_fence). */
int store_lease_take_trial(store *st, int64_t job, int64_t sweep, double ttl,
                           store_lease *out, vaed_err *err);
/* Renew this node's lease of job: 0, VAED_ESTATE when it is lost (expired or taken: the
 * job must stop here; its writes are fenced from now on), or another error (retry). */
int store_lease_renew(store *st, int64_t job, double ttl, vaed_err *err);
/* Give job back (done: finished for good) and stop fencing its writes; a lost lease
 * is only forgotten. Writes already queued keep their generation. */
int store_lease_release(store *st, int64_t job, int done, vaed_err *err);
/* Job's lease as the database has it: 1 with *out, 0 when it has none. */
int store_lease_get(store *st, int64_t job, store_lease *out, vaed_err *err);

/* Control requests: a control call (schedule, lr, pause, ...) for a job another node
 * holds is written to the database for that node (table controls), which is woken by a
 * notification, applies it as if a client had sent it there, and writes the answer. */
#define STORE_CONTROL_CHANNEL "vaed_control"
typedef struct store_control {
    int64_t id, job;
    char kind[16];              /* "schedule", "lr", "pause", "resume", "cancel", "checkpoint" */
    char *arg;                  /* the request's argument (text), NULL when none */
    /* the answer */
    int rc;                     /* 0 or a VAED_E* code */
    char msg[512];
    int64_t step;               /* schedule, lr: effective step; checkpoint: its step */
    char *resolved;             /* schedule: the absolute schedule in force (JSON) */
} store_control;
/* Send c (job, kind, arg) to node to_node: c->id is set. The request is taken only
 * within wait_s of its sending, by the database's clock: after that it never applies,
 * whether its sender withdrew it or died waiting (a take deletes it some time later). */
int store_control_send(store *st, const char *to_node, store_control *c, double wait_s,
                       vaed_err *err);
/* Wait up to timeout_s for c's answer (filled in c): 1 answered (the request is then
 * deleted), 0 not in time (it stays until withdrawn), or an error. */
int store_control_wait(store *st, store_control *c, double timeout_s, vaed_err *err);
/* Withdraw c, unanswered in time: 1 when no node had taken it (it is deleted and never
 * applies anywhere), 0 when its node has taken it already (it is being applied: wait
 * for the answer), or an error. */
int store_control_withdraw(store *st, const store_control *c, vaed_err *err);
/* The requests sent to this node not yet taken and within their deadline (marked
 * taken): *out, *n (free with store_control_free). */
int store_control_take(store *st, store_control **out, size_t *n, vaed_err *err);
/* Write c's answer (c->id, rc, msg, step, resolved). */
int store_control_answer(store *st, const store_control *c, vaed_err *err);
void store_control_free(store_control *c, size_t n);
/* Listen for requests to this node (a connection of its own); then store_control_nap
 * waits up to ms milliseconds for one (a notification; on SQLite it sleeps). For one
 * thread only. */
int store_control_listen(store *st, vaed_err *err);
void store_control_nap(store *st, int ms);

/* Rows of a job another node runs (its event stream here, daemon/mirror.c): a node's
 * writer notifies this channel, with the job's id, in each transaction that wrote a
 * leased job's rows, so the other nodes read them at once. store_rows_listen opens a
 * connection of its own listening to it; store_rows_nap then waits up to ms
 * milliseconds for a notification (on SQLite, or without listening, it sleeps). For one
 * thread only. */
#define STORE_ROWS_CHANNEL "vaed_rows"
int store_rows_listen(store *st, vaed_err *err);
/* Returns the number of notifications read (0: the time ran out); the jobs they name
 * go to jobs[0..cap) (may be NULL), each once, *n of them (cap + 1: more than cap). */
int store_rows_nap(store *st, int ms, int64_t *jobs, size_t cap, size_t *n);

/* A node's heartbeat in the database (its row in nodes: seen now; first: started now),
 * with its kernels (vae_kernels_id). */
int store_node_beat(store *st, const char *kernels, int first, vaed_err *err);
/* GET /v1/nodes: {"node": this one, "nodes": [{name, started_at, seen_at, kernels,
 * lease_ttl, alive (seen within a lease), jobs: [{job, gen, expires_at}]}]}, times in
 * the database's clock (unix seconds). VAED_ENOTFOUND when the store is no node. */
int store_nodes_json(store *st, json_t **out, vaed_err *err);

/* 1 when db names a PostgreSQL database (a URL), 0 for a SQLite file. */
int store_is_server(const char *db);
/* db as it may be shown in logs and errors: a URL without its password. */
const char *store_db_shown(const char *db, char *buf, size_t n);

/* Commit everything still queued, stop the writer, close every connection and free
 * st (NULL is a no-op). Returns 0, or VAED_EDB when queued operations could not be
 * committed (after a few retries) and were lost; err says how many. st is freed in
 * both cases. No other call on st may run concurrently or after. */
int store_close(store *st, vaed_err *err);

/* The SQL that migrates a database from version v-1 to v (v in 1..STORE_SCHEMA_VERSION);
 * NULL outside that range. Static string. Exposed so tests can build old databases;
 * store/schema_pg.c translates the same text for PostgreSQL. */
const char *store_migration_sql(int v);

/* ---- writes ---------------------------------------------------------------------- */

/* Block until every operation enqueued (by any thread) before this call is committed.
 * Returns 0, or VAED_EDB when the batch holding them failed (they stay queued and are
 * retried unless they were waited on). */
int store_flush(store *st, vaed_err *err);

/* Job states, as stored. */
#define STORE_STATE_NAMES "queued", "running", "paused", "interrupted", "completed", \
                          "failed", "cancelled"
enum store_state_bit {
    STORE_QUEUED = 1 << 0, STORE_RUNNING = 1 << 1, STORE_PAUSED = 1 << 2,
    STORE_INTERRUPTED = 1 << 3, STORE_COMPLETED = 1 << 4, STORE_FAILED = 1 << 5,
    STORE_CANCELLED = 1 << 6,
};
/* The bit of a state name, 0 when it is not one. */
unsigned store_state_bit(const char *state);

typedef struct store_job_new {
    const char *name;           /* any text, stored verbatim; NULL → "" */
    const char *spec;           /* JSON text (must be valid JSON) */
    int priority;               /* higher runs first */
    const char *state;          /* NULL → "queued" */
    int64_t parent_id;          /* forked from this job's checkpoint; 0 = none */
    int64_t parent_step;        /* that checkpoint's step; ignored without parent_id */
} store_job_new;

/* Insert a job (synchronous: committed before return, so a read right after sees it).
 * Its queue_seq is one more than every other job's (FIFO within a priority).
 * OUT *id: the new job id. Returns VAED_EINVAL for a bad state or spec. */
int store_job_insert(store *st, const store_job_new *nj, int64_t *id, vaed_err *err);

/* Set a job's state and failure reason (reason NULL clears it); updated_at = now,
 * started_at = now on the first "running", finished_at = now on completed, failed or
 * cancelled. Synchronous. VAED_ENOTFOUND when no such job, VAED_EINVAL for a bad state.
 * No transition rules here: the daemon owns the state machine. */
int store_job_set_state(store *st, int64_t id, const char *state, const char *reason,
                        vaed_err *err);

/* Record a job's progress (step, epoch). wait = 0 enqueues and returns at once (the
 * training thread's call); wait = 1 returns after commit (VAED_ENOTFOUND if no job). */
int store_job_set_progress(store *st, int64_t id, int64_t step, double epoch, int wait,
                           vaed_err *err);

/* Put a job at the front of its queue: queue_seq = min(all queue_seq) - 1 (resume).
 * Synchronous. VAED_ENOTFOUND when no such job. */
int store_job_requeue_front(store *st, int64_t id, vaed_err *err);

/* Change a job's priority. Synchronous. VAED_ENOTFOUND when no such job. */
int store_job_set_priority(store *st, int64_t id, int priority, vaed_err *err);

/* Record what decides the bits of the job's steps from here on (vae_kernels_id): the
 * daemon writes it when a job starts running. Synchronous. VAED_ENOTFOUND when no such
 * job. */
int store_job_set_kernels(store *st, int64_t id, const char *kernels, vaed_err *err);

/* One training step's figures. */
typedef struct store_metric {
    int64_t step;
    VAE_METRIC_FIELDS(VAE_MF_DECL) /* vae/metric_fields.h, in storage order */
    int n_groups;               /* KL per latent group; 0 = not recorded */
    const double *kl_groups;    /* n_groups values, borrowed (copied by append) */
} store_metric;

/* A row's column values, in storage order (v: STORE_M_NCOLS doubles). */
#define STORE_MCOL_VALUE(ID, name, unit, flags, meaning) v[k++] = m->name;
static inline void store_metric_values(const store_metric *m, double *v)
{
    int k = 0;
    VAE_METRIC_FIELDS(STORE_MCOL_VALUE)
}

/* Enqueue n metric rows of job; returns at once (never waits on disk). Rows replace
 * any existing row with the same (job, step). VAED_ETOOBIG when the queue is over
 * max_pending_bytes (the disk is failing: see store_stats). Rows of an unknown job
 * are dropped by the writer and counted. */
int store_metrics_append(store *st, int64_t job, const store_metric *rows, size_t n,
                         vaed_err *err);

/* One epoch's figures for one split ("train", "valid", ...). */
typedef struct store_epoch {
    int64_t epoch;              /* epoch number, from 1 */
    char split[16];
    int64_t step;               /* global step at the end of the epoch */
    double xent, kl, elbo, time;
    int active_units;
    int n_dims;
    double *kl_dims;            /* KL per latent dimension; put: borrowed, list: owned */
} store_epoch;

/* Enqueue an epoch row (replaces the same job, epoch, split). Returns at once. */
int store_epoch_put(store *st, int64_t job, const store_epoch *e, vaed_err *err);

/* A schedule change of a job. */
typedef struct store_event {
    int64_t seq;                /* 1, 2, ... per job, assigned by the store */
    double requested_at;        /* unix seconds */
    int64_t effective_step;     /* first step that used this schedule */
    char *schedule;             /* JSON text of the resolved schedule; owned in lists */
    char source[16];            /* "submit" | "override" */
    int superseded;             /* 1: a later event took effect at or before this one's
                                   effective step, so it never governed a step */
} store_event;

/* Append a schedule event (seq = previous max + 1) and mark the job's earlier events
 * with effective_step >= this one's as superseded. requested_at 0 → now.
 * wait = 1: returns after commit with *seq set (seq may be NULL); wait = 0: returns
 * at once and *seq is not set. */
int store_event_add(store *st, int64_t job, double requested_at, int64_t effective_step,
                    const char *schedule_json, const char *source, int wait,
                    int64_t *seq, vaed_err *err);

/* Called by the writer thread once a checkpoint's fate is known: rc 0 = committed,
 * else the error (msg is the detail, valid during the call only). Must not block on
 * the store (no store_* write calls with wait, no store_flush). */
typedef void (*store_done_fn)(void *arg, int64_t job, int64_t step, int rc,
                              const char *msg);

typedef struct store_ckpt_put {
    int64_t job, step;
    double epoch;
    const char *kind;           /* "periodic" | "epoch" | "final" | "manual" | "pause" |
                                   "fork" (a forked job's starting state) */
    const void *blob;           /* borrowed: copied before return, unless give */
    size_t size;
    int give;                   /* 1: blob is malloc'd and passes to the store, which
                                   frees it (also on error): saves copying a large blob */
    int keep;                   /* > 0: keep only the newest `keep` periodic, manual and
                                   pause checkpoints of the job; 0: keep all */
    int keep_epoch_end;         /* 1: never rotate 'epoch' ones; 0: they rotate too */
    int wait;                   /* 1: return after commit with its status */
    store_done_fn done;         /* optional, called on the writer thread */
    void *done_arg;
} store_ckpt_put;

/* Enqueue a checkpoint: one transaction, committed with fsync (see Durability), and
 * no earlier than everything enqueued before it. Retention (keep) runs in that same
 * transaction; the 'final' checkpoint and the job's newest are never deleted. A
 * checkpoint at an existing (job, step) replaces it. Returns 0 once queued (wait = 0)
 * or committed (wait = 1), VAED_ENOMEM if the blob cannot be copied, VAED_EINVAL for a
 * bad kind, VAED_ETOOBIG over max_pending_bytes, VAED_EDB when wait and it failed. */
int store_checkpoint_put(store *st, const store_ckpt_put *req, vaed_err *err);

/* Set (or with 0 remove) the cap on the database size, applied by the writer before
 * its next batch. Writes past it fail like a full disk (SQLITE_FULL). SQLite only: a
 * PostgreSQL store refuses opts.max_db_bytes at open and ignores this (the server's
 * disk and quotas are its own). */
void store_set_max_db_bytes(store *st, int64_t bytes);

/* ---- reads (any thread; each runs on a pooled read connection) -------------------- */

typedef struct store_job {
    int64_t id;
    char *name;                 /* owned */
    char *spec;                 /* owned, JSON text */
    char state[16];
    int priority;
    int64_t queue_seq;
    double created_at, started_at, finished_at, updated_at;   /* 0 = not yet */
    char *reason;               /* owned, NULL when none */
    int64_t step;
    double epoch;
    int64_t parent_id, parent_step;   /* 0, 0 when not forked */
    char kernels[128];          /* vae_kernels_id of its latest run; "" = never ran */
} store_job;

/* Free the strings of j (not j itself); j may be NULL. */
void store_job_clear(store_job *j);

/* OUT *j: the job (free with store_job_clear). VAED_ENOTFOUND when no such job. */
int store_job_get(store *st, int64_t id, store_job *j, vaed_err *err);

/* A new JSON object describing j: id, name, spec (parsed; the raw text if it does not
 * parse), state, priority, queue_seq, created_at... (null when unset), reason, step,
 * epoch, parent (null or {id, step}). Returns NULL only on allocation failure. */
json_t *store_job_json(const store_job *j);

typedef struct store_job_list {
    store_job *jobs;            /* n jobs, owned; free with store_job_list_free */
    size_t n;
    int64_t total;              /* jobs matching the state filter, ignoring paging */
    int64_t next_after;         /* pass as `after` for the next page; 0 = last page */
} store_job_list;

/* Jobs whose state bit is in `states` (0 = any), newest first (id descending), with
 * id < after when after > 0, at most limit (<= 0 → 100). */
int store_jobs_list(store *st, unsigned states, int64_t after, int limit,
                    store_job_list *out, vaed_err *err);

/* Number of jobs in each state, from one snapshot: counts[i] is the count of the
 * state whose bit is 1 << i (the order of STORE_STATE_NAMES). Every entry is written:
 * 0 for a state no job is in, and all 0 on error (VAED_EDB). */
#define STORE_NSTATES 7
int store_jobs_count_by_state(store *st, int64_t counts[STORE_NSTATES], vaed_err *err);

/* Jobs the daemon must put back in its queue at startup (queued, running,
 * interrupted), in queue order: priority descending, then queue_seq ascending. */
int store_jobs_resumable(store *st, store_job_list *out, vaed_err *err);

/* Free the jobs of l and zero it; l may be NULL. */
void store_job_list_free(store_job_list *l);

/* Metric columns, in storage order: the fields of vae/metric_fields.h. */
#define STORE_MCOL_ENUM(ID, name, unit, flags, meaning) STORE_M_##ID,
enum store_mcol { VAE_METRIC_FIELDS(STORE_MCOL_ENUM) STORE_M_NCOLS };


#define STORE_MCOL(c) (1u << (c))
#define STORE_M_KL_GROUPS_BIT (1u << STORE_M_NCOLS)   /* ask for kl_groups */
#define STORE_MCOL_ALL ((1u << STORE_M_NCOLS) - 1)

/* Column name ("epoch", "beta", ..., "grad_norm") of c, NULL when out of range. */
const char *store_mcol_name(int c);
/* Column index of a name, -1 when unknown ("kl_groups" is not a column: use the bit). */
int store_mcol_by_name(const char *name);

/* Columnar metric rows. */
typedef struct store_series {
    size_t n;
    int64_t *step;              /* n steps, ascending */
    double *col[STORE_M_NCOLS]; /* n values each for the asked columns, else NULL */
    int n_groups;               /* columns of kl_groups: the widest row in range */
    double *kl_groups;          /* n * n_groups, row-major, NAN where a row has fewer;
                                   NULL unless asked and present */
    size_t total;               /* rows in the asked range: n, or more when the rows
                                   were downsampled (store_metrics_downsample) */
} store_series;

/* Rows of job with since < step <= until (since < 0: from the start; until < 0: to
 * the end), ascending, at most limit rows (0 = no limit), the columns in mask (step is
 * always returned). A range scan of the primary key. OUT *out: free with
 * store_series_free; on error it is left empty. VAED_ENOMEM if it does not fit. */
int store_metrics_range(store *st, int64_t job, int64_t since, int64_t until,
                        unsigned mask, size_t limit, store_series *out, vaed_err *err);

/* Levels of the min/max pyramid: bucket widths 256, 4096 and 65536 steps. */
#define STORE_SUM_LEVELS 3
#define STORE_SUM_WIDTH(l) ((int64_t)256 << (4 * (l)))
/* Level choice of store_metrics_downsample (see there). */
#define STORE_DS_QUALITY 4
#define STORE_DS_MIN_BUCKETS 64

/* Downsample the rows of job with since < step <= until (negative: unbounded, as in
 * store_metrics_range) to at most max_points (>= 2) rows, for plotting: no spike is
 * lost. Returned: the first and the last row of the range, and in each of G buckets
 * the rows holding the minimum and the maximum of each asked column (mask as in
 * store_metrics_range; kl_groups rides along, it is not bucketed); ties go to the
 * earliest step. Every returned row is a real, whole row; steps ascend with no
 * duplicates; at most max_points rows, except that a max_points below 2 + 2 nf still
 * keeps every asked column's extremes (one bucket: up to 2 + 2 nf rows) rather than
 * drop columns. out->total = the number of rows in the range.
 *
 * The buckets. nf = asked columns (of STORE_MCOL_ALL), nb = (max_points - 2) /
 * (2 nf) (at least 1). With s0, s1 the first and last step of the range and, per
 * level l, c_l = the number of whole level-l buckets (STORE_SUM_WIDTH(l) steps)
 * inside [s0, s1] from lo_l = ceil(s0 / W_l):
 *   - the range has <= max_points rows: all of them, as store_metrics_range;
 *   - nf = 0: the first and the last row only;
 *   - else level l = the coarsest with c_l >= STORE_DS_QUALITY * nb, or 0 when
 *     c_0 >= min(nb, STORE_DS_MIN_BUCKETS): G = min(nb, c_l) buckets, bucket g
 *     spanning the level buckets [lo + c g / G, lo + c (g+1) / G); the first also
 *     takes the steps from s0, the last those up to s1. Computed from metrics_sum,
 *     with raw rows read only at the two unaligned edges (< 256 steps each), then
 *     one point lookup per returned row: about a millisecond for a million rows;
 *   - else (a range of fewer than ~16k steps) from the raw rows: nb buckets of equal
 *     row counts, bucket g = rows [n g / nb, n (g+1) / nb).
 * Everything is read in one read transaction (one snapshot). OUT *out: free with
 * store_series_free; left empty on error. VAED_EINVAL when max_points < 2,
 * VAED_ENOMEM, VAED_EDB. */
int store_metrics_downsample(store *st, int64_t job, int64_t since, int64_t until,
                             unsigned mask, size_t max_points, store_series *out,
                             vaed_err *err);

/* Free the arrays of s and zero it; s may be NULL. */
void store_series_free(store_series *s);

/* OUT *out, *n: the job's epoch rows by epoch then split; free with store_epochs_free. */
int store_epochs_list(store *st, int64_t job, store_epoch **out, size_t *n, vaed_err *err);
void store_epochs_free(store_epoch *e, size_t n);

/* OUT *out, *n: the job's schedule events by seq; free with store_events_free. */
int store_events_list(store *st, int64_t job, store_event **out, size_t *n, vaed_err *err);
void store_events_free(store_event *e, size_t n);

typedef struct store_ckpt {
    int64_t step;
    double epoch, created_at;
    char kind[16];
    int64_t size;               /* bytes of the blob */
} store_ckpt;

/* OUT *out, *n: the job's checkpoints by step, without blobs; free with free(). */
int store_checkpoints_list(store *st, int64_t job, store_ckpt **out, size_t *n,
                           vaed_err *err);

/* The checkpoint of job at step (step < 0: the newest). OUT *meta (may be NULL),
 * *blob (malloc'd, caller frees), *size. VAED_ENOTFOUND when there is none,
 * VAED_ENOMEM when the blob cannot be allocated. */
int store_checkpoint_get(store *st, int64_t job, int64_t step, store_ckpt *meta,
                         void **blob, size_t *size, vaed_err *err);

/* ---- health --------------------------------------------------------------------- */

typedef struct store_stats {
    uint64_t commits;           /* batches committed */
    uint64_t ops_committed;     /* operations committed */
    uint64_t rows_committed;    /* metric rows committed */
    uint64_t write_errors;      /* failed batch attempts and failed operations */
    uint64_t dropped_ops;       /* operations given up (permanent error, or waited on) */
    uint64_t ops_fenced;        /* operations refused: their job's lease was lost */
    size_t pending_ops, pending_bytes;
    double lag;                 /* store_write_lag_seconds */
    int failing;                /* 1 while the last batch attempt failed */
    char last_error[512];       /* last write error, "" when none yet */
} store_stats;

/* Fill *out with a consistent snapshot of the writer's counters. */
void store_get_stats(store *st, store_stats *out);

/* The number of batches committed so far, without taking the writer's lock. It is
 * raised after a commit completes, so a read that starts after this returned g sees
 * every write of the first g commits: a reply built from such reads stays right while
 * the number is still g (the API keeps running jobs' metrics replies by it). */
uint64_t store_generation(store *st);

/* Age in seconds of the oldest enqueued operation not yet committed; 0 when none. */
double store_write_lag_seconds(store *st);

#endif
