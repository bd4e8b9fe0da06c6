# vaectl.sh — scripts/vaectl against a live daemon that wants a token on mutating routes:
# every subcommand's output checked against the REST routes it wraps (or against what it
# must mean: an lr change shows in the lr column from the step it names, a downloaded
# checkpoint is the server's bytes, watch prints every step once), the server's errors
# as "vaectl: <message>" with exit 1, usage errors with exit 2, --help everywhere; and
# sweep submit|show|table|schedule on a 2-trial ASHA sweep.
. tests/e2e/sched_lib.sh
e2e_init
start_daemon --threads 1 --workers 1 --token s3cret
CTL="$(pwd)/scripts/vaectl"
export VAED_URL="$URL"
unset VAED_TOKEN

# vc ARGS...: run vaectl; sets OUT, ERR, RC
vc() {
    "$CTL" "$@" >"$T/vc.out" 2>"$T/vc.err"
    RC=$?
    OUT=$(cat "$T/vc.out")
    ERR=$(cat "$T/vc.err")
}
expect_rc() { # RC WHAT
    if [ "$RC" = "$1" ]; then ok; else fail "$2: exit $RC (wanted $1); out: $OUT; err: $ERR"; fi
}

# ---- help and usage -------------------------------------------------------------------------
for c in submit ls show pause resume cancel schedule history lr metrics watch checkpoints download \
    encode decode reconstruct sample eval evals; do
    vc "$c" --help
    check "vaectl $c --help" [ "$RC" = 0 ] && printf '%s' "$OUT" | head -n 1 | grep -q "^usage: vaectl $c"
done
vc --help
check "vaectl --help lists the commands" [ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q 'download ID STEP'
for c in encode decode reconstruct sample eval evals; do
    check "vaectl help lists $c" printf '%s' "$OUT" | grep -q "^  $c ID"
done
vc frobnicate; expect_rc 2 "unknown command"
vc show abc; expect_rc 2 "non-numeric ID"
vc lr 1 fast; expect_rc 2 "non-numeric lr"
vc schedule 1 '{"kind":'; expect_rc 2 "bad JSON argument"

# ---- submit: the token is needed, and sent when set ------------------------------------------
small_spec ctl 200 >"$T/long.json"
vc submit "$T/long.json"
expect_rc 1 "submit without a token"
check "no token: the server's message ($ERR)" [ "${ERR#vaectl: }" != "$ERR" ] &&
    printf '%s' "$ERR" | grep -qi 'token'
export VAED_TOKEN=s3cret
vc submit "$T/long.json"; expect_rc 0 "submit FILE"
L=$OUT
check "submit prints the id ($L)" [ -n "$L" ] && [ "$L" -gt 0 ] 2>/dev/null
small_spec short 3 | "$CTL" submit - >"$T/vc.out" 2>&1
S=$(cat "$T/vc.out")
check "submit - reads stdin ($S)" [ "$S" = $((L + 1)) ]

vc ls; expect_rc 0 "ls"
check "ls lists both jobs" [ "$(printf '%s\n' "$OUT" | awk 'NR > 1 {print $1}' | tr '\n' ' ')" = "$S $L " ]
vc ls --status queued
check "ls --status queued: only $S" [ "$(printf '%s\n' "$OUT" | awk 'NR > 1 {print $1 "/" $2}')" = "$S/queued" ]
vc show "$L"; expect_rc 0 "show"
check "show is the job object" [ "$(printf '%s' "$OUT" | jq .id)" = "$L" ]
vc show 424242; expect_rc 1 "show of an unknown job"
check "unknown job: 'vaectl: no job 424242' ($ERR)" [ "$ERR" = "vaectl: no job 424242" ]

# ---- schedule, history, lr on the running job ------------------------------------------------
wait_step "$L" 60 60 && ok || fail "job $L did not reach step 60"
vc schedule "$L" '{"kind": "linear", "from": "current", "to": 1, "duration": 2, "origin": "now"}'
expect_rc 0 "schedule inline JSON"
E1=$(printf '%s\n' "$OUT" | sed -n 's/^effective_step //p')
S1=$(printf '%s\n' "$OUT" | sed -n 's/^schedule //p')
check "schedule prints the effective step ($E1) and the resolved schedule" [ "${E1:-0}" -ge 60 ] &&
    [ "$(printf '%s' "$S1" | jq -r .kind)" = linear ]
printf '%s\n' '{"kind": "constant", "value": 0.25, "origin": "now"}' >"$T/sched.json"
wait_step "$L" $((E1 + 5)) 60
vc schedule "$L" "$T/sched.json"; expect_rc 0 "schedule FILE"
E2=$(printf '%s\n' "$OUT" | sed -n 's/^effective_step //p')
api GET "/v1/jobs/$L/schedule"
check "the server's history has both changes as vaectl printed them" jqt --argjson e1 "$E1" \
    --argjson e2 "$E2" --argjson s1 "$S1" '[.history[] | select(.source == "override")
    | [.effective_step, .schedule]] == [[$e1, $s1], [$e2, {kind: "constant", unit: "epochs",
    granularity: "step", start: ($e2 / 40), value: 0.25}]]'
