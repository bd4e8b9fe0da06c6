/* routes.c — the REST routes of vaed v1 on the HTTP layer (http.h): jobs, their
 * control, schedules, metrics, epochs and checkpoints. Each handler validates its
 * input (unknown query parameters and bad numbers are 400 naming the parameter),
 * calls the job manager or the store, and answers their errors through the one map
 * of api/errors.h. */
#include "api/routes.h"
#include "api/audit.h"
#include "api/errors.h"
#include "api/web.h"

#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/cache.h"
#include "api/datasets.h"
#include "api/events.h"
#include "api/extra.h"
#include "api/serving.h"
#include "api/textbuf.h"
#include "daemon/bus.h"
#include "daemon/version.h"
#include "vae/safetensors.h"
#include "vae/sched.h"


static api_ctx *ctx(api_req *req) { return api_req_user(req); }


/* ---- health -------------------------------------------------------------------------- */

static void h_health(api_req *req)
{
    store_stats ss;
    store_get_stats(ctx(req)->st, &ss);
    api_reply_json(req, ss.failing ? 503 : 200,
                   json_pack("{s:s, s:s, s:{s:b, s:f, s:I, s:s}}", "status",
                             ss.failing ? "degraded" : "ok", "version", VAED_VERSION, "store",
                             "ok", !ss.failing, "write_lag_s", ss.lag, "pending_ops",
                             (json_int_t)ss.pending_ops, "last_error", ss.last_error));
}

/* ---- jobs ---------------------------------------------------------------------------- */

/* The job as the API shows it: the store's row with the live figures on top. NULL
 * after replying with the error. */
static json_t *job_object(api_req *req, int64_t id)
{
    store_job sj;
    vaed_err err;
    int rc = store_job_get(ctx(req)->st, id, &sj, &err);
    if (rc) {
        if (rc == VAED_ENOTFOUND)
            vaed_err_set(&err, rc, NULL, "no job %lld", (long long)id);
        api_reply_vaed(req, rc, &err);
        return NULL;
    }
    json_t *o = store_job_json(&sj);
    store_job_clear(&sj);
    jobs_decorate(ctx(req)->J, id, o);
    if (!json_object_get(o, "last")) {
        /* not live (finished, or not started since the daemon started): the newest
         * stored row says where it stands */
        store_series s = {0};
        json_int_t step = json_integer_value(json_object_get(o, "step"));
        if (step > 0 && store_metrics_range(ctx(req)->st, id, step - 2, -1, STORE_MCOL_ALL, 0, &s,
                                            NULL) == 0 && s.n > 0) {
            size_t i = s.n - 1;
            json_object_set_new(o, "beta", json_real(s.col[STORE_M_BETA][i]));
            json_object_set_new(
                o, "last",
                json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "step", (json_int_t)s.step[i],
                          "loss", s.col[STORE_M_LOSS][i], "xent", s.col[STORE_M_XENT][i], "kl",
                          s.col[STORE_M_KL][i], "elbo", s.col[STORE_M_ELBO][i], "lr",
                          s.col[STORE_M_LR][i], "grad_norm", s.col[STORE_M_GRAD_NORM][i]));
        }
        store_series_free(&s);
    }
    return o;
}

static void h_submit(api_req *req)
{
    json_t *doc;
    if (api_body_json(req, &doc))
        return;
    int64_t id;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = jobs_submit(ctx(req)->J, doc, &id, &err);
    json_decref(doc);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    json_t *o = job_object(req, id);
    if (!o)
        return;
    char loc[64];
    snprintf(loc, sizeof loc, "/v1/jobs/%lld", (long long)id);
    api_set_header(req, "Location", loc);
    api_reply_json(req, 201, o);
}

