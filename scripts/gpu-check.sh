#!/usr/bin/env bash
# The GPU check: one command for a GPU machine with the CUDA toolkit, CMake and PyTorch
# (no Node, no network needed). It
#   1. builds the native library with CUDA, without the Node addon, into native/build-gpu
#      (OpenBLAS when present, else the plain fallback GEMM for the CPU reference);
#   2. runs test_cuda: every layer's forward/backward on CUDA against the CPU, whole
#      networks (tiny, alexnet-32, the paper's alexnet) against the CPU, two columns on two
#      streams against one stream, data parallel against model parallel;
#   3. runs bench_cuda (ours, full AlexNet, batch 128, fp32 and TF32) and
#      scripts/torch_gpu_bench.py (PyTorch eager + cuDNN, same architecture, fp32/TF32/bf16)
#      on the same GPU;
#   4. writes $OUT/results.json (and the raw logs) and prints a summary.
# Every step is bounded with `timeout`, within an overall budget of 400 s (under 7 minutes).
#
#   OUT=/some/dir bash scripts/gpu-check.sh      (default OUT: ./gpu-check-out)
# Env: ALEXNET_CUDA_ROOT / CUDA_HOME (toolkit root), ALEXNET_CUDA_ARCHS (default "80-real;90"),
#      PYTHON (default python3), BENCH_ITERS (default 10).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
build="$root/native/build-gpu"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import torch' 2>/dev/null && /usr/bin/python3 -c 'import torch' 2>/dev/null; then PY=/usr/bin/python3; fi
iters="${BENCH_ITERS:-10}"
t_start=$(date +%s)
deadline=$(( t_start + 400 ))
: > "$OUT/summary.txt"
say() { echo "gpu-check: $*" | tee -a "$OUT/summary.txt"; }
elapsed() { echo $(( $(date +%s) - t_start )); }
# A step's time limit: its own cap, or what is left of the budget (at least 5 s).
limit() { local left=$(( deadline - $(date +%s) )); [ "$left" -lt 5 ] && left=5; [ "$1" -lt "$left" ] && echo "$1" || echo "$left"; }

# ---- 0. the machine -----------------------------------------------------------------------
(nvidia-smi; echo; nvidia-smi topo -m) > "$OUT/nvidia-smi.txt" 2>&1 || true
gpus="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | paste -sd';')"
say "GPU: ${gpus:-unknown (no nvidia-smi)}"

# ---- 1. build -------------------------------------------------------------------------------
cuda_root="${ALEXNET_CUDA_ROOT:-${CUDA_HOME:-}}"
if [ -z "$cuda_root" ] && command -v nvcc >/dev/null 2>&1; then cuda_root="$(dirname "$(dirname "$(command -v nvcc)")")"; fi
for guess in /usr/local/cuda "$root/.cache/cuda/nvidia/cu13"; do
  if [ -z "$cuda_root" ] && [ -x "$guess/bin/nvcc" ]; then cuda_root="$guess"; fi
done
if [ -z "$cuda_root" ] || [ ! -x "$cuda_root/bin/nvcc" ]; then
  say "FAIL: no CUDA toolkit found (set ALEXNET_CUDA_ROOT or CUDA_HOME, or put nvcc on the PATH)"
  exit 1
fi
say "toolkit: $cuda_root ($("$cuda_root/bin/nvcc" --version | grep -o 'release [0-9.]*' || true))"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
configure() {  # $1: ON|OFF for OpenBLAS
  timeout "$(limit 60)" cmake -S "$root/native" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DALEXNET_BUILD_ADDON=OFF -DALEXNET_CUDA=ON -DALEXNET_CUDA_ROOT="$cuda_root" -DALEXNET_BLAS="$1" \
    -DCMAKE_CUDA_ARCHITECTURES="${ALEXNET_CUDA_ARCHS:-80-real;90}" >> "$OUT/build.log" 2>&1
}
t0=$(date +%s)
: > "$OUT/build.log"
if configure ON; then blas=openblas; else
  say "OpenBLAS not found: building the CPU reference with the fallback GEMM (ALEXNET_BLAS=OFF)"
  rm -rf "$build"
  if configure OFF; then blas=fallback; else say "FAIL: cmake configure (see $OUT/build.log)"; exit 1; fi
