# sweeps.sh — POST /v1/sweeps against the real daemon (docs/sweeps.md):
#   (a) bad input is refused with 422 naming the field, and nothing is stored: a path
#       that is no spec field, a value making an invalid spec (in the second trial
#       only), a range in a grid, a grid over max_trials, an unknown objective metric;
#   (b) a 4-trial grid over schedule.duration with concurrency 1 on --workers 2: the
#       trials' specs carry their points in grid order, never two of its trials run at
#       once (polled, and their run intervals in the store do not overlap), while an
#       ordinary job submitted after it runs beside it on the other worker;
#   (c) the table (sorted by objective and by trial) equals the store's last test
#       epoch rows, the CSV is the same table, the metrics route gives one field of
#       every trial as the job's own downsampled metrics give it;
#   (d) a random sweep of 3 trials submitted twice gives the same points; cancelling
#       the second leaves none of its trials unfinished;
#   (e) SIGKILL while a sweep (concurrency 1) runs, restart: still one trial at a time
#       (the reloaded jobs know their sweep), every trial completes, exactly one job per
#       trial and one submit event per job (counted in the store with sqlite3).
. tests/e2e/daemon_lib.sh
e2e_init
start_daemon --workers 2 --threads 1

# Tiny models; under a sanitizer fewer rows so each trial stays short.
if [ -n "${SANITIZER:-}" ]; then LIMIT=500; LONG=1000; else LIMIT=1000; LONG=3000; fi
BASE=$(tiny_spec sw 1 "{\"dataset\": {\"limit\": $LIMIT},
    \"schedule\": {\"kind\": \"linear\", \"from\": 0, \"to\": 1, \"duration\": 10, \"unit\": \"steps\"}}")

sweep_post() { # BODY-JSON → $STATUS $BODY, $SW (the id on 201)
    api POST /v1/sweeps "$1"
    SW=$(jqb '.id // empty')
}
count() { sqlite3 "$DB" "$1" 2>&1; }

# sweep_done ID SECONDS: until every trial of the sweep has finished
sweep_done() {
    s_t=0
    while :; do
        api GET "/v1/sweeps/$1?sort=trial"
        s_left=$(jqb '[.trials[] | select(.state != "completed" and .state != "failed" and .state != "cancelled")] | length')
        [ "$s_left" = 0 ] && return 0
        s_t=$((s_t + 1))
        [ $s_t -le $(($2 * 10)) ] || { echo "sweep $1: $s_left trials unfinished after $2 s: $BODY" >&2; return 1; }
        sleep 0.1
    done
}

# poll_sweep ID SECONDS: until every trial has completed, noting in $MAXRUN the most
# trials seen running at once over $POLLS polls (a trial failing or cancelled fails)
poll_sweep() {
    MAXRUN=0; POLLS=0
    while :; do
        api GET "/v1/sweeps/$1?sort=trial"
        p_r=$(jqb '[.trials[] | select(.state == "running")] | length')
        [ "$p_r" -gt "$MAXRUN" ] && MAXRUN=$p_r
        POLLS=$((POLLS + 1))
        [ "$(jqb '[.trials[] | select(.state != "completed")] | length')" = 0 ] && return 0
        [ $POLLS -lt $(($2 * 20)) ] || { fail "sweep $1 did not finish: $BODY"; return 1; }
        case $(jqb '[.trials[].state] | join(",")') in *failed*|*cancelled*) fail "sweep $1: a trial ended badly: $BODY"; return 1 ;; esac
        sleep 0.05
    done
}

# ---- (a) refusals: 422 naming the field, nothing stored ------------------------------
refuse() { # WHAT FIELD BODY
    sweep_post "$3"
    if [ "$STATUS" = 422 ] && [ "$(jqb .error.field)" = "$2" ]; then ok; else
        fail "$1: expected 422 naming $2, got $STATUS: $BODY"; fi
}
refuse "no such spec field" space.model.latentx \
    "{\"base\": $BASE, \"space\": {\"model.latentx\": [2, 3]}}"
refuse "second trial invalid" space.model.latent \
    "{\"base\": $BASE, \"space\": {\"model.latent\": [2, 0]}}"
refuse "range in a grid" space.optimizer.lr \
    "{\"base\": $BASE, \"space\": {\"optimizer.lr\": {\"min\": 0.001, \"max\": 0.01}}}"
