/* schema.c — the schema of vaed's database and its forward migrations.
 *
 * PRAGMA user_version holds the schema version. migrations[v] takes a database from
 * version v-1 to v; store_migrate applies each pending step in its own IMMEDIATE
 * transaction together with the user_version bump, so a crash mid-migration leaves
 * the database at a whole version. A migration is never edited once shipped: a
 * change is a new entry. A version newer than the code is refused, because running
 * an older binary against a newer schema could write rows the newer one misreads.
 *
 * v1: the base tables. v2: per-group KL in metrics, forked-from columns in jobs,
 *     the queue index on jobs and an index on schedule events' effective step.
 * v3: metrics_sum, the min/max pyramid of the metrics (store/pyramid.h), built in
 *     the same transaction for the rows already there: SQL cannot say "the earliest
 *     step holding the minimum" cheaply, so that step is C (migration_fn).
 * v4: datasets, the registry of POST /v1/datasets; checkpoint kind 'fork' (the state a
 *     forked job starts from, copied from its parent). SQLite cannot alter a CHECK
 *     constraint, and rebuilding checkpoints would copy every blob, so the C step
 *     widens it in place by the procedure SQLite documents for loosening a CHECK
 *     ("Making Other Kinds Of Table Schema Changes"): rewrite the table's SQL text in
 *     sqlite_master under writable_schema and bump schema_version. No stored row
 *     changes meaning, since the new check accepts every value the old one did.
 * v5: evaluations and eval_blocks (store/evals.h): an evaluation's committed blocks
 *     let it resume after a crash.
 * v6: sweeps and sweep_trials (store/sweeps.h): a sweep's request and, per trial, the
 *     job that runs it and its point in the search space.
 * v7: audit (store/audit.h): every state-changing request, who sent it and its result.
 *     AUTOINCREMENT: retention deletes the oldest rows, and an id must never come back
 *     (a client pages with after=ID).
 * v8: pbt_decisions (store/sweeps.h): a PBT member's decision at each generation
 *     boundary — kept its own state, or took a donor's checkpoint there with a perturbed
 *     schedule — the lineage GET /v1/sweeps/{id}/trials/{t}/schedule stitches.
 * v9: jobs.kernels, what decided the bits of the job's latest steps.
 * v10: dataset_blobs and datasets.sha256 (store/datasets.h): an upload's bytes kept in
 *     the database in parts of STORE_DS_PART bytes, so a node that did not take the
 *     upload reads them from there; the SHA-256 of the whole file. A rowid table, not
 *     WITHOUT ROWID: its rows are large (SQLite advises rowid tables past a twentieth
 *     of a page). */
#include <stdio.h>

#include "store/pyramid.h"
#include "store/store_impl.h"

