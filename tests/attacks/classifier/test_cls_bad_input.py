"""Bad input gives a clear error or warning, never a silent wrong number."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks.classifier import APGD, FGSM, PGD, RobustnessWarning
from advlab.errors import ConfigError, DataError


@pytest.fixture
def lin():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 5)).eval()


X = torch.rand(4, 1, 4, 4)
Y = torch.tensor([0, 1, 2, 3])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: PGD(eps=-0.1), "eps=-0.1 must be"),
        (lambda: FGSM(eps=float("nan")), "must be a finite number"),
        (lambda: APGD(eps="big"), "not a number"),
        (lambda: PGD(eps=0.1, steps=0), "steps=0 must be an integer >= 1"),
        (lambda: APGD(eps=0.1, steps=0), "steps=0"),
        (lambda: PGD(eps=0.1, norm="l1"), "unknown norm"),
        (lambda: PGD(eps=0.1, restarts=0), "restarts=0"),
        (lambda: PGD(eps=0.1, step_size=0.1, rel_step_size=0.2), "not both"),
        (lambda: PGD(eps=0.1, keep="first"), "keep="),
        (lambda: APGD(eps=0.1, rho=2.0), "rho"),
    ],
)
def test_bad_options_are_config_errors(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_inputs_outside_unit_box_are_refused(lin):
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        PGD(eps=0.1, steps=1)(lin, X * 255, Y)
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        FGSM(eps=0.1)(lin, X - 0.5, Y)
    with pytest.raises(DataError, match="NaN"):
        FGSM(eps=0.1)(lin, X.clone().fill_(float("nan")), Y)


def test_labels_out_of_range_or_mismatched(lin):
    with pytest.raises(DataError, match="model has 5 classes"):
        PGD(eps=0.1, steps=1)(lin, X, torch.tensor([0, 1, 2, 7]))
    with pytest.raises(DataError, match="must be >= 0|>= 0"):
        PGD(eps=0.1, steps=1)(lin, X, torch.tensor([0, -1, 2, 3]))
    with pytest.raises(DataError, match="batch size mismatch"):
        APGD(eps=0.1, steps=1)(lin, X, Y[:3])
    with pytest.raises(DataError, match="integer class indices"):
        FGSM(eps=0.1)(lin, X, Y.float())
    with pytest.raises(DataError, match="dtype"):
        FGSM(eps=0.1)(lin, (X * 255).to(torch.uint8), Y)


def test_targeted_without_target_and_dlr_with_too_few_classes(lin):
    with pytest.raises(ConfigError, match="needs target labels"):
        PGD(eps=0.1, steps=1, targeted=True)(lin, X, Y)
    two = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval()
    with pytest.raises(ConfigError, match="at least 3 classes"):
        APGD(eps=0.1, steps=2, loss="dlr")(two, X, torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ConfigError, match="at least 4 classes"):
        APGD(eps=0.1, steps=2, targeted=True)(two, X, torch.tensor([0, 1, 0, 1]))


def test_model_returning_probabilities_warns(lin):
    probs = nn.Sequential(lin, nn.Softmax(dim=1))
    with pytest.warns(RobustnessWarning, match="probabilities"):
        PGD(eps=0.1, steps=1)(probs, X, Y)


def test_eps_zero_returns_the_clean_input(lin):
    assert torch.equal(PGD(eps=0.0, steps=3)(lin, X, Y), X)
    assert torch.equal(APGD(eps=0.0, steps=3)(lin, X, Y), X)
