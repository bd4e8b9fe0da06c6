/* test_tokens.c — scoped tokens without a server:
 *  - the tokens file (api/tokens.h): a table of texts, each either parsed into the
 *    expected tokens or refused with a message that names the line and never holds a
 *    secret of the text; the file's mode (0600, as --token-file) and a missing file;
 *  - the scope table (http.h): names round-trip, and the route table (api_routes) gives
 *    every route a scope, reads every GET but the audit trail, never lets a read token
 *    change state (every non-GET read route is one of the computations that change
 *    nothing), and gives the routes the issue names the scope it names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/routes.h"
#include "api/tokens.h"
#include "t.h"

#define S1 "s3cret-0123456789abcdef"
#define S2 "other-secret-XYZ-4567"
#define S3 "third~secret!with#hash"

typedef struct parse_case {
    const char *what, *text;
    int ok;            /* 1: parses */
    size_t n;          /* tokens when ok */
    const char *msg;   /* when refused: a piece the message must hold */
} parse_case;

static const parse_case cases[] = {
    {"one token", "alice admin " S1 "\n", 1, 1, NULL},
    {"no final newline", "alice admin " S1, 1, 1, NULL},
    {"comments, blanks, CRLF, tabs", "# vaed tokens\r\n\r\n  # indented comment\nalice\tadmin\t" S1
     "\r\nbob read " S2 "\n   \ncarol control   " S3 "  \n", 1, 3, NULL},
    {"a '#' inside a secret is the secret's", "carol control " S3 "\n", 1, 1, NULL},
    {"empty", "", 0, 0, "no tokens"},
    {"only comments", "# nothing\n\n", 0, 0, "no tokens"},
    {"two fields", "# c\nalice " S1 "\n", 0, 0, "line 2: want NAME SCOPE SECRET, found 2"},
    {"one field", S1 "\n", 0, 0, "line 1: want NAME SCOPE SECRET, found 1"},
    {"four fields", "alice admin " S1 " extra\n", 0, 0, "more than 3"},
    {"bad scope", "alice write " S1 "\n", 0, 0, "line 1: the scope (second field)"},
    {"scope is case-sensitive", "alice Admin " S1 "\n", 0, 0, "second field"},
    {"fields swapped", "alice " S1 " admin\n", 0, 0, "line 1: the scope"},
    {"bad name", "al/ice admin " S1 "\n", 0, 0, "line 1: the name (first field)"},
    {"name too long",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa admin " S1 "\n", 0, 0,
     "line 1: the name"},
    {"short secret", "alice admin short-secret\n", 0, 0, "line 1: the secret (third field)"},
    {"non-ASCII secret", "alice admin s3cret-0123456789\xc3\xa9\n", 0, 0, "third field"},
    {"duplicate name", "alice admin " S1 "\nbob read " S2 "\nalice read " S3 "\n", 0, 0,
     "line 3: the same name as line 1"},
    {"duplicate secret", "alice admin " S1 "\nbob read " S1 "\n", 0, 0,
     "line 2: the same secret as line 1"},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const parse_case *c = &cases[i];
        api_tokens t;
        vaed_err e;
        vaed_err_clear(&e);
        int rc = api_tokens_parse(c->text, strlen(c->text), "tokens file T", &t, &e);
        if (c->ok) {
            CHECK(rc == 0 && t.n == c->n, "%s: rc %d, %zu tokens (want %zu): %s", c->what, rc,
                  t.n, c->n, e.msg);
        } else {
            CHECK(rc == VAED_EINVAL && t.n == 0 && t.t == NULL, "%s: rc %d, %zu tokens", c->what,
                  rc, t.n);
            CHECK(strstr(e.msg, c->msg) && !strncmp(e.msg, "tokens file T", 13),
                  "%s: message \"%s\" lacks \"%s\"", c->what, e.msg, c->msg);
            const char *secrets[] = {S1, S2, S3, "short-secret", "s3cret-0123456789"};
            for (size_t k = 0; k < sizeof secrets / sizeof *secrets; k++)
                CHECK(!strstr(e.msg, secrets[k]), "%s: the message prints a secret: %s",
                      c->what, e.msg);
        }
        api_tokens_free(&t);
    }
    /* what the tokens hold */
    const char *text = "alice admin " S1 "\nbob read " S2 "\ncarol control " S3 "\n";
    api_tokens t;
    vaed_err e;
    int rc = api_tokens_parse(text, strlen(text), "x", &t, &e);
    CHECK(rc == 0 && t.n == 3, "three tokens: rc %d n %zu", rc, t.n);
    if (rc == 0 && t.n == 3) {
        CHECK(!strcmp(t.t[0].name, "alice") && t.t[0].scope == API_SCOPE_ADMIN &&
                  !strcmp(t.t[0].secret, S1),
              "alice: %s %d %s", t.t[0].name, t.t[0].scope, t.t[0].secret);
        CHECK(!strcmp(t.t[1].name, "bob") && t.t[1].scope == API_SCOPE_READ &&
                  !strcmp(t.t[1].secret, S2),
              "bob: %s %d", t.t[1].name, t.t[1].scope);
        CHECK(!strcmp(t.t[2].name, "carol") && t.t[2].scope == API_SCOPE_CONTROL &&
                  !strcmp(t.t[2].secret, S3),
              "carol: %s %d", t.t[2].name, t.t[2].scope);
    }
    api_tokens_free(&t);
    CHECK(t.t == NULL && t.n == 0 && t.buf == NULL, "free zeroes");
    /* a NUL byte inside the text */
    rc = api_tokens_parse("alice admin " S1 "\0x", sizeof("alice admin " S1 "\0x") - 1, "x", &t, &e);
    CHECK(rc == VAED_EINVAL && strstr(e.msg, "NUL"), "NUL byte: rc %d %s", rc, e.msg);
}

