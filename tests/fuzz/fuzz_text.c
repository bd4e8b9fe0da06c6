/* fuzz_text.c — libFuzzer target for vae_parse_text. Byte 0 gives max_len (0..15),
 * byte 1 the overlong policy (reject, truncate, skip); the rest is the file.
 * A file that parses must pass the dataset invariants (fuzz_data.h), and parsing the
 * same file again as a test split with the vocabulary of the first parse must succeed
 * and give the very same symbol ids (every character is in its own vocabulary). */
#include <stdint.h>
#include <string.h>

#include "tests/fuzz/fuzz_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int max_len = data[0] & 15;
    enum vae_overlong ol = (enum vae_overlong)(data[1] % 3);
    const char *buf = (const char *)data + 2;
    size_t len = size - 2;
    vae_dataset *d = NULL, *d2 = NULL;
    vaed_err e;
    vaed_err_clear(&e);
    if (vae_parse_text(buf, len, max_len, ol, NULL, "fuzz.txt", &d, &e)) {
        if (d || !e.msg[0]) {
            fprintf(stderr, "fuzz_text: refused without a message, or with a dataset\n");
            abort();
        }
        return 0;
    }
    fuzz_check_dataset("fuzz_text", d);
    /* max_len 0 means "longest line of this file"; pass the first parse's figure so
     * the second parse is asked exactly the same question. */
    if (vae_parse_text(buf, len, d->max_len, ol, d, "fuzz-test.txt", &d2, &e)) {
        fprintf(stderr, "fuzz_text: the file refused against its own vocabulary: %s\n", e.msg);
        abort();
    }
    fuzz_check_dataset("fuzz_text(test split)", d2);
    if (d2->n != d->n || d2->vocab != d->vocab || d2->max_len != d->max_len ||
        memcmp(d->seq, d2->seq, (size_t)d->n * (size_t)d->max_len * sizeof *d->seq)) {
        fprintf(stderr, "fuzz_text: second parse differs (n %ld/%ld, vocab %d/%d)\n", d->n, d2->n,
                d->vocab, d2->vocab);
        abort();
    }
    vae_dataset_free(d2);
    vae_dataset_free(d);
    return 0;
}
