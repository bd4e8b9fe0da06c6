#!/bin/sh
# store_pg.sh — the SQL driver's, the leases', the PostgreSQL schema's and the store's
# own tests (tests/unit/test_sql.c, test_lease.c, test_store_fence.c, test_schema_pg.c,
# test_store_backends.c: one scenario on both databases, the same answers;
# test_dataset_bytes: an upload's bytes kept in the database, another node's copy;
# test_metric_fields and test_metric_extra: a metric field added) against a real PostgreSQL
# server that this script starts (tests/pg_server.sh: initdb in a temporary directory,
# pg_ctl on a loopback port, as the postgres user when run as root) and restarts once
# under the test. Never skipped: a missing or failing server fails this test. In every
# pass (about 5 s; under TSan, test_lease's nodes race from threads).
. tests/e2e/lib.sh
e2e_init
. tests/e2e/pg_lib.sh
pg_init store_pg
check "test_sql on SQLite and on $PGURL (restarted once)" \
    env VAED_TEST_PG="$PGURL" VAED_TEST_PG_RESTART="sh tests/pg_server.sh restart $PGD" "$B/tests/test_sql"
check "test_lease on SQLite and on $PGURL" env VAED_TEST_PG="$PGURL" "$B/tests/test_lease"
check "test_store_fence: a node's writes fenced by its lease on SQLite and on $PGURL" \
    env VAED_TEST_PG="$PGURL" "$B/tests/test_store_fence"
check "test_schema_pg: the store's schema on $PGURL as on SQLite" env VAED_TEST_PG="$PGURL" "$B/tests/test_schema_pg"
check "test_store_backends: the store on $PGURL answers as on SQLite" \
    env VAED_TEST_PG="$PGURL" "$B/tests/test_store_backends"
check "test_dataset_bytes: an upload's bytes kept in $PGURL and copied to another node" \
    env VAED_TEST_PG="$PGURL" "$B/tests/test_dataset_bytes"
# a metric field added: its column added and the pyramid built again, on $PGURL too
for t in test_metric_fields test_metric_extra; do
    check "$t on SQLite and on $PGURL" env VAED_TEST_PG="$PGURL" "$B/tests/$t"
done
finish
