/* fuzz_spec.c — libFuzzer target for the job spec parser (vae_spec_parse_text).
 *
 * Any byte string must either be refused with a message, or give a spec that
 * vae_spec_to_json writes back and that parses again to the same document (the
 * contract of spec.h: "parses back to the same spec"). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vae/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vae_spec s;
    vaed_err e;
    vaed_err_clear(&e);
    if (vae_spec_parse_text(&s, (const char *)data, size, &e)) {
        if (!e.msg[0]) {
            fprintf(stderr, "fuzz_spec: refused without a message\n");
            abort();
        }
        return 0;
    }
    json_t *j1 = vae_spec_to_json(&s);
    char *text = json_dumps(j1, JSON_COMPACT | JSON_SORT_KEYS);
    if (!j1 || !text)
        abort();
    vae_spec s2;
    if (vae_spec_parse_text(&s2, text, strlen(text), &e)) {
        fprintf(stderr, "fuzz_spec: written-back spec does not parse: %s\n%s\n", e.msg, text);
        abort();
    }
    json_t *j2 = vae_spec_to_json(&s2);
    if (!json_equal(j1, j2)) {
        char *t2 = json_dumps(j2, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(stderr, "fuzz_spec: round trip differs:\n%s\n%s\n", text, t2);
        abort();
    }
    free(text);
    json_decref(j1);
    json_decref(j2);
    return 0;
}
