/* http.c — see http.h for the contract.
 *
 * How one request flows through MHD's access-handler callback, which MHD calls
 * several times per request:
 *   1st call  (headers known, no body yet): allocate the api_req, route the path,
 *             and answer at once whatever needs no body — OPTIONS/CORS preflight,
 *             401, 404, 405, and 413 when Content-Length already exceeds the cap.
 *             Answering here means an unauthenticated or misdirected client never
 *             makes us buffer a body.
 *   body calls: append to a malloc'd buffer capped at max_body; crossing the cap
 *             answers 413 (or, if MHD refuses a response mid-body, discards the
 *             rest and answers 413 at the end). A spooled route (spool_routes) writes
 *             them to a file in spool_dir instead, capped at max_spool the same way;
 *             the file is deleted on 413, on a write error, and at completion unless
 *             the handler kept it (api_req_body_file_keep).
 *   last call (*upload_data_size == 0): run the route handler, queue its reply.
 *   NOTIFY_COMPLETED: access log, counters, free the api_req.
 *
 * Streams: MHD calls the content reader on a pool thread that also serves many
 * other connections, so a reader must never wait. When the application has
 * nothing to send we suspend the connection (MHD_suspend_connection from inside
 * the reader, as MHD documents for "return 0") and resume it from
 * api_stream_wake() or from the keepalive ticker thread. Per-stream state
 * RUNNING/SUSPENDED/RESUMING lives under srv->smu so that a wake racing with a
 * suspension is never lost, and so that api_server_stop() can resume every
 * suspended connection before MHD_stop_daemon (stopping with suspended
 * connections is an MHD API violation). Lock order: srv->smu before MHD's own
 * locks; MHD may hold the response lock while calling the reader, which takes
 * srv->smu, and nothing of ours takes an MHD response lock. */
#include "api/http.h"
#include "api/http_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

const double api_lat_bounds[API_LAT_NBUCKETS - 1] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
};

