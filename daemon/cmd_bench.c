/* cmd_bench.c — `vaed bench-sgemm SPEC.json`: times the multiplies alone on exactly the
 * GEMM shapes of one training step of the spec's model (forward, dW and dX of every
 * layer, no dX for the first layer), for scripts/bench-train, in two arrangements:
 *   vaed:    as a training step runs them (vae/model.h): forward and input-gradient
 *            multiplies per shard of the batch, weight gradients per chunk of rows,
 *            shared out on train.threads threads with the step's barriers between,
 *            through the step's own vae_gemm_* (vae/kernels.h: OpenBLAS, or libxsmm
 *            where vae_gemm_lib() says, the forward ones then from the transposed
 *            weights, whose upkeep is the step's and not timed here);
 *   openblas: the whole batch in one cblas_sgemm each, on train.threads OpenBLAS threads.
 * sec_per_step is the faster of the two, the rate the training loop is held to.
 * Prints one JSON object: {"flop_per_step", "flop_per_sample", "sec_per_step",
 * "sec_per_step_vaed", "sec_per_step_openblas", "gflops", "batch", "threads", "gemm"}.
 *
 * With --eval-k K, for scripts/bench-eval: the multiplies of an evaluation with K
 * samples per row instead (vae/eval.h: the forward passes only, cut as vae_eval_plan
 * cuts them, on the calling thread as the evaluator runs them). Prints {"k",
 * "flop_per_row", "sec_per_row", "gflops"}. */
#include <cblas.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/cmd.h"
#include "vae/data.h"
#include "vae/eval.h"
#include "vae/kernels.h"
#include "vae/model.h"
#include "vae/par.h"
#include "vae/spec.h"
#include "vae/train.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct gemm_job {
    vae_model *m;
    vae_par *par;
    int B;
    atomic_int next[2];         /* shards, chunks */
    atomic_ulong done[3];       /* as in the trainer: forward, decoder, all */
} gemm_job;

static int claim(atomic_int *c, int n)
{
    int i = atomic_fetch_add(c, 1);
    return i < n ? i : -1;
}

/* The multiplies of shard s: every layer's forward, or the input gradients of the
 * layers [from, to) going down. */
static void shard_gemms(gemm_job *j, int s, int forward, int from, int to)
{
    vae_model *m = j->m;
    const int rows = vae_model_shard_rows(j->B);
    for (int i = forward ? from : to - 1; forward ? i < to : i >= from; i += forward ? 1 : -1) {
        const vae_layer *l = vae_model_layer(m, i);
        const int k = i < m->n_enc ? 1 : m->k, r0 = s * rows * k;
        const int n = (s * rows + rows < j->B ? rows : j->B - s * rows) * k;
        const float *in;
        float *out, *d, *din;
        vae_model_layer_bufs(m, i, &in, &out, &d, &din);
        if (forward && m->wt)
            vae_gemm_fwd_t(out + (long)r0 * l->out, in + (long)r0 * l->in, m->wt + l->w, n,
                           l->in, l->out);
        else if (forward)
            vae_gemm_fwd(out + (long)r0 * l->out, in + (long)r0 * l->in, m->params + l->w, n,
                         l->in, l->out);
        else if (din)
            vae_gemm_dx(din + (long)r0 * l->in, d + (long)r0 * l->out, m->params + l->w, n,
                        l->in, l->out);
    }
}

/* The step's multiplies in the order and arrangement of step_part in vae/train.c. */
static void gemm_part(void *arg, int part, int nparts)
{
    gemm_job *j = arg;
    vae_model *m = j->m;
    const int S = vae_model_shards(j->B), nl = m->n_enc + m->n_dec;
    int s;
    (void)part;
    (void)nparts;
    while ((s = claim(&j->next[0], S)) >= 0) {
        shard_gemms(j, s, 1, 0, nl);
        vae_par_post(j->par, &j->done[0]);
        shard_gemms(j, s, 0, m->n_enc, nl);
        vae_par_post(j->par, &j->done[1]);
        shard_gemms(j, s, 0, 0, m->n_enc);
        vae_par_post(j->par, &j->done[2]);
    }
    while ((s = claim(&j->next[1], m->n_chunks)) >= 0) {
        vae_par_wait(j->par, &j->done[vae_model_chunk_needs(m, s)], (unsigned long)S);
        vae_span sp;
        vae_model_chunk(m, s, &sp);
        const vae_layer *l = vae_model_layer(m, sp.layer);
        const int n = sp.layer < m->n_enc ? j->B : j->B * m->k;
        const float *in;
        float *out, *d, *din;
        vae_model_layer_bufs(m, sp.layer, &in, &out, &d, &din);
        vae_gemm_dw(m->grads + l->w, d, in, n, l->in, l->out, sp.o0, sp.o1, 1); /* as a step */
    }
}

/* The whole batch, one multiply per product, on OpenBLAS's threads. */
static void gemm_whole(vae_model *m, int B)
{
    for (int i = 0; i < m->n_enc + m->n_dec; i++) {
        const vae_layer *l = vae_model_layer(m, i);
        const int n = i < m->n_enc ? B : B * m->k;
        const float *in;
        float *out, *d, *din;
        vae_model_layer_bufs(m, i, &in, &out, &d, &din);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, l->out, l->in, 1.0f, in, l->in,
                    m->params + l->w, l->in, 0.0f, out, l->out);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->out, l->in, n, 1.0f, d, l->out,
                    in, l->in, 1.0f, m->grads + l->w, l->in); /* β = 1 as a step's */
        if (i != 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, l->in, l->out, 1.0f, d,
                        l->out, m->params + l->w, l->in, 0.0f, din, l->in);
    }
}

