# schedule_seed_bug.sh — the seed's bug, end to end. The seed's Keras callback rebound
# beta instead of assigning it, so the loss kept beta = 0 for ever while the log said
# otherwise. Here a job starts with beta constant 0, a client PUTs a linear warm-up mid-run,
# and every stored row is checked against the formula, computed independently:
#   - rows before the effective step have beta exactly 0, rows from it on exactly the new
#     schedule's value at their step, and loss == xent + beta * kl on every row (so the
#     loss the optimiser used had that beta);
#   - the job's rows are bit-identical to `vaed train` run from the start with the
#     resolved schedule (which is 0 before its start, like the constant it replaced);
#   - the same after the daemon is SIGKILLed right after the override and restarted: the
#     job resumes from a checkpoint, re-applies the recorded override at its step, and
#     ends with every step stored exactly once, still exactly on the formula and still
#     bit-identical to the uninterrupted reference.
. tests/e2e/sched_lib.sh
not_under_tsan "its threads (a schedule PUT into a running job, a SIGKILL and the change re-applied at restart) run under TSan in schedule_control.sh, daemon_overrides.sh and daemon_recovery.sh"
e2e_init
start_daemon --threads 1

# 64 epochs (under a sanitizer, SLOW times fewer): the job must still be running after
# the PUT; a 16-epoch job trains in about a second on a fast host and was done first.
EPOCHS=$((64 / SLOW))
SPEC=$(small_spec seedbug $EPOCHS)
RAMP='{"kind": "linear", "from": 0, "to": 1, "duration": 2, "origin": "now"}'

# one run: submit, let it train a little, PUT the ramp; sets J, E (effective step), R
# (resolved schedule), and the reference spec REF_SPEC with R as its initial schedule
override_run() { # NAME
    submit "$SPEC" || return 1
    J=$JOB
    wait_step "$J" 60 60 && ok || fail "$1: job $J did not reach step 60"
    put_sched "$J" "$RAMP"
    expect_status 200
    E=$EFF
    R=$RESOLVED
    echo "  $1: job $J override effective at step $E: $R"
    REF_SPEC=$(printf '%s' "$SPEC" | jq -c --argjson s "$R" '.schedule = $s')
}

# ---- 1. live: the override takes effect at the step the reply names -----------------------
override_run live
SPE=$(spe_of "$J")
check "steps_per_epoch is 40 (got $SPE)" [ "$SPE" = 40 ]
check "effective step $E is past the steps already seen" [ "${E:-0}" -ge 60 ]
TOTAL=$((EPOCHS * SPE))
check "override lands before the end ($E < $TOTAL)" [ "${E:-$TOTAL}" -lt $((TOTAL - 2 * SPE)) ]
check "resolved: origin now → start = $E / $SPE epochs, from 0 to 1 over 2" \
    jqt --argjson e "$E" '.schedule == {kind: "linear", unit: "epochs", granularity: "step",
        start: ($e / 40), from: 0, to: 1, duration: 2}'
wait_state "$J" completed 120 && ok || fail "live job did not complete"
get_rows "$J" "$T/live.json"
SEGS=$(jq -cn --argjson e "$E" --argjson r "$R" '[[0, {kind: "constant", value: 0}], [$e, $r]]')
ROWS=$TOTAL rows_follow "$T/live.json" "$SPE" "$SEGS" "live run: beta 0 before step $E, the ramp from it"
check "rows before $E: beta 0 and loss == xent exactly" jqf --argjson e "$E" '
    [.step, .beta, .loss, .xent] | transpose | map(select(.[0] < $e))
    | length == $e and all(.[1] == 0 and .[2] == .[3])' "$T/live.json"
# (20 steps of a 2-epoch ramp at 40 steps an epoch is 0.25 up to rounding: the ramp is
# computed from fractional epochs, and where the override lands depends on timing)
check "the ramp reached 1 (last beta 1, step $E beta 0, step $E+20 beta 0.25)" jqf --argjson e "$E" '
    .beta[-1] == 1 and .beta[$e] == 0 and ((.beta[$e + 20] - 0.25) | fabs) < 1e-12' "$T/live.json"
