#!/bin/sh
# security_audit.sh — the audit trail (GET /v1/audit; docs/operations.md, "Audit trail").
# Every state-changing request is recorded, accepted or refused: its time, the token's
# name (never the secret; null without one), the client's address, method, path, status
# (401 and 403 included) and what it created. Reads and computations that change nothing
# are not recorded. Reading the trail needs an admin token; a client finds its own
# request in the trail as soon as it has the reply; the rows page with after/limit,
# survive a restart (ids go on), and the oldest go past --audit-keep. No secret reaches
# the database file.
. tests/e2e/security_lib.sh
e2e_init
umask 077
R=read-secret-0123456789
C=ctl-secret-0123456789ab
A=adm-secret-0123456789abc
printf 'reader read %s\nops control %s\nboss admin %s\n' "$R" "$C" "$A" >"$T/tokens"
start_daemon --threads 1 --tokens-file "$T/tokens"
SPEC=$(tiny_spec audited 2000)
trail() { # the whole trail, as boss
    api GET "/v1/audit?limit=1000" "" -H "Authorization: Bearer $A"
    [ "$STATUS" = 200 ] || fail "GET /v1/audit as admin: $STATUS $BODY"
}
row() { # what, jq condition on one row: exactly one row matches
    n=$(printf '%s' "$BODY" | jq "[.audit[] | select($2)] | length")
    check "$1: one row (found $n) in $(printf '%s' "$BODY" | cut -c 1-1500)" [ "$n" = 1 ]
}

api POST /v1/jobs "$SPEC" -H "Authorization: Bearer $A"
check "admin submits: 201 (got $STATUS)" [ "$STATUS" = 201 ]
JOB=$(jqb .id)
# the client has its reply: its row is in the trail at once
trail
row "the submission, at once" ".method == \"POST\" and .path == \"/v1/jobs\" and .status == 201 and
    .token == \"boss\" and .remote == \"127.0.0.1\" and .created == \"/v1/jobs/$JOB\" and
    .created_id == $JOB and (.time | type) == \"number\""
api PUT "/v1/jobs/$JOB/schedule" '{"kind": "constant", "value": 0.5}' -H "Authorization: Bearer $R"
check "read token changes the schedule: 403 (got $STATUS)" [ "$STATUS" = 403 ]
api POST "/v1/jobs/$JOB/pause"
check "no token pauses: 401 (got $STATUS)" [ "$STATUS" = 401 ]
api POST "/v1/jobs/$JOB/pause" "" -H "Authorization: Bearer unknown-secret-0000000000"
check "an unknown token pauses: 401 (got $STATUS)" [ "$STATUS" = 401 ]
check "the job trains" wait_step "$JOB" 3 60
api POST "/v1/jobs/$JOB/pause" "" -H "Authorization: Bearer $C"
check "control token pauses: 200 (got $STATUS: $BODY)" [ "$STATUS" = 200 ]
api POST "/v1/jobs/999/resume" "" -H "Authorization: Bearer $C"
check "resume of a job that is not there: 404 (got $STATUS)" [ "$STATUS" = 404 ]
api POST /v1/jobs '{"not": "a spec"}' -H "Authorization: Bearer $A"
check "a bad spec: 4xx (got $STATUS)" [ "$STATUS" -ge 400 ] && [ "$STATUS" -lt 500 ]
BADSPEC=$STATUS
# not recorded: reads, and a computation that changes nothing
api GET /v1/jobs "" -H "Authorization: Bearer $R"
api GET "/v1/jobs/$JOB" ""
api POST /v1/schedules/preview '{"schedule": {"kind": "constant", "value": 0.5}, "steps_per_epoch": 20, "total_steps": 100}' \
    -H "Authorization: Bearer $R"
check "read token previews: 200 (got $STATUS)" [ "$STATUS" = 200 ]

trail
row "the 403, with the token's name" ".method == \"PUT\" and .path == \"/v1/jobs/$JOB/schedule\" and
    .status == 403 and .token == \"reader\" and .created == null and .created_id == null"
