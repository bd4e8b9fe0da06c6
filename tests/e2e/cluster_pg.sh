# cluster_pg.sh — three `vaed serve` nodes (n1, n2, n3) on one PostgreSQL database form a
# cluster: each takes jobs by lease (table leases: job, node, gen, expires, done; gen
# grows by one at every claim), renews it every ttl/3 seconds, and a job whose lease
# expires is claimed by another node, which resumes it from its newest checkpoint.
# Every job's per-step metrics and last test ELBO are checked bit for bit against `vaed
# train` of the same spec (daemon_lib.sh's same_as_ref).
#   (a) six tiny jobs submitted round-robin to the three nodes: all complete, each was
#       claimed exactly once (gen 1, done 1; one "job N running" line in all the logs),
#       at least two nodes ran jobs, one job of each node equals its reference, every
#       node lists them;
#   (b) a node that does not run a job serves it as running (the database's state);
#       SIGKILL of the node running it: another node takes it over (gen 2) when the
#       lease expires, resumes it from the newest checkpoint, and it completes
#       bit-identical; the killed node is restarted under its name and serves it;
#   (c) SIGSTOP of a job's owner past its lease: a schedule PUT through another node
#       meanwhile is forwarded to the stopped owner, which cannot answer: 503
#       owner_elsewhere naming it, no step guessed; another node claims the job (gen 2)
#       no sooner than the lease allows and resumes it from the newest checkpoint;
#       SIGCONT: the stale node logs that it lost the lease and records nothing more
#       for the job — no state (fenced; vaed_store_ops_fenced_total is shown), and not
#       the request: unanswered in time it was withdrawn (no row left, never taken —
#       checked when the reply says withdrawn; under a sanitizer's longer waits the node
#       may wake first, and the history check below holds either way); the job's state as another node serves
#       it is running, then completed for good, and every node serves it completed;
#       its history holds no change and it completes bit-identical;
#   (d) control from any node: a schedule PUT through a node that does not hold the
#       running job is forwarded to the one that does: 200 naming the step the owner
#       decided; to the owner itself, and through the third node, likewise. The
#       history, read on nodes that do not hold the job, holds each at its step, and
#       the rows follow: the reference's before the first, then each constant beta
#       from its step.
#   (e) a change sent through another node at once after a job's submission is not
#       refused as if the job could not change (never 409); once the job has completed,
#       a change sent through any node is 409 conflict (not 503 as if it ran elsewhere).
#   (g) a job's event stream (GET /v1/jobs/{id}/events) through a node that does not run
#       it: its state, then step events equal to the rows the owner stored, the schedule
#       change PUT to the owner at the step its reply named (each step's samples_per_sec
#       within a factor 2 of the stored rows' own rate), checkpoints, epochs whose
#       test figures are the stored ones, and the final state at the last step; the
#       stream then ends by itself.
#   (h) a dataset uploaded through n1 (each node has its own --upload-dir: they share
#       no directory): every node lists it with the SHA-256 sha256sum gives the file,
#       six jobs naming it through the three nodes complete on at least two nodes, with
#       the same losses bit for bit, from copies each node made from the database that
#       equal the file byte for byte; a DELETE through n2 removes n2's copy;
#   (f) the server restarted (`pg_ctl restart`) while every node trains a job: the nodes
#       reconnect and live on, each job completes once (its lease done) and bit-identical
#       (nothing lost: every step once), every node lists them completed.
#
# Passes: every one. Under ThreadSanitizer (the nodes' threads: renewals, the table's
# sync, forwarded controls, the mirror) (b), (f) and (h) are left out (CI time; (c) takes
# a job over there too). ASan found a job freed early when a node's table let go of a
# job another node finished: nothing else runs that path.
. tests/e2e/daemon_lib.sh
e2e_init
. tests/e2e/pg_lib.sh
pg_init cluster_pg
UP="$T/uploads"
mkdir -p "$UP"
# a short lease, so takeovers are quick (longer under a sanitizer: renewals are slower,
# though still one statement a second); --control-wait: how long a node waits for the
# owner's answer to a forwarded request
TTL=$((SLOW > 1 ? 8 : 3))
CWAIT=$((3 * SLOW))

. tests/e2e/cluster_lib.sh

