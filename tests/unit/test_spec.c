/* test_spec.c — the job-spec parser: the reference example, defaults, round trips
 * through vae_spec_to_json, edge values that must be accepted, and a table of bad
 * specs, each with the field its error must name. Run from the repository root
 * (it reads the examples/ directory). The oracle for defaults and the reference example is
 * the values written out by hand below, from the README table, not the parser. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "vae/spec.h"

/* Whole file into a new NUL-terminated buffer; NULL if it cannot be read. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static int parse_str(vae_spec *s, const char *text, vaed_err *err)
{
    return vae_spec_parse_text(s, text, strlen(text), err);
}

/* Field-by-field equality; *why gets the first difference. The schedule is compared
 * through its own JSON form (the schedule module owns its struct) plus the fields
 * every kind has. */
static int spec_eq(const vae_spec *a, const vae_spec *b, char *why, size_t n)
{
#define DIFF(cond, name)                                                                 \
    do {                                                                                 \
        if (cond) {                                                                      \
            snprintf(why, n, "%s differs", name);                                        \
            return 0;                                                                    \
        }                                                                                \
    } while (0)
    DIFF(strcmp(a->name, b->name), "name");
    DIFF(a->priority != b->priority, "priority");
    const vae_data_spec *da = &a->dataset, *db = &b->dataset;
    DIFF(strcmp(da->name, db->name), "dataset.name");
    DIFF(strcmp(da->path, db->path), "dataset.path");
    DIFF(strcmp(da->test_path, db->test_path), "dataset.test_path");
    DIFF(da->format != db->format, "dataset.format");
    DIFF(da->limit != db->limit, "dataset.limit");
    DIFF(da->validation_fraction != db->validation_fraction, "dataset.validation_fraction");
    DIFF(da->max_len != db->max_len, "dataset.max_len");
    DIFF(da->overlong != db->overlong, "dataset.overlong");
    DIFF(da->csv_header != db->csv_header, "dataset.header");
    DIFF(da->binarize != db->binarize, "dataset.binarize");
    const vae_model_spec *ma = &a->model, *mb = &b->model;
    DIFF(ma->n_enc != mb->n_enc, "model.encoder length");
    for (int i = 0; i < ma->n_enc; i++)
        DIFF(ma->enc[i] != mb->enc[i], "model.encoder[i]");
    DIFF(ma->n_dec != mb->n_dec, "model.decoder length");
    for (int i = 0; i < ma->n_dec; i++)
        DIFF(ma->dec[i] != mb->dec[i], "model.decoder[i]");
    DIFF(ma->n_groups != mb->n_groups, "model.latent groups");
    for (int i = 0; i < ma->n_groups; i++)
        DIFF(ma->groups[i] != mb->groups[i], "model.latent[i]");
    DIFF(ma->activation != mb->activation, "model.activation");
    DIFF(ma->likelihood != mb->likelihood, "model.likelihood");
    DIFF(ma->sigma != mb->sigma, "model.sigma");
    DIFF(a->loss.kl != b->loss.kl, "loss.kl");
    DIFF(a->loss.samples != b->loss.samples, "loss.samples");
    DIFF(a->loss.free_bits != b->loss.free_bits, "loss.free_bits");
    DIFF(a->schedule.kind != b->schedule.kind, "schedule.kind");
    DIFF(a->schedule.unit != b->schedule.unit, "schedule.unit");
    DIFF(a->schedule.granularity != b->schedule.granularity, "schedule.granularity");
    DIFF(a->schedule.start != b->schedule.start, "schedule.start");
    json_t *sa = sched_to_json(&a->schedule), *sb = sched_to_json(&b->schedule);
    int same = sa && sb && json_equal(sa, sb);
    json_decref(sa);
    json_decref(sb);
    DIFF(!same, "schedule (as JSON)");
    const vae_optim_spec *oa = &a->optimizer, *ob = &b->optimizer;
    DIFF(oa->lr != ob->lr, "optimizer.lr");
    DIFF(oa->beta1 != ob->beta1, "optimizer.beta1");
    DIFF(oa->beta2 != ob->beta2, "optimizer.beta2");
    DIFF(oa->eps != ob->eps, "optimizer.eps");
    DIFF(oa->weight_decay != ob->weight_decay, "optimizer.weight_decay");
    DIFF(oa->clip_norm != ob->clip_norm, "optimizer.clip_norm");
    DIFF(a->train.epochs != b->train.epochs, "train.epochs");
    DIFF(a->train.batch_size != b->train.batch_size, "train.batch_size");
    DIFF(a->train.seed != b->train.seed, "train.seed");
    DIFF(a->train.threads != b->train.threads, "train.threads");
    const vae_ckpt_spec *ca = &a->checkpoint, *cb = &b->checkpoint;
    DIFF(ca->every_steps != cb->every_steps, "checkpoint.every_steps");
    DIFF(ca->every_seconds != cb->every_seconds, "checkpoint.every_seconds");
    DIFF(ca->at_epoch_end != cb->at_epoch_end, "checkpoint.at_epoch_end");
    DIFF(ca->keep != cb->keep, "checkpoint.keep");
    DIFF(ca->keep_epoch_end != cb->keep_epoch_end, "checkpoint.keep_epoch_end");
#undef DIFF
    return 1;
}

/* The documented defaults of every section except dataset, model and schedule,
 * written out by hand (README "The job spec"). */
