/* test_metric_fields.c — the one table of a step's figures (vae/metric_fields.h) and the
 * outputs it feeds: each lists exactly the table's fields, by the table's names.
 *   - the store: its column names (store_mcol_name) in table order, and the columns of
 *     the metrics table of a freshly created database;
 *   - a row written and read back: every field's value, by name;
 *   - `vaed train`'s JSON (vae_metrics_json) and an SSE step event (api_sse_format);
 *   - the OpenAPI document's MetricSeries schema.
 * The values are distinct per field (1, 2, 3, ...), so a field wired to another's slot
 * shows. A database made before the table's last field existed (that column dropped)
 * gets it back when opened, old rows reading 0, and its downsampling pyramid rebuilt.
 *
 * The Makefile builds this test twice: as test_metric_fields against the library, and
 * as test_metric_extra against the whole library compiled with one more field
 * (-DVAE_METRIC_FIELDS_EXTRA): adding a field is that one line, and every output
 * above has it. */
/* (decided before vae/metric_fields.h defines an empty VAE_METRIC_FIELDS_EXTRA) */
#ifdef VAE_METRIC_FIELDS_EXTRA
#define T_NAME "test_metric_extra"
#else
#define T_NAME "test_metric_fields"
#endif
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/events.h"
#include "api/extra.h"
#include "daemon/bus.h"
#include "store/sql.h"
#include "store/store.h"
#include "tests/unit/t.h"
#include "tests/unit/test_sql_util.h"
#include "vae/report.h"

#define N VAE_METRIC_NFIELDS

/* Field i's test value. */
static double val(int i) { return 1.5 + i; }

static void fill(vae_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->step = 42;
    int i = 0;
#define SET(ID, name, unit, flags, meaning) m->name = val(i++);
    VAE_METRIC_FIELDS(SET)
#undef SET
}

/* obj has every field of the table with its test value, and how many of its keys are
 * table fields. */
static void has_all(const char *what, json_t *obj, int allow_sparse_missing)
{
    for (int i = 0; i < N; i++) {
        const vae_metric_field *f = &vae_metric_fields[i];
        json_t *v = json_object_get(obj, f->name);
        if (!v && allow_sparse_missing && (f->flags & VAE_MF_SPARSE))
            continue;
        CHECK(json_is_number(v) && json_number_value(v) == val(i), "%s: field %s is %s", what,
              f->name, v ? "another value" : "missing");
    }
}

/* ROWS rows of m's figures from step `from` on, committed: enough that a read of two
 * points comes from the pyramid, not the rows. */
enum { ROWS = 4096 };
static int append_many(store *st, int64_t id, const vae_metrics *m, int64_t from, vaed_err *e)
{
    store_metric *rows = calloc(ROWS, sizeof *rows);
    if (!rows)
        return vaed_err_set(e, VAED_ENOMEM, NULL, "out of memory");
    for (int r = 0; r < ROWS; r++) {
        rows[r].step = from + r;
        VAE_METRIC_COPY(&rows[r], m);
    }
    int rc = store_metrics_append(st, id, rows, ROWS, e);
    free(rows);
    return rc ? rc : store_flush(st, e);
}

/* After the last field's column came back: a read of two points (from the pyramid,
 * built again) has every field's value, and 0 for the field the old rows lacked. */
static void check_came_back(store *st, int64_t id, const char *what)
{
    vaed_err e = {0};
    store_series s = {0};
    const char *last = vae_metric_fields[N - 1].name;
    CHECK(st && store_metrics_downsample(st, id, -1, -1, STORE_MCOL_ALL, 2, &s, &e) == 0 && s.n >= 1,
          "%s: downsampled read after %s came back: %s", what, last, e.msg);
    for (size_t p = 0; p < s.n; p++)
        for (int i = 0; i < N; i++)
            CHECK(s.col[i] && s.col[i][p] == (i == N - 1 ? 0.0 : val(i)),
                  "%s: after %s came back, %s reads %g at point %zu", what, last,
                  vae_metric_fields[i].name, s.col[i] ? s.col[i][p] : NAN, p);
    store_series_free(&s);
}

