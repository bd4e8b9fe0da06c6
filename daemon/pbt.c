/* pbt.c — the exploit/explore rule of population-based training (pbt.h). */
#include "daemon/pbt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* higher is better; a value that is not finite (a diverged member) is the worst */
static double goodness(double x, int maximize)
{
    return !isfinite(x) ? -INFINITY : maximize ? x : -x;
}

/* 1 if member a ranks above member b: strictly better, or equal with a lower index. */
static int above(const double *v, size_t a, size_t b, int maximize)
{
    double x = goodness(v[a], maximize), y = goodness(v[b], maximize);
    if (x != y)
        return x > y;
    return a < b;
}

size_t pbt_select(const double *v, size_t n, int maximize, double quantile, long *donor)
{
    size_t m = (size_t)((double)n * quantile);
    if (m < 1 && n >= 2)
        m = 1;
    if (m > n / 2)
        m = n / 2;
    for (size_t i = 0; i < n; i++)
        donor[i] = -1;
    /* a member's rank from the top is the number of members above it; n is a
     * population (tens at most), so the quadratic count is the clearest sort */
    for (size_t i = 0; i < n; i++) {
        size_t r = 0;
        for (size_t j = 0; j < n; j++)
            r += j != i && above(v, j, i, maximize);
        size_t from_bottom = n - 1 - r;
        if (from_bottom >= m)
            continue;
        /* the member whose rank from the top is from_bottom */
        for (size_t j = 0; j < n; j++) {
            size_t rj = 0;
            for (size_t k = 0; k < n; k++)
                rj += k != j && above(v, k, j, maximize);
            if (rj == from_bottom)
                donor[i] = (long)j;
        }
    }
    return m;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

double pbt_factor(uint64_t seed, int generation, long member, int field, double down,
                  double up)
{
    uint64_t h = splitmix64(seed);
    h = splitmix64(h ^ (uint64_t)(unsigned)generation);
    h = splitmix64(h ^ (uint64_t)member);
    h = splitmix64(h ^ (uint64_t)(unsigned)field);
    return (h >> 63) ? up : down;
}

/* ---- the sweep's "pbt" block -------------------------------------------------------- */

static int num(const json_t *p, const char *key, double lo, double hi, double def, int open_lo,
               double *out, vaed_err *err)
{
    const json_t *v = json_object_get(p, key);
    char f[32];
    snprintf(f, sizeof f, "pbt.%s", key);
    if (!v) {
        *out = def;
        return 0;
    }
    double x = json_number_value(v);
    if (!json_is_number(v) || !isfinite(x) || x > hi || (open_lo ? x <= lo : x < lo))
        return vaed_err_set(err, VAED_EINVAL, f, "a number in %s%g, %g]", open_lo ? "(" : "[",
                            lo, hi);
    *out = x;
    return 0;
}

int pbt_parse(const json_t *p, const char *metric, int maximize, uint64_t seed, int epochs,
              pbt_cfg *cfg, vaed_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!p)
        return 0;
    if (!json_is_object(p))
        return vaed_err_set(err, VAED_EINVAL, "pbt",
                            "{\"interval\": EPOCHS, \"perturb\": [\"duration\", ...], "
                            "\"quantile\": 0.25, \"factors\": [0.8, 1.2]}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)p, k, v)
    {
        if (strcmp(k, "interval") && strcmp(k, "perturb") && strcmp(k, "quantile") &&
            strcmp(k, "factors"))
            return vaed_err_set(err, VAED_EINVAL, "pbt",
                                "unknown key \"%s\" (known keys: interval, perturb, quantile, "
                                "factors)",
                                k);
    }
    if (!strcmp(metric, "bound"))
        return vaed_err_set(err, VAED_EINVAL, "objective.metric",
                            "PBT ranks its members at generation boundaries, where no "
                            "evaluation runs: use elbo, kl or xent");
    const json_t *iv = json_object_get(p, "interval");
    if (!json_is_integer(iv) || json_integer_value(iv) < 1 ||
        json_integer_value(iv) >= epochs)
        return vaed_err_set(err, VAED_EINVAL, "pbt.interval",
                            "epochs between generations: a whole number from 1 to %d (the "
                            "base's epochs less one)",
                            epochs - 1);
    cfg->interval = (int)json_integer_value(iv);
    int rc = num(p, "quantile", 0.0, 0.5, 0.25, 1, &cfg->quantile, err);
    if (rc)
        return rc;
    const json_t *fa = json_object_get(p, "factors");
    cfg->down = 0.8;
    cfg->up = 1.2;
    if (fa) {
        const json_t *a = json_array_get(fa, 0), *b = json_array_get(fa, 1);
        if (!json_is_array(fa) || json_array_size(fa) != 2 || !json_is_number(a) ||
            !json_is_number(b) || !(json_number_value(a) > 0) || !(json_number_value(b) > 0) ||
            !isfinite(json_number_value(a)) || !isfinite(json_number_value(b)))
            return vaed_err_set(err, VAED_EINVAL, "pbt.factors",
                                "two positive numbers [down, up], as [0.8, 1.2]");
        cfg->down = json_number_value(a);
        cfg->up = json_number_value(b);
    }
    const json_t *pe = json_object_get(p, "perturb");
    if (!json_is_array(pe) || json_array_size(pe) < 1 || json_array_size(pe) > PBT_MAX_FIELDS)
        return vaed_err_set(err, VAED_EINVAL, "pbt.perturb",
                            "a list of 1 to %d of the schedule's numbers, as [\"duration\"]",
                            PBT_MAX_FIELDS);
    for (size_t i = 0; i < json_array_size(pe); i++) {
        const json_t *f = json_array_get(pe, i);
        char fld[48];
        snprintf(fld, sizeof fld, "pbt.perturb[%zu]", i);
        if (!json_is_string(f) || json_string_length(f) == 0 ||
            json_string_length(f) >= sizeof cfg->fields[0] || !strcmp(json_string_value(f), "kind"))
            return vaed_err_set(err, VAED_EINVAL, fld, "the name of one of the schedule's numbers");
        for (int j = 0; j < cfg->n_fields; j++)
            if (!strcmp(cfg->fields[j], json_string_value(f)))
                return vaed_err_set(err, VAED_EINVAL, fld, "\"%s\" is named twice",
                                    json_string_value(f));
        snprintf(cfg->fields[cfg->n_fields++], sizeof cfg->fields[0], "%s", json_string_value(f));
    }
    cfg->metric = !strcmp(metric, "kl") ? "kl" : !strcmp(metric, "xent") ? "xent" : "elbo";
    cfg->maximize = maximize;
    cfg->seed = seed;
    cfg->on = 1;
    return 0;
}

json_t *pbt_json(const pbt_cfg *cfg)
{
    if (!cfg->on)
        return NULL;
    json_t *f = json_array();
    for (int i = 0; f && i < cfg->n_fields; i++)
        json_array_append_new(f, json_string(cfg->fields[i]));
    return json_pack("{s:i, s:o, s:f, s:[f, f]}", "interval", cfg->interval, "perturb", f,
                     "quantile", cfg->quantile, "factors", cfg->down, cfg->up);
}

int pbt_check_schedule(const pbt_cfg *cfg, const sched_spec *s, vaed_err *err)
{
    json_t *j = sched_to_json(s);
    if (!j)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    int rc = 0;
    for (int i = 0; !rc && i < cfg->n_fields; i++) {
        if (!json_is_number(json_object_get(j, cfg->fields[i]))) {
            char fld[48];
            snprintf(fld, sizeof fld, "pbt.perturb[%d]", i);
            rc = vaed_err_set(err, VAED_EINVAL, fld,
                              "\"%s\" is not a number of a %s schedule (a trial's)",
                              cfg->fields[i], sched_kind_name(s->kind));
        }
    }
    json_decref(j);
    return rc;
}

int pbt_perturb(const pbt_cfg *cfg, const sched_spec *donor, int generation, long member,
                sched_spec *out, vaed_err *err)
{
    *out = *donor;
    json_t *j = sched_to_json(donor);
    if (!j)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    for (int i = 0; i < cfg->n_fields; i++) {
        json_t *v = json_object_get(j, cfg->fields[i]);
        if (!json_is_number(v))
            continue;
        double was = json_number_value(v);
        double f = pbt_factor(cfg->seed, generation, member, i, cfg->down, cfg->up);
        json_object_set_new(j, cfg->fields[i], json_real(was * f));
        sched_spec t;
        if (sched_parse(&t, j, "schedule", 0, NULL) == 0)
            *out = t;
        else /* outside its range: the donor's value stays */
            json_object_set_new(j, cfg->fields[i], json_real(was));
    }
    json_decref(j);
    return 0;
}
