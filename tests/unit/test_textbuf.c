/* test_textbuf.c — api/textbuf: numbers print as jansson prints them (the oracle:
 * json_dumps of json_real, which prints with glibc's "%.17g") and read back to the same
 * bits (strtod): random bit patterns, the magnitudes curves hold, floats widened to
 * double, exact ties at the seventeenth digit (rounded half to even), and the doubles
 * on both sides of every power of ten the integer path reaches; non-finite values are
 * null; the buffer grows across many reallocations with exact contents
 * (checked against a naive concatenation). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/textbuf.h"
#include "t.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A double of every kind: random bits (finite only), small integers, round decimals,
 * scaled integers, log-uniform magnitudes from 1e-8 to 1e40, floats widened to double. */
static double sample(int i)
{
    switch (i % 6) {
    case 0: {
        uint64_t u = next();
        double d;
        memcpy(&d, &u, sizeof d);
        return isfinite(d) ? d : 1.5;
    }
    case 1: return (double)((int64_t)(next() % 2001) - 1000);
    case 2: return (double)(next() % 100000) / 1000.0;
    case 3: return ldexp((double)(next() % 1000), (int)(next() % 200) - 100);
    case 4: {
        double u = (double)(next() >> 11) / 9007199254740992.0;
        return (next() & 1 ? -1 : 1) * pow(10.0, -8 + 48 * u);
    }
    default: {
        double u = (double)(next() >> 11) / 9007199254740992.0;
        return (double)(float)(300 * u - 20);
    }
    }
}

static void check_value(double v, int *bad_text, int *bad_bits)
{
    textbuf b = {0};
    tb_num(&b, v);
    tb_put(&b, "");
    char got[64];
    snprintf(got, sizeof got, "%.*s", (int)b.len, b.p ? b.p : "");
    json_t *r = json_real(v);
    char *want = json_dumps(r, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!want || strcmp(got, want)) {
        if ((*bad_text)++ < 5)
            fprintf(stderr, "tb_num(%a) = \"%s\", jansson \"%s\"\n", v, got, want ? want : "?");
    }
    double back = strtod(got, NULL);
    if (memcmp(&back, &v, sizeof v) && !(v == 0 && back == 0 && signbit(v) == signbit(back))) {
        if ((*bad_bits)++ < 5)
            fprintf(stderr, "tb_num(%a) = \"%s\" reads back as %a\n", v, got, back);
    }
    free(want);
    json_decref(r);
    free(b.p);
}

static void test_numbers(void)
{
    int bad_text = 0, bad_bits = 0;
    for (int i = 0; i < 300000; i++)
        check_value(sample(i), &bad_text, &bad_bits);
    /* exact ties: m * 2^-s with m odd and m * 5^s of 18 digits has an 18th significant
     * digit of 5 and nothing after it */
    int ties = 0;
    for (int s = 1; s <= 60; s++) {
        unsigned __int128 p5 = 1;
        for (int j = 0; j < s; j++)
            p5 *= 5;
        /* m from ceil(10^17 / 5^s) up to min(2^53, 10^18 / 5^s) */
        const unsigned __int128 lo = (unsigned __int128)100000000000000000ull, hi = lo * 10;
        unsigned __int128 mlo = (lo + p5 - 1) / p5, mhi = hi / p5;
        if (mhi > ((unsigned __int128)1 << 53))
            mhi = (unsigned __int128)1 << 53;
        if (mlo >= mhi)
            continue;
        for (int j = 0; j < 200; j++) {
            uint64_t m = (uint64_t)(mlo + next() % (uint64_t)(mhi - mlo)) | 1;
            unsigned __int128 x = (unsigned __int128)m * p5;
            if (x < lo || x >= hi)
                continue;
            check_value(ldexp((double)m, -s), &bad_text, &bad_bits);
            check_value(-ldexp((double)m, -s), &bad_text, &bad_bits);
            ties++;
        }
    }
    CHECK(ties > 1000, "only %d ties were tried", ties);
    /* around each power of ten, and just below it (where the digits round up to it) */
    for (int p = -12; p <= 42; p++) {
        double t = pow(10.0, p), up = t, down = t;
        for (int j = 0; j < 40; j++) {
            check_value(up, &bad_text, &bad_bits);
            check_value(down, &bad_text, &bad_bits);
            check_value(-up, &bad_text, &bad_bits);
            up = nextafter(up, INFINITY);
            down = nextafter(down, 0);
        }
        check_value(t * (1 - 1e-17), &bad_text, &bad_bits);
        check_value(t * 0.99999999999999994, &bad_text, &bad_bits);
        check_value(t * 9.9999999999999995, &bad_text, &bad_bits);
    }
    const double edge[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1e-5, 1e-4, 9.99999999999999955e-5,
                           1e16, 1e17, 123456789012345678.0, 9007199254740993.0, 5e-324,
                           2.2250738585072014e-308, 1.7976931348623157e308, 1e22, 1e23};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        check_value(edge[i], &bad_text, &bad_bits);
    CHECK(bad_text == 0, "%d values printed unlike jansson", bad_text);
    CHECK(bad_bits == 0, "%d values did not read back to their bits", bad_bits);

    const double odd[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        textbuf b = {0};
        tb_num(&b, odd[i]);
        CHECK(b.len == 4 && !memcmp(b.p, "null", 4), "non-finite %g printed as %.*s", odd[i],
              (int)b.len, b.p);
        free(b.p);
    }
}

static void test_growth(void)
{
    textbuf b = {0};
    size_t cap = 1 << 20, n = 0;
    char *naive = malloc(cap);
    for (int i = 0; i < 20000; i++) {
        char piece[64];
        int k;
        switch (i % 3) {
        case 0:
            tb_put(&b, "abc,");
            k = snprintf(piece, sizeof piece, "abc,");
            break;
        case 1:
            tb_int(&b, (long long)i * -977);
            k = snprintf(piece, sizeof piece, "%lld", (long long)i * -977);
            break;
        default:
            tb_printf(&b, "[%d:%s]", i, "x");
            k = snprintf(piece, sizeof piece, "[%d:%s]", i, "x");
        }
        memcpy(naive + n, piece, (size_t)k);
        n += (size_t)k;
    }
    CHECK(!b.oom && b.len == n && !memcmp(b.p, naive, n), "buffer contents differ (%zu vs %zu bytes)",
          b.len, n);
    free(naive);
    free(b.p);
}

int main(void)
{
    test_numbers();
    test_growth();
    return t_done("test_textbuf");
}
