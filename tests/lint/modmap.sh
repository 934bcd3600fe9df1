#!/bin/sh
# Fails when a .c file of common/, control-plane/ or data-plane/ has no line in the module
# map of docs/internals.md (CONVENTIONS.md §12; issue 15): its name without .c, in
# backquotes, in the first cell of a table row (`| `dp_pipe` | ... |`, or one of several:
# `| `cp_main`, `cp_cli` | ... |`).
top=${1:-.}
map="$top/docs/internals.md"
if [ ! -f "$map" ]; then
    echo "lint: no $map"
    exit 1
fi
# the first cells of the map's rows
cells=$(awk -F'|' '/^\|/ { print $2 }' "$map")
missing=""
for f in "$top"/common/*.c "$top"/control-plane/*.c "$top"/data-plane/*.c; do
    [ -f "$f" ] || continue
    stem=$(basename "$f" .c)
    if ! printf '%s\n' "$cells" | grep -qF "\`$stem\`"; then
        missing="$missing ${f#"$top"/}"
    fi
done
if [ -n "$missing" ]; then
    echo "not in the module map of docs/internals.md (add a row, or name it in one):"
    for m in $missing; do
        echo "  $m"
    done
    exit 1
fi
echo "lint: every module is in docs/internals.md"
