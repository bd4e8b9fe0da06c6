/* test_store_part1.c — more of test_store.c's tests (split for size; same fixtures: test_store_util.h). */
#include "tests/unit/test_store_util.h"

static void bench_million(void)
{
    store_opts o;
    store_opts_default(&o);
    o.fsync_checkpoints = 0;
    store *st = open_or_die("bench.db", &o);
    if (!st)
        return;
    int64_t job = new_job(st, "bench", 0);
    const int64_t N = 1000000;
    double t0 = now_s();
    append_range(st, job, 0, N, 0.0, 256, 0);
    store_flush(st, NULL);
    double tw = now_s() - t0;
    store_series s;
    vaed_err e;
    t0 = now_s();
    int rc = store_metrics_range(st, job, -1, -1, STORE_MCOL_ALL, 0, &s, &e);
    double tr = now_s() - t0;
    printf("bench: wrote %lld rows in %.2f s, read all columns in %.3f s\n", (long long)N, tw, tr);
    CHECK(rc == 0 && s.n == (size_t)N, "bench read %zu", s.n);
    CHECK(tr < 1.0, "a million rows took %.3f s to read", tr);
    store_series_free(&s);
    bench_downsample(st, job, N);
    close_ok(st);
}

/* Writes through the writer: appends in uneven batches, a batch held back and written
 * late (out of order), rows first written with a bogus spike then replaced (the
 * stale extreme must go), a replay of identical rows (crash recovery), and the same
 * step twice in one batch. Then the oracle sweep and the spikes. */
static void test_downsample(void)
{
    static struct orow r[12000];
    int64_t hi[NSPIKE], lo[NSPIKE];
    size_t n = ds_rows_make(r, hi, lo);
    store *st = open_or_die("ds.db", NULL);
    if (!st)
        return;
    int64_t job = new_job(st, "downsample", 0);
    vaed_err e;
    /* Bogus first versions of some rows, in both directions and several levels. */
    struct orow bogus[40];
    for (int i = 0; i < 40; i++) {
        bogus[i] = r[(size_t)(lcg() % n)];
        bogus[i].v[lcg() % STORE_M_NCOLS] = (i & 1) ? 1e6 + i : -1e6 - i;
    }
    size_t held_at = n / 3, held_n = 700;
    int rc = append_orows(st, job, r, held_at);
    rc |= append_orows(st, job, bogus, 20);
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    rc |= append_orows(st, job, r + held_at + held_n, n - held_at - held_n);
    rc |= append_orows(st, job, bogus + 20, 20);
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    rc |= append_orows(st, job, r + held_at, held_n);   /* late: before rows already there */
    /* The final versions of the bogus rows, once with the bogus value in the same
     * batch just before (the later row wins). */
    for (int i = 0; i < 40; i++) {
        store_metric m[2];
        double g[2][2];
        const struct orow *o = orow_find(r, n, bogus[i].step);
        m[0] = orow_metric(&bogus[i], g[0]);
        m[1] = orow_metric(o, g[1]);
        rc |= store_metrics_append(st, job, (i % 3 == 0) ? m : m + 1, (i % 3 == 0) ? 2 : 1, NULL);
    }
    /* A replay of identical rows over a stretch, as after a crash. */
    rc |= append_orows(st, job, r + n / 2, 900);
    CHECK(rc == 0, "appends failed");
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    ds_sweep(st, job, r, n);
    ds_spikes(st, job, hi, lo);
    /* Reopening (no migration) changes nothing; then the v2 → v3 migration test
     * checks the rebuild from raw rows gives the same answers. */
    close_ok(st);
    printf("downsample: %zu rows, oracle sweep done\n", n);
}

/* A v2 database with metric rows and no summaries: opening it migrates to v3 and
 * builds the pyramid for the rows already there; the downsample then matches the
 * oracle, and later appends keep it right. */
