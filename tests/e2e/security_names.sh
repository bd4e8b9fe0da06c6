# security_names.sh — names a person reads (in the dashboard, logs, vaectl): a job's or
# a dataset's name refuses control characters and the Unicode bidi controls that make
# text display in another order than it is stored (U+202A..U+202E, U+2066..U+2069),
# and is at most 127 bytes: 422 naming the field "name". Ordinary Unicode stays fine.
. tests/e2e/daemon_lib.sh
e2e_init
mkdir -p "$T/data"
printf '0.5,0.25\n0.75,1\n' >"$T/data/x.csv"
start_daemon --threads 1 --data-dir "$T/data"
bad_job() { # what, name as a JSON string literal
    api POST /v1/jobs "$(tiny_spec x 1 "{\"name\": $2}")"
    if [ "$STATUS" = 422 ] && jqt '.error.field == "name"'; then ok; else
        fail "job name $1: want 422 naming name, got $STATUS: $BODY"; fi
}
bad_ds() { # what, name as a JSON string literal
    api POST /v1/datasets "{\"name\": $2, \"path\": \"x.csv\", \"format\": \"csv\"}"
    if [ "$STATUS" = 422 ] && jqt '.error.field == "name"'; then ok; else
        fail "dataset name $1: want 422 naming name, got $STATUS: $BODY"; fi
}
long=$(head -c 128 /dev/zero | tr '\0' a)
for c in 202A 202B 202C 202D 202E 2066 2067 2068 2069; do
    bad_job "with U+$c" "\"invoice\\u${c}fdp.exe\""
    bad_ds "with U+$c" "\"data\\u${c}set\""
done
bad_job "with a BEL" '"a\u0007b"'
bad_job "with ESC (terminal escapes)" '"\u001b[31mred"'
bad_job "with DEL" '"a\u007fb"'
bad_job "with C1 CSI U+009B" '"a\u009b31m"'
bad_job "of 128 bytes" "\"$long\""
bad_job "empty" '""'
bad_ds "with a newline" '"a\nb"'
bad_ds "with ESC" '"\u001b[2J"'
bad_ds "with C1 CSI U+009B" '"a\u009b31m"'
bad_ds "of 128 bytes" "\"$long\""
# an upload names its dataset in the query: the same rule
printf '0.5,0.25\n' >"$T/d.csv"
BODY=$(curl -sS -o - -w '\n%{http_code}' -X POST -H 'Content-Type: text/csv' --data-binary "@$T/d.csv" \
    "$URL/v1/datasets?name=a%E2%80%AEb&format=csv")
STATUS=$(printf '%s' "$BODY" | tail -n 1); BODY=$(printf '%s' "$BODY" | sed '$d')
if [ "$STATUS" = 422 ] && jqt '.error.field == "name"'; then ok; else
    fail "upload named with U+202E: want 422 naming name, got $STATUS: $BODY"; fi
# fine: accents, CJK, emoji, 127 bytes
submit "$(tiny_spec "réseau-変分-🙂" 1)"
submit "$(tiny_spec "$(head -c 127 /dev/zero | tr '\0' b)" 1)"
stop_daemon
finish
