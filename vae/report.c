/* report.c — see report.h. */
#include "report.h"

static json_t *doubles(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

const vae_metric_field vae_metric_fields[] = {
#define ROW(ID, name, unit, flags, meaning) {#name, unit, meaning, flags},
    VAE_METRIC_FIELDS(ROW)
#undef ROW
};

json_t *vae_metrics_json(const vae_metrics *m)
{
    json_t *o = json_pack("{s:I}", "step", (json_int_t)m->step);
#define FIELD(ID, name, unit, flags, meaning)                                                 \
    if (!((flags) & VAE_MF_SPARSE) || m->name != 0.0)                                          \
        json_object_set_new(o, #name, json_real(m->name));
    VAE_METRIC_FIELDS(FIELD)
#undef FIELD
    if (m->n_groups > 1)
        json_object_set_new(o, "kl_groups", doubles(m->kl_group, m->n_groups));
    return o;
}

json_t *vae_epoch_json(const vae_epoch_metrics *e)
{
    json_t *o = json_pack("{s:i, s:I, s:{s:f, s:f, s:f, s:f, s:f}}", "epoch", e->epoch, "step",
                          (json_int_t)e->step, "train", "loss", e->train_loss, "xent",
                          e->train_xent, "kl", e->train_kl, "elbo", e->train_elbo, "beta",
                          e->train_beta);
    if (!e->has_test) {
        json_object_set_new(o, "test", json_null());
        return o;
    }
    json_t *t = json_pack("{s:I, s:f, s:f, s:f, s:i}", "n", (json_int_t)e->test_n, "xent", e->xent,
                          "kl", e->kl, "elbo", e->elbo, "active_units", e->active_units);
    json_object_set_new(t, "kl_groups", doubles(e->kl_group, e->n_groups));
    json_object_set_new(t, "kl_per_dim", doubles(e->kl_dim, e->n_latent));
    json_object_set_new(t, "mu_variance", doubles(e->mu_var, e->n_latent));
    json_object_set_new(o, "test", t);
    return o;
}
