#!/bin/sh
# cluster_evals_pg.sh — evaluations across a cluster's nodes: three `vaed serve` nodes
# (n1, n2, n3) on one PostgreSQL database. An evaluation runs under a lease of its own
# (the leases table, key minus its id: store.h STORE_LEASE_EVAL), taken like a job's,
# renewed beside the jobs', and its blocks and state are fenced by it. Checked:
#   (a) an evaluation queued through n1 is run by exactly one node at a time (its
#       lease: one holder, gen 1; GET /v1/nodes through another node lists it there),
#       and every node serves its progress; SIGKILL of that node mid-evaluation (some
#       blocks committed): another node takes its lease (gen 2) once it expires, goes on
#       from the committed blocks (rows_done never goes back), and the result equals
#       `vaed eval`'s for the same checkpoint, rows, k and seed, bit for bit; the lease
#       ends done; the killed node, restarted under its name, serves it completed;
#   (b) a cancel through a node that does not run the evaluation: 200 cancelled, and by
#       the reply the runner has let go of its lease (done); no block lands after it
#       (rows_done stays, no eval_blocks rows), the runner logs why it stopped, and a
#       second cancel is 409;
#   (c) four evaluations queued at once through n2: all complete, each taken exactly
#       once (gen 1, done 1), two with the same checkpoint, rows, k and seed equal bit
#       for bit, whichever nodes ran them (printed).
#
# Plain and ASan+UBSan; under ThreadSanitizer too, lighter (the nodes' threads: the
# evaluations' renewals and list sync beside the jobs').
. tests/e2e/daemon_lib.sh
. tests/e2e/eval_lib.sh
e2e_init
. tests/e2e/pg_lib.sh
pg_init cluster_evals_pg
UP="$T/uploads"
mkdir -p "$UP"
TTL=$((SLOW > 1 ? 8 : 3))
CWAIT=$((3 * SLOW))
. tests/e2e/cluster_lib.sh
# samples per row of the evaluation killed mid-way: under a sanitizer our loops run some
# ten times slower, so fewer
BIG_K=400
[ -z "$SANITIZER" ] || BIG_K=40

T0=$(date +%s)
for n in n1 n2 n3; do start_node $n; done
echo "cluster_evals_pg: nodes n1 :$PORT_n1, n2 :$PORT_n2, n3 :$PORT_n3 (lease ttl $TTL s)"

on n1
SPEC=$(tiny_spec cev 1)
printf '%s\n' "$SPEC" >"$T/spec.json"
submit "$SPEC" || { finish; exit 1; }
wait_state "$JOB" completed 120 || { fail "the job did not complete"; finish; exit 1; }
api GET "/v1/jobs/$JOB/checkpoints"
FINAL=$(jqb '[.checkpoints[].step] | max')
curl -sS -o "$T/final.ckpt" "$URL/v1/jobs/$JOB/checkpoints/$FINAL"

# the reference, computed meanwhile
cli big final --k "$BIG_K" --rows 3000 --seed 5 &
CLI_PID=$!

eval_lease() { pq "SELECT coalesce(node, '') || ' ' || gen || ' ' || done FROM leases WHERE job = -$1"; }
# wait_runner EID SECS: until a node holds the evaluation's lease; sets RUNNER
wait_runner() {
    c_w=0
    while :; do
        RUNNER=$(pq "SELECT coalesce(node, '') FROM leases WHERE job = -$1 AND done = 0 AND node IS NOT NULL")
        case $RUNNER in n[0-9]) return 0 ;; esac
        c_w=$((c_w + 1))
        [ $c_w -le $(($2 * 20)) ] || return 1
        sleep 0.05
    done
}

# ---- (a) one runner at a time; SIGKILL of it: another node goes on, same bits ------------
echo "cluster_evals_pg: (a) from $(($(date +%s) - T0)) s"
api POST "/v1/jobs/$JOB/evaluations" '{"checkpoint": "final", "k": '"$BIG_K"', "rows": 3000, "seed": 5}'
expect_status 202
E1=$(jqb .id)
wait_runner "$E1" 30 || { fail "(a) no node took evaluation $E1's lease"; finish; exit 1; }
check "(a) evaluation $E1 is held by one node, first take (lease: $(eval_lease "$E1"))" \
    [ "$(eval_lease "$E1")" = "$RUNNER 1 0" ]
on "$(other_than "$RUNNER")"
api GET /v1/nodes
check "(a) GET /v1/nodes through another node lists evaluation $E1 under $RUNNER" \
    jqt "[.nodes[] | select(.evaluations | map(.evaluation) | index($E1))] | map(.name) == [\"$RUNNER\"]"
DONE_BEFORE=0
c_w=0
while :; do
    api GET "/v1/jobs/$JOB/evaluations/$E1"
    DONE_BEFORE=$(jqb '.rows_done // 0')
    [ "$DONE_BEFORE" -ge 512 ] && break
    [ "$(jqb .state)" = completed ] && break
    c_w=$((c_w + 1)); [ $c_w -le $((1200 * SLOW)) ] || break
    sleep 0.05
done
check "(a) another node serves the evaluation's progress: running, blocks committed before the kill ($DONE_BEFORE of 3000 rows)" \
    [ "$DONE_BEFORE" -ge 512 ] && [ "$DONE_BEFORE" -lt 3000 ]
