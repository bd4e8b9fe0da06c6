# events.sh — GET /v1/jobs/{id}/events against a live daemon:
#  1. one client follows a job from queued to completed: the current state comes
#     first, ids only grow, steps are throttled to about 10/s, epoch and checkpoint
#     events arrive, a schedule PUT shows up as a schedule event at the step the reply
#     named, the last event is the final state and curl exits by itself;
#  2. resuming: Last-Event-ID (and ?last_event_id=) replays exactly what followed
#     that id; an id the job never had gets a reset; a finished job gets its state;
#  3. 100 clients and one that connects and never reads follow a second job with
#     the same spec: its samples/s is not materially lower than the first job's, and
#     every client gets the final state and exits.
. tests/e2e/lib.sh
e2e_init
start_daemon --threads 1 --workers 1

NCLIENTS=${NCLIENTS:-100}
SPEC='{"name": "events", "dataset": {"name": "fashion-mnist", "limit": 3000},
       "model": {"encoder": [128], "latent": 8, "decoder": [128]},
       "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 2, "unit": "epochs"},
       "train": {"epochs": 12, "batch_size": 50, "seed": 3, "threads": 1},
       "checkpoint": {"every_steps": 150, "at_epoch_end": false, "keep": 2}}'

# ---- the stream's messages as one JSON object per line: {id, event, data} ------------
# (comment lines such as ": keepalive" are dropped; a message without id: has id null)
sse_json() {
    awk 'BEGIN { id = "null" }
         /^id: /    { id = substr($0, 5) }
         /^event: / { ev = substr($0, 8) }
         /^data: /  { data = substr($0, 7) }
         /^$/       { if (ev != "") printf "{\"id\": %s, \"event\": \"%s\", \"data\": %s}\n", id, ev, data;
                      id = "null"; ev = "" }' "$1"
}

# ---- 1. one client, one job --------------------------------------------------------------
api POST /v1/jobs "$SPEC"
expect_status 201
A=$(jqb .id)
api POST /v1/jobs "$(printf '%s' "$SPEC" | jq -c '.name = "events-load"')"
expect_status 201
B=$(jqb .id)

t0=$(date +%s.%N)
curl -sN "$URL/v1/jobs/$A/events" >"$T/a.sse" 2>"$T/a.err" &
CA=$!

# While A trains, B waits in the queue: its 100 clients connect now (each sees B
# queued) so that none of their start-up lands in the measured run. Two source
# addresses, since the daemon allows 64 connections per client address.
mkdir -p "$T/b"
i=0
CPIDS=""
while [ $i -lt "$NCLIENTS" ]; do
    src=127.0.0.$((2 + i % 2))
    curl -sN --interface "$src" "$URL/v1/jobs/$B/events" >"$T/b/$i.sse" 2>"$T/b/$i.err" &
    CPIDS="$CPIDS $!"
    i=$((i + 1))
