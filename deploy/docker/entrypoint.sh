#!/bin/bash
# The image's entrypoint (issue 17): for every configuration key, a file named by
# STRAIT_<KEY>_FILE (a Docker or Kubernetes secret) becomes STRAIT_<KEY>, then the command
# runs. Setting both STRAIT_<KEY> and STRAIT_<KEY>_FILE is an error naming them, as in
# Kong's image. The keys come from the binaries' own --help table, so a key added to
# strait-cp or strait-dp needs no change here.
set -Eeo pipefail

strait_keys() {
    local bin
    for bin in strait-cp strait-dp; do
        "$bin" --help | sed -n '/^Configuration keys/,$ s/^  \([a-z][a-z0-9_]*\) = .*/\1/p'
    done | sort -u
}

file_env() {
    local var="$1"
    local file_var="${1}_FILE"
    if [ -z "${!file_var:-}" ]; then
        return 0
    fi
    if [ -n "${!var:-}" ]; then
        echo >&2 "error: both $var and $file_var are set (but are exclusive)"
        exit 1
    fi
    if [ ! -f "${!file_var}" ] || [ ! -r "${!file_var}" ]; then
        echo >&2 "error: $file_var: cannot read ${!file_var}"
        exit 1
    fi
    local val
    val=$(<"${!file_var}")
    export "$var=$val"
    unset "$file_var"
}

keys=$(strait_keys)
if [ -z "$keys" ]; then
    echo >&2 "error: no configuration keys in strait-cp/strait-dp --help"
    exit 1
fi
for key in $keys; do
    file_env "STRAIT_${key^^}"
done

exec "$@"
