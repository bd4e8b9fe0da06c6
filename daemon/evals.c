/* evals.c — evaluations as queued units of work (daemon/jobs.h: jobs_eval_*): the
 * importance-weighted bound of one checkpoint of a job (vae/eval.h), run by the job
 * workers, stored in the store (store/evals.h) block by block.
 *
 * Scheduling. An evaluation takes a worker like a job does, so it never slows a
 * running training job by more than one worker's share: with one worker it waits
 * until no job is running, with --workers 2 it runs beside one. A free worker takes
 * queued evaluations before queued jobs (an evaluation is minutes, and someone is
 * waiting for its number), oldest first. It runs on the worker's own thread with
 * single-threaded BLAS.
 *
 * Durability. Every block of VAE_EVAL_BLOCK rows is committed with its per-row figures
 * before the next begins; the block's draws depend only on (seed, block) (vae/eval.h),
 * so an evaluation stopped by SIGTERM, SIGKILL or a crash resumes at start-up from
 * the blocks it had committed and ends with the same bits as one that never stopped.
 * The summary (mean bound, standard errors, MI, active units, KL per group) is made
 * from all the rows once the last block is in, by the same function `vaed eval` uses.
 *
 * A cluster's nodes (jobs.h "Cluster") share the evaluations as they share the jobs:
 * every node lists the unfinished ones (its cluster thread reads them once a second),
 * and a worker runs one only under the evaluation's own lease (STORE_LEASE_EVAL, taken
 * like a job's), renewed beside the jobs' leases; the blocks and the state it writes are
 * fenced by it. A node that dies stops renewing, and after the lease another node goes
 * on from the committed blocks, with the same bits. A cancel through a node that does
 * not run it marks the evaluation cancelled in the database (its blocks' writes are
 * refused from then on) and waits for the runner to let go: the runner sees it at its
 * next renewal, or its next block.
 *
 * A block's bytes: ll[rows], elbo[rows] (doubles), then mu[rows × L], lv[rows × L]
 * (floats), native-endian like the store's other BLOB arrays. */
#include "daemon/job.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "store/evals.h"
#include "vae/data.h"
#include "vae/eval.h"
#include "vae/infer.h"
#include "vae/model.h"

/* ---- the list (all under mu) -------------------------------------------------------- */

static eval_unit *unit_new(const store_eval *e)
{
    eval_unit *u = xcalloc(1, sizeof *u);
    u->id = e->id;
    u->job = e->job;
    u->born = job_mono();
    return u;
}

/* Ask u to stop for why, unless it was asked already (the first reason stays). */
static void unit_stop(eval_unit *u, int why)
{
    int none = 0;
    atomic_compare_exchange_strong(&u->stop, &none, why);
}

static eval_unit *unit_find(jobs *J, int64_t id)
{
    eval_unit *u = J->evals;
    while (u && u->id != id)
        u = u->next;
    return u;
}

static int state_open(const char *state)
{
    return !strcmp(state, "queued") || !strcmp(state, "running");
}

/* Is evaluation id finished in the store (or gone with its job)? 0 when it is open or
 * could not be read. */
static int eval_finished(jobs *J, int64_t id)
{
    store_eval e;
    vaed_err err;
    int rc = store_eval_get(J->st, id, &e, &err);
    if (rc)
        return rc == VAED_ENOTFOUND;
    int fin = !state_open(e.state);
    store_eval_clear(&e);
    return fin;
}

static void unit_add(jobs *J, eval_unit *u)
{
    eval_unit **p = &J->evals;
    while (*p)
        p = &(*p)->next;
    *p = u;
}

static void unit_remove(jobs *J, eval_unit *u)
{
    for (eval_unit **p = &J->evals; *p; p = &(*p)->next)
        if (*p == u) {
            *p = u->next;
            free(u);
            return;
        }
}

eval_unit *evals_next(jobs *J)
{
    const double now = J->cluster ? job_mono() : 0;
    for (eval_unit *u = J->evals; u; u = u->next)
        if (!u->running && u->away_until <= now)
            return u;
    return NULL;
}

