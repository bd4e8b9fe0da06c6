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

/* Scoped tokens at the HTTP layer: 403 insufficient_scope naming both scopes (and
 * WWW-Authenticate saying so), 401 for no or an unknown token, free reads; the audit hook
 * hears every state-changing request once with the token's name, never the secret; a
 * route or token without a scope, or two tokens sharing a secret, are refused at start. */
#define AUD_MAX 16
static pthread_mutex_t aud_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char token[32], remote[64], method[16], path[64], created[64];
    unsigned status;
} aud[AUD_MAX];
static int naud;

static void on_audit(void *cls, const api_audit_rec *a)
{
    (void)cls;
    pthread_mutex_lock(&aud_mu);
    if (naud < AUD_MAX) {
        snprintf(aud[naud].token, sizeof aud[naud].token, "%s", a->token ? a->token : "-");
        snprintf(aud[naud].remote, sizeof aud[naud].remote, "%s", a->remote);
        snprintf(aud[naud].method, sizeof aud[naud].method, "%s", a->method);
        snprintf(aud[naud].path, sizeof aud[naud].path, "%s", a->path);
        snprintf(aud[naud].created, sizeof aud[naud].created, "%s", a->created ? a->created : "-");
        aud[naud].status = a->status;
    }
    naud++;
    pthread_mutex_unlock(&aud_mu);
}

