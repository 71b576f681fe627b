#!/usr/bin/env bash
# The GPU check: one command for a GPU machine with the CUDA toolkit, CMake and PyTorch
# (no Node, no network needed). It
#   0. records the machine (nvidia-smi, the driver), nvcc, the host compiler and CMake;
#   1. checks that cuBLAS is installed (cublas_v2.h, libcublas.so), then builds the native
#      library with CUDA, without the Node addon, into native/build-gpu, for the GPU present
#      only (its compute capability, e.g. 9.0 -> 90-real; ALEXNET_CUDA_ARCHS overrides);
#      an nvcc that refuses the host compiler gets one retry with -allow-unsupported-compiler;
#   2. runs test_cuda: every layer on CUDA against the CPU in fp32/TF32/BF16, whole networks
#      against the CPU (training and inference), two streams vs one, data vs model parallel;
#      the tests it skips here (its "SKIP NAME: REASON" lines: the two-GPU placements on one
#      GPU) go into summary.txt and results.json's "skipped";
#   3. runs bench_cuda --layers (ours: the paper's AlexNet at batch 128, two columns and one
#      column on one GPU, fp32/TF32/BF16, then per-layer times) and
#      scripts/torch_gpu_bench.py --profile (PyTorch eager + cuDNN, same architecture);
#   4. runs compute-sanitizer (when found): memcheck over test_cuda's tiny and alexnet-32
#      network tests, racecheck over the two-streams-vs-one-stream test on tiny;
#   5. writes $OUT/results.json and $OUT/summary.txt.
# Every step is bounded with `timeout` within an overall budget (GPU_CHECK_BUDGET, default
# 340 s, so the whole check ends within 6 minutes); a step that would start with too little
# time left is skipped and says so. Files in $OUT (8 at most): summary.txt, results.json,
# build.log, test_cuda.log, bench_cuda.log, torch_gpu_bench.log, sanitizer.log,
# nvidia-smi.txt. Exit 0 when test_cuda and bench_cuda passed.
#
#   OUT=/some/dir bash scripts/gpu-check.sh      (default OUT: ./gpu-check-out)
# Env: ALEXNET_CUDA_ROOT / CUDA_HOME (toolkit root), ALEXNET_CUDA_ARCHS (e.g. "90-real"),
#      PYTHON (default python3), BENCH_ITERS (default 10), GPU_CHECK_BUDGET (seconds),
#      ALEXNET_GPU_BUILD (build folder, default native/build-gpu).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
for f in summary.txt results.json build.log test_cuda.log bench_cuda.log torch_gpu_bench.log sanitizer.log nvidia-smi.txt; do
  rm -f "$OUT/$f"
