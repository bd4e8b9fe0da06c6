#!/bin/sh
# Install the Debian packages vaed needs to build, run and test, when any is missing.
# Fast when everything is there: one dpkg query per package, no network.
#   build and run:  compiler, pkg-config, libmicrohttpd, GnuTLS (SHA-256 of uploads),
#                   jansson, OpenBLAS, libxsmm (the backward multiplies where it wins:
#                   vae/kernels.h), SQLite, zlib, libpng; dataset-fashion-mnist and
#                   wamerican (the data the tests use)
#   tests:          curl, jq, sqlite3, python3 (e2e scripts), python3-numpy (the
#                   independent NumPy model of tests/e2e/model_numpy.py), prometheus (promtool checks
#                   GET /metrics), chromium and libjs-dygraphs (the dashboard in a real
#                   browser), nodejs/npm (Playwright and the OpenAPI validator, from npm)
#   fuzzing:        clang and its libFuzzer runtime (make fuzz, make fuzz-smoke)
#   benchmarks:     wrk (scripts/bench-api)
#   TLS test:       openssl (security_tls.sh makes its self-signed certificate)
#   PostgreSQL:     libpq-dev (the store's second database, store/sql.h) and postgresql
#                   (tests/pg_server.sh starts a throw-away server for the tests)
set -e
PKGS="build-essential pkg-config libmicrohttpd-dev libgnutls28-dev libjansson-dev libopenblas-dev libxsmm-dev
libsqlite3-dev zlib1g-dev libpng-dev dataset-fashion-mnist wamerican curl jq sqlite3
python3 python3-numpy prometheus chromium libjs-dygraphs clang libclang-rt-14-dev wrk
openssl libpq-dev postgresql"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
        missing="$missing $p"
done
# Node: some machines carry a nodejs build that bundles npm (and conflicts with
# Debian's npm package), so the commands are what counts, not the package names.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
