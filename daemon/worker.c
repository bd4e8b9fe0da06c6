/* worker.c — a worker's run of one job (daemon/job.h): build the trainer, restore the
 * newest checkpoint, then step until the job ends, pauses, is cancelled or the daemon
 * stops. At the top of every step the worker replays what recovery must apply again
 * (recover.c) and drains the job's mailbox through job_apply (control.c); nothing else
 * changes what the trainer sees. Each step's figures go to the store and the bus;
 * checkpoints are taken at the spec's moments; while the store cannot write, the worker
 * waits instead of piling rows up in memory (backpressure, below). */
#include "daemon/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/bus.h"
#include "daemon/log.h"
#include "vae/spec.h"
#include "vae/train.h"

static int store_is_failing(store *st)
{
    store_stats ss;
    store_get_stats(st, &ss);
    return ss.failing;
}

/* Take a checkpoint. A waited one (pause, final, a learning-rate change) that the store
 * cannot write because it is failing (disk full, I/O errors) is tried again every
 * 200 ms until the store recovers, rather than failing the job: the training state is
 * still in memory and nothing is lost by waiting. Only a stopping daemon gives up, and
 * then the job resumes from its previous checkpoint at the next start. */
int worker_checkpoint(run *r, const char *kind, int wait, vaed_err *err)
{
    const vae_spec *s = &r->jb->spec;
    for (int attempt = 0;; attempt++) {
        void *blob = NULL;
        size_t len = 0;
        int rc = vae_trainer_save(r->t, &blob, &len, err);
        if (rc && (rc != VAED_ENOMEM || !wait))
            return rc;
        long step = vae_trainer_step_index(r->t);
        store_ckpt_put req = {
            .job = r->jb->id, .step = step,
            .epoch = (double)step / (double)vae_trainer_steps_per_epoch(r->t),
            .kind = kind, .blob = blob, .size = len, .keep = s->checkpoint.keep,
            /* a PBT member's epoch ends are its donors' states (pbt_run.c): kept */
            .keep_epoch_end = s->checkpoint.keep_epoch_end || r->pbt.on, .wait = wait, .give = 1,
        };
        if (!wait && store_is_failing(r->J->st)) {
            /* A periodic or epoch-end checkpoint while the store cannot write would only
             * pile megabytes into its retry queue (and the queue is retried as one
             * transaction: on a full disk it could never fit). Skip it: the next one,
             * or a waited one, supersedes it. */
            free(blob);
            return 0;
        }
        if (rc == 0)
            rc = store_checkpoint_put(r->J->st, &req, err); /* the blob is the store's now */
        if (rc == 0) {
            r->last_ckpt_step = step;
            r->last_ckpt_time = job_mono();
            bus_publish_checkpoint(r->J->cfg.bus, r->jb->id, step, kind);
            if (attempt > 0)
                log_msg(LOG_INFO, "job %lld: %s checkpoint written after %d retries",
                        (long long)r->jb->id, kind, attempt);
            return 0;
        }
        pthread_mutex_lock(&r->J->mu);
        int stopping = r->J->stopping;
        /* Out of memory (the blob, or the store's copy) passes like a failing disk:
         * a job that trained to its end must not fail for one failed allocation. */
        int retry = rc == VAED_EDB || rc == VAED_ENOMEM;
        if (wait && retry && !stopping)
            snprintf(r->jb->storage_wait, sizeof r->jb->storage_wait, "%s", err->msg);
        pthread_mutex_unlock(&r->J->mu);
        if (!wait || !retry || stopping)
            return rc;
        if (attempt == 0)
            log_msg(LOG_WARN, "job %lld: %s checkpoint waits for the store: %s",
                    (long long)r->jb->id, kind, err->msg);
        job_nap_ms(200);
    }
}

