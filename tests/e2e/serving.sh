# serving.sh — a trained model behind the REST routes (api/serving.h), against an
# independent NumPy implementation of the same model read from the job's safetensors
# export (tests/e2e/model_numpy.py): encode (with posterior draws), decode,
# reconstruct, sample (with a temperature), interpolate, .npy in and out, for a
# bernoulli model with two latent groups and a gaussian one; bad requests refused with
# the field named; and `vaed eval`'s bound on the same checkpoint against NumPy's own
# importance-weighted bound with its own draws (they agree within their errors).
. tests/e2e/lib.sh
. tests/e2e/daemon_lib.sh
e2e_init
PY=/usr/bin/python3 # Debian's, which has python3-numpy (scripts/deps.sh)
start_daemon --max-body 4
FM=${VAED_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

train() { # name, extra: a finished tiny job, its id in $JOB, its files in $T/$name.*
    submit "$(tiny_spec "$1" 1 "$2")" || return 1
    wait_state "$JOB" completed 120 || { fail "$1 did not complete"; return 1; }
    api GET "/v1/jobs/$JOB/checkpoints"
    STEP=$(jqb '[.checkpoints[].step] | max')
    curl -sS -o "$T/$1.safetensors" "$URL/v1/jobs/$JOB/checkpoints/$STEP?format=safetensors"
    curl -sS -o "$T/$1.ckpt" "$URL/v1/jobs/$JOB/checkpoints/$STEP"
    jq -n --argjson s "$(tiny_spec "$1" 1 "$2")" '$s' >"$T/$1.spec.json"
}

post() { # dir, route, body: the request and its reply saved for the oracle
    printf '%s' "$3" >"$1/$2.req.json"
    api POST "/v1/jobs/$JOB/$2" "$3"
    [ "$STATUS" = 200 ] || fail "$2: HTTP $STATUS: $BODY"
    printf '%s' "$BODY" >"$1/$2.json"
}

# five test images as JSON rows, and the same as .npy (written by NumPy)
$PY - "$FM/t10k-images-idx3-ubyte.gz" "$T/rows.json" "$T/rows.npy" <<'EOF'
import gzip, json, sys, numpy as np
b = gzip.open(sys.argv[1]).read()
x = np.frombuffer(b[16:16 + 5 * 784], dtype=np.uint8).reshape(5, 784) / 255.0
json.dump(x.tolist(), open(sys.argv[2], "w"))
np.save(sys.argv[3], x.astype(np.float32))
EOF
ROWS=$(cat "$T/rows.json")

for kind in bern gauss; do
    case $kind in
    bern) extra='{"model": {"latent": [3, 2], "activation": "relu"}}' ;;
    gauss) extra='{"model": {"likelihood": "gaussian", "sigma": 0.5, "activation": "tanh"}}' ;;
    esac
    train "$kind" "$extra" || continue
    D="$T/$kind"; mkdir -p "$D"
    api POST "/v1/jobs/$JOB/encode" "{\"rows\": $ROWS}"
    L=$(jqb '.mu[0] | length')
    post "$D" encode "{\"rows\": $ROWS, \"n\": 3, \"seed\": 4}"
    check "$kind encode: 3 draws for each of 5 rows" jqt '(.z | length) == 15 and .checkpoint == '"$STEP"
    post "$D" decode "{\"z\": $(jq -c '.mu' "$D/encode.json")}"
    post "$D" reconstruct "{\"rows\": $ROWS, \"checkpoint\": \"final\"}"
    post "$D" sample '{"n": 500, "seed": 1, "temperature": 0.5}'
    post "$D" interpolate "{\"rows\": $(jq -c '.[0:2]' "$T/rows.json"), \"steps\": 7}"
    check "$kind interpolate: 7 points" jqt '(.params | length) == 7'
    curl -sS -o "$D/encode_npy.npy" -H 'Content-Type: application/x-npy' -H 'Accept: application/x-npy' \
        --data-binary "@$T/rows.npy" "$URL/v1/jobs/$JOB/encode"
    cp "$T/rows.npy" "$D/rows.npy"
    if $PY tests/e2e/model_numpy.py serve "$T/$kind.safetensors" "$D"; then ok; else fail "$kind: the routes disagree with NumPy"; fi
    # the same request twice (the model now comes from the cache): the same answer
    api POST "/v1/jobs/$JOB/sample" '{"n": 500, "seed": 1, "temperature": 0.5}'
    check "$kind sample: the same seed gives the same reply" [ "$BODY" = "$(cat "$D/sample.json")" ]
