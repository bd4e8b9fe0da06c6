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

#define MAX_SEGS 32
#define MAX_PARAMS 8
#define MAX_STATUSES 24
#define STREAM_BLOCK 8192

const double api_lat_bounds[API_LAT_NBUCKETS - 1] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
};

enum { SEG_LIT, SEG_POS, SEG_UINT, SEG_STR };

typedef struct seg {
    int kind;
    char *text; /* literal text, or parameter name */
} seg;

typedef struct route {
    const char *method, *pattern;
    api_handler fn;
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
    size_t toklen;
    struct MHD_Daemon *d;
    unsigned port;
    route *routes;
    size_t nroutes;

    pthread_mutex_t smu; /* streams, stopping, ticker flag */
    pthread_cond_t tcond;
    api_stream *streams;
    uint64_t nstreams;
    int stopping;
    int ticker_started;
    pthread_t ticker;

    pthread_mutex_t stmu; /* stats */
    stat_slot *stats;     /* nroutes + 1: the last is "unmatched" */
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
static char *utf8_clean(const char *s)
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
static int is_uint(const char *s, int allow_zero)
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

/* Constant-time in the token's length: the comparison does not stop at the first
 * differing byte, so response timing does not reveal a prefix of the token. */
static int token_equal(const char *given, size_t glen, const char *tok, size_t tlen)
{
    volatile unsigned char d = (unsigned char)(glen != tlen);
    for (size_t i = 0; i < tlen; i++) {
        unsigned char g = i < glen ? (unsigned char)given[i] : 0;
        d |= (unsigned char)(g ^ (unsigned char)tok[i]);
    }
    return d == 0;
}

/* ---------------------------------------------------------------- patterns */

static void route_free(route *r)
{
    for (size_t i = 0; i < r->nseg; i++)
        free(r->segs[i].text);
}

static int route_parse(route *r, vaed_err *err)
{
    const char *p = r->pattern;
    if (!p || p[0] != '/')
        return vaed_err_set(err, VAED_EINVAL, "routes", "pattern \"%s\" must start with /",
                            p ? p : "(null)");
    p++;
    size_t nparam = 0;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (r->nseg == MAX_SEGS)
            return vaed_err_set(err, VAED_EINVAL, "routes", "pattern \"%s\" has over %d segments",
                                r->pattern, MAX_SEGS);
        seg *s = &r->segs[r->nseg++];
        if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
            char *name = xmalloc(n - 1);
            memcpy(name, p + 1, n - 2);
            name[n - 2] = '\0';
            s->kind = SEG_POS;
            char *colon = strchr(name, ':');
            if (colon) {
                *colon = '\0';
                if (!strcmp(colon + 1, "u"))
                    s->kind = SEG_UINT;
                else if (!strcmp(colon + 1, "s"))
                    s->kind = SEG_STR;
                else
                    s->kind = -1;
            }
            s->text = name;
            if (s->kind < 0 || !name[0] || strpbrk(name, "{}") || ++nparam > MAX_PARAMS)
                return vaed_err_set(err, VAED_EINVAL, "routes", "pattern \"%s\": bad parameter",
                                    r->pattern);
        } else {
            s->kind = SEG_LIT;
            s->text = xmalloc(n + 1);
            memcpy(s->text, p, n);
            s->text[n] = '\0';
            if (strpbrk(s->text, "{}"))
                return vaed_err_set(err, VAED_EINVAL, "routes", "pattern \"%s\": stray brace",
                                    r->pattern);
        }
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

/* Does route r match the request's segments? On success fills names/vals with
 * the parameters and returns their count + 1; returns 0 on no match. */
static size_t route_match(const route *r, const api_req *req, const char **names,
                          const char **vals)
{
    if (r->nseg != req->nseg)
        return 0;
    size_t np = 0;
    for (size_t i = 0; i < r->nseg; i++) {
        const seg *s = &r->segs[i];
        const char *v = req->segp[i];
        switch (s->kind) {
        case SEG_LIT:
            if (strcmp(s->text, v))
                return 0;
            continue;
        case SEG_POS:
            if (!is_uint(v, 0))
                return 0;
            break;
        case SEG_UINT:
            if (!is_uint(v, 1))
                return 0;
            break;
        default:
            if (!v[0])
                return 0;
            break;
        }
        names[np] = s->text;
        vals[np] = v;
        np++;
    }
    return np + 1;
}

static int method_is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

/* Route req: sets req->route (or -1), and *allow to the methods that the path
 * accepts (comma-separated, "" when the path matches no pattern). */
static void route_request(api_req *req, char *allow, size_t allow_size)
{
    api_server *srv = req->srv;
    allow[0] = '\0';
    req->route = -1;
    int ok = 1;
    if (req->path[0] != '/')
        ok = 0;
    if (ok) {
        req->segbuf = xstrdup(req->path + 1);
        char *p = req->segbuf;
        for (;;) {
            if (req->nseg == MAX_SEGS) {
                ok = 0;
                break;
            }
            req->segp[req->nseg++] = p;
            char *e = strchr(p, '/');
            if (!e)
                break;
            *e = '\0';
            p = e + 1;
        }
    }
    if (!ok)
        return;
    int found = -1;
    size_t nfound = 0;
    const char *methods[32];
    for (size_t i = 0; i < srv->nroutes; i++) {
        const route *r = &srv->routes[i];
        const char *names[MAX_PARAMS], *vals[MAX_PARAMS];
        size_t m = route_match(r, req, names, vals);
        if (!m)
            continue;
        int dup = 0;
        for (size_t k = 0; k < nfound; k++)
            dup |= !strcmp(methods[k], r->method);
        if (!dup && nfound < 32)
            methods[nfound++] = r->method;
        int want = method_is(req->method, r->method) ||
                   (method_is(req->method, "HEAD") && method_is(r->method, "GET"));
        if (found < 0 && want) {
            found = (int)i;
            req->nparams = m - 1;
            memcpy(req->pname, names, sizeof names);
            memcpy(req->pval, vals, sizeof vals);
        }
    }
    req->route = found;
    size_t o = 0;
    int has_get = 0;
    for (size_t k = 0; k < nfound; k++)
        has_get |= !strcmp(methods[k], "GET");
    for (size_t k = 0; k < nfound + (size_t)has_get + (nfound > 0); k++) {
        const char *m = k < nfound ? methods[k] : (has_get && k == nfound) ? "HEAD" : "OPTIONS";
        int w = snprintf(allow + o, allow_size - o, "%s%s", o ? ", " : "", m);
        if (w < 0 || (size_t)w >= allow_size - o)
            break;
        o += (size_t)w;
    }
}

/* ---------------------------------------------------------------- replies */

static int set_response(api_req *req, unsigned status, struct MHD_Response *r,
                        const char *content_type)
{
    if (!r) {
        req->answered = 1;
        req->status = 500;
        return VAED_ENOMEM;
    }
    if (content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    req->resp = r;
    req->status = status;
    req->answered = 1;
    return 0;
}

int api_set_header(api_req *req, const char *name, const char *value)
{
    hdr *h = xmalloc(sizeof *h);
    h->name = xstrdup(name);
    h->value = xstrdup(value);
    h->next = req->extra;
    req->extra = h;
    return 0;
}

int api_reply_text(api_req *req, unsigned status, const char *content_type, const char *text,
                   size_t len)
{
    if (req->answered)
        return VAED_ESTATE;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(len ? text : ""), MHD_RESPMEM_MUST_COPY);
    return set_response(req, status, r, content_type);
}

int api_reply_json(api_req *req, unsigned status, json_t *body)
{
    if (req->answered) {
        json_decref(body);
        return VAED_ESTATE;
    }
    char *s = NULL;
    size_t n = 0;
    if (body) {
        s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(body);
        if (!s)
            return set_response(req, 500, NULL, NULL);
        /* a trailing newline keeps curl output readable; JSON parsers ignore it */
        n = strlen(s);
        char *t = realloc(s, n + 2);
        if (!t) {
            free(s);
            return set_response(req, 500, NULL, NULL);
        }
        s = t;
        s[n++] = '\n';
        s[n] = '\0';
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(n, s ? s : (void *)"", s ? MHD_RESPMEM_MUST_FREE
                                                                 : MHD_RESPMEM_PERSISTENT);
    if (!r)
        free(s);
    return set_response(req, status, r, "application/json");
}

static json_t *error_body(const char *code, const char *field, const char *msg)
{
    char *c = utf8_clean(code), *m = utf8_clean(msg);
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(c));
    json_object_set_new(e, "message", json_string(m));
    if (field && field[0]) {
        char *f = utf8_clean(field);
        json_object_set_new(e, "field", json_string(f));
        free(f);
    }
    free(c);
    free(m);
    json_t *root = json_object();
    json_object_set_new(root, "error", e);
    return root;
}

int api_reply_error(api_req *req, unsigned status, const char *code, const char *field,
                    const char *fmt, ...)
{
    if (req->answered)
        return VAED_ESTATE;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return api_reply_json(req, status, error_body(code, field, msg));
}

int api_reply_from_err(api_req *req, unsigned status, const char *code, const vaed_err *e)
{
    if (req->answered)
        return VAED_ESTATE;
    return api_reply_json(req, status,
                          error_body(code, e ? e->field : NULL, e && e->msg[0] ? e->msg : code));
}

/* ---------------------------------------------------------------- request */

const char *api_req_method(const api_req *req) { return req->method; }
const char *api_req_path(const api_req *req) { return req->path; }
void *api_req_user(const api_req *req) { return req->srv->cfg.user; }
api_server *api_req_server(const api_req *req) { return req->srv; }

const char *api_req_pattern(const api_req *req)
{
    return req->route >= 0 ? req->srv->routes[req->route].pattern : NULL;
}

const char *api_param(const api_req *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (!strcmp(req->pname[i], name))
            return req->pval[i];
    return NULL;
}

int64_t api_param_int(const api_req *req, const char *name)
{
    const char *v = api_param(req, name);
    if (!v || !is_uint(v, 1))
        return -1;
    return (int64_t)strtoll(v, NULL, 10);
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    api_req *req = cls;
    if (req->nq == req->qcap) {
        req->qcap = req->qcap ? 2 * req->qcap : 8;
        req->qk = realloc(req->qk, req->qcap * sizeof *req->qk);
        req->qv = realloc(req->qv, req->qcap * sizeof *req->qv);
        if (!req->qk || !req->qv) /* small, bounded by MHD's connection memory */
            abort();
    }
    req->qk[req->nq] = key;
    req->qv[req->nq] = value ? value : "";
    req->nq++;
    return MHD_YES;
}

static void load_query(api_req *req)
{
    if (!req->q_loaded) {
        req->q_loaded = 1;
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, collect_query, req);
    }
}

