/* cache.h — metrics replies kept for the next client who asks.
 *
 * A finished job's rows never change (completed, failed and cancelled are final; only
 * a paused job resumes), so the reply to a given metrics query of such a job is the
 * same bytes every time; any other job's reply holds until the store's next commit
 * (api/routes.c keys it by store_generation). Dashboards poll the same queries for
 * hours: the whole-range downsample of a million-row job takes ~2 ms to build and
 * almost nothing to send again. The key is the caller's: it must name everything the
 * reply depends on. At most `entries` replies and `max_bytes` bytes in all are kept,
 * the least recently used going first; a reply larger than max_bytes / 4 is not kept.
 * Safe to call from any thread. */
#ifndef VAED_API_CACHE_H
#define VAED_API_CACHE_H

#include <stddef.h>

typedef struct api_cache api_cache;

/* NULL when out of memory (the routes then build every reply). */
api_cache *api_cache_new(int entries, size_t max_bytes);
void api_cache_free(api_cache *c);

/* 1 and a copy of the reply (malloc'd, the caller frees) when key is cached; 0 when it
 * is not, or c is NULL, or the copy cannot be made. */
int api_cache_get(api_cache *c, const char *key, char **body, size_t *len);

/* Keep a copy of body under key (replacing any reply under it). Does nothing when c is
 * NULL, the reply is too large or memory is short. */
void api_cache_put(api_cache *c, const char *key, const char *body, size_t len);

/* Replies kept, bytes they hold, lookups answered and missed so far. */
void api_cache_stats(api_cache *c, int *n, size_t *bytes, unsigned long *hits,
                     unsigned long *misses);

#endif
