"""Robustness evaluation of a saved classifier: the library side of ``advlab attack classifier``.

For each ε in a list, the chosen attack (fgsm, pgd, apgd or worst-case) runs on a data split in
batches; one record per (ε, sample) goes to ``results.jsonl``: label, clean and adversarial prediction,
cross-entropy at the adversarial input, perturbation norm, and (worst case) the attack that fooled it.
A sample is robust iff it is classified correctly both clean and under attack, so robust accuracy ≤
clean accuracy by construction. ``examples.safetensors`` keeps a few clean/adversarial pairs per ε for
the report. Resume skips batches whose records exist; each batch's attack seed is derived from
(seed, ε index, batch index), so a resumed run gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from advlab.attacks.classifier.constraints import canonical_norm
from advlab.errors import ConfigError, DataError

METHODS = ("fgsm", "pgd", "apgd", "worst-case")
DEFAULT_STEPS = {"fgsm": 1, "pgd": 50, "apgd": 100, "worst-case": 100}
N_EXAMPLES = 8


@dataclass
class AttackEvalConfig:
    """Options of ``advlab attack classifier`` (validated on creation)."""

    method: str = "pgd"
    model: str = ""
    eps: list[float] = field(default_factory=lambda: [0.1])
    norm: str = "linf"
    steps: int | None = None  # None: the method's default (pgd 50, apgd/worst-case 100)
    step_size: float | None = None
    restarts: int = 1
    random_start: bool = True
    data: str | None = None  # None: the data the model was trained on (classifier.json), else digits
    split: str = "test"
    limit: int | None = None
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        from advlab.attacks.classifier.validate import check_eps

        if self.method not in METHODS:
            raise ConfigError(f"unknown attack method {self.method!r}; use one of {', '.join(METHODS)}")
        if not self.eps:
            raise ConfigError("pass at least one --eps value, e.g. --eps 0.1")
        self.eps = sorted({check_eps(e, "--eps") for e in self.eps})
        self.norm = canonical_norm(self.norm)
        if self.steps is None:
            self.steps = DEFAULT_STEPS[self.method]
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"--steps {self.steps} must be an integer >= 1, e.g. --steps 50")
        if self.method == "fgsm" and self.steps != 1:
            raise ConfigError("FGSM takes exactly one step; drop --steps or use --method pgd")
        if self.step_size is not None and not (math.isfinite(self.step_size) and self.step_size > 0):
            raise ConfigError(f"--step-size {self.step_size} must be a number > 0 (or leave it out)")
        for name in ("restarts", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {v} must be an integer >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit {self.limit} must be >= 1 (or leave it out for the whole split)")

    def make_attack(self, eps: float, seed: int):
        from advlab.attacks.classifier import APGD, FGSM, PGD, WorstCase

        if self.method == "fgsm":
            return FGSM(eps=eps, norm=self.norm, random_start=False, step_size=self.step_size, seed=seed)
        if self.method == "pgd":
            return PGD(
                eps=eps,
                steps=self.steps,
                step_size=self.step_size,
                norm=self.norm,
                random_start=self.random_start,
                restarts=self.restarts,
                seed=seed,
            )
        if self.method == "apgd":
            return APGD(eps=eps, steps=self.steps, norm=self.norm, restarts=self.restarts, seed=seed)
        return WorstCase(eps=eps, norm=self.norm, steps=self.steps, seed=seed)


def load_eval_inputs(cfg: AttackEvalConfig, device: torch.device | str = "cpu"):
    """(model, meta, x, y, data name), validated against each other before any attack runs."""
    from advlab.data.images import load_image_split
    from advlab.models.classifiers import load_classifier, read_classifier_meta

    meta = read_classifier_meta(cfg.model)
    data = cfg.data or meta.get("data") or "digits"
    x, y = load_image_split(data, cfg.split)
    if cfg.limit is not None:
        x, y = x[: cfg.limit], y[: cfg.limit]
    shape = tuple(meta.get("input_shape", ()))
    if tuple(x.shape[1:]) != shape:
        raise DataError(
            f"data {data!r} has inputs of shape {tuple(x.shape[1:])} but the model expects {shape}; "
            "pass the --data the model was trained on"
        )
    k = int(meta["num_classes"])
    if int(y.max()) >= k:
        raise DataError(f"data {data!r} has label {int(y.max())} but the model has {k} classes; check --data")
    model = load_classifier(cfg.model, device=device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model, meta, x, y, data


def _batch_records(cfg, model, eps, eps_idx, start, xb, yb, device):
    """Attack one batch and return its records (and the adversarial batch)."""
    from advlab.attacks.classifier import WorstCase
    from advlab.attacks.classifier.constraints import perturbation_norms

    seed = cfg.seed * 1_000_003 + eps_idx * 10_007 + start
    attack = cfg.make_attack(eps, seed)
    xb, yb = xb.to(device), yb.to(device)
    fooled_by: list[Any] = [None] * len(yb)
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(attack, WorstCase):
            res = attack.evaluate(model, xb, yb)
            x_adv, fooled_by = res.x_adv, res.fooled_by
        else:
            x_adv = attack(model, xb, yb) if eps > 0 else xb
    found = list(dict.fromkeys(str(w.message) for w in caught))
    with torch.no_grad():
        lc, la = model(xb), model(x_adv)
    pc, pa = lc.argmax(1), la.argmax(1)
    loss_c = F.cross_entropy(lc, yb, reduction="none")
    loss_a = F.cross_entropy(la, yb, reduction="none")
    norms = perturbation_norms(x_adv, xb, cfg.norm)
    recs = []
    for j in range(len(yb)):
        i = start + j
        recs.append(
            {
                "id": f"eps={eps:g}/{i}",
                "eps": eps,
                "index": i,
                "label": int(yb[j]),
                "clean_pred": int(pc[j]),
                "adv_pred": int(pa[j]),
                "clean_correct": bool(pc[j] == yb[j]),
                "robust": bool(pc[j] == yb[j] and pa[j] == yb[j]),
                "clean_loss": float(loss_c[j]),
                "adv_loss": float(loss_a[j]),
                "perturbation_norm": float(norms[j]),
                "fooled_by": fooled_by[j],
            }
        )
    return recs, x_adv.detach().cpu(), found


def summarise(
    records: list[dict[str, Any]], eps_list: list[float], warn: dict[str, list[str]]
) -> dict[str, Any]:
    """metrics.json: per ε clean/robust accuracy, attack success on correct points, norms."""
    per_eps: dict[str, Any] = {}
    for eps in eps_list:
        rs = [r for r in records if r["eps"] == eps]
        if not rs:
            continue
        n = len(rs)
        clean = sum(r["clean_correct"] for r in rs) / n
        robust = sum(r["robust"] for r in rs) / n
        n_correct = sum(r["clean_correct"] for r in rs)
        entry = {
            "n": n,
            "clean_accuracy": clean,
            "robust_accuracy": robust,
            "attack_success_rate": (1 - robust * n / n_correct) if n_correct else None,
            "mean_perturbation_norm": sum(r["perturbation_norm"] for r in rs) / n,
            "max_perturbation_norm": max(r["perturbation_norm"] for r in rs),
        }
        names = [r["fooled_by"] for r in rs if r.get("fooled_by")]
        if names:
            entry["fooled_by"] = {k: names.count(k) for k in dict.fromkeys(names)}
        if warn.get(f"{eps:g}"):
            entry["warnings"] = warn[f"{eps:g}"]
        per_eps[f"{eps:g}"] = entry
    first = next(iter(per_eps.values()), {})
    return {
        "clean_accuracy": first.get("clean_accuracy"),
        "robust_accuracy": {k: v["robust_accuracy"] for k, v in per_eps.items()},
        "per_eps": per_eps,
    }


def run_attack_eval(
    cfg: AttackEvalConfig,
    out: str | Path,
    device: torch.device | str = "cpu",
    *,
    argv=None,
    progress: bool = True,
) -> dict[str, Any]:
    """Attack ``cfg.model`` at every ε and write the run directory ``out``; returns the metrics."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from safetensors.torch import load_file, save_file

    from advlab.report import write_report
    from advlab.runs import RunDir, check_out_path

    check_out_path(out)
    device = torch.device(device)
    model, meta, x, y, data = load_eval_inputs(cfg, device)
    config = {**asdict(cfg), "data": data, "n": int(len(y)), "model_meta": meta}
    bs = cfg.batch_size
    starts = list(range(0, len(y), bs))
    with RunDir(
        out,
        "attack-classifier",
        config,
        seed=cfg.seed,
        device=str(device),
        argv=argv,
        resume_ignore=("device", "batch_size"),
    ) as run:
        ex_path = run.path / "examples.safetensors"
        examples = load_file(str(ex_path)) if ex_path.exists() else {}
        warn_path = run.path / "warnings.json"
        import json

        warn: dict[str, list[str]] = json.loads(warn_path.read_text()) if warn_path.exists() else {}
        total = len(cfg.eps) * len(y)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            disable=not progress,
            transient=True,
        ) as bar:
            task = bar.add_task(f"{cfg.method} on {Path(cfg.model).name}", total=total)
            for ei, eps in enumerate(cfg.eps):
                for s in starts:
                    n_b = min(bs, len(y) - s)
                    if all(run.is_done(f"eps={eps:g}/{i}") for i in range(s, s + n_b)):
                        bar.advance(task, n_b)
                        continue
                    recs, x_adv, found = _batch_records(
                        cfg, model, eps, ei, s, x[s : s + n_b], y[s : s + n_b], device
                    )
                    for r in recs:
                        if not run.is_done(r["id"]):
                            run.append(r)
                    if found:
                        key = f"{eps:g}"
                        warn[key] = list(dict.fromkeys([*warn.get(key, []), *found]))
                        from advlab.runs import atomic_write_json

                        atomic_write_json(warn_path, warn)
                    if s == 0:
                        # show what the attack did: flipped examples first, then robust ones
                        # (clean mistakes carry no perturbation and are left out)
                        flipped = [j for j, r in enumerate(recs) if r["clean_correct"] and not r["robust"]]
                        robust = [j for j, r in enumerate(recs) if r["robust"]]
                        pick = (flipped[: max(N_EXAMPLES - min(2, len(robust)), 0)] + robust)[:N_EXAMPLES]
                        if pick:
                            idx = torch.tensor(pick)
                            examples[f"clean/{eps:g}"] = x[s : s + n_b][idx].clone()
                            examples[f"adv/{eps:g}"] = x_adv[idx].clone()
                            examples[f"label/{eps:g}"] = y[s : s + n_b][idx].clone()
                            examples[f"clean_pred/{eps:g}"] = torch.tensor([recs[j]["clean_pred"] for j in pick])
                            examples[f"adv_pred/{eps:g}"] = torch.tensor([recs[j]["adv_pred"] for j in pick])
                            save_file(examples, str(ex_path))
                    bar.advance(task, n_b)
        metrics = summarise(run.records, cfg.eps, warn)
        metrics.update(
            {
                "method": cfg.method,
                "norm": cfg.norm,
                "steps": cfg.steps,
                "data": data,
                "split": cfg.split,
                "model": str(cfg.model),
            }
        )
        run.write_metrics(metrics)
    write_report(run.path)
    return metrics
