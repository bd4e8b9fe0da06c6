/* http_impl.h — inside the HTTP layer (http.c: routing, dispatch, the server;
 * http_req.c: the handler's side, reading a request and answering it, streams): the
 * server, request and stream objects and the helpers both halves use. Internal to
 * api/http*.c; the door is http.h. */
#ifndef VAED_API_HTTP_IMPL_H
#define VAED_API_HTTP_IMPL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "api/http.h"

#define MAX_SEGS 32
#define MAX_PARAMS 8
#define MAX_STATUSES 24
#define STREAM_BLOCK 8192



enum { SEG_LIT, SEG_POS, SEG_UINT, SEG_STR };

typedef struct seg {
    int kind;
    char *text; /* literal text, or parameter name */
} seg;

typedef struct route {
    const char *method, *pattern;
    api_handler fn;
    int scope; /* enum api_scope */
    int spool; /* listed in api_config.spool_routes */
    size_t nseg;
    seg segs[MAX_SEGS];
} route;

typedef struct stat_slot {
    unsigned status[MAX_STATUSES];
    uint64_t count[MAX_STATUSES];
    uint64_t bucket[API_LAT_NBUCKETS];
    uint64_t nlat;
    double sum_s;
} stat_slot;

typedef struct hdr {
    char *name, *value;
    struct hdr *next;
} hdr;

enum { ST_RUNNING, ST_SUSPENDED, ST_RESUMING };

struct api_stream {
    api_server *srv;
    struct MHD_Connection *conn;
    api_stream_read reader;
    api_stream_free free_cb;
    void *cls;
    int sse;
    int state, pending, tick; /* under srv->smu */
    api_stream *prev, *next;  /* srv->streams list, under srv->smu */
};

struct api_server {
    api_config cfg;
    api_token *tokens;          /* cfg.tokens, then cfg.token as "default" (admin); the
                                   array is ours, the strings borrowed */
    size_t ntokens;
    struct MHD_Daemon *d;
    unsigned port;              /* known once MHD has bound, after its threads started:
                                   written and read with __atomic (a request can arrive
                                   in between) */
    route *routes;
    size_t nroutes;
    int started;                /* MHD_start_daemon has returned (__atomic) */
    int start_error_taken;      /* start_error is written once (__atomic claim) */
    char start_error[256];      /* MHD's first message while starting */

    pthread_mutex_t smu; /* streams, stopping, ticker flag */
    pthread_cond_t tcond;
    api_stream *streams;
    uint64_t nstreams;
    int stopping;
    int ticker_started;
    pthread_t ticker;

    pthread_mutex_t stmu; /* stats */
    stat_slot *stats;     /* nroutes + 1: the last is "unmatched" */

    pthread_mutex_t cmu;       /* conns (http_guard.c); taken after smu, never before */
    struct conn_state *conns;  /* every open connection, for the head deadline */
    unsigned nconns;           /* how many (under cmu): past cfg.conn_limit, reserved */
};

struct api_req {
    api_server *srv;
    struct MHD_Connection *conn;
    const char *method;
    char *path;
    char *segbuf;
    size_t nseg;
    char *segp[MAX_SEGS];
    int route; /* index, or -1 */
    int tok;   /* index in srv->tokens of the token it carried, or -1 */
    int audited; /* the audit hook has heard of it */
    size_t nparams;
    const char *pname[MAX_PARAMS];
    const char *pval[MAX_PARAMS];

    size_t nq, qcap;
    const char **qk, **qv;
    int q_loaded;

    char *body;
    size_t len, cap;
    int discard; /* body past the cap or already answered: drop further chunks */

    int spool_fd;       /* spooled route: the open body file, -1 when none */
    char *spool_path;   /* its path; NULL when none or kept by the handler */
    uint64_t spool_len;

    struct MHD_Response *resp; /* built by a reply, queued by queue_reply */
    unsigned status;
    int answered; /* a reply was made (resp built or queued) */
    int queued;   /* handed to MHD */
    int is_stream;
    hdr *extra;
    struct timespec t0;
};

/* A request's spooled body file: closed and deleted unless the handler kept it. */
void http_spool_drop(api_req *req);
/* The stream ticker thread: wakes idle event streams for their keepalives. */
void *http_ticker_main(void *arg);
/* 1 when s is a decimal unsigned integer (allow_zero: "0" counts). */
int http_is_uint(const char *s, int allow_zero);
/* A copy of s with invalid UTF-8 replaced (malloc'd; NULL on failure). */
char *http_utf8_clean(const char *s);

/* Patterns (http_route.c). Parse r->pattern into r->segs (err names the pattern); free
 * them; 1 when the request's method is want (HEAD counts as GET); match the request
 * against the table: sets req->route (-1: none) and its parameters, and lists in allow
 * (allow_size bytes) the methods the path has when only the method is wrong. */
int http_route_parse(route *r, vaed_err *err);
void http_route_free(route *r);
int http_method_is(const char *m, const char *want);
void http_route_request(api_req *req, char *allow, size_t allow_size);

/* Tokens, scopes and the audit hook (http_auth.c). Copy cfg's tokens into srv (err
 * names a bad one); free them. On the first call, after routing: 1 when the request was
 * answered 401 or 403. Before a reply is queued: tell the audit hook when it wants it. */
int http_auth_init(api_server *srv, vaed_err *err);
void http_auth_free(api_server *srv);
int http_auth_check(api_req *req);
void http_auth_audit(api_req *req);

/* Guards (http_guard.c). The MHD callbacks that track, per connection, whether the
 * path held %00 or %2f; the checks of a request's head before routing (url: MHD's path
 * buffer) and of its body's type before the handler, each 1 when it answered the
 * request; the headers every reply gets; the Origin allowed by --cors (or NULL). */
void http_notify_conn(void *cls, struct MHD_Connection *c, void **socket_ctx,
                      enum MHD_ConnectionNotificationCode code);
size_t http_unescape(void *cls, struct MHD_Connection *c, char *s);
int http_guard_head(api_req *req, const char *url);
int http_guard_body(api_req *req);
void http_guard_reply(api_req *req);
/* The head deadline: a connection's head is complete (the first handler call), or a
 * request on it completed and the next head may begin; the ticker's sweep shuts down
 * the connections whose head has taken over cfg.head_timeout_s. */
void http_guard_head_done(struct MHD_Connection *c, int done);
/* 1 if C was accepted past cfg.conn_limit (into the reserve; see api_config) */
int http_guard_reserved(struct MHD_Connection *c);
void http_guard_sweep(api_server *srv);
const char *http_cors_match(const api_server *srv, const char *origin);

#endif
