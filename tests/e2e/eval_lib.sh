# eval_lib.sh — evaluations in end-to-end tests (evaluations.sh, cluster_evals_pg.sh), on
# top of lib.sh: JOB is the job the evaluations belong to, URL the daemon (or node)
# asked.

# cli NAME CKPT ARGS...: `vaed eval` of $T/spec.json at $T/CKPT.ckpt, its result in
# $T/NAME.json
cli() {
    n=$1; c=$2; shift 2
    "$VAED" eval "$T/spec.json" "$T/$c.ckpt" --quiet "$@" >"$T/$n.json" 2>"$T/$n.err" ||
        fail "vaed eval $*: $(cat "$T/$n.err")"
}

# wait_eval EID STATE [SECONDS]: poll until the evaluation is in STATE (BODY is it); a
# finished evaluation in another state, or the time running out, returns 1
wait_eval() {
    we_t0=$(date +%s)
    while :; do
        api GET "/v1/jobs/$JOB/evaluations/$1"
        [ "$(jqb .state)" = "$2" ] && return 0
        case $(jqb .state) in completed|failed|cancelled)
            echo "evaluation $1 is $(jqb .state) ($(jqb .reason)), wanted $2" >&2; return 1 ;; esac
        [ $(($(date +%s) - we_t0)) -ge "${3:-300}" ] && { echo "evaluation $1: $BODY" >&2; return 1; }
        sleep 0.1
    done
}

# same NAME: the completed evaluation in BODY has NAME.json's numbers (`vaed eval`'s
# output, or another evaluation's result), every bit
same() {
    printf '%s' "$BODY" >"$T/got.json"
    jq -en --slurpfile a "$T/got.json" --slurpfile b "$T/$1.json" '
        [$a[0].result | .bound, .bound_se, .elbo, .elbo_se, .kl, .mi, .active_units, .rows, .k] ==
        [$b[0] | .bound, .bound_se, .elbo, .elbo_se, .kl, .mi, .active_units, .rows, .k]' >/dev/null
}
