# security_browser.sh — requests a web page makes the browser send. A page on another
# site could POST a text/plain job to the loopback daemon, and DNS rebinding (a name of
# the attacker's that resolves to 127.0.0.1) reached every route. Now:
#   - Host must be a name the daemon serves (the listen address, localhost, 127.0.0.1,
#     [::1], with our port or none; --allow-host adds more): else 421 naming "Host";
#     /healthz answers whatever the Host (probes send the pod's address);
#   - a state-changing request whose Origin is not the daemon itself (nor a --cors
#     origin), or that says Sec-Fetch-Site: cross-site, is 403 naming "Origin";
#   - a request body on a mutating route must be application/json (dataset uploads keep
#     their own types): else 415 naming "Content-Type".
. tests/e2e/security_lib.sh
e2e_init
start_daemon --threads 1
SPEC=$(tiny_spec web 1)

field_is() { # what, want status, want field
    if [ "$STATUS" = "$2" ] && jqt --arg f "$3" '.error.field == $f'; then ok; else
        fail "$1: want $2 naming $3, got $STATUS: $BODY"; fi
}

# ---- Host -----------------------------------------------------------------------------
api GET /v1/jobs "" -H "Host: evil.example:$PORT"
field_is "GET with a foreign Host (DNS rebinding)" 421 Host
api POST /v1/jobs "$SPEC" -H "Host: evil.example"
field_is "POST with a foreign Host" 421 Host
api GET / "" -H "Host: 127.0.0.1.evil.example:$PORT"
field_is "dashboard with a look-alike Host" 421 Host
api GET /v1/jobs "" -H "Host: localhost:1"
field_is "our name with another port" 421 Host
for h in "127.0.0.1:$PORT" "localhost:$PORT" "LOCALHOST:$PORT" "[::1]:$PORT" "127.0.0.1" "localhost"; do
    api GET /v1/jobs "" -H "Host: $h"
    check "Host: $h is served (got $STATUS: $BODY)" [ "$STATUS" = 200 ]
done
api GET /healthz "" -H "Host: 10.1.2.3:$PORT"
check "/healthz answers any Host (got $STATUS)" [ "$STATUS" = 200 ]

# ---- cross-origin state changes ----------------------------------------------------------
api POST /v1/jobs "$SPEC" -H "Origin: http://evil.example"
field_is "POST from another origin" 403 Origin
api POST /v1/jobs "$SPEC" -H "Origin: null"
field_is "POST from an opaque origin" 403 Origin
api POST /v1/jobs "$SPEC" -H "Origin: http://127.0.0.1:$((PORT + 1))"
field_is "POST from our host on another port" 403 Origin
api POST /v1/jobs "$SPEC" -H "Sec-Fetch-Site: cross-site"
field_is "POST marked Sec-Fetch-Site: cross-site" 403 Origin
api DELETE /v1/datasets/1 "" -H "Origin: http://evil.example"
field_is "DELETE from another origin" 403 Origin
api POST /v1/jobs "$SPEC" -H "Origin: http://127.0.0.1:$PORT" -H "Sec-Fetch-Site: same-origin"
check "POST from the dashboard's own origin is accepted (got $STATUS: $BODY)" [ "$STATUS" = 201 ]
api GET /v1/jobs "" -H "Origin: http://evil.example"
check "a cross-origin GET is answered (the browser keeps it from the page: no CORS header) ($STATUS)" [ "$STATUS" = 200 ]
hd=$(curl -sS -o /dev/null -D - -H "Origin: http://evil.example" "$URL/v1/jobs" | tr -d '\r')
check "... and carries no Access-Control-Allow-Origin" sh -c '! printf "%s\n" "$1" | grep -qi "^Access-Control-Allow-Origin"' _ "$hd"

# ---- Content-Type on mutating routes ----------------------------------------------------
# ct_req TYPE METHOD PATH BODY: exactly one Content-Type (TYPE; "" sends none), unlike api
ct_req() {
    if [ -n "$1" ]; then set -- -H "Content-Type: $1" "$2" "$3" "$4"; else set -- -H "Content-Type:" "$2" "$3" "$4"; fi
    BODY=$(curl -sS -m 60 -o - -w '\n%{http_code}' "$1" "$2" -X "$3" --data-binary "$5" "$URL$4")
    STATUS=$(printf '%s' "$BODY" | tail -n 1)
    BODY=$(printf '%s' "$BODY" | sed '$d')
}
ct_req "text/plain" POST /v1/jobs "$SPEC"
field_is "a text/plain job (the form a page can send without preflight)" 415 Content-Type
ct_req "application/x-www-form-urlencoded" POST /v1/jobs "$SPEC"
field_is "a form-encoded job" 415 Content-Type
ct_req "multipart/form-data; boundary=x" POST /v1/jobs "$SPEC"
field_is "a multipart job" 415 Content-Type
ct_req "" POST /v1/jobs "$SPEC"
field_is "a job body without Content-Type" 415 Content-Type
ct_req "text/plain" PUT /v1/jobs/1/schedule '{"kind": "constant", "value": 0.5}' 
field_is "a text/plain schedule change" 415 Content-Type
ct_req "Application/JSON; charset=utf-8" POST /v1/jobs "$SPEC"
check "application/json with a charset, any case, is accepted (got $STATUS: $BODY)" [ "$STATUS" = 201 ]
api POST /v1/jobs/1/cancel
check "a bodiless POST needs no Content-Type (got $STATUS: $BODY)" sh -c '[ "$1" = 200 ] || [ "$1" = 409 ]' _ "$STATUS"
printf 'a,b\n0.5,0.25\n0.75,1\n' >"$T/d.csv"
code=$(curl -sS -o "$T/up.out" -w '%{http_code}' -X POST -H 'Content-Type: text/csv' \
    --data-binary "@$T/d.csv" "$URL/v1/datasets?name=up&format=csv&header=true")
check "a dataset upload keeps its own content types (text/csv: $code $(cat "$T/up.out"))" [ "$code" = 201 ]
stop_daemon

# ---- --allow-host adds names; --cors origins may change state --------------------------
start_daemon --threads 1 --allow-host vaed.lab --allow-host Box.Example --cors https://dash.example
api GET /v1/jobs "" -H "Host: vaed.lab:$PORT"
check "--allow-host vaed.lab: served (got $STATUS: $BODY)" [ "$STATUS" = 200 ]
api GET /v1/jobs "" -H "Host: box.example"
check "--allow-host is case-insensitive, repeatable (got $STATUS: $BODY)" [ "$STATUS" = 200 ]
api GET /v1/jobs "" -H "Host: other.lab:$PORT"
field_is "a name not allowed" 421 Host
api POST /v1/jobs "$SPEC" -H "Host: vaed.lab:$PORT" -H "Origin: http://vaed.lab:$PORT"
check "a POST from the allowed host's own origin (got $STATUS: $BODY)" [ "$STATUS" = 201 ]
api POST /v1/jobs "$SPEC" -H "Origin: https://dash.example" -H "Sec-Fetch-Site: cross-site"
check "a POST from a --cors origin is accepted (got $STATUS: $BODY)" [ "$STATUS" = 201 ]
api POST /v1/jobs "$SPEC" -H "Origin: https://other.example"
field_is "a POST from an origin not in --cors" 403 Origin
stop_daemon
finish
