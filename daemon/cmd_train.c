/* cmd_train.c — `vaed train SPEC.json`: one job in the foreground, no server, no
 * database. A progress line per epoch on stderr, one JSON summary on stdout, and with
 * --metrics FILE every step as a JSON line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "daemon/cmd.h"
#include "vae/report.h"
#include "vae/train.h"

typedef struct run_ctx {
    FILE *metrics;
    double t0;
    long steps_at_t0;
    vae_metrics last;
    vae_epoch_metrics last_epoch;
    json_t *last_test;
    int epochs_total;
    int quiet;
    double eval_s;
} run_ctx;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int on_step(void *user, const vae_metrics *m)
{
    run_ctx *c = user;
    c->last = *m;
    if (c->metrics) {
        json_t *j = vae_metrics_json(m);
        json_dumpf(j, c->metrics, JSON_COMPACT);
        fputc('\n', c->metrics);
        json_decref(j);
    }
    return 0;
}

static int on_epoch(void *user, const vae_epoch_metrics *e)
{
    run_ctx *c = user;
    c->last_epoch = *e;
    c->eval_s += e->eval_s;
    json_decref(c->last_test);
    json_t *j = vae_epoch_json(e);
    c->last_test = json_incref(json_object_get(j, "test"));
    json_decref(j);
    if (!c->quiet) {
        if (e->has_test)
            fprintf(stderr,
                    "epoch %d/%d  step %ld  beta %.4f  train loss %.3f xent %.3f kl %.3f  "
                    "test elbo %.3f xent %.3f kl %.3f  active %d/%d  %.1fs\n",
                    e->epoch, c->epochs_total, e->step, c->last.beta, e->train_loss,
                    e->train_xent, e->train_kl, e->elbo, e->xent, e->kl, e->active_units,
                    e->n_latent, mono() - c->t0);
        else
            fprintf(stderr, "epoch %d/%d  step %ld  beta %.4f  train loss %.3f xent %.3f kl %.3f  %.1fs\n",
                    e->epoch, c->epochs_total, e->step, c->last.beta, e->train_loss,
                    e->train_xent, e->train_kl, mono() - c->t0);
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: vaed train SPEC.json [--metrics FILE] [--save CKPT] [--threads N] [--quiet]\n"
            "  Train one job in the foreground. Progress per epoch on stderr; a JSON\n"
            "  summary on stdout. --metrics writes every step as a JSON line. --save writes\n"
            "  the final checkpoint (for vaed eval).\n"
            "  --threads overrides train.threads (the threads that share each step).\n");
    return 2;
}

/* The trainer's state as a native checkpoint file: written to a temporary name, synced,
 * then renamed, so the path holds a whole checkpoint or nothing new. */
static int save_checkpoint(const vae_trainer *t, const char *path, vaed_err *err)
{
    void *blob = NULL;
    size_t len = 0;
    int rc = vae_trainer_save(t, &blob, &len, err);
    if (rc)
        return rc;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(blob, 1, len, f) == len;
    ok = f && fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    if (f && fclose(f))
        ok = 0;
    if (ok && rename(tmp, path))
        ok = 0;
    free(blob);
    if (!ok) {
        rc = vaed_err_set(err, VAED_EIO, NULL, "%s: %s", path, strerror(errno));
        unlink(tmp);
    }
    return rc;
}

int cmd_train(int argc, char **argv)
{
    const char *spec_path = NULL, *metrics_path = NULL, *save_path = NULL;
    int threads = 0, rc = 1;
    run_ctx c = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--metrics") && i + 1 < argc)
            metrics_path = argv[++i];
        else if (!strcmp(argv[i], "--save") && i + 1 < argc)
            save_path = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quiet"))
            c.quiet = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return usage(), 0;
        else if (argv[i][0] != '-' && !spec_path)
            spec_path = argv[i];
        else
            return usage();
    }
    if (!spec_path)
        return usage();

    vaed_err err;
    vaed_err_clear(&err);
    vae_spec spec;
    vae_trainer *t = NULL;
    json_t *out = NULL;
    size_t len = 0;
    char *text = read_file(spec_path, &len, &err);
    if (!text) {
        fprintf(stderr, "vaed: %s\n", err.msg);
        return 1;
    }
    if (vae_spec_parse_text(&spec, text, len, &err)) {
        fprintf(stderr, "vaed: %s: %s\n", spec_path, err.msg);
        goto done;
    }
    if (threads > 0)
        spec.train.threads = threads;
    if (metrics_path && !(c.metrics = fopen(metrics_path, "w"))) {
        fprintf(stderr, "vaed: %s: %s\n", metrics_path, strerror(errno));
        goto done;
    }
    if (vae_trainer_new(&t, &spec, &err)) {
        fprintf(stderr, "vaed: %s\n", err.msg);
        goto done;
    }
    char blas[256], narrow[384];
    vae_blas_info(blas, sizeof blas);
    if (vae_blas_narrow(narrow, sizeof narrow)) /* said even with --quiet: it costs speed */
        fprintf(stderr, "vaed train: warning: %s\n", narrow);
    if (!c.quiet)
        fprintf(stderr, "vaed train: %s; %ld rows, %ld steps per epoch, %d parameters\n", blas,
                vae_trainer_train_rows(t), vae_trainer_steps_per_epoch(t),
                (int)vae_trainer_model(t)->n_params);
    c.epochs_total = spec.train.epochs;
    c.t0 = mono();
    vae_hooks h = {&c, on_step, on_epoch};
    if (vae_trainer_run(t, &h, &err)) {
        fprintf(stderr, "vaed: %s\n", err.msg);
        goto done;
    }
    double wall = mono() - c.t0, train_s = wall - c.eval_s;
    if (save_path && save_checkpoint(t, save_path, &err)) {
        fprintf(stderr, "vaed: %s\n", err.msg);
        goto done;
    }
    long steps = vae_trainer_step_index(t);
    /* Samples seen: full epochs of N rows; exact because runs stop on epoch bounds. */
    double samples = (double)steps / vae_trainer_steps_per_epoch(t) * vae_trainer_train_rows(t);
    const vae_epoch_metrics *e = &c.last_epoch;
    /* samples_per_sec is training throughput: the held-out evaluation is timed apart */
    out = json_pack("{s:o, s:I, s:i, s:f, s:f, s:f, s:f, s:{s:f, s:f, s:f, s:f, s:f}, s:O}",
                    "spec", vae_spec_to_json(&spec), "steps", (json_int_t)steps, "epochs",
                    e->epoch, "wall_s", wall, "train_s", train_s, "eval_s", c.eval_s,
                    "samples_per_sec", train_s > 0 ? samples / train_s : 0.0, "train",
                    "loss", e->train_loss, "xent", e->train_xent, "kl", e->train_kl, "elbo",
                    e->train_elbo, "beta", c.last.beta, "test",
                    c.last_test ? c.last_test : json_null());
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    json_object_set_new(out, "peak_rss_mb", json_real(ru.ru_maxrss / 1024.0));
    char blas_info[256];
    vae_blas_info(blas_info, sizeof blas_info);
    json_object_set_new(out, "blas", json_string(blas_info));
    json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
    rc = 0;
done:
    json_decref(out);
    json_decref(c.last_test);
    if (c.metrics && fclose(c.metrics) && rc == 0) {
        fprintf(stderr, "vaed: %s: %s\n", metrics_path, strerror(errno));
        rc = 1;
    }
    vae_trainer_free(t);
    free(text);
    return rc;
}
