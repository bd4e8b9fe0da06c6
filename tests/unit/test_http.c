/* test_http.c — the HTTP layer against a real server on 127.0.0.1 (port 0),
 * driven by a small raw-socket HTTP/1.1 client written here, so the bytes on the
 * wire are what is checked: statuses, headers, JSON error bodies, limits, auth,
 * CORS, query decoding, concurrency, slow clients, streams, stats, shutdown. */
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
    {"GET", "/v1/things/{id}", get_thing},
    {"DELETE", "/v1/things/{id}", delete_thing},
    {"POST", "/v1/things", post_thing},
    {"GET", "/v1/steps/{step:u}/{name:s}", get_step},
    {"GET", "/v1/noreply", no_reply},
    {"GET", "/v1/err", fail_err},
    {"GET", "/v1/text", get_text},
    {"GET", "/v1/stream", get_stream},
    {"GET", "/v1/idle", get_idle},
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

static void test_basics(unsigned port)
{
    resp r;
    req(port, "GET", "/v1/things/42", NULL, NULL, 0, &r);
    json_t *j = json_loads(r.body, 0, NULL);
    CHECK(r.status == 200, "GET thing: status %d body %s", r.status, r.body);
    CHECK(json_integer_value(json_object_get(j, "id")) == 42, "path param: %s", r.body);
    CHECK(!strcmp(json_string_value(json_object_get(j, "pattern")), "/v1/things/{id}"),
          "pattern: %s", r.body);
    const char *ct = hget(&r, "Content-Type");
    CHECK(ct && !strcmp(ct, "application/json"), "content-type %s", ct ? ct : "(none)");
    n_thing_200++;
    json_decref(j);
    resp_free(&r);

    req(port, "HEAD", "/v1/things/42", NULL, NULL, 0, &r);
    CHECK(r.status == 200 && r.blen == 0, "HEAD: status %d blen %zu", r.status, r.blen);
    n_thing_200++;
    resp_free(&r);

    const char *bad_paths[] = {"/nope", "/v1/things/0", "/v1/things/abc", "/v1/things/-1",
                               "/v1/things/007", "/v1/things/99999999999999999999",
                               "/v1/things/4/", "/v1/things", "/", "/v1/steps/x/a"};
    for (size_t i = 0; i < sizeof bad_paths / sizeof *bad_paths; i++) {
        req(port, "GET", bad_paths[i], NULL, NULL, 0, &r);
        if (!strcmp(bad_paths[i], "/v1/things")) /* exists for POST only */
            check_error(&r, 405, "method_not_allowed", NULL, bad_paths[i]);
        else
            check_error(&r, 404, "not_found", NULL, bad_paths[i]);
        resp_free(&r);
    }

    req(port, "GET", "/v1/steps/0/abc", NULL, NULL, 0, &r);
    j = json_loads(r.body, 0, NULL);
    CHECK(r.status == 200 && json_integer_value(json_object_get(j, "step")) == 0 &&
              !strcmp(json_string_value(json_object_get(j, "name")), "abc"),
          "{step:u}/{name:s}: %d %s", r.status, r.body);
    json_decref(j);
    resp_free(&r);

    req(port, "PUT", "/v1/things/42", NULL, "{}", 2, &r);
    check_error(&r, 405, "method_not_allowed", NULL, "PUT thing");
    const char *allow = hget(&r, "Allow");
    CHECK(allow && strstr(allow, "GET") && strstr(allow, "DELETE") && strstr(allow, "HEAD") &&
              !strstr(allow, "POST"),
          "Allow: %s", allow ? allow : "(none)");
    resp_free(&r);

    req(port, "OPTIONS", "/v1/things/42", NULL, NULL, 0, &r);
    CHECK(r.status == 204 && hget(&r, "Allow") && !hget(&r, "Access-Control-Allow-Origin"),
          "plain OPTIONS: %d", r.status);
    resp_free(&r);

    req(port, "GET", "/v1/noreply", NULL, NULL, 0, &r);
    check_error(&r, 500, "internal", NULL, "handler without reply");
    resp_free(&r);

    req(port, "GET", "/v1/err", NULL, NULL, 0, &r);
    check_error(&r, 422, "invalid_spec", "model.latent", "api_reply_from_err");
    CHECK(strstr(r.body, "model.latent: must be a positive integer") != NULL, "msg: %s", r.body);
    resp_free(&r);

    req(port, "GET", "/v1/text", NULL, NULL, 0, &r);
    CHECK(r.status == 200 && !strcmp(r.body, "hello\n") && hget(&r, "Content-Type") &&
              !strcmp(hget(&r, "Content-Type"), "text/plain; charset=utf-8"),
          "text reply: %d %s", r.status, r.body);
    resp_free(&r);
}

