# security_headers.sh — the headers of a hostile or careless client, and the ones every
# reply carries: two Authorization headers are refused (400), every reply says
# X-Content-Type-Options: nosniff, HTML replies carry a Content-Security-Policy
# (default-src 'self', frame-ancestors 'none') and Referrer-Policy: no-referrer, and a
# Transfer-Encoding other than plain "chunked" is refused at once with JSON (it used to
# leave the connection hanging).
. tests/e2e/security_lib.sh
e2e_init
TOKEN=sec-token-1234
start_daemon --threads 1 --token "$TOKEN" 2>/dev/null
H="Host: 127.0.0.1:$PORT"
SPEC=$(tiny_spec hdr 1)

# ---- two Authorization headers: 400, whatever their values -------------------------------
for pair in "$TOKEN $TOKEN" "$TOKEN wrong" "wrong $TOKEN"; do
    set -- $pair
    printf 'POST /v1/jobs/1/pause HTTP/1.1\r\n%s\r\nAuthorization: Bearer %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' \
        "$H" "$1" "$2" >"$T/twoauth"
    raw_req "$T/twoauth"
    BODY=$RBODY
    if [ "$RSTATUS" = 400 ] && jqt '.error.field == "Authorization"'; then ok; else
        fail "two Authorization headers ($1, $2): want 400 naming Authorization, got $RSTATUS: $RBODY"; fi
done
# one is still fine
api POST /v1/jobs "$SPEC" -H "Authorization: Bearer $TOKEN"
expect_status 201

# ---- nosniff on every reply; CSP and Referrer-Policy on HTML ---------------------------
for p in / /web/app.js /healthz /v1/jobs /v1/jobs/1 /v1/nope /v1/jobs/999; do
    hd=$(curl -sS -o /dev/null -D - "$URL$p" | tr -d '\r')
    if printf '%s\n' "$hd" | grep -qi '^X-Content-Type-Options: nosniff$'; then ok; else
        fail "GET $p: no X-Content-Type-Options: nosniff in: $(printf '%s' "$hd" | tr '\n' '|')"; fi
done
hd=$(curl -sS -o /dev/null -D - -X POST -H 'Content-Type: application/json' --data-binary "$SPEC" "$URL/v1/jobs" | tr -d '\r')
check "401 carries nosniff too" sh -c 'printf "%s\n" "$1" | grep -qi "^X-Content-Type-Options: nosniff"' _ "$hd"
hd=$(curl -sS -o /dev/null -D - "$URL/" | tr -d '\r')
csp=$(printf '%s\n' "$hd" | sed -n 's/^Content-Security-Policy: *//Ip')
check "the dashboard has a CSP with default-src 'self' (got '$csp')" sh -c 'printf "%s" "$1" | grep -q "default-src '"'"'self'"'"'"' _ "$csp"
check "the dashboard's CSP has frame-ancestors 'none' (got '$csp')" sh -c 'printf "%s" "$1" | grep -q "frame-ancestors '"'"'none'"'"'"' _ "$csp"
check "the dashboard's CSP allows no inline script (got '$csp')" sh -c '! printf "%s" "$1" | grep -Eq "(default-src|script-src)[^;]*unsafe-inline"' _ "$csp"
check "the dashboard has Referrer-Policy: no-referrer" sh -c 'printf "%s\n" "$1" | grep -qi "^Referrer-Policy: no-referrer$"' _ "$hd"
check "the page itself has no inline script" sh -c '! grep -qi "<script>\|<script [^>]*>[^<]\| on[a-z]*=\"" web/index.html'

# ---- Transfer-Encoding other than chunked: refused with JSON, not left hanging -----------
for te in gzip "gzip, chunked" "chunked, gzip" "identity" "chunked;x=1"; do
    printf 'POST /v1/jobs HTTP/1.1\r\n%s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nTransfer-Encoding: %s\r\nConnection: close\r\n\r\n{}' \
        "$H" "$TOKEN" "$te" >"$T/te"
    raw_req "$T/te"
    BODY=$RBODY
    case "$RSTATUS" in
    400 | 501) if jqt '.error.field == "Transfer-Encoding"'; then ok; else fail "Transfer-Encoding: $te: $RSTATUS without a JSON error naming Transfer-Encoding: $RBODY"; fi ;;
    *) fail "Transfer-Encoding: $te: want 501 or 400 with JSON, got $RSTATUS" ;;
    esac
done
# plain chunked still works
code=$(curl -sS -o "$T/chunked.out" -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" --data-binary "$SPEC" "$URL/v1/jobs")
check "a chunked JSON body is still accepted (got $code: $(cat "$T/chunked.out"))" [ "$code" = 201 ]
api GET /healthz
expect_status 200
stop_daemon
finish
