/* range.c — the table of number ranges (see range.h) and its checks.
 *
 * How the bounds were chosen (docs/spec.md repeats them for users):
 *  - KL weights (beta: value, from, to, points, min, max; gamma) up to 1e5: beta-VAE
 *    runs use up to a few hundred, capacity runs gamma = 1000; 100 times the largest
 *    keeps every loss and gradient finite in float32.
 *  - Schedule times up to 1e15 epochs or steps: past any run (1e15 steps at 1e4
 *    steps/s is three thousand years), so sched_resolve may clamp there (sched.c).
 *  - lr in (0, 10], eps in [1e-30, 1]: eps is used as a float, and below the float
 *    range it would be 0 and Adam would divide 0 by 0 on a zero gradient.
 *  - The integer limits are the ones the parser always had (layer width 65536, 64
 *    threads, ...): they size memory and threads.
 * A row is written once; the docs and the tests read it from here. */
#include "range.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W VAE_RANGE_WEIGHT_MAX
#define KL VAE_RANGE_KL_MAX
#define T VAE_RANGE_TIME_MAX
#define I53 VAE_RANGE_INT53

/* {field, kinds, min, max, min_open, max_open, integer, meaning} in docs/spec.md order. */
const vae_range vae_ranges[] = {
    {"priority", NULL, -1000, 1000, 0, 0, 1, "queue order: higher runs first"},
    {"dataset.limit", NULL, 0, I53, 0, 0, 1, "use the first N training rows; 0 = all"},
    {"dataset.validation_fraction", NULL, 0, 1, 0, 1, 0,
     "share of the rows held out for validation (files without a test split)"},
    {"dataset.max_len", NULL, 0, 65536, 0, 0, 1, "text: symbols per line; 0 = the longest line"},
    {"model.encoder[]", NULL, 1, 65536, 0, 0, 1, "width of each encoder hidden layer"},
    {"model.latent", NULL, 1, 65536, 0, 0, 1, "latent dimensions (of each group)"},
    {"model.decoder[]", NULL, 1, 65536, 0, 0, 1, "width of each decoder hidden layer"},
    {"model.sigma", NULL, 1e-6, 1e6, 0, 0, 0, "gaussian likelihood: fixed standard deviation"},
    {"loss.samples", NULL, 1, 1024, 0, 0, 1, "z samples per input"},
    {"loss.free_bits", NULL, 0, KL, 0, 0, 0, "nats per latent group below which KL is not pushed down; 0 = off"},
    {"optimizer.lr", NULL, 0, 10, 1, 0, 0, "Adam learning rate"},
    {"optimizer.beta1", NULL, 0, 1, 0, 1, 0, "Adam first-moment decay"},
    {"optimizer.beta2", NULL, 0, 1, 0, 1, 0, "Adam second-moment decay"},
    {"optimizer.eps", NULL, 1e-30, 1, 0, 0, 0, "Adam denominator term"},
    {"optimizer.weight_decay", NULL, 0, 10, 0, 0, 0, "decoupled weight decay (AdamW); 0 = off"},
    {"optimizer.clip_norm", NULL, 0, 1e6, 0, 0, 0, "clip the global gradient norm to this; 0 = off"},
    {"train.epochs", NULL, 1, 100000, 0, 0, 1, "passes over the training rows"},
    {"train.batch_size", NULL, 1, 65536, 0, 0, 1, "rows per step"},
    {"train.seed", NULL, 0, I53, 0, 0, 1, "seed of the job's random generator"},
    {"train.threads", NULL, 1, 64, 0, 0, 1, "threads sharing each step (results do not depend on it)"},
    {"checkpoint.every_steps", NULL, 0, I53, 0, 0, 1, "a checkpoint every N steps; 0 = off"},
    {"checkpoint.every_seconds", NULL, 0, 1e7, 0, 0, 0, "a checkpoint every S seconds; 0 = off"},
    {"checkpoint.keep", NULL, 1, 1000000, 0, 0, 1, "periodic, manual and pause checkpoints kept"},
    {"eval.every_epochs", NULL, 0, 100000, 0, 0, 1, "queue an evaluation of every Nth epoch's checkpoint; 0 = off"},
    {"eval.k", NULL, 1, 100000, 0, 0, 1, "importance samples per row of those evaluations"},
    {"eval.rows", NULL, 0, I53, 0, 0, 1, "held-out rows they evaluate; 0 = all"},
    {"schedule.start", NULL, 0, T, 0, 0, 0, "t = 0 of the schedule, in its unit"},
    {"schedule.value", NULL, 0, W, 0, 0, 0, "constant: beta"},
    {"schedule.from", "linear cyclical", 0, W, 0, 0, 0, "beta at the start of the ramp"},
    {"schedule.from", "logistic", -T, T, 0, 0, 0,
     "lower asymptote; the beta at start must be in [0, 1e5]"},
    {"schedule.to", NULL, 0, W, 0, 0, 0, "beta at the end of the ramp"},
    {"schedule.duration", NULL, 0, T, 1, 0, 0, "length of the ramp (linear, capacity) or of all cycles"},
    {"schedule.k", NULL, 0, 1e6, 1, 0, 0, "logistic: steepness, per unit of t"},
    {"schedule.midpoint", NULL, -T, T, 0, 0, 0, "logistic: t where beta is half way"},
    {"schedule.period", NULL, 0, T, 1, 0, 0, "cyclical: length of one cycle"},
    {"schedule.cycles", NULL, 1, 1e9, 0, 0, 1, "cyclical: number of cycles within duration"},
    {"schedule.ratio", NULL, 0, 1, 1, 0, 0, "cyclical: share of a cycle spent rising"},
    {"schedule.points[][0]", NULL, 0, T, 0, 0, 0, "piecewise: t of a point, strictly increasing"},
    {"schedule.points[][1]", NULL, 0, W, 0, 0, 0, "piecewise: beta at that t"},
    {"schedule.target_kl", NULL, 0, KL, 1, 0, 0, "controller: the KL (nats per example) to hold"},
    {"schedule.kp", NULL, 0, W, 0, 0, 0, "controller: proportional gain"},
    {"schedule.ki", NULL, 0, W, 0, 0, 0, "controller: integral gain"},
    {"schedule.min", NULL, 0, W, 0, 0, 0, "controller: lowest beta"},
    {"schedule.max", NULL, 0, W, 0, 0, 0, "controller: highest beta, >= min"},
    {"schedule.gamma", NULL, 0, W, 0, 0, 0, "capacity: weight of |KL - C|"},
    {"schedule.c_max", NULL, 0, KL, 0, 0, 0, "capacity: the capacity C reached at the end, nats"},
};
const int vae_n_ranges = (int)(sizeof vae_ranges / sizeof vae_ranges[0]);

