"""RCAT, PCT and plain adversarial fine-tuning losses against hand computations."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from advlab.errors import ConfigError
from advlab.training.classifier.pct import pct_at_loss, pct_loss, pct_objective
from advlab.training.classifier.rcat import (
    RCATConfig,
    adversarial_finetune_loss,
    logit_distance,
    make_train_attack,
    rcat_loss,
    rcat_objective,
)

L = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
Y = torch.tensor([0, 2])
NEW0 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # right on both samples
OLD = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])  # right on sample 1 only
CE = (math.log(math.e**2 + 2) - 2 + math.log(math.e + 2)) / 2  # mean of −log softmax at the label


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_logit_distance_is_half_the_mean_squared_difference():
    a = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    b = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    # squared differences [[1, 4], [4, 16]]: mean 25/4, half of it 25/8
    assert float(logit_distance(a, b)) == pytest.approx(25 / 8)
    # only the second row selected: (4 + 16) / 2 / 2
    assert float(logit_distance(a, b, torch.tensor([False, True]))) == pytest.approx(5.0)


def test_empty_mask_contributes_zero_not_nan_and_keeps_finite_gradients():
    a = torch.randn(4, 3, requires_grad=True)
    d = logit_distance(a, torch.zeros(4, 3), torch.zeros(4, dtype=torch.bool))
    assert float(d.detach()) == 0.0
    d.backward()
    assert torch.isfinite(a.grad).all() and float(a.grad.abs().sum()) == 0.0


def test_rcat_objective_matches_a_hand_computation():
    alpha, beta = 0.5, 0.4
    d_new = 0.5 * 3 / 6  # both rows selected; squared diffs [1, 0, 0] and [0, 1, 1]
    d_old = 0.5 * 10 / 3  # row 1 only; squared diffs [0, 1, 9]
    expected = (1 - alpha - beta) * CE + alpha * d_new + beta * d_old
    assert float(rcat_objective(L, Y, NEW0, OLD, alpha, beta)) == pytest.approx(expected, rel=1e-6)


def test_rcat_with_no_correct_reference_sample_is_weighted_ce_not_nan():
    wrong = torch.tensor([[0.0, 5.0, 0.0], [9.0, 0.0, 0.0]])  # neither reference model is right anywhere
    value = rcat_objective(L, Y, wrong, wrong, 0.3, 0.6)
    assert torch.isfinite(value)
    assert float(value) == pytest.approx(0.1 * CE, rel=1e-6)


def test_pct_objective_matches_a_hand_computation():
    d_all = 0.5 * (4 + 1 + 0 + 0 + 1 + 9) / 6  # L − OLD: [2, −1, 0], [0, 1, −3]
    # focal term: only row 1 (old model right), D_1 = ½·10/3, divided by the batch size N = 2 (Yan et al.)
    focal = 0.5 * 10 / 3 / 2
    assert float(pct_objective(L, Y, OLD, 1.0, 2.0)) == pytest.approx(CE + d_all + 2 * focal, rel=1e-6)


def test_pct_focal_term_divides_by_the_batch_size_not_by_the_old_models_correct_count():
    """Reference PCTLoss: focal = (1/N)·Σ_i 1[i∈S_old]·D_i. Four rows, the old model right on one: the focal
    term is D_0 / 4 (a mean over S_old would give D_0, i.e. β inflated by N/|S_old| = 4)."""
    logits = torch.zeros(4, 3)
    old = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 2.0], [0.0, 0.0, 2.0]])
    y = torch.zeros(4, dtype=torch.long)  # old right on row 0 only
    d = 0.5 * (old**2).sum(1) / 3  # D_i of each row against logits 0
    ce = math.log(3)
    no_focal = float(pct_objective(logits, y, old, 1.0, 0.0))
    assert no_focal == pytest.approx(ce + float(d.mean()), rel=1e-6)
    focal = float(pct_objective(logits, y, old, 0.0, 1.0)) - ce
    assert focal == pytest.approx(float(d[0]) / 4, rel=1e-6)


@pytest.mark.parametrize("alpha,beta", [(0.7, 0.4), (1.0, 0.1), (-0.1, 0.5), (0.5, float("nan"))])
def test_bad_rcat_weights_are_rejected_before_training(alpha, beta):
    with pytest.raises(ConfigError):
        RCATConfig(alpha, beta)
    with pytest.raises(ConfigError):
        rcat_loss(torch.nn.Identity(), torch.nn.Identity(), alpha, beta)


def test_pct_allows_weights_above_one_but_not_negative():
    pct_loss(torch.nn.Identity(), 1.0, 10.0)
    with pytest.raises(ConfigError):
        pct_loss(torch.nn.Identity(), 1.0, -1.0)
    with pytest.raises(ConfigError):
        make_train_attack("cw")


def _models():
    torch.manual_seed(0)
    new0 = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    old = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(12, 1, 4, 4)
    y = new0(x).argmax(1).detach()  # new0 is right everywhere
    y[:3] = (y[:3] + 1) % 3  # ... except on three samples
    return old, new0, x, y


def test_rcat_loss_uses_the_attack_on_the_trained_model_and_frozen_references():
    old, new0, x, y = _models()
    model = copy.deepcopy(new0)
    seen = []

    def shift(m, xb, yb):  # a deterministic "attack" that records which model it attacks
        seen.append(m)
        return (xb + 0.05).clamp(0, 1)

    value = rcat_loss(old, new0, 0.5, 0.4, attack=shift)(model, x, y)
    xs = (x + 0.05).clamp(0, 1)
    with torch.no_grad():
        lo, ln = old(xs), new0(xs)
    expected = rcat_objective(model(xs), y, ln, lo, 0.5, 0.4)
    assert seen == [model]
    assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    # model == new0, so the α term vanishes: the value is 0.1·CE + 0.4·D_old
    ce = torch.nn.functional.cross_entropy(ln, y)
    d_old = logit_distance(ln, lo, lo.argmax(1) == y)
    assert float(value.detach()) == pytest.approx(float(0.1 * ce + 0.4 * d_old), rel=1e-5)
    value.backward()
    assert all(p.grad is None for p in old.parameters()) and all(p.grad is None for p in new0.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_alpha_beta_zero_is_plain_adversarial_fine_tuning():
    old, new0, x, y = _models()
    model = copy.deepcopy(new0)
    atk = make_train_attack("fgsm", eps=0.1)
    torch.manual_seed(3)
    a = rcat_loss(old, new0, 0.0, 0.0, attack=atk)(model, x, y)
    torch.manual_seed(3)
    b = adversarial_finetune_loss(atk)(model, x, y)
    assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-6)


def test_training_examples_stay_in_the_ball_and_pct_at_runs():
    old, new0, x, y = _models()
    for name in ("fgsm", "pgd"):
        xa = make_train_attack(name, eps=0.1, steps=3)(new0, x, y)
        assert float((xa - x).abs().max()) <= 0.1 + 1e-6 and float(xa.min()) >= 0 and float(xa.max()) <= 1
    assert torch.isfinite(pct_at_loss(old, 1.0, 2.0)(copy.deepcopy(new0), x, y))


def test_distillation_only_rcat_pulls_the_model_toward_the_old_one():
    """With α = 0, β = 1 the loss is D to the old model on its correct samples: fine-tuning must shrink it."""
    from advlab.training.classifier.epoch import train_epoch

    old, new0, x, y = _models()
    y = old(x).argmax(1).detach()  # the old model is right everywhere: D covers every sample
    model = copy.deepcopy(new0)
    shift = lambda m, xb, yb: xb  # noqa: E731 - clean inputs keep the check deterministic
    loss_fn = rcat_loss(old, new0, 0.0, 1.0, attack=shift)
    before = float(loss_fn(model, x, y).detach())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(20):
        train_epoch(model, x, y, loss_fn, opt, batch_size=12)
    after = float(loss_fn(model, x, y).detach())
    assert after < 0.5 * before
