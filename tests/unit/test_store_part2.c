/* test_store_part2.c — more of test_store.c's tests (split for size; same fixtures: test_store_util.h). */
#include "tests/unit/test_store_util.h"

static void test_verbatim_epochs_events(void)
{
    store *st = open_or_die("meta.db", NULL);
    if (!st)
        return;
    vaed_err e;
    const char *evil = "x'); DROP TABLE jobs;--";
    const char *spec = "{\"name\":\"x'); DROP TABLE jobs;--\",\"q\":\"\\\"\\\\ %s %n ?1 ;\"}";
    const char *reason = "bad \"quote\" 'single' ; -- DELETE FROM jobs; \xc3\xa9\xe2\x82\xac";
    store_job_new nj = {.name = evil, .spec = spec};
    int64_t id = 0;
    int rc = store_job_insert(st, &nj, &id, &e);
    CHECK(rc == 0, "insert: %s", e.msg);
    rc = store_job_set_state(st, id, "failed", reason, &e);
    store_job j;
    rc |= store_job_get(st, id, &j, &e);
    CHECK(rc == 0 && strcmp(j.name, evil) == 0 && strcmp(j.spec, spec) == 0 &&
              strcmp(j.reason, reason) == 0,
          "verbatim: name [%s] spec [%s] reason [%s]", j.name, j.spec, j.reason);
    store_job_clear(&j);
    store_job_list l;
    rc = store_jobs_list(st, 0, 0, 10, &l, &e);
    CHECK(rc == 0 && l.total == 1, "jobs table intact: total %lld", (long long)l.total);
    store_job_list_free(&l);

    /* Epochs: two splits, kl_dims round-trip. */
    double dims[5] = {0.1, 0.2, 0.0, 3.5, 1e-9};
    for (int ep = 1; ep <= 3; ep++) {
        store_epoch tr = {.epoch = ep, .split = "train", .step = ep * 600, .xent = 100.0 / ep,
                          .kl = ep, .elbo = -(100.0 / ep + ep), .active_units = ep + 1,
                          .n_dims = 5, .kl_dims = dims, .time = ep * 10.0};
        store_epoch va = tr;
        snprintf(va.split, sizeof va.split, "valid");
        va.xent += 1;
        va.n_dims = 0;
        va.kl_dims = NULL;
        rc = store_epoch_put(st, id, &tr, &e) | store_epoch_put(st, id, &va, &e);
        CHECK(rc == 0, "epoch put: %s", e.msg);
    }
    store_flush(st, NULL);
    store_epoch *eps = NULL;
    size_t ne = 0;
    rc = store_epochs_list(st, id, &eps, &ne, &e);
    CHECK(rc == 0 && ne == 6, "epochs: %zu", ne);
    for (size_t i = 0; rc == 0 && i < ne; i++) {
        int ep = (int)i / 2 + 1, valid = (int)i % 2;
        CHECK(eps[i].epoch == ep && strcmp(eps[i].split, valid ? "valid" : "train") == 0 &&
                  eps[i].step == ep * 600 && eps[i].xent == 100.0 / ep + valid &&
                  eps[i].active_units == ep + 1 && eps[i].n_dims == (valid ? 0 : 5) &&
                  (valid || memcmp(eps[i].kl_dims, dims, sizeof dims) == 0),
              "epoch row %zu: %lld %s", i, (long long)eps[i].epoch, eps[i].split);
    }
    store_epochs_free(eps, ne);

    /* Schedule events: supersede rule checked against a naive oracle. */
    static const struct { int64_t step; const char *src; } evs[] = {
        {0, "submit"}, {500, "override"}, {500, "override"}, {800, "override"}, {300, "override"},
    };
    const int nev = (int)(sizeof evs / sizeof evs[0]);
    for (int i = 0; i < nev; i++) {
        char sched[128];
        snprintf(sched, sizeof sched, "{\"kind\":\"linear\",\"to\":%d,\"note\":\"%s\"}", i,
                 i == 2 ? "it's; --" : "");
        int64_t seq = -1;
        rc = store_event_add(st, id, 1000.0 + i, evs[i].step, sched, evs[i].src, i % 2, &seq, &e);
        CHECK(rc == 0 && (i % 2 == 0 || seq == i + 1), "event %d: rc %d seq %lld %s", i, rc,
              (long long)seq, e.msg);
    }
    CHECK(store_event_add(st, id, 0, 1, "{}", "client", 0, NULL, &e) == VAED_EINVAL, "source");
    CHECK(store_event_add(st, id, 0, 1, "{bad", "override", 0, NULL, &e) == VAED_EINVAL, "json");
    store_flush(st, NULL);
    store_event *ev = NULL;
    size_t nv = 0;
    rc = store_events_list(st, id, &ev, &nv, &e);
    CHECK(rc == 0 && (int)nv == nev, "events: %zu", nv);
    for (int i = 0; rc == 0 && i < nev && i < (int)nv; i++) {
        int sup = 0;   /* a later event effective at or before this one's step */
        for (int q = i + 1; q < nev; q++)
            sup |= evs[q].step <= evs[i].step;
        json_t *js = json_loads(ev[i].schedule, 0, NULL);
        CHECK(ev[i].seq == i + 1 && ev[i].effective_step == evs[i].step &&
                  ev[i].requested_at == 1000.0 + i && strcmp(ev[i].source, evs[i].src) == 0 &&
                  ev[i].superseded == sup && js &&
                  json_integer_value(json_object_get(js, "to")) == i,
              "event %d: seq %lld step %lld superseded %d want %d", i, (long long)ev[i].seq,
              (long long)ev[i].effective_step, ev[i].superseded, sup);
        json_decref(js);
    }
    store_events_free(ev, nv);
    close_ok(st);
}

