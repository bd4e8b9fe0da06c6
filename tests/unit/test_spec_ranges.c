/* test_spec_ranges.c — the range table (vae/range.h) against the job-spec parser and
 * the docs. For every row of the spec's own fields (the schedule's rows are walked by
 * test_sched_ranges.c, and through a job spec here too): the bounds themselves are
 * accepted or refused as the row says and stored exactly, the nearest doubles outside
 * them, ±1.79e308 and -0 are handled (refused naming the field, or stored as +0).
 * Then: every number vae_spec_to_json writes has a row (no field is left unbounded),
 * docs/spec.md prints every row's range, and the numbers JSON cannot carry (1e400)
 * stop at jansson. Run from the repository root (it reads docs/spec.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "vae/range.h"
#include "vae/spec.h"

/* Where each row's number goes: a spec with %s in its place. A row without an entry
 * here fails the coverage check below. Schedule rows name their kind in the spec. */
static const struct where {
    const char *field, *kind, *doc;
} where[] = {
    {"priority", NULL, "{\"priority\": %s}"},
    {"dataset.limit", NULL, "{\"dataset\": {\"limit\": %s}}"},
    {"dataset.validation_fraction", NULL,
     "{\"dataset\": {\"path\": \"x.csv\", \"format\": \"csv\", \"validation_fraction\": %s}}"},
    {"dataset.max_len", NULL, "{\"dataset\": {\"path\": \"w\", \"format\": \"text\", \"max_len\": "
                              "%s}, \"model\": {\"likelihood\": \"categorical\"}}"},
    {"model.encoder[]", NULL, "{\"model\": {\"encoder\": [%s]}}"},
    {"model.latent", NULL, "{\"model\": {\"latent\": %s}}"},
    {"model.decoder[]", NULL, "{\"model\": {\"decoder\": [%s]}}"},
    {"model.sigma", NULL, "{\"model\": {\"likelihood\": \"gaussian\", \"sigma\": %s}}"},
    {"loss.samples", NULL, "{\"loss\": {\"samples\": %s}}"},
    {"loss.free_bits", NULL, "{\"loss\": {\"free_bits\": %s}}"},
    {"optimizer.lr", NULL, "{\"optimizer\": {\"lr\": %s}}"},
    {"optimizer.beta1", NULL, "{\"optimizer\": {\"beta1\": %s}}"},
    {"optimizer.beta2", NULL, "{\"optimizer\": {\"beta2\": %s}}"},
    {"optimizer.eps", NULL, "{\"optimizer\": {\"eps\": %s}}"},
    {"optimizer.weight_decay", NULL, "{\"optimizer\": {\"weight_decay\": %s}}"},
    {"optimizer.clip_norm", NULL, "{\"optimizer\": {\"clip_norm\": %s}}"},
    {"train.epochs", NULL, "{\"train\": {\"epochs\": %s}}"},
    {"train.batch_size", NULL, "{\"train\": {\"batch_size\": %s}}"},
    {"train.seed", NULL, "{\"train\": {\"seed\": %s}}"},
    {"train.threads", NULL, "{\"train\": {\"threads\": %s}}"},
    {"checkpoint.every_steps", NULL, "{\"checkpoint\": {\"every_steps\": %s}}"},
    {"checkpoint.every_seconds", NULL, "{\"checkpoint\": {\"every_seconds\": %s}}"},
    {"checkpoint.keep", NULL, "{\"checkpoint\": {\"keep\": %s}}"},
    {"eval.every_epochs", NULL, "{\"eval\": {\"every_epochs\": %s}}"},
    {"eval.k", NULL, "{\"eval\": {\"k\": %s}}"},
    {"eval.rows", NULL, "{\"eval\": {\"rows\": %s}}"},
    /* a few schedule rows through the job spec (all of them: test_sched_ranges.c) */
    {"schedule.value", "constant", "{\"schedule\": {\"kind\": \"constant\", \"value\": %s}}"},
    {"schedule.from", "logistic", "{\"schedule\": {\"kind\": \"logistic\", \"to\": 1000, "
                                  "\"midpoint\": -30, \"from\": %s}}"},
    {"schedule.points[][1]", "piecewise", "{\"schedule\": {\"kind\": \"piecewise\", "
                                          "\"points\": [[0, %s]]}}"},
};
#define N_WHERE ((int)(sizeof where / sizeof where[0]))

