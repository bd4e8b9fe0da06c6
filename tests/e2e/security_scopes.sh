#!/bin/sh
# security_scopes.sh — scoped tokens (--tokens-file; docs/operations.md, "Tokens and
# scopes"). A read token reads (GET 200) but a schedule change is 403 naming scope control
# and a submission 403 naming admin; a control token pauses and resumes but cannot submit;
# an admin token does everything; an unknown token is 401 where a token is needed and
# changes nothing on a free read; --token-reads 1 makes reads need a token of any scope;
# --token-file keeps working as one admin token named "default"; GET /v1/whoami says who
# a request is, and the dashboard reads it to hide what the token may not do. A bad tokens
# file stops the daemon at start with the line number and without the secret.
. tests/e2e/security_lib.sh
. tests/e2e/browser_lib.sh
browser_ready
e2e_init
umask 077
R=read-secret-0123456789
C=ctl-secret-0123456789ab
A=adm-secret-0123456789abc
cat >"$T/tokens" <<EOF
# name scope secret
reader  read    $R
ops     control $C

boss    admin   $A
EOF
start_daemon --threads 1 --tokens-file "$T/tokens"
as() { # as SECRET METHOD PATH [BODY]
    as_s=$1; shift
    m=$1; p=$2; b=${3:-}
    if [ -n "$as_s" ]; then api "$m" "$p" "$b" -H "Authorization: Bearer $as_s"; else api "$m" "$p" "$b"; fi
}
scope403() { # what, required, held
    check "$1: 403 (got $STATUS: $BODY)" [ "$STATUS" = 403 ]
    check "$1: insufficient_scope naming scope $2 and held $3: $BODY" jqt \
        ".error.code == \"insufficient_scope\" and .error.field == \"Authorization\" and
         .error.scope_required == \"$2\" and .error.scope_held == \"$3\" and
         (.error.message | contains(\"$2\"))"
}

# ---- who am I -----------------------------------------------------------------------------
as "" GET /v1/whoami
check "whoami without a token: 200 (got $STATUS)" [ "$STATUS" = 200 ]
check "whoami without a token: nobody: $BODY" jqt '.name == null and .scope == null and .tokens == true and .reads_need_token == false'
as $R GET /v1/whoami
check "whoami with the read token: $BODY" jqt '.name == "reader" and .scope == "read"'
as $C GET /v1/whoami
check "whoami with the control token: $BODY" jqt '.name == "ops" and .scope == "control"'
as $A GET /v1/whoami
check "whoami with the admin token: $BODY" jqt '.name == "boss" and .scope == "admin"'
as "nobody-knows-this-secret" GET /v1/whoami
check "whoami with an unknown token: nobody: $BODY" jqt '.name == null and .scope == null'
check "no secret in a reply" sh -c '! printf "%s" "$1" | grep -q secret-0123' _ "$BODY"

# ---- read ---------------------------------------------------------------------------------
# long enough to be running at the admin token's pause on any host; cancelled at the end
SPEC=$(tiny_spec scoped 100000)
as $R POST /v1/jobs "$SPEC"
scope403 "read token submits" admin read
check "a 403 says WWW-Authenticate: Bearer ... insufficient_scope" sh -c \
    'curl -sS -D - -o /dev/null -X POST -H "Authorization: Bearer $1" -H "Content-Type: application/json" -d "{}" "$2/v1/jobs" | grep -qi "^WWW-Authenticate: Bearer.*error=\"insufficient_scope\".*scope=\"admin\""' _ "$R" "$URL"
as $A POST /v1/jobs "$SPEC"
check "admin token submits: 201 (got $STATUS: $BODY)" [ "$STATUS" = 201 ]
JOB=$(jqb .id)
as $R GET /v1/jobs
check "read token lists jobs: 200 (got $STATUS)" [ "$STATUS" = 200 ]
as $R GET "/v1/jobs/$JOB/metrics"
check "read token reads curves: 200 (got $STATUS)" [ "$STATUS" = 200 ]
as $R GET /metrics
check "read token scrapes Prometheus: 200 (got $STATUS)" [ "$STATUS" = 200 ]
as $R PUT "/v1/jobs/$JOB/schedule" '{"kind": "constant", "value": 0.5}'
scope403 "read token changes the schedule" control read
as $R POST "/v1/jobs/$JOB/pause"
scope403 "read token pauses" control read
as $R POST /v1/schedules/preview '{"schedule": {"kind": "constant", "value": 0.5}, "steps_per_epoch": 20, "total_steps": 100}'
check "read token previews a schedule (computes, changes nothing): 200 (got $STATUS: $BODY)" [ "$STATUS" = 200 ]
as $R GET /v1/audit
scope403 "read token reads the audit trail" admin read

# ---- control ------------------------------------------------------------------------------
check "the job trains" wait_step "$JOB" 5 60
as $C POST "/v1/jobs/$JOB/pause"
check "control token pauses: 200 (got $STATUS: $BODY)" [ "$STATUS" = 200 ]
as $C PUT "/v1/jobs/$JOB/schedule" '{"kind": "constant", "value": 0.5}'
check "control token changes the schedule: 200 (got $STATUS: $BODY)" [ "$STATUS" = 200 ]
as $C POST "/v1/jobs/$JOB/resume"
check "control token resumes: 200 (got $STATUS: $BODY)" [ "$STATUS" = 200 ]

# the dashboard in Chromium: what each token sees (tests/browser/scopes.test.js)
browser_test scopes JOB_RUNNING="$JOB" TOKEN_READ="$R" TOKEN_CONTROL="$C" TOKEN_ADMIN="$A"
as $C POST /v1/jobs "$SPEC"
scope403 "control token submits" admin control
as $C POST /v1/datasets '{}'
scope403 "control token registers a dataset" admin control
as $C GET /v1/audit
scope403 "control token reads the audit trail" admin control

# ---- admin, unknown, none ---------------------------------------------------------------------
as $A POST "/v1/jobs/$JOB/pause"
check "admin token pauses: 200 (got $STATUS: $BODY)" [ "$STATUS" = 200 ]
as $A GET /v1/audit
check "admin token reads the audit trail: 200 (got $STATUS)" [ "$STATUS" = 200 ]
for who in "" "Bearer nobody-knows-this-secret" "Bearer $R$R" "Basic $A"; do
    api POST "/v1/jobs/$JOB/cancel" "" -H "Authorization: $who"
    check "cancel with Authorization '$(printf '%s' "$who" | cut -c 1-12)...': 401 (got $STATUS)" [ "$STATUS" = 401 ]
    check "  unauthorized, not insufficient_scope: $BODY" jqt '.error.code == "unauthorized"'
done
api GET /v1/jobs "" -H "Authorization: Bearer nobody-knows-this-secret"
check "an unknown token on a free read: still 200 (got $STATUS)" [ "$STATUS" = 200 ]
api GET /v1/audit
check "the audit trail without a token: 401 even with free reads (got $STATUS)" [ "$STATUS" = 401 ]
api POST /v1/no-such-route '{}' -H "Authorization: Bearer $R"
check "an unknown path with a read token: 404 (got $STATUS)" [ "$STATUS" = 404 ]
api POST /v1/no-such-route '{}'
check "an unknown path without a token: 401, paths are not probed (got $STATUS)" [ "$STATUS" = 401 ]
as $A POST "/v1/jobs/$JOB/cancel"
check "admin token cancels: 200 (got $STATUS: $BODY)" [ "$STATUS" = 200 ]

# ---- the dashboard reads whoami and hides what the token may not do ------------------------
api GET /web/app.js
check "the dashboard's script asks /v1/whoami" sh -c 'printf "%s" "$1" | grep -q "/v1/whoami"' _ "$BODY"
api GET /web/access.js
check "  and web/access.js hides by data-scope" sh -c 'printf "%s" "$1" | grep -q "data-scope"' _ "$BODY"
api GET /
for s in control admin; do
    check "the page marks its $s controls (data-scope=\"$s\")" sh -c \
        'printf "%s" "$1" | grep -q "data-scope=\"$2\""' _ "$BODY" "$s"
done
stop_daemon

# ---- --token-reads 1: a token of any scope for reads --------------------------------------------
start_daemon --threads 1 --tokens-file "$T/tokens" --token-reads 1
api GET /v1/jobs
check "--token-reads 1: a read without a token: 401 (got $STATUS)" [ "$STATUS" = 401 ]
as $R GET /v1/jobs
check "--token-reads 1: the read token reads: 200 (got $STATUS)" [ "$STATUS" = 200 ]
as $R GET /v1/whoami
check "--token-reads 1: whoami says so: $BODY" jqt '.scope == "read" and .reads_need_token == true'
as $R GET /v1/audit
scope403 "--token-reads 1: read token reads the audit trail" admin read
stop_daemon

# ---- --token-file: one admin token named "default" ----------------------------------------------
printf 'single-secret-42\n' >"$T/tok"
start_daemon --threads 1 --token-file "$T/tok"
as single-secret-42 GET /v1/whoami
check "--token-file: whoami: $BODY" jqt '.name == "default" and .scope == "admin"'
as single-secret-42 POST /v1/jobs "$SPEC"
check "--token-file: the default token submits: 201 (got $STATUS)" [ "$STATUS" = 201 ]
stop_daemon
start_daemon --threads 1
api GET /v1/whoami
check "no tokens: whoami says everything is open: $BODY" jqt '.name == null and .scope == "admin" and .tokens == false'
stop_daemon

# ---- a bad tokens file stops the daemon at start --------------------------------------------------
printf 'alice admin %s\nbob writer %s\n' "$A" "$R" >"$T/badscope"
no_start "a bad scope" "line 2: the scope" --tokens-file "$T/badscope"
check "  the message does not print the secret" sh -c '! grep -q "secret-0123" "$1"' _ "$T/ns.out"
printf 'alice admin %s\nbob %s read\n' "$A" "$R" >"$T/swapped"
no_start "fields in the wrong order" "line 2" --tokens-file "$T/swapped"
check "  the message does not print the secret" sh -c '! grep -q "secret-0123" "$1"' _ "$T/ns.out"
printf '# only a comment\n' >"$T/notokens"
no_start "no tokens" "no tokens" --tokens-file "$T/notokens"
cp "$T/tokens" "$T/tokens644"; chmod 644 "$T/tokens644"
no_start "a tokens file others may read" "chmod 600" --tokens-file "$T/tokens644"
no_start "--tokens-file with --token-file" "give one" --tokens-file "$T/tokens" --token-file "$T/tok"
finish
