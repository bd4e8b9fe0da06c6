#!/bin/sh
# datasets.sh — the dataset registry end to end: register files inside --data-dir
# (outside and ../ → 403), upload npy, csv and text (201 with the shape the test
# computed itself), garbage (422, nothing left) and over --max-upload (413, nothing
# left), list and get, a job naming a dataset by id (same metrics as the same job naming
# the file by path), DELETE refused while a job uses the dataset and done after, an
# unknown dataset.id (422), the registry surviving a restart, and an upload's bytes kept
# in the database (its SHA-256 shown; a lost copy made again from there).
. tests/e2e/lib.sh
e2e_init

DATA="$T/data"
UP="$T/uploads"
mkdir -p "$DATA/sub" "$T/outside"

# ---- test data, with the shapes computed here (the oracle) ----
NROWS=200
NCOLS=16
python3 - "$DATA/x.npy" "$NROWS" "$NCOLS" <<'EOF'
import struct, sys, random
path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
rng = random.Random(7)
with open(path, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
    f.write(struct.pack("<%df" % (n * d), *[rng.random() for _ in range(n * d)]))
EOF
cp "$DATA/x.npy" "$T/outside/x.npy"
CSV_ROWS=50
CSV_COLS=5
i=0
: >"$DATA/t.csv"
while [ $i -lt $CSV_ROWS ]; do
    printf '0.%s,0.5,0.%s5,1,0\n' "$((i % 10))" "$((i % 7))" >>"$DATA/t.csv"
    i=$((i + 1))
done
TEXT_ROWS=300
head -n $TEXT_ROWS /usr/share/dict/words >"$DATA/words.txt"
TEXT_MAXLEN=$(awk '{ if (length($0) > m) m = length($0) } END { print m }' "$DATA/words.txt")
TEXT_VOCAB=$(($(fold -w1 "$DATA/words.txt" | sort -u | wc -l) + 1)) # + padding
printf 'this is not\x00 a numpy file at all' >"$T/garbage.bin"
head -c $((2 * 1024 * 1024 + 100)) /dev/zero >"$T/big.bin"

start_daemon --data-dir "$DATA" --upload-dir "$UP" --max-upload 1

jqt() { if printf '%s' "$BODY" | jq -e "$1" >/dev/null 2>&1; then ok; else fail "$2: jq '$1' on $BODY"; fi; }
# upload NAME QUERY FILE [CONTENT-TYPE]: POST the file as the body
upload() {
    ct=${4:-application/octet-stream}
    BODY=$(curl -sS -m 60 -o - -w '\n%{http_code}' -X POST -H "Content-Type: $ct" \
        --data-binary "@$3" "$URL/v1/datasets?name=$1&$2")
    STATUS=$(printf '%s' "$BODY" | tail -n 1)
    BODY=$(printf '%s' "$BODY" | sed '$d')
}
spool_files() { find "$UP" -name '.spool-*' | wc -l; }

# ---- registration by path ----
api POST /v1/datasets '{"name": "x", "path": "x.npy", "format": "npy"}'
expect_status 201
FILE_ID=$(jqb .id)
jqt ".source == \"file\" and .format == \"npy\" and .rows == $NROWS and .width == $NCOLS and .shape == [$NROWS, $NCOLS]" "register npy"
jqt ".spec.path == \"$(cd "$DATA" && pwd -P)/x.npy\" and .size == $(wc -c <"$DATA/x.npy") and .sha256 == null" "registered spec and size (a file: no bytes kept, no sha256)"

api POST /v1/datasets "{\"name\": \"out\", \"path\": \"$T/outside/x.npy\", \"format\": \"npy\"}"
expect_status 403
jqt '.error.field == "path"' "outside names path"
api POST /v1/datasets '{"name": "up", "path": "../outside/x.npy", "format": "npy"}'
expect_status 403
api POST /v1/datasets '{"name": "up", "path": "sub/../../outside/x.npy", "format": "npy"}'
expect_status 403
ln -s "$T/outside/x.npy" "$DATA/link.npy"
api POST /v1/datasets '{"name": "link", "path": "link.npy", "format": "npy"}'
expect_status 403
api POST /v1/datasets '{"name": "t", "path": "t.csv", "format": "csv", "colour": 1}'
expect_status 422
jqt '.error.field == "colour"' "unknown key named"
api POST /v1/datasets '{"name": "t", "path": "missing.csv", "format": "csv"}'
expect_status 422
jqt '.error.field == "path"' "missing file names path"
api POST /v1/datasets '{"name": "bad", "path": "words.txt", "format": "npy"}'
expect_status 422
jqt '.error.message | test("words.txt")' "reader reason names the file"
api POST /v1/datasets '{"path": "x.npy", "format": "npy"}'
expect_status 422
jqt '.error.field == "name"' "name required"

# ---- uploads ----
upload xup "format=npy" "$DATA/x.npy"
expect_status 201
NPY_ID=$(jqb .id)
jqt ".source == \"upload\" and .rows == $NROWS and .shape == [$NROWS, $NCOLS] and .size == $(wc -c <"$DATA/x.npy")" "upload npy"
check "npy upload kept as <id>.npy" test -f "$UP/$NPY_ID.npy"
check "npy upload identical" cmp -s "$UP/$NPY_ID.npy" "$DATA/x.npy"
jqt ".sha256 == \"$(sha256sum "$DATA/x.npy" | cut -d' ' -f1)\"" "the upload's SHA-256 is sha256sum's"
upload csvup "format=csv" "$DATA/t.csv" text/csv
expect_status 201
CSV_ID=$(jqb .id)
jqt ".rows == $CSV_ROWS and .width == $CSV_COLS and .kind == \"float\"" "upload csv"
upload words "format=text" "$DATA/words.txt" text/plain
expect_status 201
TEXT_ID=$(jqb .id)
jqt ".rows == $TEXT_ROWS and .max_len == $TEXT_MAXLEN and .vocab == $TEXT_VOCAB and .shape == [$TEXT_ROWS, $TEXT_MAXLEN] and .width == $((TEXT_MAXLEN * TEXT_VOCAB))" "upload text"
upload words8 "format=text&max_len=8&overlong=truncate" "$DATA/words.txt" text/plain
expect_status 201
jqt ".max_len == 8 and .spec.max_len == 8 and .spec.overlong == \"truncate\"" "text options from the query"
W8_ID=$(jqb .id)

n_before=$(ls "$UP" | wc -l)
upload junk "format=npy" "$T/garbage.bin"
expect_status 422
jqt '.error.message | test("upload")' "garbage: the reader's reason"
check "garbage left nothing" test "$(ls "$UP" | wc -l)" -eq "$n_before"
check "no spool file after 422" test "$(spool_files)" -eq 0
upload junk "format=csv&header=maybe" "$DATA/t.csv" text/csv
expect_status 422
jqt '.error.field == "header"' "bad option named"
upload junk "format=npy&colour=red" "$DATA/x.npy"
expect_status 400
upload junk "format=npy" "$DATA/x.npy" application/x-www-form-urlencoded
expect_status 415
upload big "format=npy" "$T/big.bin"
expect_status 413
# A chunked body has no Content-Length: the cap is met while streaming.
BODY=$(curl -sS -m 60 -o - -w '\n%{http_code}' -X POST -H 'Content-Type: application/octet-stream' \
    -H 'Transfer-Encoding: chunked' --data-binary "@$T/big.bin" "$URL/v1/datasets?name=big&format=npy")
STATUS=$(printf '%s' "$BODY" | tail -n 1)
expect_status 413
sleep 0.2
check "413 left nothing" test "$(ls "$UP" | wc -l)" -eq "$n_before"
check "no spool file after 413" test "$(spool_files)" -eq 0

# ---- list and get ----
api GET /v1/datasets
expect_status 200
jqt "[.datasets[].id] == [$FILE_ID, $NPY_ID, $CSV_ID, $TEXT_ID, $W8_ID]" "list in id order"
api GET "/v1/datasets/$CSV_ID"
expect_status 200
jqt ".id == $CSV_ID and .name == \"csvup\"" "get one"
api GET /v1/datasets/9999
expect_status 404

# ---- jobs naming a dataset by id ----
job() { # DATASET-JSON EPOCHS
    jq -cn --argjson ds "$1" --argjson ep "$2" '{name: "ds", dataset: $ds,
        model: {encoder: [16], latent: 2, decoder: [16]},
        train: {epochs: $ep, batch_size: 20, seed: 5, threads: 1}}'
}
api POST /v1/jobs "$(job '{"id": 9999}' 1)"
expect_status 422
jqt '.error.field == "dataset.id"' "unknown id"
api POST /v1/jobs "$(job "{\"id\": $NPY_ID, \"format\": \"csv\"}" 1)"
expect_status 422
jqt '.error.field == "dataset.format"' "no other keys with an id"

