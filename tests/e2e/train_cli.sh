# train_cli.sh — `vaed train` as a user runs it: the JSON summary on stdout with every
# documented field, one --metrics line per step, and errors that name the field or file.
. tests/e2e/lib.sh
not_under_tsan "\`vaed train\` on one thread; the trainer's thread pool runs under TSan in test_train"
e2e_init
cat >"$T/spec.json" <<'J'
{"name": "cli", "dataset": {"name": "fashion-mnist", "limit": 600},
 "model": {"encoder": [32], "latent": [3, 2], "decoder": [32]},
 "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 2, "granularity": "epoch"},
 "train": {"epochs": 3, "batch_size": 100, "seed": 9, "threads": 1}}
J
if "$VAED" train "$T/spec.json" --metrics "$T/m.jsonl" >"$T/out.json" 2>"$T/err.txt"; then ok; else fail "vaed train exited non-zero: $(cat "$T/err.txt")"; fi
check "summary has every field" jq -e '(.spec.name == "cli") and .steps == 18 and .epochs == 3 and
    (.wall_s > 0) and (.samples_per_sec > 0) and (.train | has("loss") and has("xent") and has("kl") and has("elbo") and has("beta")) and
    (.test | has("xent") and has("kl") and has("elbo") and has("active_units"))' "$T/out.json"
check "one metrics line per step" [ "$(wc -l <"$T/m.jsonl")" -eq 18 ]
check "steps numbered 0..17" [ "$(jq -s '[.[].step] == [range(0;18)]' "$T/m.jsonl")" = true ]
# epoch granularity: beta 0 in epoch 0, 0.5 in epoch 1, 1 in epoch 2 (linear over 2 epochs)
check "seed warm-up per epoch" [ "$(jq -s '[.[].beta] == ([range(6)|0] + [range(6)|0.5] + [range(6)|1])' "$T/m.jsonl")" = true ]
check "two latent groups reported" [ "$(jq -s 'all(.[]; (.kl_groups|length) == 2)' "$T/m.jsonl")" = true ]
check "progress line per epoch" [ "$(grep -c '^epoch ' "$T/err.txt")" -eq 3 ]
check "spec written back with defaults" jq -e '.spec.optimizer.lr == 0.001 and .spec.loss.kl == "analytic"' "$T/out.json"
# the same spec again: bit-identical metrics (time aside)
"$VAED" train "$T/spec.json" --metrics "$T/m2.jsonl" --quiet >/dev/null 2>&1
check "deterministic rerun" [ "$(jq -c 'del(.time)' "$T/m.jsonl" | md5sum)" = "$(jq -c 'del(.time)' "$T/m2.jsonl" | md5sum)" ]

# An AVX2 OpenBLAS core on an AVX-512 CPU is said, even with --quiet (it costs about a
# third of the speed: docs/benchmarks.md, "The OpenBLAS core"); never on a CPU without
# AVX-512, and never with an AVX-512 core.
avx512=yes
for f in avx512f avx512bw avx512dq avx512vl; do
    grep -m1 '^flags' /proc/cpuinfo | grep -qw "$f" || avx512=no
done
OPENBLAS_CORETYPE=Haswell "$VAED" train "$T/spec.json" --quiet >/dev/null 2>"$T/narrow.err"
if [ $avx512 = yes ]; then
    check "AVX2 core on an AVX-512 CPU is said" grep -q 'OpenBLAS core Haswell (OPENBLAS_CORETYPE=Haswell) has no AVX-512 kernels' "$T/narrow.err"
    OPENBLAS_CORETYPE=SkylakeX "$VAED" train "$T/spec.json" --quiet >/dev/null 2>"$T/wide.err"
    check "an AVX-512 core is not warned about" [ ! -s "$T/wide.err" ]
else
    check "no AVX-512 here: no warning" [ ! -s "$T/narrow.err" ]
fi

# The library of the multiplies (vae/kernels.h): a wrong VAED_GEMM is refused, not
# guessed; the choice is reported; both libraries train the spec to the same loss up to
# rounding (their sums run in other orders, so not bit for bit).
VAED_GEMM=fast "$VAED" train "$T/spec.json" --quiet >/dev/null 2>"$T/gemm.err" && rc=0 || rc=$?
check "a wrong VAED_GEMM is refused" [ "$rc" -eq 2 ]
check "the refusal names VAED_GEMM" grep -q "VAED_GEMM must be auto, openblas or libxsmm, not 'fast'" "$T/gemm.err"
check "--version says the multiplies' library" sh -c "VAED_GEMM=openblas '$VAED' --version | grep -q 'multiplies: OpenBLAS\$'"
check "--version says libxsmm when asked" sh -c "VAED_GEMM=libxsmm '$VAED' --version | grep -q 'multiplies: libxsmm'"
VAED_GEMM=openblas "$VAED" train "$T/spec.json" --quiet >"$T/ob.json" 2>/dev/null
VAED_GEMM=libxsmm "$VAED" train "$T/spec.json" --quiet >"$T/xs.json" 2>/dev/null
check "OpenBLAS and libxsmm agree within 2%" jq -n -e --slurpfile a "$T/ob.json" --slurpfile b "$T/xs.json" \
    '($a[0].train.loss - $b[0].train.loss | fabs) <= 0.02 * ($a[0].train.loss | fabs) and ($a[0].train.loss | isnormal)'
check "the output names each library" sh -c "jq -r .blas '$T/ob.json' | grep -q 'multiplies: OpenBLAS\$' && jq -r .blas '$T/xs.json' | grep -q 'multiplies: libxsmm'"

echo '{"model": {"latent": 0}}' >"$T/bad.json"
"$VAED" train "$T/bad.json" >/dev/null 2>"$T/e1" && fail "bad spec accepted" || ok
check "error names the field" grep -q 'model.latent: must be a positive integer or a list of positive integers' "$T/e1"
echo '{"modle": {}}' >"$T/typo.json"
"$VAED" train "$T/typo.json" >/dev/null 2>"$T/e2" && fail "typo accepted" || ok
check "unknown key is an error" grep -q 'modle' "$T/e2"
printf '{"name": "x",\n "train": {"epochs": }}' >"$T/syntax.json"
"$VAED" train "$T/syntax.json" >/dev/null 2>"$T/e3" && fail "syntax error accepted" || ok
check "syntax error gives line and column" grep -q 'line 2, column' "$T/e3"
"$VAED" train "$T/missing.json" >/dev/null 2>"$T/e4" && fail "missing file accepted" || ok
check "missing file named" grep -q 'missing.json' "$T/e4"
printf '1,2\n3,x\n' >"$T/d.csv"
echo "{\"dataset\": {\"path\": \"$T/d.csv\", \"format\": \"csv\"}, \"model\": {\"likelihood\": \"gaussian\"}}" >"$T/csv.json"
"$VAED" train "$T/csv.json" >/dev/null 2>"$T/e5" && fail "bad csv accepted" || ok
check "bad data names file and line" grep -q "d.csv: line 2: 'x' is not a number" "$T/e5"
finish
