/* data.c — the datasets: loading (by format, below), batches, splits. See data.h.
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
 * The formats, each in its own file with its byte layout at the top:
 *   data_idx.c   IDX (MNIST, Fashion-MNIST)        data_npy.c   NPY (numpy)
 *   data_text.c  CSV of numbers, and text (one sequence of UTF-8 symbols per line)
 * This file holds what they share (gzip, reading a file whole, the element checks),
 * vae_data_load, and the dataset object: batch fill, truncation, splits, freeing.
 *
 * Line, row, column and item numbers in messages count from 1. */
#include "data.h"
#include "data_impl.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>


/* ---------- small helpers ---------- */

/* a*b into *r; 0 when it overflows size_t. */
int data_mul_ok(size_t a, size_t b, size_t *r)
{
    return !__builtin_mul_overflow(a, b, r);
}

vae_dataset *data_ds_new(enum vae_data_kind kind, const char *source)
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
const char *data_show(char *dst, size_t cap, const char *s, size_t n)
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

/* ---------- element conversion (IDX and NPY) ---------- */

/* A value that to_f32 refused (bad: 1 non-finite, 2 out of float32 range): free the
 * half-built dataset and say where, as "<name>: <row> N, <col> M ...", 1-based. */
int data_bad_element(vae_dataset *d, int bad, const char *name, const char *row,
                     const char *col, size_t i, size_t dim, vaed_err *err)
{
    vae_dataset_free(d);
    return vaed_err_set(err, VAED_EINVAL, NULL, "%s: %s %zu, %s %zu %s", name, row, i / dim + 1,
                        col, i % dim + 1,
                        bad == 1 ? "is not a finite number" : "is out of float32 range");
}

/* Convert a double to float32 or say why not: 0 ok, 1 NaN/Inf, 2 out of float range. */
int data_to_f32(double v, float *out)
{
    if (!isfinite(v))
        return 1;
    float f = (float)v;
    if (!isfinite(f))
        return 2;
    *out = f;
    return 0;
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
    vae_dataset *t = data_ds_new(d->kind, d->source);
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
