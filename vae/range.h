/* range.h — the allowed range of every number in a job spec and in a schedule.
 *
 * One table (vae_ranges, range.c) holds each field's range once. The spec parser
 * (spec.c), the schedule parser (sched.c) and the route that changes a running job's
 * learning rate (api/routes.c, through vae_spec_check_lr) read their bounds from it;
 * tests/unit/test_spec_ranges.c and test_sched_ranges.c walk it (every row is refused
 * just outside its bounds and accepted on them), and check that docs/spec.md prints
 * each row's range as vae_range_format writes it.
 *
 * Why every number is bounded: a value the parser accepts is stored, trained with and
 * replayed on recovery, so an absurd one (a KL weight of 1.79e308) must be refused
 * with the field named, not found later as a diverged job. The bounds are generous
 * (well beyond anything a run has a use for) and finite, so every product the
 * trainer and the schedules form from them stays finite.
 *
 * Field names are the paths the parsers put in err->field, with schedule keys under
 * "schedule." (a PUT body names them bare: "value") and list elements as "[]":
 * "model.encoder[]" stands for "model.encoder[3]", "schedule.points[][1]" for the
 * beta of any point. */
#ifndef VAED_RANGE_H
#define VAED_RANGE_H

#include <stddef.h>

#include "err.h"

/* Limits that several rows share; each is written only here. */
#define VAE_RANGE_WEIGHT_MAX 1e5  /* a KL weight (beta, gamma) and the controller gains */
#define VAE_RANGE_KL_MAX 1e6      /* an amount of KL in nats (targets, capacity, free bits) */
#define VAE_RANGE_TIME_MAX 1e15   /* a schedule time, in epochs or steps */
#define VAE_RANGE_INT53 9007199254740992.0 /* 2^53: the largest integer a double holds exactly */

typedef struct vae_range {
    const char *field;       /* "optimizer.lr", "schedule.value", "model.encoder[]" */
    const char *kinds;       /* schedule rows: the kinds it is for, space-separated; NULL: all */
    double min, max;
    unsigned char min_open;  /* 1: min itself is refused */
    unsigned char max_open;  /* 1: max itself is refused */
    unsigned char integer;   /* 1: a JSON integer (an integral real such as 5.0 too) */
    const char *meaning;     /* one line for the docs: what the number is, what 0 means */
} vae_range;

extern const vae_range vae_ranges[];
extern const int vae_n_ranges;

/* The row for field (and, for a schedule key, the kind's name; NULL for other fields):
 * the row naming that kind if there is one, else the row for all kinds. NULL if none. */
const vae_range *vae_range_find(const char *field, const char *kind);

/* Whether x lies in r (NaN never does; the integer flag is not checked here). */
int vae_range_holds(const vae_range *r, double x);

/* 0 if x lies in r; else VAED_EINVAL with err naming `field` (the path to report,
 * which may differ from r->field: "value" in a PUT body, "model.encoder[2]") and a
 * message saying which bound was crossed ("lr: must be > 0", "...: must be <= 10").
 * A NULL r (a field with no row: a bug) is refused too, never let through. */
int vae_range_check(const vae_range *r, double x, const char *field, vaed_err *err);

/* x printed readably: whole numbers below 1e5 whole, others in the fewest digits that
 * read back as x ("0.9", not "0.90000000000000002"), exponents without padding
 * ("1e15", "1e-8"). */
void vae_range_num(double x, char *buf, size_t n);

/* r's interval in the docs' notation: "(0, 10]", "[1, 64]", "[0, 1e15]"; an integer
 * row's bounds are printed whole ("[1, 100000]"). */
void vae_range_format(const vae_range *r, char *buf, size_t n);

/* +0 for -0, x otherwise: the parsers store no negative zero (it would be written
 * back as "-0.0", and two equal specs would differ in their bytes). */
static inline double vae_range_unsign_zero(double x)
{
    return x == 0 ? 0.0 : x;
}

#endif
