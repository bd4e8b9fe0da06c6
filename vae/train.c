/* train.c — see train.h. */
#include "train_impl.h"

#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

/* The parameter chunks the elementwise passes are shared out in (see par_job below). */
#define PAR_CHUNK (64L * 1024) /* elements; a multiple of vae_adam_update's 4096 blocks */

static long par_chunks(long n)
{
    return (n + PAR_CHUNK - 1) / PAR_CHUNK;
}

/* Streams of the job's seed; each use of randomness has its own so that one never
 * shifts another. */
enum { STREAM_NOISE = 0, STREAM_INIT = 1, STREAM_STATIC_TRAIN = 2, STREAM_STATIC_TEST = 3,
       STREAM_ORDER = 1000, STREAM_EVAL = 1u << 30 };

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Under ThreadSanitizer OpenBLAS runs on one thread: its threads are not instrumented,
 * so TSan cannot see how they hand results back and reports every multiply's output
 * as a race. Our own threads (vae/par.c, the daemon) are still checked. */
void vae_blas_threads(int n)
{
#if defined(__SANITIZE_THREAD__)
    n = 1;
#endif
    openblas_set_num_threads(n);
}

void vae_blas_info(char *buf, size_t n)
{
    snprintf(buf, n, "OpenBLAS core %s, %d threads (%s)", openblas_get_corename(),
             openblas_get_num_threads(), openblas_get_config());
}

/* Fisher-Yates over 0..N-1 drawn from the stream (seed, ORDER + epoch). */
void vae_trainer_order(vae_trainer *t, long epoch)
{
    vae_rng r;
    vae_rng_seed(&r, t->spec.train.seed, STREAM_ORDER + (uint64_t)epoch);
    for (long i = 0; i < t->N; i++)
        t->perm[i] = i;
    for (long i = t->N - 1; i > 0; i--) {
        long j = (long)vae_rng_below(&r, (uint64_t)i + 1);
        long tmp = t->perm[i];
        t->perm[i] = t->perm[j];
        t->perm[j] = tmp;
    }
    t->perm_epoch = epoch;
}

/* Sample every value once to 0 or its maximum (static binarisation). */
static void binarize_static(vae_dataset *d, uint64_t seed, uint64_t stream)
{
    vae_rng r;
    vae_rng_seed(&r, seed, stream);
    long n = d->n * d->dim;
    if (d->kind == VAE_DATA_U8)
        for (long i = 0; i < n; i++)
            d->u8[i] = vae_rng_uniform(&r) * 255.0 < d->u8[i] ? 255 : 0;
    else if (d->kind == VAE_DATA_F32)
        for (long i = 0; i < n; i++)
            d->f32[i] = vae_rng_uniform(&r) < d->f32[i] ? 1.0f : 0.0f;
}

/* Bernoulli data must lie in [0, 1]; say where it does not instead of training on it. */
static int check_unit_range(const vae_dataset *d, vaed_err *err)
{
    if (d->kind != VAE_DATA_F32)
        return 0;
    for (long i = 0; i < d->n * d->dim; i++)
        if (!(d->f32[i] >= 0.0f && d->f32[i] <= 1.0f))
            return vaed_err_set(err, VAED_EINVAL, "model.likelihood",
                                "bernoulli needs data in [0, 1]; %s has %g at row %ld, column %ld",
                                d->source, d->f32[i], i / d->dim + 1, i % d->dim + 1);
    return 0;
}

int vae_trainer_new(vae_trainer **out, const vae_spec *spec, vaed_err *err)
{
    vae_dataset *train = NULL, *test = NULL;
    *out = NULL;
    int rc = vae_data_load(&spec->dataset, &train, &test, err);
    if (rc)
        return rc;
    return vae_trainer_new_with_data(out, spec, train, test, err);
}

