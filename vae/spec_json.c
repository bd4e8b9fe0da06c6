/* spec_json.c — the job spec written back as JSON (spec.h: vae_spec_to_json). Every
 * field that applies is written, and parsing the output gives back the same spec;
 * dataset and model fields that do not apply to the chosen source, format or likelihood
 * (path for a built-in, max_len for csv, sigma for bernoulli) are left out, since
 * parsing them back would be an error (spec.c). */
#include "spec.h"

#include "spec_names.h"

#include <jansson.h>

/* Builders that remember whether any allocation failed, so vae_spec_to_json can
 * check once at the end instead of after every key. */
static void put(json_t *o, const char *key, json_t *v, int *bad)
{
    /* json_object_set_new steals v even when it fails, and fails on v == NULL. */
    if (json_object_set_new(o, key, v))
        *bad = 1;
}

static json_t *int_list(const int *v, int n, int *bad)
{
    json_t *a = json_array();
    if (!a) {
        *bad = 1;
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (json_array_append_new(a, json_integer(v[i])))
            *bad = 1;
    return a;
}

/* names[v], or "?" for a value outside the table (a spec built by hand rather than
 * parsed); "?" then fails to parse back, which is the honest outcome. */
static const char *enum_name(const char *const *names, int v)
{
    int n = 0;
    while (names[n])
        n++;
    return v >= 0 && v < n && names[v][0] ? names[v] : "?";
}

/* Returns a new reference, or NULL if memory ran out or s held a non-finite number
 * (never the case for a spec that came from vae_spec_parse). */
json_t *vae_spec_to_json(const vae_spec *s)
{
    int bad = 0;
    json_t *root = json_object();
    if (!root)
        return NULL;
    put(root, "name", json_string(s->name), &bad);
    put(root, "priority", json_integer(s->priority), &bad);

    const vae_data_spec *d = &s->dataset;
    json_t *ds = json_object();
    if (d->path[0]) {
        put(ds, "path", json_string(d->path), &bad);
        put(ds, "format", json_string(enum_name(fmt_names, (int)d->format)), &bad);
        if (d->test_path[0])
            put(ds, "test_path", json_string(d->test_path), &bad);
        if (d->format == VAE_FMT_TEXT) {
            put(ds, "max_len", json_integer(d->max_len), &bad);
            put(ds, "overlong", json_string(enum_name(long_names, (int)d->overlong)), &bad);
        }
        if (d->format == VAE_FMT_CSV)
            put(ds, "header", json_boolean(d->csv_header), &bad);
    } else {
        put(ds, "name", json_string(d->name), &bad);
    }
    put(ds, "limit", json_integer(d->limit), &bad);
    put(ds, "validation_fraction", json_real(d->validation_fraction), &bad);
    put(ds, "binarize", json_string(enum_name(bin_names, (int)d->binarize)), &bad);
    put(root, "dataset", ds, &bad);

    const vae_model_spec *m = &s->model;
    json_t *mo = json_object();
    put(mo, "encoder", int_list(m->enc, m->n_enc, &bad), &bad);
    put(mo, "latent",
        m->n_groups == 1 ? json_integer(m->groups[0]) : int_list(m->groups, m->n_groups, &bad),
        &bad);
    put(mo, "decoder", int_list(m->dec, m->n_dec, &bad), &bad);
    put(mo, "activation", json_string(enum_name(act_names, (int)m->activation)), &bad);
    put(mo, "likelihood", json_string(enum_name(lik_names, (int)m->likelihood)), &bad);
    if (m->likelihood == VAE_LIK_GAUSSIAN)
        put(mo, "sigma", json_real(m->sigma), &bad);
    put(root, "model", mo, &bad);

    json_t *lo = json_object();
    put(lo, "kl", json_string(enum_name(kl_names, (int)s->loss.kl)), &bad);
    put(lo, "samples", json_integer(s->loss.samples), &bad);
    put(lo, "free_bits", json_real(s->loss.free_bits), &bad);
    put(root, "loss", lo, &bad);

    put(root, "schedule", sched_to_json(&s->schedule), &bad);

    const vae_optim_spec *p = &s->optimizer;
    json_t *op = json_object();
    put(op, "kind", json_string("adam"), &bad);
    put(op, "lr", json_real(p->lr), &bad);
    put(op, "beta1", json_real(p->beta1), &bad);
    put(op, "beta2", json_real(p->beta2), &bad);
    put(op, "eps", json_real(p->eps), &bad);
    put(op, "weight_decay", json_real(p->weight_decay), &bad);
    put(op, "clip_norm", json_real(p->clip_norm), &bad);
    put(root, "optimizer", op, &bad);

    json_t *tr = json_object();
    put(tr, "epochs", json_integer(s->train.epochs), &bad);
    put(tr, "batch_size", json_integer(s->train.batch_size), &bad);
    put(tr, "seed", json_integer((json_int_t)s->train.seed), &bad);
    put(tr, "threads", json_integer(s->train.threads), &bad);
    put(root, "train", tr, &bad);

    const vae_ckpt_spec *c = &s->checkpoint;
    json_t *ck = json_object();
    put(ck, "every_steps", json_integer(c->every_steps), &bad);
    put(ck, "every_seconds", json_real(c->every_seconds), &bad);
    put(ck, "at_epoch_end", json_boolean(c->at_epoch_end), &bad);
    put(ck, "keep", json_integer(c->keep), &bad);
    put(ck, "keep_epoch_end", json_boolean(c->keep_epoch_end), &bad);
    put(root, "checkpoint", ck, &bad);

    json_t *ev = json_object();
    put(ev, "every_epochs", json_integer(s->eval.every_epochs), &bad);
    put(ev, "k", json_integer(s->eval.k), &bad);
    put(ev, "rows", json_integer(s->eval.rows), &bad);
    put(root, "eval", ev, &bad);

    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

