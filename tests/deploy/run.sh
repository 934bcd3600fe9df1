#!/usr/bin/env bash
# The deploy/ tests (issue 17), run once per `scripts/test.sh` (not per build), with the
# Release binaries: each tests/deploy/setup-*.sh installs or fetches what its tests need
# (Debian packages, npm tools pinned in deploy/'s lockfile, a base image) into the cache
# folder, then pytest runs every tests/deploy/test_*.py.
#
#   bash tests/deploy/run.sh BUILD_DIR
#
# STRAIT_DEPLOY_CACHE (default: .deploy-cache/ at the top, git-ignored) keeps downloads
# and built images between the tests of one run, and between runs on one machine.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: run.sh BUILD_DIR}
export STRAIT_BIN_DIR=$build
export STRAIT_DEPLOY_CACHE=${STRAIT_DEPLOY_CACHE:-$top/.deploy-cache}
mkdir -p "$STRAIT_DEPLOY_CACHE"

for s in "$top"/tests/deploy/setup-*.sh; do
    [ -e "$s" ] || continue
    echo "deploy: $(basename "$s")"
    bash "$s"
done
cd "$top"
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/deploy
