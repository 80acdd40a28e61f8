"""Tiny models shared by the analysis tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F


def fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 60, lr: float = 0.05):
    """A few full-batch Adam steps (seeded by the caller): enough for a usable digits classifier."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def digits_mlp():
    """A small MLP (hidden 16) trained for a moment on digits, and the test split."""
    from advlab.data.images import load_digits_split
    from advlab.models.classifiers import build_classifier

    torch.manual_seed(0)
    x, y = load_digits_split("train")
    model = fit(build_classifier("mlp", (1, 8, 8), 10, hidden=16), x, y)
    xt, yt = load_digits_split("test")
    return model, xt, yt
