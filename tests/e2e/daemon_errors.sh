# daemon_errors.sh — every error the API gives, each with its status and a body that
# says what is wrong: malformed JSON 400 (line and column), invalid spec 422 (names
# the field), unknown job 404, bad transition 409, body over 1 MiB 413, missing or
# wrong token 401 (reads free unless --token-reads 1), unknown query parameter 400,
# dataset path outside --data-dir 403, over --max-job-memory 422; a dataset that
# cannot be loaded and a diverging job fail with their reason and the daemon carries on.
. tests/e2e/daemon_lib.sh
e2e_init
mkdir -p "$T/data"
TOKEN=s3cret-token
AUTH="Authorization: Bearer $TOKEN"
start_daemon --threads 1 --token "$TOKEN" --data-dir "$T/data" --max-job-memory 64

err_is() { # CODE [FIELD]: the error body's code (and field)
    jqt --arg c "$1" --arg f "${2:-}" '.error.code == $c and (.error.message | length > 0) and ($f == "" or .error.field == $f)'
}

# ---- 401: the token ----------------------------------------------------------------------
SPEC=$(tiny_spec ok 1)
api POST /v1/jobs "$SPEC"
expect_status 401
check "401 body" err_is unauthorized
HDR=$(curl -sS -o /dev/null -D - -X POST --data-binary "$SPEC" "$URL/v1/jobs" | tr -d '\r')
check "401 carries WWW-Authenticate: Bearer" sh -c 'printf "%s\n" "$1" | grep -qi "^WWW-Authenticate: Bearer"' _ "$HDR"
api POST /v1/jobs "$SPEC" -H "Authorization: Bearer wrong-token"
expect_status 401
api POST /v1/jobs "$SPEC" -H "Authorization: Bearer ${TOKEN}x"
expect_status 401
api POST /v1/jobs "$SPEC" -H "Authorization: Bearer $(printf '%s' "$TOKEN" | cut -c 2-)"
expect_status 401
api POST /v1/jobs "$SPEC" -H "Authorization: Basic $TOKEN"
expect_status 401
api POST /v1/jobs/1/cancel "" -H "Authorization: Bearer nope"
expect_status 401
api GET /v1/jobs
check "reads need no token (HTTP $STATUS)" [ "$STATUS" = 200 ]
api GET /v1/jobs?status=bogus
check "a read without token is still validated (HTTP $STATUS)" [ "$STATUS" = 400 ]
api POST /v1/jobs "$SPEC" -H "$AUTH"
expect_status 201
OKJOB=$(jqb .id)
wait_state "$OKJOB" completed 120 && ok || fail "job $OKJOB did not complete"

# ---- 400: malformed JSON, with line and column ---------------------------------------
api POST /v1/jobs '{"name": "x",
 "train": {"epochs": }}' -H "$AUTH"
expect_status 400
check "bad_json with line 2, column" jqt '.error.code == "bad_json" and (.error.message | test("line 2, column [0-9]+"))'
api POST /v1/jobs '[1, 2' -H "$AUTH"
expect_status 400
check "truncated JSON: bad_json with line and column" jqt '.error.code == "bad_json" and (.error.message | test("line [0-9]+, column [0-9]+"))'

