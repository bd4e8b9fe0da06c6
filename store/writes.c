/* writes.c — the store's write calls (store.h): each checks its arguments, copies them
 * into an op (writer_ops.h) and queues it for the writer thread (writer.c), waiting for
 * the commit when the call's contract says so. */
#include "store/store.h"
#include "store/store_impl.h"
#include "store/writer_call.h"
#include "store/writer_ops.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {STORE_STATE_NAMES};

unsigned store_state_bit(const char *state)
{
    for (size_t i = 0; state && i < sizeof state_names / sizeof state_names[0]; i++)
        if (strcmp(state, state_names[i]) == 0)
            return 1u << i;
    return 0;
}

static int check_state(const char *state, vaed_err *err)
{
    if (!store_state_bit(state))
        return vaed_err_set(err, VAED_EINVAL, "state", "unknown job state \"%s\"",
                            state ? state : "(null)");
    return 0;
}

/* json_valid() in the schema is the last word; this catches the common mistake at
 * the caller, with a message, instead of in the writer. */
static int check_json(const char *text, const char *field, vaed_err *err)
{
    json_error_t je;
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, &je) : NULL;
    /* jansson reports a failed allocation as a syntax error (or as nothing) on some
     * paths: parse a text that failed once again before calling it invalid. */
    if (!j && text)
        j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j && text && json_error_code(&je) == json_error_out_of_memory)
        return vaed_err_set(err, VAED_ENOMEM, field, "out of memory checking the JSON");
    if (!j)
        return vaed_err_set(err, VAED_EINVAL, field, "not valid JSON: %s",
                            text ? je.text : "missing");
    json_decref(j);
    return 0;
}

int store_job_insert(store *st, const store_job_new *nj, int64_t *id, vaed_err *err)
{
    const char *state = nj->state ? nj->state : "queued";
    int rc = check_state(state, err);
    if (rc || (rc = check_json(nj->spec, "spec", err)))
        return rc;
    struct op *o = store_op_new(OP_JOB_INSERT, 0);
    o->u.insert.name = xstrdup(nj->name ? nj->name : "");
    o->u.insert.spec = xstrdup(nj->spec);
    snprintf(o->u.insert.state, sizeof o->u.insert.state, "%s", state);
    o->u.insert.priority = nj->priority;
    o->u.insert.parent_id = nj->parent_id;
    o->u.insert.parent_step = nj->parent_step;
    return store_writer_submit(st, o, 1, id, err);
}

int store_job_set_state(store *st, int64_t id, const char *state, const char *reason,
                        vaed_err *err)
{
    int rc = check_state(state, err);
    if (rc)
        return rc;
    struct op *o = store_op_new(OP_JOB_STATE, id);
    snprintf(o->u.state.state, sizeof o->u.state.state, "%s", state);
    o->u.state.reason = reason ? xstrdup(reason) : NULL;
    return store_writer_submit(st, o, 1, NULL, err);
}

int store_job_set_progress(store *st, int64_t id, int64_t step, double epoch, int wait,
                           vaed_err *err)
{
    struct op *o = store_op_new(OP_JOB_PROGRESS, id);
    o->u.progress.step = step;
    o->u.progress.epoch = epoch;
    return store_writer_submit(st, o, wait, NULL, err);
}

int store_job_requeue_front(store *st, int64_t id, vaed_err *err)
{
    return store_writer_submit(st, store_op_new(OP_JOB_FRONT, id), 1, NULL, err);
}

int store_job_set_priority(store *st, int64_t id, int priority, vaed_err *err)
{
    struct op *o = store_op_new(OP_JOB_PRIO, id);
    o->u.prio.priority = priority;
    return store_writer_submit(st, o, 1, NULL, err);
}

/* A block of metric rows owns its rows' kl_groups: n rows, then their groups. */
static size_t groups_of(const store_metric *rows, size_t n)
{
    size_t groups = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].n_groups > 0 && rows[i].kl_groups)
            groups += (size_t)rows[i].n_groups;
    return groups;
}

/* Copy n rows to dst, their groups to *g (advanced past them). */
static void rows_copy(store_metric *dst, double **g, const store_metric *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dst[i] = rows[i];
        if (rows[i].n_groups > 0 && rows[i].kl_groups) {
            memcpy(*g, rows[i].kl_groups, (size_t)rows[i].n_groups * sizeof(double));
            dst[i].kl_groups = *g;
            *g += rows[i].n_groups;
        } else {
            dst[i].n_groups = 0;
            dst[i].kl_groups = NULL;
        }
    }
}