int evals_recover(jobs *J, vaed_err *err)
{
    store_eval *open = NULL;
    size_t n = 0;
    int rc = store_evals_list(J->st, 0, 1, &open, &n, err);
    for (size_t i = 0; !rc && i < n; i++)
        unit_add(J, unit_new(&open[i]));
    if (n)
        log_msg(LOG_INFO, "%zu unfinished evaluation(s) queued again", n);
    store_evals_free(open, n);
    return rc;
}

void evals_stop_all(jobs *J)
{
    for (eval_unit *u = J->evals; u; u = u->next)
        unit_stop(u, EVAL_STOP_DAEMON);
}

/* ---- a cluster's node: the evaluation's lease ---------------------------------------- */

/* Take u's lease before a worker runs it (u->running set, mu not held): 1 taken; 0 not —
 * another node holds it (looked at again within a third of a lease), or it finished
 * (dropped from the list); u->running is cleared then. */
static int eval_take(jobs *J, eval_unit *u)
{
    const int64_t key = STORE_LEASE_EVAL(u->id);
    store_lease l;
    vaed_err err;
    int rc = store_lease_take(J->st, key, J->cfg.lease_ttl, &l, &err);
    if (rc < 0)
        log_msg(LOG_WARN, "evaluation %" PRId64 ": taking its lease: %s", u->id, err.msg);
    /* cancelled through another node (the list is a second behind the database) */
    int finished = (rc == 1 || (rc == 0 && l.done)) && eval_finished(J, u->id);
    if (rc == 1 && finished)
        store_lease_release(J->st, key, 1, &err);
    finished |= rc == 0 && l.done;
    const int cancel = atomic_load(&u->stop) == EVAL_STOP_CANCEL;
    if (rc != 1 && cancel && !finished) /* a cancel through this node while another runs */
        store_eval_set_state(J->st, u->id, "cancelled", NULL, NULL, -1, &err); /* it: the
                                                         runner sees the state and lets go */
    pthread_mutex_lock(&J->mu);
    if (rc == 1 && !finished) {
        u->leased = 1;
        u->renewed_at = job_mono();
        pthread_mutex_unlock(&J->mu);
        return 1;
    }
    u->running = 0;
    if (finished || cancel) { /* the cancel's caller waits for it to leave the list */
        unit_remove(J, u); /* u is freed */
        pthread_cond_broadcast(&J->evals_cv);
    } else {
        u->away_until = job_mono() + (rc == 0 && l.held ? J->cfg.lease_ttl / 3 : 1.0);
    }
    pthread_mutex_unlock(&J->mu);
    return 0;
}

void evals_renew(jobs *J)
{
    int64_t ids[64];
    size_t n = 0;
    pthread_mutex_lock(&J->mu);
    for (eval_unit *u = J->evals; u && n < sizeof ids / sizeof *ids; u = u->next)
        if (u->leased && atomic_load(&u->stop) != EVAL_STOP_GONE)
            ids[n++] = u->id;
    pthread_mutex_unlock(&J->mu);
    for (size_t i = 0; i < n; i++) {
        vaed_err err;
        const double sent = job_mono();
        int rc = store_lease_renew(J->st, STORE_LEASE_EVAL(ids[i]), J->cfg.lease_ttl, &err);
        const int finished = rc == 0 && eval_finished(J, ids[i]);
        pthread_mutex_lock(&J->mu);
        eval_unit *u = unit_find(J, ids[i]);
        if (u && u->leased && rc == 0 && !finished) {
            u->renewed_at = sent;
        } else if (u && u->leased && rc == 0) {
            unit_stop(u, EVAL_STOP_GONE);
            log_msg(LOG_INFO, "evaluation %" PRId64 ": cancelled through another node: it "
                    "stops here", ids[i]);
        } else if (u && u->leased && rc != VAED_ESTATE &&
                   job_mono() - u->renewed_at < J->cfg.lease_ttl * 0.8) {
            log_msg(LOG_WARN, "evaluation %" PRId64 ": renewing its lease: %s", ids[i], err.msg);
        } else if (u && u->leased) {
            unit_stop(u, EVAL_STOP_GONE);
            log_msg(LOG_WARN, "evaluation %" PRId64 ": lease lost: it stops here, and its "
                    "writes from this node are refused", ids[i]);
        }
        pthread_mutex_unlock(&J->mu);
    }
}

