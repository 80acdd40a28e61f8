"""``advlab analyze valley``: the job ``analyze-valley`` (wiring only; see :mod:`advlab.analysis.valley`).

Items are batches of the selected examples; one record per (example, attack step) with the flatness
measures along the attack, and :func:`advlab.analysis.valley.valley_metrics` as the metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from advlab.analysis.inputs import load_model_and_data, resolve_layer, select_examples
from advlab.analysis.valley import ValleyConfig, trajectory_records, valley_metrics, valley_trajectory
from advlab.errors import ConfigError
from advlab.jobs import check_writable, run_job
from advlab.utils import seed_everything


@dataclass
class ValleyJob:
    name = "analyze-valley"
    cfg: ValleyConfig
    config: dict[str, Any]
    model: Any
    x: torch.Tensor
    y: torch.Tensor
    examples: list[int]
    seed: int = 0
    device: str = "cpu"

    def items(self) -> list[dict[str, Any]]:
        bs = self.cfg.batch_size
        return [{"id": f"batch-{s}", "start": s, "examples": self.examples[s : s + bs]}
                for s in range(0, len(self.examples), bs)]

    def item_steps(self, item: dict[str, Any]) -> int:
        return len(item["examples"]) * (self.cfg.steps + 1)

    def is_done(self, item: dict[str, Any], done: set[str]) -> bool:
        return all(f"{e}:{s}" in done for e in item["examples"] for s in range(self.cfg.steps + 1))

    def run_item(self, item: dict[str, Any], tick) -> list[dict[str, Any]]:
        batch = item["examples"]
        traj = valley_trajectory(self.model, self.x[batch], self.y[batch], self.cfg, seed=self.seed + item["start"],
                                 on_step=lambda _i: tick(len(batch)))
        return trajectory_records(traj, batch)

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {**valley_metrics(records), "layer": self.config["layer"], "model": self.config["model"]}


def run_valley_job(
    model_dir: str | Path,
    out: str | Path,
    cfg: ValleyConfig,
    *,
    data: str = "digits",
    split: str = "test",
    seed: int = 0,
    device: torch.device | str = "cpu",
    argv: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The valley experiment on a saved classifier, written to the run directory ``out``; returns metrics."""
    device = torch.device(device)
    check_writable(out)
    model, x, y = load_model_and_data(model_dir, data, split, device)
    layer = resolve_layer(model, cfg.layer, cfg.method, x)
    seed_everything(seed)
    idx = select_examples(model, x, y, cfg, device)
    if not idx:
        raise ConfigError("no example is classified correctly, so there is no label to flip; "
                          "pass --all-examples or a trained model")
    config = {**asdict(cfg), "layer": layer, "model": str(model_dir), "data": data, "split": split}
    job = ValleyJob(cfg, config, model, x, y, idx, seed=seed, device=str(device))
    return run_job(job, out, argv=argv, progress=progress).metrics