/* "model.encoder[]" -> the path in an error ("model.encoder[0]") and in the JSON
 * written back ("model.encoder.0"). */
static void paths(const char *field, char *err_field, char *json_path, size_t n)
{
    size_t e = 0, j = 0;
    for (const char *p = field; *p && e + 4 < n && j + 4 < n; p++) {
        if (p[0] == '[' && p[1] == ']') {
            memcpy(err_field + e, "[0]", 3), e += 3;
            memcpy(json_path + j, ".0", 2), j += 2;
            p++;
        } else if (p[0] == '[') {
            err_field[e++] = '[';
            json_path[j++] = '.';
        } else if (p[0] == ']') {
            err_field[e++] = ']';
        } else {
            err_field[e++] = *p;
            json_path[j++] = *p;
        }
    }
    err_field[e] = json_path[j] = '\0';
}

/* The value at a dotted path ("model.encoder.0"); arrays are indexed by number. */
static json_t *at(json_t *root, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, "."))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
    return v;
}

/* Parse the row's spec with `num` in place; want_ok says whether it must be accepted.
 * Accepted: the value written back must be `want` to the bit (so +0 for -0).
 * Refused: VAED_EINVAL naming the field, the message starting with it. */
static void one(const struct where *w, const char *num, int want_ok, double want)
{
    char doc[512], ef[128], jp[128];
    snprintf(doc, sizeof doc, w->doc, num);
    paths(w->field, ef, jp, sizeof ef);
    vae_spec s;
    vaed_err err;
    vaed_err_clear(&err);
    int rc = vae_spec_parse_text(&s, doc, strlen(doc), &err);
    if (!want_ok) {
        CHECK(rc == VAED_EINVAL && strcmp(err.field, ef) == 0 &&
                  strncmp(err.msg, ef, strlen(ef)) == 0,
              "%s = %s: want refused naming %s; got rc %d field '%s' msg '%s'", w->field, num,
              ef, rc, err.field, err.msg);
        return;
    }
    CHECK(rc == 0, "%s = %s: want accepted; got '%s'", w->field, num, err.msg);
    if (rc)
        return;
    json_t *j = vae_spec_to_json(&s);
    json_t *v = j ? at(j, jp) : NULL;
    double got = v ? json_number_value(v) : NAN;
    CHECK(v && json_is_number(v) && memcmp(&got, &want, sizeof got) == 0,
          "%s = %s: written back as %.17g (sign %d), want %.17g", w->field, num, got,
          signbit(got) != 0, want);
    json_decref(j);
}

static void test_rows(void)
{
    char num[64];
    for (int i = 0; i < N_WHERE; i++) {
        const struct where *w = &where[i];
        const vae_range *r = vae_range_find(w->field, w->kind);
        CHECK(r != NULL, "%s (%s): no row in vae_ranges", w->field, w->kind ? w->kind : "-");
        if (!r)
            continue;
        if (r->integer) {
            /* integers as JSON integers: the bounds, and one past each */
            snprintf(num, sizeof num, "%.0f", r->min);
            one(w, num, 1, r->min);
            snprintf(num, sizeof num, "%.0f", r->max);
            one(w, num, 1, r->max);
            snprintf(num, sizeof num, "%.0f", r->min - 1);
            one(w, num, 0, 0);
            /* 2^53 + 1 is not a double: print it from the integer */
            snprintf(num, sizeof num, "%lld", (long long)r->max + 1);
            one(w, num, 0, 0);
        } else {
            snprintf(num, sizeof num, "%.17g", r->min);
            one(w, num, !r->min_open, r->min);
            snprintf(num, sizeof num, "%.17g", r->max);
            one(w, num, !r->max_open, r->max);
            snprintf(num, sizeof num, "%.17g", nextafter(r->min, -INFINITY));
            one(w, num, 0, 0);
            snprintf(num, sizeof num, "%.17g", nextafter(r->max, INFINITY));
            one(w, num, 0, 0);
            if (r->min_open) { /* the nearest double inside an open bound is accepted */
                double in = nextafter(r->min, INFINITY);
                snprintf(num, sizeof num, "%.17g", in);
                one(w, num, 1, in);
            }
            if (r->max_open) {
                double in = nextafter(r->max, -INFINITY);
                snprintf(num, sizeof num, "%.17g", in);
                one(w, num, 1, in);
            }
        }
        /* the numbers: the largest doubles JSON can carry, either sign */
        one(w, "1.79e308", 0, 0);
        one(w, "-1.79e308", 0, 0);
        /* -0 is stored as +0 where 0 is allowed, refused where it is not */
        one(w, "-0.0", vae_range_holds(r, 0.0), 0.0);
    }
    /* jansson reads -1e-400 as -0 (underflow is not an error): stored as +0 too */
    one(&where[9], "-1e-400", 1, 0.0); /* loss.free_bits */
    CHECK(strcmp(where[9].field, "loss.free_bits") == 0, "where[9] is %s", where[9].field);
}

