/* test_train.c — the training loop: bit-exact determinism, bit-exact resume from a
 * checkpoint blob, corrupt blobs refused without touching the trainer, divergence
 * stops the run with the step named, the beta the loss used is the beta reported, a
 * schedule swap takes effect at the step it names, and a short real run on
 * Fashion-MNIST improves its test ELBO. */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "vae/kernels.h"
#include "vae/model.h"
#include "vae/rng.h"
#include "vae/spec.h"
#include "vae/train.h"

/* n rows of width dim in [0,1]: noisy copies of four prototypes, so there is
 * something to learn. */
static vae_dataset *synthetic(long n, int dim, uint64_t seed)
{
    vae_dataset *d = xcalloc(1, sizeof *d);
    d->kind = VAE_DATA_F32;
    d->n = n;
    d->dim = dim;
    d->f32 = xmalloc(sizeof(float) * n * dim);
    vae_rng r;
    vae_rng_seed(&r, seed, 77);
    for (long i = 0; i < n; i++) {
        int proto = (int)(i % 4);
        for (int j = 0; j < dim; j++) {
            double base = ((j / (dim / 4)) == proto) ? 0.85 : 0.1;
            d->f32[i * dim + j] = (float)(base + 0.1 * vae_rng_uniform(&r) - 0.05);
        }
    }
    snprintf(d->source, sizeof d->source, "synthetic");
    return d;
}

static vae_spec small_spec(void)
{
    vae_spec s;
    vae_spec_default(&s);
    s.model.n_enc = 1;
    s.model.enc[0] = 16;
    s.model.n_dec = 1;
    s.model.dec[0] = 16;
    s.model.n_groups = 2;
    s.model.groups[0] = 2;
    s.model.groups[1] = 3;
    s.model.activation = VAE_ACT_TANH;
    s.loss.samples = 2;
    s.train.epochs = 3;
    s.train.batch_size = 32; /* 200 rows: 7 steps per epoch, the last one of 8 rows */
    s.train.seed = 1234;
    s.train.threads = 1;
    s.optimizer.lr = 3e-3;
    s.schedule.kind = SCHED_LINEAR;
    s.schedule.from = 0;
    s.schedule.to = 1;
    s.schedule.duration = 2;
    s.dataset.binarize = VAE_BIN_DYNAMIC;
    return s;
}

#define MAXSTEPS 64

typedef struct record {
    vae_metrics m[MAXSTEPS];
    int n;
    vae_epoch_metrics e[8];
    double test_elbo[8];
    int ne;
} record;

/* Compare two metrics records bit for bit, ignoring the wall-clock time. */
static int same_metrics(const vae_metrics *a, const vae_metrics *b)
{
    vae_metrics x = *a, y = *b;
    x.time = y.time = 0;
    return memcmp(&x, &y, sizeof x) == 0;
}

static int run_steps(vae_trainer *t, record *r, long until)
{
    vaed_err err;
    while (vae_trainer_step_index(t) < until) {
        vae_metrics m;
        int rc = vae_trainer_step(t, &m, &err);
        CHECK(rc == 0, "step: %s", err.msg);
        if (rc)
            return rc;
        r->m[r->n++] = m;
        if (vae_trainer_epoch_done(t)) {
            CHECK(vae_trainer_evaluate(t, &r->e[r->ne], &err) == 0, "evaluate: %s", err.msg);
            r->test_elbo[r->ne] = r->e[r->ne].elbo;
            r->ne++;
        }
    }
    return 0;
}

static vae_trainer *new_trainer(const vae_spec *s)
{
    vae_trainer *t = NULL;
    vaed_err err;
    int rc = vae_trainer_new_with_data(&t, s, synthetic(200, 24, 5), synthetic(64, 24, 6), &err);
    CHECK(rc == 0, "trainer_new: %s", err.msg);
    return t;
}

