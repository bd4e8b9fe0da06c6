/* sql.h — one SQL driver interface over two databases: SQLite (a file path) and
 * PostgreSQL through libpq (a "postgresql://" or "postgres://" URL). For store/ only.
 *
 * Why a driver and not a second store: the store's logic (the writer's batches, the
 * pyramid, retention, the sweeps' and evaluations' rules) is written once, above this
 * interface, so both databases get the same semantics by construction; only the SQL
 * text that differs between the two dialects is written twice (sql_kind_of tells
 * which). The calls mirror SQLite's (prepare, bind, step, column, reset); the whole
 * store runs on them.
 *
 * Placeholders. Statements are written in SQLite's form, "?1".."?N" (a number may be
 * used more than once) or bare "?" (the next number). On PostgreSQL they become "$1".."$N";
 * a '?' inside a string literal ('', E'' with backslash escapes, $$ or $tag$ quotes), a
 * quoted identifier or a comment is left alone. Nothing else of the text is translated,
 * so PostgreSQL's jsonb operators ?, ?| and ?& can't be written: use jsonb_exists(),
 * jsonb_exists_any() and jsonb_exists_all().
 *
 * Values. Integers are int64, reals IEEE-754 doubles, text UTF-8, blobs bytes. A double
 * comes back with the same bits it was stored with on both databases (±Infinity and
 * subnormals included; test_sql checks them), except that a NaN is stored as NULL on
 * both (SQLite's own rule, kept on PostgreSQL so the two agree): PostgreSQL's float8
 * is sent as 17 significant digits and read back from its shortest exact text. On
 * PostgreSQL a bound integer is an int8, a real a float8, a blob a bytea (sent in
 * binary), and text or NULL has the type its place in the statement gives it.
 *
 * Speed: on PostgreSQL a statement run a second time is prepared on the server (parsed
 * and planned once; again after a reconnect or a change of a parameter's type), so
 * keep the statements a loop runs prepared, as on SQLite.
 *
 * Threads: a connection, and its statements, are used by one thread at a time.
 *
 * Errors: every call that can fail returns a negative VAED_E* code and fills err with
 * what failed and the database's own message; sql_errclass says what kind of failure
 * the connection's last one was, for the callers that retry (busy) or reconnect. */
#ifndef VAED_STORE_SQL_H
#define VAED_STORE_SQL_H

#include <stddef.h>
#include <stdint.h>

#include "vae/err.h"

typedef struct sql_conn sql_conn;
typedef struct sql_stmt sql_stmt;

typedef enum { SQL_SQLITE = 1, SQL_POSTGRES = 2 } sql_kind;

/* sql_step's results besides errors */
enum { SQL_DONE = 0, SQL_ROW = 1 };

/* sql_column_type's results */
enum { SQL_NULL = 0, SQL_INT = 1, SQL_FLOAT = 2, SQL_TEXT = 3, SQL_BLOB = 4 };

/* What kind the connection's last failure was. */
typedef enum {
    SQL_EC_NONE = 0,
    SQL_EC_CONSTRAINT,  /* a unique, foreign-key, check or not-null rule refused the row */
    SQL_EC_BUSY,        /* a lock, a serialization failure or a deadlock: try again */
    SQL_EC_CONN,        /* the connection is gone (server restarted, network): reconnect */
    SQL_EC_RESOURCE,    /* the disk is full or failed, memory ran out, the database is
                           read only for now, the statement was cancelled */
    SQL_EC_OTHER,       /* anything else: the statement, the schema */
} sql_errclass;

/* 1 when retrying later can fix a failure of this class (busy, resource, connection),
 * 0 when the same statement would fail again. The one definition the store's writer
 * uses to keep a batch queued rather than drop it. */
int sql_transient(sql_errclass ec);

typedef struct sql_open_opts {
    int create;         /* SQLite: create the file when missing (PostgreSQL: ignored) */
    int busy_ms;        /* SQLite: busy timeout; PostgreSQL: lock_timeout (0: none) */
    int readonly;       /* the connection never writes (query_only / read only) */
    int no_server_prepare;  /* PostgreSQL: never prepare statements on the server
                               (scripts/bench-sql measures what that costs) */
} sql_open_opts;

/* 1 when target names a PostgreSQL database (a postgresql:// or postgres:// URL), else
 * 0 (a SQLite file path). The one test of which backend a --db value means. */
int sql_is_postgres(const char *target);

/* Open a connection on target (see sql_is_postgres); opts may be NULL (defaults: no
 * create, no busy timeout, read-write). SQLite connections have foreign keys on.
 * OUT *out: the connection (NULL on error; close with sql_close). */
int sql_open(sql_conn **out, const char *target, const sql_open_opts *opts, vaed_err *err);
/* Close c and every statement still prepared on it must already be finalized. NULL ok. */
void sql_close(sql_conn *c);
sql_kind sql_kind_of(const sql_conn *c);
/* The kind of c's last failure; SQL_EC_NONE after a success. */
sql_errclass sql_errclass_of(const sql_conn *c);
/* PostgreSQL: drop and re-establish the connection (after SQL_EC_CONN); statements
 * prepared on c stay usable (they are re-sent on their next step). SQLite: no-op. */
int sql_reconnect(sql_conn *c, vaed_err *err);

