/* test_sched.c — beta schedules against hand-computed values, properties over a
 * sweep, the ControlVAE controller on a toy plant, resolve (no jump), round trips
 * through JSON, and a table of invalid documents with the field each must name. */
#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "vae/sched.h"

/* Parse a JSON text into a spec; aborts the test loudly when it does not parse. */
static int parse_txt(sched_spec *s, const char *txt, int allow_relative, vaed_err *err)
{
    json_error_t je;
    json_t *doc = json_loads(txt, 0, &je);
    if (!doc) {
        fprintf(stderr, "test bug: bad JSON %s: %s\n", txt, je.text);
        exit(2);
    }
    int rc = sched_parse(s, doc, "schedule", allow_relative, err);
    json_decref(doc);
    return rc;
}

static sched_spec must_parse(const char *txt, int allow_relative)
{
    sched_spec s;
    vaed_err err;
    int rc = parse_txt(&s, txt, allow_relative, &err);
    CHECK(rc == 0, "parse %s: %s", txt, err.msg);
    if (rc != 0)
        sched_default(&s);
    return s;
}

/* beta of a stateless schedule at a step, 100 steps per epoch unless told. */
static double b_at(const sched_spec *s, long step, long spe)
{
    return sched_beta(s, NULL, step, spe, 0.0);
}

/* ---- hand-computed values ---------------------------------------------------- */

static void test_constant_and_default(void)
{
    sched_spec s;
    sched_default(&s);
    CHECK(s.kind == SCHED_CONSTANT && s.value == 1.0 && s.start == 0 &&
              s.unit == SCHED_EPOCHS && s.granularity == SCHED_PER_STEP,
          "default: kind %d value %g", s.kind, s.value);
    CHECK_CLOSE(b_at(&s, 0, 100), 1.0, 0, "default beta at step 0");
    CHECK_CLOSE(b_at(&s, 123456, 100), 1.0, 0, "default beta late");
    s = must_parse("{\"kind\":\"constant\",\"value\":0.3}", 0);
    CHECK_CLOSE(b_at(&s, 0, 100), 0.3, 0, "constant 0.3 at 0");
    CHECK_CLOSE(b_at(&s, 99999, 7), 0.3, 0, "constant 0.3 late");
    CHECK_CLOSE(sched_capacity(&s, 500, 100), 0.0, 0, "capacity of a constant");
    s = must_parse("{\"kind\":\"constant\"}", 0);
    CHECK_CLOSE(b_at(&s, 10, 100), 1.0, 0, "constant default value");
}

/* The seed: Keras warm-up callback beta = min(epoch / 10, 1), set at epoch start. */
static void test_seed_sequence(void)
{
    sched_spec s = must_parse("{\"kind\":\"linear\",\"from\":0,\"to\":1,\"duration\":10,"
                              "\"granularity\":\"epoch\"}", 0);
    const double want[12] = {0, .1, .2, .3, .4, .5, .6, .7, .8, .9, 1, 1};
    const long spe = 37;
    for (int ep = 0; ep < 12; ep++) {
        /* every step of the epoch, first to last, holds the epoch's value */
        for (long k = 0; k < spe; k++) {
            double b = b_at(&s, ep * spe + k, spe);
            if (fabs(b - want[ep]) > 1e-12) {
                CHECK(0, "seed epoch %d step-in-epoch %ld: beta %.17g want %.17g", ep, k, b,
                      want[ep]);
                break;
            }
        }
        CHECK_CLOSE(b_at(&s, ep * spe, spe), want[ep], 1e-15, "seed epoch start");
    }
}

