/* test_sched_part1.c — more of test_sched.c's tests (split for size; same fixtures: test_sched_util.h). */
#include "tests/unit/test_sched_util.h"

static void test_resolve(void)
{
    const long spe = 100, eff = 347;
    const double now = 0.37;
    /* linear, from current, origin now, 5 epochs: start = 3.47, from = .37 */
    sched_spec s = must_parse("{\"kind\":\"linear\",\"from\":\"current\",\"to\":1,"
                              "\"duration\":5,\"origin\":\"now\"}", 1);
    CHECK(s.origin_now && s.from_current, "relative flags parsed");
    sched_resolve(&s, eff, spe, now);
    CHECK(!s.origin_now && !s.from_current, "flags cleared");
    CHECK_CLOSE(s.start, 3.47, 1e-15, "linear origin now start");
    CHECK_CLOSE(s.from, now, 0, "linear from current");
    CHECK_CLOSE(b_at(&s, eff, spe), now, 1e-15, "linear no jump");
    /* 2.5 epochs later: .37 + .63 * .5 = .685; 5 epochs later: 1 */
    CHECK_CLOSE(b_at(&s, eff + 250, spe), 0.685, 1e-14, "linear half way");
    CHECK_CLOSE(b_at(&s, eff + 500, spe), 1.0, 1e-14, "linear done");

    /* origin now with an offset start 2: start = 2 + 3.47, beta held until then */
    s = must_parse("{\"kind\":\"linear\",\"from\":\"current\",\"to\":1,\"duration\":5,"
                   "\"origin\":\"now\",\"start\":2}", 1);
    sched_resolve(&s, eff, spe, now);
    CHECK_CLOSE(s.start, 5.47, 1e-14, "offset start");
    CHECK_CLOSE(b_at(&s, eff, spe), now, 0, "offset no jump");
    CHECK_CLOSE(b_at(&s, eff + 199, spe), now, 0, "offset held");

    /* origin now without from current: start shifts, from stays */
    s = must_parse("{\"kind\":\"linear\",\"from\":0.5,\"origin\":\"now\",\"unit\":\"steps\","
                   "\"duration\":100}", 1);
    sched_resolve(&s, eff, spe, now);
    CHECK_CLOSE(s.start, 347, 0, "steps origin now");
    CHECK_CLOSE(b_at(&s, eff + 50, spe), 0.75, 1e-15, "steps origin now value");

    /* epoch granularity: the start is the start of the current epoch (3) */
    s = must_parse("{\"kind\":\"linear\",\"from\":\"current\",\"origin\":\"now\","
                   "\"granularity\":\"epoch\",\"duration\":5}", 1);
    sched_resolve(&s, eff, spe, now);
    CHECK_CLOSE(s.start, 3.0, 0, "epoch granularity origin now");
    CHECK_CLOSE(b_at(&s, eff, spe), now, 0, "epoch granularity no jump");
    CHECK_CLOSE(b_at(&s, 400, spe), now + (1 - now) / 5, 1e-15, "epoch granularity next");

    /* logistic: from solved so the curve passes through beta_now at the effective step */
    double nows[] = {0.0, 0.37, 0.9, 1.5};
    for (int i = 0; i < 4; i++) {
        s = must_parse("{\"kind\":\"logistic\",\"from\":\"current\",\"to\":1,\"k\":2,"
                       "\"midpoint\":3,\"origin\":\"now\"}", 1);
        sched_resolve(&s, eff, spe, nows[i]);
        CHECK_CLOSE(b_at(&s, eff, spe), nows[i], 1e-12, "logistic no jump");
        /* next step moves by at most |to - beta_now| * k/4 * dt */
        double d = fabs(b_at(&s, eff + 1, spe) - nows[i]);
        CHECK(d <= fabs(1 - nows[i]) * 0.5 * 0.01 + 1e-12, "logistic first step jump %g", d);
        CHECK_CLOSE(b_at(&s, eff + 100000, spe), 1.0, 1e-9, "logistic reaches to");
        /* the resolved schedule is a valid absolute one (round trip) */
        json_t *j = sched_to_json(&s);
        sched_spec r;
        vaed_err err;
        int rc = sched_parse(&r, j, "schedule", 0, &err);
        CHECK(rc == 0, "resolved logistic (beta_now %g) re-parse: %s", nows[i], err.msg);
        if (rc == 0)
            CHECK_CLOSE(b_at(&r, eff, spe), nows[i], 1e-12, "re-parsed logistic no jump");
        json_decref(j);
    }

    /* cyclical: every cycle restarts at beta_now */
    s = must_parse("{\"kind\":\"cyclical\",\"from\":\"current\",\"to\":1,\"period\":2,"
                   "\"origin\":\"now\"}", 1);
    sched_resolve(&s, eff, spe, now);
    CHECK_CLOSE(b_at(&s, eff, spe), now, 0, "cyclical no jump");
    /* next cycle, t = 2.1: tau = .05, u = .1 → .37 + .63 * .1 */
    CHECK_CLOSE(b_at(&s, eff + 210, spe), now + (1 - now) * 0.1, 1e-13, "cyclical next cycle");
    CHECK_CLOSE(b_at(&s, eff + 50, spe), now + (1 - now) * 0.5, 1e-14, "cyclical rise");

    /* piecewise: first point's beta "current" */
    s = must_parse("{\"kind\":\"piecewise\",\"points\":[[0,\"current\"],[2,1]],"
                   "\"origin\":\"now\"}", 1);
    sched_resolve(&s, eff, spe, now);
    CHECK_CLOSE(b_at(&s, eff, spe), now, 0, "piecewise no jump");
    CHECK_CLOSE(b_at(&s, eff + 100, spe), (now + 1) / 2, 1e-14, "piecewise mid");

    /* resolved schedules print absolute documents */
    json_t *j = sched_to_json(&s);
    CHECK(!json_object_get(j, "origin"), "resolved to_json has no origin");
    json_decref(j);

    /* an absolute schedule is untouched by resolve */
    s = must_parse("{\"kind\":\"linear\",\"from\":0.2,\"start\":1}", 0);
    sched_spec before = s;
    sched_resolve(&s, eff, spe, now);
    CHECK(s.start == before.start && s.from == before.from, "absolute untouched");
}