/* ---------------------------------------------------------------- utilities */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double since_s(const struct timespec *t0)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)(ts.tv_sec - t0->tv_sec) + (ts.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* Copy s with every byte that is not part of a well-formed UTF-8 sequence
 * replaced by '?': error messages echo client input, and jansson refuses to
 * build a string from invalid UTF-8 (which would lose the whole error body). */
char *http_utf8_clean(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n + 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4 : 0;
        int ok = k > 0 && i + k <= n;
        for (size_t j = 1; ok && j < k; j++)
            ok = (p[i + j] & 0xC0) == 0x80;
        if (ok && k > 1) {
            unsigned cp = c & (0x7F >> k);
            for (size_t j = 1; j < k; j++)
                cp = (cp << 6) | (p[i + j] & 0x3F);
            /* overlongs, surrogates and > U+10FFFF are invalid too */
            static const unsigned minv[5] = {0, 0, 0x80, 0x800, 0x10000};
            ok = cp >= minv[k] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        }
        if (ok) {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        } else {
            out[o++] = '?';
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

/* Decimal integer check: positive (no leading zero) or, with allow_zero, also "0". */
int http_is_uint(const char *s, int allow_zero)
{
    size_t n = strlen(s);
    if (n == 0 || n > 19)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    if (s[0] == '0')
        return allow_zero && n == 1;
    if (n == 19 && strcmp(s, "9223372036854775807") > 0)
        return 0;
    return 1;
}

/* ---------------------------------------------------------------- dispatch */

static enum MHD_Result queue_reply(api_req *req)
{
    if (req->queued)
        return MHD_YES;
    if (!req->resp) {
        if (!req->answered)
            fprintf(stderr, "vaed http: %s %s: handler returned without replying\n",
                    req->method, req->path);
        req->answered = 0;
        api_reply_error(req, 500, "internal", NULL, "internal error");
        if (!req->resp)
            return MHD_NO; /* cannot even build an error: drop the connection */
    }
    for (hdr *h = req->extra; h; h = h->next)
        MHD_add_response_header(req->resp, h->name, h->value);
    http_auth_audit(req); /* before the client can hear the reply */
    http_guard_reply(req);
    const char *origin = http_cors_match(req->srv, api_header(req, "Origin"));
    if (origin) {
        MHD_add_response_header(req->resp, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(req->resp, "Vary", "Origin");
    }
    enum MHD_Result rc = MHD_queue_response(req->conn, req->status, req->resp);
    if (rc == MHD_YES) {
        MHD_destroy_response(req->resp);
        req->resp = NULL;
        req->queued = 1;
    }
    return rc;
}

/* First call: answer what needs no body. Returns 1 if answered. */
static int answer_early(api_req *req, const char *url)
{
    api_server *srv = req->srv;
    char allow[256];
    if (http_guard_head(req, url)) /* paths, repeated headers, Host, Origin */
        return 1;
    http_route_request(req, allow, sizeof allow);
    if (http_method_is(req->method, "OPTIONS")) {
        if (!allow[0]) {
            api_reply_error(req, 404, "not_found", NULL, "no such resource: %s", req->path);
            return 1;
        }
        api_reply_text(req, 204, NULL, "", 0);
        api_set_header(req, MHD_HTTP_HEADER_ALLOW, allow);
        if (http_cors_match(srv, api_header(req, "Origin")) &&
            api_header(req, "Access-Control-Request-Method")) {
            api_set_header(req, "Access-Control-Allow-Methods", allow);
            api_set_header(req, "Access-Control-Allow-Headers", "Authorization, Content-Type");
            api_set_header(req, "Access-Control-Max-Age", "600");
        }
        return 1;
    }
    if (http_auth_check(req)) /* 401, 403: tokens and scopes */
        return 1;
    /* a token holder: any known token (http_auth_check identified it) */
    if (http_guard_reserved(req->conn) && strcmp(req->path, "/healthz") && req->tok < 0) {
        api_reply_error(req, 503, "busy", NULL,
                        "every connection slot is taken (%u); the reserve past them is kept "
                        "for GET /healthz and token holders", srv->cfg.conn_limit);
        api_set_header(req, "Retry-After", "5");
        api_set_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
        return 1;
    }
    if (req->route < 0 && !allow[0]) {
        api_reply_error(req, 404, "not_found", NULL, "no such resource: %s", req->path);
        return 1;
    }
    if (req->route < 0) {
        api_reply_error(req, 405, "method_not_allowed", NULL, "%s is not allowed on %s; allowed: %s",
                        req->method, req->path, allow);
        api_set_header(req, MHD_HTTP_HEADER_ALLOW, allow);
        return 1;
    }
    int spool = srv->routes[req->route].spool;
    if (spool && !srv->cfg.spool_dir) {
        api_reply_error(req, 503, "unavailable", NULL,
                        "uploads are not configured on this server");
        return 1;
    }
    unsigned long long cap = spool ? (unsigned long long)srv->cfg.max_spool : srv->cfg.max_body;
    const char *cl = api_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && n > cap) {
            api_reply_error(req, 413, "payload_too_large", NULL,
                            "request body of %llu bytes exceeds the limit of %llu bytes", n, cap);
            return 1;
        }
    }
    return 0;
}

static void reply_too_big(api_req *req)
{
    free(req->body);
    req->body = NULL;
    req->len = req->cap = 0;
    api_reply_error(req, 413, "payload_too_large", NULL,
                    "request body exceeds the limit of %zu bytes", req->srv->cfg.max_body);
}

/* A body chunk of a spooled route: to the spool file, created on the first
 * chunk. Crossing max_spool or failing to write answers at once and drops the file;
 * later chunks are then discarded (req->discard). */
static void spool_chunk(api_req *req, const char *data, size_t n)
{
    api_server *srv = req->srv;
    if (n > srv->cfg.max_spool - req->spool_len) { /* spool_len <= max_spool always holds */
        http_spool_drop(req);
        req->discard = 1;
        api_reply_error(req, 413, "payload_too_large", NULL,
                        "upload exceeds the limit of %llu bytes",
                        (unsigned long long)srv->cfg.max_spool);
        queue_reply(req);
        return;
    }
    if (req->spool_fd < 0) {
        size_t plen = strlen(srv->cfg.spool_dir) + 32;
        req->spool_path = xmalloc(plen);
        snprintf(req->spool_path, plen, "%s/" API_SPOOL_PREFIX "XXXXXX", srv->cfg.spool_dir);
        req->spool_fd = mkostemp(req->spool_path, O_CLOEXEC); /* mode 0600 */
        if (req->spool_fd < 0) {
            int e = errno;
            free(req->spool_path);
            req->spool_path = NULL;
            req->discard = 1;
            api_reply_error(req, 500, "internal", NULL, "cannot create the upload file: %s",
                            strerror(e));
            queue_reply(req);
            return;
        }
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(req->spool_fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            http_spool_drop(req);
            req->discard = 1;
            if (e == ENOSPC || e == EDQUOT)
                api_reply_error(req, 507, "insufficient_storage", NULL,
                                "no space left to store the upload");
            else
                api_reply_error(req, 500, "internal", NULL, "writing the upload: %s",
                                strerror(e));
            queue_reply(req);
            return;
        }
        off += (size_t)w;
    }
    req->spool_len += n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    api_server *srv = cls;
    api_req *req = *con_cls;
    if (!req) {
        req = xcalloc(1, sizeof *req);
        clock_gettime(CLOCK_MONOTONIC, &req->t0);
        req->srv = srv;
        req->conn = conn;
        req->method = method;
        req->path = xstrdup(url ? url : "");
        req->route = -1;
        req->tok = -1;
        req->spool_fd = -1;
        *con_cls = req;
        http_guard_head_done(conn, 1); /* the head is in: its deadline no longer runs */
        if (answer_early(req, url)) {
            req->discard = 1;
            return queue_reply(req);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->discard)
            return MHD_YES;
        if (srv->routes[req->route].spool) {
            spool_chunk(req, upload, n);
            return MHD_YES;
        }
        if (n > srv->cfg.max_body - req->len) { /* len <= max_body always holds */
            req->discard = 1;
            reply_too_big(req);
            /* MHD may refuse a response in the middle of a body; then the rest is
             * read and dropped and the 413 goes out after the last chunk. */
            queue_reply(req);
            return MHD_YES;
        }
        if (req->len + n + 1 > req->cap) {
            size_t cap = req->cap ? req->cap : 4096;
            while (cap < req->len + n + 1)
                cap *= 2;
            if (cap > srv->cfg.max_body + 1)
                cap = srv->cfg.max_body + 1;
            char *b = realloc(req->body, cap);
            if (!b) {
                req->discard = 1;
                api_reply_error(req, 500, "internal", NULL, "out of memory reading the body");
                return MHD_YES;
            }
            req->body = b;
            req->cap = cap;
        }
        memcpy(req->body + req->len, upload, n);
        req->len += n;
        req->body[req->len] = '\0';
        return MHD_YES;
    }
    if (req->queued)
        return MHD_YES;
    if (!req->answered) {
        if (!req->body) {
            req->body = xmalloc(1);
            req->body[0] = '\0';
        }
        if (req->spool_fd >= 0) { /* the whole body is in: the handler reads the file */
            close(req->spool_fd);
            req->spool_fd = -1;
        }
        if (!http_guard_body(req)) /* a body a web page could send: 415 */
            srv->routes[req->route].fn(req);
    }
    return queue_reply(req);
}

static void log_line(const api_req *req, double secs, int aborted)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %s %s %u %.3fms%s\n", when, ts.tv_nsec / 1000000, req->method,
            req->path, req->status, secs * 1e3, aborted ? " aborted" : "");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    api_server *srv = cls;
    api_req *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    http_guard_head_done(conn, 0); /* a kept-alive connection's next head starts now */
    double secs = since_s(&req->t0);
    if (req->status) {
        size_t slot = req->route >= 0 ? (size_t)req->route : srv->nroutes;
        stat_slot *s = &srv->stats[slot];
        pthread_mutex_lock(&srv->stmu);
        size_t k = 0;
        while (k < MAX_STATUSES - 1 && s->status[k] && s->status[k] != req->status)
            k++;
        if (!s->status[k])
            s->status[k] = req->status;
        s->count[k]++;
        if (!req->is_stream) {
            size_t b = 0;
            while (b < API_LAT_NBUCKETS - 1 && secs > api_lat_bounds[b])
                b++;
            s->bucket[b]++;
            s->nlat++;
            s->sum_s += secs;
        }
        pthread_mutex_unlock(&srv->stmu);
    }
    if (srv->cfg.access_log)
        log_line(req, secs, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (req->resp)
        MHD_destroy_response(req->resp);
    for (hdr *h = req->extra, *nx; h; h = nx) {
        nx = h->next;
        free(h->name);
        free(h->value);
        free(h);
    }
    http_spool_drop(req);
    free(req->qk);
    free(req->qv);
    free(req->body);
    free(req->segbuf);
    free(req->path);
    free(req);
}

/* MHD's own messages: on stderr with the access log; while the server starts, the first
 * one is also kept (it is all MHD says of a certificate it refuses). */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    api_server *srv = cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    int no = 0;
    if (!__atomic_load_n(&srv->started, __ATOMIC_ACQUIRE) &&
        __atomic_compare_exchange_n(&srv->start_error_taken, &no, 1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        snprintf(srv->start_error, sizeof srv->start_error, "%s", buf);
    if (srv->cfg.access_log)
        fprintf(stderr, "vaed http: %s\n", buf);
}

/* ---------------------------------------------------------------- server */

void api_config_default(api_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = "127.0.0.1:8080";
    cfg->threads = 4;
    cfg->conn_limit = 256;
    cfg->per_ip_limit = 64;
    cfg->reserve_slots = 16;
    cfg->timeout_s = 30;
    cfg->conn_memory = 64 * 1024;
    cfg->max_body = 1024 * 1024;
    cfg->access_log = 1;
    cfg->keepalive_ms = 1000;
    cfg->max_spool = (uint64_t)256 << 20;
}

/* Split "host:port" / "[v6]:port" and resolve it numerically or by name. */
static int parse_listen(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen,
                        vaed_err *err)
{
    if (!addr)
        return vaed_err_set(err, VAED_EINVAL, "listen", "missing address");
    char host[256];
    const char *port;
    if (addr[0] == '[') {
        const char *e = strchr(addr, ']');
        if (!e || e[1] != ':' || (size_t)(e - addr - 1) >= sizeof host)
            return vaed_err_set(err, VAED_EINVAL, "listen", "\"%s\" is not [address]:port", addr);
        memcpy(host, addr + 1, (size_t)(e - addr - 1));
        host[e - addr - 1] = '\0';
        port = e + 2;
    } else {
        const char *c = strrchr(addr, ':');
        if (!c || c == addr || (size_t)(c - addr) >= sizeof host)
            return vaed_err_set(err, VAED_EINVAL, "listen", "\"%s\" is not host:port", addr);
        memcpy(host, addr, (size_t)(c - addr));
        host[c - addr] = '\0';
        port = c + 1;
    }
    if (!port[0] || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) ||
        atoi(port) > 65535)
        return vaed_err_set(err, VAED_EINVAL, "listen", "\"%s\": port must be 0..65535", addr);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || !ai)
        return vaed_err_set(err, VAED_EINVAL, "listen", "%s: %s", addr, gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* MHD_start_daemon says only "NULL"; bind the address ourselves to name the cause. */
static int explain_bind_failure(const char *addr, const struct sockaddr_storage *ss,
                                socklen_t sslen, vaed_err *err)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int e = 0;
    if (fd < 0) {
        e = errno;
    } else {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (const struct sockaddr *)ss, sslen) != 0 || listen(fd, 1) != 0)
            e = errno;
        close(fd);
    }
    if (e)
        return vaed_err_set(err, VAED_EIO, "listen", "%s: %s", addr, strerror(e));
    return vaed_err_set(err, VAED_EIO, "listen", "%s: libmicrohttpd could not start the server",
                        addr);
}

