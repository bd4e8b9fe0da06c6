/* test_sched_util.h — what the test_sched programs share: includes, fixtures and helpers. Each
 * program uses a part of them, hence the pragmas. */
#ifndef VAED_TESTS_TEST_SCHED_UTIL_H
#define VAED_TESTS_TEST_SCHED_UTIL_H

#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
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


/* ---- controller --------------------------------------------------------------- */

/* Toy plant: the KL a model settles to under weight beta, monotone decreasing. */
static double plant(double beta)
{
    return 40.0 / (1.0 + 4.0 * beta);
}



/* ---- resolve ------------------------------------------------------------------ */


/* ---- round trips ------------------------------------------------------------- */


/* ---- invalid documents ------------------------------------------------------- */

#endif