static void test_migration_v2_v3(void)
{
    static struct orow r[12000];
    int64_t hi[NSPIKE], lo[NSPIKE];
    size_t n = ds_rows_make(r, hi, lo);
    char p[512];
    path_of(p, sizeof p, "v2.db");
    sqlite3 *db = raw_open(p);
    int rc = sqlite3_exec(db, store_migration_sql(1), NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, store_migration_sql(2), NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA user_version = 2;"
                              "INSERT INTO jobs(id, name, spec, state, priority, queue_seq,"
                              " created_at, updated_at) VALUES (3, 'v2', '{}', 'completed', 0, 1,"
                              " 1, 1);", NULL, NULL, NULL);
    CHECK(rc == SQLITE_OK, "v2 database: %s", sqlite3_errmsg(db));
    sqlite3_stmt *ins = NULL;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO metrics(job, step, epoch, beta, loss, xent, kl, elbo,"
                           " lr, grad_norm, capacity, time, kl_groups) VALUES (3, ?1, ?2, ?3,"
                           " ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", -1, &ins, NULL);
    for (size_t i = 0; ins && i < n; i++) {
        double g[2] = {r[i].g0, 1.0};
        sqlite3_bind_int64(ins, 1, r[i].step);
        for (int k = 0; k < STORE_M_NCOLS; k++)
            sqlite3_bind_double(ins, 2 + k, r[i].v[k]);
        sqlite3_bind_blob(ins, 12, g, sizeof g, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE)
            CHECK(0, "v2 row: %s", sqlite3_errmsg(db));
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);

    store *st = open_or_die("v2.db", NULL);
    if (!st)
        return;
    db = raw_open(p);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "not upgraded: %lld",
          (long long)raw_int(db, "PRAGMA user_version"));
    int64_t l0 = raw_int(db, "SELECT count(*) FROM metrics_sum WHERE job = 3 AND lvl = 0");
    int64_t want0 = raw_int(db, "SELECT count(DISTINCT step >> 8) FROM metrics WHERE job = 3");
    CHECK(l0 == want0 && l0 > 0, "level-0 summaries after migration: %lld want %lld",
          (long long)l0, (long long)want0);
    CHECK(raw_int(db, "SELECT sum(n) FROM metrics_sum WHERE job = 3 AND lvl = 2") == (int64_t)n,
          "level-2 row count %lld want %zu",
          (long long)raw_int(db, "SELECT sum(n) FROM metrics_sum WHERE job = 3 AND lvl = 2"), n);
    sqlite3_close(db);
    ds_sweep(st, 3, r, n);
    ds_spikes(st, 3, hi, lo);
    close_ok(st);
}

/* A v3 database with a checkpoint: opening it migrates to v4, which widens the kind
 * check in place. The old row is intact, 'fork' is accepted (through the store and in
 * raw SQL), a kind outside the list is still refused by SQLite itself, the schema text
 * says what it should, and the file passes integrity_check. */
static void test_migration_v3_v4(void)
{
    char p[512];
    path_of(p, sizeof p, "v3.db");
    sqlite3 *db = raw_open(p);
    int rc = SQLITE_OK;
    for (int v = 1; v <= 3 && rc == SQLITE_OK; v++)
        rc = sqlite3_exec(db, store_migration_sql(v), NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA user_version = 3;"
                              "INSERT INTO jobs(id, name, spec, state, priority, queue_seq,"
                              " created_at, updated_at) VALUES (5, 'v3', '{}', 'paused', 0, 1,"
                              " 1, 1);"
                              "INSERT INTO checkpoints VALUES (5, 40, 1.5, 2, 'pause', 3, x'010203');",
                          NULL, NULL, NULL);
    CHECK(rc == SQLITE_OK, "v3 database: %s", sqlite3_errmsg(db));
    sqlite3_close(db);

    store *st = open_or_die("v3.db", NULL);
    if (!st)
        return;
    vaed_err e;
    unsigned char blob[5] = {9, 8, 7, 6, 5};
    store_ckpt_put put = {.job = 5, .step = 41, .epoch = 1.6, .kind = "fork",
                          .blob = blob, .size = sizeof blob, .wait = 1};
    rc = store_checkpoint_put(st, &put, &e);
    CHECK(rc == 0, "fork checkpoint after migration: %d %s", rc, e.msg);
    close_ok(st);

    db = raw_open(p);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "not upgraded: %lld",
          (long long)raw_int(db, "PRAGMA user_version"));
    CHECK(raw_int(db, "SELECT count(*) FROM checkpoints WHERE job = 5 AND step = 40 AND "
                      "kind = 'pause' AND blob = x'010203'") == 1, "old checkpoint row changed");
    CHECK(raw_int(db, "SELECT count(*) FROM checkpoints WHERE job = 5 AND kind = 'fork' AND "
                      "size = 5") == 1, "fork checkpoint not stored");
    CHECK(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'checkpoints' AND "
                      "instr(sql, '''pause'',''fork''))') > 0") == 1,
          "schema text of checkpoints not widened");
    CHECK(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'datasets'") == 1,
          "datasets table missing");
    rc = sqlite3_exec(db, "INSERT INTO checkpoints VALUES (5, 50, 2, 3, 'bogus', 1, x'00')",
                      NULL, NULL, NULL);
    CHECK(rc == SQLITE_CONSTRAINT, "kind 'bogus' accepted by SQLite after migration: %d", rc);
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL);
    CHECK(s && sqlite3_step(s) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(s, 0), "ok") == 0,
          "integrity_check after v4 migration: %s",
          s ? (const char *)sqlite3_column_text(s, 0) : "?");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

