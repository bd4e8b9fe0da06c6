# security_slots.sh — connection slots held by clients that send their request head
# one byte at a time. The idle timeout never fires for them (every byte resets it), so
# a few dozen of them used to hold every slot for as long as they liked. Now the whole
# head has a deadline (VAED_HEADER_TIMEOUT, --header-timeout): past it the server
# closes the connection, and /healthz is reachable again within it.
# Then the reserve: clients holding every ordinary slot with complete requests (event
# streams, which the deadline does not touch) no longer lock the operator out:
# connections past --max-connections (up to --reserve-slots more) answer GET /healthz
# and a token holder, and 503 busy to anyone else.
. tests/e2e/daemon_lib.sh
e2e_init
# The variable, not the flag: a daemon without the feature still starts and shows the
# slots held (the test then fails, as it did before the change).
VAED_HEADER_TIMEOUT=2
export VAED_HEADER_TIMEOUT
# No reserve here: /healthz must get in because the deadline frees the slots.
start_daemon --threads 1 --max-connections 40 --per-ip-limit 64 --reserve-slots 0
unset VAED_HEADER_TIMEOUT

# drip.py N SECS: N connections from 127.0.0.2 that each send one header byte every
# 0.25 s for SECS seconds; prints "open K" once connected, then "closed K" at the end:
# how many the server closed.
cat >"$T/drip.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1]); n = int(sys.argv[2]); secs = float(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket(); s.bind(("127.0.0.2", 0)); s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)
    except OSError:
        pass
print("open %d" % len(socks), flush=True)
closed = set()
end = time.time() + secs
while time.time() < end:
    for k, s in enumerate(socks):
        if k in closed:
            continue
        try:
            s.sendall(b"a")
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed.add(k)
            except BlockingIOError:
                pass
            s.setblocking(True)
        except OSError:
            closed.add(k)
    time.sleep(0.25)
print("closed %d" % len(closed), flush=True)
PY
python3 "$T/drip.py" "$PORT" 40 6 >"$T/drip.out" &
DRIP=$!
i=0
while ! grep -q '^open' "$T/drip.out" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
check "40 slow clients connected ($(cat "$T/drip.out"))" grep -q '^open 40' "$T/drip.out"
# /healthz from another address must be answered within the head deadline plus a margin
t0=$(date +%s%N)
code=000
while [ "$code" != 200 ] && [ $((($(date +%s%N) - t0) / 1000000)) -lt 5000 ]; do
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$URL/healthz")
done
ms=$((($(date +%s%N) - t0) / 1000000))
check "/healthz answered within 5 s while 40 slow heads hold every slot (got $code after $ms ms)" [ "$code" = 200 ]
wait "$DRIP"
closed=$(sed -n 's/^closed //p' "$T/drip.out")
check "the server closed the slow heads past the deadline (closed ${closed:-?} of 40 in 6 s)" [ "${closed:-0}" -ge 40 ]
# an ordinary client that sends its head at once is not affected
api GET /v1/jobs
expect_status 200
stop_daemon

# ---- the reserve -----------------------------------------------------------------------
printf 'slot-token\n' >"$T/tok"; chmod 600 "$T/tok"
start_daemon --threads 1 --max-connections 8 --per-ip-limit 64 --reserve-slots 4 --token-file "$T/tok"
submit_tok() { api POST /v1/jobs "$1" -H "Authorization: Bearer slot-token"; JOB=$(jqb '.id // empty'); }
submit_tok "$(tiny_spec hold 2000)"
check "a long job to stream from (got $STATUS)" [ "$STATUS" = 201 ]
# hold.py N SECS: N event streams from 127.0.0.2, each kept open for SECS seconds;
# prints "open K" once K have their reply head
cat >"$T/hold.py" <<'PY'
import socket, sys, time
port, job, n, secs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
socks = []
for i in range(n):
    s = socket.socket(); s.bind(("127.0.0.2", 0)); s.settimeout(3)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /v1/jobs/%s/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % job.encode())
        if s.recv(12).startswith(b"HTTP/1.1 200"):
            socks.append(s)
    except OSError:
        pass
print("open %d" % len(socks), flush=True)
time.sleep(secs)
PY
python3 "$T/hold.py" "$PORT" "$JOB" 8 8 >"$T/hold.out" &
HOLD=$!
i=0
while ! grep -q '^open' "$T/hold.out" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
check "8 event streams hold the 8 ordinary slots ($(cat "$T/hold.out"))" grep -q '^open 8' "$T/hold.out"
code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$URL/healthz")
check "GET /healthz gets in through the reserve (got $code)" [ "$code" = 200 ]
api GET /v1/jobs "" -H "Authorization: Bearer slot-token"
check "a token holder gets in through the reserve (got $STATUS)" [ "$STATUS" = 200 ]
api GET /v1/jobs
check "anyone else: 503 busy, naming the reserve (got $STATUS: $BODY)" \
    sh -c '[ "$1" = 503 ] && printf "%s" "$2" | jq -e ".error.code == \"busy\"" >/dev/null' _ "$STATUS" "$BODY"
api GET /v1/jobs "" -H "Authorization: Bearer wrong"
check "a wrong token is no token: 503 (got $STATUS)" [ "$STATUS" = 503 ]
wait "$HOLD"
i=0
while [ $i -lt 50 ]; do api GET /v1/jobs; [ "$STATUS" = 200 ] && break; i=$((i + 1)); sleep 0.1; done
check "once the streams close, everyone gets in again (got $STATUS)" [ "$STATUS" = 200 ]
api POST "/v1/jobs/$JOB/cancel" '' -H "Authorization: Bearer slot-token"
stop_daemon
finish
