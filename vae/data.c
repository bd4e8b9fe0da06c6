/* data.c — dataset readers (IDX, NPY, CSV, text), batches, splits. See data.h.
 *
 * Every reader first brings the whole file into memory (inflating it when it starts
 * with the gzip magic 1f 8b, whatever the format), then parses that buffer with the
 * matching vae_parse_* function, so the file readers and the memory parsers (fuzzers,
 * uploads) are one code path.
 *
 * Trust: every size read from a file is untrusted. Products of dimensions are checked
 * for overflow, and the bytes a header promises are checked against the bytes present
 * before anything data-sized is allocated. Data-sized buffers use plain malloc and a
 * failure returns VAED_ENOMEM; small fixed structures use xcalloc (err.h policy).
 *
 * Formats, byte by byte:
 *
 *   IDX (LeCun's MNIST format; all integers big-endian)
 *     0  u8  0          1  u8  0
 *     2  u8  type: 0x08 unsigned byte (kept uint8), 0x0D float32, 0x0E float64
 *            (both kept as float32)
 *     3  u8  ndims, 1..3 here
 *     4  u32 dims[ndims]
 *     .. data, dims[0] items of dims[1]*dims[2] elements each, row-major
 *   1-D: n = dims[0], dim = 1. 2-D: dim = dims[1]. 3-D (images): dim = rows * cols
 *   and the dataset records rows, cols.
 *
 *   NPY (numpy's format)
 *     0  "\x93NUMPY"   6 u8 major (1, 2 or 3)   7 u8 minor
 *     8  header length: u16 LE for version 1, u32 LE for versions 2 and 3
 *     .. header: a Python dict literal {'descr': '<f4', 'fortran_order': False,
 *        'shape': (n, d), } padded with spaces and '\n'
 *     .. data, n*d elements in C order
 *   Accepted: descr '<f4' '<f8' (and '>' big-endian), '|u1' '<u1'; shape (n, d).
 *
 *   CSV: comma-separated numbers, one row per line; see vae_parse_csv.
 *   Text: one sequence of UTF-8 characters per line; see vae_parse_text.
 *
 * Line, row, column and item numbers in messages count from 1. */
#include "data.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#define NAME(n) ((n) && (n)[0] ? (n) : "<memory>")

/* ---------- small helpers ---------- */

/* a*b into *r; 0 when it overflows size_t. */
static int mul_ok(size_t a, size_t b, size_t *r)
{
    return !__builtin_mul_overflow(a, b, r);
}

static vae_dataset *ds_new(enum vae_data_kind kind, const char *source)
{
    vae_dataset *d = xcalloc(1, sizeof *d);
    d->kind = kind;
    snprintf(d->source, sizeof d->source, "%s", NAME(source));
    return d;
}

/* Bytes of one row's stored data. */
static size_t row_bytes(const vae_dataset *d)
{
    switch (d->kind) {
    case VAE_DATA_U8: return (size_t)d->dim;
    case VAE_DATA_F32: return (size_t)d->dim * sizeof(float);
    case VAE_DATA_SEQ: return (size_t)d->max_len * sizeof(int32_t);
    }
    return 0;
}

static void *ds_data(const vae_dataset *d)
{
    switch (d->kind) {
    case VAE_DATA_U8: return d->u8;
    case VAE_DATA_F32: return d->f32;
    case VAE_DATA_SEQ: return d->seq;
    }
    return NULL;
}

static void ds_set_data(vae_dataset *d, void *p)
{
    switch (d->kind) {
    case VAE_DATA_U8: d->u8 = p; break;
    case VAE_DATA_F32: d->f32 = p; break;
    case VAE_DATA_SEQ: d->seq = p; break;
    }
}

/* Give back the memory past row n after a truncation. A failed shrinking realloc
 * leaves the old, larger block, which is still correct. */
static void ds_shrink(vae_dataset *d)
{
    size_t sz = (size_t)d->n * row_bytes(d);
    void *p = realloc(ds_data(d), sz ? sz : 1);
    if (p)
        ds_set_data(d, p);
}

