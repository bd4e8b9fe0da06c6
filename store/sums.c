/* sums.c — the writer's half of the min/max pyramid (store/pyramid.h): the op that
 * writes metric rows also updates the buckets they fall in, inside the same savepoint,
 * so the pyramid commits or rolls back with the rows. Runs on the writer thread only. */
#include "store/pyramid.h"
#include "store/store_impl.h"
#include "store/writer_ops.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the min/max pyramid ------------------------------------------------------------ */

/* Merge into acc the level-lvl summaries of job for buckets lo..hi. SQL_DONE or the
 * failing code (VAED_EDB for a blob of the wrong size). */
static int sum_get(store *st, int64_t job, int lvl, int64_t lo, int64_t hi, struct sum *acc)
{
    sql_stmt *s = st->wstmt[W_SUM_GET];
    sql_bind_int64(s, 1, job);
    sql_bind_int64(s, 2, lvl);
    sql_bind_int64(s, 3, lo);
    sql_bind_int64(s, 4, hi);
    int rc, bad = 0;
    while ((rc = sql_step(s, NULL)) == SQL_ROW) {
        struct sum one;
        if (sum_decode(&one, sql_column_int64(s, 0), sql_column_blob(s, 1),
                       (int)sql_column_bytes(s, 1)) != 0)
            bad = 1;
        else
            sum_merge(acc, &one);
    }
    sql_reset(s);
    sql_clear_bindings(s);
    if (rc != SQL_DONE)
        return rc;
    return bad ? VAED_EDB : SQL_DONE;
}

/* The summary of job's raw rows with lo <= step <= hi, into acc. */
static int sum_raw(store *st, int64_t job, int64_t lo, int64_t hi, struct sum *acc)
{
    sql_stmt *s = st->wstmt[W_RAW];
    sql_bind_int64(s, 1, job);
    sql_bind_int64(s, 2, lo);
    sql_bind_int64(s, 3, hi);
    int rc;
    while ((rc = sql_step(s, NULL)) == SQL_ROW)
        sum_add_stmt(acc, s, 0, 1);
    sql_reset(s);
    sql_clear_bindings(s);
    return rc;
}

static int sum_put(store *st, int64_t job, int lvl, int64_t bucket, const struct sum *v)
{
    unsigned char blob[SUM_BLOB_BYTES];
    sql_stmt *s = st->wstmt[W_SUM_PUT];
    sum_encode(v, blob);
    sql_bind_int64(s, 1, job);
    sql_bind_int64(s, 2, lvl);
    sql_bind_int64(s, 3, bucket);
    sql_bind_int64(s, 4, v->n);
    sql_bind_blob(s, 5, blob, (size_t)(SUM_BLOB_BYTES));
    return store_wrun(s, NULL);
}

struct step_ix {
    int64_t step;
    size_t i;
};

static int by_step(const void *a, const void *b)
{
    const struct step_ix *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* A bucket the batch touched: dirty when a row may have replaced an older one (its
 * step is not past the bucket's last step), so the bucket is recomputed; otherwise
 * delta, the summary of the batch's rows in it, is merged into the stored one. */
struct touched {
    int64_t bucket;
    int dirty;
    struct sum delta;
};

/* Bring job's summaries up to date with rows, just written by INSERT OR REPLACE.
 *
 * Appends (the common case: each row's step is past the last step of its level-0
 * bucket) are a read-modify-write of the one or two buckets per level a batch
 * touches. A row that may have replaced an older one — after crash recovery the
 * recomputed steps overwrite the rows that survived, with the same values except
 * `time` — makes its level-0 bucket dirty: that bucket is recomputed from its raw rows
 * (at most 256), and each dirty bucket's parent from its 16 children, so no stale
 * extreme of a replaced value survives. Returns SQL_DONE or the failing code. */
int store_sums_update(store *st, int64_t job, const store_metric *rows, size_t n)
{
    struct step_ix *ix = malloc(n * sizeof *ix);
    struct touched *t = malloc(n * sizeof *t);
    int rc = SQL_DONE;
    if (!ix || !t) {
        rc = VAED_ENOMEM;   /* transient: the batch is retried */
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        ix[i] = (struct step_ix){rows[i].step, i};
    qsort(ix, n, sizeof *ix, by_step);

    /* Level 0, from the rows. */
    size_t nt = 0;
    const int64_t w0 = STORE_SUM_WIDTH(0);
    for (size_t i = 0; i < n && rc == SQL_DONE;) {
        int64_t b = sum_floor_div(ix[i].step, w0), first = ix[i].step;
        struct touched *e = &t[nt++];
        e->bucket = b;
        e->dirty = 0;
        e->delta.n = 0;
        for (; i < n && sum_floor_div(ix[i].step, w0) == b; i++) {
            const store_metric *m = &rows[ix[i].i];
            if (i + 1 < n && ix[i + 1].step == m->step)
                continue;   /* the same step twice in a batch: the later row won */
            double v[STORE_M_NCOLS];
            store_metric_values(m, v);
            sum_add(&e->delta, m->step, v);
        }
        struct sum cur = {0};
        if ((rc = sum_get(st, job, 0, b, b, &cur)) != SQL_DONE)
            break;
        if (cur.n > 0 && first <= cur.last) {
            /* Maybe a replacement: recompute the bucket from its raw rows. */
            e->dirty = 1;
            cur.n = 0;
            if ((rc = sum_raw(st, job, b * w0, b * w0 + w0 - 1, &cur)) != SQL_DONE)
                break;
        } else {
            sum_merge(&cur, &e->delta);
        }
        if (cur.n > 0)
            rc = sum_put(st, job, 0, b, &cur);
    }

    /* Each higher level from the one below: t[] is sorted by bucket, so the children
     * of a parent are adjacent; the parents are written back over t[] in place. */
    for (int l = 1; l < STORE_SUM_LEVELS && rc == SQL_DONE; l++) {
        const int64_t fan = STORE_SUM_WIDTH(l) / STORE_SUM_WIDTH(l - 1);
        size_t np = 0;
        for (size_t i = 0; i < nt && rc == SQL_DONE;) {
            int64_t p = sum_floor_div(t[i].bucket, fan);
            struct touched par = {.bucket = p};
            for (; i < nt && sum_floor_div(t[i].bucket, fan) == p; i++) {
                par.dirty |= t[i].dirty;
                sum_merge(&par.delta, &t[i].delta);
            }
            struct sum cur = {0};
            if (par.dirty)
                rc = sum_get(st, job, l - 1, p * fan, p * fan + fan - 1, &cur);
            else if ((rc = sum_get(st, job, l, p, p, &cur)) == SQL_DONE)
                sum_merge(&cur, &par.delta);
            if (rc == SQL_DONE && cur.n > 0)
                rc = sum_put(st, job, l, p, &cur);
            t[np++] = par;
        }
        nt = np;
    }
done:
    free(ix);
    free(t);
    return rc;
}

/* Run one op's statements. Returns SQL_DONE, or the failing negative code (the
 * caller tells transient from permanent). Sets o->rc/msg for logical failures. */
