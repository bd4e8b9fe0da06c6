/* data_idx.c — the IDX reader (LeCun's MNIST format, as Fashion-MNIST ships it): 1- to
 * 3-D arrays of unsigned bytes (kept as uint8) or of float32/float64 (kept as float32).
 * See data.h (vae_parse_idx); the file readers and gzip are in data.c.
 *
 * Invariants: the header's sizes are untrusted — their products are checked for
 * overflow and the bytes they promise must be exactly the bytes present (none missing,
 * none extra) before the data buffer is allocated; a float value that is not finite or
 * does not fit a float32 is refused naming its item and element.
 *
 * Byte layout (all integers big-endian):
 *     0  u8  0          1  u8  0
 *     2  u8  type: 0x08 unsigned byte (kept uint8), 0x0D float32, 0x0E float64
 *            (both kept as float32)
 *     3  u8  ndims, 1..3 here
 *     4  u32 dims[ndims]
 *     .. data, dims[0] items of dims[1]*dims[2] elements each, row-major
 *   1-D: n = dims[0], dim = 1. 2-D: dim = dims[1]. 3-D (images): dim = rows * cols
 *   and the dataset records rows, cols. */
#include "data.h"
#include "data_impl.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------- IDX ---------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static const char *idx_type_name(int t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    }
    return "unknown";
}

int vae_parse_idx(const void *vbuf, size_t len, const char *name, vae_dataset **out, vaed_err *err)
{
    const unsigned char *b = vbuf;
    name = NAME(name);
    *out = NULL;
    if (len < 4)
        return vaed_err_set(err, VAED_EINVAL, NULL, "%s: %zu bytes is too short for an IDX header",
                            name, len);
    if (b[0] || b[1])
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: bad magic 0x%02X%02X%02X%02X: not an IDX file (an IDX file "
                            "starts with two zero bytes, a type byte and a dimension count)",
                            name, b[0], b[1], b[2], b[3]);
    int type = b[2], nd = b[3];
    size_t esz = type == 0x08 ? 1 : type == 0x0D ? 4 : type == 0x0E ? 8 : 0;
    if (!esz)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: IDX element type 0x%02X (%s) is not supported (0x08 unsigned "
                            "byte, 0x0D float or 0x0E double)",
                            name, type, idx_type_name(type));
    if (nd < 1 || nd > 3)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: IDX file has %d dimensions; 1 to 3 are supported", name, nd);
    size_t hdr = 4 + 4 * (size_t)nd;
    if (len < hdr)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: truncated IDX header (%zu bytes, %d dimensions need %zu)", name,
                            len, nd, hdr);
    uint32_t dims[3] = {1, 1, 1};
    for (int i = 0; i < nd; i++)
        dims[i] = be32(b + 4 + 4 * i);
    if (dims[0] == 0)
        return vaed_err_set(err, VAED_EINVAL, NULL, "%s: IDX header says 0 items", name);
    size_t dim, elems, need;
    if (!data_mul_ok(dims[1], dims[2], &dim))
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: IDX dimensions %u x %u overflow the address space", name,
                            dims[1], dims[2]);
    if (dim == 0)
        return vaed_err_set(err, VAED_EINVAL, NULL, "%s: IDX items have 0 elements", name);
    if (!data_mul_ok(dims[0], dim, &elems) || !data_mul_ok(elems, esz, &need) || elems > LONG_MAX)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: IDX dimensions %u x %zu overflow the address space", name,
                            dims[0], dim);
    size_t have = len - hdr;
    if (have < need)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: truncated: IDX header says %u items of %zu %s elements (%zu "
                            "bytes of data) but the file holds %zu",
                            name, dims[0], dim, idx_type_name(type), need, have);
    if (have > need)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: %zu unexpected bytes after the %zu bytes of data the IDX header "
                            "announces",
                            name, have - need, need);

    const unsigned char *p = b + hdr;
    vae_dataset *d = data_ds_new(type == 0x08 ? VAE_DATA_U8 : VAE_DATA_F32, name);
    d->n = dims[0];
    d->dim = (long)dim;
    if (nd == 3) {
        d->rows = dims[1];
        d->cols = dims[2];
    }
    if (type == 0x08) {
        d->u8 = malloc(elems);
        if (!d->u8)
            goto nomem;
        memcpy(d->u8, p, elems);
    } else {
        size_t fb;
        if (!data_mul_ok(elems, sizeof(float), &fb) || !(d->f32 = malloc(fb)))
            goto nomem;
        for (size_t i = 0; i < elems; i++) {
            double v;
            if (type == 0x0D) {
                uint32_t u = be32(p + 4 * i);
                float f;
                memcpy(&f, &u, 4);
                v = f;
            } else {
                uint64_t u = be64(p + 8 * i);
                memcpy(&v, &u, 8);
            }
            int bad = data_to_f32(v, &d->f32[i]);
            if (bad)
                return data_bad_element(d, bad, name, "item", "element", i, dim, err);
        }
    }
    *out = d;
    return VAED_OK;
nomem:
    vae_dataset_free(d);
    return vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory for %zu elements", name, elems);
}