int vae_trainer_new_with_data(vae_trainer **out, const vae_spec *spec, vae_dataset *train,
                              vae_dataset *test, vaed_err *err)
{
    int rc = 0;
    vae_trainer *t = xcalloc(1, sizeof *t);
    t->spec = *spec;
    t->train = train;
    t->test = test;
    *out = NULL;
    if (!train || train->n <= 0) {
        rc = vaed_err_set(err, VAED_EINVAL, "dataset", "the training split has no rows");
        goto fail;
    }
    if (test && test->dim != train->dim) {
        rc = vaed_err_set(err, VAED_EINVAL, "dataset.test_path",
                          "test rows have %ld features, training rows %ld", test->dim, train->dim);
        goto fail;
    }
    if (train->dim > INT32_MAX / 4) {
        rc = vaed_err_set(err, VAED_ETOOBIG, "dataset", "%ld features per row is too many",
                          train->dim);
        goto fail;
    }
    int categorical = spec->model.likelihood == VAE_LIK_CATEGORICAL;
    if (categorical != (train->kind == VAE_DATA_SEQ)) {
        rc = vaed_err_set(err, VAED_EINVAL, "model.likelihood",
                          categorical ? "categorical needs text data (dataset.format \"text\")"
                                      : "text data needs the categorical likelihood");
        goto fail;
    }
    if (spec->model.likelihood == VAE_LIK_BERNOULLI) {
        if ((rc = check_unit_range(train, err)) || (test && (rc = check_unit_range(test, err))))
            goto fail;
        if (spec->dataset.binarize == VAE_BIN_STATIC) {
            binarize_static(train, spec->train.seed, STREAM_STATIC_TRAIN);
            if (test)
                binarize_static(test, spec->train.seed, STREAM_STATIC_TEST);
        }
    }
    t->N = train->n;
    int B = spec->train.batch_size < t->N ? spec->train.batch_size : (int)t->N;
    t->S = (t->N + B - 1) / B;
    t->total = t->S * spec->train.epochs;
    if ((rc = vae_model_new(&t->model, spec, (int)train->dim, train->vocab, B, err)))
        goto fail;
    t->perm = malloc((size_t)t->N * sizeof *t->perm);
    int L = t->model->L;
    t->kl_dim = calloc((size_t)L, sizeof(double));
    t->mu_var = calloc((size_t)L, sizeof(double));
    t->mu_sum = calloc((size_t)L, sizeof(double));
    t->mu_sq = calloc((size_t)L, sizeof(double));
    t->kl_tmp = calloc((size_t)B * L, sizeof(double));
    t->chunk_sq = calloc((size_t)par_chunks(t->model->n_params), sizeof(double));
    if (!t->perm || !t->kl_dim || !t->mu_var || !t->mu_sum || !t->mu_sq || !t->kl_tmp ||
        !t->chunk_sq) {
        rc = vaed_err_set(err, VAED_ENOMEM, "dataset", "out of memory for %ld rows", t->N);
        goto fail;
    }
    t->perm_epoch = -1;
    vae_rng_seed(&t->rng, spec->train.seed, STREAM_NOISE);
    t->sched = spec->schedule;
    t->lr = spec->optimizer.lr;
    t->beta_last = sched_beta(&t->sched, &(sched_state){0}, 0, t->S, 0.0);
    vae_blas_threads(spec->train.threads);
    /* With one BLAS thread the second core is not ours to take. */
    t->par = spec->train.threads > 1 ? vae_par_new() : NULL;
    *out = t;
    return 0;
fail:
    vae_trainer_free(t);
    return rc;
}

void vae_trainer_free(vae_trainer *t)
{
    if (!t)
        return;
    vae_par_free(t->par);
    vae_model_free(t->model);
    vae_dataset_free(t->train);
    vae_dataset_free(t->test);
    free(t->perm);
    free(t->kl_dim);
    free(t->mu_var);
    free(t->mu_sum);
    free(t->mu_sq);
    free(t->kl_tmp);
    free(t->chunk_sq);
    free(t);
}

/* Resample the batch to 0/1 with probabilities x (dynamic binarisation). */
static void binarize_dynamic(float *x, long n, vae_rng *r)
{
    for (long i = 0; i < n; i++)
        x[i] = vae_rng_uniform(r) < x[i] ? 1.0f : 0.0f;
}

/* The elementwise passes over the parameter buffers (Adam, the gradient norm), shared
 * by the caller and the helper thread (vae/par.h) in chunks that each claims from a
 * counter: whichever thread is not held up does more of them, so a helper that the
 * scheduler preempts (OpenBLAS's idle worker spins on its core; in the daemon, HTTP
 * threads come and go) no longer makes the whole step wait for its half. Each chunk's
 * sum of squares goes to its own slot and the slots are added in chunk order, so the
 * result does not depend on which thread did which chunk: runs stay bit-for-bit
 * reproducible. */

