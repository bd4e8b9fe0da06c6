/* asha.c — the ASHA rung rule (see asha.h). */
#include "daemon/asha.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int get_whole(const json_t *es, const char *key, int def, int *out, vaed_err *err)
{
    const json_t *v = json_object_get(es, key);
    if (!v) {
        *out = def;
        return 0;
    }
    char f[64];
    snprintf(f, sizeof f, "early_stop.%s", key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
        return vaed_err_set(err, VAED_EINVAL, f, "a whole number of epochs from 0 to 1000000");
    *out = (int)json_integer_value(v);
    return 0;
}

int asha_parse(const json_t *es, const char *metric, int maximize, int base_epochs,
               asha_cfg *cfg, vaed_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!es || json_is_null(es))
        return 0;
    if (!json_is_object(es))
        return vaed_err_set(err, VAED_EINVAL, "early_stop",
                            "{\"method\": \"asha\", \"min_epochs\": r, "
                            "\"reduction_factor\": eta, \"max_epochs\": R}");
    static const char *const keys[] = {"method", "min_epochs", "reduction_factor",
                                       "max_epochs", NULL};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)es, k, v)
    {
        int known = 0;
        for (int i = 0; keys[i]; i++)
            known |= !strcmp(k, keys[i]);
        if (!known)
            return vaed_err_set(err, VAED_EINVAL, "early_stop",
                                "unknown key \"%s\" (known keys: method, min_epochs, "
                                "reduction_factor, max_epochs)",
                                k);
    }
    const json_t *m = json_object_get(es, "method");
    if (!json_is_string(m) || strcmp(json_string_value(m), "asha"))
        return vaed_err_set(err, VAED_EINVAL, "early_stop.method", "\"asha\"");
    if (!json_object_get(es, "min_epochs"))
        return vaed_err_set(err, VAED_EINVAL, "early_stop.min_epochs",
                            "required: the first rung's epoch");
    int rc = get_whole(es, "min_epochs", 1, &cfg->min_epochs, err);
    if (!rc)
        rc = get_whole(es, "reduction_factor", 3, &cfg->eta, err);
    if (!rc)
        rc = get_whole(es, "max_epochs", base_epochs, &cfg->max_epochs, err);
    if (rc)
        return rc;
    if (cfg->min_epochs < 1)
        return vaed_err_set(err, VAED_EINVAL, "early_stop.min_epochs", "at least 1");
    if (cfg->eta < 2)
        return vaed_err_set(err, VAED_EINVAL, "early_stop.reduction_factor", "at least 2");
    if (cfg->min_epochs >= cfg->max_epochs)
        return vaed_err_set(err, VAED_EINVAL, "early_stop.min_epochs",
                            "below max_epochs (%d): a rung is an epoch before the last",
                            cfg->max_epochs);
    /* A rung's value is the test row its epoch end writes; a bound exists only where an
     * evaluation ran, which nothing schedules at the rungs. */
    static const char *const ok[] = {"elbo", "kl", "xent"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(metric, ok[i]))
            cfg->metric = ok[i];
    if (!cfg->metric)
        return vaed_err_set(err, VAED_EINVAL, "early_stop",
                            "needs an objective recorded at every test epoch (elbo, kl or "
                            "xent), not \"%s\"",
                            metric);
    cfg->maximize = maximize;
    cfg->on = 1;
    return 0;
}

json_t *asha_json(const asha_cfg *cfg)
{
    if (!cfg->on)
        return NULL;
    return json_pack("{s:s, s:i, s:i, s:i}", "method", "asha", "min_epochs", cfg->min_epochs,
                     "reduction_factor", cfg->eta, "max_epochs", cfg->max_epochs);
}

int asha_rung(const asha_cfg *cfg, int epoch)
{
    if (!cfg->on || epoch < cfg->min_epochs)
        return -1;
    /* r·eta^k in 64 bits: max_epochs <= 1e6 and eta >= 2, so it ends in ~20 rounds */
    long long e = cfg->min_epochs;
    for (int k = 0; e < cfg->max_epochs; k++, e *= cfg->eta)
        if (e == epoch)
            return k;
    return -1;
}

/* a strictly better than b; a non-finite value is worse than every finite one */
static int better(double a, double b, int maximize)
{
    if (!isfinite(a))
        return 0;
    if (!isfinite(b))
        return 1;
    return maximize ? a > b : a < b;
}

int asha_decide(double v, const double *others, size_t n_others, int maximize, int eta,
                size_t *rank, size_t *keep)
{
    size_t r = 1;
    for (size_t i = 0; i < n_others; i++)
        r += better(others[i], v, maximize);
    size_t k = (n_others + 1) / (size_t)eta;
    if (k < 1)
        k = 1;
    if (rank)
        *rank = r;
    if (keep)
        *keep = k;
    return r <= k;
}
