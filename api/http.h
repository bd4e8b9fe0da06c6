/* http.h — the generic HTTP layer of vaed, on libmicrohttpd (MHD).
 *
 * Every route of the REST API is a plain function that receives an api_req and
 * answers it once with one of the api_reply_* calls. This layer owns everything
 * around that: binding, MHD limits, request state across MHD's several callback
 * invocations, the capped body buffer, routing with path parameters, bearer-token
 * auth, CORS, JSON error bodies, the access log, request counters and latency
 * histograms, and streamed (Server-Sent Events) responses.
 *
 * Conventions the routes can rely on:
 *  - Errors are {"error": {"code": "...", "message": "...", "field": "..."}}
 *    ("field" only when there is one) with the matching status; every JSON
 *    response carries Content-Type: application/json.
 *  - Codes this layer emits itself: not_found (404), method_not_allowed (405,
 *    with Allow), unauthorized (401, with WWW-Authenticate: Bearer),
 *    insufficient_scope (403: a known token whose scope is below the route's; the
 *    error object also has "scope_required" and "scope_held"),
 *    payload_too_large (413), bad_json (400), unknown_param (400), internal (500);
 *    for spooled routes also insufficient_storage (507) and unavailable (503); and
 *    the guards' refusals of a request's head (api/http_guard.c, statuses from the
 *    table in api/errors.h): bad_path, duplicate_header, bad_transfer_encoding (400),
 *    and with browser_checks misdirected (421), cross_origin (403),
 *    unsupported_media_type (415).
 *  - Every reply carries X-Content-Type-Options: nosniff; HTML replies also a
 *    Content-Security-Policy and Referrer-Policy: no-referrer.
 *  - Handlers run on MHD's pool threads, several at a time: they must be thread
 *    safe and must not block for long (a blocked handler stalls every other
 *    connection served by the same pool thread).
 *
 * Path patterns: literal segments and parameters, "/v1/jobs/{id}/metrics".
 *   {name}      a positive decimal integer (1..2^63-1, no sign, no leading zero);
 *   {name:u}    a non-negative decimal integer (0 allowed: steps);
 *   {name:s}    any non-empty segment.
 * A path whose parameter does not have its declared form matches no route, so
 * "/v1/jobs/abc" and "/v1/jobs/0" are 404 not_found before any handler runs.
 * Matching is exact: no trailing-slash folding, no prefix matches. HEAD is
 * answered by the GET route (MHD sends the headers only). */
#ifndef VAED_API_HTTP_H
#define VAED_API_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vae/err.h"

typedef struct api_server api_server;
typedef struct api_req api_req;
typedef struct api_stream api_stream;

/* A route handler. It must answer exactly once with an api_reply_* call (or a
 * helper that replies on failure, like api_body_json); if it returns without
 * answering, the client gets 500 internal. A second reply is ignored. */
typedef void (*api_handler)(api_req *req);

/* The scope a route needs when tokens are configured (api_config.tokens): a token of
 * that scope or a higher one. Every route names one; 0 is refused at start.
 *   READ     looks at what is stored or computes without changing anything
 *   CONTROL  steers an existing job (schedule, lr, pause, resume, cancel, checkpoint
 *            now, evaluations)
 *   ADMIN    creates or deletes (jobs, datasets, sweeps), reads the audit trail */
enum api_scope { API_SCOPE_READ = 1, API_SCOPE_CONTROL = 2, API_SCOPE_ADMIN = 3 };

typedef struct api_route {
    const char *method;   /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *pattern;  /* "/v1/jobs/{id}/metrics", see the top of this file */
    api_handler fn;
    int scope;            /* enum api_scope */
} api_route;

/* A bearer token: who holds it (the name the audit trail and whoami show; never the
 * secret) and what it may do. */
typedef struct api_token {
    const char *name;     /* [A-Za-z0-9._@-], 1..64 characters */
    int scope;            /* enum api_scope */
    const char *secret;   /* compared in constant time; never logged */
} api_token;

/* A finished request the audit hook hears of (api_config.audit): every request whose
 * method changes state (not GET, HEAD or OPTIONS), except one answered by a READ route
 * (a computation that changes nothing) with neither 401 nor 403. Strings are borrowed
 * for the call. */
typedef struct api_audit_rec {
    double time;          /* unix seconds, when the reply was made */
    const char *token;    /* the token's name, NULL when none matched */
    const char *remote;   /* the client's address ("127.0.0.1", "::1"), "" unknown */
    const char *method, *path; /* the path URL-decoded, at most 1024 bytes, valid UTF-8 */
    unsigned status;
    const char *created;  /* the Location the reply named (what it created), or NULL */
} api_audit_rec;

