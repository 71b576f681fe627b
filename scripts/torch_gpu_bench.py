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
from torch_alexnet import PAPER_CONFIG, ConfigNet, load_config  # noqa: E402


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


def bench(cfg, batch, precision, warmup, iters, device):
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

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

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


def main():
    ap = argparse.ArgumentParser(description="PyTorch GPU AlexNet baseline (eager, cuDNN)")
    ap.add_argument("--config", help=".json file or .safetensors with config metadata (default: paper)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--precisions", default="fp32,tf32,bf16")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIP torch_gpu_bench: torch.cuda.is_available() is False", file=sys.stderr)
        sys.exit(77)
    torch.backends.cudnn.benchmark = True
    cfg = load_config(args.config) if args.config else PAPER_CONFIG
    device = torch.device("cuda", 0)
    for precision in args.precisions.split(","):
        print(json.dumps(bench(cfg, args.batch, precision, args.warmup, args.iters, device)), flush=True)


if __name__ == "__main__":
    main()
