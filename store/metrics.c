/* metrics.c — the metric reads of the store (store.h): the column names, a range of
 * rows as columns, and the downsampled range from the min/max pyramid (the algorithm is
 * at store_metrics_downsample in store.h; the pyramid's rows are written in pyramid.c).
 * Each read takes a pooled read connection (store.c) and reads in one snapshot. */
#include "store/store.h"
#include "store/store_impl.h"
#include "store/pyramid.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- metrics ---------------------------------------------------------------------- */

#define MCOL_NAME(ID, name, unit, flags, meaning) #name,
static const char *const mcol_names[STORE_M_NCOLS] = {VAE_METRIC_FIELDS(MCOL_NAME)};

const char *store_mcol_name(int c)
{
    return c >= 0 && c < STORE_M_NCOLS ? mcol_names[c] : NULL;
}

int store_mcol_by_name(const char *name)
{
    for (int c = 0; name && c < STORE_M_NCOLS; c++)
        if (strcmp(name, mcol_names[c]) == 0)
            return c;
    return -1;
}

void store_series_free(store_series *s)
{
    if (!s)
        return;
    free(s->step);
    for (int c = 0; c < STORE_M_NCOLS; c++)
        free(s->col[c]);
    free(s->kl_groups);
    memset(s, 0, sizeof *s);
}

/* realloc that leaves *p alone on failure. */
static int grow(void *pp, size_t bytes)
{
    void **p = pp;
    void *q = realloc(*p, bytes ? bytes : 1);
    if (!q)
        return -1;
    *p = q;
    return 0;
}

/* Widen the kl_groups matrix of s (rows 0..rows-1, capacity cap) to g columns,
 * filling the new cells with NAN. */
static int widen_groups(store_series *s, size_t rows, size_t cap, int g)
{
    double *m = malloc(cap * (size_t)g * sizeof(double));
    if (!m)
        return -1;
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < g; k++)
            m[r * g + k] = k < s->n_groups ? s->kl_groups[r * s->n_groups + k] : NAN;
    free(s->kl_groups);
    s->kl_groups = m;
    s->n_groups = g;
    return 0;
}

/* Append the current row of s (the columns of R_METRICS) to out, growing its arrays
 * (capacity *cap rows). Returns 0, or -1 when out of memory (out stays consistent). */
static int series_push(store_series *out, size_t *cap, sql_stmt *s, unsigned mask)
{
    size_t n = out->n;
    if (n == *cap) {
        /* Sizes come from the request's range: checked, fail the request. */
        size_t nc = *cap ? *cap * 2 : 1024;
        int oom = grow(&out->step, nc * sizeof(int64_t));
        for (int k = 0; k < STORE_M_NCOLS; k++)
            if (mask & STORE_MCOL(k))
                oom |= grow(&out->col[k], nc * sizeof(double));
        if (!oom && out->n_groups > 0)
            oom |= grow(&out->kl_groups, nc * (size_t)out->n_groups * sizeof(double));
        if (oom)
            return -1;
        *cap = nc;
    }
    out->step[n] = sql_column_int64(s, 0);
    for (int k = 0; k < STORE_M_NCOLS; k++)
        if (mask & STORE_MCOL(k))
            out->col[k][n] = sql_column_double(s, 1 + k);
    if (mask & STORE_M_KL_GROUPS_BIT) {
        const double *g = sql_column_blob(s, 1 + STORE_M_NCOLS);
        int ng = g ? (int)sql_column_bytes(s, 1 + STORE_M_NCOLS) / (int)sizeof(double) : 0;
        if (ng > out->n_groups && widen_groups(out, n, *cap, ng) != 0)
            return -1;
        for (int k = 0; k < out->n_groups; k++) {
            double v = NAN;
            if (k < ng)
                memcpy(&v, (const char *)g + (size_t)k * sizeof(double), sizeof v);
            out->kl_groups[n * (size_t)out->n_groups + k] = v;
        }
    }
    out->n = n + 1;
    return 0;
}

