/* test_prom.c — the Prometheus renderer (api_prom_render) and the store read behind
 * vaed_jobs (store_jobs_count_by_state).
 *
 * The renderer gets a hand-built input: two jobs whose names need every kind of
 * escaping, per-route latency buckets given NON-cumulative as the HTTP layer keeps
 * them, and store figures. The oracle is hand-written expected lines for the escaping
 * and the number spellings, and a naive running sum for the cumulative buckets; the
 * format's structural rules (one HELP and TYPE per family, before its samples, every
 * sample of a family in one block, +Inf bucket == _count) are checked by a small
 * parser here. promtool itself runs in tests/e2e/prom_openapi.sh. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/extra.h"
#include "t.h"

/* The line of text that starts with prefix (up to the newline), copied to buf; 0 if none. */
static int find_line(const char *text, const char *prefix, char *buf, size_t n)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l >= pl && !memcmp(p, prefix, pl)) {
            snprintf(buf, n, "%.*s", (int)l, p);
            return 1;
        }
        p += l + (e ? 1 : 0);
    }
    return 0;
}

/* The value after the last space of the line starting with prefix; NAN if no line. */
static double value_of(const char *text, const char *prefix)
{
    char line[1024];
    if (!find_line(text, prefix, line, sizeof line))
        return NAN;
    return strtod(strrchr(line, ' ') + 1, NULL);
}

/* Metric family of a sample name: strip _bucket/_sum/_count for the histogram. */
static void family_of(const char *name, char *fam, size_t n)
{
    snprintf(fam, n, "%s", name);
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    if (strncmp(fam, "vaed_http_request_duration_seconds", 34))
        return;
    for (int i = 0; i < 3; i++) {
        size_t fl = strlen(fam), sl = strlen(sfx[i]);
        if (fl > sl && !strcmp(fam + fl - sl, sfx[i]))
            fam[fl - sl] = 0;
    }
}

/* Structural rules of the text format; returns the number of violations (printed). */
static int check_structure(const char *text)
{
    char seen[64][64];      /* families whose block has ended or is open, in order */
    int nseen = 0, bad = 0, have_help = 0, have_type = 0;
    char cur[64] = "";
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        if (!e) {
            fprintf(stderr, "  last line has no newline\n");
            return bad + 1;
        }
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(e - p), p);
        p = e + 1;
        char name[64] = "", fam[64];
        if (!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7)) {
            sscanf(line + 7, "%63s", name);
            if (strcmp(name, cur)) {
                for (int i = 0; i < nseen; i++)
                    if (!strcmp(seen[i], name)) {
                        fprintf(stderr, "  family %s appears twice\n", name);
                        bad++;
                    }
                snprintf(cur, sizeof cur, "%s", name);
                snprintf(seen[nseen++], sizeof seen[0], "%s", name);
                have_help = have_type = 0;
            }
            if (line[2] == 'H')
                bad += have_help++ ? 1 : 0;
            else
                bad += have_type++ ? 1 : 0;
            continue;
        }
        if (line[0] == '#')
            continue;
        sscanf(line, "%63[a-zA-Z0-9_:]", name);
        family_of(name, fam, sizeof fam);
        if (strcmp(fam, cur) || !have_help || !have_type) {
            fprintf(stderr, "  sample outside its family's block (or before HELP/TYPE): %s\n",
                    line);
            bad++;
        }
    }
    return bad;
}

