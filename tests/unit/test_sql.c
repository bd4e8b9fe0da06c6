/* test_sql.c — the SQL driver (store/sql.h) on SQLite, and on PostgreSQL when
 * VAED_TEST_PG names a server (tests/e2e/store_pg.sh starts a throw-away one and runs
 * this program against it; CI runs that script, so the PostgreSQL half is never
 * skipped there).
 *
 * The oracle is what the test put in: every value read back is compared bit for bit
 * with the value bound (doubles by their bits, blobs byte by byte), the row counts
 * with the rows the test changed. The same checks run on both databases: that is the
 * "same semantics" the store above the driver relies on. */
#include <float.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/sql.h"
#include "tests/unit/t.h"
#include "tests/unit/test_sql_util.h"

static const char *kname(sql_conn *c)
{
    return sql_kind_of(c) == SQL_POSTGRES ? "postgres" : "sqlite";
}

/* ---- placeholder translation (a table: input, PostgreSQL text, parameters) ---------- */
static void test_translate(void)
{
    static const struct { const char *in, *pg; int n; } tab[] = {
        {"SELECT ?1, ?2, ?1", "SELECT $1, $2, $1", 2},
        {"? ?", "$1 $2", 2},
        {"?3 ?", "$3 $4", 4},
        {"VALUES (?, ?2, ?)", "VALUES ($1, $2, $3)", 3},
        {"SELECT 'a?b', ?1", "SELECT 'a?b', $1", 1},
        {"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1},
        {"SELECT \"odd?name\" FROM t WHERE x = ?1", "SELECT \"odd?name\" FROM t WHERE x = $1", 1},
        {"SELECT 1 -- what?\n, ?", "SELECT 1 -- what?\n, $1", 1},
        {"/* ? */ SELECT ?12", "/* ? */ SELECT $12", 12},
        {"SELECT json_extract(r, '$.bound')", "SELECT json_extract(r, '$.bound')", 0},
        {"SELECT 'unterminated ?", "SELECT 'unterminated ?", 0},
        {"SELECT E'it\\'s ?', ?", "SELECT E'it\\'s ?', $1", 1},
        {"SELECT e'\\\\', ?", "SELECT e'\\\\', $1", 1},
        {"SELECT name'?', ?", "SELECT name'?', $1", 1},
        {"DO $$ SELECT '?' $$; SELECT ?", "DO $$ SELECT '?' $$; SELECT $1", 1},
        {"SELECT $f$ ? $x$ ? $f$, ?2", "SELECT $f$ ? $x$ ? $f$, $2", 2},
        {"SELECT ?1 || $1$", "SELECT $1 || $1$", 1},
        {"/* a /* b */ ? */ SELECT ?", "/* a /* b */ ? */ SELECT $1", 1},
        {"SELECT $\xc3\xa9$ ? $\xc3\xa9$, ?", "SELECT $\xc3\xa9$ ? $\xc3\xa9$, $1", 1},
        {"SELECT ?1234567", "SELECT $1000000", 1000000},
        {"", "", 0},
    };
    for (size_t k = 0; k < sizeof tab / sizeof tab[0]; k++) {
        int n = -1;
        char *pg = sql_translate(SQL_POSTGRES, tab[k].in, &n);
        CHECK(strcmp(pg, tab[k].pg) == 0 && n == tab[k].n, "translate [%s]: [%s] %d, want [%s] %d",
              tab[k].in, pg, n, tab[k].pg, tab[k].n);
        free(pg);
    }
    int n = 0;
    char *lite = sql_translate(SQL_SQLITE, "SELECT ?, '?', ?", &n);
    CHECK(strcmp(lite, "SELECT ?1, '?', ?2") == 0 && n == 2, "sqlite form: [%s] %d", lite, n);
    free(lite);
    CHECK(sql_is_postgres("postgresql://u@h:1/db") && sql_is_postgres("postgres://h/db") &&
          !sql_is_postgres("vaed.db") && !sql_is_postgres("postgresql:/x") && !sql_is_postgres(NULL),
          "sql_is_postgres");
}

static int exec_ok(sql_conn *c, const char *sql)
{
    vaed_err e = {0};
    int rc = sql_exec(c, sql, &e);
    CHECK(rc == 0, "%s: exec [%s]: %s", kname(c), sql, e.msg);
    return rc;
}


static uint64_t bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* ---- values: every kind, round trip ------------------------------------------------ */
#define NROWS 600

struct row {
    int64_t i;
    double r;
    char s[64];
    unsigned char b[300];
    size_t blen;
    int null_s, null_b;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static void make_rows(struct row *rows)
{
    static const double special[] = {
        0.0, 1.0, -1.0, 1.0 / 3.0, 0.1, DBL_MAX, -DBL_MAX, DBL_MIN, DBL_MIN / 3.0 /* subnormal */,
        4.9e-324, 1e300, -2.5e-310, INFINITY, -INFINITY, 123456789.123456789, 9007199254740993.0,
    };
    static const int64_t ispecial[] = {0, 1, -1, INT64_MAX, INT64_MIN, 4294967296LL, -9007199254740993LL};
    static const char *texts[] = {"", "plain", "it's \"quoted\"", "back\\slash \\x41", "what?",
                                  "ünïcödé ✓ 日本", "$1 ?1", "line\nbreak\ttab"};
    for (int k = 0; k < NROWS; k++) {
        struct row *w = &rows[k];
        memset(w, 0, sizeof *w);
        w->i = k < 7 ? ispecial[k] : (int64_t)next();
        if (k < (int)(sizeof special / sizeof special[0])) {
            w->r = special[k];
        } else {
            uint64_t u;
            do { u = next(); memcpy(&w->r, &u, sizeof u); } while (!isfinite(w->r) || w->r == 0.0);
        }
        snprintf(w->s, sizeof w->s, "%s#%d", texts[k % 8], k);
        w->blen = k == 3 ? 0 : (size_t)(next() % sizeof w->b);
        for (size_t j = 0; j < w->blen; j++)
            w->b[j] = (unsigned char)(k == 5 ? j : next());   /* row 5: every byte value in order */
        if (k == 5)
            w->blen = 256;
        w->null_s = k % 97 == 11;
        w->null_b = k % 89 == 13;
    }
}

static void test_values(sql_conn *c)
{
    static struct row rows[NROWS];
    vaed_err e = {0};
    sql_stmt *ins = NULL, *sel = NULL;
    make_rows(rows);
    exec_ok(c, "DROP TABLE IF EXISTS v");
    exec_ok(c, sql_kind_of(c) == SQL_POSTGRES
               ? "CREATE TABLE v(id bigserial PRIMARY KEY, i bigint, r double precision, s text, b bytea)"
               : "CREATE TABLE v(id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB)");
    CHECK(sql_prepare(c, "INSERT INTO v(i, r, s, b) VALUES (?1, ?2, ?3, ?4) RETURNING id", &ins, &e) == 0,
          "%s: prepare insert: %s", kname(c), e.msg);
    if (!ins)
        return;
    CHECK(sql_param_count(ins) == 4, "%s: 4 parameters, got %d", kname(c), sql_param_count(ins));
    CHECK(sql_bind_int64(ins, 5, 1) == VAED_EINVAL && sql_bind_int64(ins, 0, 1) == VAED_EINVAL,
          "%s: binding outside 1..4 is refused", kname(c));
    /* a failed bind makes the next step fail, so nothing runs with a parameter it was
     * not given (here ?1..?4 were never bound: it would insert a row of NULLs) */
    CHECK(sql_step(ins, &e) == VAED_EINVAL && strstr(e.msg, "bound") && sql_errclass_of(c) == SQL_EC_OTHER,
          "%s: the step after a failed bind fails [%s]", kname(c), e.msg);
    sql_reset(ins);
    exec_ok(c, "BEGIN");
    int64_t last = 0;
    int bad_ids = 0;
    for (int k = 0; k < NROWS; k++) {
        struct row *w = &rows[k];
        int rc = sql_bind_int64(ins, 1, w->i) | sql_bind_double(ins, 2, w->r) |
                 sql_bind_text(ins, 3, w->null_s ? NULL : w->s) |
                 sql_bind_blob(ins, 4, w->null_b ? NULL : w->b, w->blen);
        CHECK(rc == 0, "%s: bind row %d", kname(c), k);
        if (sql_step(ins, &e) != SQL_ROW) {
            CHECK(0, "%s: insert row %d: %s", kname(c), k, e.msg);
            break;
        }
        int64_t id = sql_column_int64(ins, 0);
        bad_ids += id <= last;
        last = id;
        CHECK(sql_step(ins, &e) == SQL_DONE && sql_changes(ins) == 1, "%s: row %d: one row inserted (%lld)",
              kname(c), k, (long long)sql_changes(ins));
        sql_reset(ins);
    }
    CHECK(bad_ids == 0, "%s: RETURNING id increases (%d not)", kname(c), bad_ids);
    exec_ok(c, "COMMIT");
    if (sql_kind_of(c) == SQL_POSTGRES)   /* run 600 times: prepared on the server, once */
        CHECK(t_sql_int(c, "SELECT count(*) FROM pg_prepared_statements") >= 1,
              "postgres: a statement run again is prepared on the server");
    sql_finalize(ins);
    if (sql_kind_of(c) == SQL_POSTGRES)
        CHECK(t_sql_int(c, "SELECT count(*) FROM pg_prepared_statements") == 0,
              "postgres: finalize forgets it on the server");

    CHECK(sql_prepare(c, "SELECT i, r, s, b, id FROM v ORDER BY id", &sel, &e) == 0, "%s: %s", kname(c), e.msg);
    int k = 0, ibad = 0, rbad = 0, sbad = 0, bbad = 0, tbad = 0;
    while (sel && sql_step(sel, &e) == SQL_ROW && k < NROWS) {
        struct row *w = &rows[k];
        ibad += sql_column_int64(sel, 0) != w->i;
        double r = sql_column_double(sel, 1);
        if (bits(r) != bits(w->r) && rbad++ < 3)
            fprintf(stderr, "%s: row %d: real %a read back as %a\n", kname(c), k, w->r, r);
        const char *s = sql_column_text(sel, 2);
        if (w->null_s)
            sbad += s != NULL || sql_column_type(sel, 2) != SQL_NULL;
        else
            sbad += !s || strcmp(s, w->s) != 0 || sql_column_bytes(sel, 2) != strlen(w->s) ||
                    sql_column_type(sel, 2) != SQL_TEXT;
        const unsigned char *b = sql_column_blob(sel, 3);
        size_t bl = sql_column_bytes(sel, 3);
        if (w->null_b)
            bbad += sql_column_type(sel, 3) != SQL_NULL || bl != 0;
        else
            bbad += bl != w->blen || (bl && memcmp(b, w->b, bl) != 0) ||
                    (sql_column_type(sel, 3) != SQL_BLOB && bl > 0);
        tbad += sql_column_type(sel, 0) != SQL_INT || sql_column_type(sel, 1) != SQL_FLOAT;
        k++;
    }
    CHECK(k == NROWS, "%s: %d rows read back of %d: %s", kname(c), k, NROWS, e.msg);
    CHECK(ibad == 0, "%s: %d integers differ", kname(c), ibad);
    CHECK(rbad == 0, "%s: %d reals differ in their bits", kname(c), rbad);
    CHECK(sbad == 0, "%s: %d texts differ", kname(c), sbad);
    CHECK(bbad == 0, "%s: %d blobs differ", kname(c), bbad);
    CHECK(tbad == 0, "%s: %d column types wrong", kname(c), tbad);
    CHECK(sel && sql_column_count(sel) == 5, "%s: 5 columns", kname(c));
    sql_finalize(sel);

    /* NaN is stored as NULL on both (SQLite's own rule, kept on PostgreSQL), and a
     * large blob (a checkpoint's size) comes back whole */
    size_t big = (size_t)4 << 20;
    unsigned char *blob = malloc(big);
    for (size_t j = 0; j < big; j++)
        blob[j] = (unsigned char)(next() >> 24);
    sql_stmt *s = NULL;
    CHECK(sql_prepare(c, "INSERT INTO v(i, r, b) VALUES (-7, ?, ?) RETURNING id, r", &s, &e) == 0,
          "%s: %s", kname(c), e.msg);
    if (s) {
        sql_bind_double(s, 1, NAN);
        sql_bind_blob(s, 2, blob, big);
        CHECK(sql_step(s, &e) == SQL_ROW && sql_column_type(s, 1) == SQL_NULL,
              "%s: NaN reads back as NULL (type %d) %s", kname(c), sql_column_type(s, 1), e.msg);
        sql_finalize(s);
    }
    CHECK(sql_prepare(c, "SELECT b, length(b) FROM v WHERE i = ?1", &s, &e) == 0, "%s", e.msg);
    if (s) {
        sql_bind_int64(s, 1, -7);
        int ok = sql_step(s, &e) == SQL_ROW && sql_column_bytes(s, 0) == big &&
                 memcmp(sql_column_blob(s, 0), blob, big) == 0 && sql_column_int64(s, 1) == (int64_t)big;
        CHECK(ok, "%s: a 4 MiB blob round trip (%zu bytes) %s", kname(c), sql_column_bytes(s, 0), e.msg);
        sql_finalize(s);
    }
    free(blob);
}

/* ---- changes, transactions, errors --------------------------------------------------- */
static void test_changes_and_errors(sql_conn *c)
{
    vaed_err e = {0};
    sql_stmt *s = NULL;
    int64_t n0 = t_sql_int(c, "SELECT count(*) FROM v");
    CHECK(sql_prepare(c, "UPDATE v SET s = 'updated' WHERE id <= ?1", &s, &e) == 0, "%s", e.msg);
    if (s) {
        sql_bind_int64(s, 1, 10);
        CHECK(sql_step(s, &e) == SQL_DONE && sql_changes(s) == 10, "%s: 10 rows updated (%lld)", kname(c),
              (long long)sql_changes(s));
        sql_reset(s);
        sql_bind_int64(s, 1, -5);
        CHECK(sql_step(s, &e) == SQL_DONE && sql_changes(s) == 0, "%s: none updated (%lld)", kname(c),
              (long long)sql_changes(s));
        sql_finalize(s);
    }
    CHECK(!sql_in_transaction(c), "%s: autocommit at first", kname(c));
    CHECK(sql_begin(c, 1, &e) == 0 && sql_in_transaction(c), "%s: begin %s", kname(c), e.msg);
    exec_ok(c, "INSERT INTO v(i) VALUES (1)");
    CHECK(sql_rollback(c, &e) == 0 && !sql_in_transaction(c), "%s: rollback %s", kname(c), e.msg);
    CHECK(t_sql_int(c, "SELECT count(*) FROM v") == n0, "%s: a rolled back insert is gone", kname(c));
    sql_begin(c, 1, &e);
    exec_ok(c, "INSERT INTO v(i) VALUES (1)");
    CHECK(sql_commit(c, &e) == 0, "%s: commit %s", kname(c), e.msg);
    CHECK(t_sql_int(c, "SELECT count(*) FROM v") == n0 + 1, "%s: a committed insert stays", kname(c));

    /* a bad statement: VAED_EDB with the database's message, class OTHER */
    int rc = sql_prepare(c, "SELEC 1", &s, &e);
    if (rc == 0) {       /* PostgreSQL parses on the first run */
        rc = sql_step(s, &e);
        sql_finalize(s);
    }
    CHECK(rc == VAED_EDB && strstr(e.msg, "syntax") && sql_errclass_of(c) == SQL_EC_OTHER &&
          !sql_transient(SQL_EC_OTHER) && !sql_transient(SQL_EC_CONSTRAINT),
          "%s: syntax error: rc %d class %d [%s]", kname(c), rc, sql_errclass_of(c), e.msg);
    /* a failure inside a transaction: still in it (PostgreSQL refuses more until the
     * rollback), a savepoint rolled back to makes it usable again on both */
    sql_begin(c, 1, &e);
    exec_ok(c, "SAVEPOINT op");
    rc = sql_exec(c, "INSERT INTO nosuchtable VALUES (1)", &e);
    CHECK(rc == VAED_EDB && sql_in_transaction(c), "%s: a failed statement leaves the transaction open", kname(c));
    exec_ok(c, "ROLLBACK TO SAVEPOINT op");
    exec_ok(c, "INSERT INTO v(i) VALUES (-99)");
    exec_ok(c, "RELEASE SAVEPOINT op");
    CHECK(sql_commit(c, &e) == 0 && t_sql_int(c, "SELECT count(*) FROM v WHERE i = -99") == 1,
          "%s: after the savepoint's rollback the transaction commits its other rows: %s", kname(c), e.msg);
    exec_ok(c, "DELETE FROM v WHERE i = -99");
    if (sql_kind_of(c) == SQL_POSTGRES) {   /* no savepoint: PostgreSQL loses it all, and says so */
        sql_begin(c, 1, &e);
        exec_ok(c, "INSERT INTO v(i) VALUES (-98)");
        sql_exec(c, "INSERT INTO nosuchtable VALUES (1)", &e);
        rc = sql_commit(c, &e);
        CHECK(rc == VAED_EDB && !sql_in_transaction(c) && t_sql_int(c, "SELECT count(*) FROM v WHERE i = -98") == 0,
              "postgres: a commit of a spoiled transaction fails, not silently [%s]", e.msg);
    }
    rc = sql_prepare(c, "  -- nothing\n", &s, &e);   /* SQLite: refused; PostgreSQL: runs, no rows */
    if (sql_kind_of(c) == SQL_SQLITE)
        CHECK(rc == VAED_EINVAL && !s, "sqlite: an empty statement is refused at prepare (rc %d)", rc);
    else
        CHECK(rc == 0 && sql_step(s, &e) == SQL_DONE, "postgres: an empty statement does nothing: %s", e.msg);
    sql_finalize(s);
    s = NULL;
    if (sql_kind_of(c) == SQL_SQLITE) {   /* a full disk: transient (PostgreSQL's 53100 is mapped alike) */
        int64_t pages = t_sql_int(c, "PRAGMA page_count");
        char cap[64];
        snprintf(cap, sizeof cap, "PRAGMA max_page_count = %lld", (long long)pages);
        exec_ok(c, cap);
        rc = sql_exec(c, "INSERT INTO v(b) VALUES (randomblob(100000))", &e);
        CHECK(rc == VAED_EDB && sql_errclass_of(c) == SQL_EC_RESOURCE && sql_transient(sql_errclass_of(c)),
              "sqlite: a full database is a transient resource failure (class %d) [%s]", sql_errclass_of(c), e.msg);
        exec_ok(c, "PRAGMA max_page_count = 1073741823");
    }
    /* a unique violation: class CONSTRAINT; a success after it: NONE */
    exec_ok(c, "CREATE TABLE u(k bigint PRIMARY KEY)");
    exec_ok(c, "INSERT INTO u VALUES (1)");
    CHECK(sql_prepare(c, "INSERT INTO u VALUES (?1)", &s, &e) == 0, "%s", e.msg);
    if (s) {
        sql_bind_int64(s, 1, 1);
        rc = sql_step(s, &e);
        CHECK(rc == VAED_EDB && sql_errclass_of(c) == SQL_EC_CONSTRAINT, "%s: duplicate key: rc %d class %d [%s]",
              kname(c), rc, sql_errclass_of(c), e.msg);
        sql_reset(s);
        sql_bind_int64(s, 1, 2);
        CHECK(sql_step(s, &e) == SQL_DONE && sql_errclass_of(c) == SQL_EC_NONE, "%s: then a new key: %s",
              kname(c), e.msg);
        sql_finalize(s);
    }
    exec_ok(c, "DROP TABLE u");
}

/* ---- two connections: a lock held, a claim skipped ---------------------------------- */
static void test_two_conns(const char *target, sql_conn *a)
{
    vaed_err e = {0};
    sql_conn *b = NULL;
    sql_open_opts o = {.busy_ms = 100};
    CHECK(sql_open(&b, target, &o, &e) == 0, "%s: second connection: %s", kname(a), e.msg);
    if (!b)
        return;
    exec_ok(a, "DROP TABLE IF EXISTS q");
    exec_ok(a, "CREATE TABLE q(id bigint PRIMARY KEY, owner text)");
    exec_ok(a, "INSERT INTO q VALUES (1, NULL), (2, NULL), (3, NULL)");
    if (sql_kind_of(a) == SQL_SQLITE) {
        /* one writer at a time: the second waits busy_ms, then BUSY */
        sql_begin(a, 1, &e);
        int rc = sql_begin(b, 1, &e);
        CHECK(rc == VAED_EDB && sql_errclass_of(b) == SQL_EC_BUSY, "sqlite: second writer: rc %d class %d [%s]",
              rc, sql_errclass_of(b), e.msg);
        sql_rollback(a, &e);
    } else {
        /* the claim the cluster's nodes make: each takes a different queued row */
        const char *claim = "SELECT id FROM q WHERE owner IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";
        sql_begin(a, 1, &e);
        sql_begin(b, 1, &e);
        int64_t ia = t_sql_int(a, claim), ib = t_sql_int(b, claim);
        CHECK(ia == 1 && ib == 2, "postgres: SKIP LOCKED claims 1 and 2, got %lld and %lld", (long long)ia,
              (long long)ib);
        /* a row locked by a: b's update waits lock_timeout (busy_ms), then BUSY */
        int rc = sql_exec(b, "UPDATE q SET owner = 'b' WHERE id = 1", &e);
        CHECK(rc == VAED_EDB && sql_errclass_of(b) == SQL_EC_BUSY, "postgres: locked row: rc %d class %d [%s]",
              rc, sql_errclass_of(b), e.msg);
        sql_rollback(b, &e);
        sql_commit(a, &e);
    }
    sql_close(b);
    /* a read-only connection refuses writes */
    sql_conn *r = NULL;
    sql_open_opts ro = {.readonly = 1};
    CHECK(sql_open(&r, target, &ro, &e) == 0, "%s: read-only connection: %s", kname(a), e.msg);
    if (r) {
        CHECK(sql_exec(r, "INSERT INTO q VALUES (9, 'r')", &e) == VAED_EDB &&
              sql_errclass_of(r) == SQL_EC_RESOURCE && sql_transient(sql_errclass_of(r)),
              "%s: a read-only insert is refused, transient (class %d) [%s]", kname(a), sql_errclass_of(r), e.msg);
        CHECK(t_sql_int(r, "SELECT count(*) FROM q") == 3, "%s: read-only reads", kname(a));
        sql_close(r);
    }
}

/* ---- notifications: delivered on commit, never on rollback ------------------------- */
static int wait_notify(sql_conn *c, int ms, char **ch, char **pl)
{
    vaed_err e = {0};
    struct pollfd p = {.fd = sql_socket(c), .events = POLLIN};
    int rc = sql_next_notify(c, ch, pl, &e);
    for (int waited = 0; rc == 0 && waited < ms; waited += 20) {
        poll(&p, 1, 20);
        rc = sql_next_notify(c, ch, pl, &e);
    }
    return rc;
}

static void test_notify(const char *target, sql_conn *a)
{
    vaed_err e = {0};
    char *ch = NULL, *pl = NULL;
    if (sql_kind_of(a) == SQL_SQLITE) {
        CHECK(sql_listen(a, "jobs", &e) == VAED_ESTATE && sql_notify(a, "jobs", "x", &e) == VAED_ESTATE &&
              sql_socket(a) == -1 && sql_next_notify(a, &ch, &pl, &e) == VAED_ESTATE,
              "sqlite: no notifications, said so");
        return;
    }
    sql_conn *b = NULL;
    CHECK(sql_open(&b, target, NULL, &e) == 0, "postgres: second connection: %s", e.msg);
    if (!b)
        return;
    CHECK(sql_listen(a, "Bad-Name", &e) == VAED_EINVAL && sql_notify(b, "x; DROP TABLE v", "", &e) == VAED_EINVAL,
          "postgres: a channel that is not an identifier of ours is refused");
    CHECK(sql_listen(a, "vaed_jobs", &e) == 0 && sql_socket(a) >= 0, "postgres: listen: %s", e.msg);
    const char *payload = "{\"job\": 7, \"op\": \"schedule\", \"note\": \"it's ✓\"}";
    CHECK(sql_notify(b, "vaed_jobs", payload, &e) == 0, "postgres: notify: %s", e.msg);
    int rc = wait_notify(a, 3000, &ch, &pl);
    CHECK(rc == 1 && ch && strcmp(ch, "vaed_jobs") == 0 && pl && strcmp(pl, payload) == 0,
          "postgres: the notification arrives whole (rc %d, %s: %s)", rc, ch ? ch : "-", pl ? pl : "-");
    free(ch), free(pl), ch = pl = NULL;
    sql_begin(b, 1, &e);
    sql_notify(b, "vaed_jobs", "rolled back", &e);
    rc = wait_notify(a, 300, &ch, &pl);
    CHECK(rc == 0, "postgres: nothing before the commit (rc %d %s)", rc, pl ? pl : "");
    sql_rollback(b, &e);
    free(ch), free(pl), ch = pl = NULL;
    rc = wait_notify(a, 300, &ch, &pl);
    CHECK(rc == 0, "postgres: nothing from a rollback (rc %d %s)", rc, pl ? pl : "");
    free(ch), free(pl), ch = pl = NULL;
    sql_begin(b, 1, &e);
    sql_notify(b, "vaed_jobs", "committed", &e);
    sql_commit(b, &e);
    rc = wait_notify(a, 3000, &ch, &pl);
    CHECK(rc == 1 && pl && strcmp(pl, "committed") == 0, "postgres: delivered on commit (rc %d %s)", rc,
          pl ? pl : "-");
    free(ch), free(pl);
    sql_exec(a, "UNLISTEN *", &e);
    sql_close(b);
}

/* ---- PostgreSQL restarted: the connection says so, reconnects, the data is there ---- */
static void test_restart(sql_conn *c, const char *restart_cmd)
{
    vaed_err e = {0};
    int64_t before = t_sql_int(c, "SELECT count(*) FROM v");
    sql_stmt *s = NULL;   /* prepared on the server before the restart, run after it */
    sql_prepare(c, "SELECT count(*) FROM v WHERE i <> ?1", &s, &e);
    for (int k = 0; s && k < 2; k++) {
        sql_bind_int64(s, 1, -12345);
        CHECK(sql_step(s, &e) == SQL_ROW && sql_column_int64(s, 0) == before, "postgres: run %d", k);
        sql_reset(s);
    }
    CHECK(sql_alive(c), "postgres: a live connection is alive");
    fflush(NULL);
    CHECK(system(restart_cmd) == 0, "postgres: restart command [%s]", restart_cmd);
    CHECK(!sql_alive(c) && sql_errclass_of(c) == SQL_EC_CONN,
          "postgres: after a restart the connection is known dead without a statement");
    int rc = sql_exec(c, "SELECT 1", &e);
    CHECK(rc == VAED_EDB && sql_errclass_of(c) == SQL_EC_CONN, "postgres: after a restart: rc %d class %d [%s]",
          rc, sql_errclass_of(c), e.msg);
    rc = -1;
    for (int k = 0; k < 50 && rc != 0; k++) {
        rc = sql_reconnect(c, &e);
        if (rc)
            usleep(100000);
    }
    CHECK(rc == 0 && sql_alive(c), "postgres: reconnect: %s", e.msg);
    CHECK(t_sql_int(c, "SELECT count(*) FROM v") == before, "postgres: rows kept over the restart");
    CHECK(s && sql_step(s, &e) == SQL_ROW && sql_column_int64(s, 0) == before,
          "postgres: a statement prepared before the restart runs after the reconnect: %s", e.msg);
    sql_finalize(s);
}

/* Reads the store relies on besides plain values: two blob columns of one row read
 * together, an integer sum of bigints (numeric on PostgreSQL) read as the exact
 * integer; and on PostgreSQL, a server-prepared statement after ALTER TABLE changed
 * its result, and a statement finalized inside a failed transaction (its server-side
 * name dropped once the connection is idle). */
static void test_reads_and_plans(sql_conn *c)
{
    vaed_err e = {0};
    sql_stmt *s = NULL;
    int pg = sql_kind_of(c) == SQL_POSTGRES;
    exec_ok(c, "DROP TABLE IF EXISTS w");
    exec_ok(c, pg ? "CREATE TABLE w(k bigint, a bytea, b bytea)" : "CREATE TABLE w(k INTEGER, a BLOB, b BLOB)");
    CHECK(sql_prepare(c, "INSERT INTO w VALUES (?1, ?2, ?3)", &s, &e) == 0, "%s: %s", kname(c), e.msg);
    for (int k = 0; s && k < 3; k++) {     /* 5 + (2^62 - 1) + 7: past 2^53, a double would round it */
        sql_reset(s);
        sql_bind_int64(s, 1, k == 0 ? 5 : (k == 1 ? INT64_C(0x3fffffffffffffff) : 7));
        sql_bind_blob(s, 2, "first", 5);
        sql_bind_blob(s, 3, "second!", 7);
        CHECK(sql_step(s, &e) == SQL_DONE, "%s: insert w: %s", kname(c), e.msg);
    }
    sql_finalize(s);
    CHECK(sql_prepare(c, "SELECT a, b FROM w WHERE k = 5", &s, &e) == 0, "%s: %s", kname(c), e.msg);
    if (s && sql_step(s, &e) == SQL_ROW) {
        const void *a = sql_column_blob(s, 0);
        size_t na = sql_column_bytes(s, 0);
        const void *b = sql_column_blob(s, 1);
        size_t nb = sql_column_bytes(s, 1);
        CHECK(a && b && na == 5 && nb == 7 && memcmp(a, "first", 5) == 0 && memcmp(b, "second!", 7) == 0,
              "%s: two blob columns of a row read together stay valid (%zu, %zu)", kname(c), na, nb);
    } else {
        CHECK(0, "%s: select w: %s", kname(c), e.msg);
    }
    sql_finalize(s);
    int64_t want = INT64_C(0x3fffffffffffffff) + 12;
    CHECK(sql_prepare(c, "SELECT sum(k) FROM w", &s, &e) == 0 && sql_step(s, &e) == SQL_ROW, "%s: %s", kname(c), e.msg);
    CHECK(s && sql_column_type(s, 0) == SQL_INT && sql_column_int64(s, 0) == want,
          "%s: sum of bigints is the exact integer %lld (type %d, got %lld)", kname(c), (long long)want,
          s ? sql_column_type(s, 0) : -1, s ? (long long)sql_column_int64(s, 0) : 0LL);
    sql_finalize(s);
    if (!pg) {
        exec_ok(c, "DROP TABLE w");
        return;
    }
    /* a plan cached before ALTER TABLE: re-prepared, outside and inside a transaction */
    CHECK(sql_prepare(c, "SELECT * FROM w ORDER BY k", &s, &e) == 0, "%s", e.msg);
    for (int k = 0; s && k < 2; k++) {      /* the second run prepares it on the server */
        sql_reset(s);
        CHECK(sql_step(s, &e) == SQL_ROW && sql_column_count(s) == 3, "postgres: select * run %d: %s", k, e.msg);
    }
    exec_ok(c, "ALTER TABLE w ADD COLUMN z bigint DEFAULT 4");
    sql_reset(s);
    CHECK(sql_step(s, &e) == SQL_ROW && sql_column_count(s) == 4 && sql_column_int64(s, 3) == 4,
          "postgres: a prepared statement runs after ALTER TABLE changed its result: %s", e.msg);
    exec_ok(c, "ALTER TABLE w DROP COLUMN z");
    sql_begin(c, 0, &e);
    sql_reset(s);
    int rc = sql_step(s, &e);
    sql_rollback(c, &e);
    sql_begin(c, 0, &e);
    sql_reset(s);
    CHECK(rc == VAED_EDB && sql_step(s, &e) == SQL_ROW && sql_column_count(s) == 3,
          "postgres: inside a transaction the stale plan fails once (rc %d), then runs re-prepared: %s", rc, e.msg);
    sql_rollback(c, &e);
    sql_finalize(s);
    /* finalized inside a healthy transaction: dropped at once (a pooled read runs its
     * statements between BEGIN and COMMIT: they must not pile up on the server) */
    int64_t base = t_sql_int(c, "SELECT count(*) FROM pg_prepared_statements");
    sql_begin(c, 0, &e);
    for (int round = 0; round < 5; round++) {
        CHECK(sql_prepare(c, "SELECT count(*) FROM w WHERE k > ?1", &s, &e) == 0, "%s", e.msg);
        for (int k = 0; s && k < 2; k++) {
            sql_reset(s);
            sql_bind_int64(s, 1, k);
            CHECK(sql_step(s, &e) == SQL_ROW, "postgres: select in a transaction: %s", e.msg);
        }
        sql_finalize(s);
    }
    CHECK(t_sql_int(c, "SELECT count(*) FROM pg_prepared_statements") == base,
          "postgres: statements finalized inside a transaction leave none behind (%lld, want %lld)",
          (long long)t_sql_int(c, "SELECT count(*) FROM pg_prepared_statements"), (long long)base);
    sql_rollback(c, &e);
    /* an integral numeric past int64 is a float, never a saturated integer */
    CHECK(sql_prepare(c, "SELECT 9223372036854775807::numeric + 10, -9223372036854775808::numeric", &s, &e) == 0 &&
              sql_step(s, &e) == SQL_ROW, "%s", e.msg);
    CHECK(s && sql_column_type(s, 0) == SQL_FLOAT && sql_column_double(s, 0) == 9223372036854775817.0 &&
              sql_column_type(s, 1) == SQL_INT && sql_column_int64(s, 1) == INT64_MIN,
          "postgres: numeric past int64 reads as a float (type %d), INT64_MIN as an integer",
          s ? sql_column_type(s, 0) : -1);
    sql_finalize(s);
    s = NULL;
    CHECK(sql_prepare(c, "SELECT ?70000", &s, &e) == VAED_EINVAL && !s,
          "postgres: a parameter number past 65535 is refused at prepare [%s]", e.msg);
    /* finalized inside a failed transaction: dropped on the server when idle */
    int64_t before = t_sql_int(c, "SELECT count(*) FROM pg_prepared_statements");
    CHECK(sql_prepare(c, "SELECT k FROM w WHERE k = ?1", &s, &e) == 0, "%s", e.msg);
    for (int k = 0; s && k < 2; k++) {
        sql_reset(s);
        sql_bind_int64(s, 1, 5);
        CHECK(sql_step(s, &e) == SQL_ROW, "postgres: select k run %d: %s", k, e.msg);
    }
    CHECK(t_sql_int(c, "SELECT count(*) FROM pg_prepared_statements") == before + 1,
          "postgres: one more statement prepared on the server");
    sql_begin(c, 1, &e);
    CHECK(sql_exec(c, "SELECT no_such_column FROM w", &e) == VAED_EDB, "postgres: a failing statement");
    sql_finalize(s);
    sql_rollback(c, &e);
    CHECK(t_sql_int(c, "SELECT count(*) FROM pg_prepared_statements") == before,
          "postgres: a statement finalized in a failed transaction is dropped once idle (%lld, want %lld)",
          (long long)t_sql_int(c, "SELECT count(*) FROM pg_prepared_statements"), (long long)before);
    exec_ok(c, "DROP TABLE w");
}

/* PostgreSQL: what the URL says of the session is kept (no busy timeout asked: the
 * URL's lock_timeout stands; with one asked, ours) */
static void test_url_settings(const char *target)
{
    vaed_err e = {0};
    char url[600];
    snprintf(url, sizeof url, "%s?options=-c%%20lock_timeout%%3D7000", target);
    for (int busy = 0; busy <= 2000; busy += 2000) {
        sql_conn *c = NULL;
        sql_open_opts o = {.busy_ms = busy};
        sql_stmt *s = NULL;
        CHECK(sql_open(&c, url, &o, &e) == 0, "postgres: open with options: %s", e.msg);
        if (!c)
            return;
        const char *want = busy ? "2s" : "7s";
        int ok = sql_prepare(c, "SHOW lock_timeout", &s, &e) == 0 && sql_step(s, &e) == SQL_ROW &&
                 strcmp(sql_column_text(s, 0), want) == 0;
        CHECK(ok, "postgres: busy_ms %d: lock_timeout is %s, want %s", busy, s ? sql_column_text(s, 0) : "?", want);
        sql_finalize(s);
        sql_close(c);
    }
}

static void suite(const char *target, int create)
{
    vaed_err e = {0};
    sql_conn *c = NULL;
    sql_open_opts o = {.create = create, .busy_ms = 2000};
    CHECK(sql_open(&c, target, &o, &e) == 0, "open %s: %s", target, e.msg);
    if (!c)
        return;
    printf("test_sql: %s\n", kname(c));
    test_values(c);
    test_changes_and_errors(c);
    test_reads_and_plans(c);
    test_two_conns(target, c);
    test_notify(target, c);
    const char *restart = getenv("VAED_TEST_PG_RESTART");
    if (sql_kind_of(c) == SQL_POSTGRES)
        test_url_settings(target);
    if (sql_kind_of(c) == SQL_POSTGRES && restart && *restart)
        test_restart(c, restart);
    sql_close(c);
}

int main(void)
{
    test_translate();
    char dir[] = "/tmp/vaed-sql.XXXXXX", path[64];
    vaed_err e = {0};
    sql_conn *c = NULL;
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/t.db", dir);
    CHECK(sql_open(&c, path, NULL, &e) == VAED_EDB && !c, "sqlite: a missing file without create is refused [%s]",
          e.msg);
    suite(path, 1);
    unlink(path);
    rmdir(dir);
    const char *pg = getenv("VAED_TEST_PG");
    if (pg && *pg)
        suite(pg, 0);
    else
        printf("test_sql: PostgreSQL half not run here (VAED_TEST_PG unset; tests/e2e/store_pg.sh runs it)\n");
    return t_done("test_sql");
}
