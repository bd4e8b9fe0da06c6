# sweeps_asha.sh — ASHA early stopping of a sweep's trials (docs/sweeps.md, "Early
# stopping") against the real daemon:
#   (a) bad early_stop is refused with 422 naming the field, nothing stored;
#   (b) an 8-trial grid (4 seeds at a good learning rate, then the same 4 at a rate too
#       small to learn) at concurrency 1 with rungs at epochs 1, 2 and 4 of 6: run
#       one at a time, each trial meets at a rung exactly the earlier trials' values, so
#       every decision is recomputed here from the stored test rows (an independent
#       sort-and-threshold version of the rule, in python) and must match: a stopped
#       trial is cancelled at the rung's epoch with the "asha: rung k (epoch e)" reason
#       (in the job and in the table, JSON and CSV) and keeps its rows and metrics, a
#       kept one trains past the rung; at least one trial reaches epoch 6, the slow
#       learners all stop at the first rung;
#   (c) the same sweep again with a SIGKILL in the middle and a restart: each trial has
#       one job, one submit event, each epoch's rows once, decisions consistent with its
#       rows and identical to (b)'s (same points, and a resumed run is bit-identical);
#   (d) a 12-trial random sweep (log-uniform learning rate, integer seed) with ASHA and a
#       SIGKILL in the middle: it runs to completion, one job per trial, and every
#       decision matches the rule on the stored rows (plain and ASan passes only).
. tests/e2e/daemon_lib.sh
e2e_init
start_daemon --workers 2 --threads 1
command -v python3 >/dev/null || { fail "python3 is needed"; finish; }

if [ -n "${SANITIZER:-}" ]; then LIMIT=500; else LIMIT=1000; fi
BASE=$(tiny_spec as 6 "{\"dataset\": {\"limit\": $LIMIT}, \"checkpoint\": {\"every_steps\": 7}}")
SPACE='{"optimizer.lr": [0.003, 0.00001], "train.seed": [1, 2, 3, 4]}'
ES='{"method": "asha", "min_epochs": 1, "reduction_factor": 2}'
count() { sqlite3 "$DB" "$1" 2>&1; }
sweep_post() { api POST /v1/sweeps "$1"; SW=$(jqb '.id // empty'); }

# ---- (a) refusals ---------------------------------------------------------------------
refuse() { # EARLY_STOP-JSON OBJECTIVE-JSON FIELD
    sweep_post "{\"base\": $BASE, \"space\": $SPACE, \"early_stop\": $1, \"objective\": $2}"
    check "early_stop $1, objective $2: 422 naming $3 ($STATUS $BODY)" \
        jqt "\"$STATUS\" == \"422\" and .error.field == \"$3\""
}
refuse '{"method": "asha", "min_epochs": 0}' '{}' early_stop.min_epochs
refuse '{"method": "asha", "min_epochs": 1, "reduction_factor": 1}' '{}' early_stop.reduction_factor
refuse '{"method": "asha", "min_epochs": 6}' '{}' early_stop.min_epochs
refuse '{"method": "asha", "min_epochs": 2, "max_epochs": 2}' '{}' early_stop.min_epochs
refuse '{"method": "hyperband", "min_epochs": 1}' '{}' early_stop.method
refuse '{"method": "asha", "min_epochs": 1}' '{"metric": "bound"}' early_stop
refuse '{"method": "asha", "min_epochs": 1, "patience": 3}' '{}' early_stop
n=$(count "SELECT (SELECT count(*) FROM sweeps) + (SELECT count(*) FROM jobs)")
check "refusals stored nothing ($n rows)" [ "$n" = 0 ]


