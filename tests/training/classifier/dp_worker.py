"""Data-parallel training worker for ``test_data_parallel_objective.py`` (run by ``torchrun``, 2 processes).

:func:`train` is also what the test runs in one process. Every loss uses a deterministic input
perturbation (no random start, no gradient sign), so that one and two processes see the same inputs and
the weights may be compared to 1e-6 (float64).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from advlab import distributed
from advlab.data.images import load_image_split
from advlab.models.classifiers import build_classifier
from advlab.training.classifier.epoch import train_epoch
from advlab.training.classifier.pct import pct_loss
from advlab.training.classifier.rcat import rcat_loss
from advlab.training.classifier.trades import trades_loss

LOSSES = ("rcat", "pct", "trades")
N, BATCH, EPOCHS = 150, 25, 2


def perturb(model, x, y=None):
    """A fixed, input-dependent perturbation inside [0, 1] (stands in for the training attack)."""
    return (x + 0.1 * torch.sin(37.0 * x + 1.0)).clamp(0, 1)


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_classifier("mlp", (1, 8, 8), 10, hidden=16, depth=1).double()


def train(name: str, shard=None) -> dict[str, torch.Tensor]:
    x, y = load_image_split("digits", "train")
    x, y = x[:N].double(), y[:N]
    old, new0 = _model(1).eval(), _model(2).eval()
    loss = {
        "rcat": lambda: rcat_loss(old, new0, 0.5, 0.4, attack=perturb),
        "pct": lambda: pct_loss(old, 1.0, 5.0),
        "trades": lambda: trades_loss(0.1, 6.0, adversary=perturb),
    }[name]()
    model = _model(2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for epoch in range(EPOCHS):
        train_epoch(model, x, y, loss, opt, batch_size=BATCH, generator=torch.Generator().manual_seed(epoch),
                    shard=shard)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    shard = distributed.init_from_env("cpu")
    for name in LOSSES:
        weights = train(name, shard)
        if shard.is_main:
            torch.save(weights, out / f"{name}.pt")
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
