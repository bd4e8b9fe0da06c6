/* sql.c — the SQL driver of sql.h: its calls, on SQLite a thin pass-through to
 * sqlite3_* (bound values are copied: SQLITE_TRANSIENT), on PostgreSQL handed to
 * sql_pg.c. There a statement keeps its translated text and its bound parameters as
 * the text (or, for a blob, binary) values libpq sends; the first sql_step runs it and
 * keeps the whole result, later steps walk its rows. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql_impl.h"

int sql_is_postgres(const char *t)
{
    return t && (strncmp(t, "postgresql://", 13) == 0 || strncmp(t, "postgres://", 11) == 0);
}

const char *sql_display_name(const char *target, char *buf, size_t n)
{
    if (!sql_is_postgres(target)) {
        snprintf(buf, n, "%s", target ? target : "");
        return buf;
    }
    const char *auth = strstr(target, "://") + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    size_t ulen = at ? strcspn(auth, ":@") : 0;   /* the user, without ":password" */
    const char *host = at ? at + 1 : auth;
    size_t rest = strcspn(host, "?#");           /* host, port and database name */
    snprintf(buf, n, "%.*s%.*s%s%.*s", (int)(auth - target), target, (int)ulen, auth,
             at ? "@" : "", (int)rest, host);
    return buf;
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

int sql_fail(sql_conn *c, const PGresult *r, vaed_err *err, const char *what)
{
    dbmsg(c, r, c->msg, sizeof c->msg);
    return vaed_err_set(err, VAED_EDB, "", "%s: %s", what, c->msg);
}

const char *sql_errmsg(sql_conn *c)
{
    return c->kind == SQL_SQLITE && !c->msg[0] ? sqlite3_errmsg(c->lite) : c->msg;
}

struct sqlite3 *sql_sqlite(sql_conn *c)
{
    return c->kind == SQL_SQLITE ? c->lite : NULL;
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
        if ((rc = sqlpg_connect(c, err)) < 0)
            goto fail;
    } else {
        /* read only by query_only, on a read-write handle: a WAL database's reader
         * needs to write its -shm index (NOMUTEX: one thread at a time uses it) */
        int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE |
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
        if ((rc = sql_exec(c, "PRAGMA foreign_keys = ON", err)) < 0 ||
            (c->opts.readonly && (rc = sql_exec(c, "PRAGMA query_only = ON", err)) < 0))
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
    for (int i = 0; i < c->nstale; i++)
        free(c->stale[i]);
    free(c->stale);
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
    return sqlpg_connect(c, err);
}

