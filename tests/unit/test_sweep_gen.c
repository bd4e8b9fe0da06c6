/* test_sweep_gen.c — a sweep's trials (daemon/sweep_gen.h): the grid's order, random
 * draws that depend on (seed, trial) only and stay inside their ranges, log and int
 * domains, and the refusals naming the field. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/sweep_gen.h"
#include "t.h"

static json_t *js(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) {
        fprintf(stderr, "bad test JSON: %s: %s\n", text, e.text);
        abort();
    }
    return j;
}

static char *dump(const json_t *j) { return json_dumps(j, JSON_COMPACT); }

static void test_grid_order(void)
{
    json_t *space = js("{\"schedule.duration\": [10, 100, 1000], \"train.seed\": [1, 2]}");
    json_t *pts = NULL;
    vaed_err err;
    int rc = sweep_points(space, SWEEP_GRID, 0, 6, &pts, &err);
    CHECK(rc == 0, "grid of 6 with max_trials 6: %s", err.msg);
    /* the first path varies slowest, the last fastest */
    const char *want = "[{\"schedule.duration\":10,\"train.seed\":1},"
                       "{\"schedule.duration\":10,\"train.seed\":2},"
                       "{\"schedule.duration\":100,\"train.seed\":1},"
                       "{\"schedule.duration\":100,\"train.seed\":2},"
                       "{\"schedule.duration\":1000,\"train.seed\":1},"
                       "{\"schedule.duration\":1000,\"train.seed\":2}]";
    char *got = pts ? dump(pts) : NULL;
    CHECK(got && !strcmp(got, want), "grid order\n got  %s\n want %s", got ? got : "(none)",
          want);
    free(got);
    json_decref(pts);

    /* the space's order decides, not the keys' alphabetical order */
    json_t *sp2 = js("{\"z\": [1, 2], \"a\": [\"x\", \"y\"]}");
    rc = sweep_points(sp2, SWEEP_GRID, 0, 4, &pts, &err);
    got = rc == 0 ? dump(json_array_get(pts, 1)) : NULL;
    CHECK(got && !strcmp(got, "{\"z\":1,\"a\":\"y\"}"), "second point: %s", got ? got : "(none)");
    free(got);
    json_decref(pts);
    json_decref(sp2);

    /* more points than max_trials: refused naming max_trials */
    rc = sweep_points(space, SWEEP_GRID, 0, 5, &pts, &err);
    CHECK(rc == VAED_EINVAL && !strcmp(err.field, "max_trials") && !pts,
          "grid of 6 with max_trials 5: rc %d field %s", rc, err.field);
    json_decref(space);

    /* a range in a grid: refused naming the path */
    space = js("{\"train.seed\": [1], \"optimizer.lr\": {\"min\": 0.001, \"max\": 0.01}}");
    rc = sweep_points(space, SWEEP_GRID, 0, 10, &pts, &err);
    CHECK(rc == VAED_EINVAL && !strcmp(err.field, "space.optimizer.lr"),
          "range in a grid: rc %d field %s", rc, err.field);
    json_decref(space);
}

