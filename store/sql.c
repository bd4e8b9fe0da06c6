/* sql.c — the SQL driver of sql.h on SQLite and on PostgreSQL (libpq).
 *
 * SQLite: a thin pass-through to sqlite3_*; bound values are copied (SQLITE_TRANSIENT).
 *
 * PostgreSQL: a statement keeps its translated text and its bound parameters as the
 * text (or, for a blob, binary) values libpq sends; the first sql_step runs it with
 * PQexecParams and keeps the whole result, later steps walk its rows. Results come in
 * text form and are converted on read by the column's type: integers with strtoll,
 * float8 with strtod (the server prints the shortest text that reads back to the
 * same bits: extra_float_digits is set to 3 at connect, which older servers too read
 * as "exact"), bytea from its hex form. A statement's first run sends its text; from
 * its second it is prepared on the server (again after sql_reconnect, which makes a
 * new session, or when a parameter's type changed). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
};

struct pgparam {
    char *val;                  /* NULL: SQL NULL */
    int len;                    /* bytes of val (binary blobs) */
    int binary;
    unsigned oid;               /* 0: the server infers it */
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
    unsigned char *cell;        /* the bytea column last decoded, for this row */
    size_t cell_len;
    int cell_col;
};

int sql_is_postgres(const char *t)
{
    return t && (strncmp(t, "postgresql://", 13) == 0 || strncmp(t, "postgres://", 11) == 0);
}

sql_kind sql_kind_of(const sql_conn *c) { return c->kind; }
sql_errclass sql_errclass_of(const sql_conn *c) { return c->ec; }

/* ---- errors ------------------------------------------------------------------------ */

static sql_errclass lite_class(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE: return SQL_EC_NONE;
    case SQLITE_CONSTRAINT: return SQL_EC_CONSTRAINT;
    case SQLITE_BUSY: case SQLITE_LOCKED: return SQL_EC_BUSY;
    case SQLITE_FULL: case SQLITE_IOERR: case SQLITE_NOMEM: case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL: case SQLITE_READONLY: case SQLITE_INTERRUPT: return SQL_EC_RESOURCE;
    default: return SQL_EC_OTHER;
    }
}

static sql_errclass pg_class(sql_conn *c, const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(c->pg) != CONNECTION_OK)
        return SQL_EC_CONN;
    if (!st)
        return SQL_EC_OTHER;
    if (strncmp(st, "23", 2) == 0)
        return SQL_EC_CONSTRAINT;
    if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
        return SQL_EC_BUSY;
    if (strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0)
        return SQL_EC_CONN;
    /* 53: disk full, out of memory, too many connections; 58: I/O; 57014: cancelled;
     * 25006: a read-only transaction (a standby, or default_transaction_read_only) */
    if (strncmp(st, "53", 2) == 0 || strncmp(st, "58", 2) == 0 || strcmp(st, "57014") == 0 ||
        strcmp(st, "25006") == 0)
        return SQL_EC_RESOURCE;
    return SQL_EC_OTHER;
}

int sql_transient(sql_errclass ec)
{
    return ec == SQL_EC_BUSY || ec == SQL_EC_RESOURCE || ec == SQL_EC_CONN;
}

int sql_in_transaction(const sql_conn *c)
{
    if (c->kind == SQL_SQLITE)
        return !sqlite3_get_autocommit(c->lite);
    PGTransactionStatusType t = PQtransactionStatus(c->pg);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

/* The database's message for c's last failure, one line. */
static const char *dbmsg(sql_conn *c, const PGresult *r, char *buf, size_t n)
{
    const char *m;
    if (c->kind == SQL_SQLITE)
        m = sqlite3_errmsg(c->lite);
    else
        m = r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r) : PQerrorMessage(c->pg);
    snprintf(buf, n, "%s", m ? m : "unknown error");
    for (size_t k = strlen(buf); k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == ' '); k--)
        buf[k - 1] = '\0';
    return buf;
}

