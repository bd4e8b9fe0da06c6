/* test_bus.c — the event bus (daemon/bus.c) and the SSE formatting (api/events.c):
 * order and ids, the current-state first event, resuming after an id, falling off
 * the ring, step throttling (the newest step wins), freeing finished rings, memory
 * bounds, and many publishers and readers at once (run it under TSan too). */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/events.h"
#include "daemon/bus.h"
#include "tests/unit/t.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bus *mk(size_t ring, double hz, double linger)
{
    bus_config c;
    bus_config_default(&c);
    c.ring_cap = ring;
    c.step_hz = hz;
    c.linger_s = linger;
    return bus_new(&c);
}

/* The data: line of an SSE message, parsed (NULL if there is none or it is not JSON). */
static json_t *data_of(const char *msg)
{
    const char *d = strstr(msg, "\ndata: ");
    if (!d)
        return NULL;
    d += 7;
    const char *e = strchr(d, '\n');
    if (!e)
        return NULL;
    json_error_t je;
    return json_loadb(d, (size_t)(e - d), 0, &je);
}

static void test_order_and_snapshot(void)
{
    bus *b = mk(16, 0, 60);
    bus_sub *s = bus_subscribe(b, 7, -1, "queued", 0, NULL);
    bus_event ev;
    CHECK(bus_next(s, &ev) == 1, "a fresh subscriber gets the current state first");
    CHECK(ev.type == BUS_STATE && !strcmp(ev.u.state.state, "queued") && ev.id == 0,
          "snapshot: type %d state %s id %llu", ev.type, ev.u.state.state,
          (unsigned long long)ev.id);
    CHECK(bus_next(s, &ev) == 0, "then nothing until a publish");

    bus_publish_state(b, 7, "running", NULL);
    bus_publish_checkpoint(b, 7, 100, "periodic");
    bus_epoch e = {.epoch = 1, .step = 600, .train_loss = 99.5, .has_test = 1, .xent = 80,
                   .kl = 20, .elbo = -100, .active_units = 5};
    bus_publish_epoch(b, 7, &e);
    bus_publish_schedule(b, 7, 601, "{\"kind\":\"constant\",\n\"value\":0.5}");
    bus_publish_state(b, 7, "failed", "loss became NaN at step 650");

    int want_type[] = {BUS_STATE, BUS_CHECKPOINT, BUS_EPOCH, BUS_SCHEDULE, BUS_STATE};
    for (int i = 0; i < 5; i++) {
        int got = bus_next(s, &ev);
        CHECK(got && ev.id == (uint64_t)i + 1 && ev.type == want_type[i] && ev.job == 7,
              "event %d: got %d id %llu type %d job %lld", i, got, (unsigned long long)ev.id,
              ev.type, (long long)ev.job);
        if (!got)
            break;
        if (i == 1)
            CHECK(ev.u.checkpoint.step == 100 && !strcmp(ev.u.checkpoint.kind, "periodic"),
                  "checkpoint %lld %s", (long long)ev.u.checkpoint.step, ev.u.checkpoint.kind);
        if (i == 2)
            CHECK(ev.u.epoch.step == 600 && ev.u.epoch.train_loss == 99.5 &&
                      ev.u.epoch.active_units == 5,
                  "epoch figures");
        if (i == 3)
            CHECK(ev.u.schedule.effective_step == 601 && ev.text &&
                      !strcmp(ev.text, "{\"kind\":\"constant\", \"value\":0.5}"),
                  "schedule text (newline replaced): %s", ev.text ? ev.text : "(null)");
        if (i == 4)
            CHECK(!strcmp(ev.u.state.state, "failed") && ev.text &&
                      !strcmp(ev.text, "loss became NaN at step 650"),
                  "failed with reason: %s", ev.text ? ev.text : "(null)");
    }
    CHECK(bus_next(s, &ev) == 0, "nothing more");

    /* A late subscriber starts at the current state as of the newest id. */
    bus_sub *late = bus_subscribe(b, 7, -1, "running", 0, NULL);
    CHECK(bus_next(late, &ev) && ev.type == BUS_STATE && ev.id == 5 &&
              !strcmp(ev.u.state.state, "failed") && ev.text &&
              !strcmp(ev.text, "loss became NaN at step 650"),
          "late snapshot: id %llu state %s (the bus's record wins over the fallback)",
          (unsigned long long)ev.id, ev.u.state.state);
    bus_unsubscribe(late);
    bus_unsubscribe(s);
    bus_free(b);
}

