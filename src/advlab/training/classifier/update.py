"""Robustness-congruent model updates (Angioni et al. 2024): fine-tune the new model, pick (α, β) by S-NFR.

:func:`update_classifier` fine-tunes the new model with RCAT, PCT, PCT-AT or plain adversarial fine-tuning
("at") for each candidate (α, β) (:func:`finetune`), measures each on validation and test data
(:func:`evaluate_candidate`), and keeps the lowest validation S-NFR, ties broken by the higher validation
robust accuracy, then by sweep order (:func:`select`). The table holds clean accuracy, robust accuracy,
NFR, PFR, RNFR and S-NFR against the old model on test data.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advlab.analysis.update_check import CheckConfig, Flags, flip_metrics, load_split, measure
from advlab.training.classifier.epoch import train_epoch
from advlab.training.classifier.pct import pct_at_loss, pct_loss
from advlab.training.classifier.rcat import adversarial_finetune_loss, make_train_attack, rcat_loss
from advlab.training.classifier.update_config import UpdateConfig


def method_loss(method: str, old: nn.Module, new0: nn.Module, alpha: float, beta: float, cfg: UpdateConfig):
    """The ``loss_fn(model, x, y)`` of an update method."""
    attack = make_train_attack(cfg.train_attack, cfg.train_eps, cfg.train_steps, cfg.check.norm)
    if method == "rcat":
        return rcat_loss(old, new0, alpha, beta, attack)
    if method == "pct":
        return pct_loss(old, alpha, beta)
    if method == "pct-at":
        return pct_at_loss(old, alpha, beta, attack)
    return adversarial_finetune_loss(attack)


def finetune(
    old: nn.Module,
    new0: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    method: str,
    alpha: float,
    beta: float,
    cfg: UpdateConfig,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> nn.Module:
    """A copy of ``new0`` fine-tuned with ``method`` for ``cfg.epochs`` epochs (same seed, same model)."""
    device = torch.device(device)
    model = copy.deepcopy(new0).to(device)
    for p in model.parameters():
        p.requires_grad_(True)
    old, new0 = old.to(device).eval(), new0.to(device).eval()
    loss_fn = method_loss(method, old, new0, alpha, beta, cfg)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for epoch in range(cfg.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        train_epoch(
            model,
            x,
            y,
            loss_fn,
            opt,
            batch_size=cfg.batch_size,
            device=device,
            generator=gen,
            progress=progress,
        )
    return model.eval()


def candidate_id(method: str, alpha: float, beta: float) -> str:
    return method if method == "at" else f"{method}-a{alpha:g}-b{beta:g}"


@dataclass
class Splits:
    """Train / validation / test tensors of one data set."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def load(cls, data: str, val_limit: int | None = None, test_limit: int | None = None) -> Splits:
        return cls(
            *load_split(data, "train"),
            *load_split(data, "val", val_limit),
            *load_split(data, "test", test_limit),
        )


@dataclass
class Baseline:
    """Flags of the old and the pre-update new model on validation and test data (computed once)."""

    old_val: Flags
    new_val: Flags
    old_test: Flags
    new_test: Flags

    @classmethod
    def measure(cls, old, new, splits: Splits, check: CheckConfig, device) -> Baseline:
        val, test = (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)
        return cls(*(measure(m, *xy, check, device) for xy in (val, test) for m in (old, new)))

    def rows(self) -> list[dict[str, Any]]:
        """The table's first two rows: the old and the pre-update new model (test data)."""
        return [
            table_row("old", self.old_test, self.old_test, role="old"),
            table_row("new", self.old_test, self.new_test, role="new",
                      val_s_nfr=flip_metrics(self.old_val, self.new_val)["s_nfr"]),
        ]


