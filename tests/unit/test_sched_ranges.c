/* test_sched_ranges.c — every schedule row of the range table (vae/range.h) against
 * sched_parse, as a job spec's "schedule" and as a PUT body (bare field names): the
 * bounds accepted or refused as the row says and written back exactly by
 * sched_to_json, the nearest doubles outside refused naming the field, ±1.79e308
 * refused, -0 stored as +0. Then: a relative schedule resolved at extreme moments
 * (beta in force at the top of its range, start near the top of its own) still parses
 * back, so a stored schedule is never one that recovery would refuse. (Split from
 * test_sched.c, which is at its size limit.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "vae/range.h"
#include "vae/sched.h"

/* Where each row's number goes: a schedule with %s in its place, of a kind the row
 * applies to. A schedule row without an entry fails the coverage check. */
static const struct where {
    const char *field, *kind, *doc;
} where[] = {
    {"schedule.start", "constant", "{\"kind\": \"constant\", \"start\": %s}"},
    {"schedule.value", "constant", "{\"kind\": \"constant\", \"value\": %s}"},
    {"schedule.from", "linear", "{\"kind\": \"linear\", \"from\": %s}"},
    {"schedule.from", "cyclical", "{\"kind\": \"cyclical\", \"period\": 2, \"from\": %s}"},
    /* to 1000 and a midpoint well before start: every `from` in the row's range gives
     * a beta at start within [0, 1e5] (from ± 1e15 moves it by less than 100) */
    {"schedule.from", "logistic",
     "{\"kind\": \"logistic\", \"to\": 1000, \"midpoint\": -30, \"from\": %s}"},
    {"schedule.to", "linear", "{\"kind\": \"linear\", \"to\": %s}"},
    {"schedule.duration", "linear", "{\"kind\": \"linear\", \"duration\": %s}"},
    {"schedule.duration", "capacity", "{\"kind\": \"capacity\", \"duration\": %s}"},
    {"schedule.k", "logistic", "{\"kind\": \"logistic\", \"k\": %s}"},
    {"schedule.midpoint", "logistic", "{\"kind\": \"logistic\", \"midpoint\": %s}"},
    {"schedule.period", "cyclical", "{\"kind\": \"cyclical\", \"period\": %s}"},
    {"schedule.cycles", "cyclical", "{\"kind\": \"cyclical\", \"duration\": 10, \"cycles\": %s}"},
    {"schedule.ratio", "cyclical", "{\"kind\": \"cyclical\", \"period\": 4, \"ratio\": %s}"},
    {"schedule.points[][0]", "piecewise", "{\"kind\": \"piecewise\", \"points\": [[%s, 0.5]]}"},
    {"schedule.points[][1]", "piecewise", "{\"kind\": \"piecewise\", \"points\": [[0, %s]]}"},
    {"schedule.target_kl", "controller", "{\"kind\": \"controller\", \"target_kl\": %s}"},
    {"schedule.kp", "controller", "{\"kind\": \"controller\", \"target_kl\": 5, \"kp\": %s}"},
    {"schedule.ki", "controller", "{\"kind\": \"controller\", \"target_kl\": 5, \"ki\": %s}"},
    {"schedule.min", "controller",
     "{\"kind\": \"controller\", \"target_kl\": 5, \"max\": 100000, \"min\": %s}"},
    {"schedule.max", "controller", "{\"kind\": \"controller\", \"target_kl\": 5, \"max\": %s}"},
    {"schedule.gamma", "capacity", "{\"kind\": \"capacity\", \"gamma\": %s}"},
    {"schedule.c_max", "capacity", "{\"kind\": \"capacity\", \"c_max\": %s}"},
};
#define N_WHERE ((int)(sizeof where / sizeof where[0]))

/* "schedule.points[][1]" with prefix "" -> error field "points[0][1]" and JSON path
 * "points.0.1"; with prefix "schedule", "schedule.points[0][1]" and the same path. */
