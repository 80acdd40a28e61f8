"""``advlab reproduce valley``: the uncanny-valley experiment (Walter et al. 2024) on digits.

Trains (or reuses, by resuming) a standard and a PGD-AT CNN with the classifier training job, runs the
valley experiment on both, and writes a comparison: ``OUT/models/{standard,pgd-at}`` (model + training
run), ``OUT/valley-{standard,pgd-at}`` (valley runs with their own reports), and ``OUT`` itself as a run
directory (job ``reproduce-valley``) with one record per model, ``metrics.json`` (side-by-side summary)
and ``figures/valley_comparison.png``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from advlab.analysis.valley import ValleyConfig, compare_models
from advlab.errors import ConfigError


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


def reproduce_valley(
    out: str | Path,
    cfg: ReproduceValleyConfig,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    argv: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train/reuse both models, run the valley on each, write the comparison; returns the metrics."""
    from advlab.analysis.jobs import run_valley_job
    from advlab.pipelines.train_classifier import run_training
    from advlab.report import write_report
    from advlab.report.valley import comparison_figure
    from advlab.runs import RunDir, check_out_path, load_run
    from advlab.training.classifier import TrainConfig

    out = check_out_path(out)
    train_cfgs = {
        "standard": TrainConfig(method="standard", arch=cfg.arch, epochs=cfg.epochs, seed=seed),
        "pgd-at": TrainConfig(method="pgd-at", arch=cfg.arch, epochs=cfg.epochs, eps=cfg.train_eps, seed=seed),
    }
    with RunDir(out, "reproduce-valley", asdict(cfg), seed=seed, device=str(device), argv=argv) as run:
        summaries: dict[str, dict[str, Any]] = {}
        runs: dict[str, list[dict[str, Any]]] = {}
        for name, tcfg in train_cfgs.items():
            model_dir = run.path / "models" / name
            train_metrics = run_training(tcfg, model_dir, device, argv=argv, progress=progress)
            valley_dir = run.path / f"valley-{name}"
            metrics = run_valley_job(model_dir, valley_dir, cfg.valley, seed=seed, device=device, argv=argv,
                                     progress=progress)
            _, _, records, _ = load_run(valley_dir)
            runs[name] = records
            summaries[name] = {
                "val_clean_accuracy": train_metrics.get("val_clean_accuracy"),
                "val_robust_accuracy": train_metrics.get("val_robust_accuracy"),
                **{k: v for k, v in metrics.items() if not isinstance(v, dict)},
                **{f"flatness.{k}": v for k, v in metrics["flatness"].items()},
                **{f"confidence.{k}": v for k, v in metrics["confidence"].items()},
                **{f"phi_sq.{k}": v for k, v in metrics["phi_sq"].items()},
            }
            if not run.is_done(name):
                run.append({"id": name, "model": str(model_dir), "valley_run": str(valley_dir), **summaries[name]})
        comparison = compare_models(summaries)
        run.write_metrics({"models": list(summaries), "comparison": comparison})
        comparison_figure(runs, run.figures_dir / "valley_comparison.png")
    write_report(run.path)
    return {"models": list(summaries), "comparison": comparison}
