/* sched.c — KL weight (beta) schedules; see sched.h and docs/spec.md.
 *
 * Every kind but the controller is a pure function of progress t (in the schedule's
 * unit, after granularity, minus `start`), so the beta the loss uses at step n can be
 * recomputed from the stored schedule and n alone — there is no hidden variable to
 * rebind, which is the Keras bug this daemon exists to avoid.
 *
 * Invariants kept by sched_parse, relied on by the evaluators:
 *   - every number is within its row of the range table (range.h), so finite, and
 *     never -0; durations and periods are > 0; k > 0;
 *   - every beta a schedule can produce for t >= 0 is >= 0 (logistic: see resolve);
 *   - piecewise times are >= 0 and strictly increasing, 1..SCHED_MAX_POINTS points;
 *   - cyclical has exactly one of period > 0, or cycles > 0 together with duration;
 *   - controller min <= max.
 * A spec still carrying origin_now / from_current is not evaluated meaningfully until
 * sched_resolve has run; the daemon resolves before it stores or evaluates.
 *
 * Decisions worth knowing (README "Schedules" has the user's view):
 *   - Before `start`, linear/cyclical/piecewise give their first value, logistic its
 *     value at start, capacity C = 0, the controller `min` without updating.
 *   - Piecewise times are measured from `start` like every other kind, so resolving
 *     "origin": "now" shifts `start` only (the points move with it).
 *   - "from": "current" is accepted only with "origin": "now": only a schedule that
 *     begins when it takes effect can start at the current beta with no jump. */
#include "sched.h"

#include "range.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {
    [SCHED_CONSTANT] = "constant",   [SCHED_LINEAR] = "linear",
    [SCHED_LOGISTIC] = "logistic",   [SCHED_CYCLICAL] = "cyclical",
    [SCHED_PIECEWISE] = "piecewise", [SCHED_CONTROLLER] = "controller",
    [SCHED_CAPACITY] = "capacity",
};
#define N_KINDS ((int)(sizeof kind_names / sizeof kind_names[0]))

static const char *const shape_names[] = {
    [SCHED_SHAPE_LINEAR] = "linear", [SCHED_SHAPE_COSINE] = "cosine",
    [SCHED_SHAPE_SIGMOID] = "sigmoid",
};

/* Keys every kind accepts. */
static const char *const common_keys[] = {"kind", "unit", "granularity", "start", "origin", NULL};

/* Parameters per kind, NULL-terminated. A key found in another kind's list gets a
 * "not a parameter of" message rather than "unknown key". */
static const char *const kind_keys[][8] = {
    [SCHED_CONSTANT] = {"value", NULL},
    [SCHED_LINEAR] = {"from", "to", "duration", NULL},
    [SCHED_LOGISTIC] = {"from", "to", "k", "midpoint", NULL},
    [SCHED_CYCLICAL] = {"from", "to", "period", "cycles", "duration", "ratio", "shape", NULL},
    [SCHED_PIECEWISE] = {"points", NULL},
    [SCHED_CONTROLLER] = {"target_kl", "kp", "ki", "min", "max", NULL},
    [SCHED_CAPACITY] = {"gamma", "c_max", "duration", NULL},
};

/* The controller's documented defaults: ControlVAE (Shao et al. 2020) uses
 * Kp = 0.01, Ki = 0.0001 with beta in [0, 1] for its language-model runs. */
#define CTRL_KP 0.01
#define CTRL_KI 0.0001

/* ---- numerics ---------------------------------------------------------------- */

