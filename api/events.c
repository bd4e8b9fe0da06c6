/* events.c — GET /v1/jobs/{id}/events, see events.h and daemon/bus.h.
 *
 * Each connection owns a bus cursor and one formatted message in progress. The
 * reader (an MHD pool thread) takes events from the cursor, formats them here, off
 * the bus's lock, and copies as much as fits into MHD's buffer; what does not fit
 * waits for the next call, so an event of any size (a 256-point schedule) goes out
 * whole. With nothing new the reader returns 0 and the HTTP layer suspends the
 * connection until the bus wakes it: an idle client costs no thread and no polling.
 * After a final state (completed, failed, cancelled) the stream ends cleanly. */
#include "api/events.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/routes.h"
#include "api/textbuf.h"
#include "store/store.h"

/* ---- formatting ----------------------------------------------------------------------- */

/* ,"key":number */
static void num(textbuf *b, const char *key, double v)
{
    tb_printf(b, ",\"%s\":", key);
    tb_num(b, v);
}

/* A JSON string with the escapes JSON requires; bytes >= 0x80 pass through (the
 * texts come from our own JSON or messages, which are UTF-8). */
static void str(textbuf *b, const char *s)
{
    tb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            tb_printf(b, "\\%c", *p);
        else if (*p == '\n')
            tb_printf(b, "\\n");
        else if (*p < 0x20)
            tb_printf(b, "\\u%04x", *p);
        else
            tb_printf(b, "%c", *p);
    }
    tb_printf(b, "\"");
}

