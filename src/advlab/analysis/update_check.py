"""Negative flips of a model update (Angioni et al. 2024): the measurement behind ``advlab check-update``.

The old and the new model are each attacked white-box on their own with the same attack and budget
(APGD-CE, 50 iterations by default, :class:`CheckConfig`); per sample, ``correct`` (clean) and ``robust``
(correct clean and under its own attack, :func:`advlab.attacks.classifier.robust.robust_flags`).
:func:`flip_metrics` gives NFR, PFR, RNFR, RPFR, B-NFR and S-NFR (``advlab.metrics``) and both accuracies.
Also here: reading and checking a model pair before any work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab import metrics as M
from advlab.attacks.classifier.constraints import canonical_norm
from advlab.attacks.classifier.registry import make_attack
from advlab.attacks.classifier.robust import robust_flags
from advlab.attacks.classifier.validate import check_number, check_steps
from advlab.data.images import load_image_split
from advlab.errors import ConfigError, ModelError
from advlab.models.classifiers import load_classifier, read_classifier_meta

EVAL_ATTACKS = ("apgd", "pgd", "fgsm")


@dataclass
class CheckConfig:
    """How a model pair is measured: the attack (same for both models), its budget, the data split."""

    data: str = "digits"
    split: str = "test"
    eps: float = 0.1
    norm: str = "linf"
    attack: str = "apgd"
    steps: int = 50
    batch_size: int = 256
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.attack not in EVAL_ATTACKS:
            raise ConfigError(f"unknown attack {self.attack!r}; use one of {', '.join(EVAL_ATTACKS)}")
        check_number(self.eps, "eps", positive=True)
        check_steps(self.steps, "steps")
        check_steps(self.batch_size, "batch_size")
        if self.limit is not None:
            check_steps(self.limit, "limit")
        self.norm = canonical_norm(self.norm)

    def make_attack(self) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
        """The white-box attack run on each model on its own (fixed seed: both get the same random start)."""
        return make_attack(self.attack, eps=self.eps, steps=self.steps, norm=self.norm, seed=self.seed)


@dataclass
class Flags:
    """Per-sample outcome of one model: clean correct, and robust (correct clean and under its own attack)."""

    correct: torch.Tensor
    robust: torch.Tensor

    @property
    def accuracy(self) -> float:
        return M.accuracy(self.correct.long(), torch.ones_like(self.correct, dtype=torch.long))

    @property
    def robust_accuracy(self) -> float:
        return M.robust_accuracy(self.robust)

    @classmethod
    def of(cls, records: list[dict[str, Any]], who: str) -> Flags:
        """The flags ``{who}_correct`` / ``{who}_robust`` of per-sample records."""
        return cls(torch.tensor([bool(r[f"{who}_correct"]) for r in records], dtype=torch.bool),
                   torch.tensor([bool(r[f"{who}_robust"]) for r in records], dtype=torch.bool))


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, check: CheckConfig, device) -> Flags:
    """``model``'s flags on (x, y) under ``check``'s attack."""
    f = robust_flags(model, x, y, check.make_attack(), batch_size=check.batch_size, device=device)
    return Flags(f.correct, f.robust)


def flip_metrics(old: Flags, new: Flags) -> dict[str, float]:
    """NFR, PFR, RNFR, RPFR, B-NFR, S-NFR of ``new`` against ``old`` plus both models' accuracies."""
    return {
        "nfr": M.nfr(old.correct, new.correct),
        "pfr": M.pfr(old.correct, new.correct),
        "rnfr": M.rnfr(old.robust, new.robust),
        "rpfr": M.rpfr(old.robust, new.robust),
        "b_nfr": M.b_nfr(old.correct, new.correct, old.robust, new.robust),
        "s_nfr": M.s_nfr(old.correct, new.correct, old.robust, new.robust),
        "old_accuracy": old.accuracy,
        "new_accuracy": new.accuracy,
        "old_robust_accuracy": old.robust_accuracy,
        "new_robust_accuracy": new.robust_accuracy,
    }


