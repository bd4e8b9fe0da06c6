/* test_sql_util.h — small helpers of the SQL driver's tests (test_sql, test_lease,
 * test_schema_pg): one integer from a query, and a SQLite database's files removed. */
#ifndef VAED_TEST_SQL_UTIL_H
#define VAED_TEST_SQL_UTIL_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/sql.h"

/* The first column of the first row of sql (no parameters) as an integer; -1, with
 * the database's message on stderr, when it fails or returns no row. */
static inline int64_t t_sql_int(sql_conn *c, const char *sql)
{
    sql_stmt *s = NULL;
    vaed_err e = {0};
    int64_t v = -1;
    if (sql_prepare(c, sql, &s, &e) == 0 && sql_step(s, &e) == SQL_ROW)
        v = sql_column_int64(s, 0);
    else
        fprintf(stderr, "query [%s]: %s\n", sql, e.msg[0] ? e.msg : "no row");
    sql_finalize(s);
    return v;
}

/* A fresh database NAME on the PostgreSQL server of url (dropped first if it exists):
 * 0 with its URL in out (n bytes), or -1 with the server's message in e. */
static inline int t_pg_fresh(const char *url, const char *name, char *out, size_t n,
                             vaed_err *e)
{
    sql_conn *c = NULL;
    char sql[160];
    int rc = sql_open(&c, url, NULL, e);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
    if (rc == 0)
        rc = sql_exec(c, sql, e);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (rc == 0)
        rc = sql_exec(c, sql, e);
    sql_close(c);
    const char *slash = strrchr(url, '/');
    snprintf(out, n, "%.*s/%s", slash ? (int)(slash - url) : 0, url, name);
    return rc == 0 && slash ? 0 : -1;
}

/* Remove a SQLite database at path with its -wal and -shm files, and then its
 * directory dir (a mkdtemp of the test's). */
static inline void t_sqlite_remove(const char *path, const char *dir)
{
    char side[512];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    rmdir(dir);
}

#endif