/* Copy up to 40 bytes of s into dst for a message, escaping non-printable bytes. */
static const char *show(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = 0, lim = n > 40 ? 40 : n;
    for (size_t i = 0; i < lim && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02X", c);
        else
            dst[o++] = (char)c;
    }
    if (lim < n && o + 4 < cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}

/* ---------- reading files, gzip ---------- */

/* Inflate a gzip stream (possibly several members, as gzip -c a b > c makes) into a
 * new buffer. Errors name the file: truncated stream, corrupt data, trailing bytes. */
static int gunzip(const unsigned char *in, size_t inlen, const char *name, unsigned char **out,
                  size_t *outlen, vaed_err *err)
{
    const size_t CHUNK = (size_t)1 << 30; /* zlib counts in uInt */
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "%s: cannot start zlib", name);

    /* The trailer's ISIZE (length mod 2^32) is a first guess, capped at deflate's
     * best ratio (about 1032:1) so a lying trailer cannot ask for a huge block. */
    size_t cap = 65536;
    if (inlen >= 18) {
        const unsigned char *t = in + inlen - 4;
        size_t isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
        size_t max = inlen > SIZE_MAX / 1032 ? SIZE_MAX : inlen * 1032;
        if (isize > cap)
            cap = isize < max ? isize : max;
    }
    unsigned char *buf = malloc(cap + 1);
    size_t used = 0, left = inlen;
    const unsigned char *ip = in;
    int rc = VAED_OK;
    if (!buf) {
        rc = vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory inflating", name);
        goto done;
    }
    for (;;) {
        if (zs.avail_in == 0 && left) {
            size_t c = left < CHUNK ? left : CHUNK;
            zs.next_in = (unsigned char *)ip;
            zs.avail_in = (uInt)c;
            ip += c;
            left -= c;
        }
        if (used == cap) {
            size_t ncap = cap > SIZE_MAX / 2 - 1 ? SIZE_MAX - 1 : cap * 2;
            unsigned char *nb = ncap > cap ? realloc(buf, ncap + 1) : NULL;
            if (!nb) {
                rc = vaed_err_set(err, VAED_ENOMEM, NULL,
                                  "%s: out of memory inflating (%zu bytes so far)", name, used);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        size_t room = cap - used < CHUNK ? cap - used : CHUNK;
        zs.next_out = buf + used;
        zs.avail_out = (uInt)room;
        int z = inflate(&zs, Z_NO_FLUSH);
        used += room - zs.avail_out;
        if (z == Z_STREAM_END) {
            size_t rest = zs.avail_in + left;
            const unsigned char *nx = zs.avail_in ? zs.next_in : ip;
            if (rest == 0)
                break;
            if (rest >= 2 && nx[0] == 0x1f && nx[1] == 0x8b) {
                inflateReset(&zs); /* next gzip member; input pointers are kept */
                continue;
            }
            rc = vaed_err_set(err, VAED_EINVAL, NULL,
                              "%s: %zu bytes of trailing garbage after the gzip stream", name, rest);
            goto done;
        } else if (z == Z_OK) {
            continue;
        } else if (z == Z_BUF_ERROR && (zs.avail_in || left)) {
            continue;
        } else if (z == Z_BUF_ERROR) {
            rc = vaed_err_set(err, VAED_EINVAL, NULL,
                              "%s: truncated gzip stream (ends after %zu bytes of data)", name, used);
            goto done;
        } else if (z == Z_MEM_ERROR) {
            rc = vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory inflating", name);
            goto done;
        } else {
            rc = vaed_err_set(err, VAED_EINVAL, NULL, "%s: corrupt gzip data (%s)", name,
                              zs.msg ? zs.msg : "inflate failed");
            goto done;
        }
    }
    buf[used] = '\0';
done:
    inflateEnd(&zs);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = used;
    return VAED_OK;
}

/* Read all of path into a new NUL-terminated buffer (*buf, *len exclude the NUL),
 * inflated when it is gzip. field is the spec field an open failure is blamed on
 * (NULL from the public single-file readers). On error *buf is NULL. */
static int slurp(const char *path, const char *field, unsigned char **buf, size_t *len,
                 vaed_err *err)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return vaed_err_set(err, VAED_EIO, field, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return vaed_err_set(err, VAED_EIO, field, "%s: is a directory", path);
    }
    size_t cap = (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
                     ? (size_t)st.st_size + 1
                     : 65536;
    size_t n = 0;
    unsigned char *b = malloc(cap + 1);
    if (!b) {
        fclose(f);
        return vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory reading %zu bytes", path, cap);
    }
    for (;;) {
        if (n == cap) {
            unsigned char *nb = cap < SIZE_MAX / 4 ? realloc(b, cap * 2 + 1) : NULL;
            if (!nb) {
                free(b);
                fclose(f);
                return vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory reading", path);
            }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                int e = errno;
                free(b);
                fclose(f);
                return vaed_err_set(err, VAED_EIO, NULL, "%s: read error: %s", path, strerror(e));
            }
            break;
        }
    }
    fclose(f);
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
        unsigned char *u = NULL;
        size_t un = 0;
        int rc = gunzip(b, n, path, &u, &un, err);
        free(b);
        if (rc)
            return rc;
        *buf = u;
        *len = un;
        return VAED_OK;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return VAED_OK;
}

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

/* A value that to_f32 refused (bad: 1 non-finite, 2 out of float32 range): free the
 * half-built dataset and say where, as "<name>: <row> N, <col> M ...", 1-based. */
static int bad_element(vae_dataset *d, int bad, const char *name, const char *row,
                       const char *col, size_t i, size_t dim, vaed_err *err)
{
    vae_dataset_free(d);
    return vaed_err_set(err, VAED_EINVAL, NULL, "%s: %s %zu, %s %zu %s", name, row, i / dim + 1,
                        col, i % dim + 1,
                        bad == 1 ? "is not a finite number" : "is out of float32 range");
}

/* Convert a double to float32 or say why not: 0 ok, 1 NaN/Inf, 2 out of float range. */
static int to_f32(double v, float *out)
{
    if (!isfinite(v))
        return 1;
    float f = (float)v;
    if (!isfinite(f))
        return 2;
    *out = f;
    return 0;
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
    if (!mul_ok(dims[1], dims[2], &dim))
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: IDX dimensions %u x %u overflow the address space", name,
                            dims[1], dims[2]);
    if (dim == 0)
        return vaed_err_set(err, VAED_EINVAL, NULL, "%s: IDX items have 0 elements", name);
    if (!mul_ok(dims[0], dim, &elems) || !mul_ok(elems, esz, &need) || elems > LONG_MAX)
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
    vae_dataset *d = ds_new(type == 0x08 ? VAE_DATA_U8 : VAE_DATA_F32, name);
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
        if (!mul_ok(elems, sizeof(float), &fb) || !(d->f32 = malloc(fb)))
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
            int bad = to_f32(v, &d->f32[i]);
            if (bad)
                return bad_element(d, bad, name, "item", "element", i, dim, err);
        }
    }
    *out = d;
    return VAED_OK;
