/* fork.c — forking a job from another job's checkpoint (see fork.h for the rules).
 *
 * Two halves: fork_merge, pure JSON work that the unit test drives directly, and
 * fork_prepare / fork_commit, which read the parent from the store and write the
 * child's starting checkpoint. Nothing here trains or touches a running job: the
 * parent may be running while it is forked (its checkpoints are committed rows). */
#include "daemon/fork.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vae/train.h"

/* ---- the merge (pure) --------------------------------------------------------------- */

/* Equal as values: numbers by value whatever their JSON type (a client writing 32.0
 * restates 32), strings byte for byte, arrays and objects element by element. */
static int same_value(const json_t *a, const json_t *b)
{
    if (!a || !b)
        return a == b;
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_array(a)) {
        size_t n = json_array_size(a);
        if (n != json_array_size(b))
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!same_value(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v) {
            if (!same_value(v, json_object_get(b, k)))
                return 0;
        }
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

/* The fields a fork must not change, by section ("*": every key), and why. */
typedef struct frozen_rule {
    const char *section, *key, *why;
} frozen_rule;

static const frozen_rule frozen[] = {
    {"dataset", "*", "a fork cannot change the run's data"},
    {"model", "*", "a fork cannot change the model's shape"},
    {"loss", "kl", "a fork cannot change how the KL term is estimated (it is part of the "
                   "checkpoint's model)"},
    {"loss", "samples", "a fork cannot change the number of samples per input (it is part of "
                        "the checkpoint's model)"},
    {"train", "batch_size", "a fork cannot change the batch size (the data order and the "
                            "checkpoint depend on it)"},
    {"train", "seed", "a fork cannot change the seed (the data order of the run depends on it)"},
    {NULL, NULL, NULL},
};

static const char *frozen_why(const char *section, const char *key)
{
    for (const frozen_rule *r = frozen; r->section; r++)
        if (!strcmp(r->section, section) && (!strcmp(r->key, "*") || !strcmp(r->key, key)))
            return r->why;
    return NULL;
}

/* "model.latent: a fork cannot change the model's shape (job 3 has 32)". */
static int frozen_err(vaed_err *err, const char *field, const char *why, const json_t *had,
                      int64_t parent)
{
    char *text = had ? json_dumps(had, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    int rc;
    if (text && strlen(text) <= 120)
        rc = vaed_err_set(err, VAED_EINVAL, field, "%s (job %lld has %s)", why,
                          (long long)parent, text);
    else if (!had)
        rc = vaed_err_set(err, VAED_EINVAL, field, "%s (job %lld has none)", why,
                          (long long)parent);
    else
        rc = vaed_err_set(err, VAED_EINVAL, field, "%s", why);
    free(text);
    return rc;
}

/* Merge the request's section `name` (value over) into child, key by key, checking the
 * frozen keys against the parent's values. A section that is not an object on either
 * side replaces the parent's whole (the parser then says what is wrong), unless the
 * section is frozen whole. */
static int merge_section(json_t *child, const char *name, const json_t *over, int64_t parent,
                         vaed_err *err)
{
    json_t *mine = json_object_get(child, name);
    char field[256];
    if (!json_is_object(over) || !json_is_object(mine)) {
        const char *why = frozen_why(name, "*");
        if (why && !same_value(over, mine))
            return frozen_err(err, name, why, mine, parent);
        json_object_set_new(child, name, json_deep_copy(over));
        return 0;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)over, k, v) {
        const char *why = frozen_why(name, k);
        json_t *had = json_object_get(mine, k);
        if (why) {
            /* A key the parent's spec does not have is a change too (an option that does
             * not apply to it, or an unknown key): never let one through unparsed. */
            if (!same_value(v, had)) {
                snprintf(field, sizeof field, "%s.%s", name, k);
                return frozen_err(err, field, why, had, parent);
            }
            continue;
        }
        json_object_set_new(mine, k, json_deep_copy(v));
    }
    return 0;
}

/* v as a whole number, by the spec's rule (an integral real counts); 0 if it is not. */
static int whole(const json_t *v, double *out)
{
    if (json_is_integer(v)) {
        *out = (double)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v) && isfinite(json_real_value(v)) &&
        json_real_value(v) == trunc(json_real_value(v))) {
        *out = json_real_value(v);
        return 1;
    }
    return 0;
}

/* Cut s (NUL-terminated, at most cap-1 bytes kept) at a UTF-8 character boundary. */
static void utf8_cut(char *s, size_t cap)
{
    size_t n = strlen(s);
    if (n < cap)
        return;
    n = cap - 1;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--; /* s[n] is a continuation byte: the character it belongs to would be split */
    s[n] = '\0';
}

