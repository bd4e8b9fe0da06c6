/* store_impl.h — internals shared by store.c (open, close, reads), writer.c (the
 * write queue and its thread) and schema.c (migrations). Not for use outside store/.
 *
 * Locking: st->mu guards the queue, the counters, the error text and the read pool.
 * The writer connection is touched only by the writer thread once store_open has
 * returned; a read connection only by the thread that holds it from the pool. */
#ifndef VAED_STORE_IMPL_H
#define VAED_STORE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "store/sql.h"
#include "store/store.h"

struct op;

#define STORE_W_NSTMT 21

enum rstmt_id {
    R_JOB_GET, R_JOBS_LIST, R_JOBS_COUNT, R_JOBS_BY_STATE, R_JOBS_RESUMABLE, R_METRICS, R_EPOCHS,
    R_EVENTS, R_CKPTS, R_CKPT_AT, R_CKPT_LATEST, R_NSTMT,
};

struct rconn {
    sql_conn *db;
    sql_stmt *stmt[R_NSTMT];    /* prepared lazily, kept for the connection's life */
    int busy;
};

struct store {
    char *path;
    store_opts opts;
    sql_conn *wdb;                   /* the write connection: writer thread only */
    sql_stmt *wstmt[STORE_W_NSTMT];   /* its prepared statements (writer.c) */
    size_t lost_at_close;           /* writes given up while stopping (a metric row
                                       counts as one: ops are merged, writes.c) */
    int unheld;                     /* PostgreSQL: the writer must reconnect and take the
                                       database's hold before its next batch */

    pthread_mutex_t mu;
    pthread_cond_t work_cv;         /* queue changed, stop, or urgent: wake the writer */
    pthread_cond_t done_cv;         /* a waited-on operation was resolved */
    pthread_cond_t pool_cv;         /* a read connection was returned */
    pthread_t writer;
    int writer_started;

    /* queue (FIFO), guarded by mu */
    struct op *head, *tail;
    size_t pending_ops, pending_bytes;
    int urgent;                     /* commit now: someone waits or a checkpoint queued */
    int stop;
    double inflight_since;          /* enqueue time of the oldest op in the running batch, 0 = none */
    int64_t want_max_pages;         /* -1: unchanged; 0: no cap; >0: pages */

    /* counters and last error, guarded by mu */
    store_stats stats;
    _Atomic uint64_t generation;    /* stats.commits, readable without mu */

    /* read pool, guarded by mu */
    struct rconn *rc;
    int n_rc;

    /* cluster (cluster.c): this node's name ("" = none), its lease connection and the
     * generations of the leases it holds (the connection under lmu, the fences under fmu;
     * lmu before fmu) */
    char node[64];
    sql_conn *ldb;
    sql_conn *cdb;                  /* listens for control requests (store_control_listen;
                                       one thread: the node's control thread) */
    sql_conn *ndb;                  /* listens for rows written (store_rows_listen; one
                                       thread: the node's mirror) */
    pthread_mutex_t lmu;            /* the lease connection (a network round trip) */
    pthread_mutex_t fmu;            /* the fences alone: every job write reads them, and
                                       must never wait on the network */
    struct store_fence { int64_t job, gen; } *fences;
    size_t n_fences, cap_fences;
};

/* cluster.c: open the lease connection when opts->node is set (store_open, after the
 * migrations); close it (store_close). */
int store_cluster_open(store *st, vaed_err *err);
void store_cluster_close(store *st);
/* The writer's session on PostgreSQL (store_open; the writer again after a reconnect):
 * a cluster's node ends a transaction left idle past half a lease (store_opts), any
 * other store takes the database's hold (store_hold_pg). 0 on SQLite. */
int store_session_pg(store *st, sql_conn *c, vaed_err *err);
/* Create the control requests' table if it is missing (store.h "control requests"). */
int store_controls_schema(sql_conn *c, vaed_err *err);
/* The generation that job's writes carry now (0: unfenced). */
int64_t store_fence_gen(store *st, int64_t job);
/* The writer, inside its transaction on db: does (job, gen) still hold the job? 1 yes,
 * 0 fenced, or a negative driver code (a transient failure: the batch is retried).
 * cache (n entries, at most cap) remembers the leases checked in this transaction: the
 * PostgreSQL row lock taken stays until its end. */
int store_fence_check(store *st, sql_conn *db, int64_t job, int64_t gen,
                      struct store_fence *cache, size_t *n, size_t cap);

/* The writer, inside its transaction on db, before the commit: tell the other nodes
 * that the n jobs of fenced (those the transaction wrote for a lease) have new rows
 * (STORE_ROWS_CHANNEL; delivered at the commit). 0 on SQLite, or a negative driver code. */
int store_rows_notify(sql_conn *db, const struct store_fence *fenced, size_t n);

/* The step of job ?1's best checkpoint: the one whose completed evaluation has the
 * highest bound (the first such evaluation on a tie); NULL when none. One definition
 * for "best" (store_eval_best) and for the retention that never deletes it. */
#define STORE_SQL_BEST_STEP                                                              \
    "(SELECT ckpt_step FROM evaluations WHERE job = ?1 AND state = 'completed' "        \
    "ORDER BY " STORE_SQL_BOUND " IS NULL, " STORE_SQL_BOUND " DESC, id LIMIT 1)"
/* An evaluation's bound, a number on both databases (schema_pg.c defines json_extract
 * there as SQLite's, returning text: the cast makes it compare as a number). */
