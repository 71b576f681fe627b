"""PyTorch GPU baseline for the paper's AlexNet (or a config-defined one): images/s of a
training step (forward, cross-entropy, backward, SGD with momentum 0.9 and weight decay
0.0005) and of inference (eval, no_grad), eager mode, cuDNN benchmark mode on, data on
the GPU, median over --iters after --warmup. The model is torch_alexnet.ConfigNet: the
same architecture as ours (groups=2 convolutions, the paper's LRN per column, overlapping
max pooling, dropout).

Precisions: fp32 (TF32 off for cuDNN and matmuls: the fair comparison with our fp32
default), tf32 (PyTorch's default for convolutions), and bf16 autocast (extra info).

  python3 scripts/torch_gpu_bench.py [--config cfg.json] [--batch 128] [--warmup 5] [--iters 20]

One JSON line per precision:
  {"backend":"pytorch-cuda","precision":"fp32","batch":128,"train_img_s":..,"infer_img_s":..}

--profile (after those lines) adds, for fp32 and bf16, where one training step's GPU time
goes:
  - per layer (the same layers and names as bench_cuda --layers: the config's name, else
    the index), averaged over a few steps with CUDA events: forward around each layer,
    backward between the gradient of its output and the gradient of its input (tensor
    hooks; the first layer's ends when backward() returns):
    {"layer_profile":true,"backend":"pytorch-cuda","precision":..,"index":..,"layer":..,
     "type":..,"forward_ms":..,"backward_ms":..}
  - per op type (torch.profiler, self CUDA time of one step's forward, backward and
    optimizer step, the top ops of each phase):
    {"torch_profile":true,"precision":..,"phase":"forward"|"backward"|"optimizer",
     "op":..,"cuda_ms":..,"calls":..,"share":..}
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_alexnet import PAPER_CONFIG, ConfigNet, load_config, lrn  # noqa: E402


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def training_step(model, opt, x, y, autocast):
    """One SGD step as bench() times it: forward, cross-entropy, backward, update."""
    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return step


def bench(cfg, batch, precision, warmup, iters, device):
    model, opt, x, y, autocast = setup(cfg, batch, precision, device)
    train_step = training_step(model, opt, x, y, autocast)

    def infer():
        with torch.no_grad(), autocast:
            model(x)

    model.train()
    t_train = timed(train_step, warmup, iters)
    model.eval()
    t_infer = timed(infer, warmup, iters)
    return {"backend": "pytorch-cuda", "gpu": torch.cuda.get_device_name(device), "precision": precision,
            "model": cfg.get("name", "custom"), "batch": batch, "iters": iters,
            "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
            "train_img_s": round(batch / t_train, 1), "infer_img_s": round(batch / t_infer, 1)}


PROFILE_STEPS = 5


def setup(cfg, batch, precision, device):
    """The model, optimizer, batch and autocast context of bench() and the profiles."""
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    model = ConfigNet(cfg).to(device)
    model.init_paper()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
    inp = cfg["input"]
    x = torch.randn(batch, inp["channels"], inp["height"], inp["width"], device=device) * 50
    y = torch.arange(batch, device=device) % cfg["classes"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")
    return model, opt, x, y, autocast


def run_layer(model, L, x):
    """One layer of ConfigNet.forward (training mode, no masks)."""
    t = L["type"]
    if t == "conv":
        return getattr(model, L["name"])(x)
    if t == "linear":
        return getattr(model, L["name"])(x.flatten(1))
    if t == "relu":
        return F.relu(x)
    if t == "lrn":
        return lrn(x, L["size"], L["alpha"], L["beta"], L["k"], L.get("groups", 1))
    if t == "maxpool":
        return F.max_pool2d(x, L["kernel"], L.get("stride", L["kernel"]))
    if t == "dropout":
        return F.dropout(x, L["p"], training=True)
    raise ValueError(f"unknown layer type {t!r}")


def layer_profile(cfg, batch, precision, device):
    """Per-layer forward and backward CUDA time of a training step, averaged over
    PROFILE_STEPS steps after a warm-up (events on the current stream, which autograd's
    backward also runs on)."""
    model, opt, x, y, autocast = setup(cfg, batch, precision, device)
    model.train()
    specs = [L for L, _ in model.specs]
    n = len(specs)
    fwd, bwd = [0.0] * n, [0.0] * n

    def one_step(measure):
        ev = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
        f_start, f_end = [ev() for _ in range(n)], [ev() for _ in range(n)]
        grad_ready = [ev() for _ in range(n)]  # gradient of layer i's output computed
        b_end = ev()
        opt.zero_grad(set_to_none=True)
        h = x
        with autocast:
            for i, L in enumerate(specs):
                f_start[i].record()
                h = run_layer(model, L, h)
                f_end[i].record()
                if h.requires_grad:
                    h.register_hook(lambda g, i=i: grad_ready[i].record())
            loss = F.cross_entropy(h, y)
        loss.backward()
        b_end.record()
        opt.step()
        torch.cuda.synchronize()
        if not measure:
            return
        for i in range(n):
            fwd[i] += f_start[i].elapsed_time(f_end[i]) / PROFILE_STEPS
            # Layer i's backward: from its output's gradient to its input's (= the output
            # gradient of layer i-1); the first layer's input has none: until backward ends.
            end = grad_ready[i - 1] if i > 0 else b_end
            bwd[i] += grad_ready[i].elapsed_time(end) / PROFILE_STEPS

    for _ in range(3):
        one_step(False)
    for _ in range(PROFILE_STEPS):
        one_step(True)
    rows = []
    for i, L in enumerate(specs):
        rows.append({"layer_profile": True, "backend": "pytorch-cuda", "precision": precision,
                     "model": cfg.get("name", "custom"), "batch": batch, "steps": PROFILE_STEPS, "index": i,
                     "layer": L.get("name", str(i)), "type": L["type"],
                     "forward_ms": round(fwd[i], 4), "backward_ms": round(bwd[i], 4)})
    return rows


def _self_cuda_us(e):
    """Self CUDA time (us) of a profiler key average, across torch versions."""
    for attr in ("self_device_time_total", "self_cuda_time_total"):
        v = getattr(e, attr, None)
        if v is not None:
            return float(v)
    return 0.0


def op_profile(cfg, batch, precision, device, top):
    """torch.profiler over one training step (after a warm-up), one profile per phase so
    that an op's time lands in its phase: the top ops by self CUDA time."""
    from torch.profiler import ProfilerActivity, profile

    model, opt, x, y, autocast = setup(cfg, batch, precision, device)
    model.train()
    step = training_step(model, opt, x, y, autocast)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    acts = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    opt.zero_grad(set_to_none=True)
    with profile(activities=acts) as p_fwd:
        with autocast:
            loss = F.cross_entropy(model(x), y)
        torch.cuda.synchronize()
    with profile(activities=acts) as p_bwd:
        loss.backward()
        torch.cuda.synchronize()
    with profile(activities=acts) as p_opt:
        opt.step()
        torch.cuda.synchronize()
    rows = []
    for phase, prof in (("forward", p_fwd), ("backward", p_bwd), ("optimizer", p_opt)):
        events = list(prof.key_averages())
        # aten ops (CPU side) carry the time of the kernels they launched as self CUDA
        # time; the kernels themselves are listed too (device type CUDA): count ops only.
        cpu_side = [e for e in events if str(getattr(e, "device_type", "CPU")).endswith("CPU")]
        ops = [(e.key, _self_cuda_us(e), e.count) for e in (cpu_side or events)]
        ops = [o for o in ops if o[1] > 0]
        total = sum(o[1] for o in ops)
        rows.append({"torch_profile": True, "precision": precision, "phase": phase, "op": "(total)",
                     "cuda_ms": round(total / 1000, 4), "calls": sum(o[2] for o in ops), "share": 1.0 if total else None})
        for key, us, calls in sorted(ops, key=lambda o: -o[1])[:top]:
            rows.append({"torch_profile": True, "precision": precision, "phase": phase, "op": key,
                         "cuda_ms": round(us / 1000, 4), "calls": calls, "share": round(us / total, 4) if total else None})
    return rows


