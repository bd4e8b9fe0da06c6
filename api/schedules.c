/* schedules.c — the schedule formulas served, so that no client carries a copy of them
 * (vae/sched.c is the one definition):
 *
 *   GET  /v1/schedules/kinds     every kind with its defaults, for a client's form
 *   GET  /v1/metrics/fields      the table of a step's figures: name, unit, meaning
 *   POST /v1/schedules/preview   the beta per step of a proposed schedule
 *
 * A preview body: {"schedule": {...} (as PUT /v1/jobs/{id}/schedule takes it, relative
 * forms included), and either "job": ID (a running or paused job: its epoch length, its
 * total steps, and its current step and beta resolve "origin": "now" and "from":
 * "current", as a PUT would now) or "steps_per_epoch" with "total_steps" (and optionally
 * "effective_step", default 0, and "beta_now", default 0); "max_points" (2..10000,
 * default 400)}. The reply: {"schedule": the absolute schedule, "effective_step",
 * "step": [...], "beta": [...]} from the effective step to the last step, evenly
 * spaced, first and last included, computed by sched_beta; a capacity schedule adds
 * "capacity": [...] (its beta is gamma, as the metrics report it). The controller
 * depends on the KL it will observe: its curve assumes the KL stays at its target
 * ("assumes_kl" says so). */
#include "api/routes.h"
#include "api/errors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vae/metric_fields.h"
#include "vae/sched.h"

static void h_kinds(api_req *req)
{
    json_t *o = json_object();
    for (int k = 0; o && k < SCHED_NKINDS; k++)
        json_object_set_new(o, sched_kind_name(k), sched_kind_defaults_json(k));
    api_reply_json(req, 200, json_pack("{s:o}", "kinds", o));
}

/* A non-negative integer field of doc in [lo, hi]; absent: def (-1: required). */
static int int_of(const json_t *doc, const char *key, long long lo, long long hi,
                  long long def, long long *out, vaed_err *err)
{
    const json_t *v = json_object_get(doc, key);
    if (!v && def >= 0) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return vaed_err_set(err, VAED_EINVAL, key, "%s: an integer from %lld to %lld", key, lo,
                            hi);
    *out = json_integer_value(v);
    return 0;
}

static const char *const known[] = {"schedule", "job", "steps_per_epoch", "total_steps",
                                    "effective_step", "beta_now", "max_points", NULL};

