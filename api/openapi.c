/* openapi.c — GET /v1/openapi.json: the OpenAPI 3.0.3 description of every route.
 *
 * The document is api/openapi.json, kept as a JSON file so it can be read, diffed and
 * validated on its own, and compiled into the binary so the daemon needs no data
 * files. It is pulled in with the assembler's .incbin directive: the bytes land in
 * .rodata between two hidden symbols, followed by a NUL, with no generated source
 * and no tool beyond the compiler (GNU as and clang's integrated assembler both do
 * this on ELF). The path is relative to the directory make runs in, the repository
 * root, and the Makefile makes this object depend on the JSON file, since the
 * compiler's -MMD does not see .incbin.
 *
 * tests/unit/test_openapi.c checks that the document parses and describes every
 * route of the table; tests/e2e/prom_openapi.sh runs an OpenAPI 3.0 validator on it. */
#include "api/extra.h"

__asm__(".pushsection .rodata\n"
        ".balign 16\n"
        ".globl vaed_openapi_json_start\n"
        ".hidden vaed_openapi_json_start\n"
        "vaed_openapi_json_start:\n"
        ".incbin \"api/openapi.json\"\n"
        ".globl vaed_openapi_json_end\n"
        ".hidden vaed_openapi_json_end\n"
        "vaed_openapi_json_end:\n"
        ".byte 0\n"
        ".popsection\n");

extern const char vaed_openapi_json_start[] __attribute__((visibility("hidden")));
extern const char vaed_openapi_json_end[] __attribute__((visibility("hidden")));

const char *api_openapi_doc(size_t *len)
{
    if (len)
        *len = (size_t)(vaed_openapi_json_end - vaed_openapi_json_start);
    return vaed_openapi_json_start;
}

void api_h_openapi(api_req *req)
{
    static const char *const none[] = {NULL};
    if (api_query_only(req, none))
        return;
    size_t len;
    const char *doc = api_openapi_doc(&len);
    api_reply_text(req, 200, "application/json", doc, len);
}