static void test_query(unsigned port)
{
    resp r;
    req(port, "GET", "/v1/things/7?since=10&name=a%20b+c&flag&x=%C3%A9%26", NULL, NULL, 0, &r);
    json_t *j = json_loads(r.body, 0, NULL);
    json_t *q = json_object_get(j, "query");
    CHECK(r.status == 200, "query: status %d %s", r.status, r.body);
    n_thing_200 += r.status == 200;
    const char *want[][2] = {{"since", "10"}, {"name", "a b c"}, {"flag", ""}, {"x", "\xC3\xA9&"}};
    for (size_t i = 0; i < 4; i++) {
        const char *v = json_string_value(json_object_get(q, want[i][0]));
        CHECK(v && !strcmp(v, want[i][1]), "query %s = '%s', want '%s'", want[i][0],
              v ? v : "(null)", want[i][1]);
    }
    CHECK(json_object_size(q) == 4, "query has %zu keys: %s", json_object_size(q), r.body);
    CHECK(!strcmp(json_string_value(json_object_get(j, "since")), "10"), "api_query_get: %s", r.body);
    json_decref(j);
    resp_free(&r);

    req(port, "GET", "/v1/things/7?since=1&bogus=2", NULL, NULL, 0, &r);
    check_error(&r, 400, "unknown_param", "bogus", "unknown query param");
    resp_free(&r);
    req(port, "GET", "/v1/things/7?%FF=1", NULL, NULL, 0, &r); /* invalid UTF-8 name */
    check_error(&r, 400, "unknown_param", "?", "invalid UTF-8 param name");
    resp_free(&r);
}

static void test_json(unsigned port)
{
    resp r;
    const char *good = "{\"a\": [1, 2.5, \"x\"], \"b\": {\"c\": null}}";
    req(port, "POST", "/v1/things", NULL, good, strlen(good), &r);
    json_t *j = json_loads(r.body, 0, NULL);
    json_t *want = json_loads(good, 0, NULL);
    CHECK(r.status == 201 && json_equal(json_object_get(j, "got"), want),
          "POST echo: %d %s", r.status, r.body);
    CHECK(hget(&r, "Location") && !strcmp(hget(&r, "Location"), "/v1/things/1"), "extra header");
    json_decref(j);
    json_decref(want);
    resp_free(&r);

    /* malformed: the error is on line 3; the column is what jansson says for
     * the same text parsed here directly */
    const char *bad = "{\n  \"a\": 1,\n  \"b\": ]\n}";
    json_error_t je;
    CHECK(json_loads(bad, 0, &je) == NULL, "oracle parse should fail");
    char expect[64];
    snprintf(expect, sizeof expect, "line %d, column %d", je.line, je.column);
    CHECK(je.line == 3, "oracle line %d", je.line);
    req(port, "POST", "/v1/things", NULL, bad, strlen(bad), &r);
    check_error(&r, 400, "bad_json", NULL, "bad JSON");
    CHECK(strstr(r.body, expect) != NULL, "bad JSON message lacks '%s': %s", expect, r.body);
    resp_free(&r);

    const char *inputs[] = {"{\"a\": \"\xff\"}", "", "{\"a\":1,\"a\":2}", "[1,", "{\"a\":1} x",
                            "\xC0\xAF"};
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        req(port, "POST", "/v1/things", NULL, inputs[i], strlen(inputs[i]), &r);
        char what[64];
        snprintf(what, sizeof what, "bad JSON input %zu", i);
        check_error(&r, 400, "bad_json", NULL, what);
        resp_free(&r);
    }
}