# asha_check SWEEP: recompute every decision from the store; prints "trial:state:last_epoch"
# per trial on success, "FAIL ..." lines otherwise. The rule, written independently of
# daemon/asha.c: sort the rung's values best first (elbo: higher), keep iff the trial's
# value is >= the k-th best, k = max(1, n // eta), n counting the trial itself.
asha_check() {
    api GET "/v1/sweeps/$1?sort=trial"
    printf '%s' "$BODY" >"$T/sweep$1.json"
    api GET "/v1/sweeps/$1?format=csv&sort=trial"
    printf '%s' "$BODY" >"$T/sweep$1.csv"
    python3 - "$DB" "$1" "$T/sweep$1.json" "$T/sweep$1.csv" <<'PY'
import csv, json, re, sqlite3, sys
db, sw = sqlite3.connect(sys.argv[1]), int(sys.argv[2])
table = json.load(open(sys.argv[3]))
rows = list(csv.DictReader(open(sys.argv[4])))
es = table["spec"]["early_stop"]
r, eta, R = es["min_epochs"], es["reduction_factor"], es["max_epochs"]
rungs = []
e = r
while e < R:
    rungs.append(e); e *= eta
trials = db.execute("SELECT t.trial, t.job, j.state, j.reason FROM sweep_trials t JOIN jobs j "
                    "ON j.id = t.job WHERE t.sweep = ? ORDER BY t.trial", (sw,)).fetchall()
test = {}
for job, ep, elbo in db.execute("SELECT job, epoch, elbo FROM epochs WHERE split = 'test'"):
    test[(job, ep)] = elbo
bad, out = [], []
seen = {k: [] for k in rungs}          # values at each rung of the trials before this one
for trial, job, state, reason in trials:
    eps = sorted(ep for (j, ep) in test if j == job)
    last = eps[-1] if eps else 0
    if eps != list(range(1, last + 1)):
        bad.append("trial %d: test epochs %s" % (trial, eps))
    steps = db.execute("SELECT count(*), max(step) FROM metrics WHERE job = ?", (job,)).fetchone()
    stop_at = None
    for k, e in enumerate(rungs):
        if (job, e) not in test:
            break
        v = test[(job, e)]
        vals = sorted(seen[e] + [v], reverse=True)
        keep_n = max(1, len(vals) // eta)
        keep = v >= vals[keep_n - 1]
        seen[e].append(v)
        if not keep:
            stop_at = (k, e, keep_n, len(vals))
            break
    row = next(x for x in table["trials"] if x["trial"] == trial)
    crow = next(x for x in rows if int(x["trial"]) == trial)
    if stop_at:
        k, e, keep_n, n = stop_at
        want = "asha: rung %d (epoch %d): elbo " % (k, e)
        m = re.match(r"asha: rung (\d+) \(epoch (\d+)\): elbo (\S+) is number (\d+), not in the top (\d+) of (\d+)$", reason or "")
        if state != "cancelled" or last != e or not m or int(m.group(5)) != keep_n or int(m.group(6)) != n \
                or abs(float(m.group(3)) - test[(job, e)]) > 1e-5 * max(1, abs(test[(job, e)])):
            bad.append("trial %d: should stop at rung %d (epoch %d, top %d of %d): state %s, last epoch %d, reason %r"
                       % (trial, k, e, keep_n, n, state, last, reason))
        if row["reason"] != reason or crow["reason"] != reason or row["epoch"] != last or int(crow["epoch"]) != last:
            bad.append("trial %d: table reason/epoch %r/%r, csv %r/%r, job %r/%d"
                       % (trial, row["reason"], row["epoch"], crow["reason"], crow["epoch"], reason, last))
        spe = steps[1] + 1 if steps[1] is not None else 0
        if steps[0] != steps[1] + 1 or steps[0] == 0:
            bad.append("trial %d: metrics rows %d, max step %s: not every step kept" % (trial, steps[0], steps[1]))
    else:
        if state != "completed" or last != R or reason:
            bad.append("trial %d: no rung stops it, yet state %s, last epoch %d, reason %r"
                       % (trial, state, last, reason))
    out.append("%d:%s:%d" % (trial, state, last))
for b in bad:
    print("FAIL " + b)
print(" ".join(out))
PY
}

# ---- (b) a sweep with ASHA -------------------------------------------------------------
sweep_post "{\"name\": \"asha\", \"base\": $BASE, \"space\": $SPACE, \"concurrency\": 1, \"early_stop\": $ES}"
expect_status 201
A=$SW
check "the stored request has early_stop with its defaults: $BODY" \
    jqt '.spec.early_stop == {"method": "asha", "min_epochs": 1, "reduction_factor": 2, "max_epochs": 6}'
sweep_done "$A" 120 && ok || fail "asha sweep did not finish"
RES=$(asha_check "$A")
verdict "(b) every decision matches the rule on the stored rows" "$RES"
AOUT=$(printf '%s\n' "$RES" | grep -v '^FAIL')
echo "sweeps_asha: trial:state:last epoch: $AOUT"
check "(b) at least one trial trained all 6 epochs ($AOUT)" sh -c "printf '%s' '$AOUT' | grep -q ':completed:6'"
check "(b) the slow learners (trials 4-7) stopped at the first rung ($AOUT)" \
    sh -c "printf '%s' '$AOUT' | grep -q '4:cancelled:1 5:cancelled:1 6:cancelled:1 7:cancelled:1'"
sj=$(jq -r '.trials[] | select(.trial == 5) | .job' "$T/sweep$A.json")
api GET "/v1/jobs/$sj"
check "(b) GET /v1/jobs/$sj says why it stopped: $(jqb .reason)" jqt '.state == "cancelled" and (.reason | startswith("asha: rung 0 (epoch 1): elbo "))'

# ---- (c) the same sweep, SIGKILL in the middle -----------------------------------------
sweep_post "{\"name\": \"asha\", \"base\": $BASE, \"space\": $SPACE, \"concurrency\": 1, \"early_stop\": $ES}"
expect_status 201
K=$SW
KJOB=$(jqb '.trials[2].job')
# (a busy shell may first look after trial 2 is done: the kill's landing is what counts)
wait_stepping "$KJOB" 60 >/dev/null 2>&1 || true
sleep_ms "$(rand_below 300)"
kill_daemon
left=$(sweep_left "$K")
check "(c) the kill landed mid-sweep ($left trials unfinished)" [ "$left" -gt 0 ]
start_daemon --workers 2 --threads 1
sweep_done "$K" 120 && ok || fail "asha sweep did not finish after the restart"
RES=$(asha_check "$K")
verdict "(c) after SIGKILL every decision matches the rule on the stored rows" "$RES"
KOUT=$(printf '%s\n' "$RES" | grep -v '^FAIL')
check "(c) the same outcomes as without the kill ($KOUT vs $AOUT)" [ "$KOUT" = "$AOUT" ]
per=$(count "SELECT group_concat(n) FROM (SELECT count(*) n FROM sweep_trials WHERE sweep = $K GROUP BY trial ORDER BY trial)")
check "(c) one job per trial ($per)" [ "$per" = "1,1,1,1,1,1,1,1" ]
ev=$(count "SELECT group_concat(n) FROM (SELECT count(*) n FROM schedule_events e JOIN sweep_trials t ON t.job = e.job
    WHERE t.sweep = $K AND e.source = 'submit' GROUP BY t.trial ORDER BY t.trial)")
check "(c) one submit event per trial ($ev)" [ "$ev" = "1,1,1,1,1,1,1,1" ]
dup=$(count "SELECT count(*) FROM (SELECT e.job, e.epoch, e.split FROM epochs e JOIN sweep_trials t ON t.job = e.job
    WHERE t.sweep = $K GROUP BY 1, 2, 3 HAVING count(*) > 1)")
check "(c) every epoch row once ($dup duplicated)" [ "$dup" = 0 ]
same=$(count "SELECT count(*) FROM sweep_trials a JOIN sweep_trials b ON a.trial = b.trial
    JOIN epochs x ON x.job = a.job AND x.split = 'test' JOIN epochs y ON y.job = b.job AND y.split = 'test'
    AND y.epoch = x.epoch WHERE a.sweep = $A AND b.sweep = $K AND x.elbo != y.elbo")
check "(c) the test rows equal (b)'s to the bit ($same differ)" [ "$same" = 0 ]
integrity_ok "after the kill"

# ---- (d) a 12-trial random sweep, SIGKILL in the middle --------------------------------
# (not under TSan: it runs no thread path that (b) and (c) do not, and the pass is the
# slowest of CI's; hacking.md "CI time")
if [ "${SANITIZER:-}" = thread ]; then
    integrity_ok "at the end"
    term_daemon 30
    finish
    exit
fi
RSPACE='{"optimizer.lr": {"min": 0.00001, "max": 0.003, "log": true}, "train.seed": {"min": 1, "max": 1000, "int": true}}'
sweep_post "{\"name\": \"asha-random\", \"base\": $BASE, \"space\": $RSPACE, \"method\": \"random\", \"seed\": 7, \"max_trials\": 12, \"concurrency\": 1, \"early_stop\": $ES}"
expect_status 201
R=$SW
check "(d) 12 random trials ($(jqb '.n_trials // .trials | length'))" jqt '(.trials | length) == 12'
i=0 # the kill: once 4 trials have finished, at a random moment of the next ones
while [ $i -lt $((600 * SLOW)) ]; do
    api GET "/v1/sweeps/$R"
    [ "$(jqb '(.counts.completed // 0) + (.counts.cancelled // 0)')" -ge 4 ] && break
    i=$((i + 1)); sleep 0.1
done
sleep_ms "$(rand_below 300)"
kill_daemon
left=$(sweep_left "$R")
check "(d) the kill landed mid-sweep ($left trials unfinished)" [ "$left" -gt 0 ]
start_daemon --workers 2 --threads 1
sweep_done "$R" 240 && ok || fail "random asha sweep did not finish after the restart"
RES=$(asha_check "$R")
verdict "(d) every decision of the random sweep matches the rule" "$RES"
ROUT=$(printf '%s\n' "$RES" | grep -v '^FAIL')
echo "sweeps_asha: random sweep trial:state:last epoch: $ROUT"
check "(d) at least one trial trained all 6 epochs ($ROUT)" sh -c "printf '%s' '$ROUT' | grep -q ':completed:6'"
per=$(count "SELECT count(*) || ' ' || count(DISTINCT job) FROM sweep_trials WHERE sweep = $R")
check "(d) 12 trials, 12 jobs ($per)" [ "$per" = "12 12" ]
integrity_ok "after the random sweep's kill"
term_daemon 30
finish