int store_metrics_append(store *st, int64_t job, const store_metric *rows, size_t n,
                         vaed_err *err)
{
    if (n == 0)
        return 0;
    size_t groups = groups_of(rows, n);
    /* n comes from the caller's batch: request-sized, so a plain checked malloc. */
    if (n > SIZE_MAX / 2 / sizeof(store_metric))
        return vaed_err_set(err, VAED_ETOOBIG, "", "too many metric rows (%zu)", n);
    size_t sz = n * sizeof(store_metric) + groups * sizeof(double);
    store_metric *copy = malloc(sz);
    if (!copy)
        return vaed_err_set(err, VAED_ENOMEM, "", "no memory for %zu metric rows", n);
    double *g = (double *)(copy + n);
    rows_copy(copy, &g, rows, n);
    struct op *o = store_op_new(OP_METRICS, job);
    o->u.metrics.rows = copy;
    o->u.metrics.n = n;
    o->bytes += sz;
    return store_writer_submit(st, o, 0, NULL, err);
}

static int mergeable(const struct op *o)
{
    return o->kind == OP_METRICS && !o->w && !o->done;
}

/* Rows a merged op holds at most: a batch retried while the database is away is merged
 * again with what came since, and must not copy the whole backlog each time. */
#define MERGE_MAX_ROWS 4096

size_t store_metrics_merge(struct op *batch)
{
    size_t merged = 0;
    for (struct op *seg = batch; seg;) {
        struct op *end = seg;           /* the segment: metric ops up to any other op */
        while (end && end->kind == OP_METRICS)
            end = end->next;
        for (struct op *h = seg; h != end; h = h->next) {
            if (!mergeable(h))
                continue;
            size_t n = h->u.metrics.n, groups = groups_of(h->u.metrics.rows, n), more = 0;
            for (struct op *x = h->next; x != end; x = x->next)
                if (mergeable(x) && x->job == h->job && x->gen == h->gen) {
                    if (n + x->u.metrics.n > MERGE_MAX_ROWS)
                        break;          /* x and the job's rows after it: a later head */
                    n += x->u.metrics.n;
                    groups += groups_of(x->u.metrics.rows, x->u.metrics.n);
                    more++;
                }
            size_t sz = n * sizeof(store_metric) + groups * sizeof(double);
            store_metric *block = more ? malloc(sz) : NULL;
            if (!block)
                continue;               /* nothing to merge, or no memory: as they are */
            double *g = (double *)(block + n);
            rows_copy(block, &g, h->u.metrics.rows, h->u.metrics.n);
            size_t at = h->u.metrics.n;
            for (struct op **pp = &h->next; *pp != end;) {
                struct op *x = *pp;
                if (!mergeable(x) || x->job != h->job || x->gen != h->gen) {
                    pp = &x->next;
                    continue;
                }
                if (at + x->u.metrics.n > n)
                    break;              /* where the first pass stopped */
                rows_copy(block + at, &g, x->u.metrics.rows, x->u.metrics.n);
                at += x->u.metrics.n;
                h->bytes += x->bytes;
                *pp = x->next;
                store_op_free(x);
                merged++;
            }
            free(h->u.metrics.rows);
            h->u.metrics.rows = block;
            h->u.metrics.n = n;
        }
        seg = end ? end->next : NULL;
    }
    return merged;
}

int store_epoch_put(store *st, int64_t job, const store_epoch *e, vaed_err *err)
{
    struct op *o = store_op_new(OP_EPOCH, job);
    o->u.epoch = *e;
    o->u.epoch.split[sizeof o->u.epoch.split - 1] = '\0';
    o->u.epoch.kl_dims = NULL;
    if (e->n_dims > 0 && e->kl_dims) {
        size_t sz = (size_t)e->n_dims * sizeof(double);
        o->u.epoch.kl_dims = malloc(sz);
        if (!o->u.epoch.kl_dims) {
            store_op_free(o);
            return vaed_err_set(err, VAED_ENOMEM, "", "no memory for %d KL dims", e->n_dims);
        }
        memcpy(o->u.epoch.kl_dims, e->kl_dims, sz);
        o->bytes += sz;
    } else {
        o->u.epoch.n_dims = 0;
    }
    return store_writer_submit(st, o, 0, NULL, err);
}

