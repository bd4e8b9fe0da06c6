/* tokens.c — the tokens file (see tokens.h). The text is copied once into buf; each
 * line's fields are cut in place there and the tokens point at them. */
#include "api/tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SECRET_MIN 16
#define SECRET_MAX 1024
#define NAME_MAX_LEN 64
#define FILE_MAX (1 << 20)

void api_tokens_free(api_tokens *t)
{
    if (!t)
        return;
    if (t->buf)
        explicit_bzero(t->buf, t->buflen);
    free(t->buf);
    free(t->t);
    memset(t, 0, sizeof *t);
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= NAME_MAX_LEN &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-") == n;
}

static int secret_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < SECRET_MIN || n > SECRET_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

int api_tokens_parse(const char *text, size_t len, const char *what, api_tokens *out,
                     vaed_err *err)
{
    memset(out, 0, sizeof *out);
    if (memchr(text, '\0', len))
        return vaed_err_set(err, VAED_EINVAL, "", "%s: holds a NUL byte", what);
    api_tokens r = {0};
    r.buflen = len + 1;
    r.buf = xmalloc(r.buflen);
    memcpy(r.buf, text, len);
    r.buf[len] = '\0';
    /* a file of at most 1 MiB (api_tokens_load): a slot per line (the abort policy) */
    size_t cap = 1;
    for (const char *q = r.buf; (q = strchr(q, '\n')); q++)
        cap++;
    r.t = xcalloc(cap, sizeof *r.t);
    int *lineno = xcalloc(cap, sizeof *lineno);
    int rc = 0, line = 0;
    char *p = r.buf;
    while (p && *p && rc == 0) {
        line++;
        char *nl = strchr(p, '\n'), *next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        size_t n = strlen(p);
        if (n && p[n - 1] == '\r')
            p[--n] = '\0';
        char *f[4] = {0};
        int nf = 0;
        for (char *q = p; *q && nf < 4;) {
            q += strspn(q, " \t");
            if (!*q)
                break;
            if (nf == 0 && *q == '#')
                break; /* a comment line */
            f[nf++] = q;
            q += strcspn(q, " \t");
            if (*q)
                *q++ = '\0';
        }
        p = next;
        if (nf == 0)
            continue;
        if (nf != 3) {
            rc = vaed_err_set(err, VAED_EINVAL, "",
                              "%s, line %d: want NAME SCOPE SECRET, found %s field%s", what, line,
                              nf > 3 ? "more than 3" : nf == 2 ? "2" : "1", nf == 1 ? "" : "s");
            break;
        }
        int scope = api_scope_parse(f[1]);
        if (!name_ok(f[0]))
            rc = vaed_err_set(err, VAED_EINVAL, "",
                              "%s, line %d: the name (first field) must be 1 to %d of "
                              "A-Z a-z 0-9 . _ @ -", what, line, NAME_MAX_LEN);
        else if (!scope)
            rc = vaed_err_set(err, VAED_EINVAL, "",
                              "%s, line %d: the scope (second field) must be read, control or "
                              "admin", what, line);
        else if (!secret_ok(f[2]))
            rc = vaed_err_set(err, VAED_EINVAL, "",
                              "%s, line %d: the secret (third field) must be %d to %d printable "
                              "ASCII characters without spaces", what, line, SECRET_MIN,
                              SECRET_MAX);
        for (size_t k = 0; rc == 0 && k < r.n; k++) {
            if (!strcmp(r.t[k].name, f[0]))
                rc = vaed_err_set(err, VAED_EINVAL, "",
                                  "%s, line %d: the same name as line %d", what, line, lineno[k]);
            else if (!strcmp(r.t[k].secret, f[2]))
                rc = vaed_err_set(err, VAED_EINVAL, "",
                                  "%s, line %d: the same secret as line %d (each token needs its "
                                  "own)", what, line, lineno[k]);
        }
        if (rc == 0 && r.n == API_TOKENS_MAX)
            rc = vaed_err_set(err, VAED_EINVAL, "", "%s, line %d: more than %d tokens",
                              what, line, API_TOKENS_MAX);
        if (rc)
            break;
        r.t[r.n] = (api_token){f[0], scope, f[2]};
        lineno[r.n++] = line;
    }
    free(lineno);
    if (rc == 0 && r.n == 0)
        rc = vaed_err_set(err, VAED_EINVAL, "", "%s: no tokens (lines NAME SCOPE SECRET)",
                          what);
    if (rc) {
        api_tokens_free(&r);
        return rc;
    }
    *out = r;
    return 0;
}

int api_tokens_load(const char *path, api_tokens *out, vaed_err *err)
{
    memset(out, 0, sizeof *out);
    char what[4200];
    snprintf(what, sizeof what, "tokens file %s", path);
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0) {
        int e = errno;
        if (f)
            fclose(f);
        return vaed_err_set(err, VAED_EIO, "", "%s: %s", what, strerror(e));
    }
    const char *bad = !S_ISREG(sb.st_mode) ? "not a regular file"
                      : (sb.st_mode & 077) ? "group or others may read it (chmod 600)"
                      : sb.st_size > FILE_MAX ? "over 1 MiB"
                                              : NULL;
    if (bad) {
        fclose(f);
        return vaed_err_set(err, sb.st_size > FILE_MAX && S_ISREG(sb.st_mode) && !(sb.st_mode & 077)
                                     ? VAED_EINVAL : VAED_EPERM,
                            "", "%s: %s", what, bad);
    }
    char *buf = xmalloc((size_t)sb.st_size + 1);
    size_t n = fread(buf, 1, (size_t)sb.st_size, f);
    int rerr = ferror(f);
    fclose(f);
    int rc = rerr ? vaed_err_set(err, VAED_EIO, "", "%s: read error", what)
                  : api_tokens_parse(buf, n, what, out, err);
    explicit_bzero(buf, (size_t)sb.st_size + 1);
    free(buf);
    return rc;
}
