#!/usr/bin/env bash
# Builds the native library, the Node addon and the standalone C++ tests into
# native/build (Release). Incremental: a second run rebuilds only what changed.
# The CUDA backend (libalexnet_cuda.so, test_cuda, bench_cuda) is built too when a CUDA
# toolkit is found: ALEXNET_CUDA_ROOT, else the one scripts/install-cuda.sh puts in
# .cache/cuda, else CUDA_HOME or nvcc on the PATH. ALEXNET_CUDA=OFF skips it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/build"
root="$(cd "$here/.." && pwd)"
# Absolute include paths (node-addon-api's own include_dir is relative to the cwd).
node_api_include="$(cd "$root" && node -p "require('node-api-headers').include_dir")"
addon_api_include="$(cd "$root" && node -p "require('path').dirname(require.resolve('node-addon-api/package.json'))")"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cuda_mode="${ALEXNET_CUDA:-AUTO}"
cuda_root="${ALEXNET_CUDA_ROOT:-}"
if [ -z "$cuda_root" ] && [ -x "$root/.cache/cuda/nvidia/cu13/bin/nvcc" ]; then
  cuda_root="$root/.cache/cuda/nvidia/cu13"
fi
args=(-DCMAKE_BUILD_TYPE=Release -DNODE_API_INCLUDE="$node_api_include"
      -DNODE_ADDON_API_INCLUDE="$addon_api_include" -DALEXNET_CUDA="$cuda_mode"
      -DALEXNET_CUDA_ROOT="$cuda_root")
# Configure on the first build, and again when the CUDA settings change (a toolkit
# installed after the first build, or ALEXNET_CUDA toggled).
stamp="$build/.configure-args"
if [ ! -f "$build/CMakeCache.txt" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${args[*]}" ]; then
  cmake -S "$here" -B "$build" "${generator[@]}" "${args[@]}" | { grep -E 'CUDA backend:|OpenBLAS:' || true; }
  echo "${args[*]}" > "$stamp"
fi
cmake --build "$build" -j "$(nproc)"
