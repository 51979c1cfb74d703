#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for tests and local multi-worker sweeps.
#
#   scripts/postgres.sh start DIR PORT   # prints the storage URL on stdout
#   scripts/postgres.sh stop DIR
#
# Installs the Debian "postgresql" package when no server binaries are found.
# initdb refuses to run as root, so the cluster is created and run as the
# "postgres" user. The cluster lives entirely in DIR; delete DIR after "stop".
set -euo pipefail

usage() {
    echo "usage: $0 start DIR PORT | $0 stop DIR" >&2
    exit 2
}

find_bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
        fi
    done | sort -V | tail -n 1
}

install_postgres() {
    echo "installing postgresql from Debian packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y postgresql >&2; then
        apt-get update >&2
        apt-get install -y postgresql >&2
    fi
}

as_postgres() {
    if [ "$(id -u)" = "0" ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

cmd="${1:-}"
dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || usage

case "$cmd" in
start)
    port="${3:-}"
    [ -n "$port" ] || usage
    bindir="$(find_bindir)"
    if [ -z "$bindir" ]; then
        install_postgres
        bindir="$(find_bindir)"
    fi
    [ -n "$bindir" ] || { echo "no PostgreSQL server binaries found" >&2; exit 1; }
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    data="$dir/data"
    if [ "$(id -u)" = "0" ]; then
        chown postgres "$dir"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        as_postgres "$bindir/initdb" --no-sync -D "$data" -U postgres -A trust >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_postgres "$bindir/pg_ctl" -w -D "$data" -l "$dir/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" \
        start >&2 || { cat "$dir/server.log" >&2; exit 1; }
    if ! as_postgres "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'carbs_test'" postgres | grep -q 1; then
        as_postgres "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres carbs_test
    fi
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/carbs_test"
    ;;
stop)
    bindir="$(find_bindir)"
    dir="$(cd "$dir" && pwd)"
    if [ -n "$bindir" ] && [ -f "$dir/data/postmaster.pid" ]; then
        as_postgres "$bindir/pg_ctl" -w -D "$dir/data" -m fast stop >&2
    fi
    ;;
*)
    usage
    ;;
esac
