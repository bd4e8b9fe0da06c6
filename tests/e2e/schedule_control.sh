# schedule_control.sh — PUT /v1/jobs/{id}/schedule in every state, and the optimizer route:
#   - "origin": "now" with "from": "current" (linear, logistic, piecewise) continues from the
#     beta in force: no jump at the effective step, and every row on the formula;
#   - a queued job: effective step 0, the job runs under the new schedule from its first
#     step, the initial schedule is marked superseded;
#   - a paused job: effective at the resume step, no jump there either;
#   - a finished job 409, an unknown job 404, invalid schedules 422 naming the field;
#   - a burst of PUTs sent at once: all answered, applied in arrival order, none lost or
#     applied twice; those that share an effective step are superseded but the last; the
#     rows follow exactly the ones that were not superseded;
#   - PUT /v1/jobs/{id}/optimizer changes the lr column from the step its reply names.
. tests/e2e/sched_lib.sh
e2e_init
start_daemon --threads 1 --workers 1

# the paused job must still be running when it is paused: 48 epochs (about 3 s on a
# fast host; under a sanitizer, SLOW times fewer), not 12, which one host finished first
EPOCHS=$((48 / SLOW))
TOTAL=$((EPOCHS * 40))

# ---- 1. from "current": no jump ------------------------------------------------------------
INIT='{"kind": "linear", "from": 0, "to": 1, "duration": 40}'
submit "$(small_spec current 200 "{\"schedule\": $INIT}")"; A=$JOB
submit "$(small_spec queued 3)"; Q=$JOB
[ -n "$A" ] && [ -n "$Q" ] || { finish; exit 1; }

# ---- 2. queued: effective step 0 (A holds the only worker) --------------------------------
api GET "/v1/jobs/$Q"
check "Q is queued behind A" jqt '.state == "queued"'
put_sched "$Q" '{"kind": "linear", "from": "current", "to": 0.5, "duration": 2, "origin": "now"}'
expect_status 200
RQ=$RESOLVED
check "queued PUT → effective step 0, resolved from the initial beta 0 at t 0" [ "$EFF" = 0 ] &&
    check "queued resolved schedule" jqt '.schedule == {kind: "linear", unit: "epochs",
        granularity: "step", start: 0, from: 0, to: 0.5, duration: 2}'

wait_step "$A" 60 60 && ok || fail "A did not reach step 60"
# the learning rate, on the same run
api PUT "/v1/jobs/$A/optimizer" '{"lr": 0.0025}'
expect_status 200
ELR=$(jqb .effective_step)
check "optimizer reply: lr 0.0025 from step $ELR" jqt '.lr == 0.0025 and .effective_step >= 60'
SEGS="[[0, $INIT]]"
c_n=0
for body in \
    '{"kind": "linear", "from": "current", "to": 0.9, "duration": 1, "origin": "now"}' \
    '{"kind": "logistic", "from": "current", "to": 0.1, "k": 4, "midpoint": 0.5, "origin": "now"}' \
    '{"kind": "piecewise", "points": [[0, "current"], [0.5, 0.7], [1, 0.2]], "origin": "now"}'; do
    c_n=$((c_n + 1))
    put_sched "$A" "$body"
    if [ "$STATUS" != 200 ]; then fail "PUT $c_n on A: HTTP $STATUS: $BODY"; continue; fi
    ok
    eval "E$c_n=$EFF"
    SEGS=$(printf '%s' "$SEGS" | jq -c --argjson e "$EFF" --argjson r "$RESOLVED" '. + [[$e, $r]]')
    echo "  A: $(printf '%s' "$RESOLVED" | jq -r .kind) from current at step $EFF: $RESOLVED"
    wait_step "$A" $((EFF + 30)) 60 && ok || fail "A did not get 30 steps past $EFF"
