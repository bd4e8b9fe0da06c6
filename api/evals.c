/* evals.c — the evaluation routes (daemon/jobs.h, jobs_eval_*):
 *   POST /v1/jobs/{id}/evaluations             {"checkpoint": STEP | "final" | "best",
 *                                               "split": "test", "k": 64, "seed": 0,
 *                                               "rows": N} → 202 the evaluation
 *   GET  /v1/jobs/{id}/evaluations             every evaluation of the job
 *   GET  /v1/jobs/{id}/evaluations/{eid}       one: progress (rows_done, rows_per_sec,
 *                                               eta_s) and, once completed, its result
 *   POST /v1/jobs/{id}/evaluations/{eid}/cancel
 * Errors through the one map (api/errors.h); a bad body field is 422 naming it. */
#include <string.h>

#include "api/errors.h"
#include "api/routes.h"

static api_ctx *ctx(api_req *req) { return api_req_user(req); }

/* A whole number in [lo, hi] at key of doc, or def when absent. */
static int get_int(const json_t *doc, const char *key, int64_t lo, int64_t hi, int64_t def,
                   int64_t *out, vaed_err *err)
{
    const json_t *v = json_object_get(doc, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return vaed_err_set(err, VAED_EINVAL, key, "%s: a whole number from %lld to %lld", key,
                            (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return 0;
}

static int parse_req(const json_t *doc, jobs_eval_req *r, vaed_err *err)
{
    static const char *const keys[] = {"checkpoint", "split", "k", "seed", "rows", NULL};
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)doc, key, v)
    {
        int known = 0;
        for (int i = 0; keys[i]; i++)
            known |= !strcmp(key, keys[i]);
        if (!known)
            return vaed_err_set(err, VAED_EINVAL, key,
                                "%s: unknown key (known keys: checkpoint, split, k, seed, rows)",
                                key);
    }
    r->checkpoint = json_object_get(doc, "checkpoint");
    const json_t *sp = json_object_get(doc, "split");
    if (sp && !json_is_string(sp))
        return vaed_err_set(err, VAED_EINVAL, "split", "split: \"test\" or \"train\"");
    r->split = sp ? json_string_value(sp) : "test";
    int64_t k;
    int rc = get_int(doc, "k", 1, JOBS_EVAL_MAX_K, 64, &k, err);
    if (!rc)
        rc = get_int(doc, "seed", 0, INT64_MAX, 0, &r->seed, err);
    if (!rc)
        rc = get_int(doc, "rows", 1, INT64_MAX, 0, &r->rows, err);
    r->k = (int)k;
    return rc;
}

static void h_eval_post(api_req *req)
{
    json_t *doc;
    if (api_body_json(req, &doc))
        return;
    vaed_err err;
    vaed_err_clear(&err);
    jobs_eval_req r = {.job = api_param_int(req, "id")};
    int64_t eid = 0;
    int rc = parse_req(doc, &r, &err);
    if (!rc)
        rc = jobs_eval_submit(ctx(req)->J, &r, &eid, &err);
    json_decref(doc);
    json_t *out = NULL;
    if (!rc)
        rc = jobs_eval_json(ctx(req)->J, r.job, eid, &out, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    api_reply_json(req, 202, out);
}

static void h_eval_list(api_req *req)
{
    const int64_t job = api_param_int(req, "id");
    vaed_err err;
    vaed_err_clear(&err);
    store_job sj;
    int rc = store_job_get(ctx(req)->st, job, &sj, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    store_job_clear(&sj);
    json_t *arr = jobs_evals_json(ctx(req)->J, job, &err);
    if (!arr) {
        api_reply_vaed(req, VAED_ENOMEM, &err);
        return;
    }
    api_reply_json(req, 200, json_pack("{s:I, s:o}", "job", (json_int_t)job, "evaluations", arr));
}

static void h_eval_get(api_req *req)
{
    vaed_err err;
    vaed_err_clear(&err);
    json_t *o = NULL;
    int rc = jobs_eval_json(ctx(req)->J, api_param_int(req, "id"), api_param_int(req, "eid"),
                            &o, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    api_reply_json(req, 200, o);
}

static void h_eval_cancel(api_req *req)
{
    const int64_t job = api_param_int(req, "id"), eid = api_param_int(req, "eid");
    vaed_err err;
    vaed_err_clear(&err);
    json_t *o = NULL;
    int rc = jobs_eval_cancel(ctx(req)->J, job, eid, &err);
    if (!rc)
        rc = jobs_eval_json(ctx(req)->J, job, eid, &o, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    api_reply_json(req, 200, o);
}

static const api_route routes[] = {
    {"POST", "/v1/jobs/{id}/evaluations", h_eval_post, API_SCOPE_CONTROL},
    {"GET", "/v1/jobs/{id}/evaluations", h_eval_list, API_SCOPE_READ},
    {"GET", "/v1/jobs/{id}/evaluations/{eid}", h_eval_get, API_SCOPE_READ},
    {"POST", "/v1/jobs/{id}/evaluations/{eid}/cancel", h_eval_cancel, API_SCOPE_CONTROL},
};

const api_route *api_eval_routes(size_t *n)
{
    *n = sizeof routes / sizeof *routes;
    return routes;
}
