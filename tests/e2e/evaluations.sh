# evaluations.sh — evaluations as durable units of work (POST /v1/jobs/{id}/evaluations,
# daemon/evals.c) against the real daemon: the daemon's bound is `vaed eval`'s for the
# same checkpoint, rows, k and seed, bit for bit; an evaluation killed with SIGKILL in
# the middle resumes from its committed blocks at the next start and ends with the same
# bits; SIGTERM puts a running evaluation back in the queue; cancel stops a running one;
# "best" names the checkpoint with the best bound; bad requests are refused naming the
# field.
. tests/e2e/lib.sh
. tests/e2e/daemon_lib.sh
. tests/e2e/eval_lib.sh
e2e_init
# samples per row of the evaluations that must still be running when the daemon is
# killed or stopped: under a sanitizer our loops run ten times slower, so fewer do
BIG_K=600
[ -z "$SANITIZER" ] || BIG_K=60
start_daemon

# a small finished job with two checkpoints (one per epoch)
SPEC=$(tiny_spec ev 2)
printf '%s\n' "$SPEC" >"$T/spec.json"
submit "$SPEC" || { finish; exit 1; }
wait_state "$JOB" completed 120 || fail "the job did not complete"
api GET "/v1/jobs/$JOB/checkpoints"
FINAL=$(jqb '[.checkpoints[].step] | max')
FIRST=$(jqb '[.checkpoints[].step] | min')
curl -sS -o "$T/final.ckpt" "$URL/v1/jobs/$JOB/checkpoints/$FINAL"
curl -sS -o "$T/first.ckpt" "$URL/v1/jobs/$JOB/checkpoints/$FIRST"


# ---- the daemon's number is vaed eval's -------------------------------------------------
api POST "/v1/jobs/$JOB/evaluations" '{"checkpoint": "final", "k": 20, "rows": 700, "seed": 3}'
expect_status 202
E1=$(jqb .id)
check "202 names the checkpoint it resolved and says queued or running" \
    jqt ".checkpoint.step == $FINAL and .checkpoint.asked == \"final\" and (.state == \"queued\" or .state == \"running\")"
cli k20 final --k 20 --rows 700 --seed 3
wait_eval "$E1" completed || fail "evaluation $E1 did not complete"
check "the daemon's bound, errors, KL, MI and active units are vaed eval's, bit for bit" same k20
check "progress: rows_done = rows = 700, a rate, no ETA once completed" \
    jqt '.rows == 700 and .rows_done == 700 and .rows_per_sec > 0 and .eta_s == null and .finished_at != null'

# ---- SIGKILL in the middle: resumes from its blocks, same bits ------------------------
api POST "/v1/jobs/$JOB/evaluations" '{"checkpoint": '"$FIRST"', "k": '"$BIG_K"', "rows": 3000, "seed": 5}'
expect_status 202
E2=$(jqb .id)
cli kbig first --k "$BIG_K" --rows 3000 --seed 5 &
CLI_PID=$!
t0=$(date +%s); DONE_BEFORE=0
while :; do
    api GET "/v1/jobs/$JOB/evaluations/$E2"
    DONE_BEFORE=$(jqb .rows_done)
    [ "$DONE_BEFORE" -ge 512 ] && break
    [ "$(jqb .state)" = completed ] && break
    [ $(($(date +%s) - t0)) -ge 300 ] && break
    sleep 0.05
done
check "some blocks committed before the kill ($DONE_BEFORE of 3000 rows)" \
    [ "$DONE_BEFORE" -ge 512 ] && [ "$DONE_BEFORE" -lt 3000 ]
kill_daemon
start_daemon
api GET "/v1/jobs/$JOB/evaluations/$E2"
check "after the restart it resumes from the committed blocks ($(jqb .rows_done) >= $DONE_BEFORE)" \
    jqt ".rows_done >= $DONE_BEFORE and (.state == \"queued\" or .state == \"running\" or .state == \"completed\")"
check "the daemon's log says it queued the evaluation again" grep -q 'unfinished evaluation' "$T/daemon.log"
wait "$CLI_PID"
wait_eval "$E2" completed || fail "evaluation $E2 did not complete after the restart"
check "the resumed evaluation's numbers are those of one that never stopped (vaed eval)" same kbig

# ---- SIGTERM: back in the queue, then completes ----------------------------------------
api POST "/v1/jobs/$JOB/evaluations" '{"k": '"$BIG_K"', "rows": 2048, "seed": 6}'
E3=$(jqb .id)
wait_eval "$E3" running 60 || fail "evaluation $E3 did not start"
term_daemon 30
check "SIGTERM left the evaluation queued in the store" \
    [ "$(sqlite3 "$DB" "SELECT state FROM evaluations WHERE id = $E3")" = queued ]
start_daemon
wait_eval "$E3" completed || fail "evaluation $E3 did not complete after SIGTERM"

# ---- cancel ------------------------------------------------------------------------------
api POST "/v1/jobs/$JOB/evaluations" '{"k": 5000, "seed": 7}'
E4=$(jqb .id)
wait_eval "$E4" running 60 || fail "evaluation $E4 did not start"
api POST "/v1/jobs/$JOB/evaluations/$E4/cancel"
expect_status 200
check "cancel stops a running evaluation" jqt '.state == "cancelled" and .result == null'
api POST "/v1/jobs/$JOB/evaluations/$E4/cancel"
expect_status 409
check "the blocks of a finished evaluation are gone from the store" \
    [ "$(sqlite3 "$DB" "SELECT count(*) FROM eval_blocks WHERE eval = $E4")" = 0 ]