static void test_concurrent(void)
{
    store_opts o;
    store_opts_default(&o);
    o.flush_interval = 0.02;
    o.read_conns = 2;            /* fewer than readers: exercises waiting for the pool */
    o.fsync_checkpoints = 0;
    store *st = open_or_die("conc.db", &o);
    if (!st)
        return;
    int64_t job = new_job(st, "conc", 0);
    enum { NR = 4 };
    pthread_t th[NR];
    struct reader_arg ra[NR];
    volatile int stop_flag = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    for (int i = 0; i < NR; i++) {
        ra[i] = (struct reader_arg){.st = st, .job = job, .stop_flag = &stop_flag, .mu = &mu};
        pthread_create(&th[i], NULL, reader_main, &ra[i]);
    }
    unsigned char blob[2048];
    memset(blob, 0xab, sizeof blob);
    vaed_err e;
    int werr = 0;
    for (int64_t s = 0; s < 30000; s += 100) {
        werr |= append_range(st, job, s, s + 100, 5.0, 100, 0);
        if (s % 3000 == 0) {
            store_ckpt_put req = {.job = job, .step = s + 99, .kind = "periodic", .blob = blob,
                                  .size = sizeof blob, .keep = 3};
            werr |= store_checkpoint_put(st, &req, &e);
            werr |= store_job_set_progress(st, job, s + 99, 0, 0, &e);
        }
        if (s % 1000 == 0)
            usleep(1000);
    }
    werr |= store_flush(st, &e);
    usleep(50000);
    pthread_mutex_lock(&mu);
    stop_flag = 1;
    pthread_mutex_unlock(&mu);
    long reads = 0;
    for (int i = 0; i < NR; i++) {
        pthread_join(th[i], NULL);
        CHECK(ra[i].errors == 0 && ra[i].regressions == 0, "reader %d: %ld errors %ld bad",
              i, ra[i].errors, ra[i].regressions);
        reads += ra[i].reads;
    }
    CHECK(werr == 0, "writes failed: %s", e.msg);
    CHECK(reads > NR, "readers made %ld reads", reads);
    store_ckpt *l = NULL;
    size_t n = 0;
    store_checkpoints_list(st, job, &l, &n, &e);
    CHECK(n == 3, "retention under load kept %zu", n);
    free(l);
    printf("concurrent: %ld reads beside the writer\n", reads);
    close_ok(st);
}

