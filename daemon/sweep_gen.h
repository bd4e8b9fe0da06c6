/* sweep_gen.h — a sweep's trials as points of its search space: a pure function of the
 * request (no store, no job manager), so the same sweep spec always gives the same
 * trials and the rule is unit-tested on its own (tests/unit/test_sweep_gen.c).
 *
 * The space is a JSON object {"<dotted spec path>": <domain>, ...}. A domain is a
 * non-empty list of values, or a range {"min": a, "max": b} drawn uniformly, with
 * "log": true for log-uniform (a > 0) and "int": true for whole numbers.
 *   grid:   the cartesian product of the lists, in the order the space lists its
 *           paths: the first path varies slowest, the last fastest (nested loops).
 *           A range is refused (a grid needs the values written out).
 *   random: max_trials points; point i is drawn from vae_rng seeded (seed, i), the
 *           paths in the space's order: a list picks one of its values uniformly, a
 *           range draws u in [0, 1) and maps it (min + u (max - min), or its log
 *           version); an int range draws a whole number uniformly in [ceil(min),
 *           floor(max)] (log: the log-uniform draw rounded, kept inside). */
#ifndef VAED_SWEEP_GEN_H
#define VAED_SWEEP_GEN_H

#include <jansson.h>
#include <stdint.h>

#include "vae/err.h"

enum sweep_method { SWEEP_GRID, SWEEP_RANDOM };

/* The most trials a sweep may have. */
#define SWEEP_MAX_TRIALS 10000

/* OUT *points: a new array of point objects {"<path>": value, ...} (the space's paths
 * in order). VAED_EINVAL naming "space", "space.<path>" (a bad domain, a range in a
 * grid) or "max_trials" (a grid with more points than max_trials). */
int sweep_points(const json_t *space, enum sweep_method method, uint64_t seed,
                 int64_t max_trials, json_t **points, vaed_err *err);

#endif