nomem:
    vae_dataset_free(d);
    return vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory for %zu elements", name, elems);
}

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
        !mul_ok((size_t)h.shape[0], (size_t)h.shape[1], &elems) ||
        !mul_ok(elems, (size_t)isz, &need) || elems > LONG_MAX)
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
    vae_dataset *d = ds_new(is_u ? VAE_DATA_U8 : VAE_DATA_F32, name);
    d->n = (long)h.shape[0];
    d->dim = (long)dim;
    if (is_u) {
        if (!(d->u8 = malloc(elems)))
            goto nomem;
        memcpy(d->u8, p, elems);
    } else {
        size_t fb;
        if (!mul_ok(elems, sizeof(float), &fb) || !(d->f32 = malloc(fb)))
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
            int bad = to_f32(v, &d->f32[i]);
            if (bad)
                return bad_element(d, bad, name, "row", "column", i, dim, err);
        }
    }
    *out = d;
    return VAED_OK;
nomem:
    vae_dataset_free(d);
    return vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory for %zu elements", name, elems);
}

/* ---------- lines (CSV and text) ---------- */

struct lines {
    const char *p, *end;
    long lineno; /* 1-based number of the line last returned */
};

static void lines_init(struct lines *L, const char *buf, size_t len)
{
    L->p = buf;
    L->end = buf + len;
    L->lineno = 0;
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) /* a UTF-8 byte-order mark is not data */
        L->p += 3;
}

/* Next line without its '\n' and one trailing '\r'. Returns 0 at the end; a final
 * newline does not start an extra empty line. */
static int lines_next(struct lines *L, const char **s, size_t *n)
{
    if (L->p >= L->end)
        return 0;
    const char *nl = memchr(L->p, '\n', (size_t)(L->end - L->p));
    const char *e = nl ? nl : L->end;
    *s = L->p;
    *n = (size_t)(e - L->p);
    if (*n && (*s)[*n - 1] == '\r')
        (*n)--;
    L->p = nl ? nl + 1 : L->end;
    L->lineno++;
    return 1;
}

/* ---------- CSV ---------- */

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Parse one field as a float: 0 ok, 1 not a number, 2 not finite, 3 out of range.
 * strtod follows LC_NUMERIC; vaed never calls setlocale, so it is the "C" locale. */
static int csv_number(const char *s, size_t n, float *out)
{
    char tmp[128];
    if (n == 0 || n >= sizeof tmp || memchr(s, '\0', n))
        return 1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + n)
        return 1;
    if (isnan(v) || (isinf(v) && errno != ERANGE))
        return 2;
    if (isinf(v))
        return 3;
    float f = (float)v;
    if (!isfinite(f))
        return 3;
    *out = f;
    return 0;
}

/* CSV, as vaed reads it: numbers separated by commas, spaces and tabs around them
 * ignored, '\n' or "\r\n" line ends, a leading UTF-8 byte-order mark ignored. With
 * header, line 1 is skipped whatever it holds. Blank lines are skipped. Every row has
 * the columns of the first; an empty field, a token strtod does not consume whole,
 * NaN, Inf and values past float32's range are errors naming the line and the token.
 * No quoting: a quoted number is "not a number". Rows become VAE_DATA_F32. */