static void test_determinism_and_resume(void)
{
    vae_spec s = small_spec();
    static record a, b, c;
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b), memset(&c, 0, sizeof c);
    vae_trainer *ta = new_trainer(&s), *tb = new_trainer(&s);
    if (!ta || !tb)
        return;
    CHECK(vae_trainer_steps_per_epoch(ta) == 7, "steps per epoch %ld", vae_trainer_steps_per_epoch(ta));
    long total = vae_trainer_total_steps(ta);
    run_steps(ta, &a, total);
    run_steps(tb, &b, total);
    int same = a.n == b.n;
    for (int i = 0; i < a.n && same; i++)
        same = same_metrics(&a.m[i], &b.m[i]);
    CHECK(same, "two runs of the same spec differ");
    CHECK(a.ne == 3 && b.ne == 3 && memcmp(a.test_elbo, b.test_elbo, sizeof a.test_elbo) == 0,
          "test elbo differs between identical runs");

    /* Stop mid-epoch (step 10 of 21, in epoch 1), save, restore into a fresh trainer,
     * continue: every later step must equal the uninterrupted run's, bit for bit. */
    for (long stop = 3; stop <= 14; stop += 11) {
        vae_trainer *t1 = new_trainer(&s), *t2 = new_trainer(&s);
        memset(&c, 0, sizeof c);
        run_steps(t1, &c, stop);
        void *blob = NULL;
        size_t len = 0;
        vaed_err err;
        CHECK(vae_trainer_save(t1, &blob, &len, &err) == 0, "save: %s", err.msg);
        CHECK(vae_ckpt_step(blob, len) == stop, "blob step %ld", vae_ckpt_step(blob, len));
        CHECK(vae_trainer_load(t2, blob, len, &err) == 0, "load: %s", err.msg);
        record d;
        memset(&d, 0, sizeof d);
        run_steps(t2, &d, total);
        int ok = d.n == total - stop;
        long first_bad = -1;
        for (int i = 0; i < d.n && ok; i++)
            if (!same_metrics(&d.m[i], &a.m[stop + i]))
                ok = 0, first_bad = stop + i;
        CHECK(ok, "resume at step %ld: differs from the uninterrupted run at step %ld", stop,
              first_bad);
        /* the epoch means of a resumed epoch cover the steps before the stop too */
        CHECK(d.ne >= 1 && memcmp(&d.e[d.ne - 1].train_loss, &a.e[2].train_loss, sizeof(double)) == 0,
              "resumed epoch train loss %.17g vs %.17g", d.e[d.ne - 1].train_loss, a.e[2].train_loss);
        CHECK(memcmp(&d.test_elbo[d.ne - 1], &a.test_elbo[2], sizeof(double)) == 0,
              "resumed test elbo %.17g vs %.17g", d.test_elbo[d.ne - 1], a.test_elbo[2]);

        /* Corrupt blobs: each refused with a reason, and the trainer left untouched. */
        vae_trainer *t3 = new_trainer(&s);
        void *before = NULL, *after = NULL;
        size_t lb, la;
        vae_trainer_save(t3, &before, &lb, &err);
        unsigned char *bad = malloc(len);
        const size_t flips[] = {0, 9, 30, 100, 210, len / 2, len - 1};
        for (size_t f = 0; f < sizeof flips / sizeof *flips; f++) {
            memcpy(bad, blob, len);
            bad[flips[f]] ^= 0x40;
            vaed_err_clear(&err);
            CHECK(vae_trainer_load(t3, bad, len, &err) != 0 && strstr(err.msg, "checkpoint:"),
                  "flipped byte %zu accepted (%s)", flips[f], err.msg);
        }
        CHECK(vae_trainer_load(t3, blob, len - 1, &err) != 0, "truncated blob accepted");
        CHECK(vae_trainer_load(t3, blob, 10, &err) != 0 && strstr(err.msg, "too short"), "%s", err.msg);
        vae_trainer_save(t3, &after, &la, &err);
        CHECK(la == lb && memcmp(before, after, la) == 0, "a refused load changed the trainer");
        free(bad), free(before), free(after), free(blob);
        vae_trainer_free(t1), vae_trainer_free(t2), vae_trainer_free(t3);
    }

    /* A blob of another model shape is refused. */
    vae_spec s2 = s;
    s2.model.enc[0] = 17;
    vae_trainer *t4 = new_trainer(&s2);
    void *blob = NULL;
    size_t len;
    vaed_err err;
    vae_trainer_save(ta, &blob, &len, &err);
    CHECK(vae_trainer_load(t4, blob, len, &err) != 0 && strstr(err.msg, "another model"), "%s", err.msg);
    free(blob);
    vae_trainer_free(t4);

    /* Different seeds give different runs (the seed is used). */
    s2 = s;
    s2.train.seed = 1235;
    vae_trainer *t5 = new_trainer(&s2);
    memset(&c, 0, sizeof c);
    run_steps(t5, &c, 1);
    CHECK(c.m[0].loss != a.m[0].loss, "seed ignored");
    vae_trainer_free(t5);
    vae_trainer_free(ta);
    vae_trainer_free(tb);
}

