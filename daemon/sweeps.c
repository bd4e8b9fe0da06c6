/* sweeps.c — a sweep's submission and its cancel (daemon/jobs.h: jobs_sweep_*).
 *
 * Everything is checked before anything is stored: the request's keys, the space's
 * points (daemon/sweep_gen.h), and every trial's spec — the base with the trial's point
 * written at its path — through the same parse and checks as a submitted job
 * (job_prepare). Then the sweep and all its trials' jobs are one writer transaction
 * (store_sweep_insert), so a crash keeps all of them or none, and each trial is in the
 * ordinary durable queue: recovery runs it once, like any job. The concurrency limit is
 * the queue's (queue.c next_queued), from the job's sweep_id and sweep_conc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/asha.h"
#include "daemon/job.h"
#include "daemon/log.h"
#include "daemon/pbt.h"
#include "daemon/sweep_gen.h"
#include "store/sweeps.h"

static int known_key(const char *k, const char *const *keys)
{
    for (int i = 0; keys[i]; i++)
        if (!strcmp(k, keys[i]))
            return 1;
    return 0;
}

static int get_int(const json_t *doc, const char *key, int64_t lo, int64_t hi, int64_t def,
                   int64_t *out, vaed_err *err)
{
    const json_t *v = json_object_get(doc, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return vaed_err_set(err, VAED_EINVAL, key, "a whole number from %lld to %lld",
                            (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return 0;
}

typedef struct sweep_req {
    const char *name;
    const json_t *base, *space;
    enum sweep_method method;
    int64_t seed, max_trials, concurrency;
    const char *metric, *direction;
    asha_cfg asha;              /* early_stop, parsed once the base's epochs are known */
    pbt_cfg pbt;                /* pbt, likewise */
} sweep_req;

static int parse_objective(const json_t *o, sweep_req *r, vaed_err *err)
{
    static const char *const metrics[] = {JOBS_SWEEP_METRICS, NULL};
    r->metric = "elbo";
    r->direction = NULL;
    if (o && !json_is_object(o))
        return vaed_err_set(err, VAED_EINVAL, "objective",
                            "{\"metric\": \"elbo\"|\"kl\"|\"xent\"|\"bound\", "
                            "\"direction\": \"max\"|\"min\"}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        if (strcmp(k, "metric") && strcmp(k, "direction"))
            return vaed_err_set(err, VAED_EINVAL, "objective",
                                "unknown key \"%s\" (known keys: metric, direction)",
                                k);
    }
    const json_t *m = json_object_get(o, "metric"), *d = json_object_get(o, "direction");
    if (m && (!json_is_string(m) || !known_key(json_string_value(m), metrics)))
        return vaed_err_set(err, VAED_EINVAL, "objective.metric",
                            "one of elbo, kl, xent, bound (the metrics a "
                            "trial records)");
    if (m)
        r->metric = json_string_value(m);
    if (d && (!json_is_string(d) || (strcmp(json_string_value(d), "max") &&
                                     strcmp(json_string_value(d), "min"))))
        return vaed_err_set(err, VAED_EINVAL, "objective.direction",
                            "\"max\" or \"min\"");
    /* the natural direction: a bound or an ELBO is better higher, a KL or xent lower */
    r->direction = d ? json_string_value(d)
                     : (!strcmp(r->metric, "elbo") || !strcmp(r->metric, "bound")) ? "max"
                                                                                  : "min";
    return 0;
}

