# daemon_lib.sh — helpers for the daemon's end-to-end tests, on top of lib.sh.
#   . tests/e2e/daemon_lib.sh     (from the repo root; sources lib.sh)
#   tiny_spec NAME EPOCHS [JSON]  prints a tiny job spec; JSON is deep-merged over it
#   submit SPEC                   POST /v1/jobs, expects 201, sets JOB (returns 1 on error)
#   train_ref NAME SPEC           `vaed train` of SPEC: $T/NAME.jsonl, $T/NAME.summary.json
#   same_as_ref ID NAME WHAT      the job's per-step metrics and last test ELBO equal the
#                                 reference NAME bit for bit (counts one check)
#   integrity_ok WHAT             PRAGMA integrity_check of $DB says ok (one check)
#   db_state ID                   the job's state read straight from $DB (sqlite3 CLI)
#   sweep_left ID                 the number of sweep ID's unfinished trials, from $DB
#   term_daemon SECS              SIGTERM; asserts exit 0 within SECS seconds
#   jqt EXPR                      jq -e EXPR on $BODY, quiet; on failure shows the body
#   rand_below N                  a random whole number in [0, N)
#   sleep_ms MS                   sleep MS milliseconds
# Every helper keeps its variables under the d_ prefix: lib.sh's helpers use short
# global names (s, id, want, start...), and sh has no locals.
. tests/e2e/lib.sh

D_CHECK="tests/e2e/daemon_check.py"

tiny_spec() {
    d_extra=${3:-}
    [ -n "$d_extra" ] || d_extra='{}'
    jq -cn --arg name "$1" --argjson epochs "$2" --argjson extra "$d_extra" '
        {name: $name,
         dataset: {name: "fashion-mnist", limit: 1000},
         model: {encoder: [32], latent: 4, decoder: [32]},
         train: {epochs: $epochs, batch_size: 50, seed: 11, threads: 1}} * $extra'
}

submit() {
    api POST /v1/jobs "$1"
    if [ "$STATUS" != 201 ]; then
        fail "submit: expected HTTP 201, got $STATUS: $BODY"
        JOB=""
        return 1
    fi
    JOB=$(jqb .id)
    ok
}

train_ref() {
    printf '%s\n' "$2" >"$T/$1.spec.json"
    if "$VAED" train "$T/$1.spec.json" --metrics "$T/$1.jsonl" >"$T/$1.summary.json" \
        2>"$T/$1.err"; then
        ok
    else
        fail "vaed train $1 failed: $(cat "$T/$1.err")"
        return 1
    fi
}

# The metrics as the daemon serves them, every column the reference can have.
get_metrics() { # ID FILE
    api GET "/v1/jobs/$1/metrics?fields=epoch,beta,loss,xent,kl,elbo,lr,grad_norm,capacity,kl_groups"
    [ "$STATUS" = 200 ] || { fail "metrics of job $1: HTTP $STATUS: $BODY"; return 1; }
    printf '%s\n' "$BODY" >"$2"
}

same_as_ref() { # ID NAME WHAT
    get_metrics "$1" "$T/job$1.metrics.json" || return 1
    api GET "/v1/jobs/$1/epochs"
    [ "$STATUS" = 200 ] || { fail "epochs of job $1: HTTP $STATUS: $BODY"; return 1; }
    printf '%s\n' "$BODY" >"$T/job$1.epochs.json"
    d_epochs=$(jq '.spec.train.epochs' "$T/$2.summary.json")
    if d_out=$(python3 "$D_CHECK" metrics "$T/$2.jsonl" "$T/job$1.metrics.json" 2>&1) &&
        d_out2=$(python3 "$D_CHECK" test-elbo "$T/$2.summary.json" "$T/job$1.epochs.json" \
            "$d_epochs" 2>&1); then
        ok
    else
        fail "$3: job $1 differs from vaed train:
$d_out ${d_out2:-}"
        return 1
    fi
}

