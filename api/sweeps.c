/* sweeps.c — the sweep routes (daemon/jobs.h: jobs_sweep_*, store/sweeps.h):
 *   POST /v1/sweeps                  {"name", "base", "space", "method", "seed",
 *                                     "max_trials", "concurrency", "objective",
 *                                     "early_stop"} → 201
 *   GET  /v1/sweeps                  every sweep, with its trials counted by state
 *   GET  /v1/sweeps/{id}             the sweep and its trials as a table
 *                                     ?sort=objective (default; best first by the
 *                                     objective's direction, trials without a value
 *                                     last) | trial; ?format=csv: the same table as CSV
 *   POST /v1/sweeps/{id}/cancel      cancels its unfinished trials
 *   GET  /v1/sweeps/{id}/metrics     ?field=kl&max_points=N: that field of every trial,
 *                                     downsampled (store_metrics_downsample)
 * Errors through the one map (api/errors.h): a bad field or parameter is 422 naming it. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/errors.h"
#include "api/routes.h"
#include "api/textbuf.h"
#include "store/sweeps.h"

static api_ctx *ctx(api_req *req) { return api_req_user(req); }

static void tb_putc(textbuf *b, char c)
{
    char s[2] = {c, 0};
    tb_put(b, s);
}

static int reply_err(api_req *req, int rc, const char *field, const char *fmt, const char *a)
{
    vaed_err err;
    vaed_err_set(&err, rc, field, fmt, a);
    return api_reply_vaed(req, rc, &err);
}

/* The objective's metric and direction as stored in the sweep's spec. */
static void objective_of(const json_t *spec, const char **metric, int *maximize)
{
    const json_t *o = json_object_get(spec, "objective");
    const char *m = json_string_value(json_object_get(o, "metric"));
    const char *d = json_string_value(json_object_get(o, "direction"));
    *metric = m ? m : "elbo";
    *maximize = d ? !strcmp(d, "max") : 1;
}

/* The trial's value of metric; 0 when it has none yet. */
static int trial_value(const store_sweep_trial *t, const char *metric, double *v)
{
    if (!strcmp(metric, "bound")) {
        *v = t->bound;
        return t->has_bound;
    }
    *v = !strcmp(metric, "kl") ? t->kl : !strcmp(metric, "xent") ? t->xent : t->elbo;
    return t->has_epoch;
}

typedef struct row_ref {
    const store_sweep_trial *t;
    int has;
    double v;
    double key;                 /* v, negated when the objective is maximised: best first */
} row_ref;

