# daemon_recovery.sh — durability. (5) SIGTERM while a job runs: the daemon exits 0
# within 5 s, the job is `interrupted` with a checkpoint at the step it stopped at;
# started again, it resumes from there and completes bit-identical to an
# uninterrupted run. (6) SIGKILL at random moments — while checkpoints are being
# written continuously (checkpoint.every_steps 1), once during recovery itself — and
# a restart after each: the job completes with every step present exactly once and
# every figure bit-identical to `vaed train`; PRAGMA integrity_check is ok throughout.
. tests/e2e/daemon_lib.sh
not_under_tsan "its wide reference runs take three minutes there; a SIGTERM's shutdown runs under TSan in every script's stop_daemon and in evaluations.sh (mid-evaluation), a resume from a checkpoint on a running daemon in daemon_overrides.sh and cluster_pg.sh (c)"
e2e_init

newest_ckpt() { sqlite3 "$DB" "SELECT step FROM checkpoints WHERE job = $1 ORDER BY step DESC LIMIT 1"; }

# ---- 5. SIGTERM while running, restart ---------------------------------------------------
# Wide layers and many rows per epoch: training, not the per-epoch test evaluation,
# takes most of the time, so the stop lands mid-epoch.
SSPEC=$(tiny_spec term 3 '{"dataset": {"limit": 20000}, "train": {"batch_size": 200},
    "model": {"encoder": [256], "decoder": [256]},
    "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 120, "unit": "steps"}}')
train_ref term "$SSPEC"
start_daemon --threads 1
submit "$SSPEC"; J=$JOB
wait_step "$J" $((5 + $(rand_below 120))) 60 && ok || fail "job $J not stepping"
term_daemon 5
echo "SIGTERM: exited in ${D_TERM_MS} ms"
check "exit within 5 s (${D_TERM_MS} ms)" [ "$D_TERM_MS" -lt 5000 ]
check "job interrupted (db says $(db_state "$J"))" [ "$(db_state "$J")" = interrupted ]
STOP_STEP=$(sqlite3 "$DB" "SELECT step FROM jobs WHERE id = $J")
CK=$(newest_ckpt "$J")
check "checkpoint at the step it stopped at (job step $STOP_STEP, checkpoint $CK)" [ "$STOP_STEP" = "$CK" ]
check "stopped mid-run (step $STOP_STEP of 300)" [ "$STOP_STEP" -gt 0 ] && [ "$STOP_STEP" -lt 300 ]
integrity_ok "after SIGTERM"
start_daemon --threads 1
wait_state "$J" completed 120 && ok || fail "job $J did not complete after the restart"
check "resumed from step $STOP_STEP, not from scratch" \
    grep -q "job $J resumes from its checkpoint at step $STOP_STEP\$" "$T/daemon.log"
same_as_ref "$J" term "stopped by SIGTERM and restarted"
# SIGTERM while a job is still loading its data (running, no step yet)
submit "$SSPEC"; J2=$JOB
wait_state "$J2" running 60 && ok || fail "job $J2 not running"
term_daemon 5
echo "SIGTERM during data load: exited in ${D_TERM_MS} ms; job $(db_state "$J2")"
check "exit within 5 s (${D_TERM_MS} ms)" [ "$D_TERM_MS" -lt 5000 ]
check "job interrupted (db says $(db_state "$J2"))" [ "$(db_state "$J2")" = interrupted ]
start_daemon --threads 1
wait_state "$J2" completed 120 && ok || fail "job $J2 did not complete after the restart"
same_as_ref "$J2" term "stopped by SIGTERM while loading and restarted"
stop_daemon
integrity_ok "after the SIGTERM runs"

# ---- 6. SIGKILL at random moments --------------------------------------------------------
# A checkpoint every step keeps the store writing checkpoint blobs (and syncing them)
# nearly all the time, so the kills land during checkpoint writes as well as between.
# Monte Carlo KL with 2 samples draws many random numbers per step: a resume that
# restored the generator at the wrong point would show at once.
kspec() { # EPOCHS
    tiny_spec kill "$1" '{"dataset": {"limit": 10000}, "train": {"batch_size": 100},
        "model": {"latent": [3, 2]}, "loss": {"kl": "mc", "samples": 2},
        "checkpoint": {"every_steps": 1, "keep": 2},
        "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 250, "unit": "steps"}}'
}
# The run must last long enough for five kills whatever this machine's speed (a
# sanitizer build is several times slower, a loaded machine reacts late): time one
# epoch of it with vaed train, then take enough epochs (100 steps each) for about 4 s
# of training in the daemon (a step plus about 3 ms to write its checkpoint).
train_ref cal "$(kspec 1)"
STEP_US=$(jq -s '((.[-1].time - .[0].time) / (length - 1)) * 1e6 | floor' "$T/cal.jsonl")
EPOCHS=$((4000000 / ((STEP_US + 3000) * 100) + 1))
[ $EPOCHS -ge 3 ] || EPOCHS=3
[ $EPOCHS -le 12 ] || EPOCHS=12
echo "a step takes ${STEP_US} us in vaed train: $EPOCHS epochs"
KSPEC=$(kspec $EPOCHS)
train_ref kill "$KSPEC"
TOTAL=$(wc -l <"$T/kill.jsonl")
rm -f "$DB" "$DB-wal" "$DB-shm"
start_daemon --threads 1
submit "$KSPEC"; K=$JOB
# Five kills while it trains: the k-th once the job has passed a random step in the
# first half of the k-th eighth of the run, after a further random 0-150 ms; so the
# kills spread over the run whatever the machine's (or the sanitizer's) speed, and a
# loaded machine that reacts late still kills before the end (at least 4 must land
# while it runs). One more kill lands during recovery, right after a restart, before
# the job has trained a step.
HITS=0
ROUND=0
KILLED_AT=""
kill_and_look() { # WHEN
    kill_daemon
    ROUND=$((ROUND + 1))
    WAL=$(python3 "$D_CHECK" wal-tail "$DB-wal") # before sqlite3 opens (and recovers) it
    ST=$(db_state "$K")
    CK=$(newest_ckpt "$K")
    echo "SIGKILL $ROUND ($1): job $ST, newest checkpoint ${CK:-none}; $WAL"
    case $ST in
        running|queued) [ "$1" = recovery ] || { HITS=$((HITS + 1)); KILLED_AT="$KILLED_AT ${CK:-none}"; } ;;
        *) echo "job already $ST" ;;
    esac
}
k=0
while [ $k -lt 5 ]; do
    TARGET=$((k * TOTAL / 8 + 1 + $(rand_below $((TOTAL / 16)))))
    wait_step "$K" "$TARGET" 120 || { fail "job $K did not reach step $TARGET"; break; }
    # and it has trained a step in this daemon process (not just recovered its state)
    wait_stepping "$K" 120 || { fail "job $K is not training after the restart"; break; }
    sleep_ms "$(rand_below 150)"
    kill_and_look "past step $TARGET"
    if [ $k -eq 1 ]; then
        [ "$ST" = completed ] || integrity_ok "right after SIGKILL $ROUND"
        start_daemon --threads 1
        sleep_ms "$(rand_below 150)"
        kill_and_look recovery
    fi
    start_daemon --threads 1
    k=$((k + 1))
done
check "at least 4 kills while the job ran (got $HITS, newest checkpoints then:$KILLED_AT)" [ $HITS -ge 4 ]
wait_state "$K" completed 120 && ok || fail "job $K did not complete after the kills"
check "the job was resumed, not restarted, after the kills" \
    grep -q "job $K resumes from its checkpoint" "$T/daemon.log"
same_as_ref "$K" kill "killed $HITS times with SIGKILL"
api GET "/v1/jobs/$K"
check "completed at step $TOTAL" jqt ".step == $TOTAL and .reason == null"
api GET "/v1/jobs/$K/checkpoints"
check "old periodic checkpoints were pruned (keep 2)" jqt '[.checkpoints[] | select(.kind == "periodic")] | length <= 2'
check "final checkpoint at step $TOTAL" jqt "any(.checkpoints[]; .kind == \"final\" and .step == $TOTAL)"
stop_daemon
integrity_ok "after the SIGKILL run"
finish