vc history "$L"; expect_rc 0 "history"
check "history shows the schedule in force and a row per change" \
    [ "$(printf '%s\n' "$OUT" | grep -c 'override')" = 2 ] &&
    printf '%s\n' "$OUT" | head -n 1 | grep -q '^in force: .*"value":0.25'
vc history "$L" --json
check "history --json is the route's reply" [ "$(printf '%s' "$OUT" | jq '.history | length')" = 3 ]
vc schedule "$L" '{"kind": "linear", "duration": 0}'; expect_rc 1 "invalid schedule"
check "invalid schedule: the server's message ($ERR)" [ "$ERR" = "vaectl: duration: must be > 0" ]

vc lr "$L" 0.002; expect_rc 0 "lr"
ELR=$(printf '%s' "$OUT" | sed -n 's/^lr 0.002 from step \([0-9]*\)$/\1/p')
check "lr prints the step ($OUT)" [ -n "$ELR" ]

# ---- pause, resume, cancel ---------------------------------------------------------------------
wait_step "$L" $((ELR + 10)) 60
vc pause "$L"; expect_rc 0 "pause"
check "pause prints the state ($OUT)" printf '%s' "$OUT" | grep -q "^job $L paused at step [0-9]*$"
vc pause "$L"; expect_rc 1 "pause of a paused job"
check "409 message ($ERR)" printf '%s' "$ERR" | grep -q '^vaectl: .*paused'
vc resume "$L"; expect_rc 0 "resume"
vc cancel "$L"; expect_rc 0 "cancel"
check "cancel prints the state ($OUT)" printf '%s' "$OUT" | grep -q "^job $L cancelled"
sleep 1.2 # metric rows are committed at least once a second

vc metrics "$L" --fields beta,lr; expect_rc 0 "metrics"
printf '%s\n' "$OUT" >"$T/L.json"
check "metrics: lr 0.001 before step $ELR and 0.002 from it" jqf --argjson e "$ELR" '
    ([.step, .lr] | transpose | all(if .[0] < $e then .[1] == 0.001 else .[1] == 0.002 end))
    and (.step | length) > $e' "$T/L.json"
SEGS=$(jq -cn --argjson e1 "$E1" --argjson s1 "$S1" --argjson e2 "$E2" \
    '[[0, {kind: "constant", value: 0}], [$e1, $s1], [$e2, {kind: "constant", value: 0.25}]]')
vc metrics "$L" --fields beta,loss,xent,kl,lr
printf '%s\n' "$OUT" >"$T/L.json"
rows_follow "$T/L.json" 40 "$SEGS" "rows follow the schedules set with vaectl"
vc metrics "$L" --since 10 --until 14 --fields beta
check "metrics --since 10 --until 14" [ "$(printf '%s' "$OUT" | jq -c .step)" = "[11,12,13,14]" ]
vc metrics "$L" --csv --since 10 --until 12 --fields beta,loss
check "metrics --csv" [ "$(printf '%s\n' "$OUT" | head -n 1)" = "step,beta,loss" ] &&
    [ "$(printf '%s\n' "$OUT" | sed 1d | cut -d, -f1 | tr '\n' ' ')" = "11 12 " ]
vc metrics "$L" --fields nonsense; expect_rc 1 "metrics with an unknown field"

# ---- watch, checkpoints, download on the short job (it runs now that L is over) --------------
"$CTL" watch "$S" >"$T/watch.out" 2>"$T/watch.err" &
WPID=$!
n=0
while kill -0 "$WPID" 2>/dev/null && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
kill "$WPID" 2>/dev/null
wait "$WPID"
check "watch ends when the job completes" [ "$(tail -n 1 "$T/watch.out")" = "job $S completed" ]
check "watch printed steps 0..119 once each, in order" \
    [ "$(sed '1d;$d' "$T/watch.out" | awk '{print $1}' | tr '\n' ' ')" = "$(seq 0 119 | tr '\n' ' ')" ]