static void check_common_defaults(const vae_spec *s, const char *what)
{
    CHECK(s->priority == 0, "%s: priority %d", what, s->priority);
    CHECK(s->loss.kl == VAE_KL_ANALYTIC, "%s: loss.kl %d", what, s->loss.kl);
    CHECK(s->loss.samples == 1, "%s: loss.samples %d", what, s->loss.samples);
    CHECK(s->loss.free_bits == 0, "%s: loss.free_bits %g", what, s->loss.free_bits);
    CHECK(s->optimizer.lr == 0.001, "%s: lr %g", what, s->optimizer.lr);
    CHECK(s->optimizer.beta1 == 0.9, "%s: beta1 %g", what, s->optimizer.beta1);
    CHECK(s->optimizer.beta2 == 0.999, "%s: beta2 %g", what, s->optimizer.beta2);
    CHECK(s->optimizer.eps == 1e-8, "%s: eps %g", what, s->optimizer.eps);
    CHECK(s->optimizer.weight_decay == 0, "%s: weight_decay %g", what,
          s->optimizer.weight_decay);
    CHECK(s->optimizer.clip_norm == 0, "%s: clip_norm %g", what, s->optimizer.clip_norm);
    CHECK(s->checkpoint.every_steps == 0, "%s: every_steps %ld", what,
          s->checkpoint.every_steps);
    CHECK(s->checkpoint.every_seconds == 60, "%s: every_seconds %g", what,
          s->checkpoint.every_seconds);
    CHECK(s->checkpoint.at_epoch_end == 1, "%s: at_epoch_end %d", what,
          s->checkpoint.at_epoch_end);
    CHECK(s->checkpoint.keep == 3, "%s: keep %d", what, s->checkpoint.keep);
    CHECK(s->checkpoint.keep_epoch_end == 1, "%s: keep_epoch_end %d", what,
          s->checkpoint.keep_epoch_end);
}

static void check_default_dataset_model(const vae_spec *s, const char *what)
{
    const vae_data_spec *d = &s->dataset;
    CHECK(strcmp(d->name, "fashion-mnist") == 0, "%s: dataset.name '%s'", what, d->name);
    CHECK(d->path[0] == '\0' && d->test_path[0] == '\0', "%s: path '%s' test_path '%s'", what,
          d->path, d->test_path);
    CHECK(d->format == VAE_FMT_NONE, "%s: format %d", what, d->format);
    CHECK(d->limit == 0 && d->validation_fraction == 0 && d->max_len == 0,
          "%s: limit %ld vf %g max_len %d", what, d->limit, d->validation_fraction, d->max_len);
    CHECK(d->overlong == VAE_LONG_REJECT && d->csv_header == 0 && d->binarize == VAE_BIN_NONE,
          "%s: overlong %d header %d binarize %d", what, d->overlong, d->csv_header,
          d->binarize);
    const vae_model_spec *m = &s->model;
    CHECK(m->n_enc == 2 && m->enc[0] == 512 && m->enc[1] == 256, "%s: encoder n=%d %d %d", what,
          m->n_enc, m->enc[0], m->enc[1]);
    CHECK(m->n_dec == 2 && m->dec[0] == 256 && m->dec[1] == 512, "%s: decoder n=%d %d %d", what,
          m->n_dec, m->dec[0], m->dec[1]);
    CHECK(m->n_groups == 1 && m->groups[0] == 32, "%s: latent n=%d %d", what, m->n_groups,
          m->groups[0]);
    CHECK(m->activation == VAE_ACT_RELU, "%s: activation %d", what, m->activation);
    CHECK(m->likelihood == VAE_LIK_BERNOULLI, "%s: likelihood %d", what, m->likelihood);
    CHECK(m->sigma == 1.0, "%s: sigma %g", what, m->sigma);
}

static void test_reference(void)
{
    size_t len = 0;
    char *text = slurp("examples/reference.json", &len);
    CHECK(text != NULL, "cannot read examples/reference.json (run from the repo root)");
    if (!text)
        return;
    vae_spec s;
    vaed_err err;
    int rc = vae_spec_parse_text(&s, text, len, &err);
    free(text);
    CHECK(rc == 0, "reference.json: rc %d: %s", rc, err.msg);
    if (rc)
        return;
    CHECK(strcmp(s.name, "fmnist-warmup") == 0, "name '%s'", s.name);
    check_default_dataset_model(&s, "reference");
    check_common_defaults(&s, "reference");
    CHECK(s.schedule.kind == SCHED_LINEAR, "schedule.kind %d", s.schedule.kind);
    CHECK(s.schedule.from == 0 && s.schedule.to == 1 && s.schedule.duration == 10,
          "schedule from %g to %g duration %g", s.schedule.from, s.schedule.to,
          s.schedule.duration);
    CHECK(s.schedule.unit == SCHED_EPOCHS && s.schedule.granularity == SCHED_PER_STEP,
          "schedule unit %d granularity %d", s.schedule.unit, s.schedule.granularity);
    CHECK(s.train.epochs == 5 && s.train.batch_size == 128 && s.train.seed == 0 &&
              s.train.threads == 2,
          "train epochs %d batch %d seed %llu threads %d", s.train.epochs, s.train.batch_size,
          (unsigned long long)s.train.seed, s.train.threads);
    CHECK(vae_spec_latent(&s) == 32, "latent %d", vae_spec_latent(&s));
}

