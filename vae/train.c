/* train.c — see train.h. */
#include "train_impl.h"

#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

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

/* OpenBLAS runs every multiply on the thread that calls it: vaed's threads share a
 * step's work themselves (vae/par.h), and several jobs may train at once. */
void vae_blas_init(void)
{
    openblas_set_num_threads(1);
}

void vae_blas_info(char *buf, size_t n)
{
    char gemm[64];
    vae_gemm_describe(gemm, sizeof gemm);
    snprintf(buf, n, "OpenBLAS core %s, %d threads (%s); multiplies: %s",
             openblas_get_corename(), openblas_get_num_threads(), openblas_get_config(), gemm);
}

void vae_kernels_id(char *buf, size_t n)
{
    char gemm[64];
    vae_gemm_describe(gemm, sizeof gemm);
    const char *core = openblas_get_corename();
    /* the build's own vector code (the Makefile compiles for the host: -march=native) */
#if defined(__AVX512F__)
    const char *isa = "avx512f";
#elif defined(__AVX2__) && defined(__FMA__)
    const char *isa = "avx2 fma";
#elif defined(__AVX__)
    const char *isa = "avx";
#else
    const char *isa = "baseline";
#endif
    snprintf(buf, n, "OpenBLAS core %s; multiplies: %s; built for %s", core ? core : "?", gemm,
             isa);
}

int vae_blas_narrow(char *buf, size_t n)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
        return 0;
    if (vae_blas_core_avx512())
        return 0;
    const char *core = openblas_get_corename(), *env = getenv("OPENBLAS_CORETYPE");
    if (env && *env)
        snprintf(buf, n,
                 "OpenBLAS core %s (OPENBLAS_CORETYPE=%s) has no AVX-512 kernels, and this "
                 "CPU has AVX-512: unset OPENBLAS_CORETYPE to let OpenBLAS choose, or set it "
                 "to SkylakeX, if that OpenBLAS computes correctly on this CPU",
                 core ? core : "?", env);
    else
        snprintf(buf, n,
                 "OpenBLAS core %s has no AVX-512 kernels, and this CPU has AVX-512: this "
                 "OpenBLAS does not know the CPU; OPENBLAS_CORETYPE=SkylakeX selects its "
                 "AVX-512 kernels",
                 core ? core : "?");
    return 1;
#else /* AVX-512 is an x86 matter, like the denormal flush above */
    (void)buf;
    (void)n;
    return 0;
#endif
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
    t->chunk_sq = calloc((size_t)t->model->n_chunks, sizeof(double));
    t->unif = calloc((size_t)B * t->model->k * L + 2, sizeof(double));
    if (!t->perm || !t->kl_dim || !t->mu_var || !t->mu_sum || !t->mu_sq || !t->kl_tmp ||
        !t->chunk_sq || !t->unif) {
        rc = vaed_err_set(err, VAED_ENOMEM, "dataset", "out of memory for %ld rows", t->N);
        goto fail;
    }
    if (vae_model_use_wt(t->model)) {
        rc = vaed_err_set(err, VAED_ENOMEM, "model", "out of memory for the transposed weights");
        goto fail;
    }
    t->perm_epoch = -1;
    vae_rng_seed(&t->rng, spec->train.seed, STREAM_NOISE);
    t->sched = spec->schedule;
    t->lr = spec->optimizer.lr;
    t->beta_last = sched_beta(&t->sched, &(sched_state){0}, 0, t->S, 0.0);
    vae_blas_init();
    if (spec->train.threads > 1 && !(t->par = vae_par_new(spec->train.threads))) {
        rc = vaed_err_set(err, VAED_ENOMEM, "train.threads", "could not start %d threads",
                          spec->train.threads);
        goto fail;
    }
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
    free(t->unif);
    free(t);
}

