# stream_limit.sh — --max-streams: with two event streams open, a third is refused
# with 503 too_many_streams (a JSON error with a reason and Retry-After), other routes
# keep answering, and once the streams end (the job is cancelled, so they get its final
# state and close) new streams are accepted again: the count goes down as they close.
. tests/e2e/lib.sh
e2e_init
start_daemon --threads 1 --max-streams 2

SPEC='{"name": "streams", "dataset": {"name": "fashion-mnist", "limit": 2000},
       "model": {"encoder": [64], "latent": 4, "decoder": [64]},
       "train": {"epochs": 200, "batch_size": 50, "seed": 1, "threads": 1}}'
api POST /v1/jobs "$SPEC"
expect_status 201
J=$(jqb .id)
wait_step "$J" 1

curl -sN "$URL/v1/jobs/$J/events" >"$T/s1" 2>/dev/null &
P1=$!
curl -sN "$URL/v1/jobs/$J/events" >"$T/s2" 2>/dev/null &
P2=$!
# both streams are open once each has its first event (the job's state)
i=0
until grep -q '^event: state' "$T/s1" 2>/dev/null && grep -q '^event: state' "$T/s2" 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 200 ] && { fail "the two streams did not start"; break; }
    sleep 0.05
done

curl -sS -D "$T/h3" -o "$T/b3" -m 10 "$URL/v1/jobs/$J/events"
check "third stream: 503" grep -q '^HTTP/1.1 503' "$T/h3"
check "third stream: Retry-After" grep -qi '^Retry-After: 5' "$T/h3"
check "third stream: too_many_streams with a reason naming the flag" \
    jq -e '.error.code == "too_many_streams" and (.error.message | test("--max-streams"))' "$T/b3"

# the limit is on streams, not on the API
api GET "/v1/jobs/$J"
expect_status 200

# cancelling ends both streams (their final event), which frees their places
api POST "/v1/jobs/$J/cancel"
expect_status 200
wait "$P1" "$P2"
check "first stream ended with the final state" grep -q '"state":"cancelled"' "$T/s1"
check "second stream ended with the final state" grep -q '"state":"cancelled"' "$T/s2"

ok4=0
i=0
while [ $i -lt 50 ]; do
    code=$(curl -s -o "$T/s4" -w '%{http_code}' -m 10 "$URL/v1/jobs/$J/events")
    [ "$code" = 200 ] && { ok4=1; break; }
    i=$((i + 1))
    sleep 0.1
done
check "a new stream is accepted once the others closed" [ $ok4 -eq 1 ]
check "it gets the finished job's state" grep -q '"state":"cancelled"' "$T/s4"

stop_daemon
finish