done
tmp="$(mktemp -d)"  # scratch outside $OUT (only 8 files come back from there)
trap 'rm -rf "$tmp"' EXIT
build="${ALEXNET_GPU_BUILD:-$root/native/build-gpu}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import torch' 2>/dev/null && /usr/bin/python3 -c 'import torch' 2>/dev/null; then PY=/usr/bin/python3; fi
iters="${BENCH_ITERS:-10}"
t_start=$(date +%s)
deadline=$(( t_start + ${GPU_CHECK_BUDGET:-340} ))
: > "$OUT/summary.txt"
: > "$OUT/build.log"
say() { echo "gpu-check: $*" | tee -a "$OUT/summary.txt"; }
elapsed() { echo $(( $(date +%s) - t_start )); }
# step_limit CAP MIN: the seconds a step may run (its cap, or what is left of the budget);
# fails when fewer than MIN seconds are left.
step_limit() {
  local left=$(( deadline - $(date +%s) ))
  [ "$left" -lt "$2" ] && return 1
  [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}
skipped=""  # "step<TAB>reason" lines
skip() { skipped+="$1"$'\t'"$2"$'\n'; say "skipped $1: $2"; }
timed_out() { [ "$1" = 124 ] || [ "$1" = 137 ]; }

# What results.json reports (strings; empty: unknown or not run).
device_count="" gpus="" driver="" driver_cuda="" archs="" archs_from="" nvcc_version="" host_cxx="" cmake_version=""
cuda_root="" blas="" build_rc="" build_s="" build_retry="no" test_rc="" test_s="" bench_rc="" bench_s="" torch_rc=""
torch_s="" fail_reason=""

# Writes results.json (and the closing summary lines) from what ran, then exits with $1.
finish() {
  export GC_DEVICE_COUNT="$device_count" GC_GPUS="$gpus" GC_DRIVER="$driver" GC_DRIVER_CUDA="$driver_cuda"
  export GC_ARCHS="$archs" GC_ARCHS_FROM="$archs_from" GC_NVCC="$nvcc_version" GC_HOSTCXX="$host_cxx"
  export GC_CMAKE="$cmake_version" GC_CUDA_ROOT="$cuda_root" GC_BLAS="$blas" GC_BUILD_RC="$build_rc"
  export GC_BUILD_S="$build_s" GC_BUILD_RETRY="$build_retry" GC_TEST_RC="$test_rc" GC_TEST_S="$test_s"
  export GC_BENCH_RC="$bench_rc" GC_BENCH_S="$bench_s" GC_TORCH_RC="$torch_rc" GC_TORCH_S="$torch_s"
  export GC_SKIPPED="$skipped" GC_FAIL="$fail_reason" GC_ELAPSED="$(elapsed)" GC_EXIT="$1"
  if command -v "$PY" >/dev/null 2>&1; then
    "$PY" - "$OUT" 2>>"$OUT/build.log" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, os, re, sys
out = sys.argv[1]
env = lambda k: os.environ.get("GC_" + k, "")
def num(v):
    try: return int(v)
    except (TypeError, ValueError): return None
def read(name):
    try:
        with open(os.path.join(out, name), errors="replace") as f: return f.read()
    except OSError: return ""
def rows(name):
    res = []
    for line in read(name).splitlines():
        line = line.strip()
        if line.startswith("{"):
            try: res.append(json.loads(line))
            except ValueError: pass
    return res
test_log = read("test_cuda.log")
m = re.findall(r"^(\d+) passed, (\d+) failed", test_log, re.M)
test_rc = num(env("TEST_RC"))
ours_all, torch_all = rows("bench_cuda.log"), rows("torch_gpu_bench.log")
ours = [r for r in ours_all if not r.get("layer_profile") and "train_img_s" in r]
ours_errors = [r for r in ours_all if "error" in r]
torch = [r for r in torch_all if r.get("backend") == "pytorch-cuda" and "train_img_s" in r]
ours_layers = [r for r in ours_all if r.get("layer_profile") and "error" not in r]
torch_layers = [r for r in torch_all if r.get("layer_profile") and "error" not in r]
torch_ops = [r for r in torch_all if r.get("torch_profile")]
profile_errors = [r for r in ours_all + torch_all if (r.get("layer_profile") or r.get("torch_profile")) and "error" in r]
ratios, lines = {}, []
for a in ours:
    b = next((r for r in torch if r.get("precision") == a.get("precision")), None)
    if not b: continue
    kind, p = a.get("placement_kind", "?"), a["precision"]
    r = {"train": round(a["train_img_s"] / b["train_img_s"], 3), "infer": round(a["infer_img_s"] / b["infer_img_s"], 3),
         "ours_train_img_s": a["train_img_s"], "pytorch_train_img_s": b["train_img_s"],
         "ours_infer_img_s": a["infer_img_s"], "pytorch_infer_img_s": b["infer_img_s"]}
    ratios.setdefault(kind, {})[p] = r
    lines.append(f"  ours/pytorch {kind:12s} {p:5s}: train x{r['train']:.3f} ({a['train_img_s']:.0f} vs {b['train_img_s']:.0f} img/s), "
                 f"infer x{r['infer']:.3f} ({a['infer_img_s']:.0f} vs {b['infer_img_s']:.0f} img/s)")
# Sanitizer runs, framed by "==== run NAME: ..." and "==== end NAME rc=N seconds=S".
san = []
for sec in re.findall(r"^==== run (\S+): (.*?)\n(.*?)^==== end \S+ rc=(\d+) seconds=(\d+)", read("sanitizer.log"), re.M | re.S):
    name, cmd, body, rc, secs = sec
    rc = int(rc)
    summ = re.findall(r"^========= ((?:ERROR|RACECHECK) SUMMARY: .*)$", body, re.M)
    errs = re.findall(r"^========= (?:ERROR SUMMARY: (\d+) error|RACECHECK SUMMARY: (\d+) hazard)", body, re.M)
    count = None
    if errs: count = int(errs[-1][0] or errs[-1][1])
    unsupported = re.search(r"^========= .*(not supported|Unable to|Error: .*).*$", body, re.M | re.I)
    tc = re.findall(r"^(\d+) passed, (\d+) failed", body, re.M)
    if rc in (124, 137): status = "timeout"
    elif unsupported and not summ: status = "skipped"
    elif count is None: status = "no summary"
    else: status = "clean" if count == 0 else "errors"
    entry = {"tool": name, "command": cmd, "exit": rc, "seconds": int(secs), "status": status,
             "errors_or_hazards": count, "summary": summ[-1] if summ else None,
             "test_cuda_under_sanitizer": {"passed": int(tc[-1][0]), "failed": int(tc[-1][1])} if tc else None}
    if status == "skipped": entry["reason"] = unsupported.group(0).replace("========= ", "").strip()
    san.append(entry)
skipped = [dict(zip(("step", "reason"), l.split("\t", 1))) for l in env("SKIPPED").splitlines() if "\t" in l]
# test_cuda's "SKIP NAME: REASON" lines. A test's name may hold ": ", so NAME is the one of
# the "== NAME" line that opened the test; a SKIP outside a test ("SKIP test_cuda: no CUDA
# device ...") is the whole program's.
test_skips, current = [], None
for line in test_log.splitlines():
    if line.startswith("== "): current = line[3:]; continue
    if current is not None and line.startswith("-- " + current + ": "): current = None; continue
    if not line.startswith("SKIP "): continue
    rest = line[5:]
    if current is not None and rest.startswith(current + ": "):
        test_skips.append({"step": "test_cuda", "test": current, "reason": rest[len(current) + 2:].strip()})
    else:
        name, _, reason = rest.partition(": ")
        entry = {"step": "test_cuda", "reason": reason.strip()}
        if name != "test_cuda": entry["test"] = name
        test_skips.append(entry)
skipped += test_skips
for s in san:
    if s["status"] == "skipped": skipped.append({"step": s["tool"], "reason": s["reason"]})
fails = [l for l in test_log.splitlines() if l.startswith("FAIL")][:50]
res = {
    "ok": env("EXIT") == "0", "failure": env("FAIL") or None,
    "device_count": num(env("DEVICE_COUNT")), "gpus": env("GPUS"), "driver": env("DRIVER"), "driver_cuda": env("DRIVER_CUDA"),
    "nvcc": env("NVCC"), "host_compiler": env("HOSTCXX"), "cmake": env("CMAKE"), "cuda_root": env("CUDA_ROOT"),
    "build": {"archs": env("ARCHS"), "archs_from": env("ARCHS_FROM"), "exit": num(env("BUILD_RC")), "seconds": num(env("BUILD_S")),
              "blas": env("BLAS"), "retried_allow_unsupported_compiler": env("BUILD_RETRY") == "yes"},
    "test_cuda": {"exit": test_rc, "passed": int(m[-1][0]) if m else None, "failed": int(m[-1][1]) if m else None,
                  "seconds": num(env("TEST_S")), "skipped_no_device": test_rc == 77, "timed_out": test_rc in (124, 137),
                  "skipped_tests": [s["test"] for s in test_skips if "test" in s], "failures": fails},
    "bench_exit": num(env("BENCH_RC")), "bench_seconds": num(env("BENCH_S")),
    "torch_exit": num(env("TORCH_RC")), "torch_seconds": num(env("TORCH_S")),
    "skipped": skipped, "sanitizer": san,
    "ours": ours, "ours_errors": ours_errors, "pytorch": torch, "ours_over_pytorch": ratios,
    "layer_profiles": {"ours": ours_layers, "pytorch": torch_layers}, "torch_op_profile": torch_ops,
    "profile_errors": profile_errors, "elapsed_s": num(env("ELAPSED")),
}
with open(os.path.join(out, "results.json"), "w") as f: json.dump(res, f, indent=1)
for r in ours + torch:
    kind = r.get("placement_kind", "")
    print(f"  {r['backend']:13s} {kind:12s} {r['precision']:5s} train {r['train_img_s']:9.1f} img/s  infer {r['infer_img_s']:9.1f} img/s")
for l in lines: print(l)
for r in ours_errors + profile_errors: print(f"  error: {json.dumps(r)}")
# Per-layer table: ours (one column, sequential) and PyTorch, matched by layer index when
# the two list the same layer types (both the paper's AlexNet), else each alone.
for p in ("fp32", "bf16"):
    a = {r["index"]: r for r in ours_layers if r.get("precision") == p}
    b = {r["index"]: r for r in torch_layers if r.get("precision") == p}
    if not a and not b: continue
    matched = a and b and all(a[i].get("type") == b.get(i, {}).get("type") for i in a) and len(a) == len(b)
    print(f"  per-layer ms, {p} ({'ours one column | pytorch' if matched else 'ours' if a else 'pytorch'}): fwd / bwd")
    if matched:
        ta = [0.0, 0.0]; tb = [0.0, 0.0]
        for i in sorted(a):
            x, y = a[i], b[i]
            print(f"    {i:2d} {x['layer']:6s} {x['type']:8s} {x['forward_ms']:8.3f} {x['backward_ms']:8.3f} | {y['forward_ms']:8.3f} {y['backward_ms']:8.3f}")
            ta[0] += x["forward_ms"]; ta[1] += x["backward_ms"]; tb[0] += y["forward_ms"]; tb[1] += y["backward_ms"]
        print(f"       total           {ta[0]:8.3f} {ta[1]:8.3f} | {tb[0]:8.3f} {tb[1]:8.3f}")
    else:
        for src, name in ((a, "ours"), (b, "pytorch")):
            for i in sorted(src):
                x = src[i]
                print(f"    {name:7s} {i:2d} {x['layer']:6s} {x['type']:8s} {x['forward_ms']:8.3f} {x['backward_ms']:8.3f}")
for p in ("fp32", "bf16"):
    for ph in ("forward", "backward"):
        top = [r for r in torch_ops if r.get("precision") == p and r.get("phase") == ph and r.get("op") != "(total)" and "error" not in r][:4]
        if top:
            print(f"  pytorch top ops {p} {ph}: " + ", ".join(f"{r['op']} {r['cuda_ms']:.2f} ms" for r in top))
for s in san:
    print(f"  sanitizer {s['tool']}: {s['status']} ({s['summary'] or s.get('reason') or 'no summary'})")
for s in skipped:
    print(f"  skipped {s['step']}" + (f" test '{s['test']}'" if "test" in s else "") + f": {s['reason']}")
PYEOF
    [ -s "$OUT/results.json" ] || say "results: writing results.json failed (see the end of build.log)"
  else
    printf '{"ok": false, "error": "no %s to write the results"}\n' "$PY" > "$OUT/results.json"
  fi
  say "results: $OUT/results.json (logs beside it), $(elapsed)s in all, exit $1"
  exit "$1"
}
fail() { fail_reason="$*"; say "FAIL: $*"; finish 1; }

# ---- 0. the machine -----------------------------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "nvidia-smi not found" > "$OUT/nvidia-smi.txt"
  fail "nvidia-smi not found: this machine has no NVIDIA driver (run the GPU check on a GPU machine)"
fi
smi="$(timeout 30 nvidia-smi 2>&1)"
smi_rc=$?
{ echo "$smi"; echo; timeout 20 nvidia-smi topo -m 2>&1; } > "$OUT/nvidia-smi.txt"
if [ "$smi_rc" -ne 0 ]; then
  fail "nvidia-smi failed (exit $smi_rc): $(echo "$smi" | head -1)"
fi
gpus="$(timeout 20 nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | paste -sd';')"
device_count="$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | grep -c .)"
driver="$(timeout 20 nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
driver_cuda="$(echo "$smi" | grep -o 'CUDA Version: *[0-9.]*' | head -1 | grep -o '[0-9.]*$')"
say "GPU: ${device_count:-?} x ${gpus:-unknown}"
say "driver: ${driver:-unknown} (supports CUDA ${driver_cuda:-?})"

# ---- 1. toolkit, versions, cuBLAS, build --------------------------------------------------------
cuda_root="${ALEXNET_CUDA_ROOT:-${CUDA_HOME:-}}"
if [ -z "$cuda_root" ] && command -v nvcc >/dev/null 2>&1; then cuda_root="$(dirname "$(dirname "$(command -v nvcc)")")"; fi
for guess in /usr/local/cuda "$root/.cache/cuda/nvidia/cu13"; do
  if [ -z "$cuda_root" ] && [ -x "$guess/bin/nvcc" ]; then cuda_root="$guess"; fi
done
if [ -z "$cuda_root" ] || [ ! -x "$cuda_root/bin/nvcc" ]; then
  fail "no CUDA toolkit found (set ALEXNET_CUDA_ROOT or CUDA_HOME, or put nvcc on the PATH)"
fi
command -v cmake >/dev/null 2>&1 || fail "cmake not found on the PATH"
{
  echo "==== toolkit: $cuda_root"
  echo "==== nvcc --version"; "$cuda_root/bin/nvcc" --version 2>&1
  echo "==== c++ --version"; c++ --version 2>&1
  echo "==== cmake --version"; cmake --version 2>&1
  echo "==== nvidia-smi"; echo "$smi" | head -12
} >> "$OUT/build.log"
nvcc_version="$("$cuda_root/bin/nvcc" --version 2>/dev/null | grep -o 'release [0-9.]*, V[0-9.]*' | head -1)"
host_cxx="$(c++ --version 2>/dev/null | head -1)"
cmake_version="$(cmake --version 2>/dev/null | head -1)"
say "nvcc: ${nvcc_version:-unknown} ($cuda_root)"
say "host compiler: ${host_cxx:-no c++ on the PATH}"
say "cmake: ${cmake_version:-unknown}"

cublas_h=""
for d in "$cuda_root/include" "$cuda_root"/targets/*/include; do
  if [ -f "$d/cublas_v2.h" ]; then cublas_h="$d/cublas_v2.h"; break; fi
done
cublas_so=""
for d in "$cuda_root/lib" "$cuda_root/lib64" "$cuda_root"/targets/*/lib "$cuda_root"/lib/*-linux-gnu; do
  for f in "$d"/libcublas.so*; do
    if [ -e "$f" ]; then cublas_so="$f"; break 2; fi
  done
done
[ -n "$cublas_h" ] || fail "cuBLAS header cublas_v2.h not found under $cuda_root/include or $cuda_root/targets/*/include (install cuBLAS's development files, e.g. the libcublas-dev package of this CUDA version)"
[ -n "$cublas_so" ] || fail "cuBLAS library libcublas.so not found under $cuda_root/lib, lib64 or targets/*/lib (install cuBLAS, e.g. the libcublas package of this CUDA version)"
say "cuBLAS: $cublas_h, $cublas_so"

if [ -n "${ALEXNET_CUDA_ARCHS:-}" ]; then
  archs="$ALEXNET_CUDA_ARCHS"
  archs_from="ALEXNET_CUDA_ARCHS"
else
  archs="$(timeout 20 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d ' .' | grep -E '^[0-9]+$' |
           sort -u | sed 's/$/-real/' | paste -sd';')"
  archs_from="nvidia-smi compute_cap"
  if [ -z "$archs" ]; then
    archs="80-real;90"
    archs_from="CMake default (nvidia-smi gave no compute_cap)"
  fi
fi
say "building for CUDA architectures $archs ($archs_from)"

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cuda_flags=()
# run_logged CAP MIN cmd...: runs within the budget, output to build.log (and $tmp/step.log).
run_logged() {
  local cap=$1 min=$2 lim
  shift 2
  if ! lim=$(step_limit "$cap" "$min"); then echo "out of time budget" > "$tmp/step.log"; return 2; fi
  timeout -k 5 "$lim" "$@" > "$tmp/step.log" 2>&1
  local rc=$?
  cat "$tmp/step.log" >> "$OUT/build.log"
  timed_out "$rc" && echo "(timed out after ${lim}s)" | tee -a "$OUT/build.log" >> "$tmp/step.log"
  return "$rc"
}
configure() {  # $1: ON|OFF for OpenBLAS
  run_logged 90 10 cmake -S "$root/native" -B "$build" ${generator[@]+"${generator[@]}"} -DCMAKE_BUILD_TYPE=Release \
    -DALEXNET_BUILD_ADDON=OFF -DALEXNET_CUDA=ON -DALEXNET_CUDA_ROOT="$cuda_root" -DALEXNET_BLAS="$1" \
    -DCMAKE_CUDA_ARCHITECTURES="$archs" ${cuda_flags[@]+"${cuda_flags[@]}"}
}
# A fresh build folder (CMake caches a failed compiler check); only ever a CMake build folder.
reset_build() { if [ -f "$build/CMakeCache.txt" ] || [ -d "$build/CMakeFiles" ]; then rm -rf "$build"; fi; }
unsupported_compiler() { grep -qiE 'unsupported (GNU|gcc|clang|host compiler|Microsoft)|allow-unsupported-compiler' "$tmp/step.log"; }
# 0: built; 1: failed; 3: nvcc refused the host compiler.
configure_and_build() {
  if configure ON; then blas=openblas
  else
    unsupported_compiler && return 3
    grep -q 'OpenBLAS not found' "$tmp/step.log" || return 1
    say "OpenBLAS not found: building the CPU reference with the fallback GEMM (ALEXNET_BLAS=OFF)"
    reset_build
    if configure OFF; then blas=fallback; else unsupported_compiler && return 3; return 1; fi
  fi
  run_logged 180 15 cmake --build "$build" -j "$(nproc)" --target test_cuda bench_cuda && return 0
  unsupported_compiler && return 3
  return 1
}
t0=$(date +%s)
configure_and_build
build_rc=$?
if [ "$build_rc" -eq 3 ]; then
  say "nvcc refused the host compiler ($(grep -iE -m1 'unsupported' "$tmp/step.log")): retrying once with -allow-unsupported-compiler"
  build_retry="yes"
  reset_build
  cuda_flags=(-DCMAKE_CUDA_FLAGS=-allow-unsupported-compiler)
  configure_and_build
  build_rc=$?
fi
build_s=$(( $(date +%s) - t0 ))
if [ "$build_rc" -ne 0 ]; then
  tail -30 "$tmp/step.log"
  fail "build (exit $build_rc after ${build_s}s: $(grep -m1 -iE 'error|out of time' "$tmp/step.log" | cut -c1-200); see build.log)"
fi
say "built in ${build_s}s (BLAS: $blas, $(grep -o 'CUDA backend: .*' "$OUT/build.log" | tail -1))"

# ---- 2. cross-backend tests -------------------------------------------------------------------
if lim=$(step_limit 120 20); then
  t0=$(date +%s)
  timeout -k 5 "$lim" "$build/test_cuda" > "$OUT/test_cuda.log" 2>&1
  test_rc=$?
  test_s=$(( $(date +%s) - t0 ))
  timed_out "$test_rc" && say "test_cuda timed out after ${lim}s"
  summary_line="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$OUT/test_cuda.log" | tail -1)"
  test_skips="$(grep -c '^SKIP ' "$OUT/test_cuda.log")"
  say "test_cuda: exit $test_rc in ${test_s}s: ${summary_line:-no summary}, ${test_skips:-0} skipped"
  grep -E '^FAIL|^test_cuda:' "$OUT/test_cuda.log" | head -20 | tee -a "$OUT/summary.txt"
  grep -E '^SKIP ' "$OUT/test_cuda.log" | head -20 | tee -a "$OUT/summary.txt"
