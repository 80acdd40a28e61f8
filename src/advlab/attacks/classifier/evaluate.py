"""Robustness evaluation of a saved classifier: the library side of ``advlab attack classifier``.

For each ε in a list, the chosen attack (fgsm, pgd, apgd or worst-case) runs on a data split in
batches (:func:`batch_records`); one record per (ε, sample): label, clean and adversarial prediction,
cross-entropy at the adversarial input, perturbation norm, (worst case) the attack that fooled it, and
the robustness warnings the batch raised. A sample is robust iff it is classified correctly both clean
and under attack (:func:`advlab.attacks.classifier.robust.robust_flags`), so robust accuracy ≤ clean
accuracy by construction. Each batch's attack seed is derived from (seed, ε index, batch start), so a
resumed run gives the same numbers as an uninterrupted one. :func:`summarise` is the metrics.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from advlab.attacks.classifier.constraints import canonical_norm, perturbation_norms
from advlab.attacks.classifier.registry import make_attack
from advlab.attacks.classifier.robust import robust_flags
from advlab.attacks.classifier.validate import check_eps, check_steps
from advlab.data.images import load_image_split
from advlab.errors import ConfigError, DataError
from advlab.models.classifiers import load_classifier, read_classifier_meta

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
        if self.method not in METHODS:
            raise ConfigError(f"unknown attack method {self.method!r}; use one of {', '.join(METHODS)}")
        if not self.eps:
            raise ConfigError("pass at least one --eps value, e.g. --eps 0.1")
        self.eps = sorted({check_eps(e, "--eps") for e in self.eps})
        self.norm = canonical_norm(self.norm)
        if self.steps is None:
            self.steps = DEFAULT_STEPS[self.method]
        check_steps(self.steps, "--steps")
        if self.method == "fgsm" and self.steps != 1:
            raise ConfigError("FGSM takes exactly one step; drop --steps or use --method pgd")
        if self.step_size is not None and not (math.isfinite(self.step_size) and self.step_size > 0):
            raise ConfigError(f"--step-size {self.step_size} must be a number > 0 (or leave it out)")
        for name in ("restarts", "batch_size"):
            check_steps(getattr(self, name), f"--{name.replace('_', '-')}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit {self.limit} must be >= 1 (or leave it out for the whole split)")

    def make_attack(self, eps: float, seed: int):
        """The attack at radius ``eps`` (FGSM without random start; ``random_start`` is PGD's option)."""
        extra = {"random_start": self.random_start} if self.method == "pgd" else {}
        return make_attack(self.method, eps=eps, steps=self.steps, step_size=self.step_size, norm=self.norm,
                           restarts=self.restarts, seed=seed, **extra)


def load_eval_inputs(cfg: AttackEvalConfig, device: torch.device | str = "cpu"):
    """(model, meta, x, y, data name), validated against each other before any attack runs."""
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


def batch_seed(cfg: AttackEvalConfig, eps_idx: int, start: int) -> int:
    """The attack seed of the batch starting at ``start`` for the ``eps_idx``-th radius."""
    return cfg.seed * 1_000_003 + eps_idx * 10_007 + start


def batch_records(
    cfg: AttackEvalConfig, model, eps: float, eps_idx: int, start: int, xb: torch.Tensor, yb: torch.Tensor, device
) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """Attack one batch; its records (ids ``eps=E/INDEX``) and the adversarial inputs (CPU)."""
    attack = cfg.make_attack(eps, batch_seed(cfg, eps_idx, start)) if eps > 0 else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = robust_flags(model, xb, yb, attack, batch_size=max(len(yb), 1), device=device)
    found = list(dict.fromkeys(str(w.message) for w in caught))
    fooled = f.fooled_by or [None] * len(yb)
    norms = perturbation_norms(f.x_adv, xb.cpu(), cfg.norm)
    recs = []
    for j in range(len(yb)):
        rec = {
            "id": f"eps={eps:g}/{start + j}",
            "eps": eps,
            "index": start + j,
            "label": int(yb[j]),
            "clean_pred": int(f.clean_pred[j]),
            "adv_pred": int(f.adv_pred[j]),
            "clean_correct": bool(f.correct[j]),
            "robust": bool(f.robust[j]),
            "clean_loss": float(f.clean_loss[j]),
            "adv_loss": float(f.adv_loss[j]),
            "perturbation_norm": float(norms[j]),
            "fooled_by": fooled[j],
        }
        if found:
            rec["warnings"] = found
        recs.append(rec)
    return recs, f.x_adv


def summarise(records: list[dict[str, Any]], eps_list: list[float]) -> dict[str, Any]:
    """metrics.json: per ε clean/robust accuracy, attack success on correct points, norms, warnings."""
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
        warned = list(dict.fromkeys(w for r in rs for w in r.get("warnings", ())))
        if warned:
            entry["warnings"] = warned
        per_eps[f"{eps:g}"] = entry
    first = next(iter(per_eps.values()), {})
    return {
        "clean_accuracy": first.get("clean_accuracy"),
        "robust_accuracy": {k: v["robust_accuracy"] for k, v in per_eps.items()},
        "per_eps": per_eps,
    }
