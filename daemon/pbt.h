/* pbt.h — population-based training (Jaderberg et al. 2017) of a sweep's warm-up
 * schedule, the rule alone: pure functions of the members' values and the sweep's seed,
 * no store and no job manager, so the rule is unit-tested against a naive version
 * (tests/unit/test_pbt.c). NOT YET WIRED: no route, worker or store code calls these
 * (see the report of branch wip-pbt); they are the exploit/explore rule the wiring uses.
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

#include <stddef.h>
#include <stdint.h>

/* Exploit. v: n values (borrowed), maximize: 1 if higher is better, quantile in
 * (0, 0.5]. OUT donor[i]: the index of the member that member i forks from, or -1 when
 * i goes on unchanged. Returns the number of forking members (m above). */
size_t pbt_select(const double *v, size_t n, int maximize, double quantile, long *donor);

/* Explore: the factor, down or up, for one field of a forking member. */
double pbt_factor(uint64_t seed, int generation, long member, int field, double down,
                  double up);

#endif