static void h_list(api_req *req)
{
    static const char *const allowed[] = {"status", "limit", "after", NULL};
    if (api_query_only(req, allowed))
        return;
    unsigned states = 0;
    const char *status = api_query_get(req, "status");
    if (status && *status) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", status);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            unsigned b = store_state_bit(tok);
            if (!b) {
                api_reply_error(req, 400, "bad_param", "status",
                                "status: '%s' is not a state (queued, running, paused, "
                                "interrupted, completed, failed, cancelled)", tok);
                return;
            }
            states |= b;
        }
    }
    int64_t limit = api_query_num(req, "limit", 0, 1000, -1),
            after = api_query_num(req, "after", 0, INT64_MAX, -1);
    if (limit == API_QUERY_BAD || after == API_QUERY_BAD)
        return;
    store_job_list l = {0};
    vaed_err err;
    int rc = store_jobs_list(ctx(req)->st, states, after > 0 ? after : 0,
                             limit > 0 ? (int)limit : 100, &l, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        json_t *o = store_job_json(&l.jobs[i]);
        jobs_decorate(ctx(req)->J, l.jobs[i].id, o);
        json_array_append_new(arr, o);
    }
    json_t *out = json_pack("{s:o, s:I}", "jobs", arr, "total", (json_int_t)l.total);
    json_object_set_new(out, "next_after",
                        l.next_after > 0 ? json_integer(l.next_after) : json_null());
    store_job_list_free(&l);
    api_reply_json(req, 200, out);
}

static void h_get(api_req *req)
{
    json_t *o = job_object(req, api_param_int(req, "id"));
    if (o)
        api_reply_json(req, 200, o);
}

static void control(api_req *req, int (*fn)(jobs *, int64_t, vaed_err *))
{
    int64_t id = api_param_int(req, "id");
    vaed_err err;
    vaed_err_clear(&err);
    int rc = fn(ctx(req)->J, id, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    json_t *o = job_object(req, id);
    if (o)
        api_reply_json(req, 200, o);
}

static void h_pause(api_req *req) { control(req, jobs_pause); }
static void h_resume(api_req *req) { control(req, jobs_resume); }
static void h_cancel(api_req *req) { control(req, jobs_cancel); }

/* ---- schedule ------------------------------------------------------------------------ */

static void h_schedule_get(api_req *req)
{
    int64_t id = api_param_int(req, "id");
    json_t *job = job_object(req, id);
    if (!job)
        return;
    store_event *ev = NULL;
    size_t n = 0;
    vaed_err err;
    int rc = store_events_list(ctx(req)->st, id, &ev, &n, &err);
    if (rc) {
        json_decref(job);
        api_reply_vaed(req, rc, &err);
        return;
    }
    json_int_t step = json_integer_value(json_object_get(job, "step"));
    json_t *hist = json_array(), *in_force = json_null();
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_loads(ev[i].schedule, 0, NULL);
        json_array_append_new(
            hist, json_pack("{s:I, s:f, s:I, s:O?, s:s, s:b}", "seq", (json_int_t)ev[i].seq,
                            "requested_at", ev[i].requested_at, "effective_step",
                            (json_int_t)ev[i].effective_step, "schedule", s, "source",
                            ev[i].source, "superseded", ev[i].superseded));
        if (!ev[i].superseded && ev[i].effective_step <= (step > 0 ? step : 0)) {
            json_decref(in_force);
            in_force = json_incref(s);
        }
        json_decref(s);
    }
    store_events_free(ev, n);
    json_t *beta = json_object_get(job, "beta");
    json_t *out = json_pack("{s:I, s:o, s:O, s:I, s:o}", "job", (json_int_t)id, "schedule",
                            in_force, "beta", beta ? beta : json_null(), "step", step, "history",
                            hist);
    json_decref(job);
    api_reply_json(req, 200, out);
}