static void test_linear(void)
{
    /* from .2 to .8 over 4 epochs starting at epoch 1; 10 steps per epoch. */
    sched_spec s = must_parse("{\"kind\":\"linear\",\"from\":0.2,\"to\":0.8,\"duration\":4,"
                              "\"start\":1}", 0);
    /* step 5: t = 0.5 - 1 < 0 → clamp 0 → .2 */
    CHECK_CLOSE(b_at(&s, 5, 10), 0.2, 1e-15, "linear before start");
    /* step 25: t = 2.5 - 1 = 1.5 → .2 + .6 * 1.5/4 = .2 + .225 = .425 */
    CHECK_CLOSE(b_at(&s, 25, 10), 0.425, 1e-15, "linear t=1.5");
    /* step 30: t = 2 → .2 + .6 * .5 = .5 */
    CHECK_CLOSE(b_at(&s, 30, 10), 0.5, 1e-15, "linear t=2");
    /* step 100: t = 9 → clamp 1 → .8 */
    CHECK_CLOSE(b_at(&s, 100, 10), 0.8, 1e-15, "linear after");
    /* decreasing ramp: from 1 to 0 over 2 epochs, step 150 of 100/epoch: t=1.5 → .25 */
    s = must_parse("{\"kind\":\"linear\",\"from\":1,\"to\":0,\"duration\":2}", 0);
    CHECK_CLOSE(b_at(&s, 150, 100), 0.25, 1e-15, "linear decreasing");
    /* unit steps: 0 → 1 over 100 steps; step 25 → .25 */
    s = must_parse("{\"kind\":\"linear\",\"unit\":\"steps\",\"duration\":100}", 0);
    CHECK_CLOSE(b_at(&s, 25, 30), 0.25, 1e-15, "linear steps");
    /* unit steps, granularity epoch, 30 steps per epoch: step 45 is in epoch 1,
     * which starts at step 30 → .30 */
    s = must_parse("{\"kind\":\"linear\",\"unit\":\"steps\",\"duration\":100,"
                   "\"granularity\":\"epoch\"}", 0);
    CHECK_CLOSE(b_at(&s, 45, 30), 0.30, 1e-15, "linear steps/epoch granularity");
    /* defaults: 0 → 1 over 10 epochs; step 250 at 100/epoch: t = 2.5 → .25 */
    s = must_parse("{\"kind\":\"linear\"}", 0);
    CHECK_CLOSE(b_at(&s, 250, 100), 0.25, 1e-15, "linear defaults");
}

static void test_progress(void)
{
    sched_spec s;
    sched_default(&s);
    CHECK_CLOSE(sched_progress(&s, 250, 100), 2.5, 0, "progress epochs/step");
    s.granularity = SCHED_PER_EPOCH;
    CHECK_CLOSE(sched_progress(&s, 299, 100), 2.0, 0, "progress epochs/epoch");
    s.unit = SCHED_STEPS;
    CHECK_CLOSE(sched_progress(&s, 299, 100), 200.0, 0, "progress steps/epoch");
    s.granularity = SCHED_PER_STEP;
    CHECK_CLOSE(sched_progress(&s, 299, 100), 299.0, 0, "progress steps/step");
    /* start is not subtracted by sched_progress */
    s.start = 50;
    CHECK_CLOSE(sched_progress(&s, 299, 100), 299.0, 0, "progress ignores start");
}

static void test_logistic(void)
{
    sched_spec s = must_parse("{\"kind\":\"logistic\"}", 0); /* 0 → 1, k 1, mid 5 */
    /* t = 5: 1/(1+e^0) = .5 */
    CHECK_CLOSE(b_at(&s, 500, 100), 0.5, 1e-15, "logistic midpoint");
    /* t = 7: 1/(1+e^-2) = 1/1.1353352832 = 0.8807970780 */
    CHECK_CLOSE(b_at(&s, 700, 100), 0.8807970779778823, 1e-14, "logistic t=7");
    /* t = 0: 1/(1+e^5) = 1/149.4131591 = 0.0066928509 */
    CHECK_CLOSE(b_at(&s, 0, 100), 0.0066928509242848554, 1e-14, "logistic t=0");
    /* start 2 and from .5 to .1, k 2, mid 1: step 350 → t = 1.5:
     * .5 + (.1-.5)/(1+e^{-2*.5}) = .5 - .4 * 0.7310585786 = 0.2075765686 */
    s = must_parse("{\"kind\":\"logistic\",\"from\":0.5,\"to\":0.1,\"k\":2,\"midpoint\":1,"
                   "\"start\":2}", 0);
    CHECK_CLOSE(b_at(&s, 350, 100), 0.5 - 0.4 * 0.7310585786300049, 1e-14, "logistic t=1.5");
    /* before start it holds its value at start (t = 0): .5 - .4/(1+e^2) =
     * .5 - .4 * 0.1192029220 = 0.4523188312 */
    CHECK_CLOSE(b_at(&s, 50, 100), 0.5 - 0.4 * 0.11920292202211755, 1e-14,
                "logistic before start");

    /* huge k: a step function at the midpoint, with no overflow raised */
    s = must_parse("{\"kind\":\"logistic\",\"k\":1e6,\"unit\":\"steps\",\"midpoint\":5}", 0);
    feclearexcept(FE_ALL_EXCEPT);
    double lo = b_at(&s, 0, 10), hi = b_at(&s, 1000000, 10), mid = b_at(&s, 5, 10);
    int raised = fetestexcept(FE_OVERFLOW | FE_INVALID | FE_DIVBYZERO);
    CHECK(raised == 0, "logistic k=1e6 raised FP exceptions 0x%x", raised);
    CHECK(lo == 0.0 && hi == 1.0 && mid == 0.5, "logistic k=1e6: %g %g %g", lo, mid, hi);
}

