/* test_http_part1.c — more of test_http.c's tests (split for size; same fixtures: test_http_util.h). */
#include "tests/unit/test_http_util.h"


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
    return t_done("test_http_part1");
}