def table_row(name: str, old: Flags, model: Flags, **extra: Any) -> dict[str, Any]:
    """One row of the update table: the model's clean/robust accuracy and its flips against the old model."""
    m = flip_metrics(old, model)
    return {
        "model": name,
        "clean_accuracy": m["new_accuracy"],
        "robust_accuracy": m["new_robust_accuracy"],
        "nfr": m["nfr"],
        "pfr": m["pfr"],
        "rnfr": m["rnfr"],
        "b_nfr": m["b_nfr"],
        "s_nfr": m["s_nfr"],
        **extra,
    }


@dataclass
class UpdateResult:
    """What :func:`update_classifier` returns: the selected model, its test flags, and the full table."""

    model: nn.Module
    method: str
    alpha: float
    beta: float
    test_flags: Flags
    baseline: Baseline
    table: list[dict[str, Any]]
    candidates: list[dict[str, Any]]

    def metrics(self) -> dict[str, Any]:
        """Flip metrics of the selected fine-tuned model against the old one (test data) plus the table."""
        m = flip_metrics(self.baseline.old_test, self.test_flags)
        return {
            **m,
            "method": self.method,
            "alpha": self.alpha,
            "beta": self.beta,
            "before_update": flip_metrics(self.baseline.old_test, self.baseline.new_test),
            "table": self.table,
        }


def evaluate_candidate(
    model: nn.Module, base: Baseline, splits: Splits, cfg: UpdateConfig, device, **extra: Any
) -> tuple[dict[str, Any], Flags]:
    """The table row of a fine-tuned candidate (test flips, validation S-NFR and robust accuracy) and its
    test flags."""
    val = measure(model, splits.x_val, splits.y_val, cfg.check, device)
    test = measure(model, splits.x_test, splits.y_test, cfg.check, device)
    vm = flip_metrics(base.old_val, val)
    row = table_row(extra.pop("name"), base.old_test, test, role="candidate", method=cfg.method, **extra,
                    val_s_nfr=vm["s_nfr"], val_robust_accuracy=vm["new_robust_accuracy"])
    return row, test


def select(rows: Sequence[dict[str, Any]]) -> int:
    """Index of the lowest validation S-NFR (ties: higher validation robust accuracy, then the first)."""
    keys = [(r["val_s_nfr"], -r["val_robust_accuracy"]) for r in rows]
    return min(range(len(rows)), key=lambda i: (keys[i], i))


def update_classifier(
    old: nn.Module,
    new: nn.Module,
    splits: Splits,
    cfg: UpdateConfig,
    device: torch.device | str = "cpu",
    *,
    baseline: Baseline | None = None,
    progress: Callable[[int], None] | None = None,
) -> UpdateResult:
    """Fine-tune ``new`` with ``cfg.method`` for each candidate (α, β) and keep the lowest validation S-NFR.

    Returns the table (old, new, each fine-tuned candidate: clean/robust accuracy, NFR, PFR, RNFR, S-NFR
    against ``old`` on test data, plus the validation S-NFR used for selection). ``progress(n)`` is
    called with each fine-tuning batch size.
    """
    device = torch.device(device)
    old, new = old.to(device).eval(), new.to(device).eval()
    base = baseline or Baseline.measure(old, new, splits, cfg.check, device)
    cands: list[dict[str, Any]] = []
    found: list[tuple[nn.Module, Flags]] = []
    for alpha, beta in cfg.candidates():
        t0 = time.perf_counter()
        model = finetune(old, new, splits.x_train, splits.y_train, cfg.method, alpha, beta, cfg, device, progress)
        row, test = evaluate_candidate(model, base, splits, cfg, device, name=candidate_id(cfg.method, alpha, beta),
                                       alpha=alpha, beta=beta)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        cands.append(row)
        found.append((model, test))
    best = select(cands)
    for i, r in enumerate(cands):
        r["selected"] = i == best
    model, test = found[best]
    return UpdateResult(model, cfg.method, cands[best]["alpha"], cands[best]["beta"], test, base,
                        base.rows() + cands, cands)
