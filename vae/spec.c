/* spec.c — the job spec parser (see spec.h; docs/spec.md); its writer is spec_json.c.
 *
 * Strictness is the point: a key this file does not know is an error that names it,
 * every value is checked for type and range, and options that only make sense for
 * one format or likelihood are rejected elsewhere instead of being silently ignored,
 * because an ignored typo would silently change a run.
 *
 * Invariants:
 *  - Every error leaves err->field set to the dotted path of what was wrong
 *    ("model.encoder[1]", "dataset.path"), and err->msg starts with that path. The
 *    only errors without a field are "the spec is not an object" and JSON syntax.
 *  - Integers are JSON integers. A real whose value is exactly integral (5.0) is
 *    accepted as that integer, because some clients (Python's json.dumps of a
 *    float, spreadsheets) write whole numbers that way; 5.5 or "5" are errors.
 *  - vae_spec_to_json writes every field that applies, and parsing its output gives
 *    back the same spec. Dataset and model fields that do not apply to the chosen
 *    source, format or likelihood (path for a built-in, max_len for csv, sigma for
 *    bernoulli) are left out, since parsing them back would be an error. */
#include "spec.h"

#include "range.h"
#include "spec_names.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>


static const char *const optim_names[] = {"adam", NULL};
static const char *const builtin_names[] = {"fashion-mnist", NULL};

/* ---- field paths and small checkers ------------------------------------------ */

/* prefix "" + key "name" -> "name"; prefix "model" + key "latent" -> "model.latent". */
static void field_path(char *buf, size_t n, const char *prefix, const char *key)
{
    if (prefix[0])
        snprintf(buf, n, "%s.%s", prefix, key);
    else
        snprintf(buf, n, "%s", key);
}

/* "a, b, c" from a NULL-terminated list, for messages. */
static void join_names(char *buf, size_t n, const char *const *names, const char *quote)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; names[i]; i++) {
        if (!names[i][0])
            continue;
        int w = snprintf(buf + used, n - used, "%s%s%s%s", used ? ", " : "", quote, names[i],
                         quote);
        if (w < 0 || (size_t)w >= n - used)
            return;
        used += (size_t)w;
    }
}

/* Every key of obj must be in known; the first one that is not is the error. */
static int check_keys(const json_t *obj, const char *prefix, const char *const *known,
                      vaed_err *err)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        int found = 0;
        for (int i = 0; known[i] && !found; i++)
            found = strcmp(key, known[i]) == 0;
        if (!found) {
            char f[256], list[400];
            field_path(f, sizeof f, prefix, key);
            join_names(list, sizeof list, known, "");
            return vaed_err_set(err, VAED_EINVAL, f, "unknown key (known keys: %s)", list);
        }
    }
    return 0;
}

/* A section: absent -> *out NULL and 0; present -> must be an object. */
static int get_section(const json_t *doc, const char *key, const json_t **out, vaed_err *err)
{
    *out = json_object_get(doc, key);
    if (*out && !json_is_object(*out))
        return vaed_err_set(err, VAED_EINVAL, key, "must be an object");
    return 0;
}

/* Whether v is an integer in [lo, hi] by the rule in the file comment; *out gets it.
 * Returns 0, 1 (not an integer) or 2 (an integer out of range). */
static int as_int(const json_t *v, long long lo, long long hi, long long *out)
{
    if (json_is_integer(v)) {
        long long x = json_integer_value(v);
        if (x < lo || x > hi)
            return 2;
        *out = x;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d != trunc(d))
            return 1;
        /* Range-check as a double first: converting an out-of-range double is UB. */
        if (d < (double)lo || d > (double)hi)
            return 2;
        *out = (long long)d;
        return 0;
    }
    return 1;
}

/* The row of vae_ranges (range.h) for a spec field: every number's bounds live there,
 * once, for this parser, the docs and the tests. */
static const vae_range *row(const char *field)
{
    return vae_range_find(field, NULL);
}

/* [lo, hi] of an integer row; a field without a row gets an empty range (refused),
 * which the range tests would report. */
static void int_bounds(const vae_range *r, long long *lo, long long *hi)
{
    *lo = r ? (long long)r->min : 1;
    *hi = r ? (long long)r->max : 0;
}

