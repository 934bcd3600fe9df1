#!/usr/bin/env bash
# Strait's store and propagation benchmark (issue 6): admin writes per second on SQLite and
# on Postgres, and the write-to-every-DP latency with two CPs on one Postgres and four DPs.
#
#   bash bench/run-store.sh [--no-build] [--build-dir DIR] [store_bench.py options...]
#
# Installs Strait's dependencies (scripts/deps.sh: the build's, and the Postgres server),
# builds Strait Release into build/ (or --build-dir; skipped with --no-build), then runs
# bench/store_bench.py, which starts everything itself (a throwaway Postgres through
# scripts/pg-temp.sh, the CPs, the DPs) on loopback, stops it all at the end, prints the
# tables and writes bench/results/store-last.json. Options for store_bench.py, e.g.:
#   --quick                  1 round of 500 writes per backend and client count, 20
#                            propagation writes (default: 3 rounds of 2000, 100)
#   --writes N --rounds N --clients 1,8 --backends sqlite,postgres,postgres-async --pg-fast
#   --prop-writes N --dps-per-cp N --poll-ms MS --deadline S
#   --only writes|propagation  --keep (keep the work folder: logs, configs)
# See bench/README.md ("Store and propagation benchmark").
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
        sed -n '2,17p' "$self" | sed 's/^# \{0,1\}//'
        /usr/bin/python3 "$top/bench/store_bench.py" --help
        exit 0 ;;
    *) args+=("$1") ;;
    esac
    shift
done

say() { printf '==> %s\n' "$*"; }

if [ "$do_build" -eq 1 ]; then
    bash "$top/scripts/deps.sh" # does nothing when everything is installed
    say "building Strait (Release) into $build"
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" -j2 --target strait-cp strait-dp
fi

say "running bench/store_bench.py"
exec /usr/bin/python3 "$top/bench/store_bench.py" --strait-build "$build" "${args[@]}"