const char *api_query_get(const api_req *req, const char *key)
{
    load_query((api_req *)req);
    for (size_t i = 0; i < req->nq; i++)
        if (!strcmp(req->qk[i], key))
            return req->qv[i];
    return NULL;
}

size_t api_query_count(const api_req *req)
{
    load_query((api_req *)req);
    return req->nq;
}

void api_query_at(const api_req *req, size_t i, const char **key, const char **value)
{
    load_query((api_req *)req);
    *key = i < req->nq ? req->qk[i] : NULL;
    *value = i < req->nq ? req->qv[i] : NULL;
}

int api_query_only(api_req *req, const char *const *allowed)
{
    load_query(req);
    for (size_t i = 0; i < req->nq; i++) {
        int known = 0;
        for (size_t k = 0; allowed && allowed[k]; k++)
            known |= !strcmp(allowed[k], req->qk[i]);
        if (!known) {
            api_reply_error(req, 400, "unknown_param", req->qk[i],
                            "%s: unknown query parameter", req->qk[i]);
            return VAED_EINVAL;
        }
    }
    return 0;
}

const char *api_header(const api_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *api_req_body_file(const api_req *req, uint64_t *size)
{
    if (size)
        *size = req->spool_len;
    return req->spool_path;
}

void api_req_body_file_keep(api_req *req)
{
    free(req->spool_path);
    req->spool_path = NULL;
}

/* Close and delete the spooled body, if any. */
static void spool_drop(api_req *req)
{
    if (req->spool_fd >= 0)
        close(req->spool_fd);
    req->spool_fd = -1;
    if (req->spool_path)
        unlink(req->spool_path);
    free(req->spool_path);
    req->spool_path = NULL;
    req->spool_len = 0;
}

const char *api_req_body(const api_req *req, size_t *len)
{
    if (len)
        *len = req->len;
    return req->body ? req->body : "";
}

int api_body_json(api_req *req, json_t **out)
{
    *out = NULL;
    if (req->len == 0) {
        api_reply_error(req, 400, "bad_json", NULL, "request body is empty; a JSON document was expected");
        return VAED_EINVAL;
    }
    json_error_t je;
    json_t *j = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        api_reply_error(req, 400, "bad_json", NULL, "invalid JSON at line %d, column %d: %s",
                        je.line, je.column, je.text);
        return VAED_EINVAL;
    }
    *out = j;
    return 0;
}

