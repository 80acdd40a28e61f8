"""``advlab reproduce rcat``: the job ``reproduce-rcat`` (wiring; :mod:`advlab.training.classifier.rcat_recipe`).

One item per seed: train the model sequence (kept under ``models/seed<S>/``), run every method on every
pair. Records: ``kind: model`` per model and seed, ``kind: row`` per row of each pair's table, and a
``seed<S>/done`` marker; the metrics hold the table, the per-pair mean ± std over seeds and the paired
comparison with plain adversarial fine-tuning (``summary``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from advlab.analysis.update_check import CheckConfig
from advlab.jobs import check_writable, run_job
from advlab.training.classifier.rcat_recipe import RecipeConfig, recipe_config, recipe_summary, run_seed
from advlab.training.classifier.update import Splits

MODEL_KEYS = ("seed", "name", "arch", "method", "epochs", "clean_accuracy", "robust_accuracy")


class ReproduceRCATJob:
    name = "reproduce-rcat"

    def __init__(self, cfg: RecipeConfig, config: dict, out: Path, device: torch.device) -> None:
        self.cfg, self.config, self.out, self.device = cfg, config, out, device
        self.seed = cfg.seeds[0]
        self.splits = Splits.load("digits")

    def items(self) -> list[dict[str, Any]]:
        return [{"id": f"seed{s}/done", "seed": s} for s in self.cfg.seeds]

    def item_steps(self, item: dict[str, Any]) -> int:
        per_method = sum(len(self.cfg.update_config(m).candidates()) for m in self.cfg.methods)
        epochs = self.cfg.update_config(self.cfg.methods[0]).epochs
        return len(self.cfg.pairs) * per_method * epochs * int(self.splits.x_train.shape[0])

    def run_item(self, item: dict[str, Any], tick) -> list[dict[str, Any]]:
        s = item["seed"]
        recs = run_seed(self.cfg, s, self.splits, self.device, self.out / "models" / f"seed{s}", progress=tick)
        return [*recs, {"id": item["id"], "kind": "done", "seed": s}]

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [r for r in records if r.get("kind") == "row"]
        check = CheckConfig(**self.cfg.check)
        return {
            "models": [{k: r[k] for k in MODEL_KEYS} for r in records if r.get("kind") == "model"],
            "table": rows,
            "summary": recipe_summary(rows, self.cfg.pairs, self.cfg.methods),
            "seeds": list(self.cfg.seeds),
            "eps": check.eps,
            "attack": f"{check.attack}-{check.steps}",
        }


def rcat_recipe(
    out: str | Path,
    quick: bool = False,
    *,
    seed: int = 0,
    seeds: int | None = None,
    device: torch.device | str = "cpu",
    argv: list[str] | None = None,
    progress: bool = True,
    cfg: RecipeConfig | None = None,
) -> dict[str, Any]:
    """``advlab reproduce rcat``: ``seeds`` seeds from ``seed`` on (default 5; 3 with ``quick``, the demo's
    short form: one pair, one (α, β) per method, short training). Returns the metrics."""
    check_writable(out)
    cfg = cfg or recipe_config(quick, seed, seeds)
    for m in cfg.methods:  # validate every method's options before work starts
        cfg.update_config(m)
    config = {**asdict(cfg), "quick": quick}
    job = ReproduceRCATJob(cfg, config, Path(out), torch.device(device))
    return run_job(job, out, argv=argv, progress=progress).metrics