static void h_schedule_put(api_req *req)
{
    int64_t id = api_param_int(req, "id");
    json_t *doc;
    if (api_body_json(req, &doc))
        return;
    sched_spec s, resolved;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = sched_parse(&s, doc, "", 1, &err);
    json_decref(doc);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    int64_t eff = -1;
    rc = jobs_set_schedule(ctx(req)->J, id, &s, &eff, &resolved, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    api_reply_json(req, 200,
                   json_pack("{s:I, s:I, s:o}", "job", (json_int_t)id, "effective_step",
                             (json_int_t)eff, "schedule", sched_to_json(&resolved)));
}

static void h_optimizer_put(api_req *req)
{
    int64_t id = api_param_int(req, "id");
    json_t *doc;
    if (api_body_json(req, &doc))
        return;
    const char *key;
    json_t *v;
    double lr = NAN;
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "lr")) {
            api_reply_error(req, 422, "invalid", key, "%s: unknown key (known keys: lr)", key);
            json_decref(doc);
            return;
        }
        lr = json_is_number(v) ? json_number_value(v) : NAN;
    }
    json_decref(doc);
    int64_t eff;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = vae_spec_check_lr(lr, "lr", &err); /* optimizer.lr's range, vae/range.c */
    if (!rc)
        rc = jobs_set_lr(ctx(req)->J, id, lr, &eff, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    api_reply_json(req, 200, json_pack("{s:I, s:I, s:f}", "job", (json_int_t)id,
                                       "effective_step", (json_int_t)eff, "lr", lr));
}

/* ---- metrics and epochs -------------------------------------------------------------- */

/* Does the job exist? Replies 404 when not. With sj, the job is left there (the caller
 * clears it). */
static int job_lookup(api_req *req, int64_t id, store_job *sj)
{
    store_job tmp;
    vaed_err err;
    int rc = store_job_get(ctx(req)->st, id, sj ? sj : &tmp, &err);
    if (rc) {
        if (rc == VAED_ENOTFOUND)
            vaed_err_set(&err, rc, NULL, "no job %lld", (long long)id);
        api_reply_vaed(req, rc, &err);
        return 0;
    }
    if (!sj)
        store_job_clear(&tmp);
    return 1;
}

static int job_exists(api_req *req, int64_t id)
{
    return job_lookup(req, id, NULL);
}

/* ---- the metrics reply, written directly -------------------------------------------
 *
 * Dashboards poll the same rows over and over (100 clients asking for the newest
 * steps of one job see the same few hundred rows), and printing a double exactly
 * ("%.17g", as jansson does) is glibc's multi-precision path: with json_real per value
 * it was most of what serving a poll cost. So the columnar reply is written here with
 * api/textbuf.h, whose tb_num prints a double without printf. */

/* {"job", "step": [...], "<column>": [...]..., "kl_groups"?, "rows", "downsampled",
 * "next_since"} with a trailing newline, as api_reply_json writes. Returns 0 and *out
 * (malloc'd, the caller frees) or -1 when out of memory. */