static void h_preview(api_req *req)
{
    api_ctx *cx = api_req_user(req);
    json_t *doc = NULL, *job = NULL;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = 0;
    if (api_body_json(req, &doc))
        return;
    const char *k;
    json_t *v;
    if (!json_is_object(doc)) {
        rc = vaed_err_set(&err, VAED_EINVAL, NULL, "the body must be a JSON object");
        goto fail;
    }
    json_object_foreach(doc, k, v) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++)
            ok = !strcmp(k, known[i]);
        if (!ok) {
            rc = vaed_err_set(&err, VAED_EINVAL, k, "%s: not a field of a preview", k);
            goto fail;
        }
    }
    sched_spec s;
    const json_t *sj = json_object_get(doc, "schedule");
    if (!sj) {
        rc = vaed_err_set(&err, VAED_EINVAL, "schedule", "schedule: required");
        goto fail;
    }
    if ((rc = sched_parse(&s, sj, "schedule", 1, &err)))
        goto fail;
    long long spe, total, eff, maxp;
    double beta_now = 0.0;
    if (json_object_get(doc, "job")) {
        long long id;
        if ((rc = int_of(doc, "job", 1, INT64_MAX, -1, &id, &err)))
            goto fail;
        store_job sjb;
        if ((rc = store_job_get(cx->st, id, &sjb, &err))) {
            if (rc == VAED_ENOTFOUND)
                vaed_err_set(&err, rc, "job", "no job %lld", id);
            goto fail;
        }
        job = store_job_json(&sjb);
        store_job_clear(&sjb);
        jobs_decorate(cx->J, id, job);
        const json_t *p = json_object_get(job, "progress");
        if (!p) {
            rc = vaed_err_set(&err, VAED_ESTATE, "job",
                              "job %lld is %s: only a job that has started has a step and an "
                              "epoch length to preview from (give steps_per_epoch and "
                              "total_steps instead)",
                              id, json_string_value(json_object_get(job, "state")));
            goto fail;
        }
        spe = json_integer_value(json_object_get(p, "steps_per_epoch"));
        total = json_integer_value(json_object_get(p, "total_steps"));
        eff = json_integer_value(json_object_get(p, "step"));
        beta_now = json_number_value(json_object_get(job, "beta"));
    } else if ((rc = int_of(doc, "steps_per_epoch", 1, 1000000000, -1, &spe, &err)) ||
               (rc = int_of(doc, "total_steps", 1, 1000000000000LL, -1, &total, &err)) ||
               (rc = int_of(doc, "effective_step", 0, total - 1, 0, &eff, &err))) {
        goto fail;
    } else if (json_object_get(doc, "beta_now")) {
        const json_t *b = json_object_get(doc, "beta_now");
        beta_now = json_number_value(b);
        if (!json_is_number(b) || !(beta_now >= 0) || beta_now > 1e5) {
            rc = vaed_err_set(&err, VAED_EINVAL, "beta_now", "beta_now: a number in [0, 1e5]");
            goto fail;
        }
    }
    if ((rc = int_of(doc, "max_points", 2, 10000, 400, &maxp, &err)))
        goto fail;
    sched_resolve(&s, (long)eff, (long)spe, beta_now);
    sched_state st;
    sched_state_init(&s, &st, beta_now);
    const long long span = total > eff ? total - eff : 1;
    const long long n = span < maxp ? span : maxp;
    json_t *steps = json_array(), *betas = json_array(),
           *caps = s.kind == SCHED_CAPACITY ? json_array() : NULL;
    for (long long i = 0; i < n; i++) {
        /* evenly spaced from the effective step to the last one, both included */
        long long step = eff + (n > 1 ? (span - 1) * i / (n - 1) : 0);
        double b = sched_beta(&s, &st, (long)step, (long)spe, s.target_kl);
        json_array_append_new(steps, json_integer(step));
        json_array_append_new(betas, json_real(b));
        if (caps)
            json_array_append_new(caps, json_real(sched_capacity(&s, (long)step, (long)spe)));
    }
    json_t *out = json_pack("{s:o, s:I, s:o, s:o}", "schedule", sched_to_json(&s),
                            "effective_step", (json_int_t)eff, "step", steps, "beta", betas);
    if (out && caps)
        json_object_set_new(out, "capacity", caps);
    if (out && s.kind == SCHED_CONTROLLER)
        json_object_set_new(out, "assumes_kl", json_real(s.target_kl));
    json_decref(doc);
    json_decref(job);
    api_reply_json(req, 200, out);
    return;
fail:
    json_decref(doc);
    json_decref(job);
    api_reply_vaed(req, rc, &err);
}

/* GET /v1/metrics/fields: the table of a step's figures (vae/metric_fields.h), in
 * storage order, for clients that list or label them (the dashboard). */
static void h_fields(api_req *req)
{
    json_t *a = json_array();
    for (int i = 0; a && i < VAE_METRIC_NFIELDS; i++) {
        const vae_metric_field *f = &vae_metric_fields[i];
        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "name", f->name, "unit", f->unit,
                                           "meaning", f->meaning));
    }
    api_reply_json(req, 200, json_pack("{s:o}", "fields", a));
}

static const api_route routes[] = {
    {"GET", "/v1/metrics/fields", h_fields, API_SCOPE_READ},
    {"GET", "/v1/schedules/kinds", h_kinds, API_SCOPE_READ},
    {"POST", "/v1/schedules/preview", h_preview, API_SCOPE_READ},
};

const api_route *api_schedule_routes(size_t *n)
{
    *n = sizeof routes / sizeof *routes;
    return routes;
}
