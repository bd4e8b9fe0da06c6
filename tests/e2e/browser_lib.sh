# browser_lib.sh — what the browser tests (dashboard*.sh, security_tls.sh) need before
# they start: Debian's Chromium, node and npm, Debian's dygraphs (the daemon serves it),
# and playwright-core, installed from the committed lock file into
# tests/browser/node_modules when it is missing. A missing piece is a loud failure,
# never a skip. On top of lib.sh (run.sh skips *lib.sh).
#   browser_ready   checks and installs the above; sets CHROMIUM
#   browser_test NAME [VAR=value...]   runs tests/browser/NAME.test.js with VAED_URL,
#                   CHROMIUM, SHOT (test-output/NAME.png) and the given variables set;
#                   one check, failing with the browser's output above it
. tests/e2e/lib.sh

loud() {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!!! browser test cannot run: $*" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    exit 1
}

browser_test() {
    bt_name=$1; shift
    mkdir -p "${TEST_OUT:-test-output}"
    if env VAED_URL="$URL" CHROMIUM="$CHROMIUM" SHOT="${TEST_OUT:-test-output}/$bt_name.png" \
        "$@" node "tests/browser/$bt_name.test.js"; then
        ok
    else
        fail "browser test $bt_name (output above)"
    fi
}

browser_ready() {
    CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
    [ -x "$CHROMIUM" ] || loud "$CHROMIUM not found (Debian package chromium; scripts/deps.sh installs it)"
    command -v node >/dev/null 2>&1 || loud "node not found (Debian packages nodejs and npm)"
    command -v npm >/dev/null 2>&1 || loud "npm not found (Debian package npm)"
    DYG=${VAED_DYGRAPHS_DIR:-/usr/share/javascript/dygraphs}
    [ -f "$DYG/dygraph.min.js" ] || loud "$DYG/dygraph.min.js not found (Debian package libjs-dygraphs)"
    want=$(jq -r '.packages["node_modules/playwright-core"].version' tests/browser/package-lock.json)
    have=$(jq -r .version tests/browser/node_modules/playwright-core/package.json 2>/dev/null)
    if [ "$have" != "$want" ]; then
        echo "installing playwright-core $want into tests/browser/node_modules (npm ci)"
        (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) ||
            loud "npm ci failed in tests/browser (no network? npm registry unreachable?)"
    fi
}