static int parse_req(const json_t *doc, sweep_req *r, vaed_err *err)
{
    static const char *const keys[] = {"name", "base", "space", "method", "seed",
                                       "max_trials", "concurrency", "objective",
                                       "early_stop", "pbt", NULL};
    if (!json_is_object(doc))
        return vaed_err_set(err, VAED_EINVAL, "", "the body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)doc, k, v)
    {
        if (!known_key(k, keys))
            return vaed_err_set(err, VAED_EINVAL, k,
                                "%s: unknown key (known keys: name, base, space, method, seed, "
                                "max_trials, concurrency, objective, early_stop, pbt)",
                                k);
    }
    const json_t *n = json_object_get(doc, "name");
    if (n && !json_is_string(n))
        return vaed_err_set(err, VAED_EINVAL, "name", "a string");
    r->name = n ? json_string_value(n) : "sweep";
    r->base = json_object_get(doc, "base");
    if (!json_is_object(r->base))
        return vaed_err_set(err, VAED_EINVAL, "base", "a job spec (a JSON object)");
    if (json_object_get(r->base, "from"))
        return vaed_err_set(err, VAED_EINVAL, "base.from", "a sweep's trials "
                                                           "start from scratch, not forks");
    r->space = json_object_get(doc, "space");
    const json_t *m = json_object_get(doc, "method");
    if (m && (!json_is_string(m) || (strcmp(json_string_value(m), "grid") &&
                                     strcmp(json_string_value(m), "random"))))
        return vaed_err_set(err, VAED_EINVAL, "method", "\"grid\" or \"random\"");
    r->method = m && !strcmp(json_string_value(m), "random") ? SWEEP_RANDOM : SWEEP_GRID;
    int rc = get_int(doc, "seed", 0, INT64_MAX, 0, &r->seed, err);
    if (!rc && r->method == SWEEP_RANDOM && !json_object_get(doc, "max_trials"))
        rc = vaed_err_set(err, VAED_EINVAL, "max_trials",
                          "a random sweep needs its number of trials");
    if (!rc)
        rc = get_int(doc, "max_trials", 1, SWEEP_MAX_TRIALS, 100, &r->max_trials, err);
    if (!rc)
        rc = get_int(doc, "concurrency", 1, 1000, 1, &r->concurrency, err);
    if (!rc)
        rc = parse_objective(json_object_get(doc, "objective"), r, err);
    return rc;
}

/* Write v at the dotted path of doc, making the objects on the way. */
static int set_path(json_t *doc, const char *path, const json_t *v, vaed_err *err)
{
    char buf[256];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf || !path[0])
        return vaed_err_set(err, VAED_EINVAL, "space", "a path of 1 to 255 characters");
    json_t *o = doc;
    char *seg = buf;
    for (char *dot; (dot = strchr(seg, '.')); seg = dot + 1) {
        *dot = '\0';
        json_t *next = json_object_get(o, seg);
        if (!next) {
            next = json_object();
            if (!next || json_object_set_new(o, seg, next))
                return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
        } else if (!json_is_object(next)) {
            char f[300];
            snprintf(f, sizeof f, "space.%s", path);
            return vaed_err_set(err, VAED_EINVAL, f, "\"%s\" is not an object in the spec", seg);
        }
        o = next;
    }
    if (!seg[0] || json_object_set_new(o, seg, json_deep_copy(v)))
        return vaed_err_set(err, VAED_EINVAL, "space", "bad path \"%s\"", path);
    return 0;
}

/* The space path a trial's spec error belongs to: the one the parser's field is at or
 * under (or above), else the first one (the base alone parsed, so a point caused it). */
static const char *blame(const json_t *space, const char *field)
{
    const char *path, *first = NULL;
    json_t *d;
    json_object_foreach((json_t *)space, path, d)
    {
        if (!first)
            first = path;
        size_t lp = strlen(path), lf = strlen(field);
        if (!strcmp(path, field) || (lf > lp && !strncmp(field, path, lp) && field[lp] == '.') ||
            (lp > lf && lf > 0 && !strncmp(path, field, lf) && path[lf] == '.'))
            return path;
    }
    return first;
}

typedef struct trial {
    vae_spec spec;
    char *text, *stext, *point, *name;
} trial;

static void trials_free(trial *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++) {
        free(t[i].text);
        free(t[i].stext);
        free(t[i].point);
        free(t[i].name);
    }
    free(t);
}

