/* fuzz_sched.c — libFuzzer target for schedule parsing and evaluation.
 *
 * The input is parsed as JSON (json_loadb), then by sched_parse with relative
 * schedules refused and allowed. A schedule that parses is resolved (relative parts
 * against a few effective steps and a current beta), written back by sched_to_json
 * (which must parse again, absolute, to the same document), and evaluated: sched_beta
 * and sched_capacity must be finite at every step we try, as sched.h promises. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vae/sched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const sched_spec *s, long step, long spe, double v)
{
    json_t *j = sched_to_json(s);
    char *t = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    fprintf(stderr, "fuzz_sched: %s: step %ld, steps/epoch %ld, value %g, schedule %s\n", what,
            step, spe, v, t ? t : "?");
    abort();
}

static void exercise(const sched_spec *parsed, int relative)
{
    static const long spes[] = {1, 3, 469};
    static const long eff[] = {0, 5, 100000};
    static const long steps[] = {0, 1, 2, 7, 468, 469, 470, 10000, 1000000000L};
    static const double kls[] = {0, 0.5, 30, 1e6, -1};
    for (size_t a = 0; a < sizeof spes / sizeof spes[0]; a++) {
        for (size_t r = 0; r < (relative ? sizeof eff / sizeof eff[0] : 1); r++) {
            sched_spec s = *parsed;
            if (relative)
                sched_resolve(&s, eff[r], spes[a], 0.25);
            if (s.origin_now || s.from_current)
                die("sched_resolve left relative parts", &s, eff[r], spes[a], 0);
            json_t *j = sched_to_json(&s);
            sched_spec back;
            vaed_err e;
            if (!j || sched_parse(&back, j, "", 0, &e)) {
                fprintf(stderr, "fuzz_sched: sched_to_json output refused: %s\n",
                        j ? e.msg : "NULL");
                die("round trip", &s, 0, spes[a], 0);
            }
            json_t *j2 = sched_to_json(&back);
            if (!json_equal(j, j2))
                die("sched_to_json -> sched_parse -> sched_to_json differs", &s, 0, spes[a], 0);
            json_decref(j);
            json_decref(j2);
            sched_state st = {0};
            for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
                double b = sched_beta(&s, &st, steps[k], spes[a], kls[k % 5]);
                if (!isfinite(b))
                    die("sched_beta is not finite", &s, steps[k], spes[a], b);
                double c = sched_capacity(&s, steps[k], spes[a]);
                if (!isfinite(c))
                    die("sched_capacity is not finite", &s, steps[k], spes[a], c);
                double p = sched_progress(&s, steps[k], spes[a]);
                if (!isfinite(p))
                    die("sched_progress is not finite", &s, steps[k], spes[a], p);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &je);
    if (!doc)
        return 0;
    for (int rel = 0; rel <= 1; rel++) {
        sched_spec s;
        vaed_err e;
        vaed_err_clear(&e);
        if (sched_parse(&s, doc, rel ? "" : "schedule", rel, &e)) {
            if (!e.msg[0]) {
                fprintf(stderr, "fuzz_sched: refused without a message\n");
                abort();
            }
            continue;
        }
        if (!rel && (s.origin_now || s.from_current))
            die("relative schedule accepted with allow_relative = 0", &s, 0, 0, 0);
        exercise(&s, rel);
    }
    json_decref(doc);
    return 0;
}