else
  skip test_cuda "out of time budget"
fi

# ---- 3. benchmarks ------------------------------------------------------------------------------
if lim=$(step_limit 90 20); then
  t0=$(date +%s)
  timeout -k 5 "$lim" "$build/bench_cuda" alexnet 128 "$iters" --layers > "$OUT/bench_cuda.log" 2>&1
  bench_rc=$?
  bench_s=$(( $(date +%s) - t0 ))
  timed_out "$bench_rc" && say "bench_cuda timed out after ${lim}s"
  say "bench_cuda: exit $bench_rc in ${bench_s}s"
else
  skip bench_cuda "out of time budget"
fi
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
  skip torch_gpu_bench "PyTorch is not importable with $PY"
elif lim=$(step_limit 100 20); then
  t0=$(date +%s)
  timeout -k 5 "$lim" "$PY" "$root/scripts/torch_gpu_bench.py" --batch 128 --iters "$((iters * 2))" --profile \
    > "$OUT/torch_gpu_bench.log" 2>&1
  torch_rc=$?
  torch_s=$(( $(date +%s) - t0 ))
  timed_out "$torch_rc" && say "torch_gpu_bench timed out after ${lim}s"
  say "torch_gpu_bench: exit $torch_rc in ${torch_s}s"
else
  skip torch_gpu_bench "out of time budget"
