/* tokens.h — the tokens file of `vaed serve --tokens-file FILE`: scoped bearer tokens
 * (api_token, http.h), one per line:
 *
 *     # comment lines start with '#'; blank lines are skipped
 *     NAME SCOPE SECRET
 *     alice admin 3f1c0e...           (fields separated by spaces or tabs)
 *
 *   NAME    1..64 of A-Z a-z 0-9 . _ @ -; what the audit trail and /v1/whoami show
 *   SCOPE   read | control | admin
 *   SECRET  16..1024 printable ASCII characters, no spaces (e.g. openssl rand -hex 32)
 *
 * Names and secrets must each be distinct. A bad line is refused with its number and
 * what is wrong with which field, never the field's text: a line whose fields are in the
 * wrong order would otherwise print its secret. The file must be a regular file that
 * neither group nor others may read (mode 0600), as --token-file's. */
#ifndef VAED_API_TOKENS_H
#define VAED_API_TOKENS_H

#include <stddef.h>

#include "api/http.h"

#define API_TOKENS_MAX 1000

typedef struct api_tokens {
    api_token *t;               /* n tokens; their strings point into buf */
    size_t n;
    char *buf;
    size_t buflen;
} api_tokens;

/* Parse text (len bytes; NUL bytes refused). what names the source in messages ("tokens
 * file /etc/vaed/tokens"). OUT *out (free with api_tokens_free; zeroed on error).
 * VAED_EINVAL with err saying "<what>, line N: ..." */
int api_tokens_parse(const char *text, size_t len, const char *what, api_tokens *out,
                     vaed_err *err);

/* Read and parse the file at path: VAED_EIO when it cannot be read, VAED_EPERM when
 * group or others may read it (or it is not a regular file), VAED_EINVAL as above. */
int api_tokens_load(const char *path, api_tokens *out, vaed_err *err);

/* Wipe the secrets and free; NULL or zeroed is a no-op. */
void api_tokens_free(api_tokens *t);

#endif
