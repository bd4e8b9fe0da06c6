/* data_npy.c — the NPY reader (numpy's format): a strict parser of the header's dict
 * literal, 1-D and 2-D arrays of the numeric dtypes, C order, either byte order. See
 * data.h (vae_parse_npy); the file readers and gzip are in data.c.
 *
 * Byte layout:
 *     0  "\x93NUMPY"   6 u8 major (1, 2 or 3)   7 u8 minor
 *     8  header length: u16 LE for version 1, u32 LE for versions 2 and 3
 *     .. header: a Python dict literal {'descr': '<f4', 'fortran_order': False,
 *        'shape': (n, d), } padded with spaces and '\n'
 *     .. data, n*d elements in C order
 *   Accepted: descr '<f4' '<f8' (and '>' big-endian), '|u1' '<u1'; shape (n, d). */
#include "data.h"
#include "data_impl.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- NPY ---------- */

struct npy_hdr {
    char descr[16];
    int have_descr, have_fortran, have_shape;
    int fortran;
    int nd;
    uint64_t shape[8];
};

static void npy_ws(const char **s, const char *e)
{
    while (*s < e && (**s == ' ' || **s == '\t' || **s == '\n' || **s == '\r'))
        (*s)++;
}

/* A quoted Python string into dst (no escapes: numpy never writes any here). */
static int npy_str(const char **s, const char *e, char *dst, size_t cap)
{
    if (*s >= e || (**s != '\'' && **s != '"'))
        return -1;
    char q = *(*s)++;
    size_t n = 0;
    while (*s < e && **s != q) {
        if (n + 1 >= cap)
            return -1;
        dst[n++] = *(*s)++;
    }
    if (*s >= e)
        return -1;
    (*s)++;
    dst[n] = '\0';
    return 0;
}

/* Parse numpy's header dict. Returns 0, or -1 with *why set to what is malformed. */
static int npy_parse_header(const char *s, const char *e, struct npy_hdr *h, const char **why)
{
    memset(h, 0, sizeof *h);
    *why = "header is not a Python dict literal";
    npy_ws(&s, e);
    if (s >= e || *s++ != '{')
        return -1;
    for (;;) {
        char key[32];
        npy_ws(&s, e);
        if (s < e && *s == '}')
            break;
        if (npy_str(&s, e, key, sizeof key))
            return -1;
        npy_ws(&s, e);
        if (s >= e || *s++ != ':')
            return -1;
        npy_ws(&s, e);
        if (!strcmp(key, "descr")) {
            if (npy_str(&s, e, h->descr, sizeof h->descr)) {
                *why = "'descr' is not a simple dtype string (structured dtypes are not supported)";
                return -1;
            }
            h->have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (e - s >= 4 && !memcmp(s, "True", 4)) {
                h->fortran = 1;
                s += 4;
            } else if (e - s >= 5 && !memcmp(s, "False", 5)) {
                s += 5;
            } else {
                *why = "'fortran_order' is neither True nor False";
                return -1;
            }
            h->have_fortran = 1;
        } else if (!strcmp(key, "shape")) {
            *why = "'shape' is not a tuple of integers";
            if (s >= e || *s++ != '(')
                return -1;
            for (;;) {
                npy_ws(&s, e);
                if (s < e && *s == ')') {
                    s++;
                    break;
                }
                if (s >= e || *s < '0' || *s > '9')
                    return -1;
                uint64_t v = 0;
                while (s < e && *s >= '0' && *s <= '9') {
                    if (v > (UINT64_MAX - 9) / 10)
                        return -1;
                    v = v * 10 + (uint64_t)(*s++ - '0');
                }
                if (s < e && *s == 'L') /* Python 2 long literal */
                    s++;
                if (h->nd >= 8)
                    return -1;
                h->shape[h->nd++] = v;
                npy_ws(&s, e);
                if (s < e && *s == ',')
                    s++;
                else if (s < e && *s == ')')
                    continue;
                else
                    return -1;
            }
            h->have_shape = 1;
        } else {
            *why = "header has a key other than 'descr', 'fortran_order' and 'shape'";
            return -1;
        }
        npy_ws(&s, e);
        if (s < e && *s == ',') {
            s++;
            continue;
        }
        npy_ws(&s, e);
        if (s < e && *s == '}')
            break;
        *why = "header is not a Python dict literal";
        return -1;
    }
    if (!h->have_descr || !h->have_fortran || !h->have_shape) {
        *why = !h->have_descr ? "header has no 'descr'"
               : !h->have_shape ? "header has no 'shape'"
                                : "header has no 'fortran_order'";
        return -1;
    }
    return 0;
}

