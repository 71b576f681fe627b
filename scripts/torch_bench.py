"""PyTorch CPU baseline for a config-defined AlexNet (default: the paper's,
227x227 input, groups=2 convs, LRN, dropout): images/s of a training step
(forward, backward, the paper's SGD update with momentum 0.9 and weight decay
0.0005) and of inference (eval, no_grad), median over --iters after --warmup.

  PYTHONPATH=.cache/pylib /usr/bin/python3 scripts/torch_bench.py \
      [--config cfg.json|W.safetensors] [--batch 128] [--threads N] [--warmup 1] [--iters 3] [--bf16]

--bf16: the forward under torch.autocast("cpu", dtype=torch.bfloat16) (convolutions and
linear layers in bf16, weights and the update fp32), PyTorch's mixed precision on the CPU.

Last line: {"backend":"pytorch-cpu","batch":..,"threads":..,"train_img_s":..,"infer_img_s":..}
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
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description="PyTorch CPU AlexNet baseline")
    ap.add_argument("--config", help=".json file or .safetensors with config metadata (default: paper)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--bf16", action="store_true", help="forward under CPU autocast to bfloat16")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    cfg = load_config(a.config) if a.config else PAPER_CONFIG
    model = ConfigNet(cfg)
    model.init_paper()
    params = list(model.parameters())
    vel = [torch.zeros_like(p) for p in params]
    inp = cfg["input"]
    x = torch.randn(a.batch, inp["channels"], inp["height"], inp["width"])
    y = torch.randint(0, cfg["classes"], (a.batch,))

    def forward(inputs):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            return model(inputs).float()

    def train_step():
        for p in params:
            p.grad = None
        F.cross_entropy(forward(x), y).backward()
        with torch.no_grad():
            for p, v in zip(params, vel):
                v.mul_(0.9).add_(p, alpha=-0.0005 * a.lr).add_(p.grad, alpha=-a.lr)
                p.add_(v)

    def infer():
        with torch.no_grad():
            forward(x)

    model.train()
    t_train = timed(train_step, a.warmup, a.iters)
    model.eval()
    t_infer = timed(infer, a.warmup, a.iters)
    print(json.dumps({"backend": "pytorch-cpu" + (" bf16 autocast" if a.bf16 else ""), "batch": a.batch, "threads": torch.get_num_threads(),
                      "train_img_s": round(a.batch / t_train, 2), "infer_img_s": round(a.batch / t_infer, 2)}))


if __name__ == "__main__":
    main()
