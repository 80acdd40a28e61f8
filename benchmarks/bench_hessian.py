"""Hessian trace and top eigenvalues side by side with PyHessian (same model, data and seed).

The model is a SmallCNN (width 8) trained for a moment on digits; the loss is the mean cross-entropy over
the first 300 test examples; the parameter group is the whole model (PyHessian always takes every
parameter with ``requires_grad``). Both run Hutchinson with the same number of Rademacher probes (PyHessian
with ``tol=0`` so that it does not stop early; it returns the samples, we return mean, standard error and
samples) and power iteration for the top-2 eigenvalues. Because both traces are random estimates, agreement
is judged in combined standard errors; the eigenvalues should agree to the power-iteration tolerance.

PyHessian lives in its own venv, ``benchmarks/.venvs/pyhessian``, made without downloading a second
torch: a ``.pth`` file adds the project venv's site-packages and pyhessian 0.1 is installed ``--no-deps``::

    python3 -m venv benchmarks/.venvs/pyhessian
    SP=$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')
    echo "import site; site.addsitedir('$SP')" \\
        > benchmarks/.venvs/pyhessian/lib/python3.11/site-packages/main_venv.pth
    benchmarks/.venvs/pyhessian/bin/pip install --no-deps pyhessian==0.1

Writes ``benchmarks/results/hessian.json``. Run: ``.venv/bin/python benchmarks/bench_hessian.py``.
CPU timings use one torch thread; pass ``--threads N`` to change it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
PEER_PY = ROOT / "benchmarks" / ".venvs" / "pyhessian" / "bin" / "python"
OUT = ROOT / "benchmarks" / "results" / "hessian.json"

PEER = r"""
import json, sys, time
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[4]))
from pyhessian import hessian
from advlab.models.classifiers import load_classifier
model = load_classifier(sys.argv[1])
x, y = torch.load(sys.argv[2])
n, seed = int(sys.argv[3]), int(sys.argv[5])
torch.manual_seed(seed)
t0 = time.perf_counter()
h = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
t_setup = time.perf_counter() - t0
t0 = time.perf_counter()
samples = h.trace(maxIter=n, tol=0.0)
t_trace = time.perf_counter() - t0
t0 = time.perf_counter()
eig, _ = h.eigenvalues(maxIter=200, tol=1e-6, top_n=2)
t_eig = time.perf_counter() - t0
print(json.dumps({"trace_samples": samples, "eigenvalues": eig, "seconds_setup": t_setup,
                  "seconds_trace": t_trace, "seconds_eigenvalues": t_eig, "training_mode_after": model.training}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not PEER_PY.exists():
        print(f"PyHessian venv missing: create {PEER_PY.parent.parent} as the docstring says", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    from advlab.analysis.hessian import hessian_top_eigenvalues, hessian_trace
    from advlab.data.images import load_digits_split
    from advlab.models.classifiers import build_classifier, save_classifier

    torch.manual_seed(args.seed)
    xtr, ytr = load_digits_split("train")
    x, y = load_digits_split("test")
    x, y = x[:300], y[:300]
    model = build_classifier("cnn", (1, 8, 8), 10, width=8, hidden=32)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(xtr), ytr).backward()
        opt.step()
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())

    with tempfile.TemporaryDirectory() as tmp:
        save_classifier(model, Path(tmp) / "m", {"arch": "cnn", "input_shape": [1, 8, 8], "num_classes": 10,
                                                 "kwargs": {"width": 8, "hidden": 32}})
        torch.save((x, y), Path(tmp) / "data.pt")
        proc = subprocess.run(
            [str(PEER_PY), "-c", PEER, str(Path(tmp) / "m"), str(Path(tmp) / "data.pt"), str(args.samples),
             str(args.threads), str(args.seed)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return 1
    peer = json.loads(proc.stdout.strip().splitlines()[-1])

    model.train()  # to show that advlab restores the mode (PyHessian leaves the model in eval)
    t0 = time.perf_counter()
    tr = hessian_trace(model, x, y, None, samples=args.samples, seed=args.seed)
    t_trace = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = hessian_top_eigenvalues(model, x, y, None, top_k=2, max_iter=200, tol=1e-6, seed=args.seed)
    t_eig = time.perf_counter() - t0

    ps = torch.tensor(peer["trace_samples"], dtype=torch.float64)
    peer_mean, peer_se = float(ps.mean()), float(ps.std() / len(ps) ** 0.5)
    combined_se = (peer_se**2 + tr.trace_se**2) ** 0.5
    result = {
        "model": "SmallCNN width 8 (digits), whole model", "parameters": n_params, "examples": int(x.shape[0]),
        "threads": args.threads, "samples": args.samples,
        "advlab": {"trace": tr.trace, "trace_se": tr.trace_se, "eigenvalues": ev.eigenvalues,
                   "eigen_iterations": ev.eigen_iterations, "seconds_trace": t_trace, "seconds_eigenvalues": t_eig,
                   "training_mode_after": model.training},
        "pyhessian": {"trace": peer_mean, "trace_se": peer_se, "eigenvalues": peer["eigenvalues"],
                      "seconds_trace": peer["seconds_trace"] + peer["seconds_setup"],
                      "seconds_eigenvalues": peer["seconds_eigenvalues"],
                      "training_mode_after": peer["training_mode_after"]},
        "agreement": {
            "trace_difference_in_combined_se": abs(tr.trace - peer_mean) / combined_se,
            "top_eigenvalue_relative_difference": abs(ev.eigenvalues[0] - peer["eigenvalues"][0])
            / abs(peer["eigenvalues"][0]),
            "second_eigenvalue_relative_difference": abs(ev.eigenvalues[1] - peer["eigenvalues"][1])
            / abs(peer["eigenvalues"][1]),
        },
        "ratios": {
            "trace_time_ratio_pyhessian_over_advlab": (peer["seconds_trace"] + peer["seconds_setup"]) / t_trace,
            "eigen_time_ratio_pyhessian_over_advlab": peer["seconds_eigenvalues"] / t_eig,
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
