#!/bin/sh
# cluster_sweeps_pg.sh — a sweep's concurrency is cluster-wide: three `vaed serve` nodes
# (n1, n2, n3) on one PostgreSQL database, one sweep of 4 trials with concurrency 1
# posted to n1. Every node takes trials by lease (store_lease_take_trial: the sweep's
# row locked, its held leases counted). Checked:
#   - every trial completes, each taken once (its lease: gen 1, done 1);
#   - never two of its trials at once across the cluster: the leases table polled
#     every 50 ms during the run (held, unexpired, not done leases of the sweep's jobs:
#     at most 1 at every sample; trials in state running: at most 1), and the trials'
#     run intervals in the database (started_at to finished_at) do not overlap;
#   - a trial waiting for its sweep starts soon after the one before ends, on any node:
#     no gap between one trial's finish and the next one's start above 3 s;
#   - a second sweep, of concurrency 2: its trials complete, two of them hold leases at
#     once (one worker a node: on two nodes) and never three.
# Which nodes ran the trials is printed, not checked.
#
# Plain and ASan+UBSan (a node's table losing a job another node finished freed it
# early once: only ASan sees that); not under TSan (CI time): the trials' take runs
# there in test_store_fence (store_pg.sh: three nodes racing for a concurrency-1 sweep),
# the nodes' threads in cluster_pg.sh.
case "${SANITIZER:-}" in
*thread*)
    echo "cluster_sweeps_pg: not under ThreadSanitizer (CI time: the trials' take runs" \
        "there in test_store_fence, the nodes' threads in cluster_pg.sh)"
    exit 0 ;;
esac
. tests/e2e/daemon_lib.sh
e2e_init
. tests/e2e/pg_lib.sh
pg_init cluster_sweeps_pg
UP="$T/uploads"
mkdir -p "$UP"
TTL=$((SLOW > 1 ? 8 : 3))
CWAIT=$((3 * SLOW))
. tests/e2e/cluster_lib.sh

T0=$(date +%s)
for n in n1 n2 n3; do start_node $n; done
on n1

