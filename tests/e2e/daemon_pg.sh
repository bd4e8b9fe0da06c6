# daemon_pg.sh — the daemon on PostgreSQL (`vaed serve --db postgresql://…`), against a
# real server this script starts (tests/pg_server.sh). Each part checks the job's
# per-step metrics and last test ELBO bit for bit against `vaed train` of the same spec:
#   (a) a job runs and its curves are served from the server;
#   (b) a second daemon on the same database joins it as a cluster's node and serves
#       its jobs (cluster_pg.sh tests the cluster);
#   (c) SIGKILL mid-job, a restart under its --node name (its lease taken back at once):
#       the job resumes from its checkpoint on the server;
#   (d) the server restarted under the running job (`pg_ctl restart`): the daemon
#       reconnects, nothing is lost, the job goes on to complete;
#   (e) no daemon log line shows the URL's password.
. tests/e2e/daemon_lib.sh
e2e_init
. tests/e2e/pg_lib.sh
pg_init daemon_pg
# the database's URL, with a password the trust-authenticated test server ignores:
# part (e) looks for it in the logs
DB=$(printf '%s' "$PGURL" | sed 's|://vaed@|://vaed:s3cr3t-pw@|; s|/postgres$|/postgres?application_name=vaed_e2e|')
UP="$T/uploads"
mkdir -p "$UP"

# ---- (a) a job on the server -------------------------------------------------------------
SPEC=$(tiny_spec pg 3)
train_ref pg "$SPEC"
start_daemon --threads 1 --upload-dir "$UP" --node pgnode
submit "$SPEC"; J=$JOB
wait_state "$J" completed 120 && ok || fail "job $J did not complete"
same_as_ref "$J" pg "a job on PostgreSQL"

# ---- (b) a second daemon joins as a node -------------------------------------------------
# (several nodes, leases and takeovers: tests/e2e/cluster_pg.sh)
"$VAED" serve --listen 127.0.0.1:0 --port-file "$T/port2" --db "$DB" --upload-dir "$UP" \
    --node second --access-log 0 >"$T/second.log" 2>&1 &
P2=$!
d_n=0
while [ ! -s "$T/port2" ] && kill -0 "$P2" 2>/dev/null && [ $d_n -lt $((200 * SLOW)) ]; do sleep 0.05; d_n=$((d_n + 1)); done
if [ -s "$T/port2" ]; then
    S2=$(curl -sS -m 30 "http://127.0.0.1:$(cat "$T/port2")/v1/jobs/$J" | jq -r .state)
    check "a second daemon on the database serves job $J as completed ($S2)" [ "$S2" = completed ]
    check "and says it is a cluster's node: $(grep cluster "$T/second.log" | head -n 1)" \
        grep -q 'cluster node second' "$T/second.log"
    kill -TERM "$P2"; wait "$P2"; rc2=$?
    check "it stops cleanly (rc $rc2)" [ "$rc2" -eq 0 ]
else
    kill -9 "$P2" 2>/dev/null; wait "$P2" 2>/dev/null
    fail "a second daemon on the same database did not start: $(tail -n 3 "$T/second.log")"
fi
"$VAED" serve --listen 127.0.0.1:0 --db "$DB" >"$T/noup.log" 2>&1
check "without --upload-dir a PostgreSQL daemon refuses to start: $(tail -n 1 "$T/noup.log")" \
    grep -q -- '--upload-dir: required' "$T/noup.log"

# ---- (c) SIGKILL mid-job, restart --------------------------------------------------------
KSPEC=$(tiny_spec pgkill 4 '{"dataset": {"limit": 8000}, "train": {"batch_size": 100},
    "checkpoint": {"every_steps": 7, "keep": 2},
    "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 200, "unit": "steps"}}')
train_ref pgkill "$KSPEC"
submit "$KSPEC"; K=$JOB
wait_step "$K" $((10 + $(rand_below 150))) 60 && ok || fail "job $K not stepping"
kill_daemon
start_daemon --threads 1 --upload-dir "$UP" --node pgnode
wait_state "$K" completed 120 && ok || fail "job $K did not complete after SIGKILL and restart"
check "resumed from a checkpoint on the server" grep -q "job $K resumes from its checkpoint at step" "$T/daemon.log"
same_as_ref "$K" pgkill "killed and restarted on PostgreSQL"

# ---- (d) the server restarted under a running job ----------------------------------------
# wide layers and many rows: the job trains for seconds, so the restart lands mid-run
# (under ThreadSanitizer, six times slower, part (c)'s job does, and costs no new reference)
if [ "$SLOW" -lt 6 ]; then
    RSPEC=$(tiny_spec pgrestart 4 '{"dataset": {"limit": 20000}, "train": {"batch_size": 200},
        "model": {"encoder": [256], "decoder": [256]}, "checkpoint": {"every_steps": 25},
        "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 120, "unit": "steps"}}')
    RREF=pgrestart
    train_ref pgrestart "$RSPEC"
else
    RSPEC=$KSPEC
    RREF=pgkill
fi
submit "$RSPEC"; R=$JOB
wait_step "$R" $((5 + $(rand_below 60))) 60 && ok || fail "job $R not stepping"
check "pg_ctl restart" sh tests/pg_server.sh restart "$PGD"
api GET "/v1/jobs/$R"
echo "daemon_pg: after the restart job $R is $(jqb .state) at step $(jqb .step) (HTTP $STATUS $(printf "%s" "$BODY" | cut -c 1-300))"
check "the restart landed mid-run (job $R $(jqb .state) at step $(jqb .step))" [ "$(jqb .state)" = running ]
wait_state "$R" completed 180 && ok || fail "job $R did not complete after the server restarted"
same_as_ref "$R" "$RREF" "the server restarted under it"
api GET /v1/jobs
check "the job list is served after the restart (HTTP $STATUS)" [ "$STATUS" = 200 ]
stop_daemon

# ---- (e) the password stays out of the logs ----------------------------------------------
check "no log line shows the password" sh -c "! grep -q s3cr3t-pw '$T/daemon.log' '$T/second.log' '$T/noup.log'"
grep -m 1 'serving' "$T/daemon.log" | sed 's/^/daemon_pg: /'
finish
