/* datasets.h — the dataset registry of vaed: POST/GET /v1/datasets,
 * GET/DELETE /v1/datasets/{id}, and jobs that name a registered dataset by id.
 *
 * A registered dataset is a file the daemon may read: either a server-side file
 * inside --data-dir (source "file", registered by path) or a body uploaded to the
 * daemon (source "upload", kept in the database, with a copy as <upload dir>/<id>.<ext>
 * on each node that has used it). Registration validates
 * it like a job's dataset object and loads it once with the real reader, so a
 * registered dataset is known to parse and its shape is known.
 *
 * A job names one with "dataset": {"id": N} (plus, optionally, limit,
 * validation_fraction and binarize, which override the registered values). At
 * submission the id is replaced by the registered dataset object (absolute path,
 * format, options), and that is what the job's stored spec keeps: a restarted or
 * recovered job reads the same file even if the registry changes meanwhile, and a
 * registered dataset cannot be deleted while an unfinished job's spec names its file.
 *
 * Configuration is one object (api_datasets_new), made before the HTTP server
 * and the job manager start, and only read afterwards (so without a lock). */
#ifndef VAED_API_DATASETS_H
#define VAED_API_DATASETS_H

#include <jansson.h>
#include <stddef.h>

#include "api/http.h"
#include "store/store.h"
#include "vae/data.h"
#include "vae/spec.h"

/* The registry's configuration, one object (no process-wide state): data_dir (NULL or
 * "" = no server-side files may be registered) and upload_dir (created 0700 if missing;
 * partial uploads a crash left there are removed). OUT *out (api_datasets_free), NULL
 * on error: VAED_EINVAL naming data-dir or upload-dir, VAED_EIO. The routes reach it
 * through api_ctx.datasets. */
typedef struct api_datasets api_datasets;
int api_datasets_new(api_datasets **out, const char *data_dir, const char *upload_dir,
                     vaed_err *err);
void api_datasets_free(api_datasets *ds);

/* The resolved upload directory (the spooled bodies' directory, api_config.spool_dir). */
const char *api_datasets_upload_dir(const api_datasets *ds);

/* The routes whose body is spooled to a file (api_config.spool_routes). */
extern const char *const api_datasets_spool_routes[];

/* Route handlers (entries of the table in routes.c; api_req_user() is an api_ctx).
 * POST takes either a JSON registration (Content-Type application/json) or an upload
 * (any other body: application/octet-stream, text/csv, text/plain). */
void api_h_datasets_post(api_req *req);
void api_h_datasets_list(api_req *req);
void api_h_datasets_get(api_req *req);
void api_h_datasets_delete(api_req *req);

/* vae_spec_parse, after resolving "dataset": {"id": N} against the registry of st
 * (doc is borrowed and left unchanged). Without dataset.id it is vae_spec_parse.
 * Errors: VAED_EINVAL naming dataset.id (not a positive integer, no such dataset) or
 * dataset.<key> (a key that cannot go with an id), the spec parser's errors, and the
 * store's (VAED_EDB). */
int api_datasets_spec_parse(store *st, vae_spec *out, const json_t *doc, vaed_err *err);

/* Whether path is an uploaded dataset's file: "<upload dir>/<digits>.<npy|csv|txt|idx>"
 * exactly, resolving (when it exists) inside this node's upload directory, or (st not
 * NULL) the path an upload through any node is registered at. The job manager lets such
 * paths through its --data-dir check. */
int api_datasets_owns_path(const api_datasets *ds, store *st, const char *path);

/* The file this node reads for a job's dataset path, in out (n bytes). A path that is
 * no upload's is itself. An upload's is this node's copy, <upload dir>/<id>.<ext>: the
 * uploading node's file, or else written from the bytes the database keeps (checked
 * against their SHA-256, synced, renamed into place whole) the first time a job here
 * needs it. An upload of a build before schema v10 has its bytes only in its file:
 * that path. Errors: the store's (VAED_EIO when the bytes are not the ones uploaded). */
int api_datasets_local_path(const api_datasets *ds, store *st, const char *path, char *out,
                            size_t n, vaed_err *err);

/* At a node's start: delete the upload directory's copies of datasets deleted since
 * (DELETE removes only the copy of the node it was sent to). */
void api_datasets_prune(const api_datasets *ds, store *st);

/* ---- pure parts, exposed for the unit tests ---- */

/* The name of an upload's file, "<digits>.<npy|csv|txt|idx>": a pointer to it in path
 * (its last segment), or NULL when path does not end in one. */
const char *api_datasets_upload_name(const char *path);

/* The dataset object a job trains on: a copy of registered (the stored spec, an
 * object) with job_ds's overrides on top. job_ds must hold "id"; its other keys may
 * only be limit, validation_fraction and binarize. OUT *out: new reference.
 * VAED_EINVAL naming dataset.<key>. */
int api_datasets_merge(const json_t *job_ds, const json_t *registered, json_t **out,
                       vaed_err *err);

/* A query parameter's text as the JSON value the dataset parser expects for key:
 * "header" true/false/1/0 → boolean; "max_len", "limit" → integer; "validation_fraction"
 * → number; anything else, and any text that does not read as the expected type, →
 * the string itself (so the parser reports the type error naming the field). New
 * reference. */
json_t *api_datasets_query_value(const char *key, const char *value);

/* What GET shows of a loaded dataset's shape (new reference): format, kind ("uint8",
 * "float", "text"), rows, width (features per row as the model sees them), shape
 * ([rows, width]; [rows, image rows, image cols] for IDX images; [rows, max_len] for
 * text), max_len and vocab for text, test_rows when there is a test or validation split. */
json_t *api_datasets_info(enum vae_data_format fmt, const vae_dataset *train,
                          const vae_dataset *test);

#endif