# ---- the references -----------------------------------------------------------------------
# (a): 200 steps of the tiny model. (b)-(d): wide layers and batches of 200, 400 steps of
# a few ms, a checkpoint every 50 (each some MB: more often would make PostgreSQL the
# bottleneck): still running seconds after it starts, so a kill or a stop lands mid-run,
# after a checkpoint to resume from.
ASPEC=$(tiny_spec small 10)
# under ThreadSanitizer (steps some 10 times slower) half as many epochs
LEP=$((SLOW > 1 ? 2 : 4))
LSPEC=$(tiny_spec long "$LEP" '{"dataset": {"limit": 20000}, "train": {"batch_size": 200},
    "model": {"encoder": [256], "decoder": [256]}, "checkpoint": {"every_steps": 50},
    "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 200, "unit": "steps"}}')
LTOTAL=$((LEP * 100))
train_ref small "$ASPEC"
train_ref long "$LSPEC"

T0=$(date +%s)
start_node n1
start_node n2
start_node n3
echo "cluster_pg: nodes n1 :$PORT_n1, n2 :$PORT_n2, n3 :$PORT_n3 (lease ttl $TTL s)"

# ---- (a) six jobs, three nodes ------------------------------------------------------------
echo "cluster_pg: (a) from $(($(date +%s) - T0)) s"
AJOBS=""
for c_k in 1 2 3 4 5 6; do
    on "n$(((c_k - 1) % 3 + 1))"
    submit "$ASPEC" && AJOBS="$AJOBS $JOB"
done
c_k=0
for J in $AJOBS; do
    on "n$((c_k % 3 + 1))"   # read through any node: each job from another one
    c_k=$((c_k + 1))
    wait_state "$J" completed 60 && ok || fail "(a) job $J did not complete"
done
c_ids=$(echo $AJOBS | tr ' ' ',')
c_l=$(pq "SELECT string_agg(job || ':' || gen || '/' || done, ' ' ORDER BY job) FROM leases WHERE job IN ($c_ids)")
check "(a) each job claimed exactly once: leases gen 1, done 1 (job:gen/done $c_l)" \
    [ "$(pq "SELECT count(*) FROM leases WHERE job IN ($c_ids) AND gen = 1 AND done = 1")" = 6 ]
RAN_BY=""
COMPARED=""
for J in $AJOBS; do
    c_by=$(logs_with "$(ran_line "$J")" | tr '\n' ' ')
    check "(a) one node logged job $J running (got: '$c_by')" [ "$(echo $c_by | wc -w)" = 1 ]
    RAN_BY="$RAN_BY $c_by"
    # the rows of one job of each node that ran some, against `vaed train`
    case " $COMPARED " in *" $(echo $c_by) "*) continue ;; esac
    COMPARED="$COMPARED $(echo $c_by)"
    same_as_ref "$J" small "(a) job $J on $(echo $c_by)"
done
[ -n "$COMPARED" ] || { J=$(echo $AJOBS | cut -d" " -f1); same_as_ref "$J" small "(a) job $J on the cluster"; }
DISTINCT=$(echo $RAN_BY | tr ' ' '\n' | sort -u | tr '\n' ' ')
echo "cluster_pg: (a) jobs$AJOBS ran on: $RAN_BY"
check "(a) at least two nodes ran jobs (ran on: $DISTINCT)" [ "$(echo $DISTINCT | wc -w)" -ge 2 ]
for c_n in $NODES; do
    on "$c_n"
    api GET /v1/jobs
    check "(a) $c_n lists the six jobs completed (HTTP $STATUS)" \
        jqt '[.jobs[] | select(.state == "completed")] | length == 6'
done

# ---- (b) SIGKILL of a job's owner ---------------------------------------------------------
# Not under ThreadSanitizer (CI time): (c) runs the same takeover and resumption there.
case "${SANITIZER:-}" in
*thread*) echo "cluster_pg: (b) not under ThreadSanitizer: (c) takes a job over as (b) does" ;;
*)
    echo "cluster_pg: (b) from $(($(date +%s) - T0)) s"
    on n1
    submit "$LSPEC"; B=$JOB
    wait_owner "$B" $((30 + $(rand_below 120))) 60 && ok || { fail "(b) job $B is not trained by a node"; finish; exit 1; }
    BK=$OWNER
    # any node serves any job from the database: one that does not run it says it runs
    BX=$(other_than "$BK")
    on "$BX"
    api GET "/v1/jobs/$B"
    check "(b) $BX, which does not run job $B, serves it as running (HTTP $STATUS: state $(jqb .state), step $(jqb .step); $BK is at $OSTEP)" \
        [ "$STATUS" = 200 -a "$(jqb .state)" = running ]
    api GET "/v1/jobs"
    check "(b) and lists it as running ($(jqb -c --argjson j "$B" '[.jobs[] | select(.id == $j) | .state]'))" \
        jqt --argjson j "$B" '[.jobs[] | select(.id == $j) | .state] == ["running"]'
    wait_ckpt "$B"
    echo "cluster_pg: (b) job $B runs on $BK, past step $OSTEP: SIGKILL"
    kill_node "$BK"
    BC=$(newest_ckpt "$B")
    check "(b) killed mid-run: lease not done (gen done: $(lease_of "$B"))" [ "$(lease_of "$B")" = "1 0" ]
    TK=$(now_ms)
    on "$(other_than "$BK")"
    wait_state "$B" completed 60 && ok || fail "(b) job $B did not complete after its node was killed"
    echo "cluster_pg: (b) job $B completed $(($(now_ms) - TK)) ms after the kill"
    check "(b) taken over once: gen 2, done 1 (got '$(lease_of "$B")')" [ "$(lease_of "$B")" = "2 1" ]
    BR=$(logs_with " job $B resumes from its checkpoint at step [0-9]+" | tr '\n' ' ')
    check "(b) one other node resumed it from its checkpoint (logs: '$BR', killed $BK)" \
        [ "$(echo $BR | wc -w)" = 1 -a "$(echo $BR)" != "$BK" ]
    BS=$(cat "$T"/n?.log | sed -n "s/.* job $B resumes from its checkpoint at step \([0-9]*\).*/\1/p" | tail -n 1)
    check "(b) from its newest checkpoint, mid-run (step '$BS'; newest at the kill $BC, of $LTOTAL)" \
        [ "${BS:-0}" -gt 0 -a "${BS:-0}" = "$BC" ]
    same_as_ref "$B" long "(b) its node killed mid-run, taken over"
    # the killed node comes back under its name and serves the job as the others do
    start_node "$BK"
    on "$BK"
    api GET "/v1/jobs/$B"
    check "(b) $BK restarted serves job $B: completed (HTTP $STATUS, $(jqb .state))" \
        [ "$STATUS" = 200 -a "$(jqb .state)" = completed ]
    check "(b) the restart leaves the lease alone (got '$(lease_of "$B")')" [ "$(lease_of "$B")" = "2 1" ]
    ;;