api GET "/v1/jobs/$S/metrics?fields=beta,loss&since=99&until=100"
check "watch's line for step 100 shows the stored loss" [ "$(awk '$1 == 100 {print $4}' "$T/watch.out")" = \
    "$(printf '%.4f' "$(jqb '.loss[0]')")" ]

vc checkpoints "$S"; expect_rc 0 "checkpoints"
check "checkpoints lists the final one at 120" printf '%s\n' "$OUT" | grep -q "^120	3	final	"
SIZE=$(printf '%s\n' "$OUT" | awk -F '\t' '$1 == 120 {print $4}')
cd "$T" && vc download "$S" 120; cd - >/dev/null
expect_rc 0 "download to the default name"
check "download: job$S-step120.ckpt, $SIZE bytes ($OUT)" [ "$OUT" = "job$S-step120.ckpt: $SIZE bytes" ]
curl -sS "$URL/v1/jobs/$S/checkpoints/120" >"$T/direct.ckpt"
check "downloaded bytes are the server's" cmp -s "$T/job$S-step120.ckpt" "$T/direct.ckpt"
vc download "$S" 120 - 
check "download to stdout" [ "$(printf '%s' "$OUT" | wc -c)" -gt 0 ] && [ "$RC" = 0 ]
vc download "$S" 7 "$T/none.ckpt"; expect_rc 1 "download of a missing checkpoint"
check "no file left behind for a failed download" [ ! -e "$T/none.ckpt" ]
vc schedule "$S" '{"kind": "constant", "value": 1}'; expect_rc 1 "schedule of a finished job"
check "finished: the server's 409 message ($ERR)" [ "$ERR" = "vaectl: job $S is completed" ]

# ---- the model of the finished short job: encode, decode, reconstruct, sample -----------------
# Each reply must be the route's own reply to the same body (the routes themselves are
# checked against NumPy in serving.sh); vaectl's part is the body it builds.
jq -cn '[range(3) as $i | [range(784) as $j | (($i * 784 + $j) % 11) / 10]]' >"$T/rows.json"
direct() { # ROUTE BODY: the reply of a direct POST, into $T/direct.json
    curl -sS -H "Authorization: Bearer s3cret" -H "Content-Type: application/json" --data-binary "$2" "$URL/v1/jobs/$S/$1" >"$T/direct.json"
}
same_as_direct() { # WHAT
    if [ "$RC" = 0 ] && [ "$OUT" = "$(cat "$T/direct.json")" ]; then ok; else
        fail "$1: vaectl (exit $RC) and the route differ: $(printf '%s' "$OUT" | head -c 200) / $(head -c 200 "$T/direct.json"); err: $ERR"
    fi
}
vc encode "$S" "$T/rows.json"
direct encode "{\"rows\": $(cat "$T/rows.json")}"
same_as_direct "encode FILE"
check "encode: mu and logvar of 3 rows of 4" jq -e '(.mu | length) == 3 and (.logvar[2] | length) == 4
    and .checkpoint == 120' "$T/direct.json" >/dev/null
jq -c '{rows: .}' "$T/rows.json" | "$CTL" encode "$S" - --n 2 --seed 5 --checkpoint 120 >"$T/vc.out" 2>"$T/vc.err"
RC=$?; OUT=$(cat "$T/vc.out"); ERR=$(cat "$T/vc.err")
direct encode "{\"rows\": $(cat "$T/rows.json"), \"n\": 2, \"seed\": 5, \"checkpoint\": 120}"
same_as_direct "encode - (stdin, {rows}) --n 2 --seed 5 --checkpoint 120"
check "encode --n 2: 6 draws" [ "$(printf '%s' "$OUT" | jq '.z | length')" = 6 ]
jq -c .mu "$T/direct.json" >"$T/z.json"
vc decode "$S" "$T/z.json" --checkpoint final
direct decode "{\"z\": $(cat "$T/z.json"), \"checkpoint\": \"final\"}"
same_as_direct "decode FILE --checkpoint final"
check "decode: 3 rows of 784 probabilities" jq -e '(.params | length) == 3 and (.params[0] | length) == 784
    and (.params | flatten | all(. > 0 and . < 1))' "$T/direct.json" >/dev/null