/* With 2 threads the elementwise passes run split over a helper thread (vae/par.c):
 * still bit-for-bit reproducible, and a resumed run still equals the uninterrupted one. */
static void test_two_threads(void)
{
    vae_spec s = small_spec();
    s.train.threads = 2;
    static record a, b, c;
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b), memset(&c, 0, sizeof c);
    vae_trainer *ta = new_trainer(&s), *tb = new_trainer(&s), *tc = new_trainer(&s);
    long total = vae_trainer_total_steps(ta);
    run_steps(ta, &a, total);
    run_steps(tb, &b, 9);
    void *blob;
    size_t len;
    vaed_err err;
    CHECK(vae_trainer_save(tb, &blob, &len, &err) == 0, "%s", err.msg);
    CHECK(vae_trainer_load(tc, blob, len, &err) == 0, "%s", err.msg);
    run_steps(tc, &c, total);
    int same = c.n == total - 9;
    for (int i = 0; i < 9 && same; i++)
        same = same_metrics(&a.m[i], &b.m[i]);
    for (int i = 0; i < c.n && same; i++)
        same = same_metrics(&a.m[9 + i], &c.m[i]);
    CHECK(same, "two-thread runs differ, or the resumed one does");
    free(blob);
    vae_trainer_free(ta), vae_trainer_free(tb), vae_trainer_free(tc);
}

/* With the forward multiplies on libxsmm the model keeps W transposed (vae/model.h,
 * vae_model_use_wt): a copy, so every write of W must reach it. After steps (plain, and
 * with clipping, whose updates are a second pass), with a layer of several chunks, and
 * after a restore into a trainer that has run further, the copy is W transposed, bit
 * for bit. On OpenBLAS there is no copy. */
static int wt_is_w(const vae_model *m)
{
    if (!m->wt)
        return 0;
    for (int i = 0; i < m->n_enc + m->n_dec; i++) {
        const vae_layer *l = vae_model_layer(m, i);
        for (int o = 0; o < l->out; o++)
            for (int k = 0; k < l->in; k++)
                if (memcmp(&m->wt[l->w + (long)k * l->out + o], &m->params[l->w + (long)o * l->in + k],
                           sizeof(float)))
                    return 0;
    }
    return 1;
}