static void test_random(void)
{
    json_t *space = js("{\"optimizer.lr\": {\"min\": 0.0001, \"max\": 0.1, \"log\": true},"
                       " \"model.latent\": {\"min\": 2, \"max\": 5, \"int\": true},"
                       " \"schedule.to\": {\"min\": 0.5, \"max\": 1.5},"
                       " \"schedule.kind\": [\"linear\", \"logistic\", \"constant\"],"
                       " \"train.batch_size\": {\"min\": 16, \"max\": 256, \"log\": true,"
                       "   \"int\": true}}");
    json_t *a = NULL, *b = NULL, *c = NULL, *few = NULL;
    vaed_err err;
    int n = 400;
    CHECK(sweep_points(space, SWEEP_RANDOM, 7, n, &a, &err) == 0, "random: %s", err.msg);
    CHECK(sweep_points(space, SWEEP_RANDOM, 7, n, &b, &err) == 0, "random again: %s", err.msg);
    CHECK(sweep_points(space, SWEEP_RANDOM, 8, n, &c, &err) == 0, "other seed: %s", err.msg);
    CHECK(sweep_points(space, SWEEP_RANDOM, 7, 3, &few, &err) == 0, "3 trials: %s", err.msg);
    CHECK(json_array_size(a) == (size_t)n, "%zu points", json_array_size(a));
    CHECK(json_equal(a, b), "the same seed gave other trials");
    CHECK(!json_equal(a, c), "another seed gave the same trials");
    /* point i depends on (seed, i) only: the first 3 of 400 are the 3 of a 3-trial sweep */
    int prefix = json_array_size(few) == 3;
    for (size_t i = 0; prefix && i < 3; i++)
        prefix = json_equal(json_array_get(few, i), json_array_get(a, i));
    CHECK(prefix, "trial i of a shorter sweep differs");

    int seen_latent[6] = {0}, seen_kind[3] = {0}, lr_low = 0, lr_high = 0, bad = 0;
    double to_min = 9, to_max = -9;
    for (int i = 0; i < n; i++) {
        const json_t *p = json_array_get(a, (size_t)i);
        const json_t *lr = json_object_get(p, "optimizer.lr"), *lat = json_object_get(p, "model.latent");
        const json_t *to = json_object_get(p, "schedule.to"), *kind = json_object_get(p, "schedule.kind");
        const json_t *bs = json_object_get(p, "train.batch_size");
        if (!json_is_real(lr) || !json_is_integer(lat) || !json_is_real(to) ||
            !json_is_string(kind) || !json_is_integer(bs)) {
            bad++;
            continue;
        }
        double x = json_real_value(lr);
        bad += !(x >= 0.0001 && x <= 0.1);
        /* log-uniform: about a third of the draws per decade of three */
        lr_low += x < 0.001;
        lr_high += x >= 0.01;
        json_int_t l = json_integer_value(lat);
        if (l >= 2 && l <= 5)
            seen_latent[l]++;
        else
            bad++;
        double t = json_real_value(to);
        bad += !(t >= 0.5 && t < 1.5);
        to_min = fmin(to_min, t);
        to_max = fmax(to_max, t);
        const char *k = json_string_value(kind);
        seen_kind[!strcmp(k, "linear") ? 0 : !strcmp(k, "logistic") ? 1 : 2]++;
        json_int_t bsv = json_integer_value(bs);
        bad += !(bsv >= 16 && bsv <= 256);
    }
    CHECK(bad == 0, "%d draws of the wrong type or outside their range", bad);
    CHECK(seen_latent[2] && seen_latent[3] && seen_latent[4] && seen_latent[5],
          "int range: not every whole number drawn: %d %d %d %d", seen_latent[2],
          seen_latent[3], seen_latent[4], seen_latent[5]);
    CHECK(seen_kind[0] && seen_kind[1] && seen_kind[2], "list: not every value picked");
    /* 400 draws, a third expected per decade: far from 0 and far from all */
    CHECK(lr_low > 80 && lr_low < 190 && lr_high > 80 && lr_high < 190,
          "log range not log-uniform: %d below 1e-3, %d above 1e-2 of %d", lr_low, lr_high, n);
    CHECK(to_min < 0.6 && to_max > 1.4, "uniform range poorly covered: [%g, %g]", to_min, to_max);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(few);
    json_decref(space);
}

static void test_refusals(void)
{
    static const struct {
        const char *space;
        const char *field;
    } cases[] = {
        {"[]", "space"},
        {"{}", "space"},
        {"{\"a\": []}", "space.a"},
        {"{\"a\": 3}", "space.a"},
        {"{\"a\": {\"min\": 1}}", "space.a"},
        {"{\"a\": {\"min\": 2, \"max\": 1}}", "space.a"},
        {"{\"a\": {\"min\": 0, \"max\": 1, \"log\": true}}", "space.a"},
        {"{\"a\": {\"min\": 0.2, \"max\": 0.8, \"int\": true}}", "space.a"},
        {"{\"a\": {\"min\": 0, \"max\": 1, \"step\": 1}}", "space.a"},
        {"{\"a\": {\"min\": 0, \"max\": 1, \"log\": 1}}", "space.a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *space = js(cases[i].space), *pts = NULL;
        vaed_err err;
        vaed_err_clear(&err);
        int rc = sweep_points(space, SWEEP_RANDOM, 0, 4, &pts, &err);
        CHECK(rc == VAED_EINVAL && !strcmp(err.field, cases[i].field) && !pts,
              "%s: rc %d field \"%s\" (want %s): %s", cases[i].space, rc, err.field,
              cases[i].field, err.msg);
        json_decref(pts);
        json_decref(space);
    }
    json_t *space = js("{\"a\": [1]}"), *pts = NULL;
    vaed_err err;
    CHECK(sweep_points(space, SWEEP_RANDOM, 0, 0, &pts, &err) == VAED_EINVAL &&
              !strcmp(err.field, "max_trials"),
          "max_trials 0: field %s", err.field);
    json_decref(space);
}

int main(void)
{
    test_grid_order();
    test_random();
    test_refusals();
    return t_done("test_sweep_gen");
}