esac

# ---- control requests ----------------------------------------------------------------------
sched_ok() { # VALUE MINSTEP: 200, the constant schedule VALUE, effective at MINSTEP or later
    [ "$STATUS" = 200 ] && jqt --argjson v "$1" --argjson m "$2" '
        .effective_step >= $m and .schedule.kind == "constant" and .schedule.value == $v'
}
owner_elsewhere() { # NODE: 503 owner_elsewhere naming NODE, with no step
    [ "$STATUS" = 503 ] && jqt --arg o "$1" '.error.code == "owner_elsewhere" and
        (.error.message | test("node " + $o + "\\b")) and (has("effective_step") | not)'
}
# rows_follow_changes ID CHANGES WHAT [STEPS]: the job's rows are steps 0..STEPS-1
# (LTOTAL) once each; before the first change of CHANGES ([step,beta],... ascending) they
# are the reference's (long) bit for bit, from each change on beta is its value (one check)
rows_follow_changes() {
    api GET "/v1/jobs/$1/metrics?fields=beta,loss,xent,kl"
    printf '%s\n' "$BODY" >"$T/job$1.rows.json"
    if c_out=$(python3 - "$T/long.jsonl" "$T/job$1.rows.json" "[$2]" "${4:-$LTOTAL}" 2>&1 <<'PY'
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
m = json.load(open(sys.argv[2]))
changes = json.loads(sys.argv[3])
n = int(sys.argv[4])
bad = []
if m["step"] != list(range(n)):
    bad.append("the steps are not 0..%d, once each (%d rows)" % (n - 1, len(m["step"])))
for i, s in enumerate(m["step"][:n]):
    now = [v for e, v in changes if e <= s]
    if not now and s >= len(ref):
        bad.append("step %d: before the first change, past the reference" % s)
    elif not now:
        for f in ("beta", "loss", "xent", "kl"):
            if m[f][i] != ref[s][f]:
                bad.append("step %d: %s %r, vaed train %r" % (s, f, m[f][i], ref[s][f]))
    elif m["beta"][i] != now[-1]:
        bad.append("step %d: beta %r, wanted %r" % (s, m["beta"][i], now[-1]))
print("\n".join(bad[:10]))
sys.exit(1 if bad else 0)
PY
    ); then ok; else fail "$3: rows of job $1 are not the reference's, then each change's beta from its step [$2]:
$c_out"; fi
}
OVR='[.history[] | select(.source == "override") | [.effective_step, .schedule.value]]'
overrides() { jqb -c "$OVR"; }
history_is() { [ "$STATUS" = 200 ] && jqt --argjson c "[$1]" "$OVR == \$c"; }   # CHANGES

# ---- (c) SIGSTOP of a job's owner past its lease ------------------------------------------
echo "cluster_pg: (c) from $(($(date +%s) - T0)) s"
on n2
submit "$LSPEC"; C=$JOB
wait_owner "$C" $((30 + $(rand_below 120))) 60 && ok || { fail "(c) job $C is not trained by a node"; finish; exit 1; }
CO=$OWNER
CW=$(other_than "$CO")
wait_ckpt "$C"
CSTEP=$OSTEP
# the job's state as a live node serves it, ten times a second, until told to stop
rm -f "$T/poll.stop"
CWURL=$(on "$CW"; echo "$URL")
(
    while [ ! -f "$T/poll.stop" ]; do
        curl -s -m 5 "$CWURL/v1/jobs/$C" |
            jq -r '"\(.state) \(.step)"' 2>/dev/null >>"$T/c.states"
        sleep 0.1
    done
) &
POLLER=$!
echo "cluster_pg: (c) job $C runs on $CO, at step $CSTEP: SIGSTOP (state watched on $CW)"
COP=$(node_pid "$CO")
TS=$(now_ms)
kill -STOP "$COP"
# a schedule change sent through CW goes to CO, which holds the lease but cannot answer
# (sent at once, in the background: it waits --control-wait, and longer if CO was
# stopped inside a write transaction, whose lock on the lease row CW's take waits for)
(
    on "$CW"
    api PUT "/v1/jobs/$C/schedule" '{"kind": "constant", "value": 0.5}'
    printf '%s\n%s\n%s\n' "$(($(now_ms) - TS))" "$STATUS" "$BODY" >"$T/c.put"
) &
CPUT=$!
# the newest checkpoint CO committed, where a takeover resumes (a commit in flight at the
# stop has landed by now)
sleep_ms 300
CC=$(newest_ckpt "$C")
# another node claims the job once the lease has expired (a node stopped inside a write
# transaction holds its lease row locked until the server ends the session:
# idle_in_transaction_session_timeout, half a lease)
c_w=0
while [ "$(gen_of "$C")" = 1 ] && [ $c_w -lt $(((3 * TTL + 10) * 20)) ]; do sleep 0.05; c_w=$((c_w + 1)); done
TC=$(($(now_ms) - TS))
CG=$(gen_of "$C")
CN=$(owner_of "$C")
echo "cluster_pg: (c) gen $CG, owner '$CN', $TC ms after the stop"
check "(c) another node claimed job $C while $CO was stopped (gen $CG, owner '$CN')" \
    [ "$CG" = 2 -a -n "$CN" -a "$CN" != "$CO" ]
