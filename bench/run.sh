#!/usr/bin/env bash
# Strait's benchmark (issue 4): Strait beside HAProxy and nginx's stream module, on loopback.
#
#   sudo bash bench/run.sh [--no-build] [--build-dir DIR] [bench.py options...]
#
# Installs what it needs with apt-get (only what is missing: haproxy, nginx with its stream
# module, wrk, iperf3), builds Strait Release into build/ (or --build-dir; skipped with
# --no-build), then runs bench/bench.py, which does everything else and writes
# bench/results/last.txt and bench/results/last.json. Options for bench.py, e.g.:
#   --quick                      1 round, 2 s runs, 1000 held connections
#   --metrics ka,conn,bulk1      only these groups (ka c1 conn lb2 lb100 bulk1 bulk4 tls_ka tls_full
#                                tls_resume rss routes)
#   --targets haproxy,strait     only these proxies (direct is always measured)
#   --rounds N --duration S --hold N
# See bench/README.md.
set -euo pipefail

self=$(realpath "$0")
top=$(cd "$(dirname "$self")/.." && pwd)
cd "$top"
build="$top/build"
do_build=1
args=()
while [ $# -gt 0 ]; do
    case $1 in
    --no-build) do_build=0 ;;
    --build-dir) build=$(realpath -m "$2"); shift ;;
    --build-dir=*) build=$(realpath -m "${1#*=}") ;;
    -h | --help)
        sed -n '2,15p' "$self" | sed 's/^# \{0,1\}//'
        /usr/bin/python3 "$top/bench/bench.py" --help
        exit 0 ;;
    *) args+=("$1") ;;
    esac
    shift
done

say() { printf '==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/run.sh: run as root (sudo bash bench/run.sh): it installs packages, and" \
        "wrk runs in a private mount namespace to resolve bench.test" >&2
    exit 2
fi

# 1. packages, only those missing
need=()
for pkg in haproxy nginx libnginx-mod-stream wrk iperf3 openssl curl python3; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        need+=("$pkg")
    fi
done
if [ "${#need[@]}" -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian packages start system services; the bench runs its own instances and never
# uses those (they listen on other ports, or not at all in a container).

# 2. Strait, Release
if [ "$do_build" -eq 1 ]; then
    bash "$top/scripts/deps.sh" # Strait's build dependencies; does nothing when installed
    say "building Strait (Release) into $build"
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" -j2 --target strait-cp strait-dp
fi

# 3. the driver; 5,000 held connections per proxy need file descriptors
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
say "running bench/bench.py (RLIMIT_NOFILE $(ulimit -n))"
exec /usr/bin/python3 "$top/bench/bench.py" --strait-build "$build" "${args[@]}"