# ---- 422: invalid spec, naming the field ----------------------------------------------
api POST /v1/jobs '{"model": {"latent": 0}}' -H "$AUTH"
expect_status 422
check "422 names model.latent" err_is invalid model.latent
check "message starts with the field" jqt '.error.message | startswith("model.latent: ")'
api POST /v1/jobs '{"optimizer": {"lr": -1}}' -H "$AUTH"
expect_status 422
check "422 names optimizer.lr" err_is invalid optimizer.lr
api POST /v1/jobs '{"train": {"epochs": "three"}}' -H "$AUTH"
expect_status 422
check "422 names train.epochs" err_is invalid train.epochs
# numbers JSON carries but no run can use: every number has a range (docs/spec.md)
api POST /v1/jobs '{"optimizer": {"lr": 1.79e308}}' -H "$AUTH"
expect_status 422
check "lr 1.79e308: 422 names optimizer.lr" err_is invalid optimizer.lr
api POST /v1/jobs '{"schedule": {"kind": "constant", "value": 1.79e308}}' -H "$AUTH"
expect_status 422
check "schedule value 1.79e308: 422 names schedule.value" err_is invalid schedule.value
api PUT "/v1/jobs/$OKJOB/schedule" '{"kind": "constant", "value": 1.79e308}' -H "$AUTH"
expect_status 422
check "PUT schedule value 1.79e308: 422 names value" err_is invalid value
api PUT "/v1/jobs/$OKJOB/schedule" '{"kind": "piecewise", "points": [[0, 0], [1, 1e300]]}' -H "$AUTH"
expect_status 422
check "PUT schedule point beta 1e300: 422 names points[1][1]" err_is invalid 'points[1][1]'
api PUT "/v1/jobs/$OKJOB/optimizer" '{"lr": 1e300}' -H "$AUTH"
expect_status 422
check "PUT optimizer lr 1e300: 422 names lr" err_is invalid lr
check "PUT optimizer lr 1e300: the message gives the bound" jqt '.error.message == "lr: must be <= 10"'
# -0 is stored as 0 (written out here: jq would print -0.0 as the integer -0, which is 0)
api POST /v1/jobs '{"name": "negzero", "dataset": {"name": "fashion-mnist", "limit": 1000},
  "model": {"encoder": [32], "latent": 4, "decoder": [32]},
  "train": {"epochs": 1, "batch_size": 50, "seed": 11, "threads": 1},
  "schedule": {"kind": "constant", "value": -0.0}, "loss": {"free_bits": -1e-400}}' -H "$AUTH"
expect_status 201
NZ=$(jqb .id)
api GET "/v1/jobs/$NZ"
check "-0 stored as 0 (value $(jqb .spec.schedule.value), free_bits $(jqb .spec.loss.free_bits))" \
    jqt '(.spec.schedule.value | tostring) == "0" and (.spec.loss.free_bits | tostring) == "0"'
wait_state "$NZ" completed 120 && ok || fail "job $NZ did not complete"
api POST /v1/jobs '{"modle": {}}' -H "$AUTH"
expect_status 422
check "an unknown key is named" jqt '.error.message | test("modle")'
api POST /v1/jobs '[1, 2, 3]' -H "$AUTH"
expect_status 422

# ---- 404: unknown job ------------------------------------------------------------------
NOJOB=987654
for p in "/v1/jobs/$NOJOB" "/v1/jobs/$NOJOB/metrics" "/v1/jobs/$NOJOB/epochs" \
    "/v1/jobs/$NOJOB/checkpoints" "/v1/jobs/$NOJOB/schedule" "/v1/jobs/$OKJOB/checkpoints/999"; do
    api GET "$p"
    expect_status 404
    check "404 body for GET $p" err_is not_found
done
for v in pause resume cancel checkpoints; do
    api POST "/v1/jobs/$NOJOB/$v" "" -H "$AUTH"
    expect_status 404
done
api PUT "/v1/jobs/$NOJOB/optimizer" '{"lr": 0.01}' -H "$AUTH"
expect_status 404
api PUT "/v1/jobs/$NOJOB/schedule" '{"kind": "constant", "value": 1}' -H "$AUTH"
expect_status 404
api GET /v1/nothing
expect_status 404
api DELETE /v1/jobs "" -H "$AUTH"
expect_status 405

# ---- 409: bad state transitions -------------------------------------------------------
for v in pause resume cancel checkpoints; do
    api POST "/v1/jobs/$OKJOB/$v" "" -H "$AUTH"
    expect_status 409
    check "409 conflict on $v of a completed job" err_is conflict
done
api PUT "/v1/jobs/$OKJOB/schedule" '{"kind": "constant", "value": 1}' -H "$AUTH"
expect_status 409

