/* events.h — GET /v1/jobs/{id}/events: a job's events as Server-Sent Events, read
 * from the event bus (daemon/bus.h). The route handler is an entry of the route
 * table in routes.c; the formatting is exposed so unit tests can check it alone. */
#ifndef VAED_API_EVENTS_H
#define VAED_API_EVENTS_H

#include <stddef.h>

#include "api/http.h"
#include "daemon/bus.h"

/* GET /v1/jobs/{id}/events[?last_event_id=N]. Needs api_req_user() to be an api_ctx
 * whose bus is set (503 unavailable otherwise); 404 for an unknown job. Resumes
 * after the Last-Event-ID header, or the last_event_id parameter when there is no
 * header (EventSource polyfills that cannot set headers). */
void api_h_events(api_req *req);

/* One SSE message for ev: "id: N\n" (not for a reset), "event: <type>\n", one
 * "data: <JSON object>\n", and a blank line. Non-finite numbers are written as null.
 * Returns the message (malloc'd, NUL-terminated, the caller frees) and OUT *len, or
 * NULL when out of memory. */
char *api_sse_format(const bus_event *ev, size_t *len);

#endif