static int by_objective(const void *a, const void *b)
{
    const row_ref *x = a, *y = b;
    if (x->has != y->has)
        return x->has ? -1 : 1;
    if (x->has && x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->t->trial < y->t->trial ? -1 : x->t->trial > y->t->trial;
}

/* The trials in the asked order (malloc'd; NULL when none or out of memory). */
static row_ref *ordered(const store_sweep *sw, const char *metric, int maximize, int by_trial)
{
    row_ref *r = calloc(sw->n ? sw->n : 1, sizeof *r);
    if (!r)
        return NULL;
    for (size_t i = 0; i < sw->n; i++) {
        r[i].t = &sw->trials[i];
        r[i].has = trial_value(&sw->trials[i], metric, &r[i].v) && isfinite(r[i].v);
        r[i].key = maximize ? -r[i].v : r[i].v;
    }
    if (!by_trial)
        qsort(r, sw->n, sizeof *r, by_objective);
    return r;
}

static json_t *num_or_null(int has, double v)
{
    return has && isfinite(v) ? json_real(v) : json_null();
}

static json_t *row_json(const row_ref *r)
{
    const store_sweep_trial *t = r->t;
    json_t *pt = json_loads(t->point, 0, NULL);
    return json_pack("{s:I, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "trial",
                     (json_int_t)t->trial, "job", (json_int_t)t->job, "state", t->state, "point",
                     pt ? pt : json_null(), "objective", num_or_null(r->has, r->v), "kl",
                     num_or_null(t->has_epoch, t->kl), "xent", num_or_null(t->has_epoch, t->xent),
                     "elbo", num_or_null(t->has_epoch, t->elbo), "active_units",
                     t->has_epoch ? json_integer(t->active_units) : json_null(), "bound",
                     num_or_null(t->has_bound, t->bound), "epoch",
                     t->has_epoch ? json_integer(t->epoch) : json_null(), "reason",
                     t->reason ? json_string(t->reason) : json_null());
}

/* The sweep as JSON: its request, counts by state and (rows != NULL) its table. */
static json_t *sweep_json(const store_sweep *sw, const row_ref *rows)
{
    json_t *spec = json_loads(sw->spec, 0, NULL);
    json_t *counts = json_object();
    for (size_t i = 0; counts && i < sw->n; i++) {
        const char *s = sw->trials[i].state;
        json_object_set_new(counts, s, json_integer(json_integer_value(json_object_get(counts, s)) + 1));
    }
    json_t *o = json_pack("{s:I, s:s, s:f, s:i, s:I, s:o, s:o}", "id", (json_int_t)sw->id, "name",
                          sw->name, "created_at", sw->created_at, "concurrency", sw->concurrency,
                          "n_trials", (json_int_t)sw->n, "counts", counts ? counts : json_null(),
                          "spec", spec ? spec : json_null());
    if (!o)
        return NULL;
    json_t *sj = json_object_get(o, "spec");
    json_object_set(o, "method", json_object_get(sj, "method"));
    json_object_set(o, "objective", json_object_get(sj, "objective"));
    if (rows) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < sw->n; i++)
            json_array_append_new(arr, row_json(&rows[i]));
        json_object_set_new(o, "trials", arr ? arr : json_null());
    }
    return o;
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(textbuf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        tb_put(b, s);
        return;
    }
    tb_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"')
            tb_putc(b, '"');
        tb_putc(b, *s);
    }
    tb_putc(b, '"');
}

static void csv_num(textbuf *b, int has, double v)
{
    tb_putc(b, ',');
    if (has && isfinite(v))
        tb_printf(b, "%.17g", v);
}

static void csv_value(textbuf *b, const json_t *v)
{
    tb_putc(b, ',');
    if (!v || json_is_null(v))
        return;
    if (json_is_string(v)) {
        csv_field(b, json_string_value(v));
        return;
    }
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (t)
        csv_field(b, t);
    else
        b->oom = 1;
    free(t);
}

/* trial, job, state, one column per space path (in the space's order), objective, kl,
 * xent, elbo, active_units, bound, epoch, reason: one row per trial, in rows' order
 * (epoch and reason came later: appended, so the older columns keep their places). */
static int sweep_csv(const store_sweep *sw, const row_ref *rows, textbuf *b)
{
    json_t *spec = json_loads(sw->spec, 0, NULL);
    const json_t *space = json_object_get(spec, "space");
    tb_put(b, "trial,job,state");
    const char *path;
    json_t *d;
    json_object_foreach((json_t *)space, path, d)
    {
        tb_putc(b, ',');
        csv_field(b, path);
    }
    tb_put(b, ",objective,kl,xent,elbo,active_units,bound,epoch,reason\n");
    for (size_t i = 0; i < sw->n; i++) {
        const store_sweep_trial *t = rows[i].t;
        tb_printf(b, "%lld,%lld,%s", (long long)t->trial, (long long)t->job, t->state);
        json_t *pt = json_loads(t->point, 0, NULL);
        json_object_foreach((json_t *)space, path, d)
            csv_value(b, json_object_get(pt, path));
        json_decref(pt);
        csv_num(b, rows[i].has, rows[i].v);
        csv_num(b, t->has_epoch, t->kl);
        csv_num(b, t->has_epoch, t->xent);
        csv_num(b, t->has_epoch, t->elbo);
        tb_putc(b, ',');
        if (t->has_epoch)
            tb_printf(b, "%d", t->active_units);
        csv_num(b, t->has_bound, t->bound);
        tb_putc(b, ',');
        if (t->has_epoch)
            tb_printf(b, "%d", t->epoch);
        tb_putc(b, ',');
        if (t->reason)
            csv_field(b, t->reason);
        tb_putc(b, '\n');
    }
    json_decref(spec);
    return b->oom ? VAED_ENOMEM : 0;
}

