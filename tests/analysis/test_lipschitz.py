"""Lipschitz estimates: the global bound is above every local one; exact for a linear model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlab.analysis.lipschitz import global_lipschitz_bound, local_gradient_norm
from advlab.errors import ConfigError
from advlab.models.classifiers import build_classifier


def test_linear_model_bound_is_its_spectral_norm_and_gradients_are_analytic():
    torch.manual_seed(0)
    model = build_classifier("linear", (1, 4, 4), 5)
    w = model.fc.weight.detach().double()
    sigma = float(torch.linalg.matrix_norm(w, ord=2))
    bound = global_lipschitz_bound(model, (1, 4, 4))
    assert bound.bound == pytest.approx(sigma, rel=1e-6) and bound.exact
    x, y = torch.rand(6, 1, 4, 4), torch.randint(0, 5, (6,))
    jac = local_gradient_norm(model, x, y, kind="logits")
    assert torch.allclose(jac.double(), torch.full((6,), sigma, dtype=torch.float64), rtol=1e-5)
    p = model(x).softmax(-1).detach()
    analytic = ((p - F.one_hot(y, 5)) @ model.fc.weight.detach()).norm(dim=1)  # ∇ₓCE = Wᵀ(p − e_y)
    assert torch.allclose(local_gradient_norm(model, x, y), analytic, rtol=1e-5)
    l1 = local_gradient_norm(model, x, y, q=1)
    assert torch.allclose(l1, ((p - F.one_hot(y, 5)) @ model.fc.weight.detach()).abs().sum(1), rtol=1e-5)


@pytest.mark.parametrize("arch, kwargs", [("mlp", {"hidden": 32}), ("cnn", {"width": 2, "hidden": 8})])
def test_global_bound_is_above_every_local_jacobian_norm(arch, kwargs):
    torch.manual_seed(0)
    model = build_classifier(arch, (1, 8, 8), 10, **kwargs)
    bound = global_lipschitz_bound(model, (1, 8, 8))
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    local = local_gradient_norm(model, x, y, kind="logits")
    assert bound.exact and (local <= bound.bound * (1 + 1e-5)).all()
    assert (local_gradient_norm(model, x, y) <= 2**0.5 * bound.bound).all()  # ‖p − e_y‖₂ ≤ √2
    types = {d["type"] for d in bound.layers}
    assert "Linear" in types and (arch != "cnn" or "Conv2d" in types)


def test_conv_operator_norm_power_iteration_agrees_with_the_explicit_matrix():
    torch.manual_seed(0)
    model = build_classifier("cnn", (1, 8, 8), 10, width=2, hidden=8)
    exact = global_lipschitz_bound(model, (1, 8, 8))
    approx = global_lipschitz_bound(model, (1, 8, 8), explicit_max=0, power_iters=60)
    assert not approx.exact
    assert approx.bound == pytest.approx(exact.bound, rel=2e-2)
    assert approx.bound <= exact.bound * (1 + 1e-6)  # power iteration approaches σ from below


def test_residual_network_is_refused():
    model = build_classifier("resnet", (1, 8, 8), 10, width=4)
    with pytest.raises(ConfigError, match="not a pure chain"):
        global_lipschitz_bound(model, (1, 8, 8))
    with pytest.raises(ConfigError, match="kind="):
        local_gradient_norm(model, torch.rand(1, 1, 8, 8), torch.zeros(1), kind="hessian")