typedef struct par_job {
    vae_model *m;
    long n;
    double *sq;                 /* per chunk: Σ g² (before clipping) */
    atomic_long next;           /* the next chunk to claim */
    const vae_optim_spec *o;
    double lr, clip;
    long t;
} par_job;

/* Claim the next chunk: 1 and its range, or 0 when none is left. */
static int par_claim(par_job *j, long *c, long *lo, long *hi)
{
    *c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
    *lo = *c * PAR_CHUNK;
    if (*lo >= j->n)
        return 0;
    *hi = *lo + PAR_CHUNK < j->n ? *lo + PAR_CHUNK : j->n;
    return 1;
}

/* Σ over the chunks, in chunk order. */
static double par_total(const par_job *j)
{
    double s = 0.0;
    for (long c = 0; c < par_chunks(j->n); c++)
        s += j->sq[c];
    return s;
}

static void par_sumsq(void *arg, int part, int nparts)
{
    par_job *j = arg;
    long c, lo, hi;
    (void)part;
    (void)nparts;
    while (par_claim(j, &c, &lo, &hi))
        j->sq[c] = sum_squares(j->m->grads + lo, hi - lo);
}

static void par_adam(void *arg, int part, int nparts)
{
    par_job *j = arg;
    vae_model *m = j->m;
    long c, lo, hi;
    (void)part;
    (void)nparts;
    while (par_claim(j, &c, &lo, &hi))
        j->sq[c] = vae_adam_update(m->params + lo, m->grads + lo, m->m + lo, m->v + lo,
                                   hi - lo, j->o, j->lr, j->clip, j->t);
}

static const char *first_nonfinite(const vae_terms *tm)
{
    if (!isfinite(tm->xent))
        return "xent";
    if (!isfinite(tm->kl))
        return "kl";
    if (!isfinite(tm->loss))
        return "loss";
    return NULL;
}

/* Flush denormals to zero in this thread. As a run converges, Adam's second moments
 * and small gradients drift into the denormal range, where x86 arithmetic is ~100x
 * slower: without this, an epoch of the reference model takes twice as long by the
 * fifth. The effect on results is below float precision of any reported figure. */
static void flush_denormals(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ | DAZ */
#endif
}

