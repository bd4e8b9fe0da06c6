# pg_lib.sh — a throw-away PostgreSQL server for an end-to-end test, on top of lib.sh.
#   . tests/e2e/pg_lib.sh    (after lib.sh or daemon_lib.sh, and after e2e_init)
#   pg_init NAME             starts the server (tests/pg_server.sh), sets $PGD (its
#                            directory) and $PGURL; on exit kills the daemon, stops the
#                            server (its log's tail shown when a check failed) and
#                            removes it. Never skips: a server that does not start fails.
pg_cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then kill -9 "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; fi
    DPID=""
    sh tests/pg_server.sh stop "$PGD" >/dev/null 2>&1
    if [ "$E2E_FAIL" -ne 0 ] && [ -f "$PGD/server.log" ]; then
        echo "--- server log (last 20 lines) ---"; tail -n 20 "$PGD/server.log"
    fi
    rm -rf "$PGD"
    e2e_cleanup
}

pg_init() {
    PGD=$(mktemp -u "${TMPDIR:-/tmp}/vaed-pg.XXXXXX")
    trap 'pg_cleanup' EXIT
    PGURL=$(sh tests/pg_server.sh start "$PGD") || { fail "the PostgreSQL server did not start"; finish; exit 1; }
    echo "$1: server at $PGURL"
}
