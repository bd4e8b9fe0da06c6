# fork.sh — POST /v1/jobs with "from": {"job": P, "step": S} (daemon/fork.h).
# A parent trains to completion with a checkpoint every 10 steps under a linear
# warm-up; then, against independent oracles:
#   (a) a fork at S = 30 with no overrides reproduces the parent's rows from step 30 on
#       bit for bit (same state, same data order, same schedule and lr) and its first
#       row is step 30; its epoch figures equal the parent's for the epochs it finishes;
#   (b) a fork with a constant schedule and another lr has beta = that constant and
#       lr = that lr in every row, while the parent's beta rows differ; its other Adam
#       settings are the parent's (partial objects merge);
#   (c) a relative schedule ("from": "current", "origin": "now") starts at the beta of
#       the parent's step S-1 and reaches 1 after its duration;
#   (d) a schedule change PUT on a queued fork takes effect at S, not at 0;
#   (e) a fork of a fork reproduces its parent's rows; a fork of the final checkpoint
#       with more epochs trains the extra steps only; a fork of a run under the
#       (stateful) controller schedule reproduces it too;
#   (f) errors: model.latent, dataset.limit, train.batch_size → 422 naming the field;
#       unknown from.job → 422 from.job; no checkpoint at from.step → 422 listing the
#       steps there are; train.epochs leaving no step → 422; malformed "from";
#   (g) SIGKILL during a fork's run, the parent's checkpoints deleted, restart: the fork
#       completes with exactly the rows of the uninterrupted fork (a).
. tests/e2e/daemon_lib.sh
not_under_tsan "its threads (a submit that reads a checkpoint, a schedule PUT on a queued job) run under TSan in test_fork, daemon_queue.sh and schedule_control.sh"
e2e_init
start_daemon --threads 1

# Wide layers and batches of 200: a few ms per step, so a fork is still running when
# the test acts on it. 4000 rows: 20 steps per epoch.
PSPEC=$(tiny_spec parent 4 '{"dataset": {"limit": 4000}, "train": {"batch_size": 200},
    "model": {"encoder": [256], "decoder": [256]},
    "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 60, "unit": "steps"},
    "optimizer": {"beta2": 0.995},
    "checkpoint": {"every_steps": 10, "every_seconds": 0, "keep": 100}}')
submit "$PSPEC" || { finish; exit 1; }
P=$JOB
wait_state "$P" completed 180 && ok || fail "parent $P did not complete"
S=30
FIELDS="epoch,beta,loss,xent,kl,elbo,lr,grad_norm,capacity"