static void test_transposed_copy(void)
{
    vae_gemm_lib_set(VAE_GEMM_OPENBLAS);
    vae_spec s = small_spec();
    vae_trainer *t0 = new_trainer(&s);
    if (!t0)
        return;
    CHECK(vae_trainer_model(t0)->wt == NULL, "a model on OpenBLAS keeps a transposed copy");
    vae_trainer_free(t0);
    vae_gemm_lib_set(VAE_GEMM_LIBXSMM);
    for (int v = 0; v < 2; v++) {
        s = small_spec();
        s.model.enc[0] = 6000; /* two chunks */
        s.train.threads = 2;
        if (v == 1)
            s.optimizer.clip_norm = 0.5;
        static record r;
        memset(&r, 0, sizeof r);
        vae_trainer *ta = new_trainer(&s), *tb = new_trainer(&s);
        if (!ta || !tb)
            return;
        CHECK(wt_is_w(vae_trainer_model(ta)), "v%d: the copy is not W at the start", v);
        run_steps(ta, &r, 3);
        CHECK(wt_is_w(vae_trainer_model(ta)), "v%d: the copy is not W after 3 steps", v);
        memset(&r, 0, sizeof r);
        run_steps(tb, &r, 6);
        void *blob;
        size_t len;
        vaed_err err;
        CHECK(vae_trainer_save(ta, &blob, &len, &err) == 0, "%s", err.msg);
        CHECK(vae_trainer_load(tb, blob, len, &err) == 0, "%s", err.msg);
        CHECK(wt_is_w(vae_trainer_model(tb)), "v%d: the copy is not W after a restore", v);
        free(blob);
        vae_trainer_free(ta), vae_trainer_free(tb);
    }
    vae_gemm_lib_set(VAE_GEMM_AUTO);
}

/* The thread count never changes a number: a step's shards and chunks do not depend on
 * it (vae/model.h), and neither does which thread computes which. Runs with 1, 2 and 3
 * threads give the same metrics, epoch figures and parameters, bit for bit, for the
 * plain loop (a shard's backward pass straight after its forward pass), free bits with
 * clipping (backward after the batch's figures; a second pass for the update), a
 * capacity target, a batch of more than 128 (four shards, one short) and a layer wide
 * enough to be split into several chunks; with the backward multiplies on OpenBLAS and
 * on libxsmm alike. */
static void test_thread_counts(void)
{
    for (int lib = VAE_GEMM_OPENBLAS; lib <= VAE_GEMM_LIBXSMM; lib++)
    for (int v = 0; v < 4; v++) {
        vae_gemm_lib_set(lib); /* both libraries of the backward multiplies (vae/kernels.h) */
        vae_spec s = small_spec();
        s.train.epochs = 2;
        const char *what = "plain";
        if (v == 1) {
            what = "free bits, clipping";
            s.loss.free_bits = 0.2;
            s.optimizer.clip_norm = 0.5;
        } else if (v == 2) {
            what = "capacity, batch 200";
            s.schedule.kind = SCHED_CAPACITY;
            s.schedule.gamma = 2.0;
            s.schedule.c_max = 3.0;
            s.schedule.duration = 4;
            s.train.batch_size = 200;
            s.train.epochs = 6;
        } else if (v == 3) {
            what = "wide layer, batch 150";
            s.model.enc[0] = 6000; /* 24 inputs: chunks of 5472 rows, two of them */
            s.train.batch_size = 150;
            s.dataset.binarize = VAE_BIN_NONE;
        }
        static record r[3];
        float *params[3];
        long n = 0;
        for (int th = 1; th <= 3; th++) {
            s.train.threads = th;
            memset(&r[th - 1], 0, sizeof r[th - 1]);
            vae_trainer *t = new_trainer(&s);
            if (!t)
                return;
            run_steps(t, &r[th - 1], vae_trainer_total_steps(t));
            n = vae_trainer_model(t)->n_params;
            params[th - 1] = xmalloc(sizeof(float) * n);
            memcpy(params[th - 1], vae_trainer_model(t)->params, sizeof(float) * n);
            vae_trainer_free(t);
        }
        for (int th = 2; th <= 3; th++) {
            int same = r[th - 1].n == r[0].n && r[th - 1].ne == r[0].ne && r[0].n > 0;
            for (int i = 0; i < r[0].n && same; i++)
                same = same_metrics(&r[0].m[i], &r[th - 1].m[i]);
            for (int i = 0; i < r[0].ne && same; i++)
                same = r[0].e[i].elbo == r[th - 1].e[i].elbo &&
                       r[0].e[i].active_units == r[th - 1].e[i].active_units;
            CHECK(same, "%s: %d threads give other metrics than 1", what, th);
            CHECK(memcmp(params[0], params[th - 1], sizeof(float) * n) == 0,
                  "%s: %d threads end with other parameters than 1", what, th);
        }
        printf("%-24s %s, %d steps, 1/2/3 threads identical\n", what,
               lib == VAE_GEMM_LIBXSMM ? "libxsmm" : "OpenBLAS", r[0].n);
        for (int i = 0; i < 3; i++)
            free(params[i]);
    }
    vae_gemm_lib_set(VAE_GEMM_AUTO);
}

