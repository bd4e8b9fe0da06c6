# sweeps_pbt.sh — population-based training of the warm-up schedule (docs/sweeps.md,
# "Population-based training") against the real daemon:
#   (a) bad pbt blocks (and a base without a test split) are refused with 422 naming the
#       field, nothing stored;
#   (b) a 4-member population, constant beta 4, 2, 0.5 and 0.01 (objective: the lowest
#       test KL), boundaries at epochs 2 and 4 of 6, on two workers: every member has a
#       decision at every boundary; each exploit took a donor that kept its state there
#       and ranks above the member, its schedule is the donor's value times one of the
#       factors, and the member's rows show it: beta from the boundary step on is that
#       value, every step's row once; the member of beta 0.01 (the worst) takes a donor
#       at epoch 2;
#   (c) GET /v1/sweeps/{id}/trials/{t}/schedule stitches each member's lineage, and a
#       new job given its "spec" reproduces the member's betas step for step — and,
#       the members sharing their seed and learning rate, its xent and KL to the bit;
#   (d) the same sweep with SIGKILLs at random moments and restarts: the same checks,
#       and every decision carried out exactly once (one decision per boundary, the
#       member's beta at the boundary step is its decision's).
. tests/e2e/daemon_lib.sh
e2e_init
mkdir -p "$T/data"
awk 'BEGIN { srand(5); for (i = 0; i < 200; i++) printf "%.4f,%.4f,%.4f\n", rand(), rand(), rand() }' >"$T/data/notest.csv"
start_daemon --workers 2 --threads 1 --data-dir "$T/data"
command -v python3 >/dev/null || { fail "python3 is needed"; finish; }

BASE=$(tiny_spec pbt 6 '{"schedule": {"kind": "constant", "value": 1}}')
SPACE='{"schedule.value": [4, 2, 0.5, 0.01]}'
PBT='{"interval": 2, "perturb": ["value"], "quantile": 0.25}'
OBJ='{"metric": "kl", "direction": "min"}'
count() { sqlite3 "$DB" "$1" 2>&1; }
sweep_post() { api POST /v1/sweeps "$1"; SW=$(jqb '.id // empty'); }

# ---- (a) refusals ---------------------------------------------------------------------
refuse() { # PBT-JSON FIELD [SPACE] [EXTRA-KEYS]
    sweep_post "{\"base\": $BASE, \"space\": ${3:-$SPACE}, \"objective\": $OBJ, \"pbt\": $1 ${4:-}}"
    check "pbt $1 ${3:-} ${4:-}: 422 naming $2 ($STATUS $BODY)" \
        jqt "\"$STATUS\" == \"422\" and .error.field == \"$2\""
}
refuse '{"interval": 0, "perturb": ["value"]}' pbt.interval
refuse '{"interval": 6, "perturb": ["value"]}' pbt.interval
refuse '{"perturb": ["value"]}' pbt.interval
refuse '{"interval": 2}' pbt.perturb
refuse '{"interval": 2, "perturb": []}' pbt.perturb
refuse '{"interval": 2, "perturb": ["value", "value"]}' 'pbt.perturb[1]'
refuse '{"interval": 2, "perturb": ["duration"]}' 'pbt.perturb[0]'
refuse '{"interval": 2, "perturb": ["value"], "quantile": 0.6}' pbt.quantile
refuse '{"interval": 2, "perturb": ["value"], "factors": [0.8]}' pbt.factors
refuse '{"interval": 2, "perturb": ["value"], "factors": [0, 1.2]}' pbt.factors
refuse '{"interval": 2, "perturb": ["value"], "every": 3}' pbt
refuse "$PBT" space.model.latent '{"model.latent": [2, 4]}'
refuse "$PBT" pbt "$SPACE" ', "early_stop": {"method": "asha", "min_epochs": 1}'
sweep_post "{\"base\": $BASE, \"space\": $SPACE, \"objective\": {\"metric\": \"bound\"}, \"pbt\": $PBT}"
check "pbt with the objective bound: 422 naming objective.metric ($BODY)" \
    jqt '.error.field == "objective.metric"'