static void test_load(void)
{
    char dir[] = "/tmp/test_tokens.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char p[256];
    snprintf(p, sizeof p, "%s/tokens", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "# test\nalice admin %s\nbob read %s\n", S1, S2);
    fclose(f);
    api_tokens t;
    vaed_err e;
    vaed_err_clear(&e);
    chmod(p, 0600);
    int rc = api_tokens_load(p, &t, &e);
    CHECK(rc == 0 && t.n == 2, "mode 0600: rc %d n %zu %s", rc, t.n, e.msg);
    api_tokens_free(&t);
    chmod(p, 0400);
    rc = api_tokens_load(p, &t, &e);
    CHECK(rc == 0 && t.n == 2, "mode 0400: rc %d %s", rc, e.msg);
    api_tokens_free(&t);
    const mode_t bad[] = {0640, 0604, 0644, 0660};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        chmod(p, bad[i]);
        rc = api_tokens_load(p, &t, &e);
        CHECK(rc == VAED_EPERM && t.n == 0 && strstr(e.msg, "chmod 600") && strstr(e.msg, p),
              "mode %o: rc %d \"%s\"", (unsigned)bad[i], rc, e.msg);
    }
    rc = api_tokens_load(dir, &t, &e);
    CHECK(rc == VAED_EPERM && strstr(e.msg, "not a regular file"), "a directory: rc %d %s", rc,
          e.msg);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none", dir);
    rc = api_tokens_load(missing, &t, &e);
    CHECK(rc == VAED_EIO && strstr(e.msg, missing), "missing: rc %d %s", rc, e.msg);
    unlink(p);
    rmdir(dir);
}