# its lease was renewed about ttl/3 before the stop at most: no claim may come before
# 2/3 ttl (half of it here, for the slack of the renewals' timers)
check "(c) not claimed while the lease held ($TC ms after the stop, ttl $TTL s)" \
    [ "$TC" -ge $((TTL * 1000 / 2)) ]
wait "$CPUT"
CPUT=""
STATUS=$(sed -n 2p "$T/c.put")
BODY=$(sed -n '3,$p' "$T/c.put")
echo "cluster_pg: (c) PUT through $CW: $STATUS $(sed -n 1p "$T/c.put") ms after the stop: $BODY"
CHANGES=""
check "(c) a PUT through $CW while $CO is stopped, holding the lease: 503 owner_elsewhere naming $CO, no step (HTTP $STATUS)" \
    owner_elsewhere "$CO"
[ "$STATUS" != 200 ] || CHANGES="[$(jqb .effective_step),0.5]"
# stopped for longer than the lease and a margin, whatever the claim took
c_left=$(((TTL + 1) * 1000 - ($(now_ms) - TS)))
[ "$c_left" -le 0 ] || sleep_ms "$c_left"
on "$CW"   # (not the stopped node: it would not answer)
api GET "/v1/jobs/$C"
echo "cluster_pg: (c) SIGCONT $CO after $(($(now_ms) - TS)) ms; job $C is $(jqb .state) at step $(jqb .step)"
kill -CONT "$COP"
# "job N: lease lost" (its renewal failed) or "job N: this node lost its lease" (a write
# of its was fenced first)
LOST="job $C: (lease lost|this node lost its lease)"
c_w=0
while ! grep -qE "$LOST" "$T/$CO.log" && [ $c_w -lt $(((2 * TTL + 5) * 20)) ]; do
    sleep 0.05; c_w=$((c_w + 1))
done
check "(c) the continued node $CO logs that it lost the lease: $(grep -m 1 -E "$LOST" "$T/$CO.log" | cut -d' ' -f3-)" \
    grep -qE "$LOST" "$T/$CO.log"
wait_state "$C" completed 60 && ok || fail "(c) job $C did not complete after its owner was stopped"
# whatever the stale node would still do has had a second to do it
sleep_ms $((1000 * SLOW))
: >"$T/poll.stop"
wait "$POLLER"
POLLER=""
for c_n in $NODES; do
    on "$c_n"
    api GET "/v1/jobs/$C"
    check "(c) $c_n serves job $C as completed at step $LTOTAL (HTTP $STATUS, $(jqb .state), step $(jqb .step))" \
        [ "$STATUS" = 200 -a "$(jqb .state)" = completed -a "$(jqb .step)" = $LTOTAL ]
done
check "(c) the state as $CW served it: running, then completed for good: $(cut -d' ' -f1 "$T/c.states" | uniq -c | tr -s ' \n' ' ')" \
    awk '$1 != "running" && $1 != "completed" { bad = 1 }
         $1 == "completed" { c = 1 } c && $1 != "completed" { bad = 1 }
         END { exit bad || !c }' "$T/c.states"
check "(c) job $C taken over once: gen 2, done 1 (got '$(lease_of "$C")')" [ "$(lease_of "$C")" = "2 1" ]
CR=$(logs_with " job $C resumes from its checkpoint at step $CC\$" | tr '\n' ' ')
check "(c) the new owner $CN resumed it from the newest checkpoint, step $CC (logs: '$CR')" \
    [ "$(echo $CR)" = "$CN" ]
# from the stale node's "lease lost" on, no state of the job (its worker puts it away)
c_rec=$(awk -v lost="$LOST" -v st=" job $C (running|completed|interrupted|failed|cancelled|paused|queued)" \
    '$0 ~ lost { on = 1 } on && $0 ~ st' "$T/$CO.log")
check "(c) after it lost the lease the stale node $CO recorded no state of job $C: '$c_rec'" [ -z "$c_rec" ]
on "$CO"
api GET /metrics
FENCED=$(printf '%s\n' "$BODY" | awk '$1 == "vaed_store_ops_fenced_total" { print $2 }')
check "(c) $CO's /metrics has vaed_store_ops_fenced_total (HTTP $STATUS, '$FENCED')" [ -n "$FENCED" ]
echo "cluster_pg: (c) $CO's writes fenced: $FENCED (pending rows at the stop are refused; 0 when none were)"
api GET "/v1/jobs/$C/schedule"
check "(c) the history of job $C holds no change (the request left for $CO never applied): $(overrides)" \
    history_is "$CHANGES"
c_ans=$(pq "SELECT state || ' ' || coalesce(rc, 0) || ' ' || coalesce(msg, '') FROM controls WHERE job = $C")
c_took=$(grep "job $C: schedule sent through" "$T/$CO.log" | cut -d' ' -f3-)
if sed -n '3,$p' "$T/c.put" | grep -q withdrawn; then
    # withdrawn before the stale node woke: never taken, never applied (store_control_withdraw)
    check "(c) the unanswered request was withdrawn: no row left (${c_ans:-none}), $CO never took it (${c_took:-no line})" \
        [ -z "$c_ans" -a -z "$c_took" ]
