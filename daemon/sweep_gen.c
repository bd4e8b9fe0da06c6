/* sweep_gen.c — a sweep's points (see sweep_gen.h). */
#include "daemon/sweep_gen.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vae/rng.h"

/* Check one domain; OUT *is_range. */
static int check_domain(const char *path, const json_t *d, int *is_range, vaed_err *err)
{
    char f[160];
    snprintf(f, sizeof f, "space.%s", path);
    if (json_is_array(d)) {
        *is_range = 0;
        if (json_array_size(d) == 0)
            return vaed_err_set(err, VAED_EINVAL, f, "an empty list of values");
        return 0;
    }
    if (!json_is_object(d))
        return vaed_err_set(err, VAED_EINVAL, f,
                            "%s: a list of values or a range {\"min\", \"max\", \"log\", "
                            "\"int\"}",
                            f);
    *is_range = 1;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)d, k, v)
    {
        if (strcmp(k, "min") && strcmp(k, "max") && strcmp(k, "log") && strcmp(k, "int"))
            return vaed_err_set(err, VAED_EINVAL, f,
                                "unknown key \"%s\" (known keys: min, max, log, int)", k);
        if ((!strcmp(k, "log") || !strcmp(k, "int")) && !json_is_boolean(v))
            return vaed_err_set(err, VAED_EINVAL, f, "%s: true or false", k);
    }
    const json_t *lo = json_object_get(d, "min"), *hi = json_object_get(d, "max");
    if (!json_is_number(lo) || !json_is_number(hi))
        return vaed_err_set(err, VAED_EINVAL, f, "a range needs numbers min and max");
    double a = json_number_value(lo), b = json_number_value(hi);
    if (!(a <= b))
        return vaed_err_set(err, VAED_EINVAL, f, "min (%g) above max (%g)", a, b);
    if (json_is_true(json_object_get(d, "log")) && !(a > 0))
        return vaed_err_set(err, VAED_EINVAL, f, "a log range needs min > 0");
    if (json_is_true(json_object_get(d, "int")) && ceil(a) > floor(b))
        return vaed_err_set(err, VAED_EINVAL, f, "no whole number between %g and %g",
                            a, b);
    return 0;
}

static int grid_range(const char *path, vaed_err *err)
{
    char f[160];
    snprintf(f, sizeof f, "space.%s", path);
    return vaed_err_set(err, VAED_EINVAL, f,
                        "a grid takes lists of values, not a range (use \"method\": "
                        "\"random\" for ranges)");
}

static json_t *draw(const json_t *d, vae_rng *r)
{
    if (json_is_array(d))
        return json_deep_copy(json_array_get(d, vae_rng_below(r, json_array_size(d))));
    double a = json_number_value(json_object_get(d, "min"));
    double b = json_number_value(json_object_get(d, "max"));
    int lg = json_is_true(json_object_get(d, "log")), in = json_is_true(json_object_get(d, "int"));
    if (in && !lg) {
        double lo = ceil(a), hi = floor(b);
        return json_integer((json_int_t)lo + (json_int_t)vae_rng_below(r, (uint64_t)(hi - lo) + 1));
    }
    double u = vae_rng_uniform(r);
    double x = lg ? exp(log(a) + u * (log(b) - log(a))) : a + u * (b - a);
    if (x > b) /* rounding of exp/log at the top edge */
        x = b;
    if (in) {
        double k = round(x);
        if (k < ceil(a))
            k = ceil(a);
        if (k > floor(b))
            k = floor(b);
        return json_integer((json_int_t)k);
    }
    return json_real(x);
}

int sweep_points(const json_t *space, enum sweep_method method, uint64_t seed,
                 int64_t max_trials, json_t **points, vaed_err *err)
{
    *points = NULL;
    if (!json_is_object(space) || json_object_size(space) == 0)
        return vaed_err_set(err, VAED_EINVAL, "space",
                            "an object {\"<spec path>\": <domain>, ...} with at least "
                            "one path");
    if (max_trials < 1 || max_trials > SWEEP_MAX_TRIALS)
        return vaed_err_set(err, VAED_EINVAL, "max_trials", "from 1 to %d",
                            SWEEP_MAX_TRIALS);
    const char *path;
    json_t *d;
    int64_t total = 1;
    json_object_foreach((json_t *)space, path, d)
    {
        int is_range = 0;
        int rc = check_domain(path, d, &is_range, err);
        if (rc)
            return rc;
        if (method == SWEEP_GRID && is_range)
            return grid_range(path, err);
        if (method == SWEEP_GRID) {
            total *= (int64_t)json_array_size(d);
            if (total > max_trials)
                return vaed_err_set(err, VAED_EINVAL, "max_trials",
                                    "the grid has more than %lld points (the "
                                    "product of the lists' lengths)",
                                    (long long)max_trials);
        }
    }
    json_t *out = json_array();
    int64_t n = method == SWEEP_GRID ? total : max_trials;
    for (int64_t i = 0; out && i < n; i++) {
        json_t *pt = json_object();
        vae_rng r;
        vae_rng_seed(&r, seed, (uint64_t)i);
        /* grid: i in mixed radix, the last path the lowest digit */
        int64_t rest = i, stride = total;
        json_object_foreach((json_t *)space, path, d)
        {
            json_t *v;
            if (method == SWEEP_GRID) {
                int64_t len = (int64_t)json_array_size(d);
                stride /= len;
                v = json_deep_copy(json_array_get(d, (size_t)(rest / stride)));
                rest %= stride;
            } else {
                v = draw(d, &r);
            }
            if (!pt || !v || json_object_set_new(pt, path, v)) {
                json_decref(pt);
                pt = NULL;
                break;
            }
        }
        if (!pt || json_array_append_new(out, pt)) {
            json_decref(out);
            out = NULL;
        }
    }
    if (!out)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory drawing the sweep's points");
    *points = out;
    return 0;
}