static void test_scopes(void)
{
    CHECK(!strcmp(api_scope_name(API_SCOPE_READ), "read") &&
              !strcmp(api_scope_name(API_SCOPE_CONTROL), "control") &&
              !strcmp(api_scope_name(API_SCOPE_ADMIN), "admin") && !api_scope_name(0) &&
              !api_scope_name(4),
          "scope names");
    for (int s = API_SCOPE_READ; s <= API_SCOPE_ADMIN; s++)
        CHECK(api_scope_parse(api_scope_name(s)) == s, "round trip %d", s);
    CHECK(!api_scope_parse("write") && !api_scope_parse("") && !api_scope_parse(NULL) &&
              !api_scope_parse("READ"),
          "not scopes");
    CHECK(API_SCOPE_READ < API_SCOPE_CONTROL && API_SCOPE_CONTROL < API_SCOPE_ADMIN,
          "admin implies control implies read: the order");

    /* the route table */
    static const char *const computes[] = {"/v1/schedules/preview", "/v1/jobs/{id}/encode",
                                           "/v1/jobs/{id}/decode", "/v1/jobs/{id}/reconstruct",
                                           "/v1/jobs/{id}/sample", "/v1/jobs/{id}/interpolate",
                                           NULL};
    static const struct {
        const char *method, *pattern;
        int scope;
    } named[] = {
        {"GET", "/v1/jobs/{id}/metrics", API_SCOPE_READ},
        {"GET", "/v1/jobs", API_SCOPE_READ},
        {"GET", "/", API_SCOPE_READ},
        {"GET", "/metrics", API_SCOPE_READ},
        {"GET", "/v1/jobs/{id}/events", API_SCOPE_READ},
        {"GET", "/v1/whoami", API_SCOPE_READ},
        {"PUT", "/v1/jobs/{id}/schedule", API_SCOPE_CONTROL},
        {"PUT", "/v1/jobs/{id}/optimizer", API_SCOPE_CONTROL},
        {"POST", "/v1/jobs/{id}/pause", API_SCOPE_CONTROL},
        {"POST", "/v1/jobs/{id}/resume", API_SCOPE_CONTROL},
        {"POST", "/v1/jobs/{id}/cancel", API_SCOPE_CONTROL},
        {"POST", "/v1/jobs/{id}/checkpoints", API_SCOPE_CONTROL},
        {"POST", "/v1/jobs/{id}/evaluations", API_SCOPE_CONTROL},
        {"POST", "/v1/jobs/{id}/evaluations/{eid}/cancel", API_SCOPE_CONTROL},
        {"POST", "/v1/jobs", API_SCOPE_ADMIN},
        {"POST", "/v1/datasets", API_SCOPE_ADMIN},
        {"DELETE", "/v1/datasets/{id}", API_SCOPE_ADMIN},
        {"POST", "/v1/sweeps", API_SCOPE_ADMIN},
        {"POST", "/v1/sweeps/{id}/cancel", API_SCOPE_ADMIN},
        {"GET", "/v1/audit", API_SCOPE_ADMIN},
    };
    size_t n;
    const api_route *r = api_routes(&n);
    size_t found[sizeof named / sizeof *named] = {0};
    for (size_t i = 0; i < n; i++) {
        CHECK(api_scope_name(r[i].scope) != NULL, "%s %s: scope %d is not a scope", r[i].method,
              r[i].pattern, r[i].scope);
        int get = !strcmp(r[i].method, "GET");
        if (get && strcmp(r[i].pattern, "/v1/audit"))
            CHECK(r[i].scope == API_SCOPE_READ, "GET %s: scope %s, a read wants read", r[i].pattern,
                  api_scope_name(r[i].scope) ?: "?");
        if (!get && r[i].scope == API_SCOPE_READ) {
            int ok = 0;
            for (size_t k = 0; computes[k]; k++)
                ok |= !strcmp(computes[k], r[i].pattern);
            CHECK(ok, "%s %s: a read token may call it, but it is not one of the computations "
                      "that change nothing", r[i].method, r[i].pattern);
        }
        for (size_t k = 0; k < sizeof named / sizeof *named; k++)
            if (!strcmp(named[k].method, r[i].method) && !strcmp(named[k].pattern, r[i].pattern)) {
                found[k]++;
                CHECK(r[i].scope == named[k].scope, "%s %s: scope %s, want %s", r[i].method,
                      r[i].pattern, api_scope_name(r[i].scope) ?: "?",
                      api_scope_name(named[k].scope));
            }
    }
    for (size_t k = 0; k < sizeof named / sizeof *named; k++)
        CHECK(found[k] == 1, "%s %s: %zu routes (want 1)", named[k].method, named[k].pattern,
              found[k]);
}

int main(void)
{
    test_parse();
    test_load();
    test_scopes();
    return t_done("test_tokens");
}
