/* test_fork.c — the merge of a fork's overrides into its parent's spec (fork_merge)
 * and the schedule comparison the worker uses (fork_same_schedule), without a store.
 *
 * The parent is a real spec written back by vae_spec_to_json, as the store keeps it.
 * Oracles: the parent's own values (what must carry over), the request's values (what
 * must replace them), hand-computed betas of a resolved relative schedule, and a table
 * of refused requests with the field each must name. Every child that merges is also
 * parsed by vae_spec_parse, and must describe the parent's model exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/fork.h"
#include "t.h"
#include "vae/spec.h"

static const char *PARENT =
    "{\"name\": \"p\", \"dataset\": {\"name\": \"fashion-mnist\", \"limit\": 4000},"
    " \"model\": {\"encoder\": [64], \"latent\": 4, \"decoder\": [64]},"
    " \"schedule\": {\"kind\": \"linear\", \"from\": 0, \"to\": 1, \"duration\": 60, \"unit\": \"steps\"},"
    " \"optimizer\": {\"lr\": 0.001, \"beta2\": 0.995},"
    " \"train\": {\"epochs\": 4, \"batch_size\": 200, \"seed\": 11},"
    " \"checkpoint\": {\"every_steps\": 10, \"keep\": 7}}";

static json_t *load(const char *txt)
{
    json_error_t je;
    json_t *doc = json_loads(txt, 0, &je);
    if (!doc) {
        fprintf(stderr, "test bug: bad JSON %s: %s\n", txt, je.text);
        exit(2);
    }
    return doc;
}

/* The parent as stored: parsed and written back with every default. */
static json_t *parent_doc(vae_spec *out)
{
    json_t *d = load(PARENT);
    vaed_err err;
    if (vae_spec_parse(out, d, &err)) {
        fprintf(stderr, "test bug: parent spec: %s\n", err.msg);
        exit(2);
    }
    json_decref(d);
    return vae_spec_to_json(out);
}

/* The schedule the parent ran at S, as the store's events hold it (a PUT had changed it
 * to a constant): it must carry over when the request does not name one. */
static const char *IN_FORCE = "{\"kind\": \"constant\", \"value\": 0.6}";

static fork_point point(const json_t *sched)
{
    fork_point pt = {.job = 7, .step = 30, .steps_per_epoch = 20, .beta = 0.4, .lr = 0.002,
                     .schedule = sched, .name = "p"};
    return pt;
}

/* Merge request txt; returns the child (new reference) or NULL with err set. */
static json_t *merge(const json_t *parent, const char *txt, const fork_point *pt, vaed_err *err)
{
    json_t *req = load(txt), *child = (json_t *)0x1;
    vaed_err_clear(err);
    int rc = fork_merge(parent, req, pt, &child, err);
    json_decref(req);
    CHECK((rc == 0) == (child != NULL), "%s: rc %d but child %p", txt, rc, (void *)child);
    return rc == 0 ? child : NULL;
}

static double num(const json_t *doc, const char *sec, const char *key)
{
    return json_number_value(json_object_get(json_object_get(doc, sec), key));
}

/* The child parses, and its model, data, loss estimator, batch and seed are the
 * parent's exactly. */
static void check_parses(const json_t *child, const vae_spec *parent, const char *what)
{
    vae_spec c;
    vaed_err err;
    int rc = vae_spec_parse(&c, child, &err);
    CHECK(rc == 0, "%s: the child does not parse: %s", what, err.msg);
    if (rc)
        return;
    CHECK(!memcmp(&c.model, &parent->model, sizeof c.model), "%s: model differs", what);
    CHECK(!memcmp(&c.dataset, &parent->dataset, sizeof c.dataset), "%s: dataset differs", what);
    CHECK(c.loss.kl == parent->loss.kl && c.loss.samples == parent->loss.samples,
          "%s: loss estimator differs", what);
    CHECK(c.train.batch_size == parent->train.batch_size && c.train.seed == parent->train.seed,
          "%s: batch %d seed %llu", what, c.train.batch_size, (unsigned long long)c.train.seed);
}

