# abuse.sh — bad and hostile HTTP input against a live daemon, end to end: slow
# clients holding many half-open connections, oversized headers, URLs and bodies,
# hostile JSON (invalid UTF-8, deep nesting, huge numbers, NaN), a corpus of malformed
# requests on raw sockets, path traversal out of --data-dir, and job names full of SQL
# metacharacters and unicode. After each group the daemon must still answer; at the
# end it must be alive, its log free of sanitizer reports, and stop cleanly.
. tests/e2e/lib.sh
e2e_init
mkdir -p "$T/data/sub" "$T/elsewhere"
printf '0,0.5,1,0\n1,0,0.5,1\n0,1,0,0.5\n0.5,0.5,0.5,0.5\n' >"$T/data/ok.csv"
cp "$T/data/ok.csv" "$T/outside.csv"
cp "$T/data/ok.csv" "$T/elsewhere/x.csv"
ln -s ../outside.csv "$T/data/link.csv"
ln -s ../elsewhere "$T/data/dirlink"
start_daemon --data-dir "$T/data" --threads 1

# raw.py: tiny raw-socket client. Modes:
#   send FILE      send the file's bytes, shut the write side, print the status code of
#                  the first response, "closed" if the server closed without one, or
#                  "held" if it did neither within 5 s (generous: CI runs this under ASan on a busy machine)
#   slowloris N ADDR  open N connections from source ADDR that send partial headers and
#                  keep them open; print "open K" when K are connected; then wait for
#                  stdin to close
cat >"$T/raw.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1]); mode = sys.argv[2]
if mode == "send":
    data = open(sys.argv[3], "rb").read()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    out = b""
    try:
        while b"\r\n" not in out:
            b = s.recv(4096)
            if not b:
                break
            out += b
    except socket.timeout:
        print("held"); sys.exit(0)
    except OSError:
        pass
    if out.startswith(b"HTTP/1.") and len(out) >= 12:
        print(out[9:12].decode())
    else:
        print("closed")
elif mode == "slowloris":
    n = int(sys.argv[3]); src = sys.argv[4]; socks = []
    for i in range(n):
        try:
            s = socket.socket(); s.bind((src, 0)); s.settimeout(2)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i)
            socks.append(s)
        except OSError:
            pass
    print("open %d" % len(socks), flush=True)
    sys.stdin.read()
    # Still held open by the server? A slot the server closed reads as EOF.
    alive = 0
    for s in socks:
        s.setblocking(False)
        try:
            s.recv(1)            # b"" (closed) or an early answer: not held
        except BlockingIOError:
            alive += 1           # nothing to read: still open
        except OSError:
            pass
    print("alive %d" % alive, flush=True)
PY
raw() { python3 "$T/raw.py" "$PORT" "$@"; }

# serving: a plain GET answered with 200 within 1 s
serving() {
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$URL/healthz")
    [ "$code" = 200 ]
}
still_serving() { check "daemon still serves after $1" serving; }

# ---- 1. slowloris: 100 half-open connections do not block other clients -------------
# From two other loopback addresses, so they stay under the 64-per-address limit and
# really occupy the server; a normal client on 127.0.0.1 must be served within 1 s.
mkfifo "$T/hold"
raw slowloris 50 127.0.0.2 <"$T/hold" >"$T/slow2.out" &
S2=$!
raw slowloris 50 127.0.0.3 <"$T/hold" >"$T/slow3.out" &
S3=$!
exec 3>"$T/hold"
i=0
while [ "$(cat "$T/slow2.out" "$T/slow3.out" 2>/dev/null | grep -c '^open')" -lt 2 ] && [ $i -lt 100 ]; do
    sleep 0.05; i=$((i + 1))
done
check "100 slow connections open ($(cat "$T/slow2.out" "$T/slow3.out" | tr '\n' ' '))" \
    [ "$(cat "$T/slow2.out" "$T/slow3.out" | awk '/^open/ {s += $2} END {print s + 0}')" -eq 100 ]
