/* test_store_evals.c — the store's evaluations (store/evals.h): insert and read back,
 * blocks stored and replaced with rows_done counted once, the state rules (a finished
 * evaluation stays finished; its blocks go with it), the job's foreign key, the JSON a
 * client sees, and that the rows survive closing and reopening the database. */
#include "store/evals.h"
#include "tests/unit/test_store_util.h"

static int walk_sum(void *arg, int64_t block, int64_t rows, const void *data, size_t len)
{
    int64_t *acc = arg;
    const unsigned char *p = data;
    /* each test block's bytes are its block number, repeated */
    for (size_t i = 0; i < len; i++)
        if (p[i] != (unsigned char)block)
            return 99;
    acc[0] += rows;
    acc[1] = acc[1] * 10 + block;
    return 0;
}

static void test_evals(void)
{
    store *st = open_or_die("evals.db", NULL);
    int64_t job = new_job(st, "j", 0);
    vaed_err e;
    store_eval_new ne = {.job = job, .ckpt_step = 40, .asked = "final", .split = "test",
                         .k = 64, .seed = 7, .rows = 0};
    int64_t id = 0;
    CHECK(store_eval_insert(st, &ne, &id, &e) == 0 && id > 0, "insert: %s", e.msg);
    store_eval ev;
    CHECK(store_eval_get(st, id, &ev, &e) == 0, "get: %s", e.msg);
    CHECK(ev.job == job && ev.ckpt_step == 40 && !strcmp(ev.asked, "final") &&
              !strcmp(ev.split, "test") && ev.k == 64 && ev.seed == 7 &&
              !strcmp(ev.state, "queued") && ev.rows_done == 0 && !ev.result && !ev.reason &&
              ev.created_at > 0 && ev.started_at == 0,
          "read back: job %lld step %lld state %s", (long long)ev.job, (long long)ev.ckpt_step,
          ev.state);
    store_eval_clear(&ev);

    ne.job = job + 100;
    CHECK(store_eval_insert(st, &ne, &id, &e) == VAED_ENOTFOUND, "unknown job: %s", e.msg);
    ne.job = job;
    ne.split = "validation";
    CHECK(store_eval_insert(st, &ne, &id, &e) == VAED_EINVAL && !strcmp(e.field, "split"),
          "bad split refused naming split");
    ne.split = "train";
    int64_t id2 = 0;
    CHECK(store_eval_insert(st, &ne, &id2, &e) == 0, "second: %s", e.msg);
    id = id2 - 1;

    CHECK(store_eval_set_state(st, id, "running", NULL, NULL, 600, &e) == 0, "running: %s", e.msg);
    unsigned char b0[100], b1[50], b2[100];
    memset(b0, 0, sizeof b0);
    memset(b1, 1, sizeof b1);
    memset(b2, 2, sizeof b2);
    CHECK(store_eval_block_put(st, id, 0, 256, b0, sizeof b0, 0.5, &e) == 0, "block 0: %s", e.msg);
    CHECK(store_eval_block_put(st, id, 2, 88, b2, sizeof b2, 0.25, &e) == 0, "block 2: %s", e.msg);
    CHECK(store_eval_block_put(st, id, 0, 256, b0, sizeof b0, 0.5, &e) == 0, "block 0 again");
    CHECK(store_eval_get(st, id, &ev, &e) == 0 && ev.rows == 600 && ev.rows_done == 256 + 88 &&
              ev.seconds == 1.25 && !strcmp(ev.state, "running") && ev.started_at > 0,
          "rows %lld rows_done %lld (a block stored twice counts once), seconds %g",
          (long long)ev.rows, (long long)ev.rows_done, ev.seconds);
    store_eval_clear(&ev);
    CHECK(store_eval_block_put(st, id + 50, 0, 1, b1, 1, 0, &e) == VAED_ENOTFOUND,
          "a block of no evaluation is refused");

    /* reopen: the blocks are there, in block order */
    close_ok(st);
    st = open_or_die("evals.db", NULL);
    int64_t acc[2] = {0, 0};
    CHECK(store_eval_blocks(st, id, walk_sum, acc, &e) == 0 && acc[0] == 344 && acc[1] == 2,
          "blocks after reopen: rows %lld order %lld", (long long)acc[0], (long long)acc[1]);
    store_eval *open = NULL;
    size_t n = 0;
    CHECK(store_evals_list(st, 0, 1, &open, &n, &e) == 0 && n == 2 && open[0].id == id,
          "unfinished: %zu", n);
    store_evals_free(open, n);

    CHECK(store_eval_set_state(st, id, "completed", NULL, "{\"bound\": -88.5}", -1, &e) == 0,
          "completed: %s", e.msg);
    acc[0] = acc[1] = 0;
    CHECK(store_eval_blocks(st, id, walk_sum, acc, &e) == 0 && acc[0] == 0,
          "a finished evaluation's blocks are gone (%lld rows left)", (long long)acc[0]);
    CHECK(store_eval_set_state(st, id, "cancelled", NULL, NULL, -1, &e) == VAED_ESTATE &&
              strstr(e.msg, "completed"),
          "a finished evaluation stays finished: %s", e.msg);
    acc[0] = acc[1] = 0;
    CHECK(store_eval_block_put(st, id, 1, 256, b0, sizeof b0, 0.5, &e) == VAED_ESTATE &&
              store_eval_blocks(st, id, walk_sum, acc, &e) == 0 && acc[0] == 0,
          "a finished evaluation takes no block (a runner that missed a cancel through "
          "another node): %s, %lld rows", e.msg, (long long)acc[0]);
    CHECK(store_eval_set_state(st, id, "paused", NULL, NULL, -1, &e) == VAED_EINVAL,
          "not a state");
    CHECK(store_eval_set_state(st, id + 50, "failed", "x", NULL, -1, &e) == VAED_ENOTFOUND,
          "unknown evaluation");
    CHECK(store_eval_set_state(st, id, "completed", NULL, "not json", -1, &e) != 0,
          "a result that is not JSON is refused");

    CHECK(store_eval_get(st, id, &ev, &e) == 0, "get");
    json_t *j = store_eval_json(&ev);
    CHECK(j && json_real_value(json_object_get(json_object_get(j, "result"), "bound")) == -88.5 &&
              !strcmp(json_string_value(json_object_get(j, "state")), "completed") &&
              json_integer_value(json_object_get(json_object_get(j, "checkpoint"), "step")) == 40 &&
              json_is_null(json_object_get(j, "eta_s")) &&
              json_real_value(json_object_get(j, "rows_per_sec")) == 344 / 1.25,
          "json: %s", j ? json_dumps(j, JSON_COMPACT) : "NULL");
    json_decref(j);
    store_eval_clear(&ev);

    CHECK(store_evals_list(st, job, 0, &open, &n, &e) == 0 && n == 2, "the job's: %zu", n);
    store_evals_free(open, n);
    CHECK(store_evals_list(st, 0, 1, &open, &n, &e) == 0 && n == 1 && open[0].id == id2,
          "unfinished after completion: %zu", n);
    store_evals_free(open, n);
    close_ok(st);
}