static void test_defaults(void)
{
    vae_spec s, d;
    vaed_err err;
    int rc = parse_str(&s, "{}", &err);
    CHECK(rc == 0, "{}: rc %d: %s", rc, err.msg);
    if (rc)
        return;
    CHECK(strcmp(s.name, "job") == 0, "default name '%s'", s.name);
    check_default_dataset_model(&s, "{}");
    check_common_defaults(&s, "{}");
    CHECK(s.train.epochs == 5 && s.train.batch_size == 128 && s.train.seed == 0 &&
              s.train.threads == 1,
          "default train epochs %d batch %d seed %llu threads %d", s.train.epochs,
          s.train.batch_size, (unsigned long long)s.train.seed, s.train.threads);
    /* The default schedule is the schedule module's default (constant 1). */
    sched_spec def;
    sched_default(&def);
    json_t *a = sched_to_json(&s.schedule), *b = sched_to_json(&def);
    CHECK(a && b && json_equal(a, b), "default schedule is not sched_default");
    CHECK(s.schedule.kind == SCHED_CONSTANT && s.schedule.value == 1,
          "default schedule kind %d value %g", s.schedule.kind, s.schedule.value);
    json_decref(a);
    json_decref(b);

    vae_spec_default(&d);
    char why[128];
    CHECK(spec_eq(&s, &d, why, sizeof why), "parse({}) vs vae_spec_default: %s", why);

    /* Empty sections are the same as missing ones. */
    rc = parse_str(&s, "{\"dataset\":{},\"model\":{},\"loss\":{},\"optimizer\":{},"
                       "\"train\":{},\"checkpoint\":{}}",
                   &err);
    CHECK(rc == 0, "empty sections: rc %d: %s", rc, err.msg);
    CHECK(rc || spec_eq(&s, &d, why, sizeof why), "empty sections vs defaults: %s", why);
}

/* Values at the edges of their ranges, and forms that are documented as accepted. */
static void test_accepted(void)
{
    vae_spec s;
    vaed_err err;
    int rc;

    rc = parse_str(&s, "{\"train\":{\"epochs\":5.0,\"seed\":9007199254740992,\"threads\":64,"
                       "\"batch_size\":65536},\"priority\":-1000}",
                   &err);
    CHECK(rc == 0, "edge train: %s", err.msg);
    CHECK(rc || (s.train.epochs == 5 && s.train.seed == 9007199254740992ULL &&
                 s.train.threads == 64 && s.train.batch_size == 65536 && s.priority == -1000),
          "edge train values: epochs %d seed %llu", s.train.epochs,
          (unsigned long long)s.train.seed);

    rc = parse_str(&s, "{\"model\":{\"encoder\":[],\"decoder\":[65536],\"latent\":[3,5,8]}}",
                   &err);
    CHECK(rc == 0, "edge model: %s", err.msg);
    if (rc == 0) {
        int oracle = 3 + 5 + 8;
        CHECK(vae_spec_latent(&s) == oracle, "latent sum %d, want %d", vae_spec_latent(&s),
              oracle);
        CHECK(s.model.n_enc == 0 && s.model.n_dec == 1 && s.model.dec[0] == 65536 &&
                  s.model.n_groups == 3,
              "edge model: n_enc %d n_dec %d n_groups %d", s.model.n_enc, s.model.n_dec,
              s.model.n_groups);
    }

    /* 16 layers and 16 groups are the limits, inclusive. */
    rc = parse_str(&s, "{\"model\":{\"encoder\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],"
                       "\"latent\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,2]}}",
                   &err);
    CHECK(rc == 0, "16 layers/groups: %s", err.msg);
    CHECK(rc || (s.model.n_enc == 16 && s.model.enc[15] == 16 && vae_spec_latent(&s) == 17),
          "16 layers: n_enc %d latent %d", s.model.n_enc, vae_spec_latent(&s));

    rc = parse_str(&s, "{\"optimizer\":{\"beta1\":0,\"beta2\":0.5,\"lr\":1e-6,\"eps\":1,"
                       "\"weight_decay\":0,\"clip_norm\":1.5},"
                       "\"dataset\":{\"path\":\"x.csv\",\"format\":\"csv\",\"validation_fraction\":0.999,\"limit\":0},"
                       "\"checkpoint\":{\"every_seconds\":0,\"keep\":1,\"at_epoch_end\":false}}",
                   &err);
    CHECK(rc == 0, "edge optimizer/dataset/checkpoint: %s", err.msg);
    CHECK(rc || (s.optimizer.beta1 == 0 && s.optimizer.lr == 1e-6 &&
                 s.optimizer.clip_norm == 1.5 && s.dataset.validation_fraction == 0.999 &&
                 s.checkpoint.every_seconds == 0 && s.checkpoint.keep == 1 &&
                 s.checkpoint.at_epoch_end == 0),
          "edge values not stored");

    rc = parse_str(&s, "{\"dataset\":{\"path\":\"w.txt\",\"format\":\"text\",\"max_len\":0,"
                       "\"overlong\":\"truncate\"},\"model\":{\"likelihood\":\"categorical\"}}",
                   &err);
    CHECK(rc == 0, "text: %s", err.msg);
    CHECK(rc || (s.dataset.format == VAE_FMT_TEXT && s.dataset.name[0] == '\0' &&
                 s.dataset.overlong == VAE_LONG_TRUNCATE &&
                 strcmp(s.dataset.path, "w.txt") == 0),
          "text dataset: format %d name '%s'", s.dataset.format, s.dataset.name);

    rc = parse_str(&s, "{\"dataset\":{\"binarize\":\"dynamic\"}}", &err);
    CHECK(rc == 0 && s.dataset.binarize == VAE_BIN_DYNAMIC, "binarize dynamic: %s", err.msg);

    rc = parse_str(&s, "{\"model\":{\"likelihood\":\"gaussian\"},\"dataset\":{\"binarize\":"
                       "\"none\"}}",
                   &err);
    CHECK(rc == 0 && s.model.sigma == 1.0, "gaussian default sigma: %s", err.msg);

    /* The length is honoured: bytes past len are not read. */
    const char *t = "{\"name\":\"cut\"}  this is not JSON";
    rc = vae_spec_parse_text(&s, t, strlen("{\"name\":\"cut\"}"), &err);
    CHECK(rc == 0 && strcmp(s.name, "cut") == 0, "length-limited text: %s", err.msg);

    /* A name of exactly 127 bytes fits. */
    char doc[256];
    char name[128];
    memset(name, 'n', 127);
    name[127] = '\0';
    snprintf(doc, sizeof doc, "{\"name\":\"%s\"}", name);
    rc = parse_str(&s, doc, &err);
    CHECK(rc == 0 && strcmp(s.name, name) == 0, "127-byte name: %s", err.msg);

    /* vae_spec_parse on a json_t directly, and a non-object doc. */
    json_t *o = json_pack("{s:s,s:{s:i}}", "name", "direct", "train", "epochs", 9);
    rc = vae_spec_parse(&s, o, &err);
    CHECK(rc == 0 && s.train.epochs == 9, "vae_spec_parse: %s", err.msg);
    json_decref(o);
    o = json_integer(3);
    rc = vae_spec_parse(&s, o, &err);
    CHECK(rc == VAED_EINVAL && err.field[0] == '\0', "non-object doc: rc %d field '%s'", rc,
          err.field);
    json_decref(o);
    rc = vae_spec_parse(&s, NULL, &err);
    CHECK(rc == VAED_EINVAL, "NULL doc: rc %d", rc);
    rc = vae_spec_parse(&s, NULL, NULL);
    CHECK(rc == VAED_EINVAL, "NULL doc, NULL err: rc %d", rc);
}

