#!/usr/bin/env bash
# Builds the native library, the Node addon and the standalone C++ tests into
# native/build (Release). Incremental: a second run rebuilds only what changed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/build"
root="$(cd "$here/.." && pwd)"
# Absolute include paths (node-addon-api's own include_dir is relative to the cwd).
node_api_include="$(cd "$root" && node -p "require('node-api-headers').include_dir")"
addon_api_include="$(cd "$root" && node -p "require('path').dirname(require.resolve('node-addon-api/package.json'))")"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$here" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DNODE_API_INCLUDE="$node_api_include" -DNODE_ADDON_API_INCLUDE="$addon_api_include" >/dev/null
fi
cmake --build "$build" -j "$(nproc)"