static double flop_per_step(const vae_model *m, int B)
{
    double flop = 0;
    for (int i = 0; i < m->n_enc + m->n_dec; i++) {
        const vae_layer *l = vae_model_layer(m, i);
        const int n = i < m->n_enc ? B : B * m->k;
        flop += (i != 0 ? 6.0 : 4.0) * n * l->in * l->out;
    }
    return flop;
}

/* The forward multiplies of an evaluation with k samples per row: one pass (B rows,
 * c samples each) timed over and over; a row costs ceil(k / c) / B passes. */
static int bench_eval(vae_spec *s, int D, int k, double seconds)
{
    int c, B;
    vae_eval_plan(k, &c, &B);
    s->loss.samples = c;
    vae_model *m = NULL;
    vaed_err err;
    if (vae_model_new(&m, s, D, 0, B, &err)) {
        fprintf(stderr, "vaed: %s\n", err.msg);
        return 1;
    }
    vae_blas_init();
    const int nl = m->n_enc + m->n_dec;
    double flop = 0;
    for (int i = 0; i < nl; i++) {
        const vae_layer *l = vae_model_layer(m, i);
        flop += 2.0 * (i < m->n_enc ? B : B * c) * l->in * l->out;
    }
    long passes = 0;
    const double t0 = mono();
    do {
        gemm_job j = {.m = m, .B = B};
        for (int sh = 0; sh < vae_model_shards(B); sh++)
            shard_gemms(&j, sh, 1, 0, nl);
        passes++;
    } while (mono() - t0 < seconds);
    const double per_pass = (mono() - t0) / (double)passes;
    const double per_row = per_pass * (double)((k + c - 1) / c) / B;
    printf("{\"k\": %d, \"flop_per_row\": %.0f, \"sec_per_row\": %.9f, \"gflops\": %.3f}\n", k,
           flop * ((k + c - 1) / c) / B, per_row, flop / per_pass * 1e-9);
    vae_model_free(m);
    return 0;
}

int cmd_bench_sgemm(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: vaed bench-sgemm SPEC.json [--dim D] [--seconds S] [--eval-k K]\n");
        return 2;
    }
    int D = 784, eval_k = 0;
    double seconds = 3.0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dim"))
            D = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--eval-k"))
            eval_k = atoi(argv[i + 1]);
    }
    vaed_err err;
    size_t len;
    char *text = read_file(argv[1], &len, &err);
    vae_spec s;
    if (!text || vae_spec_parse_text(&s, text, len, &err)) {
        fprintf(stderr, "vaed: %s\n", err.msg);
        free(text);
        return 1;
    }
    free(text);
    if (eval_k > 0)
        return bench_eval(&s, D, eval_k, seconds);
    vae_model *m = NULL;
    const int B = s.train.batch_size, th = s.train.threads;
    if (vae_model_new(&m, &s, D, 0, B, &err) || vae_model_use_wt(m)) {
        fprintf(stderr, "vaed: %s\n", m ? "out of memory" : err.msg);
        vae_model_free(m);
        return 1;
    }
    vae_par *par = th > 1 ? vae_par_new(th) : NULL;
    if (th > 1 && !par) {
        fprintf(stderr, "vaed: could not start %d threads\n", th);
        vae_model_free(m);
        return 1;
    }
    /* Half the time each, alternating in slices, so that a change in the machine's
     * speed during the run touches both alike. */
    double t_vaed = 0, t_blas = 0;
    long n_vaed = 0, n_blas = 0;
    for (double start = mono(); mono() - start < seconds;) {
        vae_blas_init();
        double t0 = mono();
        do {
            gemm_job j = {.m = m, .par = par, .B = B};
            for (int i = 0; i < 3; i++) {
                if (i < 2)
                    atomic_init(&j.next[i], 0);
                atomic_init(&j.done[i], 0);
            }
            vae_par_run(par, gemm_part, &j);
            n_vaed++;
        } while (mono() - t0 < 0.25);
        t_vaed += mono() - t0;
#if !defined(__SANITIZE_THREAD__)
        openblas_set_num_threads(th);
#endif
        t0 = mono();
        do {
            gemm_whole(m, B);
            n_blas++;
        } while (mono() - t0 < 0.25);
        t_blas += mono() - t0;
    }
    vae_blas_init();
    const double pv = t_vaed / n_vaed, pb = t_blas / n_blas, per = pv < pb ? pv : pb;
    const double flop = flop_per_step(m, B);
    char gemm[64];
    vae_gemm_describe(gemm, sizeof gemm);
    printf("{\"flop_per_step\": %.0f, \"flop_per_sample\": %.0f, \"sec_per_step\": %.9f, "
           "\"sec_per_step_vaed\": %.9f, \"sec_per_step_openblas\": %.9f, \"gflops\": %.3f, "
           "\"batch\": %d, \"threads\": %d, \"gemm\": \"%s\"}\n",
           flop, flop / B, per, pv, pb, flop / per * 1e-9, B, th, gemm);
    vae_par_free(par);
    vae_model_free(m);
    return 0;
}