static void paths(const char *field, const char *prefix, char *ef, char *jp, size_t n)
{
    const char *key = field + strlen("schedule.");
    size_t e = (size_t)snprintf(ef, n, "%s%s", prefix, prefix[0] ? "." : ""), j = 0;
    for (const char *p = key; *p && e + 4 < n && j + 4 < n; p++) {
        if (p[0] == '[' && p[1] == ']') {
            memcpy(ef + e, "[0]", 3), e += 3;
            memcpy(jp + j, ".0", 2), j += 2;
            p++;
        } else if (p[0] == '[') {
            ef[e++] = '[';
            jp[j++] = '.';
        } else if (p[0] == ']') {
            ef[e++] = ']';
        } else {
            ef[e++] = *p;
            jp[j++] = *p;
        }
    }
    ef[e] = jp[j] = '\0';
}

static json_t *at(json_t *root, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, "."))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
    return v;
}

/* Parse the row's schedule with `num` in place, under prefix ("schedule" in a spec,
 * "" as a PUT body, which also allows relative parts). */
static void one(const struct where *w, const char *prefix, const char *num, int want_ok,
                double want)
{
    char txt[256], ef[128], jp[128];
    snprintf(txt, sizeof txt, w->doc, num);
    paths(w->field, prefix, ef, jp, sizeof ef);
    json_error_t je;
    json_t *doc = json_loads(txt, 0, &je);
    CHECK(doc != NULL, "test bug: %s: %s", txt, je.text);
    if (!doc)
        return;
    sched_spec s;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = sched_parse(&s, doc, prefix, prefix[0] == '\0', &err);
    json_decref(doc);
    if (!want_ok) {
        CHECK(rc == VAED_EINVAL && strcmp(err.field, ef) == 0 &&
                  strncmp(err.msg, ef, strlen(ef)) == 0,
              "%s = %s (prefix '%s'): want refused naming %s; got rc %d field '%s' msg '%s'",
              w->field, num, prefix, ef, rc, err.field, err.msg);
        return;
    }
    CHECK(rc == 0, "%s = %s (prefix '%s'): want accepted; got '%s'", w->field, num, prefix,
          err.msg);
    if (rc)
        return;
    json_t *j = sched_to_json(&s);
    json_t *v = j ? at(j, jp) : NULL;
    double got = v ? json_number_value(v) : NAN;
    CHECK(v && memcmp(&got, &want, sizeof got) == 0,
          "%s = %s: written back as %.17g (sign %d), want %.17g", w->field, num, got,
          signbit(got) != 0, want);
    json_decref(j);
}

static void test_rows(void)
{
    static const char *const prefixes[] = {"schedule", ""};
    char num[64];
    for (int i = 0; i < N_WHERE; i++) {
        const struct where *w = &where[i];
        const vae_range *r = vae_range_find(w->field, w->kind);
        CHECK(r != NULL, "%s (%s): no row", w->field, w->kind);
        if (!r)
            continue;
        for (int p = 0; p < 2; p++) {
            const char *px = prefixes[p];
            if (r->integer) {
                snprintf(num, sizeof num, "%.0f", r->min);
                one(w, px, num, 1, r->min);
                snprintf(num, sizeof num, "%.0f", r->max);
                one(w, px, num, 1, r->max);
                snprintf(num, sizeof num, "%.0f", r->min - 1);
                one(w, px, num, 0, 0);
                snprintf(num, sizeof num, "%.0f", r->max + 1);
                one(w, px, num, 0, 0);
                one(w, px, "2.5", 0, 0);
            } else {
                snprintf(num, sizeof num, "%.17g", r->min);
                one(w, px, num, !r->min_open, r->min);
                snprintf(num, sizeof num, "%.17g", r->max);
                one(w, px, num, !r->max_open, r->max);
                snprintf(num, sizeof num, "%.17g", nextafter(r->min, -INFINITY));
                one(w, px, num, 0, 0);
                snprintf(num, sizeof num, "%.17g", nextafter(r->max, INFINITY));
                one(w, px, num, 0, 0);
                if (r->min_open) {
                    double in = nextafter(r->min, INFINITY);
                    snprintf(num, sizeof num, "%.17g", in);
                    one(w, px, num, 1, in);
                }
            }
            one(w, px, "1.79e308", 0, 0);
            one(w, px, "-1.79e308", 0, 0);
            one(w, px, "-0.0", vae_range_holds(r, 0.0), 0.0);
        }
    }
    /* every schedule row is reached by the table above */
    for (int i = 0; i < vae_n_ranges; i++) {
        const vae_range *r = &vae_ranges[i];
        if (strncmp(r->field, "schedule.", 9) != 0)
            continue;
        int found = 0;
        for (int k = 0; k < N_WHERE && !found; k++)
            found = vae_range_find(where[k].field, where[k].kind) == r;
        CHECK(found, "schedule row %s (%s) is not tested here", r->field,
              r->kinds ? r->kinds : "all kinds");
    }
}

