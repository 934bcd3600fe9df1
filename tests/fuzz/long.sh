#!/usr/bin/env bash
# Long fuzz runs (issue 14): each target for an hour or 10 million runs, whichever comes
# first, over its committed corpus plus a working corpus kept between runs. A crash does
# not end a target's run: it is counted, its input kept, and the target restarted with
# what is left of its time and runs (at most 5 findings each, as the same bug is often
# found again from another input). At the end, a table of runs, time, speed, peak memory and
# crashes per target (OUT/summary.md), the figures docs/fuzzing.md records.
#
#   bash tests/fuzz/long.sh                        every target, 1 h / 10M runs each
#   bash tests/fuzz/long.sh -t 300 cp_form st_decl two targets, 5 minutes each
#   bash tests/fuzz/long.sh -j 2 -r 1000000        two targets at a time, 1M runs each
#
# Options: -t SECONDS per target (3600), -r RUNS per target (10000000), -j targets at a
# time (1), -b BUILD folder (build-fuzz/, configured with clang and built if needed),
# -o OUT folder (BUILD/tests/fuzz/long/), -h this help. The memory limits are the CI
# runs' malloc limit (64 MiB a block) and 2 GiB of RSS (a long run's corpus grows).
# Exits non-zero when any target had a finding (crash, leak, timeout, out-of-memory).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
secs=3600
runs=10000000
jobs=1
build="$top/build-fuzz"
out=""
max_crashes=5

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

while getopts "t:r:j:b:o:h" opt; do
    case $opt in
    t) secs=$OPTARG ;;
    r) runs=$OPTARG ;;
    j) jobs=$OPTARG ;;
    b) build=$(cd "$OPTARG" 2>/dev/null && pwd || echo "$OPTARG") ;;
    o) out=$OPTARG ;;
    h)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
done
shift $((OPTIND - 1))
out=${out:-"$build/tests/fuzz/long"}

all=$(sed -n 's/^st_add_fuzz(\([a-z_]*\)).*/\1/p' "$top/tests/fuzz/CMakeLists.txt")
targets=${*:-$all}
for t in $targets; do
    if ! grep -qx "$t" <<<"$all"; then
        echo "long.sh: no target '$t' (targets: $(tr '\n' ' ' <<<"$all"))" >&2
        exit 2
    fi
done

if [ ! -f "$build/CMakeCache.txt" ]; then
    CC=clang cmake -S "$top" -B "$build" -DSTRAIT_FUZZ=ON -DPYTHON3=/usr/bin/python3 >/dev/null
fi
cmake --build "$build" -j"${STRAIT_JOBS:-2}" --target strait_fuzz >/dev/null
mkdir -p "$out"

# stat <log> <name>: the last value libFuzzer's -print_final_stats gave for name (0: none)
stat() {
    sed -n "s/^stat::$2: *//p" "$1" | tail -n1 | grep . || echo 0
}

# One target: runs libFuzzer until the time or the runs are used up, restarting after a
# crash; writes OUT/<t>/result (runs seconds peak_rss crashes).
run_target() {
    local t=$1 dir="$out/$1" bin="$build/tests/fuzz/fuzz_$1"
    local done_runs=0 start=$SECONDS left_s left_r crashes=0 peak=0 rc n rss log
    mkdir -p "$dir/corpus" "$dir/artifacts"
    while :; do
        left_s=$((secs - (SECONDS - start)))
        left_r=$((runs - done_runs))
        if [ "$left_s" -le 0 ] || [ "$left_r" -le 0 ] || [ "$crashes" -ge "$max_crashes" ]; then
            break
        fi
        log="$dir/log.$((crashes + 1))"
        rc=0
        "$bin" -max_total_time="$left_s" -runs="$left_r" -max_len=20000 -timeout=10 \
            -rss_limit_mb=2048 -malloc_limit_mb=64 -print_final_stats=1 \
            -artifact_prefix="$dir/artifacts/" "$dir/corpus" "$top/tests/fuzz/corpus/$t" \
            >"$log" 2>&1 || rc=$?
        n=$(stat "$log" number_of_executed_units)
        rss=$(stat "$log" peak_rss_mb)
        done_runs=$((done_runs + n))
        [ "$rss" -gt "$peak" ] && peak=$rss
        if [ "$rc" -eq 0 ]; then
            break
        fi
        crashes=$((crashes + 1))
        echo "long.sh: $t: finding $crashes ($(grep -m1 -E '^SUMMARY|ERROR: libFuzzer' "$log" || echo "exit $rc")), see $log"
    done
    echo "$done_runs $((SECONDS - start)) $peak $crashes" >"$dir/result"
    echo "long.sh: $t: $done_runs runs in $((SECONDS - start)) s, $crashes findings"
}

echo "long.sh: $(wc -w <<<"$targets") targets, ${secs} s or ${runs} runs each, $jobs at a time; output in $out"
for t in $targets; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    run_target "$t" &
done
wait

{
    echo "| target | runs | seconds | runs/s | peak RSS (MB) | findings | inputs kept |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    for t in $targets; do
        read -r r s p c <"$out/$t/result"
        files=$(find "$out/$t/artifacts" -type f -printf '%f ')
        echo "| $t | $r | $s | $((s > 0 ? r / s : r)) | $p | $c | ${files:--} |"
    done
} >"$out/summary.md"
cat "$out/summary.md"
total=0
for t in $targets; do
    read -r _ _ _ c <"$out/$t/result"
    total=$((total + c))
done
[ "$total" -eq 0 ]