static int metrics_json(const store_series *s, int64_t id, unsigned mask, int downsampled,
                        int64_t next, char **out, size_t *len)
{
    textbuf b = {0};
    tb_put(&b, "{\"job\":");
    tb_int(&b, (long long)id);
    tb_put(&b, ",\"step\":[");
    for (size_t i = 0; i < s->n; i++) {
        if (i)
            tb_put(&b, ",");
        tb_int(&b, (long long)s->step[i]);
    }
    tb_put(&b, "]");
    for (int c = 0; c < STORE_M_NCOLS; c++) {
        if (!s->col[c])
            continue;
        tb_put(&b, ",\"");
        tb_put(&b, store_mcol_name(c));
        tb_put(&b, "\":[");
        for (size_t i = 0; i < s->n; i++) {
            if (i)
                tb_put(&b, ",");
            tb_num(&b, s->col[c][i]);
        }
        tb_put(&b, "]");
    }
    if ((mask & STORE_M_KL_GROUPS_BIT) && s->kl_groups) {
        tb_put(&b, ",\"kl_groups\":[");
        for (size_t i = 0; i < s->n; i++) {
            tb_put(&b, i ? ",[" : "[");
            for (int g = 0; g < s->n_groups; g++) {
                if (g)
                    tb_put(&b, ",");
                tb_num(&b, s->kl_groups[i * (size_t)s->n_groups + (size_t)g]);
            }
            tb_put(&b, "]");
        }
        tb_put(&b, "]");
    }
    tb_put(&b, ",\"rows\":");
    tb_int(&b, (long long)s->total);
    tb_put(&b, downsampled ? ",\"downsampled\":true" : ",\"downsampled\":false");
    tb_put(&b, ",\"next_since\":");
    tb_int(&b, (long long)next);
    tb_put(&b, "}\n");
    if (b.oom) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

static void h_metrics(api_req *req)
{
    static const char *const allowed[] = {"since", "until", "fields", "max_points", "format", NULL};
    if (api_query_only(req, allowed))
        return;
    int64_t id = api_param_int(req, "id");
    int64_t since = api_query_num(req, "since", 0, INT64_MAX, -1),
            until = api_query_num(req, "until", 0, INT64_MAX, -1),
            maxp = api_query_num(req, "max_points", 2, 10000000, -1);
    if (since == API_QUERY_BAD || until == API_QUERY_BAD || maxp == API_QUERY_BAD)
        return;
    const char *format = api_query_get(req, "format");
    int csv = 0;
    if (format && strcmp(format, "json")) {
        if (strcmp(format, "csv")) {
            api_reply_error(req, 400, "bad_param", "format", "format: must be json or csv");
            return;
        }
        csv = 1;
    }
    unsigned mask = STORE_MCOL_ALL;
    const char *fields = api_query_get(req, "fields");
    if (fields && *fields) {
        mask = 0;
        char buf[512];
        snprintf(buf, sizeof buf, "%s", fields);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (!strcmp(tok, "step"))
                continue;
            if (!strcmp(tok, "kl_groups")) {
                mask |= STORE_M_KL_GROUPS_BIT;
                continue;
            }
            int c = store_mcol_by_name(tok);
            if (c < 0) {
                api_reply_error(req, 400, "bad_param", "fields",
                                "fields: unknown field '%s' (known: step, epoch, beta, loss, "
                                "xent, kl, elbo, lr, grad_norm, capacity, time, kl_groups)", tok);
                return;
            }
            mask |= STORE_MCOL(c);
        }
    }
    /* Replies are kept (api/cache.h), keyed by everything they depend on. A finished
     * job's rows never change: the state is read before the rows, and a job's final
     * state is committed after its last row, so a reply built now is complete for
     * good. Any other job's reply holds until the store's next commit: the generation
     * is read before the rows, and the reply is kept only if no commit came while it
     * was built. Dashboards polling a running job ask for the rows after the last step
     * they saw, and commits come once a second, so a hundred of them ask the same few
     * questions between two commits: one builds the reply, the others copy it. */
    uint64_t gen = store_generation(ctx(req)->st);
    store_job sj;
    if (!job_lookup(req, id, &sj))
        return;
    int final = bus_state_final(sj.state);
    char key[192];
    snprintf(key, sizeof key, "metrics %lld %a %lld %lld %lld %x %d g%llu", (long long)id,
             sj.created_at, (long long)since, (long long)until, (long long)maxp, mask, csv,
             final ? 0ull : (unsigned long long)gen);
    store_job_clear(&sj);
    char *cached;
    size_t clen;
    if (api_cache_get(ctx(req)->cache, key, &cached, &clen)) {
        api_reply_text(req, 200, csv ? "text/csv; charset=utf-8" : "application/json", cached,
                       clen);
        free(cached);
        return;
    }
    store_series s = {0};
    vaed_err err;
    /* With max_points the store downsamples from its min/max pyramid, never reading the
     * whole range (store.h: store_metrics_downsample); a range that fits comes back
     * whole. s.total is the range's row count either way. */
    int rc = maxp > 0 ? store_metrics_downsample(ctx(req)->st, id, since >= 0 ? since : -1,
                                                 until >= 0 ? until : -1, mask, (size_t)maxp,
                                                 &s, &err)
                      : store_metrics_range(ctx(req)->st, id, since >= 0 ? since : -1,
                                            until >= 0 ? until : -1, mask, 0, &s, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    int downsampled = maxp > 0 && s.total > (size_t)maxp;
    size_t nkeep = s.n;
    int64_t next = s.n ? s.step[s.n - 1] : (since >= 0 ? since : -1);
    if (csv) {
        size_t cap = 256 + nkeep * 24 * (STORE_M_NCOLS + 1), len = 0;
        char *out = malloc(cap);
        if (!out) {
            store_series_free(&s);
            api_reply_error(req, 503, "busy", NULL, "out of memory");
            return;
        }
        len += (size_t)snprintf(out + len, cap - len, "step");
        for (int c = 0; c < STORE_M_NCOLS; c++)
            if (s.col[c])
                len += (size_t)snprintf(out + len, cap - len, ",%s", store_mcol_name(c));
        out[len++] = '\n';
        for (size_t i = 0; i < s.n; i++) {
            len += (size_t)snprintf(out + len, cap - len, "%lld", (long long)s.step[i]);
            for (int c = 0; c < STORE_M_NCOLS; c++)
                if (s.col[c])
                    len += (size_t)snprintf(out + len, cap - len, ",%.9g", s.col[c][i]);
            out[len++] = '\n';
        }
        if (final || store_generation(ctx(req)->st) == gen)
            api_cache_put(ctx(req)->cache, key, out, len);
        api_reply_text(req, 200, "text/csv; charset=utf-8", out, len);
        free(out);
    } else {
        char *out = NULL;
        size_t len = 0;
        if (metrics_json(&s, id, mask, downsampled, next, &out, &len)) {
            store_series_free(&s);
            api_reply_error(req, 503, "busy", NULL, "out of memory");
            return;
        }
        if (final || store_generation(ctx(req)->st) == gen)
            api_cache_put(ctx(req)->cache, key, out, len);
        api_reply_text(req, 200, "application/json", out, len);
        free(out);
    }
    store_series_free(&s);
}

static void h_epochs(api_req *req)
{
    int64_t id = api_param_int(req, "id");
    store_job sj;
    if (!job_lookup(req, id, &sj))
        return;
    /* the latent groups, to sum kl_per_dim into kl_groups (group g is the next
     * groups[g] dimensions, vae/spec.h) */
    vae_spec spec;
    vaed_err err;
    const int have_spec = vae_spec_parse_text(&spec, sj.spec, strlen(sj.spec), &err) == 0;
    store_job_clear(&sj);
    store_epoch *e = NULL;
    size_t n = 0;
    int rc = store_epochs_list(ctx(req)->st, id, &e, &n, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_pack("{s:I, s:s, s:I, s:f, s:f, s:f, s:f}", "epoch",
                              (json_int_t)e[i].epoch, "split", e[i].split, "step",
                              (json_int_t)e[i].step, "xent", e[i].xent, "kl", e[i].kl, "elbo",
                              e[i].elbo, "time", e[i].time);
        if (!strcmp(e[i].split, "test")) {
            json_object_set_new(o, "active_units", json_integer(e[i].active_units));
            json_t *d = json_array();
            for (int j = 0; j < e[i].n_dims; j++)
                json_array_append_new(d, json_real(e[i].kl_dims[j]));
            json_object_set_new(o, "kl_per_dim", d);
            if (have_spec && vae_spec_latent(&spec) == e[i].n_dims) {
                json_t *g = json_array();
                for (int k = 0, off = 0; k < spec.model.n_groups; off += spec.model.groups[k++]) {
                    double sum = 0;
                    for (int j = off; j < off + spec.model.groups[k]; j++)
                        sum += e[i].kl_dims[j];
                    json_array_append_new(g, json_real(sum));
                }
                json_object_set_new(o, "kl_groups", g);
            }
        }
        json_array_append_new(arr, o);
    }
    store_epochs_free(e, n);
    api_reply_json(req, 200, json_pack("{s:I, s:o}", "job", (json_int_t)id, "epochs", arr));
}

/* ---- checkpoints --------------------------------------------------------------------- */

static void h_ckpt_list(api_req *req)
{
    int64_t id = api_param_int(req, "id");
    if (!job_exists(req, id))
        return;
    store_ckpt *c = NULL;
    size_t n = 0;
    vaed_err err;
    int rc = store_checkpoints_list(ctx(req)->st, id, &c, &n, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:I, s:f, s:f, s:s, s:I}", "step",
                                             (json_int_t)c[i].step, "epoch", c[i].epoch, "time",
                                             c[i].created_at, "kind", c[i].kind, "size",
                                             (json_int_t)c[i].size));
    free(c);
    api_reply_json(req, 200, json_pack("{s:I, s:o}", "job", (json_int_t)id, "checkpoints", arr));
}