static void test_cyclical(void)
{
    /* period 4 epochs, rise over the first half, linear: */
    sched_spec s = must_parse("{\"kind\":\"cyclical\",\"period\":4}", 0);
    /* t=0: tau 0 → 0; t=1: tau .25, u = .25/.5 = .5 → .5; t=2: tau .5 ≥ ratio → 1 */
    CHECK_CLOSE(b_at(&s, 0, 100), 0.0, 0, "cyc t=0");
    CHECK_CLOSE(b_at(&s, 100, 100), 0.5, 1e-15, "cyc t=1");
    CHECK_CLOSE(b_at(&s, 200, 100), 1.0, 0, "cyc t=2");
    CHECK_CLOSE(b_at(&s, 399, 100), 1.0, 0, "cyc t=3.99");
    /* t=4: a new cycle → 0; t=5: tau .25 → .5 */
    CHECK_CLOSE(b_at(&s, 400, 100), 0.0, 0, "cyc t=4");
    CHECK_CLOSE(b_at(&s, 500, 100), 0.5, 1e-15, "cyc t=5");

    /* cosine: t=.5 → tau .125, u .25 → (1-cos(pi/4))/2 = (1-.7071067812)/2 = .1464466094 */
    s = must_parse("{\"kind\":\"cyclical\",\"period\":4,\"shape\":\"cosine\"}", 0);
    CHECK_CLOSE(b_at(&s, 50, 100), 0.1464466094067262, 1e-14, "cyc cosine u=.25");
    CHECK_CLOSE(b_at(&s, 100, 100), 0.5, 1e-14, "cyc cosine u=.5");
    /* sigmoid, rescaled: u=.25 → (s(-3)-s(-6))/(s(6)-s(-6))
     * = (.0474258732 - .0024726232)/(.9975273768 - .0024726232) = .0451766597 */
    s = must_parse("{\"kind\":\"cyclical\",\"period\":4,\"shape\":\"sigmoid\"}", 0);
    CHECK_CLOSE(b_at(&s, 50, 100), 0.04517665973091212, 1e-13, "cyc sigmoid u=.25");
    CHECK_CLOSE(b_at(&s, 100, 100), 0.5, 1e-14, "cyc sigmoid u=.5");
    CHECK_CLOSE(b_at(&s, 0, 100), 0.0, 1e-15, "cyc sigmoid u=0 exactly 0");
    CHECK_CLOSE(b_at(&s, 1999, 1000), 1.0, 1e-4, "cyc sigmoid u→1 reaches 1");

    /* cycles 3 over 12 epochs → period 4, ratio .25, from .1 to .9, start 1:
     * step 1150: t = 11.5 - 1 = 10.5, tau = 2.5/4 = .625 ≥ .25 → .9;
     * step 950: t = 8.5, tau = .5/4 = .125, u = .5 → .1 + .8 * .5 = .5;
     * step 1400: t = 13 ≥ 12 (all cycles done) → .9; step 50: before start → .1 */
    s = must_parse("{\"kind\":\"cyclical\",\"cycles\":3,\"duration\":12,\"ratio\":0.25,"
                   "\"from\":0.1,\"to\":0.9,\"start\":1}", 0);
    CHECK_CLOSE(b_at(&s, 1150, 100), 0.9, 1e-15, "cycles hold");
    CHECK_CLOSE(b_at(&s, 950, 100), 0.5, 1e-15, "cycles rise");
    CHECK_CLOSE(b_at(&s, 1400, 100), 0.9, 1e-15, "cycles done");
    CHECK_CLOSE(b_at(&s, 50, 100), 0.1, 1e-15, "cycles before start");
    CHECK_CLOSE(b_at(&s, 1300, 100), 0.9, 1e-15, "cycles at end");
    /* ratio 1: rises for the whole cycle; t = 3 of period 4 → .75 */
    s = must_parse("{\"kind\":\"cyclical\",\"period\":4,\"ratio\":1}", 0);
    CHECK_CLOSE(b_at(&s, 300, 100), 0.75, 1e-15, "cyc ratio 1");
}

