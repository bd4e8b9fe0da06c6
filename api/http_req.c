/* http_req.c — the handler's side of the HTTP layer (http.h): the request's path,
 * parameters, query, headers and body; the replies (JSON, text, errors); and the
 * streamed replies (server-sent events) with their wake-ups and keepalives. */
#include "api/http.h"
#include "api/http_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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
    char *c = http_utf8_clean(code), *m = http_utf8_clean(msg);
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(c));
    json_object_set_new(e, "message", json_string(m));
    if (field && field[0]) {
        char *f = http_utf8_clean(field);
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

int64_t api_query_num(api_req *req, const char *key, int64_t lo, int64_t hi, int64_t def)
{
    const char *v = api_query_get(req, key);
    if (!v)
        return def;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) {
        api_reply_error(req, 400, "bad_param", key, "%s: must be an integer from %lld to %lld",
                        key, (long long)lo, (long long)hi);
        return API_QUERY_BAD;
    }
    return x;
}

int64_t api_param_int(const api_req *req, const char *name)
{
    const char *v = api_param(req, name);
    if (!v || !http_is_uint(v, 1))
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
void http_spool_drop(api_req *req)
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
 * stream then writes a keepalive comment, and a vanished client is noticed; and shut
 * the connections whose request head is past its deadline. */
void *http_ticker_main(void *arg)
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
        http_guard_sweep(srv); /* request heads past their deadline (takes srv->cmu) */
    }
    pthread_mutex_unlock(&srv->smu);
    return NULL;
}

