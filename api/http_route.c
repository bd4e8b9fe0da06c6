/* http_route.c — the route table's patterns (syntax at the top of http.h): parsing
 * "/v1/jobs/{id}/metrics" into segments, matching a request's path against them, and
 * choosing the route (404, or 405 with the Allow header, when none fits). */
#include "api/http.h"
#include "api/http_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- patterns */

void http_route_free(route *r)
{
    for (size_t i = 0; i < r->nseg; i++)
        free(r->segs[i].text);
}

int http_route_parse(route *r, vaed_err *err)
{
    const char *p = r->pattern;
    if (!p || p[0] != '/')
        return vaed_err_set(err, VAED_EINVAL, "routes", "pattern \"%s\" must start with /",
                            p ? p : "(null)");
    p++;
    size_t nparam = 0;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (r->nseg == MAX_SEGS)
            return vaed_err_set(err, VAED_EINVAL, "routes", "pattern \"%s\" has over %d segments",
                                r->pattern, MAX_SEGS);
        seg *s = &r->segs[r->nseg++];
        if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
            char *name = xmalloc(n - 1);
            memcpy(name, p + 1, n - 2);
            name[n - 2] = '\0';
            s->kind = SEG_POS;
            char *colon = strchr(name, ':');
            if (colon) {
                *colon = '\0';
                if (!strcmp(colon + 1, "u"))
                    s->kind = SEG_UINT;
                else if (!strcmp(colon + 1, "s"))
                    s->kind = SEG_STR;
                else
                    s->kind = -1;
            }
            s->text = name;
            if (s->kind < 0 || !name[0] || strpbrk(name, "{}") || ++nparam > MAX_PARAMS)
                return vaed_err_set(err, VAED_EINVAL, "routes", "pattern \"%s\": bad parameter",
                                    r->pattern);
        } else {
            s->kind = SEG_LIT;
            s->text = xmalloc(n + 1);
            memcpy(s->text, p, n);
            s->text[n] = '\0';
            if (strpbrk(s->text, "{}"))
                return vaed_err_set(err, VAED_EINVAL, "routes", "pattern \"%s\": stray brace",
                                    r->pattern);
        }
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

/* Does route r match the request's segments? On success fills names/vals with
 * the parameters and returns their count + 1; returns 0 on no match. */
static size_t route_match(const route *r, const api_req *req, const char **names,
                          const char **vals)
{
    if (r->nseg != req->nseg)
        return 0;
    size_t np = 0;
    for (size_t i = 0; i < r->nseg; i++) {
        const seg *s = &r->segs[i];
        const char *v = req->segp[i];
        switch (s->kind) {
        case SEG_LIT:
            if (strcmp(s->text, v))
                return 0;
            continue;
        case SEG_POS:
            if (!http_is_uint(v, 0))
                return 0;
            break;
        case SEG_UINT:
            if (!http_is_uint(v, 1))
                return 0;
            break;
        default:
            if (!v[0])
                return 0;
            break;
        }
        names[np] = s->text;
        vals[np] = v;
        np++;
    }
    return np + 1;
}

int http_method_is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

/* Route req: sets req->route (or -1), and *allow to the methods that the path
 * accepts (comma-separated, "" when the path matches no pattern). */
void http_route_request(api_req *req, char *allow, size_t allow_size)
{
    api_server *srv = req->srv;
    allow[0] = '\0';
    req->route = -1;
    int ok = 1;
    if (req->path[0] != '/')
        ok = 0;
    if (ok) {
        req->segbuf = xstrdup(req->path + 1);
        char *p = req->segbuf;
        for (;;) {
            if (req->nseg == MAX_SEGS) {
                ok = 0;
                break;
            }
            req->segp[req->nseg++] = p;
            char *e = strchr(p, '/');
            if (!e)
                break;
            *e = '\0';
            p = e + 1;
        }
    }
    if (!ok)
        return;
    int found = -1;
    size_t nfound = 0;
    const char *methods[32];
    for (size_t i = 0; i < srv->nroutes; i++) {
        const route *r = &srv->routes[i];
        const char *names[MAX_PARAMS], *vals[MAX_PARAMS];
        size_t m = route_match(r, req, names, vals);
        if (!m)
            continue;
        int dup = 0;
        for (size_t k = 0; k < nfound; k++)
            dup |= !strcmp(methods[k], r->method);
        if (!dup && nfound < 32)
            methods[nfound++] = r->method;
        int want = http_method_is(req->method, r->method) ||
                   (http_method_is(req->method, "HEAD") && http_method_is(r->method, "GET"));
        if (found < 0 && want) {
            found = (int)i;
            req->nparams = m - 1;
            memcpy(req->pname, names, sizeof names);
            memcpy(req->pval, vals, sizeof vals);
        }
    }
    req->route = found;
    size_t o = 0;
    int has_get = 0;
    for (size_t k = 0; k < nfound; k++)
        has_get |= !strcmp(methods[k], "GET");
    for (size_t k = 0; k < nfound + (size_t)has_get + (nfound > 0); k++) {
        const char *m = k < nfound ? methods[k] : (has_get && k == nfound) ? "HEAD" : "OPTIONS";
        int w = snprintf(allow + o, allow_size - o, "%s%s", o ? ", " : "", m);
        if (w < 0 || (size_t)w >= allow_size - o)
            break;
        o += (size_t)w;
    }
}