static void test_body_limit(unsigned port, size_t cap)
{
    resp r;
    /* exactly at the cap: accepted */
    char *b = malloc(2 * cap + 1);
    memset(b, 'a', 2 * cap);
    memcpy(b, "{\"s\":\"", 6);
    memcpy(b + cap - 2, "\"}", 2);
    req(port, "POST", "/v1/things", NULL, b, cap, &r);
    json_t *j = json_loads(r.body, 0, NULL);
    CHECK(r.status == 201 && json_integer_value(json_object_get(j, "len")) == (json_int_t)cap,
          "body at cap: %d (%.200s)", r.status, r.body);
    json_decref(j);
    resp_free(&r);

    /* one byte over (declared): 413 before the body is read */
    req(port, "POST", "/v1/things", NULL, b, cap + 1, &r);
    check_error(&r, 413, "payload_too_large", NULL, "cap + 1");
    resp_free(&r);

    /* 2 x cap with Content-Length */
    req(port, "POST", "/v1/things", NULL, b, 2 * cap, &r);
    check_error(&r, 413, "payload_too_large", NULL, "2 x cap");
    resp_free(&r);

    /* 2 x cap, chunked: no Content-Length, the cap trips while reading */
    size_t chunk = 65536, nch = 2 * cap / chunk;
    size_t rawcap = 2 * cap + nch * 16 + 512;
    char *raw = malloc(rawcap);
    int n = snprintf(raw, rawcap,
                     "POST /v1/things HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t i = 0; i < nch; i++) {
        n += snprintf(raw + n, rawcap - (size_t)n, "%zx\r\n", chunk);
        memset(raw + n, 'a', chunk);
        n += (int)chunk;
        n += snprintf(raw + n, rawcap - (size_t)n, "\r\n");
    }
    n += snprintf(raw + n, rawcap - (size_t)n, "0\r\n\r\n");
    exchange(port, raw, (size_t)n, 0, &r);
    check_error(&r, 413, "payload_too_large", NULL, "chunked 2 x cap");
    resp_free(&r);
    free(raw);
    free(b);

    /* the server is fine afterwards */
    req(port, "GET", "/v1/things/5", NULL, NULL, 0, &r);
    CHECK(r.status == 200, "after 413: %d", r.status);
    n_thing_200 += r.status == 200;
    resp_free(&r);
}

static void test_oversized_head(unsigned port)
{
    resp r;
    size_t big = 200 * 1024;
    char *h = malloc(big + 64);
    strcpy(h, "X-Big: ");
    memset(h + 7, 'h', big);
    strcpy(h + 7 + big, "\r\n");
    req(port, "GET", "/v1/things/1", h, NULL, 0, &r);
    CHECK(r.status == 431 || r.status == 413 || r.status == 400 || r.status == -1,
          "huge header: status %d", r.status);
    resp_free(&r);
    char *path = malloc(big + 32);
    strcpy(path, "/v1/things/1?x=");
    memset(path + 15, 'u', big);
    path[15 + big] = '\0';
    req(port, "GET", path, NULL, NULL, 0, &r);
    CHECK(r.status == 414 || r.status == 400 || r.status == 431 || r.status == -1,
          "huge URL: status %d", r.status);
    resp_free(&r);
    free(path);
    free(h);
    req(port, "GET", "/v1/things/1", NULL, NULL, 0, &r);
    CHECK(r.status == 200, "after oversized head: %d", r.status);
    n_thing_200 += r.status == 200;
    resp_free(&r);
}

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

static void test_concurrent(unsigned port)
{
    enum { NT = 32 };
    pthread_t th[NT];
    worker_arg a[NT];
    for (int i = 0; i < NT; i++) {
        a[i] = (worker_arg){port, i, 0};
        pthread_create(&th[i], NULL, worker, &a[i]);
    }
    int ok = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        ok += a[i].ok;
    }
    CHECK(ok == NT * 20, "concurrent: %d of %d answered correctly", ok, NT * 20);
    n_thing_200 += ok;
}