static void test_resume_and_reset(void)
{
    bus *b = mk(8, 0, 60);
    bus_sub *slow = bus_subscribe(b, 1, -1, "running", 0, NULL);
    bus_event ev;
    CHECK(bus_next(slow, &ev) && ev.id == 0, "snapshot at id 0");
    for (int i = 1; i <= 20; i++)
        bus_publish_checkpoint(b, 1, i * 10, "periodic");
    /* ring of 8: ids 13..20 are kept */
    CHECK(bus_next(slow, &ev) && ev.type == BUS_RESET && ev.u.reset.after == 0 &&
              ev.u.reset.first == 13 && ev.u.reset.latest == 20,
          "fell off: reset after %llu first %llu latest %llu",
          (unsigned long long)ev.u.reset.after, (unsigned long long)ev.u.reset.first,
          (unsigned long long)ev.u.reset.latest);
    CHECK(bus_next(slow, &ev) && ev.type == BUS_STATE && ev.id == 20,
          "then the current state as of id 20 (got type %d id %llu)", ev.type,
          (unsigned long long)ev.id);
    CHECK(bus_next(slow, &ev) == 0, "then live only");
    bus_publish_checkpoint(b, 1, 999, "manual");
    CHECK(bus_next(slow, &ev) && ev.id == 21 && ev.u.checkpoint.step == 999, "live id 21");

    struct { int64_t last; int reset; uint64_t first_id; } cases[] = {
        /* the ring now holds 14..21 */
        {15, 0, 16}, {13, 0, 14}, {20, 0, 21}, {21, 0, 0}, {12, 1, 0}, {0, 1, 0}, {22, 1, 0},
        {99, 1, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        bus_sub *s = bus_subscribe(b, 1, cases[k].last, "running", 0, NULL);
        int got = bus_next(s, &ev);
        if (cases[k].reset) {
            CHECK(got && ev.type == BUS_RESET && ev.u.reset.after == (uint64_t)cases[k].last,
                  "last %lld: want a reset, got %d type %d", (long long)cases[k].last, got,
                  ev.type);
            json_t *d = NULL;
            size_t len;
            char *msg = api_sse_format(&ev, &len);
            d = data_of(msg);
            const char *why = json_string_value(json_object_get(d, "reason"));
            CHECK(why && !strcmp(why, cases[k].last > 21 ? "unknown_id" : "gap"),
                  "reset reason %s", why ? why : "(none)");
            CHECK(strncmp(msg, "id:", 3) != 0, "a reset carries no id: %s", msg);
            json_decref(d);
            free(msg);
            CHECK(bus_next(s, &ev) && ev.type == BUS_STATE && ev.id == 21, "then state at 21");
        } else if (cases[k].first_id) {
            uint64_t want = cases[k].first_id;
            int n = 0;
            while (got) {
                CHECK(ev.id == want, "last %lld: replay id %llu, want %llu",
                      (long long)cases[k].last, (unsigned long long)ev.id,
                      (unsigned long long)want);
                want++, n++;
                got = bus_next(s, &ev);
            }
            CHECK(want == 22, "last %lld: replay ends at 21 (next %llu)", (long long)cases[k].last,
                  (unsigned long long)want);
        } else {
            CHECK(!got, "last %lld (the newest): nothing to replay", (long long)cases[k].last);
        }
        bus_unsubscribe(s);
    }

    /* Memory stays bounded however many events go through. */
    bus_stats st0, st1;
    bus_get_stats(b, &st0);
    for (int i = 0; i < 10000; i++)
        bus_publish_schedule(b, 1, i, "{\"kind\":\"constant\",\"value\":1}");
    bus_get_stats(b, &st1);
    CHECK(st1.bytes <= st0.bytes + 8 * 64, "ring bytes %zu after 10000 events, %zu before",
          st1.bytes, st0.bytes);
    CHECK(st1.channels == 1 && st1.subscribers == 1, "channels %zu subscribers %zu",
          st1.channels, st1.subscribers);
    bus_unsubscribe(slow);
    bus_free(b);
}

static void test_throttle(void)
{
    bus *b = mk(1024, 10, 60);
    bus_sub *s = bus_subscribe(b, 3, -1, "running", 0, NULL);
    bus_event ev;
    bus_next(s, &ev);
    double t0 = mono();
    int64_t i = 0;
    while (mono() - t0 < 0.55) {
        bus_step st = {.step = i, .time = mono(), .beta = (double)i};
        bus_publish_step(b, 3, &st);
        i++;
    }
    int64_t last_published = i - 1;
    bus_publish_state(b, 3, "completed", NULL);
    int nsteps = 0;
    double prev_t = -1;
    int64_t prev_step = -1;
    int ok_gap = 1, ok_order = 1, saw_final = 0;
    int64_t last_step_seen = -1;
    while (bus_next(s, &ev)) {
        if (ev.type == BUS_STEP) {
            nsteps++;
            /* All but the one flushed by the state change are 0.1 s apart by the bus's
             * clock; the stamps here are taken before each publish call, so a publisher
             * preempted between the two (a loaded machine, a sanitizer) shows less:
             * the count below is the strict check, this one catches a missing throttle. */
            if (prev_t >= 0 && ev.u.step.time - prev_t < 0.05 &&
                ev.u.step.step != last_published)
                ok_gap = 0;
            if (ev.u.step.step <= prev_step || ev.u.step.beta != (double)ev.u.step.step)
                ok_order = 0;
            prev_t = ev.u.step.time;
            prev_step = ev.u.step.step;
            last_step_seen = ev.u.step.step;
        } else if (ev.type == BUS_STATE) {
            saw_final = !strcmp(ev.u.state.state, "completed");
            CHECK(ev.u.state.step == last_published + 1, "state step %lld, want %lld",
                  (long long)ev.u.state.step, (long long)last_published + 1);
        }
    }
    /* 0.55 s at 10/s: the first, one per 0.1 s after it (5), and the final flush */
    CHECK(nsteps >= 5 && nsteps <= 8, "%d step events for %lld steps in 0.55 s", nsteps,
          (long long)i);
    CHECK(i > 1000, "the publisher ran freely: %lld steps", (long long)i);
    CHECK(ok_gap, "step events closer than 0.05 s apart");
    CHECK(ok_order, "step events out of order or mixed up");
    CHECK(last_step_seen == last_published, "the newest step wins: last seen %lld, published %lld",
          (long long)last_step_seen, (long long)last_published);
    CHECK(saw_final, "final state read");
    bus_stats bs;
    bus_get_stats(b, &bs);
    CHECK(bs.steps_coalesced + (uint64_t)nsteps >= (uint64_t)i - 1,
          "coalesced %llu + emitted %d covers %lld steps", (unsigned long long)bs.steps_coalesced,
          nsteps, (long long)i);
    bus_unsubscribe(s);
    bus_free(b);
}

static void test_finished_and_gc(void)
{
    bus *b = mk(16, 0, 0.0);
    /* A job finished before the bus heard of it: its state, and nothing more. */
    bus_sub *s = bus_subscribe(b, 42, -1, "completed", 1200, NULL);
    bus_event ev;
    CHECK(bus_next(s, &ev) && ev.type == BUS_STATE && !strcmp(ev.u.state.state, "completed") &&
              ev.u.state.step == 1200,
          "finished fallback");
    CHECK(bus_next(s, &ev) == 0, "nothing after it");
    bus_stats st;
    bus_get_stats(b, &st);
    CHECK(st.channels == 0, "no ring is made for a finished job (%zu)", st.channels);
    bus_unsubscribe(s);
    s = bus_subscribe(b, 42, 17, "cancelled", 3, "by the user");
    CHECK(bus_next(s, &ev) && ev.type == BUS_RESET, "an id the bus never had: reset");
    CHECK(bus_next(s, &ev) && ev.type == BUS_STATE && ev.text && !strcmp(ev.text, "by the user"),
          "then the state with its reason");
    bus_unsubscribe(s);

    /* A finished ring goes once nobody reads it and its linger time (0 here) passed;
     * the sweep runs at most once a second, on the next bus call. */
    bus_publish_state(b, 5, "running", NULL);
    bus_publish_state(b, 5, "completed", NULL);
    bus_publish_state(b, 6, "running", NULL);
    bus_sub *r = bus_subscribe(b, 6, -1, "running", 0, NULL);
    bus_get_stats(b, &st);
    CHECK(st.channels == 2, "two rings (%zu)", st.channels);
    struct timespec ts = {1, 100000000};
    nanosleep(&ts, NULL);
    bus_publish_state(b, 6, "paused", NULL);
    bus_get_stats(b, &st);
    CHECK(st.channels == 1, "the finished ring was freed (%zu left)", st.channels);
    bus_unsubscribe(r);
    bus_free(b);
}

/* What a cluster's mirror (daemon/mirror.c) asks of the bus: the jobs some client
 * follows, and the state the bus last had for one. */
static void test_watched(void)
{
    bus *b = mk(16, 0, 60.0);
    int64_t ids[4];
    CHECK(bus_watched(b, ids, 4) == 0, "no subscriber: nothing watched");
    bus_publish_state(b, 7, "running", NULL); /* a ring, no subscriber */
    char st[16] = "";
    CHECK(bus_state_of(b, 7, st) && !strcmp(st, "running"), "state of 7: '%s'", st);
    CHECK(!bus_state_of(b, 8, st), "no state for a job the bus never had");
    bus_sub *a = bus_subscribe(b, 8, -1, "queued", 0, NULL);
    bus_sub *c = bus_subscribe(b, 9, -1, "running", 3, NULL);
    bus_sub *d = bus_subscribe(b, 9, -1, "running", 3, NULL);
    size_t n = bus_watched(b, ids, 4);
    CHECK(n == 2 && ((ids[0] == 8 && ids[1] == 9) || (ids[0] == 9 && ids[1] == 8)),
          "jobs 8 and 9 watched once each (%zu)", n);
    CHECK(bus_watched(b, ids, 1) == 2, "the count is whole when ids has less room");
    CHECK(bus_state_of(b, 8, st) && !strcmp(st, "queued"), "a subscriber's fallback state: '%s'",
          st);
    bus_publish_state(b, 8, "running", NULL);
    CHECK(bus_state_of(b, 8, st) && !strcmp(st, "running"), "the newest state: '%s'", st);
    bus_unsubscribe(a);
    bus_unsubscribe(c);
    n = bus_watched(b, ids, 4);
    CHECK(n == 1 && ids[0] == 9, "job 9 still watched by its second client (%zu)", n);
    bus_unsubscribe(d);
    CHECK(bus_watched(b, ids, 4) == 0, "nobody left");
    bus_free(b);
}

static void test_format(void)
{
    bus_event ev = {.id = 12, .type = BUS_STEP, .job = 3};
    ev.u.step = (bus_step){.step = 599, .epoch = 0.9983333333333333, .beta = 0.1, .loss = 120.25,
                           .xent = 100, .kl = 20.25, .elbo = -120.25, .lr = 1e-3,
                           .grad_norm = NAN, .time = 1700000000.5, .samples_per_sec = 23000};
    size_t len = 0;
    char *m = api_sse_format(&ev, &len);
    if (!m) {
        CHECK(m != NULL, "api_sse_format returned NULL");
        return;
    }
    CHECK(len == strlen(m), "length");
    const char *head = "id: 12\nevent: step\ndata: {";
    CHECK(!strncmp(m, head, strlen(head)), "head: %s", m);
    CHECK(len > 2 && !strcmp(m + len - 2, "\n\n") && !strstr(m, "\n\n\n"), "one blank line");
    json_t *d = data_of(m);
    CHECK(d != NULL, "data is JSON: %s", m);
    CHECK(json_integer_value(json_object_get(d, "step")) == 599 &&
              json_integer_value(json_object_get(d, "job")) == 3,
          "step and job");
    CHECK(json_real_value(json_object_get(d, "epoch")) == ev.u.step.epoch &&
              json_real_value(json_object_get(d, "lr")) == 1e-3 &&
              json_real_value(json_object_get(d, "time")) == 1700000000.5,
          "doubles round-trip exactly");
    CHECK(json_is_null(json_object_get(d, "grad_norm")), "NaN is null");
    json_decref(d);
    free(m);

    bus_event st = {.id = 4, .type = BUS_STATE, .job = 1, .text = "bad \"data\"\nline\\2\x01"};
    snprintf(st.u.state.state, sizeof st.u.state.state, "failed");
    st.u.state.step = -1;
    m = api_sse_format(&st, &len);
    d = data_of(m);
    CHECK(d && !strcmp(json_string_value(json_object_get(d, "reason")), "bad \"data\"\nline\\2\x01") &&
              json_is_null(json_object_get(d, "step")) &&
              !strcmp(json_string_value(json_object_get(d, "state")), "failed"),
          "state with an escaped reason: %s", m);
    json_decref(d);
    free(m);

    bus_event sc = {.id = 5, .type = BUS_SCHEDULE, .job = 1,
                    .text = "{\"kind\":\"linear\",\"from\":0,\"to\":1}"};
    sc.u.schedule.effective_step = 77;
    m = api_sse_format(&sc, &len);
    d = data_of(m);
    CHECK(d && json_integer_value(json_object_get(d, "effective_step")) == 77 &&
              !strcmp(json_string_value(json_object_get(json_object_get(d, "schedule"), "kind")),
                      "linear"),
          "schedule: %s", m);
    CHECK(strstr(m, "event: schedule\n") != NULL, "event name");
    json_decref(d);
    free(m);

    bus_event ep = {.id = 6, .type = BUS_EPOCH, .job = 1};
    ep.u.epoch = (bus_epoch){.epoch = 2, .step = 1200, .train_loss = 110, .train_xent = 90,
                             .train_kl = 20, .train_elbo = -110, .train_beta = 0.2,
                             .has_test = 0};
    m = api_sse_format(&ep, &len);
    d = data_of(m);
    CHECK(d && json_real_value(json_object_get(json_object_get(d, "train"), "beta")) == 0.2 &&
              json_is_null(json_object_get(d, "test")) &&
              json_integer_value(json_object_get(d, "epoch")) == 2,
          "epoch: %s", m);
    json_decref(d);
    free(m);

    bus_event ck = {.id = 9, .type = BUS_CHECKPOINT, .job = 1};
    ck.u.checkpoint.step = 1200;
    snprintf(ck.u.checkpoint.kind, sizeof ck.u.checkpoint.kind, "epoch");
    m = api_sse_format(&ck, &len);
    d = data_of(m);
    CHECK(d && json_integer_value(json_object_get(d, "step")) == 1200 &&
              !strcmp(json_string_value(json_object_get(d, "kind")), "epoch"),
          "checkpoint: %s", m);
    json_decref(d);
    free(m);

    /* A schedule as large as a spec allows (256 points) still makes one message. */
    char *big = malloc(20000);
    size_t p = (size_t)sprintf(big, "{\"kind\":\"piecewise\",\"points\":[");
    for (int i = 0; i < 256; i++)
        p += (size_t)sprintf(big + p, "%s[%d,0.12345678901234567]", i ? "," : "", i);
    sprintf(big + p, "]}");
    sc.text = big;
    m = api_sse_format(&sc, &len);
    d = data_of(m);
    CHECK(d && json_array_size(json_object_get(json_object_get(d, "schedule"), "points")) == 256,
          "a %zu-byte schedule event", len);
    json_decref(d);
    free(m);
    free(big);
}

/* ---- many threads ---- */

enum { NJOBS = 4, NREADERS = 12, NSTEPS = 20000 };

typedef struct reader_arg {
    bus *b;
    int64_t job;
    int done_ok;
    long events, resets, errors;
    char why[200];
} reader_arg;

static atomic_int publishers_done;

static void *publisher(void *p)
{
    bus *b = ((reader_arg *)p)->b;
    int64_t job = ((reader_arg *)p)->job;
    bus_publish_state(b, job, "running", NULL);
    for (int64_t i = 0; i < NSTEPS; i++) {
        bus_step s = {.step = i, .beta = (double)i};
        bus_publish_step(b, job, &s);
        if (i % 1000 == 999)
            bus_publish_checkpoint(b, job, i + 1, "periodic");
    }
    bus_publish_state(b, job, "completed", NULL);
    atomic_fetch_add(&publishers_done, 1);
    return NULL;
}

/* Read a job's events until its final state; check that ids only grow, that between
 * resets they are consecutive, and that consecutive steps are consecutive. */
static void *reader(void *p)
{
    reader_arg *a = p;
    bus_sub *s = bus_subscribe(a->b, a->job, -1, "queued", 0, NULL);
    uint64_t prev_id = 0;
    int have_prev = 0, after_reset = 0;
    int64_t prev_step = -1;
    for (long spins = 0; spins < 200000000L; spins++) {
        bus_event ev;
        if (!bus_next(s, &ev)) {
            sched_yield();
            continue;
        }
        a->events++;
        if (ev.type == BUS_RESET) {
            a->resets++;
            after_reset = 1;
            continue;
        }
        if (have_prev && !after_reset && ev.id != prev_id + 1) {
            if (!a->errors++)
                snprintf(a->why, sizeof a->why, "id %llu after %llu", (unsigned long long)ev.id,
                         (unsigned long long)prev_id);
        }
        if (after_reset && ev.type != BUS_STATE) {
            if (!a->errors++)
                snprintf(a->why, sizeof a->why, "after a reset came type %d", ev.type);
        }
        if (ev.type == BUS_STEP) {
            if (prev_step >= 0 && !after_reset && ev.u.step.step != prev_step + 1 &&
                !a->errors++)
                snprintf(a->why, sizeof a->why, "step %lld after %lld",
                         (long long)ev.u.step.step, (long long)prev_step);
            if (ev.u.step.beta != (double)ev.u.step.step && !a->errors++)
                snprintf(a->why, sizeof a->why, "torn step record");
            prev_step = ev.u.step.step;
        } else if (after_reset) {
            prev_step = -1; /* steps restart from an unknown point */
        }
        after_reset = 0;
        prev_id = ev.id;
        have_prev = 1;
        if (ev.type == BUS_STATE && !strcmp(ev.u.state.state, "completed")) {
            a->done_ok = 1;
            break;
        }
    }
    bus_unsubscribe(s);
    return NULL;
}

/* Subscribe and unsubscribe over and over while all this goes on. */
static void *churn(void *p)
{
    reader_arg *a = p;
    while (atomic_load(&publishers_done) < NJOBS) {
        bus_sub *s = bus_subscribe(a->b, a->job, (int64_t)(a->events++ % 50), "running", 0, NULL);
        bus_event ev;
        for (int k = 0; k < 5 && bus_next(s, &ev); k++)
            ;
        bus_unsubscribe(s);
    }
    return NULL;
}

static void test_threads(void)
{
    bus *b = mk(256, 0, 60);
    reader_arg pubs[NJOBS], rds[NREADERS], ch[2];
    pthread_t tp[NJOBS], tr[NREADERS], tc[2];
    memset(rds, 0, sizeof rds);
    for (int i = 0; i < NREADERS; i++) {
        rds[i].b = b;
        rds[i].job = 100 + i % NJOBS;
        pthread_create(&tr[i], NULL, reader, &rds[i]);
    }
    for (int i = 0; i < 2; i++) {
        ch[i] = (reader_arg){.b = b, .job = 100 + i};
        pthread_create(&tc[i], NULL, churn, &ch[i]);
    }
    for (int i = 0; i < NJOBS; i++) {
        pubs[i] = (reader_arg){.b = b, .job = 100 + i};
        pthread_create(&tp[i], NULL, publisher, &pubs[i]);
    }
    for (int i = 0; i < NJOBS; i++)
        pthread_join(tp[i], NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(tc[i], NULL);
    long total = 0, resets = 0;
    for (int i = 0; i < NREADERS; i++) {
        pthread_join(tr[i], NULL);
        CHECK(rds[i].done_ok, "reader %d did not see the final state", i);
        CHECK(rds[i].errors == 0, "reader %d: %ld errors, first: %s", i, rds[i].errors,
              rds[i].why);
        total += rds[i].events;
        resets += rds[i].resets;
    }
    bus_stats st;
    bus_get_stats(b, &st);
    CHECK(st.subscribers == 0, "subscribers left: %zu", st.subscribers);
    CHECK(st.published == (uint64_t)NJOBS * (NSTEPS + NSTEPS / 1000 + 2),
          "published %llu, want %llu", (unsigned long long)st.published,
          (unsigned long long)NJOBS * (NSTEPS + NSTEPS / 1000 + 2));
    printf("threads: %d readers read %ld events, %ld resets\n", NREADERS, total, resets);
    bus_free(b);
}

int main(void)
{
    test_order_and_snapshot();
    test_resume_and_reset();
    test_throttle();
    test_finished_and_gc();
    test_watched();
    test_format();
    test_threads();
    return t_done("test_bus");
}