# rows ID [SINCE]: the job's metric rows (every column but time) as one JSON value
rows() {
    api GET "/v1/jobs/$1/metrics?fields=$FIELDS${2:+&since=$2}"
    [ "$STATUS" = 200 ] || { echo "metrics of job $1: HTTP $STATUS: $BODY" >&2; return 1; }
    printf '%s' "$BODY" | jq -c "{step, $(echo $FIELDS | sed 's/,/, /g')}"
}
# same_rows WHAT A B: two row sets equal, else say where they first differ
same_rows() {
    if [ "$2" = "$3" ]; then ok; return 0; fi
    d=$(jq -n --argjson a "$2" --argjson b "$3" -r '
        [$a | keys[] as $k | select(($a[$k] | length) != ($b[$k] | length)) | "\($k): \($a[$k] | length) vs \($b[$k] | length) rows"] +
        [$a | keys[] as $k | range(0; [$a[$k], $b[$k]] | map(length) | min) as $i
         | select($a[$k][$i] != $b[$k][$i]) | "\($k)[\($i)] (step \($a.step[$i])): \($a[$k][$i]) vs \($b[$k][$i])"]
        | .[:5] | join("; ")')
    fail "$1: $d"
    return 1
}
# submit_422 WHAT FIELD BODY: the request is refused with 422 naming FIELD
submit_422() {
    api POST /v1/jobs "$3"
    if [ "$STATUS" = 422 ] && [ "$(jqb .error.field)" = "$2" ]; then ok; else
        fail "$1: expected 422 naming $2, got $STATUS: $BODY"; fi
}
first_step() { api GET "/v1/jobs/$1/metrics?fields=beta&max_points=2"; jqb '.step[0]'; }

# ---- (a) no overrides: the same run, bit for bit -------------------------------------
api POST /v1/jobs "{\"from\": {\"job\": $P, \"step\": $S}, \"train\": {\"epochs\": 12}}"
expect_status 201
F1=$(jqb .id)
check "(a) parent recorded ($(jqb -c .parent))" jqt ".parent == {\"id\": $P, \"step\": $S}"
check "(a) at step $S, not 0, as it starts (is $(jqb .step))" jqt ".step >= $S"
check "(a) the stored spec has no \"from\" and the parent's schedule" \
    jqt '(.spec | has("from") | not) and .spec.schedule.kind == "linear" and .spec.schedule.duration == 60'
api GET "/v1/jobs/$F1/checkpoints"
check "(a) its own checkpoint of kind fork at $S" jqt "any(.checkpoints[]; .kind == \"fork\" and .step == $S)"
api GET "/v1/jobs/$F1/schedule"
check "(a) schedule history: one 'submit' event at $S" \
    jqt "[.history[] | {source, effective_step}] == [{\"source\": \"submit\", \"effective_step\": $S}] and .schedule.kind == \"linear\""

# ---- (b) constant schedule, other lr, while (a) runs: queued behind it ----------------
api POST /v1/jobs "{\"from\": {\"job\": $P, \"step\": $S}, \"name\": \"const\",
    \"schedule\": {\"kind\": \"constant\", \"value\": 0.25}, \"optimizer\": {\"lr\": 0.0005},
    \"model\": {\"latent\": 4.0}}"
expect_status 201
F2=$(jqb .id)
check "(b) partial optimizer merged (beta2 kept)" jqt '.spec.optimizer.lr == 0.0005 and .spec.optimizer.beta2 == 0.995 and .name == "const"'

# ---- (c) relative schedule --------------------------------------------------------------
api POST /v1/jobs "{\"from\": {\"job\": $P, \"step\": $S},
    \"schedule\": {\"kind\": \"linear\", \"from\": \"current\", \"to\": 1, \"duration\": 10, \"unit\": \"steps\", \"origin\": \"now\"}}"
expect_status 201
F3=$(jqb .id)

# ---- (d) a change PUT on a queued fork applies at S ------------------------------------
api POST /v1/jobs "{\"from\": {\"job\": $P, \"step\": $S}, \"priority\": -1}"
expect_status 201
F4=$(jqb .id)
api PUT "/v1/jobs/$F4/schedule" '{"kind": "constant", "value": 0.75}'
expect_status 200
check "(d) the queued fork's change is effective at $S (reply: $(jqb .effective_step))" jqt ".effective_step == $S"

# ---- (f) errors (while the forks run) ----------------------------------------------------
submit_422 "model.latent" model.latent "{\"from\": {\"job\": $P, \"step\": $S}, \"model\": {\"latent\": 8}}"
check "model.latent: the message says why ($(jqb .error.message))" \
    jqt '.error.message | test("^model.latent: a fork cannot change the model.s shape")'
submit_422 "dataset.limit" dataset.limit "{\"from\": {\"job\": $P, \"step\": $S}, \"dataset\": {\"limit\": 2000}}"
submit_422 "train.batch_size" train.batch_size "{\"from\": {\"job\": $P, \"step\": $S}, \"train\": {\"batch_size\": 100}}"
submit_422 "loss.samples" loss.samples "{\"from\": {\"job\": $P, \"step\": $S}, \"loss\": {\"samples\": 2}}"
submit_422 "unknown from.job" from.job '{"from": {"job": 999999, "step": 0}}'
submit_422 "missing step" from.step "{\"from\": {\"job\": $P, \"step\": 31}}"
check "missing step: the message lists the steps ($(jqb .error.message))" \
    jqt '.error.message | test("10, 20, 30, 40, 50, 60, 70, 80")'
submit_422 "train.epochs too small" train.epochs "{\"from\": {\"job\": $P, \"step\": 60}, \"train\": {\"epochs\": 3}}"
submit_422 "parent's epochs, final checkpoint" train.epochs "{\"from\": {\"job\": $P, \"step\": 80}}"
submit_422 "from not an object" from '{"from": 3}'
submit_422 "from.job missing" from.job '{"from": {"step": 3}}'
submit_422 "from.job not a number" from.job '{"from": {"job": "x"}}'
submit_422 "from.step negative" from.step "{\"from\": {\"job\": $P, \"step\": -1}}"
submit_422 "from unknown key" from.when "{\"from\": {\"job\": $P, \"when\": 1}}"
submit_422 "unknown top-level key" bogus "{\"from\": {\"job\": $P, \"step\": $S}, \"bogus\": 1}"
submit_422 "bad lr" optimizer.lr "{\"from\": {\"job\": $P, \"step\": $S}, \"optimizer\": {\"lr\": -1}}"
submit_422 "bad relative schedule" schedule.kind "{\"from\": {\"job\": $P, \"step\": $S}, \"schedule\": {\"kind\": \"nope\"}}"

for j in $F1 $F2 $F3 $F4; do
    wait_state "$j" completed 300 && ok || fail "fork $j did not complete"
done

# (a) checks
PROWS=$(rows "$P" $((S - 1)))
A=$(rows "$F1")
check "(a) first row is step $S (is $(first_step "$F1"))" [ "$(first_step "$F1")" = "$S" ]
# the parent's rows from S on against the fork's over the same steps
A80=$(printf '%s' "$A" | jq -c 'with_entries(.value |= .[:50])')
same_rows "(a) fork without overrides vs parent, steps 30..79" "$PROWS" "$A80"
check "(a) 210 rows (steps 30..239)" [ "$(printf '%s' "$A" | jq '.step | length')" = 210 ]
api GET "/v1/jobs/$P/epochs"
PE=$(jqb -c '[.epochs[] | select(.epoch >= 2) | del(.time)]')
api GET "/v1/jobs/$F1/epochs"
AE=$(jqb -c '[.epochs[] | select(.epoch <= 4) | del(.time)]')
check "(a) epochs 2..4 equal the parent's" [ "$PE" = "$AE" ]
check "(a) the fork has no epoch row before the one in progress at $S" [ "$(jqb '[.epochs[] | select(.epoch < 2)] | length')" = 0 ]

# (b) checks
B=$(rows "$F2")
check "(b) first row is step $S" [ "$(printf '%s' "$B" | jq '.step[0]')" = "$S" ]
check "(b) beta 0.25 and lr 0.0005 in every row" \
    [ "$(printf '%s' "$B" | jq '(.beta | all(. == 0.25)) and (.lr | all(. == 0.0005)) and (.step | length) == 50')" = true ]
check "(b) the parent's beta from $S on is not 0.25" \
    [ "$(printf '%s' "$PROWS" | jq '[.beta[] | select(. == 0.25)] | length')" = 0 ]
check "(b) the parent's lr is the spec's" [ "$(printf '%s' "$PROWS" | jq '.lr | all(. == 0.001)')" = true ]

# (c) checks: beta at S = the parent's beta at S-1; 1 from S+10 on
C=$(rows "$F3")
api GET "/v1/jobs/$P/metrics?fields=beta&since=$((S - 2))&until=$((S - 1))"
PB29=$(jqb '.beta[0]')
check "(c) the parent's row $((S - 1)) ($(jqb -c .step))" jqt ".step == [$((S - 1))]"
check "(c) beta starts at the parent's last beta $PB29 (is $(printf '%s' "$C" | jq '.beta[0]'))" \
    [ "$(printf '%s' "$C" | jq --argjson b "$PB29" '.beta[0] == $b')" = true ]
check "(c) beta is 1 from step $((S + 10)) on" \
    [ "$(printf '%s' "$C" | jq '[.beta[10:][] | select(. != 1)] | length')" = 0 ]

# (d) checks
D=$(rows "$F4")
check "(d) beta 0.75 in every row of the queued fork changed before it ran" \
    [ "$(printf '%s' "$D" | jq '(.beta | all(. == 0.75)) and .step[0] == 30')" = true ]

# ---- (e) fork of a fork; more epochs from the final checkpoint --------------------------
api POST /v1/jobs "{\"from\": {\"job\": $F2, \"step\": 50}}"
expect_status 201
F5=$(jqb .id)
check "(e) fork of a fork: parent $F2 at 50" jqt ".parent == {\"id\": $F2, \"step\": 50} and .spec.schedule.value == 0.25 and .spec.optimizer.lr == 0.0005"
api POST /v1/jobs "{\"from\": {\"job\": $P}, \"train\": {\"epochs\": 5}}"
expect_status 201
F6=$(jqb .id)
check "(e) no step: the newest checkpoint, 80" jqt ".parent == {\"id\": $P, \"step\": 80}"
wait_state "$F5" completed 120 && ok || fail "fork of a fork $F5 did not complete"
wait_state "$F6" completed 120 && ok || fail "extension $F6 did not complete"
same_rows "(e) fork of a fork vs its parent from step 50" "$(rows "$F2" 49)" "$(rows "$F5")"
E=$(rows "$F6")
check "(e) extension: steps 80..99" [ "$(printf '%s' "$E" | jq -c '[.step[0], .step[-1], (.step | length)]')" = "[80,99,20]" ]

# A controller carries state (its integral) in the checkpoint: a fork that does not
# change the schedule must not restart it, so it too continues bit for bit.
api POST /v1/jobs "$(tiny_spec ctl 3 '{"dataset": {"limit": 4000}, "train": {"batch_size": 200},
    "schedule": {"kind": "controller", "target_kl": 15, "kp": 0.5, "ki": 0.01},
    "checkpoint": {"every_steps": 10, "every_seconds": 0}}')"