def main():
    ap = argparse.ArgumentParser(description="PyTorch GPU AlexNet baseline (eager, cuDNN)")
    ap.add_argument("--config", help=".json file or .safetensors with config metadata (default: paper)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--precisions", default="fp32,tf32,bf16")
    ap.add_argument("--profile", action="store_true",
                    help="then per-layer and per-op-type GPU time of a training step (fp32, bf16)")
    ap.add_argument("--profile-steps", type=int, default=5, help="steps averaged by the per-layer profile")
    ap.add_argument("--top", type=int, default=12, help="ops per phase in the op-type profile")
    args = ap.parse_args()
    global PROFILE_STEPS
    PROFILE_STEPS = max(1, args.profile_steps)
    if not torch.cuda.is_available():
        print("SKIP torch_gpu_bench: torch.cuda.is_available() is False", file=sys.stderr)
        sys.exit(77)
    torch.backends.cudnn.benchmark = True
    cfg = load_config(args.config) if args.config else PAPER_CONFIG
    device = torch.device("cuda", 0)
    for precision in args.precisions.split(","):
        print(json.dumps(bench(cfg, args.batch, precision, args.warmup, args.iters, device)), flush=True)
    if args.profile:
        for precision in ("fp32", "bf16"):
            try:
                for row in layer_profile(cfg, args.batch, precision, device):
                    print(json.dumps(row), flush=True)
            except Exception as e:  # noqa: BLE001 - report and go on: the throughput lines stand
                print(json.dumps({"layer_profile": True, "backend": "pytorch-cuda", "precision": precision,
                                  "error": f"{type(e).__name__}: {e}"}), flush=True)
            try:
                for row in op_profile(cfg, args.batch, precision, device, args.top):
                    print(json.dumps(row), flush=True)
            except Exception as e:  # noqa: BLE001
                print(json.dumps({"torch_profile": True, "precision": precision,
                                  "error": f"{type(e).__name__}: {e}"}), flush=True)


if __name__ == "__main__":
    main()
