# schedule_preview.sh — the schedule routes (api/schedules.c), against this test's own
# formulas (a Python oracle written from docs/schedules.md, not from vae/sched.c):
#   - POST /v1/schedules/preview gives, for every kind but the controller, the beta the
#     oracle gives at every step (1e-12 relative), the capacity C(t) beside it, relative
#     forms ("origin": "now", "from": "current") resolved at the effective step and
#     beta given, and for a running job at its own step and beta;
#   - GET /v1/schedules/kinds lists the seven kinds with their defaults, and
#     GET /v1/metrics/fields the metric fields' table;
#   - bad bodies are 4xx naming the field.
. tests/e2e/lib.sh
. tests/e2e/daemon_lib.sh
e2e_init
start_daemon

oracle() { # BODY REPLY: every step's beta (and capacity) against the oracle
    python3 - "$1" "$2" <<'PY'
import json, math, sys
q, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
s, spe = r["schedule"], q["steps_per_epoch"]
def sig(x): return 1 / (1 + math.exp(-x))
def shape(name, u):
    if name == "cosine": return (1 - math.cos(math.pi * u)) / 2
    if name == "sigmoid": return (sig(12 * (u - 0.5)) - sig(-6)) / (sig(6) - sig(-6))
    return u
def beta(step):
    if s.get("granularity") == "epoch": step = (step // spe) * spe
    t = (step if s.get("unit") == "steps" else step / spe) - s.get("start", 0)
    k = s["kind"]
    if k == "constant": return s["value"], 0
    if k == "linear": return s["from"] + (s["to"] - s["from"]) * min(max(t / s["duration"], 0), 1), 0
    if k == "logistic": return s["from"] + (s["to"] - s["from"]) * sig(s["k"] * (max(t, 0) - s["midpoint"])), 0
    if k == "piecewise":
        p = s["points"]
        if t <= p[0][0]: return p[0][1], 0
        for (a, b), (c, d) in zip(p, p[1:]):
            if t <= c: return b + (d - b) * (t - a) / (c - a), 0
        return p[-1][1], 0
    if k == "cyclical":
        P = s["period"] if s.get("period") else s["duration"] / s["cycles"]
        if s.get("cycles") and t >= s["duration"]: return s["to"], 0
        tau = (max(t, 0) % P) / P
        if tau < s["ratio"]: return s["from"] + (s["to"] - s["from"]) * shape(s.get("shape", "linear"), tau / s["ratio"]), 0
        return s["to"], 0
    if k == "capacity": return s["gamma"], s["c_max"] * min(max(t / s["duration"], 0), 1)
    raise SystemExit("no oracle for " + k)
bad = []
for i, st in enumerate(r["step"]):
    b, c = beta(st)
    if abs(r["beta"][i] - b) > 1e-12 * max(1, abs(b)):
        bad.append("step %d: beta %.17g, oracle %.17g" % (st, r["beta"][i], b))
    if "capacity" in r and abs(r["capacity"][i] - c) > 1e-12 * max(1, abs(c)):
        bad.append("step %d: capacity %.17g, oracle %.17g" % (st, r["capacity"][i], c))
if bad: print("\n".join(bad[:5])); sys.exit(1)
PY
}

preview() { # schedule JSON, then extra fields: checks the reply against the oracle
    body=$(jq -cn --argjson s "$1" --argjson x "${2:-{\}}" '{schedule: $s, steps_per_epoch: 7, total_steps: 300, max_points: 300} * $x')
    api POST /v1/schedules/preview "$body"
    if [ "$STATUS" != 200 ]; then fail "preview $1: HTTP $STATUS: $BODY"; return; fi
    if out=$(oracle "$body" "$BODY"); then ok; else fail "preview $1: $out"; fi
}
preview '{"kind": "constant", "value": 0.3}'
preview '{"kind": "linear", "from": 0, "to": 1, "duration": 10, "granularity": "epoch"}'
preview '{"kind": "linear", "from": 0.2, "to": 0.8, "duration": 50, "unit": "steps", "start": 20}'
preview '{"kind": "logistic", "k": 1.5, "midpoint": 4}'
preview '{"kind": "piecewise", "points": [[0, 0], [5, 0.2], [10, 1], [30, 0.5]]}'
preview '{"kind": "cyclical", "cycles": 4, "duration": 40, "ratio": 0.5, "shape": "cosine"}'
preview '{"kind": "cyclical", "period": 9, "ratio": 0.3, "shape": "sigmoid"}'
preview '{"kind": "capacity", "gamma": 500, "c_max": 20, "duration": 30}'
check "capacity: the reply carries C(t) beside gamma" jqt '(.capacity | length) == (.beta | length)'
# relative forms, resolved at the effective step and beta given
preview '{"kind": "linear", "from": "current", "to": 1, "duration": 5, "origin": "now"}' '{"effective_step": 70, "beta_now": 0.25}'
check "from current, origin now: starts at step 70 from beta 0.25" \
    jqt '.effective_step == 70 and .step[0] == 70 and .beta[0] == 0.25 and .schedule.start == 10'
api POST /v1/schedules/preview '{"schedule": {"kind": "controller", "target_kl": 5}, "steps_per_epoch": 10, "total_steps": 100}'
check "controller: a curve, and the KL it assumes is named" jqt '.assumes_kl == 5 and (.beta | length) == 100'

api GET /v1/schedules/kinds
check "kinds: the seven, with defaults" jqt '(.kinds | keys | sort) == ["capacity","constant","controller","cyclical","linear","logistic","piecewise"] and .kinds.linear.duration == 10 and .kinds.constant.value == 1'

api GET /v1/metrics/fields
check "metrics/fields: the step figures' table, in storage order, each with unit and meaning" \
    jqt '[.fields[].name] == ["epoch","beta","loss","xent","kl","elbo","lr","grad_norm","capacity","time"] and all(.fields[]; (.unit | length) > 0 and (.meaning | length) > 0)'

# a running job: its own step and beta
submit "$(tiny_spec prev 2000 '{"schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 400}}')"
wait_step "$JOB" 50 60 && ok || fail "the job did not reach step 50"
api POST /v1/schedules/preview "{\"job\": $JOB, \"schedule\": {\"kind\": \"linear\", \"from\": \"current\", \"to\": 1, \"duration\": 1, \"origin\": \"now\"}, \"max_points\": 50}"
check "job: resolved at its current step, from its current beta (> 0)" \
    jqt '.step[0] == .effective_step and .effective_step >= 50 and .beta[0] > 0 and .beta[0] == .schedule.from and (.step | length) == 50'
api POST "/v1/jobs/$JOB/cancel"

# bad bodies
api POST /v1/schedules/preview '{"steps_per_epoch": 7, "total_steps": 10}'
check "no schedule: 422 naming it" jqt '.error.field == "schedule"'
api POST /v1/schedules/preview '{"schedule": {"kind": "linear", "to": -1}, "steps_per_epoch": 7, "total_steps": 10}'
check "a bad schedule: 422 naming its field" jqt '.error.field == "schedule.to"'
api POST /v1/schedules/preview '{"schedule": {"kind": "constant"}, "steps_per_epoch": 0, "total_steps": 10}'
check "steps_per_epoch 0: 422 naming it" jqt '.error.field == "steps_per_epoch"'
api POST /v1/schedules/preview '{"schedule": {"kind": "constant"}, "steps_per_epoch": 5, "total_steps": 10, "colour": 1}'
check "an unknown field: 422 naming it" jqt '.error.field == "colour"'
api POST /v1/schedules/preview '{"schedule": {"kind": "constant"}, "job": 999999}'
expect_status 404
stop_daemon
finish