int fork_merge(const json_t *parent_spec, const json_t *request, const fork_point *pt,
               json_t **child, vaed_err *err)
{
    *child = NULL;
    if (!json_is_object(parent_spec))
        return vaed_err_set(err, VAED_EINVAL, "from.job", "job %lld's stored spec is not an object",
                            (long long)pt->job);
    json_t *c = json_deep_copy(parent_spec);
    if (!c)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory copying the parent's spec");
    int rc = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)request, k, v) {
        if (!strcmp(k, "from") || !strcmp(k, "schedule"))
            continue; /* "from" says where; the schedule is done below, as a whole */
        if (!strcmp(k, "dataset") || !strcmp(k, "model") || !strcmp(k, "loss") ||
            !strcmp(k, "optimizer") || !strcmp(k, "train") || !strcmp(k, "checkpoint")) {
            if ((rc = merge_section(c, k, v, pt->job, err)))
                goto fail;
        } else {
            /* name, priority, and anything unknown (which the parser will name) */
            json_object_set_new(c, k, json_deep_copy(v));
        }
    }

    /* The schedule: the request's, resolved at S; else the one that governed the
     * parent's step S. */
    const json_t *rs = json_object_get(request, "schedule");
    if (rs) {
        sched_spec s;
        if ((rc = sched_parse(&s, rs, "schedule", 1, err)))
            goto fail;
        sched_resolve(&s, (long)pt->step, pt->steps_per_epoch, pt->beta);
        json_object_set_new(c, "schedule", sched_to_json(&s));
    } else if (pt->schedule) {
        json_object_set_new(c, "schedule", json_deep_copy(pt->schedule));
    }

    /* The learning rate in force at S carries on unless the request sets one. */
    const json_t *ro = json_object_get(request, "optimizer");
    json_t *co = json_object_get(c, "optimizer");
    if (pt->lr > 0 && json_is_object(co) && !(json_is_object(ro) && json_object_get(ro, "lr")))
        json_object_set_new(co, "lr", json_real(pt->lr));

    if (!json_object_get(request, "name")) {
        char name[128];
        snprintf(name, sizeof name, "%s (fork of job %lld at step %lld)",
                 pt->name ? pt->name : "job", (long long)pt->job, (long long)pt->step);
        utf8_cut(name, sizeof name);
        json_object_set_new(c, "name", json_string(name));
    }

    /* The child must have steps left to run after S. */
    const json_t *ep = json_object_get(json_object_get(c, "train"), "epochs");
    double e;
    if (ep && whole(ep, &e) && e >= 1 && pt->steps_per_epoch > 0 &&
        e * (double)pt->steps_per_epoch <= (double)pt->step) {
        long long need = (long long)(pt->step / pt->steps_per_epoch) + 1;
        rc = vaed_err_set(err, VAED_EINVAL, "train.epochs",
                          "%.0f epochs of %ld steps end at step %.0f, and the fork starts at "
                          "step %lld: ask for at least %lld epochs",
                          e, pt->steps_per_epoch, e * (double)pt->steps_per_epoch,
                          (long long)pt->step, need);
        goto fail;
    }
    *child = c;
    return 0;
fail:
    json_decref(c);
    return rc;
}

int fork_same_schedule(const sched_spec *a, const sched_spec *b)
{
    json_t *ja = sched_to_json(a), *jb = sched_to_json(b);
    int same = ja && jb && json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return same;
}

/* ---- reading the parent ------------------------------------------------------------- */

/* "from.step: job 3 has no checkpoint at step 41; it has checkpoints at steps 0, 20,
 * 40 (GET /v1/jobs/3/checkpoints)". */
static int no_checkpoint(store *st, int64_t parent, int64_t step, vaed_err *err)
{
    store_ckpt *ck = NULL;
    size_t n = 0;
    int rc = store_checkpoints_list(st, parent, &ck, &n, err);
    if (rc)
        return rc;
    char list[320] = "";
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s%lld", i ? ", " : "",
                         (long long)ck[i].step);
        if (w < 0 || (size_t)w >= sizeof list - used - 8) {
            snprintf(list + used, sizeof list - used, ", ...");
            break;
        }
        used += (size_t)w;
    }
    free(ck);
    if (n == 0)
        return vaed_err_set(err, VAED_EINVAL, "from.step", "job %lld has no checkpoint yet",
                            (long long)parent);
    return vaed_err_set(err, VAED_EINVAL, "from.step",
                        "job %lld has no checkpoint at step %lld; it has checkpoints at step%s "
                        "%s (GET /v1/jobs/%lld/checkpoints)",
                        (long long)parent, (long long)step, n > 1 ? "s" : "", list,
                        (long long)parent);
}

/* The parent's schedule that governed step S, as JSON (new reference), from its
 * schedule events: of those that governed a step (not superseded), the one with the
 * greatest effective step <= S. That includes a change the parent applied at S itself,
 * which a checkpoint at S (taken before the change) does not hold. NULL when none. */
static json_t *schedule_at(store *st, int64_t parent, int64_t step, vaed_err *err, int *rc)
{
    store_event *ev = NULL;
    size_t n = 0;
    *rc = store_events_list(st, parent, &ev, &n, err);
    if (*rc)
        return NULL;
    const store_event *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (!ev[i].superseded && ev[i].effective_step <= step &&
            (!best || ev[i].effective_step >= best->effective_step))
            best = &ev[i];
    json_t *out = best ? json_loads(best->schedule, 0, NULL) : NULL;
    store_events_free(ev, n);
    return out;
}

