/* conn.c — the store's connections, on SQLite or PostgreSQL alike (store/sql.h):
 * opening the write and read connections, the PostgreSQL hold (one store a database),
 * a read transaction's snapshot, one-off reads on a connection of their own, and the
 * error text of a failed call. Shared by store.c, writer.c and the modules beside them. */
#include <stdarg.h>
#include <stdio.h>

#include "store/store_impl.h"

int store_dberr(vaed_err *err, sql_conn *db, const char *what, ...)
{
    char w[256];
    va_list ap;
    va_start(ap, what);
    vsnprintf(w, sizeof w, what, ap);
    va_end(ap);
    return vaed_err_set(err, VAED_EDB, "", "%s: %s", w,
                        db ? sql_errmsg(db) : "out of memory");
}

int store_conn_open(sql_conn **out, const char *path, int busy_ms, int create, vaed_err *err)
{
    /* the driver opens SQLite NOMUTEX (each connection is used by one thread at a time:
     * see the pool), with extended result codes, the busy timeout and foreign keys on */
    sql_open_opts o = {.create = create, .busy_ms = busy_ms};
    return sql_open(out, path, &o, err);
}

int store_is_server(const char *db)
{
    return sql_is_postgres(db);
}

const char *store_db_shown(const char *db, char *buf, size_t n)
{
    return sql_display_name(db, buf, n);
}

int store_ropen(store *st, sql_conn **out, vaed_err *err)
{
    /* read only: SQLite's query_only, PostgreSQL's default_transaction_read_only */
    sql_open_opts o = {.busy_ms = st->opts.busy_timeout_ms, .readonly = 1};
    return sql_open(out, st->path, &o, err);
}

int store_hold_pg(sql_conn *c, vaed_err *err)
{
    if (sql_kind_of(c) != SQL_POSTGRES)
        return 0;
    sql_stmt *s = NULL;
    int rc = sql_prepare(c, "SELECT pg_try_advisory_lock(" STORE_PG_HOLD_KEY ")", &s, err);
    if (rc == 0 && (rc = sql_step(s, err)) == SQL_ROW)
        rc = sql_column_int64(s, 0) ? 0 : vaed_err_set(err, VAED_EBUSY, "", "another vaed holds this "
                                                      "database (a store opened without a "
                                                      "node name holds it alone)");
    else if (rc == SQL_DONE)
        rc = vaed_err_set(err, VAED_EDB, "", "pg_try_advisory_lock returned no row");
    sql_finalize(s);
    return rc;
}

void store_read_begin(sql_conn *c)
{
    /* one snapshot for the reads that follow: SQLite's deferred transaction takes it at
     * the first read; PostgreSQL's default (read committed) would take one a statement */
    sql_exec(c, sql_kind_of(c) == SQL_POSTGRES ? "BEGIN ISOLATION LEVEL REPEATABLE READ" : "BEGIN",
             NULL);
}

int store_read_open(store *st, const char *sql, sql_conn **db, sql_stmt **s, const char *what,
                    vaed_err *err)
{
    *s = NULL;
    int rc = store_ropen(st, db, err);
    if (rc)
        return rc;
    if (sql_prepare(*db, sql, s, NULL) != 0) {
        rc = store_dberr(err, *db, "%s", what);
        sql_close(*db);
        *db = NULL;
    }
    return rc;
}

int store_read_each(store *st, const char *sql, int64_t id, store_row_fn row, void *arg,
                    const char *what, vaed_err *err)
{
    sql_conn *db = NULL;
    sql_stmt *s = NULL;
    int rc = store_read_open(st, sql, &db, &s, what, err);
    if (rc)
        return rc;
    if (id > 0)
        sql_bind_int64(s, 1, id);
    int sr;
    while ((sr = sql_step(s, NULL)) == SQL_ROW)
        if ((rc = row(arg, s)))
            break;
    if (!rc && sr != SQL_DONE)
        rc = store_dberr(err, db, "%s", what);
    sql_finalize(s);
    sql_close(db);
    return rc;
}
