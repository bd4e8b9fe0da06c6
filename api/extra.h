/* extra.h — the operator routes of vaed: GET /metrics (Prometheus text exposition,
 * api/prom.c) and GET /v1/openapi.json (the API description, api/openapi.c). The
 * handlers are entries of the route table in routes.c; the pure parts are exposed so
 * unit tests can check them without a server. */
#ifndef VAED_API_EXTRA_H
#define VAED_API_EXTRA_H

#include <stddef.h>
#include <stdint.h>

#include "api/http.h"
#include "daemon/jobs.h"
#include "store/store.h"

/* GET /metrics: every series described in prom.c, Content-Type
 * "text/plain; version=0.0.4; charset=utf-8". Needs api_req_user() to be an api_ctx. */
void api_h_prom(api_req *req);

/* GET /v1/openapi.json: api/openapi.json as compiled into the binary. */
void api_h_openapi(api_req *req);

/* Everything one scrape shows. Every pointer is borrowed for the call. */
typedef struct api_prom_input {
    const char *version;            /* vaed_build_info{version} */
    const jobs_live *live;          /* running jobs, nlive of them (may be NULL if 0) */
    size_t nlive;
    const int64_t *state_counts;    /* STORE_NSTATES counts in STORE_STATE_NAMES order;
                                       NULL: the store read failed (state_error says why) */
    const char *state_error;        /* shown as a comment when state_counts is NULL */
    const store_stats *store;       /* NULL: no store series */
    const api_stats *http;          /* NULL: no HTTP series */
    const char *node;               /* a cluster's node: its name (vaed_node_info), and */
    int nodes_alive, nodes_gone;    /* the cluster's nodes (vaed_cluster_nodes); NULL
                                       node: no cluster series */
    int has_cache;                  /* the metrics reply cache (api/cache.h): */
    int cache_entries;
    size_t cache_bytes;
    unsigned long cache_hits, cache_misses;
} api_prom_input;

/* Render in as Prometheus text format 0.0.4. Counters and histograms follow the
 * format's rules: histogram buckets are cumulative (the HTTP layer's are not), end
 * with le="+Inf" equal to _count, and every family has # HELP and # TYPE once.
 * Label values are escaped (\\, \", \n) and invalid UTF-8 bytes become U+FFFD.
 * Returns 0 and *out (malloc'd, NUL-terminated, the caller frees) and *len, or
 * VAED_ENOMEM with *out NULL. */
int api_prom_render(const api_prom_input *in, char **out, size_t *len);

/* The embedded OpenAPI document (api/openapi.json, NUL-terminated, static storage;
 * never NULL). OUT *len: its length in bytes, without the NUL (len may be NULL). */
const char *api_openapi_doc(size_t *len);

#endif
