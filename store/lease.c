/* lease.c — leases with fencing over the SQL driver (see lease.h for the rules).
 *
 * Every statement is written once with two holes, the database's clock and the row
 * lock, filled per dialect: the clock is the server's (clock_timestamp() on
 * PostgreSQL, julianday('now') on SQLite), the lock FOR UPDATE SKIP LOCKED (claim) or
 * FOR SHARE (fence) on PostgreSQL and nothing on SQLite, whose single writer already
 * serialises the statements that change a lease. */
#include "store/lease.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NOW_LITE "((julianday('now') - 2440587.5) * 86400.0)"
#define NOW_PG "extract(epoch FROM clock_timestamp())::float8"

#define SQL_CLAIM(NOW, LOCK)                                                             \
    "UPDATE leases SET node = ?1, gen = gen + 1, expires = " NOW " + ?2 "               \
    "WHERE job = (SELECT job FROM leases WHERE job > 0 AND done = 0 AND "                            \
    "(node IS NULL OR expires <= " NOW ") ORDER BY job LIMIT 1" LOCK ") "               \
    "RETURNING job, gen, expires"
#define SQL_RENEW(NOW)                                                                   \
    "UPDATE leases SET expires = " NOW " + ?4 WHERE job = ?1 AND gen = ?2 AND "         \
    "node = ?3 AND expires > " NOW " RETURNING expires"
#define SQL_TAKE(NOW)                                                                    \
    "INSERT INTO leases(job, node, gen, expires, done) VALUES (?1, ?2, 1, " NOW " + ?3, 0) " \
    "ON CONFLICT (job) DO UPDATE SET node = excluded.node, gen = leases.gen + 1, "       \
    "expires = excluded.expires WHERE leases.done = 0 AND (leases.node IS NULL OR "      \
    "leases.node = excluded.node OR leases.expires <= " NOW ") RETURNING gen, expires"
#define SQL_GET(NOW)                                                                     \
    "SELECT node, gen, expires, done, CASE WHEN node IS NOT NULL AND expires > " NOW    \
    " THEN 1 ELSE 0 END FROM leases WHERE job = ?1"
#define SQL_FENCE(NOW, LOCK)                                                             \
    "SELECT 1 FROM leases WHERE job = ?1 AND gen = ?2 AND node = ?3 AND "               \
    "expires > " NOW LOCK

#define SQL_BEAT(NOW)                                                                    \
    "INSERT INTO nodes(name, started, seen, kernels, lease_ttl) VALUES (?1, " NOW ", " NOW \
    ", ?2, ?3) ON CONFLICT (name) DO UPDATE SET seen = excluded.seen, kernels = "        \
    "excluded.kernels, lease_ttl = excluded.lease_ttl, started = CASE WHEN ?4 = 1 THEN " \
    "excluded.started ELSE nodes.started END"

/* A node's start forgets the nodes not seen for LEASE_NODE_FORGET_S that hold no lease
 * (a node named HOST-PID by default leaves a row at every restart). */
#define SQL_FORGET(NOW)                                                                  \
    "DELETE FROM nodes WHERE seen < " NOW " - ?1 AND name <> ?2 AND NOT EXISTS (SELECT " \
    "1 FROM leases l WHERE l.node = nodes.name AND l.done = 0)"

static const struct dialect {
    const char *schema, *claim, *renew, *fence, *take, *get, *nodes, *beat, *now, *forget;
} D_LITE = {
    "CREATE TABLE IF NOT EXISTS leases(job INTEGER PRIMARY KEY, node TEXT, "
    "gen INTEGER NOT NULL DEFAULT 0, expires REAL, done INTEGER NOT NULL DEFAULT 0)",
    SQL_CLAIM(NOW_LITE, ""), SQL_RENEW(NOW_LITE), SQL_FENCE(NOW_LITE, ""),
    SQL_TAKE(NOW_LITE), SQL_GET(NOW_LITE),
    "CREATE TABLE IF NOT EXISTS nodes(name TEXT PRIMARY KEY, started REAL, seen REAL, "
    "kernels TEXT, lease_ttl REAL)", SQL_BEAT(NOW_LITE), NOW_LITE, SQL_FORGET(NOW_LITE),
}, D_PG = {
    "CREATE TABLE IF NOT EXISTS leases(job bigint PRIMARY KEY, node text, "
    "gen bigint NOT NULL DEFAULT 0, expires double precision, done integer NOT NULL DEFAULT 0)",
    SQL_CLAIM(NOW_PG, " FOR UPDATE SKIP LOCKED"), SQL_RENEW(NOW_PG),
    SQL_FENCE(NOW_PG, " FOR SHARE"), SQL_TAKE(NOW_PG), SQL_GET(NOW_PG),
    "CREATE TABLE IF NOT EXISTS nodes(name text PRIMARY KEY, started double precision, "
    "seen double precision, kernels text, lease_ttl double precision)", SQL_BEAT(NOW_PG),
    NOW_PG, SQL_FORGET(NOW_PG),
};