static const char *const migrations[] = {
    NULL,
    /* v1 */
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  spec TEXT NOT NULL CHECK (json_valid(spec)),"
    "  state TEXT NOT NULL CHECK (state IN ('queued','running','paused','interrupted',"
    "                                        'completed','failed','cancelled')),"
    "  priority INTEGER NOT NULL DEFAULT 0,"
    "  queue_seq INTEGER NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  started_at REAL,"
    "  finished_at REAL,"
    "  updated_at REAL NOT NULL,"
    "  reason TEXT,"
    "  step INTEGER NOT NULL DEFAULT 0,"
    "  epoch REAL NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE metrics ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  step INTEGER NOT NULL,"
    "  epoch REAL, beta REAL, loss REAL, xent REAL, kl REAL, elbo REAL,"
    "  lr REAL, grad_norm REAL, capacity REAL, time REAL,"
    "  PRIMARY KEY (job, step)"
    ") WITHOUT ROWID;"
    "CREATE TABLE epochs ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  epoch INTEGER NOT NULL,"
    "  split TEXT NOT NULL,"
    "  step INTEGER NOT NULL,"
    "  xent REAL, kl REAL, elbo REAL, active_units INTEGER, kl_dims BLOB, time REAL,"
    "  PRIMARY KEY (job, epoch, split)"
    ") WITHOUT ROWID;"
    "CREATE TABLE schedule_events ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  requested_at REAL NOT NULL,"
    "  effective_step INTEGER NOT NULL,"
    "  schedule TEXT NOT NULL CHECK (json_valid(schedule)),"
    "  source TEXT NOT NULL CHECK (source IN ('submit','override')),"
    "  superseded INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (job, seq)"
    ");"
    "CREATE TABLE checkpoints ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  step INTEGER NOT NULL,"
    "  epoch REAL NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('periodic','epoch','final','manual','pause')),"
    "  size INTEGER NOT NULL,"
    "  blob BLOB NOT NULL,"
    "  PRIMARY KEY (job, step)"
    ");",
    /* v2 */
    "ALTER TABLE metrics ADD COLUMN kl_groups BLOB;"
    "ALTER TABLE jobs ADD COLUMN parent_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL;"
    "ALTER TABLE jobs ADD COLUMN parent_step INTEGER;"
    "CREATE INDEX jobs_queue ON jobs(state, priority DESC, queue_seq);"
    "CREATE INDEX schedule_events_step ON schedule_events(job, effective_step);",
    /* v3 */
    "CREATE TABLE metrics_sum ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  lvl INTEGER NOT NULL,"
    "  bucket INTEGER NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  agg BLOB NOT NULL,"
    "  PRIMARY KEY (job, lvl, bucket)"
    ") WITHOUT ROWID;",
    /* v4 */
    "CREATE TABLE datasets ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  source TEXT NOT NULL CHECK (source IN ('file','upload')),"
    "  spec TEXT NOT NULL CHECK (json_valid(spec)),"
    "  info TEXT NOT NULL CHECK (json_valid(info)),"
    "  size INTEGER NOT NULL,"
    "  created_at REAL NOT NULL"
    ");",
    /* v5 */
    "CREATE TABLE evaluations ("
    "  id INTEGER PRIMARY KEY,"
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  ckpt_step INTEGER NOT NULL,"
    "  asked TEXT NOT NULL,"
    "  split TEXT NOT NULL CHECK (split IN ('test','train')),"
    "  k INTEGER NOT NULL,"
    "  seed INTEGER NOT NULL,"
    "  rows INTEGER NOT NULL,"
    "  rows_done INTEGER NOT NULL DEFAULT 0,"
    "  state TEXT NOT NULL CHECK (state IN ('queued','running','completed','failed',"
    "                                       'cancelled')),"
    "  reason TEXT,"
    "  result TEXT CHECK (result IS NULL OR json_valid(result)),"
    "  created_at REAL NOT NULL,"
    "  started_at REAL,"
    "  finished_at REAL,"
    "  seconds REAL NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX evaluations_job ON evaluations(job);"
    "CREATE TABLE eval_blocks ("
    "  eval INTEGER NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,"
    "  block INTEGER NOT NULL,"
    "  rows INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY (eval, block)"
    ") WITHOUT ROWID;",
    /* v6 */
    "CREATE TABLE sweeps ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  spec TEXT NOT NULL CHECK (json_valid(spec)),"
    "  concurrency INTEGER NOT NULL CHECK (concurrency >= 1),"
    "  created_at REAL NOT NULL"
    ");"
    "CREATE TABLE sweep_trials ("
    "  sweep INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,"
    "  trial INTEGER NOT NULL,"
    "  job INTEGER NOT NULL UNIQUE REFERENCES jobs(id) ON DELETE CASCADE,"
    "  point TEXT NOT NULL CHECK (json_valid(point)),"
    "  PRIMARY KEY (sweep, trial)"
    ") WITHOUT ROWID;",
    /* v7 */
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time REAL NOT NULL,"
    "  token TEXT,"
    "  remote TEXT NOT NULL,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  created TEXT"
    ");",
    /* v8 */
    "CREATE TABLE pbt_decisions ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  step INTEGER NOT NULL CHECK (step > 0),"
    "  epoch INTEGER NOT NULL,"
    "  donor INTEGER,"
    "  value REAL,"
    "  schedule TEXT CHECK (schedule IS NULL OR json_valid(schedule)),"
    "  created_at REAL NOT NULL,"
    "  PRIMARY KEY (job, step)"
    ") WITHOUT ROWID;",
    /* v9: what decided the bits of the job's latest steps (vae_kernels_id) */
    "ALTER TABLE jobs ADD COLUMN kernels TEXT;",
    /* v10 */
    "CREATE TABLE dataset_blobs ("
    "  dataset INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY (dataset, seq)"
    ");"
    "ALTER TABLE datasets ADD COLUMN sha256 TEXT;",
};