/* A whole number >= lo from a "from" field, by the spec's rule. */
static int from_int(const json_t *v, const char *field, long long lo, const char *what,
                    int64_t *out, vaed_err *err)
{
    double d;
    if (!whole(v, &d) || d < (double)lo || d > 9007199254740992.0)
        return vaed_err_set(err, VAED_EINVAL, field, "must be %s", what);
    *out = (int64_t)d;
    return 0;
}

int fork_prepare(store *st, const json_t *request, json_t **child, fork_plan *plan,
                 vaed_err *err)
{
    *child = NULL;
    memset(plan, 0, sizeof *plan);
    const json_t *from = json_is_object(request) ? json_object_get(request, "from") : NULL;
    if (!from)
        return 0;
    if (!json_is_object(from))
        return vaed_err_set(err, VAED_EINVAL, "from",
                            "must be an object {\"job\": ID, \"step\": S}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)from, k, v) {
        if (strcmp(k, "job") && strcmp(k, "step")) {
            char f[160];
            snprintf(f, sizeof f, "from.%.100s", k);
            return vaed_err_set(err, VAED_EINVAL, f, "unknown key (known keys: job, step)");
        }
    }
    int64_t parent = 0, step = -1;
    const json_t *jv = json_object_get(from, "job"), *sv = json_object_get(from, "step");
    if (!jv)
        return vaed_err_set(err, VAED_EINVAL, "from.job", "missing: the id of the job to fork");
    int rc = from_int(jv, "from.job", 1, "a job id (a positive integer)", &parent, err);
    if (rc == 0 && sv)
        rc = from_int(sv, "from.step", 0, "a step (an integer >= 0)", &step, err);
    if (rc)
        return rc;

    store_job pj;
    memset(&pj, 0, sizeof pj);
    json_t *pspec = NULL, *sched = NULL;
    void *blob = NULL;
    size_t size = 0;
    rc = store_job_get(st, parent, &pj, err);
    if (rc == VAED_ENOTFOUND)
        return vaed_err_set(err, VAED_EINVAL, "from.job", "no job %lld", (long long)parent);
    if (rc)
        return rc;
    store_ckpt meta;
    rc = store_checkpoint_get(st, parent, step, &meta, &blob, &size, err);
    if (rc == VAED_ENOTFOUND) {
        rc = no_checkpoint(st, parent, step, err);
        goto done;
    }
    if (rc)
        goto done;
    vae_ckpt_info info;
    if (vae_ckpt_peek(blob, size, &info) || info.step != meta.step || info.steps_per_epoch <= 0) {
        rc = vaed_err_set(err, VAED_EINVAL, "from.step",
                          "job %lld's checkpoint at step %lld cannot be read",
                          (long long)parent, (long long)meta.step);
        goto done;
    }
    pspec = json_loads(pj.spec, 0, NULL);
    if (!pspec) {
        rc = vaed_err_set(err, VAED_EINVAL, "from.job", "job %lld's stored spec cannot be read",
                          (long long)parent);
        goto done;
    }
    sched = schedule_at(st, parent, meta.step, err, &rc);
    if (rc)
        goto done;
    fork_point pt = {.job = parent, .step = meta.step, .steps_per_epoch = info.steps_per_epoch,
                     .beta = info.beta, .lr = info.lr, .schedule = sched, .name = pj.name};
    rc = fork_merge(pspec, request, &pt, child, err);
    if (rc)
        goto done;
    plan->parent = parent;
    plan->step = meta.step;
    plan->epoch = (double)meta.step / (double)info.steps_per_epoch;
    plan->blob = blob;
    plan->size = size;
    blob = NULL;
done:
    free(blob);
    json_decref(pspec);
    json_decref(sched);
    store_job_clear(&pj);
    return rc;
}

int fork_commit(store *st, int64_t child, fork_plan *plan, vaed_err *err)
{
    if (!plan->parent)
        return 0;
    store_ckpt_put req = {
        .job = child, .step = plan->step, .epoch = plan->epoch, .kind = "fork",
        .blob = plan->blob, .size = plan->size, .give = 1, .keep = 0, .wait = 1,
    };
    plan->blob = NULL; /* the store's now, on success and on error */
    plan->size = 0;
    int rc = store_checkpoint_put(st, &req, err);
    if (rc == 0)
        rc = store_job_set_progress(st, child, plan->step, plan->epoch, 1, err);
    if (rc) {
        char why[600];
        snprintf(why, sizeof why, "its starting checkpoint (job %lld at step %lld) could not be "
                 "copied: %s", (long long)plan->parent, (long long)plan->step, err ? err->msg : "");
        store_job_set_state(st, child, "failed", why, NULL);
    }
    return rc;
}

void fork_plan_free(fork_plan *plan)
{
    if (!plan)
        return;
    free(plan->blob);
    memset(plan, 0, sizeof *plan);
}
