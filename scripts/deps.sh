#!/bin/sh
# Install the Debian packages vaed needs to build, run and test, when any is missing.
# Fast when everything is there: one dpkg query, no network.
set -e
PKGS="build-essential pkg-config libmicrohttpd-dev libjansson-dev libopenblas-dev
libsqlite3-dev zlib1g-dev libpng-dev dataset-fashion-mnist wamerican curl jq sqlite3
python3"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