void evals_sync(jobs *J, double t0)
{
    store_eval *open = NULL;
    size_t n = 0;
    vaed_err err;
    if (store_evals_list(J->st, 0, 1, &open, &n, &err))
        return;
    pthread_mutex_lock(&J->mu);
    int added = 0, gone = 0;
    for (size_t i = 0; i < n; i++)
        if (!unit_find(J, open[i].id)) {
            unit_add(J, unit_new(&open[i]));
            added = 1;
        }
    for (eval_unit *u = J->evals, *next; u; u = next) {
        next = u->next;
        int listed = 0;
        for (size_t i = 0; i < n && !listed; i++)
            listed = open[i].id == u->id;
        if (!listed && !u->running && u->born < t0) { /* finished through another node */
            unit_remove(J, u);
            gone = 1;
        }
    }
    if (added)
        pthread_cond_broadcast(&J->work);
    if (gone)
        pthread_cond_broadcast(&J->evals_cv);
    pthread_mutex_unlock(&J->mu);
    store_evals_free(open, n);
}

void evals_free_all(jobs *J)
{
    while (J->evals)
        unit_remove(J, J->evals);
}

/* ---- one evaluation, on a worker ---------------------------------------------------- */

typedef struct rows_buf {
    long n;
    int L;
    double *ll, *el;
    float *mu, *lv;
    unsigned char *done;        /* per block */
} rows_buf;

static size_t block_bytes(long rows, int L)
{
    return (size_t)rows * (2 * sizeof(double) + 2 * (size_t)L * sizeof(float));
}

static void block_pack(const rows_buf *b, long blk, long rows, unsigned char *out)
{
    const long i0 = blk * VAE_EVAL_BLOCK;
    const size_t L = (size_t)b->L;
    memcpy(out, b->ll + i0, sizeof(double) * (size_t)rows);
    out += sizeof(double) * (size_t)rows;
    memcpy(out, b->el + i0, sizeof(double) * (size_t)rows);
    out += sizeof(double) * (size_t)rows;
    memcpy(out, b->mu + i0 * L, sizeof(float) * (size_t)rows * L);
    out += sizeof(float) * (size_t)rows * L;
    memcpy(out, b->lv + i0 * L, sizeof(float) * (size_t)rows * L);
}

/* A committed block back into the row arrays (store_eval_block_fn). */
static int block_unpack(void *arg, int64_t blk, int64_t rows, const void *data, size_t len)
{
    rows_buf *b = arg;
    const long i0 = (long)blk * VAE_EVAL_BLOCK;
    const long want = b->n - i0 < VAE_EVAL_BLOCK ? b->n - i0 : VAE_EVAL_BLOCK;
    if (blk < 0 || i0 >= b->n || rows != want || len != block_bytes(rows, b->L))
        return 1; /* not what this evaluation writes: this block and those after it are
                     evaluated again (their draws are their own, so the bits are the same) */
    const unsigned char *p = data;
    const size_t L = (size_t)b->L;
    memcpy(b->ll + i0, p, sizeof(double) * (size_t)rows);
    p += sizeof(double) * (size_t)rows;
    memcpy(b->el + i0, p, sizeof(double) * (size_t)rows);
    p += sizeof(double) * (size_t)rows;
    memcpy(b->mu + i0 * L, p, sizeof(float) * (size_t)rows * L);
    p += sizeof(float) * (size_t)rows * L;
    memcpy(b->lv + i0 * L, p, sizeof(float) * (size_t)rows * L);
    b->done[blk] = 1;
    return 0;
}

static void rows_buf_free(rows_buf *b)
{
    free(b->ll);
    free(b->el);
    free(b->mu);
    free(b->lv);
    free(b->done);
}

/* EV_GONE: its lease was lost, or it was cancelled through another node; nothing more is
 * recorded here. */
enum eval_end { EV_DONE, EV_FAILED, EV_CANCELLED, EV_STOPPED, EV_GONE };

