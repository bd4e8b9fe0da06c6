/* bench_sql.c — the SQL driver's write and read speed (store/sql.h), for scripts/bench-sql:
 *   bench_sql TARGET MODE ROWS
 * MODE: "row" (one prepared INSERT per metric row), "row-noprep" (the same without
 * server-side preparation: PostgreSQL parses and plans every row), "multi" (one
 * INSERT of 100 rows at a time). Rows are metric rows as the store writes them: job,
 * step and 11 doubles, committed every 1000 rows, as the writer's batches are. Then
 * every row is read back in step order. Prints one JSON line:
 *   {"mode": …, "rows": …, "insert_rows_per_sec": …, "read_rows_per_sec": …}
 * and exits non-zero when a row read back differs from the one written (a benchmark
 * that measured a wrong store would be no figure at all). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/sql.h"

#define NCOL 11
#define MULTI 100

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double val(long step, int k)
{
    return (double)step * 0.001 + k + 1.0 / (double)(k + 3);
}

static void die(const char *what, vaed_err *e)
{
    fprintf(stderr, "bench_sql: %s: %s\n", what, e->msg);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_sql TARGET row|row-noprep|multi ROWS\n");
        return 2;
    }
    const char *target = argv[1], *mode = argv[2];
    long rows = atol(argv[3]);
    int multi = strcmp(mode, "multi") == 0;
    vaed_err e = {0};
    sql_conn *c = NULL;
    sql_open_opts o = {.create = 1, .busy_ms = 5000, .no_server_prepare = !strcmp(mode, "row-noprep")};
    if (sql_open(&c, target, &o, &e))
        die("open", &e);
    int pg = sql_kind_of(c) == SQL_POSTGRES;
    if (!pg && (sql_exec(c, "PRAGMA journal_mode = WAL", &e) || sql_exec(c, "PRAGMA synchronous = NORMAL", &e)))
        die("pragmas", &e);
    sql_exec(c, "DROP TABLE IF EXISTS bm", &e);
    char ddl[512], *p = ddl;
    p += sprintf(p, "CREATE TABLE bm(job %s NOT NULL, step %s NOT NULL", pg ? "bigint" : "INTEGER",
                 pg ? "bigint" : "INTEGER");
    for (int k = 0; k < NCOL; k++)
        p += sprintf(p, ", c%d %s", k, pg ? "double precision" : "REAL");
    sprintf(p, ", PRIMARY KEY (job, step))%s", pg ? "" : " WITHOUT ROWID");
    if (sql_exec(c, ddl, &e))
        die("create", &e);

    /* INSERT INTO bm VALUES (?1, ?2, ... ), (...) with 13 parameters a row */
    int per = multi ? MULTI : 1;
    size_t cap = (size_t)per * 13 * 8 + 64;
    char *ins = malloc(cap), *q = ins;
    q += sprintf(q, "INSERT INTO bm VALUES ");
    for (int r = 0; r < per; r++) {
        q += sprintf(q, "%s(", r ? ", " : "");
        for (int k = 0; k < 13; k++)
            q += sprintf(q, "%s?%d", k ? ", " : "", r * 13 + k + 1);
        q += sprintf(q, ")");
    }
    sql_stmt *s = NULL;
    if (sql_prepare(c, ins, &s, &e))
        die("prepare", &e);
    double t0 = now();
    long step = 0;
    while (step < rows) {
        if (sql_begin(c, 1, &e))
            die("begin", &e);
        for (int b = 0; b < 1000 && step < rows; b += per) {
            for (int r = 0; r < per; r++, step++) {
                sql_bind_int64(s, r * 13 + 1, 1);
                sql_bind_int64(s, r * 13 + 2, step);
                for (int k = 0; k < NCOL; k++)
                    sql_bind_double(s, r * 13 + 3 + k, val(step, k));
            }
            if (sql_step(s, &e) != SQL_DONE)
                die("insert", &e);
            sql_reset(s);
        }
        if (sql_commit(c, &e))
            die("commit", &e);
    }
    double t_ins = now() - t0;
    sql_finalize(s);
    free(ins);

    if (sql_prepare(c, "SELECT * FROM bm WHERE job = ?1 ORDER BY step", &s, &e))
        die("prepare read", &e);
    sql_bind_int64(s, 1, 1);
    t0 = now();
    long n = 0, bad = 0;
    while (sql_step(s, &e) == SQL_ROW) {
        bad += sql_column_int64(s, 1) != n;
        for (int k = 0; k < NCOL; k++)
            bad += sql_column_double(s, 2 + k) != val(n, k);
        n++;
    }
    double t_read = now() - t0;
    sql_finalize(s);
    sql_exec(c, "DROP TABLE bm", &e);
    sql_close(c);
    if (n != rows || bad) {
        fprintf(stderr, "bench_sql: read %ld rows of %ld, %ld values differ\n", n, rows, bad);
        return 1;
    }
    printf("{\"mode\": \"%s\", \"backend\": \"%s\", \"rows\": %ld, \"insert_rows_per_sec\": %.0f, "
           "\"read_rows_per_sec\": %.0f}\n", mode, pg ? "postgres" : "sqlite", rows, (double)rows / t_ins,
           (double)rows / t_read);
    return 0;
}
