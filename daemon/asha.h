/* asha.h — early stopping of a sweep's trials by asynchronous successive halving (ASHA,
 * Li et al. 2018), the rule alone: pure functions of the request and the values, no
 * store and no job manager, so the rule is unit-tested against a naive version
 * (tests/unit/test_asha.c). The worker that owns a trial applies it (worker.c).
 *
 * Rungs: epochs r·eta^k (k = 0, 1, ...) below R, r = min_epochs, eta =
 * reduction_factor, R = max_epochs. When a trial's test epoch e is a rung, its value v
 * of the sweep's objective is compared with the values other trials of the sweep have
 * recorded at e so far (n values with v's own):
 *     rank = 1 + #{others strictly better than v}     (so tied values share a rank)
 *     keep = max(1, floor(n / eta))
 * and the trial continues iff rank <= keep. max(1, ...) lets the first eta-1 arrivals at
 * a rung through: with a fixed list of trials (ASHA proper would start new ones) the
 * plain floor(n/eta) stops every one of them, and a sweep could end with no trial
 * trained to R. */
#ifndef VAED_ASHA_H
#define VAED_ASHA_H

#include <jansson.h>
#include <stddef.h>

#include "vae/err.h"

typedef struct asha_cfg {
    int on;                     /* 0: no early stopping */
    int min_epochs, eta, max_epochs;
    const char *metric;         /* "elbo", "kl" or "xent" (static strings) */
    int maximize;               /* 1: higher is better */
} asha_cfg;

/* Parse a sweep request's "early_stop" (es, borrowed; NULL = none) for an objective
 * (metric, maximize), base_epochs the default max_epochs. OUT *cfg. VAED_EINVAL naming
 * "early_stop" or "early_stop.<key>": an unknown method or key, min_epochs < 1,
 * reduction_factor < 2, min_epochs >= max_epochs, or an objective with no value at a
 * rung ("bound": evaluations are not run at rungs). */
int asha_parse(const json_t *es, const char *metric, int maximize, int base_epochs,
               asha_cfg *cfg, vaed_err *err);

/* The request's early_stop with every default filled in (a new reference), or NULL
 * when cfg is off. */
json_t *asha_json(const asha_cfg *cfg);

/* The rung index k when epoch (1-based) is a rung, else -1. */
int asha_rung(const asha_cfg *cfg, int epoch);

/* The rule above: 1 to continue, 0 to stop. others: the n_others values recorded at
 * the rung by other trials (non-finite ones count as worst). OUT *rank, *keep. */
int asha_decide(double v, const double *others, size_t n_others, int maximize, int eta,
                size_t *rank, size_t *keep);

#endif
