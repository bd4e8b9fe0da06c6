/* test_openapi.c — the embedded OpenAPI document against the server's route table.
 *
 *  - the document compiled into the binary is byte for byte api/openapi.json (the
 *    build picked up the latest edit);
 *  - it is JSON without duplicate keys, declares openapi 3.0.3, and every $ref in it
 *    resolves inside it;
 *  - every route of api_routes() is described with the same method and path template
 *    ("{step:u}" written "{step}"), each path parameter declared in: path, required,
 *    and the scope of the route table as x-scope;
 *  - every operation in the document is a route of the table;
 *  - every operation has a 2xx response, and operationIds are unique.
 * Whether the document is valid OpenAPI 3.0 as a whole is checked by a real validator
 * in tests/e2e/prom_openapi.sh. Run from the repository root (tests/run.sh does). */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/extra.h"
#include "api/routes.h"
#include "t.h"

static json_t *doc;

/* Resolve a local "#/a/b" reference; NULL when it does not resolve. */
static json_t *resolve(const char *ref)
{
    if (strncmp(ref, "#/", 2))
        return NULL;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ref + 2);
    json_t *cur = doc;
    for (char *tok = strtok(buf, "/"); tok && cur; tok = strtok(NULL, "/"))
        cur = json_object_get(cur, tok);
    return cur;
}

static void check_refs(json_t *v, const char *where)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (!strcmp(k, "$ref")) {
                CHECK(json_is_string(x) && resolve(json_string_value(x)),
                      "%s: $ref %s does not resolve", where,
                      json_is_string(x) ? json_string_value(x) : "(not a string)");
            } else {
                check_refs(x, k);
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) check_refs(x, where);
    }
}

static json_t *deref(json_t *v)
{
    json_t *r = json_object_get(v, "$ref");
    return r ? resolve(json_string_value(r)) : v;
}

/* The route pattern as an OpenAPI template: "{step:u}" -> "{step}". */
static void template_of(const char *pattern, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = pattern; *p && k + 1 < n; p++) {
        if (*p == ':') {
            while (p[1] && p[1] != '}')
                p++;
            continue;
        }
        out[k++] = *p;
    }
    out[k] = 0;
}

static void lower(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (; *s && k + 1 < n; s++)
        out[k++] = (char)tolower((unsigned char)*s);
    out[k] = 0;
}

/* Is the named path parameter declared by the operation or its path item? */
static int has_path_param(json_t *item, json_t *op, const char *name)
{
    json_t *lists[2] = {json_object_get(op, "parameters"), json_object_get(item, "parameters")};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *p;
        json_array_foreach(lists[l], i, p)
        {
            p = deref(p);
            if (p && !strcmp(json_string_value(json_object_get(p, "name")) ?: "", name) &&
                !strcmp(json_string_value(json_object_get(p, "in")) ?: "", "path") &&
                json_is_true(json_object_get(p, "required")))
                return 1;
        }
    }
    return 0;
}

static void test_embedded_is_the_file(void)
{
    size_t len;
    const char *emb = api_openapi_doc(&len);
    CHECK(emb && emb[len] == 0, "embedded document not NUL-terminated");
    FILE *f = fopen("api/openapi.json", "rb");
    CHECK(f != NULL, "api/openapi.json not found: run from the repository root");
    if (!f)
        return;
    char *buf = malloc(len + 2);
    size_t got = fread(buf, 1, len + 1, f);
    fclose(f);
    CHECK(got == len && !memcmp(buf, emb, len),
          "the binary's document (%zu bytes) differs from api/openapi.json (%zu bytes): "
          "rebuild api/openapi.o", len, got);
    free(buf);
}

static void test_routes(void)
{
    size_t len, nroutes;
    const char *text = api_openapi_doc(&len);
    json_error_t je;
    doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    CHECK(doc != NULL, "api/openapi.json line %d column %d: %s", je.line, je.column, je.text);
    if (!doc)
        return;
    CHECK(!strcmp(json_string_value(json_object_get(doc, "openapi")) ?: "", "3.0.3"),
          "openapi version is not 3.0.3");
    check_refs(doc, "document");
    json_t *paths = json_object_get(doc, "paths");
    CHECK(json_is_object(paths), "no paths object");

    const api_route *r = api_routes(&nroutes);
    CHECK(nroutes > 10, "route table has only %zu routes", nroutes);
    for (size_t i = 0; i < nroutes; i++) {
        char tpl[256], m[16];
        template_of(r[i].pattern, tpl, sizeof tpl);
        lower(r[i].method, m, sizeof m);
        json_t *item = json_object_get(paths, tpl), *op = json_object_get(item, m);
        CHECK(op != NULL, "route %s %s is not in the document (as %s %s)", r[i].method,
              r[i].pattern, m, tpl);
        if (!op)
            continue;
        /* the scope it documents is the route table's (the one definition) */
        const char *xs = json_string_value(json_object_get(op, "x-scope"));
        const char *want = api_scope_name(r[i].scope);
        CHECK(xs && want && !strcmp(xs, want), "%s %s: x-scope %s, the route table says %s",
              r[i].method, tpl, xs ? xs : "(none)", want ? want : "(none)");
        /* each {name} of the template is declared as a required path parameter */
        for (const char *p = strchr(tpl, '{'); p; p = strchr(p + 1, '{')) {
            char name[64];
            sscanf(p + 1, "%63[^}]", name);
            CHECK(has_path_param(item, op, name), "%s %s: path parameter %s not declared",
                  r[i].method, tpl, name);
        }
    }

    /* the other way round: nothing described that the server does not answer */
    json_t *opids = json_object();
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            if (!strcmp(m, "parameters") || !strcmp(m, "summary") || !strcmp(m, "description"))
                continue;
            int found = 0;
            for (size_t i = 0; i < nroutes && !found; i++) {
                char tpl[256], lm[16];
                template_of(r[i].pattern, tpl, sizeof tpl);
                lower(r[i].method, lm, sizeof lm);
                found = !strcmp(tpl, path) && !strcmp(lm, m);
            }
            CHECK(found, "the document describes %s %s, which no route answers", m, path);

            json_t *resp = json_object_get(op, "responses");
            const char *code;
            json_t *x;
            int ok2xx = 0;
            json_object_foreach(resp, code, x) ok2xx |= code[0] == '2';
            CHECK(ok2xx, "%s %s has no 2xx response", m, path);
            const char *id = json_string_value(json_object_get(op, "operationId"));
            CHECK(id != NULL, "%s %s has no operationId", m, path);
            if (id) {
                CHECK(!json_object_get(opids, id), "operationId %s used twice", id);
                json_object_set_new(opids, id, json_true());
            }
        }
    }
    json_decref(opids);
    json_decref(doc);
}

int main(void)
{
    test_embedded_is_the_file();
    test_routes();
    return t_done("test_openapi");
}