static void h_sweep_post(api_req *req)
{
    json_t *doc;
    if (api_body_json(req, &doc))
        return;
    vaed_err err;
    vaed_err_clear(&err);
    int64_t id = 0;
    int rc = jobs_sweep_submit(ctx(req)->J, doc, &id, &err);
    json_decref(doc);
    store_sweep sw;
    if (!rc)
        rc = store_sweep_get(ctx(req)->st, id, 1, &sw, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    row_ref *rows = ordered(&sw, "", 1, 1);
    json_t *o = rows ? sweep_json(&sw, rows) : NULL;
    free(rows);
    store_sweep_clear(&sw);
    if (!o) {
        reply_err(req, VAED_ENOMEM, "", "%s", "out of memory writing the sweep");
        return;
    }
    api_reply_json(req, 201, o);
}

static void h_sweep_list(api_req *req)
{
    static const char *const allowed[] = {NULL};
    if (api_query_only(req, allowed))
        return;
    vaed_err err;
    vaed_err_clear(&err);
    int64_t *ids = NULL;
    size_t n = 0;
    int rc = store_sweeps_ids(ctx(req)->st, &ids, &n, &err);
    json_t *arr = rc ? NULL : json_array();
    for (size_t i = 0; !rc && i < n; i++) {
        store_sweep sw;
        if ((rc = store_sweep_get(ctx(req)->st, ids[i], 1, &sw, &err)))
            break;
        json_array_append_new(arr, sweep_json(&sw, NULL));
        store_sweep_clear(&sw);
    }
    free(ids);
    if (rc) {
        json_decref(arr);
        api_reply_vaed(req, rc, &err);
        return;
    }
    api_reply_json(req, 200, json_pack("{s:o}", "sweeps", arr));
}

/* A PBT sweep's trials each get "pbt": their decisions at the generation boundaries
 * ({epoch, step, value, donor: {trial, job} or null, schedule}), the family tree's
 * edges. */
static int add_lineage(store *st, const store_sweep *sw, json_t *o, vaed_err *err)
{
    store_pbt_decision *d = NULL;
    size_t nd = 0;
    int rc = store_pbt_list(st, sw->id, &d, &nd, err);
    if (rc)
        return rc;
    json_t *trials = json_object_get(o, "trials");
    for (size_t i = 0; !rc && i < json_array_size(trials); i++) {
        json_t *t = json_array_get(trials, i);
        int64_t job = json_integer_value(json_object_get(t, "job"));
        json_t *a = json_array();
        for (size_t k = 0; a && k < nd; k++) {
            if (d[k].job != job)
                continue;
            json_t *donor = json_null();
            for (size_t m = 0; d[k].donor && m < sw->n; m++)
                if (sw->trials[m].job == d[k].donor)
                    donor = json_pack("{s:I, s:I}", "trial", (json_int_t)sw->trials[m].trial,
                                      "job", (json_int_t)d[k].donor);
            json_t *sc = d[k].schedule ? json_loads(d[k].schedule, 0, NULL) : json_null();
            json_array_append_new(a, json_pack("{s:i, s:I, s:o, s:o, s:o}", "epoch", d[k].epoch,
                                               "step", (json_int_t)d[k].step, "value",
                                               isfinite(d[k].value) ? json_real(d[k].value)
                                                                    : json_null(),
                                               "donor", donor ? donor : json_null(), "schedule",
                                               sc ? sc : json_null()));
        }
        if (!a || json_object_set_new(t, "pbt", a))
            rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    }
    store_pbt_free(d, nd);
    return rc;
}

static void h_sweep_get(api_req *req)
{
    static const char *const allowed[] = {"sort", "format", NULL};
    if (api_query_only(req, allowed))
        return;
    const char *sort = api_query_get(req, "sort"), *format = api_query_get(req, "format");
    if (sort && strcmp(sort, "objective") && strcmp(sort, "trial")) {
        reply_err(req, VAED_EINVAL, "sort", "\"objective\" or \"trial\" (not \"%s\")", sort);
        return;
    }
    if (format && strcmp(format, "json") && strcmp(format, "csv")) {
        reply_err(req, VAED_EINVAL, "format", "\"json\" or \"csv\" (not \"%s\")", format);
        return;
    }
    vaed_err err;
    vaed_err_clear(&err);
    store_sweep sw;
    int rc = store_sweep_get(ctx(req)->st, api_param_int(req, "id"), 1, &sw, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    json_t *spec = json_loads(sw.spec, 0, NULL);
    const char *metric;
    int maximize;
    objective_of(spec, &metric, &maximize);
    row_ref *rows = ordered(&sw, metric, maximize, sort && !strcmp(sort, "trial"));
    if (rows && format && !strcmp(format, "csv")) {
        textbuf b = {0};
        rc = sweep_csv(&sw, rows, &b);
        if (!rc)
            api_reply_text(req, 200, "text/csv; charset=utf-8", b.p ? b.p : "", b.len);
        free(b.p);
    } else {
        json_t *o = rows ? sweep_json(&sw, rows) : NULL;
        if (o && json_object_get(spec, "pbt") && (rc = add_lineage(ctx(req)->st, &sw, o, &err))) {
            json_decref(o);
            json_decref(spec);
            free(rows);
            store_sweep_clear(&sw);
            api_reply_vaed(req, rc, &err);
            return;
        }
        rc = o ? api_reply_json(req, 200, o) : VAED_ENOMEM;
    }
    json_decref(spec);
    free(rows);
    store_sweep_clear(&sw);
    if (rc == VAED_ENOMEM)
        reply_err(req, VAED_ENOMEM, "", "%s", "out of memory writing the sweep");
}

static void h_sweep_cancel(api_req *req)
{
    vaed_err err;
    vaed_err_clear(&err);
    int n = 0;
    int64_t id = api_param_int(req, "id");
    int rc = jobs_sweep_cancel(ctx(req)->J, id, &n, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    api_reply_json(req, 200, json_pack("{s:I, s:i}", "id", (json_int_t)id, "cancelled", n));
}


static json_t *doubles(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, isfinite(v[i]) ? json_real(v[i]) : json_null());
    return a;
}

static json_t *steps(const int64_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

static void h_sweep_metrics(api_req *req)
{
    static const char *const allowed[] = {"field", "max_points", NULL};
    if (api_query_only(req, allowed))
        return;
    const char *field = api_query_get(req, "field");
    int c = field ? store_mcol_by_name(field) : -1;
    if (c < 0) {
        reply_err(req, VAED_EINVAL, "field",
                  "one metric column (epoch, beta, loss, xent, kl, elbo, ...), not "
                  "\"%s\"",
                  field ? field : "");
        return;
    }
    int64_t maxp = api_query_num(req, "max_points", 2, 100000, 500);
    if (maxp == API_QUERY_BAD)
        return;
    vaed_err err;
    vaed_err_clear(&err);
    store_sweep sw;
    int rc = store_sweep_get(ctx(req)->st, api_param_int(req, "id"), 1, &sw, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; !rc && i < sw.n; i++) {
        store_series s;
        memset(&s, 0, sizeof s);
        rc = store_metrics_downsample(ctx(req)->st, sw.trials[i].job, -1, -1, STORE_MCOL(c),
                                      (size_t)maxp, &s, &err);
        if (rc)
            break;
        json_t *o = json_pack("{s:I, s:I, s:o}", "trial", (json_int_t)sw.trials[i].trial, "job",
                              (json_int_t)sw.trials[i].job, "step", steps(s.step, s.n));
        if (o)
            json_object_set_new(o, field, doubles(s.col[c], s.col[c] ? s.n : 0));
        store_series_free(&s);
        if (!o || json_array_append_new(arr, o))
            rc = vaed_err_set(&err, VAED_ENOMEM, "", "out of memory");
    }
    store_sweep_clear(&sw);
    if (rc || !arr) {
        json_decref(arr);
        api_reply_vaed(req, rc ? rc : VAED_ENOMEM, &err);
        return;
    }
    api_reply_json(req, 200, json_pack("{s:s, s:o}", "field", field, "trials", arr));
}

/* ---- a PBT member's stitched schedule -------------------------------------------- */

/* The schedule events of job that governed its steps, by effective step (the last one
 * recorded wins at a step). OUT *ev, *n (store_events_free). */
static int governing(store *st, int64_t job, store_event **ev, size_t *n, vaed_err *err)
{
    int rc = store_events_list(st, job, ev, n, err);
    if (rc)
        return rc;
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        if ((*ev)[i].superseded) {
            free((*ev)[i].schedule);
            continue;
        }
        store_event e = (*ev)[i];
        size_t j = k; /* insertion by effective step, a later seq after an equal step */
        while (j > 0 && (*ev)[j - 1].effective_step > e.effective_step) {
            (*ev)[j] = (*ev)[j - 1];
            j--;
        }
        (*ev)[j] = e;
        k++;
    }
    *n = k;
    return 0;
}

/* Append (step, schedule text) to changes. One that repeats the last one's schedule is
 * kept: putting a schedule in force again restarts a controller's state, so the replay
 * must do it where the member did. */
static int add_change(json_t *changes, int64_t step, const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    if (!doc)
        return VAED_ENOMEM;
    return json_array_append_new(changes, json_pack("{s:I, s:o}", "step", (json_int_t)step,
                                                    "schedule", doc))
               ? VAED_ENOMEM
               : 0;
}

/* The member's lineage back from (job, steps): each ancestor's job and the steps
 * [from, to) whose state it made, oldest first, and the schedule changes that governed
 * them. A member that took a donor's state at S holds, at S, what the donor made. */
static int stitch(store *st, int64_t job, int64_t steps, const store_pbt_decision *d, size_t nd,
                  json_t *lineage, json_t *changes, vaed_err *err)
{
    typedef struct seg { int64_t job, from, to; } seg;
    seg *sg = calloc(nd + 1, sizeof *sg);
    if (!sg)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    size_t ns = 0;
    int64_t j = job, u = steps;
    while (ns <= nd) {
        const store_pbt_decision *x = NULL; /* j's last exploit at or before u */
        for (size_t i = 0; i < nd; i++)
            if (d[i].job == j && d[i].donor && d[i].step <= u && (!x || d[i].step > x->step))
                x = &d[i];
        sg[ns++] = (seg){j, x ? x->step : 0, u};
        if (!x)
            break;
        j = x->donor;
        u = x->step;
    }
    int rc = 0;
    for (size_t i = ns; !rc && i-- > 0;) {
        if (sg[i].from >= sg[i].to && i > 0)
            continue; /* a donor that had itself just taken a state: nothing of its own */
        store_event *ev = NULL;
        size_t n = 0;
        if ((rc = governing(st, sg[i].job, &ev, &n, err)))
            break;
        const store_event *in = NULL;
        for (size_t k = 0; k < n && ev[k].effective_step <= sg[i].from; k++)
            in = &ev[k];
        if (in)
            rc = add_change(changes, sg[i].from, in->schedule);
        for (size_t k = 0; !rc && k < n; k++)
            if (ev[k].effective_step > sg[i].from && ev[k].effective_step < sg[i].to)
                rc = add_change(changes, ev[k].effective_step, ev[k].schedule);
        store_events_free(ev, n);
        if (!rc && json_array_append_new(lineage,
                                         json_pack("{s:I, s:I, s:I}", "job", (json_int_t)sg[i].job,
                                                   "from_step", (json_int_t)sg[i].from, "to_step",
                                                   (json_int_t)sg[i].to)))
            rc = VAED_ENOMEM;
        if (rc == VAED_ENOMEM)
            vaed_err_set(err, rc, NULL, "out of memory");
    }
    free(sg);
    return rc;
}

static void h_trial_schedule(api_req *req)
{
    vaed_err err;
    vaed_err_clear(&err);
    store *st = ctx(req)->st;
    int64_t id = api_param_int(req, "id"), t = api_param_int(req, "t");
    store_sweep sw;
    int rc = store_sweep_get(st, id, 1, &sw, &err);
    if (rc) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    int64_t job = 0;
    for (size_t i = 0; i < sw.n; i++)
        if (sw.trials[i].trial == t)
            job = sw.trials[i].job;
    store_sweep_clear(&sw);
    if (!job) {
        api_reply_vaed(req, vaed_err_set(&err, VAED_ENOTFOUND, "t", "sweep %lld has no trial %lld",
                                         (long long)id, (long long)t),
                       &err);
        return;
    }
    store_job jr;
    if ((rc = store_job_get(st, job, &jr, &err))) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    store_pbt_decision *d = NULL;
    size_t nd = 0;
    json_t *lineage = json_array(), *changes = json_array(), *spec = NULL;
    rc = store_pbt_list(st, id, &d, &nd, &err);
    if (!rc)
        rc = stitch(st, job, jr.step, d, nd, lineage, changes, &err);
    if (!rc && json_array_size(changes) == 0)
        rc = vaed_err_set(&err, VAED_ENOTFOUND, NULL, "job %lld has no recorded schedule",
                          (long long)job);
    json_t *first = json_object_get(json_array_get(changes, 0), "schedule");
    if (!rc) {
        /* a job that replays it: the member's spec, its schedule at step 0 and the rest as
         * schedule_changes (docs/api.md) */
        spec = json_loads(jr.spec, 0, NULL);
        json_t *rest = json_array();
        for (size_t i = 1; rest && i < json_array_size(changes); i++)
            json_array_append(rest, json_array_get(changes, i));
        char nm[256];
        snprintf(nm, sizeof nm, "replay of sweep %lld trial %lld", (long long)id, (long long)t);
        if (!spec || !rest || json_object_set(spec, "schedule", first) ||
            json_object_set_new(spec, "schedule_changes", json_incref(rest)) ||
            json_object_set_new(spec, "name", json_string(nm)))
            rc = vaed_err_set(&err, VAED_ENOMEM, NULL, "out of memory");
        json_decref(rest);
    }
    if (rc) {
        json_decref(spec);
        json_decref(lineage);
        json_decref(changes);
        api_reply_vaed(req, rc, &err);
    } else {
        api_reply_json(req, 200,
                       json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "sweep", (json_int_t)id,
                                 "trial", (json_int_t)t, "job", (json_int_t)job, "steps",
                                 (json_int_t)jr.step, "lineage", lineage, "changes", changes,
                                 "spec", spec));
    }
    store_pbt_free(d, nd);
    store_job_clear(&jr);
}

static const api_route routes[] = {
    {"POST", "/v1/sweeps", h_sweep_post, API_SCOPE_ADMIN},
    {"GET", "/v1/sweeps", h_sweep_list, API_SCOPE_READ},
    {"GET", "/v1/sweeps/{id}", h_sweep_get, API_SCOPE_READ},
    {"POST", "/v1/sweeps/{id}/cancel", h_sweep_cancel, API_SCOPE_ADMIN},
    {"GET", "/v1/sweeps/{id}/metrics", h_sweep_metrics, API_SCOPE_READ},
    {"GET", "/v1/sweeps/{id}/trials/{t:u}/schedule", h_trial_schedule, API_SCOPE_READ},
};

const api_route *api_sweep_routes(size_t *n)
{
    *n = sizeof routes / sizeof *routes;
    return routes;
}