static void test_scopes(void)
{
    static const api_token toks[] = {{"r", API_SCOPE_READ, "read-secret-000000"},
                                     {"c", API_SCOPE_CONTROL, "control-secret-00"},
                                     {"a", API_SCOPE_ADMIN, "admin-secret-0000"}};
    api_config cfg;
    base_config(&cfg);
    cfg.tokens = toks;
    cfg.ntokens = 3;
    cfg.audit = on_audit;
    api_server *srv = start(&cfg);
    if (!srv)
        return;
    unsigned port = api_server_port(srv);
    resp r;
    const char *body = "{\"x\":1}";
    static const struct {
        const char *method, *path, *auth;
        int status;
        const char *need, *held;
    } cases[] = {
        {"POST", "/v1/things", "Authorization: Bearer read-secret-000000\r\n", 403, "admin", "read"},
        {"POST", "/v1/things", "Authorization: Bearer control-secret-00\r\n", 403, "admin", "control"},
        {"DELETE", "/v1/things/3", "Authorization: Bearer read-secret-000000\r\n", 403, "control", "read"},
        {"DELETE", "/v1/things/3", "Authorization: Bearer control-secret-00\r\n", 200, NULL, NULL},
        {"POST", "/v1/things", "Authorization: Bearer admin-secret-0000\r\n", 201, NULL, NULL},
        {"POST", "/v1/things", "Authorization: Bearer admin-secret-000\r\n", 401, NULL, NULL},
        {"DELETE", "/v1/things/3", NULL, 401, NULL, NULL},
        {"GET", "/v1/things/3", NULL, 200, NULL, NULL},
        {"GET", "/v1/things/3", "Authorization: Bearer unknown-secret-0\r\n", 200, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int post = !strcmp(cases[i].method, "POST");
        req(port, cases[i].method, cases[i].path, cases[i].auth, post ? body : NULL,
            post ? strlen(body) : 0, &r);
        char what[96];
        snprintf(what, sizeof what, "%s %s case %zu", cases[i].method, cases[i].path, i);
        CHECK(r.status == cases[i].status, "%s: status %d, want %d: %s", what, r.status,
              cases[i].status, r.body);
        CHECK(!strstr(r.body, "secret"), "%s: a secret in the body: %s", what, r.body);
        if (cases[i].need) {
            json_t *j = json_loads(r.body, 0, NULL);
            json_t *e = json_object_get(j, "error");
            const char *code = json_string_value(json_object_get(e, "code"));
            const char *field = json_string_value(json_object_get(e, "field"));
            CHECK(code && field && !strcmp(code, "insufficient_scope") &&
                      !strcmp(field, "Authorization") && json_object_size(e) == 5,
                  "%s: the error object: %s", what, r.body);
            const char *need = json_string_value(json_object_get(e, "scope_required"));
            const char *held = json_string_value(json_object_get(e, "scope_held"));
            CHECK(need && held && !strcmp(need, cases[i].need) && !strcmp(held, cases[i].held),
                  "%s: scope_required %s scope_held %s", what, need ? need : "-", held ? held : "-");
            json_decref(j);
            const char *w = hget(&r, "WWW-Authenticate");
            CHECK(w && strstr(w, "insufficient_scope") && strstr(w, cases[i].need),
                  "%s: WWW-Authenticate %s", what, w ? w : "(none)");
        }
        resp_free(&r);
    }
    api_server_stop(srv); /* every request has completed: the hook has heard them all */
    static const struct {
        const char *token, *method;
        unsigned status;
        const char *created;
    } want[] = {{"r", "POST", 403, "-"},    {"c", "POST", 403, "-"},
                {"r", "DELETE", 403, "-"},  {"c", "DELETE", 200, "-"},
                {"a", "POST", 201, "/v1/things/1"}, {"-", "POST", 401, "-"},
                {"-", "DELETE", 401, "-"}};
    size_t nw = sizeof want / sizeof *want;
    CHECK(naud == (int)nw, "audit: %d records, want %zu (the GETs are not recorded)", naud, nw);
    for (size_t i = 0; i < nw && i < (size_t)naud; i++)
        CHECK(!strcmp(aud[i].token, want[i].token) && !strcmp(aud[i].method, want[i].method) &&
                  aud[i].status == want[i].status && !strcmp(aud[i].created, want[i].created) &&
                  !strcmp(aud[i].remote, "127.0.0.1") && !strncmp(aud[i].path, "/v1/things", 10),
              "audit %zu: %s %s %s %u %s from %s", i, aud[i].token, aud[i].method, aud[i].path,
              aud[i].status, aud[i].created, aud[i].remote);

    /* refused at start */
    vaed_err err;
    api_server *b = NULL;
    static const api_token dup[] = {{"x", API_SCOPE_READ, "same-secret-000000"},
                                    {"y", API_SCOPE_ADMIN, "same-secret-000000"}};
    cfg.tokens = dup;
    cfg.ntokens = 2;
    int rc = api_server_start(&cfg, routes, NROUTES, &b, &err);
    CHECK(rc == VAED_EINVAL && !b && !strstr(err.msg, "same-secret"), "two tokens, one secret: rc %d %s", rc, err.msg);
    static const api_token noscope[] = {{"x", 0, "some-secret-000000"}};
    cfg.tokens = noscope;
    cfg.ntokens = 1;
    rc = api_server_start(&cfg, routes, NROUTES, &b, &err);
    CHECK(rc == VAED_EINVAL && !b, "a token without a scope: rc %d", rc);
    cfg.tokens = NULL;
    cfg.ntokens = 0;
    cfg.token = "default-secret";
    static const api_token clash[] = {{"default", API_SCOPE_READ, "other-secret-00000"}};
    cfg.tokens = clash;
    cfg.ntokens = 1;
    rc = api_server_start(&cfg, routes, NROUTES, &b, &err);
    CHECK(rc == VAED_EINVAL && !b, "a token named default beside --token: rc %d", rc);
    cfg.tokens = NULL;
    cfg.ntokens = 0;
    api_route unscoped[] = {{"GET", "/x", get_text, 0}};
    rc = api_server_start(&cfg, unscoped, 1, &b, &err);
    CHECK(rc == VAED_EINVAL && !b && strstr(err.msg, "scope"), "a route without a scope: rc %d %s", rc, err.msg);
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
    api_route badr[] = {{"GET", "v1/x", get_text, API_SCOPE_READ}, {"GET", "/v1/{id:q}", get_text, API_SCOPE_READ},
                        {"GET", "/v1/{}", get_text, API_SCOPE_READ}, {"GET", "/v1/x{y}", get_text, API_SCOPE_READ}};
    for (size_t i = 0; i < sizeof badr / sizeof *badr; i++) {
        rc = api_server_start(&cfg, &badr[i], 1, &b, &err);
        CHECK(rc == VAED_EINVAL && !b, "pattern '%s': rc %d", badr[i].pattern, rc);
    }
    api_route dup[] = {{"GET", "/a", get_text, API_SCOPE_READ}, {"GET", "/a", get_text, API_SCOPE_READ}};
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

/* The guards (api/http_guard.c), row by row: a raw request with the given Host and
 * extra header lines against a server with browser_checks on; the status and, for a
 * refusal, the error's code and field. "%P" in host is replaced by the server's port. */
static void test_guard(void)
{
    static const char *const hosts[] = {"vaed.lab", "box:81", NULL};
    static const char *const origins[] = {"http://ok.example", NULL};
    api_config cfg;
    base_config(&cfg);
    cfg.browser_checks = 1;
    cfg.allow_hosts = hosts;
    cfg.cors_origins = origins;
    api_server *srv = start(&cfg);
    if (!srv)
        return;
    unsigned port = api_server_port(srv);
    static const struct {
        const char *method, *path, *host, *extra, *body;
        int status;
        const char *code, *field;
    } rows[] = {
        {"GET", "/v1/things/1", "127.0.0.1:%P", "", NULL, 200, NULL, NULL},
        {"GET", "/v1/things/1", "localhost", "", NULL, 200, NULL, NULL},
        {"GET", "/v1/things/1", "LocalHost:%P", "", NULL, 200, NULL, NULL},
        {"GET", "/v1/things/1", "[::1]:%P", "", NULL, 200, NULL, NULL},
        {"GET", "/v1/things/1", "10.1.2.3:%P", "", NULL, 200, NULL, NULL},
        {"GET", "/v1/things/1", "vaed.lab:9999", "", NULL, 200, NULL, NULL},
        {"GET", "/v1/things/1", "box:81", "", NULL, 200, NULL, NULL},
        {"GET", "/v1/things/1", "box:82", "", NULL, 421, "misdirected", "Host"},
        {"GET", "/v1/things/1", "box", "", NULL, 421, "misdirected", "Host"},
        {"GET", "/v1/things/1", "evil.example", "", NULL, 421, "misdirected", "Host"},
        {"GET", "/v1/things/1", "localhost:1", "", NULL, 421, "misdirected", "Host"},
        {"GET", "/v1/things/1", "localhost.evil.example:%P", "", NULL, 421, "misdirected", "Host"},
        {"GET", "/v1/things/1", "[::1:%P", "", NULL, 421, "misdirected", "Host"},
        {"GET", "/v1/things/1", "a:b:c", "", NULL, 421, "misdirected", "Host"},
        {"GET", "/v1/things/1", "localhost:99999999", "", NULL, 421, "misdirected", "Host"},
        {"GET", "/v1/things/1%00", "localhost", "", NULL, 400, "bad_path", "path"},
        {"GET", "/v1%2fthings/1", "localhost", "", NULL, 400, "bad_path", "path"},
        {"GET", "/v1/things/1?name=a%2fb", "localhost", "", NULL, 200, NULL, NULL},
        {"POST", "/v1/things", "localhost", "Content-Type: application/json\r\n", "{}", 201, NULL, NULL},
        {"POST", "/v1/things", "localhost", "Content-Type: text/plain\r\n", "{}", 415,
         "unsupported_media_type", "Content-Type"},
        {"POST", "/v1/things", "localhost", "", "{}", 415, "unsupported_media_type", "Content-Type"},
        {"POST", "/v1/things", "localhost", "Content-Type: application/jsonx\r\n", "{}", 415,
         "unsupported_media_type", "Content-Type"},
        {"POST", "/v1/things", "localhost:%P", "Origin: http://localhost:%P\r\n"
         "Content-Type: application/json\r\n", "{}", 201, NULL, NULL},
        {"POST", "/v1/things", "localhost", "Origin: http://evil.example\r\n"
         "Content-Type: application/json\r\n", "{}", 403, "cross_origin", "Origin"},
        {"POST", "/v1/things", "localhost", "Sec-Fetch-Site: same-site\r\n"
         "Content-Type: application/json\r\n", "{}", 403, "cross_origin", "Origin"},
        {"POST", "/v1/things", "localhost", "Origin: http://ok.example\r\nSec-Fetch-Site: "
         "cross-site\r\nContent-Type: application/json\r\n", "{}", 201, NULL, NULL},
        {"DELETE", "/v1/things/1", "localhost", "Origin: null\r\n", NULL, 403, "cross_origin",
         "Origin"},
        {"GET", "/v1/things/1", "localhost", "Origin: http://evil.example\r\n", NULL, 200, NULL,
         NULL},
        {"GET", "/v1/things/1", "localhost", "Authorization: a\r\nAuthorization: a\r\n", NULL, 400,
         "duplicate_header", "Authorization"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char host[128], extra[512], raw[2048], ps[16];
        snprintf(ps, sizeof ps, "%u", port);
        const char *src[2] = {rows[i].host, rows[i].extra};
        char *dst[2] = {host, extra};
        size_t cap[2] = {sizeof host, sizeof extra};
        for (int k = 0; k < 2; k++) { /* "%P" -> the port */
            size_t o = 0;
            for (const char *p = src[k]; *p && o + 8 < cap[k]; p++)
                if (p[0] == '%' && p[1] == 'P') {
                    o += (size_t)snprintf(dst[k] + o, cap[k] - o, "%s", ps);
                    p++;
                } else {
                    dst[k][o++] = *p;
                }
            dst[k][o] = '\0';
        }
        const char *b = rows[i].body;
        int n = snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s",
                         rows[i].method, rows[i].path, host, extra);
        if (b)
            n += snprintf(raw + n, sizeof raw - (size_t)n, "Content-Length: %zu\r\n\r\n%s",
                          strlen(b), b);
        else
            n += snprintf(raw + n, sizeof raw - (size_t)n, "\r\n");
        resp r;
        exchange(port, raw, (size_t)n, 0, &r);
        char what[256];
        snprintf(what, sizeof what, "row %zu: %s %s Host: %s", i, rows[i].method, rows[i].path,
                 host);
        if (rows[i].code)
            check_error(&r, rows[i].status, rows[i].code, rows[i].field, what);
        else
            CHECK(r.status == rows[i].status, "%s: status %d, want %d: %s", what, r.status,
                  rows[i].status, r.body);
        const char *ns = hget(&r, "X-Content-Type-Options");
        CHECK(ns && !strcmp(ns, "nosniff"), "%s: no X-Content-Type-Options: nosniff", what);
        resp_free(&r);
    }
    api_server_stop(srv);
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
    test_scopes();
    test_cors();
    test_slowloris();
    test_errors();
    test_stop_with_stream();
    test_guard();
    api_server_stop(NULL);

    producer_stop = 1;
    pthread_join(prod, NULL);
    return t_done("test_http_part1");
}