static void test_no_overrides(const json_t *parent, const vae_spec *ps)
{
    json_t *in_force = load(IN_FORCE);
    fork_point pt = point(in_force);
    vaed_err err;
    json_t *c = merge(parent, "{\"from\": {\"job\": 7, \"step\": 30}}", &pt, &err);
    CHECK(c != NULL, "no overrides: %s", err.msg);
    if (c) {
        /* every section but schedule and optimizer.lr is the parent's, value for value */
        const char *same[] = {"dataset", "model", "loss", "train", "checkpoint", "priority"};
        for (size_t i = 0; i < sizeof same / sizeof *same; i++)
            CHECK(json_equal(json_object_get(c, same[i]), json_object_get(parent, same[i])),
                  "no overrides: %s changed", same[i]);
        CHECK(json_equal(json_object_get(c, "schedule"), in_force),
              "no overrides: the schedule in force at S must carry over");
        CHECK(num(c, "optimizer", "lr") == 0.002, "no overrides: lr %g, want the lr in force 0.002",
              num(c, "optimizer", "lr"));
        CHECK(num(c, "optimizer", "beta2") == 0.995, "beta2 %g", num(c, "optimizer", "beta2"));
        const char *name = json_string_value(json_object_get(c, "name"));
        CHECK(name && !strcmp(name, "p (fork of job 7 at step 30)"), "default name %s", name);
        CHECK(!json_object_get(c, "from"), "the child's spec must not keep \"from\"");
        check_parses(c, ps, "no overrides");
    }
    json_decref(c);
    /* no schedule known in force: the parent spec's own; no lr known: the spec's */
    fork_point bare = point(NULL);
    bare.lr = 0;
    c = merge(parent, "{}", &bare, &err);
    CHECK(c && json_equal(json_object_get(c, "schedule"), json_object_get(parent, "schedule")),
          "without a schedule in force the parent spec's carries over");
    CHECK(c && num(c, "optimizer", "lr") == 0.001, "without an lr in force the spec's carries over");
    json_decref(c);
    json_decref(in_force);
}

