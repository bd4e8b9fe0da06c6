/* fuzz_csv.c — libFuzzer target for vae_parse_csv. The first byte's low bit is the
 * header flag, the rest is the file. Any bytes are refused with a message or give a
 * dataset whose invariants hold (fuzz_data.h): in particular every value is finite,
 * since "nan" and "inf" are not numbers a dataset may hold. */
#include <stdint.h>

#include "tests/fuzz/fuzz_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int header = data[0] & 1;
    vae_dataset *d = NULL;
    vaed_err e;
    vaed_err_clear(&e);
    if (vae_parse_csv((const char *)data + 1, size - 1, header, "fuzz.csv", &d, &e)) {
        if (d || !e.msg[0]) {
            fprintf(stderr, "fuzz_csv: refused without a message, or with a dataset\n");
            abort();
        }
        return 0;
    }
    fuzz_check_dataset("fuzz_csv", d);
    vae_dataset_free(d);
    return 0;
}
