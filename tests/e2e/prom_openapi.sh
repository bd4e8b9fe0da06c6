# prom_openapi.sh — GET /metrics and GET /v1/openapi.json against a live daemon.
#
# /metrics: every scrape passes `promtool check metrics` (Debian package prometheus);
# a running job has its series, labelled with its id and its (escaped) name, with a
# step and a beta that lie between those GET /v1/jobs/{id} reports just before and just
# after the scrape (beta rises every step under a linear warm-up, so this brackets the
# value), and a step that grows between two scrapes; request counters and latency
# histograms count exactly the requests this test made; vaed_jobs{state} matches
# GET /v1/jobs?status=...; a job that stops running (cancelled, completed) has no
# series left, and vaed_jobs{state="completed"} is 1 after one job completed.
# /v1/openapi.json: served as the file api/openapi.json is, and valid OpenAPI 3.0 by
# @seriousme/openapi-schema-validator (npm, installed under build/npm-openapi).
#
# A missing promtool or npm makes the checks that need them SKIP loudly, and FAIL when
# $CI is set.
. tests/e2e/lib.sh
e2e_init

need_tool() { # what: say so loudly; a failure in CI, a skip elsewhere
    echo "" >&2
    echo "########################################################################" >&2
    echo "### SKIPPED: $1" >&2
    echo "########################################################################" >&2
    if [ -n "$CI" ]; then fail "$1 (required when CI is set)"; fi
}

PROMTOOL=$(command -v promtool || true)
[ -n "$PROMTOOL" ] || need_tool "promtool not found: apt-get install prometheus (scripts/deps.sh)"

# scrape FILE: GET /metrics into FILE (body) and FILE.h (headers); checks it with promtool
scrape() {
    curl -sS -m 30 -D "$1.h" -o "$1" "$URL/metrics" || { fail "GET /metrics failed"; return 1; }
    head -n 1 "$1.h" | grep -q ' 200' || fail "GET /metrics: $(head -n 1 "$1.h")"
    if [ -n "$PROMTOOL" ]; then
        if "$PROMTOOL" check metrics <"$1" >"$1.lint" 2>&1; then ok; else
            fail "promtool check metrics on $1: $(cat "$1.lint")"
        fi
    fi
}
# val FILE 'SERIES{labels}': the sample value, or "" when the series is absent
# (through the environment: awk -v would undo the label escapes)
val() { VAL_SERIES="$2 " awk 'index($0, ENVIRON["VAL_SERIES"]) == 1 { print $NF; exit }' "$1"; }
# num_le A B: A <= B, as numbers
num_le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

start_daemon --threads 1 --workers 1

# ---- /v1/openapi.json --------------------------------------------------------------
api GET /v1/openapi.json
expect_status 200
printf '%s' "$BODY" >"$T/openapi.json"
jq -S . "$T/openapi.json" >"$T/served.sorted"
jq -S . api/openapi.json >"$T/repo.sorted"
check "openapi.json is the repository's api/openapi.json" cmp -s "$T/served.sorted" "$T/repo.sorted"
ct=$(curl -sS -o /dev/null -w '%{content_type}' "$URL/v1/openapi.json")
check "openapi.json Content-Type is application/json ($ct)" [ "$ct" = "application/json" ]
check "openapi.json declares 3.0.3" [ "$(jq -r .openapi "$T/openapi.json")" = 3.0.3 ]

NPMDIR=build/npm-openapi
validator_ready() { [ -f "$NPMDIR/node_modules/@seriousme/openapi-schema-validator/package.json" ] &&
    cmp -s tests/e2e/openapi-validate/package.json "$NPMDIR/package.json" &&
    cmp -s tests/e2e/openapi-validate/validate.mjs "$NPMDIR/validate.mjs"; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    need_tool "node/npm not found: cannot validate the OpenAPI document (apt-get install nodejs npm)"
else
    if ! validator_ready; then
        # install beside, then move into place, so two runs never share a half-installed tree
        tmp="$NPMDIR.tmp.$$"
        rm -rf "$tmp" && mkdir -p "$tmp" &&
            cp tests/e2e/openapi-validate/package.json tests/e2e/openapi-validate/validate.mjs "$tmp/" &&
            (cd "$tmp" && npm install --no-audit --no-fund --loglevel=error >npm.log 2>&1) &&
            rm -rf "$NPMDIR" && mv "$tmp" "$NPMDIR" || { cat "$tmp/npm.log" 2>/dev/null; rm -rf "$tmp"; }
    fi
    if validator_ready; then
        if node "$NPMDIR/validate.mjs" "$T/openapi.json" >"$T/validate.log" 2>&1; then ok; else
            fail "OpenAPI validation: $(head -c 3000 "$T/validate.log")"
        fi
        # the validator must be able to say no: a parameter in a place that does not exist
        jq '.components.parameters.id.in = "nowhere"' "$T/openapi.json" >"$T/bad.json"
        if node "$NPMDIR/validate.mjs" "$T/bad.json" >/dev/null 2>&1; then
            fail "the validator accepted a broken document"
        else ok; fi
    else
        need_tool "npm install of @seriousme/openapi-schema-validator failed (offline?)"
    fi
fi

# ---- a running job's series ----------------------------------------------------------
# A name that needs label escaping: a double quote and a backslash.
LONG='{"name": "long \"q\" \\ job", "dataset": {"name": "fashion-mnist", "limit": 1000},
       "model": {"encoder": [64], "latent": 4, "decoder": [64]},
       "schedule": {"kind": "linear", "from": 0, "to": 1, "duration": 5000},
       "train": {"epochs": 100000, "batch_size": 50, "seed": 5, "threads": 1},
       "checkpoint": {"every_seconds": 0, "at_epoch_end": false}}'