int vae_parse_csv(const char *buf, size_t len, int header, const char *name, vae_dataset **out,
                  vaed_err *err)
{
    name = NAME(name);
    *out = NULL;
    struct lines L;
    lines_init(&L, buf, len);
    const char *s;
    size_t sl;
    float *v = NULL;
    size_t nv = 0, cap = 0;
    long cols = -1, n = 0, cols_line = 0;
    int rc = VAED_OK, any = 0;
    char shown[200];
    while (lines_next(&L, &s, &sl)) {
        any = 1;
        if (header && L.lineno == 1)
            continue;
        size_t i = 0;
        while (i < sl && is_blank(s[i]))
            i++;
        if (i == sl) /* blank lines carry no row */
            continue;
        long count = 0;
        for (size_t pos = 0;;) {
            const char *c = memchr(s + pos, ',', sl - pos);
            size_t fe = c ? (size_t)(c - s) : sl, a = pos, z = fe;
            while (a < z && is_blank(s[a]))
                a++;
            while (z > a && is_blank(s[z - 1]))
                z--;
            count++;
            if (a == z) {
                rc = vaed_err_set(err, VAED_EINVAL, NULL, "%s: line %ld: column %ld is empty", name,
                                  L.lineno, count);
                goto fail;
            }
            float f = 0;
            int bad = csv_number(s + a, z - a, &f);
            if (bad) {
                show(shown, sizeof shown, s + a, z - a);
                rc = vaed_err_set(
                    err, VAED_EINVAL, NULL, "%s: line %ld: '%s' %s%s", name, L.lineno, shown,
                    bad == 1   ? "is not a number"
                    : bad == 2 ? "is not a finite number"
                               : "is out of float32 range",
                    bad == 1 && L.lineno == 1 && !header
                        ? " (if line 1 is a header, set dataset.header)"
                        : "");
                goto fail;
            }
            if (nv == cap) {
                size_t ncap = cap ? cap * 2 : 4096;
                float *nb = ncap < SIZE_MAX / sizeof(float) ? realloc(v, ncap * sizeof(float)) : NULL;
                if (!nb) {
                    rc = vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory at line %ld",
                                      name, L.lineno);
                    goto fail;
                }
                v = nb;
                cap = ncap;
            }
            v[nv++] = f;
            if (!c)
                break;
            pos = fe + 1;
        }
        if (cols < 0) {
            cols = count;
            cols_line = L.lineno;
        } else if (count != cols) {
            rc = vaed_err_set(err, VAED_EINVAL, NULL,
                              "%s: line %ld: %ld column%s, expected %ld (as on line %ld)", name,
                              L.lineno, count, count == 1 ? "" : "s", cols, cols_line);
            goto fail;
        }
        n++;
    }
    if (n == 0) {
        rc = vaed_err_set(err, VAED_EINVAL, NULL, "%s: %s", name,
                          !any ? "empty file"
                          : header && L.lineno == 1 ? "no data rows after the header line"
                                                    : "no data rows (only blank lines)");
        goto fail;
    }
    vae_dataset *d = ds_new(VAE_DATA_F32, name);
    d->n = n;
    d->dim = cols;
    float *shrunk = realloc(v, nv * sizeof(float));
    d->f32 = shrunk ? shrunk : v;
    *out = d;
    return VAED_OK;
fail:
    free(v);
    return rc;
}

/* ---------- text ---------- */

#define CP_LIMIT 0x110000u

/* Decode one UTF-8 character of s[0..n). Returns its length and sets *cp, or 0 when
 * the bytes are not valid UTF-8: bad lead or continuation byte, a sequence cut short,
 * an overlong form, a UTF-16 surrogate or a value past U+10FFFF. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n)
        return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v >= CP_LIMIT || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

static int utf8_encode(uint32_t cp, char out[5])
{
    int n;
    if (cp < 0x80) {
        out[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        out[0] = (char)(0xF0 | cp >> 18), out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), out[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    out[n] = '\0';
    return n;
}

/* Code point → symbol id, sorted by code point for binary search. */
struct vocab_entry {
    uint32_t cp;
    int32_t id;
};

static int ventry_cmp(const void *a, const void *b)
{
    uint32_t x = ((const struct vocab_entry *)a)->cp, y = ((const struct vocab_entry *)b)->cp;
    return x < y ? -1 : x > y;
}

static int32_t vocab_find(const struct vocab_entry *v, int nv, uint32_t cp)
{
    int lo = 0, hi = nv;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (v[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nv && v[lo].cp == cp ? v[lo].id : 0;
}

/* Validate a line as UTF-8 and count its characters. Returns 0, or an error naming
 * the line and the offending byte offset. */
static int text_line_check(const char *s, size_t n, const char *name, long lineno, long *chars,
                           vaed_err *err)
{
    long c = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!k) {
            char hex[16];
            snprintf(hex, sizeof hex, "0x%02X", (unsigned char)s[i]);
            return vaed_err_set(err, VAED_EINVAL, NULL,
                                "%s: line %ld: invalid UTF-8 at byte %zu (%s)", name, lineno,
                                i + 1, hex);
        }
        if (cp == 0)
            return vaed_err_set(err, VAED_EINVAL, NULL,
                                "%s: line %ld: contains a NUL character", name, lineno);
        i += (size_t)k;
        c++;
    }
    *chars = c;
    return VAED_OK;
}

/* How many characters of a line of c characters are kept: c, max_len (truncated),
 * or -1 (skipped). REJECT is reported by the caller. */
static long text_keep(long c, int max_len, enum vae_overlong overlong)
{
    if (!max_len || c <= max_len)
        return c;
    return overlong == VAE_LONG_TRUNCATE ? max_len : -1;
}

/* Text, as vaed reads it: one sequence per line, '\n' or "\r\n" line ends, a leading
 * byte-order mark ignored. Symbols are Unicode characters (code points), decoded
 * strictly: invalid UTF-8 and NUL are errors naming the line. Empty lines are skipped
 * (they are not sequences, and files often end in one); every other character,
 * spaces and tabs included, is a symbol. max_len 0 means the longest line; a longer
 * line is an error (REJECT), cut to max_len characters (TRUNCATE) or dropped (SKIP).
 * The vocabulary is id 0 = padding ("") then every character that appears in the
 * kept data, in code-point order, so the same file always gives the same ids. With
 * vocab_from, its vocabulary and its max_len are used instead (the max_len argument
 * is ignored) and a character outside it is an error naming the line.
 * Two passes over the buffer: the first validates and sizes, the second fills, so
 * the only data-sized allocation is the exact n * max_len id array. */