/* Server configuration. api_config_default() fills every field; a zero field
 * does NOT mean "default" (several zeros are meaningful), so start from it. */
typedef struct api_config {
    const char *listen;          /* "host:port", "[::1]:port"; port 0 = any free port */
    unsigned threads;            /* MHD pool threads */
    unsigned conn_limit;         /* simultaneous connections, all clients */
    unsigned per_ip_limit;       /* simultaneous connections from one address; 0 = none */
    unsigned reserve_slots;      /* connections accepted past conn_limit, kept for
                                    GET /healthz and token holders: a request on one of
                                    them that is neither is 503 busy (and the connection
                                    closed), so clients that hold every ordinary slot
                                    do not lock the operator out. 0 = none */
    unsigned timeout_s;          /* idle connection timeout, seconds; 0 = never */
    unsigned head_timeout_s;     /* the whole request head (line and headers, or the wait
                                    for the next request on a kept-alive connection) must
                                    arrive within this; past it the connection is closed.
                                    The idle timeout alone lets a client that sends a
                                    byte at a time hold a slot for ever. 0 = no limit */
    size_t conn_memory;          /* MHD per-connection pool: bounds header + URL size */
    size_t max_body;             /* request body cap in bytes; past it, 413 */
    const char *token;           /* bearer token; NULL or "" = none. An admin token named
                                    "default" beside tokens[]. Borrowed, must outlive the
                                    server. Never logged. */
    const api_token *tokens;     /* ntokens scoped tokens (names and secrets distinct);
                                    with token, none = no auth. Borrowed like token. */
    size_t ntokens;
    int reads_need_token;        /* 1: READ routes answered to GET/HEAD need a token too
                                    (every other request needs one whenever tokens are
                                    configured) */
    void (*audit)(void *cls, const api_audit_rec *rec); /* NULL = none; runs on the
                                    request's thread before its reply is queued, so it
                                    must not block (enqueue, do not wait) */
    void *audit_cls;
    const char *const *cors_origins; /* allowed Origin values ("*" = any), NULL-terminated;
                                    NULL = no CORS. Borrowed like token. */
    int access_log;              /* 1: one line per request (and MHD's errors) on stderr */
    unsigned keepalive_ms;       /* idle stream wake-up period (SSE keepalive) */
    void *user;                  /* handed to handlers through api_req_user() */
    const char *const *spool_routes; /* "METHOD /pattern" of the routes whose body is
                                    spooled to a file (below), NULL-terminated; each must
                                    name a route of the table. NULL = none. Borrowed. */
    const char *spool_dir;       /* where spooled bodies go; NULL = spooled routes answer
                                    503. Borrowed like token. */
    uint64_t max_spool;          /* spooled body cap in bytes; past it, 413 */
    int browser_checks;          /* 1: refuse what a web page could send (http_guard.c):
                                    a Host not ours (421), a cross-origin state change
                                    (403), a non-JSON body on a mutating route (415) */
    const char *const *allow_hosts; /* more Host names to answer to ("name" on any port,
                                    "name:port" exactly), NULL-terminated; NULL = none.
                                    Borrowed like token. */
    const char *tls_cert;        /* PEM certificate (chain), the text itself; with tls_key
                                    the server speaks only HTTPS (GnuTLS through
                                    libmicrohttpd). NULL = plain HTTP. Borrowed. */
    const char *tls_key;         /* PEM private key of tls_cert. Borrowed; never logged. */
} api_config;

/* Spooled bodies (uploads). A route listed in api_config.spool_routes receives its body
 * in a file instead of memory: written chunk by chunk as it arrives to a new file (mode
 * 0600) in spool_dir, capped at max_spool bytes (413 past it, checked against
 * Content-Length before any byte is read and again as bytes arrive; the partial file
 * is deleted). The handler finds the file with api_req_body_file(); api_req_body() is
 * then "" and api_body_json() sees an empty body. A disk error while spooling answers
 * 507 insufficient_storage (ENOSPC, EDQUOT) or 500, the file deleted. A spool file's
 * name begins with API_SPOOL_PREFIX (a name nothing else in spool_dir has). */
#define API_SPOOL_PREFIX ".spool-"

/* Defaults: listen 127.0.0.1:8080, threads 4, conn_limit 256, per_ip_limit 64,
 * timeout_s 30, conn_memory 64 KiB, max_body 1 MiB, no token, reads free, no CORS,
 * access_log on, keepalive_ms 1000, user NULL, spool_dir NULL, max_spool 256 MiB,
 * browser_checks off (the daemon turns them on), allow_hosts NULL, head_timeout_s 0
 * (the daemon sets 10). */
