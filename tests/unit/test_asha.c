/* test_asha.c — ASHA's rung rule (daemon/asha.h) against a naive version written
 * differently: sort the rung's values best first and keep the trial iff its value is at
 * least as good as the k-th best, k = max(1, floor(n / eta)). Random asynchronous rung
 * histories (trials reaching rungs in random orders, tied values, NaN, both directions)
 * must get the same decision at every arrival; then the rungs and the refusals. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/asha.h"
#include "t.h"

static int g_max; /* the direction qsort's comparator sorts by */

/* best first; a non-finite value is worst */
static double goodness(double x) { return !isfinite(x) ? -INFINITY : g_max ? x : -x; }
static int best_first(const void *a, const void *b)
{
    double x = goodness(*(const double *)a), y = goodness(*(const double *)b);
    return x > y ? -1 : x < y;
}

static int naive_keep(double v, const double *others, size_t n_others, int maximize, int eta)
{
    size_t n = n_others + 1;
    double *all = malloc(n * sizeof *all);
    memcpy(all, others, n_others * sizeof *all);
    all[n_others] = v;
    g_max = maximize;
    qsort(all, n, sizeof *all, best_first);
    size_t k = n / (size_t)eta > 1 ? n / (size_t)eta : 1;
    int keep = goodness(v) >= goodness(all[k - 1]);
    free(all);
    return keep;
}

static unsigned long long g_state = 88172645463325252ULL;
static unsigned rnd(unsigned n)
{
    g_state ^= g_state << 13, g_state ^= g_state >> 7, g_state ^= g_state << 17;
    return (unsigned)(g_state % n);
}

/* One sweep's history: T trials, each with a value per rung; at each rung the arrivals
 * come in a random order, and only the trials kept at the previous rung arrive. */
static void test_histories(void)
{
    int mismatches = 0, decisions = 0, stops = 0;
    for (int h = 0; h < 3000; h++) {
        int T = 1 + (int)rnd(40), eta = 2 + (int)rnd(4), rungs = 1 + (int)rnd(4);
        int maximize = (int)rnd(2), ties = (int)rnd(2);
        int *alive = malloc((size_t)T * sizeof *alive), *order = malloc((size_t)T * sizeof *order);
        double *rec = malloc((size_t)T * sizeof *rec);
        for (int i = 0; i < T; i++)
            alive[i] = 1;
        for (int k = 0; k < rungs; k++) {
            int m = 0;
            for (int i = 0; i < T; i++)
                if (alive[i])
                    order[m++] = i;
            for (int i = m - 1; i > 0; i--) { /* shuffle: the asynchronous arrival order */
                int j = (int)rnd((unsigned)i + 1), x = order[i];
                order[i] = order[j], order[j] = x;
            }
            size_t n = 0;
            for (int a = 0; a < m; a++) {
                double v = ties ? (double)rnd(5) : (double)rnd(1000000) / 7.0 - 50000.0;
                if (rnd(50) == 0)
                    v = NAN;
                size_t rank = 0, keep = 0;
                int got = asha_decide(v, rec, n, maximize, eta, &rank, &keep);
                int want = naive_keep(v, rec, n, maximize, eta);
                decisions++;
                stops += !got;
                if (got != want && mismatches++ < 5)
                    fprintf(stderr, "history %d rung %d arrival %d: v=%g n=%zu eta=%d max=%d: "
                                    "asha_decide %d (rank %zu keep %zu), naive %d\n",
                            h, k, a, v, n + 1, eta, maximize, got, rank, keep, want);
                rec[n++] = v;
                alive[order[a]] = got;
            }
        }
        free(alive);
        free(order);
        free(rec);
    }
    CHECK(mismatches == 0, "%d of %d decisions differ from the naive rule", mismatches,
          decisions);
    /* the histories exercised both outcomes */
    CHECK(stops > decisions / 10 && stops < decisions, "%d stops of %d decisions", stops,
          decisions);
}

