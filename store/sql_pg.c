/* sql_pg.c — the PostgreSQL half of the SQL driver (sql.h): connecting, running a
 * statement (sent as text on its first run, prepared on the server from its second),
 * reading its result's columns, and LISTEN/NOTIFY. sql.c dispatches here.
 *
 * Results come in text form and are converted on read by the column's type: integers
 * with strtoll, float8 with strtod (the server prints the shortest text that reads back
 * to the same bits: extra_float_digits is set to 3 at connect, which older servers too
 * read as "exact"), numeric as an integer when its text is integral (sum() of bigints)
 * and as a double otherwise, bytea from its hex form. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql_impl.h"

sql_errclass sqlpg_class(sql_conn *c, const PGresult *r)
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

/* ---- connecting -------------------------------------------------------------------- */

/* target, or the environment, names a service file entry. */
static int uses_service(const char *target)
{
    const char *env = getenv("PGSERVICE");
    if (env && *env)
        return 1;
    int found = 0;
    PQconninfoOption *opts = PQconninfoParse(target, NULL);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        found |= strcmp(o->keyword, "service") == 0 && o->val && *o->val;
    PQconninfoFree(opts);
    return found;
}

int sqlpg_connect(sql_conn *c, vaed_err *err)
{
    PGresult *r;
    char set[128];
    /* Our defaults first, the URL last: libpq keeps the last value of a repeated key
     * word, so the URL (or PGCONNECT_TIMEOUT, read when the key is absent) wins. A
     * bounded connect, and TCP keepalives so a dead server is noticed. A service file
     * (service= or PGSERVICE) fills only what is not given, so with one we add nothing. */
    const char *env_to = getenv("PGCONNECT_TIMEOUT");
    const char *keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "dbname", NULL};
    const char *vals[] = {env_to && *env_to ? env_to : "10", "1", "30", c->target, NULL};
    int first = uses_service(c->target) ? 3 : 0;   /* 3: only dbname, the URL */
    c->gen++;
    for (int i = 0; i < c->nstale; i++)     /* a new session has none of the old names */
        free(c->stale[i]);
    c->nstale = 0;
    c->pg = PQconnectdbParams(keys + first, vals + first, 1);
    if (!c->pg)
        return vaed_err_set(err, VAED_ENOMEM, "", "postgres: out of memory");
    if (PQstatus(c->pg) != CONNECTION_OK) {
        c->ec = SQL_EC_CONN;
        return sql_fail(c, NULL, err, "postgres: cannot connect");
    }
    /* exact float8 text both ways; quiet notices; the lock wait bound (when asked: else
     * the server's or the URL's options'); read only */
    snprintf(set, sizeof set, "SET extra_float_digits = 3; SET client_min_messages = warning");
    if (c->opts.busy_ms > 0)
        snprintf(set + strlen(set), sizeof set - strlen(set), "; SET lock_timeout = %d",
                 c->opts.busy_ms);
    r = PQexec(c->pg, set);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        int rc = sql_fail(c, r, err, "postgres: session settings");
        c->ec = sqlpg_class(c, r);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    if (c->opts.readonly) {
        r = PQexec(c->pg, "SET default_transaction_read_only = on");
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        int rc = ok ? 0 : sql_fail(c, r, err, "postgres: read only");
        PQclear(r);
        if (rc)
            return rc;
    }
    c->ec = SQL_EC_NONE;
    return 0;
}

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
    snprintf(sql, sizeof sql, "LISTEN \"%s\"", channel);   /* checked above, and quoted */
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

int sql_alive(sql_conn *c)
{
    if (c->kind != SQL_POSTGRES)
        return 1;
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK)
        return 0;
    struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};
    if (p.fd < 0)
        return 0;
    /* a server going down sends its FATAL message, then closes: read until the socket
     * has nothing more (the close shows as a failed read) */
    for (int k = 0; k < 8 && poll(&p, 1, 0) > 0; k++) {
        if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK) {
            c->ec = SQL_EC_CONN;
            return 0;
        }
        PQisBusy(c->pg);        /* parse what came: a notification, the FATAL */
    }
    return 1;
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
        return sql_fail(c, NULL, err, "notifications");
    }
    PGnotify *n = PQnotifies(c->pg);
    if (!n)
        return 0;
    *channel = xstrdup(n->relname);
    *payload = xstrdup(n->extra ? n->extra : "");
    PQfreemem(n);
    return 1;
}

/* ---- statements -------------------------------------------------------------------- */

/* Parameter i set to a copy of n bytes of v (v NULL: SQL NULL). */
int sqlpg_set(sql_stmt *s, int i, const void *v, size_t n, int binary, unsigned oid)
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

