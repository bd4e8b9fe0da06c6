/* metric_fields.h — the one definition of a training step's figures. Each row names a
 * field once: its C and wire name, its unit and what it means. The per-step struct
 * (vae_metrics), the store's metric row and columns (their order is the storage
 * order), the JSON of `vaed train --metrics`, the SSE step events, the live bus
 * records and the dashboard's field list (GET /v1/metrics/fields) are generated from
 * it; tests/unit/test_metric_fields.c checks that every output lists exactly these.
 *
 *   X(ID, name, unit, flags, meaning)
 *
 * ID makes STORE_M_<ID>; every field is a double. flags: VAE_MF_SPARSE — written in
 * `vaed train`'s JSON only when non-zero (capacity, zero unless a capacity schedule).
 *
 * Under a capacity objective (loss = xent + gamma·|KL − C|), `beta` holds gamma and
 * `capacity` C(t): the dashboard plots them as gamma and capacity, never as a beta. */
#ifndef VAED_METRIC_FIELDS_H
#define VAED_METRIC_FIELDS_H

#define VAE_MF_SPARSE 1
#define VAE_MF_TESTONLY 2 /* a field of the test build only (not in api/openapi.json) */

#define VAE_METRIC_FIELDS(X)                                                                  \
    X(EPOCH, epoch, "epochs", 0, "progress at the start of the step: step / steps per epoch")  \
    X(BETA, beta, "1", 0,                                                                      \
      "the weight on KL in the step's loss (gamma, on |KL - C|, under a capacity schedule)")   \
    X(LOSS, loss, "nats", 0, "the step's objective per example")                               \
    X(XENT, xent, "nats", 0, "reconstruction cross-entropy -log p(x|z) per example")           \
    X(KL, kl, "nats", 0, "KL(q(z|x) || p(z)) per example")                                    \
    X(ELBO, elbo, "nats", 0, "the evidence lower bound -(xent + kl) per example")              \
    X(LR, lr, "1", 0, "the learning rate of the step")                                         \
    X(GRAD_NORM, grad_norm, "1", 0, "the global gradient norm, before clipping")               \
    X(CAPACITY, capacity, "nats", VAE_MF_SPARSE, "C(t) of a capacity schedule; else 0")        \
    X(TIME, time, "s", 0, "unix time when the step finished")                                  \
    VAE_METRIC_FIELDS_EXTRA(X)

/* A build may add fields here (the test of the table does: -DVAE_METRIC_FIELDS_EXTRA). */
#ifndef VAE_METRIC_FIELDS_EXTRA
#define VAE_METRIC_FIELDS_EXTRA(X)
#endif

/* Helpers for the generated code. */
#define VAE_MF_DECL(ID, name, unit, flags, meaning) double name;
#define VAE_MF_COUNT(ID, name, unit, flags, meaning) +1
#define VAE_METRIC_NFIELDS (0 VAE_METRIC_FIELDS(VAE_MF_COUNT))
/* ", epoch, beta, ..." for SQL column lists. */
#define VAE_MF_SQLCOL(ID, name, unit, flags, meaning) ", " #name
#define VAE_METRIC_SQL_COLUMNS VAE_METRIC_FIELDS(VAE_MF_SQLCOL)

/* Copy every field from the struct at S to the struct at D (any two structs declared
 * with VAE_MF_DECL: vae_metrics, store_metric, bus_step). */
#define VAE_MF_COPY(ID, name, unit, flags, meaning) vae_mf_dst->name = vae_mf_src->name;
#define VAE_METRIC_COPY(D, S)                                                                 \
    do {                                                                                      \
        __typeof__(D) vae_mf_dst = (D);                                                       \
        __typeof__(S) vae_mf_src = (S);                                                       \
        VAE_METRIC_FIELDS(VAE_MF_COPY)                                                        \
    } while (0)

/* One field's description, for tables generated at run time. */
typedef struct vae_metric_field {
    const char *name, *unit, *meaning;
    int flags;
} vae_metric_field;

/* The table (VAE_METRIC_NFIELDS rows, in storage order). */
extern const vae_metric_field vae_metric_fields[];

#endif