static int exec_all(sql_conn *db, const char *sql, vaed_err *err)
{
    if (sql_exec(db, sql, NULL) != 0)
        return store_dberr(err, db, "%s", sql);
    return 0;
}

/* v4: checkpoints.kind also accepts 'fork' (see the header comment for why in place). */
static int ckpt_kind_fork(sql_conn *db, vaed_err *err)
{
    static const char old_check[] = "'manual','pause'))";
    static const char new_check[] = "'manual','pause','fork'))";
    sql_stmt *s = NULL;
    int version = 0, rc;
    if (sql_prepare(db, "PRAGMA schema_version", &s, NULL) != 0 ||
        sql_step(s, NULL) != SQL_ROW) {
        sql_finalize(s);
        return store_dberr(err, db, "reading schema_version");
    }
    version = (int)sql_column_int64(s, 0);
    sql_finalize(s);
    if ((rc = exec_all(db, "PRAGMA writable_schema = ON", err)) != 0)
        return rc;
    s = NULL;
    rc = sql_prepare(db, "UPDATE sqlite_master SET sql = replace(sql, ?1, ?2) "
                            "WHERE type = 'table' AND name = 'checkpoints' AND instr(sql, ?1) > 0", &s, NULL);
    if (rc == 0) {
        sql_bind_text(s, 1, old_check);
        sql_bind_text(s, 2, new_check);
        rc = sql_step(s, NULL);
    }
    int changed = rc == SQL_DONE ? (int)sql_changes(s) : -1;
    sql_finalize(s);
    if (changed == 0) {
        /* Already widened (a database whose user_version was set back by hand, as
         * scripts/bench-api does to rebuild the summaries): nothing to do. */
        s = NULL;
        int widened = 0;
        if (sql_prepare(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                               "name = 'checkpoints' AND instr(sql, ?1) > 0", &s, NULL) == 0) {
            sql_bind_text(s, 1, new_check);
            widened = sql_step(s, NULL) == SQL_ROW && (int)sql_column_int64(s, 0) == 1;
        }
        sql_finalize(s);
        if (widened) {
            sql_exec(db, "PRAGMA writable_schema = OFF", NULL);
            return 0;
        }
    }
    if (changed != 1) {
        int r = changed < 0 ? store_dberr(err, db, "widening checkpoints.kind")
                            : vaed_err_set(err, VAED_EDB, "",
                                           "checkpoints table does not have the expected "
                                           "kind check; refusing to rewrite it");
        sql_exec(db, "PRAGMA writable_schema = OFF", NULL);
        return r;
    }
    /* The schema cookie must change so every connection re-reads the schema. The
     * number is ours, so formatting it into the PRAGMA is safe. */
    char bump[64];
    snprintf(bump, sizeof bump, "PRAGMA schema_version = %d", version + 1);
    rc = exec_all(db, bump, err);
    sql_exec(db, "PRAGMA writable_schema = OFF", NULL);
    return rc;
}

/* A C step run after migrations[v]'s SQL, in the same transaction; NULL = none. */
static int (*const migration_fn[])(sql_conn *, vaed_err *) = {
    NULL, NULL, NULL,
    sum_build_all,   /* v3 */
    ckpt_kind_fork,  /* v4 */
    NULL,            /* v5 */
    NULL,            /* v6 */
    NULL,            /* v7 */
    NULL,            /* v8 */
    NULL,            /* v9 */
    NULL,            /* v10 */
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION + 1,
               "one migration per schema version");
_Static_assert(sizeof migration_fn / sizeof migration_fn[0] == STORE_SCHEMA_VERSION + 1,
               "one migration step per schema version");

const char *store_migration_sql(int v)
{
    return v >= 1 && v <= STORE_SCHEMA_VERSION ? migrations[v] : NULL;
}

static int user_version(sql_conn *db, int *v, vaed_err *err)
{
    sql_stmt *s = NULL;
    int rc = sql_prepare(db, "PRAGMA user_version", &s, NULL);
    if (rc == 0 && sql_step(s, NULL) == SQL_ROW) {
        *v = (int)sql_column_int64(s, 0);
        sql_finalize(s);
        return 0;
    }
    sql_finalize(s);
    return store_dberr(err, db, "reading user_version");
}

