/* pbt.h — population-based training (Jaderberg et al. 2017) of a sweep's warm-up
 * schedule, the rule alone: pure functions of the members' values and the sweep's seed,
 * no store and no job manager, so the rule is unit-tested against a naive version
 * (tests/unit/test_pbt.c). The worker that owns a member applies them (pbt_run.c);
 * docs/sweeps.md says how a PBT sweep runs.
 *
 * Exploit (truncation selection). At a generation boundary the n members' values of the
 * objective are ranked, best first; ties are broken by the member's index (the lower
 * first; a value that is not finite is the worst) so the ranking is a total order and the same values always give the same
 * forks. With m = floor(n * quantile), and at least 1 when n >= 2, the member ranked
 * i-th from the bottom (i = 0, 1, ..., m-1) forks from the member ranked i-th from the
 * top; every other member goes on unchanged. quantile is in (0, 0.5], so the bottom
 * and the top never overlap.
 *
 * Explore. Each perturbed schedule number of a forking member is multiplied by `down`
 * or `up` (0.8 and 1.2 by default), chosen by one bit of splitmix64 over (seed,
 * generation, member, field): the same sweep gives the same perturbations, across a
 * restart too. */
#ifndef VAED_PBT_H
#define VAED_PBT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "vae/err.h"
#include "vae/sched.h"

#define PBT_MAX_FIELDS 8

/* A sweep's "pbt" block, parsed. */
typedef struct pbt_cfg {
    int on;                     /* 0: no PBT */
    int interval;               /* epochs between generations (boundaries at its multiples) */
    double quantile;            /* (0, 0.5] */
    double down, up;            /* the explore factors */
    int n_fields;
    char fields[PBT_MAX_FIELDS][16]; /* the schedule's numbers that explore perturbs */
    const char *metric;         /* "elbo", "kl" or "xent" (static strings) */
    int maximize;
    uint64_t seed;              /* the sweep's seed */
} pbt_cfg;

/* Parse a sweep request's "pbt" (p, borrowed; NULL = none) for an objective (metric,
 * maximize), the sweep's seed and the base's epochs. VAED_EINVAL naming "pbt" or
 * "pbt.<key>": an unknown key, interval < 1 or >= epochs, quantile outside (0, 0.5],
 * factors not two positive numbers, perturb not a non-empty list of schedule numbers,
 * or the objective "bound" (evaluations are not run at generation boundaries). */
int pbt_parse(const json_t *p, const char *metric, int maximize, uint64_t seed, int epochs,
              pbt_cfg *cfg, vaed_err *err);

/* The request's pbt with every default filled in (new reference), NULL when off. */
json_t *pbt_json(const pbt_cfg *cfg);

/* Whether every field cfg perturbs is a number of schedule s's kind: 0, or VAED_EINVAL
 * naming "pbt.perturb[i]". */
int pbt_check_schedule(const pbt_cfg *cfg, const sched_spec *s, vaed_err *err);

/* Explore: out = donor with each perturbed field multiplied by its pbt_factor for
 * (generation, member, the field's index); a product outside the field's range (or
 * one that makes the schedule invalid) keeps the donor's value of that field. */
int pbt_perturb(const pbt_cfg *cfg, const sched_spec *donor, int generation, long member,
                sched_spec *out, vaed_err *err);

/* Exploit. v: n values (borrowed), maximize: 1 if higher is better, quantile in
 * (0, 0.5]. OUT donor[i]: the index of the member that member i forks from, or -1 when
 * i goes on unchanged. Returns the number of forking members (m above). */
size_t pbt_select(const double *v, size_t n, int maximize, double quantile, long *donor);

/* Explore: the factor, down or up, for one field of a forking member. */
double pbt_factor(uint64_t seed, int generation, long member, int field, double down,
                  double up);

#endif