static void test_render(void)
{
    jobs_live live[2] = {
        {.id = 7, .step = 1234, .epoch = 2.5, .samples_per_sec = 5000,
         .last = {.beta = 0.25, .loss = 101.5, .xent = 90.25, .kl = 45, .elbo = -135.25}},
        {.id = 12, .step = 3, .epoch = 0.001, .samples_per_sec = 0,
         .last = {.beta = 0.1, .loss = NAN, .xent = INFINITY, .kl = -INFINITY, .elbo = 1e-8}},
    };
    /* backslash, quote, newline, a stray 0xFF, a valid two-byte é, a truncated sequence */
    snprintf(live[0].name, sizeof live[0].name, "a\"b\\c\nd\xff\xc3\xa9");
    snprintf(live[1].name, sizeof live[1].name, "plain\xe2\x82");
    int64_t counts[STORE_NSTATES] = {3, 1, 0, 0, 5, 2, 0};
    store_stats ss = {.commits = 42, .rows_committed = 1234567, .write_errors = 2, .pending_ops = 9, .lag = 0.75};
    api_stat_count sc[3] = {
        {"GET", "/healthz", 200, 5},
        {"GET", "/v1/jobs/{id}/checkpoints/{step:u}", 404, 2},
        {"", "unmatched", 404, 1},
    };
    api_stat_latency lat[2] = {
        {.method = "GET", .pattern = "/healthz", .sum_s = 0.0125},
        {.method = "GET", .pattern = "/v1/jobs/{id}/checkpoints/{step:u}", .sum_s = 3},
    };
    /* non-cumulative counts, one in the +Inf bucket */
    uint64_t b0[API_LAT_NBUCKETS] = {2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    memcpy(lat[0].bucket, b0, sizeof b0);
    lat[0].count = 5;
    lat[1].bucket[3] = 2;
    lat[1].count = 2;
    api_stats hs = {.ncounts = 3, .counts = sc, .nlat = 2, .lat = lat, .streams_open = 1};
    api_prom_input in = {.version = "9.8.7", .live = live, .nlive = 2, .state_counts = counts,
                         .store = &ss, .http = &hs};
    char *text = NULL;
    size_t len = 0;
    int rc = api_prom_render(&in, &text, &len);
    CHECK(rc == 0 && text, "render rc=%d", rc);
    if (!text)
        return;
    CHECK(len == strlen(text), "len %zu vs strlen %zu", len, strlen(text));
    CHECK(check_structure(text) == 0, "structure (see above)");

    static const char *const want[] = {
        "vaed_build_info{version=\"9.8.7\"} 1",
        "vaed_job_beta{id=\"7\",name=\"a\\\"b\\\\c\\nd\xef\xbf\xbd\xc3\xa9\"} 0.25",
        "vaed_job_step{id=\"7\",name=\"a\\\"b\\\\c\\nd\xef\xbf\xbd\xc3\xa9\"} 1234",
        "vaed_job_loss{id=\"12\",name=\"plain\xef\xbf\xbd\xef\xbf\xbd\"} NaN",
        "vaed_job_xent{id=\"12\",name=\"plain\xef\xbf\xbd\xef\xbf\xbd\"} +Inf",
        "vaed_job_kl{id=\"12\",name=\"plain\xef\xbf\xbd\xef\xbf\xbd\"} -Inf",
        "vaed_job_elbo{id=\"12\",name=\"plain\xef\xbf\xbd\xef\xbf\xbd\"} 1e-08",
        "vaed_job_epoch{id=\"12\",name=\"plain\xef\xbf\xbd\xef\xbf\xbd\"} 0.001",
        "vaed_job_samples_per_second{id=\"7\",name=\"a\\\"b\\\\c\\nd\xef\xbf\xbd\xc3\xa9\"} 5000",
        "vaed_jobs{state=\"queued\"} 3",
        "vaed_jobs{state=\"running\"} 1",
        "vaed_jobs{state=\"interrupted\"} 0",
        "vaed_jobs{state=\"completed\"} 5",
        "vaed_jobs{state=\"failed\"} 2",
        "vaed_jobs{state=\"cancelled\"} 0",
        "vaed_http_requests_total{method=\"GET\",route=\"/healthz\",code=\"200\"} 5",
        "vaed_http_requests_total{method=\"GET\",route=\"/v1/jobs/{id}/checkpoints/{step}\",code=\"404\"} 2",
        "vaed_http_requests_total{method=\"\",route=\"unmatched\",code=\"404\"} 1",
        "vaed_http_request_duration_seconds_sum{method=\"GET\",route=\"/healthz\"} 0.0125",
        "vaed_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 5",
        "vaed_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"+Inf\"} 5",
        "vaed_http_streams_open 1",
        "vaed_store_write_lag_seconds 0.75",
        "vaed_store_pending_ops 9",
        "vaed_store_write_errors_total 2",
        "vaed_store_commits_total 42",
        "vaed_store_rows_committed_total 1234567",
        "# TYPE vaed_http_requests_total counter",
        "# TYPE vaed_http_request_duration_seconds histogram",
        "# TYPE vaed_job_beta gauge",
        "# TYPE vaed_store_commits_total counter",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char line[1024];
        int found = find_line(text, want[i], line, sizeof line) && !strcmp(line, want[i]);
        CHECK(found, "missing line: %s", want[i]);
    }

    /* cumulative buckets: a naive running sum of the layer's counts, per bound */
    for (int r = 0; r < 2; r++) {
        uint64_t cum = 0;
        for (int b = 0; b < API_LAT_NBUCKETS; b++) {
            cum += lat[r].bucket[b];
            char prefix[256], le[32];
            if (b < API_LAT_NBUCKETS - 1)
                snprintf(le, sizeof le, "%.17g", api_lat_bounds[b]);
            else
                snprintf(le, sizeof le, "+Inf");
            /* the le text is the shortest spelling; find the line by the bound's value */
            char line[1024];
            snprintf(prefix, sizeof prefix,
                     "vaed_http_request_duration_seconds_bucket{method=\"GET\",route=\"%s\",le=\"",
                     r == 0 ? "/healthz" : "/v1/jobs/{id}/checkpoints/{step}");
            int hit = 0;
            for (const char *p = strstr(text, prefix); p; p = strstr(p + 1, prefix)) {
                const char *q = p + strlen(prefix);
                double bound = strncmp(q, "+Inf", 4) ? strtod(q, NULL) : INFINITY;
                double wantb = b < API_LAT_NBUCKETS - 1 ? api_lat_bounds[b] : INFINITY;
                if (bound == wantb) {
                    const char *e = strchr(p, '\n');
                    snprintf(line, sizeof line, "%.*s", (int)(e - p), p);
                    hit = 1;
                    break;
                }
            }
            CHECK(hit, "route %d: no bucket le=%s", r, le);
            if (hit) {
                unsigned long long got = strtoull(strrchr(line, ' ') + 1, NULL, 10);
                CHECK(got == cum, "route %d le=%s: %llu, want cumulative %llu", r, le, got,
                      (unsigned long long)cum);
            }
        }
    }
    /* the route with no ":u" left in any label */
    CHECK(!strstr(text, "{step:u}"), "a route label still has a parameter form");
    free(text);

    /* no store read: a comment instead of vaed_jobs samples, and no other family lost */
    in.state_counts = NULL;
    in.state_error = "database is locked\nreally";
    in.http = NULL;
    in.nlive = 0;
    rc = api_prom_render(&in, &text, &len);
    CHECK(rc == 0 && text, "render without counts rc=%d", rc);
    if (!text)
        return;
    CHECK(check_structure(text) == 0, "structure without counts");
    CHECK(!strstr(text, "vaed_jobs{"), "vaed_jobs samples without counts");
    CHECK(strstr(text, "# vaed_jobs unavailable: database is locked really\n") != NULL,
          "the reason comment is missing or not on one line:\n%s", text);
    CHECK(!strstr(text, "vaed_job_beta{"), "job series with no live jobs");
    CHECK(strstr(text, "# TYPE vaed_job_beta gauge\n") != NULL, "family metadata kept");
    CHECK(!strstr(text, "vaed_http_"), "http series without http stats");
    CHECK(value_of(text, "vaed_store_commits_total ") == 42, "store series kept");
    CHECK(!strstr(text, "vaed_node_info") && !strstr(text, "vaed_cluster_nodes"),
          "cluster series without a cluster");
    free(text);

    /* a cluster's node: its name, and the cluster's nodes by liveness */
    in.node = "n\"1";
    in.nodes_alive = 2;
    in.nodes_gone = 1;
    rc = api_prom_render(&in, &text, &len);
    CHECK(rc == 0 && text, "render as a node rc=%d", rc);
    if (!text)
        return;
    CHECK(check_structure(text) == 0, "structure as a node");
    CHECK(strstr(text, "vaed_node_info{node=\"n\\\"1\"} 1\n") != NULL,
          "vaed_node_info with the escaped name:\n%s", text);
    CHECK(value_of(text, "vaed_cluster_nodes{alive=\"true\"} ") == 2 &&
              value_of(text, "vaed_cluster_nodes{alive=\"false\"} ") == 1,
          "vaed_cluster_nodes 2 alive, 1 gone");
    free(text);
}

/* store_jobs_count_by_state against an independent count: one store_jobs_list per state. */
static void test_count_by_state(void)
{
    char dir[] = "/tmp/vaed-test-prom.XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/db", dir);
    store_opts o;
    store_opts_default(&o);
    o.fsync_checkpoints = 0;
    store *st = NULL;
    vaed_err e;
    int rc = store_open(&st, path, &o, &e);
    CHECK(rc == 0, "store_open: %s", e.msg);
    if (rc)
        return;
    int64_t c[STORE_NSTATES];
    rc = store_jobs_count_by_state(st, c, &e);
    CHECK(rc == 0, "count on an empty store: %s", e.msg);
    for (int s = 0; s < STORE_NSTATES; s++)
        CHECK(c[s] == 0, "empty store: state %d has %lld", s, (long long)c[s]);

    static const char *const names[STORE_NSTATES] = {STORE_STATE_NAMES};
    /* an uneven mix: job i ends in state (i * 5 + i / 3) % 7 */
    for (int i = 0; i < 23; i++) {
        int64_t id;
        store_job_new nj = {.name = "j", .spec = "{}"};
        rc = store_job_insert(st, &nj, &id, &e);
        CHECK(rc == 0, "insert: %s", e.msg);
        int s = (i * 5 + i / 3) % 7;
        if (!rc && s)
            CHECK(store_job_set_state(st, id, names[s], NULL, &e) == 0, "set_state: %s", e.msg);
    }
    rc = store_jobs_count_by_state(st, c, &e);
    CHECK(rc == 0, "count: %s", e.msg);
    int64_t sum = 0;
    for (int s = 0; s < STORE_NSTATES; s++) {
        store_job_list l;
        CHECK(store_jobs_list(st, 1u << s, 0, 1, &l, &e) == 0, "list: %s", e.msg);
        CHECK(c[s] == l.total, "state %s: count %lld, list total %lld", names[s],
              (long long)c[s], (long long)l.total);
        sum += c[s];
        store_job_list_free(&l);
    }
    CHECK(sum == 23, "counts add up to %lld, want 23", (long long)sum);
    store_close(st, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void)
{
    test_render();
    test_count_by_state();
    return t_done("test_prom");
}