/* The same on PostgreSQL (VAED_TEST_PG; tests/e2e/store_pg.sh): a row written, the last
 * field's column dropped as an older build's database would lack it, the store opened
 * again: the column is back, the old row reads 0 there, and the downsampling pyramid,
 * whose rows are sized by the column count, was built again. */
static void pg_part(const char *url)
{
    vaed_err e = {0};
    char db[512];
    sql_conn *c = NULL;
    int rc = t_pg_fresh(url, "vaed_fields", db, sizeof db, &e);
    CHECK(rc == 0, "postgres: a fresh database: %s", e.msg);
    if (rc)
        return;
    store *st = NULL;
    int64_t id = 0;
    CHECK(store_open(&st, db, NULL, &e) == 0, "postgres: open: %s", e.msg);
    store_job_new nj = {.name = "f", .spec = "{}"};
    vae_metrics m;
    fill(&m);
    CHECK(st && store_job_insert(st, &nj, &id, &e) == 0 && append_many(st, id, &m, 0, &e) == 0,
          "postgres: %d rows: %s", ROWS, e.msg);
    store_close(st, NULL);
    const char *last = vae_metric_fields[N - 1].name;
    char sql[128];
    snprintf(sql, sizeof sql, "ALTER TABLE metrics DROP COLUMN %s", last);
    /* an older build's pyramid: its rows one column (32 bytes) shorter */
    CHECK(sql_open(&c, db, NULL, &e) == 0 && sql_exec(c, sql, &e) == 0 &&
              sql_exec(c, "UPDATE metrics_sum SET agg = substring(agg from 1 for length(agg) - 32)", &e) == 0,
          "postgres: dropping %s and its place in the pyramid: %s", last, e.msg);
    sql_close(c);
    st = NULL;
    CHECK(store_open(&st, db, NULL, &e) == 0, "postgres: reopen without %s: %s", last, e.msg);
    check_came_back(st, id, "postgres");
    store_close(st, NULL);
}

