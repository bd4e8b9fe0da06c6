/* audit.c — see audit.h. */
#include "api/audit.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/errors.h"
#include "api/routes.h"
#include "store/audit.h"

void api_h_whoami(api_req *req)
{
    const api_server *srv = api_req_server(req);
    int scope = 0;
    const char *name = api_req_token(req, &scope);
    const int tokens = api_server_has_tokens(srv);
    if (!tokens)
        scope = API_SCOPE_ADMIN;
    const char *sn = api_scope_name(scope);
    api_reply_json(req, 200,
                   json_pack("{s:s?, s:s?, s:b, s:b}", "name", name, "scope", sn, "tokens",
                             tokens, "reads_need_token",
                             tokens && api_server_reads_need_token(srv)));
}


void api_h_audit(api_req *req)
{
    static const char *const allowed[] = {"after", "limit", NULL};
    if (api_query_only(req, allowed))
        return;
    int64_t after = api_query_num(req, "after", 0, INT64_MAX, -1);
    int64_t limit = api_query_num(req, "limit", 1, 1000, 100);
    if (after == API_QUERY_BAD || limit == API_QUERY_BAD)
        return;
    api_ctx *c = api_req_user(req);
    vaed_err err;
    vaed_err_clear(&err);
    /* The rows of requests answered before this one may still be queued: commit them
     * first, so a client that had its reply finds its row. */
    int rc = store_flush(c->st, &err);
    store_audit *rows = NULL;
    size_t n = 0;
    int more = 0;
    if (rc || (rc = store_audit_list(c->st, after, (int)limit, &rows, &n, &more, &err))) {
        api_reply_vaed(req, rc, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const store_audit *r = &rows[i];
        /* the created resource's id: the last segment of its Location */
        json_t *cid = json_null();
        const char *slash = r->created ? strrchr(r->created, '/') : NULL;
        if (slash && slash[1] && strspn(slash + 1, "0123456789") == strlen(slash + 1) &&
            strlen(slash + 1) < 19)
            cid = json_integer(strtoll(slash + 1, NULL, 10));
        json_array_append_new(
            arr, json_pack("{s:I, s:f, s:s?, s:s, s:s, s:s, s:i, s:s?, s:o}", "id",
                           (json_int_t)r->id, "time", r->time, "token", r->token, "remote",
                           r->remote, "method", r->method, "path", r->path, "status", r->status,
                           "created", r->created, "created_id", cid));
    }
    json_t *out = json_pack("{s:o, s:b}", "audit", arr, "more", more);
    json_object_set_new(out, "next_after", n ? json_integer(rows[n - 1].id) : json_null());
    store_audits_free(rows, n);
    api_reply_json(req, 200, out);
}

void api_audit_record(void *cls, const api_audit_rec *rec)
{
    api_ctx *c = cls;
    const store_audit_new a = {
        .time = rec->time,
        .token = rec->token,
        .remote = rec->remote,
        .method = rec->method,
        .path = rec->path,
        .status = (int)rec->status,
        .created = rec->created,
    };
    vaed_err err;
    vaed_err_clear(&err);
    if (store_audit_append(c->st, &a, c->audit_keep > 0 ? c->audit_keep : STORE_AUDIT_KEEP,
                           &err))
        fprintf(stderr, "vaed audit: %s %s (%u) not recorded: %s\n", rec->method, rec->path,
                rec->status, err.msg);
}
