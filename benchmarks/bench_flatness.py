"""Relative flatness: the closed form against the autograd Hessian, and per-example cost on digits.

1. A 10×256 output layer (MLP with one hidden layer of 256 units on digits): κ and Tr H per example by
   the closed form and by the full autograd Hessian (``torch.func.hessian``, 2,560² entries per example);
   agreement (max relative difference) and the speed ratio (the issue asks for at least 100×).
2. Per-example flatness of the SmallCNN's logits layer over 1,000 digits examples (closed form), and the
   Hutchinson estimator's cost per example for comparison (16 probes).

Writes ``benchmarks/results/flatness.json``. Run: ``.venv/bin/python benchmarks/bench_flatness.py``.
CPU timings use one torch thread (the dev machines are shared); pass ``--threads N`` to change it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "flatness.json"


def _fit(model, x, y, steps: int = 100, lr: float = 0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _timed(fn, repeat: int = 1):
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return out, (time.perf_counter() - t0) / repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--brute-examples", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from advlab.analysis.flatness import flatness_measures
    from advlab.data.images import load_digits_split
    from advlab.models.classifiers import build_classifier

    torch.manual_seed(0)
    xtr, ytr = load_digits_split("train")
    xte, yte = load_digits_split("test")

    # 1. closed form vs autograd Hessian on a 10×256 output layer
    mlp = _fit(build_classifier("mlp", (1, 8, 8), 10, hidden=256, depth=1), xtr, ytr)
    assert tuple(mlp.fc.weight.shape) == (10, 256)
    xb, yb = xte[: args.brute_examples], yte[: args.brute_examples]
    brute, t_brute = _timed(lambda: flatness_measures(mlp.double(), "fc", xb.double(), yb, method="brute"))
    exact, t_exact = _timed(lambda: flatness_measures(mlp, "fc", xb.double(), yb, method="exact"), repeat=50)
    rel = {k: float(((getattr(exact, k) - getattr(brute, k)).abs() / getattr(brute, k).abs()).max())
           for k in ("kappa", "trace")}
    mlp.float()

    # 2. per-example flatness over 1,000 digits examples (SmallCNN logits layer)
    cnn = _fit(build_classifier("cnn", (1, 8, 8), 10), xtr, ytr, steps=60)
    x1k = torch.cat([xtr, xte])[:1000]
    y1k = torch.cat([ytr, yte])[:1000]
    r1k, t1k = _timed(lambda: flatness_measures(cnn, "fc", x1k, y1k, method="exact"))
    n_h = 100
    _, t_h = _timed(lambda: flatness_measures(cnn, "fc", x1k[:n_h], y1k[:n_h], method="hutchinson", samples=16))

    result = {
        "threads": args.threads,
        "head_10x256": {
            "examples": args.brute_examples,
            "hessian_entries_per_example": 2560**2,
            "seconds_autograd_hessian": t_brute,
            "seconds_closed_form": t_exact,
            "speedup_closed_form_over_autograd": t_brute / t_exact,
            "max_relative_difference": rel,
            "kappa_closed_form": exact.kappa.tolist(),
            "kappa_autograd": brute.kappa.tolist(),
        },
        "digits_1000_cnn_logits_layer": {
            "examples": 1000,
            "seconds_closed_form": t1k,
            "mean_kappa": float(r1k.kappa.mean()),
            "mean_trace": float(r1k.trace.mean()),
            "hutchinson_16_probes_seconds_per_example": t_h / n_h,
            "speedup_closed_form_over_hutchinson_per_example": (t_h / n_h) / (t1k / 1000),
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = result["head_10x256"]["speedup_closed_form_over_autograd"] >= 100 and max(rel.values()) < 1e-5
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
