"""``advlab analyze flatness``: the job ``analyze-flatness`` (wiring only; see :mod:`advlab.analysis.flatness`).

Per example of a split, the relative flatness κ, ‖W‖²·Tr H, Tr H and ‖φ‖² of one linear layer, with the
prediction and its confidence; the metrics are means and medians over the examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advlab.analysis.flatness import METHODS, flatness_measures
from advlab.analysis.inputs import load_model_and_data, resolve_layer
from advlab.errors import ConfigError
from advlab.jobs import check_writable, run_job

MEASURES = ("kappa", "trace_variant", "trace", "phi_sq")


def flatness_summary(records: list[dict[str, Any]], layer: str, method: str) -> dict[str, Any]:
    """Mean and median of each measure over the examples, and the accuracy."""
    out: dict[str, Any] = {"examples": len(records), "layer": layer, "method": method}
    for key in MEASURES:
        vals = torch.tensor([float(r[key]) for r in records], dtype=torch.float64)
        out[f"mean_{key}"] = float(vals.mean())
        out[f"median_{key}"] = float(vals.median())
    out["accuracy"] = sum(r["pred"] == r["label"] for r in records) / len(records)
    return out


@dataclass
class FlatnessJob:
    name = "analyze-flatness"
    config: dict[str, Any]
    model: Any
    x: torch.Tensor
    y: torch.Tensor
    n: int
    seed: int = 0
    device: str = "cpu"

    def items(self) -> list[dict[str, Any]]:
        n, bs = self.n, self.config["batch_size"]
        return [{"id": f"batch-{s}", "start": s, "ids": list(range(s, min(n, s + bs)))} for s in range(0, n, bs)]

    def item_steps(self, item: dict[str, Any]) -> int:
        return len(item["ids"])

    def is_done(self, item: dict[str, Any], done: set[str]) -> bool:
        return all(str(i) in done for i in item["ids"])

    def run_item(self, item: dict[str, Any], tick) -> list[dict[str, Any]]:
        ids, c = item["ids"], self.config
        r = flatness_measures(self.model, c["layer"], self.x[ids], self.y[ids], method=c["method"],
                              samples=c["samples"], seed=self.seed + item["start"])
        with torch.no_grad():
            logits = self.model(self.x[ids].to(self.device)).float().cpu()
        p = logits.softmax(-1)
        tick(len(ids))
        return [{"id": i, "example": i, "label": int(self.y[i]), "pred": int(logits[j].argmax()),
                 "confidence": float(p[j].max()), **{k: float(v[j]) for k, v in r.as_dict().items()}}
                for j, i in enumerate(ids)]

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return flatness_summary(records, self.config["layer"], self.config["method"])


def run_flatness_job(
    model_dir: str | Path,
    out: str | Path,
    *,
    layer: str | None = None,
    method: str = "exact",
    samples: int = 64,
    data: str = "digits",
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str = "cpu",
    argv: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Per-example relative flatness (κ, ‖W‖²·Tr H, Tr H, ‖φ‖²) of one layer over a data split."""
    if method not in METHODS:
        raise ConfigError(f"--method {method}: use one of {', '.join(METHODS)}")
    if method == "hutchinson" and samples < 1:
        raise ConfigError(f"--samples {samples}: the Hutchinson estimator needs at least 1 sample")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be at least 1")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be at least 1")
    device = torch.device(device)
    check_writable(out)
    model, x, y = load_model_and_data(model_dir, data, split, device)
    name = resolve_layer(model, layer, method, x)
    n = x.shape[0] if limit is None else min(limit, x.shape[0])
    config = {"model": str(model_dir), "data": data, "split": split, "layer": name, "method": method,
              "samples": samples, "limit": limit, "batch_size": batch_size}
    job = FlatnessJob(config, model, x, y, n, seed=seed, device=str(device))
    return run_job(job, out, argv=argv, progress=progress).metrics