int main(void)
{
    CHECK(N == STORE_M_NCOLS, "the table has %d fields, the store %d columns", N,
          STORE_M_NCOLS);
    for (int i = 0; i < N; i++)
        CHECK(store_mcol_name(i) && !strcmp(store_mcol_name(i), vae_metric_fields[i].name) &&
                  store_mcol_by_name(vae_metric_fields[i].name) == i &&
                  vae_metric_fields[i].unit[0] && vae_metric_fields[i].meaning[0],
              "column %d is %s, the table's field %d is %s", i, store_mcol_name(i), i,
              vae_metric_fields[i].name);

    /* the store: a fresh database's metrics columns, and a row through it */
    char dir[] = "/tmp/vaed-fields-XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/f.db", dir);
    store *st = NULL;
    vaed_err err;
    int64_t id = 0;
    CHECK(store_open(&st, path, NULL, &err) == 0, "open: %s", err.msg);
    store_job_new nj = {.name = "f", .spec = "{}"};
    CHECK(st && store_job_insert(st, &nj, &id, &err) == 0, "insert: %s", err.msg);
    vae_metrics m;
    fill(&m);
    store_metric row = {.step = m.step};
    VAE_METRIC_COPY(&row, &m);
    CHECK(store_metrics_append(st, id, &row, 1, &err) == 0 && store_flush(st, &err) == 0,
          "append: %s", err.msg);
    store_series s = {0};
    CHECK(store_metrics_range(st, id, -1, -1, STORE_MCOL_ALL, 0, &s, &err) == 0 && s.n == 1,
          "read back: %s", err.msg);
    for (int i = 0; s.n == 1 && i < N; i++)
        CHECK(s.col[i][0] == val(i), "stored %s: %g, wrote %g", vae_metric_fields[i].name,
              s.col[i][0], val(i));
    store_series_free(&s);
    CHECK(append_many(st, id, &m, 100, &err) == 0, "%d rows more: %s", ROWS, err.msg);
    store_close(st, NULL);
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info('metrics')", -1, &q, NULL);
    int seen[N] = {0}, others = 0;
    while (q && sqlite3_step(q) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(q, 0);
        int k = store_mcol_by_name(c);
        if (k >= 0)
            seen[k]++;
        else if (strcmp(c, "job") && strcmp(c, "step") && strcmp(c, "kl_groups"))
            others++;
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    for (int i = 0; i < N; i++)
        CHECK(seen[i] == 1, "the metrics table has %d columns named %s", seen[i],
              vae_metric_fields[i].name);
    CHECK(others == 0, "the metrics table has %d columns the table does not name", others);

    /* the database of an older build: the last field's column dropped, then opened */
    const char *last = vae_metric_fields[N - 1].name;
    char sql[128];
    snprintf(sql, sizeof sql, "ALTER TABLE metrics DROP COLUMN %s", last);
    sqlite3_open(path, &db);
    /* an older build's pyramid: its rows one column (32 bytes) shorter */
    CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK &&
              sqlite3_exec(db, "UPDATE metrics_sum SET agg = substr(agg, 1, length(agg) - 32)", NULL,
                           NULL, NULL) == SQLITE_OK,
          "dropping %s and its place in the pyramid: %s", last, sqlite3_errmsg(db));
    sqlite3_close(db);
    st = NULL;
    CHECK(store_open(&st, path, NULL, &err) == 0, "reopen without %s: %s", last, err.msg);
    check_came_back(st, id, "sqlite");
    if (st)
        store_close(st, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);

    /* vaed train's JSON */
    json_t *j = vae_metrics_json(&m);
    has_all("vae_metrics_json", j, 0);
    CHECK(json_object_size(j) == (size_t)N + 1, "vae_metrics_json: %zu keys, want step + %d",
          json_object_size(j), N);
    json_decref(j);

    /* an SSE step event */
    bus_event ev = {.id = 1, .type = BUS_STEP, .job = 3};
    ev.u.step.step = m.step;
    VAE_METRIC_COPY(&ev.u.step, &m);
    size_t len = 0;
    char *sse = api_sse_format(&ev, &len);
    const char *data = sse ? strstr(sse, "data: ") : NULL;
    json_error_t je;
    json_t *o = data ? json_loads(data + 6, JSON_DISABLE_EOF_CHECK, &je) : NULL;
    CHECK(o != NULL, "the SSE event's data is JSON: %s", sse ? sse : "(none)");
    if (o) {
        has_all("SSE step event", o, 0);
        CHECK(json_object_size(o) == (size_t)N + 3,
              "SSE step event: %zu keys, want job, step, samples_per_sec + %d",
              json_object_size(o), N);
    }
    json_decref(o);
    free(sse);

    /* the OpenAPI document's metric series */
    size_t dl = 0;
    const char *doc = api_openapi_doc(&dl);
    json_t *d = doc ? json_loadb(doc, dl, 0, &je) : NULL;
    json_t *props = json_object_get(
        json_object_get(json_object_get(json_object_get(d, "components"), "schemas"),
                        "MetricSeries"),
        "properties");
    CHECK(props != NULL, "the OpenAPI document has components.schemas.MetricSeries");
    for (int i = 0; props && i < N; i++)
        CHECK((vae_metric_fields[i].flags & VAE_MF_TESTONLY) ||
                  json_object_get(props, vae_metric_fields[i].name) != NULL,
              "OpenAPI MetricSeries does not list %s", vae_metric_fields[i].name);
    json_decref(d);
    const char *pg = getenv("VAED_TEST_PG");
    if (pg && *pg)
        pg_part(pg);
    else
        printf(T_NAME ": PostgreSQL part not run here (VAED_TEST_PG unset; "
               "tests/e2e/store_pg.sh runs it)\n");
    return t_done(T_NAME);
}