/* parse -> to_json -> dump -> parse gives the same spec, and to_json of both is
 * the same object. */
static void round_trip(const char *what, const char *text)
{
    vae_spec a, b;
    vaed_err err;
    int rc = parse_str(&a, text, &err);
    CHECK(rc == 0, "round trip %s: first parse: %s", what, err.msg);
    if (rc)
        return;
    json_t *ja = vae_spec_to_json(&a);
    CHECK(ja != NULL, "round trip %s: to_json returned NULL", what);
    if (!ja)
        return;
    char *dumped = json_dumps(ja, JSON_INDENT(2));
    rc = parse_str(&b, dumped, &err);
    CHECK(rc == 0, "round trip %s: parse of to_json: %s\n%s", what, err.msg, dumped);
    if (rc == 0) {
        char why[128];
        CHECK(spec_eq(&a, &b, why, sizeof why), "round trip %s: %s\n%s", what, why, dumped);
        json_t *jb = vae_spec_to_json(&b);
        CHECK(jb && json_equal(ja, jb), "round trip %s: to_json differs the second time", what);
        json_decref(jb);
    }
    free(dumped);
    json_decref(ja);
}

static void test_round_trip(void)
{
    static const char *files[] = {"examples/reference.json", "examples/quick.json",
                                  "examples/words.json", "examples/gaussian.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t len;
        char *text = slurp(files[i], &len);
        CHECK(text != NULL, "cannot read %s", files[i]);
        if (text)
            round_trip(files[i], text);
        free(text);
    }
    round_trip("{}", "{}");
    round_trip("csv", "{\"name\":\"csv job\",\"priority\":7,\"dataset\":{\"path\":\"d/x.csv\","
                      "\"format\":\"csv\",\"header\":true,\"test_path\":\"d/t.csv\","
                      "\"limit\":1000,\"validation_fraction\":0.25,\"binarize\":\"static\"},"
                      "\"model\":{\"latent\":[16,8,4],\"encoder\":[100],\"decoder\":[]}}");
    round_trip("npy gaussian",
               "{\"dataset\":{\"path\":\"x.npy\",\"format\":\"npy\"},\"model\":{\"likelihood\":"
               "\"gaussian\",\"sigma\":0.37,\"activation\":\"tanh\"},\"loss\":{\"kl\":\"mc\","
               "\"samples\":1024,\"free_bits\":0.1},\"optimizer\":{\"lr\":3e-4,\"beta1\":0.5,"
               "\"beta2\":0.99,\"eps\":1e-7,\"weight_decay\":0.01,\"clip_norm\":1}}");
    round_trip("idx + checkpoint",
               "{\"dataset\":{\"path\":\"train-images-idx3-ubyte.gz\",\"format\":\"idx\"},"
               "\"train\":{\"seed\":9007199254740992,\"epochs\":100000},"
               "\"checkpoint\":{\"every_steps\":500,\"every_seconds\":2.5,\"at_epoch_end\":"
               "false,\"keep\":10,\"keep_epoch_end\":false}}");
    round_trip("text", "{\"dataset\":{\"path\":\"w\",\"format\":\"text\",\"max_len\":20,"
                       "\"overlong\":\"truncate\"},\"model\":{\"likelihood\":\"categorical\"}}");
    /* Other schedule kinds pass through sched_parse/sched_to_json unchanged. */
    round_trip("cyclical", "{\"schedule\":{\"kind\":\"cyclical\",\"from\":0,\"to\":1,"
                           "\"cycles\":4,\"duration\":20,\"ratio\":0.5,\"granularity\":\"epoch\"}}");
    round_trip("piecewise", "{\"schedule\":{\"kind\":\"piecewise\",\"unit\":\"steps\","
                            "\"points\":[[0,0],[100,0.5],[1000,1]]}}");
    round_trip("unicode name", "{\"name\":\"b\\u00eata warm-up \\u2192 1\"}");
}

