#!/bin/sh
# Runs every unit test binary in $B/tests and every end-to-end script in tests/e2e,
# prints each one's result and a closing "N passed, N failed" line; exits non-zero on
# any failure. ONLY=unit or ONLY=e2e narrows it; T=name runs the ones matching name.
B=${B:-build/plain}
VAED=${VAED:-./vaed}
export VAED B SANITIZER
# vaed runs OpenBLAS at one thread per multiply (vae_blas_init); under ThreadSanitizer
# its thread pool is not even started, since its threads are not instrumented.
case "$SANITIZER" in *thread*) export OPENBLAS_NUM_THREADS=1 ;; esac
out=${TEST_OUT:-test-output}
mkdir -p "$out"
pass=0
fail=0
failed=""
run_one() { # name, command...
    name=$1; shift
    if [ -n "$T" ] && ! echo "$name" | grep -q -- "$T"; then return; fi
    start=$(date +%s)
    if "$@" >"$out/$name.log" 2>&1; then
        pass=$((pass + 1)); res=ok
    else
        fail=$((fail + 1)); res=FAIL; failed="$failed $name"
    fi
    printf '%-28s %s (%ss)\n' "$name" "$res" $(($(date +%s) - start))
    if [ $res = FAIL ]; then tail -n 40 "$out/$name.log" | sed 's/^/    | /'; fi
}
if [ "$ONLY" != e2e ]; then
    for t in "$B"/tests/test_*; do
        [ -x "$t" ] || continue
        # Allocation-failure injection re-runs one thread's paths thousands of times
        # (about 6 minutes a pass): it runs in the ASan pass only, where a use after
        # free or a leak on an error path is caught as well as a wrong state; the plain
        # pass would repeat the same checks without the detector, and under TSan it
        # found nothing the rest of the suite does not exercise. ALLOC_FAIL=1 runs it in
        # any pass.
        # There it samples SQLite's internal allocations, one in 8 (every one of vaed's
        # and jansson's is still failed; tests/unit/test_alloc_fail_util.h says why):
        # about a fifth of the time. ALLOC_FAIL=1 fails every one.
        case "$ALLOC_FAIL" in 1) AF_SQLITE_STRIDE=${AF_SQLITE_STRIDE:-1} ;; *) AF_SQLITE_STRIDE=${AF_SQLITE_STRIDE:-8} ;; esac
        export AF_SQLITE_STRIDE
        case "$ALLOC_FAIL:$SANITIZER:$(basename "$t")" in
        1:*) ;;
        *address*:test_alloc_fail*) ;;
        *:test_alloc_fail*) echo "$(basename "$t"): in the ASan pass only (ALLOC_FAIL=1 runs it here)"; continue ;;
        esac
        run_one "$(basename "$t")" "$t"
    done
fi
if [ "$ONLY" != unit ]; then
    for t in tests/e2e/*.sh; do
        [ -f "$t" ] || continue
        case "$t" in *lib.sh) continue ;; esac
        run_one "e2e_$(basename "$t" .sh)" sh "$t"
    done
fi
echo "logs in $out/"
if [ -n "$failed" ]; then
    # each failed test's own FAIL lines once more, last, where a reader of only the
    # output's end (a CI summary) sees them, not just the daemon log that ends the tail
    for name in $failed; do
        grep -m 20 -E 'FAIL|ERROR: [A-Za-z]*Sanitizer|WARNING: ThreadSanitizer' "$out/$name.log" | sed "s/^/$name: /"
    done
    echo "failed:$failed"
fi
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