# A long job on the upload (one wide step per epoch, so it writes few rows) keeps the
# worker busy: DELETE is refused while it runs, while the next one waits in the queue
# behind it, and while it is paused.
api POST /v1/jobs "$(jq -cn --argjson id "$NPY_ID" '{name: "long", dataset: {id: $id},
    model: {encoder: [256, 256], latent: 8, decoder: [256, 256]},
    train: {epochs: 50000, batch_size: 200, seed: 5, threads: 1}}')"
expect_status 201
BLOCK=$(jqb .id)
check "long job runs" wait_state "$BLOCK" running 60
api DELETE "/v1/datasets/$NPY_ID"
expect_status 409
jqt ".error.message | test(\"job $BLOCK\\\\b\")" "409 names the running job"
api POST /v1/jobs "$(job "{\"id\": $NPY_ID, \"limit\": 150}" 3)"
expect_status 201
JOB_ID=$(jqb .id)
jqt ".spec.dataset.path == \"$UP/$NPY_ID.npy\" and .spec.dataset.limit == 150 and .state == \"queued\"" "stored spec has the resolved path"
api DELETE "/v1/datasets/$NPY_ID"
expect_status 409
jqt ".error.message | test(\"jobs $BLOCK, $JOB_ID\\\\b\")" "409 names the running and the queued job"
api POST "/v1/jobs/$BLOCK/pause"
expect_status 200
check "wait for the job" wait_state "$JOB_ID" completed 300
api DELETE "/v1/datasets/$NPY_ID"
expect_status 409
jqt ".error.message | test(\"job $BLOCK\\\\b\")" "409 names the paused job"
api POST "/v1/jobs/$BLOCK/cancel"
expect_status 200
api POST /v1/jobs "$(job '{"path": "x.npy", "format": "npy", "limit": 150}' 3)"
expect_status 201
PATH_JOB=$(jqb .id)
check "wait for the path job" wait_state "$PATH_JOB" completed 300
api GET "/v1/jobs/$JOB_ID/metrics?fields=beta,loss,xent,kl,elbo,grad_norm"
M1=$(jqb -c '[.step, .beta, .loss, .xent, .kl, .elbo, .grad_norm]')
api GET "/v1/jobs/$PATH_JOB/metrics?fields=beta,loss,xent,kl,elbo,grad_norm"
M2=$(jqb -c '[.step, .beta, .loss, .xent, .kl, .elbo, .grad_norm]')
if [ -n "$M1" ] && [ "$M1" = "$M2" ] && [ "$(printf '%s' "$M1" | jq '.[0] | length')" -gt 0 ]; then
    ok
