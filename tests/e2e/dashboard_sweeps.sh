#!/bin/sh
# dashboard_sweeps.sh — the dashboard's sweep page (web/sweeps.js) in headless Chromium
# (tests/browser/sweeps.test.js says what it checks): a 6-trial sweep over the warm-up
# length and the latent size, run to the end on two workers, a PBT population of 4 run
# to the end (its family tree), then a sweep still
# running while the page is open (its table must fill in as trials finish; its one
# trial waits paused until the page resumes it).
. tests/e2e/browser_lib.sh
not_under_tsan "the page's requests are reads and controls that sweeps*.sh, events.sh and daemon_control.sh run under TSan"
browser_ready
. tests/e2e/daemon_lib.sh
e2e_init
start_daemon --workers 2 --threads 1

BASE=$(tiny_spec page 2 '{"schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 1}}')
api POST /v1/sweeps "$(jq -cn --argjson b "$BASE" '{name: "page", base: $b,
    space: {"schedule.duration": [0.01, 1, 2], "model.latent": [2, 6]}, concurrency: 2}')"
expect_status 201
SW=$(jqb .id)
i=0
while [ $i -lt $((1200 * SLOW)) ]; do
    api GET "/v1/sweeps/$SW"
    [ "$(jqb '.counts.completed // 0')" = 6 ] && break
    i=$((i + 1)); sleep 0.1
done
check "sweep $SW: its 6 trials complete" [ "$(jqb '.counts.completed // 0')" = 6 ]
# a PBT population (docs/sweeps.md): its page draws the family tree
PB=$(tiny_spec pbt 4 '{"schedule": {"kind": "constant", "value": 1}}')
api POST /v1/sweeps "$(jq -cn --argjson b "$PB" '{name: "pbt", base: $b, space: {"schedule.value": [4, 2, 0.5, 0.01]},
    concurrency: 4, objective: {metric: "kl", direction: "min"}, pbt: {interval: 2, perturb: ["value"]}}')"
expect_status 201
PBT=$(jqb .id)
i=0
while [ $i -lt $((1200 * SLOW)) ]; do
    api GET "/v1/sweeps/$PBT"
    [ "$(jqb '.counts.completed // 0')" = 4 ] && break
    i=$((i + 1)); sleep 0.1
done
check "PBT sweep $PBT: its 4 members complete" [ "$(jqb '.counts.completed // 0')" = 4 ]

# The live sweep has one trial, paused once it runs, and the page resumes it: it cannot
# finish before the page watches, however fast or slow the host (it once did, in CI).
# (One trial: a paused trial gives its place to the next, which would finish unwatched.)
api POST /v1/sweeps "$(jq -cn --argjson b "$(tiny_spec live $((40 / SLOW + 4)))" '{name: "live", base: $b,
    space: {"train.seed": [1]}, concurrency: 1}')"
expect_status 201
LIVE=$(jqb .id)
i=0
while [ $i -lt $((600 * SLOW)) ]; do
    api GET "/v1/sweeps/$LIVE"
    LIVE_JOB=$(jqb '[.trials[] | .job // empty][0] // empty')
    [ -n "$LIVE_JOB" ] && break
    i=$((i + 1)); sleep 0.1
done
check "the live sweep's trial has a job" [ -n "$LIVE_JOB" ]
wait_state "$LIVE_JOB" running 60 && ok || fail "job $LIVE_JOB (the live trial) not running"
api POST "/v1/jobs/$LIVE_JOB/pause"
expect_status 200

browser_test sweeps SWEEP="$SW" LIVE_SWEEP="$LIVE" LIVE_JOB="$LIVE_JOB" PBT_SWEEP="$PBT"
api GET "/v1/sweeps/$LIVE"
check "the live sweep's one trial completed" jqt '.counts.completed == 1 and .n_trials == 1'
stop_daemon
finish