static void test_checkpoints(void)
{
    store *st = open_or_die("ckpt.db", NULL);
    if (!st)
        return;
    vaed_err e;
    int64_t job = new_job(st, "ck", 0);
    static const struct ck cks[] = {
        {100, "periodic", 2, 1}, {150, "epoch", 2, 1},  {200, "periodic", 2, 1},
        {300, "manual", 2, 1},   {350, "epoch", 2, 1},  {400, "periodic", 2, 1},
        {450, "pause", 2, 1},    {500, "periodic", 2, 1}, {600, "final", 2, 1},
        {700, "periodic", 2, 0},
    };
    const int n = (int)(sizeof cks / sizeof cks[0]);
    unsigned char *buf = xmalloc(4096);
    struct done_rec d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    for (int c = 0; c < n; c++) {
        fill_blob(buf, cks[c].step);
        store_ckpt_put req = {.job = job, .step = cks[c].step, .epoch = cks[c].step / 100.0,
                              .kind = cks[c].kind, .blob = buf, .size = blob_size(cks[c].step),
                              .keep = cks[c].keep, .keep_epoch_end = cks[c].keep_epoch_end,
                              .wait = c % 2, .done = on_done, .done_arg = &d};
        int rc = store_checkpoint_put(st, &req, &e);
        CHECK(rc == 0, "put %lld: %s", (long long)cks[c].step, e.msg);
        memset(buf, 0, 4096);   /* the store copied it */
        if (c == 7) {
            /* Mid-way: the list matches the oracle so far. */
            store_flush(st, NULL);
            int present[16];
            oracle_retain(cks, n, c, present);
            store_ckpt *l = NULL;
            size_t ln = 0;
            store_checkpoints_list(st, job, &l, &ln, &e);
            size_t want = 0;
            for (int i = 0; i <= c; i++)
                want += (size_t)present[i];
            CHECK(ln == want, "mid-way list %zu want %zu", ln, want);
            free(l);
        }
    }
    int rc = store_flush(st, &e);
    CHECK(rc == 0, "flush: %s", e.msg);
    pthread_mutex_lock(&d.mu);
    CHECK(d.calls == n && d.rc == 0 && d.step == 700, "callbacks %d rc %d step %lld", d.calls,
          d.rc, (long long)d.step);
    pthread_mutex_unlock(&d.mu);

    int present[16];
    oracle_retain(cks, n, n - 1, present);
    store_ckpt *l = NULL;
    size_t ln = 0;
    rc = store_checkpoints_list(st, job, &l, &ln, &e);
    CHECK(rc == 0, "list: %s", e.msg);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (!present[i])
            continue;
        CHECK(k < ln && l[k].step == cks[i].step && strcmp(l[k].kind, cks[i].kind) == 0 &&
                  l[k].size == (int64_t)blob_size(cks[i].step) &&
                  l[k].epoch == cks[i].step / 100.0 && l[k].created_at > 1e9,
              "kept checkpoint %lld (%s) at list position %zu", (long long)cks[i].step,
              cks[i].kind, k);
        k++;
    }
    CHECK(k == ln, "list has %zu, oracle %zu", ln, k);
    free(l);

    /* Blobs: every kept one byte-exact, deleted ones gone, latest is the newest. */
    unsigned char *want = xmalloc(4096);
    for (int i = 0; i < n; i++) {
        void *b = NULL;
        size_t sz = 0;
        store_ckpt meta;
        rc = store_checkpoint_get(st, job, cks[i].step, &meta, &b, &sz, &e);
        if (present[i]) {
            fill_blob(want, cks[i].step);
            CHECK(rc == 0 && sz == blob_size(cks[i].step) && memcmp(b, want, sz) == 0 &&
                      meta.step == cks[i].step,
                  "blob %lld: rc %d size %zu", (long long)cks[i].step, rc, sz);
        } else {
            CHECK(rc == VAED_ENOTFOUND && b == NULL, "deleted %lld still there (rc %d)",
                  (long long)cks[i].step, rc);
        }
        free(b);
    }
    void *b = NULL;
    size_t sz = 0;
    store_ckpt meta;
    rc = store_checkpoint_get(st, job, -1, &meta, &b, &sz, &e);
    fill_blob(want, 700);
    CHECK(rc == 0 && meta.step == 700 && sz == blob_size(700) && memcmp(b, want, sz) == 0,
          "latest: rc %d step %lld", rc, (long long)meta.step);
    free(b);
    int64_t empty = new_job(st, "no ckpt", 0);
    CHECK(store_checkpoint_get(st, empty, -1, NULL, &b, &sz, &e) == VAED_ENOTFOUND,
          "latest of a job without checkpoints");
    store_ckpt_put badk = {.job = job, .step = 1, .kind = "weekly", .blob = buf, .size = 1};
    CHECK(store_checkpoint_put(st, &badk, &e) == VAED_EINVAL, "bad kind accepted");
    /* A waited-on checkpoint of an unknown job reports the failure. */
    store_ckpt_put nojob = {.job = 424242, .step = 1, .kind = "manual", .blob = buf, .size = 1,
                            .wait = 1};
    CHECK(store_checkpoint_put(st, &nojob, &e) == VAED_EDB && strstr(e.msg, "FOREIGN KEY"),
          "checkpoint of unknown job: %s", e.msg);
    free(buf);
    free(want);
    close_ok(st);
}