/* Numbers past a double's range never reach the parser: jansson refuses them as a
 * syntax error (field "", "line 1, column ..."). */
static void test_overflow_is_syntax(void)
{
    static const char *docs[] = {"{\"optimizer\": {\"lr\": 1e400}}",
                                 "{\"schedule\": {\"kind\": \"constant\", \"value\": -1e400}}",
                                 "{\"optimizer\": {\"lr\": 1.8e308}}"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        vae_spec s;
        vaed_err err;
        int rc = vae_spec_parse_text(&s, docs[i], strlen(docs[i]), &err);
        CHECK(rc == VAED_EINVAL && err.field[0] == '\0' && strstr(err.msg, "line 1, column"),
              "%s: rc %d field '%s' msg '%s'", docs[i], rc, err.field, err.msg);
    }
}

/* vae_spec_check_lr (the route PUT /optimizer) is optimizer.lr's row. */
static void test_check_lr(void)
{
    static const struct {
        double lr;
        int ok;
    } c[] = {{1e-3, 1}, {10, 1}, {1e-300, 1}, {0, 0}, {-0.0, 0}, {-1, 0},
             {10.000000000000002, 0}, {1e300, 0}, {1.79e308, 0}, {NAN, 0}, {INFINITY, 0}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        vaed_err err;
        vaed_err_clear(&err);
        int rc = vae_spec_check_lr(c[i].lr, "lr", &err);
        CHECK(c[i].ok ? rc == 0 : rc == VAED_EINVAL && strcmp(err.field, "lr") == 0 &&
                                      strncmp(err.msg, "lr: must be ", 12) == 0,
              "lr %g: rc %d field '%s' msg '%s'", c[i].lr, rc, err.field, err.msg);
    }
}

/* Every number vae_spec_to_json writes, for specs that between them use every
 * section's numeric fields, has a row: no field is left without a range. */
static void walk(json_t *v, const char *field, const char *kind, int *n)
{
    char sub[160];
    if (json_is_object(v)) {
        const char *k = json_string_value(json_object_get(v, "kind"));
        const char *key;
        json_t *x;
        json_object_foreach(v, key, x) {
            snprintf(sub, sizeof sub, "%s%s%s", field, field[0] ? "." : "", key);
            walk(x, sub, k ? k : kind, n);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            /* points: [t, beta] pairs are [][0] and [][1]; lists of numbers are [] */
            if (strstr(field, "[]") && !json_is_array(x))
                snprintf(sub, sizeof sub, "%s[%zu]", field, i);
            else if (strcmp(field, "model.latent") == 0)
                snprintf(sub, sizeof sub, "%s", field);
            else
                snprintf(sub, sizeof sub, "%s[]", field);
            walk(x, sub, kind, n);
        }
    } else if (json_is_number(v)) {
        (*n)++;
        CHECK(vae_range_find(field, kind) != NULL, "%s (%s kind) has no range row", field,
              kind ? kind : "no");
    }
}

