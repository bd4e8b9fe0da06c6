/* test_errors.c — the one map from error codes to HTTP (api/errors.h), row by row as its
 * header documents it, the full-queue case, and an unknown code. */
#include <stdio.h>
#include <string.h>

#include "api/errors.h"
#include "tests/unit/t.h"

int main(void)
{
    static const struct {
        int rc;
        const char *field;
        unsigned status;
        const char *code;
    } want[] = {
        {VAED_EINVAL, "", 422, "invalid"},     {VAED_ETOOBIG, "", 422, "too_large"},
        {VAED_EIO, "", 422, "unreadable"},     {VAED_ENOTFOUND, "", 404, "not_found"},
        {VAED_ESTATE, "", 409, "conflict"},    {VAED_EPERM, "", 403, "forbidden"},
        {VAED_EBUSY, "", 503, "busy"},         {VAED_EBUSY, "queue", 429, "queue_full"},
        {VAED_ENOMEM, "", 503, "busy"},        {VAED_EDB, "", 503, "store_failing"},
        {VAED_EAWAY, "", 503, "owner_elsewhere"},
        {VAED_EDIVERGED, "", 500, "internal"}, {-99, "", 500, "internal"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        vaed_err e;
        vaed_err_clear(&e);
        snprintf(e.field, sizeof e.field, "%s", want[i].field);
        const char *code = NULL;
        unsigned st = api_status_of(want[i].rc, &e, &code);
        CHECK(st == want[i].status && code && !strcmp(code, want[i].code),
              "rc %d field '%s': %u %s, want %u %s", want[i].rc, want[i].field, st,
              code ? code : "(null)", want[i].status, want[i].code);
    }
    const char *code = NULL;
    CHECK(api_status_of(VAED_EBUSY, NULL, &code) == 503, "no err: EBUSY is 503 busy");
    /* the HTTP layer's refusals, as errors.h lists them */
    static const struct {
        int why;
        unsigned status;
        const char *code;
    } ref[] = {
        {API_R_BAD_PATH, 400, "bad_path"},       {API_R_DUP_HEADER, 400, "duplicate_header"},
        {API_R_BAD_TE, 400, "bad_transfer_encoding"}, {API_R_BAD_HOST, 421, "misdirected"},
        {API_R_CROSS_SITE, 403, "cross_origin"}, {API_R_MEDIA_TYPE, 415, "unsupported_media_type"},
        {API_R_COUNT, 500, "internal"},          {-1, 500, "internal"},
    };
    for (size_t i = 0; i < sizeof ref / sizeof *ref; i++) {
        code = NULL;
        unsigned st = api_refusal_status(ref[i].why, &code);
        CHECK(st == ref[i].status && code && !strcmp(code, ref[i].code),
              "refusal %d: %u %s, want %u %s", ref[i].why, st, code ? code : "(null)",
              ref[i].status, ref[i].code);
    }
    return t_done("test_errors");
}