static int should_stop(eval_unit *u, enum eval_end *why)
{
    const int stop = atomic_load(&u->stop);
    if (stop)
        *why = stop == EVAL_STOP_CANCEL ? EV_CANCELLED
               : stop == EVAL_STOP_GONE ? EV_GONE : EV_STOPPED;
    return stop != 0;
}

/* Run evaluation u to its end; OUT *result (JSON text, malloc'd) when done. */
static enum eval_end eval_run(jobs *J, eval_unit *u, char **result, vaed_err *err)
{
    enum eval_end end = EV_FAILED;
    store_eval se = {0};
    store_job sj = {0};
    vae_spec spec;
    vae_dataset *train = NULL, *test = NULL;
    void *blob = NULL;
    size_t blen = 0;
    float *params = NULL;
    unsigned char *pack = NULL;
    vae_eval *ev = NULL;
    rows_buf rb = {0};
    int rc0 = 0; /* the store's answer to a write of this evaluation */

    if (store_eval_get(J->st, u->id, &se, err) || store_job_get(J->st, se.job, &sj, err) ||
        vae_spec_parse_text(&spec, sj.spec, strlen(sj.spec), err))
        goto out;
    if (job_data_load(J, &spec, &train, &test, err))
        goto out;
    const vae_dataset *d = !strcmp(se.split, "train") ? train : test;
    if (!d) {
        vaed_err_set(err, VAED_EINVAL, "split",
                     "the job's spec has no test split (no shipped test set, no "
                     "dataset.test_path, validation_fraction 0): evaluate split \"train\"");
        goto out;
    }
    if (store_checkpoint_get(J->st, se.job, se.ckpt_step, NULL, &blob, &blen, err))
        goto out;
    const int vocab = d->kind == VAE_DATA_SEQ ? d->vocab : 0;
    vae_model shape;
    vae_model_shape(&shape, &spec, (int)d->dim, vocab);
    const float *p = NULL;
    long np = 0;
    if (vae_ckpt_params(blob, blen, &p, &np, err))
        goto out;
    if (!vae_ckpt_fits(blob, blen, &shape)) {
        vaed_err_set(err, VAED_EINVAL, "checkpoint",
                     "checkpoint %" PRId64 " does not fit the job's model", se.ckpt_step);
        goto out;
    }
    const long n = se.rows > 0 && se.rows < d->n ? (long)se.rows : d->n;
    const long nb = vae_eval_blocks(n);
    rb.n = n;
    rb.L = shape.L;
    params = malloc(sizeof(float) * (size_t)np);
    rb.ll = malloc(sizeof(double) * (size_t)n);
    rb.el = malloc(sizeof(double) * (size_t)n);
    rb.mu = malloc(sizeof(float) * (size_t)n * (size_t)rb.L);
    rb.lv = malloc(sizeof(float) * (size_t)n * (size_t)rb.L);
    rb.done = calloc((size_t)nb, 1);
    pack = malloc(block_bytes(VAE_EVAL_BLOCK, rb.L));
    if (!params || !rb.ll || !rb.el || !rb.mu || !rb.lv || !rb.done || !pack) {
        vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory for %ld rows", n);
        goto out;
    }
    memcpy(params, p, sizeof(float) * (size_t)np);
    if (vae_eval_new(&ev, &spec, (int)d->dim, vocab, params, np, se.k, err))
        goto out;
    vae_eval_set_stop(ev, &u->stop);
    /* the blocks committed before a stop */
    if (store_eval_blocks(J->st, u->id, block_unpack, &rb, err) < 0)
        goto out;
    if ((rc0 = store_eval_set_state(J->st, u->id, "running", NULL, NULL, n, err)))
        goto out;
    vae_blas_init();
    for (long b = 0; b < nb; b++) {
        if (rb.done[b])
            continue;
        if (should_stop(u, &end))
            goto out;
        const double t0 = job_mono();
        const long i0 = b * VAE_EVAL_BLOCK;
        const long rows = vae_eval_block(ev, d, n, (uint64_t)se.seed, b, rb.ll + i0,
                                         rb.el + i0, rb.mu + i0 * rb.L, rb.lv + i0 * rb.L);
        if (rows < 0 && should_stop(u, &end)) /* stopped inside the block: not stored */
            goto out;
        block_pack(&rb, b, rows, pack);
        int rc;
        /* a store that cannot write now is waited for, as a training job waits */
        while ((rc = store_eval_block_put(J->st, u->id, b, rows, pack, block_bytes(rows, rb.L),
                                          job_mono() - t0, err)) == VAED_EDB &&
               !should_stop(u, &end))
            job_nap_ms(500);
        if ((rc0 = rc))
            goto out;
    }
    vae_eval_result res;
    vae_eval_summarize(rb.ll, rb.el, rb.mu, rb.lv, n, se.k, (uint64_t)se.seed, &spec.model,
                       &res);
    json_t *j = vae_eval_result_json(&res);
    *result = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(j);
    if (!*result) {
        vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
        goto out;
    }
    end = EV_DONE;
out:
    if (end == EV_FAILED && rc0 == VAED_ESTATE) /* finished through another node, or the */
        end = EV_GONE;                          /* lease was lost: the store refused it */
    vae_eval_free(ev);
    rows_buf_free(&rb);
    free(pack);
    free(params);
    free(blob);
    vae_dataset_free(train);
    vae_dataset_free(test);
    store_job_clear(&sj);
    store_eval_clear(&se);
    return end;
}

