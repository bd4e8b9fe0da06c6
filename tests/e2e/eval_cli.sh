# eval_cli.sh — `vaed eval`, the importance-weighted bound of a checkpoint, end to end:
# a small model trained by `vaed train --save`, then evaluated on Fashion-MNIST's test
# rows. Checks: at k = 1 the bound is the one-sample ELBO, and its mean over the test
# split agrees with the trainer's own (analytic-KL) test ELBO within its standard error;
# the bound rises with k; the same arguments give the same numbers; a progress line on
# stderr; bad arguments and a checkpoint of another model are refused with a reason.
. tests/e2e/lib.sh
not_under_tsan "\`vaed eval\` on one thread; the daemon's evaluation threads run under TSan in evaluations.sh"
e2e_init
cat >"$T/spec.json" <<'EOF'
{"name": "ev", "dataset": {"name": "fashion-mnist", "limit": 2000},
 "model": {"encoder": [64], "latent": 8, "decoder": [64]},
 "train": {"epochs": 2, "batch_size": 64, "seed": 1, "threads": 1}}
EOF
"$VAED" train "$T/spec.json" --save "$T/ev.ckpt" --quiet >"$T/train.json" 2>"$T/train.err" ||
    fail "train --save: $(cat "$T/train.err")"
check "train --save wrote a checkpoint" [ -s "$T/ev.ckpt" ]

ev() { # name, args...: runs vaed eval, result in $T/name.json, stderr in $T/name.err
    n=$1; shift
    "$VAED" eval "$T/spec.json" "$T/ev.ckpt" "$@" >"$T/$n.json" 2>"$T/$n.err"
}
ev k1 --k 1 || fail "eval k=1: $(cat "$T/k1.err")"
check "k = 1: the bound is the one-sample ELBO" jq -e '.bound == .elbo and .k == 1 and .rows == 10000' "$T/k1.json"
# the trainer's test ELBO uses the analytic KL, the bound at k = 1 a one-sample one:
# equal in expectation, so within a few standard errors of the mean
TE=$(jq .test.elbo "$T/train.json")
check "k = 1 mean ($(jq .bound "$T/k1.json")) agrees with the trainer's test ELBO ($TE)" \
    jq -e --argjson te "$TE" '((.bound - $te) | fabs) < 4 * .bound_se' "$T/k1.json"
check "a progress line on stderr" grep -q 'rows/s' "$T/k1.err"
# the posterior's figures over the whole test split, against the trainer's own
check "analytic KL, per group and in all, and active units equal the trainer's test figures" \
    jq -en --slurpfile e "$T/k1.json" --slurpfile t "$T/train.json" '
        ($e[0].kl - $t[0].test.kl | fabs) < 1e-6 * ($t[0].test.kl | fabs) and
        ($e[0].kl_groups[0] - $t[0].test.kl_groups[0] | fabs) < 1e-6 * ($t[0].test.kl | fabs) and
        $e[0].active_units == $t[0].test.active_units'
check "the mutual information lies in [0, log N]" \
    jq -e '.mi > 0 and .mi < (10000 | log)' "$T/k1.json"

ev k1b --k 1 --quiet || fail "eval k=1 again"
check "the same arguments give the same numbers" \
    [ "$(jq -c '[.bound, .elbo, .bound_se]' "$T/k1.json")" = "$(jq -c '[.bound, .elbo, .bound_se]' "$T/k1b.json")" ]
check "--quiet prints no progress" [ ! -s "$T/k1b.err" ]
ev s1 --k 1 --seed 1 --quiet || fail "eval seed 1"
check "another seed gives other draws" \
    [ "$(jq .bound "$T/k1.json")" != "$(jq .bound "$T/s1.json")" ]

ev r1 --k 1 --rows 500 --quiet && ev r16 --k 16 --rows 500 --quiet && ev r256 --k 256 --rows 500 --quiet ||
    fail "eval k = 1, 16, 256"
B1=$(jq .bound "$T/r1.json"); B16=$(jq .bound "$T/r16.json"); B256=$(jq .bound "$T/r256.json")
check "the bound rises with k: $B1 < $B16 < $B256" \
    jq -en --argjson a "$B1" --argjson b "$B16" --argjson c "$B256" '$a < $b and $b < $c'
check "the k-sample ELBO does not rise with k (it is the same estimator)" \
    jq -en --slurpfile a "$T/r1.json" --slurpfile b "$T/r256.json" \
    '(($a[0].elbo - $b[0].elbo) | fabs) < 4 * $a[0].elbo_se'

ev bad0 --k 0; check "--k 0 is refused naming --k (exit 2)" [ $? -eq 2 ] && check "message names --k" grep -q -- '--k' "$T/bad0.err"
ev badsplit --split valid; check "--split valid is refused" [ $? -eq 2 ]
jq '.model.latent = 4' "$T/spec.json" >"$T/other.json"
if "$VAED" eval "$T/other.json" "$T/ev.ckpt" >/dev/null 2>"$T/other.err"; then
    fail "a checkpoint of another model was evaluated"
else
    check "a checkpoint of another model is refused with a reason" grep -q 'not written by this spec' "$T/other.err"
fi
printf 'not a checkpoint' >"$T/junk.ckpt"
if "$VAED" eval "$T/spec.json" "$T/junk.ckpt" >/dev/null 2>"$T/junk.err"; then
    fail "a junk checkpoint was evaluated"
else
    check "a junk checkpoint is refused naming the problem" grep -q 'checkpoint' "$T/junk.err"
fi
finish
