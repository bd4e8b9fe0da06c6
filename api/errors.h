/* errors.h — the one map from vaed's error codes (vae/err.h) to HTTP: every route that
 * answers an error from the layers below answers it through here, so a code means the
 * same status everywhere.
 *
 *   VAED_EINVAL    422 invalid        bad input: the field is named
 *   VAED_ETOOBIG   422 too_large      over a configured limit
 *   VAED_EIO       422 unreadable     a file the request names cannot be read
 *   VAED_ENOTFOUND 404 not_found
 *   VAED_ESTATE    409 conflict       not allowed in the current state
 *   VAED_EPERM     403 forbidden      e.g. a path outside --data-dir
 *   VAED_EBUSY     503 busy           try again later; 429 queue_full when the field is
 *                                     "queue" (the job queue is full)
 *   VAED_ENOMEM    503 busy           a request-sized allocation failed: try again
 *   VAED_EDB       503 store_failing  the database cannot be written now: retry later
 *   anything else  500 internal
 *
 * The body is {"error": {"code", "message", "field"}} (api_reply_from_err).
 *
 * The HTTP layer's own refusals of a request's head (api/http_guard.c), before any
 * route runs, go through the second table here, so a refusal too has one status:
 *
 *   API_R_BAD_PATH     400 bad_path          %00 or %2f in a path segment
 *   API_R_DUP_HEADER   400 duplicate_header  a header that must appear once, twice
 *   API_R_BAD_TE       400 bad_transfer_encoding  a Transfer-Encoding other than
 *                                         chunked (400, not 501: abuse.sh holds
 *                                         the layer to 4xx for a malformed head)
 *   API_R_BAD_HOST     421 misdirected       a Host the daemon does not serve
 *   API_R_CROSS_SITE   403 cross_origin      a state change from another origin
 *   API_R_MEDIA_TYPE   415 unsupported_media_type  a body that is not JSON (or npy)
 *   API_R_SCOPE        403 insufficient_scope    a known token whose scope is below the
 *                                         route's (api/http_auth.c) */
#ifndef VAED_API_ERRORS_H
#define VAED_API_ERRORS_H

#include "api/http.h"

/* The status and error code for rc (e may be NULL; its field picks 429 for a full
 * queue). OUT *code: a static string. */
unsigned api_status_of(int rc, const vaed_err *e, const char **code);

/* Answer the request with rc's status and e's message and field. */
int api_reply_vaed(api_req *req, int rc, const vaed_err *e);

enum api_refusal {
    API_R_BAD_PATH,
    API_R_DUP_HEADER,
    API_R_BAD_TE,
    API_R_BAD_HOST,
    API_R_CROSS_SITE,
    API_R_MEDIA_TYPE,
    API_R_SCOPE,
    API_R_COUNT
};

/* The status and code of a refusal (why outside the table: 500 internal). */
unsigned api_refusal_status(int why, const char **code);

/* Answer the request with the refusal's status and code, field and a printf message. */
int api_refuse(api_req *req, int why, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
