/* serving.h — a trained model behind an endpoint: the routes that run a checkpoint's
 * encoder and decoder on rows a client sends (POST /v1/jobs/{id}/encode, decode,
 * reconstruct, sample, interpolate), and the small cache of loaded models they share.
 *
 * Bodies are JSON ({"rows": [[...], ...]} or {"z": [[...]]}) or, with Content-Type
 * application/x-npy, a 2-D float32/float64 .npy array; a reply is JSON, or .npy when the
 * request's Accept names application/x-npy. The row width is checked against the model
 * (422 naming rows or z, with the width expected). A categorical (text) model also takes
 * rows as strings, made one-hot through the job's training vocabulary (read once with the
 * model and cached with it), and answers "strings" beside "params": each row's most
 * likely symbol per position up to the first padding. Any checkpoint of any job is
 * served: "checkpoint": "final" (the newest, the default), "best" or a step.
 *
 * The cache keeps up to N loaded models (--model-cache), least recently used out; a
 * model is loaded once per (job, checkpoint) and used by one request at a time (its
 * workspace is not shared), so requests for one model run one after the other and
 * requests for different models at once. */
#ifndef VAED_API_SERVING_H
#define VAED_API_SERVING_H

#include <stddef.h>

#include "api/http.h"

typedef struct api_models api_models;

/* A cache of at most cap models (cap >= 1). Aborts on allocation failure (small, fixed). */
api_models *api_models_new(int cap);
/* After the server stopped; NULL is a no-op. */
void api_models_free(api_models *c);

/* For /metrics and tests: models loaded now, loads and hits so far. */
typedef struct api_models_stats {
    size_t loaded;
    unsigned long long loads, hits;
} api_models_stats;
void api_models_get_stats(api_models *c, api_models_stats *out);

/* The routes (static), to be added to the server's table. OUT *n. */
const api_route *api_serving_routes(size_t *n);

#endif