#define STORE_SQL_BOUND "CAST(json_extract(result, '$.bound') AS DOUBLE PRECISION)"

/* Insert a queued job (?1 name, ?2 spec, ?3 state, ?4 priority, ?5 now, ?6 parent_id,
 * ?7 parent_step), last in the queue, RETURNING its id; and append a schedule event (?1 job, ?2
 * requested_at, ?3 effective_step, ?4 schedule, ?5 source) RETURNING its seq. One text
 * each for the writer's own statements and the writer calls that insert jobs in bulk
 * (store/sweeps.c), so a sweep's trial is stored exactly as a submitted job is. */
#define STORE_SQL_JOB_INSERT                                                             \
    "INSERT INTO jobs(name, spec, state, priority, queue_seq, created_at, "             \
    "updated_at, parent_id, parent_step) VALUES (?1, ?2, ?3, ?4, "                      \
    "(SELECT coalesce(max(queue_seq), 0) + 1 FROM jobs), ?5, ?5, ?6, ?7) "     \
    "RETURNING id"
#define STORE_SQL_EVENT_INSERT                                                           \
    "INSERT INTO schedule_events(job, seq, requested_at, effective_step, "              \
    "schedule, source, superseded) VALUES (?1, "                                       \
    "(SELECT coalesce(max(seq), 0) + 1 FROM schedule_events WHERE job = ?1), "          \
    "?2, ?3, ?4, ?5, 0) RETURNING seq"

/* Step s to its end and reset it (bindings cleared): SQL_DONE, with *row (may be NULL)
 * the first column of the last row it returned (an INSERT's RETURNING id), or the
 * failing step's negative code (sql_errclass_of the connection says what kind). */
int store_wrun(sql_stmt *s, int64_t *row);

/* Monotonic seconds, for lag and deadlines. */
double store_mono(void);
/* Unix seconds, for stored timestamps. */
double store_now(void);

/* Set err to VAED_EDB with what, formatted, then sql_errmsg(db); returns VAED_EDB. */
int store_dberr(vaed_err *err, sql_conn *db, const char *what, ...)
    __attribute__((format(printf, 3, 4)));

/* Open a connection on path with the common pragmas (busy timeout, foreign keys). */
int store_conn_open(sql_conn **db, const char *path, int busy_ms, int create, vaed_err *err);
/* A read-only connection on st's database (SQLite query_only, PostgreSQL read only). */
int store_ropen(store *st, sql_conn **db, vaed_err *err);
/* store_ropen and sql prepared on it: 0 with *db and *s (the caller finalizes s and
 * closes db), or the error (what says what was being read), nothing left open. */
int store_read_open(store *st, const char *sql, sql_conn **db, sql_stmt **s, const char *what,
                    vaed_err *err);
/* PostgreSQL: take the session lock that makes this connection's store the only one
 * on the database (store_open; the writer again after a reconnect). VAED_EBUSY when
 * another session holds it. */
#define STORE_PG_HOLD_KEY "1986094437"   /* "vaed" + 1 as an int; migrations use "vaed" */
int store_hold_pg(sql_conn *c, vaed_err *err);
/* BEGIN a read transaction on c that sees one snapshot (PostgreSQL: repeatable read). */
void store_read_begin(sql_conn *c);

/* A read of a rarely read table (datasets, evaluations) on its own short-lived
 * read-only connection: run sql, with ?1 bound to id when id > 0, and call row(arg, s)
 * for each row; a non-zero return from row stops the walk and is returned. VAED_EDB
 * (err says what) when the database fails. */
typedef int (*store_row_fn)(void *arg, sql_stmt *s);
int store_read_each(store *st, const char *sql, int64_t id, store_row_fn row, void *arg,
                    const char *what, vaed_err *err);

/* schema.c: migrate db forward to STORE_SCHEMA_VERSION (see there). */
int store_migrate(sql_conn *db, vaed_err *err);
/* schema_pg.c: a migration's SQL (SQLite's dialect) in PostgreSQL's, as a new string
 * (xmalloc); and a PostgreSQL database migrated to STORE_SCHEMA_VERSION in one
 * transaction under an advisory lock (see there). */
char *store_ddl_pg(const char *lite_sql);
int store_migrate_pg(sql_conn *c, vaed_err *err);

/* writer.c: start the writer thread / stop it after draining; returns the number of
 * operations that could not be committed (0 normally). */
int store_writer_start(store *st, vaed_err *err);
size_t store_writer_stop(store *st);

/* The read pool (store.c), for the read modules beside it (metrics.c). Take a read
 * connection, opening one if the pool has room, else waiting for one; give it back. */
int store_racquire(store *st, struct rconn **out, vaed_err *err);
void store_rrelease(store *st, struct rconn *c);
/* The connection's prepared statement id (prepared on first use), NULL with err. */
sql_stmt *store_rstmt(struct rconn *c, enum rstmt_id id, vaed_err *err);
/* Reset s; a step result that is neither a row nor the end becomes VAED_EDB (or
 * VAED_ENOMEM) with the connection's message. */
int store_rdone(struct rconn *c, sql_stmt *s, int step_rc, const char *what,
                vaed_err *err);
/* A blob of doubles copied into a new array (xmalloc); OUT *n its length, 0 → NULL. */
double *store_col_doubles(sql_stmt *s, int i, int *n);

#endif