static const char SQL_OFFER[] = "INSERT INTO leases(job) VALUES (?1) ON CONFLICT (job) DO NOTHING";
static const char SQL_RELEASE[] =
    "UPDATE leases SET node = NULL, expires = NULL, done = ?4 WHERE job = ?1 AND gen = ?2 "
    "AND node = ?3";

static const struct dialect *dialect(sql_conn *c)
{
    return sql_kind_of(c) == SQL_POSTGRES ? &D_PG : &D_LITE;
}

int lease_schema(sql_conn *c, vaed_err *err)
{
    int rc = sql_exec(c, dialect(c)->schema, err);
    return rc ? rc : sql_exec(c, dialect(c)->nodes, err);
}

const char *lease_now_sql(sql_kind k)
{
    return k == SQL_POSTGRES ? D_PG.now : D_LITE.now;
}


/* Prepare sql and bind the lease's (job, gen, node) as ?1..?3 when l is given. */
static int prep(sql_conn *c, const char *sql, const lease *l, sql_stmt **s, vaed_err *err)
{
    int rc = sql_prepare(c, sql, s, err);
    if (rc == 0 && l &&
        (sql_bind_int64(*s, 1, l->job) || sql_bind_int64(*s, 2, l->gen) || sql_bind_text(*s, 3, l->node))) {
        sql_finalize(*s);
        *s = NULL;
        return vaed_err_set(err, VAED_ENOMEM, "", "lease: binding");
    }
    return rc;
}

int lease_offer(sql_conn *c, int64_t job, vaed_err *err)
{
    sql_stmt *s = NULL;
    int rc = prep(c, SQL_OFFER, NULL, &s, err);
    if (rc == 0) {
        sql_bind_int64(s, 1, job);
        rc = sql_step(s, err);
        rc = rc < 0 ? rc : 0;
    }
    sql_finalize(s);
    return rc;
}

/* A claim's node name (1 to 63 bytes) and ttl (seconds above 0): 0 or VAED_EINVAL. */
static int claim_args(const char *node, double ttl, vaed_err *err)
{
    if (!node || !*node || strlen(node) >= sizeof((lease *)0)->node)
        return vaed_err_set(err, VAED_EINVAL, "node", "node: a name of 1 to %zu bytes",
                            sizeof((lease *)0)->node - 1);
    if (!isfinite(ttl) || ttl <= 0)
        return vaed_err_set(err, VAED_EINVAL, "ttl", "ttl: a number of seconds above 0");
    return 0;
}

int lease_claim(sql_conn *c, const char *node, double ttl, lease *out, vaed_err *err)
{
    sql_stmt *s = NULL;
    int rc = claim_args(node, ttl, err);
    if (rc == 0)
        rc = prep(c, dialect(c)->claim, NULL, &s, err);
    if (rc < 0)
        return rc;
    if (sql_bind_text(s, 1, node) || sql_bind_double(s, 2, ttl)) {
        sql_finalize(s);
        return vaed_err_set(err, VAED_ENOMEM, "", "lease: binding");
    }
    rc = sql_step(s, err);
    if (rc == SQL_ROW) {
        memset(out, 0, sizeof *out);
        out->job = sql_column_int64(s, 0);
        out->gen = sql_column_int64(s, 1);
        out->expires = sql_column_double(s, 2);
        snprintf(out->node, sizeof out->node, "%s", node);
        rc = 1;
    }
    sql_finalize(s);
    return rc;
}

int lease_take(sql_conn *c, int64_t job, const char *node, double ttl, lease *out,
               vaed_err *err)
{
    sql_stmt *s = NULL;
    int rc = claim_args(node, ttl, err);
    if (rc == 0)
        rc = prep(c, dialect(c)->take, NULL, &s, err);
    if (rc < 0)
        return rc;
    if (sql_bind_int64(s, 1, job) || sql_bind_text(s, 2, node) || sql_bind_double(s, 3, ttl)) {
        sql_finalize(s);
        return vaed_err_set(err, VAED_ENOMEM, "", "lease: binding");
    }
    rc = sql_step(s, err);
    if (rc == SQL_ROW) {
        memset(out, 0, sizeof *out);
        out->job = job;
        out->gen = sql_column_int64(s, 0);
        out->expires = sql_column_double(s, 1);
        snprintf(out->node, sizeof out->node, "%s", node);
        rc = 1;
    } else if (rc == SQL_DONE) {
        rc = 0;
    }
    sql_finalize(s);
    return rc;
}