static void test_round_trip(void)
{
    const char *docs[] = {
        "{\"kind\":\"constant\",\"value\":0.25}",
        "{\"kind\":\"linear\",\"from\":0.1,\"to\":0.7,\"duration\":3.3,\"start\":0.1}",
        "{\"kind\":\"linear\",\"unit\":\"steps\",\"granularity\":\"epoch\",\"duration\":1e5}",
        "{\"kind\":\"logistic\",\"from\":0.9,\"to\":0.1,\"k\":0.3,\"midpoint\":-2}",
        "{\"kind\":\"cyclical\",\"period\":2.5,\"shape\":\"cosine\",\"ratio\":0.3}",
        "{\"kind\":\"cyclical\",\"cycles\":4,\"duration\":20,\"shape\":\"sigmoid\"}",
        "{\"kind\":\"piecewise\",\"points\":[[0,0],[0.1,0.3333333333333333],[7,2]]}",
        "{\"kind\":\"controller\",\"target_kl\":3.5,\"kp\":0.02,\"ki\":0.001,\"min\":0.1,"
        "\"max\":2}",
        "{\"kind\":\"capacity\",\"gamma\":500,\"c_max\":12.5,\"duration\":7,\"start\":1}",
    };
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        sched_spec a = must_parse(docs[d], 0), b;
        json_t *ja = sched_to_json(&a);
        vaed_err err;
        int rc = sched_parse(&b, ja, "schedule", 0, &err);
        CHECK(rc == 0, "%s: re-parse failed: %s", docs[d], err.msg);
        json_t *jb = rc == 0 ? sched_to_json(&b) : NULL;
        CHECK(jb && json_equal(ja, jb), "%s: JSON differs after round trip", docs[d]);
        /* every field that matters, compared directly */
        int same = rc == 0 && a.kind == b.kind && a.unit == b.unit &&
                   a.granularity == b.granularity && a.start == b.start &&
                   a.value == b.value && a.from == b.from && a.to == b.to &&
                   a.duration == b.duration && a.k == b.k && a.midpoint == b.midpoint &&
                   a.cycles == b.cycles && a.period == b.period && a.ratio == b.ratio &&
                   a.shape == b.shape && a.n_points == b.n_points &&
                   memcmp(a.points, b.points, sizeof(double) * 2 * (size_t)a.n_points) == 0 &&
                   a.target_kl == b.target_kl && a.kp == b.kp && a.ki == b.ki &&
                   a.min == b.min && a.max == b.max && a.gamma == b.gamma &&
                   a.c_max == b.c_max;
        CHECK(same, "%s: spec differs after round trip", docs[d]);
        /* the written document names every parameter of its kind */
        CHECK(json_object_get(ja, "unit") && json_object_get(ja, "granularity") &&
                  json_object_get(ja, "start") && json_object_get(ja, "kind"),
              "%s: common keys missing", docs[d]);
        json_decref(ja);
        json_decref(jb);
    }
    /* a relative spec round-trips through the relative parser */
    sched_spec a = must_parse("{\"kind\":\"linear\",\"from\":\"current\",\"origin\":\"now\"}", 1);
    json_t *ja = sched_to_json(&a);
    sched_spec b;
    vaed_err err;
    int rc = sched_parse(&b, ja, "", 1, &err);
    CHECK(rc == 0 && b.from_current && b.origin_now, "relative round trip: %s", err.msg);
    json_decref(ja);
}