/* to_json writes every field of every section (the stored spec is complete). */
static void test_to_json_complete(void)
{
    static const struct {
        const char *section;
        const char *keys[12];
    } want[] = {
        {"", {"name", "priority", "dataset", "model", "loss", "schedule", "optimizer", "train",
              "checkpoint", "eval"}},
        {"dataset", {"name", "limit", "validation_fraction", "binarize"}},
        {"model", {"encoder", "latent", "decoder", "activation", "likelihood"}},
        {"loss", {"kl", "samples", "free_bits"}},
        {"optimizer", {"kind", "lr", "beta1", "beta2", "eps", "weight_decay", "clip_norm"}},
        {"train", {"epochs", "batch_size", "seed", "threads"}},
        {"checkpoint", {"every_steps", "every_seconds", "at_epoch_end", "keep",
                        "keep_epoch_end"}},
        {"eval", {"every_epochs", "k", "rows"}},
    };
    vae_spec s;
    vae_spec_default(&s);
    json_t *j = vae_spec_to_json(&s);
    CHECK(j != NULL, "to_json of defaults is NULL");
    if (!j)
        return;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        json_t *o = want[i].section[0] ? json_object_get(j, want[i].section) : j;
        CHECK(json_is_object(o), "to_json: section '%s' missing", want[i].section);
        if (!o)
            continue;
        size_t n = 0;
        for (; n < 12 && want[i].keys[n]; n++)
            CHECK(json_object_get(o, want[i].keys[n]) != NULL, "to_json: %s.%s missing",
                  want[i].section, want[i].keys[n]);
        CHECK(json_object_size(o) == n, "to_json: section '%s' has %zu keys, want %zu",
              want[i].section, json_object_size(o), n);
    }
    CHECK(json_real_value(json_object_get(json_object_get(j, "checkpoint"), "every_seconds")) ==
              60,
          "to_json: checkpoint.every_seconds is not 60");
    CHECK(json_is_true(json_object_get(json_object_get(j, "checkpoint"), "at_epoch_end")),
          "to_json: checkpoint.at_epoch_end is not true");
    CHECK(json_integer_value(json_object_get(json_object_get(j, "model"), "latent")) == 32,
          "to_json: model.latent is not 32");
    json_decref(j);

    /* An out-of-range enum in a hand-built spec is written as "?" (no read past the
     * name table), and that does not parse back. */
    vae_spec_default(&s);
    s.model.activation = (enum vae_act)7;
    j = vae_spec_to_json(&s);
    const char *act = json_string_value(json_object_get(json_object_get(j, "model"),
                                                        "activation"));
    CHECK(act && strcmp(act, "?") == 0, "bad enum written as '%s'", act ? act : "(null)");
    json_decref(j);

    /* A gaussian model writes sigma; a csv dataset writes header; text writes max_len
     * and overlong. */
    vaed_err err;
    int rc = parse_str(&s, "{\"model\":{\"likelihood\":\"gaussian\",\"sigma\":2}}", &err);
    CHECK(rc == 0, "gaussian: %s", err.msg);
    j = vae_spec_to_json(&s);
    CHECK(json_number_value(json_object_get(json_object_get(j, "model"), "sigma")) == 2,
          "to_json: gaussian sigma not written");
    json_decref(j);
    rc = parse_str(&s, "{\"dataset\":{\"path\":\"w\",\"format\":\"text\"},\"model\":"
                       "{\"likelihood\":\"categorical\"}}",
                   &err);
    CHECK(rc == 0, "text: %s", err.msg);
    j = vae_spec_to_json(&s);
    json_t *d = json_object_get(j, "dataset");
    CHECK(json_object_get(d, "max_len") && json_object_get(d, "overlong") &&
              json_object_get(d, "path") && json_object_get(d, "format") &&
              !json_object_get(d, "name"),
          "to_json: text dataset fields");
    json_decref(j);
}

#define LATENT_MSG "model.latent: must be a positive integer or a list of positive integers"
#define S16 "aaaaaaaaaaaaaaaa"
#define S128 S16 S16 S16 S16 S16 S16 S16 S16

/* A spec that must be rejected: its text, the err.field it must name, and a
 * substring the message must contain (NULL: any). */