int vae_trainer_step(vae_trainer *t, vae_metrics *mt, vaed_err *err)
{
    flush_denormals();
    vae_model *m = t->model;
    if (t->diverged)
        return vaed_err_set(err, VAED_EDIVERGED, NULL, "the run diverged; no further steps");
    if (t->step >= t->total)
        return vaed_err_set(err, VAED_ESTATE, NULL, "the run is finished");

    const long epoch = t->step / t->S, pos = t->step % t->S;
    if (t->perm_epoch != epoch)
        vae_trainer_order(t, epoch);
    const int Bmax = m->max_batch;
    const long first = pos * Bmax;
    const int B = (int)(t->N - first < Bmax ? t->N - first : Bmax);
    vae_batch_fill(t->train, t->perm + first, B, m->x);
    if (t->spec.dataset.binarize == VAE_BIN_DYNAMIC)
        binarize_dynamic(m->x, (long)B * m->D, &t->rng);
    vae_rng_normal(&t->rng, m->eps, (long)B * m->k * m->L);

    /* The one beta: evaluated here, used in the loss below, reported in mt. */
    vae_klweight w = {0};
    w.beta = sched_beta(&t->sched, &t->sst, t->step, t->S, t->kl_last);
    w.capacity = t->sched.kind == SCHED_CAPACITY;
    w.C = sched_capacity(&t->sched, t->step, t->S);

    vae_terms tm;
    vae_model_step(m, B, &w, 1, &tm);

    /* A non-finite loss term stops the run before anything changes. */
    const char *bad = first_nonfinite(&tm);
    if (bad) {
        double v = !strcmp(bad, "xent") ? tm.xent : !strcmp(bad, "kl") ? tm.kl : tm.loss;
        t->diverged = 1;
        return vaed_err_set(err, VAED_EDIVERGED, NULL, "diverged at step %ld: %s is %g", t->step,
                            bad, v);
    }
    /* Adam over the parameters on both threads at once. Clipping needs the global norm
     * first, so it costs a pass of its own; without it, the norm comes out of the Adam
     * pass itself, and a gradient that overflowed with a finite loss is caught right
     * after the update it spoiled (the run stops there all the same). */
    const long n = m->n_params;
    const vae_optim_spec *o = &t->spec.optimizer;
    par_job pj = {.m = m, .n = n, .sq = t->chunk_sq, .o = o, .lr = t->lr, .clip = 1.0,
                  .t = t->step + 1};
    atomic_init(&pj.next, 0);
    double gn2 = 0.0;
    if (o->clip_norm > 0) {
        vae_par_run(t->par, par_sumsq, &pj);
        gn2 = par_total(&pj);
        atomic_store(&pj.next, 0);
        if (isfinite(gn2) && sqrt(gn2) > o->clip_norm)
            pj.clip = o->clip_norm / sqrt(gn2);
    }
    if (o->clip_norm <= 0 || isfinite(gn2)) {
        vae_par_run(t->par, par_adam, &pj);
        gn2 = par_total(&pj);
    }
    if (!isfinite(gn2)) {
        t->diverged = 1;
        return vaed_err_set(err, VAED_EDIVERGED, NULL, "diverged at step %ld: grad_norm is %g",
                            t->step, sqrt(gn2));
    }
    const double gnorm = sqrt(gn2);

    memset(mt, 0, sizeof *mt);
    mt->step = t->step;
    mt->epoch = (double)t->step / (double)t->S;
    mt->beta = w.beta;
    mt->capacity = w.C;
    mt->loss = tm.loss;
    mt->xent = tm.xent;
    mt->kl = tm.kl;
    mt->elbo = -(tm.xent + tm.kl);
    mt->lr = t->lr;
    mt->grad_norm = gnorm;
    mt->n_groups = m->n_groups;
    memcpy(mt->kl_group, tm.kl_group, sizeof mt->kl_group);
    mt->time = now_unix();

    t->acc_loss += tm.loss * B;
    t->acc_xent += tm.xent * B;
    t->acc_kl += tm.kl * B;
    t->acc_beta += w.beta * B;
    t->acc_n += B;
    t->beta_last = w.beta;
    t->kl_last = tm.kl;
    t->step++;
    return 0;
}