int vae_parse_text(const char *buf, size_t len, int max_len, enum vae_overlong overlong,
                   const vae_dataset *vocab_from, const char *name, vae_dataset **out,
                   vaed_err *err)
{
    name = NAME(name);
    *out = NULL;
    if (vocab_from) {
        if (vocab_from->kind != VAE_DATA_SEQ || !vocab_from->symbols || vocab_from->vocab < 1)
            return vaed_err_set(err, VAED_EINVAL, NULL,
                                "%s: the vocabulary source %s is not a text dataset", name,
                                vocab_from->source);
        max_len = vocab_from->max_len; /* the model's input width is fixed by training */
    }
    if (max_len < 0)
        return vaed_err_set(err, VAED_EINVAL, "dataset.max_len", "must be >= 0 (0 = longest line)");
    if (overlong != VAE_LONG_REJECT && overlong != VAE_LONG_TRUNCATE && overlong != VAE_LONG_SKIP)
        return vaed_err_set(err, VAED_EINVAL, "dataset.overlong", "unknown policy %d",
                            (int)overlong);

    int rc = VAED_OK;
    unsigned char *seen = NULL;       /* bitmap over code points, own vocabulary only */
    struct vocab_entry *voc = NULL;   /* code point → id */
    int nvoc = 0;
    vae_dataset *d = NULL;
    char sym[5];

    if (vocab_from) {
        voc = malloc(sizeof *voc * (size_t)vocab_from->vocab);
        if (!voc) {
            rc = vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory for the vocabulary", name);
            goto fail;
        }
        for (int i = 1; i < vocab_from->vocab; i++) {
            const char *t = vocab_from->symbols[i];
            size_t tl = strlen(t);
            uint32_t cp;
            int k = tl ? utf8_decode((const unsigned char *)t, tl, &cp) : 0;
            if (!k || (size_t)k != tl) {
                rc = vaed_err_set(err, VAED_EINVAL, NULL,
                                  "%s: symbol %d of the vocabulary of %s is not one character",
                                  name, i, vocab_from->source);
                goto fail;
            }
            voc[nvoc].cp = cp;
            voc[nvoc++].id = i;
        }
        qsort(voc, (size_t)nvoc, sizeof *voc, ventry_cmp);
    } else {
        seen = xcalloc(CP_LIMIT / 8, 1);
    }

    /* Pass 1: validate every line, decide what is kept, collect the vocabulary. */
    struct lines L;
    const char *s;
    size_t sl;
    long n = 0, longest = 0, skipped = 0, total = 0;
    lines_init(&L, buf, len);
    while (lines_next(&L, &s, &sl)) {
        long c, keep;
        if ((rc = text_line_check(s, sl, name, L.lineno, &c, err)))
            goto fail;
        if (c == 0) /* empty lines are not sequences; skipping them lets files end in blank lines */
            continue;
        total++;
        keep = text_keep(c, max_len, overlong);
        if (keep < 0 && overlong == VAE_LONG_REJECT) {
            rc = vaed_err_set(err, VAED_EINVAL, NULL,
                              "%s: line %ld: %ld characters, longer than max_len %d "
                              "(dataset.overlong is \"reject\")",
                              name, L.lineno, c, max_len);
            goto fail;
        }
        if (keep < 0) {
            skipped++;
            continue;
        }
        const unsigned char *u = (const unsigned char *)s;
        for (long j = 0, i = 0; j < keep; j++) {
            uint32_t cp;
            i += utf8_decode(u + i, sl - (size_t)i, &cp);
            if (seen) {
                seen[cp >> 3] |= (unsigned char)(1u << (cp & 7));
            } else if (!vocab_find(voc, nvoc, cp)) {
                utf8_encode(cp, sym);
                rc = vaed_err_set(err, VAED_EINVAL, NULL,
                                  "%s: line %ld: character '%s' (U+%04X) is not in the training "
                                  "vocabulary of %s",
                                  name, L.lineno, cp < 0x20 || cp == 0x7F ? "?" : sym, (unsigned)cp,
                                  vocab_from->source);
                goto fail;
            }
        }
        n++;
        if (keep > longest)
            longest = keep;
    }
    if (n == 0) {
        if (total == 0)
            rc = vaed_err_set(err, VAED_EINVAL, NULL, "%s: %s", name,
                              len ? "no non-empty lines" : "empty file");
        else
            rc = vaed_err_set(err, VAED_EINVAL, NULL,
                              "%s: all %ld lines are longer than max_len %d and were skipped", name,
                              skipped, max_len);
        goto fail;
    }
    if (longest > INT_MAX) {
        rc = vaed_err_set(err, VAED_ETOOBIG, NULL, "%s: a line of %ld characters is too long", name,
                          longest);
        goto fail;
    }
    int L_len = max_len ? max_len : (int)longest;

    d = ds_new(VAE_DATA_SEQ, name);
    d->n = n;
    d->max_len = L_len;
    if (seen) {
        /* Own vocabulary: padding, then every character seen, by code point. */
        int count = 0;
        for (uint32_t cp = 0; cp < CP_LIMIT; cp++)
            count += seen[cp >> 3] >> (cp & 7) & 1;
        voc = malloc(sizeof *voc * (size_t)count);
        d->symbols = calloc((size_t)count + 1, sizeof(char *));
        if (!voc || !d->symbols)
            goto nomem;
        d->vocab = count + 1;
        if (!(d->symbols[0] = calloc(1, 1)))
            goto nomem;
        for (uint32_t cp = 0; cp < CP_LIMIT; cp++) {
            if (!(seen[cp >> 3] >> (cp & 7) & 1))
                continue;
            int k = utf8_encode(cp, sym);
            voc[nvoc].cp = cp;
            voc[nvoc].id = nvoc + 1;
            if (!(d->symbols[nvoc + 1] = malloc((size_t)k + 1)))
                goto nomem;
            memcpy(d->symbols[nvoc + 1], sym, (size_t)k + 1);
            nvoc++;
        }
    } else {
        d->symbols = calloc((size_t)vocab_from->vocab, sizeof(char *));
        if (!d->symbols)
            goto nomem;
        d->vocab = vocab_from->vocab;
        for (int i = 0; i < d->vocab; i++)
            if (!(d->symbols[i] = strdup(vocab_from->symbols[i])))
                goto nomem;
    }
    size_t cells, bytes;
    long dim;
    if (!mul_ok((size_t)n, (size_t)L_len, &cells) || !mul_ok(cells, sizeof(int32_t), &bytes) ||
        __builtin_mul_overflow((long)L_len, (long)d->vocab, &dim)) {
        rc = vaed_err_set(err, VAED_ETOOBIG, NULL,
                          "%s: %ld sequences of %d positions over %d symbols is too large", name, n,
                          L_len, d->vocab);
        goto fail;
    }
    d->dim = dim;
    if (!(d->seq = calloc(cells ? cells : 1, sizeof(int32_t))))
        goto nomem;

    /* Pass 2: the same lines, the same decisions, now writing symbol ids. */
    long row = 0;
    lines_init(&L, buf, len);
    while (lines_next(&L, &s, &sl)) {
        long c;
        text_line_check(s, sl, name, L.lineno, &c, NULL); /* passed in pass 1 */
        long keep = c ? text_keep(c, max_len, overlong) : -1;
        if (keep < 0)
            continue;
        const unsigned char *u = (const unsigned char *)s;
        int32_t *dst = d->seq + (size_t)row * (size_t)L_len;
        for (long j = 0, i = 0; j < keep; j++) {
            uint32_t cp;
            i += utf8_decode(u + i, sl - (size_t)i, &cp);
            dst[j] = vocab_find(voc, nvoc, cp);
        }
        row++;
    }
    free(seen);
    free(voc);
    *out = d;
    return VAED_OK;
nomem:
    rc = vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory", name);
fail:
    free(seen);
    free(voc);
    vae_dataset_free(d);
    return rc;
}