static int range_err(vaed_err *err, const char *f, long long lo, long long hi)
{
    if (hi == (long long)VAE_RANGE_INT53)
        return vaed_err_set(err, VAED_EINVAL, f, "must be an integer >= %lld", lo);
    return vaed_err_set(err, VAED_EINVAL, f, "must be an integer from %lld to %lld", lo, hi);
}

/* Optional integer obj[key] in its row's range: absent leaves *out alone. *seen (may
 * be NULL) is set to whether the key was there. */
static int get_int(const json_t *obj, const char *prefix, const char *key, long long *out,
                   int *seen, vaed_err *err)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (seen)
        *seen = v != NULL;
    if (!v)
        return 0;
    char f[256];
    long long lo, hi;
    field_path(f, sizeof f, prefix, key);
    int_bounds(row(f), &lo, &hi);
    switch (as_int(v, lo, hi, out)) {
    case 0:
        return 0;
    case 1:
        return vaed_err_set(err, VAED_EINVAL, f, "must be an integer");
    default:
        return range_err(err, f, lo, hi);
    }
}

/* get_int into an int or a long (the table's ranges always fit the target). */
static int get_i(const json_t *obj, const char *prefix, const char *key, int *out, int *seen,
                 vaed_err *err)
{
    long long x = *out;
    int rc = get_int(obj, prefix, key, &x, seen, err);
    if (rc == 0)
        *out = (int)x;
    return rc;
}

static int get_l(const json_t *obj, const char *prefix, const char *key, long *out, int *seen,
                 vaed_err *err)
{
    long long x = *out;
    int rc = get_int(obj, prefix, key, &x, seen, err);
    if (rc == 0)
        *out = (long)x;
    return rc;
}

/* Optional real obj[key] in its row's range; -0 is stored as +0. */
static int get_num(const json_t *obj, const char *prefix, const char *key, double *out,
                   int *seen, vaed_err *err)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (seen)
        *seen = v != NULL;
    if (!v)
        return 0;
    char f[256];
    field_path(f, sizeof f, prefix, key);
    if (!json_is_number(v))
        return vaed_err_set(err, VAED_EINVAL, f, "must be a number");
    /* jansson refuses numbers that overflow a double, so d is finite; the range check
     * would refuse an infinity all the same. */
    double d = json_number_value(v);
    int rc = vae_range_check(row(f), d, f, err);
    if (rc)
        return rc;
    *out = vae_range_unsign_zero(d);
    return 0;
}

int vae_spec_check_lr(double lr, const char *field, vaed_err *err)
{
    return vae_range_check(row("optimizer.lr"), lr, field, err);
}

static int get_bool(const json_t *obj, const char *prefix, const char *key, int *out,
                    int *seen, vaed_err *err)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (seen)
        *seen = v != NULL;
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        char f[256];
        field_path(f, sizeof f, prefix, key);
        return vaed_err_set(err, VAED_EINVAL, f, "must be true or false");
    }
    *out = json_is_true(v);
    return 0;
}

int vae_spec_check_name(const char *s, size_t n, size_t cap, const char *field, vaed_err *err)
{
    if (n == 0 || n >= cap)
        return vaed_err_set(err, VAED_EINVAL, field, "must be 1 to %zu bytes long", cap - 1);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        /* names end up in logs, terminals and the dashboard: no C0, DEL or C1 (U+0080..
         * U+009F, UTF-8 C2 80..C2 9F: ESC and CSI start terminal escapes) */
        if (p[i] < 0x20 || p[i] == 0x7F || (p[i] == 0xC2 && i + 1 < n && p[i + 1] <= 0x9F))
            return vaed_err_set(err, VAED_EINVAL, field, "must not contain control characters");
        /* U+202A..U+202E are E2 80 AA..AE, U+2066..U+2069 are E2 81 A6..A9 */
        if (p[i] == 0xE2 && i + 2 < n &&
            ((p[i + 1] == 0x80 && p[i + 2] >= 0xAA && p[i + 2] <= 0xAE) ||
             (p[i + 1] == 0x81 && p[i + 2] >= 0xA6 && p[i + 2] <= 0xA9)))
            return vaed_err_set(err, VAED_EINVAL, field, "must not contain bidi controls");
    }
    return 0;
}

