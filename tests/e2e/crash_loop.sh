# crash_loop.sh — a crash loop. One job trains while the daemon is killed with SIGKILL
# at least KILLS (default 22) times and restarted after each: a third of the kills come
# right after a schedule change was answered (PUT /v1/jobs/{id}/schedule), the others
# after a random delay while checkpoints are written every 2 steps, so many land in the
# middle of a checkpoint's transaction. At the end the job has completed; its per-step
# metrics are bit-identical to `vaed train` of the same spec with the same schedule
# changes applied at the same steps; every step is there exactly once; and PRAGMA
# integrity_check is ok (also checked after every third kill).
#
# The reference. The changes are constants with dyadic values (0.125, 0.25, ...), so
# the schedule actually followed — the initial constant, then each change that governed
# steps from its effective step on — is exactly a piecewise schedule in steps with a
# point before and at each change: linear interpolation between dyadic values at whole
# steps is exact, so `vaed train` with it computes the same beta, bit for bit, and from
# it the same losses.
#
# Randomness is seeded and the seed printed: CRASH_SEED=<seed> replays the same choices
# (the kill moments depend on timing too, so the replay is close, not exact).
#
# CRASH_PG=1 runs it on a PostgreSQL server it starts (crash_loop_pg.sh): the daemon is
# a cluster's node that is killed and restarted under its name, taking its job's lease
# back each time; the checks are the same, read with psql (no integrity_check: that is
# the server's).
. tests/e2e/daemon_lib.sh
# Under ThreadSanitizer each restart and every step run ~20 times slower: 22 kills
# would take the best part of an hour.
not_under_tsan "22 kills would take most of an hour; the threads of recovery run under TSan in daemon_overrides.sh and cluster_pg.sh (c)"
e2e_init
if [ "${CRASH_PG:-0}" = 1 ]; then
    . tests/e2e/pg_lib.sh
    pg_init crash_loop_pg
    DB=$PGURL
    mkdir -p "$T/up"
    NODE_ARGS="--node crashnode --upload-dir $T/up"
    q() { psql "$DB" -Atc "$1"; }
    integrity_ok() { ok; }
    db_state() { q "SELECT state FROM jobs WHERE id = $1" 2>&1; }
    q_hist() { q "SELECT coalesce(json_agg(x ORDER BY x.e, x.seq), '[]') FROM ($1) x"; }
else
    NODE_ARGS=""
    q() { sqlite3 "$DB" "$1"; }
    q_hist() { sqlite3 -json "$DB" "$1"; }
fi

# Under ASan+UBSan 10 kills over 20 epochs (CI time): the same recovery paths, each
# killed and restarted a few times over, at half the cost.
case "${SANITIZER:-}" in
*address*) KILLS=${KILLS:-10}; CRASH_EPOCHS=${CRASH_EPOCHS:-20} ;;
esac
KILLS=${KILLS:-22}
SEED=${CRASH_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "crash_loop: seed $SEED (replay with CRASH_SEED=$SEED), $KILLS kills"
R=$SEED
rnd() { # N: sets RND to a number in [0, N) from the seeded generator (an LCG; plenty
    # for this). Not used as $(rnd): a subshell would not advance R.
    R=$(((R * 1103515245 + 12345) % 2147483648))
    RND=$(((R / 65536) % $1))
}
DYADIC="0.125 0.25 0.375 0.5 0.625 0.75 0.875 1"
pick_beta() { # sets NEW to a dyadic value, never the one in force
    while :; do
        rnd 8
        d_v=$(echo $DYADIC | cut -d' ' -f$((RND + 1)))
        [ "$d_v" != "$1" ] && { NEW=$d_v; return; }
    done
}


# 2000 rows in batches of 50: 40 steps per epoch, 40 epochs, 1600 steps; the kills take
# about a third of them, the rest run on after the last one. A checkpoint every 2 steps
# keeps the store writing (and syncing) checkpoint blobs nearly all the time. Monte
# Carlo KL with 2 samples draws many random numbers per step: a resume that restored
# the generator at the wrong point would show at once.
EPOCHS=${CRASH_EPOCHS:-40}   # crash_loop_pg.sh: fewer (its kills take the first 200 steps)
SPEC=$(tiny_spec crash "$EPOCHS" '{"dataset": {"limit": 2000}, "train": {"batch_size": 50},
    "model": {"encoder": [128], "decoder": [128], "latent": [3, 2]},
    "loss": {"kl": "mc", "samples": 2},
    "schedule": {"kind": "constant", "value": 0},
    "checkpoint": {"every_steps": 2, "keep": 2, "every_seconds": 0}}')
TOTAL=$((EPOCHS * 40))
start_daemon --threads 1 $NODE_ARGS
submit "$SPEC"; J=$JOB

BETA=0                          # the value in force, as the test last set it
KILLED=0
HITS=0
PUTS=0
k=0
while [ $k -lt "$KILLS" ]; do
    # each kill once the restarted job trains again (not just recovered), after a
    # random delay below
    wait_stepping "$J" 60 || { echo "job $J is $(jqb .state), not running: kill $k skipped"; break; }
    TARGET=$(jqb .step)
    MODE=$((k % 3))
    if [ $MODE = 0 ]; then
        pick_beta "$BETA"
        api PUT "/v1/jobs/$J/schedule" "{\"kind\": \"constant\", \"value\": $NEW}"
        if [ "$STATUS" = 200 ]; then
            BETA=$NEW
            PUTS=$((PUTS + 1))
            WHAT="right after beta $NEW from step $(jqb .effective_step)"
        else
            WHAT="after a refused change ($STATUS: $(jqb -c .error))"
        fi
    else
        # sometimes a change that is not followed by a kill, so changes also live
        # through checkpoints and plain recovery
        rnd 3
        if [ "$RND" = 0 ]; then
            pick_beta "$BETA"
            api PUT "/v1/jobs/$J/schedule" "{\"kind\": \"constant\", \"value\": $NEW}"
            [ "$STATUS" = 200 ] && { BETA=$NEW; PUTS=$((PUTS + 1)); }
        fi
        rnd 150
        D=$RND
        sleep_ms "$D"
        WHAT="after $D ms"
    fi
    kill_daemon
    KILLED=$((KILLED + 1))
    ST=$(db_state "$J")
    case $ST in running|queued) HITS=$((HITS + 1)) ;; esac
    CK=$(q "SELECT max(step) FROM checkpoints WHERE job = $J")
    ROWS=$(q "SELECT count(*) FROM metrics WHERE job = $J")
    echo "SIGKILL $KILLED (seen at step $TARGET, $WHAT): job $ST, newest checkpoint ${CK:-none}, $ROWS rows"
    [ $((KILLED % 3)) = 0 ] && integrity_ok "after SIGKILL $KILLED"
    start_daemon --threads 1 $NODE_ARGS
    k=$((k + 1))
