/* spec_names.h — the names of the job spec's enums, indexed by their enum values
 * (spec.h): one table for the parser (spec.c) and the writer (spec_json.c). Internal to
 * vae/. */
#ifndef VAED_VAE_SPEC_NAMES_H
#define VAED_VAE_SPEC_NAMES_H

#include <stddef.h>

static const char *const act_names[] = {"relu", "tanh", "elu", NULL};
static const char *const lik_names[] = {"bernoulli", "categorical", "gaussian", NULL};
static const char *const kl_names[] = {"analytic", "mc", NULL};
/* Indexed by enum vae_data_format; VAE_FMT_NONE (a built-in dataset) has no name. */
static const char *const fmt_names[] = {"", "idx", "npy", "csv", "text", NULL};
static const char *const bin_names[] = {"none", "static", "dynamic", NULL};
static const char *const long_names[] = {"reject", "truncate", "skip", NULL};

#endif
