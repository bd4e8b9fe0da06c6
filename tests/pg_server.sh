#!/bin/sh
# pg_server.sh — a throw-away PostgreSQL server for the tests and benchmarks, from
# Debian's postgresql package (make deps installs it).
#   sh tests/pg_server.sh start DIR     initdb in DIR/data (DIR is made; it must not
#                                       exist), start on a free loopback port, print the
#                                       server's URL (postgresql://vaed@127.0.0.1:PORT/postgres)
#   sh tests/pg_server.sh restart DIR   pg_ctl restart (fast): every connection is cut
#   sh tests/pg_server.sh stop DIR      stop it (DIR is left for the caller to remove)
# The server refuses to run as root, so as root (CI) initdb and pg_ctl run as the
# postgres user, and DIR is given to that user. Trust authentication on loopback only
# (its Unix socket is the owner's alone: 0700);
# fsync off (a test server: vaed's processes are killed in the tests, never this one).
# The server's log: DIR/server.log.
set -e
cmd=$1
dir=$2
[ -n "$dir" ] || { echo "usage: pg_server.sh start|restart|stop DIR" >&2; exit 2; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ ! -x "$bin/initdb" ]; then
    echo "pg_server: no PostgreSQL server found (/usr/lib/postgresql/*/bin/initdb): install Debian's postgresql (make deps)" >&2
    exit 1
fi
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case $cmd in
start)
    mkdir "$dir"
    [ "$(id -u)" != 0 ] || chown postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -U vaed --auth=trust --no-locale -E UTF8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    tries=0
    while :; do
        port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
        if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c unix_socket_permissions=0700" \
            start >"$dir/pg_ctl.log" 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ $tries -ge 5 ]; then
            echo "pg_server: the server did not start:" >&2
            tail -n 20 "$dir/server.log" >&2 || true
            exit 1
        fi
    done
    echo "$port" >"$dir/port"
    echo "postgresql://vaed@127.0.0.1:$port/postgres"
    ;;
restart)
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m fast restart >"$dir/pg_ctl.log" 2>&1 ||
        { tail -n 20 "$dir/server.log" >&2; exit 1; }
    ;;
stop)
    # a fast stop, and if that fails an immediate one: the caller removes DIR next
    as_pg "$bin/pg_ctl" -D "$dir/data" -w -t 60 -m fast stop >"$dir/pg_ctl.log" 2>&1 ||
        as_pg "$bin/pg_ctl" -D "$dir/data" -w -t 30 -m immediate stop >>"$dir/pg_ctl.log" 2>&1 || true
    ;;
*)
    echo "usage: pg_server.sh start|restart|stop DIR" >&2
    exit 2
    ;;
esac