static void test_piecewise(void)
{
    sched_spec s = must_parse("{\"kind\":\"piecewise\",\"points\":[[1,0.2],[3,1],[6,0.5]]}", 0);
    /* before the first point: .2; t=2: .2 + .8 * (1/2) = .6;
     * t=4.5: 1 + (.5-1) * (1.5/3) = .75; after the last: .5 */
    CHECK_CLOSE(b_at(&s, 50, 100), 0.2, 0, "pw before");
    CHECK_CLOSE(b_at(&s, 200, 100), 0.6, 1e-15, "pw t=2");
    CHECK_CLOSE(b_at(&s, 300, 100), 1.0, 1e-15, "pw at a point");
    CHECK_CLOSE(b_at(&s, 450, 100), 0.75, 1e-15, "pw t=4.5");
    CHECK_CLOSE(b_at(&s, 100000, 100), 0.5, 0, "pw after");
    /* start shifts point times: start 2 → t = 4 - 2 = 2 → .6 */
    s = must_parse("{\"kind\":\"piecewise\",\"start\":2,\"points\":[[1,0.2],[3,1],[6,0.5]]}", 0);
    CHECK_CLOSE(b_at(&s, 400, 100), 0.6, 1e-15, "pw with start");
    /* one point: constant */
    s = must_parse("{\"kind\":\"piecewise\",\"points\":[[0,0.7]]}", 0);
    CHECK_CLOSE(b_at(&s, 0, 100), 0.7, 0, "pw single at 0");
    CHECK_CLOSE(b_at(&s, 99999, 100), 0.7, 0, "pw single late");
}

static void test_capacity(void)
{
    /* gamma 100, C rises 0 → 20 over 5 epochs from epoch 1:
     * step 350 → t = 2.5 → C = 20 * 2.5/5 = 10; beta = gamma = 100 */
    sched_spec s = must_parse("{\"kind\":\"capacity\",\"gamma\":100,\"c_max\":20,"
                              "\"duration\":5,\"start\":1}", 0);
    CHECK_CLOSE(sched_capacity(&s, 350, 100), 10.0, 1e-15, "capacity t=2.5");
    CHECK_CLOSE(sched_beta(&s, NULL, 350, 100, 0), 100.0, 0, "capacity beta = gamma");
    CHECK_CLOSE(sched_capacity(&s, 50, 100), 0.0, 0, "capacity before start");
    CHECK_CLOSE(sched_capacity(&s, 10000, 100), 20.0, 0, "capacity after");
    s = must_parse("{\"kind\":\"capacity\"}", 0);
    /* defaults (Burgess et al.): gamma 1000, c_max 25, duration 10 → t = 4: 10 */
    CHECK_CLOSE(sched_beta(&s, NULL, 0, 100, 0), 1000.0, 0, "capacity default gamma");
    CHECK_CLOSE(sched_capacity(&s, 400, 100), 10.0, 1e-15, "capacity default C");
}

/* ---- properties over a sweep ------------------------------------------------- */

