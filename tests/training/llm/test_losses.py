"""Loss terms against hand computation on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from advlab.training.llm.losses import cutoff, ipo_loss, mean_logp, mean_nll, token_logps, unlikelihood


def test_cutoff_value_and_gradient_on_both_sides():
    x = torch.tensor([0.2, 0.5, 2.0, -6.0, -4.0], requires_grad=True)
    c = torch.tensor([0.5, 0.5, 0.5, -5.0, -5.0])
    y = torch.stack([cutoff(x[i], float(c[i])) for i in range(5)])
    # past c (below it): 0.999c + 0.001x; at or above c: x
    want = [0.999 * 0.5 + 0.001 * 0.2, 0.5, 2.0, 0.999 * -5 + 0.001 * -6, -4.0]
    assert y.tolist() == pytest.approx(want, abs=1e-7)
    y.sum().backward()
    assert x.grad.tolist() == pytest.approx([0.001, 1.0, 1.0, 0.001, 1.0])


def test_token_logps_and_mean_nll_by_hand():
    logits = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0]]])
    labels = torch.tensor([[-100, 2, 0]])
    logp, mask = token_logps(logits, labels)
    lse0 = math.log(1 + math.e + math.e**2)
    lse1 = math.log(math.e + 2)
    assert mask.tolist() == [[True, True]]
    assert logp[0].tolist() == pytest.approx([2 - lse0, 1 - lse1], abs=1e-6)
    assert float(mean_nll(logp, mask)[0]) == pytest.approx(-((2 - lse0) + (1 - lse1)) / 2, abs=1e-6)
    # floor zeroes the token below it, the divisor stays 2
    assert 2 - lse0 > -0.5 > 1 - lse1
    assert float(mean_logp(logp, mask, floor=-0.5)[0]) == pytest.approx((2 - lse0) / 2, abs=1e-6)


def test_ipo_closed_form():
    pc, pr, rc, rr = torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.0])
    # h = (−1 + 1.5) − (−2 + 1) = 1.5; 1/(2β) = 2 at β = 0.25 -> (1.5 − 2)² = 0.25
    assert float(ipo_loss(pc, pr, rc, rr, beta=0.25)) == pytest.approx(0.25)
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    ipo_loss(pc, pr, rc, rr).sum().backward()
    assert float(pc.grad) == pytest.approx(2 * (1.5 - 2)) and float(pr.grad) == pytest.approx(-2 * (1.5 - 2))


def test_unlikelihood_by_hand_and_away_sign():
    logp = torch.log(torch.tensor([[0.5, 0.25, 1e-3]]))
    mask = torch.ones_like(logp, dtype=torch.bool)
    want = -(math.log(0.5) + math.log(0.75)) / 2  # the 1e-3 token (log p < −5) is ignored
    assert float(unlikelihood(logp, mask)[0]) == pytest.approx(want, abs=1e-6)
    # CAT's away term −CE: minimising it lowers the harmful target's probability
    z = torch.tensor([[[0.0, 0.0]]], requires_grad=True)
    lp, m = token_logps(torch.cat([z, z], dim=1), torch.tensor([[-100, 1]]))
    away = -mean_nll(lp, m)
    away.sum().backward()
    assert float(z.grad[0, 0, 1]) > 0  # descending away decreases the target token's logit
