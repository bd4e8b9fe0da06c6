/* datasets.h — the store's side of the dataset registry (POST /v1/datasets): rows of
 * the datasets table (schema v4, store.h), and an upload's bytes (dataset_blobs, v10):
 * the database holds every upload, so a job on any node of a cluster can read it. The store keeps the text it is given; what
 * spec and info mean is api/datasets.c's business:
 *   spec  the dataset object a job naming this dataset trains on (path, format and
 *         format options), JSON text;
 *   info  what GET /v1/datasets shows of its shape, JSON text.
 * Writes go through the writer thread (writer_call.h) and are waited for; reads open
 * their own short-lived read connection (they are rare: a listing, a job submission
 * naming a dataset). */
#ifndef VAED_STORE_DATASETS_H
#define VAED_STORE_DATASETS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct store_dataset {
    int64_t id;
    char *name;                 /* owned */
    char source[8];             /* "file" | "upload" */
    char *spec;                 /* owned, JSON text */
    char *info;                 /* owned, JSON text */
    int64_t size;               /* bytes of the file(s) */
    double created_at;          /* unix seconds */
    char sha256[65];            /* an upload kept in the database: its bytes' SHA-256 in
                                   hex; "" for a server-side file, or an upload of a
                                   build before v10 (its bytes only in its file) */
} store_dataset;

typedef struct store_dataset_new {
    const char *name;           /* NULL → "" */
    const char *source;         /* "file" | "upload" */
    const char *spec, *info;    /* JSON objects as text */
    int64_t size;
    /* Uploads: when path_dir is set, spec's "path" is set to "<path_dir>/<id>.<path_ext>"
     * in the same transaction, since the final file name holds the id. */
    const char *path_dir, *path_ext;
    /* Uploads: the file whose size bytes are kept in the database (dataset_blobs, in
     * parts of STORE_DS_PART bytes) with their SHA-256, in the same transaction. */
    const char *bytes_path;
} store_dataset_new;

#define STORE_DS_PART (1 << 20)

/* Insert a dataset (committed before return). OUT *id. VAED_EINVAL for a bad source or
 * JSON that is not an object, VAED_EDB when the write failed. */
int store_dataset_insert(store *st, const store_dataset_new *nd, int64_t *id, vaed_err *err);

/* OUT *d (free with store_dataset_clear; zeroed on error). VAED_ENOTFOUND when none. */
int store_dataset_get(store *st, int64_t id, store_dataset *d, vaed_err *err);

/* The upload whose spec's path is path (what a job's spec names). OUT *d as
 * store_dataset_get; VAED_ENOTFOUND when no upload is kept at that path. */
int store_dataset_by_path(store *st, const char *path, store_dataset *d, vaed_err *err);

/* Write the bytes of upload d (from store_dataset_get or _by_path) kept in the database
 * to fd, in order, checking their size and SHA-256 against d's. VAED_ENOTFOUND when d
 * has none kept (d->sha256 ""), VAED_EIO when fd's write fails or the bytes are not
 * the ones uploaded, VAED_EDB. */
int store_dataset_fetch(store *st, const store_dataset *d, int fd, vaed_err *err);

/* Every dataset by id. OUT *out (free with store_datasets_free), *n. */
int store_datasets_list(store *st, store_dataset **out, size_t *n, vaed_err *err);

/* Free the strings of d (not d) and zero it; NULL is a no-op. */
void store_dataset_clear(store_dataset *d);
void store_datasets_free(store_dataset *d, size_t n);

#define STORE_DS_MAX_USERS 32

/* The unfinished jobs (queued, running, paused, interrupted) that use a dataset: those
 * whose stored dataset.path or dataset.test_path is the dataset's path or test_path. */
typedef struct store_ds_users {
    size_t n;                   /* jobs found (those past STORE_DS_MAX_USERS not listed) */
    int64_t ids[STORE_DS_MAX_USERS];
} store_ds_users;

/* Delete dataset id unless a job uses it, in one writer operation (the check and the
 * delete see the same state). OUT *gone: the deleted row (may be NULL; the caller
 * clears it), so its file can be removed; *users: the jobs when refused (may be NULL).
 * VAED_ENOTFOUND, VAED_ESTATE (in use: err names the jobs), VAED_EDB. */
int store_dataset_delete(store *st, int64_t id, store_dataset *gone, store_ds_users *users,
                         vaed_err *err);

#endif
