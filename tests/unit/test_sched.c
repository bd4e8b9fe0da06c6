/* test_sched.c — beta schedules against hand-computed values, properties over a
 * sweep, the ControlVAE controller on a toy plant, resolve (no jump), round trips
 * through JSON, and a table of invalid documents with the field each must name. */
#include "tests/unit/test_sched_util.h"

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
    return t_done("test_sched");
}