int vae_trainer_evaluate(vae_trainer *t, vae_epoch_metrics *e, vaed_err *err)
{
    vae_model *m = t->model;
    const int L = m->L;
    memset(e, 0, sizeof *e);
    e->epoch = (int)(t->step / t->S);
    e->step = t->step;
    if (t->acc_n > 0) {
        e->train_loss = t->acc_loss / t->acc_n;
        e->train_xent = t->acc_xent / t->acc_n;
        e->train_kl = t->acc_kl / t->acc_n;
        e->train_elbo = -(e->train_xent + e->train_kl);
        e->train_beta = t->acc_beta / t->acc_n;
    }
    t->acc_loss = t->acc_xent = t->acc_kl = t->acc_beta = 0.0;
    t->acc_n = 0;
    e->n_groups = m->n_groups;
    e->n_latent = L;
    e->kl_dim = t->kl_dim;
    e->mu_var = t->mu_var;
    if (!t->test)
        return 0;

    /* The held-out split at beta = 1, with noise from a stream of its own. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vae_rng r;
    vae_rng_seed(&r, t->spec.train.seed, STREAM_EVAL + (uint64_t)e->epoch);
    const vae_klweight w = {.beta = 1.0};
    const long n = t->test->n;
    double sx = 0, sk = 0, sg[VAE_MAX_GROUPS] = {0};
    memset(t->kl_dim, 0, (size_t)L * sizeof(double));
    memset(t->mu_sum, 0, (size_t)L * sizeof(double));
    memset(t->mu_sq, 0, (size_t)L * sizeof(double));
    long rows[1024];
    for (long first = 0; first < n;) {
        int B = (int)(n - first < m->max_batch ? n - first : m->max_batch);
        if (B > 1024)
            B = 1024;
        for (int i = 0; i < B; i++)
            rows[i] = first + i;
        vae_batch_fill(t->test, rows, B, m->x);
        if (t->spec.dataset.binarize == VAE_BIN_DYNAMIC)
            binarize_dynamic(m->x, (long)B * m->D, &r);
        vae_rng_normal(&r, m->eps, (long)B * m->k * L);
        vae_terms tm;
        vae_model_step(m, B, &w, 0, &tm);
        sx += tm.xent * B;
        sk += tm.kl * B;
        for (int g = 0; g < m->n_groups; g++)
            sg[g] += tm.kl_group[g] * B;
        vae_model_kl_dims(m, B, t->kl_tmp);
        const float *head = m->enc_out[m->n_enc - 1];
        for (int i = 0; i < B; i++)
            for (int j = 0; j < L; j++) {
                double mu = head[(long)i * 2 * L + j];
                t->kl_dim[j] += t->kl_tmp[(long)i * L + j];
                t->mu_sum[j] += mu;
                t->mu_sq[j] += mu * mu;
            }
        first += B;
    }
    e->has_test = 1;
    e->test_n = n;
    e->xent = sx / n;
    e->kl = sk / n;
    e->elbo = -(e->xent + e->kl);
    for (int g = 0; g < m->n_groups; g++)
        e->kl_group[g] = sg[g] / n;
    for (int j = 0; j < L; j++) {
        double mean = t->mu_sum[j] / n;
        t->kl_dim[j] /= n;
        t->mu_var[j] = t->mu_sq[j] / n - mean * mean;
        if (t->mu_var[j] < 0)
            t->mu_var[j] = 0;
        e->active_units += t->mu_var[j] > 0.01;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    e->eval_s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (!isfinite(e->elbo))
        return vaed_err_set(err, VAED_EDIVERGED, NULL,
                            "diverged at step %ld: test elbo is %g", t->step, e->elbo);
    return 0;
}

long vae_trainer_step_index(const vae_trainer *t) { return t->step; }
long vae_trainer_steps_per_epoch(const vae_trainer *t) { return t->S; }
long vae_trainer_total_steps(const vae_trainer *t) { return t->total; }
int vae_trainer_finished(const vae_trainer *t) { return t->step >= t->total; }
int vae_trainer_epoch_done(const vae_trainer *t) { return t->step > 0 && t->step % t->S == 0; }
const vae_spec *vae_trainer_spec(const vae_trainer *t) { return &t->spec; }
const vae_model *vae_trainer_model(const vae_trainer *t) { return t->model; }
long vae_trainer_train_rows(const vae_trainer *t) { return t->N; }
double vae_trainer_beta(const vae_trainer *t) { return t->beta_last; }
const sched_spec *vae_trainer_schedule(const vae_trainer *t) { return &t->sched; }

void vae_trainer_set_schedule(vae_trainer *t, const sched_spec *s, sched_spec *resolved,
                              long *effective_step)
{
    sched_spec n = *s;
    sched_resolve(&n, t->step, t->S, t->beta_last);
    t->sched = n;
    /* A controller taking over mid-run starts from the beta in force, so beta does not
     * drop to its minimum; at step 0 it starts fresh, as in a new run. */
    sched_state_init(&t->sched, &t->sst, t->step > 0 ? t->beta_last : NAN);
    if (resolved)
        *resolved = n;
    if (effective_step)
        *effective_step = t->step;
}

void vae_trainer_set_lr(vae_trainer *t, double lr) { t->lr = lr; }

int vae_trainer_run(vae_trainer *t, const vae_hooks *h, vaed_err *err)
{
    vae_metrics m;
    vae_epoch_metrics e;
    int rc;
    while (!vae_trainer_finished(t)) {
        if ((rc = vae_trainer_step(t, &m, err)))
            return rc;
        if (h && h->on_step && h->on_step(h->user, &m))
            return 0;
        if (vae_trainer_epoch_done(t)) {
            if ((rc = vae_trainer_evaluate(t, &e, err)))
                return rc;
            if (h && h->on_epoch && h->on_epoch(h->user, &e))
                return 0;
        }
    }
    return 0;
}