/* The decoded cells of the row just left. */
void sqlpg_new_row(sql_stmt *s)
{
    for (int i = 0; i < s->ncells; i++) {
        free(s->cells[i].p);
        s->cells[i] = (struct pgcell){0};
    }
}

void sqlpg_drop_result(sql_stmt *s)
{
    sqlpg_new_row(s);
    free(s->cells);
    s->cells = NULL;
    s->ncells = 0;
    PQclear(s->res);
    s->res = NULL;
    s->ran = 0;
    s->row = -1;
    s->nrows = 0;
}

/* DEALLOCATE the server-side statements a failed transaction kept us from dropping,
 * now that the connection takes commands: idle, or in a healthy transaction (a
 * DEALLOCATE there is not undone by a later ROLLBACK). */
static void drop_stale(sql_conn *c)
{
    PGTransactionStatusType t = c->pg ? PQtransactionStatus(c->pg) : PQTRANS_UNKNOWN;
    if (t != PQTRANS_IDLE && t != PQTRANS_INTRANS)
        return;
    for (int i = 0; i < c->nstale; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", c->stale[i]);
        PQclear(PQexec(c->pg, sql));
        free(c->stale[i]);
    }
    c->nstale = 0;
}

/* Forget s's server-side statement (when it has one on this connection): now, or
 * at the connection's next statement if a failed transaction refuses commands. */
void sqlpg_deallocate(sql_stmt *s)
{
    sql_conn *c = s->c;
    if (s->prepared && s->pgen == c->gen && c->pg) {
        if (c->nstale == c->capstale) {
            int cap = c->capstale ? 2 * c->capstale : 8;
            char **q = realloc(c->stale, (size_t)cap * sizeof *q);
            if (q) {
                c->stale = q;
                c->capstale = cap;
            }
        }
        if (c->nstale < c->capstale)    /* else out of memory: it lives till the session ends */
            c->stale[c->nstale++] = xstrdup(s->pname);
        drop_stale(c);
    }
    s->prepared = 0;
}

/* The server's "cached plan must not change result type": the tables under a prepared
 * statement changed. Told by the function that raised it (never translated), not by
 * its SQLSTATE alone (0A000 is any "feature not supported"). */
static int stale_plan(const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *fn = r ? PQresultErrorField(r, PG_DIAG_SOURCE_FUNCTION) : NULL;
    return st && strcmp(st, "0A000") == 0 && fn && strcmp(fn, "RevalidateCachedQuery") == 0;
}

/* Run s prepared on the server, preparing it first when it is not (or no longer) the
 * statement the server has under pname. */
static PGresult *run_prepared(sql_stmt *s, const char **vals, const int *lens,
                              const int *fmts, const unsigned *oids)
{
    sql_conn *c = s->c;
    int n = s->nparam;
    int same = s->prepared && s->pgen == c->gen;
    for (int i = 0; same && i < n; i++)
        same = !vals[i] || oids[i] == s->poids[i];
    if (!same) {
        sqlpg_deallocate(s);
        snprintf(s->pname, sizeof s->pname, "vaed_%llu", (unsigned long long)++c->names);
        PGresult *r = PQprepare(c->pg, s->pname, s->text, n, oids);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return r;
        PQclear(r);
        s->prepared = 1;
        s->pgen = c->gen;
        if (n > 0 && !s->poids)
            s->poids = xcalloc((size_t)n, sizeof *s->poids);
        if (n > 0)
            memcpy(s->poids, oids, (size_t)n * sizeof *oids);
    }
    return PQexecPrepared(c->pg, s->pname, n, vals, lens, fmts, 0);
}

int sqlpg_run(sql_stmt *s, vaed_err *err)
{
    sql_conn *c = s->c;
    int n = s->nparam;
    const char **vals = NULL;
    int *lens = NULL, *fmts = NULL;
    unsigned *oids = NULL;
    if (c->nstale)
        drop_stale(c);
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
    PGresult *r;
    /* From its second run a statement is prepared on the server (parsed and planned
     * once), again after a reconnect or when a parameter's type changed (a value
     * bound where NULL was, a real where an integer was). */
    if (++s->runs >= 2 && !c->opts.no_server_prepare) {
        r = run_prepared(s, vals, lens, fmts, oids);
        /* The tables changed under the plan (ALTER TABLE: "cached plan must not change
         * result type"): prepare it anew, at once outside a transaction (nothing was
         * done), at the next run inside one (the failure spoilt the transaction). */
        if (stale_plan(r) && s->prepared) {
            sqlpg_deallocate(s);
            if (PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
                PQclear(r);
                r = run_prepared(s, vals, lens, fmts, oids);
            }
        }
    } else {
        r = PQexecParams(c->pg, s->text, n, oids, vals, lens, fmts, 0);
    }
    free(vals);
    free(lens);
    free(fmts);
    free(oids);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        c->ec = sqlpg_class(c, r);
        int rc = sql_fail(c, r, err, "step");
        PQclear(r);
        return rc;
    }
    c->ec = SQL_EC_NONE;
    s->res = r;
    s->ran = 1;
    s->row = -1;
    s->nrows = st == PGRES_TUPLES_OK ? PQntuples(r) : 0;
    s->changes = strtoll(PQcmdTuples(r), NULL, 10);
    s->ncells = PQnfields(r);
    s->cells = s->ncells > 0 ? xcalloc((size_t)s->ncells, sizeof *s->cells) : NULL;
    return 0;
}