/* ---------- file readers ---------- */

static int read_any(enum vae_data_format fmt, const char *path, const char *field, int header,
                    int max_len, enum vae_overlong overlong, const vae_dataset *vocab_from,
                    vae_dataset **out, vaed_err *err)
{
    unsigned char *buf;
    size_t len;
    *out = NULL;
    int rc = slurp(path, field, &buf, &len, err);
    if (rc)
        return rc;
    switch (fmt) {
    case VAE_FMT_IDX: rc = vae_parse_idx(buf, len, path, out, err); break;
    case VAE_FMT_NPY: rc = vae_parse_npy(buf, len, path, out, err); break;
    case VAE_FMT_CSV: rc = vae_parse_csv((char *)buf, len, header, path, out, err); break;
    case VAE_FMT_TEXT:
        rc = vae_parse_text((char *)buf, len, max_len, overlong, vocab_from, path, out, err);
        break;
    default: rc = vaed_err_set(err, VAED_EINVAL, "dataset.format", "no format given"); break;
    }
    free(buf);
    return rc;
}

int vae_read_idx(const char *path, vae_dataset **out, vaed_err *err)
{
    return read_any(VAE_FMT_IDX, path, NULL, 0, 0, VAE_LONG_REJECT, NULL, out, err);
}

int vae_read_npy(const char *path, vae_dataset **out, vaed_err *err)
{
    return read_any(VAE_FMT_NPY, path, NULL, 0, 0, VAE_LONG_REJECT, NULL, out, err);
}

int vae_read_csv(const char *path, int header, vae_dataset **out, vaed_err *err)
{
    return read_any(VAE_FMT_CSV, path, NULL, header, 0, VAE_LONG_REJECT, NULL, out, err);
}

int vae_read_text(const char *path, int max_len, enum vae_overlong overlong,
                  const vae_dataset *vocab_from, vae_dataset **out, vaed_err *err)
{
    return read_any(VAE_FMT_TEXT, path, NULL, 0, max_len, overlong, vocab_from, out, err);
}

