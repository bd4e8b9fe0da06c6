/* report.h — training figures as JSON, the one format used by `vaed train`'s output,
 * its --metrics file, the daemon's store and the REST API. */
#ifndef VAED_REPORT_H
#define VAED_REPORT_H

#include <jansson.h>

#include "train.h"

/* {"step", "epoch", "beta", "loss", "xent", "kl", "elbo", "lr", "grad_norm", "time",
 *  "kl_groups": [...] (only with several groups), "capacity" (only when non-zero)}.
 * New reference. */
json_t *vae_metrics_json(const vae_metrics *m);

/* {"epoch", "step", "train": {"loss", "xent", "kl", "elbo", "beta"},
 *  "test": {"n", "xent", "kl", "elbo", "active_units", "kl_groups", "kl_per_dim",
 *  "mu_variance"} or null}. New reference. */
json_t *vae_epoch_json(const vae_epoch_metrics *e);

#endif