"$CTL" reconstruct "$S" <"$T/rows.json" >"$T/vc.out" 2>"$T/vc.err"
RC=$?; OUT=$(cat "$T/vc.out"); ERR=$(cat "$T/vc.err")
direct reconstruct "{\"rows\": $(cat "$T/rows.json")}"
same_as_direct "reconstruct (stdin, no argument)"
vc sample "$S" --n 5 --seed 9 --temperature 0.5
direct sample '{"n": 5, "seed": 9, "temperature": 0.5}'
same_as_direct "sample --n 5 --seed 9 --temperature 0.5"
check "sample: 5 latents and 5 rows" [ "$(printf '%s' "$OUT" | jq '[(.z | length), (.params | length)]' -c)" = "[5,5]" ]
vc sample "$S" --n=2
direct sample '{"n": 2}'
same_as_direct "sample --n=2"
# refusals: the server's (exit 1, its message), vaectl's own (exit 2)
jq -c '[.[0][0:5]]' "$T/rows.json" >"$T/narrow.json"
vc encode "$S" "$T/narrow.json"; expect_rc 1 "encode of a row of the wrong width"
check "wrong width: the server's message names 784 ($ERR)" printf '%s' "$ERR" | grep -q '^vaectl: rows\[0\]: 5 values, .*784'
vc sample "$S" --temperature 20; expect_rc 1 "sample --temperature 20"
check "temperature out of range: the server's message ($ERR)" printf '%s' "$ERR" | grep -q '^vaectl: temperature:'
vc decode "$S" "$T/z.json" --checkpoint 7; expect_rc 1 "decode at a step without a checkpoint"
vc encode "$S" "$T/rows.json" --n two; expect_rc 2 "encode --n two"
vc decode "$S" "$T/z.json" --seed 1; expect_rc 2 "decode does not take --seed"
vc sample "$S" --temperature warm; expect_rc 2 "sample --temperature warm"
printf '{"rows": [[1, 2]' >"$T/bad.json"
vc encode "$S" "$T/bad.json"; expect_rc 2 "encode of a file that is not JSON"
printf '{"z": [[1, 2]]}' >"$T/other.json"
vc encode "$S" "$T/other.json"; expect_rc 2 "encode of an object without rows"
vc encode "$S" "$T/nonexistent.json"; expect_rc 2 "encode of a missing file"
vc sample abc; expect_rc 2 "sample of a non-numeric ID"

VAED_URL="http://127.0.0.1:1" vc ls; expect_rc 1 "no daemon"
check "no daemon: 'vaectl: cannot reach' ($ERR)" printf '%s' "$ERR" | grep -q '^vaectl: cannot reach http://127.0.0.1:1'

# ---- eval and evals: the likelihood bound of the short job's checkpoints ------------------------
vc eval "$S" --k 3 --rows 300 --seed 2 --checkpoint 120 --wait
expect_rc 0 "eval --wait"
check "eval --wait prints the result: k 3, 300 rows, step 120, a bound with its error" \
    sh -c "printf '%s' '$OUT' | jq -e '.k == 3 and .rows == 300 and .checkpoint == 120 and .bound < 0 and .bound_se > 0'"
check "eval --wait shows progress on stderr" sh -c "printf '%s' \"\$1\" | grep -q 'evaluation [0-9]*: '" _ "$ERR"
BOUND=$(printf '%s' "$OUT" | jq .bound)
vc eval "$S" --k 3 --rows 300 --seed 2 --checkpoint 120
expect_rc 0 "eval (no wait)"
E=$OUT
check "eval prints the new evaluation's id ($E)" [ "$E" -gt 0 ] 2>/dev/null
vc evals "$S"
expect_rc 0 "evals"
printf '%s\n' "$OUT" >"$T/evals.out"
n=$(awk -F'\t' 'NR > 1 && $2 == 120 && $3 == 3 && $4 == 300 { n++ } END { print n + 0 }' "$T/evals.out")
check "evals lists both evaluations ($n)" [ "$n" = 2 ]
check "evals shows the first one's bound ($BOUND)" grep -q -- "$BOUND" "$T/evals.out"
vc eval "$S" --k 0; expect_rc 1 "eval --k 0 (the server's 422)"
check "eval --k 0: the server's message names k" sh -c "printf '%s' \"\$1\" | grep -q 'k'" _ "$ERR"
vc eval "$S" --k many; expect_rc 2 "eval --k many"
vc eval "$S" --temperature 1; expect_rc 2 "eval does not take --temperature"