void evals_run(jobs *J, eval_unit *u)
{
    if (J->cluster && !eval_take(J, u))
        return;
    vaed_err err;
    vaed_err_clear(&err);
    char *result = NULL;
    log_msg(LOG_INFO, "evaluation %" PRId64 " of job %" PRId64 " running", u->id, u->job);
    enum eval_end end = eval_run(J, u, &result, &err);
    static const char *const state[] = {"completed", "failed", "cancelled", "queued"};
    vaed_err e2;
    int rc = end == EV_GONE ? 0
                            : store_eval_set_state(J->st, u->id, state[end],
                                                   end == EV_FAILED ? err.msg : NULL, result,
                                                   -1, &e2);
    if (rc == VAED_ESTATE) /* the store refused it: finished elsewhere, or the lease lost */
        end = EV_GONE;
    else if (rc)
        log_msg(LOG_ERROR, "evaluation %" PRId64 ": could not record %s: %s", u->id,
                state[end], e2.msg);
    if (end == EV_FAILED)
        log_msg(LOG_WARN, "evaluation %" PRId64 " failed: %s", u->id, err.msg);
    else
        log_msg(LOG_INFO, "evaluation %" PRId64 " %s", u->id,
                end == EV_STOPPED ? "interrupted (resumes at start, or on another node)"
                : end == EV_GONE  ? "let go: finished through another node, or its lease lost"
                                  : state[end]);
    free(result);
    /* given back: done for good unless it stopped with the daemon (another node may go on
     * at once); a lost lease is only forgotten */
    if (J->cluster &&
        (rc = store_lease_release(J->st, STORE_LEASE_EVAL(u->id), end != EV_STOPPED, &e2)) &&
        rc != VAED_ESTATE)
        log_msg(LOG_WARN, "evaluation %" PRId64 ": releasing its lease: %s (it frees itself "
                "after --lease-ttl)", u->id, e2.msg);
    pthread_mutex_lock(&J->mu);
    unit_remove(J, u);
    pthread_cond_broadcast(&J->evals_cv);
    pthread_mutex_unlock(&J->mu);
}

/* ---- the client calls --------------------------------------------------------------- */