# ---- 413: a body over 1 MiB -----------------------------------------------------------
# exactly 1 MiB is read and parsed (an unknown key: 422); one byte more is refused
pad() { # FILE SIZE: a JSON object of exactly SIZE bytes
    { printf '{"modle": 1'; head -c $(($2 - 12)) /dev/zero | tr '\0' ' '; printf '}'; } >"$1"
}
pad "$T/1mib.json" 1048576
pad "$T/big.json" 1048577
check "padding files are the right size" [ "$(wc -c <"$T/1mib.json")" -eq 1048576 ] && [ "$(wc -c <"$T/big.json")" -eq 1048577 ]
code() { curl -sS -o "$T/reply.json" -w '%{http_code}' -H 'Content-Type: application/json' -H "$AUTH" "$@"; }
check "exactly 1 MiB is parsed (got $(code --data-binary @"$T/1mib.json" "$URL/v1/jobs"))" [ "$(code --data-binary @"$T/1mib.json" "$URL/v1/jobs")" = 422 ]
C=$(code --data-binary @"$T/big.json" "$URL/v1/jobs")
check "1 MiB + 1 byte: 413 (got $C)" [ "$C" = 413 ]
check "413 body" jq -e '.error.code == "payload_too_large"' "$T/reply.json" >/dev/null
C=$(code -H 'Transfer-Encoding: chunked' --data-binary @"$T/big.json" "$URL/v1/jobs")
check "chunked body over 1 MiB: 413 (got $C)" [ "$C" = 413 ]
api GET /healthz
check "daemon fine after the big bodies" [ "$STATUS" = 200 ]

# ---- 400: unknown or bad query parameters --------------------------------------------
for q in "/v1/jobs?bogus=1" "/v1/jobs/$OKJOB/metrics?bogus=1" "/v1/jobs/$OKJOB/metrics?max_points=1" \
    "/v1/jobs/$OKJOB/metrics?fields=loss,nonsense" "/v1/jobs/$OKJOB/metrics?format=xml" \
    "/v1/jobs/$OKJOB/metrics?since=abc" "/v1/jobs?limit=-3" "/v1/jobs/$OKJOB/checkpoints/1?format=onnx"; do
    api GET "$q"
    expect_status 400
    check "400 body names the parameter for $q" jqt '(.error.code == "bad_param" or .error.code == "unknown_param") and (.error.field | length > 0) and (.error as $e | $e.message | startswith($e.field))'
done
api GET "/v1/jobs?bogus=1"
check "unknown parameter named" jqt '.error.message | test("bogus")'

# ---- 403: dataset paths outside --data-dir ---------------------------------------------
printf '1,2\n3,4\n' >"$T/outside.csv"
ln -s "$T/outside.csv" "$T/data/link.csv"
for path in "$T/outside.csv" "../outside.csv" "link.csv" "/etc/passwd"; do
    api POST /v1/jobs "$(jq -cn --arg p "$path" '{dataset: {path: $p, format: "csv"}, model: {likelihood: "gaussian"}}')" -H "$AUTH"
    expect_status 403
    check "403 for dataset.path $path" err_is forbidden dataset.path
done
api POST /v1/jobs '{"dataset": {"path": "missing.csv", "format": "csv"}, "model": {"likelihood": "gaussian"}}' -H "$AUTH"
expect_status 422
check "a missing file inside the data dir: 422 naming dataset.path" err_is invalid dataset.path

# ---- 422: over --max-job-memory ---------------------------------------------------------
api POST /v1/jobs "$(tiny_spec huge 1 '{"model": {"encoder": [4096, 4096], "decoder": [4096, 4096]}}')" -H "$AUTH"
expect_status 422
check "422 too_large naming the limit" jqt '.error.code == "too_large" and (.error.message | test("max-job-memory"))'

# ---- a dataset that cannot be loaded fails the job; the next job runs ----------------
# (CSV rows from awk; a good file first, so the bad one is known to fail for its content)
awk 'BEGIN { srand(3); for (i = 0; i < 300; i++) printf "%.4f,%.4f,%.4f\n", rand(), rand(), rand() }' >"$T/data/good.csv"
{ printf '0.1,0.2,0.3\n0.4,x,0.6\n'; cat "$T/data/good.csv"; } >"$T/data/bad.csv"
CSV='{"model": {"encoder": [8], "latent": 2, "decoder": [8], "likelihood": "gaussian"},
      "train": {"epochs": 2, "batch_size": 50, "seed": 1, "threads": 1}}'