fi
if ! timeout "$(limit 200)" cmake --build "$build" -j "$(nproc)" --target test_cuda bench_cuda >> "$OUT/build.log" 2>&1; then
  tail -30 "$OUT/build.log"
  say "FAIL: build (see $OUT/build.log)"
  exit 1
fi
build_s=$(( $(date +%s) - t0 ))
say "built in ${build_s}s (BLAS: $blas, $(grep -o 'CUDA backend: .*' "$OUT/build.log" | tail -1))"

# ---- 2. cross-backend tests -------------------------------------------------------------------
t0=$(date +%s)
timeout "$(limit 100)" "$build/test_cuda" > "$OUT/test_cuda.log" 2>&1
test_rc=$?
test_s=$(( $(date +%s) - t0 ))
summary_line="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$OUT/test_cuda.log" | tail -1)"
say "test_cuda: exit $test_rc in ${test_s}s: ${summary_line:-no summary}"
grep -E '^FAIL|test_cuda:' "$OUT/test_cuda.log" | head -20 | tee -a "$OUT/summary.txt"

# ---- 3. benchmarks ------------------------------------------------------------------------------
timeout "$(limit 60)" "$build/bench_cuda" alexnet 128 "$iters" > "$OUT/bench_cuda.log" 2>&1
bench_rc=$?
say "bench_cuda: exit $bench_rc"
timeout "$(limit 90)" "$PY" "$root/scripts/torch_gpu_bench.py" --batch 128 --iters "$((iters * 2))" > "$OUT/torch_gpu_bench.log" 2>&1
torch_rc=$?
say "torch_gpu_bench: exit $torch_rc"

# ---- 4. results -------------------------------------------------------------------------------
"$PY" - "$OUT" "$test_rc" "$bench_rc" "$torch_rc" "$build_s" "$test_s" "$blas" "$(elapsed)" <<'EOF' | tee -a "$OUT/summary.txt"
import json, re, sys
out, test_rc, bench_rc, torch_rc, build_s, test_s, blas, elapsed = sys.argv[1:]
def lines(name):
    rows = []
    try:
        for line in open(f"{out}/{name}"):
            line = line.strip()
            if line.startswith("{"):
                try: rows.append(json.loads(line))
                except ValueError: pass
    except OSError: pass
    return rows
log = open(f"{out}/test_cuda.log").read() if test_rc != "" else ""
m = re.search(r"(\d+) passed, (\d+) failed", log)
ours, torch = lines("bench_cuda.log"), lines("torch_gpu_bench.log")
def pick(rows, precision):
    return next((r for r in rows if r.get("precision") == precision), None)
ratios = {}
for p in ("fp32", "tf32"):
    a, b = pick(ours, p), pick(torch, p)
    if a and b:
        ratios[p] = {"train": round(a["train_img_s"] / b["train_img_s"], 3), "infer": round(a["infer_img_s"] / b["infer_img_s"], 3)}
res = {"test_cuda": {"exit": int(test_rc), "passed": int(m.group(1)) if m else None, "failed": int(m.group(2)) if m else None,
                     "seconds": int(test_s), "skipped": test_rc == "77"},
       "build": {"seconds": int(build_s), "blas": blas},
       "ours": ours, "pytorch": torch, "ours_over_pytorch": ratios,
       "bench_exit": int(bench_rc), "torch_exit": int(torch_rc), "elapsed_s": int(elapsed)}
json.dump(res, open(f"{out}/results.json", "w"), indent=2)
for r in ours + torch:
    print(f"  {r['backend']:13s} {r['precision']:5s} train {r['train_img_s']:9.1f} img/s  infer {r['infer_img_s']:9.1f} img/s")
for p, r in ratios.items():
    print(f"  ours / pytorch ({p}): train x{r['train']}, infer x{r['infer']}")
EOF
say "results: $OUT/results.json (logs beside it), $(elapsed)s in all"
[ "$test_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