static int fail(sql_conn *c, const PGresult *r, vaed_err *err, const char *what)
{
    char m[400];
    dbmsg(c, r, m, sizeof m);
    return vaed_err_set(err, VAED_EDB, "", "%s: %s", what, m);
}

/* ---- connections ------------------------------------------------------------------- */

static int pg_connect(sql_conn *c, vaed_err *err)
{
    PGresult *r;
    char set[96];
    c->gen++;
    c->pg = PQconnectdb(c->target);
    if (!c->pg)
        return vaed_err_set(err, VAED_ENOMEM, "", "postgres: out of memory");
    if (PQstatus(c->pg) != CONNECTION_OK) {
        c->ec = SQL_EC_CONN;
        return fail(c, NULL, err, "postgres: cannot connect");
    }
    /* exact float8 text both ways; quiet notices; the lock wait bound; read only */
    snprintf(set, sizeof set, "SET extra_float_digits = 3; SET client_min_messages = warning; "
             "SET lock_timeout = %d", c->opts.busy_ms > 0 ? c->opts.busy_ms : 0);
    r = PQexec(c->pg, set);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        int rc = fail(c, r, err, "postgres: session settings");
        c->ec = pg_class(c, r);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    if (c->opts.readonly) {
        r = PQexec(c->pg, "SET default_transaction_read_only = on");
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        int rc = ok ? 0 : fail(c, r, err, "postgres: read only");
        PQclear(r);
        if (rc)
            return rc;
    }
    c->ec = SQL_EC_NONE;
    return 0;
}

int sql_open(sql_conn **out, const char *target, const sql_open_opts *opts, vaed_err *err)
{
    sql_conn *c = xcalloc(1, sizeof *c);
    int rc;
    *out = NULL;
    if (opts)
        c->opts = *opts;
    if (sql_is_postgres(target)) {
        c->kind = SQL_POSTGRES;
        c->target = xstrdup(target);
        if ((rc = pg_connect(c, err)) < 0)
            goto fail;
    } else {
        int flags = SQLITE_OPEN_NOMUTEX |
                    (c->opts.readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                    (c->opts.create && !c->opts.readonly ? SQLITE_OPEN_CREATE : 0);
        c->kind = SQL_SQLITE;
        if (sqlite3_open_v2(target, &c->lite, flags, NULL) != SQLITE_OK) {
            if (!c->lite) {
                rc = vaed_err_set(err, VAED_ENOMEM, "", "%s: out of memory", target);
                goto fail;
            }
            rc = vaed_err_set(err, VAED_EDB, "", "%s: cannot open: %s", target,
                              sqlite3_errmsg(c->lite));
            goto fail;
        }
        sqlite3_extended_result_codes(c->lite, 1);
        if (c->opts.busy_ms > 0)
            sqlite3_busy_timeout(c->lite, c->opts.busy_ms);
        if ((rc = sql_exec(c, "PRAGMA foreign_keys = ON", err)) < 0)
            goto fail;
    }
    *out = c;
    return 0;
fail:
    sql_close(c);
    return rc;
}

void sql_close(sql_conn *c)
{
    if (!c)
        return;
    if (c->lite)
        sqlite3_close(c->lite);
    if (c->pg)
        PQfinish(c->pg);
    free(c->target);
    free(c);
}

int sql_reconnect(sql_conn *c, vaed_err *err)
{
    if (c->kind != SQL_POSTGRES)
        return 0;
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    return pg_connect(c, err);
}

int sql_exec(sql_conn *c, const char *sql, vaed_err *err)
{
    if (c->kind == SQL_SQLITE) {
        int rc = sqlite3_exec(c->lite, sql, NULL, NULL, NULL);
        c->ec = lite_class(rc);
        return rc == SQLITE_OK ? 0 : fail(c, NULL, err, "exec");
    }
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        c->ec = pg_class(c, r);
        rc = fail(c, r, err, "exec");
    } else {
        c->ec = SQL_EC_NONE;
    }
    PQclear(r);
    return rc;
}