api POST /v1/jobs "$(printf '%s' "$BASE" | jq -c '. + {schedule_changes: [{step: 0, schedule: {kind: "constant", value: 2}}]}')"
check "schedule_changes at step 0: 422 naming it ($BODY)" jqt '.error.field == "schedule_changes[0].step"'
api POST /v1/jobs "$(printf '%s' "$BASE" | jq -c '. + {schedule_changes: [{step: 5, schedule: {kind: "constant", value: -2}}]}')"
check "schedule_changes with a bad schedule: 422 naming its field ($BODY)" \
    jqt '.error.field == "schedule_changes[0].schedule.value"'
NOTEST='{"dataset": {"path": "notest.csv", "format": "csv"}, "model": {"likelihood": "gaussian", "encoder": [8], "latent": 2, "decoder": [8]}, "schedule": {"kind": "constant", "value": 1}, "train": {"epochs": 4, "batch_size": 20}}'
sweep_post "{\"base\": $NOTEST, \"space\": $SPACE, \"objective\": $OBJ, \"pbt\": $PBT}"
check "pbt on a base without a test split: 422 naming base.dataset.test_path ($BODY)" \
    jqt '.error.field == "base.dataset.test_path"'
n=$(count "SELECT (SELECT count(*) FROM sweeps) + (SELECT count(*) FROM jobs)")
check "refusals stored nothing ($n rows)" [ "$n" = 0 ]


# pbt_check SWEEP: every decision against the stored rows (an independent reading, in
# python, of what docs/sweeps.md promises); "FAIL ..." lines, then a summary line.
pbt_check() {
    python3 - "$DB" "$1" <<'PY'
import json, sqlite3, sys
db, sw = sqlite3.connect(sys.argv[1]), int(sys.argv[2])
spec = json.loads(db.execute("SELECT spec FROM sweeps WHERE id = ?", (sw,)).fetchone()[0])
p = spec["pbt"]
bad, out = [], []
members = db.execute("SELECT t.trial, t.job, j.state FROM sweep_trials t JOIN jobs j ON j.id = t.job "
                     "WHERE t.sweep = ? ORDER BY t.trial", (sw,)).fetchall()
trial_of = {job: t for t, job, _ in members}
dec = {}
for job, step, epoch, donor, value, sched in db.execute(
        "SELECT job, step, epoch, donor, value, schedule FROM pbt_decisions"):
    dec[(job, step)] = (epoch, donor, value, json.loads(sched) if sched else None)
def sched_at(job, step):
    """the schedule that governed job's step, from its recorded history"""
    rows = db.execute("SELECT effective_step, schedule FROM schedule_events WHERE job = ? AND "
                      "superseded = 0 AND effective_step <= ? ORDER BY effective_step, seq",
                      (job, step)).fetchall()
    return json.loads(rows[-1][1])
for trial, job, state in members:
    if state != "completed":
        bad.append("trial %d: %s" % (trial, state))
    rows = db.execute("SELECT step, beta FROM metrics WHERE job = ? ORDER BY step", (job,)).fetchall()
    n = len(rows)
    if [r[0] for r in rows] != list(range(n)) or n == 0:
        bad.append("trial %d: steps are not 0..%d once each" % (trial, n - 1))
        continue
    spe = n // 6
    taken = []
    for e in range(p["interval"], 6, p["interval"]):
        S = e * spe
        d = dec.get((job, S))
        if not d:
            bad.append("trial %d: no decision at epoch %d (step %d)" % (trial, e, S))
            continue
        epoch, donor, value, sched = d
        kl = db.execute("SELECT kl FROM epochs WHERE job = ? AND epoch = ? AND split = 'test'",
                        (job, e)).fetchone()[0]
        if epoch != e or value != kl:
            bad.append("trial %d: decision at step %d says epoch %d value %r, the test row %r" % (trial, S, epoch, value, kl))
        if donor is None:
            continue
        dd = dec.get((donor, S))
        if donor not in trial_of or not dd or dd[1] is not None:
            bad.append("trial %d: donor job %s at step %d is no member that kept its state" % (trial, donor, S))
            continue
        if not (dd[2] < value or (dd[2] == value and trial_of[donor] < trial)):
            bad.append("trial %d: donor %d's kl %r does not rank above %r" % (trial, trial_of[donor], dd[2], value))
        was = sched_at(donor, S - 1)["value"]
        if sched.get("kind") != "constant" or sched["value"] not in (was * p["factors"][0], was * p["factors"][1]):
            bad.append("trial %d: schedule %r is not the donor's value %r times a factor" % (trial, sched, was))
        if rows[S][1] != sched["value"]:
            bad.append("trial %d: beta at step %d is %r, the decision's %r" % (trial, S, rows[S][1], sched["value"]))
        taken.append("e%d<-t%d" % (e, trial_of[donor]))
    out.append("%d:%s" % (trial, ",".join(taken) or "-"))
for b in bad:
    print("FAIL " + b)
print(" ".join(out))
PY
}