/* The seed's bug, at the engine: the beta in every record is the schedule's value at
 * that step, and it is the beta the loss used (loss = xent + beta·KL, free bits 0). A
 * swap between two steps is in force from the step it names. */
static void test_beta_is_the_one_used(void)
{
    vae_spec s = small_spec();
    vae_trainer *t = new_trainer(&s);
    static record r;
    memset(&r, 0, sizeof r);
    run_steps(t, &r, 10);
    for (int i = 0; i < r.n; i++) {
        /* linear 0 → 1 over 2 epochs of 7 steps: beta = step / 14 */
        CHECK_CLOSE(r.m[i].beta, r.m[i].step / 14.0, 1e-12, "linear beta");
        CHECK_CLOSE(r.m[i].loss, r.m[i].xent + r.m[i].beta * r.m[i].kl, 1e-9, "loss uses beta");
        CHECK_CLOSE(r.m[i].elbo, -(r.m[i].xent + r.m[i].kl), 1e-12, "elbo");
        double kg = 0;
        for (int g = 0; g < r.m[i].n_groups; g++)
            kg += r.m[i].kl_group[g];
        CHECK_CLOSE(kg, r.m[i].kl, 1e-12, "kl = sum of groups");
    }
    sched_spec ns;
    sched_default(&ns);
    ns.kind = SCHED_CONSTANT;
    ns.value = 0.25;
    long eff = -1;
    vae_trainer_set_schedule(t, &ns, NULL, &eff);
    CHECK(eff == 10, "effective step %ld", eff);
    run_steps(t, &r, 14);
    for (int i = 10; i < 14; i++) {
        CHECK(r.m[i].step == i && r.m[i].beta == 0.25, "step %ld beta %g", r.m[i].step, r.m[i].beta);
        CHECK_CLOSE(r.m[i].loss, r.m[i].xent + 0.25 * r.m[i].kl, 1e-9, "loss uses the new beta");
    }
    /* a swapped schedule is part of the checkpoint */
    void *blob;
    size_t len;
    vaed_err err;
    vae_trainer_save(t, &blob, &len, &err);
    vae_trainer *t2 = new_trainer(&s);
    CHECK(vae_trainer_load(t2, blob, len, &err) == 0, "%s", err.msg);
    vae_metrics m;
    vae_trainer_step(t2, &m, &err);
    CHECK(m.beta == 0.25, "restored schedule gives beta %g", m.beta);
    free(blob);
    vae_trainer_free(t2);
    vae_trainer_free(t);
}

/* A learning rate of 1e10 blows the run up: it stops with the step and the term named,
 * the parameters are those from before the failing step, and no step runs after. */
static void test_divergence(void)
{
    vae_spec s = small_spec();
    s.optimizer.lr = 1e10;
    s.model.likelihood = VAE_LIK_GAUSSIAN;
    s.dataset.binarize = VAE_BIN_NONE;
    vae_trainer *t = new_trainer(&s);
    vaed_err err;
    vae_metrics m;
    int rc = 0;
    float *before = malloc(sizeof(float) * vae_trainer_model(t)->n_params);
    long step = 0;
    for (; step < 20; step++) {
        memcpy(before, vae_trainer_model(t)->params, sizeof(float) * vae_trainer_model(t)->n_params);
        if ((rc = vae_trainer_step(t, &m, &err)))
            break;
    }
    char want[64];
    snprintf(want, sizeof want, "diverged at step %ld: ", step);
    CHECK(rc == VAED_EDIVERGED && strstr(err.msg, want), "rc %d msg '%s' want '%s'", rc, err.msg, want);
    CHECK(memcmp(before, vae_trainer_model(t)->params, sizeof(float) * vae_trainer_model(t)->n_params) == 0,
          "parameters changed by the diverged step");
    CHECK(vae_trainer_step(t, &m, &err) == VAED_EDIVERGED, "stepped after divergence");
    free(before);
    vae_trainer_free(t);
}

