"""Cost of continuous adversarial training vs R2D2 on the safety gym, measured in one run.

Trains CAT, CAPO and R2D2 for a few steps each through the real pipeline (``advlab train llm``) with
their default attacks (CAT/CAPO: 30 signed embedding steps since the full-gym sweep of
docs/continuous_at.md, i.e. 32 F / 30 B per adversarial example; R2D2: a pool of 8 GCG test cases, 5 GCG
steps × search width 512 per training step), plus CAT at the paper's 10 attack steps (``cat_10``; 12 F /
10 B, less robust on the gym: see the sweep), and reads each run's ``training_metrics.json``:

- attack forward / backward passes per adversarial example (every sequence through the model counts one;
  the paper: R2D2 2,565 F / 5 B vs C-AdvUL 10 F / 10 B);
- the ratio R2D2 / CAT (and R2D2 / CAPO) of attack forward+backward passes per adversarial example
  (target ≥ 100) and of wall time per training step.

Run (about 5 minutes on 2 CPU cores with the quick gym)::

    .venv/bin/python benchmarks/bench_cat.py [--model DIR | --quick] [--steps 6] [--r2d2-steps 2]

Writes ``benchmarks/results/cat.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "cat.json"


def per_example(tm: dict) -> dict:
    n = max(1, tm["adversarial_examples"])
    f, b = tm["attack_forward_passes"] / n, tm["attack_backward_passes"] / n
    return {"attack_forward_per_example": f, "attack_backward_per_example": b, "attack_passes_per_example": f + b,
            "seconds_per_step": tm["seconds"] / max(1, tm["steps"]), **tm}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="Base chat model (default: the full gym, built if needed)")
    ap.add_argument("--quick", action="store_true", help="Use the quick gym")
    ap.add_argument("--steps", type=int, default=6, help="Training steps of CAT and CAPO")
    ap.add_argument("--r2d2-steps", type=int, default=2, help="Training steps of R2D2")
    args = ap.parse_args()
    from advlab.models.zoo import get_safety_gym
    from advlab.pipelines.train_llm import TrainLLMConfig, train_llm

    model = args.model or str(get_safety_gym(quick=args.quick))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        plan = (("cat", "cat", args.steps, {}), ("cat_10", "cat", args.steps, {"attack_steps": 10}),
                ("capo", "capo", args.steps, {}), ("r2d2", "r2d2", args.r2d2_steps, {}))
        for name, method, steps, extra in plan:
            cfg = TrainLLMConfig(method=method, model=model, max_steps=steps, save_every=steps, device="cpu",
                                 **extra)
            train_llm(cfg, Path(tmp) / name, progress=False)
            runs[name] = per_example(json.loads((Path(tmp) / name / "training_metrics.json").read_text()))
    r2 = runs["r2d2"]
    result: dict = {"model": model, "runs": runs}
    for name in ("cat", "cat_10", "capo"):
        result[f"ratio_passes_r2d2_over_{name}"] = (r2["attack_passes_per_example"]
                                                    / runs[name]["attack_passes_per_example"])
        result[f"ratio_step_seconds_r2d2_over_{name}"] = r2["seconds_per_step"] / runs[name]["seconds_per_step"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for m, r in runs.items():
        print(f"{m}: {r['attack_forward_per_example']:.1f} F / {r['attack_backward_per_example']:.1f} B per "
              f"adversarial example, {r['seconds_per_step']:.2f} s per step")
    print(json.dumps({k: round(v, 1) for k, v in result.items() if k.startswith("ratio")}))


if __name__ == "__main__":
    main()
