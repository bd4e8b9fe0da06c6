/* pyramid.c — summaries of metric rows: add, merge, encode, and the full rebuild the
 * v3 migration runs (see pyramid.h for the layout and the invariant). */
#include <math.h>
#include <string.h>

#include "store/pyramid.h"
#include "store/store_impl.h"

int64_t sum_floor_div(int64_t a, int64_t w)
{
    int64_t q = a / w;
    return (a % w != 0 && a < 0) ? q - 1 : q;
}

int64_t sum_ceil_div(int64_t a, int64_t w)
{
    int64_t q = a / w;
    return (a % w != 0 && a > 0) ? q + 1 : q;
}

/* Is (v, step) a better minimum than (m, mstep)? Ties: the earlier step. */
static int lower(double v, int64_t step, double m, int64_t mstep)
{
    return v < m || (v == m && step < mstep);
}

void sum_add(struct sum *s, int64_t step, const double *v)
{
    if (s->n == 0) {
        s->last = step;
        for (int k = 0; k < STORE_M_NCOLS; k++) {
            double x = isnan(v[k]) ? 0.0 : v[k];
            s->c[k] = (struct sum_col){x, x, step, step};
        }
        s->n = 1;
        return;
    }
    s->n++;
    if (step > s->last)
        s->last = step;
    for (int k = 0; k < STORE_M_NCOLS; k++) {
        /* SQLite stores NaN as NULL, which reads back as 0.0: summarise what reads see. */
        double x = isnan(v[k]) ? 0.0 : v[k];
        struct sum_col *c = &s->c[k];
        if (lower(x, step, c->mn, c->mn_step))
            c->mn = x, c->mn_step = step;
        if (lower(-x, step, -c->mx, c->mx_step))
            c->mx = x, c->mx_step = step;
    }
}

void sum_merge(struct sum *dst, const struct sum *src)
{
    if (src->n == 0)
        return;
    if (dst->n == 0) {
        *dst = *src;
        return;
    }
    dst->n += src->n;
    if (src->last > dst->last)
        dst->last = src->last;
    for (int k = 0; k < STORE_M_NCOLS; k++) {
        const struct sum_col *a = &src->c[k];
        struct sum_col *c = &dst->c[k];
        if (lower(a->mn, a->mn_step, c->mn, c->mn_step))
            c->mn = a->mn, c->mn_step = a->mn_step;
        if (lower(-a->mx, a->mx_step, -c->mx, c->mx_step))
            c->mx = a->mx, c->mx_step = a->mx_step;
    }
}

void sum_encode(const struct sum *s, unsigned char *buf)
{
    memcpy(buf, &s->last, 8);
    for (int k = 0; k < STORE_M_NCOLS; k++) {
        unsigned char *p = buf + 8 + 32 * k;
        memcpy(p, &s->c[k].mn, 8);
        memcpy(p + 8, &s->c[k].mx, 8);
        memcpy(p + 16, &s->c[k].mn_step, 8);
        memcpy(p + 24, &s->c[k].mx_step, 8);
    }
}

int sum_decode(struct sum *s, int64_t n, const void *blob, int bytes)
{
    const unsigned char *b = blob;
    if (!b || bytes != SUM_BLOB_BYTES || n <= 0)
        return -1;
    s->n = n;
    memcpy(&s->last, b, 8);
    for (int k = 0; k < STORE_M_NCOLS; k++) {
        const unsigned char *p = b + 8 + 32 * k;
        memcpy(&s->c[k].mn, p, 8);
        memcpy(&s->c[k].mx, p + 8, 8);
        memcpy(&s->c[k].mn_step, p + 16, 8);
        memcpy(&s->c[k].mx_step, p + 24, 8);
    }
    return 0;
}

void sum_add_stmt(struct sum *acc, sql_stmt *s, int stepcol, int first)
{
    double v[STORE_M_NCOLS];
    for (int k = 0; k < STORE_M_NCOLS; k++)
        v[k] = sql_column_double(s, first + k);
    sum_add(acc, sql_column_int64(s, stepcol), v);
}

static int put(sql_stmt *ins, int64_t job, int lvl, int64_t bucket, const struct sum *s)
{
    unsigned char blob[SUM_BLOB_BYTES];
    sum_encode(s, blob);
    sql_bind_int64(ins, 1, job);
    sql_bind_int64(ins, 2, lvl);
    sql_bind_int64(ins, 3, bucket);
    sql_bind_int64(ins, 4, s->n);
    sql_bind_blob(ins, 5, blob, (size_t)(SUM_BLOB_BYTES));
    int rc = sql_step(ins, NULL);
    sql_reset(ins);
    return rc == SQL_DONE ? 0 : -1;
}

int sum_build_all(sql_conn *db, vaed_err *err)
{
    sql_stmt *sel = NULL, *ins = NULL;
    int rc = 0;
    if (sql_prepare(db, "SELECT job, step" VAE_METRIC_SQL_COLUMNS " FROM metrics "
                               "ORDER BY job, step", &sel, NULL) != 0 ||
        sql_prepare(db, STORE_SQL_SUM_PUT, &ins, NULL) != 0) {
        rc = store_dberr(err, db, "building the metric summaries: prepare");
        goto done;
    }
    /* Rows come in (job, step) order, so each level has one open bucket at a time:
     * written out when the job or the bucket changes. */
    struct sum cur[STORE_SUM_LEVELS];
    int64_t bucket[STORE_SUM_LEVELS] = {0}, job = 0;
    memset(cur, 0, sizeof cur);
    int sr;
    while ((sr = sql_step(sel, NULL)) == SQL_ROW) {
        int64_t j = sql_column_int64(sel, 0), step = sql_column_int64(sel, 1);
        for (int l = 0; l < STORE_SUM_LEVELS; l++) {
            int64_t b = sum_floor_div(step, STORE_SUM_WIDTH(l));
            if (cur[l].n > 0 && (j != job || b != bucket[l])) {
                if (put(ins, job, l, bucket[l], &cur[l])) {
                    rc = store_dberr(err, db, "building the metric summaries: insert");
                    goto done;
                }
                cur[l].n = 0;
            }
            bucket[l] = b;
            sum_add_stmt(&cur[l], sel, 1, 2);
        }
        job = j;
    }
    if (sr != SQL_DONE) {
        rc = store_dberr(err, db, "building the metric summaries: scan");
        goto done;
    }
    for (int l = 0; l < STORE_SUM_LEVELS; l++)
        if (cur[l].n > 0 && put(ins, job, l, bucket[l], &cur[l])) {
            rc = store_dberr(err, db, "building the metric summaries: insert");
            goto done;
        }
done:
    sql_finalize(sel);
    sql_finalize(ins);
    return rc;
}