# ---- sweep submit, show, table: a 2-trial ASHA sweep (the slow learner stops at rung 0) -----
vc sweep --help
check "vaectl sweep --help" [ "$RC" = 0 ] && printf '%s' "$OUT" | head -n 1 | grep -q "^usage: vaectl sweep"
jq -n --argjson base "$(small_spec swp 3)" '{name: "ctl", base: $base, concurrency: 1,
    space: {"optimizer.lr": [0.003, 0.00001]},
    early_stop: {method: "asha", min_epochs: 1, reduction_factor: 2}}' >"$T/sweep.json"
vc sweep submit "$T/sweep.json"; expect_rc 0 "sweep submit FILE"
W=$OUT
check "sweep submit prints the id ($W)" [ "$W" -gt 0 ] 2>/dev/null
jq '.early_stop.min_epochs = 0' "$T/sweep.json" | "$CTL" sweep submit - >"$T/vc.out" 2>"$T/vc.err"
check "sweep submit - of a bad request: exit 1 naming the field ($(cat "$T/vc.err"))" \
    sh -c "! cat '$T/vc.out' | grep -q . && grep -q 'min_epochs' '$T/vc.err'"
w_t=0
while [ $w_t -lt 600 ]; do
    api GET "/v1/sweeps/$W"
    [ "$(jqb '[.trials[] | select(.state == "completed" or .state == "cancelled")] | length')" = 2 ] && break
    w_t=$((w_t + 1)); sleep 0.1
done
check "the sweep finished: trial 0 completed, trial 1 stopped ($BODY)" \
    jqt '[.trials[] | {trial, state}] | sort_by(.trial) == [{"trial": 0, "state": "completed"}, {"trial": 1, "state": "cancelled"}]'
vc sweep show "$W"; expect_rc 0 "sweep show"
check "sweep show: the request and counts, no table" sh -c "printf '%s' '$OUT' | jq -e '.id == $W and .spec.early_stop.max_epochs == 3 and .counts.completed == 1 and (has(\"trials\") | not)' >/dev/null"
vc sweep table "$W" --sort trial; expect_rc 0 "sweep table"
printf '%s\n' "$OUT" >"$T/table.out"
check "sweep table: header" [ "$(head -n 1 "$T/table.out")" = "$(printf 'TRIAL\tJOB\tSTATE\toptimizer.lr\tOBJECTIVE\tEPOCH\tREASON')" ]
check "sweep table: trial 1 stopped at epoch 1 with its reason" \
    awk -F'\t' 'NR == 3 && $1 == 1 && $3 == "cancelled" && $4 == "1e-05" && $6 == 1 && $7 ~ /^asha: rung 0 \(epoch 1\): elbo .* not in the top 1 of 2$/ { f = 1 } END { exit !f }' "$T/table.out"
check "sweep table: trial 0 trained 3 epochs" awk -F'\t' 'NR == 2 && $1 == 0 && $3 == "completed" && $6 == 3 && $7 == "" { f = 1 } END { exit !f }' "$T/table.out"
vc sweep table "$W" --csv; expect_rc 0 "sweep table --csv"
api GET "/v1/sweeps/$W?format=csv&sort=objective"
check "sweep table --csv is the server's CSV" [ "$OUT" = "$BODY" ]
vc sweep table "$W" --sort speed; expect_rc 2 "sweep table --sort speed"
vc sweep table abc; expect_rc 2 "sweep table of a non-numeric ID"
vc sweep table 4242; expect_rc 1 "sweep table of an unknown sweep"
vc sweep schedule "$W" 0; expect_rc 0 "sweep schedule"
api GET "/v1/sweeps/$W/trials/0/schedule"
check "sweep schedule prints the route's reply" [ "$(printf '%s' "$OUT" | jq -c .)" = "$(printf '%s' "$BODY" | jq -c .)" ]
vc sweep schedule "$W" 0 --spec; expect_rc 0 "sweep schedule --spec"
check "sweep schedule --spec prints the replaying spec" [ "$(printf '%s' "$OUT" | jq -c .)" = "$(printf '%s' "$BODY" | jq -c .spec)" ]
vc sweep schedule "$W" x; expect_rc 2 "sweep schedule of a non-numeric trial"
vc sweep schedule "$W" 7; expect_rc 1 "sweep schedule of an unknown trial"
vc sweep frob; expect_rc 2 "sweep frob"

stop_daemon
finish