fi

# ---- 4. compute-sanitizer ---------------------------------------------------------------------
san=""
if command -v compute-sanitizer >/dev/null 2>&1; then san="$(command -v compute-sanitizer)"
elif [ -x "$cuda_root/bin/compute-sanitizer" ]; then san="$cuda_root/bin/compute-sanitizer"; fi
: > "$OUT/sanitizer.log"
# sanitize NAME TOOL CAP MIN FILTER...: one sanitizer run over test_cuda's FILTERed tests,
# framed in sanitizer.log by "==== run" and "==== end" lines (finish() reads them).
sanitize() {
  local name=$1 tool=$2 cap=$3 min=$4 lim rc t0
  shift 4
  if ! lim=$(step_limit "$cap" "$min"); then skip "$name" "out of time budget"; return; fi
  local opts=(--tool "$tool" --print-limit 30)
  t0=$(date +%s)
  timeout -k 5 "$lim" "$san" "${opts[@]}" "$build/test_cuda" "$@" > "$tmp/san.log" 2>&1
  rc=$?
  if grep -qiE 'unrecognized option|unknown option' "$tmp/san.log" && lim=$(step_limit "$cap" "$min"); then
    opts=(--tool "$tool")  # an older compute-sanitizer without --print-limit
    timeout -k 5 "$lim" "$san" "${opts[@]}" "$build/test_cuda" "$@" > "$tmp/san.log" 2>&1
    rc=$?
  fi
  {
    printf '==== run %s: %s %s test_cuda' "$name" "$(basename "$san")" "${opts[*]}"
    printf ' "%s"' "$@"
    printf ' (limit %ss)\n' "$lim"
    cat "$tmp/san.log"
    echo "==== end $name rc=$rc seconds=$(( $(date +%s) - t0 ))"
  } >> "$OUT/sanitizer.log"
  local result
  result="$(grep -E '^========= (ERROR|RACECHECK) SUMMARY' "$tmp/san.log" | tail -1 | sed 's/^========= //')"
  timed_out "$rc" && result="timed out after ${lim}s; ${result:-no summary}"
  say "$name: exit $rc, ${result:-no summary (see sanitizer.log)}"
}
if [ -z "$san" ]; then
  skip memcheck "compute-sanitizer not found (PATH, $cuda_root/bin)"
  skip racecheck "compute-sanitizer not found (PATH, $cuda_root/bin)"
  echo "compute-sanitizer not found (PATH, $cuda_root/bin)" >> "$OUT/sanitizer.log"
else
  # The network tests that reach every kernel and exchange path, fp32 and bf16 (TF32 runs
  # the fp32 code with another cuBLAS math mode); racecheck (shared-memory hazards) is slow
  # per kernel: the smallest two-streams test.
  sanitize memcheck memcheck 90 20 "net tiny vs cpu: model" "net alexnet-32 vs cpu: model fp32" \
    "net alexnet-32+lrn1 vs cpu" "net alexnet-32+fullfc vs cpu" "net alexnet-32 vs cpu: model bf16"
  sanitize racecheck racecheck 60 15 "streams tiny"
fi

# ---- 5. results -------------------------------------------------------------------------------
code=1
[ "$test_rc" = 0 ] && [ "$bench_rc" = 0 ] && code=0
finish "$code"