/* A logistic whose value at start leaves [0, 1e5] is refused naming from, whatever
 * from itself is: every beta for t >= 0 lies between that value and `to`. */
static void test_logistic_start_value(void)
{
    static const char *bad[] = {
        "{\"kind\": \"logistic\", \"from\": 200000, \"to\": 0, \"midpoint\": 5}",
        "{\"kind\": \"logistic\", \"from\": -1e15, \"to\": 1, \"midpoint\": 5}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *doc = json_loads(bad[i], 0, NULL);
        sched_spec s;
        vaed_err err;
        int rc = sched_parse(&s, doc, "schedule", 0, &err);
        CHECK(rc == VAED_EINVAL && strcmp(err.field, "schedule.from") == 0 &&
                  strstr(err.msg, "the beta at start"),
              "%s: rc %d field '%s' msg '%s'", bad[i], rc, err.field, err.msg);
        json_decref(doc);
    }
}

/* Resolving a relative schedule at the extremes gives a schedule that parses back to
 * the same document: beta in force at the top of a KL weight's range (and above it,
 * NaN, -0), an effective step far out, and a logistic whose plateau makes its
 * asymptote large. sched_resolve keeps start and beta_now within their rows. */
static void test_resolve_stays_in_range(void)
{
    static const char *rel[] = {
        "{\"kind\": \"linear\", \"from\": \"current\", \"origin\": \"now\", \"start\": 1e15}",
        "{\"kind\": \"cyclical\", \"from\": \"current\", \"origin\": \"now\", \"period\": 3}",
        "{\"kind\": \"piecewise\", \"points\": [[0, \"current\"], [5, 1]], \"origin\": \"now\"}",
        "{\"kind\": \"logistic\", \"from\": \"current\", \"to\": 0, \"k\": 1, \"midpoint\": -20.7,"
        " \"origin\": \"now\"}",
        "{\"kind\": \"logistic\", \"from\": \"current\", \"to\": 100000, \"k\": 1, \"midpoint\": "
        "-20.7, \"origin\": \"now\", \"unit\": \"steps\"}",
    };
    static const double nows[] = {1e5, 3e5, 0.25, -0.0, NAN, 1e308};
    int checked = 0;
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
        for (size_t k = 0; k < sizeof nows / sizeof nows[0]; k++) {
            json_t *doc = json_loads(rel[i], 0, NULL);
            sched_spec s, back;
            vaed_err err;
            int rc = doc ? sched_parse(&s, doc, "", 1, &err) : -1;
            json_decref(doc);
            CHECK(rc == 0, "%s: %s", rel[i], err.msg);
            if (rc)
                continue;
            sched_resolve(&s, 1000000000L, 7, nows[k]);
            json_t *j = sched_to_json(&s);
            rc = j ? sched_parse(&back, j, "schedule", 0, &err) : -1;
            CHECK(rc == 0, "%s resolved with beta %g: does not parse back: %s", rel[i], nows[k],
                  err.msg);
            json_t *j2 = rc == 0 ? sched_to_json(&back) : NULL;
            CHECK(j2 && json_equal(j, j2), "%s resolved with beta %g: differs read back", rel[i],
                  nows[k]);
            double st = json_number_value(json_object_get(j, "start"));
            CHECK(!signbit(st) && st <= VAE_RANGE_TIME_MAX, "start %.17g", st);
            json_decref(j);
            json_decref(j2);
            checked++;
        }
    CHECK(checked == 30, "%d resolved schedules checked", checked);
}

int main(void)
{
    test_rows();
    test_logistic_start_value();
    test_resolve_stays_in_range();
    return t_done("test_sched_ranges");
}
