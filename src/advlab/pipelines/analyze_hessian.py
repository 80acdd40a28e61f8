"""``advlab analyze hessian``: the job ``analyze-hessian`` (wiring only; see :mod:`advlab.analysis.hessian`).

One record per parameter group: the Hutchinson trace of the mean-loss Hessian (with its standard error)
and, optionally, its top eigenvalues (power iteration with deflation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advlab.analysis._common import get_layer
from advlab.analysis.hessian import hessian_top_eigenvalues, hessian_trace, param_group
from advlab.analysis.inputs import load_model_and_data
from advlab.errors import ConfigError
from advlab.jobs import check_writable, run_job


def hessian_summary(records: list[dict[str, Any]], examples: int) -> dict[str, Any]:
    """Per group: parameter count, trace (± standard error) and the top eigenvalue."""
    out: dict[str, Any] = {
        r["group"]: {"num_params": r["num_params"], "trace": r["trace"], "trace_se": r["trace_se"],
                     "top_eigenvalue": (r.get("eigenvalues") or [None])[0]}
        for r in records
    }
    out["examples"] = examples
    return out


@dataclass
class HessianJob:
    name = "analyze-hessian"
    config: dict[str, Any]
    model: Any
    x: torch.Tensor
    y: torch.Tensor
    groups: list[tuple[str, Any]]
    seed: int = 0
    device: str = "cpu"

    def items(self) -> list[dict[str, Any]]:
        return [{"id": gid, "spec": spec} for gid, spec in self.groups]

    def run_item(self, item: dict[str, Any], tick) -> dict[str, Any]:
        c, spec = self.config, item["spec"]
        tr = hessian_trace(self.model, self.x, self.y, spec, samples=c["samples"], seed=self.seed)
        rec = {"id": item["id"], "group": item["id"], "params": tr.params, "num_params": tr.num_params,
               "trace": tr.trace, "trace_se": tr.trace_se, "trace_samples": tr.trace_samples}
        if c["top_k"]:
            ev = hessian_top_eigenvalues(self.model, self.x, self.y, spec, top_k=c["top_k"], max_iter=c["max_iter"],
                                         tol=c["tol"], seed=self.seed)
            rec.update(eigenvalues=ev.eigenvalues, eigen_iterations=ev.eigen_iterations)
        tick(1)
        return rec

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return hessian_summary(records, int(self.x.shape[0]))


def run_hessian_job(
    model_dir: str | Path,
    out: str | Path,
    *,
    layers: Sequence[str] = ("all",),
    samples: int = 100,
    top_k: int = 1,
    max_iter: int = 100,
    tol: float = 1e-4,
    data: str = "digits",
    split: str = "test",
    limit: int | None = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    argv: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Hutchinson trace and top eigenvalues of the mean-loss Hessian, one record per parameter group.

    Each entry of ``layers`` is a group: a module name, several names joined by ``+``, or ``all``.
    """
    if samples < 1:
        raise ConfigError(f"--samples {samples}: the Hutchinson estimator needs at least 1 sample")
    if top_k < 0:
        raise ConfigError(f"--top-k {top_k}: must be 0 (no eigenvalues) or more")
    if max_iter < 1:
        raise ConfigError(f"--max-iter {max_iter}: must be at least 1")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be at least 1")
    if not layers:
        raise ConfigError("no parameter group given; pass --layer NAME (repeatable) or --layer all")
    device = torch.device(device)
    check_writable(out)
    model, x, y = load_model_and_data(model_dir, data, split, device)
    groups: list[tuple[str, Any]] = []
    for g in layers:
        spec = None if g == "all" else g.split("+")
        for name in spec or ():
            get_layer(model, name)
        param_group(model, spec)  # validates: a group without parameters is refused here
        groups.append((g, spec))
    if limit is not None:
        x, y = x[:limit], y[:limit]
    config = {"model": str(model_dir), "data": data, "split": split, "layers": list(layers), "samples": samples,
              "top_k": top_k, "max_iter": max_iter, "tol": tol, "limit": limit}
    job = HessianJob(config, model, x, y, groups, seed=seed, device=str(device))
    return run_job(job, out, argv=argv, progress=progress).metrics
