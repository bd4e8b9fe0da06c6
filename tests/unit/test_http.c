/* test_http.c — the HTTP layer against a real server on 127.0.0.1 (port 0),
 * driven by a small raw-socket HTTP/1.1 client written here, so the bytes on the
 * wire are what is checked: statuses, headers, JSON error bodies, limits, auth,
 * CORS, query decoding, concurrency, slow clients, streams, stats, shutdown. */
#include "tests/unit/test_http_util.h"

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
    api_server_stop(NULL);

    producer_stop = 1;
    pthread_join(prod, NULL);
    return t_done("test_http");
}
