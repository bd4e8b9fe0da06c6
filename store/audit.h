/* audit.h — the store's side of the audit trail (GET /v1/audit): rows of the audit table
 * (schema v7, store.h), one per state-changing request the HTTP layer heard of
 * (api/http_auth.c says which). The store keeps what it is given; it never sees a
 * secret, only a token's name.
 *
 * Writes are queued and not waited for (writer_call.h, store_writer_cast): a request
 * thread never waits on the database for its audit row. The row commits with the next
 * batch (within the flush interval, 1 s by default), so a crash of the process can lose
 * the last second's rows, as it can metric rows; a clean stop commits them. A reader
 * that must see every row recorded before its call runs store_flush first.
 *
 * Retention: each append deletes the rows older than the newest `keep`, in the same
 * savepoint, so the table never holds more than keep rows (STORE_AUDIT_KEEP default). */
#ifndef VAED_STORE_AUDIT_H
#define VAED_STORE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_AUDIT_KEEP 100000

typedef struct store_audit_new {
    double time;                /* unix seconds */
    const char *token;          /* the token's name; NULL: none */
    const char *remote;         /* client address; NULL → "" */
    const char *method, *path;
    int status;
    const char *created;        /* what the request created (its Location); NULL: none */
} store_audit_new;

typedef struct store_audit {
    int64_t id;
    double time;
    char *token;                /* owned; NULL: none */
    char *remote, *method, *path; /* owned */
    int status;
    char *created;              /* owned; NULL: none */
} store_audit;

/* Queue a row (strings copied) and return; keep >= 1 rows at most are kept. Returns 0,
 * VAED_EINVAL (no method or path, keep < 1), or VAED_ETOOBIG when the write queue is
 * full (the row is dropped; the caller may say so). */
int store_audit_append(store *st, const store_audit_new *a, int64_t keep, vaed_err *err);

/* Committed rows, oldest first: with after >= 0 the first limit rows whose id is above
 * after; with after < 0 the newest limit rows. OUT *out (free with store_audits_free),
 * *n, *more (1 when rows past the last one returned exist; after < 0: older ones). */
int store_audit_list(store *st, int64_t after, int limit, store_audit **out, size_t *n,
                     int *more, vaed_err *err);

void store_audits_free(store_audit *a, size_t n);

#endif