static const struct bad {
    const char *json, *field, *msg;
} bad[] = {
    /* syntax, top level */
    {"", "", "line 1, column"},
    {"{", "", "line 1, column"},
    {"{\"name\": \"a\",\n \"train\": }", "", "line 2, column"},
    {"{\"name\": \"a\", \"name\": \"b\"}", "", "duplicate object key"},
    {"{\"model\": {\"latent\": 8, \"latent\": 9}}", "", "duplicate object key"},
    {"{\"loss\": {\"free_bits\": 1e400}}", "", "line 1, column"},
    {"{\"name\": \"a\\u0000b\"}", "", "line 1, column"},
    {"[1, 2]", "", "must be a JSON object"},
    {"{\"nmae\": \"x\"}", "nmae", "unknown key"},
    {"{\"Name\": \"x\"}", "Name", "known keys: name, priority"},
    {"{\"name\": \"\"}", "name", "must not be empty"},
    {"{\"name\": 5}", "name", "must be a string"},
    {"{\"name\": \"" S128 "\"}", "name", "at most 127 bytes"},
    {"{\"name\": \"a\\nb\"}", "name", "control characters"},
    {"{\"priority\": 1001}", "priority", "from -1000 to 1000"},
    {"{\"priority\": -1001}", "priority", "from -1000 to 1000"},
    {"{\"priority\": \"high\"}", "priority", "must be an integer"},
    {"{\"dataset\": []}", "dataset", "must be an object"},
    {"{\"model\": null}", "model", "must be an object"},
    {"{\"checkpoint\": 5}", "checkpoint", "must be an object"},
    /* dataset */
    {"{\"dataset\": {\"nam\": \"x\"}}", "dataset.nam", "unknown key"},
    {"{\"dataset\": {\"name\": \"mnist\"}}", "dataset.name", "unknown built-in dataset"},
    {"{\"dataset\": {\"name\": \"fashion-mnist\", \"path\": \"x.csv\", \"format\": \"csv\"}}",
     "dataset.path", "not both"},
    {"{\"dataset\": {\"format\": \"csv\"}}", "dataset.format", "only applies with dataset.path"},
    {"{\"dataset\": {\"validation_fraction\": 0.1}}", "dataset.validation_fraction",
     "ships its own test split"},
    {"{\"dataset\": {\"name\": \"fashion-mnist\", \"format\": \"idx\"}}", "dataset.format",
     "only applies with dataset.path"},
    {"{\"dataset\": {\"path\": \"x.csv\"}}", "dataset.format", "required with dataset.path"},
    {"{\"dataset\": {\"path\": \"x.xls\", \"format\": \"xls\"}}", "dataset.format",
     "must be one of \"idx\", \"npy\", \"csv\", \"text\""},
    {"{\"dataset\": {\"path\": \"x\", \"format\": \"\"}}", "dataset.format", "must be one of"},
    {"{\"dataset\": {\"path\": \"\", \"format\": \"csv\"}}", "dataset.path", "must not be empty"},
    {"{\"dataset\": {\"path\": 7, \"format\": \"csv\"}}", "dataset.path", "must be a string"},
    {"{\"dataset\": {\"test_path\": \"t.csv\"}}", "dataset.test_path",
     "only applies with dataset.path"},
    {"{\"dataset\": {\"limit\": -1}}", "dataset.limit", "must be an integer >= 0"},
    {"{\"dataset\": {\"limit\": 1.5}}", "dataset.limit", "must be an integer"},
    {"{\"dataset\": {\"validation_fraction\": 1}}", "dataset.validation_fraction", "must be < 1"},
    {"{\"dataset\": {\"validation_fraction\": -0.1}}", "dataset.validation_fraction", "must be >= 0"},
    {"{\"dataset\": {\"validation_fraction\": \"0.1\"}}", "dataset.validation_fraction",
     "must be a number"},
    {"{\"dataset\": {\"max_len\": 10}}", "dataset.max_len", "only applies to dataset.format"},
    {"{\"dataset\": {\"path\": \"w\", \"format\": \"text\", \"max_len\": -1}, \"model\": "
     "{\"likelihood\": \"categorical\"}}",
     "dataset.max_len", "from 0 to 65536"},
    {"{\"dataset\": {\"path\": \"x.csv\", \"format\": \"csv\", \"overlong\": \"skip\"}}",
     "dataset.overlong", "only applies to dataset.format \"text\""},
    {"{\"dataset\": {\"path\": \"w\", \"format\": \"text\", \"overlong\": \"cut\"}, \"model\": "
     "{\"likelihood\": \"categorical\"}}",
     "dataset.overlong", "must be one of \"reject\", \"truncate\", \"skip\""},
    {"{\"dataset\": {\"path\": \"x.npy\", \"format\": \"npy\", \"header\": true}}",
     "dataset.header", "only applies to dataset.format \"csv\""},
    {"{\"dataset\": {\"path\": \"x.csv\", \"format\": \"csv\", \"header\": \"yes\"}}",
     "dataset.header", "must be true or false"},
    {"{\"dataset\": {\"binarize\": \"always\"}}", "dataset.binarize", "must be one of"},
    {"{\"dataset\": {\"binarize\": \"static\"}, \"model\": {\"likelihood\": \"gaussian\"}}",
     "dataset.binarize", "bernoulli"},
    /* model */
    {"{\"model\": {\"latnet\": 32}}", "model.latnet", "unknown key"},
    {"{\"model\": {\"latent\": 0}}", "model.latent", LATENT_MSG},
    {"{\"model\": {\"latent\": -1}}", "model.latent", LATENT_MSG},
    {"{\"model\": {\"latent\": []}}", "model.latent", LATENT_MSG},
    {"{\"model\": {\"latent\": [3, 0]}}", "model.latent", LATENT_MSG},
    {"{\"model\": {\"latent\": \"32\"}}", "model.latent", LATENT_MSG},
    {"{\"model\": {\"latent\": 2.5}}", "model.latent", LATENT_MSG},
    {"{\"model\": {\"latent\": null}}", "model.latent", LATENT_MSG},
    {"{\"model\": {\"latent\": [[4]]}}", "model.latent", LATENT_MSG},
    {"{\"model\": {\"latent\": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}}", "model.latent",
     "at most 16 groups"},
    {"{\"model\": {\"latent\": 65537}}", "model.latent", "at most 65536"},
    {"{\"model\": {\"encoder\": \"512\"}}", "model.encoder", "must be a list"},
    {"{\"model\": {\"encoder\": 512}}", "model.encoder", "must be a list"},
    {"{\"model\": {\"encoder\": [512, 0]}}", "model.encoder[1]", "from 1 to 65536"},
    {"{\"model\": {\"encoder\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}}", "model.encoder",
     "at most 16 layers"},
    {"{\"model\": {\"decoder\": [65537]}}", "model.decoder[0]", "from 1 to 65536"},
    {"{\"model\": {\"decoder\": [1.5]}}", "model.decoder[0]", "must be a positive integer"},
    {"{\"model\": {\"decoder\": [\"8\"]}}", "model.decoder[0]", "must be a positive integer"},
    {"{\"model\": {\"activation\": \"sigmoid\"}}", "model.activation",
     "must be one of \"relu\", \"tanh\", \"elu\""},
    {"{\"model\": {\"likelihood\": \"poisson\"}}", "model.likelihood", "must be one of"},
    {"{\"model\": {\"likelihood\": \"categorical\"}}", "model.likelihood", "text"},
    {"{\"dataset\": {\"path\": \"x.csv\", \"format\": \"csv\"}, \"model\": {\"likelihood\": "
     "\"categorical\"}}",
     "model.likelihood", "text"},
    {"{\"dataset\": {\"path\": \"w\", \"format\": \"text\"}}", "model.likelihood",
     "categorical"},
    {"{\"dataset\": {\"path\": \"w\", \"format\": \"text\"}, \"model\": {\"likelihood\": "
     "\"gaussian\"}}",
     "model.likelihood", "categorical"},
    {"{\"model\": {\"sigma\": 0.5}}", "model.sigma", "gaussian"},
    {"{\"model\": {\"likelihood\": \"gaussian\", \"sigma\": 0}}", "model.sigma", ">= 1e-6"},
    {"{\"model\": {\"likelihood\": \"gaussian\", \"sigma\": -1}}", "model.sigma", ">= 1e-6"},
    /* loss */
    {"{\"loss\": {\"kl\": \"exact\"}}", "loss.kl", "must be one of \"analytic\", \"mc\""},
    {"{\"loss\": {\"samples\": 0}}", "loss.samples", "from 1 to 1024"},
    {"{\"loss\": {\"samples\": 1025}}", "loss.samples", "from 1 to 1024"},
    {"{\"loss\": {\"samples\": \"2\"}}", "loss.samples", "must be an integer"},
    {"{\"loss\": {\"free_bits\": -0.5}}", "loss.free_bits", ">= 0"},
    {"{\"loss\": {\"beta\": 1}}", "loss.beta", "unknown key"},
    /* schedule (the schedule module words these; the field is what we check) */
    {"{\"schedule\": \"linear\"}", "schedule", "must be an object"},
    {"{\"schedule\": {\"knd\": \"linear\"}}", "schedule.kind", NULL},
    {"{\"schedule\": {\"kind\": \"linear\", \"durration\": 5}}", "schedule.durration", NULL},
    {"{\"schedule\": {\"kind\": \"constant\", \"origin\": \"now\"}}", "schedule.origin", NULL},
    {"{\"schedule\": {\"kind\": \"linear\", \"duration\": 0}}", "schedule.duration", NULL},
    /* optimizer */
    {"{\"optimizer\": {\"kind\": \"sgd\"}}", "optimizer.kind", "must be one of \"adam\""},
    {"{\"optimizer\": {\"lr\": 0}}", "optimizer.lr", "> 0"},
    {"{\"optimizer\": {\"lr\": -0.001}}", "optimizer.lr", "> 0"},
    {"{\"optimizer\": {\"lr\": \"fast\"}}", "optimizer.lr", "must be a number"},
    /* every number is bounded (vae/range.c; each row: test_spec_ranges.c) */
    {"{\"optimizer\": {\"lr\": 1.79e308}}", "optimizer.lr", "must be <= 10"},
    {"{\"schedule\": {\"kind\": \"constant\", \"value\": 1.79e308}}", "schedule.value",
     "must be <= 1e5"},
    {"{\"optimizer\": {\"beta1\": 1}}", "optimizer.beta1", "must be < 1"},
    {"{\"optimizer\": {\"beta2\": -0.1}}", "optimizer.beta2", "must be >= 0"},
    {"{\"optimizer\": {\"eps\": 0}}", "optimizer.eps", ">= 1e-30"},
    {"{\"optimizer\": {\"weight_decay\": -1}}", "optimizer.weight_decay", ">= 0"},
    {"{\"optimizer\": {\"clip_norm\": -1}}", "optimizer.clip_norm", ">= 0"},
    {"{\"optimizer\": {\"momentum\": 0.9}}", "optimizer.momentum", "unknown key"},
    /* train */
    {"{\"train\": {\"epochs\": 0}}", "train.epochs", "from 1 to 100000"},
    {"{\"train\": {\"epochs\": 100001}}", "train.epochs", "from 1 to 100000"},
    {"{\"train\": {\"epochs\": 1.5}}", "train.epochs", "must be an integer"},
    {"{\"train\": {\"epochs\": \"3\"}}", "train.epochs", "must be an integer"},
    {"{\"train\": {\"epochs\": true}}", "train.epochs", "must be an integer"},
    {"{\"train\": {\"batch_size\": 0}}", "train.batch_size", "from 1 to 65536"},
    {"{\"train\": {\"batch_size\": 65537}}", "train.batch_size", "from 1 to 65536"},
    {"{\"train\": {\"seed\": -1}}", "train.seed", ">= 0"},
    {"{\"train\": {\"seed\": 9007199254740993}}", "train.seed", ">= 0"},
    {"{\"train\": {\"seed\": 1e300}}", "train.seed", ">= 0"},
    {"{\"train\": {\"threads\": 0}}", "train.threads", "from 1 to 64"},
    {"{\"train\": {\"threads\": 65}}", "train.threads", "from 1 to 64"},
    {"{\"train\": {\"epoch\": 5}}", "train.epoch", "unknown key"},
    /* checkpoint */
    {"{\"checkpoint\": {\"every_steps\": -1}}", "checkpoint.every_steps", ">= 0"},
    {"{\"checkpoint\": {\"every_seconds\": -1}}", "checkpoint.every_seconds", ">= 0"},
    {"{\"checkpoint\": {\"every_seconds\": \"60\"}}", "checkpoint.every_seconds",
     "must be a number"},
    {"{\"checkpoint\": {\"at_epoch_end\": 1}}", "checkpoint.at_epoch_end", "true or false"},
    {"{\"checkpoint\": {\"keep\": 0}}", "checkpoint.keep", "from 1 to"},
    {"{\"checkpoint\": {\"keep_epoch_end\": \"yes\"}}", "checkpoint.keep_epoch_end",
     "true or false"},
    {"{\"checkpoint\": {\"every\": 5}}", "checkpoint.every", "unknown key"},
};

