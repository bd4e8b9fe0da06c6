/* errors.c — see errors.h: the table is the one place an error code becomes a status. */
#include "api/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int rc;
    unsigned status;
    const char *code;
} map[] = {
    {VAED_EINVAL, 422, "invalid"},       {VAED_ETOOBIG, 422, "too_large"},
    {VAED_EIO, 422, "unreadable"},       {VAED_ENOTFOUND, 404, "not_found"},
    {VAED_ESTATE, 409, "conflict"},      {VAED_EPERM, 403, "forbidden"},
    {VAED_EBUSY, 503, "busy"},           {VAED_ENOMEM, 503, "busy"},
    {VAED_EDB, 503, "store_failing"},    {VAED_EAWAY, 503, "owner_elsewhere"},
};

unsigned api_status_of(int rc, const vaed_err *e, const char **code)
{
    if (rc == VAED_EBUSY && e && !strcmp(e->field, "queue")) {
        *code = "queue_full";
        return 429;
    }
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (map[i].rc == rc) {
            *code = map[i].code;
            return map[i].status;
        }
    *code = "internal";
    return 500;
}

int api_reply_vaed(api_req *req, int rc, const vaed_err *e)
{
    const char *code;
    unsigned st = api_status_of(rc, e, &code);
    if (rc == VAED_EAWAY) /* the owning node answers; or the job moves within a lease */
        api_set_header(req, "Retry-After", "1");
    return api_reply_from_err(req, st, code, e);
}

static const struct {
    unsigned status;
    const char *code;
} refusals[API_R_COUNT] = {
    [API_R_BAD_PATH] = {400, "bad_path"},
    [API_R_DUP_HEADER] = {400, "duplicate_header"},
    [API_R_BAD_TE] = {400, "bad_transfer_encoding"},
    [API_R_BAD_HOST] = {421, "misdirected"},
    [API_R_CROSS_SITE] = {403, "cross_origin"},
    [API_R_MEDIA_TYPE] = {415, "unsupported_media_type"},
    [API_R_SCOPE] = {403, "insufficient_scope"},
};

unsigned api_refusal_status(int why, const char **code)
{
    if (why < 0 || why >= API_R_COUNT) {
        *code = "internal";
        return 500;
    }
    *code = refusals[why].code;
    return refusals[why].status;
}

int api_refuse(api_req *req, int why, const char *field, const char *fmt, ...)
{
    vaed_err e;
    vaed_err_clear(&e);
    snprintf(e.field, sizeof e.field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    const char *code;
    unsigned st = api_refusal_status(why, &code);
    return api_reply_from_err(req, st, code, &e);
}
