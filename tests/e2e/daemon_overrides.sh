# daemon_overrides.sh — live changes survive a crash. A running job takes a manual
# checkpoint, then a new learning rate (PUT /optimizer: the daemon checkpoints the
# state right after applying it, before replying) and then a new schedule (PUT
# /schedule: recorded in the store before the next step), each acknowledged with the
# step it took effect at; it trains on and is killed with SIGKILL. On restart it
# resumes from the lr change's checkpoint and re-applies the recorded schedule change
# at its step (jobs.h, "Recovery"): every metric row stored before the crash must come
# back bit-identical, beta and lr must be the new values from their effective steps
# on, and every step must be there once.
. tests/e2e/daemon_lib.sh
e2e_init
start_daemon --threads 1

# Wide layers and batches of 200: a few ms per step, so the job is still running
# while the test makes its changes and waits for the store to commit rows after them.
# Only the manual checkpoint: no periodic or epoch-end ones.
SPEC=$(tiny_spec ovr 8 '{"dataset": {"limit": 20000}, "train": {"batch_size": 200},
    "model": {"encoder": [256], "decoder": [256]},
    "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 400, "unit": "steps"},
    "checkpoint": {"every_seconds": 0, "at_epoch_end": false}}')
submit "$SPEC"; J=$JOB
TOTAL=800
wait_step "$J" $((10 + $(rand_below 30))) 120 && ok || fail "job $J not stepping"

api POST "/v1/jobs/$J/checkpoints" "" 
expect_status 201
C=$(jqb .step)
api PUT "/v1/jobs/$J/optimizer" '{"lr": 0.0005}'
expect_status 200
EL=$(jqb .effective_step)
check "lr change acknowledged at or after the checkpoint ($EL >= $C)" [ "$EL" -ge "$C" ]
wait_step "$J" $((EL + 3)) 60 && ok || fail "job $J not stepping after the lr change"
api PUT "/v1/jobs/$J/schedule" '{"kind": "constant", "value": 0.25}'
expect_status 200
ES=$(jqb .effective_step)
check "schedule change acknowledged after the lr change ($ES > $EL)" [ "$ES" -gt "$EL" ]
echo "manual checkpoint at step $C, lr from step $EL, schedule from step $ES"

# wait until the store has committed rows well past both changes, then take them
WANT=$((ES + 10))
n=0
while :; do
    api GET "/v1/jobs/$J/metrics?since=$WANT&fields=beta"
    [ "$(jqb .rows)" -gt 0 ] 2>/dev/null && break
    n=$((n + 1))
    [ $n -lt 600 ] || { fail "no stored row past step $WANT after 30 s"; break; }
    sleep 0.05
done
get_metrics "$J" "$T/before.json"
api GET "/v1/jobs/$J"
check "still running when killed (is $(jqb .state))" [ "$(jqb .state)" = running ]
kill_daemon
LASTB=$(jq '.step[-1]' "$T/before.json")
echo "killed with rows stored up to step $LASTB"
check "the newest checkpoint is the lr change's, at $EL" \
    [ "$(sqlite3 "$DB" "SELECT max(step) FROM checkpoints WHERE job = $J")" = "$EL" ]

start_daemon --threads 1
wait_state "$J" completed 120 && ok || fail "job $J did not complete after the restart"
check "resumed from the lr change's checkpoint" grep -q "job $J resumes from its checkpoint at step $EL\$" "$T/daemon.log"
get_metrics "$J" "$T/after.json"
if d_out=$(python3 "$D_CHECK" same-rows "$T/before.json" "$T/after.json" 2>&1); then ok; else
    fail "rows computed before the crash changed when recomputed:
$d_out"
fi
check "every step once, 0..$((TOTAL - 1))" jq -e --argjson n "$TOTAL" '.step == [range(0; $n)]' "$T/after.json" >/dev/null
BAD_BETA=$(jq -c --argjson e "$ES" '[.step, .beta] | transpose | map(select(.[0] >= $e and .[1] != 0.25)) | .[:3]' "$T/after.json")
check "beta is 0.25 from step $ES on (first wrong: $BAD_BETA)" [ "$BAD_BETA" = "[]" ]
BAD_LR=$(jq -c --argjson e "$EL" '[.step, .lr] | transpose | map(select(.[0] >= $e and .[1] != 0.0005)) | .[:3]' "$T/after.json")
check "lr is 0.0005 from step $EL on (first wrong: $BAD_LR)" [ "$BAD_LR" = "[]" ]
BAD_LR0=$(jq -c --argjson e "$EL" '[.step, .lr] | transpose | map(select(.[0] < $e and .[1] != 0.001)) | .[:3]' "$T/after.json")
check "lr is 0.001 before step $EL (first wrong: $BAD_LR0)" [ "$BAD_LR0" = "[]" ]
api GET "/v1/jobs/$J/schedule"
expect_status 200
check "schedule history: the override at step $ES, in force" jqt --argjson e "$ES" '(.history | map(select(.source == "override" and .effective_step == $e and (.superseded | not))) | length) == 1 and .schedule.kind == "constant"'
stop_daemon
integrity_ok "after the override crash test"
finish