done
# The stalled client: a tiny receive buffer, sends its request, never reads.
python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(("GET /v1/jobs/%s/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % sys.argv[2]).encode())
open(sys.argv[3], "w").write("connected\n")
time.sleep(120)
' "$PORT" "$B" "$T/stalled.ok" &
STALLED=$!

# A schedule change while A runs: it must show up as a schedule event at the step the
# reply named.
wait_step "$A" 100 60 || fail "job $A never reached step 100"
api PUT "/v1/jobs/$A/schedule" '{"kind": "constant", "value": 0.25}'
expect_status 200
EFF=$(jqb .effective_step)

wait_state "$A" completed 120 || fail "job $A did not complete"
# curl must end by itself once the final state is sent
n=0
while kill -0 "$CA" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
if kill -0 "$CA" 2>/dev/null; then
    fail "curl on job $A still running after the job completed"
    kill "$CA"
fi
wait "$CA"
check "curl on job $A exited 0 by itself" [ $? -eq 0 ]
t1=$(date +%s.%N)

sse_json "$T/a.sse" >"$T/a.jsonl"
check "the stream parses: $(head -c 300 "$T/a.sse")" [ -s "$T/a.jsonl" ]
jq -s . "$T/a.jsonl" >"$T/a.json"
jqa() { jq -e "$@" "$T/a.json" >/dev/null; }
check "the first event is the job's current state ($(head -n 1 "$T/a.jsonl"))" \
    jqa '.[0].event == "state" and (.[0].data.state == "queued" or .[0].data.state == "running")'
check "ids only grow, by one" jqa '[.[].id] as $i | all(range(1; $i|length); $i[.] == $i[.-1] + 1)'
check "a running state event" jqa 'any(.[]; .event == "state" and .data.state == "running")'
check "the last event is the final state" \
    jqa '.[-1].event == "state" and .[-1].data.state == "completed" and .[-1].data.step == 720'
check "every event names the job" jqa --argjson a "$A" 'all(.[]; .data.job == $a)'
NSTEP=$(jq '[.[] | select(.event == "step")] | length' "$T/a.json")
DUR=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
check "several step events ($NSTEP)" [ "$NSTEP" -ge 3 ]
# at most 10 a second, plus the one flushed at a state change
check "steps throttled: $NSTEP step events in ${DUR}s" \
    awk -v n="$NSTEP" -v d="$DUR" 'BEGIN { exit !(n <= 10 * d + 2) }'
check "step numbers increase" jqa '[.[] | select(.event == "step") | .data.step] as $s | all(range(1; $s|length); $s[.] > $s[.-1])'
check "the last step event is the job's last step" \
    jqa '[.[] | select(.event == "step")][-1].data.step == 719'
check "12 epoch events, in order, with train figures" \
    jqa '[.[] | select(.event == "epoch") | .data] | length == 12 and ([.[].epoch] == [range(1; 13)]) and all(.[]; .train.elbo < 0 and .test.elbo < 0)'
check "checkpoint events (every 150 steps, and the final one)" \
    jqa '[.[] | select(.event == "checkpoint") | .data | [.step, .kind]] | (index([[150, "periodic"]]) != null) and (.[-1] == [720, "final"])'
check "a schedule event at the step the PUT named ($EFF)" \
    jqa --argjson e "$EFF" 'any(.[]; .event == "schedule" and .data.effective_step == $e and .data.schedule.kind == "constant" and .data.schedule.value == 0.25)'
check "step events after the change carry beta 0.25" \
    jqa --argjson e "$EFF" '[.[] | select(.event == "step" and .data.step >= $e) | .data.beta] | length > 0 and all(. == 0.25)'
# a step event is the metrics row of its step, digit for digit
SROW=$(jq -c '[.[] | select(.event == "step")][1].data' "$T/a.json")
SSTEP=$(printf '%s' "$SROW" | jq .step)
api GET "/v1/jobs/$A/metrics?since=$((SSTEP - 1))&until=$SSTEP&fields=beta,loss,kl,elbo"
check "step $SSTEP's event matches its metrics row" \
    [ "$(jqb -c '[.beta[0], .loss[0], .kl[0], .elbo[0]]')" = "$(printf '%s' "$SROW" | jq -c '[.beta, .loss, .kl, .elbo]')" ]

# ---- 2. resuming -------------------------------------------------------------------------
K=$(jq '.[5].id' "$T/a.json")
curl -sN -m 20 -H "Last-Event-ID: $K" "$URL/v1/jobs/$A/events" >"$T/r.sse"
check "resume exits by itself (rc $?)" [ $? -eq 0 ]
sse_json "$T/r.sse" | jq -c . >"$T/r.jsonl"
jq -c --argjson k "$K" 'select(.id > $k)' "$T/a.jsonl" >"$T/a_after.jsonl" # both through jq -c
check "Last-Event-ID $K replays from $((K + 1)): $(head -n 1 "$T/r.jsonl" | head -c 120)" \
    [ "$(head -n 1 "$T/r.jsonl" | jq .id)" = $((K + 1)) ]
check "the replay is exactly what followed id $K" cmp -s "$T/r.jsonl" "$T/a_after.jsonl"
curl -sN -m 20 "$URL/v1/jobs/$A/events?last_event_id=$K" | cmp -s - "$T/r.sse"
check "?last_event_id= resumes the same way" [ $? -eq 0 ]
curl -sN -m 20 -H "Last-Event-ID: 999999" "$URL/v1/jobs/$A/events" >"$T/x.sse"
sse_json "$T/x.sse" >"$T/x.jsonl"
check "an id the job never had: reset, then the final state" \
    [ "$(jq -c '[.event, .data.reason // .data.state]' "$T/x.jsonl" | tr -d '\n')" = '["reset","unknown_id"]["state","completed"]' ]
curl -sN -m 20 "$URL/v1/jobs/$A/events" >"$T/f.sse"
check "a finished job: its final state only" \
    [ "$(sse_json "$T/f.sse" | jq -c '[.event, .data.state]' | tr -d '\n')" = '["state","completed"]' ]
api GET "/v1/jobs/999/events"
expect_status 404
api GET "/v1/jobs/$A/events?last_event_id=x"
expect_status 400
api GET "/v1/jobs/$A/events?since=1"
expect_status 400

# ---- 3. 100 clients and a stalled one on job B ------------------------------------------
wait_state "$B" completed 180 || fail "job $B did not complete"
check "the stalled client connected" [ -s "$T/stalled.ok" ]
n=0
for p in $CPIDS; do
    while kill -0 "$p" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
done
alive=0
for p in $CPIDS; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
check "all $NCLIENTS clients exited by themselves ($alive still running)" [ $alive -eq 0 ]
for p in $CPIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
kill "$STALLED" 2>/dev/null
wait "$STALLED" 2>/dev/null
good=0
for f in "$T"/b/*.sse; do
    last=$(sse_json "$f" | tail -n 1 | jq -r '"\(.event) \(.data.state)"')
    first=$(sse_json "$f" | head -n 1 | jq -r '"\(.event) \(.data.state)"')
    case "$first" in "state queued" | "state running") ;; *) continue ;; esac
    [ "$last" = "state completed" ] && good=$((good + 1))
done
check "$good of $NCLIENTS clients saw the state first and completed last" [ $good -eq "$NCLIENTS" ]
sse_json "$T/b/0.sse" | jq -c 'select(.id > 1)' >"$T/b0.jsonl"
sse_json "$T/b/$((NCLIENTS - 1)).sse" | jq -c 'select(.id > 1)' >"$T/b1.jsonl"
check "the first and the last client got the same events" cmp -s "$T/b0.jsonl" "$T/b1.jsonl"

# samples/s over the whole run, from the metrics time column: A had one client, B 100
# and a stalled one
rate() {
    api GET "/v1/jobs/$1/metrics?fields=time"
    jqb '((.time | length) - 1) * 50 / (.time[-1] - .time[0])'
}
RA=$(rate "$A")
RB=$(rate "$B")
echo "samples/s: job $A (1 client) $RA, job $B ($NCLIENTS clients + 1 stalled) $RB"
# (a gross check, at half: the 100 curl clients run on the same 2 cores, and anything
# else the host runs meanwhile lands on one job or the other; a client holding up a
# step, as a stalled one would if writes blocked, costs far more than half; the
# measured figure is scripts/bench-daemon's)
check "$NCLIENTS clients do not slow training (A $RA, B $RB samples/s)" \
    awk -v a="$RA" -v b="$RB" 'BEGIN { exit !(b >= 0.5 * a) }'
api GET /healthz
expect_status 200
stop_daemon
finish