# replay_check SWEEP TRIAL: the stitched schedule's spec as a new job, and its rows
# against the lineage's rows (beta, xent, kl, each step, to the bit)
replay_check() {
    api GET "/v1/sweeps/$1/trials/$2/schedule"
    expect_status 200
    printf '%s' "$BODY" >"$T/stitch$1_$2.json"
    check "trial $2's lineage ends with its own job and covers every step ($(jqb -c .lineage))" \
        jqt '(.lineage | last | .job) == .job and (.lineage | last | .to_step) == .steps and
             (.lineage | first | .from_step) == 0 and
             ([.lineage[] | select(.from_step < .to_step)] | [.[range(1; length)].from_step] ==
              [.[range(0; length - 1)].to_step])'
    api POST /v1/jobs "$(jq -c .spec "$T/stitch$1_$2.json")"
    expect_status 201
    RJ=$(jqb .id)
    wait_state "$RJ" completed 120 && ok || fail "replay job $RJ did not complete"
    r=$(python3 - "$DB" "$T/stitch$1_$2.json" "$RJ" <<'PY'
import json, sqlite3, sys
db, st, rj = sqlite3.connect(sys.argv[1]), json.load(open(sys.argv[2])), int(sys.argv[3])
want = []
for seg in st["lineage"]:
    want += db.execute("SELECT step, beta, xent, kl FROM metrics WHERE job = ? AND step >= ? AND step < ? "
                       "ORDER BY step", (seg["job"], seg["from_step"], seg["to_step"])).fetchall()
got = db.execute("SELECT step, beta, xent, kl FROM metrics WHERE job = ? ORDER BY step", (rj,)).fetchall()
if len(got) != len(want) or [w[0] for w in want] != list(range(len(want))):
    print("FAIL rows: replay %d, lineage %d" % (len(got), len(want)))
else:
    for name, k in (("beta", 1), ("xent", 2), ("kl", 3)):
        diff = [w[0] for w, g in zip(want, got) if w[k] != g[k]]
        if diff:
            print("FAIL %s differs at %d steps, first %d" % (name, len(diff), diff[0]))
    print("ok %d steps, %d changes" % (len(got), len(st["changes"])))
PY
)
    verdict "replay of sweep $1 trial $2 (job $RJ) = the lineage's rows: $r" "$r"
}

# ---- (b) a population ------------------------------------------------------------------
sweep_post "{\"name\": \"pbt\", \"base\": $BASE, \"space\": $SPACE, \"concurrency\": 4, \"objective\": $OBJ, \"pbt\": $PBT}"
expect_status 201
A=$SW
check "the stored request has pbt with its defaults: $BODY" \
    jqt '.spec.pbt == {"interval": 2, "perturb": ["value"], "quantile": 0.25, "factors": [0.8, 1.2]}'
