# daemon_basic.sh — a job submitted over HTTP runs to completion with exactly the
# figures `vaed train` computes for the same spec (every per-step metric bit for bit,
# the final test ELBO), and the read routes show it: job object, metrics (ranges,
# CSV), epochs, checkpoints; then GET /v1/jobs filters by status and paginates, and a
# running job's metrics replies are never older than the store's last commit.
. tests/e2e/daemon_lib.sh
e2e_init
start_daemon --threads 1

api GET /healthz
expect_status 200
check "healthz says ok" [ "$(jqb .status)" = ok ]

# ---- 1. submit → runs → completes, identical to vaed train -----------------------------
SPEC=$(tiny_spec basic 3 '{"model": {"latent": [3, 2]}, "checkpoint": {"every_steps": 7}}')
submit "$SPEC"
J1=$JOB
check "new job is queued or running" jqt '.state == "queued" or .state == "running"'
check "spec is stored with its defaults" [ "$(jqb '.spec.optimizer.lr')" = 0.001 ]
train_ref basic "$SPEC"
STEPS=$(wc -l <"$T/basic.jsonl")
check "reference has 60 steps" [ "$STEPS" -eq 60 ]
wait_state "$J1" completed 120 && ok || fail "job $J1 did not complete"
same_as_ref "$J1" basic "uninterrupted run"

api GET "/v1/jobs/$J1"
expect_status 200
check "completed job shows step 60, epoch 3" jqt '.step == 60 and .epoch == 3 and .reason == null'
check "started_at <= finished_at" jqt '.created_at <= .started_at and .started_at <= .finished_at'
LAST_REF=$(tail -n 1 "$T/basic.jsonl" | jq -c '{step, loss, xent, kl, elbo, lr, grad_norm}')
LAST_JOB=$(jqb -c '.last | {step, loss, xent, kl, elbo, lr, grad_norm}')
check "job's last figures are the last step's ($LAST_JOB vs $LAST_REF)" [ "$LAST_JOB" = "$LAST_REF" ]

# metrics ranges: since < step <= until, and next_since continues where a page ended
api GET "/v1/jobs/$J1/metrics?since=9&until=19&fields=elbo"
expect_status 200
check "since/until range (steps 10..19)" jqt '.step == [range(10;20)] and (.elbo|length) == 10 and (has("loss")|not) and .next_since == 19'
api GET "/v1/jobs/$J1/metrics?since=59"
check "nothing after the last step" jqt '.step == [] and .rows == 0'
api GET "/v1/jobs/$J1/metrics?max_points=10&fields=loss"
check "downsampled to at most 10 real rows, first and last kept" jqt '.downsampled and (.step|length) <= 10 and .step[0] == 0 and .step[-1] == 59'
# the downsampled rows are real rows: the same loss as the full series at the same step
jq -c '[.step, .loss] | transpose[]' >"$T/ds.txt" <<EOF
$BODY
EOF
d_bad=0
while read -r row; do
    st=$(printf '%s' "$row" | jq '.[0]')
    got=$(printf '%s' "$row" | jq -c '.[1]')
    want=$(sed -n "$((st + 1))p" "$T/basic.jsonl" | jq -c .loss)
    [ "$got" = "$want" ] || { d_bad=1; echo "step $st: downsampled loss $got, vaed train $want"; }
done <"$T/ds.txt"
check "downsampled rows carry the real values" [ $d_bad -eq 0 ]
api GET "/v1/jobs/$J1/metrics?format=csv&fields=loss,elbo"
expect_status 200
check "CSV header" [ "$(printf '%s\n' "$BODY" | head -n 1)" = "step,loss,elbo" ]
check "CSV has a row per step" [ "$(printf '%s\n' "$BODY" | sed 1d | wc -l)" -eq 60 ]
check "CSV steps in order" [ "$(printf '%s\n' "$BODY" | sed 1d | cut -d, -f1 | tr '\n' ' ')" = "$(seq 0 59 | tr '\n' ' ')" ]

