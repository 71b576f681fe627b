"""Shared PyTorch model code for the parity check (torch_step.py) and the CPU
baseline (torch_bench.py): turns our network config JSON into a torch module
with the same semantics as the C++ kernels, and reads/writes safetensors.

Semantics: NCHW activations; the first linear layer sees the C-order flatten of
(C,H,W); `lrn` is the paper's formula (sum of squares over channels
max(0,i-size//2)..min(Nb-1,i+size//2), times alpha, no division by size),
applied within each of `groups` contiguous channel blocks; `maxpool` has no
padding and floors; `dropout` p is the drop probability (inverted dropout).
Parameters are named `<layer>.weight` / `<layer>.bias` (conv OIHW, linear [out,in]).
"""
import json

import torch
import torch.nn as nn
import torch.nn.functional as F

PAPER_CONFIG = {
    "name": "alexnet", "input": {"channels": 3, "height": 227, "width": 227},
    "classes": 1000, "weightStd": 0.01,
    "layers": [
        {"type": "conv", "name": "conv1", "out": 96, "kernel": 11, "stride": 4, "pad": 0, "groups": 1, "biasInit": 0},
        {"type": "relu"},
        {"type": "lrn", "size": 5, "alpha": 0.0001, "beta": 0.75, "k": 2, "groups": 2},
        {"type": "maxpool", "kernel": 3, "stride": 2},
        {"type": "conv", "name": "conv2", "out": 256, "kernel": 5, "stride": 1, "pad": 2, "groups": 2, "biasInit": 1},
        {"type": "relu"},
        {"type": "lrn", "size": 5, "alpha": 0.0001, "beta": 0.75, "k": 2, "groups": 2},
        {"type": "maxpool", "kernel": 3, "stride": 2},
        {"type": "conv", "name": "conv3", "out": 384, "kernel": 3, "stride": 1, "pad": 1, "groups": 1, "biasInit": 0},
        {"type": "relu"},
        {"type": "conv", "name": "conv4", "out": 384, "kernel": 3, "stride": 1, "pad": 1, "groups": 2, "biasInit": 1},
        {"type": "relu"},
        {"type": "conv", "name": "conv5", "out": 256, "kernel": 3, "stride": 1, "pad": 1, "groups": 2, "biasInit": 1},
        {"type": "relu"},
        {"type": "maxpool", "kernel": 3, "stride": 2},
        {"type": "linear", "name": "fc6", "out": 4096, "biasInit": 1},
        {"type": "relu"},
        {"type": "dropout", "p": 0.5},
        {"type": "linear", "name": "fc7", "out": 4096, "biasInit": 1},
        {"type": "relu"},
        {"type": "dropout", "p": 0.5},
        {"type": "linear", "name": "fc8", "out": 1000, "biasInit": 0},
    ],
}


def lrn(x, size, alpha, beta, k, groups=1):
    """Paper LRN within each of `groups` contiguous channel blocks (any size, odd or even)."""
    n, c = x.shape[0], x.shape[1]
    if c % groups:
        raise ValueError(f"lrn: {c} channels not divisible by groups={groups}")
    nb, half = c // groups, size // 2
    sq = (x * x).reshape(n, groups, nb, -1)
    sq = F.pad(sq, (0, 0, half, half))  # zero-pad the channel axis of each block
    s = sum(sq[:, :, j:j + nb] for j in range(2 * half + 1))
    return x / (k + alpha * s.reshape(x.shape)) ** beta


class ConfigNet(nn.Module):
    """Network built from a config dict; forward(x, masks) where masks maps
    `mask.<name>` (name = last conv/linear before the dropout) to multipliers."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.specs = []  # (layer dict, mask key or None)
        inp = cfg["input"]
        shape = (inp["channels"], inp["height"], inp["width"])  # or (features,)
        last = None
        for i, L in enumerate(cfg["layers"]):
            t = L["type"]
            if t == "conv":
                if len(shape) != 3:
                    raise ValueError(f"layer {i}: conv after a linear layer")
                c, h, w = shape
                kk, st, pd, g = L["kernel"], L.get("stride", 1), L.get("pad", 0), L.get("groups", 1)
                self.add_module(L["name"], nn.Conv2d(c, L["out"], kk, st, pd, groups=g))
                shape = (L["out"], (h + 2 * pd - kk) // st + 1, (w + 2 * pd - kk) // st + 1)
                last = L["name"]
            elif t == "linear":
                feats = 1
                for d in shape:
                    feats *= d
                self.add_module(L["name"], nn.Linear(feats, L["out"]))
                shape, last = (L["out"],), L["name"]
            elif t == "maxpool":
                c, h, w = shape
                kk, st = L["kernel"], L.get("stride", L["kernel"])
                shape = (c, (h - kk) // st + 1, (w - kk) // st + 1)
            elif t not in ("relu", "lrn", "dropout"):
                raise ValueError(f"layer {i}: unknown type {t!r}")
            if min(shape) <= 0:
                raise ValueError(f"layer {i} ({t}): output shape {shape} is empty")
            self.specs.append((L, f"mask.{last}" if t == "dropout" else None))
        self.out_shape = shape

    def param_names(self):
        return [n for n, _ in self.named_parameters()]

    def init_paper(self, generator=None):
        """N(0, weightStd^2) weights, biases = each layer's biasInit."""
        std = self.cfg.get("weightStd", 0.01)
        with torch.no_grad():
            for L, _ in self.specs:
                if "name" in L:
                    m = getattr(self, L["name"])
                    m.weight.normal_(0.0, std, generator=generator)
                    m.bias.fill_(L.get("biasInit", 0))

    def forward(self, x, masks=None):
        for L, mkey in self.specs:
            t = L["type"]
            if t == "conv":
                x = getattr(self, L["name"])(x)
            elif t == "linear":
                x = getattr(self, L["name"])(x.flatten(1))
            elif t == "relu":
                x = F.relu(x)
            elif t == "lrn":
                x = lrn(x, L["size"], L["alpha"], L["beta"], L["k"], L.get("groups", 1))
            elif t == "maxpool":
                x = F.max_pool2d(x, L["kernel"], L.get("stride", L["kernel"]))
            elif t == "dropout":
                if masks is not None:
                    if mkey not in masks:
                        raise KeyError(f"masks file lacks {mkey}")
                    x = x * masks[mkey].to(x.dtype).reshape(x.shape)
                elif self.training:
                    x = F.dropout(x, L["p"], training=True)
        return x


def load_config(path):
    """Config from a .json file or from a .safetensors file's `config` metadata."""
    if path.endswith(".json"):
        with open(path) as f:
            return json.load(f)
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise ValueError(f"{path}: no 'config' in __metadata__")
    return json.loads(meta["config"])


def load_params(model, tensors, dtype):
    """Copy `<layer>.weight/.bias` from a tensor dict into model (shape-checked)."""
    state = {}
    for name, p in model.named_parameters():
        if name not in tensors:
            raise KeyError(f"weights file lacks {name}")
        t = tensors[name]
        if tuple(t.shape) != tuple(p.shape):
            raise ValueError(f"{name}: shape {list(t.shape)} in file, model expects {list(p.shape)}")
        state[name] = t.to(dtype)
    model.to(dtype)
    model.load_state_dict(state, strict=True)