/* Optional string obj[key] of 1..cap-1 bytes into dst[cap] (zero-filled past the
 * end so equal specs compare equal byte for byte). is_name applies the name rule
 * (vae_spec_check_name: job names end up in logs and the dashboard). */
static int get_str(const json_t *obj, const char *prefix, const char *key, char *dst,
                   size_t cap, int is_name, int *seen, vaed_err *err)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (seen)
        *seen = v != NULL;
    if (!v)
        return 0;
    char f[256];
    field_path(f, sizeof f, prefix, key);
    if (!json_is_string(v))
        return vaed_err_set(err, VAED_EINVAL, f, "must be a string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0)
        return vaed_err_set(err, VAED_EINVAL, f, "must not be empty");
    if (n >= cap)
        return vaed_err_set(err, VAED_EINVAL, f, "must be at most %zu bytes long", cap - 1);
    if (strlen(s) != n)
        return vaed_err_set(err, VAED_EINVAL, f, "must not contain NUL characters");
    if (is_name && vae_spec_check_name(s, n, cap, f, err))
        return VAED_EINVAL;
    memset(dst, 0, cap);
    memcpy(dst, s, n);
    return 0;
}

/* Optional string obj[key] that must be one of names (NULL-terminated; "" entries
 * are skipped); *out gets its index. */
static int get_enum(const json_t *obj, const char *prefix, const char *key,
                    const char *const *names, int *out, int *seen, vaed_err *err)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (seen)
        *seen = v != NULL;
    if (!v)
        return 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        for (int i = 0; names[i]; i++)
            if (names[i][0] && strcmp(s, names[i]) == 0) {
                *out = i;
                return 0;
            }
    }
    char f[256], list[256];
    field_path(f, sizeof f, prefix, key);
    join_names(list, sizeof list, names, "\"");
    return vaed_err_set(err, VAED_EINVAL, f, "must be one of %s", list);
}

/* ---- sections ----------------------------------------------------------------- */

static const char *const top_keys[] = {"name",     "priority",  "dataset", "model",
                                       "loss",     "schedule",  "optimizer", "train",
                                       "checkpoint", "eval", NULL};
static const char *const dataset_keys[] = {"name",  "path",   "format",   "test_path",
                                           "limit", "validation_fraction", "max_len",
                                           "overlong", "header", "binarize", NULL};
static const char *const model_keys[] = {"encoder",    "decoder", "latent", "activation",
                                         "likelihood", "sigma",   NULL};
static const char *const loss_keys[] = {"kl", "samples", "free_bits", NULL};
static const char *const optim_keys[] = {"kind", "lr",           "beta1",     "beta2",
                                         "eps",  "weight_decay", "clip_norm", NULL};
static const char *const train_keys[] = {"epochs", "batch_size", "seed", "threads", NULL};
static const char *const ckpt_keys[] = {"every_steps", "every_seconds", "at_epoch_end",
                                        "keep", "keep_epoch_end", NULL};
static const char *const eval_keys[] = {"every_epochs", "k", "rows", NULL};

/* Which dataset keys were given: some only make sense together. */
typedef struct dataset_seen {
    int name, path, format, test_path, max_len, overlong, header;
} dataset_seen;

