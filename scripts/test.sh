#!/usr/bin/env bash
# Runs every test: installs the packages, builds Release (build/) and ASan+UBSan
# (build-asan/), and runs ctest (unit, system, lint) in both; builds ThreadSanitizer
# (build-tsan/) and runs the tests of the threaded parts there (ctest -L tsan: DP workers
# and runtime swap, the logger, the store pool, the snapshot builder, wait_for_sync, and
# the sync system tests, with tests/tsan.supp);
# then builds the libFuzzer targets with clang (build-fuzz/) and runs each for a bounded
# time (ctest -L fuzz: every parser that reads outside bytes, 20 s each, two at a time);
# then the deploy/ tests once, with the Release binaries (tests/deploy/run.sh: the units,
# the chart, the images and Compose).
# Exits non-zero if anything fails. This is the README's test command and what .ci/run runs.
#
#   bash scripts/test.sh            all four builds
#   STRAIT_TEST_BUILDS=release bash scripts/test.sh    only some (release asan tsan fuzz deploy)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=${STRAIT_JOBS:-2}
builds=${STRAIT_TEST_BUILDS:-"release asan tsan fuzz deploy"}

say() { printf '\n==> %s\n' "$*"; }

say "packages"
bash scripts/deps.sh

# Python for the system tests: Debian's interpreter, which has python3-pytest
# (`python3` on PATH may be another one, e.g. pyenv's).
python=/usr/bin/python3
"$python" -c 'import pytest' || { echo "test: $python has no pytest" >&2; exit 1; }

failed=()

# Postgres (issue 6): one throwaway server for every build (scripts/pg-temp.sh: a fresh
# cluster in a temporary folder, on a free loopback port, role and database `strait`).
# Its STRAIT_TEST_PG_* exports reach ctest, so the unit tests (test_cp_store's Postgres
# group) and the system tests (the `pg` fixture) use it; they fail, not skip, without it.
# Stopped and removed on exit, whatever the outcome.
pg_dir=$(mktemp -d /tmp/strait-pg.XXXXXX)
pg_stop() { bash "$top/scripts/pg-temp.sh" stop "$pg_dir" || true; }
trap pg_stop EXIT
say "postgres: temporary server ($pg_dir)"
if pg_env=$(bash scripts/pg-temp.sh start "$pg_dir"); then
    eval "$pg_env"
    echo "postgres on 127.0.0.1:$STRAIT_TEST_PG_PORT"
else
    failed+=("postgres: start")
fi

run_build() { # name dir ctest-args cmake-args...
    local name=$1 dir=$2 ctest_args=$3
    shift 3
    say "$name: configure and build ($dir)"
    if ! cmake -S "$top" -B "$dir" -DPYTHON3="$python" "$@" >/dev/null; then
        failed+=("$name: configure")
        return
    fi
    if ! cmake --build "$dir" -j"$jobs"; then
        failed+=("$name: build")
        return
    fi
    say "$name: ctest $ctest_args"
    # shellcheck disable=SC2086 # ctest_args is a list of options
    if ! (cd "$dir" && ctest --output-on-failure -j1 $ctest_args); then
        failed+=("$name: tests")
    fi
}

# libFuzzer needs clang while the main builds use gcc: a build that only builds the fuzz
# targets and runs each for a bounded time (tests/fuzz/CMakeLists.txt: 20 s, with memory
# limits), two at a time: about two minutes for the ten targets.
run_fuzz() { # dir
    local dir=$1
    say "fuzz: configure and build ($dir, clang)"
    if ! CC=clang cmake -S "$top" -B "$dir" -DPYTHON3="$python" -DSTRAIT_FUZZ=ON >/dev/null; then
        failed+=("fuzz: configure")
        return
    fi
    if ! cmake --build "$dir" -j"$jobs" --target strait_fuzz; then
        failed+=("fuzz: build")
        return
    fi
    say "fuzz: ctest -L fuzz"
    if ! (cd "$dir" && ctest --output-on-failure -j"$jobs" -L fuzz); then
        failed+=("fuzz: tests")
    fi
}

start=$SECONDS
for b in $builds; do
    case $b in
    release)
        run_build release "$top/build" "" -DCMAKE_BUILD_TYPE=Release
        ;;
    asan)
        STRAIT_TEST_TIMEOUT_MULT=${STRAIT_TEST_TIMEOUT_MULT:-3} \
            run_build asan "$top/build-asan" "" -DCMAKE_BUILD_TYPE=Debug \
            -DSTRAIT_SANITIZE=address,undefined -DSTRAIT_POOL_BYPASS=ON
        ;;
    tsan)
        # only the tests labelled tsan (tests/CMakeLists.txt): the threaded parts, kept
        # short; TSan slows the binaries down more than ASan does
        STRAIT_TEST_TIMEOUT_MULT=${STRAIT_TEST_TIMEOUT_MULT:-5} \
            run_build tsan "$top/build-tsan" "-L tsan" -DCMAKE_BUILD_TYPE=Debug \
            -DSTRAIT_SANITIZE=thread
        ;;
    fuzz)
        run_fuzz "$top/build-fuzz"
        ;;
    deploy)
        # after release (it uses build/'s binaries; builds them if that stage did not run)
        say "deploy: tests/deploy/run.sh"
        if ! cmake -S "$top" -B "$top/build" -DPYTHON3="$python" -DCMAKE_BUILD_TYPE=Release \
            >/dev/null || ! cmake --build "$top/build" -j"$jobs" ||
            ! bash tests/deploy/run.sh "$top/build"; then
            failed+=("deploy: tests")
        fi
        ;;
    *)
        echo "test: unknown build '$b' (release | asan | tsan | fuzz | deploy)" >&2
        exit 2
        ;;
    esac
done

# In CI (a fresh clone), also prove the README's first command: run-local.sh must leave a
# CP and a DP running whose example routes echo: the plain one (nc) and the TLS one through
# the seed's openssl line. Not on a developer's machine, where it would restart their own
# ./strait-local instance on the fixed ports.
if [ "${CI:-}" = true ] || [ "${STRAIT_TEST_RUN_LOCAL:-}" = 1 ]; then
    say "run-local.sh smoke test"
    if bash scripts/run-local.sh &&
        [ "$(printf 'hello\n' | nc -q1 127.0.0.1 5556)" = hello ] &&
        (printf 'hello tls\n'; sleep 1) |
        timeout 20 openssl s_client -quiet -no_ign_eof -connect localhost:5555 \
            -servername tlsbin-example 2>/dev/null | grep -qx 'hello tls'; then
        echo "run-local: the plain and the TLS example routes work"
    else
        failed+=("run-local.sh")
        tail -n 30 strait-local/*.log 2>/dev/null || true
    fi
    bash scripts/stop-local.sh --clean || failed+=("stop-local.sh")
fi

say "done in $((SECONDS - start))s"
if [ "${#failed[@]}" -ne 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "all tests passed"