train_ref live "$REF_SPEC"
same_as_ref "$J" live "live override vs vaed train from the start with the resolved schedule"
api GET "/v1/jobs/$J/schedule"
check "history: submit at 0, override at $E" jqt --argjson e "$E" '
    [.history[] | [.source, .effective_step, .superseded]] == [["submit", 0, false], ["override", $e, false]]
    and .schedule.kind == "linear" and .beta == 1'

# ---- 2. SIGKILL right after the overrides, restart, complete --------------------------------
# Two jobs at once (two workers): K1 checkpoints every 25 steps and at epoch ends, so it
# resumes from a checkpoint (taken before or after its override: both must come out the
# same); K2 takes no checkpoint at all, so it restarts from step 0 and must re-apply its
# recorded override at its step.
# These jobs run 64 epochs, not 16: on a fast host a 16-epoch job finished (and took its
# final checkpoint) between the PUTs and the kill, and the run tested nothing. Under a
# sanitizer (SLOW times slower) as many fewer: the same wall time, a third of TSan's.
stop_daemon
start_daemon --threads 1 --workers 2
EPOCHS=$((64 / SLOW))
TOTAL=$((EPOCHS * SPE))
SPEC=$(small_spec seedbug $EPOCHS)
submit "$SPEC"; K1=$JOB
submit "$(printf '%s' "$SPEC" | jq -c '.checkpoint = {every_steps: 0, every_seconds: 0, at_epoch_end: false}')"
K2=$JOB
for j in $K1 $K2; do wait_step "$j" 60 60 && ok || fail "job $j did not reach step 60"; done
# K1 last and the kill at once: its PUT is applied right after the epoch-end checkpoint,
# so K1 usually resumes from a checkpoint taken before its override and replays it
put_sched "$K2" "$RAMP"; expect_status 200; E2=$EFF; R2=$RESOLVED
put_sched "$K1" "$RAMP"
kill_daemon
expect_status 200 # a running job's reply (a finished one would be 409)
E1=$EFF; R1=$RESOLVED
for k in "$K1 $E1" "$K2 $E2"; do
    set -- $k
    c=$(sqlite3 "$DB" "SELECT COALESCE(MAX(step), -1) FROM checkpoints WHERE job = $1" 2>&1)
    echo "  job $1 killed with its newest checkpoint at step $c (override at $2)"
    check "job $1: the override at $2 was durable before its step ran" [ "$(sqlite3 "$DB" \
        "SELECT COUNT(*) FROM schedule_events WHERE job = $1 AND source = 'override' AND effective_step = $2")" = 1 ]
done
check "K2 has no checkpoint: it must replay its override from step 0" \
    [ "$(sqlite3 "$DB" "SELECT COUNT(*) FROM checkpoints WHERE job = $K2")" = 0 ]
start_daemon --threads 1 --workers 2
for k in "$K1 $E1 $R1 k1" "$K2 $E2 $R2 k2"; do
    set -- $k
    wait_state "$1" completed 120 && ok || fail "job $1 did not complete after restart"
    grep "job $1 resumes" "$T/daemon.log" | sed 's/^/  /'
    get_rows "$1" "$T/$4.json"
    SEGS=$(jq -cn --argjson e "$2" --argjson r "$3" '[[0, {kind: "constant", value: 0}], [$e, $r]]')
    ROWS=$TOTAL rows_follow "$T/$4.json" "$SPE" "$SEGS" "job $1 after SIGKILL and restart"
    api GET "/v1/jobs/$1/schedule"
    check "job $1 history after restart: the override once, at $2" jqt --argjson e "$2" '
        [.history[] | select(.source == "override") | .effective_step] == [$e]'
done
REF1=$(printf '%s' "$SPEC" | jq -c --argjson s "$R1" '.schedule = $s')
REF2=$(printf '%s' "$SPEC" | jq -c --argjson s "$R2" '.schedule = $s')
train_ref k1 "$REF1"
same_as_ref "$K1" k1 "SIGKILLed run (resumed from a checkpoint) vs uninterrupted vaed train"
train_ref k2 "$REF2"
same_as_ref "$K2" k2 "SIGKILLed run (no checkpoint, override replayed) vs uninterrupted vaed train"

stop_daemon
integrity_ok "after the restart"
finish