static int ckpt(store *st, int64_t job, int64_t step)
{
    static const char blob[] = "checkpoint";
    store_ckpt_put req = {.job = job, .step = step, .epoch = 0, .kind = "periodic",
                          .blob = blob, .size = sizeof blob, .keep = 1, .wait = 1};
    vaed_err e;
    return store_checkpoint_put(st, &req, &e);
}

static int has_ckpt(store *st, int64_t job, int64_t step)
{
    store_ckpt *l = NULL;
    size_t n = 0;
    vaed_err e;
    int found = 0;
    if (store_checkpoints_list(st, job, &l, &n, &e) == 0)
        for (size_t i = 0; i < n; i++)
            found |= l[i].step == step;
    free(l);
    return found;
}

static int64_t eval_at(store *st, int64_t job, int64_t step, const char *state,
                       const char *result)
{
    store_eval_new ne = {.job = job, .ckpt_step = step, .asked = "final", .split = "test",
                         .k = 1, .seed = 0, .rows = 0};
    int64_t id = 0;
    vaed_err e;
    CHECK(store_eval_insert(st, &ne, &id, &e) == 0, "insert: %s", e.msg);
    if (strcmp(state, "queued"))
        CHECK(store_eval_set_state(st, id, state, NULL, result, -1, &e) == 0, "%s: %s", state,
              e.msg);
    return id;
}

