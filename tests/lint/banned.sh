#!/bin/sh
# Fails when a banned libc function is called in Strait's C sources (CONVENTIONS.md §11).
top=${1:-.}
hits=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|strncpy)[[:space:]]*\(' \
    "$top"/common/*.[ch] "$top"/control-plane/*.[ch] "$top"/data-plane/*.[ch] 2>/dev/null)
if [ -n "$hits" ]; then
    echo "banned functions used:"
    echo "$hits"
    exit 1
fi
echo "lint: no banned functions"