static void test_bad(void)
{
    int nbad = (int)(sizeof bad / sizeof bad[0]);
    CHECK(nbad >= 40, "only %d bad rows", nbad);
    for (int i = 0; i < nbad; i++) {
        vae_spec s;
        vaed_err err;
        int rc = parse_str(&s, bad[i].json, &err);
        int ok = rc == VAED_EINVAL && strcmp(err.field, bad[i].field) == 0 &&
                 (!bad[i].msg || strstr(err.msg, bad[i].msg));
        /* The err.h invariant: a message with a field starts with "field: ". */
        size_t fl = strlen(err.field);
        int prefixed = rc == 0 || fl == 0 ||
                       (strncmp(err.msg, err.field, fl) == 0 && err.msg[fl] == ':');
        CHECK(ok && prefixed,
              "bad row %d: %s\n    want rc %d field '%s' msg containing '%s'\n"
              "    got  rc %d field '%s' msg '%s'",
              i, bad[i].json, VAED_EINVAL, bad[i].field, bad[i].msg ? bad[i].msg : "(any)", rc,
              err.field, err.msg);
    }

    /* A path of 1023 bytes fits; 1024 does not. Built here: too long for a row. */
    static char doc[1200];
    char path[1025];
    memset(path, 'p', 1024);
    path[1024] = '\0';
    snprintf(doc, sizeof doc, "{\"dataset\":{\"path\":\"%s\",\"format\":\"csv\"}}", path);
    vae_spec s;
    vaed_err err;
    int rc = parse_str(&s, doc, &err);
    CHECK(rc == VAED_EINVAL && strcmp(err.field, "dataset.path") == 0 &&
              strstr(err.msg, "at most 1023 bytes"),
          "1024-byte path: rc %d field '%s' msg '%s'", rc, err.field, err.msg);
    path[1023] = '\0';
    snprintf(doc, sizeof doc, "{\"dataset\":{\"path\":\"%s\",\"format\":\"csv\"}}", path);
    rc = parse_str(&s, doc, &err);
    CHECK(rc == 0 && strlen(s.dataset.path) == 1023, "1023-byte path: %s", err.msg);

    /* NULL text and NULL err are allowed. */
    rc = vae_spec_parse_text(&s, NULL, 0, &err);
    CHECK(rc == VAED_EINVAL, "NULL text: rc %d", rc);
    rc = vae_spec_parse_text(&s, "{\"x\":1}", 7, NULL);
    CHECK(rc == VAED_EINVAL, "NULL err: rc %d", rc);
}

int main(void)
{
    test_reference();
    test_defaults();
    test_accepted();
    test_round_trip();
    test_to_json_complete();
    test_bad();
    return t_done("test_spec");
}
