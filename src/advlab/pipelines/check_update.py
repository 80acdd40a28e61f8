"""``advlab check-update``: the job ``check-update`` (wiring only; see :mod:`advlab.analysis.update_check`).

Items are batches of the split; one record per sample (``old_correct``, ``new_correct``, ``old_robust``,
``new_robust``); the metrics are the flip metrics of those records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from advlab.analysis.update_check import (
    CheckConfig,
    Flags,
    check_pair_meta,
    flip_metrics,
    load_models,
    load_split,
    measure,
    read_pair_meta,
)
from advlab.jobs import check_writable, run_job
from advlab.utils import seed_everything


def flip_summary(records: list[dict[str, Any]], check: CheckConfig) -> dict[str, Any]:
    """Flip metrics of per-sample records (``old_*`` against ``new_*``) plus the attack budget."""
    old, new = Flags.of(records, "old"), Flags.of(records, "new")
    return {**flip_metrics(old, new), "n": len(records), "attack": f"{check.attack}-{check.steps}", "eps": check.eps}


@dataclass
class CheckUpdateJob:
    name = "check-update"
    cfg: CheckConfig
    config: dict[str, Any]
    old: Any
    new: Any
    x: torch.Tensor
    y: torch.Tensor
    device: str = "cpu"

    @property
    def seed(self) -> int:
        return self.cfg.seed

    def items(self) -> list[dict[str, Any]]:
        bs, n = self.cfg.batch_size, len(self.y)
        return [{"id": f"batch-{s}", "start": s, "n": min(bs, n - s)} for s in range(0, n, bs)]

    def item_steps(self, item: dict[str, Any]) -> int:
        return item["n"]

    def is_done(self, item: dict[str, Any], done: set[str]) -> bool:
        return all(f"{self.cfg.split}-{i}" in done for i in range(item["start"], item["start"] + item["n"]))

    def run_item(self, item: dict[str, Any], tick) -> list[dict[str, Any]]:
        s, n = item["start"], item["n"]
        xb, yb = self.x[s : s + n], self.y[s : s + n]
        old, new = (measure(m, xb, yb, self.cfg, self.device) for m in (self.old, self.new))
        tick(n)
        return [{"id": f"{self.cfg.split}-{s + j}", "index": s + j, "label": int(yb[j]),
                 "old_correct": bool(old.correct[j]), "new_correct": bool(new.correct[j]),
                 "old_robust": bool(old.robust[j]), "new_robust": bool(new.robust[j]), "split": self.cfg.split}
                for j in range(n)]

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return flip_summary(sorted(records, key=lambda r: r["index"]), self.cfg)

    def manifest_extra(self, metrics: dict[str, Any]) -> dict[str, Any]:
        c = self.cfg
        return {"attack": {"name": c.attack, "eps": c.eps, "norm": c.norm, "steps": c.steps}}


def run_check_update(
    old_path: str | Path,
    new_path: str | Path,
    out: str | Path,
    cfg: CheckConfig,
    device: torch.device | str = "cpu",
    *,
    argv: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``advlab check-update``: per-sample flags and flip metrics of an update, in run directory ``out``."""
    check_writable(out)
    old_meta, new_meta = read_pair_meta(old_path, new_path)
    x, y = load_split(cfg.data, cfg.split, cfg.limit)
    check_pair_meta(old_meta, new_meta, x, y, cfg.data)
    device = torch.device(device)
    seed_everything(cfg.seed)
    old, new = load_models(old_path, new_path, device)
    config = {**asdict(cfg), "old": str(old_path), "new": str(new_path)}
    job = CheckUpdateJob(cfg, config, old, new, x, y, device=str(device))
    return run_job(job, out, argv=argv, progress=progress).metrics
