# lib.sh — helpers for end-to-end tests: start the real daemon on a free loopback port
# with a temporary database, talk to it with curl, assert loudly.
#   . tests/e2e/lib.sh
#   e2e_init            temp dir in $T, traps cleanup
#   start_daemon [flags]  starts $VAED serve, sets $PORT $URL $DPID (log in $T/daemon.log)
#   stop_daemon         SIGTERM and wait (asserts exit 0)
#   kill_daemon         SIGKILL and wait
#   api METHOD PATH [JSON]   sets $STATUS and $BODY
#   expect_status N     fails unless $STATUS is N
#   ok "what" / fail "what"  count checks; finish prints "N passed, N failed"
VAED=${VAED:-./vaed}
case "$VAED" in /*) ;; *) VAED="$(pwd)/$VAED" ;; esac
E2E_PASS=0
E2E_FAIL=0
# SLOW: how much longer than a plain build things take under a sanitizer (TSan runs the
# daemon several times slower on 2 cores). Waits and the browser tests' timeouts are
# multiplied by it: a limit is only how long a failure takes to be called, never part of
# what passes.
case "${SANITIZER:-}" in *thread*) SLOW=6 ;; *address*) SLOW=3 ;; *) SLOW=1 ;; esac
export SLOW

# not_under_tsan "why": a script whose threads are all run under ThreadSanitizer by other
# scripts (the why names them) leaves the TSan pass: there it would repeat numerical or
# protocol checks at 6-20 times the cost, and CI must stay within its time (docs/hacking.md,
# "Which pass runs what"). It still runs plain and under ASan+UBSan.
not_under_tsan() {
    case "${SANITIZER:-}" in
    *thread*) echo "$(basename "$0" .sh): not in the ThreadSanitizer pass: $1"; exit 0 ;;
    esac
}

e2e_init() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/vaed-e2e.XXXXXX")
    DB="$T/vaed.db"
    DPID=""
    trap 'e2e_cleanup' EXIT
    trap 'exit 130' INT TERM
}

# A sanitizer's report in a daemon's log ($T/*.log) fails the script: a daemon ended by
# SIGKILL never shows it in its exit status (ThreadSanitizer reports and goes on, and
# exits 66 only at a normal exit). Once per script; the reports are shown.
SAN_REPORTS=""
SAN_LOOKED=""
SAN_ERE='WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'
sanitizer_reports() {
    [ -z "$SAN_LOOKED" ] || return 0
    SAN_LOOKED=1
    for s_log in "$T"/*.log; do
        [ -f "$s_log" ] && grep -qE "$SAN_ERE" "$s_log" || continue
        SAN_REPORTS="$SAN_REPORTS $(basename "$s_log")"
        echo "FAIL: a sanitizer's report in $(basename "$s_log"):"
        grep -m 3 -A 30 -E "$SAN_ERE" "$s_log"
        E2E_FAIL=$((E2E_FAIL + 1))
    done
}

e2e_cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then kill -9 "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; fi
    sanitizer_reports
    if [ "$E2E_FAIL" -ne 0 ] && [ -f "$T/daemon.log" ]; then
        echo "--- daemon log (last 30 lines) ---"; tail -n 30 "$T/daemon.log"
    fi
    [ -n "$KEEP" ] || rm -rf "$T"
    [ -z "$SAN_REPORTS" ] || exit 1
}

ok() { E2E_PASS=$((E2E_PASS + 1)); }
fail() { E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL: $*" >&2; }
check() { # check "what" command...
    what=$1; shift
    if "$@"; then ok; else fail "$what"; fi
}

start_daemon() {
    rm -f "$T/port"
    "$VAED" serve --listen 127.0.0.1:0 --port-file "$T/port" --db "$DB" --access-log 0 "$@" \
        >>"$T/daemon.log" 2>&1 &
    DPID=$!
    i=0
    while [ ! -s "$T/port" ]; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$DPID" 2>/dev/null; then
            echo "daemon did not start:"; cat "$T/daemon.log"; exit 1
        fi
        sleep 0.05
    done
    PORT=$(cat "$T/port")
    URL="http://127.0.0.1:$PORT"
}

stop_daemon() {
    kill -TERM "$DPID"
    wait "$DPID"
    rc=$?
    DPID=""
    [ $rc -eq 0 ] || fail "daemon exited with $rc after SIGTERM"
}

kill_daemon() {
    kill -KILL "$DPID" 2>/dev/null
    wait "$DPID" 2>/dev/null
    DPID=""
}

# api METHOD PATH [BODY] [extra curl args...]: sets STATUS and BODY
api() {
    m=$1; p=$2; shift 2
    if [ $# -gt 0 ]; then data=$1; shift; else data=""; fi
    if [ -n "$data" ]; then
        BODY=$(curl -sS -m 60 -o - -w '\n%{http_code}' -X "$m" -H 'Content-Type: application/json' \
            --data-binary "$data" "$@" "$URL$p")
    else
        BODY=$(curl -sS -m 60 -o - -w '\n%{http_code}' -X "$m" "$@" "$URL$p")
    fi
    STATUS=$(printf '%s' "$BODY" | tail -n 1)
    BODY=$(printf '%s' "$BODY" | sed '$d')
}

expect_status() {
    if [ "$STATUS" = "$1" ]; then ok; else fail "expected HTTP $1, got $STATUS: $BODY"; fi
}

jqb() { printf '%s' "$BODY" | jq -r "$@"; }

# wait_state ID STATE [SECONDS]: poll until the job is in STATE
wait_state() {
    id=$1; want=$2; limit=$((${3:-120} * SLOW))
    start=$(date +%s)
    while :; do
        api GET "/v1/jobs/$id"
        s=$(jqb .state)
        [ "$s" = "$want" ] && return 0
        case "$s" in completed|failed|cancelled) [ "$s" != "$want" ] && { echo "job $id is $s (reason: $(jqb .reason)), wanted $want" >&2; return 1; } ;; esac
        [ $(($(date +%s) - start)) -ge "$limit" ] && { echo "job $id still $s after ${limit}s, wanted $want" >&2; return 1; }
        sleep 0.1
    done
}

# wait_step ID N: poll until the job has done at least N steps
wait_step() {
    id=$1; n=$2; limit=$((${3:-120} * SLOW))
    start=$(date +%s)
    while :; do
        api GET "/v1/jobs/$id"
        s=$(jqb '.step // 0')
        [ "$s" -ge "$n" ] && return 0
        [ $(($(date +%s) - start)) -ge "$limit" ] && { echo "job $id at step $s after ${limit}s" >&2; return 1; }
        sleep 0.05
    done
}

finish() {
    echo "$(basename "$0" .sh): $E2E_PASS passed, $E2E_FAIL failed"
    [ "$E2E_FAIL" -eq 0 ]
}
