/* fuzz_http.c — libFuzzer target for the HTTP request path (api/http.c on
 * libmicrohttpd).
 *
 * One server is started once on 127.0.0.1, port 0, with a few echo routes like the
 * unit test's (path parameters, a JSON body, query parameters, an error from a
 * vaed_err, a handler that forgets to reply) and the daemon's default limits, scaled
 * down so the fuzzer reaches them: 4 KiB of connection memory, 2 KiB of body. Each
 * input is written as raw bytes on a fresh connection, the write side is then shut,
 * and the answer is read until the server closes or falls silent after answering.
 * Then, on a new connection, a plain GET must get a 200 within 5 s, with the first
 * connection abandoned or not: whatever a client sends, the daemon keeps serving. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static api_server *S;
static unsigned P;

static void h_thing(api_req *rq)
{
    api_reply_json(rq, 200, json_pack("{sI ss}", "id", (json_int_t)api_param_int(rq, "id"),
                                      "path", api_req_path(rq)));
}

static void h_post(api_req *rq)
{
    json_t *j;
    if (api_body_json(rq, &j))
        return;
    api_reply_json(rq, 201, json_pack("{so}", "got", j));
}

static void h_query(api_req *rq)
{
    static const char *const allowed[] = {"a", "b", "since", NULL};
    if (api_query_only(rq, allowed))
        return;
    json_t *o = json_object();
    for (size_t i = 0; i < api_query_count(rq); i++) {
        const char *k, *v;
        api_query_at(rq, i, &k, &v);
        json_object_set_new(o, k, json_stringn(v, strlen(v))); /* NULL on bad UTF-8: skipped */
    }
    api_reply_json(rq, 200, o);
}

static void h_step(api_req *rq)
{
    const char *ua = api_header(rq, "User-Agent");
    api_reply_json(rq, 200, json_pack("{sI ss* ss*}", "step", (json_int_t)api_param_int(rq, "step"),
                                      "name", api_param(rq, "name"), "ua", ua));
}

static void h_err(api_req *rq)
{
    vaed_err e;
    size_t n;
    const char *body = api_req_body(rq, &n);
    vaed_err_set(&e, VAED_EINVAL, body, "%.*s: echoed", (int)(n > 100 ? 100 : n), body);
    api_reply_from_err(rq, 422, "invalid", &e);
}

static void h_noreply(api_req *rq) { (void)rq; }

static void h_ok(api_req *rq) { api_reply_text(rq, 200, "text/plain", "ok\n", 3); }

static const api_route routes[] = {
    {"GET", "/v1/things/{id}", h_thing, API_SCOPE_READ},   {"DELETE", "/v1/things/{id}", h_thing, API_SCOPE_ADMIN},
    {"POST", "/v1/things", h_post, API_SCOPE_ADMIN},        {"PUT", "/v1/things/{id}", h_post, API_SCOPE_ADMIN},
    {"GET", "/v1/q", h_query, API_SCOPE_READ},             {"GET", "/v1/steps/{step:u}/{name:s}", h_step, API_SCOPE_READ},
    {"POST", "/v1/err", h_err, API_SCOPE_ADMIN},            {"GET", "/v1/noreply", h_noreply, API_SCOPE_READ},
    {"GET", "/healthz", h_ok, API_SCOPE_READ},
};

static void die(const char *what)
{
    fprintf(stderr, "fuzz_http: %s (errno %s)\n", what, strerror(errno));
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    api_config cfg;
    api_config_default(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.threads = 2;
    cfg.timeout_s = 5;
    cfg.conn_memory = 4096;
    cfg.max_body = 2048;
    cfg.access_log = 0;
    static const char *const origins[] = {"http://ok.example", NULL};
    cfg.cors_origins = origins;
    vaed_err e;
    if (api_server_start(&cfg, routes, sizeof routes / sizeof routes[0], &S, &e)) {
        fprintf(stderr, "fuzz_http: %s\n", e.msg);
        abort();
    }
    P = api_server_port(S);
    return 0;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)P);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc != 0 && errno == EINTR) {
        /* libFuzzer's timer signal cut the connect short: it goes on by itself; wait
         * for it and read its outcome (a CI run died here once) */
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t len = sizeof soerr;
        while ((rc = poll(&pf, 1, 5000)) < 0 && errno == EINTR)
            ;
        rc = rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0 ? 0 : -1;
    }
    if (rc != 0)
        die("cannot connect to the server");
    /* Close with a reset: thousands of connections a minute would otherwise fill
     * the port range with TIME_WAIT. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    return fd;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Send data, shut the write side, read until the server closes or has answered and
 * then been silent for 20 ms; the first bytes read go to head (NUL-terminated).
 * Returns 0, or -1 if the server neither closed nor answered anything within limit
 * seconds. A reset from the server counts as closed. */
static int exchange(const uint8_t *data, size_t size, char *head, size_t hmax, double limit)
{
    int fd = dial();
    size_t off = 0, got = 0;
    double end = now() + limit;
    head[0] = '\0';
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server closed early (e.g. after a 4xx): fine */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int ms = (int)((end - now()) * 1000);
        /* Once something came back, 20 ms of silence ends the exchange: after a
         * complete request the connection stays open (keep-alive) even though our
         * side is shut, until the idle timeout. */
        if (got > 0 && ms > 20)
            ms = 20;
        if (ms <= 0 || poll(&p, 1, ms) <= 0) {
            close(fd);
            return got > 0 ? 0 : -1;
        }
        char buf[4096];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            break;
        if (got + 1 < hmax) {
            size_t k = (size_t)r < hmax - 1 - got ? (size_t)r : hmax - 1 - got;
            memcpy(head + got, buf, k);
            got += k;
            head[got] = '\0';
        }
    }
    close(fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char head[256];
    /* No answer within 100 ms is allowed: libmicrohttpd 0.9.75 keeps a connection
     * whose request line holds a NUL byte open after the client shuts its side, until
     * the idle timeout (a held slot, like a slow client). What must hold is that such
     * a connection never keeps others from being served, checked next. */
    exchange(data, size, head, sizeof head, 0.1);
    static const char probe[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (exchange((const uint8_t *)probe, sizeof probe - 1, head, sizeof head, 5.0) ||
        strncmp(head, "HTTP/1.1 200", 12))
        die("a plain GET /healthz after the input did not get 200");
    return 0;
}