int jobs_checkpoint_resolve(jobs *J, int64_t job_id, const json_t *ck, int64_t *step,
                            char asked[JOBS_ASKED_LEN], vaed_err *err)
{
    const char *name = ck ? json_string_value(ck) : "final";
    if (ck && json_is_integer(ck) && json_integer_value(ck) >= 0) {
        snprintf(asked, JOBS_ASKED_LEN, "%" PRId64, (int64_t)json_integer_value(ck));
    } else if (!name || (strcmp(name, "final") && strcmp(name, "best"))) {
        return vaed_err_set(err, VAED_EINVAL, "checkpoint",
                            "checkpoint: \"final\", \"best\" or a step (a whole number >= 0)");
    } else {
        snprintf(asked, JOBS_ASKED_LEN, "%s", name);
    }
    store_job sj;
    int rc = store_job_get(J->st, job_id, &sj, err);
    if (rc)
        return rc;
    store_job_clear(&sj);
    if (name && !strcmp(name, "best")) {
        rc = store_eval_best(J->st, job_id, step, err);
        /* the job exists: "none yet" is a state, not a missing thing */
        return rc == VAED_ENOTFOUND ? VAED_ESTATE : rc;
    }
    store_ckpt *list = NULL;
    size_t n = 0;
    if ((rc = store_checkpoints_list(J->st, job_id, &list, &n, err)))
        return rc;
    const int64_t want = name ? -1 : (int64_t)json_integer_value(ck);
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        if ((found = want < 0 ? i == n - 1 : list[i].step == want))
            *step = list[i].step;
    free(list);
    if (!found)
        return vaed_err_set(err, VAED_ENOTFOUND, "checkpoint",
                            want < 0 ? "job %" PRId64 " has no checkpoint yet"
                                     : "job %" PRId64 " has no checkpoint at step %" PRId64,
                            job_id, want);
    return 0;
}

int jobs_eval_submit(jobs *J, const jobs_eval_req *r, int64_t *id, vaed_err *err)
{
    if (r->k < 1 || r->k > JOBS_EVAL_MAX_K)
        return vaed_err_set(err, VAED_EINVAL, "k", "k: a whole number from 1 to %d",
                            JOBS_EVAL_MAX_K);
    if (!r->split || (strcmp(r->split, "test") && strcmp(r->split, "train")))
        return vaed_err_set(err, VAED_EINVAL, "split", "split: \"test\" or \"train\"");
    if (r->rows < 0)
        return vaed_err_set(err, VAED_EINVAL, "rows", "rows: a positive whole number");
    store_job sj = {0};
    int rc = store_job_get(J->st, r->job, &sj, err);
    if (rc)
        return rc;
    vae_spec spec;
    rc = vae_spec_parse_text(&spec, sj.spec, strlen(sj.spec), err);
    store_job_clear(&sj);
    if (rc)
        return rc;
    if (spec.dataset.binarize != VAE_BIN_NONE)
        /* the trainer binarizes with its own streams: other bits than it trained on
         * would be a different number under the same name */
        return vaed_err_set(err, VAED_EINVAL, "dataset.binarize",
                            "jobs trained with dataset.binarize \"static\" or \"dynamic\" "
                            "are not evaluated yet");
    int64_t step = 0;
    char asked[JOBS_ASKED_LEN];
    if ((rc = jobs_checkpoint_resolve(J, r->job, r->checkpoint, &step, asked, err)))
        return rc;
    store_eval_new ne = {.job = r->job, .ckpt_step = step, .asked = asked, .split = r->split,
                         .k = r->k, .seed = r->seed, .rows = r->rows};
    if ((rc = store_eval_insert(J->st, &ne, id, err)))
        return rc;
    store_eval se = {.id = *id, .job = r->job};
    pthread_mutex_lock(&J->mu);
    unit_add(J, unit_new(&se));
    pthread_cond_signal(&J->work);
    pthread_mutex_unlock(&J->mu);
    log_msg(LOG_INFO, "evaluation %" PRId64 " of job %" PRId64 " (step %" PRId64 ", k %d) queued",
            *id, r->job, step, r->k);
    return 0;
}

#define EVAL_ASKED_BY_SPEC "eval.every_epochs"

