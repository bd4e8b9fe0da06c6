# kernels.sh — a job records the kernels its latest steps ran on (the OpenBLAS core,
# the multiply libraries, the build's vector set: vae_kernels_id), and a node with
# other kernels does not resume it unless told to (--accept-other-cores 1), for its
# steps would then continue correctly but not bit for bit. Another OpenBLAS core is
# OPENBLAS_CORETYPE (Nehalem: SSE only, runs on every x86-64 host vaed supports).
#   (a) a running job's object names its kernels, with this process's OpenBLAS core;
#   (b) stopped mid-run and restarted on another core: the job stays queued and says
#       what it waits for (waiting_for_kernels: both strings), the log says why; a
#       job submitted meanwhile is not blocked by it: it runs and completes there,
#       recording the other core;
#   (c) back on the first core: the waiting job resumes and completes bit-identical
#       to `vaed train` (waiting kept its reproducibility);
#   (d) stopped mid-run again and restarted on the other core with
#       --accept-other-cores 1: it completes there, the log says it continues
#       correctly but not bit for bit, and its kernels are now the other core's.
. tests/e2e/daemon_lib.sh
not_under_tsan "its threads (a daemon restarted, a job resumed or left waiting) are daemon_recovery.sh's and daemon_queue.sh's"
e2e_init

SPEC=$(tiny_spec cores 3 '{"dataset": {"limit": 20000}, "train": {"batch_size": 200},
    "model": {"encoder": [256], "decoder": [256]}}')
SMALL=$(tiny_spec small 1)
train_ref cores "$SPEC"

kernels_of() { api GET "/v1/jobs/$1"; jqb '.kernels // ""'; }
has_core() { printf '%s' "$1" | grep -q "^OpenBLAS core $2;"; }   # KERNELS CORE
# this environment's own core setting (unset, or what the host's environment says)
ORIG_SET=${OPENBLAS_CORETYPE+1}
ORIG=${OPENBLAS_CORETYPE:-}
first_core() { if [ -n "$ORIG_SET" ]; then export OPENBLAS_CORETYPE="$ORIG"; else unset OPENBLAS_CORETYPE; fi; }

# ---- (a) ---------------------------------------------------------------------------------
start_daemon --threads 1
submit "$SPEC"; J=$JOB
wait_step "$J" 20 60 && ok || fail "job $J not stepping"
K1=$(kernels_of "$J")
CORE1=$(printf '%s' "$K1" | sed -n 's/^OpenBLAS core \([A-Za-z0-9]*\);.*/\1/p')
echo "job $J runs on: $K1"
check "the running job names its kernels, with an OpenBLAS core ($K1)" [ -n "$CORE1" ]
OTHER=Nehalem
[ "$CORE1" != Nehalem ] || OTHER=Sandybridge

# ---- (b) ---------------------------------------------------------------------------------
term_daemon 10
STOP=$(sqlite3 "$DB" "SELECT step FROM jobs WHERE id = $J")
check "stopped mid-run (step $STOP of 300)" [ "$STOP" -gt 0 ] && [ "$STOP" -lt 300 ]
export OPENBLAS_CORETYPE=$OTHER
start_daemon --threads 1
submit "$SMALL"; S=$JOB
wait_state "$S" completed 120 && ok || fail "job $S did not complete beside the waiting one"
api GET "/v1/jobs/$J"
echo "job $J on a $OTHER node: $(jqb -c '{state, step, waiting_for_kernels}')"
check "the job stays queued on a node with other kernels (state $(jqb .state))" \
    [ "$(jqb .state)" = queued ]
check "it says what it waits for: its kernels and this node's" \
    jqb -e --arg k "$K1" --arg c "$OTHER" '.waiting_for_kernels.job == $k and
        (.waiting_for_kernels.node | startswith("OpenBLAS core " + $c + ";")) and
        (.waiting_for_kernels.hint | test("accept-other-cores"))'

check "it did not step here (step $(jqb .step), stopped at $STOP)" [ "$(jqb .step)" = "$STOP" ]
check "the log says why" grep -q "job $J last ran on other kernels .*it waits for a node" "$T/daemon.log"
KS=$(kernels_of "$S")
check "the job that ran here records this node's core ($KS)" has_core "$KS" "$OTHER"
stop_daemon

# ---- (c) ---------------------------------------------------------------------------------
first_core
start_daemon --threads 1
wait_state "$J" completed 120 && ok || fail "job $J did not complete back on its kernels"
check "resumed from step $STOP" grep -q "job $J resumes from its checkpoint at step $STOP\$" "$T/daemon.log"
same_as_ref "$J" cores "waited for its kernels, then resumed"

# ---- (d) ---------------------------------------------------------------------------------
submit "$SPEC"; J2=$JOB
wait_step "$J2" 20 60 && ok || fail "job $J2 not stepping"
term_daemon 10
STOP2=$(sqlite3 "$DB" "SELECT step FROM jobs WHERE id = $J2")
check "stopped mid-run (step $STOP2 of 300)" [ "$STOP2" -gt 0 ] && [ "$STOP2" -lt 300 ]
export OPENBLAS_CORETYPE=$OTHER
start_daemon --threads 1 --accept-other-cores 1
wait_state "$J2" completed 120 && ok || fail "job $J2 did not complete with --accept-other-cores 1"
check "the log says it continues correctly, not bit for bit" \
    grep -q "job $J2 last ran on other kernels .*not bit for bit" "$T/daemon.log"
K2=$(kernels_of "$J2")
check "its kernels are now this node's ($K2)" has_core "$K2" "$OTHER"
get_metrics "$J2" "$T/j2.json"
check "every step stored once (300 rows)" [ "$(jq '.step | length' "$T/j2.json")" = 300 ]
stop_daemon
if BAD=$("$VAED" serve --accept-other-cores 2 --db "$T/x.db" 2>&1); then
    fail "--accept-other-cores 2 accepted"
else
    check "--accept-other-cores takes 0 or 1: $BAD" sh -c 'printf "%s" "$1" | grep -q accept-other-cores' _ "$BAD"
fi
finish
