# daemon_queue.sh — queue order with one worker: priority descending, then FIFO; a
# higher-priority job submitted last runs before earlier lower-priority ones; the
# order survives a restart; two workers train two jobs at once.
. tests/e2e/daemon_lib.sh
e2e_init
start_daemon --threads 1 --workers 1

# started_at and finished_at of a job (from its stored row)
job_times() {
    api GET "/v1/jobs/$1"
    jqb '"\(.started_at) \(.finished_at)"'
}
# a < b for two unix times printed by jq
before() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

# ---- one worker, priorities, FIFO ------------------------------------------------------
# A holds the worker while the others are queued behind it, so the order they run in
# is the queue's alone; cancelling A lets them go.
submit "$(tiny_spec A 1000)"; A=$JOB
wait_state "$A" running 60 && ok || fail "A not running"
submit "$(tiny_spec E 1 '{"priority": -1}')"; E=$JOB
submit "$(tiny_spec B 1)"; B=$JOB
submit "$(tiny_spec C 1)"; C=$JOB
submit "$(tiny_spec D 1 '{"priority": 5}')"; D=$JOB
check "D stored with priority 5" jqt '.priority == 5 and .spec.priority == 5'
for j in $E $B $C $D; do
    api GET "/v1/jobs/$j"
    check "job $j waits in the queue while A runs" [ "$(jqb .state)" = queued ]
done
api GET "/v1/jobs/$A"
check "A still running" [ "$(jqb .state)" = running ]
api POST "/v1/jobs/$A/cancel"
expect_status 200
for j in $D $B $C $E; do
    wait_state "$j" completed 120 && ok || fail "job $j did not complete"
done
set -- $(job_times "$D") $(job_times "$B") $(job_times "$C") $(job_times "$E")
echo "started/finished: D $1 $2, B $3 $4, C $5 $6, E $7 $8"
check "D (priority 5, submitted last) starts first" before "$1" "$3"
check "B before C (FIFO within priority 0)" before "$3" "$5"
check "C before E (priority -1 last)" before "$5" "$7"
check "one worker: D ends before B starts" before "$2" "$3"
check "one worker: B ends before C starts" before "$4" "$5"
check "one worker: C ends before E starts" before "$6" "$7"

# ---- the queue order survives a restart ------------------------------------------------
submit "$(tiny_spec A2 1000)"; A2=$JOB
wait_state "$A2" running 60 && ok || fail "A2 not running"
submit "$(tiny_spec F 1)"; F=$JOB
submit "$(tiny_spec G 1 '{"priority": 3}')"; G=$JOB
submit "$(tiny_spec H 1)"; H=$JOB
term_daemon 5
check "A2 interrupted by the stop (db says $(db_state "$A2"))" [ "$(db_state "$A2")" = interrupted ]
check "F, G, H still queued in the db" [ "$(db_state "$F")$(db_state "$G")$(db_state "$H")" = queuedqueuedqueued ]
start_daemon --threads 1 --workers 1
# G (priority 3) must run before A2 resumes; A2 (oldest of priority 0) before F and H.
wait_state "$A2" running 60 && ok || fail "A2 did not resume"
api GET "/v1/jobs/$G"
check "G completed before A2 resumed (G is $(jqb .state))" [ "$(jqb .state)" = completed ]
api GET "/v1/jobs/$F"
check "F queued behind A2 (F is $(jqb .state))" [ "$(jqb .state)" = queued ]
api GET "/v1/jobs/$H"
check "H queued behind A2 (H is $(jqb .state))" [ "$(jqb .state)" = queued ]
api POST "/v1/jobs/$A2/cancel"
expect_status 200
wait_state "$H" completed 120 && ok || fail "H did not complete"
wait_state "$F" completed 120 && ok || fail "F did not complete"
set -- $(job_times "$G") $(job_times "$F") $(job_times "$H")
check "G before F" before "$2" "$3"
check "F before H (FIFO across the restart)" before "$4" "$5"
stop_daemon

# ---- two workers ---------------------------------------------------------------------
start_daemon --threads 1 --workers 2
submit "$(tiny_spec W1 1000)"; W1=$JOB
submit "$(tiny_spec W2 1000)"; W2=$JOB
submit "$(tiny_spec W3 1)"; W3=$JOB
wait_state "$W1" running 60 && ok || fail "W1 not running"
wait_state "$W2" running 60 && ok || fail "W2 not running"
api GET "/v1/jobs?status=running"
check "two jobs running at once (running: $(jqb -c '[.jobs[].id]'))" [ "$(jqb .total)" = 2 ]
api GET "/v1/jobs/$W3"
check "the third waits (W3 is $(jqb .state))" [ "$(jqb .state)" = queued ]
api POST "/v1/jobs/$W1/cancel"
expect_status 200
wait_state "$W3" completed 120 && ok || fail "W3 did not run once a worker was free"
api GET "/v1/jobs/$W2"
check "W2 kept running meanwhile" [ "$(jqb .state)" = running ]
api POST "/v1/jobs/$W2/cancel"
expect_status 200
stop_daemon
integrity_ok "after the queue tests"
finish
