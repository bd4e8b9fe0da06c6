/* routes.h — the REST routes of vaed (v1). They reach the daemon's job manager and
 * the store through the api_ctx handed to the HTTP layer as its user pointer. */
#ifndef VAED_API_ROUTES_H
#define VAED_API_ROUTES_H

#include <stdatomic.h>
#include <stddef.h>

#include "api/http.h"
#include "daemon/jobs.h"
#include "store/store.h"

typedef struct api_ctx {
    jobs *J;
    store *st;
    struct bus *bus;            /* live events for /v1/jobs/{id}/events; NULL = off */
    int max_streams;            /* event streams open at once at most (--max-streams);
                                   past it 503 too_many_streams. 0: no limit */
    atomic_int n_streams;       /* event streams open now */
    struct api_cache *cache;    /* metrics replies kept (api/cache.h); NULL = none */
    struct api_models *models;  /* loaded models for the serving routes (api/serving.h) */
    struct api_datasets *datasets; /* the dataset registry's configuration (api/datasets.h) */
    int64_t audit_keep;         /* audit rows kept (--audit-keep); <= 0: STORE_AUDIT_KEEP */
} api_ctx;

/* The route table (static): every route of the API, those of routes.c and those of the
 * modules with tables of their own. OUT *n: its length. */
const api_route *api_routes(size_t *n);

/* The schedule routes (api/schedules.c): GET /v1/schedules/kinds, POST
 * /v1/schedules/preview. OUT *n. */
const api_route *api_schedule_routes(size_t *n);

/* The evaluation routes (api/evals.c): POST/GET /v1/jobs/{id}/evaluations, GET
 * /v1/jobs/{id}/evaluations/{eid}, POST .../{eid}/cancel. OUT *n. */
const api_route *api_eval_routes(size_t *n);

/* The sweep routes (api/sweeps.c): POST/GET /v1/sweeps, GET /v1/sweeps/{id} (also as
 * CSV), POST /v1/sweeps/{id}/cancel, GET /v1/sweeps/{id}/metrics. OUT *n. */
const api_route *api_sweep_routes(size_t *n);

#endif