api POST /v1/jobs "$LONG"
expect_status 201
A=$(jqb .id)
wait_step "$A" 5 60 || fail "job $A did not start stepping"
LBL="id=\"$A\",name=\"long \\\"q\\\" \\\\ job\""

api GET "/v1/jobs/$A"
s0=$(jqb .step); b0=$(jqb .beta)
scrape "$T/m1"
api GET "/v1/jobs/$A"
s1=$(jqb .step); b1=$(jqb .beta)
grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$T/m1.h" && ok ||
    fail "Content-Type: $(grep -i '^content-type' "$T/m1.h")"
for m in beta loss xent kl elbo step epoch samples_per_second; do
    v=$(val "$T/m1" "vaed_job_$m{$LBL}")
    check "vaed_job_$m{$LBL} present ($(grep "^vaed_job_$m" "$T/m1" | head -n 2))" [ -n "$v" ]
done
pstep=$(val "$T/m1" "vaed_job_step{$LBL}")
pbeta=$(val "$T/m1" "vaed_job_beta{$LBL}")
check "scraped step $pstep within GET's $s0..$s1" sh -c "[ '$s0' -le '$pstep' ] && [ '$pstep' -le '$s1' ]"
check "scraped beta $pbeta within GET's $b0..$b1" sh -c "awk 'BEGIN{exit !($b0 <= $pbeta && $pbeta <= $b1 && $pbeta > 0)}'"
xent=$(val "$T/m1" "vaed_job_xent{$LBL}"); kl=$(val "$T/m1" "vaed_job_kl{$LBL}")
elbo=$(val "$T/m1" "vaed_job_elbo{$LBL}"); loss=$(val "$T/m1" "vaed_job_loss{$LBL}")
check "elbo $elbo = -(xent $xent + kl $kl)" \
    awk "BEGIN { d = $elbo + $xent + $kl; exit !(d < 1e-6 * ($xent + 1) && d > -1e-6 * ($xent + 1)) }"
check "loss $loss = xent + beta * kl" \
    awk "BEGIN { d = $loss - ($xent + $pbeta * $kl); exit !(d < 1e-4 * ($xent + 1) && d > -1e-4 * ($xent + 1)) }"

check "vaed_jobs{state=\"running\"} is 1" [ "$(val "$T/m1" 'vaed_jobs{state="running"}')" = 1 ]
check "vaed_job_epoch = step / 20" \
    awk "BEGIN { e = $(val "$T/m1" "vaed_job_epoch{$LBL}"); d = e - $pstep / 20; exit !(d < 1e-9 && d > -1e-9) }"

wait_step "$A" $((s1 + 10)) 60 || fail "job $A stopped stepping"
# the rate is measured over a second or more: wait until the job reports one
i=0
while api GET "/v1/jobs/$A" && [ "$(jqb '.samples_per_sec // 0 | . > 0')" != true ] && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i + 1))
done
scrape "$T/m2"
pstep2=$(val "$T/m2" "vaed_job_step{$LBL}")
check "step grows between scrapes ($pstep → $pstep2)" sh -c "[ '$pstep2' -gt '$pstep' ]"
sps=$(val "$T/m2" "vaed_job_samples_per_second{$LBL}")
check "samples_per_second $sps > 0 once the job has run a while" awk "BEGIN { exit !($sps > 0) }"