static void h_ckpt_take(api_req *req)
{
    int64_t id = api_param_int(req, "id"), step;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = jobs_checkpoint_now(ctx(req)->J, id, &step, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    api_reply_json(req, 201, json_pack("{s:I, s:I, s:s}", "job", (json_int_t)id, "step",
                                       (json_int_t)step, "kind", "manual"));
}

static void h_ckpt_get(api_req *req)
{
    static const char *const allowed[] = {"format", NULL};
    if (api_query_only(req, allowed))
        return;
    int64_t id = api_param_int(req, "id"), step = api_param_int(req, "step");
    const char *format = api_query_get(req, "format");
    const int st = format && !strcmp(format, "safetensors");
    if (format && !st && strcmp(format, "native")) {
        api_reply_error(req, 400, "bad_param", "format", "format: must be native or safetensors");
        return;
    }
    void *blob = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    vaed_err err;
    vaed_err_clear(&err);
    store_job sj = {0};
    /* safetensors names the tensors from the job's spec: the job first, so a missing
     * job is "no job" rather than "no checkpoint". */
    int rc = st ? store_job_get(ctx(req)->st, id, &sj, &err) : 0;
    if (rc == VAED_ENOTFOUND)
        vaed_err_set(&err, rc, NULL, "no job %lld", (long long)id);
    if (!rc && (rc = store_checkpoint_get(ctx(req)->st, id, step, NULL, &blob, &len, &err)) &&
        rc == VAED_ENOTFOUND)
        vaed_err_set(&err, rc, NULL, "job %lld has no checkpoint at step %lld", (long long)id,
                     (long long)step);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        goto done;
    }
    if (st) {
        /* The stored spec and blob are the server's own: one that does not convert is
         * a fault here (500), not a client error. */
        vae_spec spec;
        char jid[32];
        snprintf(jid, sizeof jid, "%lld", (long long)id);
        const char *const extra[] = {"vaed_version", VAED_VERSION, "job_id", jid, NULL};
        if ((rc = vae_spec_parse_text(&spec, sj.spec, strlen(sj.spec), &err)) ||
            (rc = vae_safetensors_from_ckpt(&spec, blob, len, extra, &out, &out_len, &err))) {
            api_reply_from_err(req, 500, "internal", &err);
            goto done;
        }
    }
    char disp[128];
    snprintf(disp, sizeof disp,
             st ? "attachment; filename=\"job-%lld-step-%lld.safetensors\""
                : "attachment; filename=\"job%lld-step%lld.vaedckpt\"",
             (long long)id, (long long)step);
    api_set_header(req, "Content-Disposition", disp);
    api_reply_text(req, 200, "application/octet-stream", st ? out : blob, st ? out_len : len);
done:
    store_job_clear(&sj);
    free(blob);
    free(out);
}

