"""Threat-model hooks and losses against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from advlab.attacks.classifier import L2Ball, LinfBall, make_ball
from advlab.attacks.classifier import losses as L
from advlab.errors import ConfigError


def test_linf_projection_is_coordinatewise_clamp():
    x = torch.full((1, 4), 0.5)
    z = torch.tensor([[0.0, 0.45, 0.61, 1.0]])
    out = LinfBall(0.1).project(z, x)
    assert torch.allclose(out, torch.tensor([[0.4, 0.45, 0.6, 0.6]]))


def test_l2_projection_scales_onto_sphere_and_keeps_inside_points():
    x = torch.zeros(2, 3)
    z = torch.tensor([[3.0, 4.0, 0.0], [0.1, 0.0, 0.0]])
    out = L2Ball(1.0).project(z, x)
    assert torch.allclose(out[0], torch.tensor([0.6, 0.8, 0.0]))
    assert torch.allclose(out[1], z[1])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_lies_in_ball(norm):
    ball = make_ball(norm, 0.3)
    x = torch.rand(64, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    d = ball.random_start(x, g) - x
    assert (ball.norms(d) <= 0.3 + 1e-6).all()
    assert (ball.norms(d) > 0).all()


def test_direction_has_unit_dual_norm():
    g = torch.randn(5, 1, 4, 4)
    assert torch.equal(LinfBall(1).direction(g), g.sign())
    d = L2Ball(1).direction(g)
    assert torch.allclose(d.flatten(1).norm(dim=1), torch.ones(5))


def test_unknown_norm_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown norm"):
        make_ball("l1", 0.1)


def test_dlr_matches_hand_computation():
    z = torch.tensor([[4.0, 1.0, 3.0, 0.0]])
    y = torch.tensor([0])
    # untargeted: -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3) = -(4 - 3) / (4 - 1)
    assert math.isclose(L.dlr(z, y).item(), -1 / 3, rel_tol=1e-6)
    # targeted to class 2: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) = -(4 - 3) / (4 - 0.5)
    assert math.isclose(L.dlr_targeted(z, y, torch.tensor([2])).item(), -1 / 3.5, rel_tol=1e-6)
    # margin: max_{i != y} z_i - z_y
    assert L.margin(z, y).item() == -1.0


def test_dlr_is_shift_and_scale_invariant():
    z = torch.randn(8, 10)
    y = torch.randint(0, 10, (8,))
    assert torch.allclose(L.dlr(z, y), L.dlr(3 * z + 7, y), atol=1e-5)


def test_bad_loss_combinations():
    with pytest.raises(ConfigError):
        L.make_objective("dlr-targeted", targeted=False)
    with pytest.raises(ConfigError):
        L.make_objective("dlr", targeted=True)
    with pytest.raises(ConfigError):
        L.make_objective("hinge", targeted=False)
