/* test_store_util.h — what the test_store programs share: includes, fixtures and helpers. Each
 * program uses a part of them, hence the pragmas. */
#ifndef VAED_TESTS_TEST_STORE_UTIL_H
#define VAED_TESTS_TEST_STORE_UTIL_H

#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/unit/t.h"

static char dir[256];

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The value of column k of a metric row at step, for job-specific salt. */
static double mval(int64_t step, int k, double salt)
{
    return salt + (double)step * 0.001 * (k + 1) + 1.0 / (double)(k + 2 + (step % 7));
}

static double gval(int64_t step, int g)
{
    return (double)(step % 1000) * 0.5 + g;
}

static store_metric mrow(int64_t step, double salt)
{
    store_metric m;
    memset(&m, 0, sizeof m);
    m.step = step;
    m.epoch = mval(step, 0, salt);
    m.beta = mval(step, 1, salt);
    m.loss = mval(step, 2, salt);
    m.xent = mval(step, 3, salt);
    m.kl = mval(step, 4, salt);
    m.elbo = mval(step, 5, salt);
    m.lr = mval(step, 6, salt);
    m.grad_norm = mval(step, 7, salt);
    m.capacity = mval(step, 8, salt);
    m.time = mval(step, 9, salt);
    return m;
}

/* Append steps [from, to) of job with salt, chunk rows per call; groups (0..3) KL
 * groups per row on odd steps. Returns the first error. */
static int append_range(store *st, int64_t job, int64_t from, int64_t to, double salt,
                        int chunk, int groups)
{
    store_metric rows[256];
    double g[256][4];
    vaed_err e;
    for (int64_t s = from; s < to;) {
        int n = 0;
        for (; n < chunk && s < to; n++, s++) {
            rows[n] = mrow(s, salt);
            if (groups && (s & 1)) {
                for (int k = 0; k < groups; k++)
                    g[n][k] = gval(s, k);
                rows[n].n_groups = groups;
                rows[n].kl_groups = g[n];
            }
        }
        int rc = store_metrics_append(st, job, rows, (size_t)n, &e);
        if (rc) {
            if (rc != VAED_ETOOBIG)   /* the queue-cap test expects that one */
                fprintf(stderr, "append: %s\n", e.msg);
            return rc;
        }
    }
    return 0;
}

