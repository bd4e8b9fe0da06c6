# serving_text.sh — a categorical (text) model behind the serving routes, against the
# independent NumPy model (tests/e2e/model_numpy.py, which reads the vocabulary off the
# word file as docs/model.md defines it): strings in (encode, reconstruct), strings out
# (the most likely symbol per position, up to the padding) beside the category
# probabilities; refusals naming rows for a symbol outside the vocabulary, a string
# longer than the model's max_len, an empty string; and `vaed eval`'s bound of the text
# model against NumPy's own importance-weighted bound.
. tests/e2e/lib.sh
. tests/e2e/daemon_lib.sh
e2e_init
PY=/usr/bin/python3 # Debian's, which has python3-numpy (scripts/deps.sh)
DATA="$T/data"
mkdir -p "$DATA"
# 3,000 lowercase words of 3 to 8 letters from Debian's wamerican, in file order
grep -E '^[a-z]{3,8}$' /usr/share/dict/words | head -n 3000 >"$DATA/words.txt"
check "the word list has 3000 words" [ "$(wc -l <"$DATA/words.txt")" = 3000 ]
start_daemon --data-dir "$DATA"
SPEC=$(jq -cn --arg p "$DATA/words.txt" '{name: "words", dataset: {path: $p, format: "text"},
    model: {encoder: [64], latent: [3, 2], decoder: [64], likelihood: "categorical"},
    train: {epochs: 3, batch_size: 64, seed: 3, threads: 1}}')
printf '%s\n' "$SPEC" >"$T/spec.json"
submit "$SPEC" || { finish; exit 1; }
wait_state "$JOB" completed 180 || fail "the text job did not complete"
api GET "/v1/jobs/$JOB/checkpoints"
STEP=$(jqb '[.checkpoints[].step] | max')
curl -sS -o "$T/text.safetensors" "$URL/v1/jobs/$JOB/checkpoints/$STEP?format=safetensors"
curl -sS -o "$T/text.ckpt" "$URL/v1/jobs/$JOB/checkpoints/$STEP"
D="$T/replies"; mkdir -p "$D"
post() { # route, body: the request and its reply saved for the oracle
    printf '%s' "$2" >"$D/$1.req.json"
    api POST "/v1/jobs/$JOB/$1" "$2"
    [ "$STATUS" = 200 ] || fail "$1: HTTP $STATUS: $BODY"
    printf '%s' "$BODY" >"$D/$1.json"
}
WORDS='["cat", "house", "zebra", "apple", "quiz"]'
post encode "{\"rows\": $WORDS}"
check "encode of 5 strings: 5 posterior means of 5 dimensions, likelihood categorical" \
    jqt '(.mu | length) == 5 and (.mu[0] | length) == 5 and .likelihood == "categorical"'
post decode "{\"z\": $(jq -c '.mu' "$D/encode.json")}"
check "decode: category probabilities summing to 1 per position, and 5 strings" \
    jqt '(.strings | length) == 5 and (.params[0][0:27] | add) > 0.999 and (.params[0][0:27] | add) < 1.001'
post reconstruct "{\"rows\": $WORDS}"
post sample '{"n": 50, "seed": 2}'
check "sample: 50 strings of the vocabulary's letters" \
    jqt '(.strings | length) == 50 and all(.strings[]; test("^[a-z]*$"))'
if $PY tests/e2e/model_numpy.py serve_text "$T/text.safetensors" "$DATA/words.txt" "$D"; then ok; else
    fail "the text model's replies disagree with NumPy"; fi
api POST "/v1/jobs/$JOB/reconstruct" "{\"rows\": $WORDS}"
check "the same request gives the same reply (the model from the cache)" [ "$BODY" = "$(cat "$D/reconstruct.json")" ]

# refusals, naming rows
bad() { # body, what
    api POST "/v1/jobs/$JOB/encode" "$1"
    if [ "$STATUS" = 422 ] && [ "$(jqb .error.field)" = rows ]; then ok; else
        fail "$2: expected 422 naming rows, got $STATUS: $BODY"; fi
}
bad '{"rows": ["Cat"]}' "a symbol outside the vocabulary"
bad '{"rows": ["cat", "abcdefghijk"]}' "a string longer than max_len"
bad '{"rows": [""]}' "an empty string"
bad '{"rows": ["two\nlines"]}' "a string of two lines"
bad '{"rows": ["cat", 5]}' "a number among strings"

# the bound of the text model: vaed eval against NumPy over the first 300 training rows
"$VAED" eval "$T/spec.json" "$T/text.ckpt" --split train --rows 300 --k 64 --quiet >"$T/eval.json" \
    2>"$T/eval.err" || fail "vaed eval: $(cat "$T/eval.err")"
$PY tests/e2e/model_numpy.py iwae_text "$T/text.safetensors" "$DATA/words.txt" 300 64 7 >"$T/np.json" ||
    fail "NumPy iwae_text"
check "the text model's bound ($(jq .bound "$T/eval.json")) agrees with NumPy's ($(jq -c . "$T/np.json"))" \
    jq -en --slurpfile a "$T/eval.json" --slurpfile b "$T/np.json" \
    '(($a[0].bound - $b[0].bound) | fabs) < 5 * $b[0].mc_sd * 1.031 + 1e-6'
stop_daemon
finish
