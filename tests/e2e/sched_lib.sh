# sched_lib.sh — helpers for the schedule end-to-end tests, on top of daemon_lib.sh.
#   . tests/e2e/sched_lib.sh       (from the repo root; sources daemon_lib.sh and lib.sh)
#   small_spec NAME EPOCHS [JSON]  a tiny Fashion-MNIST spec (2000 rows, 40 steps per
#                                  epoch, schedule constant 0); JSON is deep-merged over
#                                  it, but a schedule in JSON replaces the default whole
#   get_rows ID FILE               GET metrics (beta, loss, xent, kl, lr) into FILE
#   spe_of ID                      prints progress.steps_per_epoch of the job
#   rows_follow FILE SPE SEGS WHAT checks FILE against SEGS (one check), see below
#   put_sched ID JSON              PUT the schedule; sets EFF and RESOLVED (compact JSON)
#   jqf [jq args] EXPR FILE        jq -e on a file, quiet; on failure says so
#
# rows_follow is the independent oracle: SEGS is a JSON array of [effective_step,
# schedule] pairs, schedules absolute as the server resolved them. For every row, the
# schedule in force is the last pair whose effective_step <= the row's step, and the
# row's beta must be exactly (bit for bit) what that schedule's formula — written out
# again here in Python, not taken from the daemon — gives at that step; loss must equal
# xent + beta * kl within 1e-9 relative (the loss the optimiser saw used that beta);
# and the steps must be 0, 1, ..., n-1, each exactly once (ROWS=n, if set, fixes n).
# Variables are kept under the s_ prefix (lib.sh uses short global names).
. tests/e2e/daemon_lib.sh

small_spec() {
    s_extra=${3:-}
    [ -n "$s_extra" ] || s_extra='{}'
    jq -cn --arg name "$1" --argjson epochs "$2" --argjson extra "$s_extra" '
        {name: $name,
         dataset: {name: "fashion-mnist", limit: 2000},
         model: {encoder: [32], latent: 4, decoder: [32]},
         schedule: {kind: "constant", value: 0},
         checkpoint: {every_steps: 25},
         train: {epochs: $epochs, batch_size: 50, seed: 5, threads: 1}}
        * ($extra | del(.schedule)) + ($extra | if has("schedule") then {schedule} else {} end)'
}

get_rows() {
    api GET "/v1/jobs/$1/metrics?fields=beta,loss,xent,kl,lr"
    [ "$STATUS" = 200 ] || { fail "metrics of job $1: HTTP $STATUS: $BODY"; return 1; }
    printf '%s\n' "$BODY" >"$2"
}

spe_of() {
    api GET "/v1/jobs/$1"
    jqb '.progress.steps_per_epoch'
}

jqf() {
    if jq -e "$@" >/dev/null 2>&1; then return 0; fi
    echo "  jq -e is not true: $*" | cut -c 1-400 >&2
    return 1
}

put_sched() {
    api PUT "/v1/jobs/$1/schedule" "$2"
    EFF=$(jqb '.effective_step // empty')
    RESOLVED=$(jqb -c '.schedule // empty')
}

rows_follow() { # FILE SPE SEGS WHAT
    if s_out=$(python3 - "$1" "$2" "$3" "${ROWS:-}" 2>&1 <<'PY'
import json, math, struct, sys

path, spe, segs, nrows = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
d = json.load(open(path))

def sigmoid(x):  # as vae/sched.c writes it, so the rounding is the same
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)

def clamp(x, lo, hi):
    return lo if x < lo else hi if x > hi else x

def beta_of(s, step):
    """README "Schedules", term by term in the order vae/sched.c evaluates it."""
    unit, gran = s.get("unit", "epochs"), s.get("granularity", "step")
    if gran == "epoch":
        ep = step // spe
        prog = float(ep * spe) if unit == "steps" else float(ep)
    else:
        prog = float(step) if unit == "steps" else step / spe
    t = prog - s.get("start", 0.0)
    k = s["kind"]
    if k == "constant":
        return s["value"]
    if k == "linear":
        return s["from"] + (s["to"] - s["from"]) * clamp(t / s["duration"], 0.0, 1.0)
    if k == "logistic":
        t = 0.0 if t < 0 else t
        return max(0.0, s["from"] + (s["to"] - s["from"]) * sigmoid(s["k"] * (t - s["midpoint"])))
    if k == "piecewise":
        p = s["points"]
        if t <= p[0][0]:
            return p[0][1]
        for (t0, b0), (t1, b1) in zip(p, p[1:]):
            if t <= t1:
                return b0 + (b1 - b0) * (t - t0) / (t1 - t0)
        return p[-1][1]
    raise SystemExit("rows_follow: kind %s has no oracle here" % k)

bits = lambda x: struct.pack("<d", float(x))
steps = d["step"]
bad = []
n = int(nrows) if nrows else len(steps)
if steps != list(range(n)):
    dup = len(steps) - len(set(steps))
    bad.append("steps are not 0..%d once each: %d rows, %d duplicates, first %s last %s"
               % (n - 1, len(steps), dup, steps[:3], steps[-3:]))
segs = sorted(segs, key=lambda x: x[0])  # stable: equal steps keep their order
worst = 0.0
for i, st in enumerate(steps):
    sched = None
    for eff, s in segs:
        if eff <= st:
            sched = s
    want = beta_of(sched, st)
    b, loss, xent, kl = d["beta"][i], d["loss"][i], d["xent"][i], d["kl"][i]
    if bits(b) != bits(want):
        bad.append("step %d: beta %.17g, the schedule in force (%s) gives %.17g"
                   % (st, b, sched["kind"], want))
    rel = abs(loss - (xent + b * kl)) / max(1.0, abs(loss))
    worst = max(worst, rel)
    if rel > 1e-9:
        bad.append("step %d: loss %.17g != xent + beta*kl = %.17g (beta %.17g)"
                   % (st, loss, xent + b * kl, b))
if bad:
    print("%d problems over %d rows; first ones:" % (len(bad), len(steps)))
    print("\n".join(bad[:10]))
    sys.exit(1)
print("%d rows ok, worst loss identity error %.3g" % (len(steps), worst))
PY
    ); then
        ok
        echo "  $4: $s_out"
    else
        fail "$4: $s_out"
    fi
}