/* store_metrics_range on the connection c the caller holds; since and until are
 * exclusive/inclusive bounds already widened (INT64_MIN / INT64_MAX for none). Rows
 * are appended to out (capacity *cap). */
static int range_on(struct rconn *c, int64_t job, int64_t since, int64_t until,
                    unsigned mask, size_t limit, store_series *out, size_t *cap,
                    vaed_err *err)
{
    sql_stmt *s = store_rstmt(c, R_METRICS, err);
    if (!s)
        return VAED_EDB;
    sql_bind_int64(s, 1, job);
    sql_bind_int64(s, 2, since);
    sql_bind_int64(s, 3, until);
    sql_bind_int64(s, 4, limit ? (int64_t)(limit > INT64_MAX ? INT64_MAX : limit) : INT64_MAX);
    int sr;
    while ((sr = sql_step(s, NULL)) == SQL_ROW) {
        if (series_push(out, cap, s, mask) != 0) {
            sql_reset(s);
            sql_clear_bindings(s);
            return vaed_err_set(err, VAED_ENOMEM, "", "no memory for %zu metric rows",
                                *cap * 2);
        }
    }
    return store_rdone(c, s, sr, "reading metrics", err);
}

int store_metrics_range(store *st, int64_t job, int64_t since, int64_t until,
                        unsigned mask, size_t limit, store_series *out, vaed_err *err)
{
    struct rconn *c;
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    int rc = store_racquire(st, &c, err);
    if (rc)
        return rc;
    rc = range_on(c, job, since < 0 ? INT64_MIN : since, until < 0 ? INT64_MAX : until, mask,
                  limit, out, &cap, err);
    store_rrelease(st, c);
    out->total = out->n;
    if (rc)
        store_series_free(out);
    return rc;
}

/* ---- downsampling from the min/max pyramid ------------------------------------------
 *
 * The plan (store.h, store_metrics_downsample): pick a pyramid level whose whole
 * buckets inside the range give enough output buckets, read those summaries in one
 * key-ordered scan, cover the two unaligned edges of the range with finer levels and
 * raw rows (agg_range), then fetch the few rows the summaries name. Statements are
 * prepared per call: a few tens of microseconds against a plan that reads thousands
 * of summary rows, and the read connection's statement slots stay as they are. */

struct ds {
    struct rconn *c;
    int64_t job;
    sql_stmt *sum, *raw;
    vaed_err *err;
};

/* Merge the level-lvl summaries of buckets lo..hi into acc[g] for the group g each
 * bucket falls in: group g starts at bucket start[g] (ascending, ng groups); with
 * start NULL everything goes to acc[0]. */
static int ds_sums(struct ds *x, int lvl, int64_t lo, int64_t hi, struct sum *acc,
                   const int64_t *start, size_t ng)
{
    sql_stmt *s = x->sum;
    sql_bind_int64(s, 1, x->job);
    sql_bind_int64(s, 2, lvl);
    sql_bind_int64(s, 3, lo);
    sql_bind_int64(s, 4, hi);
    size_t g = 0;
    int sr, bad = 0;
    while ((sr = sql_step(s, NULL)) == SQL_ROW) {
        int64_t b = sql_column_int64(s, 0);
        while (start && g + 1 < ng && b >= start[g + 1])
            g++;
        struct sum one;
        if (sum_decode(&one, sql_column_int64(s, 1), sql_column_blob(s, 2),
                       (int)sql_column_bytes(s, 2)) != 0)
            bad = 1;
        else
            sum_merge(&acc[g], &one);
    }
    int rc = store_rdone(x->c, s, sr, "reading metric summaries", x->err);
    if (!rc && bad)
        rc = vaed_err_set(x->err, VAED_EDB, "", "a metric summary of job %lld is corrupt",
                          (long long)x->job);
    return rc;
}

