#!/bin/sh
# Fails when a C file is not formatted by the checked-in .clang-format (CONVENTIONS.md §10).
top=${1:-.}
cd "$top" || exit 1
if ! command -v clang-format >/dev/null 2>&1; then
    echo "lint: clang-format is not installed (scripts/deps.sh installs it)"
    exit 1
fi
bad=0
for f in common/*.[ch] control-plane/*.[ch] data-plane/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c; do
    [ -f "$f" ] || continue
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f"
        bad=1
    fi
done
[ $bad -eq 0 ] && echo "lint: every C file is formatted"
exit $bad
