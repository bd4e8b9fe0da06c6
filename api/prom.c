/* prom.c — GET /metrics: the daemon's state in the Prometheus text exposition format,
 * version 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * A scrape takes three snapshots, each consistent on its own: the running jobs'
 * live figures (jobs_snapshot), the job count per state (one SQLite read), and the
 * store writer's and the HTTP layer's counters. Nothing here keeps state between
 * scrapes: a job that stops running simply has no series in the next scrape.
 *
 * Format rules we rely on, and that `promtool check metrics` enforces:
 *  - each family appears once, as one block: # HELP, # TYPE, then its samples;
 *  - counters end in _total; a histogram is <name>_bucket{le} (cumulative, ending in
 *    le="+Inf", which equals <name>_count), <name>_sum and <name>_count;
 *  - label values escape backslash, double quote and newline; the text is UTF-8;
 *  - floats are Go-parsable: NaN, +Inf, -Inf, else decimal or exponent notation.
 * The HTTP layer counts a request when it completes, so a scrape does not include
 * itself; its latency histogram is kept per route with NON-cumulative buckets, which
 * we sum up here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/cache.h"
#include "api/extra.h"
#include "api/routes.h"
#include "daemon/version.h"

/* Shortest decimal text that reads back as exactly x, in the spellings the format
 * accepts for the special values. buf holds at least 32 bytes. */
static const char *fmt_num(char *buf, size_t n, double x)
{
    if (isnan(x))
        return "NaN";
    if (isinf(x))
        return x > 0 ? "+Inf" : "-Inf";
    /* whole numbers as such: the shortest %g of 5000 would be "5e+03" */
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, n, "%.0f", x);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    return buf;
}

/* Write s as a label value, quoted: \ " and newline escaped as the format says, and
 * any byte that is not part of valid UTF-8 replaced by U+FFFD, so a scrape never
 * fails on a job name. */
static void put_label(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        unsigned c = *p;
        if (c == '\\' || c == '"') {
            fputc('\\', f);
            fputc((int)c, f);
            p++;
            continue;
        }
        if (c == '\n') {
            fputs("\\n", f);
            p++;
            continue;
        }
        if (c < 0x80) {
            fputc((int)c, f);
            p++;
            continue;
        }
        /* the length of a well-formed sequence starting here (RFC 3629), else 0 */
        int len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        for (int k = 1; k < len; k++)
            if ((p[k] & 0xC0) != 0x80)
                len = 0;
        if (len >= 3) {
            unsigned c1 = p[1];
            if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) ||
                (c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 > 0x8F))
                len = 0;   /* overlong, a surrogate, or past U+10FFFF */
        }
        if (len == 0) {
            fputs("\xEF\xBF\xBD", f);
            p++;
        } else {
            fwrite(p, 1, (size_t)len, f);
            p += len;
        }
    }
    fputc('"', f);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A route pattern as the OpenAPI document writes it: "{step:u}" -> "{step}". */
static void put_route_label(FILE *f, const char *pattern)
{
    char buf[512];
    size_t k = 0;
    for (const char *p = pattern; *p && k + 1 < sizeof buf; p++) {
        if (*p == ':') {
            while (p[1] && p[1] != '}')
                p++;
            continue;
        }
        buf[k++] = *p;
    }
    buf[k] = 0;
    put_label(f, buf);
}

/* The per-job gauges: name, help, and which field of jobs_live. */
enum { JV_BETA, JV_LOSS, JV_XENT, JV_KL, JV_ELBO, JV_STEP, JV_EPOCH, JV_SPS, JV_N };
static const struct {
    const char *name, *help;
} job_gauges[JV_N] = {
    [JV_BETA] = {"vaed_job_beta", "KL weight beta used by the job's last step."},
    [JV_LOSS] = {"vaed_job_loss", "Training loss of the job's last step (xent + beta * KL), nats per example."},
    [JV_XENT] = {"vaed_job_xent", "Reconstruction cross-entropy of the job's last step, nats per example."},
    [JV_KL] = {"vaed_job_kl", "KL divergence of the job's last step, nats per example."},
    [JV_ELBO] = {"vaed_job_elbo", "ELBO of the job's last step, -(xent + KL), nats per example."},
    [JV_STEP] = {"vaed_job_step", "Training steps the job has done."},
    [JV_EPOCH] = {"vaed_job_epoch", "Fractional epochs the job has done (step / steps per epoch)."},
    [JV_SPS] = {"vaed_job_samples_per_second", "Training examples per second of the job, recent average."},
};