expect_status 201
PC=$(jqb .id)
wait_state "$PC" completed 120 && ok || fail "controller parent $PC did not complete"
api POST /v1/jobs "{\"from\": {\"job\": $PC, \"step\": 20}}"
expect_status 201
FC=$(jqb .id)
wait_state "$FC" completed 120 && ok || fail "controller fork $FC did not complete"
CP=$(rows "$PC" 19)
check "(e) the controller's beta moves (distinct values $(printf '%s' "$CP" | jq '.beta | unique | length'))" \
    [ "$(printf '%s' "$CP" | jq '.beta | unique | length')" -gt 2 ]
same_rows "(e) fork of a controller run vs its parent from step 20" "$CP" "$(rows "$FC")"

# ---- (g) SIGKILL during a fork's run, parent's checkpoints gone, restart ----------------
# A checkpoint every step keeps the fork slow enough to be caught running.
api POST /v1/jobs "{\"from\": {\"job\": $P, \"step\": $S}, \"train\": {\"epochs\": 12},
    \"checkpoint\": {\"every_steps\": 1, \"keep\": 2}}"
expect_status 201
F7=$(jqb .id)
wait_step "$F7" $((S + 15)) 120 && ok || fail "fork $F7 not stepping"
kill_daemon
ST=$(db_state "$F7")
CK=$(sqlite3 "$DB" "SELECT max(step) FROM checkpoints WHERE job = $F7")
echo "SIGKILL: fork $F7 was $ST, newest checkpoint $CK"
check "(g) killed while the fork ran (state $ST)" [ "$ST" = running ]
# the parent's checkpoints disappear (as if rotated away): the fork must not care
sqlite3 "$DB" "DELETE FROM checkpoints WHERE job = $P"
start_daemon --threads 1
wait_state "$F7" completed 180 && ok || fail "fork $F7 did not complete after the restart"
check "(g) resumed from its own checkpoint" grep -q "job $F7 resumes from its checkpoint" "$T/daemon.log"
same_rows "(g) killed and restarted fork vs the uninterrupted one" "$A" "$(rows "$F7")"
stop_daemon
integrity_ok "after the fork runs"
finish