/* Parse trial i's spec into t; errors name space.<path>. */
static int prepare_trial(jobs *J, const sweep_req *r, const json_t *pt, size_t i, trial *t,
                         vaed_err *err)
{
    json_t *doc = json_deep_copy(r->base);
    if (!doc)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    int rc = 0;
    if (!json_object_get(r->space, "name")) { /* tell the trials apart in the job list */
        const json_t *bn = json_object_get(r->base, "name");
        char nm[200];
        snprintf(nm, sizeof nm, "%s-t%zu", json_is_string(bn) ? json_string_value(bn) : r->name,
                 i);
        json_object_set_new(doc, "name", json_string(nm));
    }
    const char *path;
    json_t *v;
    json_object_foreach((json_t *)pt, path, v)
    {
        if ((rc = set_path(doc, path, v, err)))
            break;
    }
    if (!rc && (rc = job_prepare(J, doc, &t->spec, &t->text, &t->stext, err)) != 0 &&
        err && rc != VAED_ENOMEM) {
        const char *p = blame(r->space, err->field);
        char was[sizeof err->msg];
        snprintf(was, sizeof was, "%s", err->msg);
        char *val = json_dumps(json_object_get(pt, p), JSON_ENCODE_ANY | JSON_COMPACT);
        char f[sizeof err->field];
        snprintf(f, sizeof f, "space.%s", p);
        vaed_err_set(err, rc, f, "trial %zu (%s): %s", i, val ? val : "?", was);
        free(val);
    }
    if (!rc) {
        t->point = json_dumps(pt, JSON_COMPACT);
        t->name = strdup(t->spec.name);
        if (!t->point || !t->name)
            rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    }
    json_decref(doc);
    return rc;
}

