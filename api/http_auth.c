/* http_auth.c — who a request is and what it may do: bearer tokens with scopes, and the
 * audit hook that hears of every state-changing request (http.h: api_token, api_route's
 * scope, api_audit_rec).
 *
 *   tokens   the server's table is cfg.tokens plus cfg.token as an admin token named
 *            "default". A request's Authorization: Bearer value is compared with every
 *            secret, each comparison constant-time in the secret's length and none cut
 *            short by an earlier match, so timing reveals neither a prefix nor which
 *            token matched.
 *   scopes   read < control < admin; a token holds its scope and those below. The route
 *            table names each route's scope (one definition, beside the route). With
 *            tokens configured a request needs a known token unless it is a GET/HEAD of
 *            a READ route and reads are free (--token-reads 0): no token or an unknown
 *            one is 401; a known token below the route's scope is 403
 *            insufficient_scope naming both scopes. An unmatched path is judged by its
 *            method (a GET as a read, anything else as needing a token), so a client
 *            without a token learns nothing of which paths exist.
 *   audit    a request whose method is not GET, HEAD or OPTIONS is told to the hook once,
 *            just before its reply is queued (so a client that has its reply finds it in
 *            the trail), unless it reached a READ route (a computation that changes
 *            nothing: serving, schedule preview) and was not refused 401/403: those are
 *            not mutations, and the dashboard sends one per keystroke. Refusals before
 *            routing (bad path, Host, Origin) are recorded too. */
#include "api/errors.h"
#include "api/http.h"
#include "api/http_impl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define AUDIT_PATH_MAX 1024

static const char *const scope_names[] = {NULL, "read", "control", "admin"};

const char *api_scope_name(int scope)
{
    return scope >= API_SCOPE_READ && scope <= API_SCOPE_ADMIN ? scope_names[scope] : NULL;
}

int api_scope_parse(const char *name)
{
    for (int s = API_SCOPE_READ; name && s <= API_SCOPE_ADMIN; s++)
        if (!strcmp(name, scope_names[s]))
            return s;
    return 0;
}

/* Constant-time in the token's length: the comparison does not stop at the first
 * differing byte, so response timing does not reveal a prefix of the token. */
static int token_equal(const char *given, size_t glen, const char *tok, size_t tlen)
{
    volatile unsigned char d = (unsigned char)(glen != tlen);
    for (size_t i = 0; i < tlen; i++) {
        unsigned char g = i < glen ? (unsigned char)given[i] : 0;
        d |= (unsigned char)(g ^ (unsigned char)tok[i]);
    }
    return d == 0;
}

int http_auth_init(api_server *srv, vaed_err *err)
{
    const api_config *c = &srv->cfg;
    int dflt = c->token && c->token[0];
    size_t n = c->ntokens + (size_t)dflt;
    srv->tokens = xcalloc(n ? n : 1, sizeof *srv->tokens);
    for (size_t i = 0; i < c->ntokens; i++)
        srv->tokens[i] = c->tokens[i];
    if (dflt)
        srv->tokens[c->ntokens] = (api_token){"default", API_SCOPE_ADMIN, c->token};
    srv->ntokens = n;
    for (size_t i = 0; i < n; i++) {
        const api_token *t = &srv->tokens[i];
        if (!t->name || !t->name[0] || !t->secret || !t->secret[0] || !api_scope_name(t->scope))
            return vaed_err_set(err, VAED_EINVAL, "tokens",
                                "token %zu lacks a name, a secret or a scope", i);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(srv->tokens[k].name, t->name) || !strcmp(srv->tokens[k].secret, t->secret))
                return vaed_err_set(err, VAED_EINVAL, "tokens",
                                    "tokens %zu and %zu share a name or a secret", k, i);
    }
    return 0;
}

void http_auth_free(api_server *srv)
{
    free(srv->tokens);
    srv->tokens = NULL;
    srv->ntokens = 0;
}

