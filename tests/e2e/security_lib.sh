# security_lib.sh — a raw-socket client for the security_*.sh tests, on top of lib.sh
# (run.sh skips *lib.sh). curl tidies what it sends (one Host, its own Transfer-Encoding
# handling); these tests need the exact bytes.
#   raw_req FILE   send FILE's bytes to $PORT; sets RSTATUS (the status code, "closed"
#                  when the server closed without answering, "held" when it neither
#                  answered nor closed within 5 s), RHEAD (the header lines, CR removed)
#                  and RBODY (the body as received, up to the first 64 KiB)
#   rhdr NAME      the value of header NAME in RHEAD (case-insensitive), "" when absent
#   no_start WHAT WORDS FLAGS...  `vaed serve FLAGS` must exit non-zero, saying WORDS
. tests/e2e/daemon_lib.sh

S_RAW="${T:-/tmp}/s_raw.py"
s_write_raw() {
    S_RAW="$T/s_raw.py"
    cat >"$S_RAW" <<'PY'
import socket, sys
port = int(sys.argv[1]); data = open(sys.argv[2], "rb").read(); out_dir = sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
status = "closed"; buf = b""
try:
    s.sendall(data)
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    head, _, body = buf.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.") and len(head) >= 12:
        status = head[9:12].decode()
        # read what body arrives within a short while (Content-Length bodies are small)
        s.settimeout(1)
        try:
            while len(body) < 65536:
                b = s.recv(65536)
                if not b:
                    break
                body += b
        except OSError:
            pass
except socket.timeout:
    status = "held" if not buf else status
    head, body = buf, b""
except OSError:
    head, body = buf, b""
open(out_dir + "/r.head", "wb").write(head.replace(b"\r", b""))
open(out_dir + "/r.body", "wb").write(body)
print(status)
PY
}

raw_req() {
    [ -f "$T/s_raw.py" ] || s_write_raw
    rm -f "$T/r.head" "$T/r.body"
    RSTATUS=$(python3 "$T/s_raw.py" "$PORT" "$1" "$T")
    RHEAD=$(cat "$T/r.head" 2>/dev/null)
    RBODY=$(cat "$T/r.body" 2>/dev/null)
}

rhdr() {
    printf '%s\n' "$RHEAD" | sed -n "s/^$1: *//Ip" | head -n 1
}

no_start() { # what, expected words in the message, flags...
    n_what=$1; n_words=$2; shift 2
    "$VAED" serve --listen 127.0.0.1:0 --db "$T/x.db" --access-log 0 "$@" >"$T/ns.out" 2>&1 &
    n_pid=$!
    n_i=0
    while kill -0 $n_pid 2>/dev/null && [ $n_i -lt 100 ]; do sleep 0.05; n_i=$((n_i + 1)); done
    if kill -0 $n_pid 2>/dev/null; then
        kill -KILL $n_pid; wait $n_pid
        fail "$n_what: the daemon started; it should have refused"
        return
    fi
    wait $n_pid
    n_rc=$?
    if [ $n_rc -ne 0 ] && grep -q -- "$n_words" "$T/ns.out"; then ok; else
        fail "$n_what: want a non-zero exit and '$n_words' on stderr, got $n_rc: $(cat "$T/ns.out")"; fi
}