/* ---------- vae_data_load ---------- */

static int ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && !strncasecmp(s + n - k, suf, k);
}

/* The format a file name implies (".gz" ignored), or VAE_FMT_NONE. */
static enum vae_data_format format_from_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (ends_with(base, n, ".gz"))
        n -= 3;
    if (ends_with(base, n, ".npy"))
        return VAE_FMT_NPY;
    if (ends_with(base, n, ".csv"))
        return VAE_FMT_CSV;
    if (ends_with(base, n, ".txt"))
        return VAE_FMT_TEXT;
    if (ends_with(base, n, ".idx") || ends_with(base, n, "-ubyte"))
        return VAE_FMT_IDX;
    return VAE_FMT_NONE;
}

static const char *kind_name(enum vae_data_kind k)
{
    return k == VAE_DATA_U8 ? "uint8" : k == VAE_DATA_F32 ? "float" : "text";
}

/* Decisions beyond data.h: dataset.format may be left out when the file name says it
 * (.idx/-ubyte, .npy, .csv, .txt, each optionally .gz). dataset.limit applies first,
 * then validation_fraction holds out the last round(fraction * n) of the limited rows;
 * a limit past the file's rows keeps them all. fashion-mnist uses its shipped t10k
 * test split, so test_path and validation_fraction are errors with it, as are a name
 * and a path together. A test split must match the training split's kind and width.
 * Open failures name the spec field (dataset.path, dataset.test_path, dataset.name);
 * content errors name the file. */
int vae_data_load(const vae_data_spec *spec, vae_dataset **train, vae_dataset **test,
                  vaed_err *err)
{
    vae_dataset *tr = NULL, *te = NULL;
    int rc = VAED_OK;
    const char *test_field = "dataset.test_path";
    double vf = spec->validation_fraction;
    *train = *test = NULL;

    if (spec->limit < 0)
        return vaed_err_set(err, VAED_EINVAL, "dataset.limit", "must be >= 0 (0 = all rows), got %ld",
                            spec->limit);
    if (!(vf >= 0 && vf < 1))
        return vaed_err_set(err, VAED_EINVAL, "dataset.validation_fraction",
                            "must be in [0, 1), got %g", vf);

    if (spec->name[0]) {
        if (strcmp(spec->name, "fashion-mnist"))
            return vaed_err_set(err, VAED_EINVAL, "dataset.name",
                                "unknown dataset '%s' (known: fashion-mnist); for a file of your "
                                "own give dataset.path and dataset.format instead",
                                spec->name);
        if (spec->path[0])
            return vaed_err_set(err, VAED_EINVAL, "dataset.path",
                                "cannot be combined with dataset.name \"%s\"; give one", spec->name);
        if (spec->test_path[0])
            return vaed_err_set(err, VAED_EINVAL, "dataset.test_path",
                                "fashion-mnist ships its own test split; leave test_path out");
        if (vf > 0)
            return vaed_err_set(err, VAED_EINVAL, "dataset.validation_fraction",
                                "fashion-mnist ships its own test split; must be 0");
        if (spec->format != VAE_FMT_NONE && spec->format != VAE_FMT_IDX)
            return vaed_err_set(err, VAED_EINVAL, "dataset.format",
                                "fashion-mnist is IDX; leave format out");
        const char *dir = getenv("VAED_FASHION_MNIST_DIR");
        if (!dir || !dir[0])
            dir = VAE_FASHION_MNIST_DIR;
        char p[1200];
        snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
        if (!(rc = read_any(VAE_FMT_IDX, p, "dataset.name", 0, 0, 0, NULL, &tr, err))) {
            snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
            rc = read_any(VAE_FMT_IDX, p, "dataset.name", 0, 0, 0, NULL, &te, err);
        }
        if (rc == VAED_EIO && err) {
            size_t k = strlen(err->msg);
            snprintf(err->msg + k, sizeof err->msg - k,
                     " (install the Debian package dataset-fashion-mnist, or set "
                     "VAED_FASHION_MNIST_DIR)");
        }
        if (rc)
            goto fail;
        test_field = "dataset.name";
    } else {
        if (!spec->path[0])
            return vaed_err_set(err, VAED_EINVAL, "dataset.path",
                                "required when dataset.name is not given");
        enum vae_data_format fmt = spec->format;
        if (fmt == VAE_FMT_NONE)
            fmt = format_from_name(spec->path);
        if (fmt == VAE_FMT_NONE)
            return vaed_err_set(err, VAED_EINVAL, "dataset.format",
                                "required: cannot tell the format of '%s' from its name (idx, npy, "
                                "csv or text)",
                                spec->path);
        if (fmt < VAE_FMT_IDX || fmt > VAE_FMT_TEXT)
            return vaed_err_set(err, VAED_EINVAL, "dataset.format", "unknown format %d", (int)fmt);
        if (spec->test_path[0] && vf > 0)
            return vaed_err_set(err, VAED_EINVAL, "dataset.validation_fraction",
                                "cannot be combined with dataset.test_path; give one");
        if ((rc = read_any(fmt, spec->path, "dataset.path", spec->csv_header, spec->max_len,
                           spec->overlong, NULL, &tr, err)))
            goto fail;
        if (spec->test_path[0] &&
            (rc = read_any(fmt, spec->test_path, "dataset.test_path", spec->csv_header,
                           spec->max_len, spec->overlong, tr, &te, err)))
            goto fail;
    }

    /* limit first, then the validation split: "limit 1000, fraction 0.1" trains on
     * 900 rows and validates on the 100 after them, whatever the file's size. */
    if (spec->limit > 0 && spec->limit < tr->n) {
        vae_dataset_truncate(tr, spec->limit);
        ds_shrink(tr);
    }
    if (te) {
        if (te->kind != tr->kind || te->dim != tr->dim) {
            rc = vaed_err_set(err, VAED_EINVAL, test_field,
                              "the test data %s has %s rows of %ld features, the training data "
                              "%s has %s rows of %ld",
                              te->source, kind_name(te->kind), te->dim, tr->source,
                              kind_name(tr->kind), tr->dim);
            goto fail;
        }
    } else if (vf > 0) {
        double want = floor(vf * (double)tr->n + 0.5);
        if (want < 1 || want >= (double)tr->n) {
            rc = vaed_err_set(err, VAED_EINVAL, "dataset.validation_fraction",
                              "%g of %ld training rows holds out %.0f; both the training and the "
                              "validation split need at least one row",
                              vf, tr->n, want);
            goto fail;
        }
        if ((rc = vae_dataset_split_tail(tr, (long)want, &te, err)))
            goto fail;
    }
    *train = tr;
    *test = te;
    return VAED_OK;
fail:
    vae_dataset_free(tr);
    vae_dataset_free(te);
    return rc;
}

