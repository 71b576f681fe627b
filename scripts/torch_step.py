"""PyTorch reference for ONE SGD step of a config-defined AlexNet (numerical
parity check against `alexnet step`).

  PYTHONPATH=.cache/pylib /usr/bin/python3 scripts/torch_step.py \
      --weights W.safetensors --input X.safetensors --lr 0.01 \
      [--masks O.safetensors] [--double] --out R.safetensors

W: `<layer>.weight/.bias` float32 (+ ignored extras), config JSON in metadata
`config`. X: `images` [N,C,H,W], `labels` [N]. O: `mask.<linear>` [N,features]
dropout multipliers (without --masks dropout is the identity).
R: `logits`, `loss` [1] (mean softmax cross-entropy), `grad.<param>`, and
`<param>` updated by the paper's rule from zero momentum:
  v = 0.9*v - 0.0005*lr*w - lr*grad (v = 0), w = w + v.
Computes in float32, or float64 with --double (R is then written in float64).
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_alexnet import ConfigNet, load_config, load_params  # noqa: E402

MOMENTUM, WEIGHT_DECAY = 0.9, 0.0005


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--masks")
    ap.add_argument("--out", required=True)
    ap.add_argument("--double", action="store_true", help="compute (and write) in float64")
    a = ap.parse_args()
    dtype = torch.float64 if a.double else torch.float32

    cfg = load_config(a.weights)
    model = ConfigNet(cfg)
    load_params(model, load_file(a.weights), dtype)
    model.eval()  # dropout only through explicit masks

    X = load_file(a.input)
    images, labels = X["images"].to(dtype), X["labels"].long()
    inp = cfg["input"]
    want = (inp["channels"], inp["height"], inp["width"])
    if images.dim() != 4 or tuple(images.shape[1:]) != want:
        sys.exit(f"images shape {list(images.shape)}, config wants [N,{','.join(map(str, want))}]")
    if labels.shape != (images.shape[0],):
        sys.exit(f"labels shape {list(labels.shape)}, want [{images.shape[0]}]")
    masks = load_file(a.masks) if a.masks else None

    logits = model(images, masks)
    loss = F.cross_entropy(logits, labels)  # mean over the batch
    loss.backward()

    out = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            v = torch.zeros_like(p)
            v = MOMENTUM * v - WEIGHT_DECAY * a.lr * p - a.lr * p.grad
            out["grad." + name] = p.grad.clone()
            out[name] = p + v
    out = {k: t.contiguous() for k, t in out.items()}
    save_file(out, a.out, metadata={"config": json.dumps(cfg), "lr": repr(a.lr),
                                    "dtype": str(dtype).replace("torch.", "")})
    print(json.dumps({"loss": loss.item(), "dtype": str(dtype), "out": a.out}))


if __name__ == "__main__":
    main()