/* Lipschitz bound of beta in t (per unit), used for the continuity check. */
static double slope_bound(const sched_spec *s)
{
    double d = fabs(s->to - s->from);
    switch (s->kind) {
    case SCHED_LINEAR:
        return d / s->duration;
    case SCHED_LOGISTIC:
        return d * s->k / 4;  /* max of sigmoid' is 1/4 */
    case SCHED_CYCLICAL: {
        double p = s->period > 0 ? s->period : s->duration / s->cycles;
        double lo = 1 / (1 + exp(6.0)), hi = 1 / (1 + exp(-6.0));
        double shape = s->shape == SCHED_SHAPE_LINEAR   ? 1
                       : s->shape == SCHED_SHAPE_COSINE ? M_PI / 2
                                                        : 3 / (hi - lo); /* 12/4 rescaled */
        return d * shape / (s->ratio * p);
    }
    case SCHED_PIECEWISE: {
        double m = 0;
        for (int i = 1; i < s->n_points; i++)
            m = fmax(m, fabs(s->points[i][1] - s->points[i - 1][1]) /
                            (s->points[i][0] - s->points[i - 1][0]));
        return m;
    }
    default:
        return 0;
    }
}

static void test_sweep(void)
{
    const char *docs[] = {
        "{\"kind\":\"linear\"}",
        "{\"kind\":\"linear\",\"from\":0.9,\"to\":0.1,\"duration\":3,\"start\":2}",
        "{\"kind\":\"linear\",\"unit\":\"steps\",\"duration\":777,\"to\":4}",
        "{\"kind\":\"logistic\"}",
        "{\"kind\":\"logistic\",\"from\":1,\"to\":0.2,\"k\":3,\"midpoint\":2,\"start\":1}",
        "{\"kind\":\"cyclical\",\"period\":4}",
        "{\"kind\":\"cyclical\",\"period\":3,\"shape\":\"cosine\",\"ratio\":0.7,\"from\":0.2}",
        "{\"kind\":\"cyclical\",\"cycles\":4,\"duration\":10,\"shape\":\"sigmoid\",\"ratio\":1}",
        "{\"kind\":\"cyclical\",\"cycles\":2,\"duration\":6,\"from\":1,\"to\":0.5}",
        "{\"kind\":\"piecewise\",\"points\":[[0,0],[2,1],[5,0.3],[6,0.3],[9,2]]}",
    };
    const long spe = 50, n_steps = 1000;   /* 20 epochs */
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        sched_spec s = must_parse(docs[d], 0);
        double lo, hi;
        if (s.kind == SCHED_PIECEWISE) {
            lo = hi = s.points[0][1];
            for (int i = 1; i < s.n_points; i++)
                lo = fmin(lo, s.points[i][1]), hi = fmax(hi, s.points[i][1]);
        } else {
            lo = fmin(s.from, s.to), hi = fmax(s.from, s.to);
        }
        double dt = s.unit == SCHED_STEPS ? 1.0 : 1.0 / spe;
        double lip = slope_bound(&s);
        int bad_bound = 0, bad_cont = 0;
        for (long n = 0; n < n_steps; n++) {
            double b = b_at(&s, n, spe), b1 = b_at(&s, n + 1, spe);
            if (!(b >= lo - 1e-12 && b <= hi + 1e-12) && !bad_bound++)
                CHECK(0, "%s: step %ld beta %g outside [%g, %g]", docs[d], n, b, lo, hi);
            /* Cyclical drops back to `from` at each cycle boundary, by design: skip
             * the steps whose interval crosses one. */
            if (s.kind == SCHED_CYCLICAL) {
                double p = s.period > 0 ? s.period : s.duration / s.cycles;
                double t0 = n * dt - s.start, t1 = (n + 1) * dt - s.start;
                if (t1 >= 0 && floor(t0 / p) != floor(t1 / p))
                    continue;
            }
            if (fabs(b1 - b) > lip * dt * (1 + 1e-9) + 1e-12 && !bad_cont++)
                CHECK(0, "%s: step %ld→%ld beta %g→%g, jump %g > bound %g", docs[d], n, n + 1,
                      b, b1, fabs(b1 - b), lip * dt);
        }
        CHECK(bad_bound == 0, "%s: %d steps out of bounds", docs[d], bad_bound);
        CHECK(bad_cont == 0, "%s: %d discontinuities", docs[d], bad_cont);

        /* Epoch granularity: beta constant within each epoch and equal to the
         * per-step schedule's value at the epoch's first step. */
        sched_spec e = s;
        e.granularity = SCHED_PER_EPOCH;
        int bad_ep = 0;
        for (long n = 0; n < n_steps; n++) {
            long first = n / spe * spe;
            double want = b_at(&s, first, spe), got = b_at(&e, n, spe);
            if (got != want && !bad_ep++)
                CHECK(0, "%s epoch granularity: step %ld beta %.17g, epoch start %.17g",
                      docs[d], n, got, want);
        }
        CHECK(bad_ep == 0, "%s: %d epoch-granularity mismatches", docs[d], bad_ep);
    }
}

