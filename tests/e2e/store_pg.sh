#!/bin/sh
# store_pg.sh — the SQL driver's tests (tests/unit/test_sql.c) against a real PostgreSQL
# server that this script starts (tests/pg_server.sh: initdb in a temporary directory,
# pg_ctl on a loopback port, as the postgres user when run as root) and restarts once
# under the test. Never skipped: a missing or failing server fails this test. Not in
# the ThreadSanitizer pass (the driver has no threads of its own; hacking.md "CI time").
. tests/e2e/lib.sh
e2e_init
if [ "${SANITIZER:-}" = thread ]; then
    echo "store_pg: not in the TSan pass (no thread code; hacking.md \"CI time\")"
    ok
    finish
    exit
fi
PGD=$(mktemp -u "${TMPDIR:-/tmp}/vaed-pg.XXXXXX")
pg_cleanup() {
    sh tests/pg_server.sh stop "$PGD" >/dev/null 2>&1
    if [ "$E2E_FAIL" -ne 0 ] && [ -f "$PGD/server.log" ]; then
        echo "--- server log (last 20 lines) ---"; tail -n 20 "$PGD/server.log"
    fi
    rm -rf "$PGD"
    e2e_cleanup
}
trap 'pg_cleanup' EXIT
PGURL=$(sh tests/pg_server.sh start "$PGD") || { fail "the PostgreSQL server did not start"; finish; exit 1; }
echo "store_pg: server at $PGURL"
check "test_sql on SQLite and on $PGURL (restarted once)" \
    env VAED_TEST_PG="$PGURL" VAED_TEST_PG_RESTART="sh tests/pg_server.sh restart $PGD" "$B/tests/test_sql"
finish