int sql_begin(sql_conn *c, int write, vaed_err *err)
{
    return sql_exec(c, c->kind == SQL_SQLITE && write ? "BEGIN IMMEDIATE" : "BEGIN", err);
}

int sql_commit(sql_conn *c, vaed_err *err)
{
    /* PostgreSQL answers COMMIT of a transaction a failed statement spoiled with a
     * rollback and no error: say so, as the rows are gone (SQLite keeps the others) */
    if (c->kind == SQL_POSTGRES && c->pg && PQtransactionStatus(c->pg) == PQTRANS_INERROR) {
        sql_exec(c, "ROLLBACK", NULL);
        c->ec = SQL_EC_OTHER;
        return vaed_err_set(err, VAED_EDB, "", "commit: the transaction had a failed statement "
                            "and was rolled back");
    }
    return sql_exec(c, "COMMIT", err);
}
int sql_rollback(sql_conn *c, vaed_err *err) { return sql_exec(c, "ROLLBACK", err); }

/* ---- notifications ----------------------------------------------------------------- */

static int channel_ok(const char *ch)
{
    size_t n = ch ? strlen(ch) : 0;
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((ch[i] >= 'a' && ch[i] <= 'z') || (ch[i] >= '0' && ch[i] <= '9') || ch[i] == '_'))
            return 0;
    return 1;
}

int sql_listen(sql_conn *c, const char *channel, vaed_err *err)
{
    if (c->kind != SQL_POSTGRES)
        return vaed_err_set(err, VAED_ESTATE, "", "listen: SQLite has no notifications");
    if (!channel_ok(channel))
        return vaed_err_set(err, VAED_EINVAL, "channel", "channel: [a-z0-9_], 1 to 63 bytes");
    char sql[96];
    snprintf(sql, sizeof sql, "LISTEN %s", channel);   /* checked: an identifier of ours */
    return sql_exec(c, sql, err);
}

int sql_notify(sql_conn *c, const char *channel, const char *payload, vaed_err *err)
{
    if (c->kind != SQL_POSTGRES)
        return vaed_err_set(err, VAED_ESTATE, "", "notify: SQLite has no notifications");
    if (!channel_ok(channel))
        return vaed_err_set(err, VAED_EINVAL, "channel", "channel: [a-z0-9_], 1 to 63 bytes");
    sql_stmt *s = NULL;
    int rc = sql_prepare(c, "SELECT pg_notify(?1, ?2)", &s, err);
    if (rc == 0 && (sql_bind_text(s, 1, channel) || sql_bind_text(s, 2, payload ? payload : "")))
        rc = vaed_err_set(err, VAED_ENOMEM, "", "notify: out of memory");
    if (rc == 0) {
        rc = sql_step(s, err);
        rc = rc < 0 ? rc : 0;
    }
    sql_finalize(s);
    return rc;
}

int sql_socket(const sql_conn *c)
{
    return c->kind == SQL_POSTGRES && c->pg ? PQsocket(c->pg) : -1;
}

int sql_next_notify(sql_conn *c, char **channel, char **payload, vaed_err *err)
{
    *channel = *payload = NULL;
    if (c->kind != SQL_POSTGRES)
        return vaed_err_set(err, VAED_ESTATE, "", "notifications: SQLite has none");
    if (!PQconsumeInput(c->pg)) {
        c->ec = SQL_EC_CONN;
        return fail(c, NULL, err, "notifications");
    }
    PGnotify *n = PQnotifies(c->pg);
    if (!n)
        return 0;
    *channel = xstrdup(n->relname);
    *payload = xstrdup(n->extra ? n->extra : "");
    PQfreemem(n);
    return 1;
}

/* ---- placeholders ------------------------------------------------------------------ */

