/* sched.h — KL weight (beta) schedules: pure functions of training progress.
 *
 * A schedule maps progress t to beta. t is in epochs (fractional: step /
 * steps_per_epoch) unless unit is steps. With granularity "epoch" beta is held at
 * its value at the start of each epoch (what a Keras epoch callback does). `start`
 * shifts the whole schedule: t is measured from it. Formulas: README "Schedules".
 *
 * The controller kind (ControlVAE's PI controller) has state, kept in sched_state,
 * which is part of the training checkpoint. Every other kind is stateless.
 *
 * A schedule sent by a client may be relative (origin "now", from "current");
 * sched_resolve turns it into an absolute one at the step where it takes effect, so
 * a stored schedule is always absolute and evaluating it needs nothing but t. */
#ifndef VAED_SCHED_H
#define VAED_SCHED_H

#include <jansson.h>

#include "err.h"

enum sched_kind {
    SCHED_CONSTANT = 0,
    SCHED_LINEAR,
    SCHED_LOGISTIC,
    SCHED_CYCLICAL,
    SCHED_PIECEWISE,
    SCHED_CONTROLLER,
    SCHED_CAPACITY,
};
#define SCHED_NKINDS 7
enum sched_unit { SCHED_EPOCHS = 0, SCHED_STEPS };
enum sched_gran { SCHED_PER_STEP = 0, SCHED_PER_EPOCH };
enum sched_shape { SCHED_SHAPE_LINEAR = 0, SCHED_SHAPE_COSINE, SCHED_SHAPE_SIGMOID };

#define SCHED_MAX_POINTS 256

typedef struct sched_spec {
    enum sched_kind kind;
    enum sched_unit unit;
    enum sched_gran granularity;
    double start;             /* offset of t = 0, in `unit`, absolute once resolved */
    /* constant */
    double value;
    /* linear, logistic, cyclical */
    double from, to;
    double duration;          /* linear, capacity: > 0 */
    double k, midpoint;       /* logistic */
    double cycles, period;    /* cyclical: exactly one of them > 0 */
    double ratio;             /* cyclical: in (0, 1] */
    enum sched_shape shape;   /* cyclical */
    int n_points;             /* piecewise */
    double points[SCHED_MAX_POINTS][2];
    /* controller */
    double target_kl, kp, ki, min, max;
    /* capacity: objective xent + gamma * |KL - C(t)|, C rising linearly to c_max */
    double gamma, c_max;
    /* relative parts, as sent; cleared by sched_resolve */
    int origin_now;           /* "origin": "now" */
    int from_current;         /* "from": "current" */
} sched_spec;

typedef struct sched_state {
    double integral;          /* controller: running sum of the error */
    double beta;              /* controller: last beta it produced */
    int started;              /* controller: 0 until the first update */
} sched_state;

/* Parse a schedule document into out. prefix is the dotted path used in error
 * fields ("schedule" in a job spec, "" for a PUT body). Unknown keys, wrong types
 * and numbers outside their range (range.h: one table for every field) are errors
 * naming the field ("schedule.points[2][1]"); -0 is stored as +0.
 * allow_relative: accept "origin": "now" and "from": "current" (PUT bodies).
 * Returns 0 or VAED_EINVAL with err filled. out is fully written on success. */
int sched_parse(sched_spec *out, const json_t *doc, const char *prefix, int allow_relative,
                vaed_err *err);

/* Defaults: a constant schedule of value 1 (no warm-up). */
void sched_default(sched_spec *out);

/* Turn relative parts into absolute ones. effective_step is the step at which the
 * schedule takes effect, steps_per_epoch converts to epochs, beta_now is the beta in
 * force at that moment (used for from = "current"; taken into [0, the largest KL
 * weight]). The result parses again: start is held at most at its range's top. */
void sched_resolve(sched_spec *s, long effective_step, long steps_per_epoch, double beta_now);

/* Progress of step `step` in the schedule's unit, after granularity is applied and
 * before `start` is subtracted. */
double sched_progress(const sched_spec *s, long step, long steps_per_epoch);

/* beta for the step `step` (0-based) of a run with steps_per_epoch steps per epoch.
 * For the controller, last_kl is the KL (nats per example) of the previous step and
 * st is advanced; for the other kinds st and last_kl are ignored. For capacity the
 * returned value is gamma (the weight of |KL - C|). Always finite. */
double sched_beta(const sched_spec *s, sched_state *st, long step, long steps_per_epoch,
                  double last_kl);

/* Seed st for s taking over from a run whose last beta was beta_now, so that a
 * controller switched on mid-run continues from beta_now instead of dropping to min:
 * started = 1, beta = beta_now clamped to [min, max], and the integral set so that the
 * next update, with KL on target, gives that beta again (the P term's mid-value kp/2 is
 * taken out; with ki = 0 only P is left and the first beta is min + P). A non-finite
 * beta_now (NAN: no step has run) and every kind but the controller give the zero
 * state, as for a new run. st is fully written. */
void sched_state_init(const sched_spec *s, sched_state *st, double beta_now);

/* Capacity C(t) in nats for the capacity kind; 0 for every other kind. */
double sched_capacity(const sched_spec *s, long step, long steps_per_epoch);

/* The name of kind ("constant", ...), NULL when out of range. */
const char *sched_kind_name(int kind);

/* kind's defaults, as sched_to_json writes them (new reference; NULL when kind is out of
 * range): what a client's form starts from. Fields with no default (piecewise's points,
 * the controller's target_kl, cyclical's period or cycles) hold placeholders of 0. */
json_t *sched_kind_defaults_json(int kind);

/* The schedule as a JSON object (new reference), every field of its kind written,
 * absolute (no origin/from-current). Round-trips through sched_parse. */
json_t *sched_to_json(const sched_spec *s);

#endif