/* 1 / (1 + exp(-x)) without overflow: exp only ever sees a non-positive argument. */
static double sigmoid(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

static double clamp(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* floor(a / b) for b > 0, also for a < 0 (C division truncates toward zero). */
static long floor_div(long a, long b)
{
    long q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Cyclical rise shape on u in [0, 1], going exactly from 0 to 1. The sigmoid is
 * Fu et al.'s 1/(1+exp(-12(u-1/2))), rescaled by its values at u = 0 and 1 so the
 * rise meets `from` and `to` with no step. */
static double shape_eval(enum sched_shape sh, double u)
{
    switch (sh) {
    case SCHED_SHAPE_COSINE:
        return 0.5 * (1.0 - cos(M_PI * u));
    case SCHED_SHAPE_SIGMOID: {
        double lo = sigmoid(-6.0), hi = sigmoid(6.0);
        return (sigmoid(12.0 * (u - 0.5)) - lo) / (hi - lo);
    }
    case SCHED_SHAPE_LINEAR:
    default:
        return u;
    }
}

/* Logistic value at t >= 0 (t already measured from start; before start the
 * schedule holds its value at start, so callers clamp t to 0). */
static double logistic_at(const sched_spec *s, double t)
{
    return s->from + (s->to - s->from) * sigmoid(s->k * (t - s->midpoint));
}

static double cyclical_period(const sched_spec *s)
{
    return s->period > 0 ? s->period : s->duration / s->cycles;
}

/* beta of a stateless kind at t (measured from start; may be negative). */
static double eval_at(const sched_spec *s, double t)
{
    switch (s->kind) {
    case SCHED_CONSTANT:
        return s->value;
    case SCHED_LINEAR:
        return s->from + (s->to - s->from) * clamp(t / s->duration, 0.0, 1.0);
    case SCHED_LOGISTIC:
        /* fmax: the resolved `from` of a from-"current" logistic may be a little
         * below 0 (an asymptote never reached for t >= 0); rounding must not leak
         * a negative beta out. */
        return fmax(0.0, logistic_at(s, t < 0 ? 0.0 : t));
    case SCHED_CYCLICAL: {
        if (t < 0)
            return s->from;
        /* With cycles N over duration, the N cycles end at duration and beta holds
         * `to` after that (training past the planned length stays at full weight). */
        if (s->period <= 0 && t >= s->duration)
            return s->to;
        double p = cyclical_period(s);
        double tau = fmod(t, p) / p;
        if (tau >= s->ratio)
            return s->to;
        return s->from + (s->to - s->from) * shape_eval(s->shape, tau / s->ratio);
    }
    case SCHED_PIECEWISE: {
        int n = s->n_points;
        if (n <= 0)
            return 0.0;
        if (t <= s->points[0][0])
            return s->points[0][1];
        for (int i = 1; i < n; i++) {
            double t0 = s->points[i - 1][0], t1 = s->points[i][0];
            if (t <= t1) {
                double b0 = s->points[i - 1][1], b1 = s->points[i][1];
                return b0 + (b1 - b0) * (t - t0) / (t1 - t0);
            }
        }
        return s->points[n - 1][1];
    }
    case SCHED_CAPACITY:
        return s->gamma;
    case SCHED_CONTROLLER:
    default:
        return s->min;
    }
}

/* ---- evaluation --------------------------------------------------------------- */

double sched_progress(const sched_spec *s, long step, long steps_per_epoch)
{
    long spe = steps_per_epoch > 0 ? steps_per_epoch : 1;
    if (s->granularity == SCHED_PER_EPOCH) {
        long epoch = floor_div(step, spe);
        return s->unit == SCHED_STEPS ? (double)epoch * (double)spe : (double)epoch;
    }
    return s->unit == SCHED_STEPS ? (double)step : (double)step / (double)spe;
}

/* One ControlVAE PI update (Shao et al. 2020, Algorithm 1):
 *   e = target_kl - KL,  P = kp / (1 + exp(e)),  I = -ki * sum(e),
 *   beta = clamp(P + I + min, min, max).
 * Anti-windup: while the previous beta sits on a bound, an error that would push
 * beta further past that bound is not added to the sum (the update is undone), so
 * the integral stops growing as soon as beta is clamped, and an error of the other
 * sign unwinds it at once — beta leaves the bound as soon as the KL crosses the
 * target. (The paper tests "min <= beta(t-1) <= max", which is always true after
 * clamping, so as written it never fires.) The step that first reaches a bound is
 * integrated normally, so beta does reach the bound exactly. */
static double controller_step(const sched_spec *s, sched_state *st, double kl)
{
    double e = s->target_kl - kl;
    double p = s->kp * sigmoid(-e);          /* kp / (1 + exp(e)), overflow-safe */
    double push = -s->ki * e;                /* this step's change of the I term */
    double sum = st->integral;
    if (!((st->beta >= s->max && push > 0) || (st->beta <= s->min && push < 0)))
        sum += e;
    double beta = clamp(p - s->ki * sum + s->min, s->min, s->max);
    if (!isfinite(beta))
        return st->beta;                     /* unreachable with finite inputs */
    st->integral = sum;
    st->beta = beta;
    return beta;
}

double sched_beta(const sched_spec *s, sched_state *st, long step, long steps_per_epoch,
                  double last_kl)
{
    double t = sched_progress(s, step, steps_per_epoch) - s->start;
    if (s->kind != SCHED_CONTROLLER) {
        double b = eval_at(s, t);
        /* Non-finite only for a spec built by hand that sched_parse would reject
         * (duration 0, ...): keep the "always finite" contract. */
        return isfinite(b) ? b : 0.0;
    }
    /* Controller. Before its start it has not begun: beta = min, state untouched. */
    if (!st || t < 0)
        return s->min;
    if (!st->started) {
        /* No KL seen yet: begin at the lower bound (ControlVAE starts beta at 0 =
         * its beta_min), with an empty integral. */
        st->started = 1;
        st->integral = 0.0;
        st->beta = s->min;
        return s->min;
    }
    long spe = steps_per_epoch > 0 ? steps_per_epoch : 1;
    if (s->granularity == SCHED_PER_EPOCH && floor_div(step, spe) * spe != step)
        return st->beta;                     /* only the first step of an epoch updates */
    if (!isfinite(last_kl))
        return st->beta;                     /* a bad KL reading must not poison the sum */
    return controller_step(s, st, last_kl);
}

/* The controller's next beta is clamp(P + min - ki * (integral + e), min, max) with
 * P = kp * sigmoid(KL - target) in (0, kp). The error e of the next update is not
 * known here, so the integral is chosen for e = 0, where P = kp / 2:
 *     beta_now = kp/2 + min - ki * integral  =>  integral = -(beta_now - min - kp/2) / ki.
 * For e != 0 the first beta then differs from beta_now by (P - kp/2) - ki e, at most
 * kp/2 + ki |e| — half of what leaving P out would give, and the same step a running
 * controller would take from beta_now with that error. */
void sched_state_init(const sched_spec *s, sched_state *st, double beta_now)
{
    memset(st, 0, sizeof *st);
    if (s->kind != SCHED_CONTROLLER || !isfinite(beta_now))
        return;
    /* The controller never produces a beta outside its bounds; its state must not
     * either, or anti-windup would read a bound as crossed. */
    double b = clamp(beta_now, s->min, s->max);
    st->started = 1;
    st->beta = b;
    if (s->ki > 0) {
        double integral = -(b - s->min - 0.5 * s->kp) / s->ki;
        st->integral = isfinite(integral) ? integral : 0.0;
    }
}

double sched_capacity(const sched_spec *s, long step, long steps_per_epoch)
{
    if (s->kind != SCHED_CAPACITY)
        return 0.0;
    double t = sched_progress(s, step, steps_per_epoch) - s->start;
    return s->c_max * clamp(t / s->duration, 0.0, 1.0);
}

/* ---- resolve ----------------------------------------------------------------- */

void sched_resolve(sched_spec *s, long effective_step, long steps_per_epoch, double beta_now)
{
    if (s->origin_now) {
        /* The progress of the effective step, granularity applied: with per-step
         * granularity that is effective_step / steps_per_epoch (or the step); with
         * per-epoch granularity it is the start of the current epoch, so the new
         * schedule's epochs line up with the run's (beta at the effective step is
         * still the schedule's value at t = 0). */
        s->start += sched_progress(s, effective_step, steps_per_epoch);
        /* The stored schedule must parse again (recovery and forks read it back), so
         * start stays within its range; a run never gets near 1e15 epochs or steps. */
        s->start = fmin(s->start, VAE_RANGE_TIME_MAX);
        s->origin_now = 0;
    }
    if (s->from_current) {
        /* Into the range of a KL weight (NaN and -0 give +0), for the same reason; a
         * beta produced by a parsed schedule is already in it. */
        if (!(beta_now > 0))
            beta_now = 0.0;
        beta_now = fmin(beta_now, VAE_RANGE_WEIGHT_MAX);
        /* sched_parse only accepts "current" together with origin "now", so the
         * effective step is at or before the schedule's t = 0, where every kind
         * below starts at its first value. */
        switch (s->kind) {
        case SCHED_LINEAR:
        case SCHED_CYCLICAL:
            s->from = beta_now;
            break;
        case SCHED_LOGISTIC: {
            /* The logistic at t = 0 is from + (to - from) * s0, s0 = sigmoid(-k mid),
             * not `from`. Solve for the asymptote `from` that makes it pass through
             * beta_now at t = 0: from = (beta_now - to s0) / (1 - s0). When the curve
             * is already on its plateau at t = 0 (1 - s0 tiny) no finite asymptote
             * does it; then from = beta_now and the jump is to ~`to`, as asked. */
            double s0 = sigmoid(-s->k * s->midpoint), q = sigmoid(s->k * s->midpoint);
            s->from = q > 1e-9 ? (beta_now - s->to * s0) / q : beta_now;
            break;
        }
        case SCHED_PIECEWISE:
            if (s->n_points > 0)
                s->points[0][1] = beta_now;
            break;
        default:
            break;
        }
        s->from_current = 0;
    }
}

/* ---- parse ------------------------------------------------------------------- */

void sched_default(sched_spec *out)
{
    memset(out, 0, sizeof *out);
    out->kind = SCHED_CONSTANT;
    out->unit = SCHED_EPOCHS;
    out->granularity = SCHED_PER_STEP;
    out->start = 0.0;
    out->value = 1.0;
}

/* Defaults of one kind (README "Schedules"); common fields as in sched_default. */
static void kind_defaults(sched_spec *s, enum sched_kind kind)
{
    sched_default(s);
    s->kind = kind;
    s->value = kind == SCHED_CONSTANT ? 1.0 : 0.0;
    switch (kind) {
    case SCHED_LINEAR:
        s->from = 0.0, s->to = 1.0, s->duration = 10.0;
        break;
    case SCHED_LOGISTIC:
        s->from = 0.0, s->to = 1.0, s->k = 1.0, s->midpoint = 5.0;
        break;
    case SCHED_CYCLICAL:
        s->from = 0.0, s->to = 1.0, s->ratio = 0.5, s->shape = SCHED_SHAPE_LINEAR;
        break;
    case SCHED_CONTROLLER:
        s->kp = CTRL_KP, s->ki = CTRL_KI, s->min = 0.0, s->max = 1.0;
        break;
    case SCHED_CAPACITY:
        s->gamma = 1000.0, s->c_max = 25.0, s->duration = 10.0;
        break;
    default:
        break;
    }
}

/* Parsing context: the prefix, the kind (its name picks the range rows meant for it)
 * and a buffer for the field path being reported. */
typedef struct pctx {
    const char *prefix;
    const char *kind;
    vaed_err *err;
    char field[128];
} pctx;

static const char *fld(pctx *c, const char *key)
{
    if (c->prefix && c->prefix[0])
        snprintf(c->field, sizeof c->field, "%s.%s", c->prefix, key);
    else
        snprintf(c->field, sizeof c->field, "%s", key);
    return c->field;
}

static int in_list(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (strcmp(*list, key) == 0)
            return 1;
    return 0;
}

/* The range row of a schedule key (range.h), whatever the prefix of this parse. */
static const vae_range *row(const pctx *c, const char *key)
{
    char f[64];
    snprintf(f, sizeof f, "schedule.%s", key);
    return vae_range_find(f, c->kind);
}

/* A number at key (if present) within its row's range; -0 is stored as +0.
 * Returns 1 if found, 0 if absent, <0 error. */
static int get_num(pctx *c, const json_t *doc, const char *key, double *out)
{
    json_t *v = json_object_get(doc, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return vaed_err_set(c->err, VAED_EINVAL, fld(c, key), "must be a number");
    double d = json_number_value(v);
    int rc = vae_range_check(row(c, key), d, fld(c, key), c->err);
    if (rc)
        return rc;
    *out = vae_range_unsign_zero(d);
    return 1;
}

/* A string at key, one of names[0..n). Returns 1 found, 0 absent, <0 error. */
static int get_enum(pctx *c, const json_t *doc, const char *key, const char *const *names,
                    int n, int *out)
{
    json_t *v = json_object_get(doc, key);
    if (!v)
        return 0;
    const char *sv = json_string_value(v);
    if (sv)
        for (int i = 0; i < n; i++)
            if (strcmp(sv, names[i]) == 0) {
                *out = i;
                return 1;
            }
    char list[160] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"",
                 i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
    return vaed_err_set(c->err, VAED_EINVAL, fld(c, key), "must be %s", list);
}

#define TRY(x)                                                                   \
    do {                                                                         \
        int rc_ = (x);                                                           \
        if (rc_ < 0)                                                             \
            return rc_;                                                          \
    } while (0)

/* "from": a number in its range, or "current" when relative parts are allowed. */
static int get_from(pctx *c, const json_t *doc, int allow_relative, sched_spec *s)
{
    json_t *v = json_object_get(doc, "from");
    if (v && json_is_string(v)) {
        if (strcmp(json_string_value(v), "current") != 0)
            return vaed_err_set(c->err, VAED_EINVAL, fld(c, "from"),
                                "must be a number or \"current\"");
        if (!allow_relative)
            return vaed_err_set(c->err, VAED_EINVAL, fld(c, "from"),
                                "\"current\" is only accepted when changing the schedule "
                                "of a running job");
        s->from_current = 1;
        return 1;
    }
    return get_num(c, doc, "from", &s->from);
}

static int parse_points(pctx *c, const json_t *doc, int allow_relative, sched_spec *s)
{
    json_t *pts = json_object_get(doc, "points");
    if (!pts)
        return vaed_err_set(c->err, VAED_EINVAL, fld(c, "points"),
                            "required for a piecewise schedule: [[t, beta], ...]");
    if (!json_is_array(pts) || json_array_size(pts) == 0)
        return vaed_err_set(c->err, VAED_EINVAL, fld(c, "points"),
                            "must be a non-empty array of [t, beta] pairs");
    if (json_array_size(pts) > SCHED_MAX_POINTS)
        return vaed_err_set(c->err, VAED_EINVAL, fld(c, "points"),
                            "at most %d points", SCHED_MAX_POINTS);
    char base[128];
    snprintf(base, sizeof base, "%s", fld(c, "points"));
    size_t i;
    json_t *p;
    json_array_foreach(pts, i, p) {
        char f[160];
        snprintf(f, sizeof f, "%s[%zu]", base, i);
        if (!json_is_array(p) || json_array_size(p) != 2)
            return vaed_err_set(c->err, VAED_EINVAL, f, "must be a [t, beta] pair");
        json_t *jt = json_array_get(p, 0), *jb = json_array_get(p, 1);
        char ft[170], fb[170];
        snprintf(ft, sizeof ft, "%s[0]", f);
        snprintf(fb, sizeof fb, "%s[1]", f);
        if (!json_is_number(jt))
            return vaed_err_set(c->err, VAED_EINVAL, ft, "t must be a number (measured from start)");
        double t = vae_range_unsign_zero(json_number_value(jt));
        int rc = vae_range_check(row(c, "points[][0]"), t, ft, c->err);
        if (rc)
            return rc;
        if (i > 0 && !(t > s->points[i - 1][0]))
            return vaed_err_set(c->err, VAED_EINVAL, ft, "times must be strictly increasing");
        double b;
        if (i == 0 && json_is_string(jb) && strcmp(json_string_value(jb), "current") == 0) {
            if (!allow_relative)
                return vaed_err_set(c->err, VAED_EINVAL, fb,
                                    "\"current\" is only accepted when changing the "
                                    "schedule of a running job");
            s->from_current = 1;
            b = 0.0;
        } else {
            if (!json_is_number(jb))
                return vaed_err_set(c->err, VAED_EINVAL, fb, "beta must be a number");
            b = vae_range_unsign_zero(json_number_value(jb));
            if ((rc = vae_range_check(row(c, "points[][1]"), b, fb, c->err)))
                return rc;
        }
        s->points[i][0] = t;
        s->points[i][1] = b;
    }
    s->n_points = (int)json_array_size(pts);
    return 0;
}

int sched_parse(sched_spec *out, const json_t *doc, const char *prefix, int allow_relative,
                vaed_err *err)
{
    pctx c = {.prefix = prefix ? prefix : "", .err = err};
    sched_spec s;
    const char *key;
    json_t *v;

    if (!json_is_object(doc))
        return vaed_err_set(err, VAED_EINVAL, c.prefix, "a schedule must be a JSON object");

    /* kind first: it decides which keys belong. */
    int kind = 0;
    if (!json_object_get(doc, "kind"))
        return vaed_err_set(err, VAED_EINVAL, fld(&c, "kind"),
                            "required (constant, linear, logistic, cyclical, piecewise, "
                            "controller or capacity)");
    TRY(get_enum(&c, doc, "kind", kind_names, N_KINDS, &kind));
    kind_defaults(&s, (enum sched_kind)kind);
    c.kind = kind_names[kind];

    json_object_foreach((json_t *)doc, key, v) {
        if (in_list(common_keys, key) || in_list(kind_keys[kind], key))
            continue;
        for (int k = 0; k < N_KINDS; k++)
            if (in_list(kind_keys[k], key))
                return vaed_err_set(err, VAED_EINVAL, fld(&c, key),
                                    "not a parameter of a %s schedule", kind_names[kind]);
        return vaed_err_set(err, VAED_EINVAL, fld(&c, key), "unknown key");
    }

    /* Common keys. */
    static const char *const unit_names[] = {"epochs", "steps"};
    static const char *const gran_names[] = {"step", "epoch"};
    int e = 0, rc;
    if ((rc = get_enum(&c, doc, "unit", unit_names, 2, &e)) < 0)
        return rc;
    if (rc > 0)
        s.unit = (enum sched_unit)e;
    if ((rc = get_enum(&c, doc, "granularity", gran_names, 2, &e)) < 0)
        return rc;
    if (rc > 0)
        s.granularity = (enum sched_gran)e;
    TRY(get_num(&c, doc, "start", &s.start));
    if ((v = json_object_get(doc, "origin"))) {
        const char *o = json_string_value(v);
        if (o && strcmp(o, "start") == 0) {
            s.origin_now = 0;
        } else if (o && strcmp(o, "now") == 0) {
            if (!allow_relative)
                return vaed_err_set(err, VAED_EINVAL, fld(&c, "origin"),
                                    "\"now\" is only accepted when changing the schedule of "
                                    "a running job");
            s.origin_now = 1;
        } else {
            return vaed_err_set(err, VAED_EINVAL, fld(&c, "origin"),
                                "must be \"start\" or \"now\"");
        }
    }

    switch (s.kind) {
    case SCHED_CONSTANT:
        TRY(get_num(&c, doc, "value", &s.value));
        break;
    case SCHED_LINEAR:
        TRY(get_from(&c, doc, allow_relative, &s));
        TRY(get_num(&c, doc, "to", &s.to));
        TRY(get_num(&c, doc, "duration", &s.duration));
        break;
    case SCHED_LOGISTIC: {
        /* from is read as a plain number here: a resolved from-"current" logistic
         * stores an asymptote that may sit a little below 0 (see sched_resolve);
         * what must be >= 0 is every beta it produces, i.e. its value at start. */
        json_t *jf = json_object_get(doc, "from");
        if (jf && json_is_string(jf))
            TRY(get_from(&c, doc, allow_relative, &s));
        else
            TRY(get_num(&c, doc, "from", &s.from));
        TRY(get_num(&c, doc, "to", &s.to));
        TRY(get_num(&c, doc, "k", &s.k));
        TRY(get_num(&c, doc, "midpoint", &s.midpoint));
        /* Every beta for t >= 0 lies between the value at start and `to`, so that
         * value must be a KL weight like `to`. Tolerance relative to the magnitudes:
         * a resolved from-"current" logistic passes through beta_now at start up to
         * rounding. */
        double b0 = logistic_at(&s, 0.0), tol = 1e-12 * fmax(1.0, fmax(fabs(s.from), fabs(s.to)));
        const vae_range *w = row(&c, "to");
        if (!s.from_current && (b0 < w->min - tol || b0 > w->max + tol)) {
            char lo[40], hi[40];
            vae_range_num(w->min, lo, sizeof lo);
            vae_range_num(w->max, hi, sizeof hi);
            return vaed_err_set(err, VAED_EINVAL, fld(&c, "from"),
                                "the beta at start (%g) must be in [%s, %s]", b0, lo, hi);
        }
        break;
    }
    case SCHED_CYCLICAL: {
        TRY(get_from(&c, doc, allow_relative, &s));
        TRY(get_num(&c, doc, "to", &s.to));
        int has_period = 0, has_cycles = 0, has_dur = 0;
        TRY(has_period = get_num(&c, doc, "period", &s.period));
        if ((v = json_object_get(doc, "cycles"))) {
            double n = json_is_number(v) ? json_number_value(v) : NAN;
            if (n != floor(n)) /* NaN too */
                return vaed_err_set(err, VAED_EINVAL, fld(&c, "cycles"),
                                    "must be a positive integer");
            TRY(get_num(&c, doc, "cycles", &s.cycles));
            has_cycles = 1;
        }
        TRY(has_dur = get_num(&c, doc, "duration", &s.duration));
        if (has_period && has_cycles)
            return vaed_err_set(err, VAED_EINVAL, fld(&c, "cycles"),
                                "give either period, or cycles with duration, not both");
        if (has_cycles && !has_dur)
            return vaed_err_set(err, VAED_EINVAL, fld(&c, "duration"),
                                "required with cycles (period = duration / cycles)");
        if (has_dur && !has_cycles)
            return vaed_err_set(err, VAED_EINVAL, fld(&c, "duration"),
                                "only meaningful with cycles; with period, omit it");
        if (!has_period && !has_cycles)
            return vaed_err_set(err, VAED_EINVAL, fld(&c, "period"),
                                "required: a period, or cycles together with duration");
        TRY(get_num(&c, doc, "ratio", &s.ratio));
        int sh = 0;
        if ((rc = get_enum(&c, doc, "shape", shape_names, 3, &sh)) < 0)
            return rc;
        if (rc > 0)
            s.shape = (enum sched_shape)sh;
        break;
    }
    case SCHED_PIECEWISE:
        TRY(parse_points(&c, doc, allow_relative, &s));
        break;
    case SCHED_CONTROLLER:
        if (!json_object_get(doc, "target_kl"))
            return vaed_err_set(err, VAED_EINVAL, fld(&c, "target_kl"),
                                "required: the KL (nats per example) to hold");
        TRY(get_num(&c, doc, "target_kl", &s.target_kl));
        TRY(get_num(&c, doc, "kp", &s.kp));
        TRY(get_num(&c, doc, "ki", &s.ki));
        TRY(get_num(&c, doc, "min", &s.min));
        TRY(get_num(&c, doc, "max", &s.max));
        if (s.min > s.max)
            return vaed_err_set(err, VAED_EINVAL, fld(&c, "max"), "must be >= min (%g)",
                                s.min);
        break;
    case SCHED_CAPACITY:
        TRY(get_num(&c, doc, "gamma", &s.gamma));
        TRY(get_num(&c, doc, "c_max", &s.c_max));
        TRY(get_num(&c, doc, "duration", &s.duration));
        break;
    }

    /* "from": "current" makes sense only for a schedule that begins when it takes
     * effect: with an absolute origin the run may already be inside the ramp, and
     * there is no `from` that avoids a jump without producing negative betas. */
    if (s.from_current && !s.origin_now)
        return vaed_err_set(err, VAED_EINVAL,
                            fld(&c, s.kind == SCHED_PIECEWISE ? "points" : "from"),
                            "\"current\" needs \"origin\": \"now\"");

    *out = s;
    vaed_err_clear(err);
    return 0;
}

/* ---- to JSON ----------------------------------------------------------------- */

/* Set o[key] = v (stolen); a failed allocation sets *bad rather than leave a key out
 * silently (a schedule missing its unit would read back as another schedule). */
static void put(json_t *o, const char *key, json_t *v, int *bad)
{
    if (json_object_set_new(o, key, v))
        *bad = 1;
}

/* Adds a number under key; jansson writes doubles with 17 significant digits, so
 * the value reads back bit for bit. */
static void put_num(json_t *o, const char *key, double d, int *bad)
{
    put(o, key, json_real(d), bad);
}

json_t *sched_to_json(const sched_spec *s)
{
    static const char *const unit_names[] = {"epochs", "steps"};
    static const char *const gran_names[] = {"step", "epoch"};
    int kind = (int)s->kind >= 0 && (int)s->kind < N_KINDS ? (int)s->kind : 0;
    json_t *o = json_object();
    int bad = 0;
    if (!o)
        return NULL;
    put(o, "kind", json_string(kind_names[kind]), &bad);
    put(o, "unit", json_string(unit_names[s->unit == SCHED_STEPS]), &bad);
    put(o, "granularity", json_string(gran_names[s->granularity == SCHED_PER_EPOCH]), &bad);
    put_num(o, "start", s->start, &bad);
    /* An unresolved spec keeps its relative parts, so it round-trips through
     * sched_parse with allow_relative; a resolved one never has them. */
    if (s->origin_now)
        put(o, "origin", json_string("now"), &bad);
    int from_str = s->from_current && s->kind != SCHED_PIECEWISE;
    switch ((enum sched_kind)kind) {
    case SCHED_CONSTANT:
        put_num(o, "value", s->value, &bad);
        break;
    case SCHED_LINEAR:
    case SCHED_LOGISTIC:
    case SCHED_CYCLICAL:
        if (from_str)
            put(o, "from", json_string("current"), &bad);
        else
            put_num(o, "from", s->from, &bad);
        put_num(o, "to", s->to, &bad);
        if (kind == SCHED_LINEAR) {
            put_num(o, "duration", s->duration, &bad);
        } else if (kind == SCHED_LOGISTIC) {
            put_num(o, "k", s->k, &bad);
            put_num(o, "midpoint", s->midpoint, &bad);
        } else {
            if (s->period > 0) {
                put_num(o, "period", s->period, &bad);
            } else {
                put(o, "cycles", json_integer((json_int_t)s->cycles), &bad);
                put_num(o, "duration", s->duration, &bad);
            }
            put_num(o, "ratio", s->ratio, &bad);
            put(o, "shape", json_string(shape_names[s->shape <= 2 ? s->shape : 0]), &bad);
        }
        break;
    case SCHED_PIECEWISE: {
        json_t *pts = json_array();
        for (int i = 0; pts && i < s->n_points && i < SCHED_MAX_POINTS; i++) {
            json_t *p = json_array();
            bad |= json_array_append_new(p, json_real(s->points[i][0])) != 0;
            if (i == 0 && s->from_current)
                bad |= json_array_append_new(p, json_string("current")) != 0;
            else
                bad |= json_array_append_new(p, json_real(s->points[i][1])) != 0;
            bad |= json_array_append_new(pts, p) != 0;
        }
        put(o, "points", pts, &bad);
        break;
    }
    case SCHED_CONTROLLER:
        put_num(o, "target_kl", s->target_kl, &bad);
        put_num(o, "kp", s->kp, &bad);
        put_num(o, "ki", s->ki, &bad);
        put_num(o, "min", s->min, &bad);
        put_num(o, "max", s->max, &bad);
        break;
    case SCHED_CAPACITY:
        put_num(o, "gamma", s->gamma, &bad);
        put_num(o, "c_max", s->c_max, &bad);
        put_num(o, "duration", s->duration, &bad);
        break;
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

const char *sched_kind_name(int kind)
{
    return kind >= 0 && kind < N_KINDS ? kind_names[kind] : NULL;
}

json_t *sched_kind_defaults_json(int kind)
{
    if (kind < 0 || kind >= N_KINDS)
        return NULL;
    sched_spec s;
    kind_defaults(&s, (enum sched_kind)kind);
    return sched_to_json(&s);
}
