"""PGD (and APGD) side by side with torchattacks on the same model and batch.

Measures adversarial examples per second at 10 and 100 PGD steps (L∞) and how well the outputs agree
without random start (same algorithm: identical outputs expected), plus L2 PGD and APGD-CE agreement
(same seed for the reference random start). Writes ``benchmarks/results/pgd.json``.

torchattacks lives in its own venv, ``benchmarks/.venvs/torchattacks``, made without downloading a
second torch: a ``.pth`` file in the venv adds the project venv's site-packages (torch 2.13, advlab and
its editable install) with ``site.addsitedir``, and torchattacks 3.5.1 is installed with ``--no-deps``
(importing it does not need torchvision; its other deps, numpy/scipy/tqdm/requests, come along)::

    python3 -m venv benchmarks/.venvs/torchattacks
    SP=$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')
    echo "import site; site.addsitedir('$SP')" \\
        > benchmarks/.venvs/torchattacks/lib/python3.11/site-packages/main_venv.pth
    benchmarks/.venvs/torchattacks/bin/pip install --no-deps torchattacks==3.5.1

Run: ``.venv/bin/python benchmarks/bench_pgd.py`` (re-executes itself in that venv when needed).
CPU timings use one torch thread (the dev machines are shared); pass ``--threads N`` to change it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_PY = ROOT / "benchmarks" / ".venvs" / "torchattacks" / "bin" / "python"
OUT = ROOT / "benchmarks" / "results" / "pgd.json"


def _ensure_peer() -> None:
    try:
        import torchattacks  # noqa: F401
    except ImportError:
        if PEER_PY.exists() and Path(sys.prefix).resolve() != PEER_PY.parent.parent.resolve():
            os.execv(str(PEER_PY), [str(PEER_PY), *sys.argv])
        sys.exit(f"torchattacks is not installed; create {PEER_PY.parent.parent} as the docstring says")


def _model(device):
    """The digits SmallCNN, standard-trained for 4 epochs (seed 0)."""
    import torch

    from advlab.data import load_digits_split
    from advlab.models import build_classifier
    from advlab.training.classifier import standard_loss, train_epoch

    torch.manual_seed(0)
    model = build_classifier("cnn", (1, 8, 8), 10)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = load_digits_split("train")
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        train_epoch(model, x, y, standard_loss, opt, batch_size=64, generator=g)
    model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _time_pair(fn_a, fn_b, repeats: int) -> tuple[float, object, float, object]:
    """Median seconds of ``fn_a`` and ``fn_b``, run alternately (after one warm-up each) so that load
    drift on a shared machine hits both alike; returns (t_a, out_a, t_b, out_b)."""
    fn_a(), fn_b()
    ta, tb, out_a, out_b = [], [], None, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out_a = fn_a()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out_b = fn_b()
        tb.append(time.perf_counter() - t0)
    return statistics.median(ta), out_a, statistics.median(tb), out_b


def _agreement(a, b, model, y) -> dict:
    import torch

    with torch.no_grad():
        pa, pb = model(a).argmax(1), model(b).argmax(1)
    diff = (a - b).abs()
    return {
        "identical_tensors": bool(torch.equal(a, b)),
        "max_abs_diff": float(diff.max()),
        "fraction_elements_equal": float((diff == 0).float().mean()),
        "fraction_predictions_equal": float((pa == pb).float().mean()),
        "robust_accuracy_advlab": float((pa == y).float().mean()),
        "robust_accuracy_torchattacks": float((pb == y).float().mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    _ensure_peer()
    import torch
    import torchattacks

    import advlab
    from advlab.attacks.classifier import APGD, PGD
    from advlab.data import load_digits_split

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = _model(device)
    x, y = load_digits_split("test")
    x, y = x[: args.batch].to(device), y[: args.batch].to(device)
    eps = args.eps
    results: dict = {
        "what": "PGD/APGD on the digits SmallCNN: advlab vs torchattacks, same model, same batch",
        "env": {
            "advlab": advlab.__version__,
            "torchattacks": torchattacks.__version__,
            "torch": torch.__version__,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "note": "shared 2-core machine: absolute timings are noisy, compare the ratios",
        },
        "batch": int(len(y)),
        "eps": eps,
        "repeats": args.repeats,
        "timing": "median seconds of the repeats",
        "runs": [],
    }
    with torch.no_grad():
        results["clean_accuracy"] = float((model(x).argmax(1) == y).float().mean())

    # --- L∞ PGD without random start: speed and agreement ----------------------------------------
    for steps in (10, 100):
        alpha = 2.5 * eps / steps
        ours = PGD(eps=eps, steps=steps, step_size=alpha, random_start=False, keep="last")
        peer = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
        t_ours, a, t_peer, b = _time_pair(
            lambda ours=ours: ours(model, x, y), lambda peer=peer: peer(x, y), args.repeats
        )
        results["runs"].append(
            {
                "attack": f"pgd-linf-{steps}",
                "random_start": False,
                "step_size": alpha,
                "advlab_examples_per_s": len(y) / t_ours,
                "torchattacks_examples_per_s": len(y) / t_peer,
                "speed_ratio_advlab_over_torchattacks": t_peer / t_ours,
                "agreement": _agreement(a, b, model, y),
            }
        )
        # advlab's default keeps the best iterate per sample (one extra forward pass)
        best = PGD(eps=eps, steps=steps, step_size=alpha, random_start=False, keep="best")
        t_best, _, t_last, _ = _time_pair(
            lambda best=best: best(model, x, y), lambda ours=ours: ours(model, x, y), args.repeats
        )
        results["runs"][-1]["advlab_keep_best_over_keep_last_time"] = t_best / t_last

    # --- L2 PGD without random start -------------------------------------------------------------
    eps2, steps = 1.0, 20
    alpha = 2.5 * eps2 / steps
    a = PGD(eps=eps2, steps=steps, step_size=alpha, norm="l2", random_start=False, keep="last")(model, x, y)
    b = torchattacks.PGDL2(model, eps=eps2, alpha=alpha, steps=steps, random_start=False)(x, y)
    results["runs"].append(
        {
            "attack": f"pgd-l2-{steps}",
            "eps": eps2,
            "agreement": _agreement(a, b, model, y),
            "note": "not bit-identical: torchattacks normalises the gradient of the batch-MEAN loss (+1e-10), "
            "advlab the per-sample gradient of the SUM loss (+1e-12); the rounding differs, and the 1e-10 "
            "matters where a sample's gradient is tiny. Predictions agree; see max_abs_diff",
        }
    )

    # --- APGD-CE, same reference random start (torch's global RNG seeded identically) ------------
    with torch.no_grad():
        ok = model(x).argmax(1) == y  # torchattacks attacks only the clean-correct points
    xc, yc = x[ok], y[ok]
    for norm, e, peer_norm in (("linf", eps, "Linf"), ("l2", 1.0, "L2")):
        peer = torchattacks.APGD(model, norm=peer_norm, eps=e, steps=100, n_restarts=1, seed=0, loss="ce")
        ours = APGD(eps=e, steps=100, norm=norm, seed=None)

        def run_ours(ours=ours):
            torch.manual_seed(0)  # the reference's random start: torch.rand after manual_seed(seed)
            return ours.run(model, xc, yc)

        t_ours, res, t_peer, b = _time_pair(run_ours, lambda peer=peer: peer(xc, yc), max(1, args.repeats // 2))
        with torch.no_grad():
            fooled_peer = model(b).argmax(1) != yc
        results["runs"].append(
            {
                "attack": f"apgd-ce-{norm}-100",
                "eps": e,
                "n": int(len(yc)),
                "advlab_examples_per_s": len(yc) / t_ours,
                "torchattacks_examples_per_s": len(yc) / t_peer,
                "speed_ratio_advlab_over_torchattacks": t_peer / t_ours,
                "robust_accuracy_advlab": 1 - float(res.success.float().mean()),
                "robust_accuracy_torchattacks": 1 - float(fooled_peer.float().mean()),
                "fraction_same_success": float((res.success == fooled_peer).float().mean()),
                "note": "for fooled points the two may return different successful iterates (advlab: the first "
                "success, then the highest loss; reference: the last success)",
            }
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    for r in results["runs"]:
        line = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "note"}
        print(json.dumps(line))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