@dataclass
class UpdateCheck:
    """Per-sample flags of an old and a new model on the same data, and their flip metrics."""

    old: Flags
    new: Flags

    @property
    def old_correct(self) -> torch.Tensor:
        return self.old.correct

    @property
    def new_correct(self) -> torch.Tensor:
        return self.new.correct

    @property
    def old_robust(self) -> torch.Tensor:
        return self.old.robust

    @property
    def new_robust(self) -> torch.Tensor:
        return self.new.robust

    def metrics(self) -> dict[str, float]:
        return flip_metrics(self.old, self.new)

    def records(self, ids: list[str] | None = None, y: torch.Tensor | None = None) -> list[dict[str, Any]]:
        n = self.old.correct.shape[0]
        ids = ids or [f"sample-{i}" for i in range(n)]
        out = []
        for i in range(n):
            rec: dict[str, Any] = {"id": ids[i], "index": i}
            if y is not None:
                rec["label"] = int(y[i])
            rec.update(
                old_correct=bool(self.old.correct[i]),
                new_correct=bool(self.new.correct[i]),
                old_robust=bool(self.old.robust[i]),
                new_robust=bool(self.new.robust[i]),
            )
            out.append(rec)
        return out


def check_update(
    old: nn.Module,
    new: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Callable | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> UpdateCheck:
    """Measure an update: each model attacked white-box on its own (default APGD-CE-50, ε = 0.1)."""
    attack = attack if attack is not None else CheckConfig().make_attack()
    flags = [robust_flags(m, x, y, attack, batch_size=batch_size, device=device) for m in (old, new)]
    return UpdateCheck(*(Flags(f.correct, f.robust) for f in flags))


def check_pair_meta(old_meta: dict, new_meta: dict, x: torch.Tensor, y: torch.Tensor, data: str) -> None:
    """Refuse pairs with different classes or input shapes, or a model that is no classifier of ``data``."""
    if int(old_meta["num_classes"]) != int(new_meta["num_classes"]):
        raise ModelError(
            f"--old has {old_meta['num_classes']} classes but --new has {new_meta['num_classes']}; "
            "an update must keep the label set, pass two classifiers of the same task"
        )
    if list(old_meta["input_shape"]) != list(new_meta["input_shape"]):
        raise ModelError(
            f"--old takes inputs of shape {list(old_meta['input_shape'])} "
            f"but --new {list(new_meta['input_shape'])}; "
            "pass two classifiers of the same data"
        )
    n_classes = int(y.max()) + 1 if y.numel() else 0
    for flag, meta in (("--old", old_meta), ("--new", new_meta)):
        if list(meta["input_shape"]) != list(x.shape[1:]) or int(meta["num_classes"]) < n_classes:
            raise ModelError(
                f"{flag} is not a classifier of --data {data} (it takes {list(meta['input_shape'])} with "
                f"{meta['num_classes']} classes; the data has {list(x.shape[1:])} with {n_classes}); "
                "pass a model trained on this data"
            )
        if meta.get("data") not in (None, data):
            raise ModelError(
                f"{flag} was trained on {meta['data']!r}, not on --data {data}; "
                f"pass a model trained on {data}"
            )


def read_pair_meta(old_path: str | Path, new_path: str | Path) -> tuple[dict, dict]:
    """Both models' ``classifier.json`` (ModelError naming the flag when one is not an advlab classifier)."""
    metas = []
    for flag, p in (("--old", old_path), ("--new", new_path)):
        try:
            meta = read_classifier_meta(p)
        except ModelError as exc:
            raise ModelError(f"{flag}: {exc}") from None
        missing = [k for k in ("arch", "input_shape", "num_classes") if k not in meta]
        if missing or not (Path(p) / "model.safetensors").exists():
            raise ModelError(
                f"{flag} {p} is not a complete advlab classifier "
                f"(missing {', '.join(missing) or 'model.safetensors'}); "
                "pass a directory written by `advlab train classifier`"
            )
        metas.append(meta)
    return metas[0], metas[1]


def load_split(data: str, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_image_split(data, split)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y


def load_models(old_path, new_path, device) -> tuple[nn.Module, nn.Module]:
    return load_classifier(old_path, device), load_classifier(new_path, device)