int lease_get(sql_conn *c, int64_t job, lease *out, int *held, int *done, vaed_err *err)
{
    sql_stmt *s = NULL;
    int rc = prep(c, dialect(c)->get, NULL, &s, err);
    if (rc < 0)
        return rc;
    sql_bind_int64(s, 1, job);
    rc = sql_step(s, err);
    memset(out, 0, sizeof *out);
    out->job = job;
    *held = *done = 0;
    if (rc == SQL_ROW) {
        const char *n = sql_column_text(s, 0);
        snprintf(out->node, sizeof out->node, "%s", n ? n : "");
        out->gen = sql_column_int64(s, 1);
        out->expires = sql_column_double(s, 2);
        *done = (int)sql_column_int64(s, 3);
        *held = (int)sql_column_int64(s, 4);
        rc = 1;
    } else if (rc == SQL_DONE) {
        rc = 0;
    }
    sql_finalize(s);
    return rc;
}

int lease_renew(sql_conn *c, lease *l, double ttl, vaed_err *err)
{
    sql_stmt *s = NULL;
    if (!isfinite(ttl) || ttl <= 0)
        return vaed_err_set(err, VAED_EINVAL, "ttl", "ttl: a number of seconds above 0");
    int rc = prep(c, dialect(c)->renew, l, &s, err);
    if (rc < 0)
        return rc;
    sql_bind_double(s, 4, ttl);
    rc = sql_step(s, err);
    if (rc == SQL_ROW) {
        l->expires = sql_column_double(s, 0);
        rc = 0;
    } else if (rc == SQL_DONE) {
        rc = vaed_err_set(err, VAED_ESTATE, "", "job %lld: lease gen %lld of %s is lost",
                          (long long)l->job, (long long)l->gen, l->node);
    }
    sql_finalize(s);
    return rc;
}

int lease_fence(sql_conn *c, const lease *l, vaed_err *err)
{
    sql_stmt *s = NULL;
    int rc = prep(c, dialect(c)->fence, l, &s, err);
    if (rc < 0)
        return rc;
    rc = sql_step(s, err);
    if (rc == SQL_ROW)
        rc = 0;
    else if (rc == SQL_DONE)
        rc = vaed_err_set(err, VAED_ESTATE, "", "job %lld: fenced: lease gen %lld of %s no longer "
                          "holds it", (long long)l->job, (long long)l->gen, l->node);
    sql_finalize(s);
    return rc;
}

int lease_release(sql_conn *c, const lease *l, int done, vaed_err *err)
{
    sql_stmt *s = NULL;
    int rc = prep(c, SQL_RELEASE, l, &s, err);
    if (rc < 0)
        return rc;
    sql_bind_int64(s, 4, done ? 1 : 0);
    rc = sql_step(s, err);
    if (rc == SQL_DONE && sql_changes(s) == 0)
        rc = vaed_err_set(err, VAED_ESTATE, "", "job %lld: release: lease gen %lld of %s no longer "
                          "holds it", (long long)l->job, (long long)l->gen, l->node);
    else if (rc == SQL_DONE)
        rc = 0;
    sql_finalize(s);
    return rc;
}

int lease_beat(sql_conn *c, const char *node, const char *kernels, double ttl, int first,
               vaed_err *err)
{
    sql_stmt *s = NULL;
    int rc = prep(c, dialect(c)->beat, NULL, &s, err);
    if (rc < 0)
        return rc;
    if (sql_bind_text(s, 1, node) || sql_bind_text(s, 2, kernels ? kernels : "") ||
        sql_bind_double(s, 3, ttl) || sql_bind_int64(s, 4, first ? 1 : 0)) {
        sql_finalize(s);
        return vaed_err_set(err, VAED_ENOMEM, "", "lease: binding");
    }
    rc = sql_step(s, err);
    sql_finalize(s);
    if (rc >= 0 && first && (rc = prep(c, dialect(c)->forget, NULL, &s, err)) >= 0) {
        if (sql_bind_double(s, 1, LEASE_NODE_FORGET_S) || sql_bind_text(s, 2, node))
            rc = vaed_err_set(err, VAED_ENOMEM, "", "lease: binding");
        else
            rc = sql_step(s, err);
        sql_finalize(s);
    }
    return rc < 0 ? rc : 0;
}