/* Whether word is one of the space-separated words of list. */
static int has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

const vae_range *vae_range_find(const char *field, const char *kind)
{
    const vae_range *any = NULL;
    for (int i = 0; i < vae_n_ranges; i++) {
        const vae_range *r = &vae_ranges[i];
        if (strcmp(r->field, field) != 0)
            continue;
        if (!r->kinds)
            any = r;
        else if (kind && has_word(r->kinds, kind))
            return r;
    }
    return any;
}

int vae_range_holds(const vae_range *r, double x)
{
    if (!(r->min_open ? x > r->min : x >= r->min))
        return 0;
    return r->max_open ? x < r->max : x <= r->max;
}

int vae_range_check(const vae_range *r, double x, const char *field, vaed_err *err)
{
    if (!r)
        return vaed_err_set(err, VAED_EINVAL, field, "no range is defined for this field");
    if (vae_range_holds(r, x))
        return 0;
    char b[40];
    /* NaN fails the lower test, and gets the lower bound's wording. */
    if (!(r->min_open ? x > r->min : x >= r->min)) {
        vae_range_num(r->min, b, sizeof b);
        return vaed_err_set(err, VAED_EINVAL, field, "must be %s %s", r->min_open ? ">" : ">=",
                            b);
    }
    vae_range_num(r->max, b, sizeof b);
    return vaed_err_set(err, VAED_EINVAL, field, "must be %s %s", r->max_open ? "<" : "<=", b);
}

void vae_range_num(double x, char *buf, size_t n)
{
    char t[40];
    /* Whole numbers below 1e5, and 2^53 (which stands for that exact integer), whole;
     * larger round numbers read better as 1e6, 1e15. */
    if (x == trunc(x) && (fabs(x) < 1e5 || fabs(x) == I53)) {
        snprintf(buf, n, "%.0f", x);
        return;
    }
    int p = 1;
    for (; p < 17; p++) {
        snprintf(t, sizeof t, "%.*g", p, x);
        if (strtod(t, NULL) == x)
            break;
    }
    snprintf(t, sizeof t, "%.*g", p, x);
    /* "1e+15" -> "1e15", "1e-08" -> "1e-8" */
    char *e = strchr(t, 'e');
    if (e) {
        char *d = e + 1;
        int neg = *d == '-';
        if (*d == '+' || *d == '-')
            d++;
        while (*d == '0' && d[1])
            d++;
        char exp[8];
        snprintf(exp, sizeof exp, "%s%s", neg ? "-" : "", d);
        snprintf(e + 1, sizeof t - (size_t)(e + 1 - t), "%s", exp);
    }
    snprintf(buf, n, "%s", t);
}

void vae_range_format(const vae_range *r, char *buf, size_t n)
{
    char lo[40], hi[40];
    vae_range_num(r->min, lo, sizeof lo);
    vae_range_num(r->max, hi, sizeof hi);
    if (r->integer) { /* a count reads best whole: [1, 100000] */
        snprintf(lo, sizeof lo, "%.0f", r->min);
        snprintf(hi, sizeof hi, "%.0f", r->max);
    }
    snprintf(buf, n, "%c%s, %s%c", r->min_open ? '(' : '[', lo, hi, r->max_open ? ')' : ']');
}