else
    echo "cluster_pg: (c) $CO woke before the request was withdrawn: left ${c_ans:-none}; $CO's log: ${c_took:-none}"
fi
if [ -z "$CHANGES" ]; then
    same_as_ref "$C" long "(c) its node stopped past its lease, taken over, continued"
else
    rows_follow_changes "$C" "$CHANGES" "(c) its node stopped past its lease, taken over, continued"
fi

# ---- (d) control from any node ---------------------------------------------------------------
echo "cluster_pg: (d) from $(($(date +%s) - T0)) s"
# Each change the cluster accepted (200) is kept in CHANGES as [step, value]; the history
# must hold exactly those (a refused one must not have applied) and the rows follow them.
CHANGES=""
LASTEFF=0
put_change() { # NODE VALUE WHAT
    on "$1"
    c_t=$(now_ms)
    api PUT "/v1/jobs/$D/schedule" "{\"kind\": \"constant\", \"value\": $2}"
    c_t=$(($(now_ms) - c_t))
    echo "cluster_pg: (d) PUT through $1: $STATUS in $c_t ms: $BODY"
    c_e=$(jqb '.effective_step // empty')
    if sched_ok "$2" $((LASTEFF + 1)); then
        ok
        CHANGES="${CHANGES:+$CHANGES,}[$c_e,$2]"
        LASTEFF=$c_e
    else
        fail "(d) $3: wanted 200 naming a step past $LASTEFF, got HTTP $STATUS in $c_t ms: $BODY"
    fi
}
# twice as long as the others (800 steps; 400 under TSan), so the three changes land mid-run; its first
# LTOTAL steps are the reference's (nothing in a step depends on the number of epochs:
# the learning rate is constant, the schedule in steps)
DSPEC=$(printf '%s' "$LSPEC" | jq -c --argjson e $((2 * LEP)) '.train.epochs = $e')
DTOTAL=$((2 * LTOTAL))
on n3
submit "$DSPEC"; D=$JOB
wait_owner "$D" 20 60 && ok || { fail "(d) job $D is not trained by a node"; finish; exit 1; }
DO=$OWNER
LASTEFF=$((OSTEP - 1))
DX=$(other_than "$DO")
DY=$(other_than "$DO" "$DX")
echo "cluster_pg: (d) job $D runs on $DO, past step $OSTEP"
put_change "$DX" 0.123456 "a PUT through $DX, which does not hold job $D, is forwarded to $DO"
on "$DY"
api GET "/v1/jobs/$D/schedule"
check "(d) the history, read on $DY, holds it: $(overrides)" history_is "$CHANGES"
put_change "$DO" 0.654321 "a PUT to $DO itself"
put_change "$DY" 0.314159 "a PUT through $DY, which does not hold job $D either, is forwarded to $DO"
wait_state "$D" completed 60 && ok || fail "(d) job $D did not complete"
check "(d) job $D ran on $DO alone: gen 1, done 1 (got '$(lease_of "$D")')" [ "$(lease_of "$D")" = "1 1" ]
on "$DX"
api GET "/v1/jobs/$D/schedule"
check "(d) the history, read on $DX, holds the changes accepted, at their steps: $(overrides), accepted [$CHANGES]" \
    history_is "$CHANGES"
rows_follow_changes "$D" "$CHANGES" "(d) three changes through the nodes" $DTOTAL

# ---- (e) a job just submitted, a job just finished -------------------------------------------
echo "cluster_pg: (e) from $(($(date +%s) - T0)) s"
# a change sent through another node at once, before that node's table has the job: the
# job is there to be changed (queued or running: forwarded, or taken here), never 409
on n3
submit "$ASPEC"; E=$JOB
on n1
api PUT "/v1/jobs/$E/schedule" '{"kind": "constant", "value": 0.25}'
echo "cluster_pg: (e) job $E submitted through n3; PUT through n1 at once: $STATUS $BODY"
check "(e) a PUT through n1 at once on job $E, just submitted through n3: 200, or 503 owner_elsewhere; never 409 (HTTP $STATUS)" \
    [ "$STATUS" = 200 -o "$(jqb .error.code)" = owner_elsewhere ]
c_w=0
while [ -z "$(logs_with "$(ran_line "$E")")" ] && [ $c_w -lt $((200 * SLOW)) ]; do sleep 0.05; c_w=$((c_w + 1)); done
EO=$(logs_with "$(ran_line "$E")" | head -n 1)
# finished: every node answers a change with 409 (on one node the finished job is simply
# not there; on the others it must not look as if it ran elsewhere)
on "${EO:-n3}"
wait_state "$E" completed 60 && ok || fail "(e) job $E did not complete"
for c_n in $NODES; do
    [ "$c_n" != "$EO" ] || continue
    on "$c_n"
    api PUT "/v1/jobs/$E/schedule" '{"kind": "constant", "value": 0.5}'
    check "(e) a PUT through $c_n on job $E, just completed on $EO: 409 conflict (HTTP $STATUS: $BODY)" \
        [ "$STATUS" = 409 -a "$(jqb .error.code)" = conflict ]