int sql_exec(sql_conn *c, const char *sql, vaed_err *err)
{
    if (c->kind == SQL_SQLITE) {
        int rc = sqlite3_exec(c->lite, sql, NULL, NULL, NULL);
        c->ec = lite_class(rc), c->msg[0] = '\0';
        return rc == SQLITE_OK ? 0 : sql_fail(c, NULL, err, "exec");
    }
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        c->ec = sqlpg_class(c, r);
        rc = sql_fail(c, r, err, "exec");
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

/* ---- placeholders ------------------------------------------------------------------ */

/* A byte of an identifier: letters (UTF-8's included), digits, '_'. */
static int ident(unsigned char ch)
{
    return isalnum(ch) || ch == '_' || ch >= 0x80;
}

char *sql_translate(sql_kind kind, const char *sql, int *nparams)
{
    size_t n = strlen(sql);
    char *out = xmalloc(n * 10 + 16), *o = out;  /* a bare "?" may become "$1234567" */
    int maxp = 0;
    const char *p = sql;
    while (*p) {
        /* E'' and $$ are PostgreSQL's only, and not where they'd continue a word */
        int word = kind != SQL_POSTGRES || (p > sql && (ident((unsigned char)p[-1]) || p[-1] == '$'));
        size_t tag = 0;                         /* a dollar quote's "$tag$" */
        if (*p == '$' && !word) {
            while (ident((unsigned char)p[1 + tag]))
                tag++;
            tag = p[1 + tag] == '$' && !(tag > 0 && isdigit((unsigned char)p[1])) ? tag + 2 : 0;
        }
        if (*p == '\'' || *p == '"' || ((*p == 'E' || *p == 'e') && p[1] == '\'' && !word)) {
            /* a literal or quoted identifier ('' inside; in E'...' a backslash escapes) */
            int esc = *p == 'E' || *p == 'e';
            if (esc)
                *o++ = *p++;
            char q = *p;
            *o++ = *p++;
            while (*p) {
                if (esc && *p == '\\' && p[1]) { *o++ = *p++; *o++ = *p++; continue; }
                if (*p == q && p[1] == q) { *o++ = *p++; *o++ = *p++; continue; }
                if (*p == q) { *o++ = *p++; break; }
                *o++ = *p++;
            }
        } else if (tag) {                       /* $tag$ ... $tag$, copied whole */
            const char *e = p + tag;
            while (*e && strncmp(e, p, tag) != 0)
                e++;
            size_t k = *e ? (size_t)(e + tag - p) : strlen(p);
            memcpy(o, p, k);
            o += k, p += k;
        } else if (p[0] == '-' && p[1] == '-') { /* a comment to the line's end */
            while (*p && *p != '\n')
                *o++ = *p++;
        } else if (p[0] == '/' && p[1] == '*') { /* a comment; PostgreSQL's nest */
            int depth = 0;
            do {
                if (p[0] == '/' && p[1] == '*' && (depth == 0 || kind == SQL_POSTGRES)) {
                    depth++;
                    *o++ = *p++;
                } else if (p[0] == '*' && p[1] == '/') {
                    depth--;
                    *o++ = *p++;
                }
                *o++ = *p++;
            } while (*p && depth > 0);
        } else if (*p == '?') {
            int num;
            p++;
            if (*p >= '0' && *p <= '9') {
                num = 0;                        /* every digit read; capped at 10^6
                                                   (sql_prepare refuses past 65535) */
                while (*p >= '0' && *p <= '9') {
                    num = num * 10 + (*p - '0');
                    num = num > 1000000 ? 1000000 : num;
                    p++;
                }
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
    if (c->kind == SQL_SQLITE) {
        int rc = sqlite3_prepare_v2(c->lite, sql, -1, &s->lite, NULL);
        c->ec = lite_class(rc), c->msg[0] = '\0';
        if (rc == SQLITE_OK && !s->lite) {   /* only blanks or comments */
            free(s);
            return vaed_err_set(err, VAED_EINVAL, "", "prepare: an empty statement");
        }
        if (rc != SQLITE_OK) {
            rc = sql_fail(c, NULL, err, "prepare");
            free(s);
            return rc;
        }
    } else {
        /* the server parses the text on the first run: a bad statement fails there */
        s->text = sql_translate(SQL_POSTGRES, sql, &s->nparam);
        if (s->nparam > 65535) {             /* PostgreSQL's limit */
            free(s->text);
            free(s);
            return vaed_err_set(err, VAED_EINVAL, "", "prepare: a parameter number past 65535");
        }
        if (s->nparam > 0)
            s->p = xcalloc((size_t)s->nparam, sizeof *s->p);
    }
    *out = s;
    return 0;
}

void sql_finalize(sql_stmt *s)
{
    if (!s)
        return;
    if (s->lite)
        sqlite3_finalize(s->lite);
    sqlpg_drop_result(s);
    sqlpg_deallocate(s);
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

/* A failed bind is kept until the statement is reset or its bindings cleared, and the
 * next sql_step fails with it: a statement never runs with a parameter it was not given
 * (callers bind in a row without checking each call). */
static int latch(sql_stmt *s, int rc)
{
    if (rc < 0 && !s->bind_rc)
        s->bind_rc = rc;
    return rc;
}

static int lite_bind_rc(int rc)
{
    return rc == SQLITE_OK ? 0 : rc == SQLITE_NOMEM ? VAED_ENOMEM :
           rc == SQLITE_TOOBIG ? VAED_ETOOBIG : VAED_EINVAL;
}

static int bind_int64(sql_stmt *s, int i, int64_t v)
{
    if (s->lite)
        return lite_bind_rc(sqlite3_bind_int64(s->lite, i, v));
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    return sqlpg_set(s, i, b, (size_t)n, 0, OID_INT8);
}

static int bind_double(sql_stmt *s, int i, double v)
{
    if (s->lite)
        return lite_bind_rc(sqlite3_bind_double(s->lite, i, v));
    char b[40];
    int n;
    if (isnan(v))           /* SQLite's rule, on both: a NaN is stored as NULL */
        return sqlpg_set(s, i, NULL, 0, 0, 0);
    if (isinf(v))
        n = snprintf(b, sizeof b, "%sInfinity", v < 0 ? "-" : "");
    else
        n = snprintf(b, sizeof b, "%.17g", v);
    return sqlpg_set(s, i, b, (size_t)n, 0, OID_FLOAT8);
}

static int bind_text(sql_stmt *s, int i, const char *v)
{
    if (s->lite)
        return lite_bind_rc(v ? sqlite3_bind_text(s->lite, i, v, -1, SQLITE_TRANSIENT)
                              : sqlite3_bind_null(s->lite, i));
    return sqlpg_set(s, i, v, v ? strlen(v) : 0, 0, 0);
}

static int bind_blob(sql_stmt *s, int i, const void *v, size_t n)
{
    if (s->lite) {
        if (!v)
            return lite_bind_rc(sqlite3_bind_null(s->lite, i));
        return lite_bind_rc(sqlite3_bind_blob64(s->lite, i, n ? v : "", n, SQLITE_TRANSIENT));
    }
    return sqlpg_set(s, i, v ? (n ? v : "") : NULL, n, 1, OID_BYTEA);
}

static int bind_null(sql_stmt *s, int i)
{
    if (s->lite)
        return lite_bind_rc(sqlite3_bind_null(s->lite, i));
    return sqlpg_set(s, i, NULL, 0, 0, 0);
}

int sql_bind_int64(sql_stmt *s, int i, int64_t v)
{
    return latch(s, bind_int64(s, i, v));
}

int sql_bind_double(sql_stmt *s, int i, double v)
{
    return latch(s, bind_double(s, i, v));
}

int sql_bind_text(sql_stmt *s, int i, const char *v)
{
    return latch(s, bind_text(s, i, v));
}

int sql_bind_blob(sql_stmt *s, int i, const void *v, size_t n)
{
    return latch(s, bind_blob(s, i, v, n));
}

int sql_bind_null(sql_stmt *s, int i)
{
    return latch(s, bind_null(s, i));
}

void sql_clear_bindings(sql_stmt *s)
{
    s->bind_rc = 0;
    if (s->lite) {
        sqlite3_clear_bindings(s->lite);
        return;
    }
    for (int i = 1; i <= s->nparam; i++)
        sqlpg_set(s, i, NULL, 0, 0, 0);
}

int sql_step(sql_stmt *s, vaed_err *err)
{
    if (s->bind_rc) {
        s->c->ec = s->bind_rc == VAED_ENOMEM ? SQL_EC_RESOURCE : SQL_EC_OTHER;
        snprintf(s->c->msg, sizeof s->c->msg, "a parameter could not be bound (%s)",
                 s->bind_rc == VAED_ENOMEM ? "out of memory" : "out of range or too big");
        return vaed_err_set(err, s->bind_rc, "", "step: %s", s->c->msg);
    }
    if (s->lite) {
        int rc = sqlite3_step(s->lite);
        s->c->ec = lite_class(rc), s->c->msg[0] = '\0';
        if (rc == SQLITE_ROW)
            return SQL_ROW;
        if (rc == SQLITE_DONE) {
            s->lite_changes = sqlite3_changes64(s->c->lite);
            return SQL_DONE;
        }
        return rc == SQLITE_NOMEM ? vaed_err_set(err, VAED_ENOMEM, "", "step: out of memory")
                                  : sql_fail(s->c, NULL, err, "step");
    }
    if (!s->ran) {
        int rc = sqlpg_run(s, err);
        if (rc < 0)
            return rc;
    }
    sqlpg_new_row(s);
    if (s->row < s->nrows)
        s->row++;
    return s->row < s->nrows ? SQL_ROW : SQL_DONE;
}

void sql_reset(sql_stmt *s)
{
    s->bind_rc = 0;
    if (s->lite)
        sqlite3_reset(s->lite);
    else
        sqlpg_drop_result(s);
}

int64_t sql_changes(const sql_stmt *s)
{
    return s->lite ? s->lite_changes : s->changes;
}

/* ---- columns ----------------------------------------------------------------------- */

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
    return sqlpg_column_type(s, i);
}

int64_t sql_column_int64(sql_stmt *s, int i)
{
    if (s->lite)
        return sqlite3_column_int64(s->lite, i);
    return sqlpg_column_int64(s, i);
}

double sql_column_double(sql_stmt *s, int i)
{
    if (s->lite)
        return sqlite3_column_double(s->lite, i);
    return sqlpg_column_double(s, i);
}

const char *sql_column_text(sql_stmt *s, int i)
{
    if (s->lite)
        return (const char *)sqlite3_column_text(s->lite, i);
    if (!sqlpg_has(s, i))
        return NULL;
    size_t n;
    if (PQftype(s->res, i) == OID_BYTEA)
        return (const char *)sqlpg_bytea(s, i, &n);
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
    if (!sqlpg_has(s, i))
        return 0;
    size_t n;
    if (PQftype(s->res, i) == OID_BYTEA)
        return sqlpg_bytea(s, i, &n) ? n : 0;
    return (size_t)PQgetlength(s->res, s->row, i);
}