/* The request as stored: every default filled in, so GET shows what ran. */
static json_t *normalized(const sweep_req *r)
{
    json_t *o = json_pack("{s:s, s:O, s:O, s:s, s:I, s:I, s:I, s:{s:s, s:s}}", "name", r->name,
                          "base", r->base, "space", r->space, "method",
                          r->method == SWEEP_GRID ? "grid" : "random", "seed",
                          (json_int_t)r->seed, "max_trials", (json_int_t)r->max_trials,
                          "concurrency", (json_int_t)r->concurrency, "objective", "metric",
                          r->metric, "direction", r->direction);
    if (o && r->asha.on && json_object_set_new(o, "early_stop", asha_json(&r->asha))) {
        json_decref(o);
        return NULL;
    }
    if (o && r->pbt.on && json_object_set_new(o, "pbt", pbt_json(&r->pbt))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* PBT's members take each other's checkpoints: the space may vary only what a fork may
 * change (daemon/fork.h) and the members' schedules, learning rates and seeds, and PBT
 * replaces early stopping. */
static int pbt_space_check(const sweep_req *r, vaed_err *err)
{
    if (!r->pbt.on)
        return 0;
    if (r->asha.on)
        return vaed_err_set(err, VAED_EINVAL, "pbt",
                            "a sweep has either early_stop or pbt: PBT's bottom members "
                            "take the top's checkpoints instead of stopping");
    const char *path;
    json_t *v;
    json_object_foreach((json_t *)r->space, path, v)
    {
        if (!strcmp(path, "schedule") || !strncmp(path, "schedule.", 9) ||
            !strncmp(path, "optimizer.", 10) || !strcmp(path, "train.seed") ||
            !strcmp(path, "name"))
            continue;
        char f[sizeof err->field];
        snprintf(f, sizeof f, "space.%s", path);
        return vaed_err_set(err, VAED_EINVAL, f,
                            "a PBT member takes other members' checkpoints, so the space may "
                            "vary only schedule.*, optimizer.* and train.seed");
    }
    return 0;
}

int jobs_sweep_submit(jobs *J, const json_t *doc, int64_t *id, vaed_err *err)
{
    sweep_req r;
    int rc = parse_req(doc, &r, err);
    if (rc)
        return rc;
    /* the base alone first, so an error of its own names base.<field> */
    {
        vae_spec bs;
        char *t1 = NULL, *t2 = NULL;
        rc = job_prepare(J, r.base, &bs, &t1, &t2, err);
        free(t1);
        free(t2);
        if (rc) {
            if (err && rc != VAED_ENOMEM) {
                char f[sizeof err->field + 8], was[sizeof err->msg];
                snprintf(f, sizeof f, "base%s%s", err->field[0] ? "." : "", err->field);
                snprintf(was, sizeof was, "%s", err->msg);
                vaed_err_set(err, rc, f, "%s", was);
            }
            return rc;
        }
        /* early_stop after the base: its max_epochs defaults to the base's epochs */
        if ((rc = asha_parse(json_object_get(doc, "early_stop"), r.metric,
                             !strcmp(r.direction, "max"), bs.train.epochs, &r.asha, err)))
            return rc;
        if ((rc = pbt_parse(json_object_get(doc, "pbt"), r.metric, !strcmp(r.direction, "max"),
                            (uint64_t)r.seed, bs.train.epochs, &r.pbt, err)))
            return rc;
        if ((rc = pbt_space_check(&r, err)))
            return rc;
        if (r.pbt.on && !bs.dataset.name[0] && !bs.dataset.test_path[0] &&
            !(bs.dataset.validation_fraction > 0))
            return vaed_err_set(err, VAED_EINVAL, "base.dataset.test_path",
                                "PBT ranks its members on the test split: give the base a "
                                "test_path or a validation_fraction");
    }
    json_t *points = NULL;
    if ((rc = sweep_points(r.space, r.method, (uint64_t)r.seed, r.max_trials, &points, err)))
        return rc;
    size_t n = json_array_size(points);
    trial *t = calloc(n, sizeof *t);
    store_sweep_trial_new *nt = calloc(n, sizeof *nt);
    int64_t *job_ids = calloc(n, sizeof *job_ids);
    json_t *norm = normalized(&r);
    char *spec = norm ? json_dumps(norm, JSON_COMPACT) : NULL;
    json_decref(norm);
    if (!t || !nt || !job_ids || !spec)
        rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory for %zu trials", n);
    for (size_t i = 0; !rc && i < n; i++) {
        rc = prepare_trial(J, &r, json_array_get(points, i), i, &t[i], err);
        if (!rc && r.pbt.on && (rc = pbt_check_schedule(&r.pbt, &t[i].spec.schedule, err)))
            vaed_err_prefix(err, "trial %zu: ", i);
        nt[i] = (store_sweep_trial_new){t[i].name, t[i].text, t[i].spec.priority, t[i].stext,
                                        t[i].point};
    }
    if (!rc) {
        pthread_mutex_lock(&J->mu);
        int queued = job_count_queued(J);
        pthread_mutex_unlock(&J->mu);
        if (queued + (int64_t)n > J->cfg.max_queued)
            rc = vaed_err_set(err, VAED_EBUSY, "queue",
                              "%d jobs are queued already: %zu trials do not fit under the "
                              "limit of %d",
                              queued, n, J->cfg.max_queued);
    }
    if (!rc) {
        store_sweep_new sw = {r.name, spec, (int)r.concurrency, n, nt};
        rc = store_sweep_insert(J->st, &sw, id, job_ids, err);
        if (rc == VAED_EINVAL) /* texts we just wrote: a failed allocation (submit.c) */
            rc = VAED_ENOMEM;
    }
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            job_enqueue_new(J, job_ids[i], &t[i].spec, *id, (int)r.concurrency);
        log_msg(LOG_INFO, "sweep %lld queued: %s, %zu trials, %lld at once", (long long)*id,
                r.name, n, (long long)r.concurrency);
    }
    trials_free(t, n);
    free(nt);
    free(job_ids);
    free(spec);
    json_decref(points);
    return rc;
}

int jobs_sweep_cancel(jobs *J, int64_t id, int *n, vaed_err *err)
{
    store_sweep sw;
    int rc = store_sweep_get(J->st, id, 1, &sw, err);
    if (n)
        *n = 0;
    if (rc)
        return rc;
    int first = 0;
    /* queued and paused ones first, so no trial starts while a running one stops */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sw.n; i++) {
            const char *s = sw.trials[i].state;
            int running = !strcmp(s, "running");
            int live = running || !strcmp(s, "queued") || !strcmp(s, "paused") ||
                       !strcmp(s, "interrupted");
            if (!live || running != (pass == 1))
                continue;
            vaed_err e2;
            int r2 = jobs_cancel(J, sw.trials[i].job, &e2);
            if (r2 == 0 && n)
                (*n)++;
            else if (r2 && r2 != VAED_ESTATE && r2 != VAED_ENOTFOUND && !first) {
                first = r2;
                if (err)
                    *err = e2;
            }
        }
    store_sweep_clear(&sw);
    return first;
}