/* Merge into acc every row with a <= step <= b: whole buckets of level lvl, the rest
 * from finer levels, and at the bottom (< 256 steps at each end) raw rows. */
static int agg_range(struct ds *x, int64_t a, int64_t b, int lvl, struct sum *acc)
{
    if (a > b)
        return 0;
    for (int l = lvl; l >= 0; l--) {
        int64_t w = STORE_SUM_WIDTH(l);
        int64_t lo = sum_ceil_div(a, w), hi = sum_floor_div(b + 1, w);   /* [lo, hi) */
        if (lo >= hi)
            continue;
        int rc = ds_sums(x, l, lo, hi - 1, acc, NULL, 1);
        if (!rc)
            rc = agg_range(x, a, lo * w - 1, l - 1, acc);
        if (!rc)
            rc = agg_range(x, hi * w, b, l - 1, acc);
        return rc;
    }
    sql_stmt *s = x->raw;
    sql_bind_int64(s, 1, x->job);
    sql_bind_int64(s, 2, a);
    sql_bind_int64(s, 3, b);
    int sr;
    while ((sr = sql_step(s, NULL)) == SQL_ROW)
        sum_add_stmt(acc, s, 0, 1);
    return store_rdone(x->c, s, sr, "reading metric edges", x->err);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The route's original bucketing on rows in memory: nb buckets of equal row counts,
 * keep the first and last row and each bucket's min and max rows; compacts s. */
static void ds_rows(store_series *s, unsigned mask, size_t nb, unsigned char *keep)
{
    memset(keep, 0, s->n);
    keep[0] = keep[s->n - 1] = 1;
    for (size_t b = 0; b < nb; b++) {
        size_t lo = s->n * b / nb, hi = s->n * (b + 1) / nb;
        for (int c = 0; c < STORE_M_NCOLS && lo < hi; c++) {
            const double *col = s->col[c];
            if (!col || !(mask & STORE_MCOL(c)))
                continue;
            size_t imin = lo, imax = lo;
            for (size_t i = lo + 1; i < hi; i++) {
                if (col[i] < col[imin])
                    imin = i;
                if (col[i] > col[imax])
                    imax = i;
            }
            keep[imin] = keep[imax] = 1;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!keep[i])
            continue;
        s->step[k] = s->step[i];
        for (int c = 0; c < STORE_M_NCOLS; c++)
            if (s->col[c])
                s->col[c][k] = s->col[c][i];
        if (s->kl_groups && k != i)
            memmove(s->kl_groups + k * (size_t)s->n_groups,
                    s->kl_groups + i * (size_t)s->n_groups,
                    (size_t)s->n_groups * sizeof(double));
        k++;
    }
    s->n = k;
}

/* The rows at the n sorted steps of pick (duplicates allowed: pick is made unique in
 * place), appended to out in step order: DS_PICK steps a statement (on PostgreSQL each
 * statement is a round trip: a lookup a step made a 1,000-point query of a million rows
 * take 40 ms on loopback). */
#define DS_PICK 64
#define DS_SQL_HEAD "SELECT step" VAE_METRIC_SQL_COLUMNS ", kl_groups FROM metrics WHERE job = ?1 AND step IN (?2"
_Static_assert(sizeof DS_SQL_HEAD + (DS_PICK - 1) * sizeof ", ?65" + sizeof ") ORDER BY step" <= 1024,
               "room for ds_fetch's statement");
static int ds_fetch(struct rconn *c, int64_t job, int64_t *pick, size_t n, unsigned mask,
                    store_series *out, size_t *cap, vaed_err *err)
{
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || pick[i] != pick[u - 1])
            pick[u++] = pick[i];
    if (u == 0)
        return 0;
    char sql[1024];
    int w = snprintf(sql, sizeof sql, "%s", DS_SQL_HEAD);
    for (int k = 3; k <= DS_PICK + 1; k++)
        w += snprintf(sql + w, sizeof sql - (size_t)w, ", ?%d", k);
    snprintf(sql + w, sizeof sql - (size_t)w, ") ORDER BY step");
    sql_stmt *s = NULL;
    if (sql_prepare(c->db, sql, &s, NULL) != 0)
        return store_dberr(err, c->db, "preparing a point lookup");
    int rc = 0;
    for (size_t i = 0; i < u && !rc; i += DS_PICK) {
        sql_bind_int64(s, 1, job);
        for (size_t k = 0; k < DS_PICK; k++)    /* past the end: the last step again */
            sql_bind_int64(s, 2 + (int)k, pick[i + k < u ? i + k : u - 1]);
        int sr;
        while ((sr = sql_step(s, NULL)) == SQL_ROW)
            if (series_push(out, cap, s, mask) != 0) {
                rc = vaed_err_set(err, VAED_ENOMEM, "", "no memory for %zu metric rows",
                                  *cap * 2);
                break;
            }
        if (!rc && sr != SQL_DONE)
            rc = store_dberr(err, c->db, "reading metrics");
        sql_reset(s);
    }
    sql_finalize(s);
    return rc;
}

