/* test_controller.c — the ControlVAE controller on a real training run: a small VAE on a
 * Fashion-MNIST subset, trained with the trainer itself, beta chosen every step by the
 * PI controller. After it settles, the mean KL over the last steps must be within 10%
 * of target_kl, beta must have stayed within [min, max] on every step, and the beta
 * each step reports must be the one its loss used (loss == xent + beta * kl). Then the
 * target is changed mid-run with vae_trainer_set_schedule and the KL must follow to the
 * new target just as closely. The oracle is the target itself; the two targets need
 * clearly different betas (about 0.6 and 0.25 here), so no fixed beta passes both
 * phases, and the test checks that beta did move between them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "vae/spec.h"
#include "vae/train.h"

#define SPEC                                                                              \
    "{\"name\": \"controller\","                                                          \
    " \"dataset\": {\"name\": \"fashion-mnist\", \"limit\": 3000},"                       \
    " \"model\": {\"encoder\": [64], \"latent\": 16, \"decoder\": [64]},"               \
    " \"schedule\": {\"kind\": \"controller\", \"target_kl\": 20},"                       \
    " \"train\": {\"epochs\": 1000, \"batch_size\": 100, \"seed\": 7, \"threads\": 1}}"

typedef struct phase {
    double target;
    long steps, window;   /* run `steps`; judge the mean KL of the last `window` */
} phase;

/* Run one phase; returns the mean KL of its last `window` steps. */
static double run_phase(vae_trainer *t, const phase *p, const sched_spec *s)
{
    double sum_kl = 0, worst_identity = 0;
    long out_of_bounds = 0, n = 0;
    vaed_err err;
    for (long i = 0; i < p->steps; i++) {
        vae_metrics m;
        int rc = vae_trainer_step(t, &m, &err);
        CHECK(rc == 0, "step %ld: %s", vae_trainer_step_index(t), err.msg);
        if (rc)
            return NAN;
        if (m.beta < s->min || m.beta > s->max)
            out_of_bounds++;
        double rel = fabs(m.loss - (m.xent + m.beta * m.kl)) / fmax(1.0, fabs(m.loss));
        worst_identity = fmax(worst_identity, rel);
        if (i >= p->steps - p->window) {
            sum_kl += m.kl;
            n++;
        }
    }
    CHECK(out_of_bounds == 0, "target %g: beta left [%g, %g] on %ld steps", p->target, s->min,
          s->max, out_of_bounds);
    CHECK(worst_identity <= 1e-9, "target %g: loss != xent + beta*kl by %g", p->target,
          worst_identity);
    double mean = sum_kl / (double)n;
    printf("target %5.1f nats: mean KL over the last %ld steps %.3f (%.1f%% off), beta %.4f\n",
           p->target, p->window, mean, 100 * fabs(mean - p->target) / p->target,
           vae_trainer_beta(t));
    return mean;
}

int main(void)
{
    vae_spec spec;
    vaed_err err;
    int rc = vae_spec_parse_text(&spec, SPEC, strlen(SPEC), &err);
    CHECK(rc == 0, "spec: %s", err.msg);
    vae_trainer *t = NULL;
    if (rc == 0 && (rc = vae_trainer_new(&t, &spec, &err)) != 0)
        CHECK(0, "trainer: %s", err.msg);
    if (rc)
        return t_done("test_controller");

    phase p1 = {20.0, 1200, 300};
    double kl = run_phase(t, &p1, &spec.schedule);
    double beta1 = vae_trainer_beta(t);
    CHECK(fabs(kl - p1.target) <= 0.10 * p1.target, "KL %.3f not within 10%% of %g", kl,
          p1.target);

    /* A new target mid-run, as a client's PUT would set it. */
    sched_spec s2 = spec.schedule;
    s2.target_kl = 30.0;
    vae_trainer_set_schedule(t, &s2, NULL, NULL);
    phase p2 = {30.0, 800, 300};
    kl = run_phase(t, &p2, &s2);
    CHECK(fabs(kl - p2.target) <= 0.10 * p2.target, "KL %.3f not within 10%% of %g after the "
          "target changed", kl, p2.target);
    CHECK(vae_trainer_beta(t) < beta1 - 0.1, "beta did not move with the target: %g then %g",
          beta1, vae_trainer_beta(t));

    vae_trainer_free(t);
    return t_done("test_controller");
}
