/* t.h — the unit-test harness: checks that count, print what differed, and a
 * closing line "N passed, N failed" that exits non-zero on any failure. */
#ifndef VAED_T_H
#define VAED_T_H

#include <math.h>
#include <stdio.h>

static int t_pass, t_fail;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (cond) {                                                              \
            t_pass++;                                                            \
        } else {                                                                 \
            t_fail++;                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

/* |a - b| <= tol * max(1, |a|, |b|) */
#define CHECK_CLOSE(a, b, tol, what)                                             \
    do {                                                                         \
        double a_ = (a), b_ = (b), m_ = fmax(1.0, fmax(fabs(a_), fabs(b_)));     \
        CHECK(fabs(a_ - b_) <= (tol) * m_, "%s: %.10g vs %.10g (diff %.3g)",     \
              (what), a_, b_, fabs(a_ - b_));                                    \
    } while (0)

static inline int t_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, t_pass, t_fail);
    return t_fail ? 1 : 0;
}

#endif