static int parse_dataset(vae_data_spec *d, const json_t *o, vaed_err *err)
{
    int rc, fmt = d->format, ovl = d->overlong, bin = d->binarize;
    dataset_seen seen_, *seen = &seen_;
    memset(seen, 0, sizeof *seen);
    if (!o)
        return 0;
    if ((rc = check_keys(o, "dataset", dataset_keys, err)) ||
        (rc = get_str(o, "dataset", "name", d->name, sizeof d->name, 0, &seen->name, err)) ||
        (rc = get_str(o, "dataset", "path", d->path, sizeof d->path, 0, &seen->path, err)) ||
        (rc = get_enum(o, "dataset", "format", fmt_names, &fmt, &seen->format, err)) ||
        (rc = get_str(o, "dataset", "test_path", d->test_path, sizeof d->test_path, 0,
                      &seen->test_path, err)) ||
        (rc = get_l(o, "dataset", "limit", &d->limit, NULL, err)) ||
        (rc = get_num(o, "dataset", "validation_fraction", &d->validation_fraction, NULL, err)) ||
        (rc = get_i(o, "dataset", "max_len", &d->max_len, &seen->max_len,
                    err)) ||
        (rc = get_enum(o, "dataset", "overlong", long_names, &ovl, &seen->overlong, err)) ||
        (rc = get_bool(o, "dataset", "header", &d->csv_header, &seen->header, err)) ||
        (rc = get_enum(o, "dataset", "binarize", bin_names, &bin, NULL, err)))
        return rc;
    d->format = (enum vae_data_format)fmt;
    d->overlong = (enum vae_overlong)ovl;
    d->binarize = (enum vae_binarize)bin;

    if (seen->name) {
        int known = 0;
        for (int i = 0; builtin_names[i] && !known; i++)
            known = strcmp(d->name, builtin_names[i]) == 0;
        if (!known) {
            char list[128];
            join_names(list, sizeof list, builtin_names, "\"");
            return vaed_err_set(err, VAED_EINVAL, "dataset.name",
                                "unknown built-in dataset \"%s\" (built-in: %s; "
                                "use dataset.path and dataset.format for a file)",
                                d->name, list);
        }
    }
    if (seen->name && seen->path)
        return vaed_err_set(err, VAED_EINVAL, "dataset.path",
                            "give either dataset.name or dataset.path, not both");
    if (seen->format && !seen->path)
        return vaed_err_set(err, VAED_EINVAL, "dataset.format",
                            "only applies with dataset.path");
    if (seen->path && !seen->format)
        return vaed_err_set(err, VAED_EINVAL, "dataset.format",
                            "required with dataset.path (one of \"idx\", \"npy\", \"csv\", "
                            "\"text\")");
    if (seen->test_path && !seen->path)
        return vaed_err_set(err, VAED_EINVAL, "dataset.test_path",
                            "only applies with dataset.path");
    if (!seen->path && d->validation_fraction > 0)
        return vaed_err_set(err, VAED_EINVAL, "dataset.validation_fraction",
                            "%s ships its own test split; only applies with dataset.path",
                            d->name);
    if (seen->max_len && d->format != VAE_FMT_TEXT)
        return vaed_err_set(err, VAED_EINVAL, "dataset.max_len",
                            "only applies to dataset.format \"text\"");
    if (seen->overlong && d->format != VAE_FMT_TEXT)
        return vaed_err_set(err, VAED_EINVAL, "dataset.overlong",
                            "only applies to dataset.format \"text\"");
    if (seen->header && d->format != VAE_FMT_CSV)
        return vaed_err_set(err, VAED_EINVAL, "dataset.header",
                            "only applies to dataset.format \"csv\"");
    if (seen->path)
        memset(d->name, 0, sizeof d->name);
    return 0;
}

/* "encoder"/"decoder": a list of 0..VAE_MAX_LAYERS positive sizes. */
static int parse_layers(const json_t *o, const char *key, int *n, int *sizes, vaed_err *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    char f[64];
    snprintf(f, sizeof f, "model.%s", key);
    if (!json_is_array(v))
        return vaed_err_set(err, VAED_EINVAL, f, "must be a list of positive integers");
    if (json_array_size(v) > VAE_MAX_LAYERS)
        return vaed_err_set(err, VAED_EINVAL, f, "at most %d layers", VAE_MAX_LAYERS);
    int count = (int)json_array_size(v);
    long long lo, hi;
    snprintf(f, sizeof f, "model.%s[]", key);
    int_bounds(row(f), &lo, &hi);
    for (int i = 0; i < count; i++) {
        long long x;
        snprintf(f, sizeof f, "model.%s[%d]", key, i);
        int r = as_int(json_array_get(v, (size_t)i), lo, hi, &x);
        if (r == 1)
            return vaed_err_set(err, VAED_EINVAL, f, "must be a positive integer");
        if (r == 2)
            return range_err(err, f, lo, hi);
        sizes[i] = (int)x;
    }
    for (int i = count; i < VAE_MAX_LAYERS; i++)
        sizes[i] = 0;
    *n = count;
    return 0;
}

