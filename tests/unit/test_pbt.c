/* test_pbt.c — PBT's exploit/explore rule (daemon/pbt.h) against a naive version
 * written differently: sort the member indices best first with qsort (ties by index,
 * non-finite values last), then pair the i-th from the bottom with the i-th from the
 * top. Random populations (tied values, NaN, both directions, several quantiles) must
 * get the same donors; then a few small cases by hand and the explore factors; then the
 * "pbt" block's parser (each refusal names its field) and explore on a schedule: the
 * product by the factor, or the donor's value where the product leaves the field's range
 * (the parser's own range, read back through sched_parse). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pbt.h"
#include "t.h"

static const double *g_v;
static int g_max;

static double goodness(double x) { return !isfinite(x) ? -INFINITY : g_max ? x : -x; }
static int best_first(const void *a, const void *b)
{
    long i = *(const long *)a, j = *(const long *)b;
    double x = goodness(g_v[i]), y = goodness(g_v[j]);
    if (x != y)
        return x > y ? -1 : 1;
    return i < j ? -1 : i > j;
}

static size_t naive(const double *v, size_t n, int maximize, double q, long *donor)
{
    long *ord = malloc(n * sizeof *ord);
    for (size_t i = 0; i < n; i++) {
        ord[i] = (long)i;
        donor[i] = -1;
    }
    g_v = v;
    g_max = maximize;
    qsort(ord, n, sizeof *ord, best_first);
    size_t m = (size_t)floor((double)n * q);
    if (n >= 2 && m == 0)
        m = 1;
    for (size_t i = 0; i < m; i++)
        donor[ord[n - 1 - i]] = ord[i];
    free(ord);
    return m;
}

static void test_random(void)
{
    static const double qs[] = {0.1, 0.25, 1.0 / 3, 0.5};
    srand(16);
    for (int it = 0; it < 4000; it++) {
        size_t n = 1 + (size_t)(rand() % 12);
        double v[12];
        for (size_t i = 0; i < n; i++) {
            int r = rand() % 20;
            v[i] = r == 0 ? NAN : r == 1 ? INFINITY : (double)(rand() % 5) - 2.5;
        }
        int maximize = rand() % 2;
        double q = qs[rand() % 4];
        long got[12], want[12];
        size_t mg = pbt_select(v, n, maximize, q, got);
        size_t mw = naive(v, n, maximize, q, want);
        int same = mg == mw && !memcmp(got, want, n * sizeof *got);
        CHECK(same, "it %d n %zu max %d q %g: m %zu want %zu", it, n, maximize, q, mg, mw);
        if (!same)
            return;
    }
}

static void test_small(void)
{
    /* the seed's population of 4, ELBO maximized, quantile 0.25: the worst (index 2)
     * forks from the best (index 1), the others go on */
    double v[] = {-90.0, -80.0, -120.0, -100.0};
    long d[4];
    size_t m = pbt_select(v, 4, 1, 0.25, d);
    CHECK(m == 1 && d[0] == -1 && d[1] == -1 && d[2] == 1 && d[3] == -1,
          "4 members: m %zu donors %ld %ld %ld %ld", m, d[0], d[1], d[2], d[3]);
    /* KL minimized, quantile 0.5: the two worst fork from the two best, in rank order */
    m = pbt_select(v, 4, 0, 0.5, d);
    CHECK(m == 2 && d[2] == -1 && d[3] == -1 && d[1] == 2 && d[0] == 3,
          "minimize: m %zu donors %ld %ld %ld %ld", m, d[0], d[1], d[2], d[3]);
    /* one member: nothing to exploit */
    m = pbt_select(v, 1, 1, 0.5, d);
    CHECK(m == 0 && d[0] == -1, "1 member: m %zu donor %ld", m, d[0]);
    /* all tied: the highest index forks from index 0 */
    double t[] = {1, 1, 1};
    m = pbt_select(t, 3, 1, 0.25, d);
    CHECK(m == 1 && d[0] == -1 && d[1] == -1 && d[2] == 0, "tied: m %zu donor %ld", m, d[2]);
}

static void test_factor(void)
{
    int up = 0, down = 0, stable = 1;
    for (long mbr = 0; mbr < 64; mbr++)
        for (int f = 0; f < 4; f++) {
            double x = pbt_factor(7, 3, mbr, f, 0.8, 1.2);
            CHECK(x == 0.8 || x == 1.2, "factor %g", x);
            up += x == 1.2;
            down += x == 0.8;
            stable &= x == pbt_factor(7, 3, mbr, f, 0.8, 1.2);
        }
    CHECK(stable, "the same (seed, generation, member, field) gives the same factor");
    CHECK(up > 64 && down > 64, "both directions drawn: up %d down %d of 256", up, down);
    int differ = 0;
    for (long mbr = 0; mbr < 64; mbr++)
        differ += pbt_factor(7, 3, mbr, 0, 0.8, 1.2) != pbt_factor(8, 3, mbr, 0, 0.8, 1.2);
    CHECK(differ > 8, "another seed gives other factors (%d of 64 differ)", differ);
}

static json_t *js(const char *text) { return json_loads(text, 0, NULL); }

