/* fuzz_idx.c — libFuzzer target for vae_parse_idx: any bytes are refused with a
 * message or give a dataset whose invariants hold (fuzz_data.h). Gzip is detected
 * by its first two bytes, so the inflating path is fuzzed too. */
#include <stdint.h>

#include "tests/fuzz/fuzz_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vae_dataset *d = NULL;
    vaed_err e;
    vaed_err_clear(&e);
    if (vae_parse_idx(data, size, "fuzz.idx", &d, &e)) {
        if (d || !e.msg[0]) {
            fprintf(stderr, "fuzz_idx: refused without a message, or with a dataset\n");
            abort();
        }
        return 0;
    }
    fuzz_check_dataset("fuzz_idx", d);
    vae_dataset_free(d);
    return 0;
}