/* ---- columns ----------------------------------------------------------------------- */

int sqlpg_has(const sql_stmt *s, int i)
{
    return s->res && s->row >= 0 && s->row < s->nrows && i >= 0 && i < PQnfields(s->res) &&
           !PQgetisnull(s->res, s->row, i);
}

/* A numeric's text with no fraction, exponent or NaN, within int64: an integer. */
static int integral(const char *v)
{
    const char *d = *v == '-' ? v + 1 : v;
    if (!*d)
        return 0;
    for (; *d; d++)
        if (*d < '0' || *d > '9')
            return 0;
    errno = 0;
    (void)strtoll(v, NULL, 10);
    return errno != ERANGE;
}

int sqlpg_column_type(sql_stmt *s, int i)
{
    if (!sqlpg_has(s, i))
        return SQL_NULL;
    switch (PQftype(s->res, i)) {
    case OID_BOOL: case OID_INT2: case OID_INT4: case OID_INT8: case OID_OID: return SQL_INT;
    case OID_NUMERIC: return integral(PQgetvalue(s->res, s->row, i)) ? SQL_INT : SQL_FLOAT;
    case OID_FLOAT4: case OID_FLOAT8: return SQL_FLOAT;
    case OID_BYTEA: return SQL_BLOB;
    default: return SQL_TEXT;
    }
}

int64_t sqlpg_column_int64(sql_stmt *s, int i)
{
    if (!sqlpg_has(s, i))
        return 0;
    const char *v = PQgetvalue(s->res, s->row, i);
    switch (PQftype(s->res, i)) {
    case OID_BOOL: return v[0] == 't';
    case OID_NUMERIC:
        if (integral(v))
            return strtoll(v, NULL, 10);
        /* past int64 it is a float (typed SQL_FLOAT), never a saturated integer */
        /* fall through */
    case OID_FLOAT4: case OID_FLOAT8: {
        double d = strtod(v, NULL);
        return isfinite(d) && fabs(d) < 9.2e18 ? (int64_t)d : 0;
    }
    default: return strtoll(v, NULL, 10);
    }
}

double sqlpg_column_double(sql_stmt *s, int i)
{
    if (!sqlpg_has(s, i))
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

/* The bytea column i of the current row, decoded once a row into its own cell (so a
 * second column's read leaves the first's pointer valid). NULL when the value is NULL
 * or memory ran out; OUT *len its bytes. */
const unsigned char *sqlpg_bytea(sql_stmt *s, int i, size_t *len)
{
    *len = 0;
    if (!sqlpg_has(s, i) || i >= s->ncells)
        return NULL;
    struct pgcell *cell = &s->cells[i];
    if (!cell->done) {
        const char *v = PQgetvalue(s->res, s->row, i);
        size_t n = (size_t)PQgetlength(s->res, s->row, i);
        cell->done = 1;
        if (n >= 2 && v[0] == '\\' && v[1] == 'x') {       /* hex, the default bytea_output */
            size_t m = (n - 2) / 2;
            if (!(cell->p = malloc(m + 1)))
                return NULL;
            for (size_t k = 0; k < m; k++) {
                int hi = hexval(v[2 + 2 * k]), lo = hexval(v[3 + 2 * k]);
                cell->p[k] = (unsigned char)((hi < 0 ? 0 : hi) << 4 | (lo < 0 ? 0 : lo));
            }
            cell->p[m] = 0;
            cell->n = m;
        } else {                                          /* the old "escape" form */
            size_t m = 0;
            unsigned char *u = PQunescapeBytea((const unsigned char *)v, &m);
            if (u && (cell->p = malloc(m + 1))) {
                memcpy(cell->p, u, m);
                cell->p[m] = 0;
                cell->n = m;
            }
            PQfreemem(u);
        }
    }
    *len = cell->n;
    return cell->p;
}