void evals_queue_checkpoint(jobs *J, const job *jb, int64_t step)
{
    vaed_err err;
    store_eval *all = NULL;
    size_t n = 0;
    int rc = store_evals_list(J->st, jb->id, 0, &all, &n, &err);
    int have = 0;
    for (size_t i = 0; !rc && i < n; i++)
        have |= all[i].ckpt_step == step && !strcmp(all[i].asked, EVAL_ASKED_BY_SPEC);
    store_evals_free(all, n);
    if (rc || have) {
        if (rc)
            log_msg(LOG_WARN, "job %" PRId64 ": evaluation of step %" PRId64 ": %s", jb->id,
                    step, err.msg);
        return;
    }
    const vae_eval_spec *es = &jb->spec.eval;
    store_eval_new ne = {.job = jb->id, .ckpt_step = step, .asked = EVAL_ASKED_BY_SPEC,
                         .split = "test", .k = es->k, .seed = 0, .rows = es->rows};
    int64_t id = 0;
    if ((rc = store_eval_insert(J->st, &ne, &id, &err))) {
        log_msg(LOG_WARN, "job %" PRId64 ": evaluation of step %" PRId64 ": %s", jb->id, step,
                err.msg);
        return;
    }
    store_eval se = {.id = id, .job = jb->id};
    pthread_mutex_lock(&J->mu);
    unit_add(J, unit_new(&se));
    pthread_cond_signal(&J->work);
    pthread_mutex_unlock(&J->mu);
    log_msg(LOG_INFO, "evaluation %" PRId64 " of job %" PRId64 " step %" PRId64 " queued (%s)",
            id, jb->id, step, EVAL_ASKED_BY_SPEC);
}

/* The evaluation id of job, from the store (VAED_ENOTFOUND if it is another job's). */
static int eval_of_job(jobs *J, int64_t job_id, int64_t id, store_eval *e, vaed_err *err)
{
    int rc = store_eval_get(J->st, id, e, err);
    if (!rc && e->job != job_id) {
        store_eval_clear(e);
        rc = vaed_err_set(err, VAED_ENOTFOUND, "", "job %" PRId64 " has no evaluation %" PRId64,
                          job_id, id);
    }
    return rc;
}

/* A cluster's node: evaluation id was just cancelled in the store; another node may be
 * running it. Wait (up to --wait) until no node holds its lease: the runner sees the state
 * at its next renewal or block and lets go. The cancel stands either way: the runner's
 * writes are refused from now on. */
static void eval_wait_let_go(jobs *J, int64_t id)
{
    const double deadline = job_mono() + J->cfg.wait_s;
    store_lease l;
    vaed_err err;
    while (store_lease_get(J->st, STORE_LEASE_EVAL(id), &l, &err) == 1 && l.held && !l.done &&
           job_mono() < deadline)
        job_nap_ms(100);
}

int jobs_eval_cancel(jobs *J, int64_t job_id, int64_t id, vaed_err *err)
{
    store_eval e;
    int rc = eval_of_job(J, job_id, id, &e, err);
    if (rc)
        return rc;
    store_eval_clear(&e);
    pthread_mutex_lock(&J->mu);
    eval_unit *u = J->evals;
    while (u && u->id != id)
        u = u->next;
    if (!u || !u->running) { /* queued, or finished already (or running on another node) */
        if (u)
            unit_remove(J, u);
        pthread_mutex_unlock(&J->mu);
        rc = store_eval_set_state(J->st, id, "cancelled", NULL, NULL, -1, err);
        if (rc == 0 && J->cluster)
            eval_wait_let_go(J, id);
        return rc;
    }
    unit_stop(u, EVAL_STOP_CANCEL); /* running: its worker stops within a pass */
    const double deadline = job_mono() + J->cfg.wait_s;
    int still = 1;
    while (still && job_mono() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&J->evals_cv, &J->mu, &ts);
        still = 0;
        for (eval_unit *v = J->evals; v; v = v->next)
            still |= v->id == id;
    }
    pthread_mutex_unlock(&J->mu);
    if (still)
        return vaed_err_set(err, VAED_EBUSY, NULL,
                            "evaluation %" PRId64 " was asked to stop and did not within %.0f s",
                            id, J->cfg.wait_s);
    return 0;
}

int jobs_eval_json(jobs *J, int64_t job_id, int64_t id, json_t **out, vaed_err *err)
{
    store_eval e;
    *out = NULL;
    int rc = eval_of_job(J, job_id, id, &e, err);
    if (rc)
        return rc;
    *out = store_eval_json(&e);
    store_eval_clear(&e);
    return *out ? 0 : vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
}

json_t *jobs_evals_json(jobs *J, int64_t job_id, vaed_err *err)
{
    store_eval *all = NULL;
    size_t n = 0;
    if (store_evals_list(J->st, job_id, 0, &all, &n, err))
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, store_eval_json(&all[i]));
    store_evals_free(all, n);
    if (!arr)
        vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    return arr;
}
