/* textbuf.c — see textbuf.h. */
#include "api/textbuf.h"

#include <math.h>
#include <pthread.h>
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

#define NUM_MEMO_BITS 13
#define NUM_MEMO (1u << NUM_MEMO_BITS) /* slots per thread */
struct num_slot {
    uint64_t bits;
    unsigned char len;             /* 0: empty */
    char text[27];
};
static _Thread_local struct num_slot *num_memo;
static pthread_key_t num_memo_key;          /* frees a thread's memo when it exits */
static pthread_once_t num_memo_once = PTHREAD_ONCE_INIT;
static int num_memo_keyed;

static void num_memo_key_make(void)
{
    num_memo_keyed = pthread_key_create(&num_memo_key, free) == 0;
}

/* This thread's memo, made on first use; NULL if it cannot be (then every value is
 * printed afresh). */
static struct num_slot *memo(void)
{
    if (!num_memo) {
        pthread_once(&num_memo_once, num_memo_key_make);
        if (!num_memo_keyed)
            return NULL;
        num_memo = calloc(NUM_MEMO, sizeof *num_memo);
        if (num_memo && pthread_setspecific(num_memo_key, num_memo) != 0) {
            free(num_memo);
            num_memo = NULL;
        }
    }
    return num_memo;
}

/* The JSON text of v into out (at least 32 bytes); returns its length. */
static size_t num_text(double v, char *out)
{
    if (!isfinite(v)) {
        memcpy(out, "null", 4);
        return 4;
    }
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    struct num_slot *m = memo(), *slot = NULL;
    if (m) {
        uint64_t h = bits * 0x9E3779B97F4A7C15ull;
        slot = &m[h >> (64 - NUM_MEMO_BITS)]; /* the top bits of a multiplicative hash */
        if (slot->len && slot->bits == bits) {
            memcpy(out, slot->text, slot->len);
            return slot->len;
        }
    }
    int n = snprintf(out, 32, "%.17g", v);
    if (n < 0 || n > 24)
        n = snprintf(out, 32, "%.17g", 0.0); /* cannot happen for a finite double */
    char *e = memchr(out, 'e', (size_t)n);
    if (e) {
        /* jansson's exponent: no '+', no leading zeros ("1e+30" → "1e30", "1e-05" → "1e-5") */
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
    if (slot) {
        slot->bits = bits;
        slot->len = (unsigned char)n;
        memcpy(slot->text, out, (size_t)n);
    }
    return (size_t)n;
}

void tb_num(textbuf *b, double v)
{
    char *d = room(b, 32);
    if (d)
        b->len += num_text(v, d);
}
