"""Hessian trace and top eigenvalues against the explicit Hessian of a tiny model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlab.analysis.hessian import explicit_hessian, hessian_top_eigenvalues, hessian_trace, param_group
from advlab.errors import ConfigError
from advlab.models.classifiers import build_classifier


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    model = build_classifier("mlp", (1, 3, 3), 4, hidden=5).double()
    x = torch.rand(16, 1, 3, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (16,))
    return model, x, y


def _reference_hessian(model, x, y, names):
    """The Hessian by torch.func.hessian of a flat parameter vector (independent of our HVP code)."""
    from torch.func import functional_call, hessian

    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    flat = torch.cat([params[n].detach().flatten() for n in names])

    def loss(theta):
        out, off = {}, 0
        for n, s in zip(names, shapes):
            k = s.numel()
            out[n] = theta[off : off + k].view(s)
            off += k
        return F.cross_entropy(functional_call(model.eval(), out, (x,)), y)

    return hessian(loss)(flat).detach()


@pytest.mark.parametrize("layers", ["fc", ["features.3", "fc"]])
def test_trace_and_top_eigenvalues_match_the_explicit_hessian(tiny, layers):
    model, x, y = tiny
    names, _ = param_group(model, layers)
    if layers is None:
        names = [n for n, _ in model.named_parameters()]
    ref = _reference_hessian(model, x, y, names)
    assert torch.allclose(explicit_hessian(model, x, y, layers), ref, atol=1e-10)
    ev = torch.linalg.eigvalsh(ref)
    dominant = ev[ev.abs().argsort(descending=True)]
    tr = hessian_trace(model, x, y, layers, samples=100, seed=0)
    assert abs(tr.trace - float(ref.detach().trace())) <= 3 * tr.trace_se
    assert len(tr.trace_samples) == 100 and tr.num_params == ref.shape[0]
    top = hessian_top_eigenvalues(model, x, y, layers, top_k=2, max_iter=300, tol=1e-9, seed=0)
    assert top.eigenvalues[0] == pytest.approx(float(dominant[0]), rel=1e-4)
    assert top.eigenvalues[1] == pytest.approx(float(dominant[1]), rel=1e-2)


def test_modes_and_requires_grad_are_restored(tiny):
    model, x, y = tiny
    model.train()
    model.fc.weight.requires_grad_(False)
    hessian_trace(model, x, y, "fc", samples=2)
    hessian_top_eigenvalues(model, x, y, "fc", max_iter=3)
    assert model.training and not model.fc.weight.requires_grad
    assert model.fc.weight.grad is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layers": "nope"}, "choose one of"),
        ({"layers": "features.2"}, "has no parameters"),
        ({"layers": []}, "empty layer list"),
    ],
)
def test_bad_groups_are_refused(tiny, kwargs, message):
    model, x, y = tiny
    with pytest.raises(ConfigError, match=message):
        hessian_trace(model, x, y, samples=1, **kwargs)


def test_zero_samples_and_bad_top_k_are_refused(tiny):
    model, x, y = tiny
    with pytest.raises(ConfigError, match="at least 1 sample"):
        hessian_trace(model, x, y, samples=0)
    with pytest.raises(ConfigError, match="at least one eigenvalue"):
        hessian_top_eigenvalues(model, x, y, top_k=0)
