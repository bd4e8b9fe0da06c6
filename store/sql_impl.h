/* sql_impl.h — what sql.c (the driver's calls, SQLite) and sql_pg.c (PostgreSQL's
 * half) share: the connection and statement structs. Inside the driver only. */
#ifndef VAED_STORE_SQL_IMPL_H
#define VAED_STORE_SQL_IMPL_H

#include <libpq-fe.h>
#include <sqlite3.h>

#include "store/sql.h"

/* PostgreSQL type OIDs (catalog/pg_type.h, stable since forever) */
enum {
    OID_BOOL = 16, OID_BYTEA = 17, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23,
    OID_OID = 26, OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_NUMERIC = 1700,
};

struct sql_conn {
    sql_kind kind;
    sql_errclass ec;
    sqlite3 *lite;
    PGconn *pg;
    char *target;               /* PostgreSQL: the URL, for messages */
    sql_open_opts opts;
    uint64_t gen;               /* PostgreSQL: one more at each (re)connect */
    uint64_t names;             /* server-side statement names handed out */
    char msg[400];              /* PostgreSQL: the last failure's message */
    char **stale;               /* server-side statements to DEALLOCATE when idle */
    int nstale, capstale;
};

struct pgparam {
    char *val;                  /* NULL: SQL NULL */
    int len;                    /* bytes of val (binary blobs) */
    int binary;
    unsigned oid;               /* 0: the server infers it */
};

struct pgcell {                 /* a bytea column of the current row, decoded */
    unsigned char *p;
    size_t n;
    int done;
};

struct sql_stmt {
    sql_conn *c;
    sqlite3_stmt *lite;
    int64_t lite_changes;
    /* PostgreSQL */
    char *text;
    int nparam;
    struct pgparam *p;
    PGresult *res;
    int row, nrows, ran;
    int runs;                   /* runs so far: prepared on the server from the second */
    int prepared;               /* pname exists on the server, for connection pgen */
    uint64_t pgen;
    char pname[32];
    unsigned *poids;            /* the parameter types it was prepared with */
    int64_t changes;
    int bind_rc;                /* a failed bind's code, until reset (see latch) */
    struct pgcell *cells;       /* one a column of the result, for this row */
    int ncells;
};

/* err set from the database's message for c's last failure (r: PostgreSQL's result) */
int sql_fail(sql_conn *c, const PGresult *r, vaed_err *err, const char *what);

/* PostgreSQL's half (sql_pg.c) */
int sqlpg_connect(sql_conn *c, vaed_err *err);
sql_errclass sqlpg_class(sql_conn *c, const PGresult *r);
int sqlpg_set(sql_stmt *s, int i, const void *v, size_t n, int binary, unsigned oid);
int sqlpg_run(sql_stmt *s, vaed_err *err);
void sqlpg_new_row(sql_stmt *s);
void sqlpg_drop_result(sql_stmt *s);
void sqlpg_deallocate(sql_stmt *s);
int sqlpg_has(const sql_stmt *s, int i);
int sqlpg_column_type(sql_stmt *s, int i);
int64_t sqlpg_column_int64(sql_stmt *s, int i);
double sqlpg_column_double(sql_stmt *s, int i);
const unsigned char *sqlpg_bytea(sql_stmt *s, int i, size_t *len);

#endif