static void server_free(api_server *srv)
{
    for (size_t i = 0; i < srv->nroutes; i++)
        http_route_free(&srv->routes[i]);
    free(srv->routes);
    free(srv->stats);
    http_auth_free(srv);
    pthread_mutex_destroy(&srv->smu);
    pthread_mutex_destroy(&srv->stmu);
    pthread_mutex_destroy(&srv->cmu);
    pthread_cond_destroy(&srv->tcond);
    free(srv);
}

int api_server_start(const api_config *cfg, const api_route *routes, size_t nroutes,
                     api_server **out, vaed_err *err)
{
    *out = NULL;
    if (cfg->threads < 1 || cfg->conn_limit < cfg->threads || cfg->keepalive_ms < 10)
        return vaed_err_set(err, VAED_EINVAL, "threads",
                            "need threads >= 1, conn_limit >= threads, keepalive_ms >= 10");
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    int rc = parse_listen(cfg->listen, &ss, &sslen, err);
    if (rc)
        return rc;

    api_server *srv = xcalloc(1, sizeof *srv);
    srv->cfg = *cfg;
    pthread_mutex_init(&srv->smu, NULL);
    pthread_mutex_init(&srv->stmu, NULL);
    pthread_mutex_init(&srv->cmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->tcond, &ca);
    pthread_condattr_destroy(&ca);
    srv->routes = xcalloc(nroutes ? nroutes : 1, sizeof *srv->routes);
    srv->stats = xcalloc(nroutes + 1, sizeof *srv->stats);
    for (size_t i = 0; i < nroutes; i++) {
        route *r = &srv->routes[i];
        r->method = routes[i].method;
        r->pattern = routes[i].pattern;
        r->fn = routes[i].fn;
        r->scope = routes[i].scope;
        srv->nroutes = i + 1;
        if (!r->method || !r->fn || !api_scope_name(r->scope)) {
            rc = vaed_err_set(err, VAED_EINVAL, "routes",
                              "route %zu lacks a method, a handler or a scope", i);
            goto fail;
        }
        if ((rc = http_route_parse(r, err)))
            goto fail;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(srv->routes[k].method, r->method) &&
                !strcmp(srv->routes[k].pattern, r->pattern)) {
                rc = vaed_err_set(err, VAED_EINVAL, "routes", "duplicate route %s %s", r->method,
                                  r->pattern);
                goto fail;
            }
    }

    if ((rc = http_auth_init(srv, err)))
        goto fail;

    for (size_t k = 0; cfg->spool_routes && cfg->spool_routes[k]; k++) {
        const char *sr = cfg->spool_routes[k], *sp = strchr(sr, ' ');
        size_t ml = sp ? (size_t)(sp - sr) : 0;
        int hit = 0;
        for (size_t i = 0; sp && i < nroutes; i++) {
            route *r = &srv->routes[i];
            if (strlen(r->method) == ml && !strncmp(sr, r->method, ml) &&
                !strcmp(sp + 1, r->pattern))
                r->spool = hit = 1;
        }
        if (!hit) {
            rc = vaed_err_set(err, VAED_EINVAL, "routes", "spool route \"%s\" names no route", sr);
            goto fail;
        }
    }

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) ? MHD_USE_EPOLL : MHD_USE_POLL;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    flags |= MHD_USE_ERROR_LOG; /* mhd_log prints only with the access log */
    int tls = cfg->tls_cert || cfg->tls_key;
    if (tls && (!cfg->tls_cert || !cfg->tls_key)) {
        rc = vaed_err_set(err, VAED_EINVAL, "tls", "a certificate needs its key, and a key its certificate");
        goto fail;
    }
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        rc = vaed_err_set(err, VAED_EINVAL, "tls", "this libmicrohttpd was built without TLS");
        goto fail;
    }
    /* The TLS options, or none: MHD_OPTION_ARRAY takes a list that may be empty. */
    struct MHD_OptionItem tls_opts[] = {
        {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *)cfg->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)cfg->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    if (tls)
        flags |= MHD_USE_TLS;
    srv->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, /* MHD wants it first */
        MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, http_notify_conn, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, srv,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->conn_memory,
        MHD_OPTION_CONNECTION_LIMIT, cfg->conn_limit + cfg->reserve_slots,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->per_ip_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
        MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
        /* Strict parsing: HTTP/1.1 without Host, whitespace before a header's colon and
         * conflicting Content-Length values are refused with 400, as RFC 9112 asks
         * (tolerating them is how request smuggling through a proxy starts). */
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
        MHD_OPTION_END);
    __atomic_store_n(&srv->started, 1, __ATOMIC_RELEASE);
    /* read only when the start failed: MHD's threads are gone then */
    if (!srv->d && tls && srv->start_error[0]) {
        rc = vaed_err_set(err, VAED_EINVAL, "tls", "%s", srv->start_error);
        goto fail;
    }
    if (!srv->d) {
        rc = explain_bind_failure(cfg->listen, &ss, sslen, err);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    __atomic_store_n(&srv->port, info ? info->port : 0u, __ATOMIC_RELEASE);
    if (pthread_create(&srv->ticker, NULL, http_ticker_main, srv) != 0) {
        MHD_stop_daemon(srv->d);
        rc = vaed_err_set(err, VAED_EIO, "listen", "%s: cannot start the keepalive thread",
                          cfg->listen);
        goto fail;
    }
    srv->ticker_started = 1;
    *out = srv;
    return 0;
fail:
    server_free(srv);
    return rc;
}