start=$(date +%s%N)
check "a normal request is answered within 1 s while 100 slow clients hold connections" serving
check "... and quickly ($(( ($(date +%s%N) - start) / 1000000 )) ms)" [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 1000 ]
# past the per-address limit, a connection is refused or closed at once, not queued
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >"$T/get"
r=$(python3 - "$PORT" <<'PY'
import socket, sys
socks = []
for i in range(70):
    s = socket.socket(); s.bind(("127.0.0.4", 0)); s.settimeout(2)
    try:
        s.connect(("127.0.0.1", int(sys.argv[1]))); s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ")
        socks.append(s)
    except OSError:
        pass
# the 65th and later must have been closed by the server at once
import time
time.sleep(0.5)
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(closed)
PY
)
check "connections past 64 from one address are closed at once (closed: $r of 70)" [ "$r" -ge 6 ]
exec 3>&-
wait "$S2" "$S3"
check "slow clients were held open, not dropped, while under the limits ($(cat "$T/slow2.out" "$T/slow3.out" | tr '\n' ' '))" \
    [ "$(cat "$T/slow2.out" "$T/slow3.out" | awk '/^alive/ {s += $2} END {print s + 0}')" -ge 90 ]
still_serving "slowloris"

# ---- 2. oversized headers, URLs and bodies get 4xx ------------------------------------
big=$(head -c 100000 /dev/zero | tr '\0' a)
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n' "$big" >"$T/bighdr"
r=$(raw send "$T/bighdr"); check "100 KB header: 4xx or closed (got $r)" expr "$r" : '4..\|closed' >/dev/null
printf 'GET /healthz?%s HTTP/1.1\r\nHost: x\r\n\r\n' "$big" >"$T/bigurl"
r=$(raw send "$T/bigurl"); check "100 KB URL: 4xx or closed (got $r)" expr "$r" : '4..\|closed' >/dev/null
i=0; : >"$T/manyhdr.h"; while [ $i -lt 3000 ]; do printf 'X-H%d: v\r\n' $i; i=$((i + 1)); done >"$T/manyhdr.h"
{ printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n'; cat "$T/manyhdr.h"; printf '\r\n'; } >"$T/manyhdr"
r=$(raw send "$T/manyhdr"); check "3000 headers: 4xx or closed (got $r)" expr "$r" : '4..\|closed' >/dev/null
head -c 2100000 /dev/zero | tr '\0' ' ' >"$T/bigbody"
code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' -X POST --data-binary @"$T/bigbody" "$URL/v1/jobs")
check "2 MB body with Content-Length: 413 (got $code)" [ "$code" = 413 ]
code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$T/bigbody" "$URL/v1/jobs")
check "2 MB chunked body: 413 (got $code)" [ "$code" = 413 ]
printf 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n{}' >"$T/hugecl"
r=$(raw send "$T/hugecl"); check "Content-Length past 2^64: 4xx or closed (got $r)" expr "$r" : '4..\|closed' >/dev/null
still_serving "oversized requests"

# ---- 3. hostile JSON: 400 bad_json, never a crash ---------------------------------------
json_case() { # what, file, route method, path
    code=$(curl -s -o "$T/jbody" -m 10 -w '%{http_code}' -X "$3" -H 'Content-Type: application/json' \
        --data-binary @"$2" "$URL$4")
    check "$1 on $3 $4: 400 (got $code: $(head -c 200 "$T/jbody"))" [ "$code" = 400 ]
}
printf '{"name": "a\377\376b"}' >"$T/j1"
printf '{"name": "\355\240\200"}' >"$T/j2"   # an encoded surrogate
head -c 100000 /dev/zero | tr '\0' '[' >"$T/j3"
printf '{"train": {"epochs": 1e999}}' >"$T/j4"
printf '{"train": {"seed": 123456789012345678901234567890}}' >"$T/j5"
printf '{"optimizer": {"lr": NaN}}' >"$T/j6"
printf '{"optimizer": {"lr": Infinity}}' >"$T/j7"
printf '{"optimizer": {"lr": -Infinity}}' >"$T/j8"
printf '{"name": "a\000b"}' >"$T/j9"
printf '{"name": "x"} trailing' >"$T/j10"
printf '{"name": "\\ud800"}' >"$T/j11"
i=0; while [ $i -lt 3000 ]; do printf '{"a":'; i=$((i + 1)); done >"$T/j12"
for f in j1:invalid-UTF-8 j2:encoded-surrogate j3:100000-brackets j4:1e999 j5:30-digit-integer \
    j6:NaN j7:Infinity j8:-Infinity j9:NUL-in-JSON j10:trailing-garbage j11:lone-surrogate-escape \
    j12:3000-nested-objects; do
    json_case "${f#*:}" "$T/${f%%:*}" POST /v1/jobs
done
for f in j3:100000-brackets j4:1e999 j6:NaN j1:invalid-UTF-8; do
    json_case "${f#*:}" "$T/${f%%:*}" PUT /v1/jobs/1/schedule
done
# numbers that parse as JSON but are out of range for the spec are 422 naming the field
api POST /v1/jobs '{"train": {"epochs": 1e300}}'
check "epochs 1e300: 422 naming train.epochs ($STATUS $BODY)" [ "$STATUS" = 422 -a "$(jqb .error.field)" = train.epochs ]
api POST /v1/jobs '{"train": {"seed": -1}}'
check "seed -1: 422 naming train.seed ($STATUS)" [ "$STATUS" = 422 -a "$(jqb .error.field)" = train.seed ]
still_serving "hostile JSON"

# ---- 4. malformed requests on raw sockets: 4xx or closed --------------------------------
n=0
# A request whose body is shorter than it announced: the server waits for the rest, as
# for any slow client (bounded by the idle timeout); whether libmicrohttpd notices the
# client's half-close first is a race, so closing and answering 4xx are fine too.
partial() { # name, printf format of the request
    n=$((n + 1)); printf "$2" >"$T/bad$n"
    r=$(raw send "$T/bad$n")
    check "incomplete: $1: 4xx, closed or waited for (got $r)" expr "$r" : '4..\|closed\|held' >/dev/null
}
bad() { # name, printf format of the request
    n=$((n + 1)); printf "$2" >"$T/bad$n"
    r=$(raw send "$T/bad$n")
    check "malformed: $1: 4xx or closed (got $r)" expr "$r" : '4..\|closed' >/dev/null
}
bad "garbage line" 'hello there\r\n\r\n'
bad "no version" 'GET /healthz\r\nHost: x\r\n\r\n'
bad "HTTP/0.9 simple request" 'GET /\r\n'
r=$(printf 'GET /healthz HTTP/7.3\r\nHost: x\r\n\r\n' >"$T/v73"; raw send "$T/v73")
check "malformed: unknown version: 505 HTTP Version Not Supported or closed (got $r)" expr "$r" : '505\|closed' >/dev/null
bad "lower-case method" 'get /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
bad "unknown method" 'BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
bad "method with control chars" 'G\001T /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
bad "header without colon" 'GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n'
bad "NUL in the path" 'GET /v1/jobs/\0001 HTTP/1.1\r\nHost: x\r\n\r\n'
bad "NUL in a header" 'GET /v1/nope HTTP/1.1\r\nHost: x\r\nX-A: a\000b\r\n\r\n'
bad "negative Content-Length" 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}'
bad "non-numeric Content-Length" 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}'
partial "Content-Length longer than the body" 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{}'
bad "chunked garbage" 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'
bad "chunk size overflow" 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n{}\r\n0\r\n\r\n'
partial "chunk shorter than said" 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{}\r\n0\r\n\r\n'
partial "unknown transfer coding" 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}'
bad "absolute URI to elsewhere" 'GET http://evil.example/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n'
bad "path traversal in the URL" 'GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n'
bad "percent-encoded traversal" 'GET /v1/jobs/%%2e%%2e%%2f%%2e%%2e HTTP/1.1\r\nHost: x\r\n\r\n'
bad "bad percent escape" 'GET /v1/jobs?status=%%zz%% HTTP/1.1\r\nHost: x\r\n\r\n'
bad "obsolete line folding" 'GET /v1/nope HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n'
bad "bare LF line ends, unknown route" 'GET /v1/nope HTTP/1.1\nHost: x\n\n'
# RFC 9112 2.2 lets a server skip empty lines before the request line: libmicrohttpd
# may then wait for one, as for any slow client (until the idle timeout).
n=$((n + 1)); printf '\r\n\r\n\r\n\r\n' >"$T/bad$n"; r=$(raw send "$T/bad$n")
check "malformed: only CRLFs: 4xx, closed or waited for like a slow client (got $r)" \
    expr "$r" : '4..\|closed\|held' >/dev/null
