# daemon_control.sh — cancel from each state (queued, running, paused → cancelled; a
# finished job → 409), the other bad transitions (409), and pause/resume: a job paused
# and resumed several times, once across a daemon restart, ends with every per-step
# figure bit-identical to an uninterrupted `vaed train` of the same spec.
. tests/e2e/daemon_lib.sh
e2e_init
start_daemon --threads 1 --workers 1

state_is() { api GET "/v1/jobs/$1"; [ "$(jqb .state)" = "$2" ]; }

# ---- 3. cancel in every state ----------------------------------------------------------
submit "$(tiny_spec R 1000)"; R=$JOB
wait_state "$R" running 60 && ok || fail "R not running"
submit "$(tiny_spec Q 1)"; Q=$JOB
check "Q queued behind R" state_is "$Q" queued

api POST "/v1/jobs/$Q/cancel"
expect_status 200
check "cancel reply shows Q cancelled" jqt '.state == "cancelled" and .finished_at != null'
check "Q stays cancelled" state_is "$Q" cancelled
api POST "/v1/jobs/$Q/cancel"
expect_status 409
api POST "/v1/jobs/$Q/resume"
expect_status 409

api POST "/v1/jobs/$R/resume"
expect_status 409
api POST "/v1/jobs/$R/pause"
expect_status 200
check "pause reply shows R paused" jqt '.state == "paused"'
STEP1=$(jqb .step)
sleep 0.3
api GET "/v1/jobs/$R"
check "a paused job does not advance ($STEP1 → $(jqb .step))" [ "$(jqb .step)" = "$STEP1" ]
api POST "/v1/jobs/$R/pause"
expect_status 409
api PUT "/v1/jobs/$R/optimizer" '{"lr": 0.01}'
expect_status 409
api POST "/v1/jobs/$R/cancel"
expect_status 200
check "cancel reply shows R cancelled" jqt '.state == "cancelled"'
check "R stays cancelled" state_is "$R" cancelled

submit "$(tiny_spec R2 1000)"; R2=$JOB
wait_step "$R2" 3 60 && ok || fail "R2 not stepping"
api POST "/v1/jobs/$R2/cancel"
expect_status 200
check "running job cancelled" jqt '.state == "cancelled"'
STEP2=$(jqb .step)
sleep 0.3
api GET "/v1/jobs/$R2"
check "a cancelled job does not advance ($STEP2 → $(jqb .step))" [ "$(jqb .step)" = "$STEP2" ]
api GET "/v1/jobs?status=running"
check "nothing running after the cancel" [ "$(jqb .total)" = 0 ]

submit "$(tiny_spec finished 1)"; DONE=$JOB
wait_state "$DONE" completed 120 && ok || fail "job $DONE did not complete"
for verb in cancel pause resume; do
    api POST "/v1/jobs/$DONE/$verb"
    expect_status 409
    check "$verb of a completed job: conflict naming the state" jqt '.error.code == "conflict" and (.error.message | test("completed"))'
done
check "still completed" state_is "$DONE" completed

# a queued job can neither pause nor resume
submit "$(tiny_spec R3 1000)"; R3=$JOB
wait_state "$R3" running 60 && ok || fail "R3 not running"
submit "$(tiny_spec Q2 1)"; Q2=$JOB
api POST "/v1/jobs/$Q2/pause"
expect_status 409
api POST "/v1/jobs/$Q2/resume"
expect_status 409
for j in $Q2 $R3; do api POST "/v1/jobs/$j/cancel"; expect_status 200; done

# a resumed job goes to the front of the queue (within its priority)
submit "$(tiny_spec front1 1000)"; F1=$JOB
wait_state "$F1" running 60 && ok || fail "front1 not running"
api POST "/v1/jobs/$F1/pause"
expect_status 200
submit "$(tiny_spec front2 1000)"; F2=$JOB
wait_state "$F2" running 60 && ok || fail "front2 did not take the free worker"
submit "$(tiny_spec front3 1)"; F3=$JOB
api POST "/v1/jobs/$F1/resume"
expect_status 200
check "resumed job waits while the worker is busy" state_is "$F1" queued
api POST "/v1/jobs/$F2/cancel"
expect_status 200
wait_state "$F1" running 60 && ok || fail "the resumed job did not run next"
check "front3, submitted before the resume, still waits" state_is "$F3" queued
for j in $F1 $F3; do api POST "/v1/jobs/$j/cancel"; expect_status 200; done

# ---- 4. pause and resume change nothing -----------------------------------------------
# A warm-up schedule makes beta differ from step to step, so a resume at the wrong
# step, or with the wrong schedule state, shows in the figures. Wider layers make a
# step slow enough (a few ms) for the pauses to land at steps the test picks.
PSPEC=$(tiny_spec pr 3 '{"dataset": {"limit": 20000}, "train": {"batch_size": 200}, "model": {"encoder": [256], "decoder": [256]},
    "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 150, "unit": "steps"}}')
train_ref pr "$PSPEC"
TOTAL=$(wc -l <"$T/pr.jsonl")
submit "$PSPEC"; P=$JOB
AT=$((10 + $(rand_below 30)))
CYCLE=0
PAUSED_AT=""
while [ $CYCLE -lt 3 ]; do
    CYCLE=$((CYCLE + 1))
    wait_step "$P" "$AT" 60 || { fail "job $P did not reach step $AT"; break; }
    api POST "/v1/jobs/$P/pause"
    [ "$STATUS" = 200 ] || { fail "pause $CYCLE: HTTP $STATUS: $BODY"; break; }
    ok
    S=$(jqb .step)
    PAUSED_AT="$PAUSED_AT $S"
    check "paused before the end (step $S of $TOTAL)" [ "$S" -lt "$TOTAL" ]
    api GET "/v1/jobs/$P/checkpoints"
    check "a pause checkpoint at step $S" jqt "any(.checkpoints[]; .step == $S and .kind == \"pause\")"
    if [ $CYCLE -ge 2 ]; then
        # paused across a restart (SIGTERM once, SIGKILL once: a pause is durable
        # before its reply): the job stays paused and resumes from its checkpoint
        if [ $CYCLE -eq 2 ]; then term_daemon 5; else kill_daemon; fi
        check "paused in the db while stopped" [ "$(db_state "$P")" = paused ]
        start_daemon --threads 1 --workers 1
        sleep 0.2
        check "still paused after the restart" state_is "$P" paused
    fi
    api POST "/v1/jobs/$P/resume"
    expect_status 200
    check "resume reply: queued or running" jqt '.state == "queued" or .state == "running"'
    AT=$((S + 5 + $(rand_below 20)))
done
echo "paused at steps:$PAUSED_AT"
wait_state "$P" completed 120 && ok || fail "job $P did not complete"
same_as_ref "$P" pr "paused and resumed 3 times, twice across a restart"
stop_daemon
integrity_ok "after the control tests"
finish
