"""Relative flatness: closed form = brute-force Hessian, Hutchinson within 3 standard errors, bad input."""

from __future__ import annotations

import pytest
import torch

from advlab.analysis.flatness import closed_form, flatness_measures, relative_flatness
from advlab.errors import ConfigError
from advlab.models.classifiers import build_classifier


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    model = build_classifier("mlp", (1, 3, 3), 4, hidden=5).double()
    x = torch.rand(6, 1, 3, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (6,))
    return model, x, y


def test_closed_form_equals_brute_force_hessian(tiny):
    model, x, y = tiny
    exact = flatness_measures(model, "fc", x, y, method="exact")
    brute = flatness_measures(model, "fc", x, y, method="brute")
    for key in ("kappa", "trace", "trace_variant", "phi_sq"):
        a, b = getattr(exact, key).double(), getattr(brute, key).double()
        assert torch.allclose(a, b, rtol=1e-5, atol=0), (key, a, b)
    assert exact.kappa.shape == (6,)
    assert (exact.kappa <= exact.trace_variant * (1 + 1e-9)).all()  # ‖W‖²·Tr H bounds κ


def test_closed_form_matches_kronecker_hessian_by_hand():
    torch.manual_seed(1)
    w = torch.randn(3, 4, dtype=torch.float64)
    phi = torch.randn(4, dtype=torch.float64)
    z = w @ phi
    p = z.softmax(0)
    hess = torch.kron(torch.diag(p) - torch.outer(p, p), torch.outer(phi, phi))  # (K·m)² with row-major W
    gram = w @ w.T
    blocks = hess.view(3, 4, 3, 4)
    kappa = sum(gram[s, t] * torch.trace(blocks[s, :, t, :]) for s in range(3) for t in range(3))
    got = closed_form(w, phi[None], z[None])
    assert torch.allclose(got["kappa"][0], kappa, rtol=1e-10)
    assert torch.allclose(got["trace"][0], torch.trace(hess), rtol=1e-10)


def _within_3se(est: torch.Tensor, se: torch.Tensor, exact: torch.Tensor) -> bool:
    """The data-set value (mean over examples) lies within 3 standard errors of the exact one."""
    se_mean = float((se.double() ** 2).sum().sqrt()) / len(se)
    return abs(float(est.double().mean() - exact.double().mean())) <= 3 * se_mean


def test_hutchinson_within_three_standard_errors(tiny):
    model, x, y = tiny
    exact = flatness_measures(model, "fc", x, y, method="exact")
    est = flatness_measures(model, "fc", x, y, method="hutchinson", samples=100, seed=0)
    assert (est.kappa_se > 0).all() and (est.trace_se > 0).all()
    assert _within_3se(est.kappa, est.kappa_se, exact.kappa)
    assert _within_3se(est.trace, est.trace_se, exact.trace)
    w_sq = float((model.fc.weight.detach().double() ** 2).sum())
    assert torch.allclose(est.trace_variant, est.trace * w_sq, rtol=1e-5)


def test_hutchinson_on_an_inner_layer_agrees_with_brute_force(tiny):
    model, x, y = tiny
    brute = flatness_measures(model, "features.3", x, y, method="brute")
    est = flatness_measures(model, "features.3", x, y, method="hutchinson", samples=100, seed=0)
    assert _within_3se(est.kappa, est.kappa_se, brute.kappa)
    assert _within_3se(est.trace, est.trace_se, brute.trace)
    assert torch.equal(est.kappa, relative_flatness(model, "features.3", x, y, "hutchinson", samples=100, seed=0))


def test_float32_closed_form_is_accurate_for_confident_examples(digits_mlp):
    """float32 closed form vs float64 brute force on a float64 copy, least and most confident examples.

    The two forward passes differ by float32 rounding of the logits (≈1e-5), which moves tiny p_s by a
    relative ≈1e-4; hence rtol 1e-3 here (the float64-only check above is at 1e-5).
    """
    import copy

    model, x, y = digits_mlp
    with torch.no_grad():
        conf = model(x[:200]).softmax(-1).amax(-1)
    pick = torch.cat([conf.argsort()[:2], conf.argsort()[-2:]])
    assert conf[pick[-1]] > 1 - 1e-4
    exact = flatness_measures(model, "fc", x[pick], y[pick])
    brute = flatness_measures(copy.deepcopy(model).double(), "fc", x[pick].double(), y[pick], method="brute")
    assert torch.allclose(exact.kappa.double(), brute.kappa, rtol=1e-3, atol=0)
    assert torch.allclose(exact.trace.double(), brute.trace, rtol=1e-3, atol=0)


def test_closed_form_is_stable_when_one_class_dominates():
    """p_c = 1 - 1e-9 in float32: the naive Σp‖w‖² − ‖Σpw‖² loses every digit; ours matches float64."""
    torch.manual_seed(0)
    w = torch.randn(5, 7)
    phi = torch.randn(3, 7)
    z = torch.tensor([[25.0, 2.0, 0.0, -1.0, 3.0], [0.0, 30.0, 1.0, 2.0, 0.0], [1.0, 0.5, 0.0, 0.2, 0.1]])
    f32 = closed_form(w, phi, z)
    f64 = closed_form(w.double(), phi.double(), z.double())
    for key in ("kappa", "trace"):
        assert torch.allclose(f32[key].double(), f64[key], rtol=1e-5, atol=0), key
    assert f64["kappa"][1] > 0


def test_mode_is_restored_and_batchnorm_uses_eval_statistics():
    torch.manual_seed(0)
    model = build_classifier("resnet", (1, 8, 8), 10, width=4)
    x, y = torch.rand(5, 1, 8, 8), torch.randint(0, 10, (5,))
    model.train()
    a = relative_flatness(model, "fc", x, y)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    b = relative_flatness(model, "fc", x, y)
    assert not model.training
    assert torch.allclose(a, b)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layer": "nope"}, "choose one of"),
        ({"layer": "features.2"}, "not a linear layer"),
        ({"layer": "features.3", "method": "exact"}, "does not produce the model's logits"),
        ({"layer": "fc", "method": "hutchinson", "samples": 0}, "at least 1 sample"),
        ({"layer": "fc", "method": "newton"}, "unknown flatness method"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(tiny, kwargs, message):
    model, x, y = tiny
    with pytest.raises(ConfigError, match=message):
        flatness_measures(model, x=x, y=y, **kwargs)
