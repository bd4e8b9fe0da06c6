/* submit.c — a new job: its spec validated (dataset paths inside --data-dir, memory
 * within --max-job-memory, the queue not full), stored with its starting schedule as
 * the history's first event, and queued (daemon/jobs.h: jobs_submit). */
#include "daemon/job.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/bus.h"
#include "daemon/fork.h"
#include "daemon/log.h"
#include "daemon/paths.h"
#include "vae/data.h"

/* A server-side path must lie inside the data directory, both as written and once
 * every symlink is resolved. A path outside is refused (403) before the file system is
 * asked anything, so a client cannot learn which files exist elsewhere; only a path
 * inside can get "no such file" (422). */
int job_check_path(jobs *J, const char *path, const char *field, vaed_err *err)
{
    const jobs_datasets *ds = J->cfg.datasets;
    if (!path[0] || (ds && ds->owns_path(ds->ctx, J->st, path))) /* an uploaded dataset */
        return 0;
    if (!J->cfg.data_dir)
        return vaed_err_set(err, VAED_EPERM, field,
                            "server-side dataset paths are off (start the daemon with --data-dir)");
    return path_check_inside(path, J->cfg.data_dir, field, NULL, err);
}

int job_data_load(jobs *J, vae_spec *spec, vae_dataset **train, vae_dataset **test,
                  vaed_err *err)
{
    const jobs_datasets *ds = J->cfg.datasets;
    const char *fields[2] = {"dataset.path", "dataset.test_path"};
    char *paths[2] = {spec->dataset.path, spec->dataset.test_path};
    *train = *test = NULL;
    for (int i = 0; i < 2; i++) {
        char local[sizeof spec->dataset.path];
        int rc = job_check_path(J, paths[i], fields[i], err);
        if (!rc && paths[i][0] && ds && ds->local_path &&
            !(rc = ds->local_path(ds->ctx, J->st, paths[i], local, sizeof local, err)))
            memcpy(paths[i], local, sizeof local);
        if (rc) {
            if (!err->field[0])
                snprintf(err->field, sizeof err->field, "%s", fields[i]);
            return rc;
        }
    }
    return vae_data_load(&spec->dataset, train, test, err);
}

int jobs_job_vocab(jobs *J, const vae_spec *spec, vae_dataset **out, vaed_err *err)
{
    *out = NULL;
    if (spec->model.likelihood != VAE_LIK_CATEGORICAL)
        return vaed_err_set(err, VAED_EINVAL, "model.likelihood",
                            "only a categorical (text) model has a vocabulary");
    vae_dataset *train = NULL, *test = NULL;
    vae_spec local = *spec; /* its paths become this node's files */
    int rc = job_data_load(J, &local, &train, &test, err);
    vae_dataset_free(test);
    if (rc)
        return rc;
    if (train->kind != VAE_DATA_SEQ) {
        vae_dataset_free(train);
        return vaed_err_set(err, VAED_EINVAL, "dataset", "the job's dataset is not text");
    }
    *out = train;
    return 0;
}

/* Bytes a job is expected to need, before its data is read: the model at the data's
 * width and the data in memory. For built-in data both are known; for a file, its
 * size stands in for the data and the width is taken as 1 (the exact figure is
 * checked again once the data is loaded, failing the job if it is over). */
static size_t estimate(const vae_spec *s)
{
    long n = 70000, D = 784;
    size_t data = (size_t)n * D;
    if (s->dataset.path[0]) {
        struct stat sb;
        data = stat(s->dataset.path, &sb) == 0 ? (size_t)sb.st_size * 4 : 0;
        D = 1;
    } else if (s->dataset.limit > 0 && s->dataset.limit < 60000) {
        data = (size_t)(s->dataset.limit + 10000) * D;
    }
    return vae_model_bytes(s, (int)D, s->train.batch_size) + data;
}