/* The index of the token the request carries, or -1. */
static int identify(const api_req *req)
{
    const api_server *srv = req->srv;
    const char *h = api_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!srv->ntokens || !h || strncasecmp(h, "Bearer ", 7))
        return -1;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    int found = -1;
    for (size_t i = 0; i < srv->ntokens; i++) {
        const char *s = srv->tokens[i].secret;
        int eq = token_equal(h, n, s, strlen(s));
        found = eq ? (int)i : found; /* no early exit: every secret is compared */
    }
    return found;
}

static int is_read_method(const char *m)
{
    return http_method_is(m, "GET") || http_method_is(m, "HEAD");
}

int http_auth_check(api_req *req)
{
    api_server *srv = req->srv;
    if (!srv->ntokens)
        return 0;
    req->tok = identify(req);
    const int get = is_read_method(req->method);
    const int need = req->route >= 0 ? srv->routes[req->route].scope
                                     : get ? API_SCOPE_READ : API_SCOPE_ADMIN;
    if (get && need == API_SCOPE_READ && !srv->cfg.reads_need_token)
        return 0;
    if (req->tok < 0) {
        api_reply_error(req, 401, "unauthorized", NULL,
                        "a valid \"Authorization: Bearer <token>\" header is required");
        api_set_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"vaed\"");
        return 1;
    }
    const api_token *t = &srv->tokens[req->tok];
    if (req->route < 0 || t->scope >= need)
        return 0;
    const route *r = &srv->routes[req->route];
    const char *code;
    unsigned status = api_refusal_status(API_R_SCOPE, &code);
    char msg[256];
    snprintf(msg, sizeof msg, "%s %s needs a token with scope \"%s\"; token \"%s\" has \"%s\"",
             r->method, r->pattern, api_scope_name(need), t->name, api_scope_name(t->scope));
    api_reply_json(req, status,
                   json_pack("{s:{s:s, s:s, s:s, s:s, s:s}}", "error", "code", code, "message",
                             msg, "field", MHD_HTTP_HEADER_AUTHORIZATION, "scope_required",
                             api_scope_name(need), "scope_held", api_scope_name(t->scope)));
    char www[128];
    snprintf(www, sizeof www, "Bearer realm=\"vaed\", error=\"insufficient_scope\", scope=\"%s\"",
             api_scope_name(need));
    api_set_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www);
    return 1;
}

const char *api_req_token(const api_req *req, int *scope)
{
    if (req->tok < 0) {
        *scope = 0;
        return NULL;
    }
    *scope = req->srv->tokens[req->tok].scope;
    return req->srv->tokens[req->tok].name;
}

int api_server_has_tokens(const api_server *srv)
{
    return srv->ntokens > 0;
}

int api_server_reads_need_token(const api_server *srv)
{
    return srv->cfg.reads_need_token;
}

/* The client's address as text into buf ("" when unknown). */
static void remote_of(const api_req *req, char *buf, size_t cap)
{
    buf[0] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  (socklen_t)cap);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  (socklen_t)cap);
}

void http_auth_audit(api_req *req)
{
    api_server *srv = req->srv;
    if (req->audited || !srv->cfg.audit)
        return;
    req->audited = 1;
    if (is_read_method(req->method) || http_method_is(req->method, "OPTIONS"))
        return;
    if (req->route >= 0 && srv->routes[req->route].scope == API_SCOPE_READ &&
        req->status != 401 && req->status != 403)
        return;
    if (req->tok < 0) /* refused before http_auth_check looked */
        req->tok = identify(req);
    const char *created = NULL;
    for (hdr *h = req->extra; h; h = h->next)
        if (!strcasecmp(h->name, "Location"))
            created = h->value;
    char remote[INET6_ADDRSTRLEN + 1], path[AUDIT_PATH_MAX + 1];
    remote_of(req, remote, sizeof remote);
    snprintf(path, sizeof path, "%s", req->path);
    char *clean = http_utf8_clean(path); /* a cut sequence or stray bytes become '?' */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int scope;
    api_audit_rec rec = {
        .time = (double)ts.tv_sec + ts.tv_nsec * 1e-9,
        .token = api_req_token(req, &scope),
        .remote = remote,
        .method = req->method,
        .path = clean,
        .status = req->status,
        .created = created,
    };
    srv->cfg.audit(srv->cfg.audit_cls, &rec);
    free(clean);
}
