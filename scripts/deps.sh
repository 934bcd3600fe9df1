#!/usr/bin/env bash
# Installs every Debian package Strait's build, tests and local run need.
# Idempotent: when everything is installed already it does nothing (no apt-get at all).
# Run as root (or through sudo).
set -euo pipefail

PACKAGES=(
    # build
    cmake pkg-config gcc make libc6-dev
    libssl-dev openssl
    libprotobuf-c-dev protobuf-c-compiler
    libnng-dev
    libpq-dev libsqlite3-dev
    libmicrohttpd-dev libgnutls28-dev libjansson-dev libyaml-dev
    libc-ares-dev
    # tests and lint
    libcmocka-dev python3 python3-pytest python3-yaml python3-dnspython clang-format
    # libFuzzer targets (build-fuzz/): clang, and the runtime that holds libFuzzer
    clang libclang-rt-14-dev
    # Postgres server for the store tests (issue 6); the test script starts it itself
    postgresql
    # local run and tests: admin API calls, process and socket tools
    curl procps iproute2 netcat-openbsd ca-certificates
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo "$0" "$@"
    fi
    echo "deps: missing packages (${missing[*]}); run this script as root" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# policy-rc.d keeps package scripts from starting services (postgresql) on install.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: done"
