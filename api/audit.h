/* audit.h — who the caller is and what was done: GET /v1/whoami (the token a request
 * carries, its name and scope, for the dashboard to show only what that token may do),
 * GET /v1/audit (the audit trail, store/audit.h) and the HTTP layer's audit hook that
 * writes it (api_config.audit). */
#ifndef VAED_API_AUDIT_H
#define VAED_API_AUDIT_H

#include "api/http.h"

/* GET /v1/whoami: {"name", "scope", "tokens", "reads_need_token"}. With no tokens
 * configured every request may do everything: name null, scope "admin", tokens false.
 * Otherwise name and scope are the matching token's, both null when the request carried
 * none (or an unknown one). */
void api_h_whoami(api_req *req);

/* GET /v1/audit?after=ID&limit=N: {"audit": [rows, oldest first], "next_after",
 * "more"}. Without after, the newest limit rows; with it, the rows after that id.
 * limit 1..1000, default 100. Needs api_req_user() to be an api_ctx. */
void api_h_audit(api_req *req);

/* The api_config.audit hook: cls is the api_ctx. Queues the row (never waits); a row the
 * store cannot take is reported on stderr. */
void api_audit_record(void *cls, const api_audit_rec *rec);

#endif
