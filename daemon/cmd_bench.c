/* cmd_bench.c — `vaed bench-sgemm SPEC.json`: times cblas_sgemm alone on exactly the
 * GEMM shapes of one training step of the spec's model (forward, dW and dX of every
 * layer, no dX for the first layer), for scripts/bench-train. Prints one JSON object:
 * {"flop_per_step", "flop_per_sample", "sec_per_step", "gflops", "batch", "threads"}. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/cmd.h"
#include "vae/data.h"
#include "vae/model.h"
#include "vae/spec.h"
#include "vae/train.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cmd_bench_sgemm(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: vaed bench-sgemm SPEC.json [--dim D] [--seconds S]\n");
        return 2;
    }
    int D = 784;
    double seconds = 3.0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dim"))
            D = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
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
    vae_model *m = NULL;
    const int B = s.train.batch_size;
    if (vae_model_new(&m, &s, D, 0, B, &err)) {
        fprintf(stderr, "vaed: %s\n", err.msg);
        return 1;
    }
    vae_blas_threads(s.train.threads);
    const int R = B * m->k;
    float *buf = calloc((size_t)R * 4096 * 4, sizeof(float));
    if (!buf) {
        vae_model_free(m);
        return 1;
    }
    float *A = buf, *C = buf + (size_t)R * 4096 * 2;
    double flop = 0;
    double t0 = mono(), t1;
    long reps = 0;
    do {
        flop = 0;
        for (int i = 0; i < m->n_enc + m->n_dec; i++) {
            const vae_layer *l = i < m->n_enc ? &m->enc[i] : &m->dec[i - m->n_enc];
            int rows = i < m->n_enc ? B : R;
            float *W = m->params + l->w, *dW = m->grads + l->w;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->out, l->in, 1.0f, A,
                        l->in, W, l->in, 0.0f, C, l->out);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->out, l->in, rows, 1.0f, C,
                        l->out, A, l->in, 1.0f, dW, l->in);
            flop += 4.0 * rows * l->in * l->out;
            if (i != 0) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, l->in, l->out, 1.0f,
                            C, l->out, W, l->in, 0.0f, A, l->in);
                flop += 2.0 * rows * l->in * l->out;
            }
        }
        reps++;
        t1 = mono();
    } while (t1 - t0 < seconds);
    double per = (t1 - t0) / reps;
    printf("{\"flop_per_step\": %.0f, \"flop_per_sample\": %.0f, \"sec_per_step\": %.9f, "
           "\"gflops\": %.3f, \"batch\": %d, \"threads\": %d, \"reps\": %ld}\n",
           flop, flop / B, per, flop / per * 1e-9, B, s.train.threads, reps);
    free(buf);
    vae_model_free(m);
    return 0;
}
