# crash_loop_pg.sh — crash_loop.sh on PostgreSQL (CRASH_PG=1): a daemon that is a
# cluster's node, training a 12-epoch job (480 steps, a checkpoint every 2), killed with
# SIGKILL 8 times (KILLS) mid-run, mid-checkpoint and right
# after schedule changes, restarted under its node name each time; the job completes
# with every step once and its rows bit-identical to `vaed train` with the changes that
# governed. Plain only (CI time): under ASan+UBSan the same store and recovery code runs
# in crash_loop.sh, daemon_pg.sh and store_pg.sh; under TSan crash loops are skipped.
case "${SANITIZER:-}" in
*address*|*thread*) echo "crash_loop_pg: plain only (CI time; see the header)"; exit 0 ;;
esac
CRASH_PG=1
KILLS=${KILLS:-8}
CRASH_EPOCHS=12     # 480 steps: the kills take about the first 200, more on a loaded
                    # host (once 308 of 320: the job completed before its sixth kill)
. tests/e2e/crash_loop.sh
