"""Analysis jobs that write run directories: flatness, Hessian, valley (used by ``advlab analyze``).

Every job validates its inputs (model, data, layer, options) before the run directory is created,
writes one record per item through :class:`advlab.runs.RunDir` (resuming skips finished items), then
metrics, figures and ``report.html``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.analysis._common import get_layer, get_linear, logits_layer_name
from advlab.analysis.flatness import METHODS
from advlab.analysis.valley import (
    ValleyConfig,
    summarize_valley,
    trajectory_records,
    valley_trajectory,
)
from advlab.errors import ConfigError


def _progress(disable: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), disable=disable, transient=True)


def load_model_and_data(model_dir: str | Path, data: str, split: str, device: torch.device):
    """Load a saved classifier (eval mode, on ``device``) and one split of an image set."""
    from advlab.data.images import load_image_split
    from advlab.models.classifiers import load_classifier

    model = load_classifier(model_dir, device=device)
    x, y = load_image_split(data, split)
    shape = tuple(model.meta.get("input_shape", x.shape[1:]))  # type: ignore[union-attr]
    if tuple(x.shape[1:]) != shape:
        raise ConfigError(
            f"the model expects inputs of shape {shape} but --data {data} has {tuple(x.shape[1:])}; "
            "pass the data set the model was trained on"
        )
    return model, x, y


def _resolve_layer(model: nn.Module, layer: str | None, method: str, x: torch.Tensor) -> str:
    name = layer or logits_layer_name(model, x)
    get_linear(model, name)
    if method == "exact" and name != logits_layer_name(model, x):
        raise ConfigError(
            f"layer {name!r} does not produce the logits, so the exact closed form does not apply; "
            "use --method hutchinson (or brute for tiny layers)"
        )
    return name


@torch.no_grad()
def _correct_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device, batch: int = 512) -> torch.Tensor:
    preds = [model(x[i : i + batch].to(device)).argmax(1).cpu() for i in range(0, x.shape[0], batch)]
    return torch.cat(preds) == y


def select_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: ValleyConfig, device) -> list[int]:
    """Indices of the examples to attack: the first ``n_examples`` (correctly classified ones if asked)."""
    if cfg.only_correct:
        ok = _correct_mask(model, x, y, device)
        idx = torch.nonzero(ok).flatten().tolist()
    else:
        idx = list(range(x.shape[0]))
    return idx[: cfg.n_examples]


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
    from advlab.report import write_report
    from advlab.runs import RunDir, check_out_path
    from advlab.utils import seed_everything

    device = torch.device(device)
    check_out_path(out)
    model, x, y = load_model_and_data(model_dir, data, split, device)
    layer = _resolve_layer(model, cfg.layer, cfg.method, x)
    seed_everything(seed)
    idx = select_examples(model, x, y, cfg, device)
    if not idx:
        raise ConfigError("no example is classified correctly, so there is no label to flip; "
                          "pass --all-examples or a trained model")
    config = {**asdict(cfg), "layer": layer, "model": str(model_dir), "data": data, "split": split}
    t = cfg.steps + 1
    with RunDir(out, "analyze-valley", config, seed=seed, device=str(device), argv=argv) as run, \
            _progress(not progress) as bar:
        task = bar.add_task("valley", total=len(idx) * t)
        for start in range(0, len(idx), cfg.batch_size):
            batch = idx[start : start + cfg.batch_size]
            if all(run.is_done(f"{e}:{s}") for e in batch for s in range(t)):
                bar.advance(task, len(batch) * t)
                continue
            traj = valley_trajectory(model, x[batch], y[batch], cfg, seed=seed + start,
                                     on_step=lambda _i, n=len(batch): bar.advance(task, n))
            for rec in trajectory_records(traj, batch):
                if not run.is_done(rec["id"]):
                    run.append(rec)
        metrics = valley_metrics(run.records)
        metrics.update(layer=layer, model=str(model_dir))
        run.write_metrics(metrics)
    write_report(run.path)
    return metrics


def valley_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts plus :func:`summarize_valley` for κ, Tr H, ‖φ‖², confidence and loss."""
    flat = summarize_valley(records, "flatness")
    shared = ("examples", "flipped", "never_flipped", "initially_misclassified", "flip_rate", "steps",
              "flip_step_median", "flip_step_mean", "steps_over_median_flip", "median_confidence_at_end")
    counts = {k: flat[k] for k in shared if k in flat}
    out: dict[str, Any] = dict(counts)
    if "note" in flat:
        out["note"] = flat["note"]
    for key in ("flatness", "trace", "phi_sq", "confidence", "loss"):
        s = summarize_valley(records, key)
        out[key] = {k: v for k, v in s.items() if k not in counts and k != "measure"}
    return out


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
    from advlab.analysis.flatness import flatness_measures
    from advlab.report import write_report
    from advlab.runs import RunDir, check_out_path

    if method not in METHODS:
        raise ConfigError(f"--method {method}: use one of {', '.join(METHODS)}")
    if method == "hutchinson" and samples < 1:
        raise ConfigError(f"--samples {samples}: the Hutchinson estimator needs at least 1 sample")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be at least 1")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be at least 1")
    device = torch.device(device)
    check_out_path(out)
    model, x, y = load_model_and_data(model_dir, data, split, device)
    name = _resolve_layer(model, layer, method, x)
    n = x.shape[0] if limit is None else min(limit, x.shape[0])
    config = {"model": str(model_dir), "data": data, "split": split, "layer": name, "method": method,
              "samples": samples, "limit": limit, "batch_size": batch_size}
    with RunDir(out, "analyze-flatness", config, seed=seed, device=str(device), argv=argv) as run, \
            _progress(not progress) as bar:
        task = bar.add_task(f"flatness {name}", total=n)
        for start in range(0, n, batch_size):
            ids = list(range(start, min(n, start + batch_size)))
            todo = [i for i in ids if not run.is_done(i)]
            if todo:
                r = flatness_measures(model, name, x[todo], y[todo], method=method, samples=samples,
                                      seed=seed + start)
                with torch.no_grad():
                    logits = model(x[todo].to(device)).float().cpu()
                p = logits.softmax(-1)
                for j, i in enumerate(todo):
                    run.append({
                        "id": i, "example": i, "label": int(y[i]), "pred": int(logits[j].argmax()),
                        "confidence": float(p[j].max()),
                        **{k: float(v[j]) for k, v in r.as_dict().items()},
                    })
            bar.advance(task, len(ids))
        recs = run.records
        metrics: dict[str, Any] = {"examples": len(recs), "layer": name, "method": method}
        for key in ("kappa", "trace_variant", "trace", "phi_sq"):
            vals = torch.tensor([float(r[key]) for r in recs], dtype=torch.float64)
            metrics[f"mean_{key}"] = float(vals.mean())
            metrics[f"median_{key}"] = float(vals.median())
        correct = [r for r in recs if r["pred"] == r["label"]]
        metrics["accuracy"] = len(correct) / len(recs)
        run.write_metrics(metrics)
    write_report(run.path)
    return metrics


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
    from advlab.analysis.hessian import hessian_top_eigenvalues, hessian_trace, param_group
    from advlab.report import write_report
    from advlab.runs import RunDir, check_out_path

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
    check_out_path(out)
    model, x, y = load_model_and_data(model_dir, data, split, device)
    groups: list[tuple[str, Any]] = []
    for g in layers:
        spec = None if g == "all" else g.split("+")
        if spec is not None:
            for name in spec:
                get_layer(model, name)
        param_group(model, spec)  # validates: a group without parameters is refused here
        groups.append((g, spec))
    if limit is not None:
        x, y = x[:limit], y[:limit]
    config = {"model": str(model_dir), "data": data, "split": split, "layers": list(layers), "samples": samples,
              "top_k": top_k, "max_iter": max_iter, "tol": tol, "limit": limit}
    with RunDir(out, "analyze-hessian", config, seed=seed, device=str(device), argv=argv) as run, \
            _progress(not progress) as bar:
        task = bar.add_task("hessian", total=len(groups))
        for gid, spec in groups:
            if not run.is_done(gid):
                tr = hessian_trace(model, x, y, spec, samples=samples, seed=seed)
                rec = {"id": gid, "group": gid, "params": tr.params, "num_params": tr.num_params,
                       "trace": tr.trace, "trace_se": tr.trace_se, "trace_samples": tr.trace_samples}
                if top_k:
                    ev = hessian_top_eigenvalues(model, x, y, spec, top_k=top_k, max_iter=max_iter, tol=tol,
                                                 seed=seed)
                    rec.update(eigenvalues=ev.eigenvalues, eigen_iterations=ev.eigen_iterations)
                run.append(rec)
            bar.advance(task)
        metrics = {
            r["group"]: {"num_params": r["num_params"], "trace": r["trace"], "trace_se": r["trace_se"],
                         "top_eigenvalue": (r.get("eigenvalues") or [None])[0]}
            for r in run.records
        }
        metrics["examples"] = int(x.shape[0])
        run.write_metrics(metrics)
    write_report(run.path)
    return metrics
