#!/usr/bin/env bash
# Installs the Python side of the numerical parity check (scripts/torch_*.py):
# Debian's PyTorch for /usr/bin/python3 (apt, only if missing) and the pinned
# `safetensors` wheel into <repo>/.cache/pylib (use with PYTHONPATH=.cache/pylib).
# Idempotent: a second run only checks imports.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYLIB="$ROOT/.cache/pylib"
PY=/usr/bin/python3
SAFETENSORS_VERSION=0.4.5

# Fast path: both already importable (one interpreter start).
if PYTHONPATH="$PYLIB" "$PY" -c 'import torch, safetensors.torch' 2>/dev/null; then
  exit 0
fi

if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "install-python-deps: installing python3-torch (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q python3-torch python3-numpy
fi

if PYTHONPATH="$PYLIB" "$PY" -c 'import safetensors.torch' 2>/dev/null; then
  exit 0
fi

if command -v pip >/dev/null 2>&1; then PIP=(pip)
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
else echo "install-python-deps: no pip found on PATH" >&2; exit 1; fi

# The wheel must suit /usr/bin/python3, not whichever Python owns pip.
PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
mkdir -p "$PYLIB"
echo "install-python-deps: installing safetensors==$SAFETENSORS_VERSION into $PYLIB"
PIP_ROOT_USER_ACTION=ignore "${PIP[@]}" install -q --disable-pip-version-check --no-deps --upgrade \
  --only-binary=:all: --python-version "$PYVER" \
  --target "$PYLIB" "safetensors==$SAFETENSORS_VERSION"
PYTHONPATH="$PYLIB" "$PY" -c 'import safetensors.torch'