char *api_sse_format(const bus_event *ev, size_t *len)
{
    textbuf b = {0};
    if (ev->type != BUS_RESET)
        tb_printf(&b, "id: %llu\n", (unsigned long long)ev->id);
    tb_printf(&b, "event: %s\ndata: {\"job\":%lld", bus_type_name(ev->type), (long long)ev->job);
    switch (ev->type) {
    case BUS_STEP: {
        const bus_step *s = &ev->u.step;
        tb_printf(&b, ",\"step\":%lld", (long long)s->step);
#define FIELD(ID, name, unit, flags, meaning) num(&b, #name, s->name);
        VAE_METRIC_FIELDS(FIELD)
#undef FIELD
        num(&b, "samples_per_sec", s->samples_per_sec);
        break;
    }
    case BUS_EPOCH: {
        const bus_epoch *e = &ev->u.epoch;
        tb_printf(&b, ",\"epoch\":%d,\"step\":%lld,\"train\":{", e->epoch, (long long)e->step);
        tb_printf(&b, "\"loss\":");
        tb_num(&b, e->train_loss);
        num(&b, "xent", e->train_xent);
        num(&b, "kl", e->train_kl);
        num(&b, "elbo", e->train_elbo);
        num(&b, "beta", e->train_beta);
        tb_printf(&b, "}");
        if (e->has_test) {
            tb_printf(&b, ",\"test\":{\"active_units\":%d", e->active_units);
            num(&b, "xent", e->xent);
            num(&b, "kl", e->kl);
            num(&b, "elbo", e->elbo);
            tb_printf(&b, "}");
        } else {
            tb_printf(&b, ",\"test\":null");
        }
        num(&b, "eval_s", e->eval_s);
        break;
    }
    case BUS_SCHEDULE:
        tb_printf(&b, ",\"effective_step\":%lld,\"schedule\":%s",
               (long long)ev->u.schedule.effective_step, ev->text ? ev->text : "null");
        break;
    case BUS_STATE:
        tb_printf(&b, ",\"state\":");
        str(&b, ev->u.state.state);
        if (ev->u.state.step >= 0)
            tb_printf(&b, ",\"step\":%lld", (long long)ev->u.state.step);
        else
            tb_printf(&b, ",\"step\":null");
        tb_printf(&b, ",\"reason\":");
        if (ev->text)
            str(&b, ev->text);
        else
            tb_printf(&b, "null");
        break;
    case BUS_CHECKPOINT:
        tb_printf(&b, ",\"step\":%lld,\"kind\":", (long long)ev->u.checkpoint.step);
        str(&b, ev->u.checkpoint.kind);
        break;
    case BUS_RESET: {
        const char *why = ev->u.reset.after > ev->u.reset.latest ? "unknown_id" : "gap";
        tb_printf(&b, ",\"reason\":\"%s\",\"last_event_id\":%llu,\"first_available\":%llu,"
                   "\"latest\":%llu",
               why, (unsigned long long)ev->u.reset.after,
               (unsigned long long)ev->u.reset.first, (unsigned long long)ev->u.reset.latest);
        break;
    }
    default:
        break;
    }
    tb_printf(&b, "}\n\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* ---- the stream ----------------------------------------------------------------------- */

typedef struct ev_stream {
    bus_sub *sub;
    api_ctx *counted;           /* holds one of ctx->n_streams until freed; NULL: none */
    char *out;                  /* the message being written, NULL when none */
    size_t len, off;
    int ending;                 /* the final state is in out: end once it is written */
} ev_stream;

/* The bus's wake-up for an idle stream (daemon/bus.h knows no HTTP). */
static void wake_stream(void *st) { api_stream_wake(st); }

static ssize_t ev_read(void *cls, char *buf, size_t max)
{
    ev_stream *es = cls;
    size_t n = 0;
    for (;;) {
        if (es->out && es->off < es->len) {
            size_t k = es->len - es->off;
            if (k > max - n)
                k = max - n;
            memcpy(buf + n, es->out + es->off, k);
            n += k;
            es->off += k;
            if (n == max)
                return (ssize_t)n;
            continue;
        }
        free(es->out);
        es->out = NULL;
        es->len = es->off = 0;
        if (es->ending)
            return n ? (ssize_t)n : API_STREAM_END;
        bus_event ev;
        if (!bus_next(es->sub, &ev))
            return (ssize_t)n; /* 0: suspend until the bus wakes us */
        es->out = api_sse_format(&ev, &es->len);
        if (!es->out)
            return n ? (ssize_t)n : API_STREAM_ERROR;
        if (ev.type == BUS_STATE && bus_state_final(ev.u.state.state))
            es->ending = 1;
    }
}

static void ev_free(void *cls)
{
    ev_stream *es = cls;
    bus_unsubscribe(es->sub); /* drops the stream handle under the channel's lock */
    if (es->counted)
        atomic_fetch_sub(&es->counted->n_streams, 1);
    free(es->out);
    free(es);
}

/* A Last-Event-ID value: a decimal id, or -1 when absent or not one of ours. */
static int64_t parse_id(const char *v)
{
    if (!v || !*v)
        return -1;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*end || errno || x < 0 || v[0] == '-' || v[0] == '+' || v[0] == ' ')
        return -1;
    return x;
}

void api_h_events(api_req *req)
{
    static const char *const allowed[] = {"last_event_id", NULL};
    if (api_query_only(req, allowed))
        return;
    api_ctx *c = api_req_user(req);
    int64_t id = api_param_int(req, "id");
    const char *q = api_query_get(req, "last_event_id");
    int64_t last = -1;
    if (q && (last = parse_id(q)) < 0) {
        api_reply_error(req, 400, "bad_param", "last_event_id",
                        "last_event_id: must be an event id (a non-negative integer)");
        return;
    }
    /* The header wins: a browser's EventSource sends it on every reconnect, with the
     * id it saw last, which is newer than the one in the URL it was opened with. A
     * header that is not one of our ids is ignored. */
    int64_t hid = parse_id(api_header(req, "Last-Event-ID"));
    if (hid >= 0)
        last = hid;
    if (!c || !c->bus) {
        api_reply_error(req, 503, "unavailable", NULL, "live events are off in this daemon");
        return;
    }
    store_job sj;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = store_job_get(c->st, id, &sj, &err);
    if (rc == VAED_ENOTFOUND) {
        api_reply_error(req, 404, "not_found", NULL, "no job %lld", (long long)id);
        return;
    }
    if (rc) {
        api_reply_from_err(req, 500, "internal", &err);
        return;
    }
    /* Each stream holds a connection and a bus cursor for as long as the client likes:
     * past --max-streams a new one is refused with a reason, not queued. */
    if (c->max_streams > 0 && atomic_fetch_add(&c->n_streams, 1) >= c->max_streams) {
        atomic_fetch_sub(&c->n_streams, 1);
        store_job_clear(&sj);
        api_set_header(req, "Retry-After", "5");
        api_reply_error(req, 503, "too_many_streams", NULL,
                        "%d event streams are open, the most this daemon serves "
                        "(--max-streams); close one, or poll GET /v1/jobs/%lld/metrics?since=",
                        c->max_streams, (long long)id);
        return;
    }
    ev_stream *es = xcalloc(1, sizeof *es);
    es->counted = c->max_streams > 0 ? c : NULL;
    es->sub = bus_subscribe(c->bus, id, last, sj.state, sj.step, sj.reason);
    store_job_clear(&sj);
    api_stream *st = api_reply_stream(req, "text/event-stream", ev_read, ev_free, es);
    if (st) /* on failure ev_free has run already */
        bus_sub_attach(es->sub, wake_stream, st);
}