static void shape_str(char *dst, size_t cap, const struct npy_hdr *h)
{
    size_t o = (size_t)snprintf(dst, cap, "(");
    for (int i = 0; i < h->nd && o < cap; i++)
        o += (size_t)snprintf(dst + o, cap - o, "%s%llu", i ? ", " : "",
                              (unsigned long long)h->shape[i]);
    if (o < cap)
        snprintf(dst + o, cap - o, h->nd == 1 ? ",)" : ")");
}

int vae_parse_npy(const void *vbuf, size_t len, const char *name, vae_dataset **out, vaed_err *err)
{
    const unsigned char *b = vbuf;
    name = NAME(name);
    *out = NULL;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6))
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: not a .npy file (it does not start with \\x93NUMPY)", name);
    int major = b[6];
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return vaed_err_set(err, VAED_EINVAL, NULL, "%s: truncated .npy header", name);
        hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0)", name,
                            major, b[7]);
    }
    if (hl > len - off)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: truncated .npy header (%zu bytes announced, %zu present)", name, hl,
                            len - off);
    struct npy_hdr h;
    const char *why;
    if (npy_parse_header((const char *)b + off, (const char *)b + off + hl, &h, &why))
        return vaed_err_set(err, VAED_EINVAL, NULL, "%s: bad .npy header: %s", name, why);
    off += hl;

    char order = h.descr[0], kind = h.descr[1];
    int isz = atoi(h.descr + 2);
    int ok_order = order == '<' || order == '>' || order == '|' || order == '=';
    int is_f = kind == 'f' && (isz == 4 || isz == 8) && order != '|';
    int is_u = kind == 'u' && isz == 1;
    char tail[8];
    snprintf(tail, sizeof tail, "%d", isz);
    if (!ok_order || !(is_f || is_u) || strcmp(h.descr + 2, tail))
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: dtype '%s' is not supported (float32 '<f4', float64 '<f8' or "
                            "uint8 '|u1')",
                            name, h.descr);
    /* '=' is native order; numpy writes '<' or '>' explicitly, so '=' only comes from
     * other writers. Treat it as the host order. */
    int big = order == '>';
    if (order == '=') {
        uint16_t one = 1;
        big = *(unsigned char *)&one == 0;
    }
    if (h.fortran)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: fortran_order is True; only C-order arrays are supported (save "
                            "np.ascontiguousarray(x))",
                            name);
    char shp[128];
    shape_str(shp, sizeof shp, &h);
    if (h.nd != 2)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: shape %s must be 2-D (rows, features); reshape it before saving",
                            name, shp);
    if (h.shape[0] == 0)
        return vaed_err_set(err, VAED_EINVAL, NULL, "%s: shape %s holds no rows", name, shp);
    if (h.shape[1] == 0)
        return vaed_err_set(err, VAED_EINVAL, NULL, "%s: shape %s has rows of 0 features", name,
                            shp);
    size_t elems, need;
    if (h.shape[0] > SIZE_MAX || h.shape[1] > SIZE_MAX ||
        !data_mul_ok((size_t)h.shape[0], (size_t)h.shape[1], &elems) ||
        !data_mul_ok(elems, (size_t)isz, &need) || elems > LONG_MAX)
        return vaed_err_set(err, VAED_EINVAL, NULL, "%s: shape %s overflows the address space",
                            name, shp);
    size_t have = len - off;
    if (have < need)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: truncated: shape %s of '%s' needs %zu bytes of data, the file "
                            "holds %zu",
                            name, shp, h.descr, need, have);
    if (have > need)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: %zu unexpected bytes after the data of shape %s", name,
                            have - need, shp);

    const unsigned char *p = b + off;
    size_t dim = (size_t)h.shape[1];
    vae_dataset *d = data_ds_new(is_u ? VAE_DATA_U8 : VAE_DATA_F32, name);
    d->n = (long)h.shape[0];
    d->dim = (long)dim;
    if (is_u) {
        if (!(d->u8 = malloc(elems)))
            goto nomem;
        memcpy(d->u8, p, elems);
    } else {
        size_t fb;
        if (!data_mul_ok(elems, sizeof(float), &fb) || !(d->f32 = malloc(fb)))
            goto nomem;
        for (size_t i = 0; i < elems; i++) {
            const unsigned char *q = p + (size_t)isz * i;
            uint64_t u = 0;
            for (int k = 0; k < isz; k++) /* assemble the integer in the file's byte order */
                u |= (uint64_t)q[big ? isz - 1 - k : k] << (8 * k);
            double v;
            if (isz == 4) {
                uint32_t u32 = (uint32_t)u;
                float f;
                memcpy(&f, &u32, 4);
                v = f;
            } else {
                memcpy(&v, &u, 8);
            }
            int bad = data_to_f32(v, &d->f32[i]);
            if (bad)
                return data_bad_element(d, bad, name, "row", "column", i, dim, err);
        }
    }
    *out = d;
    return VAED_OK;
nomem:
    vae_dataset_free(d);
    return vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory for %zu elements", name, elems);
}