KILLED=$RUNNER
[ -n "$KILLED" ] || { fail "(a) nobody runs evaluation $E1"; finish; exit 1; }
kill_node "$KILLED"
T_KILL=$(now_ms)
on "$(other_than "$KILLED")"
wait_eval "$E1" completed $((240 * SLOW)) || fail "(a) evaluation $E1 did not complete after its runner's death"
wait "$CLI_PID"
if same big; then ok; else
    fail "(a) evaluation $E1 resumed on another node is not vaed eval's for the same checkpoint, rows, k and seed: $(jqb -c .result) vs $(cat "$T/big.json")"
fi
L=$(eval_lease "$E1")
check "(a) taken over once, by another node, and done (lease: $L; killed $KILLED)" \
    sh -c "[ \"\$(echo '$L' | cut -d' ' -f2-)\" = '2 1' ]"
BY=$(logs_with " evaluation $E1 of job $JOB running" | tr '\n' ' ')
check "(a) two nodes logged evaluation $E1 running: the killed one and the one that took it over ($BY)" \
    [ "$(echo $BY | wc -w)" = 2 ]
check "(a) the one that took it over found the committed blocks (rows_done never went back)" \
    jqt ".rows_done == 3000 and .rows == 3000"
echo "cluster_evals_pg: (a) $KILLED killed at $DONE_BEFORE rows; completed on another node $(($(now_ms) - T_KILL)) ms later"
start_node "$KILLED"
on "$KILLED"
api GET "/v1/jobs/$JOB/evaluations/$E1"
check "(a) $KILLED, restarted under its name, serves evaluation $E1 completed" jqt '.state == "completed"'

# ---- (b) a cancel through a node that does not run it ------------------------------------
echo "cluster_evals_pg: (b) from $(($(date +%s) - T0)) s"
on n2
api POST "/v1/jobs/$JOB/evaluations" '{"k": 5000, "seed": 7}'
expect_status 202
E2=$(jqb .id)
wait_runner "$E2" 30 || { fail "(b) no node took evaluation $E2's lease"; finish; exit 1; }
on "$RUNNER"
wait_eval "$E2" running 30 || fail "(b) evaluation $E2 is not running on $RUNNER"
VIA=$(other_than "$RUNNER")
on "$VIA"
api POST "/v1/jobs/$JOB/evaluations/$E2/cancel"
expect_status 200
check "(b) cancel through $VIA of an evaluation $RUNNER runs: cancelled, no result" \
    jqt '.state == "cancelled" and .result == null'
L=$(eval_lease "$E2")
check "(b) by the reply $RUNNER has let go of its lease, for good (lease: $L)" \
    [ "$L" = " 1 1" ]
R1=$(pq "SELECT rows_done FROM evaluations WHERE id = $E2")
sleep $((2 * SLOW))
check "(b) no block lands after the cancel (rows_done $R1, then $(pq "SELECT rows_done FROM evaluations WHERE id = $E2"); blocks $(pq "SELECT count(*) FROM eval_blocks WHERE eval = $E2"))" \
    [ "$(pq "SELECT rows_done || ' ' || state FROM evaluations WHERE id = $E2")" = "$R1 cancelled" ] &&
    [ "$(pq "SELECT count(*) FROM eval_blocks WHERE eval = $E2")" = 0 ]
check "(b) $RUNNER logs that it stopped (cancelled through another node)" \
    grep -qE "evaluation $E2: cancelled through another node|evaluation $E2 let go" "$T/$RUNNER.log"
api POST "/v1/jobs/$JOB/evaluations/$E2/cancel"
expect_status 409

# ---- (c) four at once through one node: each taken once, the same numbers ---------------
echo "cluster_evals_pg: (c) from $(($(date +%s) - T0)) s"
on n2
EC=""
for s in 3 3 4 8; do
    api POST "/v1/jobs/$JOB/evaluations" '{"k": 20, "rows": 700, "seed": '"$s"'}'
    expect_status 202
    EC="$EC $(jqb .id)"
done
on n3
for e in $EC; do
    wait_eval "$e" completed $((120 * SLOW)) || fail "(c) evaluation $e did not complete"
done
ids=$(echo $EC | sed 's/\([0-9][0-9]*\)/-\1/g; s/ /,/g')
check "(c) each taken exactly once: leases gen 1, done 1 ($(pq "SELECT string_agg(job || ':' || gen || '/' || done, ' ') FROM leases WHERE job IN ($ids)"))" \
    [ "$(pq "SELECT count(*) FROM leases WHERE job IN ($ids) AND gen = 1 AND done = 1")" = 4 ]
set -- $EC
api GET "/v1/jobs/$JOB/evaluations/$1"
printf '%s' "$BODY" | jq -c .result >"$T/c1.json"
api GET "/v1/jobs/$JOB/evaluations/$2"
check "(c) the two with the same checkpoint, rows, k and seed are equal, bit for bit" same c1
RUNS=""
for e in $EC; do RUNS="$RUNS $e:$(logs_with " evaluation $e of job $JOB running" | tr '\n' ',')"; done
echo "cluster_evals_pg: (c) evaluations ran on:$RUNS"
finish