/* ---------- batches and housekeeping ---------- */

void vae_batch_fill(const vae_dataset *d, const long *rows, int b, float *out)
{
    size_t dim = (size_t)d->dim;
    for (int i = 0; i < b; i++) {
        float *o = out + (size_t)i * dim;
        size_t r = (size_t)rows[i];
        switch (d->kind) {
        case VAE_DATA_U8: {
            const uint8_t *src = d->u8 + r * dim;
            for (size_t j = 0; j < dim; j++)
                o[j] = (float)src[j] / 255.0f;
            break;
        }
        case VAE_DATA_F32:
            memcpy(o, d->f32 + r * dim, dim * sizeof(float));
            break;
        case VAE_DATA_SEQ: {
            /* One-hot per position; padding is symbol 0 and gets its one-hot too, so
             * the decoder learns to emit padding after the end of a sequence. */
            const int32_t *src = d->seq + r * (size_t)d->max_len;
            memset(o, 0, dim * sizeof(float));
            for (int p = 0; p < d->max_len; p++)
                o[(size_t)p * (size_t)d->vocab + (size_t)src[p]] = 1.0f;
            break;
        }
        }
    }
}

void vae_dataset_truncate(vae_dataset *d, long n)
{
    if (d && n >= 0 && n < d->n)
        d->n = n;
}

int vae_dataset_split_tail(vae_dataset *d, long count, vae_dataset **tail, vaed_err *err)
{
    *tail = NULL;
    if (count < 1 || count >= d->n)
        return vaed_err_set(err, VAED_EINVAL, NULL,
                            "%s: cannot split off %ld of %ld rows (need 1 to %ld)", d->source, count,
                            d->n, d->n - 1);
    vae_dataset *t = ds_new(d->kind, d->source);
    size_t rb = row_bytes(d);
    size_t bytes = (size_t)count * rb;
    t->n = count;
    t->dim = d->dim;
    t->max_len = d->max_len;
    t->rows = d->rows;
    t->cols = d->cols;
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        goto nomem;
    memcpy(p, (const char *)ds_data(d) + (size_t)(d->n - count) * rb, bytes);
    ds_set_data(t, p);
    if (d->kind == VAE_DATA_SEQ) {
        if (!(t->symbols = calloc((size_t)d->vocab, sizeof(char *))))
            goto nomem;
        t->vocab = d->vocab;
        for (int i = 0; i < d->vocab; i++)
            if (!(t->symbols[i] = strdup(d->symbols[i])))
                goto nomem;
    }
    d->n -= count;
    ds_shrink(d);
    *tail = t;
    return VAED_OK;
nomem:
    vae_dataset_free(t);
    return vaed_err_set(err, VAED_ENOMEM, NULL, "%s: out of memory splitting off %ld rows",
                        d->source, count);
}

size_t vae_dataset_bytes(const vae_dataset *d)
{
    if (!d)
        return 0;
    size_t b = sizeof *d + (size_t)d->n * row_bytes(d);
    if (d->symbols) {
        b += (size_t)d->vocab * sizeof(char *);
        for (int i = 0; i < d->vocab; i++)
            if (d->symbols[i])
                b += strlen(d->symbols[i]) + 1;
    }
    return b;
}

void vae_dataset_free(vae_dataset *d)
{
    if (!d)
        return;
    free(d->u8);
    free(d->f32);
    free(d->seq);
    if (d->symbols)
        for (int i = 0; i < d->vocab; i++)
            free(d->symbols[i]);
    free(d->symbols);
    free(d);
}