/* The job's live snapshot (mu held), for GET /v1/jobs/{id} and /metrics. */
static void publish(run *r, const vae_metrics *m)
{
    job *jb = r->jb;
    double now = job_mono();
    if (now - r->rate_t0 >= 1.0) {
        int64_t steps = m->step + 1 - r->rate_s0;
        double rows = (double)steps * jb->spec.train.batch_size;
        jb->sps = rows / (now - r->rate_t0);
        r->rate_t0 = now;
        r->rate_s0 = m->step + 1;
    }
    jb->has_live = 1;
    jb->step = m->step + 1;
    jb->epoch = (double)(m->step + 1) / (double)jb->spe;
    jb->last = *m;
    if (jb->sps > 0)
        jb->eta = (double)(jb->total_steps - jb->step) * jb->spec.train.batch_size / jb->sps;
}

static void store_step(run *r, const vae_metrics *m)
{
    store_metric row = {.step = m->step, .n_groups = m->n_groups, .kl_groups = m->kl_group};
    VAE_METRIC_COPY(&row, m);
    vaed_err err;
    /* A failed allocation is worth waiting out: a row not queued is a step missing from
     * the job's metrics for good (nothing recomputes it unless the daemon restarts). */
    int rc;
    for (int tries = 0; (rc = store_metrics_append(r->J->st, r->jb->id, &row, 1, &err)) ==
                            VAED_ENOMEM && tries < 50; tries++) {
        job_nap_ms(10);
    }
    if (rc)
        log_msg(LOG_WARN, "job %lld: metrics not queued: %s", (long long)r->jb->id, err.msg);
}

/* Backpressure. When the store cannot write (disk full, I/O errors) it keeps what is
 * queued in memory and retries; a job that trained on would grow that queue without
 * bound and end up with rows refused. So while the store is failing with more than
 * STORE_WAIT_BYTES queued, the worker does not step: it sleeps a little and goes back
 * to the top of its loop (so pause, cancel and shutdown still act), and the job's status
 * says why. It also stops once the oldest unwritten operation is STORE_WAIT_LAG seconds
 * old: steps trained while nothing reaches the disk would be lost by a crash. Training
 * carries on by itself once the store has caught up. Returns 1 when the worker should
 * not step now. */
#define STORE_WAIT_BYTES ((size_t)64 << 20)
#define STORE_WAIT_LAG 2.0

static int storage_behind(run *r)
{
    store_stats ss;
    store_get_stats(r->J->st, &ss);
    int behind = ss.failing && (ss.pending_bytes > STORE_WAIT_BYTES || ss.lag > STORE_WAIT_LAG);
    job *jb = r->jb;
    pthread_mutex_lock(&r->J->mu);
    int was = jb->storage_wait[0] != '\0';
    if (behind)
        snprintf(jb->storage_wait, sizeof jb->storage_wait, "%s",
                 ss.last_error[0] ? ss.last_error : "the store is not writing");
    else
        jb->storage_wait[0] = '\0';
    pthread_mutex_unlock(&r->J->mu);
    if (behind && !was)
        log_msg(LOG_WARN, "job %lld waits: the store is failing with %zu MiB queued (%s)",
                (long long)jb->id, ss.pending_bytes >> 20, ss.last_error);
    else if (!behind && was)
        log_msg(LOG_INFO, "job %lld goes on: the store is writing again", (long long)jb->id);
    if (behind) {
        job_nap_ms(200);
    }
    return behind;
}

static void store_epoch_rows(run *r, const vae_epoch_metrics *e)
{
    store_epoch tr = {.epoch = e->epoch, .step = e->step, .xent = e->train_xent,
                      .kl = e->train_kl, .elbo = e->train_elbo, .time = job_now_unix()};
    snprintf(tr.split, sizeof tr.split, "train");
    store_epoch_put(r->J->st, r->jb->id, &tr, NULL);
    if (e->has_test) {
        store_epoch te = {.epoch = e->epoch, .step = e->step, .xent = e->xent, .kl = e->kl,
                          .elbo = e->elbo, .time = job_now_unix(), .active_units = e->active_units,
                          .n_dims = e->n_latent, .kl_dims = (double *)e->kl_dim};
        snprintf(te.split, sizeof te.split, "test");
        store_epoch_put(r->J->st, r->jb->id, &te, NULL);
    }
}