done
api POST "/v1/jobs/$A/cancel"
expect_status 200
sleep 1.2 # metric rows are committed at least once a second
get_rows "$A" "$T/A.json"
rows_follow "$T/A.json" 40 "$SEGS" "A: three from-current overrides"
for e in $E1 $E2 $E3; do
    check "no jump at step $e" jqf --argjson e "$e" '
        ((.beta[$e] - .beta[$e - 1]) | fabs) <= 1e-12' "$T/A.json" ||
        jq -c --argjson e "$e" '.beta[$e - 1:$e + 1]' "$T/A.json"
    check "beta moves after step $e (not a constant)" jqf --argjson e "$e" '
        .beta[$e + 5] != .beta[$e]' "$T/A.json"
done
check "lr column: 0.001 before step $ELR, 0.0025 from it" jqf --argjson e "$ELR" '
    [.step, .lr] | transpose | all(if .[0] < $e then .[1] == 0.001 else .[1] == 0.0025 end)' \
    "$T/A.json"

wait_state "$Q" completed 60 && ok || fail "Q did not complete"
get_rows "$Q" "$T/Q.json"
ROWS=120 rows_follow "$T/Q.json" 40 "[[0, $RQ]]" "Q: queued job ran under the PUT schedule from step 0"
api GET "/v1/jobs/$Q/schedule"
check "Q history: submit superseded, override at 0 in force" jqt '
    [.history[] | [.source, .effective_step, .superseded]] == [["submit", 0, true], ["override", 0, false]]
    and .schedule.to == 0.5'

# ---- 3. finished, unknown, invalid (A was cancelled, Q completed) -----------------------------------------------------------
api PUT "/v1/jobs/$A/schedule" '{"kind": "constant", "value": 1}'
expect_status 409
api PUT "/v1/jobs/$Q/schedule" '{"kind": "constant", "value": 1}'
expect_status 409
api PUT "/v1/jobs/$Q/optimizer" '{"lr": 0.1}'
expect_status 409
api PUT "/v1/jobs/999999/schedule" '{"kind": "constant", "value": 1}'
expect_status 404
invalid() { # BODY FIELD
    api PUT "/v1/jobs/$Q/schedule" "$1"
    if [ "$STATUS" = 422 ] && [ "$(jqb .error.field)" = "$2" ]; then ok; else
        fail "PUT $1: wanted 422 naming $2, got $STATUS: $BODY"; fi
}
invalid '{"kind": "linear", "duration": -1}' duration
invalid '{"kind": "sideways"}' kind
invalid '{"kind": "linear", "to": -0.5}' to
invalid '{"kind": "constant", "value": 1, "colour": "red"}' colour
invalid '{"kind": "linear", "from": "current"}' from
invalid '{"kind": "controller"}' target_kl
api PUT "/v1/jobs/$Q/schedule" '{"kind": '
check "malformed JSON is a 4xx ($STATUS)" [ "${STATUS%??}" = 4 ]

# ---- 4. paused: effective at the resume step --------------------------------------------------
submit "$(small_spec paused $EPOCHS "{\"schedule\": $INIT}")"; P=$JOB
wait_step "$P" 60 60 && ok || fail "P did not reach step 60"
api POST "/v1/jobs/$P/pause"
expect_status 200
PSTEP=$(jqb .step)
put_sched "$P" '{"kind": "linear", "from": "current", "to": 0, "duration": 3, "origin": "now"}'
expect_status 200
RP=$RESOLVED
check "paused PUT → effective at the resume step $PSTEP (got $EFF)" [ "$EFF" = "$PSTEP" ]
api GET "/v1/jobs/$P"
check "still paused at $PSTEP" jqt --argjson s "$PSTEP" '.state == "paused" and .step == $s'
api POST "/v1/jobs/$P/resume"
expect_status 200
wait_state "$P" completed 120 && ok || fail "P did not complete"
get_rows "$P" "$T/P.json"
ROWS=$TOTAL rows_follow "$T/P.json" 40 "[[0, $INIT], [$PSTEP, $RP]]" "P: override made while paused"
check "P: no jump at the resume step $PSTEP" jqf --argjson e "$PSTEP" '
    ((.beta[$e] - .beta[$e - 1]) | fabs) <= 1e-12 and .beta[$e] > 0' "$T/P.json"