static void refused(const char *text, int epochs, const char *metric, const char *field)
{
    json_t *p = js(text);
    pbt_cfg c;
    vaed_err e;
    vaed_err_clear(&e);
    int rc = pbt_parse(p, metric, 1, 0, epochs, &c, &e);
    CHECK(rc == VAED_EINVAL && !strcmp(e.field, field), "%s: rc %d field \"%s\" (want %s): %s",
          text, rc, e.field, field, e.msg);
    json_decref(p);
}

static void test_parse(void)
{
    pbt_cfg c;
    json_t *p = js("{\"interval\": 2, \"perturb\": [\"duration\", \"to\"]}");
    CHECK(pbt_parse(p, "kl", 0, 9, 6, &c, NULL) == 0 && c.on && c.interval == 2 &&
              c.quantile == 0.25 && c.down == 0.8 && c.up == 1.2 && c.n_fields == 2 &&
              !strcmp(c.fields[1], "to") && !strcmp(c.metric, "kl") && !c.maximize && c.seed == 9,
          "defaults filled in");
    json_t *back = pbt_json(&c);
    json_t *want = js("{\"interval\": 2, \"perturb\": [\"duration\", \"to\"], "
                      "\"quantile\": 0.25, \"factors\": [0.8, 1.2]}");
    CHECK(json_equal(back, want), "pbt_json writes the defaults");
    json_decref(back);
    json_decref(want);
    json_decref(p);
    CHECK(pbt_parse(NULL, "elbo", 1, 0, 6, &c, NULL) == 0 && !c.on, "no block: off");
    refused("{\"interval\": 6, \"perturb\": [\"to\"]}", 6, "elbo", "pbt.interval");
    refused("{\"interval\": 2.5, \"perturb\": [\"to\"]}", 6, "elbo", "pbt.interval");
    refused("{\"interval\": 2, \"perturb\": \"to\"}", 6, "elbo", "pbt.perturb");
    refused("{\"interval\": 2, \"perturb\": [\"kind\"]}", 6, "elbo", "pbt.perturb[0]");
    refused("{\"interval\": 2, \"perturb\": [\"to\", 3]}", 6, "elbo", "pbt.perturb[1]");
    refused("{\"interval\": 2, \"perturb\": [\"to\"], \"quantile\": 0}", 6, "elbo", "pbt.quantile");
    refused("{\"interval\": 2, \"perturb\": [\"to\"], \"factors\": [1, -1]}", 6, "elbo",
            "pbt.factors");
    refused("{\"interval\": 2, \"perturb\": [\"to\"], \"x\": 1}", 6, "elbo", "pbt");
    refused("[]", 6, "elbo", "pbt");
    refused("{\"interval\": 2, \"perturb\": [\"to\"]}", 6, "bound", "objective.metric");
}

static void test_perturb(void)
{
    pbt_cfg c;
    json_t *p = js("{\"interval\": 1, \"perturb\": [\"duration\", \"to\", \"from\"], "
                   "\"factors\": [0.5, 3]}");
    CHECK(pbt_parse(p, "elbo", 1, 4, 10, &c, NULL) == 0, "parsed");
    json_decref(p);
    sched_spec lin, con, out;
    json_t *l = js("{\"kind\": \"linear\", \"from\": 0.2, \"to\": 0.9, \"duration\": 3}");
    json_t *k = js("{\"kind\": \"constant\", \"value\": 0.5}");
    CHECK(sched_parse(&lin, l, "schedule", 0, NULL) == 0 && sched_parse(&con, k, "schedule", 0, NULL) == 0,
          "schedules parsed");
    vaed_err e;
    CHECK(pbt_check_schedule(&c, &lin, &e) == 0, "a linear schedule has duration, to, from");
    CHECK(pbt_check_schedule(&c, &con, &e) == VAED_EINVAL && !strcmp(e.field, "pbt.perturb[0]"),
          "a constant one has no duration: %s", e.field);
    for (int g = 1; g <= 20; g++)
        for (long m = 0; m < 8; m++) {
            CHECK(pbt_perturb(&c, &lin, g, m, &out, NULL) == 0, "perturbed");
            double fd = pbt_factor(4, g, m, 0, 0.5, 3), ft = pbt_factor(4, g, m, 1, 0.5, 3);
            double ff = pbt_factor(4, g, m, 2, 0.5, 3);
            CHECK(out.kind == SCHED_LINEAR && out.duration == 3 * fd, "duration 3 x %g = %g", fd,
                  out.duration);
            /* to and from are KL weights: a product over the range's top keeps the donor's */
            json_t *probe = js("{\"kind\": \"linear\", \"from\": 0, \"to\": 2.7, \"duration\": 1}");
            int big_ok = sched_parse(&out, probe, "schedule", 0, NULL) == 0;
            json_decref(probe);
            CHECK(pbt_perturb(&c, &lin, g, m, &out, NULL) == 0, "again");
            double want_to = (ft == 3 && !big_ok) ? 0.9 : 0.9 * ft;
            CHECK(out.to == want_to, "to 0.9 x %g -> %g (want %g)", ft, out.to, want_to);
            CHECK(out.from == 0.2 * ff, "from 0.2 x %g = %g", ff, out.from);
        }
    json_decref(l);
    json_decref(k);
}

int main(void)
{
    test_random();
    test_small();
    test_factor();
    test_parse();
    test_perturb();
    return t_done("test_pbt");
}