/* The objective's value in a test epoch's figures (asha.h: elbo, kl or xent). */
static double asha_value(const asha_cfg *c, double elbo, double kl, double xent)
{
    return !strcmp(c->metric, "kl") ? kl : !strcmp(c->metric, "xent") ? xent : elbo;
}

/* A trial resumed from a checkpoint taken at a rung's epoch end (killed between the
 * checkpoint and its stop being recorded): decide the rung again, from its own test
 * row of that epoch, which the store committed before the checkpoint (one writer,
 * in order). Returns 1 when the trial stops (OUT reason). */
static int asha_at_resume(run *r, char *reason, size_t reason_len)
{
    long step = vae_trainer_step_index(r->t), spe = vae_trainer_steps_per_epoch(r->t);
    if (!r->asha.on || step <= 0 || step % spe || vae_trainer_finished(r->t) ||
        asha_rung(&r->asha, (int)(step / spe)) < 0)
        return 0;
    store_epoch *ep = NULL;
    size_t n = 0;
    vaed_err err;
    int stop = 0;
    if (store_epochs_list(r->J->st, r->jb->id, &ep, &n, &err)) {
        log_msg(LOG_WARN, "job %lld: asha: epochs not read: %s", (long long)r->jb->id, err.msg);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (ep[i].epoch == step / spe && !strcmp(ep[i].split, "test"))
            stop = sweep_asha_stop(r->J, r->jb, &r->asha, (int)ep[i].epoch,
                                   asha_value(&r->asha, ep[i].elbo, ep[i].kl, ep[i].xent),
                                   reason, reason_len);
    store_epochs_free(ep, n);
    return stop;
}

/* Estimated bytes a job needs once its data is loaded. */
static size_t job_bytes(const vae_spec *s, const vae_dataset *train, const vae_dataset *test)
{
    return vae_model_bytes(s, (int)train->dim, s->train.batch_size) + vae_dataset_bytes(train) +
           (test ? vae_dataset_bytes(test) : 0);
}

enum outcome worker_run(run *r, char *reason, size_t reason_len)
{
    jobs *J = r->J;
    job *jb = r->jb;
    vaed_err err;
    vaed_err_clear(&err);
    enum outcome out = OUT_FAILED;
    vae_spec spec = jb->spec; /* this worker owns the job: nobody writes it meanwhile */
    if (J->cfg.threads > 0)
        spec.train.threads = J->cfg.threads;

    vae_dataset *train = NULL, *test = NULL;
    /* The paths were checked at submit; a symlink swapped in since must not lead out of
     * the data directory now (the window left is between this check and the open). An
     * upload is read from this node's copy, made from the database if missing. */
    if (job_data_load(J, &spec, &train, &test, &err))
        goto failed;
    size_t need = job_bytes(&spec, train, test);
    if (need > J->cfg.max_job_memory) {
        vae_dataset_free(train);
        vae_dataset_free(test);
        vaed_err_set(&err, VAED_ETOOBIG, NULL,
                     "needs about %zu MiB, over --max-job-memory (%zu MiB)", need >> 20,
                     J->cfg.max_job_memory >> 20);
        goto failed;
    }
    if (vae_trainer_new_with_data(&r->t, &spec, train, test, &err))
        goto failed;

    /* Restore the newest checkpoint, if any, and the overrides recorded since. */
    void *blob = NULL;
    size_t len = 0;
    store_ckpt meta;
    const char *resumed = NULL; /* the kind of the checkpoint resumed from */
    int rc = store_checkpoint_get(J->st, jb->id, -1, &meta, &blob, &len, &err);
    if (rc == 0) {
        resumed = meta.kind;
        rc = vae_trainer_load(r->t, blob, len, &err);
        free(blob);
        if (rc)
            goto failed;
        /* A fork's starting checkpoint carries its parent's learning rate; the fork's
         * own (its spec's, daemon/fork.h) is in force from its first step. */
        if (!strcmp(meta.kind, "fork"))
            vae_trainer_set_lr(r->t, spec.optimizer.lr);
        log_msg(LOG_INFO, "job %lld resumes from its checkpoint at step %ld", (long long)jb->id,
                vae_trainer_step_index(r->t));
    } else if (rc != VAED_ENOTFOUND) {
        goto failed;
    }
    vaed_err_clear(&err);
    if (recover_history(r, &err))
        goto failed;
    if (sweep_policies_load(J, jb, &r->asha, &r->pbt, &err))
        goto failed;

    pthread_mutex_lock(&J->mu);
    jb->spe = vae_trainer_steps_per_epoch(r->t);
    jb->total_steps = vae_trainer_total_steps(r->t);
    jb->step = vae_trainer_step_index(r->t);
    jb->last.beta = vae_trainer_beta(r->t);
    jb->last.lr = spec.optimizer.lr;
    pthread_mutex_unlock(&J->mu);
    r->rate_t0 = job_mono();
    r->rate_s0 = vae_trainer_step_index(r->t);
    r->last_ckpt_time = job_mono();
    r->last_ckpt_step = vae_trainer_step_index(r->t);

    const vae_ckpt_spec *cs = &spec.checkpoint;
    if (resumed && pbt_boundary(r, resumed, &err)) /* a boundary the crash cut short */
        goto failed;
    if (asha_at_resume(r, reason, reason_len))
        out = OUT_CANCELLED;
    while (out != OUT_CANCELLED) {
        if (recover_replay(r, &err))
            goto failed;
        /* The mailbox, in the order the messages came: a change posted just before a
         * pause is part of the paused state; what comes after the pause waits for the
         * job to be put down (queue.c) and is applied to the paused job. */
        pthread_mutex_lock(&J->mu);
        job_drain(J, jb, r);
        int stop = J->stopping;
        pthread_mutex_unlock(&J->mu);
        if (atomic_load(&jb->lease_lost)) { /* cluster.c: another node has the job now */
            out = OUT_INTERRUPTED;
            break;
        }
        if (r->outcome == OUT_CANCELLED) {
            out = OUT_CANCELLED;
            break;
        }
        if (stop || r->outcome == OUT_PAUSED) {
            int pause = !stop;
            if (worker_checkpoint(r, "pause", 1, &err)) {
                vaed_err_prefix(&err, "checkpoint at %s failed: ", pause ? "pause" : "shutdown");
                goto failed;
            }
            out = stop ? OUT_INTERRUPTED : OUT_PAUSED;
            if (pause) {
                pthread_mutex_lock(&J->mu);
                jb->step = vae_trainer_step_index(r->t);
                jb->last.beta = vae_trainer_beta(r->t);
                pthread_mutex_unlock(&J->mu);
            }
            break;
        }
        if (vae_trainer_finished(r->t)) {
            if (worker_checkpoint(r, "final", 1, &err)) {
                vaed_err_prefix(&err, "final checkpoint failed: ");
                goto failed;
            }
            if (jb->spec.eval.every_epochs > 0)
                evals_queue_checkpoint(J, jb, vae_trainer_step_index(r->t));
            out = OUT_COMPLETED;
            break;
        }

        if (storage_behind(r))
            continue;
        vae_metrics m;
        if (vae_trainer_step(r->t, &m, &err))
            goto failed;
        store_step(r, &m);
        pthread_mutex_lock(&J->mu);
        publish(r, &m);
        double sps = jb->sps;
        pthread_mutex_unlock(&J->mu);
        if (J->cfg.bus) { /* O(1), throttled by the bus; never waits for a client */
            bus_step bs = {.step = m.step, .samples_per_sec = sps};
            VAE_METRIC_COPY(&bs, &m);
            bus_publish_step(J->cfg.bus, jb->id, &bs);
        }

        long step = vae_trainer_step_index(r->t);
        if (vae_trainer_epoch_done(r->t)) {
            vae_epoch_metrics em;
            if (vae_trainer_evaluate(r->t, &em, &err))
                goto failed;
            store_epoch_rows(r, &em);
            if (J->cfg.bus) {
                bus_epoch be = {.epoch = em.epoch, .step = em.step, .train_loss = em.train_loss,
                                .train_xent = em.train_xent, .train_kl = em.train_kl,
                                .train_elbo = em.train_elbo, .train_beta = em.train_beta,
                                .has_test = em.has_test, .xent = em.xent, .kl = em.kl,
                                .elbo = em.elbo, .active_units = em.active_units,
                                .eval_s = em.eval_s};
                bus_publish_epoch(J->cfg.bus, jb->id, &be);
            }
            log_msg(LOG_INFO, "job %lld epoch %d: train loss %.3f%s%.3f", (long long)jb->id,
                    em.epoch, em.train_loss, em.has_test ? ", test elbo " : ", train elbo ",
                    em.has_test ? em.elbo : em.train_elbo);
            if (r->pbt.on && !vae_trainer_finished(r->t) &&
                em.epoch % r->pbt.interval == 0) {
                /* a PBT generation boundary: the state there, waited, then the decision */
                if (worker_checkpoint(r, "epoch", 1, &err) || pbt_boundary(r, NULL, &err))
                    goto failed;
                if (jb->spec.eval.every_epochs > 0 && em.epoch % jb->spec.eval.every_epochs == 0)
                    evals_queue_checkpoint(J, jb, step);
            } else if (cs->at_epoch_end && !vae_trainer_finished(r->t)) {
                if (worker_checkpoint(r, "epoch", 0, &err))
                    log_msg(LOG_WARN, "job %lld: epoch checkpoint: %s", (long long)jb->id,
                            err.msg);
                else if (jb->spec.eval.every_epochs > 0 &&
                         em.epoch % jb->spec.eval.every_epochs == 0)
                    evals_queue_checkpoint(J, jb, step);
            }
            /* ASHA: decided here, by the job's owner at the rung's epoch end, so the step
             * a trial stops at is the rung's whatever the timing (sweeps.c) */
            if (r->asha.on && em.has_test && !vae_trainer_finished(r->t) &&
                sweep_asha_stop(J, jb, &r->asha, em.epoch,
                                asha_value(&r->asha, em.elbo, em.kl, em.xent), reason,
                                reason_len)) {
                out = OUT_CANCELLED;
                break;
            }
        }
        if (r->last_ckpt_step != step && !vae_trainer_finished(r->t) &&
            ((cs->every_steps > 0 && step % cs->every_steps == 0) ||
             (cs->every_seconds > 0 && job_mono() - r->last_ckpt_time >= cs->every_seconds))) {
            if (worker_checkpoint(r, "periodic", 0, &err))
                log_msg(LOG_WARN, "job %lld: checkpoint: %s", (long long)jb->id, err.msg);
        }
        if (job_mono() - r->last_progress >= 1.0) {
            store_job_set_progress(J->st, jb->id, step, (double)step / jb->spe, 0, NULL);
            r->last_progress = job_mono();
        }
    }
    if (r->t) {
        long step = vae_trainer_step_index(r->t);
        store_job_set_progress(J->st, jb->id, step, (double)step / jb->spe, 0, NULL);
    }
    store_events_free(r->events, r->n_events);
    vae_trainer_free(r->t);
    return out;

failed:
    snprintf(reason, reason_len, "%s", err.msg[0] ? err.msg : "unknown error");
    store_events_free(r->events, r->n_events);
    if (r->t) {
        long step = vae_trainer_step_index(r->t);
        store_job_set_progress(J->st, jb->id, step, (double)step / (jb->spe ? jb->spe : 1), 0,
                               NULL);
    }
    vae_trainer_free(r->t);
    return OUT_FAILED;
}