/* ---------------------------------------------------------------- streams */

static const char keepalive[] = ": keepalive\n\n";

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    api_stream *st = cls;
    api_server *srv = st->srv;
    pthread_mutex_lock(&srv->smu);
    st->state = ST_RUNNING;
    st->pending = 0;
    int tick = st->tick;
    st->tick = 0;
    int stopping = srv->stopping;
    pthread_mutex_unlock(&srv->smu);
    if (stopping)
        return MHD_CONTENT_READER_END_OF_STREAM;
    for (int tries = 0;; tries++) {
        ssize_t n = st->reader(st->cls, buf, max);
        if (n > 0)
            return n > (ssize_t)max ? MHD_CONTENT_READER_END_WITH_ERROR : n;
        if (n == API_STREAM_END)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (n < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        pthread_mutex_lock(&srv->smu);
        if (srv->stopping) {
            pthread_mutex_unlock(&srv->smu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (st->pending && tries < 3) { /* a wake came in while the reader ran */
            st->pending = 0;
            pthread_mutex_unlock(&srv->smu);
            continue;
        }
        if (tick && st->sse && max >= sizeof keepalive - 1) {
            pthread_mutex_unlock(&srv->smu);
            memcpy(buf, keepalive, sizeof keepalive - 1);
            return (ssize_t)(sizeof keepalive - 1);
        }
        MHD_suspend_connection(st->conn);
        if (st->pending) { /* a producer that wakes constantly: go round once more */
            st->pending = 0;
            st->state = ST_RESUMING;
            MHD_resume_connection(st->conn);
        } else {
            st->state = ST_SUSPENDED;
        }
        pthread_mutex_unlock(&srv->smu);
        return 0;
    }
}

static void stream_free(void *cls)
{
    api_stream *st = cls;
    api_server *srv = st->srv;
    pthread_mutex_lock(&srv->smu);
    if (st->prev)
        st->prev->next = st->next;
    else
        srv->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    srv->nstreams--;
    pthread_mutex_unlock(&srv->smu);
    if (st->free_cb)
        st->free_cb(st->cls);
    free(st);
}

api_stream *api_reply_stream(api_req *req, const char *content_type, api_stream_read reader,
                             api_stream_free free_cb, void *cls)
{
    if (req->answered) {
        if (free_cb)
            free_cb(cls);
        return NULL;
    }
    api_server *srv = req->srv;
    api_stream *st = xcalloc(1, sizeof *st);
    st->srv = srv;
    st->conn = req->conn;
    st->reader = reader;
    st->free_cb = free_cb;
    st->cls = cls;
    st->sse = content_type && !strncasecmp(content_type, "text/event-stream", 17);
    st->state = ST_RUNNING;
    pthread_mutex_lock(&srv->smu);
    st->next = srv->streams;
    if (st->next)
        st->next->prev = st;
    srv->streams = st;
    srv->nstreams++;
    pthread_mutex_unlock(&srv->smu);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                               stream_reader, st, stream_free);
    if (!r) {
        stream_free(st);
        set_response(req, 500, NULL, NULL);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (st->sse) /* tell nginx-style proxies not to buffer the events */
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
    set_response(req, 200, r, content_type);
    req->is_stream = 1;
    return st;
}

void api_stream_wake(api_stream *st)
{
    api_server *srv = st->srv;
    pthread_mutex_lock(&srv->smu);
    if (st->state == ST_SUSPENDED) {
        st->state = ST_RESUMING;
        MHD_resume_connection(st->conn);
    } else {
        st->pending = 1;
    }
    pthread_mutex_unlock(&srv->smu);
}

/* Every keepalive period, resume the suspended streams with tick set: an idle SSE
 * stream then writes a keepalive comment, and a vanished client is noticed. */
static void *ticker_main(void *arg)
{
    api_server *srv = arg;
    pthread_mutex_lock(&srv->smu);
    while (!srv->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += srv->cfg.keepalive_ms / 1000;
        ts.tv_nsec += (long)(srv->cfg.keepalive_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (!srv->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&srv->tcond, &srv->smu, &ts);
        if (srv->stopping)
            break;
        for (api_stream *st = srv->streams; st; st = st->next) {
            if (st->state == ST_SUSPENDED) {
                st->tick = 1;
                st->state = ST_RESUMING;
                MHD_resume_connection(st->conn);
            }
        }
    }
    pthread_mutex_unlock(&srv->smu);
    return NULL;
}

/* ---------------------------------------------------------------- dispatch */

static const char *cors_match(const api_server *srv, const char *origin)
{
    if (!origin || !srv->cfg.cors_origins)
        return NULL;
    for (size_t i = 0; srv->cfg.cors_origins[i]; i++)
        if (!strcmp(srv->cfg.cors_origins[i], "*") || !strcmp(srv->cfg.cors_origins[i], origin))
            return origin;
    return NULL;
}

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
    const char *origin = cors_match(req->srv, api_header(req, "Origin"));
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

static int needs_token(const api_server *srv, const char *m)
{
    if (srv->toklen == 0 || method_is(m, "OPTIONS"))
        return 0;
    if (method_is(m, "GET") || method_is(m, "HEAD"))
        return srv->cfg.reads_need_token;
    return 1; /* POST, PUT, PATCH, DELETE and anything unknown */
}

static int authorized(const api_req *req)
{
    const char *h = api_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7))
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    return token_equal(h, n, req->srv->cfg.token, req->srv->toklen);
}

/* First call: answer what needs no body. Returns 1 if answered. */
/* Counts the Content-Length headers of a request (MHD_KeyValueIterator). */
static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind,
                                            const char *key, const char *value)
{
    (void)kind;
    (void)value;
    if (key && !strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        ++*(int *)cls;
    return MHD_YES;
}

static int answer_early(api_req *req)
{
    api_server *srv = req->srv;
    char allow[256];
    /* Several Content-Length headers are the classic request-smuggling split (a proxy in
     * front might take another one than we do). Strict mode refuses differing ones;
     * this refuses repeated ones of any value, whatever the library's mode. */
    int ncl = 0;
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, count_content_length, &ncl);
    if (ncl > 1) {
        api_reply_error(req, 400, "bad_request", NULL,
                        "more than one Content-Length header");
        return 1;
    }
    route_request(req, allow, sizeof allow);
    if (method_is(req->method, "OPTIONS")) {
        if (!allow[0]) {
            api_reply_error(req, 404, "not_found", NULL, "no such resource: %s", req->path);
            return 1;
        }
        api_reply_text(req, 204, NULL, "", 0);
        api_set_header(req, MHD_HTTP_HEADER_ALLOW, allow);
        if (cors_match(srv, api_header(req, "Origin")) &&
            api_header(req, "Access-Control-Request-Method")) {
            api_set_header(req, "Access-Control-Allow-Methods", allow);
            api_set_header(req, "Access-Control-Allow-Headers", "Authorization, Content-Type");
            api_set_header(req, "Access-Control-Max-Age", "600");
        }
        return 1;
    }
    if (needs_token(srv, req->method) && !authorized(req)) {
        api_reply_error(req, 401, "unauthorized", NULL,
                        "a valid \"Authorization: Bearer <token>\" header is required");
        api_set_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"vaed\"");
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
        spool_drop(req);
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
        snprintf(req->spool_path, plen, "%s/.spool-XXXXXX", srv->cfg.spool_dir);
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
            spool_drop(req);
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
        req->spool_fd = -1;
        *con_cls = req;
        if (answer_early(req)) {
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
    spool_drop(req);
    free(req->qk);
    free(req->qv);
    free(req->body);
    free(req->segbuf);
    free(req->path);
    free(req);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
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
        route_free(&srv->routes[i]);
    free(srv->routes);
    free(srv->stats);
    pthread_mutex_destroy(&srv->smu);
    pthread_mutex_destroy(&srv->stmu);
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
    srv->toklen = cfg->token ? strlen(cfg->token) : 0;
    pthread_mutex_init(&srv->smu, NULL);
    pthread_mutex_init(&srv->stmu, NULL);
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
        srv->nroutes = i + 1;
        if (!r->method || !r->fn) {
            rc = vaed_err_set(err, VAED_EINVAL, "routes", "route %zu lacks a method or handler", i);
            goto fail;
        }
        if ((rc = route_parse(r, err)))
            goto fail;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(srv->routes[k].method, r->method) &&
                !strcmp(srv->routes[k].pattern, r->pattern)) {
                rc = vaed_err_set(err, VAED_EINVAL, "routes", "duplicate route %s %s", r->method,
                                  r->pattern);
                goto fail;
            }
    }

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
    if (cfg->access_log)
        flags |= MHD_USE_ERROR_LOG;
    srv->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, /* MHD wants it first */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->conn_memory,
        MHD_OPTION_CONNECTION_LIMIT, cfg->conn_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->per_ip_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
        MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
        /* Strict parsing: HTTP/1.1 without Host, whitespace before a header's colon and
         * conflicting Content-Length values are refused with 400, as RFC 9112 asks
         * (tolerating them is how request smuggling through a proxy starts). */
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
        MHD_OPTION_END);
    if (!srv->d) {
        rc = explain_bind_failure(cfg->listen, &ss, sslen, err);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : 0;
    if (pthread_create(&srv->ticker, NULL, ticker_main, srv) != 0) {
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

unsigned api_server_port(const api_server *srv) { return srv->port; }

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
