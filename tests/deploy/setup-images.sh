#!/usr/bin/env bash
# What tests/deploy/test_images.py needs (issue 17, images): the Debian tools that make
# the base image from the Debian archive (mmdebstrap), and build and run the Dockerfile
# without a container daemon (podman, buildah). Idempotent: nothing to do when present.
# The base image itself, and the image built from deploy/docker/Dockerfile, are made by
# the tests' session fixture (once per run, kept in $STRAIT_DEPLOY_CACHE/images/).
# tests/deploy/test_compose.py needs python3-yaml, which scripts/deps.sh installs.
set -euo pipefail

PACKAGES=(mmdebstrap podman buildah python3-yaml)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup-images: ${PACKAGES[*]} already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup-images: missing ${missing[*]}; run as root" >&2
    exit 1
fi
echo "setup-images: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
