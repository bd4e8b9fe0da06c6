# safetensors.sh — GET /v1/jobs/{id}/checkpoints/{step}?format=safetensors: a tiny job
# (two encoder layers, two latent groups) trains to completion; for each of its
# checkpoints the native blob and the safetensors file are downloaded and
# tests/e2e/safetensors_read.py parses both independently (struct + json) and checks
# every value of every tensor bit for bit, the shapes the spec implies, and the
# metadata (the spec equal to the job's, step, version, job id). Also: the headers
# (type, file name), format=native is the default, format=bogus is 400 naming format,
# a missing job or step is 404, and `vaectl download --format safetensors` saves the
# same bytes.
. tests/e2e/daemon_lib.sh
e2e_init
start_daemon --threads 1
PY="python3 tests/e2e/safetensors_read.py"

SPEC=$(tiny_spec st 2 '{"model": {"encoder": [32, 16], "latent": [3, 2], "decoder": [24]},
                        "dataset": {"limit": 400}, "checkpoint": {"every_steps": 5}}')
submit "$SPEC" || { finish; exit 1; }
J=$JOB
wait_state "$J" completed 120 && ok || fail "job $J did not complete"

api GET "/v1/jobs/$J"
printf '%s' "$BODY" | jq -c .spec >"$T/spec.json"
api GET /healthz
VERSION=$(jqb .version)

api GET "/v1/jobs/$J/checkpoints"
expect_status 200
STEPS=$(jqb '.checkpoints[].step' | tr '\n' ' ')
check "the job has checkpoints ($STEPS)" [ -n "$STEPS" ]
LAST=""
for S in $STEPS; do
    curl -sS -m 60 -o "$T/n$S.bin" -D "$T/n$S.h" "$URL/v1/jobs/$J/checkpoints/$S"
    curl -sS -m 60 -o "$T/s$S.bin" -D "$T/s$S.h" "$URL/v1/jobs/$J/checkpoints/$S?format=safetensors"
    check "step $S: safetensors is 200" grep -q '^HTTP/1.1 200' "$T/s$S.h"
    if $PY "$T/n$S.bin" "$T/s$S.bin" "$T/spec.json" "$S" 784 \
        "vaed_version=$VERSION" "job_id=$J" "output=logits" >"$T/py$S.out" 2>&1; then
        ok
    else
        fail "step $S: the reader found differences:"; cat "$T/py$S.out" >&2
    fi
    LAST=$S
done
cat "$T/py$LAST.out"

# headers
S=$LAST
check "safetensors Content-Type" grep -qi '^Content-Type: application/octet-stream' "$T/s$S.h"
check "safetensors file name" grep -qi "^Content-Disposition: attachment; filename=\"job-$J-step-$S.safetensors\"" "$T/s$S.h"
check "native file name unchanged" grep -qi "^Content-Disposition: attachment; filename=\"job$J-step$S.vaedckpt\"" "$T/n$S.h"
check "weights only: smaller than the blob with Adam's moments" \
    [ "$(wc -c <"$T/s$S.bin")" -lt "$(wc -c <"$T/n$S.bin")" ]

# format=native is the default
curl -sS -m 60 -o "$T/explicit.bin" "$URL/v1/jobs/$J/checkpoints/$S?format=native"
check "format=native equals the default" cmp -s "$T/explicit.bin" "$T/n$S.bin"

# the reader itself fails loudly on a wrong value (one flipped bit in the last float)
cp "$T/s$S.bin" "$T/bad.bin"
sz=$(wc -c <"$T/bad.bin")
printf '\001' | dd of="$T/bad.bin" bs=1 seek=$((sz - 1)) conv=notrunc 2>/dev/null
check "the reader catches a changed value" sh -c "! $PY '$T/n$S.bin' '$T/bad.bin' '$T/spec.json' $S 784 >/dev/null 2>&1"

# errors
api GET "/v1/jobs/$J/checkpoints/$S?format=bogus"
expect_status 400
check "format=bogus names the field format" jqt '.error.field == "format" and .error.code == "bad_param"'
api GET "/v1/jobs/$J/checkpoints/999999?format=safetensors"
expect_status 404
check "missing step says so" jqt '.error.message | test("no checkpoint at step 999999")'
api GET "/v1/jobs/987654/checkpoints/$S?format=safetensors"
expect_status 404
check "missing job says so" jqt '.error.message | test("no job 987654")'

# vaectl
if VAED_URL=$URL sh scripts/vaectl download "$J" "$S" --format safetensors "$T/v.st" >"$T/vc.out" 2>&1; then
    ok
else
    fail "vaectl download --format safetensors: $(cat "$T/vc.out")"
fi
check "vaectl saves the server's safetensors bytes" cmp -s "$T/v.st" "$T/s$S.bin"
(cd "$T" && VAED_URL=$URL sh "$OLDPWD/scripts/vaectl" download "$J" "$S" --format=safetensors >/dev/null 2>&1)
check "vaectl default name job-$J-step-$S.safetensors" cmp -s "$T/job-$J-step-$S.safetensors" "$T/s$S.bin"
VAED_URL=$URL sh scripts/vaectl download "$J" "$S" --format pickle >"$T/vc.out" 2>&1
check "vaectl refuses --format pickle" [ $? -ne 0 ]

stop_daemon
finish
