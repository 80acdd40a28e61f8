"""Fixtures for classifier-attack tests: a small digits CNN trained once per session (a few seconds)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run much faster single-threaded on a shared CPU; restore the setting afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def digits_cnn():
    """(model, x_test, y_test): a SmallCNN trained 6 epochs on digits (standard training), in eval mode."""
    from advlab.data import load_digits_split
    from advlab.models import build_classifier
    from advlab.training.classifier import standard_loss, train_epoch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_classifier("cnn", (1, 8, 8), 10)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xtr, ytr = load_digits_split("train")
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        train_epoch(model, xtr, ytr, standard_loss, opt, batch_size=64, generator=g)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    torch.set_num_threads(n)
    x, y = load_digits_split("test")
    return model, x[:128], y[:128]