void api_config_default(api_config *cfg);

/* Start serving. routes[0..nroutes) is copied (the strings are borrowed and must
 * outlive the server: string literals in practice). Returns 0 and sets *out, or
 * VAED_EINVAL (bad listen address, bad pattern, duplicate method+pattern, a
 * spool_routes entry that names no route) or
 * VAED_EIO (could not bind: the message names the address and the reason, e.g.
 * "listen: 127.0.0.1:8080: Address already in use"); *out is NULL on error and
 * nothing is left running. */
int api_server_start(const api_config *cfg, const api_route *routes, size_t nroutes,
                     api_server **out, vaed_err *err);

/* The port actually bound (useful with port 0). */
unsigned api_server_port(const api_server *srv);

/* Stop: ends every open stream (its reader sees no more calls; its free callback
 * runs), closes every connection, joins MHD's threads and frees srv. Handlers may
 * still be running when this is called; it returns after they finish. NULL is a
 * no-op. Must not be called from a handler. */
void api_server_stop(api_server *srv);

/* ---- the request (all strings borrowed, valid until the handler returns;
 *      stream readers must copy what they need) ---- */

const char *api_req_method(const api_req *req); /* "GET"; HEAD shows as "HEAD" */
const char *api_req_path(const api_req *req);   /* URL-decoded path, no query */
const char *api_req_pattern(const api_req *req);/* the matched route's pattern */
void *api_req_user(const api_req *req);         /* api_config.user */
/* The token the request carried, when it is one of ours: its name (NULL when none
 * matched) and OUT *scope (0 when none). */
const char *api_req_token(const api_req *req, int *scope);
/* Whether the server has tokens at all, and whether its reads need one. */
int api_server_has_tokens(const api_server *srv);
int api_server_reads_need_token(const api_server *srv);
/* "read", "control", "admin" (NULL for anything else), and back (0 when not one). */
const char *api_scope_name(int scope);
int api_scope_parse(const char *name);
api_server *api_req_server(const api_req *req); /* the server answering (for stats) */

/* A path parameter by name ("id" for {id}): its text, or NULL if the route has no
 * such parameter. */
const char *api_param(const api_req *req, const char *name);
/* The same, as an integer: {name} and {name:u} always parse (the router checked);
 * returns -1 for a missing or non-integer parameter. */
int64_t api_param_int(const api_req *req, const char *name);

/* Query parameters, URL-decoded by MHD. api_query_get returns the value of the
 * first one named key (a key without "=" has value ""), or NULL when absent. */
const char *api_query_get(const api_req *req, const char *key);
/* An integer query parameter in [lo, hi]: def when absent; after replying 400
 * bad_param naming key (with the range) when malformed or out of range, returns
 * API_QUERY_BAD. Every route's integer parameters go through it. */
#define API_QUERY_BAD INT64_MIN
int64_t api_query_num(api_req *req, const char *key, int64_t lo, int64_t hi, int64_t def);
size_t api_query_count(const api_req *req);
/* The i-th parameter in request order; i < api_query_count. */
void api_query_at(const api_req *req, size_t i, const char **key, const char **value);
/* Reject parameters not in allowed (NULL-terminated): replies 400 unknown_param
 * with field = the first offender and returns VAED_EINVAL; returns 0 if all known. */
int api_query_only(api_req *req, const char *const *allowed);

/* A request header by name, case-insensitively; NULL when absent. */
const char *api_header(const api_req *req, const char *name);

/* The body as received: NUL-terminated (body[len] == 0), never NULL ("" when
 * empty). It may contain NUL bytes before len. */
const char *api_req_body(const api_req *req, size_t *len /* OUT, may be NULL */);

/* A spooled route's body: the path of the file holding it (NUL-terminated,
 * valid until the request completes), or NULL when the body was empty or the route
 * does not spool. OUT *size: its bytes (may be NULL). The layer deletes the file when
 * the request completes, unless the handler called api_req_body_file_keep(). */
const char *api_req_body_file(const api_req *req, uint64_t *size);

/* The handler has moved (renamed) or deleted the spooled file itself: the layer must
 * not delete that path any more (a new file may have taken the name since). */
void api_req_body_file_keep(api_req *req);

/* Parse the body as JSON (duplicate keys rejected). Returns 0 and *out (a new
 * reference, the caller's to json_decref), or on failure replies 400 bad_json
 * ("invalid JSON at line L, column C: ...", or "request body is empty"), sets
 * *out = NULL and returns VAED_EINVAL: the handler then just returns. */