int store_metrics_downsample(store *st, int64_t job, int64_t since, int64_t until,
                             unsigned mask, size_t max_points, store_series *out,
                             vaed_err *err)
{
    struct rconn *c = NULL;
    struct ds x = {.job = job, .err = err};
    sql_stmt *smax = NULL;
    struct sum *acc = NULL;
    int64_t *start = NULL, *pick = NULL;
    unsigned char *keep = NULL;
    size_t cap = 0, total = 0;
    int rc;
    memset(out, 0, sizeof *out);
    if (max_points < 2)
        return vaed_err_set(err, VAED_EINVAL, "max_points", "max_points: must be at least 2");
    int64_t lo_s = since < 0 ? INT64_MIN : since, hi_s = until < 0 ? INT64_MAX : until;
    if ((rc = store_racquire(st, &c, err)))
        return rc;
    x.c = c;
    /* One read transaction: the summaries and the rows they name are one snapshot. */
    store_read_begin(c->db);
    /* A short range (the incremental poll) is answered by this one read. */
    rc = range_on(c, job, lo_s, hi_s, mask, max_points + 1, out, &cap, err);
    if (rc || out->n <= max_points) {
        total = out->n;
        goto done;
    }
    int64_t s0 = out->step[0], s1 = s0;
    store_series_free(out);
    cap = 0;
    if (sql_prepare(c->db, "SELECT max(step) FROM metrics WHERE job = ?1 "
                                  "AND step > ?2 AND step <= ?3", &smax, NULL) != 0 ||
        sql_prepare(c->db, "SELECT bucket, n, agg FROM metrics_sum WHERE job = ?1 "
                                  "AND lvl = ?2 AND bucket >= ?3 AND bucket <= ?4 "
                                  "ORDER BY bucket", &x.sum, NULL) != 0 ||
        sql_prepare(c->db, "SELECT step" VAE_METRIC_SQL_COLUMNS " FROM metrics "
                                  "WHERE job = ?1 AND step >= ?2 AND step <= ?3", &x.raw, NULL) != 0) {
        rc = store_dberr(err, c->db, "preparing the downsampling reads");
        goto done;
    }
    sql_bind_int64(smax, 1, job);
    sql_bind_int64(smax, 2, lo_s);
    sql_bind_int64(smax, 3, hi_s);
    int sr = sql_step(smax, NULL);
    if (sr == SQL_ROW)
        s1 = sql_column_int64(smax, 0);
    if ((rc = store_rdone(c, smax, sr, "reading the last step", err)))
        goto done;

    int nf = 0;
    for (int k = 0; k < STORE_M_NCOLS; k++)
        nf += (mask & STORE_MCOL(k)) != 0;
    size_t nb = (max_points - 2) / (2 * (size_t)(nf ? nf : 1));
    if (nb < 1)
        nb = 1;
    /* Choose the level: whole buckets lo_l .. hi_l - 1 lie inside [s0, s1]. */
    int lvl = -1;
    int64_t lo = 0, cnt = 0;
    for (int l = STORE_SUM_LEVELS - 1; l >= 0 && lvl < 0; l--) {
        int64_t w = STORE_SUM_WIDTH(l);
        int64_t l_lo = sum_ceil_div(s0, w), l_hi = sum_floor_div(s1 + 1, w);
        int64_t cl = l_hi - l_lo;
        if (cl >= STORE_DS_QUALITY * (int64_t)nb ||
            (l == 0 && cl >= (int64_t)(nb < STORE_DS_MIN_BUCKETS ? nb : STORE_DS_MIN_BUCKETS))) {
            lvl = l;
            lo = l_lo;
            cnt = cl;
        }
    }
    size_t npick = 0;
    if (nf == 0) {
        /* Nothing to bucket: the ends, and the count from the pyramid. */
        struct sum all = {0};
        if ((rc = agg_range(&x, s0, s1, STORE_SUM_LEVELS - 1, &all)))
            goto done;
        total = (size_t)all.n;
        pick = xmalloc(2 * sizeof *pick);
        pick[npick++] = s0;
        pick[npick++] = s1;
    } else if (lvl < 0) {
        /* A range of a few thousand steps: the raw rows are cheap enough, and finer
         * than 256-step buckets. */
        if ((rc = range_on(c, job, lo_s, hi_s, mask, 0, out, &cap, err)))
            goto done;
        total = out->n;
        keep = malloc(out->n);
        if (!keep) {
            rc = vaed_err_set(err, VAED_ENOMEM, "", "no memory to downsample %zu rows", out->n);
            goto done;
        }
        ds_rows(out, mask, nb, keep);
        goto done;
    } else {
        int64_t w = STORE_SUM_WIDTH(lvl);
        size_t ng = (size_t)cnt < nb ? (size_t)cnt : nb;
        acc = calloc(ng, sizeof *acc);
        start = malloc(ng * sizeof *start);
        pick = malloc((2 + 2 * ng * (size_t)nf) * sizeof *pick);
        if (!acc || !start || !pick) {
            rc = vaed_err_set(err, VAED_ENOMEM, "", "no memory for %zu buckets", ng);
            goto done;
        }
        for (size_t g = 0; g < ng; g++)
            start[g] = lo + (int64_t)((uint64_t)cnt * g / ng);
        /* The whole buckets in one scan, then each unaligned edge into its group. */
        if ((rc = ds_sums(&x, lvl, lo, lo + cnt - 1, acc, start, ng)) ||
            (rc = agg_range(&x, s0, lo * w - 1, lvl - 1, &acc[0])) ||
            (rc = agg_range(&x, (lo + cnt) * w, s1, lvl - 1, &acc[ng - 1])))
            goto done;
        pick[npick++] = s0;
        pick[npick++] = s1;
        for (size_t g = 0; g < ng; g++) {
            total += (size_t)acc[g].n;
            for (int k = 0; k < STORE_M_NCOLS && acc[g].n > 0; k++)
                if (mask & STORE_MCOL(k)) {
                    pick[npick++] = acc[g].c[k].mn_step;
                    pick[npick++] = acc[g].c[k].mx_step;
                }
        }
    }
    qsort(pick, npick, sizeof *pick, cmp_i64);
    rc = ds_fetch(c, job, pick, npick, mask, out, &cap, err);
done:
    sql_finalize(smax);
    sql_finalize(x.sum);
    sql_finalize(x.raw);
    sql_exec(c->db, "COMMIT", NULL);
    store_rrelease(st, c);
    free(acc);
    free(start);
    free(pick);
    free(keep);
    out->total = total;
    if (rc)
        store_series_free(out);
    return rc;
}