static double job_value(const jobs_live *l, int v)
{
    switch (v) {
    case JV_BETA: return l->last.beta;
    case JV_LOSS: return l->last.loss;
    case JV_XENT: return l->last.xent;
    case JV_KL: return l->last.kl;
    case JV_ELBO: return l->last.elbo;
    case JV_STEP: return (double)l->step;
    case JV_EPOCH: return l->epoch;
    default: return l->samples_per_sec;
    }
}

int api_prom_render(const api_prom_input *in, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    char num[40];
    *out = NULL;
    if (len)
        *len = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return VAED_ENOMEM;

    family(f, "vaed_build_info", "gauge", "Always 1; the version label names the vaed build.");
    fputs("vaed_build_info{version=", f);
    put_label(f, in->version ? in->version : "");
    fputs("} 1\n", f);

    for (int v = 0; v < JV_N; v++) {
        family(f, job_gauges[v].name, "gauge", job_gauges[v].help);
        for (size_t i = 0; i < in->nlive; i++) {
            const jobs_live *l = &in->live[i];
            fprintf(f, "%s{id=\"%lld\",name=", job_gauges[v].name, (long long)l->id);
            put_label(f, l->name);
            fprintf(f, "} %s\n", fmt_num(num, sizeof num, job_value(l, v)));
        }
    }

    static const char *const states[STORE_NSTATES] = {STORE_STATE_NAMES};
    family(f, "vaed_jobs", "gauge", "Jobs in the store, by state.");
    if (in->state_counts) {
        for (int s = 0; s < STORE_NSTATES; s++)
            fprintf(f, "vaed_jobs{state=\"%s\"} %lld\n", states[s],
                    (long long)in->state_counts[s]);
    } else {
        /* a plain comment: a human reading the scrape sees why the series is missing */
        fputs("# vaed_jobs unavailable: ", f);
        for (const char *p = in->state_error ? in->state_error : "store read failed"; *p; p++)
            fputc(*p == '\n' ? ' ' : *p, f);
        fputc('\n', f);
    }

    if (in->http) {
        const api_stats *h = in->http;
        family(f, "vaed_http_requests_total", "counter",
               "HTTP requests answered, by route method, route template and status code "
               "(route \"unmatched\": no route matched).");
        for (size_t i = 0; i < h->ncounts; i++) {
            const api_stat_count *c = &h->counts[i];
            fputs("vaed_http_requests_total{method=", f);
            put_label(f, c->method);
            fputs(",route=", f);
            put_route_label(f, c->pattern);
            fprintf(f, ",code=\"%u\"} %llu\n", c->status, (unsigned long long)c->count);
        }
        family(f, "vaed_http_request_duration_seconds", "histogram",
               "Time from the request's arrival to the end of its reply, by route "
               "(streamed responses are not included).");
        for (size_t i = 0; i < h->nlat; i++) {
            const api_stat_latency *l = &h->lat[i];
            uint64_t cum = 0;
            for (int b = 0; b < API_LAT_NBUCKETS; b++) {
                cum += l->bucket[b];
                fputs("vaed_http_request_duration_seconds_bucket{method=", f);
                put_label(f, l->method);
                fputs(",route=", f);
                put_route_label(f, l->pattern);
                fprintf(f, ",le=\"%s\"} %llu\n",
                        b < API_LAT_NBUCKETS - 1 ? fmt_num(num, sizeof num, api_lat_bounds[b])
                                                 : "+Inf",
                        (unsigned long long)cum);
            }
            /* _count is the +Inf bucket by definition; the layer's count is the same
             * number taken under the same lock, and we use the sum to keep them equal. */
            const char *suffix[2] = {"_sum", "_count"};
            for (int k = 0; k < 2; k++) {
                fprintf(f, "vaed_http_request_duration_seconds%s{method=", suffix[k]);
                put_label(f, l->method);
                fputs(",route=", f);
                put_route_label(f, l->pattern);
                if (k == 0)
                    fprintf(f, "} %s\n", fmt_num(num, sizeof num, l->sum_s));
                else
                    fprintf(f, "} %llu\n", (unsigned long long)cum);
            }
        }
        family(f, "vaed_http_streams_open", "gauge",
               "Streamed responses (server-sent events) open now.");
        fprintf(f, "vaed_http_streams_open %llu\n", (unsigned long long)h->streams_open);
    }

    if (in->has_cache) {
        family(f, "vaed_reply_cache_entries", "gauge",
               "Metrics replies kept for the next client.");
        fprintf(f, "vaed_reply_cache_entries %d\n", in->cache_entries);
        family(f, "vaed_reply_cache_bytes", "gauge", "Bytes those replies hold.");
        fprintf(f, "vaed_reply_cache_bytes %zu\n", in->cache_bytes);
        family(f, "vaed_reply_cache_hits_total", "counter",
               "Metrics requests answered from the reply cache.");
        fprintf(f, "vaed_reply_cache_hits_total %lu\n", in->cache_hits);
        family(f, "vaed_reply_cache_misses_total", "counter",
               "Metrics requests whose reply had to be built.");
        fprintf(f, "vaed_reply_cache_misses_total %lu\n", in->cache_misses);
    }

    if (in->store) {
        const store_stats *s = in->store;
        family(f, "vaed_store_write_lag_seconds", "gauge",
               "Age of the oldest write not yet committed to SQLite; 0 when none.");
        fprintf(f, "vaed_store_write_lag_seconds %s\n", fmt_num(num, sizeof num, s->lag));
        family(f, "vaed_store_pending_ops", "gauge", "Writes queued for the store's writer thread.");
        fprintf(f, "vaed_store_pending_ops %llu\n", (unsigned long long)s->pending_ops);
        family(f, "vaed_store_write_errors_total", "counter",
               "Failed batch attempts and failed operations of the store writer.");
        fprintf(f, "vaed_store_write_errors_total %llu\n", (unsigned long long)s->write_errors);
        family(f, "vaed_store_commits_total", "counter", "Batches committed to SQLite.");
        fprintf(f, "vaed_store_commits_total %llu\n", (unsigned long long)s->commits);
        family(f, "vaed_store_rows_committed_total", "counter", "Metric rows committed to SQLite.");
        fprintf(f, "vaed_store_rows_committed_total %llu\n",
                (unsigned long long)s->rows_committed);
        family(f, "vaed_store_ops_fenced_total", "counter",
               "Writes refused because their job's lease was lost (a cluster node).");
        fprintf(f, "vaed_store_ops_fenced_total %llu\n", (unsigned long long)s->ops_fenced);
    }

    if (in->node) {
        family(f, "vaed_node_info", "gauge",
               "Always 1; the node label names this cluster node (--node).");
        fputs("vaed_node_info{node=", f);
        put_label(f, in->node);
        fputs("} 1\n", f);
        family(f, "vaed_cluster_nodes", "gauge",
               "Nodes of the cluster by liveness (a heartbeat within their lease, or not).");
        fprintf(f, "vaed_cluster_nodes{alive=\"true\"} %d\n", in->nodes_alive);
        fprintf(f, "vaed_cluster_nodes{alive=\"false\"} %d\n", in->nodes_gone);
    }

    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(buf);
        return VAED_ENOMEM;
    }
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

