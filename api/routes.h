/* routes.h — the REST routes of vaed (v1). They reach the daemon's job manager and
 * the store through the api_ctx handed to the HTTP layer as its user pointer. */
#ifndef VAED_API_ROUTES_H
#define VAED_API_ROUTES_H

#include <stddef.h>

#include "api/http.h"
#include "daemon/jobs.h"
#include "store/store.h"

typedef struct api_ctx {
    jobs *J;
    store *st;
    struct bus *bus;            /* live events for /v1/jobs/{id}/events; NULL = off */
} api_ctx;

/* The route table (static). OUT *n: its length. */
const api_route *api_routes(size_t *n);

#endif
