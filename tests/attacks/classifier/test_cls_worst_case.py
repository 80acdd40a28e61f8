"""Worst-case evaluation (AutoAttack manner) and its sanity warnings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks.classifier import APGD, FGSM, PGD, RandomNoise, RobustnessWarning, WorstCase


def _correct(model, x, y):
    with torch.no_grad():
        return model(x).argmax(1) == y


def test_worst_case_is_per_sample_minimum_over_attacks(digits_cnn):
    model, x, y = digits_cnn
    attacks = [
        ("fgsm", FGSM(eps=0.1)),
        ("pgd", PGD(eps=0.1, steps=10, seed=0)),
        ("apgd", APGD(eps=0.1, steps=10, seed=0)),
    ]
    res = WorstCase(eps=0.1, attacks=attacks).evaluate(model, x, y)
    clean = _correct(model, x, y)
    assert res.clean_accuracy == pytest.approx(float(clean.float().mean()))
    # robust implies clean-correct; overall robust accuracy ≤ every single attack's robust accuracy
    assert not (res.robust & ~clean).any()
    for name, attack in attacks:
        alone = clean & _correct(model, attack(model, x, y), y)
        assert res.robust_accuracy <= float(alone.float().mean()) + 1e-9, name
    # the cumulative numbers never increase and end at the overall one
    after = list(res.robust_accuracy_after.values())
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert after[-1] == pytest.approx(res.robust_accuracy) and res.robust_accuracy <= res.clean_accuracy
    # the stored example of every fooled point is misclassified and within the ball
    fooled = torch.tensor([f is not None for f in res.fooled_by])
    assert torch.equal(fooled, clean & ~res.robust)
    assert not _correct(model, res.x_adv, y)[fooled].any()
    assert float((res.x_adv - x).abs().amax()) <= 0.1 + 1e-6


def test_default_worst_case_runs_apgd_ce_apgd_t_and_black_box(digits_cnn):
    model, x, y = digits_cnn
    res = WorstCase(eps=0.1, steps=10).evaluate(model, x[:48], y[:48])
    assert list(res.robust_accuracy_after) == ["apgd-ce", "apgd-t", "random-noise"]
    assert res.robust_accuracy < res.clean_accuracy


class _Quantised(nn.Module):
    """Rounds its input: zero gradients everywhere (masked), yet easy to fool with noise."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 2) / 2)


def test_masked_gradients_trigger_zero_gradient_and_black_box_warnings(digits_cnn):
    model, x, y = digits_cnn
    masked = _Quantised(model).eval()
    attacks = [("pgd", PGD(eps=0.3, steps=5, seed=0)), ("noise", RandomNoise(eps=0.3, tries=10, seed=0))]
    with pytest.warns(RobustnessWarning) as rec:
        res = WorstCase(eps=0.3, attacks=attacks).evaluate(masked, x[:64], y[:64])
    text = " ".join(str(w.message) for w in rec)
    assert "exactly zero" in text
    assert "black-box attack noise fooled" in text
    assert any("masked" in w for w in res.warnings)


class _Noisy(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) + 0.5 * torch.randn(x.shape[0], 10)


def test_random_forward_pass_and_softmax_outputs_warn(digits_cnn):
    model, x, y = digits_cnn
    attacks = [("fgsm", FGSM(eps=0.05))]
    with pytest.warns(RobustnessWarning, match="changes between two forward passes"):
        WorstCase(eps=0.05, attacks=attacks).evaluate(_Noisy(model), x[:16], y[:16])
    with pytest.warns(RobustnessWarning, match="probabilities"):
        WorstCase(eps=0.05, attacks=attacks).evaluate(nn.Sequential(model, nn.Softmax(1)), x[:16], y[:16])


def test_worst_case_on_a_two_class_model_falls_back_from_dlr():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval()
    x = torch.rand(32, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    attacks = [("apgd-t", APGD(eps=0.01, steps=3, targeted=True, seed=0))]
    res = WorstCase(eps=0.01, attacks=attacks, checks=False).evaluate(model, x, y)
    assert res.clean_accuracy == 1.0 and 0.0 <= res.robust_accuracy <= 1.0