# ---- 5. a burst of PUTs at once ----------------------------------------------------------------
# long enough that it is still running when cancelled, however fast the host
submit "$(small_spec burst 200)"; B=$JOB
wait_step "$B" 60 60 && ok || fail "B did not reach step 60"
PIDS=""
for i in 1 2 3 4 5 6 7 8; do
    curl -sS -m 60 -o "$T/burst.$i" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
        --data-binary "{\"kind\": \"constant\", \"value\": 0.$i}" "$URL/v1/jobs/$B/schedule" \
        >"$T/burst.$i.code" 2>&1 &
    PIDS="$PIDS $!"
done
for p in $PIDS; do wait "$p"; done
answered=0
for i in 1 2 3 4 5 6 7 8; do
    if [ "$(cat "$T/burst.$i.code")" = 200 ]; then answered=$((answered + 1)); else
        echo "  burst $i: $(cat "$T/burst.$i.code") $(cat "$T/burst.$i")"; fi
done
check "all 8 PUTs answered 200 ($answered)" [ $answered = 8 ]
wait_step "$B" $(($(jq -s 'map(.effective_step) | max' "$T"/burst.[1-8]) + 20)) 60 && ok ||
    fail "B did not run past the burst"
api POST "/v1/jobs/$B/cancel"
expect_status 200
api GET "/v1/jobs/$B/schedule"
printf '%s\n' "$BODY" >"$T/B.hist.json"
jq -s '.' "$T"/burst.[1-8] >"$T/B.replies.json"
# The replies and the history agree one to one; in seq order (= arrival order) the
# requested times and effective steps never go back; an event is superseded exactly
# when the next one shares its effective step.
check "history has the 8 overrides once each, in arrival order, superseded right" python3 - \
    "$T/B.hist.json" "$T/B.replies.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["history"]
replies = json.load(open(sys.argv[2]))
ov = [e for e in h if e["source"] == "override"]
bad = []
if len(ov) != 8:
    bad.append("%d overrides in the history, wanted 8" % len(ov))
seqs = [e["seq"] for e in h]
if len(set(seqs)) != len(seqs) or seqs != sorted(seqs):
    bad.append("seqs not distinct and increasing: %s" % seqs)
got = sorted((e["effective_step"], e["schedule"]["value"]) for e in ov)
want = sorted((r["effective_step"], r["schedule"]["value"]) for r in replies)
if got != want:
    bad.append("history %s != replies %s" % (got, want))
for a, b in zip(ov, ov[1:]):
    if b["requested_at"] < a["requested_at"] or b["effective_step"] < a["effective_step"]:
        bad.append("out of order: seq %d then %d" % (a["seq"], b["seq"]))
for i, e in enumerate(ov):
    want_sup = i + 1 < len(ov) and ov[i + 1]["effective_step"] == e["effective_step"]
    if bool(e["superseded"]) != want_sup:
        bad.append("seq %d superseded %s, wanted %s" % (e["seq"], e["superseded"], want_sup))
print("  burst: effective steps in arrival order:", [(e["effective_step"], e["schedule"]["value"], e["superseded"]) for e in ov])
if bad:
    print("\n".join(bad))
    sys.exit(1)
PY
SEGS=$(jq -c '[[0, {kind: "constant", value: 0}]] +
    [.history[] | select(.source == "override" and (.superseded | not)) | [.effective_step, .schedule]]' \
    "$T/B.hist.json")
get_rows "$B" "$T/B.json"
rows_follow "$T/B.json" 40 "$SEGS" "B: rows follow the burst's surviving overrides"

stop_daemon
finish
