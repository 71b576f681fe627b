#!/usr/bin/env bash
# Sets up everything a fresh machine needs, idempotently and quickly on a second run:
# Debian packages (compilers, CMake, OpenBLAS for OpenMP, PyTorch and torchvision for the
# parity tests), npm packages from the lockfile, the safetensors Python package, the native
# addon and the TypeScript build. Used by `npm test`, `npm run demo` and .ci/run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

need=()
for pkg in g++ cmake ninja-build libopenblas-openmp-dev python3-torch python3-torchvision python3-numpy python3-pil dataset-fashion-mnist; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: not root: run 'sudo apt-get install -y ${need[*]}' and try again" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm packages: reinstall when the lockfile changed since the last install.
stamp=node_modules/.package-lock.sha
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  echo "setup: npm ci"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > "$stamp"
fi

bash scripts/install-python-deps.sh
bash scripts/install-cuda.sh >/dev/null  # nvcc + cuBLAS from PyPI into .cache/cuda: the build compiles the CUDA backend
echo "setup: building the native library"
bash native/build.sh | grep -vE '^\[[0-9]+/[0-9]+\]|^ninja: no work' || true
test -f native/build/alexnet.node
bash infra/install-services.sh  # Temporal dev server and MinIO, built once per machine
bash infra/install-deploy-tools.sh  # helm, KEDA's schemas, the manifest validator: built once per machine
echo "setup: compiling TypeScript"
npx tsc -p tsconfig.json