done

# ---- (g) a job's event stream through a node that does not run it --------------------------
echo "cluster_pg: (g) from $(($(date +%s) - T0)) s"
on n2
submit "$DSPEC"; G=$JOB
wait_owner "$G" 20 60 && ok || { fail "(g) job $G is not trained by a node"; finish; exit 1; }
GO=$OWNER
GX=$(other_than "$GO")
on "$GX"
curl -sN -m $((120 * SLOW)) "$URL/v1/jobs/$G/events" >"$T/g.sse" 2>"$T/g.err" &
GCURL=$!
c_w=0   # until the stream has its first event and then a step event: followed
while ! grep -q '^event: step' "$T/g.sse" 2>/dev/null && [ $c_w -lt $((200 * SLOW)) ]; do sleep 0.05; c_w=$((c_w + 1)); done
on "$GO"
api PUT "/v1/jobs/$G/schedule" '{"kind": "constant", "value": 0.5}'
GEFF=$(jqb '.effective_step // -1')
check "(g) a schedule PUT to the owner $GO: 200 (HTTP $STATUS: $BODY)" [ "$STATUS" = 200 ]
echo "cluster_pg: (g) job $G runs on $GO, followed through $GX; schedule from step $GEFF"
on "$GX"
wait_state "$G" completed 60 && ok || fail "(g) job $G did not complete"
c_w=0
while kill -0 "$GCURL" 2>/dev/null && [ $c_w -lt $((200 * SLOW)) ]; do sleep 0.05; c_w=$((c_w + 1)); done
if kill -0 "$GCURL" 2>/dev/null; then
    fail "(g) the stream through $GX did not end after job $G completed"
    kill "$GCURL" 2>/dev/null
fi
wait "$GCURL" 2>/dev/null
api GET "/v1/jobs/$G/metrics"
printf '%s\n' "$BODY" >"$T/g.rows.json"
api GET "/v1/jobs/$G/epochs"
printf '%s\n' "$BODY" >"$T/g.epochs.json"
api GET "/v1/jobs/$G/checkpoints"
printf '%s\n' "$BODY" >"$T/g.ckpts.json"
# every event against the rows the owner stored, read through the same node
c_out=$(python3 - "$T/g.sse" "$T/g.rows.json" "$T/g.epochs.json" "$T/g.ckpts.json" "$GEFF" "$DTOTAL" \
    "$(printf '%s' "$DSPEC" | jq .train.batch_size)" <<'PY' 2>&1
import json, sys
evs, ev = [], {}
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("id: "): ev["id"] = int(line[4:])
    elif line.startswith("event: "): ev["event"] = line[7:]
    elif line.startswith("data: "): ev["data"] = json.loads(line[6:])
    elif line == "" and ev: evs.append(ev); ev = {}
rows = json.load(open(sys.argv[2]))
epochs = json.load(open(sys.argv[3]))
ck = json.load(open(sys.argv[4]))
eff, total = int(sys.argv[5]), int(sys.argv[6])
bad = []
def want(c, what):
    if not c: bad.append(what)
at = {s: i for i, s in enumerate(rows["step"])}
steps = [e["data"] for e in evs if e["event"] == "step"]
want(evs and evs[0]["event"] == "state" and evs[0]["data"]["state"] == "running",
     "the first event is not the state running: %r" % (evs[:1],))
ids = [e["id"] for e in evs if "id" in e]
want(ids == sorted(ids) and len(set(ids)) == len(ids), "event ids do not grow")
want(len(steps) >= 5, "%d step events" % len(steps))
want([d["step"] for d in steps] == sorted(set(d["step"] for d in steps)), "step events not in order")
for d in steps:
    i = at.get(d["step"])
    if i is None: bad.append("step event %d: no stored row" % d["step"]); continue
    for f in ("beta", "loss", "xent", "kl", "lr"):
        if d[f] != rows[f][i]: bad.append("step %d: %s %r, stored %r" % (d["step"], f, d[f], rows[f][i]))
want(steps and steps[-1]["step"] == total - 1, "the last step event is not the last step (%s)" % (steps[-1]["step"] if steps else None))
# samples_per_sec, worked out by the node from the rows' times: against the stored rows'
# own rate (batch / the time between consecutive rows, its median: epoch ends aside)
batch, tcol = int(sys.argv[7]), rows.get("time") or []
per = sorted(batch * (rows["step"][i] - rows["step"][i - 1]) / (tcol[i] - tcol[i - 1])
             for i in range(1, len(tcol)) if tcol[i] > tcol[i - 1])
sps = sorted(d["samples_per_sec"] for d in steps[1:])
want(per and sps and sps[0] > 0, "step events' samples_per_sec %r (rows' times: %d)" % (sps[:4], len(tcol)))
if per and sps:
    ref, med = per[len(per) // 2], sps[len(sps) // 2]
    want(0.5 * ref <= med <= 2 * ref, "step events' median samples_per_sec %.0f, the rows' %.0f" % (med, ref))
    print("# samples_per_sec: median %.0f, the stored rows' %.0f" % (med, ref))
sch = [e["data"] for e in evs if e["event"] == "schedule"]
want(len(sch) == 1 and sch[0]["effective_step"] == eff and sch[0]["schedule"]["value"] == 0.5,
     "schedule events %r, wanted one at step %d" % (sch, eff))
cks = {(c["step"], c["kind"]) for c in (ck.get("checkpoints", ck) if isinstance(ck, dict) else ck)}
cev = [e["data"] for e in evs if e["event"] == "checkpoint"]
want(len(cev) >= 1, "no checkpoint event")
for d in cev:
    want(d["step"] % 50 == 0 or d["kind"] != "periodic", "checkpoint event %r" % d)
eps = [e["data"] for e in evs if e["event"] == "epoch"]
want(len(eps) >= 2, "%d epoch events" % len(eps))
tests = {r["epoch"]: r for r in (epochs.get("epochs", epochs) if isinstance(epochs, dict) else epochs) if r.get("split", "test") == "test"}
for d in eps:
    r = tests.get(d["epoch"])
    want(r is not None and d["test"] is not None and d["test"]["elbo"] == r["elbo"],
         "epoch event %d: test %r, stored %r" % (d["epoch"], d["test"], r))
last = evs[-1]["data"] if evs else {}
want(evs and evs[-1]["event"] == "state" and last["state"] == "completed" and last["step"] == total,
     "the last event is not completed at step %d: %r" % (total, evs[-1:]))
print("\n".join(bad[:12]))
print("# %d events: %d steps, %d epochs, %d checkpoints, %d schedule" % (len(evs), len(steps), len(eps), len(cev), len(sch)))
PY
)
echo "cluster_pg: (g) $(echo "$c_out" | grep '^#')"
c_bad=$(echo "$c_out" | grep -v '^#' | grep .)
check "(g) the stream through $GX of job $G run on $GO: state, steps equal to the stored rows, the schedule change at step $GEFF, checkpoints, epochs, completed at the last step: ${c_bad:-ok}" \
    [ -z "$c_bad" ]

# ---- (h) a dataset uploaded through one node, used on every node ------------------------------
# Each node has its own --upload-dir (cluster_lib.sh): the bytes come from the database
# (operations.md: datasets in a cluster). Plain only (CI time; datasets.sh runs uploads
# under every sanitizer, test_dataset_bytes the copies on PostgreSQL in every pass).
case "${SANITIZER:-}" in
*thread*) echo "cluster_pg: (h) not under ThreadSanitizer: datasets.sh uploads there" ;;
*)
    echo "cluster_pg: (h) from $(($(date +%s) - T0)) s"
    python3 - "$T/h.npy" <<'PY'