static void test_stream(unsigned port)
{
    resp r;
    double t0 = now();
    req(port, "GET", "/v1/stream", NULL, NULL, 0, &r);
    CHECK(r.status == 200, "stream status %d", r.status);
    const char *te = hget(&r, "Transfer-Encoding");
    CHECK(te && strstr(te, "chunked"), "stream is chunked: %s", te ? te : "(none)");
    const char *ct = hget(&r, "Content-Type");
    CHECK(ct && !strcmp(ct, "text/event-stream"), "stream content-type %s", ct ? ct : "(none)");
    /* expected: events 0..NEV-1 in order, possibly with keepalive comments between */
    char want[256] = "";
    for (int i = 0; i < NEV; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "data: %d\n\n", i);
    char got[4096] = "";
    for (const char *p = r.body; *p;) {
        const char *e = strstr(p, "\n\n");
        size_t n = e ? (size_t)(e - p) + 2 : strlen(p);
        if (strncmp(p, ": keepalive", 11))
            strncat(got, p, n < sizeof got - strlen(got) - 1 ? n : sizeof got - strlen(got) - 1);
        p += n;
    }
    CHECK(!strcmp(got, want), "stream events: got '%s' want '%s'", got, want);
    CHECK(now() - t0 < 5.0, "stream took %.2fs", now() - t0);
    resp_free(&r);
}

/* An idle SSE stream gets keepalive comments; when the client leaves, the stream
 * is noticed gone and freed (free callback ran). */
static void test_idle_stream(api_server *srv, unsigned port)
{
    pthread_mutex_lock(&pmu);
    int freed0 = nfreed;
    pthread_mutex_unlock(&pmu);
    int fd = connect_to(port);
    const char *rq = "GET /v1/idle HTTP/1.1\r\nHost: t\r\n\r\n";
    send(fd, rq, strlen(rq), MSG_NOSIGNAL);
    char buf[4096];
    size_t got = 0;
    double t_end = now() + 3.0;
    int ka = 0;
    while (now() < t_end && !ka) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
            ka = strstr(buf, ": keepalive\n\n") != NULL;
        }
    }
    CHECK(ka, "idle stream: no keepalive within 3 s; got '%s'", buf);
    api_stats *st = NULL;
    api_stats_snapshot(srv, &st);
    CHECK(st && st->streams_open == 1, "streams_open %llu, want 1",
          st ? (unsigned long long)st->streams_open : 0ULL);
    api_stats_free(st);
    close(fd);
    int freed = 0;
    for (t_end = now() + 3.0; now() < t_end && !freed; msleep(20)) {
        pthread_mutex_lock(&pmu);
        freed = nfreed > freed0;
        pthread_mutex_unlock(&pmu);
    }
    CHECK(freed, "idle stream not freed within 3 s of the client leaving");
}

static void test_stats(api_server *srv)
{
    /* completion callbacks run just after the reply is sent: give them a moment */
    api_stats *st = NULL;
    uint64_t got = 0, lat = 0, buckets = 0;
    for (double t_end = now() + 2.0; now() < t_end; msleep(20)) {
        api_stats_free(st);
        st = NULL;
        CHECK(api_stats_snapshot(srv, &st) == 0, "snapshot");
        got = lat = buckets = 0;
        for (size_t i = 0; i < st->ncounts; i++)
            if (!strcmp(st->counts[i].pattern, "/v1/things/{id}") &&
                !strcmp(st->counts[i].method, "GET") && st->counts[i].status == 200)
                got = st->counts[i].count;
        if (got == (uint64_t)n_thing_200)
            break;
    }
    CHECK(got == (uint64_t)n_thing_200, "stats GET /v1/things/{id} 200: %llu, want %d",
          (unsigned long long)got, n_thing_200);
    int saw_404 = 0;
    for (size_t i = 0; i < st->ncounts; i++)
        saw_404 |= !strcmp(st->counts[i].pattern, "unmatched") && st->counts[i].status == 404;
    CHECK(saw_404, "no unmatched 404 counted");
    for (size_t i = 0; i < st->nlat; i++) {
        uint64_t s = 0;
        for (int b = 0; b < API_LAT_NBUCKETS; b++)
            s += st->lat[i].bucket[b];
        CHECK(s == st->lat[i].count, "%s %s: bucket sum %llu != count %llu", st->lat[i].method,
              st->lat[i].pattern, (unsigned long long)s, (unsigned long long)st->lat[i].count);
        if (!strcmp(st->lat[i].pattern, "/v1/stream"))
            CHECK(st->lat[i].count == 0, "streams kept out of latency");
        lat += st->lat[i].count;
        buckets += s;
    }
    CHECK(lat > 0 && lat == buckets, "latency totals %llu", (unsigned long long)lat);
    api_stats_free(st);
}