bad "binary noise" '\377\376\375\000\001\002\r\n\r\n'
bad "job id past 2^63" 'GET /v1/jobs/99999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n'
bad "job id with sign" 'GET /v1/jobs/-1 HTTP/1.1\r\nHost: x\r\n\r\n'
bad "unknown query parameter" 'GET /v1/jobs?evil=1 HTTP/1.1\r\nHost: x\r\n\r\n'
bad "query limit overflow" 'GET /v1/jobs?limit=99999999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n'
bad "POST without a body" 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n'
# Conflicting Content-Length headers are the request-smuggling split (a proxy in front
# might take the other one): the HTTP layer refuses them itself.
bad "two Content-Lengths" 'PUT /v1/jobs/1/schedule HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n{}'
# Refused too, as RFC 9112 asks (the HTTP layer runs libmicrohttpd in strict mode):
bad "no Host in HTTP/1.1" 'GET /healthz HTTP/1.1\r\n\r\n'
bad "space before colon" 'GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n'
still_serving "malformed requests"

# ---- 5. dataset paths outside --data-dir: 403 --------------------------------------------
path_case() { # what, path field JSON, expected status
    api POST /v1/jobs "{\"dataset\": {$2, \"format\": \"csv\"}, \"model\": {\"encoder\": [4], \"latent\": 2, \"decoder\": [4]}, \"train\": {\"epochs\": 1, \"batch_size\": 2}}"
    check "$1: $3 (got $STATUS: $BODY)" [ "$STATUS" = "$3" ]
}
path_case "../ out of the data dir" '"path": "../outside.csv"' 403
# a path outside that does not exist is refused the same way: no probing for files
path_case "missing file outside, relative" '"path": "../no-such-file.csv"' 403
path_case "missing file outside, absolute" '"path": "/nonexistent/no-such-file.csv"' 403
path_case "deeper ../ out" '"path": "sub/../../outside.csv"' 403
path_case "absolute path outside" "\"path\": \"$T/outside.csv\"" 403
path_case "absolute /etc/passwd" '"path": "/etc/passwd"' 403
path_case "symlink pointing out" '"path": "link.csv"' 403
path_case "through a symlinked directory" '"path": "dirlink/x.csv"' 403
path_case "test_path out" '"path": "ok.csv", "test_path": "../outside.csv"' 403
path_case "data dir's own parent by absolute prefix trick" "\"path\": \"$T/data/../outside.csv\"" 403
path_case "a file inside the data dir is accepted" '"path": "ok.csv"' 201
OKJOB=$(jqb .id)
check "no 'outside' file was read into a job" [ "$(curl -s "$URL/v1/jobs?limit=100" | jq '[.jobs[] | select(.spec.dataset.path // "" | test("outside|passwd"))] | length')" = 0 ]
still_serving "path traversal"