static void test_every_number_has_a_row(void)
{
    static const char *specs[] = {
        "{}",
        "{\"dataset\": {\"path\": \"x.csv\", \"format\": \"csv\", \"validation_fraction\": 0.1},"
        " \"model\": {\"likelihood\": \"gaussian\", \"latent\": [3, 4]}}",
        "{\"dataset\": {\"path\": \"w\", \"format\": \"text\"}, \"model\": {\"likelihood\": "
        "\"categorical\"}}",
        "{\"schedule\": {\"kind\": \"linear\"}}",
        "{\"schedule\": {\"kind\": \"logistic\"}}",
        "{\"schedule\": {\"kind\": \"cyclical\", \"period\": 3}}",
        "{\"schedule\": {\"kind\": \"cyclical\", \"cycles\": 3, \"duration\": 9}}",
        "{\"schedule\": {\"kind\": \"piecewise\", \"points\": [[0, 0], [1, 1]]}}",
        "{\"schedule\": {\"kind\": \"controller\", \"target_kl\": 5}}",
        "{\"schedule\": {\"kind\": \"capacity\"}}",
    };
    int n = 0;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        vae_spec s;
        vaed_err err;
        int rc = vae_spec_parse_text(&s, specs[i], strlen(specs[i]), &err);
        CHECK(rc == 0, "%s: %s", specs[i], err.msg);
        json_t *j = rc ? NULL : vae_spec_to_json(&s);
        if (j)
            walk(j, "", NULL, &n);
        json_decref(j);
    }
    CHECK(n > 100, "only %d numbers walked", n);
    /* and every spec row is reached by this file's table (schedule rows: the other file) */
    for (int i = 0; i < vae_n_ranges; i++) {
        const vae_range *r = &vae_ranges[i];
        if (strncmp(r->field, "schedule.", 9) == 0)
            continue;
        int found = 0;
        for (int k = 0; k < N_WHERE && !found; k++)
            found = vae_range_find(where[k].field, where[k].kind) == r;
        CHECK(found, "row %s is not tested here (add it to where[])", r->field);
    }
}

/* docs/spec.md prints every row: a line with `field`, the range as vae_range_format
 * writes it, and the kinds of a kind-specific row. */
static void test_docs(void)
{
    FILE *f = fopen("docs/spec.md", "r");
    CHECK(f != NULL, "cannot read docs/spec.md (run from the repository root)");
    if (!f)
        return;
    static char lines[2000][400];
    int nl = 0;
    while (nl < 2000 && fgets(lines[nl], sizeof lines[nl], f))
        nl++;
    fclose(f);
    for (int i = 0; i < vae_n_ranges; i++) {
        const vae_range *r = &vae_ranges[i];
        char name[80], range[80];
        snprintf(name, sizeof name, "`%s`", r->field);
        vae_range_format(r, range, sizeof range);
        int found = 0;
        for (int l = 0; l < nl && !found; l++) {
            found = strstr(lines[l], name) && strstr(lines[l], range) &&
                    strstr(lines[l], r->integer ? "integer" : "number");
            if (found && r->kinds) {
                char kinds[64];
                snprintf(kinds, sizeof kinds, "%s", r->kinds);
                for (char *k = strtok(kinds, " "); k && found; k = strtok(NULL, " "))
                    found = strstr(lines[l], k) != NULL;
            }
        }
        CHECK(found, "docs/spec.md has no line with %s, %s and its type%s%s", name, range,
              r->kinds ? " and kinds " : "", r->kinds ? r->kinds : "");
    }
}

/* The readable printing the docs and messages use. */
static void test_format(void)
{
    static const struct {
        double x;
        const char *want;
    } c[] = {{0.9, "0.9"}, {1e-8, "1e-8"}, {1e15, "1e15"}, {-1e15, "-1e15"}, {100000, "1e5"}, {99999, "99999"},
             {0.001, "0.001"}, {9007199254740992.0, "9007199254740992"}, {1e9, "1e9"},
             {0.1 + 0.2, "0.30000000000000004"}, {65536, "65536"}, {1e-30, "1e-30"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char b[40];
        vae_range_num(c[i].x, b, sizeof b);
        CHECK(strcmp(b, c[i].want) == 0, "vae_range_num(%.17g) = '%s', want '%s'", c[i].x, b,
              c[i].want);
    }
    char b[40];
    vae_range_format(vae_range_find("optimizer.lr", NULL), b, sizeof b);
    CHECK(strcmp(b, "(0, 10]") == 0, "lr range '%s'", b);
}

int main(void)
{
    test_rows();
    test_overflow_is_syntax();
    test_check_lr();
    test_every_number_has_a_row();
    test_docs();
    test_format();
    return t_done("test_spec_ranges");
}
