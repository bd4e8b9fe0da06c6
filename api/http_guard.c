/* http_guard.c — the HTTP layer's checks of a request's head and the headers every reply
 * carries: what a hostile client or a web page in the user's browser could otherwise
 * slip past the router (docs/guarantees.md, "Security", lists each with its test).
 *
 *   paths     %00 and %2f/%2F in the path are refused (400 bad_path, field "path"):
 *             MHD decodes the path before we see it, so "/v1/jobs/1%00/pause" arrived
 *             as "/v1/jobs/1" and "%2f" as a real '/'. Our unescape callback decodes
 *             exactly as MHD does and remembers, per connection, whether the last
 *             string it decoded held either escape; MHD decodes the path last (after
 *             the query arguments) and hands that same buffer to the access handler, so
 *             "url == the last decoded string" identifies the path. If a future MHD
 *             changed the order the check would not fire (it never refuses wrongly).
 *   headers   two Authorization, Content-Length, Transfer-Encoding, Host or
 *             Content-Type headers: 400; a Transfer-Encoding
 *             other than plain "chunked": 400 at once (MHD would wait for the end of
 *             a body it cannot frame).
 *   browser   (api_config.browser_checks) a Host that is not ours: 421 (DNS rebinding
 *             reaches a loopback daemon through a name the attacker controls); a state
 *             change from another origin: 403; a body that is not JSON or npy on a
 *             mutating route: 415 (text/plain and forms are what a page may send
 *             without a CORS preflight).
 *   slots     a connection whose request head takes over head_timeout_s is shut down
 *             by the ticker's sweep (shutdown(2) on its socket: MHD then reads EOF and
 *             closes it itself; the fd stays MHD's, so it cannot be reused under us).
 *             MHD accepts reserve_slots connections past conn_limit; one accepted past
 *             it (counted here, at MHD's connection notice) is marked reserved, and
 *             http.c answers a request on it only for /healthz or a token holder.
 *   replies   X-Content-Type-Options: nosniff on every reply; HTML also gets a
 *             Content-Security-Policy (no inline script, no framing) and
 *             Referrer-Policy: no-referrer. */
#include "api/errors.h"
#include "api/http.h"
#include "api/http_impl.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The dashboard loads its script and styles from the daemon itself and uses no inline
 * script. Images may be blob: URLs (the dashboard draws reconstructions into them).
 * Inline style attributes stay allowed: the chart library writes them into
 * its legend, and a style cannot run code. */
#define HTML_CSP                                                                        \
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "      \
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/* ---------------------------------------------------------------- paths */

typedef struct conn_state {
    const char *last; /* the last string the unescape callback decoded */
    int last_bad;     /* it held %00 or %2f */
    /* under srv->cmu: */
    struct MHD_Connection *conn;
    api_server *srv;
    struct timespec head_t0; /* when the current head began */
    int in_head;             /* a head is being read (or awaited on keep-alive) */
    int shut;                /* the sweep shut it down */
    int reserved;            /* accepted past cfg.conn_limit: in the reserve */
    struct conn_state *prev, *next;
} conn_state;

/* MHD calls this on the thread that owns the connection, before its first byte is read
 * and after its socket's last use but before the socket is closed. */
void http_notify_conn(void *cls, struct MHD_Connection *c, void **socket_ctx,
                      enum MHD_ConnectionNotificationCode code)
{
    api_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_state *cs = xcalloc(1, sizeof *cs);
        cs->conn = c;
        cs->srv = srv;
        clock_gettime(CLOCK_MONOTONIC, &cs->head_t0);
        cs->in_head = 1;
        pthread_mutex_lock(&srv->cmu);
        cs->reserved = ++srv->nconns > srv->cfg.conn_limit;
        cs->next = srv->conns;
        if (cs->next)
            cs->next->prev = cs;
        srv->conns = cs;
        pthread_mutex_unlock(&srv->cmu);
        *socket_ctx = cs;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_ctx) {
        conn_state *cs = *socket_ctx;
        pthread_mutex_lock(&srv->cmu);
        srv->nconns--;
        if (cs->prev)
            cs->prev->next = cs->next;
        else
            srv->conns = cs->next;
        if (cs->next)
            cs->next->prev = cs->prev;
        pthread_mutex_unlock(&srv->cmu);
        free(cs);
        *socket_ctx = NULL;
    }
}

static conn_state *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

size_t http_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    int bad = 0;
    for (const char *p = s; (p = strchr(p, '%')); p++)
        bad |= (p[1] == '0' && p[2] == '0') || (p[1] == '2' && (p[2] == 'f' || p[2] == 'F'));
    conn_state *cs = conn_of(c);
    if (cs) {
        cs->last = s;
        cs->last_bad = bad;
    }
    return MHD_http_unescape(s);
}