static void test_small_cases(void)
{
    size_t rank, keep;
    /* the first arrival goes on (max(1, 0)); then only a new best, until n = 2 eta */
    CHECK(asha_decide(-300, NULL, 0, 1, 3, &rank, &keep) == 1 && rank == 1 && keep == 1,
          "first arrival: rank %zu keep %zu", rank, keep);
    double r1[] = {-250, -260, -240};
    CHECK(asha_decide(-251.2, r1, 3, 1, 3, &rank, &keep) == 0 && rank == 3 && keep == 1,
          "4th of 4 values: rank %zu keep %zu", rank, keep);
    CHECK(asha_decide(-240, r1, 3, 1, 3, &rank, &keep) == 1 && rank == 1,
          "a tie with the best shares rank 1: rank %zu", rank);
    CHECK(asha_decide(13.0, r1, 3, 0, 3, &rank, &keep) == 0 && rank == 4,
          "min direction: rank %zu", rank);
    double r2[] = {1, 2, 3, 4, 5};
    CHECK(asha_decide(4.5, r2, 5, 1, 3, &rank, &keep) == 1 && rank == 2 && keep == 2,
          "6 values, eta 3: top 2: rank %zu keep %zu", rank, keep);
}

static void test_rungs(void)
{
    asha_cfg c = {.on = 1, .min_epochs = 2, .eta = 3, .max_epochs = 54};
    int want[55] = {0};
    want[2] = 1, want[6] = 1, want[18] = 1; /* 54 is R: not a rung */
    for (int e = 0; e <= 54; e++) {
        int k = asha_rung(&c, e);
        CHECK((k >= 0) == want[e], "epoch %d: rung %d", e, k);
    }
    CHECK(asha_rung(&c, 18) == 2, "epoch 18 is rung %d, want 2", asha_rung(&c, 18));
    c.on = 0;
    CHECK(asha_rung(&c, 2) == -1, "off: epoch 2 is rung %d", asha_rung(&c, 2));
}

static void test_parse(void)
{
    static const struct {
        const char *es, *metric, *field;
    } bad[] = {
        {"{\"method\": \"hyperband\", \"min_epochs\": 1}", "elbo", "early_stop.method"},
        {"{\"min_epochs\": 1}", "elbo", "early_stop.method"},
        {"{\"method\": \"asha\"}", "elbo", "early_stop.min_epochs"},
        {"{\"method\": \"asha\", \"min_epochs\": 0}", "elbo", "early_stop.min_epochs"},
        {"{\"method\": \"asha\", \"min_epochs\": 1.5}", "elbo", "early_stop.min_epochs"},
        {"{\"method\": \"asha\", \"min_epochs\": 1, \"reduction_factor\": 1}", "elbo",
         "early_stop.reduction_factor"},
        {"{\"method\": \"asha\", \"min_epochs\": 6}", "elbo", "early_stop.min_epochs"},
        {"{\"method\": \"asha\", \"min_epochs\": 2, \"max_epochs\": 2}", "elbo",
         "early_stop.min_epochs"},
        {"{\"method\": \"asha\", \"min_epochs\": 1, \"grace\": 2}", "elbo", "early_stop"},
        {"{\"method\": \"asha\", \"min_epochs\": 1}", "bound", "early_stop"},
        {"[1]", "elbo", "early_stop"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *es = json_loads(bad[i].es, 0, NULL);
        asha_cfg c;
        vaed_err err;
        memset(&err, 0, sizeof err);
        int rc = asha_parse(es, bad[i].metric, 1, 6, &c, &err);
        CHECK(rc == VAED_EINVAL && !strcmp(err.field, bad[i].field) && !c.on,
              "%s (%s): rc %d field \"%s\" (want %s): %s", bad[i].es, bad[i].metric, rc,
              err.field, bad[i].field, err.msg);
        json_decref(es);
    }
    json_t *es = json_loads("{\"method\": \"asha\", \"min_epochs\": 1}", 0, NULL);
    asha_cfg c;
    vaed_err err;
    int rc = asha_parse(es, "kl", 0, 6, &c, &err);
    CHECK(rc == 0 && c.on && c.eta == 3 && c.max_epochs == 6 && c.min_epochs == 1 &&
              !strcmp(c.metric, "kl") && !c.maximize,
          "defaults: rc %d eta %d R %d", rc, c.eta, c.max_epochs);
    json_t *back = asha_json(&c);
    char *t = back ? json_dumps(back, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    const char *want = "{\"max_epochs\":6,\"method\":\"asha\",\"min_epochs\":1,"
                       "\"reduction_factor\":3}";
    CHECK(t && !strcmp(t, want), "normalized: %s, want %s", t ? t : "(null)", want);
    free(t);
    json_decref(back);
    json_decref(es);
    CHECK(asha_parse(NULL, "bound", 1, 6, &c, &err) == 0 && !c.on, "no early_stop: off");
}

int main(void)
{
    test_histories();
    test_small_cases();
    test_rungs();
    test_parse();
    return t_done("test_asha");
}