done
check "at least $((KILLS - 2)) kills while the job ran (got $HITS of $KILLED, $PUTS schedule changes)" [ "$HITS" -ge $((KILLS - 2)) ]
wait_state "$J" completed 120 && ok || fail "job $J did not complete after the kills"
stop_daemon
integrity_ok "at the end"

# every step once, straight from the database
STEPS=$(q "SELECT count(*) || ' ' || count(DISTINCT step) || ' ' || min(step) || ' ' || max(step) FROM metrics WHERE job = $J")
check "steps 0..$((TOTAL - 1)) once each (count, distinct, min, max: $STEPS)" [ "$STEPS" = "$TOTAL $TOTAL 0 $((TOTAL - 1))" ]

# the schedule actually followed, from the store's history: the changes that governed
# steps (not superseded), in order of effective step
HIST=$(q_hist "SELECT effective_step AS e, seq, schedule FROM schedule_events WHERE job = $J AND source = 'override' AND superseded = 0 ORDER BY effective_step, seq")
[ -n "$HIST" ] || HIST='[]'
echo "schedule changes in force: $(printf '%s' "$HIST" | jq -c '[.[] | [.e, (.schedule | fromjson | .value)]]')"
POINTS=$(printf '%s' "$HIST" | jq -c '
    reduce (.[] | {e, v: (.schedule | fromjson | .value)}) as $c
        ({pts: [[0, 0]], last: 0};
         if $c.e == 0 then .pts = [[0, $c.v]]
         else .pts += (if (.pts[-1][0]) < ($c.e - 1) then [[$c.e - 1, .last]] else [] end)
                      + [[$c.e, $c.v]]
         end | .last = $c.v) | .pts')
NEED=$((KILLS >= 20 ? 5 : 2))
check "at least $NEED schedule changes governed steps ($(printf '%s' "$HIST" | jq length))" [ "$(printf '%s' "$HIST" | jq length)" -ge $NEED ]
REF=$(printf '%s' "$SPEC" | jq -c --argjson p "$POINTS" \
    '.schedule = {kind: "piecewise", unit: "steps", points: $p}')
train_ref crashref "$REF"
start_daemon --threads 1 $NODE_ARGS
same_as_ref "$J" crashref "killed $KILLED times with SIGKILL, $PUTS schedule changes"
api GET "/v1/jobs/$J/metrics?fields=beta"
LASTB=$(jqb '.beta[-1]')
check "beta at the last step is the last value set ($LASTB vs $BETA)" jq -n -e "$LASTB == $BETA" >/dev/null
stop_daemon
finish