/* Resample the batch to 0/1 with probabilities x (dynamic binarisation). */
static void binarize_dynamic(float *x, long n, vae_rng *r)
{
    for (long i = 0; i < n; i++)
        x[i] = vae_rng_uniform(r) < x[i] ? 1.0f : 0.0f;
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

static double chunks_total(const vae_trainer *t)
{
    double s = 0.0;
    for (int c = 0; c < t->model->n_chunks; c++)
        s += t->chunk_sq[c];
    return s;
}

/* One training step on the trainer's threads (vae/par.h): every part runs step_part,
 * claiming the batch's shards and then the parameters' chunks (vae/model.h) from
 * counters, so a part that the scheduler holds up leaves more of them to the others.
 * There is no barrier between the phases: a chunk waits only for the work its inputs
 * come from (vae_model_chunk_needs), so a part that finishes its shards early goes on
 * with the decoder's chunks while the others finish the encoder's backward pass. Each
 * chunk's sum of squares goes to its own slot and the slots are added in chunk order:
 * which part did what never changes a number. */
typedef struct step_job {
    vae_trainer *t;
    int B;
    int fill;                   /* 1: the parts fill their shards' rows of the batch */
    const long *rows;           /* the batch's row indices */
    vae_klweight w;
    vae_terms tm;               /* written by part 0 */
    double gn2;                 /* Σ grad², before clipping (clipping only) */
    atomic_int shard[2];        /* next shard to claim: forward, backward */
    atomic_int chunk[2];        /* next chunk to claim: gradient, clipped update */
    atomic_ulong done[3];       /* shards done: forward, decoder backward, all backward */
} step_job;

static int claim(atomic_int *next, int n)
{
    int i = atomic_fetch_add_explicit(next, 1, memory_order_relaxed);
    return i < n ? i : -1;
}

static const char *first_nonfinite(const vae_terms *tm);

/* The update of one chunk: Adam over its rows of W and their b; returns Σ grad². */
static double adam_chunk(vae_trainer *t, const vae_span *sp, double clip)
{
    vae_model *m = t->model;
    const vae_optim_spec *o = &t->spec.optimizer;
    const long n = t->step + 1;
    double sq = vae_adam_update(m->params + sp->w, m->grads + sp->w, m->m + sp->w, m->v + sp->w,
                                sp->nw, o, t->lr, clip, n);
    vae_model_sync_wt(m, sp); /* the rows just written, while they are in cache */
    return sq + vae_adam_update(m->params + sp->b, m->grads + sp->b, m->m + sp->b, m->v + sp->b,
                                sp->nb, o, t->lr, clip, n);
}

static void backward_shard(step_job *j, int i, const vae_terms *tm)
{
    vae_par *par = j->t->par;
    vae_model_backward_decoder(j->t->model, j->B, i);
    vae_par_post(par, &j->done[1]);
    vae_model_backward_encoder(j->t->model, j->B, i, tm);
    vae_par_post(par, &j->done[2]);
}

static void step_part(void *arg, int part, int nparts)
{
    step_job *j = arg;
    vae_trainer *t = j->t;
    vae_model *m = t->model;
    vae_par *par = t->par;
    const unsigned long S = (unsigned long)vae_model_shards(j->B);
    const int clip = t->spec.optimizer.clip_norm > 0;
    int i;
    (void)nparts;
    flush_denormals();
    /* The backward pass needs the batch's figures only when free bits or a capacity
     * target make the KL's weight depend on them: otherwise each shard goes straight
     * on from its forward pass to its backward pass, while it is in cache. */
    const int early = !vae_model_needs_terms(m, &j->w);
    vae_terms tm = {.coef = j->w.beta};
    while ((i = claim(&j->shard[0], (int)S)) >= 0) {
        const int r = vae_model_shard_rows(j->B), i0 = i * r, n = i0 + r < j->B ? r : j->B - i0;
        if (j->fill)
            vae_batch_fill(t->train, j->rows + i0, n, m->x + (long)i0 * m->D);
        const long per = (long)m->k * m->L;
        vae_rng_normal_from(t->unif, m->eps, i0 * per, (i0 + n) * per);
        vae_model_forward(m, j->B, i, 1);
        vae_par_post(par, &j->done[0]);
        if (early)
            backward_shard(j, i, &tm);
    }
    /* Every part works the batch's figures out alike, and stops alike if they are not
     * finite, before any parameter changes. */
    vae_par_wait(par, &j->done[0], S);
    vae_model_terms(m, j->B, &j->w, &tm);
    if (part == 0)
        j->tm = tm;
    if (first_nonfinite(&tm))
        return;
    if (!early)
        while ((i = claim(&j->shard[1], (int)S)) >= 0)
            backward_shard(j, i, &tm);
    /* Without clipping each chunk is updated right after its gradient is made, while it
     * is in cache; the norm comes out of the update. Clipping needs the global norm
     * first, so it costs a pass of its own. */
    vae_span sp;
    while ((i = claim(&j->chunk[0], m->n_chunks)) >= 0) {
        vae_par_wait(par, &j->done[vae_model_chunk_needs(m, i)], S);
        vae_model_grad(m, j->B, i, &sp, 1); /* adds to the zeros the last update left */
        t->chunk_sq[i] = clip ? sum_squares(m->grads + sp.w, sp.nw) +
                                    sum_squares(m->grads + sp.b, sp.nb)
                              : adam_chunk(t, &sp, 1.0);
    }
    if (!clip)
        return;
    vae_par_barrier(par);
    const double gn2 = chunks_total(t), maxn = t->spec.optimizer.clip_norm;
    if (part == 0)
        j->gn2 = gn2;
    if (!isfinite(gn2))
        return;
    const double scale = sqrt(gn2) > maxn ? maxn / sqrt(gn2) : 1.0;
    while ((i = claim(&j->chunk[1], m->n_chunks)) >= 0) {
        vae_model_chunk(m, i, &sp);
        adam_chunk(t, &sp, scale);
    }
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

int vae_trainer_step(vae_trainer *t, vae_metrics *mt, vaed_err *err)
{
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
    step_job j = {.t = t, .B = B, .rows = t->perm + first};
    /* Dynamic binarisation draws from the job's stream in row order, so it fills the
     * batch here; otherwise each part fills its own shards. */
    if (t->spec.dataset.binarize == VAE_BIN_DYNAMIC) {
        vae_batch_fill(t->train, t->perm + first, B, m->x);
        binarize_dynamic(m->x, (long)B * m->D, &t->rng);
    } else {
        j.fill = 1;
    }
    /* The noise's uniforms are drawn here, in order; the parts turn their shards' into
     * normals (vae_rng_normal in two halves). */
    vae_rng_normal_draw(&t->rng, t->unif, (long)B * m->k * m->L);

    /* The one beta: evaluated here, used in the loss below, reported in mt. */
    j.w.beta = sched_beta(&t->sched, &t->sst, t->step, t->S, t->kl_last);
    j.w.capacity = t->sched.kind == SCHED_CAPACITY;
    j.w.C = sched_capacity(&t->sched, t->step, t->S);
    for (int i = 0; i < 3; i++) {
        if (i < 2) {
            atomic_init(&j.shard[i], 0);
            atomic_init(&j.chunk[i], 0);
        }
        atomic_init(&j.done[i], 0);
    }
    vae_par_run(t->par, step_part, &j);
    const vae_terms tm = j.tm;
    const vae_klweight w = j.w;

    /* A non-finite loss term stops the run before anything changes. */
    const char *bad = first_nonfinite(&tm);
    if (bad) {
        double v = !strcmp(bad, "xent") ? tm.xent : !strcmp(bad, "kl") ? tm.kl : tm.loss;
        t->diverged = 1;
        return vaed_err_set(err, VAED_EDIVERGED, NULL, "diverged at step %ld: %s is %g", t->step,
                            bad, v);
    }
    /* Without clipping, a gradient that overflowed with a finite loss is caught right
     * after the update it spoiled (the run stops there all the same); with clipping,
     * before it. */
    const double gn2 = t->spec.optimizer.clip_norm > 0 ? j.gn2 : chunks_total(t);
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

/* The forward pass alone, shared out by shards (evaluation). */
typedef struct fwd_job {
    vae_model *m;
    int B;
    atomic_int next;
} fwd_job;

static void forward_part(void *arg, int part, int nparts)
{
    fwd_job *j = arg;
    int i;
    (void)part;
    (void)nparts;
    flush_denormals();
    while ((i = claim(&j->next, vae_model_shards(j->B))) >= 0)
        vae_model_forward(j->m, j->B, i, 0);
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
        fwd_job fj = {.m = m, .B = B};
        atomic_init(&fj.next, 0);
        vae_par_run(t->par, forward_part, &fj);
        vae_terms tm;
        vae_model_terms(m, B, &w, &tm);
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