n=$(printf '%s' "$BODY" | jq "[.audit[] | select(.path == \"/v1/jobs/$JOB/pause\" and .status == 401 and
    .token == null and .remote == \"127.0.0.1\")] | length")
check "the 401s without a token and with an unknown one, no name (two rows, found $n)" [ "$n" = 2 ]
row "the control token's pause" ".path == \"/v1/jobs/$JOB/pause\" and .status == 200 and .token == \"ops\""
row "the 404" ".path == \"/v1/jobs/999/resume\" and .status == 404 and .token == \"ops\""
row "the refused submission" ".path == \"/v1/jobs\" and .status == $BADSPEC and .token == \"boss\" and .created == null"
check "no reads, no preview: $(jqb '[.audit[].method] | join(",")')" \
    jqt '[.audit[] | select(.method == "GET" or .path == "/v1/schedules/preview")] | length == 0'
check "rows oldest first, ids increasing" jqt '[.audit[].id] == ([.audit[].id] | sort) and (.audit | length) == 7'
check "no secret in the trail" sh -c '! printf "%s" "$1" | grep -q "secret-0"' _ "$BODY"

# ---- who may read it ------------------------------------------------------------------------------
for t in "$R" "$C"; do
    api GET /v1/audit "" -H "Authorization: Bearer $t"
    check "GET /v1/audit below admin: 403 (got $STATUS)" [ "$STATUS" = 403 ]
    check "  naming scope admin: $BODY" jqt '.error.scope_required == "admin"'
done
api GET /v1/audit
check "GET /v1/audit without a token: 401 (got $STATUS)" [ "$STATUS" = 401 ]
trail
check "reading the trail (or being refused it) is not a mutation: still 7 rows + none" \
    jqt '(.audit | length) == 7'

# ---- paging ----------------------------------------------------------------------------------------
api GET "/v1/audit?after=0&limit=3" "" -H "Authorization: Bearer $A"
check "the first page of 3: $BODY" jqt '(.audit | length) == 3 and .more == true and .next_after == .audit[2].id'
NEXT=$(jqb .next_after)
api GET "/v1/audit?after=$NEXT&limit=3" "" -H "Authorization: Bearer $A"
check "the second page starts after it" jqt ".audit[0].id > $NEXT and (.audit | length) == 3 and .more == true"
api GET "/v1/audit?limit=2" "" -H "Authorization: Bearer $A"
check "without after: the newest two, oldest first: $BODY" jqt '(.audit | length) == 2 and .audit[0].id < .audit[1].id and .audit[1].path == "/v1/jobs"'
api GET "/v1/audit?limit=0" "" -H "Authorization: Bearer $A"
check "limit=0: 400 bad_param naming limit (got $STATUS)" jqt '.error.field == "limit"'
api GET "/v1/audit?before=3" "" -H "Authorization: Bearer $A"
check "an unknown parameter: 400 (got $STATUS)" [ "$STATUS" = 400 ]

# ---- a restart keeps the trail ----------------------------------------------------------------------
api POST "/v1/jobs/$JOB/cancel" "" -H "Authorization: Bearer $A"
check "cancel: 200 (got $STATUS)" [ "$STATUS" = 200 ]
stop_daemon
check "no secret in the database files" sh -c '! grep -q "secret-0" "$1"* 2>/dev/null' _ "$DB"
start_daemon --threads 1 --tokens-file "$T/tokens" --audit-keep 5
trail
check "after a restart: the 8 rows kept past --audit-keep 5 until the next append" jqt '(.audit | length) == 8 and .audit[7].path == "/v1/jobs/'"$JOB"'/cancel"'
LAST=$(jqb '.audit[7].id')
api POST "/v1/jobs/$JOB/resume" "" -H "Authorization: Bearer $C"
trail
check "--audit-keep 5: the newest five, the new id after the old ones: $(jqb '[.audit[].id] | join(",")')" \
    jqt "(.audit | length) == 5 and .audit[4].id == $LAST + 1 and .audit[4].token == \"ops\""
stop_daemon
finish
