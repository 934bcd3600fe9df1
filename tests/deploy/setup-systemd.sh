#!/usr/bin/env bash
# tests/deploy/test_systemd.py needs systemd-analyze (Debian's systemd package; a
# container image may lack it). Idempotent: nothing to do when it is there.
set -euo pipefail
command -v systemd-analyze >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "setup-systemd: systemd-analyze is missing; install Debian's systemd as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends systemd
