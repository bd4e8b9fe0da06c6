/* data_impl.h — inside the dataset readers (data.c, data_idx.c, data_npy.c,
 * data_text.c): the small helpers they share. Not for use outside vae/data*.c; the
 * door is data.h. */
#ifndef VAED_DATA_IMPL_H
#define VAED_DATA_IMPL_H

#include <stddef.h>

#include "data.h"

/* A name for messages: "<memory>" for a buffer without one. */
#define NAME(n) ((n) && (n)[0] ? (n) : "<memory>")

/* *r = a * b; 0 when it overflows. */
int data_mul_ok(size_t a, size_t b, size_t *r);
/* A new empty dataset of kind, its source named (small, fixed: aborts on failure). */
vae_dataset *data_ds_new(enum vae_data_kind kind, const char *source);
/* s[0..n) made printable into dst (cap bytes) for a message; returns dst. */
const char *data_show(char *dst, size_t cap, const char *s, size_t n);
/* A value data_to_f32 refused (bad: 1 non-finite, 2 out of float32 range): frees the
 * half-built dataset d and says where, "<name>: <row> N, <col> M ...", 1-based from the
 * element index i in rows of dim. Returns VAED_EINVAL. */
int data_bad_element(vae_dataset *d, int bad, const char *name, const char *row,
                     const char *col, size_t i, size_t dim, vaed_err *err);
/* v as a float: 0, or 1 non-finite, 2 out of float range. */
int data_to_f32(double v, float *out);

#endif