#define LATENT_MSG "must be a positive integer or a list of positive integers"

static int parse_latent(vae_model_spec *m, const json_t *v, vaed_err *err)
{
    int groups[VAE_MAX_GROUPS] = {0};
    int n = 0;
    long long x, lo, hi;
    int_bounds(row("model.latent"), &lo, &hi);
    if (json_is_array(v)) {
        if (json_array_size(v) == 0)
            return vaed_err_set(err, VAED_EINVAL, "model.latent", LATENT_MSG);
        if (json_array_size(v) > VAE_MAX_GROUPS)
            return vaed_err_set(err, VAED_EINVAL, "model.latent", "at most %d groups",
                                VAE_MAX_GROUPS);
        n = (int)json_array_size(v);
        for (int i = 0; i < n; i++) {
            int r = as_int(json_array_get(v, (size_t)i), lo, LLONG_MAX, &x);
            if (r)
                return vaed_err_set(err, VAED_EINVAL, "model.latent", LATENT_MSG);
            if (x > hi)
                return vaed_err_set(err, VAED_EINVAL, "model.latent",
                                    "each group must be at most %lld", hi);
            groups[i] = (int)x;
        }
    } else {
        if (as_int(v, lo, LLONG_MAX, &x))
            return vaed_err_set(err, VAED_EINVAL, "model.latent", LATENT_MSG);
        if (x > hi)
            return vaed_err_set(err, VAED_EINVAL, "model.latent", "must be at most %lld", hi);
        groups[0] = (int)x;
        n = 1;
    }
    m->n_groups = n;
    memcpy(m->groups, groups, sizeof groups);
    return 0;
}

static int parse_model(vae_model_spec *m, const json_t *o, int *sigma_seen, vaed_err *err)
{
    int rc, act = m->activation, lik = m->likelihood;
    *sigma_seen = 0;
    if (!o)
        return 0;
    const json_t *lat = json_object_get(o, "latent");
    if ((rc = check_keys(o, "model", model_keys, err)) ||
        (rc = parse_layers(o, "encoder", &m->n_enc, m->enc, err)) ||
        (rc = (lat ? parse_latent(m, lat, err) : 0)) ||
        (rc = parse_layers(o, "decoder", &m->n_dec, m->dec, err)) ||
        (rc = get_enum(o, "model", "activation", act_names, &act, NULL, err)) ||
        (rc = get_enum(o, "model", "likelihood", lik_names, &lik, NULL, err)) ||
        (rc = get_num(o, "model", "sigma", &m->sigma, sigma_seen, err)))
        return rc;
    m->activation = (enum vae_act)act;
    m->likelihood = (enum vae_lik)lik;
    return 0;
}

static int parse_loss(vae_loss_spec *l, const json_t *o, vaed_err *err)
{
    int rc, kl = l->kl;
    if (!o)
        return 0;
    if ((rc = check_keys(o, "loss", loss_keys, err)) ||
        (rc = get_enum(o, "loss", "kl", kl_names, &kl, NULL, err)) ||
        (rc = get_i(o, "loss", "samples", &l->samples, NULL, err)) ||
        (rc = get_num(o, "loss", "free_bits", &l->free_bits, NULL, err)))
        return rc;
    l->kl = (enum vae_klkind)kl;
    return 0;
}

static int parse_optimizer(vae_optim_spec *p, const json_t *o, vaed_err *err)
{
    int rc, kind = 0;
    if (!o)
        return 0;
    if ((rc = check_keys(o, "optimizer", optim_keys, err)) ||
        (rc = get_enum(o, "optimizer", "kind", optim_names, &kind, NULL, err)) ||
        (rc = get_num(o, "optimizer", "lr", &p->lr, NULL, err)) ||
        (rc = get_num(o, "optimizer", "beta1", &p->beta1, NULL, err)) ||
        (rc = get_num(o, "optimizer", "beta2", &p->beta2, NULL, err)) ||
        (rc = get_num(o, "optimizer", "eps", &p->eps, NULL, err)) ||
        (rc = get_num(o, "optimizer", "weight_decay", &p->weight_decay, NULL, err)) ||
        (rc = get_num(o, "optimizer", "clip_norm", &p->clip_norm, NULL, err)))
        return rc;
    return 0;
}

