/* test_textbuf.c — api/textbuf: numbers print as jansson prints them (the oracle:
 * json_dumps of json_real) and read back to the same bits (strtod), also when they come
 * from the per-thread memo, including values whose memo slots collide; non-finite
 * values are null; the buffer grows across many reallocations with exact contents
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

/* A double of every kind: random bits (finite only), small integers, round decimals. */
static double sample(int i)
{
    switch (i % 4) {
    case 0: {
        uint64_t u = next();
        double d;
        memcpy(&d, &u, sizeof d);
        return isfinite(d) ? d : 1.5;
    }
    case 1: return (double)((int64_t)(next() % 2001) - 1000);
    case 2: return (double)(next() % 100000) / 1000.0;
    default: return ldexp((double)(next() % 1000), (int)(next() % 200) - 100);
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
    static double vals[20000];
    for (int i = 0; i < 20000; i++)
        vals[i] = sample(i);
    /* twice: the second pass is served from the memo (20000 values over 8192 slots also
     * makes slots collide and be replaced) */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 20000; i++)
            check_value(vals[i], &bad_text, &bad_bits);
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
