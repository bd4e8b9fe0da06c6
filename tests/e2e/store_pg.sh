#!/bin/sh
# store_pg.sh — the SQL driver's, the leases' and the PostgreSQL schema's tests
# (tests/unit/test_sql.c, test_lease.c, test_schema_pg.c) against a real PostgreSQL
# server that this script starts (tests/pg_server.sh: initdb in a temporary directory,
# pg_ctl on a loopback port, as the postgres user when run as root) and restarts once
# under the test. Never skipped: a missing or failing server fails this test. In every
# pass (about 5 s; under TSan, test_lease's nodes race from threads).
. tests/e2e/lib.sh
e2e_init
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
check "test_lease on SQLite and on $PGURL" env VAED_TEST_PG="$PGURL" "$B/tests/test_lease"
check "test_schema_pg: the store's schema on $PGURL as on SQLite" env VAED_TEST_PG="$PGURL" "$B/tests/test_schema_pg"
finish