done

# a 1,000-row batch (3 MiB as .npy) fits under --max-body 4; 5 MiB does not (413)
$PY -c 'import numpy as np; np.save("'"$T"'/k.npy", np.random.default_rng(1).random((1000, 784), dtype=np.float32))'
$PY -c 'import numpy as np; np.save("'"$T"'/big.npy", np.zeros((1700, 784), dtype=np.float32))'
code=$(curl -sS -o "$T/k.out" -w '%{http_code}' -H 'Content-Type: application/x-npy' -H 'Accept: application/x-npy' \
    --data-binary "@$T/k.npy" "$URL/v1/jobs/$JOB/encode")
check "a 1,000-row .npy encode under --max-body 4: 200, 1,000 rows back" \
    sh -c "[ $code = 200 ] && $PY -c 'import numpy as np, sys; sys.exit(0 if np.load(\"$T/k.out\").shape[0] == 1000 else 1)'"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/x-npy' \
    --data-binary "@$T/big.npy" "$URL/v1/jobs/$JOB/encode")
check "a body over --max-body is 413 ($code)" [ "$code" = 413 ]

# bad requests: 4xx naming the field
api POST "/v1/jobs/$JOB/encode" '{"rows": [[0.5, 0.5]]}'
expect_status 422
check "a row of the wrong width names rows and the width expected" jqt '.error.field == "rows" and (.error.message | test("784"))'
api POST "/v1/jobs/$JOB/decode" '{"z": [[1, 2, 3, 4, 5, 6, 7, 8, 9]]}'
check "a latent of the wrong width names z" jqt '.error.field == "z"'
api POST "/v1/jobs/$JOB/sample" '{"n": 3, "temperature": 0}'
check "temperature 0 is refused naming it" jqt '.error.field == "temperature"'
api POST "/v1/jobs/$JOB/sample" '{"n": 3, "colour": 1}'
check "an unknown field is refused naming it" jqt '.error.field == "colour"'
api POST "/v1/jobs/$JOB/interpolate" "{\"rows\": $ROWS}"
check "interpolate needs exactly two rows" jqt '.error.field == "rows"'
api POST "/v1/jobs/$JOB/encode" "{\"rows\": [[$(printf '1,%.0s' $(seq 783))1e400]]}"
check "a number JSON cannot hold is refused (4xx)" [ "${STATUS%??}" = 4 ]
api POST "/v1/jobs/$JOB/sample" '{"n": 3, "checkpoint": 999999}'
expect_status 404
api POST "/v1/jobs/999999/sample" '{"n": 3}'
expect_status 404
api POST "/v1/jobs/$JOB/sample" '{"n": 3, "checkpoint": "best"}'
check "checkpoint \"best\" before any evaluation has completed: 409 naming checkpoint" \
    jqt '.error.field == "checkpoint"' && expect_status 409

# vaed eval on the bernoulli (two latent groups) and gaussian checkpoints against NumPy's
# bound with its own draws (the categorical one: serving_text.sh)
for kind in bern gauss; do
    "$VAED" eval "$T/$kind.spec.json" "$T/$kind.ckpt" --k 64 --rows 300 --quiet >"$T/eval.json" 2>"$T/eval.err" ||
        fail "vaed eval $kind: $(cat "$T/eval.err")"
    $PY tests/e2e/model_numpy.py iwae "$T/$kind.safetensors" "$FM/t10k-images-idx3-ubyte.gz" 300 64 7 >"$T/np.json" ||
        fail "NumPy iwae $kind"
    # over the same rows only the draws differ: vaed's one estimate has NumPy's noise mc_sd
    # (measured over 16 sets of draws), NumPy's mean of 16 a quarter of it
    check "$kind: vaed eval's bound ($(jq .bound "$T/eval.json")) agrees with NumPy's ($(jq -c . "$T/np.json"))" \
        jq -en --slurpfile a "$T/eval.json" --slurpfile b "$T/np.json" \
        '(($a[0].bound - $b[0].bound) | fabs) < 5 * $b[0].mc_sd * 1.031 + 1e-6'
done
stop_daemon
finish