# 4 trials of about a second each (60 steps of a 128-wide model)
BASE=$(tiny_spec csw 1 '{"dataset": {"limit": 3000}, "model": {"encoder": [128], "decoder": [128]},
    "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 10, "unit": "steps"}}')

# run_sweep CONCURRENCY: posts a sweep of 4 trials to n1 and polls the database until
# they have all finished; sets SW, and $T/samples.$SW holds one "held running" line a
# sample (the sweep's trials' leases held unexpired and not done; its trials running)
run_sweep() {
    api POST /v1/sweeps "{\"name\": \"c$1\", \"base\": $BASE,
        \"space\": {\"schedule.duration\": [5, 10, 20, 40]}, \"method\": \"grid\", \"max_trials\": 4,
        \"concurrency\": $1}"
    expect_status 201
    SW=$(jqb '.id // empty')
    [ -n "$SW" ] || { fail "no sweep: $BODY"; finish; exit 1; }
    rm -f "$T/poll.stop"
    (
        while [ ! -f "$T/poll.stop" ]; do
            psql "$PGURL" -XAtqc "SELECT
                (SELECT count(*) FROM leases l JOIN sweep_trials t ON t.job = l.job WHERE t.sweep = $SW
                 AND l.done = 0 AND l.node IS NOT NULL AND l.expires > extract(epoch FROM clock_timestamp())),
                (SELECT count(*) FROM jobs j JOIN sweep_trials t ON t.job = j.id WHERE t.sweep = $SW
                 AND j.state = 'running')" -F ' ' >>"$T/samples.$SW" 2>/dev/null
            sleep 0.05
        done
    ) &
    POLLER=$!
    r_w=0
    while :; do
        left=$(pq "SELECT count(*) FROM sweep_trials t JOIN jobs j ON j.id = t.job WHERE t.sweep = $SW
            AND j.state NOT IN ('completed', 'failed', 'cancelled')")
        [ "$left" = 0 ] && break
        r_w=$((r_w + 1))
        [ $r_w -le 600 ] || { fail "sweep $SW: $left trials unfinished after 60 s"; break; }
        sleep 0.1
    done
    : >"$T/poll.stop"
    wait "$POLLER" 2>/dev/null
    POLLER=""
    states=$(pq "SELECT string_agg(j.state, ',' ORDER BY t.trial) FROM sweep_trials t JOIN jobs j ON j.id = t.job WHERE t.sweep = $SW")
    check "concurrency $1: every trial completed ($states)" [ "$states" = "completed,completed,completed,completed" ]
    leases=$(pq "SELECT string_agg(l.gen || ':' || l.done, ',' ORDER BY t.trial) FROM sweep_trials t
        JOIN leases l ON l.job = t.job WHERE t.sweep = $SW")
    check "concurrency $1: each trial taken once and done (gen:done $leases)" [ "$leases" = "1:1,1:1,1:1,1:1" ]
    nsamp=$(wc -l <"$T/samples.$SW" | tr -d ' ')
    maxheld=$(awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { print m }' "$T/samples.$SW")
    maxrun=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$T/samples.$SW")
    busy=$(awk '$1 >= 1 { n++ } END { print n + 0 }' "$T/samples.$SW")
    check "concurrency $1: the poller saw trials running ($busy of $nsamp samples)" [ "$busy" -ge 5 ]
}

# ---- concurrency 1: never two trials at once ---------------------------------------------
run_sweep 1
check "concurrency 1: polled $nsamp times, at most one of its trials' leases held at once (max $maxheld)" \
    [ "$maxheld" = 1 ]
check "concurrency 1: at most one of its trials running at once (max $maxrun)" [ "$maxrun" -le 1 ]
overlap=$(pq "SELECT count(*) FROM sweep_trials a JOIN jobs x ON x.id = a.job, sweep_trials b
    JOIN jobs y ON y.id = b.job WHERE a.sweep = $SW AND b.sweep = $SW AND a.trial < b.trial
    AND x.started_at < y.finished_at AND y.started_at < x.finished_at")
check "concurrency 1: the trials' run intervals do not overlap ($overlap overlaps)" [ "$overlap" = 0 ]
gaps=$(pq "SELECT string_agg(round((started_at - prev)::numeric, 2)::text, ' ') FROM (SELECT j.started_at,
    lag(j.finished_at) OVER (ORDER BY j.started_at) AS prev FROM sweep_trials t JOIN jobs j ON j.id = t.job
    WHERE t.sweep = $SW) g WHERE prev IS NOT NULL")
maxgap=$(echo "$gaps" | tr ' ' '\n' | awk 'BEGIN { m = 0 } $1 + 0 > m { m = $1 + 0 } END { print m }')
check "concurrency 1: each trial started within $((3 * SLOW)) s of the one before finishing (gaps: $gaps s)" \
    awk "BEGIN { exit !($maxgap <= 3.0 * $SLOW && \"$gaps\" != \"\") }"
echo "cluster_sweeps_pg: concurrency 1 in $(($(date +%s) - T0)) s; $nsamp samples; gaps between trials: $gaps s"

# ---- concurrency 2: two at once (one worker a node: on two nodes), never three ------------
T1=$(date +%s)
run_sweep 2
check "concurrency 2: polled $nsamp times, two of its trials' leases held at once and never more (max $maxheld)" \
    [ "$maxheld" = 2 ]
check "concurrency 2: at most two of its trials running at once (max $maxrun)" [ "$maxrun" -le 2 ]
echo "cluster_sweeps_pg: concurrency 2 in $(($(date +%s) - T1)) s; $nsamp samples"
runs=""
for n in n1 n2 n3; do runs="$runs $n:$(grep -cE ' job [0-9]+ running($|[ :;,(])' "$T/$n.log")"; done
echo "cluster_sweeps_pg: trials run per node:$runs"
finish