unsigned api_server_port(const api_server *srv)
{
    return __atomic_load_n(&srv->port, __ATOMIC_ACQUIRE);
}

void api_server_stop(api_server *srv)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->smu);
    srv->stopping = 1;
    for (api_stream *st = srv->streams; st; st = st->next)
        if (st->state == ST_SUSPENDED) {
            st->state = ST_RESUMING;
            MHD_resume_connection(st->conn);
        }
    pthread_cond_broadcast(&srv->tcond);
    pthread_mutex_unlock(&srv->smu);
    if (srv->ticker_started)
        pthread_join(srv->ticker, NULL);
    /* Wait (bounded) until every resumed stream has been re-entered by MHD: its
     * reader then ends the stream, and no connection is left suspended when
     * MHD_stop_daemon runs. */
    double t_end = now_s() + 2.0;
    for (;;) {
        int busy = 0;
        pthread_mutex_lock(&srv->smu);
        for (api_stream *st = srv->streams; st; st = st->next)
            busy |= st->state != ST_RUNNING;
        pthread_mutex_unlock(&srv->smu);
        if (!busy || now_s() > t_end)
            break;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(srv->d);
    server_free(srv);
}

/* ---------------------------------------------------------------- stats */

int api_stats_snapshot(api_server *srv, api_stats **out)
{
    *out = NULL;
    api_stats *st = calloc(1, sizeof *st);
    size_t nslots = srv->nroutes + 1;
    if (st) {
        st->lat = calloc(nslots, sizeof *st->lat);
        st->counts = calloc(nslots * MAX_STATUSES, sizeof *st->counts);
    }
    if (!st || !st->lat || !st->counts) {
        api_stats_free(st);
        return VAED_ENOMEM;
    }
    pthread_mutex_lock(&srv->stmu);
    for (size_t i = 0; i < nslots; i++) {
        const stat_slot *s = &srv->stats[i];
        const char *m = i < srv->nroutes ? srv->routes[i].method : "";
        const char *p = i < srv->nroutes ? srv->routes[i].pattern : "unmatched";
        api_stat_latency *l = &st->lat[st->nlat++];
        l->method = m;
        l->pattern = p;
        memcpy(l->bucket, s->bucket, sizeof l->bucket);
        l->count = s->nlat;
        l->sum_s = s->sum_s;
        for (size_t k = 0; k < MAX_STATUSES && s->status[k]; k++) {
            api_stat_count *c = &st->counts[st->ncounts++];
            c->method = m;
            c->pattern = p;
            c->status = s->status[k];
            c->count = s->count[k];
        }
    }
    pthread_mutex_unlock(&srv->stmu);
    pthread_mutex_lock(&srv->smu);
    st->streams_open = srv->nstreams;
    pthread_mutex_unlock(&srv->smu);
    *out = st;
    return 0;
}

void api_stats_free(api_stats *st)
{
    if (!st)
        return;
    free(st->counts);
    free(st->lat);
    free(st);
}
