/* bench_cluster.c — the store (store/store.h) on one database, for scripts/bench-cluster:
 *   bench_cluster TARGET WRITE_ROWS QUERY_ROWS
 * TARGET: a SQLite file or a postgresql:// URL. Two figures, one JSON line:
 *   write_rows_per_sec  WRITE_ROWS metric rows appended one a call, as a training job
 *                       appends them (store_metrics_append with n = 1), from the first
 *                       call to the commit of the last (store_flush): the writer's own
 *                       rate, batches, the min/max pyramid and all;
 *   query_ms            a second job holds QUERY_ROWS rows (appended 1,000 a call), and
 *                       store_metrics_downsample reads all of them as at most 1,000
 *                       points, every metric column (what a dashboard asks): the median
 *                       of 21 queries, in milliseconds.
 * Exits non-zero when a downsampled series is not what it must be (its first and last
 * steps, its size, its total): a benchmark of a wrong answer is no figure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, const vaed_err *e)
{
    fprintf(stderr, "bench_cluster: %s: %s\n", what, e->msg);
    exit(1);
}

static void row(store_metric *m, long step)
{
    memset(m, 0, sizeof *m);
    m->step = step;
    m->epoch = (double)step / 600.0;
    m->beta = step < 5000 ? (double)step / 5000.0 : 1.0;
    m->loss = 300.0 - 100.0 * (double)step / (double)(step + 1000) + (double)(step % 7);
    m->xent = m->loss - 20.0;
    m->kl = 20.0 + (double)(step % 13);
    m->elbo = -m->loss;
    m->lr = 1e-3;
    m->grad_norm = 1.0 + (double)(step % 5);
    m->time = 1.7e9 + (double)step * 0.004;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int64_t new_job(store *st, const char *name)
{
    vaed_err e = {0};
    int64_t id = 0;
    store_job_new nj = {.name = name, .spec = "{}"};
    if (store_job_insert(st, &nj, &id, &e))
        die("insert job", &e);
    return id;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_cluster TARGET WRITE_ROWS QUERY_ROWS\n");
        return 2;
    }
    long wrows = atol(argv[2]), qrows = atol(argv[3]);
    vaed_err e = {0};
    store_opts o;
    store_opts_default(&o);
    o.fsync_checkpoints = 0;
    store *st = NULL;
    if (store_open(&st, argv[1], &o, &e))
        die("open", &e);

    /* one row a call, as a job's training thread appends them */
    int64_t job = new_job(st, "write");
    double t0 = now();
    for (long s = 0; s < wrows; s++) {
        store_metric m;
        row(&m, s);
        while (store_metrics_append(st, job, &m, 1, &e) == VAED_ETOOBIG)
            store_flush(st, NULL);      /* the queue's cap: wait for the writer */
    }
    if (store_flush(st, &e))
        die("flush", &e);
    double write_s = now() - t0;

    /* a long run, then the dashboard's question */
    int64_t qjob = new_job(st, "query");
    store_metric *chunk = malloc(1000 * sizeof *chunk);
    for (long s = 0; s < qrows; s += 1000) {
        long n = qrows - s < 1000 ? qrows - s : 1000;
        for (long i = 0; i < n; i++)
            row(&chunk[i], s + i);
        while (store_metrics_append(st, qjob, chunk, (size_t)n, &e) == VAED_ETOOBIG)
            store_flush(st, NULL);
    }
    free(chunk);
    if (store_flush(st, &e))
        die("flush", &e);
    double q[21];
    for (int i = 0; i < 21; i++) {
        store_series sr = {0};
        double a = now();
        if (store_metrics_downsample(st, qjob, -1, -1, STORE_MCOL_ALL, 1000, &sr, &e))
            die("downsample", &e);
        q[i] = (now() - a) * 1e3;
        if (sr.n < 2 || sr.n > 1000 || sr.total != (size_t)qrows || sr.step[0] != 0 ||
            sr.step[sr.n - 1] != qrows - 1) {
            fprintf(stderr, "bench_cluster: downsampled %zu rows of %zu, steps %lld..%lld\n",
                    sr.n, sr.total, sr.n ? (long long)sr.step[0] : -1LL,
                    sr.n ? (long long)sr.step[sr.n - 1] : -1LL);
            return 1;
        }
        store_series_free(&sr);
    }
    qsort(q, 21, sizeof q[0], cmp_double);
    if (store_close(st, &e))
        die("close", &e);
    printf("{\"write_rows\":%ld,\"write_rows_per_sec\":%.0f,\"query_rows\":%ld,\"query_ms\":%.3f}\n",
           wrows, (double)wrows / write_s, qrows, q[10]);
    return 0;
}
