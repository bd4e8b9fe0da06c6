# cluster_lib.sh — the nodes of a cluster for an end-to-end test (cluster_pg.sh,
# cluster_sweeps_pg.sh), on top of daemon_lib.sh and pg_lib.sh, after pg_init. The
# caller sets TTL (--lease-ttl), CWAIT (--control-wait) and UP (each node NAME's
# --upload-dir is UP/NAME: nodes share no directory) before starting nodes; the EXIT trap kills every node (a stopped one
# continued first) and, when a check failed, shows their logs and the leases.

# ---- the nodes ---------------------------------------------------------------------------
# Each node NAME keeps its pid in PID_NAME, its port in PORT_NAME and its log in
# $T/NAME.log (appended to across restarts). Variables of these helpers: c_ prefix.
NODES=""
POLLER=""
CPUT=""
cluster_cleanup() {
    if [ -n "$POLLER" ]; then : >"$T/poll.stop"; kill "$POLLER" 2>/dev/null; wait "$POLLER" 2>/dev/null; fi
    [ -z "$CPUT" ] || kill "$CPUT" 2>/dev/null
    for c_n in $NODES; do
        c_p=$(node_pid "$c_n")
        [ -n "$c_p" ] || continue
        kill -CONT "$c_p" 2>/dev/null
        kill -KILL "$c_p" 2>/dev/null
        wait "$c_p" 2>/dev/null
    done
    sanitizer_reports
    if [ "$E2E_FAIL" -ne 0 ]; then
        for c_n in $NODES; do
            echo "--- $c_n log (last 25 lines) ---"; tail -n 25 "$T/$c_n.log" 2>/dev/null
        done
        echo "--- leases ---"
        psql "$PGURL" -XAtqc "SELECT * FROM leases ORDER BY job" 2>&1 | tail -n 20
    fi
    pg_cleanup
}
trap 'cluster_cleanup' EXIT

node_pid() { eval "echo \${PID_$1:-}"; }
on() { eval "URL=http://127.0.0.1:\$PORT_$1"; }   # on NAME: api talks to node NAME

start_node() { # NAME [flags...]
    c_n=$1; shift
    rm -f "$T/$c_n.port"
    "$VAED" serve --db "$PGURL" --node "$c_n" --lease-ttl "$TTL" --control-wait "$CWAIT" \
        --listen 127.0.0.1:0 --port-file "$T/$c_n.port" --upload-dir "$UP/$c_n" --threads 1 \
        --access-log 0 "$@" >>"$T/$c_n.log" 2>&1 &
    c_p=$!
    eval "PID_$c_n=$c_p"
    case " $NODES " in *" $c_n "*) ;; *) NODES="$NODES $c_n" ;; esac
    c_i=0
    while [ ! -s "$T/$c_n.port" ]; do
        c_i=$((c_i + 1))
        if [ $c_i -gt $((300 * SLOW)) ] || ! kill -0 "$c_p" 2>/dev/null; then
            fail "node $c_n did not start: $(tail -n 5 "$T/$c_n.log")"
            exit 1
        fi
        sleep 0.05
    done
    eval "PORT_$c_n=$(cat "$T/$c_n.port")"
}

kill_node() { # NAME: SIGKILL, reaped
    c_p=$(node_pid "$1")
    kill -KILL "$c_p" 2>/dev/null
    wait "$c_p" 2>/dev/null
    eval "PID_$1="
}

# another live node than NAME (the first one of n1 n2 n3 that is not NAME or EXCEPT)
other_than() { # NAME [EXCEPT]
    for c_o in $NODES; do
        [ "$c_o" != "$1" ] && [ "$c_o" != "${2:-}" ] && [ -n "$(node_pid "$c_o")" ] && { echo "$c_o"; return; }
    done
}

pq() { psql "$PGURL" -XAtqc "$1" 2>&1; }
owner_of() { pq "SELECT coalesce(node, '') FROM leases WHERE job = $1 AND done = 0"; }
gen_of() { pq "SELECT gen FROM leases WHERE job = $1"; }
lease_of() { pq "SELECT gen || ' ' || done FROM leases WHERE job = $1"; }   # "GEN DONE"
newest_ckpt() { pq "SELECT coalesce(max(step), -1) FROM checkpoints WHERE job = $1"; }
# wait_ckpt ID: until the job has a committed checkpoint past step 0 (a resume needs one)
wait_ckpt() {
    c_w=0
    while [ "$(newest_ckpt "$1")" -le 0 ] 2>/dev/null && [ $c_w -lt $((200 * SLOW)) ]; do
        sleep 0.05; c_w=$((c_w + 1))
    done
}

# wait_owner ID MINSTEP SECS: until a live node holds the job's lease and has trained it
# there past MINSTEP steps (its own live figures: samples_per_sec); sets OWNER, OSTEP
wait_owner() {
    c_w=0
    while :; do
        OWNER=$(owner_of "$1")
        case $OWNER in n[0-9]) c_live=$(node_pid "$OWNER") ;; *) c_live="" ;; esac
        if [ -n "$c_live" ]; then
            on "$OWNER"
            api GET "/v1/jobs/$1"
            OSTEP=$(jqb '.step // 0')
            [ "$STATUS" = 200 ] && [ "$(jqb .state)" = running ] &&
                [ "$(jqb 'has("samples_per_sec")')" = true ] && [ "$OSTEP" -ge "$2" ] && return 0
            case $(jqb .state) in completed|failed|cancelled)
                echo "job $1 is $(jqb .state) before step $2 on $OWNER" >&2; return 1 ;;
            esac
        fi
        c_w=$((c_w + 1))
        [ $c_w -le $(($3 * 20 * SLOW)) ] ||
            { echo "job $1: no node trains it past step $2 after $3 s (owner '$OWNER')" >&2; return 1; }
        sleep 0.05
    done
}

# the nodes whose logs have a line matching ERE, one a line
logs_with() { # ERE
    for c_n in $NODES; do grep -qE "$1" "$T/$c_n.log" 2>/dev/null && echo "$c_n"; done
}
ran_line() { echo " job $1 running(\$|[ :;,(])"; }   # job_record_state's "job N running"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