/* Epoch figures: training means are the row-weighted means of the steps, and active
 * units count the dimensions whose posterior-mean variance exceeds 0.01. */
static void test_epoch_figures(void)
{
    vae_spec s = small_spec();
    s.dataset.binarize = VAE_BIN_NONE;
    vae_trainer *t = new_trainer(&s);
    static record r;
    memset(&r, 0, sizeof r);
    run_steps(t, &r, 7);
    double sum = 0;
    for (int i = 0; i < 7; i++)
        sum += r.m[i].loss * (i < 6 ? 32 : 8);
    CHECK_CLOSE(r.e[0].train_loss, sum / 200, 1e-12, "epoch train loss");
    int au = 0;
    for (int j = 0; j < r.e[0].n_latent; j++)
        au += r.e[0].mu_var[j] > 0.01;
    CHECK(au == r.e[0].active_units && r.e[0].n_latent == 5, "active units %d vs %d", au, r.e[0].active_units);
    double kd = 0;
    for (int j = 0; j < r.e[0].n_latent; j++)
        kd += r.e[0].kl_dim[j];
    CHECK_CLOSE(kd, r.e[0].kl, 1e-9, "kl per dim sums to the test kl (analytic)");
    vae_trainer_free(t);
}

/* A short real run: 3 epochs on 3000 Fashion-MNIST images; the test ELBO (1000 shipped
 * test images) must improve from epoch 1 to epoch 3. */
static void test_fashion_mnist(void)
{
    const char *text =
        "{\"dataset\": {\"name\": \"fashion-mnist\", \"limit\": 3000},"
        " \"model\": {\"encoder\": [128], \"latent\": 8, \"decoder\": [128]},"
        " \"schedule\": {\"kind\": \"constant\", \"value\": 1},"
        " \"train\": {\"epochs\": 3, \"batch_size\": 100, \"seed\": 3, \"threads\": 1}}";
    vae_spec s;
    vaed_err err;
    int rc = vae_spec_parse_text(&s, text, strlen(text), &err);
    CHECK(rc == 0, "spec: %s", err.msg);
    if (rc)
        return;
    vae_trainer *t = NULL;
    rc = vae_trainer_new(&t, &s, &err);
    CHECK(rc == 0, "trainer: %s", err.msg);
    if (rc)
        return;
    double elbo[3] = {0};
    int e = 0;
    while (!vae_trainer_finished(t)) {
        vae_metrics m;
        if (vae_trainer_step(t, &m, &err)) {
            CHECK(0, "step: %s", err.msg);
            break;
        }
        if (vae_trainer_epoch_done(t)) {
            vae_epoch_metrics em;
            CHECK(vae_trainer_evaluate(t, &em, &err) == 0, "%s", err.msg);
            CHECK(em.has_test && em.test_n == 10000, "test split of %ld", em.test_n);
            elbo[e++] = em.elbo;
            printf("fashion-mnist epoch %d: test elbo %.3f (xent %.3f, kl %.3f, active %d)\n",
                   em.epoch, em.elbo, em.xent, em.kl, em.active_units);
        }
    }
    CHECK(e == 3 && elbo[2] > elbo[0] + 5.0, "test elbo did not improve: %g → %g", elbo[0], elbo[2]);
    CHECK(elbo[2] > -400 && elbo[2] < -200, "test elbo %g out of the plausible range", elbo[2]);
    vae_trainer_free(t);
}

int main(void)
{
    test_determinism_and_resume();
    test_two_threads();
    test_thread_counts();
    test_transposed_copy();
    test_beta_is_the_one_used();
    test_divergence();
    test_epoch_figures();
    test_fashion_mnist();
    return t_done("test_train");
}