# ---- "best": the checkpoint whose evaluation has the highest bound ---------------------
api GET "/v1/jobs/$JOB/evaluations"
expect_status 200
BEST=$(jqb '[.evaluations[] | select(.state == "completed")] | max_by(.result.bound) | .checkpoint.step')
check "the list has every evaluation, oldest first" jqt "[.evaluations[].id] == [$E1, $E2, $E3, $E4]"
api POST "/v1/jobs/$JOB/evaluations" '{"checkpoint": "best", "k": 1, "rows": 256}'
expect_status 202
check "\"best\" resolves to the checkpoint with the best bound ($BEST)" \
    jqt ".checkpoint.step == $BEST and .checkpoint.asked == \"best\""

ROW=$(jq -nc '[[range(784) | 0.5]]')
api POST "/v1/jobs/$JOB/encode" "{\"rows\": $ROW, \"checkpoint\": \"best\"}"
expect_status 200
check "the serving routes take \"best\" by the same rule ($BEST)" jqt ".checkpoint == $BEST"
JOB_A=$JOB

# ---- bad requests ------------------------------------------------------------------------
bad() { # STATUS FIELD BODY [JOB]
    api POST "/v1/jobs/${4:-$JOB}/evaluations" "$3"
    if [ "$STATUS" = "$1" ] && [ "$(jqb .error.field)" = "$2" ]; then ok; else
        fail "$3: expected $1 naming $2, got $STATUS: $BODY"; fi
}
bad 422 k '{"k": 0}'
bad 422 k '{"k": 100001}'
bad 422 k '{"k": 1.5}'
bad 422 split '{"split": "validation"}'
bad 422 seed '{"seed": -1}'
bad 422 rows '{"rows": 0}'
bad 422 checkpoint '{"checkpoint": "latest"}'
bad 404 checkpoint '{"checkpoint": 999999}'
bad 422 colour '{"colour": 1}'
api POST "/v1/jobs/999999/evaluations" '{}'
expect_status 404
api GET "/v1/jobs/$JOB/evaluations/999999"
expect_status 404
api GET "/v1/jobs/999999/evaluations"
expect_status 404
# a job with no completed evaluation has no "best"
submit "$(tiny_spec ev2 1)"
wait_state "$JOB" completed 120 || fail "second job"
bad 409 checkpoint '{"checkpoint": "best"}'
api POST "/v1/jobs/$JOB/encode" "{\"rows\": $ROW, \"checkpoint\": \"best\"}"
check "serving \"best\" before any evaluation: 409 naming checkpoint" \
    [ "$STATUS" = 409 ] && [ "$(jqb .error.field)" = checkpoint ]
api GET "/v1/jobs/$JOB/evaluations/$E1"
check "another job's evaluation is not found under this job" [ "$STATUS" = 404 ]

# ---- the spec's eval block: every epoch's checkpoint and the final one ------------------
submit "$(tiny_spec evb 2 '{"eval": {"every_epochs": 1, "k": 4, "rows": 256}}')"
wait_state "$JOB" completed 120 || fail "the job with an eval block did not complete"
api GET "/v1/jobs/$JOB/checkpoints"
STEPS=$(jqb -c '[.checkpoints[] | select(.kind == "epoch" or .kind == "final") | .step] | sort')
t0=$(date +%s)
while :; do
    api GET "/v1/jobs/$JOB/evaluations"
    [ "$(jqb '[.evaluations[] | select(.state == "completed")] | length')" -ge 2 ] && break
    [ $(($(date +%s) - t0)) -ge 120 ] && break
    sleep 0.2
done
check "eval.every_epochs 1 evaluated the epoch-end and the final checkpoint ($STEPS), k 4, 256 rows" \
    jqt "[.evaluations[] | select(.state == \"completed\" and .checkpoint.asked == \"eval.every_epochs\"
           and .k == 4 and .rows == 256) | .checkpoint.step] | sort == $STEPS"
api GET "/v1/jobs/$JOB"
check "the job's spec shows its eval block" jqt '.spec.eval == {"every_epochs": 1, "k": 4, "rows": 256}'
api POST /v1/jobs "$(tiny_spec bad 1 '{"eval": {"k": 0}}')"
check "a spec with eval.k 0 is refused naming eval.k" \
    [ "$STATUS" = 422 ] && [ "$(jqb .error.field)" = eval.k ]

# ---- /epochs' test rows carry kl_groups: the evaluation's, over the same rows -----------
submit "$(tiny_spec groups 1 '{"model": {"latent": [3, 2]}}')"
wait_state "$JOB" completed 120 || fail "the two-group job did not complete"
api POST "/v1/jobs/$JOB/evaluations" '{"k": 1}'
EG=$(jqb .id)
wait_eval "$EG" completed 120 || fail "evaluation of the two-group job"
printf '%s' "$BODY" >"$T/eg.json"
api GET "/v1/jobs/$JOB/epochs"
printf '%s' "$BODY" >"$T/epochs.json"
check "the test rows of /epochs carry kl_groups (two groups, summing to kl)" \
    jqt '[.epochs[] | select(.split == "test") | (.kl_groups | length == 2) and
          (((.kl_groups | add) - .kl) | fabs) < 1e-9 * (.kl | fabs)] | all and length > 0'
check "... equal to the evaluation's analytic KL per group over the whole test split" \
    jq -en --slurpfile e "$T/eg.json" --slurpfile p "$T/epochs.json" '
        ($p[0].epochs | map(select(.split == "test")) | last | .kl_groups) as $g |
        [range(2) | (($g[.] - $e[0].result.kl_groups[.]) | fabs) < 1e-6 * ($g[.] | fabs) + 1e-9] | all'

stop_daemon
finish