integrity_ok() {
    d_ic=$(sqlite3 "$DB" 'PRAGMA integrity_check' 2>&1)
    if [ "$d_ic" = ok ]; then ok; else fail "$1: PRAGMA integrity_check: $d_ic"; fi
}

db_state() {
    sqlite3 "$DB" "SELECT state FROM jobs WHERE id = $1" 2>&1
}

# sweep_left ID: how many of sweep ID's trials are not finished, read straight from $DB
# (after a kill: did it land mid-sweep?)
sweep_left() {
    sqlite3 "$DB" "SELECT count(*) FROM sweep_trials t JOIN jobs j ON j.id = t.job WHERE t.sweep = $1
        AND j.state NOT IN ('completed', 'cancelled', 'failed')" 2>&1
}

# Is the process gone (or a zombie waiting for us to reap it)?
d_gone() {
    [ -r "/proc/$1/stat" ] || return 0
    d_st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -z "$d_st" ] || [ "$d_st" = Z ] || [ "$d_st" = X ]
}

term_daemon() { # SECS
    d_t0=$(date +%s%N)
    kill -TERM "$DPID"
    d_n=0
    while ! d_gone "$DPID"; do
        d_n=$((d_n + 1))
        if [ $d_n -gt $(($1 * 20)) ]; then
            fail "daemon still running ${1}s after SIGTERM; killing it"
            kill -KILL "$DPID"
            break
        fi
        sleep 0.05
    done
    wait "$DPID"
    d_rc=$?
    D_TERM_MS=$((($(date +%s%N) - d_t0) / 1000000))
    DPID=""
    if [ $d_rc -eq 0 ]; then ok; else fail "daemon exited with $d_rc after SIGTERM"; fi
}

jqt() {
    if printf '%s' "$BODY" | jq -e "$@" >/dev/null 2>&1; then return 0; fi
    echo "  jq -e $* is not true for: $(printf '%s' "$BODY" | cut -c 1-600)" >&2
    return 1
}

rand_below() {
    d_r=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    echo $((d_r % $1))
}

sleep_ms() {
    sleep "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))"
}

# stepping ID: the job is running and has trained a step in this daemon process
# (samples_per_sec exists only once the worker has run a step since the daemon started)
stepping() {
    api GET "/v1/jobs/$1"
    [ "$STATUS" = 200 ] && [ "$(jqb .state)" = running ] && [ "$(jqb 'has("samples_per_sec")')" = true ]
}
wait_stepping() { # ID SECONDS: until the job has trained a step in this daemon process
    d_w=0
    while ! stepping "$1"; do
        d_w=$((d_w + 1))
        [ $d_w -le $(($2 * 20)) ] || { echo "job $1 not stepping after $2 s (state $(jqb .state))" >&2; return 1; }
        case $(jqb .state) in completed|failed|cancelled) return 1 ;; esac
        sleep 0.05
    done
}

# sweep_done ID SECONDS: until every trial of sweep ID has finished (SECONDS x SLOW)
sweep_done() {
    s_t=0
    while :; do
        api GET "/v1/sweeps/$1?sort=trial"
        [ "$(jqb '[.trials[] | select(.state == "queued" or .state == "running" or .state == "paused" or .state == "interrupted")] | length')" = 0 ] && return 0
        s_t=$((s_t + 1))
        [ $s_t -le $(($2 * 10 * SLOW)) ] || { echo "sweep $1 unfinished after $2 s: $BODY" >&2; return 1; }
        sleep 0.1
    done
}

# verdict WHAT OUTPUT: a checker's OUTPUT passes when it has no "FAIL ..." line (each one
# is shown)
verdict() {
    if printf '%s\n' "$2" | grep -q '^FAIL'; then
        printf '%s\n' "$2" | grep '^FAIL' >&2
        fail "$1"
    else
        ok
    fi
}