static int parse_train(vae_train_spec *t, const json_t *o, vaed_err *err)
{
    int rc;
    long long seed = (long long)t->seed;
    if (!o)
        return 0;
    if ((rc = check_keys(o, "train", train_keys, err)) ||
        (rc = get_i(o, "train", "epochs", &t->epochs, NULL, err)) ||
        (rc = get_i(o, "train", "batch_size", &t->batch_size, NULL, err)) ||
        (rc = get_int(o, "train", "seed", &seed, NULL, err)) ||
        (rc = get_i(o, "train", "threads", &t->threads, NULL, err)))
        return rc;
    t->seed = (uint64_t)seed;
    return 0;
}

static int parse_checkpoint(vae_ckpt_spec *c, const json_t *o, vaed_err *err)
{
    int rc;
    if (!o)
        return 0;
    if ((rc = check_keys(o, "checkpoint", ckpt_keys, err)) ||
        (rc = get_l(o, "checkpoint", "every_steps", &c->every_steps, NULL, err)) ||
        (rc = get_num(o, "checkpoint", "every_seconds", &c->every_seconds, NULL,
                      err)) ||
        (rc = get_bool(o, "checkpoint", "at_epoch_end", &c->at_epoch_end, NULL, err)) ||
        (rc = get_i(o, "checkpoint", "keep", &c->keep, NULL, err)) ||
        (rc = get_bool(o, "checkpoint", "keep_epoch_end", &c->keep_epoch_end, NULL, err)))
        return rc;
    return 0;
}

static int parse_eval(vae_eval_spec *v, const json_t *o, vaed_err *err)
{
    int rc;
    if (!o)
        return 0;
    if ((rc = check_keys(o, "eval", eval_keys, err)) ||
        (rc = get_i(o, "eval", "every_epochs", &v->every_epochs, NULL, err)) ||
        (rc = get_i(o, "eval", "k", &v->k, NULL, err)) ||
        (rc = get_l(o, "eval", "rows", &v->rows, NULL, err)))
        return rc;
    return 0;
}

/* ---- public ------------------------------------------------------------------- */

void vae_spec_default(vae_spec *out)
{
    /* Zero everything first, padding and string tails included, so two specs with
     * the same fields are also equal byte for byte. */
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "job");
    out->priority = 0;

    vae_data_spec *d = &out->dataset;
    snprintf(d->name, sizeof d->name, "fashion-mnist");
    d->format = VAE_FMT_NONE;
    d->limit = 0;
    d->validation_fraction = 0;
    d->max_len = 0;
    d->overlong = VAE_LONG_REJECT;
    d->csv_header = 0;
    d->binarize = VAE_BIN_NONE;

    vae_model_spec *m = &out->model;
    m->n_enc = 2;
    m->enc[0] = 512;
    m->enc[1] = 256;
    m->n_groups = 1;
    m->groups[0] = 32;
    m->n_dec = 2;
    m->dec[0] = 256;
    m->dec[1] = 512;
    m->activation = VAE_ACT_RELU;
    m->likelihood = VAE_LIK_BERNOULLI;
    m->sigma = 1.0;

    out->loss.kl = VAE_KL_ANALYTIC;
    out->loss.samples = 1;
    out->loss.free_bits = 0;

    sched_default(&out->schedule);

    out->optimizer.lr = 0.001;
    out->optimizer.beta1 = 0.9;
    out->optimizer.beta2 = 0.999;
    out->optimizer.eps = 1e-8;
    out->optimizer.weight_decay = 0;
    out->optimizer.clip_norm = 0;

    out->train.epochs = 5;
    out->train.batch_size = 128;
    out->train.seed = 0;
    out->train.threads = 1;

    out->checkpoint.every_steps = 0;
    out->checkpoint.every_seconds = 60;
    out->checkpoint.at_epoch_end = 1;
    out->checkpoint.keep = 3;
    out->checkpoint.keep_epoch_end = 1;

    out->eval.every_epochs = 0;
    out->eval.k = 64;
    out->eval.rows = 0;
}