int sweep_policies_load(jobs *J, const job *jb, asha_cfg *asha, pbt_cfg *pbt, vaed_err *err)
{
    memset(asha, 0, sizeof *asha);
    memset(pbt, 0, sizeof *pbt);
    if (jb->sweep_id <= 0)
        return 0;
    store_sweep sw;
    int rc = store_sweep_get(J->st, jb->sweep_id, 0, &sw, err);
    if (rc)
        return rc;
    json_t *spec = json_loads(sw.spec, 0, NULL);
    store_sweep_clear(&sw);
    if (!spec)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "sweep %lld: its request cannot be read",
                            (long long)jb->sweep_id);
    const json_t *o = json_object_get(spec, "objective");
    const char *m = json_string_value(json_object_get(o, "metric"));
    const char *d = json_string_value(json_object_get(o, "direction"));
    /* stored normalized by jobs_sweep_submit, so it parses as it did then */
    rc = asha_parse(json_object_get(spec, "early_stop"), m ? m : "elbo", !d || !strcmp(d, "max"),
                    jb->spec.train.epochs, asha, err);
    if (!rc)
        rc = pbt_parse(json_object_get(spec, "pbt"), m ? m : "elbo", !d || !strcmp(d, "max"),
                       (uint64_t)json_integer_value(json_object_get(spec, "seed")),
                       jb->spec.train.epochs, pbt, err);
    json_decref(spec);
    return rc;
}

int sweep_asha_stop(jobs *J, const job *jb, const asha_cfg *cfg, int epoch, double v,
                    char *reason, size_t reason_len)
{
    int k = asha_rung(cfg, epoch);
    if (k < 0)
        return 0;
    double *vals = NULL;
    size_t n = 0, rank = 0, keep = 0;
    vaed_err err;
    if (store_sweep_rung_values(J->st, jb->sweep_id, jb->id, epoch, cfg->metric, &vals, &n,
                                &err)) {
        log_msg(LOG_WARN, "job %lld: asha rung %d not read, the trial goes on: %s",
                (long long)jb->id, k, err.msg);
        return 0;
    }
    int go = asha_decide(v, vals, n, cfg->maximize, cfg->eta, &rank, &keep);
    free(vals);
    snprintf(reason, reason_len,
             "asha: rung %d (epoch %d): %s %.6f is number %zu, %s the top %zu of %zu", k,
             epoch, cfg->metric, v, rank, go ? "in" : "not in", keep, n + 1);
    log_msg(LOG_INFO, "job %lld %s: %s", (long long)jb->id, go ? "goes on" : "stops", reason);
    if (go)
        reason[0] = '\0';
    return !go;
}
