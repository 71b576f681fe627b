#!/usr/bin/env bash
# Installs a CUDA compiler toolkit (nvcc, the runtime, cuBLAS, CCCL headers) from NVIDIA's
# PyPI wheels into <repo>/.cache/cuda, so CI compiles the CUDA backend for sm_80/sm_90
# without a driver or a GPU. Its nvidia/cu13 folder is a toolkit root:
#   bin/nvcc, include/, lib/ (+ lib64 -> lib), nvvm/ (cicc, libdevice).
# native/build.sh passes that root to CMake when it exists. Idempotent: a second run finds
# the stamp and returns at once. Prints the toolkit root on stdout; logs go to stderr.
# Skip with ALEXNET_CUDA=OFF.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.cache/cuda"
TOOLKIT="$DEST/nvidia/cu13"
# The CUDA 13.0 update 2 set (nvcc 13.0.88 ships with cudart 13.0.96 and cuBLAS 13.0.2).
PACKAGES=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cublas==13.0.2.14
  nvidia-cuda-cccl==13.0.85
)
STAMP="$DEST/.installed"
want="${PACKAGES[*]}"

if [ "${ALEXNET_CUDA:-}" = "OFF" ]; then
  echo "install-cuda: skipped (ALEXNET_CUDA=OFF)" >&2
  exit 0
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$TOOLKIT/bin/nvcc" ]; then
  echo "$TOOLKIT"
  exit 0
fi

if command -v pip >/dev/null 2>&1; then PIP=(pip)
elif python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
else echo "install-cuda: no pip found on PATH" >&2; exit 1; fi

echo "install-cuda: installing ${PACKAGES[*]} into $DEST" >&2
t0=$(date +%s)
rm -rf "$DEST"
mkdir -p "$DEST"
PIP_ROOT_USER_ACTION=ignore "${PIP[@]}" install -q --disable-pip-version-check --no-deps \
  --only-binary=:all: --target "$DEST" "${PACKAGES[@]}" >&2

# Shape the wheels' tree like a toolkit install: CMake's FindCUDAToolkit and nvcc's own
# profile look for lib64/ and for unversioned library names.
[ -e "$TOOLKIT/lib64" ] || ln -s lib "$TOOLKIT/lib64"
for lib in cudart cublas cublasLt; do
  so="$(cd "$TOOLKIT/lib" && ls "lib$lib.so."* 2>/dev/null | head -1)"
  if [ -z "$so" ]; then echo "install-cuda: lib$lib.so.* missing from the wheels" >&2; exit 1; fi
  ln -sf "$so" "$TOOLKIT/lib/lib$lib.so"
done
"$TOOLKIT/bin/nvcc" --version >/dev/null
echo "$want" > "$STAMP"
echo "install-cuda: done in $(( $(date +%s) - t0 ))s ($(du -sh "$DEST" | cut -f1))" >&2
echo "$TOOLKIT"
