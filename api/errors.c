/* errors.c — see errors.h: the table is the one place an error code becomes a status. */
#include "api/errors.h"

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
    {VAED_EDB, 503, "store_failing"},
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
    return api_reply_from_err(req, st, code, e);
}
