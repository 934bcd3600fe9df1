#!/usr/bin/env bash
# Stops what scripts/run-local.sh started (strait-dp, strait-cp, the echo server), by the
# pids it wrote under ./strait-local/. Keeps the configuration and the SQLite store;
# `scripts/stop-local.sh --clean` also removes ./strait-local/.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
local_dir="$top/strait-local"

stop() { # name pidfile
    local name=$1 pidfile=$2 pid i
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "stop-local: $name (pid $pid) did not stop in 10s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
        echo "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

stop strait-dp "$local_dir/dp/strait-dp.pid"
stop strait-cp "$local_dir/cp/strait-cp.pid"
stop "echo server" "$local_dir/echo.pid"

if [ "${1:-}" = --clean ]; then
    rm -rf "$local_dir"
    echo "removed $local_dir"
fi