void http_guard_head_done(struct MHD_Connection *c, int done)
{
    conn_state *cs = conn_of(c);
    if (!cs)
        return;
    pthread_mutex_lock(&cs->srv->cmu);
    cs->in_head = !done;
    if (!done)
        clock_gettime(CLOCK_MONOTONIC, &cs->head_t0);
    pthread_mutex_unlock(&cs->srv->cmu);
}

int http_guard_reserved(struct MHD_Connection *c)
{
    conn_state *cs = conn_of(c);
    if (!cs)
        return 0;
    pthread_mutex_lock(&cs->srv->cmu);
    int r = cs->reserved;
    pthread_mutex_unlock(&cs->srv->cmu);
    return r;
}

void http_guard_sweep(api_server *srv)
{
    if (!srv->cfg.head_timeout_s)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&srv->cmu);
    for (conn_state *cs = srv->conns; cs; cs = cs->next) {
        if (!cs->in_head || cs->shut || now.tv_sec - cs->head_t0.tv_sec <= (time_t)srv->cfg.head_timeout_s)
            continue;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(cs->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) {
            shutdown(ci->connect_fd, SHUT_RDWR);
            cs->shut = 1;
        }
    }
    pthread_mutex_unlock(&srv->cmu);
}

/* ---------------------------------------------------------------- headers */

typedef struct hcount {
    const char *name;
    int n;
} hcount;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    (void)value;
    hcount *h = cls;
    if (key && !strcasecmp(key, h->name))
        h->n++;
    return MHD_YES;
}

static int header_count(const api_req *req, const char *name)
{
    hcount h = {name, 0};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, count_header, &h);
    return h.n;
}

const char *http_cors_match(const api_server *srv, const char *origin)
{
    if (!origin || !srv->cfg.cors_origins)
        return NULL;
    for (size_t i = 0; srv->cfg.cors_origins[i]; i++)
        if (!strcmp(srv->cfg.cors_origins[i], "*") || !strcmp(srv->cfg.cors_origins[i], origin))
            return origin;
    return NULL;
}

/* ---------------------------------------------------------------- Host */

/* The host part of "host:port" / "[v6]:port" into name (bracketed v6 kept), the port
 * into *port (-1: none). 0 on a malformed value. */
