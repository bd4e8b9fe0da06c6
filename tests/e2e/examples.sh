# examples.sh — every spec shipped in examples/ trains: each one is run for a single
# epoch on a small slice of its data (so a broken example fails here, not in front of a
# user), and the README's quick-start job runs to the end.
. tests/e2e/lib.sh
e2e_init
for f in examples/*.json; do
    n=$(basename "$f" .json)
    # one epoch on at most 500 rows, keeping everything else as shipped
    jq '.train.epochs = 1 | .dataset.limit = 500 |
        if .dataset.path then .dataset.validation_fraction = (.dataset.validation_fraction // 0) else . end' \
        "$f" >"$T/$n.json"
    if "$VAED" train "$T/$n.json" --quiet >"$T/$n.out" 2>"$T/$n.err"; then ok; else fail "$f: $(cat "$T/$n.err")"; fi
done
if "$VAED" train examples/quick.json --quiet >"$T/quick.out" 2>"$T/quick.err"; then ok; else fail "quick.json: $(cat "$T/quick.err")"; fi
check "quick.json reports test figures" jq -e '.test.elbo < 0' "$T/quick.out"
finish