int job_prepare(jobs *J, const json_t *doc, vae_spec *spec, char **text, char **stext,
                vaed_err *err)
{
    *text = *stext = NULL;
    const jobs_datasets *ds = J->cfg.datasets;
    int rc = ds ? ds->spec_parse(ds->ctx, J->st, spec, doc, err) /* dataset.id → its file */
                : vae_spec_parse(spec, doc, err);
    if (rc)
        return rc;
    /* Resolve relative paths against the data directory, so the stored spec is the
     * file that is read, whatever the daemon's working directory later is. */
    const char *fields[2] = {"dataset.path", "dataset.test_path"};
    char *paths[2] = {spec->dataset.path, spec->dataset.test_path};
    for (int i = 0; i < 2; i++) {
        if ((rc = job_check_path(J, paths[i], fields[i], err)))
            return rc;
        if (paths[i][0] && paths[i][0] != '/') {
            char full[PATH_MAX * 2];
            snprintf(full, sizeof full, "%s/%s", J->cfg.data_dir, paths[i]);
            if (strlen(full) >= sizeof spec->dataset.path)
                return vaed_err_set(err, VAED_EINVAL, fields[i], "path too long");
            snprintf(paths[i], sizeof spec->dataset.path, "%s", full);
        }
    }
    size_t need = estimate(spec);
    if (need > J->cfg.max_job_memory)
        return vaed_err_set(err, VAED_ETOOBIG, "model",
                            "the job needs about %zu MiB, over the daemon's --max-job-memory of "
                            "%zu MiB",
                            need >> 20, J->cfg.max_job_memory >> 20);
    json_t *full = vae_spec_to_json(spec);
    *text = json_dumps(full, JSON_COMPACT);
    json_t *sj = sched_to_json(&spec->schedule);
    *stext = json_dumps(sj, JSON_COMPACT);
    json_decref(full);
    json_decref(sj);
    if (!*text || !*stext) {
        free(*stext);
        free(*text);
        *text = *stext = NULL;
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory writing the job spec");
    }
    return 0;
}

void job_enqueue_new(jobs *J, int64_t id, const vae_spec *spec, int64_t sweep,
                     int sweep_conc)
{
    store_job sjb;
    int64_t seq = 0;
    if (store_job_get(J->st, id, &sjb, NULL) == 0) {
        seq = sjb.queue_seq;
        store_job_clear(&sjb);
    }
    bus_publish_state(J->cfg.bus, id, "queued", NULL); /* before a worker can start it */
    pthread_mutex_lock(&J->mu);
    if (!job_find(J, id)) { /* a cluster's node may have learnt of it already */
        job *jb = job_new(id, spec, seq, JOB_QUEUED);
        jb->sweep_id = sweep;
        jb->sweep_conc = sweep_conc;
        job_table_add(J, jb);
    }
    pthread_cond_signal(&J->work);
    pthread_mutex_unlock(&J->mu);
    log_msg(LOG_INFO, "job %lld queued: %s", (long long)id, spec->name);
}

static int submit_doc(jobs *J, const json_t *doc, fork_plan *fp, char **cev,
                      const int64_t *csteps, size_t nc, int64_t *id, vaed_err *err);

/* A spec's "schedule_changes" (sc, borrowed; NULL = none): [{"step": S, "schedule":
 * {...}}, ...], steps >= 1 and increasing, each schedule absolute. OUT *ev (n texts,
 * owned by the caller, free each) and *steps. VAED_EINVAL naming the field. */
#define SUBMIT_MAX_CHANGES 10000
static int parse_changes(const json_t *sc, char ***ev, int64_t **steps, size_t *n,
                         vaed_err *err)
{
    *ev = NULL;
    *steps = NULL;
    *n = 0;
    if (!sc)
        return 0;
    if (!json_is_array(sc) || json_array_size(sc) > SUBMIT_MAX_CHANGES)
        return vaed_err_set(err, VAED_EINVAL, "schedule_changes",
                            "a list of at most %d {\"step\": S, \"schedule\": {...}}",
                            SUBMIT_MAX_CHANGES);
    size_t m = json_array_size(sc);
    *ev = calloc(m ? m : 1, sizeof **ev);
    *steps = calloc(m ? m : 1, sizeof **steps);
    if (!*ev || !*steps)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    int64_t prev = 0;
    for (size_t i = 0; i < m; i++) {
        const json_t *c = json_array_get(sc, i), *st = json_object_get(c, "step");
        char f[64];
        snprintf(f, sizeof f, "schedule_changes[%zu]", i);
        if (!json_is_object(c) || json_object_size(c) != 2 || !json_is_integer(st) ||
            !json_object_get(c, "schedule"))
            return vaed_err_set(err, VAED_EINVAL, f, "{\"step\": S, \"schedule\": {...}}");
        if (json_integer_value(st) <= prev) {
            snprintf(f, sizeof f, "schedule_changes[%zu].step", i);
            return vaed_err_set(err, VAED_EINVAL, f,
                                "steps start at 1 and increase (step 0's schedule is the "
                                "spec's \"schedule\")");
        }
        prev = json_integer_value(st);
        char pre[80];
        snprintf(pre, sizeof pre, "schedule_changes[%zu].schedule", i);
        sched_spec sp;
        int rc = sched_parse(&sp, json_object_get(c, "schedule"), pre, 0, err);
        if (rc)
            return rc;
        json_t *j = sched_to_json(&sp);
        (*ev)[i] = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!(*ev)[i])
            return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
        (*steps)[i] = prev;
        *n = i + 1;
    }
    return 0;
}