/* Add the metric fields (vae/metric_fields.h) the database's metrics table lacks as
 * columns (old rows read them as 0). Runs inside the caller's transaction; *added
 * counts them. A database without a metrics table yet is left alone. */
static int add_missing_columns(sql_conn *db, int *added, vaed_err *err)
{
    *added = 0;
    sql_stmt *q = NULL;
    if (sql_prepare(db, "SELECT count(*), sum(name = ?1) FROM pragma_table_info('metrics')", &q, NULL) != 0)
        return store_dberr(err, db, "reading the metrics table's columns");
    int rc = 0;
    for (int i = 0; i < VAE_METRIC_NFIELDS && rc == 0; i++) {
        sql_bind_text(q, 1, vae_metric_fields[i].name);
        int step = sql_step(q, NULL);
        if (step != SQL_ROW) {
            rc = store_dberr(err, db, "reading the metrics table's columns");
            break;
        }
        int ncols = (int)sql_column_int64(q, 0), has = (int)sql_column_int64(q, 1);
        sql_reset(q);
        if (ncols == 0 || has)
            continue;
        /* the name is our own table's identifier, not a value from outside */
        char sql[160];
        snprintf(sql, sizeof sql, "ALTER TABLE metrics ADD COLUMN %s REAL",
                 vae_metric_fields[i].name);
        if (sql_exec(db, sql, NULL) != 0)
            rc = store_dberr(err, db, "adding metric column %s", vae_metric_fields[i].name);
        else
            (*added)++;
    }
    sql_finalize(q);
    return rc;
}

/* After the numbered migrations: the fields the table has gained since the database
 * was written, added, and the pyramid, whose rows are sized by the column count, built
 * again — in one transaction. So a new metric field is one line of the table and
 * needs no numbered migration. */
static int add_metric_columns(sql_conn *db, vaed_err *err)
{
    if (sql_exec(db, "BEGIN IMMEDIATE", NULL) != 0)
        return store_dberr(err, db, "adding metric columns: begin");
    int added = 0;
    int rc = add_missing_columns(db, &added, err);
    if (rc == 0 && added > 0) {
        if (sql_exec(db, "DELETE FROM metrics_sum", NULL) != 0)
            rc = store_dberr(err, db, "adding metric columns: clearing the pyramid");
        else
            rc = sum_build_all(db, err);
    }
    if (rc == 0 && sql_exec(db, "COMMIT", NULL) != 0)
        rc = store_dberr(err, db, "adding metric columns: commit");
    if (rc)
        sql_exec(db, "ROLLBACK", NULL);
    return rc;
}

int store_migrate(sql_conn *db, vaed_err *err)
{
    int v = 0;
    int rc = user_version(db, &v, err);
    if (rc)
        return rc;
    if (v > STORE_SCHEMA_VERSION)
        return vaed_err_set(err, VAED_EDB, "",
                            "database schema version %d is newer than this vaed knows "
                            "(%d): refusing to use it",
                            v, STORE_SCHEMA_VERSION);
    for (; v < STORE_SCHEMA_VERSION; v++) {
        /* PRAGMA takes no bound parameters; the number is ours, not a value from
         * outside, so formatting it is safe. */
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        if (sql_exec(db, "BEGIN IMMEDIATE", NULL) != 0)
            return store_dberr(err, db, "migration to v%d: begin", v + 1);
        if (sql_exec(db, migrations[v + 1], NULL) != 0 ||
            sql_exec(db, bump, NULL) != 0) {
            rc = store_dberr(err, db, "migration to v%d", v + 1);
            sql_exec(db, "ROLLBACK", NULL);
            return rc;
        }
        int added = 0; /* a migration that reads metric rows reads every field */
        if ((migration_fn[v + 1] && (rc = add_missing_columns(db, &added, err)) != 0) ||
            (migration_fn[v + 1] && (rc = migration_fn[v + 1](db, err)) != 0)) {
            vaed_err_prefix(err, "migration to v%d: ", v + 1);
            sql_exec(db, "ROLLBACK", NULL);
            return rc;
        }
        if (sql_exec(db, "COMMIT", NULL) != 0) {
            rc = store_dberr(err, db, "migration to v%d: commit", v + 1);
            sql_exec(db, "ROLLBACK", NULL);
            return rc;
        }
    }
    return add_metric_columns(db, err);
}
