#!/usr/bin/env bash
# Kernel-level profile of one training step of the paper's AlexNet (one column, one stream,
# after two warm-up steps) with Nsight Compute: every kernel's duration, in launch order and
# summed by kernel name, per precision. For finding where a step's time goes when the
# per-layer times of `bench_cuda --layers` are not enough.
# Needs native/build-gpu from scripts/gpu-check.sh and ncu (PATH, or the toolkit's bin/),
# on a machine whose GPU counters are readable (not under gVisor).
#   OUT=/some/dir bash scripts/gpu-kernel-profile.sh [precisions=fp32,bf16] [batch=128]
# Writes $OUT/kernels-<precision>.txt (sum by name, then the launch sequence) and
# $OUT/ncu-<precision>.csv (ncu's raw rows).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
build="${ALEXNET_GPU_BUILD:-$root/native/build-gpu}"
precisions="${1:-fp32,bf16}"
batch="${2:-128}"
ncu="$(command -v ncu || true)"
for guess in "${CUDA_HOME:-/usr/local/cuda}/bin/ncu" /usr/local/cuda/bin/ncu; do
  [ -z "$ncu" ] && [ -x "$guess" ] && ncu="$guess"
done
[ -n "$ncu" ] || { echo "gpu-kernel-profile: ncu not found" >&2; exit 1; }
[ -x "$build/bench_cuda" ] || { echo "gpu-kernel-profile: $build/bench_cuda missing: run scripts/gpu-check.sh first" >&2; exit 1; }
PY="${PYTHON:-python3}"
status=0
for p in ${precisions//,/ }; do
  if ! "$ncu" --clock-control none --profile-from-start off --metrics gpu__time_duration.sum --csv \
      --print-units base "$build/bench_cuda" alexnet "$batch" 1 data --kernel-profile --precisions="$p" \
      > "$OUT/ncu-$p.csv" 2> "$OUT/ncu-$p.err"; then
    echo "gpu-kernel-profile: ncu failed for $p:"; tail -5 "$OUT/ncu-$p.err"; status=1; continue
  fi
  "$PY" - "$OUT/ncu-$p.csv" "$p" <<'PYEOF' | tee "$OUT/kernels-$p.txt"
import csv, sys
path, precision = sys.argv[1:]
rows = []
with open(path) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    rows.append((int(r["ID"].replace(",", "")), r["Kernel Name"], float(r["Metric Value"].replace(",", "")) / 1e6, r.get("Grid Size", ""), r.get("Block Size", "")))
rows.sort()
total = sum(ms for _, _, ms, _, _ in rows)
print(f"{precision}: {len(rows)} kernels, {total:.3f} ms of kernel time in one step")
by = {}
for _, name, ms, _, _ in rows:
    short = name.split("(")[0][:90]
    n, t = by.get(short, (0, 0.0))
    by[short] = (n + 1, t + ms)
print("by kernel name (ms, calls, share):")
for name, (n, t) in sorted(by.items(), key=lambda kv: -kv[1][1]):
    print(f"  {t:8.3f} {n:4d} {100 * t / max(total, 1e-9):5.1f}%  {name}")
print("launch order (ms, grid, block, kernel):")
for i, name, ms, grid, block in rows:
    print(f"  {i:4d} {ms:8.3f} {grid:>16s} {block:>12s}  {name[:110]}")
PYEOF
done
exit $status
