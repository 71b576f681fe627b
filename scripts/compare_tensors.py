"""Compares safetensors files for the numerical parity check.

  compare_tensors.py A.safetensors B.safetensors [--tol 1e-4] [--names n1,n2]

For every tensor in B (or only the named ones), rel = max|a-b| / max(max|b|, 1e-12),
computed in float64. Last line: one JSON object
  {"ok", "tol", "tensors": {name: {"max_abs_err", "max_abs", "rel"}}, "missing": [...]}
(non-finite numbers are written as null and fail). Exit 0 if every rel <= tol
and nothing is missing, else 1. A shape mismatch fails with an "error" entry.
"""
import argparse
import json
import math
import sys

import torch
from safetensors.torch import load_file


def num(x):
    return x if math.isfinite(x) else None


def main():
    ap = argparse.ArgumentParser(description="compare tensors of B against A")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--names", help="comma-separated tensor names (default: all in B)")
    args = ap.parse_args()
    A, B = load_file(args.a), load_file(args.b)
    names = [n for n in args.names.split(",") if n] if args.names else sorted(B)
    ok, missing, res = True, [], {}
    for n in names:
        if n not in A or n not in B:
            missing.append(n)
            where = "+".join(f for f, D in (("A", A), ("B", B)) if n not in D)
            print(f"missing: {n} (not in {where})", file=sys.stderr)
            ok = False
            continue
        a, b = A[n].double(), B[n].double()
        if a.shape != b.shape:
            msg = f"shape mismatch: A {list(a.shape)} vs B {list(b.shape)}"
            print(f"{n}: {msg}", file=sys.stderr)
            res[n] = {"max_abs_err": None, "max_abs": None, "rel": None, "error": msg}
            ok = False
            continue
        err = (a - b).abs().max().item() if a.numel() else 0.0
        mx = b.abs().max().item() if b.numel() else 0.0
        rel = err / max(mx, 1e-12)
        good = math.isfinite(rel) and math.isfinite(err) and rel <= args.tol
        res[n] = {"max_abs_err": num(err), "max_abs": num(mx), "rel": num(rel)}
        if not good:
            res[n]["error"] = "non-finite values" if not math.isfinite(rel) else "rel > tol"
            print(f"{n}: FAIL rel={rel:.3e} max_abs_err={err:.3e} max_abs={mx:.3e}", file=sys.stderr)
        ok = ok and good
    print(json.dumps({"ok": ok, "tol": args.tol, "tensors": res, "missing": missing}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