refuse "grid over max_trials" max_trials \
    "{\"base\": $BASE, \"space\": {\"schedule.duration\": [5, 10, 20]}, \"max_trials\": 2}"
refuse "objective metric" objective.metric \
    "{\"base\": $BASE, \"space\": {\"schedule.duration\": [5]}, \"objective\": {\"metric\": \"loss\"}}"
refuse "bad log range" space.optimizer.lr \
    "{\"base\": $BASE, \"method\": \"random\", \"max_trials\": 2, \"space\": {\"optimizer.lr\": {\"min\": 0, \"max\": 0.01, \"log\": true}}}"
sweep_post "{\"base\": $BASE, \"space\": {\"model.latent\": [2, 0]}}"
check "the parser's message is kept: $BODY" jqt '.error.message | test("trial 1") and test("model.latent: must be")'
n=$(count "SELECT (SELECT count(*) FROM sweeps) + (SELECT count(*) FROM jobs)")
check "refused sweeps stored nothing (sweeps + jobs = $n)" [ "$n" = 0 ]

# ---- (b) a grid, concurrency 1 on two workers -----------------------------------------
GBASE=$(printf '%s' "$BASE" | jq -c ".dataset.limit = $LONG | .model.encoder = [128] | .model.decoder = [128]")
sweep_post "{\"name\": \"warmup\", \"base\": $GBASE, \"space\": {\"schedule.duration\": [5, 10, 20, 40]},
    \"method\": \"grid\", \"max_trials\": 4, \"concurrency\": 1,
    \"objective\": {\"metric\": \"elbo\", \"direction\": \"max\"}}"
