"""``advlab reproduce valley``: the uncanny-valley experiment (Walter et al. 2024) on digits, job ``reproduce-valley``.

Items are the two models, a standard and a PGD-AT CNN: each is trained (or reused, by resuming) with the
classifier training job into ``OUT/models/{standard,pgd-at}``, and the valley job runs on it into
``OUT/valley-{standard,pgd-at}`` (each with its own report). ``OUT`` itself holds one record per model
(training accuracies and the valley summary), ``metrics.json`` (side-by-side comparison) and
``figures/valley_comparison.png``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from advlab.analysis.valley import ValleyConfig, compare_models
from advlab.errors import ConfigError
from advlab.jobs import check_writable, run_job
from advlab.pipelines.analyze_valley import run_valley_job
from advlab.pipelines.train_classifier import run_training
from advlab.training.classifier import TrainConfig


@dataclass
class ReproduceValleyConfig:
    """Training of the two models (``epochs``, PGD-AT radius ``train_eps``) and the valley options."""

    epochs: int = 20
    train_eps: float = 0.1
    arch: str = "cnn"
    valley: ValleyConfig = field(default_factory=ValleyConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"--epochs {self.epochs}: must be at least 1")
        if not isinstance(self.train_eps, (int, float)) or not self.train_eps > 0:
            raise ConfigError(f"--train-eps {self.train_eps}: the PGD-AT radius must be positive")


def _summary(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: {k: v for k, v in r.items() if k not in ("id", "valley_run")} for r in records}


@dataclass
class ReproduceValleyJob:
    name = "reproduce-valley"
    cfg: ReproduceValleyConfig
    out: Path
    seed: int = 0
    device: str = "cpu"
    argv: list[str] | None = None
    progress: bool = True

    @property
    def config(self) -> dict[str, Any]:
        return asdict(self.cfg)

    def items(self) -> list[dict[str, Any]]:
        c, s = self.cfg, self.seed
        return [{"id": "standard", "train": TrainConfig(method="standard", arch=c.arch, epochs=c.epochs, seed=s)},
                {"id": "pgd-at", "train": TrainConfig(method="pgd-at", arch=c.arch, epochs=c.epochs, eps=c.train_eps,
                                                      seed=s)}]

    def run_item(self, item: dict[str, Any], tick) -> dict[str, Any]:
        name, model_dir, valley_dir = item["id"], self.out / "models" / item["id"], self.out / f"valley-{item['id']}"
        train = run_training(item["train"], model_dir, self.device, argv=self.argv, progress=self.progress)
        m = run_valley_job(model_dir, valley_dir, self.cfg.valley, seed=self.seed, device=self.device, argv=self.argv,
                           progress=self.progress)
        tick(1)
        return {"id": name, "model": str(model_dir), "valley_run": str(valley_dir),
                "val_clean_accuracy": train.get("val_clean_accuracy"),
                "val_robust_accuracy": train.get("val_robust_accuracy"),
                **{k: v for k, v in m.items() if not isinstance(v, dict)},
                **{f"{group}.{k}": v for group in ("flatness", "confidence", "phi_sq") for k, v in m[group].items()}}

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        summaries = _summary(records)
        return {"models": list(summaries), "comparison": compare_models(summaries)}


def reproduce_valley(
    out: str | Path,
    cfg: ReproduceValleyConfig,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    argv: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train/reuse both models, run the valley on each, write the comparison; returns the metrics.

    The two inner jobs show their own progress; this outer one shows none (one live bar at a time)."""
    out = check_writable(out)
    job = ReproduceValleyJob(cfg, out, seed=seed, device=str(device), argv=argv, progress=progress)
    return run_job(job, out, argv=argv, progress=False).metrics