/* ---- controller --------------------------------------------------------------- */

/* Toy plant: the KL a model settles to under weight beta, monotone decreasing. */
static double plant(double beta)
{
    return 40.0 / (1.0 + 4.0 * beta);
}

static void test_controller_by_hand(void)
{
    sched_spec s = must_parse("{\"kind\":\"controller\",\"target_kl\":10}", 0);
    CHECK(s.kp == 0.01 && s.ki == 0.0001 && s.min == 0 && s.max == 1,
          "controller defaults kp %g ki %g min %g max %g", s.kp, s.ki, s.min, s.max);
    sched_state st = {0};
    /* step 0: no KL yet → min, state started */
    double b0 = sched_beta(&s, &st, 0, 100, NAN);
    CHECK(b0 == 0.0 && st.started == 1 && st.integral == 0, "controller step 0: %g", b0);
    /* step 1 with KL 12: e = 10 - 12 = -2, P = .01/(1+e^-2) = .01 * .8807970780,
     * sum e = -2 → I = -.0001 * -2 = .0002; beta = P + I + 0 = .0090079708 */
    double b1 = sched_beta(&s, &st, 1, 100, 12.0);
    CHECK_CLOSE(b1, 0.009007970779778824, 1e-14, "controller one update");
    CHECK_CLOSE(st.integral, -2.0, 0, "controller error sum");
    CHECK_CLOSE(st.beta, b1, 0, "controller state beta");
    /* step 2 with KL 10: e = 0, P = .01/2 = .005, I unchanged .0002 → .0052 */
    double b2 = sched_beta(&s, &st, 2, 100, 10.0);
    CHECK_CLOSE(b2, 0.0052, 1e-14, "controller e=0");
    /* a NaN KL leaves beta and state alone */
    double b3 = sched_beta(&s, &st, 3, 100, NAN);
    CHECK(b3 == b2 && st.integral == -2.0, "controller NaN KL: %g sum %g", b3, st.integral);
    /* enormous errors: no FP exceptions, result in bounds */
    feclearexcept(FE_ALL_EXCEPT);
    double b4 = sched_beta(&s, &st, 4, 100, 1e300);
    double b5 = sched_beta(&s, &st, 5, 100, -1e300);
    int raised = fetestexcept(FE_OVERFLOW | FE_INVALID | FE_DIVBYZERO);
    CHECK(raised == 0, "controller extreme KL raised 0x%x", raised);
    CHECK(b4 >= 0 && b4 <= 1 && b5 >= 0 && b5 <= 1, "controller extreme: %g %g", b4, b5);

    /* granularity epoch: only the first step of an epoch updates */
    s = must_parse("{\"kind\":\"controller\",\"target_kl\":10,\"granularity\":\"epoch\"}", 0);
    memset(&st, 0, sizeof st);
    sched_beta(&s, &st, 0, 10, NAN);
    double a = sched_beta(&s, &st, 1, 10, 30.0);   /* mid-epoch: hold */
    double c = sched_beta(&s, &st, 10, 10, 30.0);  /* epoch 1 starts: update */
    CHECK(a == 0.0 && c > 0.0, "controller epoch granularity: %g then %g", a, c);

    /* before start: min, state untouched */
    s = must_parse("{\"kind\":\"controller\",\"target_kl\":10,\"min\":0.1,\"start\":2}", 0);
    memset(&st, 0, sizeof st);
    double pre = sched_beta(&s, &st, 150, 100, 30.0);
    CHECK(pre == 0.1 && st.started == 0, "controller before start: %g started %d", pre,
          st.started);
}