/* "best" and the retention that keeps what evaluations need. */
static void test_best_and_retention(void)
{
    store *st = open_or_die("best.db", NULL);
    int64_t job = new_job(st, "b", 0);
    vaed_err e;
    int64_t step = -1;
    CHECK(store_eval_best(st, job, &step, &e) == VAED_ENOTFOUND && !strcmp(e.field, "checkpoint"),
          "no completed evaluation: no best");
    CHECK(ckpt(st, job, 10) == 0, "checkpoint 10");
    eval_at(st, job, 10, "completed", "{\"bound\": -80.0}");
    CHECK(ckpt(st, job, 20) == 0, "checkpoint 20");
    eval_at(st, job, 20, "completed", "{\"bound\": -90.0}");
    eval_at(st, job, 20, "failed", NULL);
    CHECK(store_eval_best(st, job, &step, &e) == 0 && step == 10, "best is step 10: %lld",
          (long long)step);
    eval_at(st, job, 20, "completed", "{\"bound\": -80.0}");
    CHECK(store_eval_best(st, job, &step, &e) == 0 && step == 10,
          "a tie goes to the oldest evaluation: %lld", (long long)step);
    /* keep = 1: without evaluations, 10 and 20 would rotate out as 30 and 40 arrive */
    eval_at(st, job, 30, "queued", NULL);
    CHECK(ckpt(st, job, 30) == 0 && ckpt(st, job, 40) == 0 && ckpt(st, job, 50) == 0,
          "checkpoints 30, 40, 50");
    CHECK(has_ckpt(st, job, 10), "the best checkpoint (10) is never rotated out");
    CHECK(has_ckpt(st, job, 30), "a checkpoint a queued evaluation needs (30) is kept");
    CHECK(!has_ckpt(st, job, 20) && !has_ckpt(st, job, 40) && has_ckpt(st, job, 50),
          "the others rotate as before (20 and 40 gone, 50 kept)");
    close_ok(st);
}

/* A database of schema v4 (before evaluations) with a job gains the tables and keeps the
 * job: an evaluation of it can be stored at once. */
static void test_migration_v4_v5(void)
{
    char p[512];
    path_of(p, sizeof p, "v4.db");
    sqlite3 *db = raw_open(p);
    int rc = SQLITE_OK;
    for (int v = 1; v <= 4 && rc == SQLITE_OK; v++)
        rc = sqlite3_exec(db, store_migration_sql(v), NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA user_version = 4;"
                              "INSERT INTO jobs(id, name, spec, state, priority, queue_seq,"
                              " created_at, updated_at) VALUES (7, 'v4', '{}', 'completed', 0, 1,"
                              " 1, 1);",
                          NULL, NULL, NULL);
    CHECK(rc == SQLITE_OK, "v4 database: %s", sqlite3_errmsg(db));
    sqlite3_close(db);
    store *st = open_or_die("v4.db", NULL);
    if (!st)
        return;
    store_eval_new ne = {.job = 7, .ckpt_step = 1, .asked = "1", .split = "test", .k = 2};
    int64_t id = 0;
    vaed_err e;
    CHECK(store_eval_insert(st, &ne, &id, &e) == 0 && id > 0, "evaluation after migration: %s",
          e.msg);
    close_ok(st);
    db = raw_open(p);
    CHECK(raw_int(db, "PRAGMA user_version") >= 5 &&
              raw_int(db, "SELECT count(*) FROM jobs WHERE id = 7 AND name = 'v4'") == 1,
          "migrated past v5 with the job kept");
    sqlite3_close(db);
}

int main(void)
{
    int rc = test_store_begin();
    if (rc)
        return rc;
    test_evals();
    test_best_and_retention();
    test_migration_v4_v5();
    return test_store_end("test_store_evals");
}
