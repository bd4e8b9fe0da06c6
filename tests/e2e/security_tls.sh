# security_tls.sh — HTTPS with --tls-cert / --tls-key, on a self-signed certificate made
# here with openssl. Checked: the daemon refuses a certificate without its key, a key
# that group or others may read, a key that is not the certificate's, and a file that is
# not PEM, each naming the cause; over HTTPS a request is answered, two requests share one
# kept-alive connection, a job is submitted and trains, its event stream (SSE) delivers,
# a cross-origin POST is still refused; plain HTTP on the HTTPS port gets no HTTP answer;
# and the dashboard works in Chromium over HTTPS (tests/browser/tls.test.js).
. tests/e2e/security_lib.sh
. tests/e2e/browser_lib.sh
browser_ready
e2e_init
command -v openssl >/dev/null 2>&1 || { fail "openssl not found (Debian package openssl)"; finish; exit 1; }

umask 077
mk_cert() { # NAME CN: NAME.crt and NAME.key in $T
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=$2" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$T/$1.key" -out "$T/$1.crt" 2>"$T/openssl.err" ||
        { cat "$T/openssl.err"; fail "openssl could not make a certificate"; finish; exit 1; }
}
mk_cert a localhost
mk_cert b other

# ---- refused at start --------------------------------------------------------------------
no_start "a certificate without its key" "--tls-cert and --tls-key go together" --tls-cert "$T/a.crt"
no_start "a key without its certificate" "--tls-cert and --tls-key go together" --tls-key "$T/a.key"
cp "$T/a.key" "$T/open.key"; chmod 644 "$T/open.key"
no_start "a key others may read" "--tls-key.*group or others may read it" \
    --tls-cert "$T/a.crt" --tls-key "$T/open.key"
no_start "another certificate's key" "do not match" --tls-cert "$T/a.crt" --tls-key "$T/b.key"
echo "not a certificate" >"$T/junk.pem"
no_start "a file that is not PEM" "--tls-cert.*not a PEM file" --tls-cert "$T/junk.pem" --tls-key "$T/a.key"
no_start "a missing key file" "--tls-key.*No such file" --tls-cert "$T/a.crt" --tls-key "$T/none.key"

# ---- HTTPS ---------------------------------------------------------------------------------
start_daemon --threads 1 --tls-cert "$T/a.crt" --tls-key "$T/a.key"
HTTP_URL=$URL
URL="https://127.0.0.1:$PORT"
export CURL_CA_BUNDLE="$T/a.crt" # api's curl verifies the server against the test's certificate
check "the log says HTTPS" grep -q "serving HTTPS on port $PORT" "$T/daemon.log"
api GET /healthz
check "GET /healthz over HTTPS, the certificate verified: 200 (got $STATUS: $BODY)" [ "$STATUS" = 200 ]
curl -sS -m 10 -o /dev/null -o /dev/null -v "$URL/healthz" "$URL/v1/jobs" \
    >"$T/ka.out" 2>&1
check "two requests on one kept-alive TLS connection: $(grep -ci 're-using' "$T/ka.out") reuse" \
    grep -qi "re-using existing connection" "$T/ka.out"
check "the server answered HTTP/1.1 over TLS" grep -q "< HTTP/1.1 200" "$T/ka.out"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$HTTP_URL/healthz")
check "plain HTTP on the HTTPS port gets no HTTP answer (got '$code')" [ "$code" = 000 ]
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' --cacert "$T/b.crt" "$URL/healthz")
check "a client that trusts another certificate refuses the server (got '$code')" [ "$code" = 000 ]

submit "$(tiny_spec tls 4000)" # trains through the browser test; cancelled at the end
J=$JOB
check "a job submitted over HTTPS trains" wait_step "$J" 5 60
curl -sN -m 4 "$URL/v1/jobs/$J/events" >"$T/sse.out" 2>/dev/null
check "its event stream delivers over HTTPS: $(grep -c '^data:' "$T/sse.out") events" \
    grep -q '^data:' "$T/sse.out"
api POST /v1/jobs "$(tiny_spec x 1)" -H "Origin: https://evil.example"
check "a cross-origin POST over HTTPS is still refused: 403 (got $STATUS)" [ "$STATUS" = 403 ]
api POST /v1/jobs "$(tiny_spec same 1)" -H "Origin: $URL"
check "a same-origin POST (https://127.0.0.1:$PORT) is accepted: 201 (got $STATUS: $BODY)" [ "$STATUS" = 201 ]

# ---- the dashboard in Chromium over HTTPS --------------------------------------------------
browser_test tls JOB_RUNNING="$J"
api POST "/v1/jobs/$J/cancel"
expect_status 200
stop_daemon
check "the key is not in the log" sh -c '! grep -q "PRIVATE KEY" "$1"' _ "$T/daemon.log"
finish