static void test_overrides(const json_t *parent, const vae_spec *ps)
{
    json_t *in_force = load(IN_FORCE);
    fork_point pt = point(in_force);
    vaed_err err;

    /* partial optimizer: lr replaced, the other Adam settings kept */
    json_t *c = merge(parent, "{\"optimizer\": {\"lr\": 0.0005}}", &pt, &err);
    CHECK(c && num(c, "optimizer", "lr") == 0.0005 && num(c, "optimizer", "beta2") == 0.995 &&
              num(c, "optimizer", "beta1") == 0.9,
          "optimizer merge: %s", err.msg);
    json_decref(c);
    /* another Adam setting without lr: the lr in force still carries over */
    c = merge(parent, "{\"optimizer\": {\"beta1\": 0.8}}", &pt, &err);
    CHECK(c && num(c, "optimizer", "beta1") == 0.8 && num(c, "optimizer", "lr") == 0.002,
          "beta1 alone: %s", err.msg);
    json_decref(c);

    /* train.epochs, checkpoint, loss.free_bits, name, priority; restated frozen values */
    c = merge(parent,
              "{\"name\": \"mine\", \"priority\": 5, \"train\": {\"epochs\": 12, \"seed\": 11.0,"
              " \"threads\": 2}, \"checkpoint\": {\"every_steps\": 1}, \"loss\": {\"free_bits\": 0.5,"
              " \"samples\": 1}, \"model\": {\"latent\": 4.0, \"encoder\": [64]},"
              " \"dataset\": {\"limit\": 4000}}",
              &pt, &err);
    CHECK(c != NULL, "allowed overrides: %s", err.msg);
    if (c) {
        CHECK(num(c, "train", "epochs") == 12 && num(c, "train", "threads") == 2,
              "train merge: epochs %g threads %g", num(c, "train", "epochs"),
              num(c, "train", "threads"));
        CHECK(num(c, "checkpoint", "every_steps") == 1 && num(c, "checkpoint", "keep") == 7,
              "checkpoint merge: every_steps %g keep %g", num(c, "checkpoint", "every_steps"),
              num(c, "checkpoint", "keep"));
        CHECK(num(c, "loss", "free_bits") == 0.5, "free_bits %g", num(c, "loss", "free_bits"));
        CHECK(!strcmp(json_string_value(json_object_get(c, "name")), "mine"), "name");
        CHECK(json_integer_value(json_object_get(c, "priority")) == 5, "priority");
        check_parses(c, ps, "allowed overrides");
    }
    json_decref(c);

    /* a relative schedule resolves at S against the parent's beta there: linear from
     * 0.4 (pt.beta) at step 30 to 1 at step 40, by the formula in README "Schedules" */
    c = merge(parent,
              "{\"schedule\": {\"kind\": \"linear\", \"from\": \"current\", \"to\": 1,"
              " \"duration\": 10, \"unit\": \"steps\", \"origin\": \"now\"}}",
              &pt, &err);
    CHECK(c != NULL, "relative schedule: %s", err.msg);
    if (c) {
        sched_spec s;
        vaed_err e2;
        int rc = sched_parse(&s, json_object_get(c, "schedule"), "schedule", 0, &e2);
        CHECK(rc == 0, "the child's schedule must be absolute: %s", e2.msg);
        for (long step = 30; rc == 0 && step <= 45; step++) {
            sched_state st = {0};
            double want = step >= 40 ? 1.0 : 0.4 + 0.6 * (double)(step - 30) / 10.0;
            CHECK_CLOSE(sched_beta(&s, &st, step, 20, 0), want, 1e-12, "resolved linear");
        }
        check_parses(c, ps, "relative schedule");
    }
    json_decref(c);
    /* a schedule replaces whole: a constant over the parent's linear has no "duration" */
    c = merge(parent, "{\"schedule\": {\"kind\": \"constant\", \"value\": 0.25}}", &pt, &err);
    CHECK(c && num(c, "schedule", "value") == 0.25 &&
              !json_object_get(json_object_get(c, "schedule"), "duration"),
          "constant schedule: %s", err.msg);
    if (c)
        check_parses(c, ps, "constant schedule");
    json_decref(c);

    /* unknown keys pass through to the spec parser, which names them */
    c = merge(parent, "{\"bogus\": 1}", &pt, &err);
    CHECK(c != NULL, "unknown key: %s", err.msg);
    if (c) {
        vae_spec s;
        int rc = vae_spec_parse(&s, c, &err);
        CHECK(rc == VAED_EINVAL && !strcmp(err.field, "bogus"), "parser on bogus: %d %s", rc,
              err.field);
    }
    json_decref(c);
    json_decref(in_force);
}

/* Requests refused by the merge, with the field each must name and how the message
 * starts. */
static const struct {
    const char *req, *field, *msg;
} refused[] = {
    {"{\"model\": {\"latent\": 8}}", "model.latent",
     "model.latent: a fork cannot change the model's shape (job 7 has 4)"},
    {"{\"model\": {\"latent\": [4]}}", "model.latent", "model.latent: a fork cannot change"},
    {"{\"model\": {\"encoder\": [64, 64]}}", "model.encoder", "model.encoder: a fork cannot"},
    {"{\"model\": {\"sigma\": 1}}", "model.sigma", "model.sigma: a fork cannot change the model's "
                                                  "shape (job 7 has none)"},
    {"{\"model\": {\"likelihood\": \"gaussian\"}}", "model.likelihood", "model.likelihood: "},
    {"{\"model\": 3}", "model", "model: a fork cannot change the model's shape"},
    {"{\"dataset\": {\"limit\": 2000}}", "dataset.limit", "dataset.limit: a fork cannot change "
                                                          "the run's data"},
    {"{\"dataset\": {\"path\": \"x.npy\"}}", "dataset.path", "dataset.path: a fork cannot"},
    {"{\"loss\": {\"samples\": 2}}", "loss.samples", "loss.samples: a fork cannot"},
    {"{\"loss\": {\"kl\": \"mc\"}}", "loss.kl", "loss.kl: a fork cannot"},
    {"{\"train\": {\"batch_size\": 100}}", "train.batch_size", "train.batch_size: a fork cannot"},
    {"{\"train\": {\"seed\": 12}}", "train.seed", "train.seed: a fork cannot"},
    /* 20 steps per epoch, S = 30: 1 epoch ends at 20, before S; 2 would be fine */
    {"{\"train\": {\"epochs\": 1}}", "train.epochs", "train.epochs: 1 epochs of 20 steps end at "
                                                     "step 20, and the fork starts at step 30: "
                                                     "ask for at least 2 epochs"},
    {"{\"schedule\": {\"kind\": \"nope\"}}", "schedule.kind", "schedule.kind: "},
    {"{\"schedule\": {\"kind\": \"constant\", \"value\": 2, \"origin\": \"later\"}}",
     "schedule.origin", "schedule.origin: "},
};