/* GET /v1/nodes: a cluster's nodes, their leases and kernels (store_nodes_json). */
static void h_nodes(api_req *req)
{
    json_t *out = NULL;
    vaed_err err;
    int rc = store_nodes_json(ctx(req)->st, &out, &err);
    if (rc)
        api_reply_vaed(req, rc, &err);
    else
        api_reply_json(req, 200, out);
}

static const api_route routes[] = {
    {"GET", "/healthz", h_health, API_SCOPE_READ},
    {"POST", "/v1/jobs", h_submit, API_SCOPE_ADMIN},
    {"GET", "/v1/jobs", h_list, API_SCOPE_READ},
    {"GET", "/v1/jobs/{id}", h_get, API_SCOPE_READ},
    {"POST", "/v1/jobs/{id}/pause", h_pause, API_SCOPE_CONTROL},
    {"POST", "/v1/jobs/{id}/resume", h_resume, API_SCOPE_CONTROL},
    {"POST", "/v1/jobs/{id}/cancel", h_cancel, API_SCOPE_CONTROL},
    {"GET", "/v1/jobs/{id}/schedule", h_schedule_get, API_SCOPE_READ},
    {"PUT", "/v1/jobs/{id}/schedule", h_schedule_put, API_SCOPE_CONTROL},
    {"PUT", "/v1/jobs/{id}/optimizer", h_optimizer_put, API_SCOPE_CONTROL},
    {"GET", "/v1/jobs/{id}/metrics", h_metrics, API_SCOPE_READ},
    {"GET", "/v1/jobs/{id}/epochs", h_epochs, API_SCOPE_READ},
    {"GET", "/v1/jobs/{id}/events", api_h_events, API_SCOPE_READ},
    {"GET", "/v1/jobs/{id}/checkpoints", h_ckpt_list, API_SCOPE_READ},
    {"POST", "/v1/jobs/{id}/checkpoints", h_ckpt_take, API_SCOPE_CONTROL},
    {"GET", "/v1/jobs/{id}/checkpoints/{step:u}", h_ckpt_get, API_SCOPE_READ},
    {"GET", "/", api_h_web_index, API_SCOPE_READ},
    {"GET", "/web/{name:s}", api_h_web_asset, API_SCOPE_READ},
    {"GET", "/static/{name:s}", api_h_web_static, API_SCOPE_READ},
    {"GET", "/v1/jobs/{id}/images/reconstructions.png", api_h_web_recon, API_SCOPE_READ},
    {"GET", "/v1/jobs/{id}/images/samples.png", api_h_web_samples, API_SCOPE_READ},
    {"GET", "/metrics", api_h_prom, API_SCOPE_READ},
    {"GET", "/v1/openapi.json", api_h_openapi, API_SCOPE_READ},
    {"GET", "/v1/datasets", api_h_datasets_list, API_SCOPE_READ},
    {"POST", "/v1/datasets", api_h_datasets_post, API_SCOPE_ADMIN},
    {"GET", "/v1/datasets/{id}", api_h_datasets_get, API_SCOPE_READ},
    {"DELETE", "/v1/datasets/{id}", api_h_datasets_delete, API_SCOPE_ADMIN},
    {"GET", "/v1/whoami", api_h_whoami, API_SCOPE_READ},
    {"GET", "/v1/nodes", h_nodes, API_SCOPE_READ},
    {"GET", "/v1/audit", api_h_audit, API_SCOPE_ADMIN},
};

/* The whole table: the routes above, then those of the modules with tables of their
 * own (api/serving.h, api/schedules.c), put together once. */
static api_route all[sizeof routes / sizeof *routes + 32]; /* + the modules' tables */
static size_t nall;
static pthread_once_t all_once = PTHREAD_ONCE_INIT;

static void add(const api_route *r, size_t n)
{
    for (size_t i = 0; i < n && nall < sizeof all / sizeof *all; i++)
        all[nall++] = r[i];
}

static void build_all(void)
{
    size_t n;
    add(routes, sizeof routes / sizeof *routes);
    const api_route *r = api_serving_routes(&n);
    add(r, n);
    r = api_schedule_routes(&n);
    add(r, n);
    r = api_eval_routes(&n);
    add(r, n);
    r = api_sweep_routes(&n);
    add(r, n);
}

const api_route *api_routes(size_t *n)
{
    pthread_once(&all_once, build_all);
    *n = nall;
    return all;
}