static void test_checkpoint_durability(void)
{
    store_opts o;
    store_opts_default(&o);
    o.flush_interval = 3600;   /* only a checkpoint or a wait commits */
    store *st = open_or_die("dur.db", &o);
    if (!st)
        return;
    char p[512];
    path_of(p, sizeof p, "dur.db");
    vaed_err e;
    int64_t job = new_job(st, "dur", 0);
    CHECK(append_range(st, job, 0, 5000, 3.0, 50, 0) == 0, "append");
    sqlite3 *raw = raw_open(p);
    /* Not yet committed: the batch waits for its deadline. */
    CHECK(raw_int(raw, "SELECT count(*) FROM metrics") == 0, "metrics committed early: %lld",
          (long long)raw_int(raw, "SELECT count(*) FROM metrics"));
    CHECK(store_write_lag_seconds(st) > 0, "lag with a queue: %g", store_write_lag_seconds(st));
    unsigned char blob[64] = {1, 2, 3};
    store_ckpt_put req = {.job = job, .step = 4999, .epoch = 1, .kind = "pause", .blob = blob,
                          .size = sizeof blob, .wait = 1};
    int rc = store_checkpoint_put(st, &req, &e);
    CHECK(rc == 0, "checkpoint: %s", e.msg);
    CHECK(raw_int(raw, "SELECT count(*) FROM metrics WHERE job = 1") == 5000 &&
              raw_int(raw, "SELECT max(step) FROM metrics") == 4999,
          "after the checkpoint an independent connection sees %lld rows",
          (long long)raw_int(raw, "SELECT count(*) FROM metrics"));
    CHECK(raw_int(raw, "SELECT count(*) FROM checkpoints WHERE step = 4999 AND size = 64") == 1,
          "checkpoint row");
    CHECK(store_write_lag_seconds(st) == 0, "lag after commit: %g", store_write_lag_seconds(st));
    /* Data enqueued and then the store closed without a flush is committed by close. */
    append_range(st, job, 5000, 6000, 3.0, 100, 0);
    close_ok(st);
    CHECK(raw_int(raw, "SELECT count(*) FROM metrics") == 6000, "close committed %lld",
          (long long)raw_int(raw, "SELECT count(*) FROM metrics"));
    sqlite3_close(raw);
}

int main(void)
{
    int rc = test_store_begin();
    if (rc)
        return rc;
    test_downsample();
    test_migration_v2_v3();
    test_migration_v3_v4();
    test_checkpoints();
    test_checkpoint_durability();
    if (getenv("VAED_STORE_BENCH"))
        bench_million();
    return test_store_end("test_store_part1");
}
