/* fuzz_data.h — what every data-reader fuzz target checks on a dataset that parsed:
 * its shape adds up, vae_dataset_bytes covers it, and a few rows can be turned into a
 * batch (every value finite; uint8 and bernoulli-range data in [0, 1]). */
#ifndef VAED_FUZZ_DATA_H
#define VAED_FUZZ_DATA_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "vae/data.h"

static void fuzz_data_die(const char *target, const char *what, const vae_dataset *d)
{
    fprintf(stderr, "%s: %s (n %ld, dim %ld, kind %d, max_len %d, vocab %d)\n", target, what,
            d->n, d->dim, (int)d->kind, d->max_len, d->vocab);
    abort();
}

/* Check d; on a broken invariant print what and abort (libFuzzer's crash). */
static void fuzz_check_dataset(const char *target, const vae_dataset *d)
{
    if (d->n < 0 || d->dim <= 0)
        fuzz_data_die(target, "bad shape", d);
    size_t need = 0;
    switch (d->kind) {
    case VAE_DATA_U8:
        if (!d->u8 && d->n)
            fuzz_data_die(target, "u8 dataset without data", d);
        need = (size_t)d->n * (size_t)d->dim;
        break;
    case VAE_DATA_F32:
        if (!d->f32 && d->n)
            fuzz_data_die(target, "f32 dataset without data", d);
        need = (size_t)d->n * (size_t)d->dim * 4;
        break;
    case VAE_DATA_SEQ:
        if (d->max_len <= 0 || d->vocab < 2 || d->dim != (long)d->max_len * d->vocab)
            fuzz_data_die(target, "text dataset shape does not add up", d);
        if (!d->symbols || d->symbols[0] == NULL || d->symbols[0][0])
            fuzz_data_die(target, "symbol 0 must be the empty padding symbol", d);
        for (long i = 0; i < d->n * d->max_len; i++)
            if (d->seq[i] < 0 || d->seq[i] >= d->vocab)
                fuzz_data_die(target, "symbol id out of the vocabulary", d);
        need = (size_t)d->n * (size_t)d->max_len * 4;
        break;
    default:
        fuzz_data_die(target, "unknown kind", d);
    }
    if (vae_dataset_bytes(d) < need)
        fuzz_data_die(target, "vae_dataset_bytes undercounts", d);
    /* Batches of the first and last rows; skip absurd widths (memory, not bugs). */
    if (d->n == 0 || d->dim > (1L << 20))
        return;
    long rows[4] = {0, d->n - 1, d->n / 2, 0};
    float *out = malloc(4 * (size_t)d->dim * sizeof *out);
    if (!out)
        return;
    vae_batch_fill(d, rows, 4, out);
    for (long i = 0; i < 4 * d->dim; i++) {
        if (!isfinite(out[i]))
            fuzz_data_die(target, "batch holds a non-finite value", d);
        if (d->kind != VAE_DATA_F32 && (out[i] < 0 || out[i] > 1))
            fuzz_data_die(target, "u8/one-hot batch value outside [0, 1]", d);
    }
    free(out);
}

#endif
