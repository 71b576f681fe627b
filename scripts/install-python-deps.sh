#!/usr/bin/env bash
# Installs the Python side of the tests, for Debian's /usr/bin/python3:
# - the numerical parity check (scripts/torch_*.py): Debian's PyTorch (apt, only if
#   missing) and the pinned `safetensors` wheel into <repo>/.cache/pylib
#   (PYTHONPATH=.cache/pylib);
# - torchvision's AlexNet (alexnet import-weights, scripts/torchvision_*.py,
#   test/torchvision.test.ts): Debian's python3-torchvision (apt, only if missing);
# - the TensorBoard check (scripts/tensorboard_events.py, test/tensorboard.test.ts):
#   pip's pinned `tensorboard` and `boto3` (its S3 support), with their dependencies
#   pinned too, into <repo>/.cache/tensorboard (PYTHONPATH=.cache/tensorboard); numpy is
#   Debian's (python3-numpy, with PyTorch). About 80 MB, 10-15 s; offline afterwards.
# Idempotent: a second run only checks imports.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYLIB="$ROOT/.cache/pylib"
TBLIB="$ROOT/.cache/tensorboard"
PY=/usr/bin/python3
SAFETENSORS_VERSION=0.4.5
# Every package, pinned (installed --no-deps: nothing unpinned comes along). grpcio is
# what the `tensorboard` server needs beyond EventAccumulator; tensorboard-data-server
# (its optional Rust loader, 20 MB) is left out: TensorBoard falls back to Python.
TENSORBOARD_PACKAGES=(
  tensorboard==2.21.0 protobuf==7.36.2 absl-py==2.5.1 grpcio==1.85.4 markdown==3.11.4
  werkzeug==3.1.9 markupsafe==3.0.4 packaging==26.4
  boto3==1.44.18 botocore==1.44.18 s3transfer==0.19.3 jmespath==1.1.0
  python-dateutil==2.9.0.post0 six==1.17.0 urllib3==2.8.0
)
TENSORBOARD_IMPORTS='import boto3, numpy, grpc, werkzeug, tensorboard.main; from tensorboard.backend.event_processing import event_accumulator'
TENSORBOARD_STAMP="$TBLIB/.pinned"

tensorboard_ready() {
  [ "$(cat "$TENSORBOARD_STAMP" 2>/dev/null)" = "${TENSORBOARD_PACKAGES[*]}" ] &&
    PYTHONPATH="$TBLIB" "$PY" -c "$TENSORBOARD_IMPORTS" 2>/dev/null
}

# Fast path: everything already importable.
if PYTHONPATH="$PYLIB" "$PY" -c 'import torch, torchvision, safetensors.torch' 2>/dev/null && tensorboard_ready; then
  exit 0
fi

if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "install-python-deps: installing python3-torch (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q python3-torch python3-numpy
fi

if ! "$PY" -c 'import torchvision' 2>/dev/null; then
  echo "install-python-deps: installing python3-torchvision (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends python3-torchvision
fi

if command -v pip >/dev/null 2>&1; then PIP=(pip)
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
else echo "install-python-deps: no pip found on PATH" >&2; exit 1; fi

# The wheels must suit /usr/bin/python3, not whichever Python owns pip.
PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
pip_into() {
  local target="$1"; shift
  mkdir -p "$target"
  PIP_ROOT_USER_ACTION=ignore "${PIP[@]}" install -q --disable-pip-version-check --no-deps --upgrade \
    --only-binary=:all: --python-version "$PYVER" --target "$target" "$@"
}

if ! PYTHONPATH="$PYLIB" "$PY" -c 'import safetensors.torch' 2>/dev/null; then
  echo "install-python-deps: installing safetensors==$SAFETENSORS_VERSION into $PYLIB"
  pip_into "$PYLIB" "safetensors==$SAFETENSORS_VERSION"
  PYTHONPATH="$PYLIB" "$PY" -c 'import safetensors.torch'
fi

if ! tensorboard_ready; then
  echo "install-python-deps: installing ${TENSORBOARD_PACKAGES[0]} and boto3 into $TBLIB"
  rm -rf "$TBLIB"  # a changed pin leaves no stale package behind
  pip_into "$TBLIB" "${TENSORBOARD_PACKAGES[@]}"
  PYTHONPATH="$TBLIB" "$PY" -c "$TENSORBOARD_IMPORTS"
  echo "${TENSORBOARD_PACKAGES[*]}" > "$TENSORBOARD_STAMP"
fi
