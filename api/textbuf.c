/* textbuf.c — see textbuf.h. */
#include "api/textbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for need more bytes at b->p + b->len; NULL (and oom set) when it cannot be had. */
static char *room(textbuf *b, size_t need)
{
    if (b->oom)
        return NULL;
    if (b->len + need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + need)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->len;
}

void tb_put(textbuf *b, const char *s)
{
    size_t n = strlen(s);
    char *d = room(b, n);
    if (d) {
        memcpy(d, s, n);
        b->len += n;
    }
}

void tb_printf(textbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *d = n >= 0 ? room(b, (size_t)n + 1) : NULL; /* vsnprintf writes the NUL too */
    if (n < 0)
        b->oom = 1;
    if (!d)
        return;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void tb_int(textbuf *b, long long v)
{
    char *d = room(b, 24);
    if (d)
        b->len += (size_t)snprintf(d, 24, "%lld", v);
}

/* ---- printing a double as "%.17g" does, without printf ------------------------------
 *
 * glibc prints "%.17g" through its multi-precision path (a few hundred ns a value),
 * which was most of what a dashboard's poll cost. Seventeen significant digits of a
 * double v = m * 2^e (m < 2^53) are round(v * 10^q) for q = 16 - floor(log10 v), and
 * for the doubles a VAE's curves hold (about 1e-6 to 1e38, whatever their bits) that
 * product is exact in 128-bit integers: m * 10^q / 2^-e when q >= 0 (m * 10^q < 2^127
 * for q <= 22), m * 2^e / 10^-q when q < 0 (m * 2^e < 2^128). The quotient is rounded
 * half to even on the exact remainder, as glibc rounds. Anything else (subnormals,
 * tiny or huge magnitudes) is printed by snprintf. test_textbuf compares both with
 * jansson's own output over random bit patterns, ties and powers-of-ten boundaries. */

__extension__ typedef unsigned __int128 u128;

static const uint64_t pow10_u64[20] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
    100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
    10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
    100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull};

static u128 pow10_u128(int p) /* 0 <= p <= 38 */
{
    return p < 20 ? pow10_u64[p] : (u128)pow10_u64[19] * pow10_u64[p - 19];
}

#define TEN16 10000000000000000ull
#define TEN17 100000000000000000ull

/* round(m * 2^e * 10^q), half to even, into *n; 0 when it is out of reach of 128 bits
 * or not below 2^64. *exceeds is set when the unrounded value is at least 10^17. */
static int scaled(uint64_t m, int e, int q, uint64_t *n, int *exceeds)
{
    u128 quo, rem, den;
    if (q >= 0) {
        if (q > 22)
            return 0;
        u128 num = (u128)m * pow10_u128(q); /* < 2^53 * 2^74 */
        if (e >= 0) {
            if (e > 10 || (num << e) >> e != num)
                return 0;
            quo = num << e;
            rem = 0;
            den = 1;
        } else {
            if (-e > 127)
                return 0;
            den = (u128)1 << -e;
            quo = num >> -e;
            rem = num & (den - 1);
        }
    } else {
        if (q < -38 || e < 0 || e > 74) /* m << e below 2^127 */
            return 0;
        den = pow10_u128(-q);
        u128 num = (u128)m << e;
        quo = num / den;
        rem = num % den;
    }
    if (quo >> 63)
        return 0;
    *exceeds = quo >= TEN17;
    uint64_t r = (uint64_t)quo;
    if (rem > den - rem || (rem == den - rem && (r & 1)))
        r++;
    *n = r;
    return 1;
}

/* The 17 significant digits of positive finite v into d, its decimal exponent into *k;
 * 0 when v is outside the exact integer path. */
static int digits17(double v, char d[17], int *k)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int be = (int)(bits >> 52 & 0x7ff);
    if (be == 0 || be == 0x7ff)
        return 0;
    uint64_t m = (bits & ((1ull << 52) - 1)) | 1ull << 52;
    int e = be - 1075, e2 = be - 1023;  /* v = m * 2^e, 2^e2 <= v < 2^(e2+1) */
    int k10 = (int)floor(e2 * 0.30102999566398119521); /* floor(log10 v) or one less */
    uint64_t n;
    int exceeds;
    if (!scaled(m, e, 16 - k10, &n, &exceeds))
        return 0;
    if (exceeds) {
        k10++;
        if (!scaled(m, e, 16 - k10, &n, &exceeds))
            return 0;
    }
    if (n < TEN16 || n >= TEN17) /* rounded up to a power of ten: left to snprintf */
        return 0;
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                                "31323334353637383940414243444546474849505152535455565758596061"
                                "6263646566676869707172737475767778798081828384858687888990919293"
                                "949596979899";
    for (int i = 15; i >= 1; i -= 2) {
        memcpy(d + i, pairs + 2 * (n % 100), 2);
        n /= 100;
    }
    d[0] = (char)('0' + n);
    *k = k10;
    return 1;
}

/* jansson's text of finite v from snprintf: "%.17g" with the exponent written without
 * '+' and leading zeros ("1e+30" -> "1e30", "1e-05" -> "1e-5") and ".0" added when it
 * would read as an integer. out has at least 32 bytes; returns the length. */
static size_t num_text_printf(double v, char *out)
{
    int n = snprintf(out, 32, "%.17g", v);
    if (n < 0 || n > 24)
        n = snprintf(out, 32, "%.17g", 0.0); /* cannot happen for a finite double */
    char *e = memchr(out, 'e', (size_t)n);
    if (e) {
        char *from = e + 1, *to = e + 1;
        if (*from == '+')
            from++;
        else if (*from == '-')
            from++, to++;
        while (*from == '0' && from[1])
            from++;
        size_t rest = (size_t)(out + n - from);
        memmove(to, from, rest);
        n = (int)(to - out + (ptrdiff_t)rest);
    } else if (!memchr(out, '.', (size_t)n)) {
        out[n++] = '.';
        out[n++] = '0';
    }
    return (size_t)n;
}

/* The JSON text of v into out (at least 32 bytes); returns its length. */
static size_t num_text(double v, char *out)
{
    if (!isfinite(v)) {
        memcpy(out, "null", 4);
        return 4;
    }
    char d[17], *o = out;
    int k;
    if (v == 0 || !digits17(fabs(v), d, &k))
        return num_text_printf(v, out);
    if (v < 0)
        *o++ = '-';
    int nd = 17;
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    if (k >= -4 && k < 17) { /* %g's fixed notation */
        if (k >= 0) {
            for (int i = 0; i <= k; i++)
                *o++ = i < nd ? d[i] : '0';
            *o++ = '.';
            if (nd > k + 1) {
                memcpy(o, d + k + 1, (size_t)(nd - k - 1));
                o += nd - k - 1;
            } else {
                *o++ = '0';
            }
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int i = -1; i > k; i--)
                *o++ = '0';
            memcpy(o, d, (size_t)nd);
            o += nd;
        }
    } else { /* exponent notation, as jansson writes it */
        *o++ = d[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, d + 1, (size_t)(nd - 1));
            o += nd - 1;
        }
        *o++ = 'e';
        if (k < 0)
            *o++ = '-';
        int a = k < 0 ? -k : k; /* at most 38 here */
        if (a >= 10)
            *o++ = (char)('0' + a / 10);
        *o++ = (char)('0' + a % 10);
    }
    return (size_t)(o - out);
}

void tb_num(textbuf *b, double v)
{
    char *d = room(b, 32);
    if (d)
        b->len += num_text(v, d);
}
