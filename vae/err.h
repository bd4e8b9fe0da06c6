/* err.h — the one error convention of vaed.
 *
 * Functions return 0 on success or a negative VAED_E* code; the human detail goes
 * into a caller-owned vaed_err, in the style of jansson's json_error_t, so it can be
 * copied straight into an HTTP error body or a job's failure reason.
 *
 * Invariant: msg always starts with the field path when there is one
 * ("model.latent: must be a positive integer"), so a message read alone names what
 * was wrong; field holds the bare path ("model.latent") for JSON error bodies. */
#ifndef VAED_ERR_H
#define VAED_ERR_H

#include <stddef.h>

enum {
    VAED_OK = 0,
    VAED_EINVAL = -1,   /* bad input: spec, request, data file contents */
    VAED_EIO = -2,      /* a file could not be opened, read or written */
    VAED_ENOMEM = -3,   /* a request-sized allocation failed */
    VAED_EDIVERGED = -4,/* a NaN or Inf appeared in training */
    VAED_ESTATE = -5,   /* operation not allowed in the current state */
    VAED_ENOTFOUND = -6,
    VAED_EDB = -7,      /* SQLite reported an error */
    VAED_ETOOBIG = -8,  /* over a configured limit */
    VAED_EPERM = -9,    /* not allowed (a path outside the data directory) */
    VAED_EBUSY = -10,   /* a queue or pool is full; try later */
    VAED_EAWAY = -11,   /* another node of the cluster holds the job (daemon/cluster.c) */
};

typedef struct vaed_err {
    char field[128];    /* dotted path of the offending field, "" when none */
    char msg[512];      /* full sentence, prefixed by "field: " when field is set */
} vaed_err;

/* Clear e (NULL is allowed everywhere an err is taken). */
void vaed_err_clear(vaed_err *e);

/* Fill e with field (may be NULL or "") and a printf-style message; returns code so
 * callers can write `return vaed_err_set(err, VAED_EINVAL, "x", "bad");`. */
int vaed_err_set(vaed_err *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefix the existing message with more context ("train.csv: " + msg). */
void vaed_err_prefix(vaed_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocation policy (STYLE.md): small fixed-size allocations abort on failure —
 * there is no sane way on, and they are never sized by a request. Sizes that come
 * from a request or a data file use plain malloc and fail that job or request. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);

#endif