# A finished job's metrics replies are kept (api/cache.h): a query asked for the first
# time is built (a miss), asked again it is served from the cache (a hit) with the same
# bytes, and no query is answered with another's reply.
cache_count() { curl -sS "$URL/metrics" | awk -v k="vaed_reply_cache_$1" '$1 == k {print $2}'; }
H0=$(cache_count hits_total); M0=$(cache_count misses_total)
c_bad=0; i=0
for q in "fields=loss,kl&since=3" "fields=loss,kl&since=3&until=50" "fields=loss,kl&since=4" \
         "fields=loss,kl&since=3&format=csv" "max_points=7&fields=elbo" "max_points=8&fields=elbo" \
         "until=30&fields=beta"; do
    curl -sS "$URL/v1/jobs/$J1/metrics?$q" >"$T/cache-a-$i"
    curl -sS "$URL/v1/jobs/$J1/metrics?$q" >"$T/cache-b-$i"
    cmp -s "$T/cache-a-$i" "$T/cache-b-$i" || { c_bad=1; echo "query $q: the cached reply differs"; }
    i=$((i + 1))
done
H1=$(cache_count hits_total); M1=$(cache_count misses_total)
check "7 new queries of a finished job: 7 misses ($M0 -> $M1), then 7 hits ($H0 -> $H1)" \
    [ $((M1 - M0)) -eq 7 ] && [ $((H1 - H0)) -eq 7 ]
check "each query's cached reply is the bytes first built" [ $c_bad -eq 0 ]
check "the 7 queries' replies are all different" \
    [ "$(for f in "$T"/cache-a-*; do md5sum <"$f"; done | sort -u | wc -l)" -eq 7 ]
check "a cached reply is the right one (steps 5..59, loss and kl only)" \
    jq -e '.step[0] == 5 and .step[-1] == 59 and has("loss") and has("kl") and (has("elbo") | not)' "$T/cache-b-2"

# checkpoints: the final one is there and downloads whole
api GET "/v1/jobs/$J1/checkpoints"
expect_status 200
check "final checkpoint at step 60" jqt 'any(.checkpoints[]; .step == 60 and .kind == "final")'
SIZE=$(jqb '.checkpoints[] | select(.step == 60) | .size')
GOT=$(curl -sS "$URL/v1/jobs/$J1/checkpoints/60" | wc -c)
check "checkpoint download is $SIZE bytes (got $GOT)" [ "$GOT" -eq "$SIZE" ] && [ "$SIZE" -gt 0 ]
api GET "/v1/jobs/$J1/checkpoints/61"
expect_status 404

# a second identical job gives the same figures again (no state leaks between jobs)
submit "$SPEC"
J2=$JOB
wait_state "$J2" completed 120 && ok || fail "job $J2 did not complete"
same_as_ref "$J2" basic "second run of the same spec"

# ---- 9. listing: status filter and pagination --------------------------------------------
# J1, J2 completed; a long job running; three queued; one of those cancelled.
# no checkpoint at every epoch end: a checkpoint commits at once, and JR's epochs are short
LONG=$(tiny_spec long 1000 '{"checkpoint": {"at_epoch_end": false}}')
submit "$LONG"; JR=$JOB
wait_state "$JR" running 60 && ok || fail "long job not running"
submit "$(tiny_spec q1 1)"; JQ1=$JOB
submit "$(tiny_spec q2 1)"; JQ2=$JOB
submit "$(tiny_spec q3 1)"; JQ3=$JOB
api POST "/v1/jobs/$JQ2/cancel"
expect_status 200

ids() { jqb -c '[.jobs[].id]'; }
api GET "/v1/jobs?status=queued"
expect_status 200
check "status=queued → [$JQ3,$JQ1] newest first (got $(ids))" [ "$(ids)" = "[$JQ3,$JQ1]" ]
check "queued total 2" [ "$(jqb .total)" = 2 ]
api GET "/v1/jobs?status=completed"
check "status=completed → [$J2,$J1] (got $(ids))" [ "$(ids)" = "[$J2,$J1]" ]
api GET "/v1/jobs?status=running"
check "status=running → [$JR] (got $(ids))" [ "$(ids)" = "[$JR]" ]
check "running job in the list is live" [ "$(jqb '.jobs[0].state')" = running ]
api GET "/v1/jobs?status=cancelled"
check "status=cancelled → [$JQ2] (got $(ids))" [ "$(ids)" = "[$JQ2]" ]
api GET "/v1/jobs?status=queued,cancelled"
check "two states at once (got $(ids))" [ "$(ids)" = "[$JQ3,$JQ2,$JQ1]" ]
api GET "/v1/jobs?status=failed"
check "no failed jobs" jqt '.jobs == [] and .total == 0 and .next_after == null'
api GET "/v1/jobs?status=bogus"
expect_status 400
api GET "/v1/jobs"
check "unfiltered: all 6, newest first" [ "$(ids)" = "[$JQ3,$JQ2,$JQ1,$JR,$J2,$J1]" ]
check "unfiltered total 6, no next page" jqt '.total == 6 and .next_after == null'