static void test_disk_full(void)
{
    store_opts o;
    store_opts_default(&o);
    o.flush_interval = 0.05;
    o.fsync_checkpoints = 0;
    store *st = open_or_die("full.db", &o);
    if (!st)
        return;
    vaed_err e;
    int64_t job = new_job(st, "full", 0);
    append_range(st, job, 0, 100, 0.0, 100, 0);
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    /* Cap the file at about its current size: the next large batch cannot fit. */
    char p[512];
    path_of(p, sizeof p, "full.db");
    sqlite3 *raw = raw_open(p);
    int64_t pages = raw_int(raw, "PRAGMA page_count"), psz = raw_int(raw, "PRAGMA page_size");
    store_set_max_db_bytes(st, (pages + 2) * psz);
    append_range(st, job, 100, 20100, 0.0, 100, 3);
    int rc = store_flush(st, &e);
    store_stats ss;
    store_get_stats(st, &ss);
    CHECK(rc == VAED_EDB && ss.failing && ss.write_errors > 0 && strstr(ss.last_error, "full"),
          "full disk: rc %d failing %d last_error %s", rc, ss.failing, ss.last_error);
    /* (the 200 appends are merged into fewer ops: their bytes are what stays queued) */
    CHECK(ss.pending_ops >= 1 && ss.pending_bytes >= 20000 * sizeof(store_metric),
          "queued data kept: %zu ops, %zu bytes", ss.pending_ops, ss.pending_bytes);
    /* A synchronous write fails fast rather than hanging. */
    double t0 = now_s();
    rc = store_job_set_progress(st, job, 1, 1, 1, &e);
    CHECK(rc == VAED_EDB && now_s() - t0 < 10, "sync write while full: rc %d", rc);
    CHECK(raw_int(raw, "SELECT count(*) FROM metrics") == 100, "partial batch committed");
    /* Rows enqueued while failing are applied after the kept ones: these replace. */
    append_range(st, job, 20000, 20010, 4.0, 10, 0);
    /* Space again: the kept rows land, all of them, in order. */
    store_set_max_db_bytes(st, 0);
    rc = store_flush(st, &e);
    store_get_stats(st, &ss);
    CHECK(rc == 0 && !ss.failing && ss.pending_ops == 0, "after space: rc %d %s", rc, e.msg);
    store_series s;
    rc = store_metrics_range(st, job, -1, 19999, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && check_series(&s, 0, 20000, 0.0, STORE_MCOL_ALL) == 0, "rows after recovery %zu",
          s.n);
    store_series_free(&s);
    rc = store_metrics_range(st, job, 19999, 20009, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && check_series(&s, 20000, 20010, 4.0, STORE_MCOL_ALL) == 0,
          "newer rows lost to retried ones (%zu)", s.n);
    store_series_free(&s);
    rc = store_metrics_range(st, job, 20009, -1, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && check_series(&s, 20010, 20100, 0.0, STORE_MCOL_ALL) == 0, "tail %zu", s.n);
    store_series_free(&s);
    sqlite3_close(raw);
    close_ok(st);

    /* Closing while the disk stays full gives up after a few tries and says so. */
    st = open_or_die("lost.db", &o);
    if (!st)
        return;
    job = new_job(st, "lost", 0);
    store_set_max_db_bytes(st, 4096);
    append_range(st, job, 0, 5000, 0.0, 100, 0);
    rc = store_close(st, &e);
    CHECK(rc == VAED_EDB && strstr(e.msg, "5000 writes lost"),
          "close with a full disk: rc %d %s", rc, e.msg);

    /* The queue cap: enqueue refuses instead of growing without bound. */
    o.flush_interval = 3600;
    o.max_pending_bytes = 64 * 1024;
    st = open_or_die("cap.db", &o);
    if (!st)
        return;
    job = new_job(st, "cap", 0);
    int64_t s0 = 0;
    rc = 0;
    while (rc == 0 && s0 < 100000) {
        rc = append_range(st, job, s0, s0 + 10, 0.0, 10, 0);
        s0 += 10;
    }
    CHECK(rc == VAED_ETOOBIG && s0 < 100000, "cap: rc %d after %lld rows", rc, (long long)s0);
    CHECK(store_flush(st, &e) == 0, "flush: %s", e.msg);
    CHECK(append_range(st, job, s0, s0 + 10, 0.0, 10, 0) == 0, "append after draining");
    close_ok(st);
}

