/* cmd_eval.c — `vaed eval SPEC.json CHECKPOINT`: the importance-weighted bound
 * (vae/eval.h) of a checkpoint on its spec's held-out split, from the command line, no
 * server, no database. A progress line on stderr (rows done, rate, ETA), one JSON result
 * on stdout: the bound and the k-sample ELBO estimate, each with its standard error
 * over data rows; the posterior's analytic KL (in all and per latent group), active
 * units and mutual information I(x; z) over the evaluated rows (vae/eval.h); the wall
 * time.
 *
 * CHECKPOINT is a native checkpoint blob: `vaed train --save FILE` writes one, and
 * GET /v1/jobs/{id}/checkpoints/{step} downloads one. The same arguments (and --seed)
 * give the same numbers on one host. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/cmd.h"
#include "vae/data.h"
#include "vae/eval.h"
#include "vae/infer.h"
#include "vae/model.h"
#include "vae/train.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: vaed eval SPEC.json CHECKPOINT [--k K] [--split test|train] [--rows N]\n"
            "                 [--seed S] [--quiet]\n"
            "  The importance-weighted bound on log p(x) (Burda et al. 2016) of the model in\n"
            "  CHECKPOINT, with K samples per row (default 64; up to 100000), over the\n"
            "  first N rows (default all) of the spec's test split (or its training split).\n"
            "  Progress on stderr; a JSON result on stdout.\n");
    return 2;
}

/* A whole number in [lo, hi] from a flag, or -1 with a message naming the flag. */
static long num_arg(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "vaed eval: %s: a whole number from %ld to %ld, not '%s'\n", flag, lo,
                hi, v);
        return -1;
    }
    return n;
}

int cmd_eval(int argc, char **argv)
{
    const char *spec_path = NULL, *ckpt_path = NULL, *split = "test";
    long k = 64, rows = 0, seed = 0;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--k") && i + 1 < argc) {
            if ((k = num_arg("--k", argv[++i], 1, 100000)) < 0)
                return 2;
        } else if (!strcmp(a, "--rows") && i + 1 < argc) {
            if ((rows = num_arg("--rows", argv[++i], 1, 1L << 40)) < 0)
                return 2;
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            if ((seed = num_arg("--seed", argv[++i], 0, 1L << 62)) < 0)
                return 2;
        } else if (!strcmp(a, "--split") && i + 1 < argc) {
            split = argv[++i];
            if (strcmp(split, "test") && strcmp(split, "train")) {
                fprintf(stderr, "vaed eval: --split: test or train, not '%s'\n", split);
                return 2;
            }
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return usage(), 0;
        } else if (a[0] != '-' && !spec_path) {
            spec_path = a;
        } else if (a[0] != '-' && !ckpt_path) {
            ckpt_path = a;
        } else {
            return usage();
        }
    }
    if (!spec_path || !ckpt_path)
        return usage();

    int rc = 1;
    vaed_err err;
    vaed_err_clear(&err);
    vae_spec spec;
    vae_dataset *train = NULL, *test = NULL;
    vae_eval *ev = NULL;
    float *params = NULL;
    double *ll = NULL, *el = NULL;
    float *mu = NULL, *lv = NULL;
    size_t slen = 0, blen = 0;
    char *text = read_file(spec_path, &slen, &err);
    char *blob = text ? read_file(ckpt_path, &blen, &err) : NULL;
    if (!blob) {
        fprintf(stderr, "vaed eval: %s\n", err.msg);
        goto done;
    }
    if (vae_spec_parse_text(&spec, text, slen, &err)) {
        fprintf(stderr, "vaed eval: %s: %s\n", spec_path, err.msg);
        goto done;
    }
    if (spec.dataset.binarize != VAE_BIN_NONE) {
        /* the trainer binarizes with its own streams; evaluating other bits than it
         * trained on would be a different number under the same name */
        fprintf(stderr, "vaed eval: dataset.binarize \"static\" and \"dynamic\" are not "
                        "evaluated yet: use a spec with binarize \"none\"\n");
        goto done;
    }
    if (vae_data_load(&spec.dataset, &train, &test, &err)) {
        fprintf(stderr, "vaed eval: %s\n", err.msg);
        goto done;
    }
    const vae_dataset *d = !strcmp(split, "train") ? train : test;
    if (!d) {
        fprintf(stderr, "vaed eval: the spec has no test split (no shipped test set, no "
                        "dataset.test_path, validation_fraction 0): use --split train\n");
        goto done;
    }
    const int vocab = d->kind == VAE_DATA_SEQ ? d->vocab : 0;
    vae_model shape;
    vae_model_shape(&shape, &spec, (int)d->dim, vocab);
    const float *p = NULL;
    long np = 0;
    if (vae_ckpt_params(blob, blen, &p, &np, &err)) {
        fprintf(stderr, "vaed eval: %s: %s\n", ckpt_path, err.msg);
        goto done;
    }
    if (!vae_ckpt_fits(blob, blen, &shape)) {
        fprintf(stderr, "vaed eval: %s was not written by this spec's model (%ld parameters "
                        "in the checkpoint, %ld in the spec's model)\n",
                ckpt_path, np, shape.n_params);
        goto done;
    }
    params = malloc(sizeof(float) * (size_t)np);
    const long n = rows > 0 && rows < d->n ? rows : d->n;
    ll = malloc(sizeof(double) * (size_t)n);
    el = malloc(sizeof(double) * (size_t)n);
    mu = malloc(sizeof(float) * (size_t)n * shape.L);
    lv = malloc(sizeof(float) * (size_t)n * shape.L);
    if (!params || !ll || !el || !mu || !lv) {
        fprintf(stderr, "vaed eval: out of memory\n");
        goto done;
    }
    memcpy(params, p, sizeof(float) * (size_t)np); /* p may be unaligned in the blob */
    vae_blas_init();
    if (vae_eval_new(&ev, &spec, (int)d->dim, vocab, params, np, (int)k, &err)) {
        fprintf(stderr, "vaed eval: %s\n", err.msg);
        goto done;
    }
    const double t0 = mono();
    double last_print = t0;
    const long nb = vae_eval_blocks(n);
    for (long b = 0; b < nb; b++) {
        const long i0 = b * VAE_EVAL_BLOCK;
        const long got = vae_eval_block(ev, d, n, (uint64_t)seed, b, ll + i0, el + i0,
                                        mu + i0 * shape.L, lv + i0 * shape.L);
        const double now = mono();
        if (!quiet && (now - last_print >= 1.0 || b + 1 == nb)) {
            const double rate = (double)(i0 + got) / (now - t0);
            fprintf(stderr, "vaed eval: %ld/%ld rows, %.0f rows/s, ETA %.0f s\n", i0 + got, n,
                    rate, (double)(n - i0 - got) / rate);
            last_print = now;
        }
    }
    vae_eval_result res;
    vae_eval_summarize(ll, el, mu, lv, n, (int)k, (uint64_t)seed, &spec.model, &res);
    json_t *out = vae_eval_result_json(&res);
    if (!out || json_object_set_new(out, "split", json_string(split)) ||
        json_object_set_new(out, "seconds", json_real(mono() - t0))) {
        json_decref(out);
        fprintf(stderr, "vaed eval: out of memory\n");
        goto done;
    }
    json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    fputc('\n', stdout);
    json_decref(out);
    rc = 0;
done:
    vae_eval_free(ev);
    vae_dataset_free(train);
    vae_dataset_free(test);
    free(mu);
    free(lv);
    free(el);
    free(ll);
    free(params);
    free(blob);
    free(text);
    return rc;
}