static void test_auth(void)
{
    api_config cfg;
    base_config(&cfg);
    cfg.token = "s3cret-token";
    api_server *srv = start(&cfg);
    if (!srv)
        return;
    unsigned port = api_server_port(srv);
    resp r;
    const char *body = "{\"x\":1}";
    const char *bad[] = {NULL, "Authorization: Bearer wrong\r\n", "Authorization: Bearer s3cret\r\n",
                         "Authorization: Bearer s3cret-tokenX\r\n",
                         "Authorization: Basic s3cret-token\r\n", "Authorization: s3cret-token\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        req(port, "POST", "/v1/things", bad[i], body, strlen(body), &r);
        char what[64];
        snprintf(what, sizeof what, "POST with bad auth %zu", i);
        check_error(&r, 401, "unauthorized", NULL, what);
        const char *w = hget(&r, "WWW-Authenticate");
        CHECK(w && !strncmp(w, "Bearer", 6), "%s: WWW-Authenticate %s", what, w ? w : "(none)");
        CHECK(!strstr(r.body, "s3cret"), "token leaked into the body: %s", r.body);
        resp_free(&r);
    }
    req(port, "POST", "/v1/things", "Authorization: Bearer s3cret-token\r\n", body, strlen(body), &r);
    CHECK(r.status == 201, "POST with token: %d %s", r.status, r.body);
    resp_free(&r);
    req(port, "DELETE", "/v1/things/3", NULL, NULL, 0, &r);
    CHECK(r.status == 401, "DELETE without token: %d", r.status);
    resp_free(&r);
    req(port, "DELETE", "/v1/things/3", "authorization: bearer s3cret-token\r\n", NULL, 0, &r);
    CHECK(r.status == 200, "DELETE with token (lower-case scheme): %d", r.status);
    resp_free(&r);
    req(port, "GET", "/v1/things/3", NULL, NULL, 0, &r);
    CHECK(r.status == 200, "GET without token when reads are free: %d", r.status);
    resp_free(&r);
    api_server_stop(srv);

    cfg.reads_need_token = 1;
    srv = start(&cfg);
    if (!srv)
        return;
    port = api_server_port(srv);
    req(port, "GET", "/v1/things/3", NULL, NULL, 0, &r);
    check_error(&r, 401, "unauthorized", NULL, "GET when reads need the token");
    resp_free(&r);
    req(port, "GET", "/v1/things/3", "Authorization: Bearer s3cret-token\r\n", NULL, 0, &r);
    CHECK(r.status == 200, "GET with token: %d", r.status);
    resp_free(&r);
    api_server_stop(srv);
}

