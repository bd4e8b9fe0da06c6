#!/bin/sh
# run.sh — run libFuzzer targets one after another (never two at once: the machine is
# shared). For each target name given: replay every committed regression input in
# tests/fuzz/regress/<t>/ (libFuzzer runs a file argument once, no fuzzing), then fuzz
# for $FUZZ_SECONDS seconds starting from tests/fuzz/corpus/<t>/. New interesting
# inputs go to $FUZZ_B/corpus/<t>/ (the committed corpus is only read), crashes to
# $FUZZ_B/crash/<t>/. Prints one line per target and exits non-zero on any failure.
FUZZ_B=${FUZZ_B:-build/fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
# ASan's leak check at exit is on (libFuzzer also checks per input); UBSan aborts.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fail=0
for t in "$@"; do
    bin="$FUZZ_B/fuzz_$t"
    log="$FUZZ_B/fuzz_$t.log"
    if [ ! -x "$bin" ]; then
        echo "fuzz_$t: $bin is missing (make fuzz-build)"; fail=1; continue
    fi
    mkdir -p "$FUZZ_B/corpus/$t" "$FUZZ_B/crash/$t"
    regress=$(find "tests/fuzz/regress/$t" -type f 2>/dev/null | sort)
    if [ -n "$regress" ]; then
        # shellcheck disable=SC2086 # file names are ours: no spaces
        if ! "$bin" -rss_limit_mb=2048 $regress >"$log" 2>&1; then
            echo "fuzz_$t: FAIL replaying tests/fuzz/regress/$t/ (log: $log)"
            tail -n 30 "$log" | sed 's/^/    | /'
            fail=1; continue
        fi
        nreg=$(echo "$regress" | wc -l)
    else
        nreg=0
    fi
    start=$(date +%s)
    if "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=20 -rss_limit_mb=2048 \
        -artifact_prefix="$FUZZ_B/crash/$t/" -print_final_stats=1 \
        "$FUZZ_B/corpus/$t" "tests/fuzz/corpus/$t" >>"$log" 2>&1; then
        runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
        echo "fuzz_$t: ok, $nreg regression inputs, ${runs:-?} runs in $(($(date +%s) - start))s, $cov"
    else
        echo "fuzz_$t: FAIL (log: $log; reproducer in $FUZZ_B/crash/$t/)"
        grep -E 'ERROR|SUMMARY|fuzz_|runtime error' "$log" | head -n 20 | sed 's/^/    | /'
        fail=1
    fi
done
exit $fail