static void test_invalid(void)
{
    static const struct {
        const char *doc;
        int allow_relative;
        const char *field;
    } cases[] = {
        {"[1,2]", 0, "schedule"},
        {"{}", 0, "schedule.kind"},
        {"{\"kind\":\"warmup\"}", 0, "schedule.kind"},
        {"{\"kind\":3}", 0, "schedule.kind"},
        {"{\"kind\":\"linear\",\"bogus\":1}", 0, "schedule.bogus"},
        {"{\"kind\":\"linear\",\"k\":1}", 0, "schedule.k"},
        {"{\"kind\":\"constant\",\"from\":0}", 0, "schedule.from"},
        {"{\"kind\":\"constant\",\"value\":\"1\"}", 0, "schedule.value"},
        {"{\"kind\":\"constant\",\"value\":-0.1}", 0, "schedule.value"},
        {"{\"kind\":\"linear\",\"unit\":\"hours\"}", 0, "schedule.unit"},
        {"{\"kind\":\"linear\",\"granularity\":\"batch\"}", 0, "schedule.granularity"},
        {"{\"kind\":\"linear\",\"start\":-1}", 0, "schedule.start"},
        {"{\"kind\":\"linear\",\"duration\":0}", 0, "schedule.duration"},
        {"{\"kind\":\"linear\",\"duration\":-3}", 0, "schedule.duration"},
        {"{\"kind\":\"linear\",\"to\":-1}", 0, "schedule.to"},
        {"{\"kind\":\"linear\",\"from\":null}", 0, "schedule.from"},
        {"{\"kind\":\"linear\",\"from\":\"current\"}", 0, "schedule.from"},
        {"{\"kind\":\"linear\",\"from\":\"current\"}", 1, "schedule.from"}, /* needs origin now */
        {"{\"kind\":\"linear\",\"from\":\"latest\",\"origin\":\"now\"}", 1, "schedule.from"},
        {"{\"kind\":\"linear\",\"origin\":\"now\"}", 0, "schedule.origin"},
        {"{\"kind\":\"linear\",\"origin\":\"later\"}", 1, "schedule.origin"},
        {"{\"kind\":\"logistic\",\"k\":0}", 0, "schedule.k"},
        {"{\"kind\":\"logistic\",\"k\":-1}", 0, "schedule.k"},
        {"{\"kind\":\"logistic\",\"from\":-0.5}", 0, "schedule.from"},
        {"{\"kind\":\"logistic\",\"midpoint\":true}", 0, "schedule.midpoint"},
        {"{\"kind\":\"logistic\",\"duration\":4}", 0, "schedule.duration"},
        {"{\"kind\":\"cyclical\"}", 0, "schedule.period"},
        {"{\"kind\":\"cyclical\",\"period\":0}", 0, "schedule.period"},
        {"{\"kind\":\"cyclical\",\"period\":4,\"cycles\":2,\"duration\":8}", 0, "schedule.cycles"},
        {"{\"kind\":\"cyclical\",\"cycles\":2}", 0, "schedule.duration"},
        {"{\"kind\":\"cyclical\",\"cycles\":2.5,\"duration\":8}", 0, "schedule.cycles"},
        {"{\"kind\":\"cyclical\",\"cycles\":0,\"duration\":8}", 0, "schedule.cycles"},
        {"{\"kind\":\"cyclical\",\"period\":4,\"duration\":8}", 0, "schedule.duration"},
        {"{\"kind\":\"cyclical\",\"period\":4,\"ratio\":0}", 0, "schedule.ratio"},
        {"{\"kind\":\"cyclical\",\"period\":4,\"ratio\":1.5}", 0, "schedule.ratio"},
        {"{\"kind\":\"cyclical\",\"period\":4,\"shape\":\"square\"}", 0, "schedule.shape"},
        {"{\"kind\":\"piecewise\"}", 0, "schedule.points"},
        {"{\"kind\":\"piecewise\",\"points\":[]}", 0, "schedule.points"},
        {"{\"kind\":\"piecewise\",\"points\":{\"0\":1}}", 0, "schedule.points"},
        {"{\"kind\":\"piecewise\",\"points\":[[0,0],[2]]}", 0, "schedule.points[1]"},
        {"{\"kind\":\"piecewise\",\"points\":[[0,0],[2,1],[2,0.5]]}", 0, "schedule.points[2][0]"},
        {"{\"kind\":\"piecewise\",\"points\":[[0,0],[1,-1]]}", 0, "schedule.points[1][1]"},
        {"{\"kind\":\"piecewise\",\"points\":[[-1,0]]}", 0, "schedule.points[0][0]"},
        {"{\"kind\":\"piecewise\",\"points\":[[0,\"current\"]]}", 0, "schedule.points[0][1]"},
        {"{\"kind\":\"piecewise\",\"points\":[[0,\"current\"]]}", 1, "schedule.points"},
        {"{\"kind\":\"piecewise\",\"points\":[[0,0],[1,\"current\"]],\"origin\":\"now\"}", 1,
         "schedule.points[1][1]"},
        {"{\"kind\":\"controller\"}", 0, "schedule.target_kl"},
        {"{\"kind\":\"controller\",\"target_kl\":0}", 0, "schedule.target_kl"},
        {"{\"kind\":\"controller\",\"target_kl\":5,\"min\":0.8,\"max\":0.5}", 0, "schedule.max"},
        {"{\"kind\":\"controller\",\"target_kl\":5,\"kp\":-1}", 0, "schedule.kp"},
        {"{\"kind\":\"controller\",\"target_kl\":5,\"min\":-0.1}", 0, "schedule.min"},
        {"{\"kind\":\"controller\",\"target_kl\":5,\"from\":0}", 0, "schedule.from"},
        {"{\"kind\":\"capacity\",\"duration\":0}", 0, "schedule.duration"},
        {"{\"kind\":\"capacity\",\"c_max\":-1}", 0, "schedule.c_max"},
        {"{\"kind\":\"capacity\",\"gamma\":\"big\"}", 0, "schedule.gamma"},
        {"{\"kind\":\"capacity\",\"value\":1}", 0, "schedule.value"},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    CHECK(n >= 25, "only %d invalid cases", n);
    for (int i = 0; i < n; i++) {
        sched_spec s;
        vaed_err err;
        vaed_err_clear(&err);
        int rc = parse_txt(&s, cases[i].doc, cases[i].allow_relative, &err);
        CHECK(rc == VAED_EINVAL, "%s: rc %d, want VAED_EINVAL", cases[i].doc, rc);
        CHECK(strcmp(err.field, cases[i].field) == 0, "%s: field \"%s\", want \"%s\" (%s)",
              cases[i].doc, err.field, cases[i].field, err.msg);
        CHECK(strncmp(err.msg, cases[i].field, strlen(cases[i].field)) == 0,
              "%s: msg does not start with the field: %s", cases[i].doc, err.msg);
    }

    /* prefix "" gives the bare key */
    json_t *doc = json_pack("{s:s, s:f}", "kind", "linear", "duration", -1.0);
    sched_spec s;
    vaed_err err;
    int rc = sched_parse(&s, doc, "", 0, &err);
    CHECK(rc == VAED_EINVAL && strcmp(err.field, "duration") == 0, "bare field: \"%s\"",
          err.field);
    json_decref(doc);
    /* NULL err is allowed */
    doc = json_pack("{s:s}", "kind", "nope");
    CHECK(sched_parse(&s, doc, "schedule", 0, NULL) == VAED_EINVAL, "NULL err");
    json_decref(doc);
    /* too many points */
    json_t *pts = json_array();
    for (int i = 0; i <= SCHED_MAX_POINTS; i++)
        json_array_append_new(pts, json_pack("[i, f]", i, 0.5));
    doc = json_pack("{s:s, s:o}", "kind", "piecewise", "points", pts);
    rc = sched_parse(&s, doc, "schedule", 0, &err);
    CHECK(rc == VAED_EINVAL && strcmp(err.field, "schedule.points") == 0,
          "too many points: rc %d field \"%s\"", rc, err.field);
    /* exactly SCHED_MAX_POINTS is fine */
    json_array_remove(pts, 0);
    rc = sched_parse(&s, doc, "schedule", 0, &err);
    CHECK(rc == 0 && s.n_points == SCHED_MAX_POINTS, "max points: rc %d %s", rc, err.msg);
    json_decref(doc);
}

/* sched_state_init: a controller that takes over mid-run starts from the beta in force
 * (the jump the zero state would give is beta_now - min). Oracle: the PI formula by
 * hand, P = kp / (1 + exp(target - KL)), beta = P + min - ki * (integral + e). */
static void test_state_init(void)
{
    sched_spec s = must_parse("{\"kind\":\"controller\",\"target_kl\":15,\"kp\":0.01,"
                              "\"ki\":0.0001,\"min\":0.05,\"max\":0.9}", 0);
    sched_state st;
    /* KL on target at the next update: exactly beta_now again (up to rounding) */
    sched_state_init(&s, &st, 0.4);
    CHECK(st.started == 1 && st.beta == 0.4, "seeded: started %d beta %g", st.started, st.beta);
    CHECK_CLOSE(st.integral, -(0.4 - 0.05 - 0.005) / 0.0001, 1e-12, "seeded integral");
    double b = sched_beta(&s, &st, 1000, 100, 15.0);
    CHECK(fabs(b - 0.4) <= 1e-12, "KL on target: first controller beta %.17g, wanted 0.4", b);

    /* KL off target by e: the step is the PI step from 0.4, bounded by kp/2 + ki|e| */
    const double kls[] = {0.0, 5.0, 14.0, 16.0, 40.0, 1e6};
    for (size_t i = 0; i < sizeof kls / sizeof kls[0]; i++) {
        sched_state_init(&s, &st, 0.4);
        double e = 15.0 - kls[i];
        double want = 0.01 / (1.0 + exp(e)) + 0.05 - 0.0001 * (st.integral + e);
        want = want < 0.05 ? 0.05 : want > 0.9 ? 0.9 : want;
        b = sched_beta(&s, &st, 1000, 100, kls[i]);
        CHECK(fabs(b - want) <= 1e-12, "KL %g: beta %.17g, formula %.17g", kls[i], b, want);
        CHECK(fabs(b - 0.4) <= 0.005 + 0.0001 * fabs(e) + 1e-12,
              "KL %g: jump %g over kp/2 + ki|e| = %g", kls[i], b - 0.4, 0.005 + 0.0001 * fabs(e));
    }
    /* the zero state (what set_schedule did before) drops to min: the jump this removes */
    sched_state z = {0};
    b = sched_beta(&s, &z, 1000, 100, 15.0);
    CHECK(b == 0.05, "zero state starts at min: %g", b);

    /* beta_now outside [min, max] is clamped: the controller cannot hold it */
    sched_state_init(&s, &st, 3.0);
    CHECK(st.beta == 0.9, "above max: state beta %g", st.beta);
    b = sched_beta(&s, &st, 1000, 100, 15.0);
    CHECK(fabs(b - 0.9) <= 1e-12, "above max: first beta %.17g", b);
    sched_state_init(&s, &st, 0.0);
    b = sched_beta(&s, &st, 1000, 100, 15.0);
    CHECK(st.started == 1 && fabs(b - 0.05) <= 1e-12, "below min: first beta %.17g", b);

    /* NAN (no step has run) and other kinds: the zero state of a new run */
    memset(&st, 0x5a, sizeof st);
    sched_state_init(&s, &st, NAN);
    CHECK(st.started == 0 && st.beta == 0 && st.integral == 0, "NAN: %d %g %g", st.started,
          st.beta, st.integral);
    sched_spec lin = must_parse("{\"kind\":\"linear\"}", 0);
    memset(&st, 0x5a, sizeof st);
    sched_state_init(&lin, &st, 0.3);
    CHECK(st.started == 0 && st.beta == 0 && st.integral == 0, "linear: %d %g %g", st.started,
          st.beta, st.integral);

    /* ki = 0: a P-only controller has no integral to seed */
    sched_spec p = s;
    p.ki = 0;
    sched_state_init(&p, &st, 0.4);
    CHECK(st.started == 1 && st.integral == 0 && st.beta == 0.4, "ki 0: %d %g %g", st.started,
          st.integral, st.beta);
    b = sched_beta(&p, &st, 1000, 100, 15.0);
    CHECK_CLOSE(b, 0.05 + 0.005, 1e-15, "ki 0: min + kp/2");

    /* granularity epoch: the rest of the epoch holds beta_now exactly */
    sched_spec ep = s;
    ep.granularity = SCHED_PER_EPOCH;
    sched_state_init(&ep, &st, 0.4);
    int held = 1;
    for (long n = 1001; n < 1100; n++)
        held &= sched_beta(&ep, &st, n, 100, 3.0) == 0.4;
    CHECK(held, "epoch granularity: beta_now not held until the epoch ends");

    /* A run on the toy plant: a linear ramp to beta 0.3, then the controller takes over
     * with origin now. Seeded, no step moves beta by more than one PI step
     * (kp + ki |e|); it still settles at the target. */
    sched_spec c = must_parse("{\"kind\":\"controller\",\"target_kl\":15}", 0);
    double beta = 0.3, kl = plant(beta), worst_jump = 0, worst_err = 0, prev = beta;
    sched_state_init(&c, &st, beta);
    for (long n = 0; n < 30000; n++) {
        beta = sched_beta(&c, &st, n, 100, kl);
        if (n < 100)
            worst_jump = fmax(worst_jump, fabs(beta - prev));
        prev = beta;
        kl = plant(beta);
        if (n >= 29000)
            worst_err = fmax(worst_err, fabs(kl - 15.0) / 15.0);
    }
    double bound = 0.01 + 0.0001 * fabs(15.0 - plant(0.3));
    CHECK(worst_jump <= bound, "seeded takeover: step of %g > one PI step %g", worst_jump,
          bound);
    CHECK(worst_err <= 0.10, "seeded controller did not settle: worst relative KL error %g",
          worst_err);
}

int main(void)
{
    test_state_init();
    test_resolve();
    test_round_trip();
    test_invalid();
    return t_done("test_sched_part1");
}
