#!/usr/bin/env bash
# A throwaway Postgres for the tests (issue 6): a fresh cluster in a folder of its own, on
# a free loopback port, with a superuser role `strait` and a database `strait` it owns.
#
#   eval "$(bash scripts/pg-temp.sh start DIR)"   creates DIR, starts the server, prints
#                                                 the STRAIT_TEST_PG_* export lines
#   bash scripts/pg-temp.sh stop DIR              stops the server and removes DIR
#
# Server binaries: STRAIT_TEST_PG_BIN (default /usr/lib/postgresql/15/bin). initdb refuses
# to run as root, so as root every server binary runs as user postgres (runuser); as any
# other user they run as that user. Authentication is trust (loopback and the socket in
# DIR only). The server also accepts TLS (pg_ssl tests), with a certificate for localhost and
# 127.0.0.1 signed by a CA made for it, DIR/ca.pem (STRAIT_TEST_PG_CA). Diagnostics go to
# stderr; stdout carries only the export lines.
set -euo pipefail

bin=${STRAIT_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}

die() {
    echo "pg-temp: $*" >&2
    exit 1
}

usage() {
    echo "usage: pg-temp.sh start|stop DIR" >&2
    exit 2
}

# as_pg CMD...: runs a server binary as the cluster's owner.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

start() {
    local dir=$1 port tries=0

    [ -x "$bin/initdb" ] || die "no $bin/initdb (install postgresql-15)"
    if [ -e "$dir/data/postmaster.pid" ]; then
        die "$dir already holds a running (or crashed) server: stop it first"
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "no user postgres to run the server as"
        chown postgres: "$dir"
    fi
    chmod 700 "$dir"
    rm -rf "$dir/data"
    if ! as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    fi
    # TLS: a throwaway CA and a server certificate for localhost and 127.0.0.1
    if ! (cd "$dir" &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
            -subj /CN=strait-test-pg-ca -keyout ca.key -out ca.pem &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj /CN=localhost -keyout data/server.key -out server.csr &&
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 \
            -extfile server.ext -out data/server.crt) >"$dir/ssl.log" 2>&1; then
        cat "$dir/ssl.log" >&2
        die "could not make the server's TLS certificate"
    fi
    chmod 600 "$dir/data/server.key"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir/data/server.key" "$dir/data/server.crt"
    fi
    # The settings go in the cluster's configuration, so that a plain
    # `pg_ctl -D DIR/data -l DIR/pg.log start` (the outage tests) brings it back the same.
    cat >>"$dir/data/postgresql.conf" <<CONF

# pg-temp.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
ssl = on
include_if_exists = 'port.conf'
CONF
    # The port is free when picked but could be taken before the server binds it: retry.
    while :; do
        port=$(free_port)
        echo "port = $port" >"$dir/data/port.conf"
        chmod 644 "$dir/data/port.conf"
        if [ "$(id -u)" -eq 0 ]; then
            chown postgres: "$dir/data/port.conf"
        fi
        if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t 60 start >/dev/null; then
            break
        fi
        tries=$((tries + 1))
        if [ "$tries" -ge 3 ]; then
            tail -n 20 "$dir/pg.log" >&2 || true
            die "the server did not start"
        fi
    done
    if ! as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres \
        -d postgres >/dev/null <<'SQL'; then
CREATE ROLE strait LOGIN SUPERUSER CREATEDB;
CREATE DATABASE strait OWNER strait;
SQL
        die "could not create the role and database strait"
    fi
    echo "export STRAIT_TEST_PG_HOST=127.0.0.1"
    echo "export STRAIT_TEST_PG_PORT=$port"
    echo "export STRAIT_TEST_PG_USER=strait"
    echo "export STRAIT_TEST_PG_DIR=$dir"
    echo "export STRAIT_TEST_PG_BIN=$bin"
    echo "export STRAIT_TEST_PG_CA=$dir/ca.pem"
}

stop() {
    local dir=$1

    [ -d "$dir" ] || return 0
    if [ -e "$dir/data/postmaster.pid" ]; then
        as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null ||
            echo "pg-temp: pg_ctl stop failed (see $dir/pg.log)" >&2
    fi
    rm -rf "$dir"
}

[ $# -eq 2 ] || usage
case $1 in
start) start "$2" ;;
stop) stop "$2" ;;
*) usage ;;
esac
