/* pyramid.h — the min/max pyramid over metric rows (internal to store/).
 *
 * For every job and level l (0 .. STORE_SUM_LEVELS-1) the table metrics_sum keeps one
 * row per non-empty bucket of STORE_SUM_WIDTH(l) steps: bucket b of level l holds the
 * rows with b*W <= step < (b+1)*W (floor division, so negative steps work too). Its
 * blob `agg` is, native-endian:
 *
 *   offset 0   int64  last      largest step in the bucket
 *   offset 8   10 × { double min; double max; int64 min_step; int64 max_step; }
 *                               one per metric column, in enum store_mcol order
 *
 * and the column n is the number of rows in the bucket. Values are the ones a read
 * returns: a NULL column (SQLite stores NaN as NULL) counts as 0.0. Ties go to the
 * earliest step, so the summary of a set of rows does not depend on the order the
 * rows were added or merged in: the writer, the migration and a naive scan agree.
 *
 * Invariant (kept by the writer in the transaction that writes the rows, and by the
 * v3 migration for rows that predate it): every bucket's summary equals the summary
 * of the raw rows in it. */
#ifndef VAED_STORE_PYRAMID_H
#define VAED_STORE_PYRAMID_H

#include <stdint.h>

#include "store/sql.h"
#include "store/store.h"

struct sum_col {
    double mn, mx;
    int64_t mn_step, mx_step;
};

struct sum {
    int64_t n;                          /* rows; 0 = empty (the rest is undefined) */
    int64_t last;                       /* largest step */
    struct sum_col c[STORE_M_NCOLS];
};

#define SUM_BLOB_BYTES (8 + STORE_M_NCOLS * 32)

/* floor(a / w) and ceil(a / w) for w > 0, right for negative a too. */
int64_t sum_floor_div(int64_t a, int64_t w);
int64_t sum_ceil_div(int64_t a, int64_t w);

/* Add one row (v: the STORE_M_NCOLS values; NaN counts as 0.0) to s. */
void sum_add(struct sum *s, int64_t step, const double *v);
/* dst ∪= src. */
void sum_merge(struct sum *dst, const struct sum *src);

/* The blob of s (SUM_BLOB_BYTES into buf), and back: 0, or -1 when blob has the
 * wrong size (a corrupt row: the caller reports it). */
void sum_encode(const struct sum *s, unsigned char *buf);
int sum_decode(struct sum *s, int64_t n, const void *blob, int bytes);

/* Add the current row of s to acc: columns first..first+STORE_M_NCOLS-1 are the metric
 * values, column stepcol the step (NULL values read as 0.0, as in every read). */
void sum_add_stmt(struct sum *acc, sql_stmt *s, int stepcol, int first);

/* Store one bucket: ?1 job, ?2 lvl, ?3 bucket, ?4 n, ?5 agg (sum_encode's blob),
 * replacing the bucket's old row. */
#define STORE_SQL_SUM_PUT                                                                  \
    "INSERT INTO metrics_sum(job, lvl, bucket, n, agg) VALUES (?1, ?2, ?3, ?4, ?5) "      \
    "ON CONFLICT (job, lvl, bucket) DO UPDATE SET n = excluded.n, agg = excluded.agg"

/* Build metrics_sum from scratch for every metric row in db (which must be inside a
 * write transaction): the v3 migration. One scan of metrics in key order. */
int sum_build_all(sql_conn *db, vaed_err *err);

#endif