static void test_kill9(void)
{
    char p[512];
    path_of(p, sizeof p, "kill.db");
    int fds[2];
    if (pipe(fds) != 0) {
        CHECK(0, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_writer(p, fds[1]);
    }
    close(fds[1]);
    int64_t last = -1, step;
    int got = 0;
    while (got < 3 && read(fds[0], &step, sizeof step) == (ssize_t)sizeof step) {
        last = step;
        got++;
    }
    usleep(80000);  /* past a few more flush intervals: mid-way through later batches */
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(fds[0]);
    CHECK(got == 3 && WIFSIGNALED(status), "child: %d checkpoints, status %d", got, status);

    sqlite3 *raw = raw_open(p);
    char ok[64];
    raw_text(raw, "PRAGMA integrity_check", ok, sizeof ok);
    CHECK(strcmp(ok, "ok") == 0, "integrity after kill -9: %s", ok);
    sqlite3_close(raw);
    store *st = open_or_die("kill.db", NULL);
    if (!st)
        return;
    store_ckpt meta;
    void *b = NULL;
    size_t sz;
    vaed_err e;
    int rc = store_checkpoint_get(st, 1, -1, &meta, &b, &sz, &e);
    free(b);
    CHECK(rc == 0 && meta.step >= last, "latest checkpoint %lld, last reported %lld",
          (long long)meta.step, (long long)last);
    store_series s;
    rc = store_metrics_range(st, 1, -1, -1, STORE_MCOL_ALL, 0, &s, &e);
    CHECK(rc == 0 && (int64_t)s.n >= meta.step + 1, "rows %zu, checkpoint at %lld", s.n,
          (long long)meta.step);
    /* Every row up to the checkpoint, and whatever came after, is whole and right. */
    int64_t n_ok = s.n > 0 ? s.step[s.n - 1] + 1 : 0;
    CHECK(rc == 0 && check_series(&s, 0, n_ok, 9.0, STORE_MCOL_ALL) == 0,
          "rows after kill -9 (%zu)", s.n);
    printf("kill -9: checkpoint at step %lld, %zu rows survived\n", (long long)meta.step, s.n);
    store_series_free(&s);
    close_ok(st);
}

static void test_integrity_all(void)
{
    static const char *const files[] = {"a.db", "v1.db", "jobs.db", "metrics.db", "ckpt.db",
                                        "dur.db", "meta.db", "conc.db", "full.db", "cap.db",
                                        "kill.db", "lost.db", "ds.db", "v2.db"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[512], ok[64];
        path_of(p, sizeof p, files[i]);
        sqlite3 *raw = raw_open(p);
        raw_text(raw, "PRAGMA integrity_check", ok, sizeof ok);
        CHECK(strcmp(ok, "ok") == 0, "%s: integrity_check %s", files[i], ok);
        CHECK(raw_int(raw, "SELECT count(*) FROM pragma_foreign_key_check") == 0,
              "%s: foreign key violations", files[i]);
        sqlite3_close(raw);
    }
}

int main(void)
{
    int rc = test_store_begin();
    if (rc)
        return rc;
    /* The forking test runs first, while this process has no threads. */
    test_kill9();
    test_verbatim_epochs_events();
    test_concurrent();
    test_disk_full();
    test_integrity_all();
    return test_store_end("test_store_part2");
}
