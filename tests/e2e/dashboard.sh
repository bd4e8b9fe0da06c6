#!/bin/sh
# dashboard.sh — the dashboard (GET /) in a real browser: Debian's headless Chromium
# driven by Playwright (tests/browser/dashboard.test.js says what it checks). This
# script checks the tools are there (browser_lib.sh: a missing one is a loud failure,
# never a skip), starts the daemon with a finished job and a running one, and runs the
# browser test.
. tests/e2e/browser_lib.sh
not_under_tsan "the page's requests are reads and controls that abuse.sh, events.sh, daemon_control.sh and security_*.sh run under TSan"
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

# The image routes name the checkpoint they drew (X-Vaed-Step): the newest by default,
# the one ?step= asks for otherwise (the dashboard labels its grids with it)
api GET "/v1/jobs/$DONE/checkpoints"
NEWEST=$(jqb '[.checkpoints[].step] | max'); OLDEST=$(jqb '[.checkpoints[].step] | min')
img_step() { curl -sS -m 60 -D - -o /dev/null "$URL/v1/jobs/$DONE/images/$1" | tr -d '\r' | sed -n 's/^[Xx]-[Vv]aed-[Ss]tep: //p'; }
check "reconstructions.png: X-Vaed-Step is the newest checkpoint ($NEWEST)" [ "$(img_step reconstructions.png)" = "$NEWEST" ]
check "samples.png?step=$OLDEST: X-Vaed-Step is $OLDEST" [ "$(img_step "samples.png?step=$OLDEST")" = "$OLDEST" ]

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

browser_test dashboard JOB_RUNNING="$RUN" JOB_DONE="$DONE"

api POST "/v1/jobs/$RUN/cancel"
expect_status 200
stop_daemon
finish