/* Check series s holds steps [from, to) of salt, every column; returns mismatches. */
static long check_series(const store_series *s, int64_t from, int64_t to, double salt,
                         unsigned mask)
{
    long bad = 0;
    if ((int64_t)s->n != to - from) {
        fprintf(stderr, "series has %zu rows, want %lld\n", s->n, (long long)(to - from));
        return 1 + (long)s->n;
    }
    for (size_t i = 0; i < s->n; i++) {
        int64_t step = from + (int64_t)i;
        if (s->step[i] != step) {
            if (bad++ < 5)
                fprintf(stderr, "row %zu: step %lld want %lld\n", i, (long long)s->step[i],
                        (long long)step);
            continue;
        }
        for (int k = 0; k < STORE_M_NCOLS; k++) {
            if (!(mask & STORE_MCOL(k))) {
                if (s->col[k] && bad++ < 5)
                    fprintf(stderr, "column %s returned but not asked\n", store_mcol_name(k));
                continue;
            }
            if (s->col[k][i] != mval(step, k, salt) && bad++ < 5)
                fprintf(stderr, "step %lld %s: %.17g want %.17g\n", (long long)step,
                        store_mcol_name(k), s->col[k][i], mval(step, k, salt));
        }
    }
    return bad;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        fprintf(stderr, "raw open %s: %s\n", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* First column of the first row of sql as an integer; -999 on error. */
static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    int64_t v = -999;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    else
        fprintf(stderr, "raw %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return v;
}

static void raw_text(sqlite3 *db, const char *sql, char *buf, size_t n)
{
    sqlite3_stmt *s = NULL;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        snprintf(buf, n, "%s", (const char *)sqlite3_column_text(s, 0));
    else
        fprintf(stderr, "raw %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(s);
}

static int64_t new_job(store *st, const char *name, int prio)
{
    store_job_new nj = {.name = name, .spec = "{\"model\":{\"latent\":2}}", .priority = prio};
    int64_t id = 0;
    vaed_err e;
    int rc = store_job_insert(st, &nj, &id, &e);
    CHECK(rc == 0 && id > 0, "insert %s: rc %d %s", name, rc, e.msg);
    return id;
}

static store *open_or_die(const char *name, const store_opts *o)
{
    char p[512];
    path_of(p, sizeof p, name);
    store *st = NULL;
    vaed_err e;
    int rc = store_open(&st, p, o, &e);
    CHECK(rc == 0 && st, "open %s: %d %s", p, rc, e.msg);
    return st;
}

static void close_ok(store *st)
{
    vaed_err e;
    int rc = store_close(st, &e);
    CHECK(rc == 0, "close: %d %s", rc, e.msg);
}

/* ---- schema ------------------------------------------------------------------------ */




/* ---- jobs ------------------------------------------------------------------------ */


/* ---- metrics ---------------------------------------------------------------------- */


static void bench_downsample(store *st, int64_t job, int64_t N);


/* ---- downsampling from the min/max pyramid ----------------------------------------- */

/* The rows the test wrote, as the database should hold them: step ascending. */
struct orow {
    int64_t step;
    double v[STORE_M_NCOLS];
    double g0;                  /* kl_groups[0]; every row has 2 groups */
};

static uint64_t lcg_state = 88172645463325252ULL;
static uint64_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return lcg_state >> 33;
}

#define NSPIKE 24

/* Steps: dense 0..2999, then every 97 steps to ~580000, then a gap, then a dense tail
 * at 700000: every level of the pyramid, empty buckets and unaligned edges occur.
 * Columns: smooth curves with noise, lr constant and beta saturating (ties), and
 * NSPIKE planted spikes per sign, spread evenly over the steps, in loss and kl. */
static size_t ds_rows_make(struct orow *r, int64_t *spike_hi, int64_t *spike_lo)
{
    size_t n = 0;
    for (int64_t s = 0; s < 3000; s++)
        r[n++].step = s;
    for (int64_t s = 3000; s < 580000; s += 97)
        r[n++].step = s;
    for (int64_t s = 700000; s < 701500; s++)
        r[n++].step = s;
    for (size_t i = 0; i < n; i++) {
        double x = (double)r[i].step;
        for (int k = 0; k < STORE_M_NCOLS; k++)
            r[i].v[k] = sin(x * 1e-4 * (k + 1)) + (double)(lcg() % 1000) * 1e-4;
        r[i].v[STORE_M_LR] = 0.001;
        r[i].v[STORE_M_BETA] = x < 1000 ? x / 1000 : 1.0;
        r[i].v[STORE_M_EPOCH] = x / 600.0;
        r[i].v[STORE_M_TIME] = 1.7e9 + x * 0.01;
        r[i].g0 = (double)(lcg() % 100);
    }
    /* Spikes 24k steps apart in the sparse stretch: more than a bucket's width in every
     * whole-range downsample ds_spikes asks for, so no bucket holds two. */
    for (int i = 0; i < NSPIKE; i++) {
        int64_t target = 3000 + (int64_t)577000 * (2 * i + 1) / (2 * NSPIKE);
        size_t a = 0;
        while (r[a].step < target)
            a++;
        size_t b = a + 3;
        r[a].v[STORE_M_LOSS] = 50.0 + i;
        r[b].v[STORE_M_KL] = -50.0 - i;
        spike_hi[i] = r[a].step;
        spike_lo[i] = r[b].step;
    }
    return n;
}

static store_metric orow_metric(const struct orow *o, double *g)
{
    store_metric m;
    memset(&m, 0, sizeof m);
    m.step = o->step;
    double *f[STORE_M_NCOLS] = {&m.epoch, &m.beta, &m.loss, &m.xent, &m.kl,
                                &m.elbo, &m.lr, &m.grad_norm, &m.capacity, &m.time};
    for (int k = 0; k < STORE_M_NCOLS; k++)
        *f[k] = o->v[k];
    g[0] = o->g0;
    g[1] = 1.0;
    m.n_groups = 2;
    m.kl_groups = g;
    return m;
}

static int64_t floor_div(int64_t a, int64_t w) { return a >= 0 ? a / w : -((-a + w - 1) / w); }
static int64_t ceil_div(int64_t a, int64_t w) { return -floor_div(-a, w); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_step(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int plan_seen[STORE_SUM_LEVELS + 1];   /* raw, level 0, 1, 2: sweep coverage */

/* The plan documented for store_metrics_downsample, from the raw rows, naively.
 * OUT pick (room for n + 2): the steps expected, ascending; *total. */
static size_t oracle_ds(const struct orow *r, size_t n, int64_t since, int64_t until,
                        unsigned mask, size_t mp, int64_t *pick, size_t *total)
{
    size_t a = 0, b = n, np = 0;
    while (a < n && since >= 0 && r[a].step <= since)
        a++;
    while (b > a && until >= 0 && r[b - 1].step > until)
        b--;
    size_t m = b - a;
    *total = m;
    if (m <= mp) {
        for (size_t i = a; i < b; i++)
            pick[np++] = r[i].step;
        return np;
    }
    int nf = 0;
    for (int k = 0; k < STORE_M_NCOLS; k++)
        nf += (mask >> k) & 1;
    size_t nb = (mp - 2) / (2 * (size_t)(nf ? nf : 1));
    if (nb < 1)
        nb = 1;
    int64_t s0 = r[a].step, s1 = r[b - 1].step;
    pick[np++] = s0;
    pick[np++] = s1;
    if (nf == 0)
        return np;
    int lvl = -1;
    int64_t lo = 0, c = 0;
    for (int l = STORE_SUM_LEVELS - 1; l >= 0 && lvl < 0; l--) {
        int64_t w = STORE_SUM_WIDTH(l);
        int64_t cl = floor_div(s1 + 1, w) - ceil_div(s0, w);
        int64_t minb = (int64_t)nb < STORE_DS_MIN_BUCKETS ? (int64_t)nb : STORE_DS_MIN_BUCKETS;
        if (cl >= STORE_DS_QUALITY * (int64_t)nb || (l == 0 && cl >= minb))
            lvl = l, lo = ceil_div(s0, w), c = cl;
    }
    plan_seen[lvl + 1]++;
    /* Group of each row: by row index (raw) or by pyramid bucket. */
    size_t G = lvl < 0 ? nb : ((size_t)c < nb ? (size_t)c : nb);
    size_t *grp = malloc(m * sizeof *grp);
    for (size_t i = 0; i < m; i++) {
        if (lvl < 0) {
            size_t g = 0;
            while (g + 1 < G && m * (g + 1) / G <= i)
                g++;
            grp[i] = g;
            continue;
        }
        int64_t bk = floor_div(r[a + i].step, STORE_SUM_WIDTH(lvl));
        size_t g = 0;
        while (g + 1 < G && bk >= lo + (int64_t)((uint64_t)c * (g + 1) / G))
            g++;
        grp[i] = g;
    }
    for (size_t i0 = 0; i0 < m;) {
        size_t i1 = i0;
        while (i1 < m && grp[i1] == grp[i0])
            i1++;
        for (int k = 0; k < STORE_M_NCOLS; k++) {
            if (!((mask >> k) & 1))
                continue;
            size_t imin = i0, imax = i0;
            for (size_t i = i0 + 1; i < i1; i++) {
                if (r[a + i].v[k] < r[a + imin].v[k])
                    imin = i;
                if (r[a + i].v[k] > r[a + imax].v[k])
                    imax = i;
            }
            pick[np++] = r[a + imin].step;
            pick[np++] = r[a + imax].step;
        }
        i0 = i1;
    }
    free(grp);
    qsort(pick, np, sizeof *pick, cmp_step);
    size_t u = 0;
    for (size_t i = 0; i < np; i++)
        if (u == 0 || pick[i] != pick[u - 1])
            pick[u++] = pick[i];
    return u;
}

static const struct orow *orow_find(const struct orow *r, size_t n, int64_t step)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r[mid].step < step)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && r[lo].step == step ? &r[lo] : NULL;
}

/* Downsample and compare with the oracle: the same steps, whole real rows, the
 * range's row count. Returns 1 when they agree. */
static int ds_check(store *st, int64_t job, const struct orow *r, size_t n, int64_t since,
                    int64_t until, unsigned mask, size_t mp, int64_t *pick)
{
    store_series s;
    vaed_err e;
    size_t total = 0, np = oracle_ds(r, n, since, until, mask & STORE_MCOL_ALL, mp, pick, &total);
    int rc = store_metrics_downsample(st, job, since, until, mask, mp, &s, &e);
    int nf = 0;
    for (int k = 0; k < STORE_M_NCOLS; k++)
        nf += (mask >> k) & 1;
    size_t cap = mp > 2 + 2 * (size_t)nf ? mp : 2 + 2 * (size_t)nf;   /* see store.h */
    int ok = rc == 0 && s.n == np && s.total == total && s.n <= cap;
    for (size_t i = 0; ok && i < s.n; i++) {
        const struct orow *o = orow_find(r, n, s.step[i]);
        ok = s.step[i] == pick[i] && o;
        for (int k = 0; ok && k < STORE_M_NCOLS; k++)
            ok = (mask & STORE_MCOL(k)) ? s.col[k] && s.col[k][i] == o->v[k] : !s.col[k];
        if (ok && (mask & STORE_M_KL_GROUPS_BIT))
            ok = s.n_groups == 2 && s.kl_groups[2 * i] == o->g0;
    }
    if (!ok) {
        fprintf(stderr, "downsample since %lld until %lld mask %#x max %zu: rc %d (%s) got %zu "
                "rows (total %zu), want %zu (total %zu)\n", (long long)since, (long long)until,
                mask, mp, rc, rc ? e.msg : "", rc ? 0 : s.n, rc ? 0 : s.total, np, total);
        for (size_t i = 0; !rc && i < s.n && i < np; i++)
            if (s.step[i] != pick[i]) {
                fprintf(stderr, "  first difference at %zu: step %lld want %lld\n", i,
                        (long long)s.step[i], (long long)pick[i]);
                break;
            }
    }
    store_series_free(&s);
    return ok;
}

/* Many (since, until, max_points, mask) against the oracle; returns failures. */
static int ds_sweep(store *st, int64_t job, const struct orow *r, size_t n)
{
    static const size_t mps[] = {2, 3, 5, 9, 22, 50, 101, 300, 1000, 4000, 20000};
    const unsigned masks[] = {STORE_MCOL_ALL, STORE_MCOL(STORE_M_LOSS),
                              STORE_MCOL(STORE_M_KL) | STORE_MCOL(STORE_M_LR) |
                                  STORE_M_KL_GROUPS_BIT,
                              STORE_MCOL(STORE_M_BETA) | STORE_MCOL(STORE_M_TIME), 0,
                              STORE_M_KL_GROUPS_BIT};
    int64_t *pick = malloc((n + 2) * sizeof *pick);
    int bad = 0, runs = 0;
    for (int t = 0; t < 400; t++) {
        int64_t since = -1, until = -1;
        if (t % 4 != 0)
            since = (int64_t)(lcg() % 720000) - 5000;
        if (t % 3 != 0)
            until = since + (int64_t)(lcg() % 720000);
        if (t % 7 == 5 && since >= 0)   /* short ranges, the poll's shape */
            until = since + (int64_t)(lcg() % 3000);
        if (since < -1)
            since = -1;
        size_t mp = mps[lcg() % (sizeof mps / sizeof mps[0])];
        unsigned mask = masks[lcg() % (sizeof masks / sizeof masks[0])];
        bad += !ds_check(st, job, r, n, since, until, mask, mp, pick);
        runs++;
    }
    free(pick);
    CHECK(bad == 0, "%d of %d downsampled ranges differ from the oracle", bad, runs);
    for (int l = 0; l <= STORE_SUM_LEVELS; l++)
        CHECK(plan_seen[l] > 0, "the sweep never used plan %d (0 = raw rows)", l);
    printf("downsample sweep: plans raw %d, level 0 %d, level 1 %d, level 2 %d\n",
           plan_seen[0], plan_seen[1], plan_seen[2], plan_seen[3]);
    return bad;
}

/* Every planted spike of the asked column is in a whole-range downsample, when there
 * are more buckets than spikes (checked against the spike list, not the oracle). */
static void ds_spikes(store *st, int64_t job, const int64_t *hi, const int64_t *lo)
{
    static const size_t mps[] = {1000, 300, 2000};
    for (size_t t = 0; t < sizeof mps / sizeof mps[0]; t++) {
        store_series s;
        vaed_err e;
        unsigned mask = t == 1 ? STORE_MCOL(STORE_M_LOSS) | STORE_MCOL(STORE_M_KL)
                               : STORE_MCOL_ALL;
        int rc = store_metrics_downsample(st, job, -1, -1, mask, mps[t], &s, &e);
        CHECK(rc == 0 && s.n <= mps[t] && s.n > 2, "spikes: rc %d n %zu", rc, s.n);
        int missing = 0;
        for (int i = 0; rc == 0 && i < NSPIKE; i++) {
            int fh = 0, fl = 0;
            for (size_t j = 0; j < s.n; j++) {
                fh |= s.step[j] == hi[i] && s.col[STORE_M_LOSS][j] == 50.0 + i;
                fl |= s.step[j] == lo[i] && s.col[STORE_M_KL][j] == -50.0 - i;
            }
            if (!fh || !fl) {
                if (missing++ < 3)
                    fprintf(stderr, "max_points %zu: spike %d (steps %lld / %lld) missing\n",
                            mps[t], i, (long long)hi[i], (long long)lo[i]);
            }
        }
        CHECK(missing == 0, "max_points %zu: %d spikes lost", mps[t], missing);
        for (size_t j = 1; rc == 0 && j < s.n; j++)
            CHECK(s.step[j] > s.step[j - 1], "steps not ascending at %zu", j);
        store_series_free(&s);
    }
}

static int append_orows(store *st, int64_t job, const struct orow *r, size_t n)
{
    store_metric m[300];
    double g[300][2];
    for (size_t i = 0; i < n;) {
        size_t k = 0, want = 1 + lcg() % 300;
        for (; k < want && i < n; k++, i++)
            m[k] = orow_metric(&r[i], g[k]);
        int rc = store_metrics_append(st, job, m, k, NULL);
        if (rc)
            return rc;
    }
    return 0;
}




static void bench_downsample(store *st, int64_t job, int64_t N)
{
    double t[21];
    store_series s;
    vaed_err e;
    int rc = 0;
    for (int i = 0; i < 21; i++) {
        double t0 = now_s();
        rc |= store_metrics_downsample(st, job, -1, -1, STORE_MCOL_ALL, 1000, &s, &e);
        t[i] = now_s() - t0;
        if (i == 0)
            CHECK(rc == 0 && s.n <= 1000 && s.total == (size_t)N, "bench downsample n %zu total %zu",
                  s.n, s.total);
        store_series_free(&s);
    }
    qsort(t, 21, sizeof t[0], cmp_double);
    double p[200];
    for (int i = 0; i < 200; i++) {
        double t0 = now_s();
        rc |= store_metrics_downsample(st, job, N - 10, -1, STORE_MCOL_ALL, 1000, &s, &e);
        p[i] = now_s() - t0;
        store_series_free(&s);
    }
    qsort(p, 200, sizeof p[0], cmp_double);
    printf("bench: downsample of %lld rows to 1000 points: median %.2f ms (max %.2f ms); "
           "since-poll of the newest 10 rows: median %.3f ms, p99 %.3f ms\n",
           (long long)N, t[10] * 1e3, t[20] * 1e3, p[100] * 1e3, p[197] * 1e3);
    CHECK(rc == 0, "bench downsample failed");
}

/* ---- checkpoints ------------------------------------------------------------------ */

struct ck {
    int64_t step;
    const char *kind;
    int keep, keep_epoch_end;
};

/* The retention rule, written naively from the brief: rotating kinds are periodic,
 * manual, pause, and epoch unless keep_epoch_end; keep the newest `keep` rotating
 * ones, every other kind, and the newest of all. present[] is by index into steps. */
static void oracle_retain(const struct ck *cks, int n, int upto, int *present)
{
    for (int i = 0; i <= upto; i++)
        present[i] = 1;
    for (int c = 0; c <= upto; c++) {
        /* Retention runs after checkpoint c, with c's settings. */
        if (cks[c].keep <= 0)
            continue;
        int64_t newest = -1;
        for (int i = 0; i <= c; i++)
            if (present[i] && cks[i].step > newest)
                newest = cks[i].step;
        for (int i = 0; i <= c; i++) {
            if (!present[i])
                continue;
            const char *k = cks[i].kind;
            int rot = !strcmp(k, "periodic") || !strcmp(k, "manual") || !strcmp(k, "pause") ||
                      (!strcmp(k, "epoch") && !cks[c].keep_epoch_end);
            if (!rot || cks[i].step == newest)
                continue;
            int newer = 0;   /* rotating, present, newer than i */
            for (int q = 0; q <= c; q++) {
                const char *kq = cks[q].kind;
                int rq = !strcmp(kq, "periodic") || !strcmp(kq, "manual") ||
                         !strcmp(kq, "pause") || (!strcmp(kq, "epoch") && !cks[c].keep_epoch_end);
                if (present[q] && rq && cks[q].step > cks[i].step)
                    newer++;
            }
            if (newer >= cks[c].keep)
                present[i] = 0;
        }
    }
    (void)n;
}

static size_t blob_size(int64_t step)
{
    return 1000 + (size_t)(step % 97) * 31;
}

static void fill_blob(unsigned char *b, int64_t step)
{
    for (size_t i = 0; i < blob_size(step); i++)
        b[i] = (unsigned char)((step * 31 + (int64_t)i * 7) & 0xff);
}

struct done_rec {
    pthread_mutex_t mu;
    int calls, rc;
    int64_t step;
};

static void on_done(void *arg, int64_t job, int64_t step, int rc, const char *msg)
{
    struct done_rec *d = arg;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->rc = rc;
    d->step = step;
    pthread_mutex_unlock(&d->mu);
}


/* ---- durability of a checkpoint batch ---------------------------------------------- */


/* ---- SQL metacharacters, epochs, schedule events ----------------------------------- */


/* ---- concurrency ------------------------------------------------------------------ */

struct reader_arg {
    store *st;
    int64_t job;
    volatile int *stop_flag;   /* read under the mutex below */
    pthread_mutex_t *mu;
    long reads, errors, regressions;
};

static int stopped(struct reader_arg *a)
{
    pthread_mutex_lock(a->mu);
    int s = *a->stop_flag;
    pthread_mutex_unlock(a->mu);
    return s;
}

static void *reader_main(void *p)
{
    struct reader_arg *a = p;
    size_t last_n = 0;
    vaed_err e;
    while (!stopped(a)) {
        store_series s;
        int rc = store_metrics_range(a->st, a->job, -1, -1, STORE_MCOL(STORE_M_LOSS), 0, &s, &e);
        if (rc) {
            a->errors++;
            fprintf(stderr, "reader: %s\n", e.msg);
            continue;
        }
        /* Commits are prefixes of the enqueue order: rows 0..n-1, never fewer. */
        if (s.n < last_n || (s.n && s.step[s.n - 1] != (int64_t)s.n - 1))
            a->regressions++;
        for (size_t i = 0; i < s.n; i++)
            if (s.col[STORE_M_LOSS][i] != mval(s.step[i], STORE_M_LOSS, 5.0))
                a->regressions++;
        last_n = s.n;
        store_series_free(&s);
        store_job j;
        if (store_job_get(a->st, a->job, &j, &e) == 0)
            store_job_clear(&j);
        else
            a->errors++;
        store_ckpt *l = NULL;
        size_t n = 0;
        if (store_checkpoints_list(a->st, a->job, &l, &n, &e) != 0)
            a->errors++;
        free(l);
        store_job_list jl;
        if (store_jobs_list(a->st, 0, 0, 5, &jl, &e) != 0)
            a->errors++;
        store_job_list_free(&jl);
        a->reads++;
    }
    return NULL;
}


/* ---- a full disk, and back ------------------------------------------------------- */


/* ---- kill -9 mid-stream ------------------------------------------------------------ */

static void child_writer(const char *p, int fd)
{
    store_opts o;
    store_opts_default(&o);
    o.flush_interval = 0.05;
    store *st = NULL;
    if (store_open(&st, p, &o, NULL) != 0)
        _exit(2);
    store_job_new nj = {.name = "victim", .spec = "{}"};
    int64_t job = 0;
    if (store_job_insert(st, &nj, &job, NULL) != 0)
        _exit(3);
    unsigned char blob[4096];
    for (int64_t s = 0; s < 50000000; s += 50) {
        /* Paced so that several 50 ms flushes happen between checkpoints: the kill
         * then lands with committed rows past the last checkpoint and more queued. */
        if (append_range(st, job, s, s + 50, 9.0, 50, 2) != 0)
            usleep(1000);
        usleep(1000);
        if ((s + 50) % 5000 == 0) {
            memset(blob, (int)(s & 0xff), sizeof blob);
            store_ckpt_put req = {.job = job, .step = s + 49, .kind = "periodic", .blob = blob,
                                  .size = sizeof blob, .keep = 2, .wait = 1};
            if (store_checkpoint_put(st, &req, NULL) == 0) {
                int64_t step = s + 49;
                if (write(fd, &step, sizeof step) != (ssize_t)sizeof step)
                    _exit(4);
            }
        }
    }
    _exit(0);
}


/* ---- integrity of every file --------------------------------------------------- */

/* What every test_store program does first: its scratch directory and fixtures. 0, or the
 * exit status to stop with. */
static int test_store_begin(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/vaed-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    return 0;
}

/* ... and last: the closing line "name: N passed, N failed", the scratch cleaned up. */
static int test_store_end(const char *name)
{
    int rc = t_done(name);
    if (rc == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    } else {
        fprintf(stderr, "files kept in %s\n", dir);
    }
    return rc;
}

#endif
