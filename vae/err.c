/* err.c — see err.h. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dst = a + b, cut to fit n bytes (messages may be truncated, never overflowed). */
static void join(char *dst, size_t n, const char *a, const char *b)
{
    size_t la = strnlen(a, n - 1), lb = strnlen(b, n - 1 - la);
    memmove(dst + la, b, lb);
    memmove(dst, a, la);
    dst[la + lb] = '\0';
}

void vaed_err_clear(vaed_err *e)
{
    if (e) {
        e->field[0] = '\0';
        e->msg[0] = '\0';
    }
}

int vaed_err_set(vaed_err *e, int code, const char *field, const char *fmt, ...)
{
    if (!e)
        return code;
    char body[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (field && field[0]) {
        snprintf(e->field, sizeof e->field, "%s", field);
        char pre[sizeof e->field + 2];
        snprintf(pre, sizeof pre, "%s: ", e->field);
        join(e->msg, sizeof e->msg, pre, body);
    } else {
        e->field[0] = '\0';
        snprintf(e->msg, sizeof e->msg, "%s", body);
    }
    return code;
}

void vaed_err_prefix(vaed_err *e, const char *fmt, ...)
{
    if (!e)
        return;
    char pre[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char old[sizeof e->msg];
    snprintf(old, sizeof old, "%s", e->msg);
    join(e->msg, sizeof e->msg, pre, old);
}

static void *oom(size_t n)
{
    fprintf(stderr, "vaed: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : oom(n * size);
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}