static int split_host(const char *h, char *name, size_t cap, long *port)
{
    const char *colon;
    if (h[0] == '[') {
        const char *e = strchr(h, ']');
        if (!e)
            return 0;
        colon = e[1] == ':' ? e + 1 : NULL;
        if (e[1] && !colon)
            return 0;
    } else {
        colon = strchr(h, ':');
        if (colon && strchr(colon + 1, ':'))
            return 0;
    }
    size_t n = colon ? (size_t)(colon - h) : strlen(h);
    if (n == 0 || n >= cap)
        return 0;
    memcpy(name, h, n);
    name[n] = '\0';
    *port = -1;
    if (colon) {
        const char *p = colon + 1;
        if (!p[0] || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
            return 0;
        *port = atol(p);
    }
    return 1;
}

/* An address literal cannot be rebound: a page whose origin is an address of ours is
 * already same-origin with us. A name (the attacker's, resolving to 127.0.0.1) can. */
static int is_ip_literal(const char *name)
{
    unsigned char buf[16];
    char v6[64];
    size_t n = strlen(name);
    if (name[0] == '[' && n >= 3 && n - 2 < sizeof v6 && name[n - 1] == ']') {
        memcpy(v6, name + 1, n - 2);
        v6[n - 2] = '\0';
        return inet_pton(AF_INET6, v6, buf) == 1;
    }
    return inet_pton(AF_INET, name, buf) == 1;
}

static int host_ok(const api_server *srv, const char *host)
{
    if (!host) /* HTTP/1.0 without Host (strict mode refuses it in 1.1): no browser */
        return 1;
    char name[256], lname[256];
    long port;
    if (!split_host(host, name, sizeof name, &port))
        return 0;
    /* --allow-host NAME: that name on any port (a proxy in front may use its own);
     * NAME:PORT: exactly that */
    for (size_t i = 0; srv->cfg.allow_hosts && srv->cfg.allow_hosts[i]; i++) {
        const char *a = srv->cfg.allow_hosts[i];
        if (!strcasecmp(a, host) || !strcasecmp(a, name))
            return 1;
    }
    if (port >= 0 && port != (long)api_server_port(srv))
        return 0;
    if (!strcasecmp(name, "localhost") || is_ip_literal(name))
        return 1;
    long lport;
    return srv->cfg.listen && split_host(srv->cfg.listen, lname, sizeof lname, &lport) &&
           !strcasecmp(name, lname);
}

/* A state change from a page of another origin: Sec-Fetch-Site says cross-site or
 * same-site (another port of ours is same-site), or Origin is not http(s)://<Host>.
 * An origin listed in --cors is allowed: that is what listing it means. */
static int cross_site(const api_req *req)
{
    const char *m = req->method;
    if (http_method_is(m, "GET") || http_method_is(m, "HEAD") || http_method_is(m, "OPTIONS"))
        return 0;
    const char *origin = api_header(req, "Origin");
    if (http_cors_match(req->srv, origin))
        return 0;
    const char *sfs = api_header(req, "Sec-Fetch-Site");
    if (sfs && (!strcasecmp(sfs, "cross-site") || !strcasecmp(sfs, "same-site")))
        return 1;
    if (!origin)
        return 0; /* not a browser, or one that says same-origin by leaving it out */
    const char *host = api_header(req, MHD_HTTP_HEADER_HOST);
    if (!host)
        return 1;
    const char *rest = !strncasecmp(origin, "http://", 7)    ? origin + 7
                       : !strncasecmp(origin, "https://", 8) ? origin + 8
                                                             : NULL;
    return !rest || strcasecmp(rest, host) != 0;
}

/* ---------------------------------------------------------------- checks */

int http_guard_head(api_req *req, const char *url)
{
    api_server *srv = req->srv;
    conn_state *cs = conn_of(req->conn);
    if (cs && cs->last == url && cs->last_bad) {
        api_refuse(req, API_R_BAD_PATH, "path",
                   "path: %%00 and %%2f are not allowed in a path segment");
        return 1;
    }
    /* Several Content-Length headers are the classic request-smuggling split (a proxy
     * in front might take another one than we do); two Authorization headers leave it
     * to chance which one a proxy and we each checked. */
    static const char *const once[] = {MHD_HTTP_HEADER_CONTENT_LENGTH,
                                       MHD_HTTP_HEADER_AUTHORIZATION,
                                       MHD_HTTP_HEADER_TRANSFER_ENCODING, MHD_HTTP_HEADER_HOST,
                                       MHD_HTTP_HEADER_CONTENT_TYPE};
    for (size_t i = 0; i < sizeof once / sizeof *once; i++)
        if (header_count(req, once[i]) > 1) {
            api_refuse(req, API_R_DUP_HEADER, once[i], "%s: more than one %s header", once[i],
                       once[i]);
            return 1;
        }
    const char *te = api_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te && strcasecmp(te, "chunked")) {
        api_refuse(req, API_R_BAD_TE, MHD_HTTP_HEADER_TRANSFER_ENCODING,
                   "Transfer-Encoding: only \"chunked\" is supported");
        return 1;
    }
    if (!srv->cfg.browser_checks)
        return 0;
    if (!host_ok(srv, api_header(req, MHD_HTTP_HEADER_HOST)) && strcmp(url, "/healthz")) {
        api_refuse(req, API_R_BAD_HOST, "Host",
                   "Host: this server does not answer to that name (vaed serve --allow-host "
                   "adds names)");
        return 1;
    }
    if (cross_site(req)) {
        api_refuse(req, API_R_CROSS_SITE, "Origin",
                   "Origin: a state change from another origin is refused (vaed serve --cors "
                   "lists origins that may)");
        return 1;
    }
    return 0;
}

/* "type/subtype" of a Content-Type, parameters cut, compared case-insensitively. */
static int media_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n))
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

int http_guard_body(api_req *req)
{
    const char *m = req->method;
    if (!req->srv->cfg.browser_checks || req->route < 0 || req->srv->routes[req->route].spool ||
        req->len == 0)
        return 0;
    if (!http_method_is(m, "POST") && !http_method_is(m, "PUT") && !http_method_is(m, "PATCH") &&
        !http_method_is(m, "DELETE"))
        return 0;
    const char *ct = api_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && (media_is(ct, "application/json") || media_is(ct, "application/x-npy")))
        return 0;
    api_refuse(req, API_R_MEDIA_TYPE, "Content-Type",
               "Content-Type: a request body here is application/json (or application/x-npy "
               "where a route takes arrays), not %s",
               ct ? ct : "absent");
    return 1;
}

void http_guard_reply(api_req *req)
{
    struct MHD_Response *r = req->resp;
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    const char *ct = MHD_get_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && !strncasecmp(ct, "text/html", 9)) {
        MHD_add_response_header(r, "Content-Security-Policy", HTML_CSP);
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    }
}