static void test_refused(const json_t *parent)
{
    fork_point pt = point(NULL);
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        vaed_err err;
        json_t *c = merge(parent, refused[i].req, &pt, &err);
        CHECK(c == NULL, "%s: merged, expected refused naming %s", refused[i].req,
              refused[i].field);
        CHECK(!strcmp(err.field, refused[i].field), "%s: field '%s', want '%s'", refused[i].req,
              err.field, refused[i].field);
        CHECK(!strncmp(err.msg, refused[i].msg, strlen(refused[i].msg)),
              "%s: message '%s', want it to start '%s'", refused[i].req, err.msg, refused[i].msg);
        json_decref(c);
    }
    /* the parent's own epochs leave no step after its final checkpoint */
    pt.step = 80;
    vaed_err err;
    json_t *c = merge(parent, "{}", &pt, &err);
    CHECK(c == NULL && !strcmp(err.field, "train.epochs"), "fork at the final step: field %s",
          err.field);
    json_decref(c);
    c = merge(parent, "{\"train\": {\"epochs\": 5}}", &pt, &err);
    CHECK(c && num(c, "train", "epochs") == 5, "5 epochs after step 80: %s", err.msg);
    json_decref(c);
}

/* A default name never splits a character: a parent name of 2-byte characters, long
 * enough that the suffix must be cut, gives valid UTF-8 of at most 127 bytes. */
static void test_long_name(const json_t *parent)
{
    char name[128] = "";
    for (int i = 0; i < 62; i++)
        strcat(name, "\xc3\xa9"); /* é */
    fork_point pt = point(NULL);
    pt.name = name;
    vaed_err err;
    json_t *c = merge(parent, "{}", &pt, &err);
    const char *got = c ? json_string_value(json_object_get(c, "name")) : NULL;
    CHECK(got != NULL, "long name: no valid name (%s)", err.msg);
    if (got) {
        CHECK(strlen(got) <= 127, "long name: %zu bytes", strlen(got));
        CHECK(!strncmp(got, name, 124), "long name: the parent's name must come first");
    }
    json_decref(c);
}

static void test_same_schedule(void)
{
    vaed_err err;
    sched_spec a, b;
    json_t *da = load("{\"kind\": \"controller\", \"target_kl\": 15, \"kp\": 0.5}");
    json_t *db = load("{\"kind\": \"controller\", \"target_kl\": 15.0, \"kp\": 0.5, \"ki\": 0.0001}");
    CHECK(sched_parse(&a, da, "", 0, &err) == 0 && sched_parse(&b, db, "", 0, &err) == 0,
          "parse: %s", err.msg);
    CHECK(fork_same_schedule(&a, &b), "the same controller written two ways");
    b.target_kl = 15.000000000000002;
    CHECK(!fork_same_schedule(&a, &b), "target_kl one ulp apart is another schedule");
    sched_default(&b);
    CHECK(!fork_same_schedule(&a, &b), "controller vs constant");
    json_decref(da);
    json_decref(db);
}

int main(void)
{
    vae_spec ps;
    json_t *parent = parent_doc(&ps);
    test_no_overrides(parent, &ps);
    test_overrides(parent, &ps);
    test_refused(parent);
    test_long_name(parent);
    test_same_schedule();
    json_decref(parent);
    return t_done("test_fork");
}