/* jobs_submit of a spec document; fp says whether it is a fork (daemon/fork.h). */
static int submit_spec(jobs *J, const json_t *doc_in, fork_plan *fp, int64_t *id, vaed_err *err)
{
    /* schedule_changes are the job's history to be, not part of its spec: they are
     * recorded as overrides at their steps, which the worker applies like recovery's */
    const json_t *sc = json_object_get(doc_in, "schedule_changes");
    char **cev = NULL;
    int64_t *csteps = NULL;
    size_t nc = 0;
    json_t *doc = sc ? json_deep_copy(doc_in) : json_incref((json_t *)doc_in);
    if (!doc)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    json_object_del(doc, "schedule_changes");
    int rc = 0;
    if (sc && fp->parent)
        rc = vaed_err_set(err, VAED_EINVAL, "schedule_changes",
                          "a fork takes its history from its parent: give it a \"schedule\" "
                          "instead");
    if (!rc)
        rc = parse_changes(sc, &cev, &csteps, &nc, err);
    if (!rc)
        rc = submit_doc(J, doc, fp, cev, csteps, nc, id, err);
    for (size_t i = 0; cev && i < nc; i++)
        free(cev[i]);
    free(cev);
    free(csteps);
    json_decref(doc);
    return rc;
}

static int submit_doc(jobs *J, const json_t *doc, fork_plan *fp, char **cev,
                      const int64_t *csteps, size_t nc, int64_t *id, vaed_err *err)
{
    vae_spec spec;
    char *text = NULL, *stext = NULL;
    int rc = job_prepare(J, doc, &spec, &text, &stext, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&J->mu);
    int queued = job_count_queued(J);
    pthread_mutex_unlock(&J->mu);
    if (queued >= J->cfg.max_queued) {
        free(stext);
        free(text);
        return vaed_err_set(err, VAED_EBUSY, "queue", "%d jobs are queued already (the limit)",
                            queued);
    }
    /* With schedule_changes the row is stored failed until its whole history is: a crash
     * in between leaves a job that says so, never one that runs without its changes */
    /* ... and on a cluster's node until its history (a fork's checkpoint, the submit
     * event) is written: another node would take a queued row at once (cluster.c) */
    int staged = nc || J->cluster;
    store_job_new nj = {.name = spec.name, .spec = text, .priority = spec.priority,
                        .parent_id = fp->parent, .parent_step = fp->step,
                        .state = staged ? "failed" : NULL};
    /* Both texts were just written from a parsed spec: a store that calls them invalid
     * met a failed allocation (jansson's dump can drop a key then, SQLite's json_valid
     * says 0), so the client hears that, not that its spec was wrong. */
    rc = store_job_insert(J->st, &nj, id, err);
    int inserted = rc == 0;
    if (rc == VAED_EINVAL)
        rc = VAED_ENOMEM;
    if (rc == 0)
        rc = fork_commit(J->st, *id, fp, err); /* a fork's starting checkpoint; else no-op */
    if (rc == 0 && (rc = store_event_add(J->st, *id, 0, fp->step, stext, "submit", 1, NULL,
                                         err)) == VAED_EINVAL)
        rc = VAED_ENOMEM;
    if (rc == 0 && nc)
        rc = store_job_set_state(J->st, *id, "failed",
                                 "submission interrupted while its schedule_changes were "
                                 "recorded",
                                 err);
    for (size_t i = 0; rc == 0 && i < nc; i++)
        if ((rc = store_event_add(J->st, *id, 0, csteps[i], cev[i], "override", 1, NULL, err)) ==
            VAED_EINVAL)
            rc = VAED_ENOMEM;
    if (rc == 0 && staged)
        rc = store_job_set_state(J->st, *id, "queued", NULL, err);
    free(stext);
    free(text);
    if (rc && inserted) {
        /* The row is in the store but the submission failed: left queued, the next
         * start of the daemon would run a job its client was told did not exist. */
        char why[sizeof err->msg + 32];
        snprintf(why, sizeof why, "submission failed: %s", err ? err->msg : "store error");
        store_job_set_state(J->st, *id, "failed", why, NULL);
    }
    if (rc)
        return rc;
    job_enqueue_new(J, *id, &spec, 0, 0);
    return 0;
}

int jobs_submit(jobs *J, const json_t *doc, int64_t *id, vaed_err *err)
{
    /* A request with "from" becomes the child's full spec first (daemon/fork.h). */
    json_t *forked = NULL;
    fork_plan fp;
    int rc = fork_prepare(J->st, doc, &forked, &fp, err);
    if (rc == 0)
        rc = submit_spec(J, forked ? forked : doc, &fp, id, err);
    json_decref(forked);
    fork_plan_free(&fp);
    return rc;
}