api POST /v1/jobs "$(printf '%s' "$CSV" | jq -c '. + {dataset: {path: "bad.csv", format: "csv"}}')" -H "$AUTH"
expect_status 201
BAD=$(jqb .id)
check "relative path stored resolved inside the data dir" jqt --arg d "$T/data/bad.csv" '.spec.dataset.path | endswith("/data/bad.csv")'
api POST /v1/jobs "$(printf '%s' "$CSV" | jq -c '. + {dataset: {path: "good.csv", format: "csv"}}')" -H "$AUTH"
expect_status 201
GOOD=$(jqb .id)
wait_state "$BAD" failed 120 && ok || fail "job $BAD with a bad CSV did not fail"
api GET "/v1/jobs/$BAD"
check "reason names the file, line and value" jqt '.reason | test("bad.csv: line 2: .x. is not a number")'
check "failed job has finished_at" jqt '.finished_at != null'
wait_state "$GOOD" completed 120 && ok || fail "the job after the bad one did not complete"

# ---- 8. a diverging job fails with its step; the daemon carries on -------------------
# lr 10 is the top of its range (docs/spec.md) and blows a Gaussian model up at step 2
DSPEC=$(tiny_spec div 2 '{"model": {"likelihood": "gaussian"}, "optimizer": {"lr": 10}}')
printf '%s\n' "$DSPEC" >"$T/div.json"
"$VAED" train "$T/div.json" --quiet >/dev/null 2>"$T/div.err" && fail "vaed train did not diverge" || ok
WANT=$(sed -n 's/^vaed: \(diverged at step .*\)$/\1/p' "$T/div.err" | head -n 1)
check "vaed train says where it diverged ($(cat "$T/div.err"))" [ -n "$WANT" ]
api POST /v1/jobs "$DSPEC" -H "$AUTH"
expect_status 201
DIV=$(jqb .id)
api POST /v1/jobs "$(tiny_spec after 1)" -H "$AUTH"
expect_status 201
AFTER=$(jqb .id)
wait_state "$DIV" failed 120 && ok || fail "diverging job $DIV did not fail"
api GET "/v1/jobs/$DIV"
check "reason 'diverged at step N…' as vaed train says ('$(jqb .reason)' vs '$WANT')" [ "$(jqb .reason)" = "$WANT" ]
check "reason starts 'diverged at step '" jqt '.reason | test("^diverged at step [0-9]+")'
wait_state "$AFTER" completed 120 && ok || fail "the job after the diverging one did not complete"
api GET /healthz
check "healthz ok after the failures" jqt '.status == "ok"'
stop_daemon

# ---- --token-reads 1 and no --data-dir; then --max-queued -------------------------
start_daemon --threads 1 --token "$TOKEN" --token-reads 1
for p in /v1/jobs "/v1/jobs/$OKJOB" "/v1/jobs/$OKJOB/metrics"; do
    api GET "$p"
    expect_status 401
    api GET "$p" "" -H "$AUTH"
    expect_status 200
done
api POST /v1/jobs '{"dataset": {"path": "good.csv", "format": "csv"}, "model": {"likelihood": "gaussian"}}' -H "$AUTH"
expect_status 403
check "without --data-dir, server-side paths are off" jqt '.error.field == "dataset.path" and (.error.message | test("data-dir"))'
stop_daemon

# one running, two queued: with --max-queued 2 the queue is full
start_daemon --threads 1 --max-queued 2
api POST /v1/jobs "$(tiny_spec full1 1000)"
expect_status 201
FULL1=$(jqb .id)
wait_state "$FULL1" running 60 && ok || fail "job $FULL1 not running"
api POST /v1/jobs "$(tiny_spec full2 1)"
expect_status 201
FULL2=$(jqb .id)
api POST /v1/jobs "$(tiny_spec full3 1)"
expect_status 201
FULL3=$(jqb .id)
api POST /v1/jobs "$(tiny_spec full4 1)"
expect_status 429
check "429 queue_full" jqt '.error.code == "queue_full"'
api POST "/v1/jobs/$FULL2/cancel" ""
expect_status 200
api POST /v1/jobs "$(tiny_spec full4 1)"
check "room again once a queued job is cancelled (HTTP $STATUS)" [ "$STATUS" = 201 ]
FULL4=$(jqb .id)
for j in $FULL1 $FULL3 $FULL4; do api POST "/v1/jobs/$j/cancel" ; expect_status 200; done
stop_daemon
integrity_ok "after the error tests"
finish