import struct, sys, random
n, d = 400, 12
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
rng = random.Random(17)
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
    f.write(struct.pack("<%df" % (n * d), *[rng.random() for _ in range(n * d)]))
PY
    on n1
    c_b=$(curl -sS -m 60 -o - -w '\n%{http_code}' -X POST -H 'Content-Type: application/octet-stream' \
        --data-binary "@$T/h.npy" "$URL/v1/datasets?name=shared&format=npy")
    STATUS=$(printf '%s' "$c_b" | tail -n 1)
    BODY=$(printf '%s' "$c_b" | sed '$d')
    HDS=$(jqb '.id // empty')
    check "(h) upload through n1: 201 (HTTP $STATUS: $(printf '%s' "$BODY" | cut -c 1-200))" \
        [ "$STATUS" = 201 -a -n "$HDS" ]
    HSHA=$(sha256sum "$T/h.npy" | cut -d' ' -f1)
    for c_n in n1 n2 n3; do
        on "$c_n"
        api GET "/v1/datasets/$HDS"
        check "(h) $c_n lists dataset $HDS with sha256sum's digest (HTTP $STATUS, $(jqb .sha256))" \
            [ "$STATUS" = 200 -a "$(jqb .rows)" = 400 -a "$(jqb .sha256)" = "$HSHA" ]
    done
    # six jobs on it through the three nodes: each runs where a worker is free
    HSPEC=$(jq -cn --argjson id "${HDS:-0}" '{name: "shared-data", dataset: {id: $id},
        model: {encoder: [16], latent: 2, decoder: [16]},
        train: {epochs: 20, batch_size: 40, seed: 5, threads: 1}}')
    HJOBS=""
    for c_k in 1 2 3 4 5 6; do
        on "n$(((c_k - 1) % 3 + 1))"
        submit "$HSPEC" && HJOBS="$HJOBS $JOB"
    done
    HRAN=""
    for J in $HJOBS; do
        on n1
        wait_state "$J" completed 60 && ok || fail "(h) job $J on the shared dataset did not complete ($(jqb .state): $(jqb .reason))"
        HRAN="$HRAN $(logs_with "$(ran_line "$J")" | tr '\n' ' ')"
        api GET "/v1/jobs/$J/metrics?fields=loss"
        printf '%s\n' "$BODY" | jq -c '[.step, .loss]' >"$T/h.$J.json"
    done
    HDIST=$(echo $HRAN | tr ' ' '\n' | sort -u | tr '\n' ' ')
    echo "cluster_pg: (h) jobs$HJOBS on dataset $HDS ran on:$HRAN"
    check "(h) the jobs ran on more than the uploading node (ran on: $HDIST)" \
        sh -c '[ "$(echo $1 | wc -w)" -ge 2 ]' _ "$HDIST"
    c_first=$(echo $HJOBS | cut -d' ' -f1)
    check "(h) job $c_first has its 200 rows" [ "$(jq '.[0] | length' "$T/h.$c_first.json")" = 200 ]
    for J in $HJOBS; do
        check "(h) job $J's losses equal job $c_first's, bit for bit (same spec, same data)" \
            cmp -s "$T/h.$c_first.json" "$T/h.$J.json"
    done
    for c_n in $HDIST; do
        check "(h) $c_n read dataset $HDS from its own copy, equal to the file" \
            cmp -s "$T/h.npy" "$UP/$c_n/$HDS.npy"
    done
    on n2
    api DELETE "/v1/datasets/$HDS"
    check "(h) DELETE through n2: 204 and n2's copy gone (HTTP $STATUS)" \
        [ "$STATUS" = 204 -a ! -e "$UP/n2/$HDS.npy" ]
    ;;
