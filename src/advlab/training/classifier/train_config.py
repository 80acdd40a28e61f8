"""What ``advlab train classifier`` trains: the options, the loss and optimizer they pick, the data, the metadata.

Methods: standard training, PGD-AT (Madry et al. 2018) and TRADES (Zhang et al. 2019); every epoch is
evaluated clean and under PGD-``eval_steps`` (fixed seed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from advlab.attacks.classifier import PGD
from advlab.attacks.classifier.constraints import canonical_norm
from advlab.attacks.classifier.validate import check_number, check_steps
from advlab.data.images import load_image_split
from advlab.errors import ConfigError
from advlab.models.classifiers import ARCHITECTURES
from advlab.training.classifier.epoch import LossFn
from advlab.training.classifier.pgd_at import pgd_at_loss
from advlab.training.classifier.standard import standard_loss
from advlab.training.classifier.trades import trades_loss

METHODS = ("standard", "pgd-at", "trades")
OPTIMIZERS = ("adam", "sgd")


@dataclass
class TrainConfig:
    """Options of ``advlab train classifier`` (validated on creation)."""

    method: str = "standard"
    arch: str = "cnn"
    data: str = "digits"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    eps: float = 0.1  # training radius (pgd-at, trades)
    norm: str = "linf"
    attack_steps: int = 10
    step_size: float | None = None  # None: 2.5·eps/attack_steps
    beta: float = 6.0  # TRADES trade-off (Zhang et al. 2019)
    eval_eps: float | None = None  # None: same as eps (or 0.1 for standard training)
    eval_steps: int = 20
    eval_limit: int = 1000  # val samples evaluated per epoch
    seed: int = 0
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown training method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown model {self.arch!r}; use one of {', '.join(ARCHITECTURES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use adam or sgd")
        for name in ("epochs", "batch_size", "attack_steps", "eval_steps", "eval_limit"):
            check_steps(getattr(self, name), name)
        for name in ("lr", "eps", "beta", "weight_decay", "momentum"):
            check_number(getattr(self, name), name)
        if self.lr == 0:
            raise ConfigError("lr=0 would not train; pass e.g. --lr 0.001")
        if self.method != "standard" and self.eps == 0:
            raise ConfigError(f"--method {self.method} needs --eps > 0 (the training radius), e.g. --eps 0.1")
        for name in ("step_size", "eval_eps"):
            if getattr(self, name) is not None:
                check_number(getattr(self, name), name)
        self.norm = canonical_norm(self.norm)

    @property
    def alpha(self) -> float:
        return float(self.step_size) if self.step_size is not None else 2.5 * self.eps / self.attack_steps

    @property
    def radius_eval(self) -> float:
        if self.eval_eps is not None:
            return float(self.eval_eps)
        return self.eps if self.eps > 0 else 0.1


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def classifier_meta(cfg: TrainConfig, input_shape, num_classes: int, **extra: Any) -> dict[str, Any]:
    """``classifier.json`` content: architecture, shapes, and how the model was trained."""
    return {
        "arch": cfg.arch,
        "input_shape": list(input_shape),
        "num_classes": int(num_classes),
        "kwargs": dict(cfg.model_kwargs),
        "data": cfg.data,
        "trained": {
            "method": cfg.method,
            "eps": cfg.eps if cfg.method != "standard" else 0.0,
            "norm": cfg.norm,
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            **extra,
        },
    }


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    clean_accuracy: float
    robust_accuracy: float
    eval_eps: float
    seconds: float

    def as_record(self) -> dict[str, Any]:
        return {"id": f"epoch-{self.epoch}", **asdict(self)}


def loss_for(cfg: TrainConfig) -> LossFn:
    """The training loss of ``cfg.method``."""
    if cfg.method == "pgd-at":
        return pgd_at_loss(cfg.eps, cfg.attack_steps, cfg.alpha, cfg.norm)
    if cfg.method == "trades":
        return trades_loss(cfg.eps, cfg.beta, cfg.attack_steps, cfg.alpha, cfg.norm)
    return standard_loss


def eval_attack(cfg: TrainConfig):
    """The per-epoch evaluation attack: PGD-``eval_steps`` at ``radius_eval`` (fixed seed)."""
    return PGD(eps=cfg.radius_eval, steps=cfg.eval_steps, norm=cfg.norm, random_start=True, seed=0)


def load_train_data(cfg: TrainConfig):
    """Train and validation splits of ``cfg.data`` (raises DataError/ConfigError before any work)."""
    xtr, ytr = load_image_split(cfg.data, "train")
    xva, yva = load_image_split(cfg.data, "val")
    return xtr, ytr, xva[: cfg.eval_limit], yva[: cfg.eval_limit]