int vae_spec_parse(vae_spec *out, const json_t *doc, vaed_err *err)
{
    int rc;
    const json_t *ds, *mo, *lo, *sc, *op, *tr, *ck, *ev;
    int sigma_seen;

    vaed_err_clear(err);
    if (!out || !json_is_object(doc))
        return vaed_err_set(err, VAED_EINVAL, NULL, "the job spec must be a JSON object");
    vae_spec_default(out);

    /* Sections are read in the order of docs/spec.md, so when several
     * things are wrong the first one reported is the same every time. */
    if ((rc = check_keys(doc, "", top_keys, err)) ||
        (rc = get_str(doc, "", "name", out->name, sizeof out->name, 1, NULL, err)) ||
        (rc = get_i(doc, "", "priority", &out->priority, NULL, err)) ||
        (rc = get_section(doc, "dataset", &ds, err)) ||
        (rc = get_section(doc, "model", &mo, err)) ||
        (rc = get_section(doc, "loss", &lo, err)) ||
        (rc = get_section(doc, "schedule", &sc, err)) ||
        (rc = get_section(doc, "optimizer", &op, err)) ||
        (rc = get_section(doc, "train", &tr, err)) ||
        (rc = get_section(doc, "checkpoint", &ck, err)) ||
        (rc = get_section(doc, "eval", &ev, err)) ||
        (rc = parse_dataset(&out->dataset, ds, err)) ||
        (rc = parse_model(&out->model, mo, &sigma_seen, err)) ||
        (rc = parse_loss(&out->loss, lo, err)) ||
        (rc = (sc ? sched_parse(&out->schedule, sc, "schedule", 0, err) : 0)) ||
        (rc = parse_optimizer(&out->optimizer, op, err)) ||
        (rc = parse_train(&out->train, tr, err)) ||
        (rc = parse_checkpoint(&out->checkpoint, ck, err)) ||
        (rc = parse_eval(&out->eval, ev, err)))
        return rc;

    /* Cross-section rules: the likelihood must fit the data. */
    const vae_data_spec *d = &out->dataset;
    enum vae_lik lik = out->model.likelihood;
    int text = d->format == VAE_FMT_TEXT;
    if (lik == VAE_LIK_CATEGORICAL && !text)
        return vaed_err_set(err, VAED_EINVAL, "model.likelihood",
                            "\"categorical\" needs a text dataset (dataset.format \"text\")");
    if (text && lik != VAE_LIK_CATEGORICAL)
        return vaed_err_set(err, VAED_EINVAL, "model.likelihood",
                            "must be \"categorical\" for a text dataset (is \"%s\")",
                            lik_names[lik]);
    if (sigma_seen && lik != VAE_LIK_GAUSSIAN)
        return vaed_err_set(err, VAED_EINVAL, "model.sigma",
                            "only applies to model.likelihood \"gaussian\"");
    if (d->binarize != VAE_BIN_NONE && lik != VAE_LIK_BERNOULLI)
        return vaed_err_set(err, VAED_EINVAL, "dataset.binarize",
                            "only applies to model.likelihood \"bernoulli\" (is \"%s\")",
                            lik_names[lik]);
    return 0;
}

int vae_spec_parse_text(vae_spec *out, const char *text, size_t len, vaed_err *err)
{
    json_error_t je;
    vaed_err_clear(err);
    if (!text)
        return vaed_err_set(err, VAED_EINVAL, NULL, "the job spec is empty");
    /* Duplicate keys are rejected: with two "lr"s, which one runs is a guess. */
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return vaed_err_set(err, VAED_EINVAL, NULL, "line %d, column %d: %s", je.line,
                            je.column, je.text);
    int rc = vae_spec_parse(out, doc, err);
    json_decref(doc);
    return rc;
}

int vae_spec_latent(const vae_spec *s)
{
    int total = 0;
    for (int i = 0; i < s->model.n_groups; i++)
        total += s->model.groups[i];
    return total;
}