static void test_cors(void)
{
    api_config cfg;
    base_config(&cfg);
    static const char *const origins[] = {"http://ok.example", NULL};
    cfg.cors_origins = origins;
    api_server *srv = start(&cfg);
    if (!srv)
        return;
    unsigned port = api_server_port(srv);
    resp r;
    req(port, "GET", "/v1/things/1", "Origin: http://ok.example\r\n", NULL, 0, &r);
    const char *a = hget(&r, "Access-Control-Allow-Origin");
    CHECK(r.status == 200 && a && !strcmp(a, "http://ok.example"), "allowed origin: %d %s",
          r.status, a ? a : "(none)");
    resp_free(&r);
    req(port, "GET", "/nope", "Origin: http://ok.example\r\n", NULL, 0, &r);
    CHECK(r.status == 404 && hget(&r, "Access-Control-Allow-Origin"), "CORS on error replies");
    resp_free(&r);
    req(port, "GET", "/v1/things/1", "Origin: http://evil.example\r\n", NULL, 0, &r);
    CHECK(r.status == 200 && !hget(&r, "Access-Control-Allow-Origin"), "other origin got CORS");
    resp_free(&r);
    const char *pre = "Origin: http://ok.example\r\nAccess-Control-Request-Method: DELETE\r\n"
                      "Access-Control-Request-Headers: authorization\r\n";
    req(port, "OPTIONS", "/v1/things/1", pre, NULL, 0, &r);
    a = hget(&r, "Access-Control-Allow-Methods");
    CHECK(r.status == 204 && a && strstr(a, "DELETE") && hget(&r, "Access-Control-Allow-Origin") &&
              hget(&r, "Access-Control-Allow-Headers"),
          "preflight: %d methods %s", r.status, a ? a : "(none)");
    resp_free(&r);
    const char *pre_bad = "Origin: http://evil.example\r\nAccess-Control-Request-Method: DELETE\r\n";
    req(port, "OPTIONS", "/v1/things/1", pre_bad, NULL, 0, &r);
    CHECK(!hget(&r, "Access-Control-Allow-Origin") && !hget(&r, "Access-Control-Allow-Methods"),
          "preflight from other origin got CORS headers");
    resp_free(&r);
    api_server_stop(srv);

    /* no origins configured: never any CORS header */
    base_config(&cfg);
    srv = start(&cfg);
    if (!srv)
        return;
    req(api_server_port(srv), "GET", "/v1/things/1", "Origin: http://ok.example\r\n", NULL, 0, &r);
    CHECK(r.status == 200 && !hget(&r, "Access-Control-Allow-Origin"), "CORS off by default");
    resp_free(&r);
    api_server_stop(srv);
}

/* Slowloris: 50 connections that send half a request line and stall must not
 * keep a normal client waiting; the idle timeout then closes them. */
static void test_slowloris(void)
{
    api_config cfg;
    base_config(&cfg);
    cfg.timeout_s = 2;
    cfg.threads = 2;
    api_server *srv = start(&cfg);
    if (!srv)
        return;
    unsigned port = api_server_port(srv);
    enum { NS = 50 };
    int fds[NS];
    for (int i = 0; i < NS; i++) {
        fds[i] = connect_to(port);
        if (fds[i] >= 0)
            send(fds[i], "GET /v1/thi", 11, MSG_NOSIGNAL);
    }
    msleep(100);
    double t0 = now();
    resp r;
    req(port, "GET", "/v1/things/9", NULL, NULL, 0, &r);
    double dt = now() - t0;
    CHECK(r.status == 200 && dt < 1.0, "with %d stalled clients: status %d in %.3fs", NS, r.status, dt);
    resp_free(&r);
    /* after the 2 s idle timeout every stalled connection is closed by the server */
    int closed = 0;
    double t_end = now() + 6.0;
    for (int i = 0; i < NS; i++) {
        struct pollfd pfd = {fds[i], POLLIN, 0};
        int left = (int)((t_end - now()) * 1000);
        if (fds[i] >= 0 && poll(&pfd, 1, left > 0 ? left : 0) > 0) {
            char c;
            closed += recv(fds[i], &c, 1, 0) <= 0;
        }
        if (fds[i] >= 0)
            close(fds[i]);
    }
    CHECK(closed == NS, "idle timeout closed %d of %d stalled connections", closed, NS);
    api_server_stop(srv);
}