/* 1 while c is inside a transaction (also one a failed statement has spoiled, which
 * PostgreSQL then refuses to go on with: roll it back), 0 in autocommit (also after
 * SQLite rolled a transaction back by itself, as it does on some failures). */
int sql_in_transaction(const sql_conn *c);

/* Run sql, one or more statements without parameters, discarding any rows. */
int sql_exec(sql_conn *c, const char *sql, vaed_err *err);
/* Transactions: BEGIN (SQLite: BEGIN IMMEDIATE when write, so the write lock is taken
 * at once), COMMIT, ROLLBACK. */
int sql_begin(sql_conn *c, int write, vaed_err *err);
int sql_commit(sql_conn *c, vaed_err *err);
int sql_rollback(sql_conn *c, vaed_err *err);

/* Prepare one statement. OUT *out (NULL on error; free with sql_finalize). */
int sql_prepare(sql_conn *c, const char *sql, sql_stmt **out, vaed_err *err);
void sql_finalize(sql_stmt *s);

/* Bind parameter i (1-based) of s; the value is copied. Bindings stay across
 * sql_reset until bound again or cleared. VAED_EINVAL when i is out of range,
 * VAED_ENOMEM when a copy cannot be made; a failed bind also makes the next sql_step
 * fail with that code (until sql_reset or sql_clear_bindings), so a statement never
 * runs with a parameter it was not given even when the caller binds without checking. */
int sql_bind_int64(sql_stmt *s, int i, int64_t v);
int sql_bind_double(sql_stmt *s, int i, double v);
int sql_bind_text(sql_stmt *s, int i, const char *v);           /* v NULL: binds NULL */
int sql_bind_blob(sql_stmt *s, int i, const void *v, size_t n); /* v NULL: binds NULL */
int sql_bind_null(sql_stmt *s, int i);
void sql_clear_bindings(sql_stmt *s);
/* The number of parameters s takes (the highest ?N). */
int sql_param_count(const sql_stmt *s);

/* Run s (on the first call after prepare or reset) and move to its next row: SQL_ROW
 * when a row is there to read, SQL_DONE when there is none left, or a negative error.
 * After SQL_DONE or an error, sql_reset before running s again. */
int sql_step(sql_stmt *s, vaed_err *err);
/* Forget s's results (its bindings stay). */
void sql_reset(sql_stmt *s);
/* Rows the last run of s inserted, updated or deleted (valid once it is SQL_DONE). */
int64_t sql_changes(const sql_stmt *s);

/* The current row's columns (0-based), valid until the next step, reset or finalize.
 * NULL reads as 0, 0.0, a NULL pointer and 0 bytes. A text or blob pointer belongs to s. */
int sql_column_count(const sql_stmt *s);
int sql_column_type(sql_stmt *s, int i);
int64_t sql_column_int64(sql_stmt *s, int i);
double sql_column_double(sql_stmt *s, int i);
const char *sql_column_text(sql_stmt *s, int i);
const void *sql_column_blob(sql_stmt *s, int i);
size_t sql_column_bytes(sql_stmt *s, int i);   /* of the text or blob just read */

/* Notifications (PostgreSQL's LISTEN/NOTIFY), how one node wakes the others: a control
 * request for a job another node owns, a new metric row for an event stream. SQLite
 * has none (one process: the daemon's own bus does this), so these return VAED_ESTATE
 * there. channel is an identifier of ours ([a-z0-9_], at most 63 bytes), never a
 * value from outside; payload any text under 8000 bytes. A notification sent inside a
 * transaction is delivered when it commits, and not at all if it rolls back. */
int sql_listen(sql_conn *c, const char *channel, vaed_err *err);
int sql_notify(sql_conn *c, const char *channel, const char *payload, vaed_err *err);
/* The connection's socket, to poll for readability (-1 on SQLite or when closed). */
int sql_socket(const sql_conn *c);
/* The next notification received on c, without waiting: 1 with OUT *channel and
 * *payload (new strings, xmalloc; the caller frees them), 0 when none is pending, or
 * a negative error (the connection is gone: SQL_EC_CONN). Reads whatever the socket
 * has first, so after poll says readable this returns what arrived. */
int sql_next_notify(sql_conn *c, char **channel, char **payload, vaed_err *err);

/* target as it may be shown (logs, errors): a SQLite path as it is; a PostgreSQL URL
 * without its password and query string (which may hold one). Into buf (n bytes). */
const char *sql_display_name(const char *target, char *buf, size_t n);

/* 0 when c's server is known to be gone (PostgreSQL: it closed the connection, e.g.
 * restarted; found without a round trip by reading what the socket has), else 1: a
 * pool checks this before handing a connection out, and reconnects a dead one.
 * Idle notifications read meanwhile stay queued for sql_next_notify. */
int sql_alive(sql_conn *c);

/* The message of c's last failure, one line (the database's own words). */
const char *sql_errmsg(sql_conn *c);

/* SQLite's handle under c, NULL on PostgreSQL: for what only SQLite has and the store
 * uses on SQLite alone (schema.c's migrations, its pragmas' C side). */
struct sqlite3 *sql_sqlite(sql_conn *c);

/* The SQL text a statement becomes on kind (placeholders translated; see above).
 * Returns a new string (xmalloc) and OUT *nparams the highest parameter number. */
char *sql_translate(sql_kind kind, const char *sql, int *nparams);

#endif
