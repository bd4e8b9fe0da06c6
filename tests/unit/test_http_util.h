/* test_http_util.h — what the test_http programs share: includes, fixtures and helpers. Each
 * program uses a part of them, hence the pragmas. */
#ifndef VAED_TESTS_TEST_HTTP_UTIL_H
#define VAED_TESTS_TEST_HTTP_UTIL_H

#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#include "api/http.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/t.h"

/* ------------------------------------------------------------ the client */

typedef struct resp {
    int status;          /* -1: no parsable response */
    char *head;          /* status line + headers, NUL-terminated */
    char *body;          /* de-chunked body, NUL-terminated */
    size_t blen;
} resp;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int connect_to(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void resp_free(resp *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Header value from a response head, case-insensitive name; NULL if absent.
 * Returns a pointer into a static per-thread buffer. */
static const char *hget(const resp *r, const char *name)
{
    static _Thread_local char val[512];
    if (!r->head)
        return NULL;
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (!strncasecmp(line, name, n) && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t len = e ? (size_t)(e - v) : strlen(v);
            if (len >= sizeof val)
                len = sizeof val - 1;
            memcpy(val, v, len);
            val[len] = '\0';
            return val;
        }
    }
    return NULL;
}

/* Decode a chunked body in place-ish: returns a fresh buffer, or NULL if the chunk
 * framing is incomplete. *done says whether the terminating 0-chunk was seen. */
static char *dechunk(const char *p, size_t n, size_t *out_len, int *done)
{
    char *out = malloc(n + 1);
    size_t o = 0, i = 0;
    *done = 0;
    while (i < n) {
        char *end;
        unsigned long sz = strtoul(p + i, &end, 16);
        const char *crlf = memmem(p + i, n - i, "\r\n", 2);
        if (!crlf || end == p + i)
            break;
        i = (size_t)(crlf - p) + 2;
        if (sz == 0) {
            *done = 1;
            break;
        }
        if (i + sz + 2 > n)
            break;
        memcpy(out + o, p + i, sz);
        o += sz;
        i += sz + 2;
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* Send raw (all of it, unless the server answers and closes first) and read one
 * response, within timeout seconds. Sending and reading interleave so that a
 * server that answers 413 without reading the body is seen answering. */
static void exchange_fd(int fd, const char *raw, size_t rawlen, int head_only, double timeout,
                        resp *r)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    size_t sent = 0, cap = 65536, got = 0;
    char *in = malloc(cap + 1);
    int can_write = 1;
    double t_end = now() + timeout;
    for (;;) {
        in[got] = '\0';
        char *hend = strstr(in, "\r\n\r\n");
        if (hend) {
            size_t hlen = (size_t)(hend - in) + 4;
            int st = 0;
            sscanf(in, "HTTP/1.%*d %d", &st);
            r->status = st;
            free(r->head);
            r->head = strndup(in, hlen);
            const char *cl = hget(r, "Content-Length");
            const char *te = hget(r, "Transfer-Encoding");
            if (head_only || st == 204 || st == 304 || (st >= 100 && st < 200)) {
                if (st >= 100 && st < 200) { /* 100 Continue: drop it and go on */
                    memmove(in, in + hlen, got - hlen);
                    got -= hlen;
                    r->status = -1;
                    continue;
                }
                r->body = strdup("");
                break;
            }
            if (cl && got - hlen >= (size_t)strtoul(cl, NULL, 10)) {
                r->blen = strtoul(cl, NULL, 10);
                r->body = strndup(in + hlen, r->blen);
                break;
            }
            if (te && strstr(te, "chunked")) {
                int done;
                size_t bl;
                char *b = dechunk(in + hlen, got - hlen, &bl, &done);
                if (done) {
                    r->body = b;
                    r->blen = bl;
                    break;
                }
                free(b);
            }
        }
        double left = t_end - now();
        if (left <= 0)
            break;
        struct pollfd pfd = {fd, POLLIN | (can_write && sent < rawlen ? POLLOUT : 0), 0};
        int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (pr <= 0)
            continue;
        if (pfd.revents & POLLOUT) {
            ssize_t w = send(fd, raw + sent, rawlen - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                can_write = 0;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            if (got == cap) {
                cap *= 2;
                in = realloc(in, cap + 1);
            }
            ssize_t n = recv(fd, in + got, cap - got, MSG_DONTWAIT);
            if (n > 0) {
                got += (size_t)n;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                /* EOF: whatever arrived is the response (close-delimited body) */
                in[got] = '\0';
                if (r->head && !r->body) {
                    size_t hlen = strlen(r->head);
                    r->blen = got - hlen;
                    r->body = strndup(in + hlen, r->blen);
                }
                break;
            }
        }
    }
    if (!r->body)
        r->body = strdup("");
    free(in);
}

static void exchange(unsigned port, const char *raw, size_t rawlen, int head_only, resp *r)
{
    int fd = connect_to(port);
    if (fd < 0) {
        memset(r, 0, sizeof *r);
        r->status = -1;
        r->body = strdup("");
        return;
    }
    exchange_fd(fd, raw, rawlen, head_only, 10.0, r);
    close(fd);
}

/* One request with Connection: close. extra: more header lines, each ending \r\n. */
static void req(unsigned port, const char *method, const char *path, const char *extra,
                const char *body, size_t blen, resp *r)
{
    size_t cap = strlen(path) + (extra ? strlen(extra) : 0) + blen + 512;
    char *raw = malloc(cap);
    int n = snprintf(raw, cap, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s", method, path,
                     extra ? extra : "");
    if (body)
        n += snprintf(raw + n, cap - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(raw + n, cap - (size_t)n, "\r\n");
    if (body)
        memcpy(raw + n, body, blen);
    exchange(port, raw, (size_t)n + (body ? blen : 0), !strcmp(method, "HEAD"), r);
    free(raw);
}

/* The response body's error object fields, checked against expectations. */
static void check_error(const resp *r, int status, const char *code, const char *field,
                        const char *what)
{
    CHECK(r->status == status, "%s: status %d, want %d", what, r->status, status);
    const char *ct = hget(r, "Content-Type");
    CHECK(ct && !strcmp(ct, "application/json"), "%s: content-type %s", what, ct ? ct : "(none)");
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    json_t *e = json_object_get(j, "error");
    CHECK(json_is_object(e) && json_object_size(j) == 1, "%s: body is not {\"error\":{...}}: %s",
          what, r->body);
    const char *c = json_string_value(json_object_get(e, "code"));
    CHECK(c && !strcmp(c, code), "%s: code %s, want %s", what, c ? c : "(none)", code);
    CHECK(json_is_string(json_object_get(e, "message")) &&
              json_string_length(json_object_get(e, "message")) > 0,
          "%s: message missing: %s", what, r->body);
    const char *f = json_string_value(json_object_get(e, "field"));
    if (field)
        CHECK(f && !strcmp(f, field), "%s: field %s, want %s", what, f ? f : "(none)", field);
    else
        CHECK(json_object_get(e, "field") == NULL, "%s: unexpected field in %s", what, r->body);
    size_t want_keys = 2 + (field != NULL);
    CHECK(json_object_size(e) == want_keys, "%s: error has %zu keys, want %zu: %s", what,
          json_object_size(e), want_keys, r->body);
    json_decref(j);
}

/* ------------------------------------------------------------ the routes */

static const char *const thing_params[] = {"since", "name", "flag", "x", NULL};

static void get_thing(api_req *rq)
{
    if (api_query_only(rq, thing_params))
        return;
    json_t *q = json_object();
    for (size_t i = 0; i < api_query_count(rq); i++) {
        const char *k, *v;
        api_query_at(rq, i, &k, &v);
        json_object_set_new(q, k, json_string(v));
    }
    const char *since = api_query_get(rq, "since");
    api_reply_json(rq, 200,
                   json_pack("{sI s s s s s o s s* s s}", "id", (json_int_t)api_param_int(rq, "id"),
                             "id_text", api_param(rq, "id"), "method", api_req_method(rq),
                             "query", q, "since", since, "pattern", api_req_pattern(rq)));
}

static void delete_thing(api_req *rq)
{
    api_reply_json(rq, 200, json_pack("{sI}", "deleted", (json_int_t)api_param_int(rq, "id")));
}

static void post_thing(api_req *rq)
{
    json_t *j;
    if (api_body_json(rq, &j))
        return;
    size_t len;
    api_req_body(rq, &len);
    api_set_header(rq, "Location", "/v1/things/1");
    api_reply_json(rq, 201, json_pack("{so sI}", "got", j, "len", (json_int_t)len));
}

static void get_step(api_req *rq)
{
    api_reply_json(rq, 200, json_pack("{sI ss}", "step", (json_int_t)api_param_int(rq, "step"),
                                      "name", api_param(rq, "name")));
}

static void no_reply(api_req *rq) { (void)rq; }

static void fail_err(api_req *rq)
{
    vaed_err e;
    vaed_err_set(&e, VAED_EINVAL, "model.latent", "must be a positive integer");
    api_reply_from_err(rq, 422, "invalid_spec", &e);
}

static void get_text(api_req *rq)
{
    api_reply_text(rq, 200, "text/plain; charset=utf-8", "hello\n", 6);
}

/* The streaming route: a producer thread publishes events 0..NEV-1 every 30 ms
 * and wakes the registered streams; each reader sends the events it has not sent
 * yet and ends after the last. Readers never wait: they return 0 when idle. */
#define NEV 5
static pthread_mutex_t pmu = PTHREAD_MUTEX_INITIALIZER;
static int produced;
static api_stream *subs[64];
static int nfreed;

typedef struct sub {
    int sent;
    int slot;
    int idle; /* the idle route: never any data */
} sub;

static ssize_t sub_read(void *cls, char *buf, size_t max)
{
    sub *s = cls;
    if (s->idle)
        return 0;
    pthread_mutex_lock(&pmu);
    int avail = produced;
    pthread_mutex_unlock(&pmu);
    if (s->sent >= NEV)
        return API_STREAM_END;
    if (s->sent >= avail)
        return 0;
    int n = snprintf(buf, max, "data: %d\n\n", s->sent);
    s->sent++;
    return n;
}

static void sub_free(void *cls)
{
    sub *s = cls;
    pthread_mutex_lock(&pmu);
    if (s->slot >= 0)
        subs[s->slot] = NULL;
    nfreed++;
    pthread_mutex_unlock(&pmu);
    free(s);
}

static void stream_route(api_req *rq, int idle)
{
    sub *s = calloc(1, sizeof *s);
    s->idle = idle;
    s->slot = -1;
    /* Register under pmu before the reply so the producer cannot miss us; the
     * handle is stored after api_reply_stream returns, still under pmu, which
     * sub_free also takes, so the producer never sees a freed stream. */
    pthread_mutex_lock(&pmu);
    api_stream *st = api_reply_stream(rq, "text/event-stream", sub_read, sub_free, s);
    for (int i = 0; st && i < 64; i++)
        if (!subs[i]) {
            subs[i] = st;
            s->slot = i;
            break;
        }
    pthread_mutex_unlock(&pmu);
}

static void get_stream(api_req *rq) { stream_route(rq, 0); }
static void get_idle(api_req *rq) { stream_route(rq, 1); }

static _Atomic int producer_stop;

static void *producer(void *arg)
{
    (void)arg;
    while (!producer_stop) {
        msleep(30);
        pthread_mutex_lock(&pmu);
        produced++;
        for (int i = 0; i < 64; i++)
            if (subs[i])
                api_stream_wake(subs[i]);
        pthread_mutex_unlock(&pmu);
    }
    return NULL;
}

static const api_route routes[] = {
    {"GET", "/v1/things/{id}", get_thing, API_SCOPE_READ},
    {"DELETE", "/v1/things/{id}", delete_thing, API_SCOPE_CONTROL},
    {"POST", "/v1/things", post_thing, API_SCOPE_ADMIN},
    {"GET", "/v1/steps/{step:u}/{name:s}", get_step, API_SCOPE_READ},
    {"GET", "/v1/noreply", no_reply, API_SCOPE_READ},
    {"GET", "/v1/err", fail_err, API_SCOPE_READ},
    {"GET", "/v1/text", get_text, API_SCOPE_READ},
    {"GET", "/v1/stream", get_stream, API_SCOPE_READ},
    {"GET", "/v1/idle", get_idle, API_SCOPE_READ},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static api_server *start(api_config *cfg)
{
    vaed_err err;
    api_server *srv = NULL;
    int rc = api_server_start(cfg, routes, NROUTES, &srv, &err);
    CHECK(rc == 0 && srv, "api_server_start: %d %s", rc, err.msg);
    return srv;
}

static void base_config(api_config *cfg)
{
    api_config_default(cfg);
    cfg->listen = "127.0.0.1:0";
    cfg->access_log = getenv("VAED_TEST_LOG") != NULL;
    cfg->keepalive_ms = 200;
}

/* ------------------------------------------------------------ tests */

static int n_thing_200; /* GET /v1/things/{id} answered 200, for the stats oracle */






typedef struct worker_arg {
    unsigned port;
    int id;
    int ok;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < 20; i++) {
        char path[64];
        long want = (long)a->id * 1000 + i + 1;
        snprintf(path, sizeof path, "/v1/things/%ld", want);
        resp r;
        req(a->port, "GET", path, NULL, NULL, 0, &r);
        json_t *j = json_loads(r.body, 0, NULL);
        if (r.status == 200 && json_integer_value(json_object_get(j, "id")) == want)
            a->ok++;
        json_decref(j);
        resp_free(&r);
    }
    return NULL;
}

#endif