static void test_errors(void)
{
    api_config cfg;
    base_config(&cfg);
    api_server *a = start(&cfg);
    if (!a)
        return;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", api_server_port(a));
    cfg.listen = addr;
    api_server *b = NULL;
    vaed_err err;
    int rc = api_server_start(&cfg, routes, NROUTES, &b, &err);
    CHECK(rc == VAED_EIO && b == NULL, "port in use: rc %d", rc);
    CHECK(strstr(err.msg, addr) && strstr(err.msg, "in use"), "port in use message: %s", err.msg);
    CHECK(!strcmp(err.field, "listen"), "field %s", err.field);
    api_server_stop(a);

    const char *bad[] = {"127.0.0.1", "127.0.0.1:99999", ":80", "127.0.0.1:x", "[::1:80", "nohost.invalid:80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cfg.listen = bad[i];
        rc = api_server_start(&cfg, routes, NROUTES, &b, &err);
        CHECK(rc == VAED_EINVAL && !b, "listen '%s': rc %d (%s)", bad[i], rc, err.msg);
    }
    base_config(&cfg);
    api_route badr[] = {{"GET", "v1/x", get_text}, {"GET", "/v1/{id:q}", get_text},
                        {"GET", "/v1/{}", get_text}, {"GET", "/v1/x{y}", get_text}};
    for (size_t i = 0; i < sizeof badr / sizeof *badr; i++) {
        rc = api_server_start(&cfg, &badr[i], 1, &b, &err);
        CHECK(rc == VAED_EINVAL && !b, "pattern '%s': rc %d", badr[i].pattern, rc);
    }
    api_route dup[] = {{"GET", "/a", get_text}, {"GET", "/a", get_text}};
    rc = api_server_start(&cfg, dup, 2, &b, &err);
    CHECK(rc == VAED_EINVAL && !b, "duplicate route: rc %d", rc);
}

/* Stopping with a suspended idle stream open returns promptly and runs its free. */
static void test_stop_with_stream(void)
{
    api_config cfg;
    base_config(&cfg);
    cfg.keepalive_ms = 5000; /* so the stream is surely suspended, not ticking */
    api_server *srv = start(&cfg);
    if (!srv)
        return;
    int fd = connect_to(api_server_port(srv));
    const char *rq = "GET /v1/idle HTTP/1.1\r\nHost: t\r\n\r\n";
    send(fd, rq, strlen(rq), MSG_NOSIGNAL);
    char buf[1024];
    struct pollfd pfd = {fd, POLLIN, 0};
    CHECK(poll(&pfd, 1, 2000) > 0 && recv(fd, buf, sizeof buf, 0) > 0, "idle stream headers");
    msleep(100);
    pthread_mutex_lock(&pmu);
    int freed0 = nfreed;
    pthread_mutex_unlock(&pmu);
    double t0 = now();
    api_server_stop(srv);
    double dt = now() - t0;
    pthread_mutex_lock(&pmu);
    int freed = nfreed - freed0;
    pthread_mutex_unlock(&pmu);
    CHECK(dt < 3.0, "stop with an open stream took %.2fs", dt);
    CHECK(freed == 1, "stream free callbacks at stop: %d", freed);
    close(fd);
}

int main(void)
{
    pthread_t prod;
    pthread_create(&prod, NULL, producer, NULL);

    api_config cfg;
    base_config(&cfg);
    api_server *srv = start(&cfg);
    if (srv) {
        unsigned port = api_server_port(srv);
        CHECK(port > 0, "port %u", port);
        test_basics(port);
        test_query(port);
        test_json(port);
        test_body_limit(port, cfg.max_body);
        test_oversized_head(port);
        test_concurrent(port);
        test_stream(port);
        test_idle_stream(srv, port);
        test_stats(srv);
        api_server_stop(srv);
        /* stopped means closed: nothing listens any more */
        int fd = connect_to(port);
        CHECK(fd < 0, "port %u still accepts after stop", port);
        if (fd >= 0)
            close(fd);
    }
    test_auth();
    test_cors();
    test_slowloris();
    test_errors();
    test_stop_with_stream();
    api_server_stop(NULL);

    producer_stop = 1;
    pthread_join(prod, NULL);
    return t_done("test_http");
}