# pages of 2 until next_after is null: every job exactly once, in order
ALL=""
AFTER=""
PAGES=0
while :; do
    api GET "/v1/jobs?limit=2${AFTER:+&after=$AFTER}"
    [ "$STATUS" = 200 ] || { fail "page: HTTP $STATUS: $BODY"; break; }
    PAGES=$((PAGES + 1))
    [ "$(jqb '.jobs|length')" -le 2 ] || fail "page longer than limit: $BODY"
    [ "$(jqb .total)" = 6 ] || fail "page total is not 6: $BODY"
    ALL="$ALL$(jqb -c '.jobs[].id' | tr '\n' ' ')"
    AFTER=$(jqb '.next_after // empty')
    [ -n "$AFTER" ] || break
    [ $PAGES -lt 10 ] || { fail "pagination does not end"; break; }
done
check "pagination visits every job once ($ALL)" [ "$ALL" = "$JQ3 $JQ2 $JQ1 $JR $J2 $J1 " ]
check "three pages" [ $PAGES -eq 3 ]
api GET "/v1/jobs?status=queued,completed&limit=1&after=$JQ1"
check "filter and page together (after $JQ1 → $J2)" [ "$(ids)" = "[$J2]" ]
check "filtered next_after is the last id shown" [ "$(jqb .next_after)" = "$J2" ]
api GET "/v1/jobs?limit=x"
expect_status 400
api GET "/v1/jobs?after=-1"
expect_status 400

# ---- 10. a running job's replies: kept until the store's next commit, never older -----
# JR is the only job writing rows; J1 and J2 committed 120. Before each pair of polls the
# committed row count is read: a reply must hold at least that many of JR's rows (a
# reply kept past a commit would not). A poll repeated at once with no commit of rows
# between the two (the committed count read before the first and after the second is
# the same) must get the same bytes; how many pairs are that quiet depends on the
# machine's load, so only a few are required, and the kept reply must serve some.
prom_val() { curl -sS "$URL/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
H0=$(cache_count hits_total)
r_stale=0; r_grew=0; r_prev=-1; r_quiet=0; r_differ=0; i=0
while [ $i -lt 25 ]; do
    R0=$(( $(prom_val vaed_store_rows_committed_total) - 120 ))
    curl -sS "$URL/v1/jobs/$JR/metrics?fields=loss" >"$T/live-a"
    curl -sS "$URL/v1/jobs/$JR/metrics?fields=loss" >"$T/live-b"
    ra=$(jq .rows "$T/live-a"); rb=$(jq .rows "$T/live-b")
    [ "$ra" -ge "$R0" ] && [ "$rb" -ge "$ra" ] ||
        { r_stale=$((r_stale + 1)); echo "poll $i: $R0 rows committed before it, replies hold $ra, $rb"; }
    jq -e '(.step | length) == .rows and .step == [range(.rows)]' "$T/live-a" >/dev/null ||
        { r_stale=$((r_stale + 1)); echo "poll $i: rows are not steps 0.. in order"; }
    R1=$(( $(prom_val vaed_store_rows_committed_total) - 120 ))
    if [ "$R1" -eq "$R0" ]; then
        r_quiet=$((r_quiet + 1))
        cmp -s "$T/live-a" "$T/live-b" ||
            { r_differ=$((r_differ + 1)); echo "poll $i: no commit between two polls, replies differ"; }
    fi
    [ "$ra" -gt "$r_prev" ] && [ $r_prev -ge 0 ] && r_grew=$((r_grew + 1))
    r_prev=$ra
    sleep_ms 120
    i=$((i + 1))
done
check "no poll of the running job was older than the last commit before it" [ $r_stale -eq 0 ]
check "the running job's replies grew with its commits ($r_grew times in 3 s)" [ $r_grew -ge 2 ]
check "polls with no commit between them got the same bytes ($r_differ of $r_quiet differ)" \
    [ $r_differ -eq 0 ]
check "at least 3 of 25 pairs of polls had no commit between them ($r_quiet)" [ $r_quiet -ge 3 ]
check "repeated polls of a running job were served from the kept reply" \
    [ $(( $(cache_count hits_total) - H0 )) -ge 3 ]

for j in $JQ1 $JQ3 $JR; do api POST "/v1/jobs/$j/cancel"; expect_status 200; done
stop_daemon
integrity_ok "after a clean stop"
finish