else
    fail "metrics by id and by path differ or are empty: ${M1%"${M1#???????????????????????????????????????????????????????????}"}... vs ${M2%"${M2#???????????????????????????????????????????????????????????}"}..."
fi

api DELETE "/v1/datasets/$NPY_ID"
expect_status 204
check "upload file deleted" test ! -e "$UP/$NPY_ID.npy"
api GET "/v1/datasets/$NPY_ID"
expect_status 404
api DELETE "/v1/datasets/$NPY_ID"
expect_status 404
api DELETE "/v1/datasets/$FILE_ID"
expect_status 204
check "a registered file is left in place" test -f "$DATA/x.npy"

# A text job by id, with its categorical model.
api POST /v1/jobs "$(jq -cn --argjson id "$W8_ID" '{name: "words", dataset: {id: $id},
    model: {encoder: [16], latent: 2, decoder: [16], likelihood: "categorical"},
    train: {epochs: 1, batch_size: 50, seed: 1, threads: 1}}')"
expect_status 201
check "text job by id completes" wait_state "$(jqb .id)" completed 300

# ---- restart keeps the registry ----
# The database keeps every upload's bytes: a copy lost from the upload directory is
# made again from there when a job needs it, and a copy of no dataset is deleted at
# the start.
stop_daemon
rm "$UP/$CSV_ID.csv"
: >"$UP/9999.npy"
start_daemon --data-dir "$DATA" --upload-dir "$UP" --max-upload 1
check "a copy of no dataset deleted at the start" test ! -e "$UP/9999.npy"
api GET /v1/datasets
expect_status 200
jqt "[.datasets[].id] == [$CSV_ID, $TEXT_ID, $W8_ID]" "registry after restart"
api GET "/v1/datasets/$TEXT_ID"
jqt ".rows == $TEXT_ROWS and .vocab == $TEXT_VOCAB" "text dataset after restart"
api POST /v1/jobs "$(job "{\"id\": $CSV_ID}" 1)"
expect_status 201
check "csv job by id after restart" wait_state "$(jqb .id)" completed 300
check "the lost csv upload made again from the database, byte for byte" \
    cmp -s "$UP/$CSV_ID.csv" "$DATA/t.csv"

# Token: mutating routes need it, reads do not.
stop_daemon
start_daemon --data-dir "$DATA" --upload-dir "$UP" --token s3cret
upload tok "format=csv" "$DATA/t.csv" text/csv
expect_status 401
api DELETE "/v1/datasets/$CSV_ID"
expect_status 401
api GET /v1/datasets
expect_status 200
api DELETE "/v1/datasets/$CSV_ID" "" -H 'Authorization: Bearer s3cret'
expect_status 204
check "no spool file at the end" test "$(spool_files)" -eq 0
stop_daemon
finish
