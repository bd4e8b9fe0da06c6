/* data_text.c — the line-based readers (each layout above its vae_parse_*): CSV of numbers,
 * and text, one sequence per line of UTF-8 symbols with the vocabulary built from the
 * file (or reused from the training split). See data.h (vae_parse_csv, vae_parse_text). */
#include "data.h"
#include "data_impl.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
                data_show(shown, sizeof shown, s + a, z - a);
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
    vae_dataset *d = data_ds_new(VAE_DATA_F32, name);
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

    d = data_ds_new(VAE_DATA_SEQ, name);
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
    if (!data_mul_ok((size_t)n, (size_t)L_len, &cells) || !data_mul_ok(cells, sizeof(int32_t), &bytes) ||
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