sweep_done "$A" 120 && ok || fail "pbt sweep did not finish"
RES=$(pbt_check "$A")
verdict "(b) every decision agrees with the stored rows" "$RES"
OUT=$(printf '%s\n' "$RES" | grep -v '^FAIL')
echo "sweeps_pbt: trial:exploits: $OUT"
check "(b) the member of beta 0.01 took a donor at epoch 2 ($OUT)" sh -c "printf '%s' '$OUT' | grep -q '3:e2<-t'"
api GET "/v1/sweeps/$A?sort=trial"
check "(b) the table has each trial's decisions, donors by trial (the family tree's edges)" \
    jqt '[.trials[].pbt | length] == [2, 2, 2, 2] and
         ([.trials[3].pbt[] | select(.epoch == 2)][0].donor.trial | type) == "number" and
         ([.trials[].pbt[] | select(.donor == null) | .schedule] | all(. == null))'
api GET "/v1/sweeps/$A/trials/9/schedule"
check "no trial 9: 404 ($STATUS $BODY)" [ "$STATUS" = 404 ]
for t in 0 1 2 3; do replay_check "$A" $t; done

# ---- (d) the same population, SIGKILLs at random moments -------------------------------
# (8000 rows: long enough that the kills land mid-sweep on a fast host; under a sanitizer
# every step is slow enough with the usual 1000. A trial waited for may have finished
# before a busy shell first looks: the kill's landing is what counts. If the whole sweep
# finished before the first kill (a fast host, a long random wait), a new sweep is tried
# with a shorter wait, at most three times: the landing is asserted, never assumed.)
if [ -n "${SANITIZER:-}" ]; then KLIMIT=1000; else KLIMIT=8000; fi
KBASE=$(tiny_spec pbt 6 "{\"schedule\": {\"kind\": \"constant\", \"value\": 1}, \"dataset\": {\"limit\": $KLIMIT}}")
for try in 1 2 3; do
    [ "$try" = 1 ] || start_daemon --workers 2 --threads 1 --data-dir "$T/data"
    sweep_post "{\"name\": \"pbt\", \"base\": $KBASE, \"space\": $SPACE, \"concurrency\": 4, \"objective\": $OBJ, \"pbt\": $PBT}"
    expect_status 201
    K=$SW
    api GET "/v1/sweeps/$K?sort=trial"
    KJ1=$(jqb '.trials[1].job')
    KJ3=$(jqb '.trials[3].job')
    wait_stepping "$KJ1" 60 >/dev/null 2>&1 || true
    sleep_ms "$(rand_below $((800 / (try * try))))"
    kill_daemon
    left=$(sweep_left "$K")
    [ "$left" -gt 0 ] && break
    echo "sweeps_pbt: sweep $K finished before the kill of try $try"
done
check "(d) the kill landed mid-sweep of sweep $K ($left trials unfinished, try $try)" [ "$left" -gt 0 ]
for k in 1 2; do
    start_daemon --workers 2 --threads 1 --data-dir "$T/data"
    wait_stepping "$KJ3" 60 >/dev/null 2>&1 || true
    sleep_ms "$(rand_below 600)"
    kill_daemon
done
start_daemon --workers 2 --threads 1 --data-dir "$T/data"
sweep_done "$K" 120 && ok || fail "pbt sweep did not finish after the kills"
RES=$(pbt_check "$K")
verdict "(d) after SIGKILLs every decision agrees with the stored rows" "$RES"
per=$(count "SELECT group_concat(n) FROM (SELECT count(*) n FROM pbt_decisions d JOIN sweep_trials t ON t.job = d.job
    WHERE t.sweep = $K GROUP BY t.trial ORDER BY t.trial)")
check "(d) two decisions per member, one per boundary ($per)" [ "$per" = "2,2,2,2" ]
dup=$(count "SELECT count(*) FROM (SELECT e.job, e.epoch, e.split FROM epochs e JOIN sweep_trials t ON t.job = e.job
    WHERE t.sweep = $K GROUP BY 1, 2, 3 HAVING count(*) > 1)")
check "(d) every epoch row once ($dup duplicated)" [ "$dup" = 0 ]
replay_check "$K" 3
integrity_ok "after the kills"
term_daemon 30
finish