int api_body_json(api_req *req, json_t **out);

/* ---- replies: the first reply wins; later ones return VAED_ESTATE ----
 * Each returns 0, or VAED_ESTATE if the request was already answered, or
 * VAED_ENOMEM if the response could not be built (the client then gets 500). */

/* Add a header to the response, whenever in the handler (before or after the
 * reply call). name and value are copied. */
int api_set_header(api_req *req, const char *name, const char *value);

/* Answer with body serialised as JSON. body is stolen (decref'd here, also on
 * error); NULL gives an empty body. */
int api_reply_json(api_req *req, unsigned status, json_t *body);

/* Answer with len bytes of text (copied) and the given Content-Type. */
int api_reply_text(api_req *req, unsigned status, const char *content_type,
                   const char *text, size_t len);

/* Answer with {"error": {"code": code, "message": <fmt...>, "field": field}};
 * field NULL or "" leaves "field" out. */
int api_reply_error(api_req *req, unsigned status, const char *code, const char *field,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The same from a vaed_err: message e->msg, field e->field (omitted when empty). */
int api_reply_from_err(api_req *req, unsigned status, const char *code, const vaed_err *e);

/* ---- streamed responses (Server-Sent Events) ----
 *
 * A stream reader fills buf with up to max bytes and returns how many; it runs on
 * an MHD pool thread and must never block. It returns:
 *   > 0              bytes written to buf;
 *   0                nothing to send now: the layer suspends the connection (no
 *                    thread waits, no busy loop) until api_stream_wake() or the
 *                    keepalive period passes, then calls the reader again;
 *   API_STREAM_END   the stream is complete (chunked encoding is closed cleanly);
 *   API_STREAM_ERROR abort the connection.
 * When the reader returns 0 after a keepalive period with nothing new, a
 * "text/event-stream" stream gets ": keepalive\n\n" written for it: that keeps
 * proxies from timing out and is how a vanished client is noticed (the write
 * fails, the connection closes, the free callback runs). */
#define API_STREAM_END ((ssize_t)-1)
#define API_STREAM_ERROR ((ssize_t)-2)
typedef ssize_t (*api_stream_read)(void *cls, char *buf, size_t max);
typedef void (*api_stream_free)(void *cls);

/* Answer 200 with an unbounded chunked body produced by reader(cls, ...).
 * free_cb(cls) runs exactly once: when the connection ends (stream finished,
 * client gone, server stopping), or right here if the reply fails.
 * Returns the stream handle for api_stream_wake(), or NULL on failure (already
 * answered: VAED_ESTATE; out of memory: the client gets 500). The handle stays
 * valid until free_cb(cls) has returned; after that it must not be used — so a
 * producer that keeps it must drop it inside free_cb, under its own lock. */
api_stream *api_reply_stream(api_req *req, const char *content_type, api_stream_read reader,
                             api_stream_free free_cb, void *cls);

/* Tell the stream there is new data: a suspended stream is resumed and its reader
 * called soon. Cheap, thread safe, never blocks for long; may be called from any
 * thread (not from that stream's own reader). */
void api_stream_wake(api_stream *st);

/* ---- statistics for /metrics ---- */

/* Latency bucket upper bounds in seconds; the last bucket is +Inf. */
#define API_LAT_NBUCKETS 12
extern const double api_lat_bounds[API_LAT_NBUCKETS - 1];

typedef struct api_stat_count {
    const char *method;   /* route method, or "" for requests that matched no route */
    const char *pattern;  /* route pattern, or "unmatched" */
    unsigned status;
    uint64_t count;
} api_stat_count;

typedef struct api_stat_latency {
    const char *method, *pattern;            /* as in api_stat_count */
    uint64_t bucket[API_LAT_NBUCKETS];       /* NON-cumulative counts per bucket */
    uint64_t count;
    double sum_s;
} api_stat_latency;

typedef struct api_stats {
    size_t ncounts;
    api_stat_count *counts;    /* one per (route, status) seen, route order */
    size_t nlat;
    api_stat_latency *lat;     /* one per route plus "unmatched", route order */
    uint64_t streams_open;     /* streams currently open */
} api_stats;

/* A consistent copy of the counters. Requests are counted when they complete;
 * streams are counted but kept out of the latency histogram (their duration is
 * the client's choice). Strings point into the server's route table (valid until
 * api_server_stop). Returns 0, or VAED_ENOMEM with *out NULL. */
int api_stats_snapshot(api_server *srv, api_stats **out);
void api_stats_free(api_stats *st);

#endif