void api_h_prom(api_req *req)
{
    static const char *const none[] = {NULL};
    if (api_query_only(req, none))
        return;
    api_ctx *c = api_req_user(req);
    api_stats *hs = NULL;
    jobs_live *live = NULL;
    char *text = NULL;
    size_t nlive = 0, len = 0;

    if (api_stats_snapshot(api_req_server(req), &hs))
        goto oom;
    /* jobs_snapshot fills at most max; a full buffer may mean more jobs, so grow and
     * ask again. Each call is one consistent snapshot. */
    for (size_t max = 16;; max *= 2) {
        jobs_live *more = realloc(live, max * sizeof *live);
        if (!more)
            goto oom;
        live = more;
        nlive = jobs_snapshot(c->J, live, max);
        if (nlive < max)
            break;
    }
    int64_t counts[STORE_NSTATES];
    vaed_err err;
    vaed_err_clear(&err);
    int have_counts = store_jobs_count_by_state(c->st, counts, &err) == 0;
    store_stats ss;
    store_get_stats(c->st, &ss);

    api_prom_input in = {
        .version = VAED_VERSION,
        .live = live,
        .nlive = nlive,
        .state_counts = have_counts ? counts : NULL,
        .state_error = err.msg,
        .store = &ss,
        .http = hs,
        .has_cache = c->cache != NULL,
    };
    api_cache_stats(c->cache, &in.cache_entries, &in.cache_bytes, &in.cache_hits,
                    &in.cache_misses);
    json_t *nodes = NULL; /* a cluster's node: the nodes table (no node: VAED_ENOTFOUND) */
    vaed_err nerr;
    if (store_node(c->st)[0] && store_nodes_json(c->st, &nodes, &nerr) == 0) {
        in.node = store_node(c->st);
        size_t i;
        json_t *nd;
        json_array_foreach(json_object_get(nodes, "nodes"), i, nd) {
            if (json_is_true(json_object_get(nd, "alive")))
                in.nodes_alive++;
            else
                in.nodes_gone++;
        }
    }
    int rrc = api_prom_render(&in, &text, &len);
    json_decref(nodes);
    if (rrc)
        goto oom;
    api_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    goto done;
oom:
    api_reply_error(req, 503, "busy", NULL, "out of memory");
done:
    free(text);
    free(live);
    api_stats_free(hs);
}
