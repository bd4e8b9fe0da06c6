# security_paths.sh — path segments that decode to something the router must not see:
# %00 (a NUL that cut "/v1/jobs/1%00/pause" down to a valid path) and %2f/%2F (a slash
# smuggled inside one segment) are refused with 400 naming the field "path", before any
# route runs; ordinary paths and query strings with those escapes still work.
. tests/e2e/daemon_lib.sh
e2e_init
start_daemon --threads 1

refused() { # what, method, path
    api "$2" "$3"
    if [ "$STATUS" = 400 ] && jqt '.error.code == "bad_path" and .error.field == "path"'; then
        ok
    else
        fail "$1: $2 $3: want 400 bad_path naming the field path, got $STATUS: $BODY"
    fi
}

submit "$(tiny_spec one 1)" || exit 1
wait_state "$JOB" completed 120 || fail "job $JOB did not complete"
refused "%00 after a job id" POST "/v1/jobs/$JOB%00/pause"
refused "%00 after a job id, GET" GET "/v1/jobs/$JOB%00"
refused "%00 mid segment" GET "/v1/jo%00bs"
refused "%2f inside a segment" GET "/v1/jobs%2f$JOB"
refused "%2F inside a segment" GET "/v1/jobs%2F$JOB"
refused "%2f at the end" GET "/v1/jobs/$JOB%2f"
refused "%2f on a dataset id" DELETE "/v1/datasets/1%2f..%2f.."
refused "%2f in the dashboard path" GET "/web%2fapp.js"
refused "%00 in the path, with a query string" GET "/v1/jobs/$JOB%00?status=completed"
refused "%2f in the path, with escapes in the query" GET "/v1/jobs%2f$JOB?status=a%2fb&limit=2"

# ordinary requests are untouched: the path, and escapes inside a query string
api GET "/v1/jobs/$JOB"
expect_status 200
api GET "/v1/jobs?status=completed"
expect_status 200
api GET "/v1/jobs/%31"
check "a harmless escape in the path still routes (got $STATUS)" [ "$STATUS" = 200 ]
api GET "/v1/jobs?status=a%2Fb%00"
check "%2F and %00 in a query value are not a path error (got $STATUS: $BODY)" jqt '.error.field != "path"'
api GET "/healthz"
expect_status 200
stop_daemon
finish
