/* test_store_audit.c — the audit trail's rows (store/audit.h): appended without waiting
 * and visible after store_flush, every field read back (NULL token and created kept
 * NULL), paging forward with after and the newest page without it, retention keeping the
 * newest `keep` rows with ids never reused, rows surviving close and reopen, and the
 * v6 → v7 migration keeping a v6 database's rows. */
#include "store/audit.h"
#include "tests/unit/test_store_util.h"

static int append(store *st, int i, int64_t keep)
{
    char path[64], created[64];
    snprintf(path, sizeof path, "/v1/jobs/%d/pause", i);
    snprintf(created, sizeof created, "/v1/jobs/%d", i);
    store_audit_new a = {.time = 1000 + i, .token = i % 2 ? "alice" : NULL,
                         .remote = "127.0.0.1", .method = "POST", .path = path,
                         .status = i % 3 ? 200 : 403, .created = i % 2 ? created : NULL};
    vaed_err e;
    int rc = store_audit_append(st, &a, keep, &e);
    CHECK(rc == 0, "append %d: %s", i, e.msg);
    return rc;
}

/* The ids of a page into buf as "1,2,3". */
static void ids_of(const store_audit *r, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? "," : "", (long long)r[i].id);
}

static void page(store *st, int64_t after, int limit, const char *want_ids, int want_more,
                 const char *what)
{
    store_audit *r = NULL;
    size_t n = 0;
    int more = -1;
    vaed_err e;
    int rc = store_audit_list(st, after, limit, &r, &n, &more, &e);
    char got[512];
    ids_of(r, n, got, sizeof got);
    CHECK(rc == 0 && !strcmp(got, want_ids) && more == want_more,
          "%s: rc %d ids [%s] (want [%s]) more %d (want %d) %s", what, rc, got, want_ids, more,
          want_more, rc ? e.msg : "");
    store_audits_free(r, n);
}

static void test_audit(void)
{
    store *st = open_or_die("audit.db", NULL);
    if (!st)
        return;
    for (int i = 1; i <= 5; i++)
        append(st, i, 100);
    vaed_err e;
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    store_audit *r = NULL;
    size_t n = 0;
    int more = 0;
    int rc = store_audit_list(st, 0, 10, &r, &n, &more, &e);
    CHECK(rc == 0 && n == 5 && !more, "all five: rc %d n %zu more %d", rc, n, more);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int k = (int)i + 1;
        char path[64], created[64];
        snprintf(path, sizeof path, "/v1/jobs/%d/pause", k);
        snprintf(created, sizeof created, "/v1/jobs/%d", k);
        CHECK(r[i].id == k && r[i].time == 1000 + k && !strcmp(r[i].remote, "127.0.0.1") &&
                  !strcmp(r[i].method, "POST") && !strcmp(r[i].path, path) &&
                  r[i].status == (k % 3 ? 200 : 403),
              "row %d: id %lld time %g %s %s %s %d", k, (long long)r[i].id, r[i].time,
              r[i].remote, r[i].method, r[i].path, r[i].status);
        if (k % 2)
            CHECK(r[i].token && !strcmp(r[i].token, "alice") && r[i].created &&
                      !strcmp(r[i].created, created),
                  "row %d: token %s created %s", k, r[i].token ?: "NULL", r[i].created ?: "NULL");
        else
            CHECK(!r[i].token && !r[i].created, "row %d: token and created stay NULL", k);
    }
    store_audits_free(r, n);
    page(st, 0, 2, "1,2", 1, "first page");
    page(st, 2, 2, "3,4", 1, "second page");
    page(st, 4, 2, "5", 0, "last page");
    page(st, 5, 2, "", 0, "past the end");
    page(st, -1, 2, "4,5", 1, "the newest two, oldest first");
    page(st, -1, 10, "1,2,3,4,5", 0, "the newest ten of five");
    CHECK(store_audit_list(st, 0, 0, &r, &n, &more, &e) == VAED_EINVAL, "limit 0 refused");
    store_audit_new bad = {.method = NULL, .path = "/x"};
    CHECK(store_audit_append(st, &bad, 10, &e) == VAED_EINVAL, "no method refused");

    /* retention: keep 3 → the newest three, ids going on from 6 */
    for (int i = 6; i <= 9; i++)
        append(st, i, 3);
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    page(st, 0, 10, "7,8,9", 0, "keep 3");
    close_ok(st);

    /* reopened: the rows are there, new ids continue past the deleted ones */
    st = open_or_die("audit.db", NULL);
    if (!st)
        return;
    page(st, -1, 10, "7,8,9", 0, "after reopening");
    append(st, 10, 3);
    store_audit_list(st, -1, 1, &r, &n, &more, &e); /* not flushed: not committed yet... */
    store_audits_free(r, n);
    close_ok(st); /* ...but a clean close commits it */
    st = open_or_die("audit.db", NULL);
    if (!st)
        return;
    page(st, 0, 10, "8,9,10", 0, "queued row committed at close");
    close_ok(st);
}

/* A v6 database (before the audit table) gains it and keeps its jobs. */
static void test_migration_v6_v7(void)
{
    char p[512];
    path_of(p, sizeof p, "v6.db");
    sqlite3 *db = raw_open(p);
    int rc = SQLITE_OK;
    for (int v = 1; v <= 6 && rc == SQLITE_OK; v++)
        rc = sqlite3_exec(db, store_migration_sql(v), NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA user_version = 6;"
                              "INSERT INTO jobs(id, name, spec, state, priority, queue_seq,"
                              " created_at, updated_at) VALUES (7, 'v6', '{}', 'completed', 0, 1,"
                              " 1, 1);",
                          NULL, NULL, NULL);
    CHECK(rc == SQLITE_OK, "v6 database: %s", sqlite3_errmsg(db));
    CHECK(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'audit'") == 0,
          "a v6 database has no audit table");
    sqlite3_close(db);
    store *st = open_or_die("v6.db", NULL);
    if (!st)
        return;
    append(st, 1, 10);
    vaed_err e;
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    page(st, 0, 10, "1", 0, "a row after migrating");
    close_ok(st);
    db = raw_open(p);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION &&
              raw_int(db, "SELECT count(*) FROM jobs WHERE id = 7 AND name = 'v6'") == 1 &&
              raw_int(db, "SELECT count(*) FROM audit") == 1,
          "migrated through v7 (and on) with the job kept: user_version %lld",
          (long long)raw_int(db, "PRAGMA user_version"));
    sqlite3_close(db);
}

int main(void)
{
    int rc = test_store_begin();
    if (rc)
        return rc;
    test_audit();
    test_migration_v6_v7();
    return test_store_end("test_store_audit");
}