expect_status 201
G=$SW
check "grid: 4 trials, in grid order: $BODY" jqt '[.trials[] | .point["schedule.duration"]] == [5, 10, 20, 40]'
durs=$(count "SELECT group_concat(json_extract(j.spec, '\$.schedule.duration')) FROM
    (SELECT j.spec FROM sweep_trials t JOIN jobs j ON j.id = t.job WHERE t.sweep = $G ORDER BY t.trial) j")
check "grid: the trials' stored specs carry their points ($durs)" [ "$durs" = "5.0,10.0,20.0,40.0" -o "$durs" = "5,10,20,40" ]
submit "$(tiny_spec plain 1 "{\"dataset\": {\"limit\": $LONG}}")"
PLAIN=$JOB
poll_sweep "$G" 150
maxrun=$MAXRUN; polls=$POLLS
check "grid: never two trials running at once (max seen $maxrun over $polls polls)" [ "$maxrun" = 1 ]
overlap=$(count "SELECT count(*) FROM sweep_trials a JOIN jobs x ON x.id = a.job,
    sweep_trials b JOIN jobs y ON y.id = b.job
    WHERE a.sweep = $G AND b.sweep = $G AND a.trial < b.trial
    AND x.started_at < y.finished_at AND y.started_at < x.finished_at")
check "grid: the trials' run intervals do not overlap ($overlap overlaps)" [ "$overlap" = 0 ]
wait_state "$PLAIN" completed 120 && ok || fail "plain job did not complete"
beside=$(count "SELECT (SELECT started_at FROM jobs WHERE id = $PLAIN) <
    (SELECT max(j.started_at) FROM sweep_trials t JOIN jobs j ON j.id = t.job WHERE t.sweep = $G)")
check "an ordinary job ran beside the sweep, not after it" [ "$beside" = 1 ]

# ---- (c) table, CSV, metrics ---------------------------------------------------------
api GET "/v1/sweeps/$G"
expect_status 200
check "table: objective = elbo, best first: $BODY" jqt '
    (.trials | length) == 4 and all(.trials[]; .objective == .elbo and .kl != null
        and .xent != null and .active_units != null and .state == "completed")
    and ([.trials[].objective] == ([.trials[].objective] | sort | reverse))'
ROWS=$(printf '%s' "$BODY" | jq -r '.trials[] | "\(.job) \(.elbo) \(.kl) \(.xent) \(.active_units)"')
bad=0
while read -r j e k x a; do
    got=$(count "SELECT elbo, kl, xent, active_units FROM epochs WHERE job = $j AND split = 'test'
        ORDER BY epoch DESC LIMIT 1" | tr '|' ' ')
    python3 -c "import sys; a=[float(v) for v in sys.argv[1].split()]; b=[float(v) for v in sys.argv[2].split()];
sys.exit(0 if len(a)==4 and all(abs(p-q)<=1e-9*max(1,abs(q)) for p,q in zip(a,b)) else 1)" "$e $k $x $a" "$got" ||
        { bad=$((bad + 1)); echo "job $j: table $e $k $x $a, store $got" >&2; }
done <<EOT
$ROWS
EOT
check "table figures are the jobs' last test epoch rows" [ $bad = 0 ]
TJSON=$BODY
api GET "/v1/sweeps/$G?sort=trial"
check "sort=trial" jqt '[.trials[].trial] == [0, 1, 2, 3]'
api GET "/v1/sweeps/$G?format=csv"
expect_status 200
CSV=$BODY
hdr=$(printf '%s\n' "$CSV" | head -n 1)
check "csv header: $hdr" [ "$hdr" = "trial,job,state,schedule.duration,objective,kl,xent,elbo,active_units,bound,epoch,reason" ]
lines=$(printf '%s\n' "$CSV" | wc -l)
check "csv: a header and 4 rows ($lines lines)" [ "$lines" = 5 ]
want=$(printf '%s' "$TJSON" | jq -r '.trials[] | "\(.trial),\(.job),\(.state),\(.point["schedule.duration"])"')
got=$(printf '%s\n' "$CSV" | tail -n +2 | cut -d, -f1-4)
check "csv rows are the table's, in its order:
$got
vs
$want" [ "$got" = "$want" ]
csvok=$(printf '%s\n' "$CSV" | tail -n +2 | python3 -c "
import sys, json, csv
t = json.loads(sys.argv[1])['trials']
rows = list(csv.reader(sys.stdin))
ok = len(rows) == len(t) and all(abs(float(r[4]) - x['objective']) <= 1e-12 * abs(x['objective'])
    and abs(float(r[5]) - x['kl']) <= 1e-12 * max(1, abs(x['kl'])) and int(r[8]) == x['active_units']
    and r[9] == '' for r, x in zip(rows, t))
print('ok' if ok else rows)" "$TJSON")
check "csv numbers are the table's ($csvok)" [ "$csvok" = ok ]
api GET "/v1/sweeps/$G/metrics?field=kl&max_points=6"
expect_status 200
check "metrics: one kl column per trial" jqt '.field == "kl" and (.trials | length) == 4 and
    all(.trials[]; (.step | length) >= 2 and (.step | length) <= 6 and (.kl | length) == (.step | length)
        and .step == (.step | sort))'
M=$BODY
J0=$(printf '%s' "$M" | jq -r '.trials[0].job')
api GET "/v1/jobs/$J0/metrics?fields=kl&max_points=6"
same=$(jq -n --argjson a "$M" --argjson b "$BODY" '$a.trials[0].step == $b.step and $a.trials[0].kl == $b.kl')
check "metrics: trial 0 as the job's own downsampled metrics ($same)" [ "$same" = true ]
api GET "/v1/sweeps/$G/metrics?field=nope"
check "metrics: unknown field → 422 naming field ($STATUS $BODY)" [ "$STATUS" = 422 -a "$(jqb .error.field)" = field ]
api GET "/v1/sweeps/$G/metrics?field=kl&max_points=1"
check "metrics: max_points 1 → 400 bad_param, as the job's metrics ($STATUS)" [ "$STATUS" = 400 -a "$(jqb .error.code)" = bad_param -a "$(jqb .error.field)" = max_points ]
api GET "/v1/sweeps/$G?sort=best"
check "sort=best → 422 naming sort ($STATUS)" [ "$STATUS" = 422 -a "$(jqb .error.field)" = sort ]
api GET "/v1/sweeps/999"
check "unknown sweep → 404 ($STATUS)" [ "$STATUS" = 404 ]
api GET /v1/sweeps
check "list: the grid with its counts" jqt "(.sweeps | length) == 1 and .sweeps[0].id == $G and .sweeps[0].counts.completed == 4"

# ---- (d) random, twice; cancel -------------------------------------------------------
RSPEC="{\"name\": \"rnd\", \"base\": $BASE, \"method\": \"random\", \"seed\": 42, \"max_trials\": 3,
    \"concurrency\": 1, \"space\": {\"optimizer.lr\": {\"min\": 0.0003, \"max\": 0.003, \"log\": true},
    \"model.latent\": {\"min\": 2, \"max\": 8, \"int\": true}, \"train.seed\": [1, 2, 3, 4]}}"
sweep_post "$RSPEC"
expect_status 201
R1=$SW; P1=$(jqb -c '[.trials[].point]')
sweep_post "$RSPEC"
expect_status 201
R2=$SW; P2=$(jqb -c '[.trials[].point]')
api POST "/v1/sweeps/$R2/cancel"
expect_status 200
check "cancel: at least two trials cancelled ($BODY)" jqt '.cancelled >= 2'
check "random: the same spec gives the same points ($P1)" [ "$P1" = "$P2" ]
check "random: 3 points in range: $P1" sh -c "printf '%s' '$P1' | jq -e 'length == 3 and all(.[];
    .[\"optimizer.lr\"] >= 0.0003 and .[\"optimizer.lr\"] <= 0.003 and (.[\"model.latent\"] | floor) == .[\"model.latent\"]
    and .[\"model.latent\"] >= 2 and .[\"model.latent\"] <= 8)' >/dev/null"
sweep_done "$R2" 60 && ok || fail "cancelled sweep still has unfinished trials"
check "cancel: every trial of the cancelled sweep finished" jqt '[.trials[] | select(.state == "cancelled")] | length >= 2'
sweep_done "$R1" 120 && ok || fail "random sweep did not finish"
check "random sweep completed: $BODY" jqt 'all(.trials[]; .state == "completed")'
rl=$(count "SELECT group_concat(json_extract(j.spec, '\$.model.latent')) FROM
    (SELECT j.spec FROM sweep_trials t JOIN jobs j ON j.id = t.job WHERE t.sweep = $R1 ORDER BY t.trial) j")
wl=$(printf '%s' "$P1" | jq -r '[.[]["model.latent"]] | map(tostring) | join(",")')
check "random: the jobs trained their points' latent sizes ($rl vs $wl)" [ "$rl" = "$wl" ]

# ---- (e) SIGKILL mid-sweep, restart: each trial completes exactly once ----------------
KBASE=$(printf '%s' "$GBASE" | jq -c '.train.epochs = 2 | .checkpoint = {"every_steps": 10}')
sweep_post "{\"name\": \"kill\", \"base\": $KBASE, \"space\": {\"train.seed\": [1, 2, 3, 4]},
    \"concurrency\": 1}"
expect_status 201
K=$SW
KJOB=$(jqb '.trials[0].job')
wait_stepping "$KJOB" 60 || fail "first trial of the kill sweep not stepping"
kill_daemon
start_daemon --workers 2 --threads 1
poll_sweep "$K" 180 && ok
check "kill: one trial at a time after the restart (max $MAXRUN over $POLLS polls)" [ "$MAXRUN" = 1 ]
check "kill: every trial completed: $BODY" jqt '(.trials | length) == 4 and all(.trials[]; .state == "completed")'
per=$(count "SELECT group_concat(n) FROM (SELECT count(*) n FROM sweep_trials WHERE sweep = $K GROUP BY trial ORDER BY trial)")
check "kill: one job per trial ($per)" [ "$per" = "1,1,1,1" ]
named=$(count "SELECT count(*) FROM jobs WHERE name LIKE 'sw-t%' AND id NOT IN (SELECT job FROM sweep_trials)")
check "kill: no job outside the trial table ($named)" [ "$named" = 0 ]
ev=$(count "SELECT group_concat(n) FROM (SELECT count(*) n FROM schedule_events e JOIN sweep_trials t ON t.job = e.job
    WHERE t.sweep = $K AND e.source = 'submit' GROUP BY t.trial ORDER BY t.trial)")
check "kill: one submit event per trial's job ($ev)" [ "$ev" = "1,1,1,1" ]
ep=$(count "SELECT group_concat(n) FROM (SELECT count(*) n FROM epochs e JOIN sweep_trials t ON t.job = e.job
    WHERE t.sweep = $K AND e.split = 'test' GROUP BY t.trial ORDER BY t.trial)")
check "kill: each trial has its 2 test epochs once ($ep)" [ "$ep" = "2,2,2,2" ]
integrity_ok "after the kill"
term_daemon 30
finish