int store_event_add(store *st, int64_t job, double requested_at, int64_t effective_step,
                    const char *schedule_json, const char *source, int wait,
                    int64_t *seq, vaed_err *err)
{
    if (!source || (strcmp(source, "submit") != 0 && strcmp(source, "override") != 0))
        return vaed_err_set(err, VAED_EINVAL, "source",
                            "must be \"submit\" or \"override\"");
    int rc = check_json(schedule_json, "schedule", err);
    if (rc)
        return rc;
    struct op *o = store_op_new(OP_EVENT, job);
    o->u.event.requested_at = requested_at;
    o->u.event.effective_step = effective_step;
    o->u.event.schedule = xstrdup(schedule_json);
    o->bytes += strlen(schedule_json);
    snprintf(o->u.event.source, sizeof o->u.event.source, "%s", source);
    return store_writer_submit(st, o, wait, seq, err);
}

int store_checkpoint_put(store *st, const store_ckpt_put *req, vaed_err *err)
{
    static const char *const kinds[] = {"periodic", "epoch", "final", "manual", "pause",
                                         "fork"};
    int known = 0;
    for (size_t i = 0; req->kind && i < sizeof kinds / sizeof kinds[0]; i++)
        known |= strcmp(req->kind, kinds[i]) == 0;
    if (!known) {
        if (req->give)
            free((void *)req->blob);
        return vaed_err_set(err, VAED_EINVAL, "kind", "unknown checkpoint kind \"%s\"",
                            req->kind ? req->kind : "(null)");
    }
    struct op *o = store_op_new(OP_CKPT, req->job);
    o->u.ckpt.step = req->step;
    o->u.ckpt.epoch = req->epoch;
    snprintf(o->u.ckpt.kind, sizeof o->u.ckpt.kind, "%s", req->kind);
    o->u.ckpt.keep = req->keep;
    o->u.ckpt.keep_epoch_end = req->keep_epoch_end;
    o->done = req->done;
    o->done_arg = req->done_arg;
    if (req->size > 0 && req->give) {
        o->u.ckpt.blob = (void *)req->blob;
        o->u.ckpt.size = req->size;
        o->bytes += req->size;
    } else if (req->size > 0) {
        o->u.ckpt.blob = malloc(req->size);
        if (!o->u.ckpt.blob) {
            store_op_free(o);
            return vaed_err_set(err, VAED_ENOMEM, "",
                                "no memory to copy a %zu-byte checkpoint", req->size);
        }
        memcpy(o->u.ckpt.blob, req->blob, req->size);
        o->u.ckpt.size = req->size;
        o->bytes += req->size;
    }
    return store_writer_submit(st, o, req->wait, NULL, err);
}


typedef struct kernels_arg {
    int64_t id;
    const char *kernels;
} kernels_arg;

static int do_set_kernels(sql_conn *db, void *arg, int *vrc, int64_t *out_id, char *msg,
                          size_t msgsz)
{
    const kernels_arg *a = arg;
    sql_stmt *s = NULL;
    (void)out_id;
    int rc = sql_prepare(db, "UPDATE jobs SET kernels = ?2 WHERE id = ?1", &s, NULL);
    if (rc != 0)
        return rc;
    sql_bind_int64(s, 1, a->id);
    sql_bind_text(s, 2, a->kernels);
    rc = store_wrun(s, NULL);
    if (rc == SQL_DONE && sql_changes(s) == 0) {
        *vrc = VAED_ENOTFOUND;
        snprintf(msg, msgsz, "job %lld not found", (long long)a->id);
    }
    sql_finalize(s);
    return rc;
}

int store_job_set_kernels(store *st, int64_t id, const char *kernels, vaed_err *err)
{
    if (!kernels || !*kernels || strlen(kernels) >= sizeof ((store_job *)0)->kernels)
        return vaed_err_set(err, VAED_EINVAL, "kernels", "kernels: 1 to %zu bytes",
                            sizeof ((store_job *)0)->kernels - 1);
    kernels_arg a = {id, kernels};
    return store_writer_call(st, id, do_set_kernels, &a, NULL, err);
}