esac

# ---- (f) the server restarted under every node's job ------------------------------------------
# Plain only (CI time): under TSan daemon_pg.sh (d) restarts the server under one node.
case "${SANITIZER:-}" in
*thread*) echo "cluster_pg: (f) not under ThreadSanitizer: daemon_pg.sh (d) restarts the server there" ;;
*)
    echo "cluster_pg: (f) from $(($(date +%s) - T0)) s"
    # (d)'s jobs, twice as long as the others: three at once on two cores still run for
    # seconds after the restart
    train_ref flong "$DSPEC"
    FJOBS=""
    for c_n in n1 n2 n3; do
        on "$c_n"
        submit "$DSPEC" && FJOBS="$FJOBS $JOB"
    done
    # each one running on a node: the restart lands mid-run
    for J in $FJOBS; do
        wait_owner "$J" 1 60 && ok || fail "(f) job $J is not trained by a node"
    done
    FOWN=""
    for J in $FJOBS; do FOWN="$FOWN $J:$(owner_of "$J")@$(newest_ckpt "$J")"; done
    echo "cluster_pg: (f) jobs (job:node@checkpoint)$FOWN: pg_ctl restart"
    check "(f) pg_ctl restart under the jobs" sh tests/pg_server.sh restart "$PGD"
    c_open=$(pq "SELECT count(*) FROM leases WHERE job IN ($(echo $FJOBS | tr ' ' ',')) AND done = 0")
    check "(f) the restart landed mid-run: $c_open of the jobs unfinished" [ "$c_open" -ge 1 ]
    for J in $FJOBS; do
        on "$(other_than none)"
        wait_state "$J" completed 120 && ok || fail "(f) job $J did not complete after the server restarted"
        check "(f) job $J finished once: lease done (gen done: $(lease_of "$J"))" \
            sh -c '[ "$(echo "$1" | cut -d" " -f2)" = 1 ]' _ "$(lease_of "$J")"
        same_as_ref "$J" flong "(f) the server restarted under job $J"
    done
    echo "cluster_pg: (f) leases after the restart (job:gen/done): $(pq "SELECT string_agg(job || ':' || gen || '/' || done, ' ' ORDER BY job) FROM leases WHERE job IN ($(echo $FJOBS | tr ' ' ','))")"
    c_ids=$(echo $FJOBS | tr ' ' ',')
    for c_n in $NODES; do
        check "(f) node $c_n lives on after the restart" kill -0 "$(node_pid "$c_n")"
        on "$c_n"
        api GET /v1/jobs
        check "(f) $c_n lists the three jobs completed (HTTP $STATUS)" \
            jqt "[.jobs[] | select(.id == ($c_ids) and .state == \"completed\")] | length == 3"
    done
    ;;
esac

# /metrics on each node: the node view (its name) and the cluster view (the nodes alive)
for c_n in $NODES; do
    on "$c_n"
    c_m=$(curl -sS -m 10 "$URL/metrics")
    check "(metrics) $c_n: vaed_node_info{node=\"$c_n\"} 1 and vaed_cluster_nodes{alive=\"true\"} 3 ($(printf '%s\n' "$c_m" | grep -E '^vaed_(node_info|cluster_nodes)' | tr '\n' ' '))" \
        sh -c 'printf "%s\n" "$1" | grep -qx "vaed_node_info{node=\"$2\"} 1" &&
               printf "%s\n" "$1" | grep -qx "vaed_cluster_nodes{alive=\"true\"} 3"' _ "$c_m" "$c_n"
done

echo "cluster_pg: the cluster's part took $(($(date +%s) - T0)) s"
# every live node stops cleanly (exit 0: a sanitizer that reported exits otherwise), and
# no node's log (the killed ones' too) holds a sanitizer's report
for c_n in $NODES; do
    c_p=$(node_pid "$c_n")
    [ -n "$c_p" ] || continue
    kill -TERM "$c_p"; wait "$c_p"; c_rc=$?
    eval "PID_$c_n="
    check "node $c_n stops cleanly on SIGTERM (rc $c_rc)" [ "$c_rc" = 0 ]
done
for c_n in $NODES; do
    check "no sanitizer report in $c_n's log" \
        sh -c '! grep -qE "WARNING: ThreadSanitizer|ERROR: [A-Za-z]*Sanitizer|runtime error:" "$1"' _ "$T/$c_n.log"
done
for c_n in $NODES; do
    c_e=$(grep -c ' ERROR ' "$T/$c_n.log")
    [ "$c_e" = 0 ] || { echo "cluster_pg: $c_n logged $c_e ERROR lines:"; grep -m 5 ' ERROR ' "$T/$c_n.log"; }
done
finish
