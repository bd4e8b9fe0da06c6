#!/bin/sh
# dashboard.sh — the dashboard (GET /) in a real browser: Debian's headless Chromium
# driven by Playwright (tests/browser/dashboard.test.js says what it checks). This
# script checks the tools are there (browser_lib.sh: a missing one is a loud failure,
# never a skip), starts the daemon with a finished job and a running one, and runs the
# browser test.
. tests/e2e/browser_lib.sh
browser_ready

e2e_init
start_daemon --workers 1

# A short job that finishes, for the comparison overlay.
api POST /v1/jobs '{"name": "short", "dataset": {"name": "fashion-mnist", "limit": 2000},
  "model": {"encoder": [32], "latent": 8, "decoder": [32]},
  "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 1},
  "train": {"epochs": 2, "batch_size": 64}, "checkpoint": {"every_seconds": 0},
  "eval": {"every_epochs": 1, "k": 4, "rows": 256}}'
expect_status 201
DONE=$(jqb .id)
check "short job completes" wait_state "$DONE" completed 60
# its two evaluations (epoch 1, final) run on the one worker before the long job starts
i=0
while [ $i -lt 600 ]; do
    api GET "/v1/jobs/$DONE/evaluations"
    [ "$(jqb '[.evaluations[] | select(.state == "completed")] | length')" -ge 2 ] && break
    i=$((i + 1)); sleep 0.1
done
check "the short job's eval block evaluated its two checkpoints" \
    [ "$(jqb '[.evaluations[] | select(.state == "completed")] | length')" -ge 2 ]

# A long job that trains through the whole browser test (cancelled at the end);
# periodic checkpoints only, so the image grids have one to use within 2 s.
api POST /v1/jobs '{"name": "long", "dataset": {"name": "fashion-mnist", "limit": 20000},
  "model": {"encoder": [128], "latent": 8, "decoder": [128]},
  "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 20},
  "train": {"epochs": 1000, "batch_size": 64},
  "checkpoint": {"every_seconds": 2, "at_epoch_end": false, "keep": 2, "keep_epoch_end": false}}'
expect_status 201
RUN=$(jqb .id)
check "long job runs" wait_step "$RUN" 20 60

mkdir -p "${TEST_OUT:-test-output}"
if VAED_URL="$URL" JOB_RUNNING="$RUN" JOB_DONE="$DONE" CHROMIUM="$CHROMIUM" \
    SHOT="${TEST_OUT:-test-output}/dashboard.png" node tests/browser/dashboard.test.js; then
    ok
else
    fail "browser test (output above)"
fi

api POST "/v1/jobs/$RUN/cancel"
expect_status 200
stop_daemon
finish