static void test_controller_plant(void)
{
    /* Target 15 nats: beta* solves 40/(1+4b) = 15 → b = (40/15 - 1)/4 = .41667. */
    sched_spec s = must_parse("{\"kind\":\"controller\",\"target_kl\":15}", 0);
    sched_state st = {0};
    double kl = NAN, worst = 0;
    int out_of_bounds = 0;
    for (long n = 0; n < 30000; n++) {
        double b = sched_beta(&s, &st, n, 100, kl);
        if (b < s.min || b > s.max)
            out_of_bounds++;
        kl = plant(b);
        if (n >= 29000)
            worst = fmax(worst, fabs(kl - 15.0) / 15.0);
    }
    CHECK(out_of_bounds == 0, "controller left [min,max] %d times", out_of_bounds);
    CHECK(worst <= 0.10, "controller did not settle: worst relative KL error %g", worst);
    CHECK_CLOSE(st.beta, (40.0 / 15.0 - 1) / 4, 0.02, "controller settles near beta*");

    /* Unreachable target below the plant's floor (KL(1) = 8 > 5): beta must sit on
     * max, and the integral must not wind up while it does. */
    s = must_parse("{\"kind\":\"controller\",\"target_kl\":5,\"max\":1}", 0);
    memset(&st, 0, sizeof st);
    kl = NAN;
    double sum_at_clamp = NAN;
    int grew = 0, above = 0;
    long n = 0;
    for (; n < 20000; n++) {
        double b = sched_beta(&s, &st, n, 100, kl);
        if (b > s.max)
            above++;
        if (b == s.max) {
            if (isnan(sum_at_clamp))
                sum_at_clamp = st.integral;
            else if (fabs(st.integral) > fabs(sum_at_clamp))
                grew++;
        }
        kl = plant(b);
    }
    CHECK(above == 0, "controller exceeded max %d times", above);
    CHECK(!isnan(sum_at_clamp), "controller never reached max for an unreachable target");
    CHECK(grew == 0, "integral grew on %d steps while clamped at max (sum %g → %g)", grew,
          sum_at_clamp, st.integral);
    /* Now the target becomes reachable (20 nats → beta* = .25). With anti-windup,
     * beta leaves the bound within a few hundred steps rather than after the ~15000
     * it would take to unwind 20000 steps of accumulated error. */
    s.target_kl = 20.0;
    long left = -1;
    for (long k = 0; k < 20000; k++, n++) {
        double b = sched_beta(&s, &st, n, 100, kl);
        kl = plant(b);
        if (b < s.max && left < 0)
            left = k;
    }
    CHECK(left >= 0 && left < 500, "controller left max after %ld steps", left);
    CHECK(fabs(kl - 20.0) / 20.0 <= 0.10, "controller after target change: KL %g", kl);

    /* Unreachable from below: target 50 > KL(0) = 40 → beta sits on min = .05. */
    s = must_parse("{\"kind\":\"controller\",\"target_kl\":50,\"min\":0.05}", 0);
    memset(&st, 0, sizeof st);
    kl = NAN;
    double sum0 = NAN;
    int below = 0;
    grew = 0;
    for (n = 0; n < 5000; n++) {
        double b = sched_beta(&s, &st, n, 100, kl);
        if (b < s.min)
            below++;
        if (n > 10 && b == s.min) {
            if (isnan(sum0))
                sum0 = st.integral;
            else if (fabs(st.integral) > fabs(sum0))
                grew++;
        }
        kl = plant(b);
    }
    CHECK(below == 0 && grew == 0, "controller at min: below %d, integral grew %d", below,
          grew);
    CHECK(st.beta == 0.05, "controller at min: beta %g", st.beta);
}

/* ---- resolve ------------------------------------------------------------------ */

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

/* ---- round trips ------------------------------------------------------------- */

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

/* ---- invalid documents ------------------------------------------------------- */

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
    test_constant_and_default();
    test_seed_sequence();
    test_linear();
    test_progress();
    test_logistic();
    test_cyclical();
    test_piecewise();
    test_capacity();
    test_sweep();
    test_controller_by_hand();
    test_controller_plant();
    test_state_init();
    test_resolve();
    test_round_trip();
    test_invalid();
    return t_done("test_sched");
}