# ---- request counters --------------------------------------------------------------
for i in 1 2 3 4 5 6 7; do curl -sS -o /dev/null "$URL/healthz"; done
curl -sS -o /dev/null "$URL/v1/jobs/999999"
curl -sS -o /dev/null "$URL/v1/jobs/$A/checkpoints/123456789"
curl -sS -o /dev/null "$URL/no/such/path"
curl -sS -o /dev/null "$URL/metrics?x=1"
scrape "$T/m3"
c() { val "$T/m3" "vaed_http_requests_total{$1}"; }
check "healthz 200 counted 7 times ($(c 'method="GET",route="/healthz",code="200"'))" \
    [ "$(c 'method="GET",route="/healthz",code="200"')" = 7 ]
check "GET /v1/jobs/{id} 404 counted once" [ "$(c 'method="GET",route="/v1/jobs/{id}",code="404"')" = 1 ]
check "checkpoint download 404 counted under the {step} template" \
    [ "$(c 'method="GET",route="/v1/jobs/{id}/checkpoints/{step}",code="404"')" = 1 ]
check "unmatched 404 counted once" [ "$(c 'method="",route="unmatched",code="404"')" = 1 ]
# two scrapes before this one (m1, m2; a scrape is counted when it completes), and
# one refused for its unknown parameter
check "GET /metrics 200 counted 2 times before the third scrape ($(c 'method="GET",route="/metrics",code="200"'))" \
    [ "$(c 'method="GET",route="/metrics",code="200"')" = 2 ]
check "GET /metrics?x=1 answered 400" [ "$(c 'method="GET",route="/metrics",code="400"')" = 1 ]
check "POST /v1/jobs 201 counted once" [ "$(c 'method="POST",route="/v1/jobs",code="201"')" = 1 ]
H='method="GET",route="/healthz"'
check "healthz histogram _count 7" [ "$(val "$T/m3" "vaed_http_request_duration_seconds_count{$H}")" = 7 ]
check "healthz histogram le=+Inf 7" [ "$(val "$T/m3" "vaed_http_request_duration_seconds_bucket{$H,le=\"+Inf\"}")" = 7 ]
check "healthz buckets are cumulative (never decrease) and end at the count" sh -c "
    grep -F 'vaed_http_request_duration_seconds_bucket{$H,' '$T/m3' |
    awk '{ v = \$NF + 0; if (v < last) bad = 1; last = v; n++ } END { exit !(n == 12 && !bad && last == 7) }'"
hsum=$(val "$T/m3" "vaed_http_request_duration_seconds_sum{$H}")
check "healthz latency sum $hsum in (0, 7 s)" awk "BEGIN { exit !($hsum > 0 && $hsum < 7) }"
api GET /healthz
check "build_info version is /healthz's" [ "$(val "$T/m3" "vaed_build_info{version=\"$(jqb .version)\"}")" = 1 ]
check "store committed something" awk "BEGIN { exit !($(val "$T/m3" vaed_store_commits_total) > 0) }"
check "no store write errors" [ "$(val "$T/m3" vaed_store_write_errors_total)" = 0 ]
check "write lag present" [ -n "$(val "$T/m3" vaed_store_write_lag_seconds)" ]
check "pending ops present" [ -n "$(val "$T/m3" vaed_store_pending_ops)" ]

# ---- series go when the job stops running ------------------------------------------
api POST "/v1/jobs/$A/cancel"
expect_status 200
SHORT='{"name": "short", "dataset": {"name": "fashion-mnist", "limit": 200},
        "model": {"encoder": [16], "latent": 2, "decoder": [16]},
        "train": {"epochs": 1, "batch_size": 50, "seed": 1, "threads": 1}}'
api POST /v1/jobs "$SHORT"
expect_status 201
B=$(jqb .id)
wait_state "$B" completed 120 || fail "job $B did not complete"
scrape "$T/m4"
check "no per-job samples once nothing runs ($(grep -c '^vaed_job_' "$T/m4") lines)" \
    [ "$(grep -c '^vaed_job_' "$T/m4")" = 0 ]
check "the job families keep their HELP/TYPE" grep -q '^# TYPE vaed_job_beta gauge$' "$T/m4"
check "vaed_jobs{state=\"completed\"} is 1" [ "$(val "$T/m4" 'vaed_jobs{state="completed"}')" = 1 ]
check "vaed_jobs{state=\"cancelled\"} is 1" [ "$(val "$T/m4" 'vaed_jobs{state="cancelled"}')" = 1 ]
for st in queued running paused interrupted failed; do
    api GET "/v1/jobs?status=$st"
    check "vaed_jobs{state=\"$st\"} equals the list's total" \
        [ "$(val "$T/m4" "vaed_jobs{state=\"$st\"}")" = "$(jqb .total)" ]
done

stop_daemon
finish