char *sql_translate(sql_kind kind, const char *sql, int *nparams)
{
    size_t n = strlen(sql);
    char *out = xmalloc(n * 10 + 16), *o = out;  /* a bare "?" may become "$1234567" */
    int maxp = 0;
    const char *p = sql;
    while (*p) {
        if (*p == '\'' || *p == '"') {          /* a literal or quoted identifier ('' inside) */
            char q = *p;
            *o++ = *p++;
            while (*p) {
                if (*p == q && p[1] == q) { *o++ = *p++; *o++ = *p++; continue; }
                if (*p == q) { *o++ = *p++; break; }
                *o++ = *p++;
            }
        } else if (p[0] == '-' && p[1] == '-') { /* a comment to the line's end */
            while (*p && *p != '\n')
                *o++ = *p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            size_t k = e ? (size_t)(e + 2 - p) : strlen(p);
            memcpy(o, p, k);
            o += k, p += k;
        } else if (*p == '?') {
            int num;
            p++;
            if (*p >= '0' && *p <= '9') {
                num = 0;
                while (*p >= '0' && *p <= '9' && num < 100000)
                    num = num * 10 + (*p++ - '0');
            } else {
                num = maxp + 1;
            }
            if (num > maxp)
                maxp = num;
            o += sprintf(o, "%c%d", kind == SQL_POSTGRES ? '$' : '?', num);
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    if (nparams)
        *nparams = maxp;
    return out;
}

/* ---- statements -------------------------------------------------------------------- */

int sql_prepare(sql_conn *c, const char *sql, sql_stmt **out, vaed_err *err)
{
    sql_stmt *s = xcalloc(1, sizeof *s);
    *out = NULL;
    s->c = c;
    s->cell_col = -1;
    if (c->kind == SQL_SQLITE) {
        int rc = sqlite3_prepare_v2(c->lite, sql, -1, &s->lite, NULL);
        c->ec = lite_class(rc);
        if (rc == SQLITE_OK && !s->lite) {   /* only blanks or comments */
            free(s);
            return vaed_err_set(err, VAED_EINVAL, "", "prepare: an empty statement");
        }
        if (rc != SQLITE_OK) {
            rc = fail(c, NULL, err, "prepare");
            free(s);
            return rc;
        }
    } else {
        /* the server parses the text on the first run: a bad statement fails there */
        s->text = sql_translate(SQL_POSTGRES, sql, &s->nparam);
        if (s->nparam > 0)
            s->p = xcalloc((size_t)s->nparam, sizeof *s->p);
    }
    *out = s;
    return 0;
}

static void pg_drop_result(sql_stmt *s)
{
    PQclear(s->res);
    s->res = NULL;
    s->ran = 0;
    s->row = -1;
    s->nrows = 0;
    free(s->cell);
    s->cell = NULL;
    s->cell_len = 0;
    s->cell_col = -1;
}

/* Forget s's server-side statement (when it has one on this connection). */
static void pg_deallocate(sql_stmt *s)
{
    if (s->prepared && s->pgen == s->c->gen && s->c->pg &&
        PQtransactionStatus(s->c->pg) != PQTRANS_INERROR) {
        char sql[64];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", s->pname);
        PQclear(PQexec(s->c->pg, sql));
    }
    s->prepared = 0;
}

void sql_finalize(sql_stmt *s)
{
    if (!s)
        return;
    if (s->lite)
        sqlite3_finalize(s->lite);
    pg_drop_result(s);
    pg_deallocate(s);
    free(s->poids);
    for (int i = 0; i < s->nparam; i++)
        free(s->p[i].val);
    free(s->p);
    free(s->text);
    free(s);
}

int sql_param_count(const sql_stmt *s)
{
    return s->lite ? sqlite3_bind_parameter_count(s->lite) : s->nparam;
}

/* PostgreSQL: parameter i set to a copy of n bytes of v (v NULL: SQL NULL) */
static int pg_set(sql_stmt *s, int i, const void *v, size_t n, int binary, unsigned oid)
{
    if (i < 1 || i > s->nparam)
        return VAED_EINVAL;
    if (n > INT32_MAX)
        return VAED_ETOOBIG;
    struct pgparam *p = &s->p[i - 1];
    char *copy = NULL;
    if (v) {
        if (!(copy = malloc(n + 1)))
            return VAED_ENOMEM;
        memcpy(copy, v, n);
        copy[n] = '\0';
    }
    free(p->val);
    p->val = copy;
    p->len = (int)n;
    p->binary = binary;
    p->oid = v ? oid : 0;
    return 0;
}

static int lite_bind_rc(int rc)
{
    return rc == SQLITE_OK ? 0 : rc == SQLITE_NOMEM ? VAED_ENOMEM :
           rc == SQLITE_TOOBIG ? VAED_ETOOBIG : VAED_EINVAL;
}

int sql_bind_int64(sql_stmt *s, int i, int64_t v)
{
    if (s->lite)
        return lite_bind_rc(sqlite3_bind_int64(s->lite, i, v));
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    return pg_set(s, i, b, (size_t)n, 0, OID_INT8);
}

int sql_bind_double(sql_stmt *s, int i, double v)
{
    if (s->lite)
        return lite_bind_rc(sqlite3_bind_double(s->lite, i, v));
    char b[40];
    int n;
    if (isnan(v))           /* SQLite's rule, on both: a NaN is stored as NULL */
        return pg_set(s, i, NULL, 0, 0, 0);
    if (isinf(v))
        n = snprintf(b, sizeof b, "%sInfinity", v < 0 ? "-" : "");
    else
        n = snprintf(b, sizeof b, "%.17g", v);
    return pg_set(s, i, b, (size_t)n, 0, OID_FLOAT8);
}

int sql_bind_text(sql_stmt *s, int i, const char *v)
{
    if (s->lite)
        return lite_bind_rc(v ? sqlite3_bind_text(s->lite, i, v, -1, SQLITE_TRANSIENT)
                              : sqlite3_bind_null(s->lite, i));
    return pg_set(s, i, v, v ? strlen(v) : 0, 0, 0);
}

int sql_bind_blob(sql_stmt *s, int i, const void *v, size_t n)
{
    if (s->lite) {
        if (!v)
            return lite_bind_rc(sqlite3_bind_null(s->lite, i));
        return lite_bind_rc(sqlite3_bind_blob64(s->lite, i, n ? v : "", n, SQLITE_TRANSIENT));
    }
    return pg_set(s, i, v ? (n ? v : "") : NULL, n, 1, OID_BYTEA);
}

int sql_bind_null(sql_stmt *s, int i)
{
    if (s->lite)
        return lite_bind_rc(sqlite3_bind_null(s->lite, i));
    return pg_set(s, i, NULL, 0, 0, 0);
}

void sql_clear_bindings(sql_stmt *s)
{
    if (s->lite) {
        sqlite3_clear_bindings(s->lite);
        return;
    }
    for (int i = 1; i <= s->nparam; i++)
        pg_set(s, i, NULL, 0, 0, 0);
}

static int pg_run(sql_stmt *s, vaed_err *err)
{
    sql_conn *c = s->c;
    int n = s->nparam;
    const char **vals = NULL;
    int *lens = NULL, *fmts = NULL;
    unsigned *oids = NULL;
    if (n > 0) {
        vals = xcalloc((size_t)n, sizeof *vals);
        lens = xcalloc((size_t)n, sizeof *lens);
        fmts = xcalloc((size_t)n, sizeof *fmts);
        oids = xcalloc((size_t)n, sizeof *oids);
        for (int i = 0; i < n; i++) {
            vals[i] = s->p[i].val;
            lens[i] = s->p[i].len;
            fmts[i] = s->p[i].binary;
            oids[i] = s->p[i].oid;
        }
    }
    PGresult *r = NULL;
    /* From its second run a statement is prepared on the server (parsed and planned
     * once), again after a reconnect or when a parameter's type changed (a value
     * bound where NULL was, a real where an integer was). */
    if (++s->runs >= 2 && !c->opts.no_server_prepare) {
        int same = s->prepared && s->pgen == c->gen;
        for (int i = 0; same && i < n; i++)
            same = !vals[i] || oids[i] == s->poids[i];
        if (!same) {
            pg_deallocate(s);
            snprintf(s->pname, sizeof s->pname, "vaed_%llu", (unsigned long long)++c->names);
            r = PQprepare(c->pg, s->pname, s->text, n, oids);
            if (PQresultStatus(r) == PGRES_COMMAND_OK) {
                PQclear(r);
                r = NULL;
                s->prepared = 1;
                s->pgen = c->gen;
                if (n > 0 && !s->poids)
                    s->poids = xcalloc((size_t)n, sizeof *s->poids);
                if (n > 0)
                    memcpy(s->poids, oids, (size_t)n * sizeof *oids);
            }
        }
        if (!r)
            r = PQexecPrepared(c->pg, s->pname, n, vals, lens, fmts, 0);
    } else {
        r = PQexecParams(c->pg, s->text, n, oids, vals, lens, fmts, 0);
    }
    free(vals);
    free(lens);
    free(fmts);
    free(oids);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        c->ec = pg_class(c, r);
        int rc = fail(c, r, err, "step");
        PQclear(r);
        return rc;
    }
    c->ec = SQL_EC_NONE;
    s->res = r;
    s->ran = 1;
    s->row = -1;
    s->nrows = st == PGRES_TUPLES_OK ? PQntuples(r) : 0;
    s->changes = strtoll(PQcmdTuples(r), NULL, 10);
    return 0;
}

int sql_step(sql_stmt *s, vaed_err *err)
{
    if (s->lite) {
        int rc = sqlite3_step(s->lite);
        s->c->ec = lite_class(rc);
        if (rc == SQLITE_ROW)
            return SQL_ROW;
        if (rc == SQLITE_DONE) {
            s->lite_changes = sqlite3_changes64(s->c->lite);
            return SQL_DONE;
        }
        return rc == SQLITE_NOMEM ? vaed_err_set(err, VAED_ENOMEM, "", "step: out of memory")
                                  : fail(s->c, NULL, err, "step");
    }
    if (!s->ran) {
        int rc = pg_run(s, err);
        if (rc < 0)
            return rc;
    }
    free(s->cell);
    s->cell = NULL;
    s->cell_col = -1;
    if (s->row < s->nrows)
        s->row++;
    return s->row < s->nrows ? SQL_ROW : SQL_DONE;
}

void sql_reset(sql_stmt *s)
{
    if (s->lite)
        sqlite3_reset(s->lite);
    else
        pg_drop_result(s);
}

int64_t sql_changes(const sql_stmt *s)
{
    return s->lite ? s->lite_changes : s->changes;
}

/* ---- columns ----------------------------------------------------------------------- */

static int pg_has(const sql_stmt *s, int i)
{
    return s->res && s->row >= 0 && s->row < s->nrows && i >= 0 && i < PQnfields(s->res) &&
           !PQgetisnull(s->res, s->row, i);
}

int sql_column_count(const sql_stmt *s)
{
    return s->lite ? sqlite3_column_count(s->lite) : s->res ? PQnfields(s->res) : 0;
}

int sql_column_type(sql_stmt *s, int i)
{
    if (s->lite) {
        switch (sqlite3_column_type(s->lite, i)) {
        case SQLITE_INTEGER: return SQL_INT;
        case SQLITE_FLOAT: return SQL_FLOAT;
        case SQLITE_TEXT: return SQL_TEXT;
        case SQLITE_BLOB: return SQL_BLOB;
        default: return SQL_NULL;
        }
    }
    if (!pg_has(s, i))
        return SQL_NULL;
    switch (PQftype(s->res, i)) {
    case OID_BOOL: case OID_INT2: case OID_INT4: case OID_INT8: case OID_OID: return SQL_INT;
    case OID_FLOAT4: case OID_FLOAT8: case OID_NUMERIC: return SQL_FLOAT;
    case OID_BYTEA: return SQL_BLOB;
    default: return SQL_TEXT;
    }
}

int64_t sql_column_int64(sql_stmt *s, int i)
{
    if (s->lite)
        return sqlite3_column_int64(s->lite, i);
    if (!pg_has(s, i))
        return 0;
    const char *v = PQgetvalue(s->res, s->row, i);
    switch (PQftype(s->res, i)) {
    case OID_BOOL: return v[0] == 't';
    case OID_FLOAT4: case OID_FLOAT8: case OID_NUMERIC: {
        double d = strtod(v, NULL);
        return isfinite(d) && fabs(d) < 9.2e18 ? (int64_t)d : 0;
    }
    default: return strtoll(v, NULL, 10);
    }
}

double sql_column_double(sql_stmt *s, int i)
{
    if (s->lite)
        return sqlite3_column_double(s->lite, i);
    if (!pg_has(s, i))
        return 0.0;
    const char *v = PQgetvalue(s->res, s->row, i);
    if (PQftype(s->res, i) == OID_BOOL)
        return v[0] == 't';
    return strtod(v, NULL);
}

static int hexval(int ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 :
           ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* The bytea column i of the current row, decoded once into s->cell. NULL when the
 * value is NULL or memory ran out (its length 0). */
static const unsigned char *pg_bytea(sql_stmt *s, int i)
{
    if (s->cell_col == i)
        return s->cell;
    free(s->cell);
    s->cell = NULL;
    s->cell_len = 0;
    s->cell_col = i;
    const char *v = PQgetvalue(s->res, s->row, i);
    size_t n = (size_t)PQgetlength(s->res, s->row, i);
    if (n >= 2 && v[0] == '\\' && v[1] == 'x') {       /* hex, the default bytea_output */
        size_t m = (n - 2) / 2;
        if (!(s->cell = malloc(m + 1)))
            return NULL;
        for (size_t k = 0; k < m; k++) {
            int hi = hexval(v[2 + 2 * k]), lo = hexval(v[3 + 2 * k]);
            s->cell[k] = (unsigned char)((hi < 0 ? 0 : hi) << 4 | (lo < 0 ? 0 : lo));
        }
        s->cell[m] = 0;
        s->cell_len = m;
        return s->cell;
    }
    size_t m = 0;                                     /* the old "escape" form */
    unsigned char *u = PQunescapeBytea((const unsigned char *)v, &m);
    if (!u || !(s->cell = malloc(m + 1))) {
        PQfreemem(u);
        return NULL;
    }
    memcpy(s->cell, u, m);
    s->cell[m] = 0;
    s->cell_len = m;
    PQfreemem(u);
    return s->cell;
}

const char *sql_column_text(sql_stmt *s, int i)
{
    if (s->lite)
        return (const char *)sqlite3_column_text(s->lite, i);
    if (!pg_has(s, i))
        return NULL;
    if (PQftype(s->res, i) == OID_BYTEA)
        return (const char *)pg_bytea(s, i);
    return PQgetvalue(s->res, s->row, i);
}

const void *sql_column_blob(sql_stmt *s, int i)
{
    if (s->lite)
        return sqlite3_column_blob(s->lite, i);
    return sql_column_text(s, i);
}

size_t sql_column_bytes(sql_stmt *s, int i)
{
    if (s->lite)
        return (size_t)sqlite3_column_bytes(s->lite, i);
    if (!pg_has(s, i))
        return 0;
    if (PQftype(s->res, i) == OID_BYTEA)
        return pg_bytea(s, i) ? s->cell_len : 0;
    return (size_t)PQgetlength(s->res, s->row, i);
}