# ---- 6. job names with SQL metacharacters and unicode are stored verbatim ---------------
names_file="$T/names"
cat >"$names_file" <<'NAMES'
x'); DROP TABLE jobs; --
"; SELECT * FROM jobs WHERE '1'='1
Robert'); DELETE FROM metrics;--
100% _wild_ \ back\slash [brackets] *star* ?q
名前 — ünïcödé ✓ 🎉 עברית
' OR 1=1 --
NAMES
while IFS= read -r name; do
    body=$(jq -nc --arg n "$name" '{name: $n, dataset: {path: "ok.csv", format: "csv"}, model: {encoder: [4], latent: 2, decoder: [4]}, train: {epochs: 1, batch_size: 2}}')
    api POST /v1/jobs "$body"
    if [ "$STATUS" != 201 ]; then fail "name '$name': submit got $STATUS: $BODY"; continue; fi
    id=$(jqb .id)
    api GET "/v1/jobs/$id"
    got=$(jqb .name)
    check "name stored verbatim: '$name' (got '$got')" [ "$got" = "$name" ]
    listed=$(curl -s "$URL/v1/jobs?limit=1000" | jq -r --argjson id "$id" '.jobs[] | select(.id == $id) | .name')
    check "name listed verbatim: '$name'" [ "$listed" = "$name" ]
done <"$names_file"
api GET "/v1/jobs?limit=1000"
check "the jobs table is intact and lists every job ($(jqb '.jobs | length'))" [ "$STATUS" = 200 -a "$(jqb '.jobs | length')" -ge 7 ]
api POST /v1/jobs "$(jq -nc --arg n "$(printf 'a\001b')" '{name: $n}')"
check "a name with a control character is refused (422, field name): $STATUS" [ "$STATUS" = 422 -a "$(jqb .error.field)" = name ]

# ---- 7. the daemon is alive, serves, has no sanitizer report, and stops cleanly --------
check "daemon process alive" kill -0 "$DPID"
still_serving "everything"
api GET /healthz
check "healthz ok" [ "$STATUS" = 200 -a "$(jqb .status)" = ok ]
check "no crash or sanitizer report in the daemon log" \
    sh -c "! grep -E 'AddressSanitizer|LeakSanitizer|runtime error|Segmentation|Aborted|assert' '$T/daemon.log'"
stop_daemon
finish
