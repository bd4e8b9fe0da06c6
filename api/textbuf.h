/* textbuf.h — a growable text buffer for the replies the API writes by hand (the
 * metrics columns, the event stream's messages), and the one way they print a double.
 * An allocation failure sets oom and makes every later call a no-op, so a writer checks
 * once, at the end. */
#ifndef VAED_TEXTBUF_H
#define VAED_TEXTBUF_H

#include <stddef.h>

typedef struct textbuf {
    char *p;                    /* malloc'd, not NUL-terminated; the caller frees */
    size_t len, cap;
    int oom;
} textbuf;

void tb_put(textbuf *b, const char *s);
void tb_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tb_int(textbuf *b, long long v);

/* v as JSON: jansson's text ("%.17g", with ".0" added when it would read as an
 * integer, exponents without '+' and leading zeros), so replies written here and by
 * json_dumps agree digit for digit; null when not finite (JSON has no NaN). The digits
 * are computed exactly with integer arithmetic, not by printf, for the magnitudes
 * curves hold (textbuf.c). */
void tb_num(textbuf *b, double v);

#endif
