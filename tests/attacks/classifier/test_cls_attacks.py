"""FGSM, PGD, APGD: feasibility, closed forms on linear models, strength ordering, determinism, hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks.classifier import APGD, FGSM, PGD, RandomNoise, perturbation_norms
from advlab.attacks.classifier.apgd import APGDStep, checkpoints
from advlab.attacks.classifier.constraints import Box, make_ball
from advlab.models import build_classifier


def _attacks(norm: str, eps: float):
    return {
        "fgsm": FGSM(eps=eps, norm=norm),
        "fgsm-rs": FGSM(eps=eps, norm=norm, random_start=True, seed=0),
        "pgd": PGD(eps=eps, steps=5, norm=norm, seed=0),
        "pgd-targeted": PGD(eps=eps, steps=5, norm=norm, targeted=True, seed=0),
        "apgd-ce": APGD(eps=eps, steps=5, norm=norm, seed=0),
        "apgd-dlr": APGD(eps=eps, steps=5, norm=norm, loss="dlr", seed=0),
        "apgd-t": APGD(eps=eps, steps=5, norm=norm, targeted=True, n_target_classes=2, seed=0),
        "noise": RandomNoise(eps=eps, norm=norm, tries=3, seed=0),
    }


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.8)])
def test_every_attack_stays_in_ball_and_box(digits_cnn, norm, eps):
    model, x, y = digits_cnn
    x, y = x[:32], y[:32]
    target = (y + 1) % 10
    for name, attack in _attacks(norm, eps).items():
        kw = {"target": target} if name == "pgd-targeted" else {}
        x_adv = attack(model, x, y, **kw)
        assert x_adv.shape == x.shape, name
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0, name
        norms = perturbation_norms(x_adv, x, norm)
        assert float(norms.max()) <= eps * (1 + 1e-5) + 1e-6, (name, float(norms.max()))


def _binary_linear(seed: int = 0):
    torch.manual_seed(seed)
    model = build_classifier("linear", (1, 8, 8), 2)
    return model.eval()


def test_pgd_linf_on_linear_model_hits_closed_form_optimum(digits_cnn):
    """For K = 2, CE is increasing in m = (w_o − w_y)·x', so the optimum over ball ∩ box is, per pixel,
    x'_i = clip(x_i + ε·sign(w_o,i − w_y,i), 0, 1): a corner that sign-PGD must reach exactly."""
    model = _binary_linear()
    _, x, _ = digits_cnn
    x = x[:16]
    with torch.no_grad():
        y = model(x).argmax(1)
    w = model.fc.weight.detach()  # [2, 64]
    s = (w[1 - y] - w[y]).sign().reshape(x.shape)
    eps = 0.15
    expected = torch.clamp(x + eps * s, 0, 1)
    for random_start in (False, True):
        x_adv = PGD(eps=eps, steps=10, step_size=0.05, random_start=random_start, seed=1, keep="last")(
            model, x, y
        )
        assert torch.allclose(x_adv, expected, atol=1e-6), random_start
    # FGSM reaches the same corner in one step
    assert torch.allclose(FGSM(eps=eps)(model, x, y), expected, atol=1e-6)


def test_pgd_l2_on_linear_model_hits_closed_form_optimum():
    """Away from the box, the L2 optimum is x + ε·u/‖u‖ with u = w_o − w_y."""
    model = _binary_linear(1)
    x = torch.full((4, 1, 8, 8), 0.5)
    x = x + 0.01 * torch.randn_like(x)
    with torch.no_grad():
        y = model(x).argmax(1)
    w = model.fc.weight.detach()
    u = (w[1 - y] - w[y]).reshape(x.shape)
    eps = 0.5  # |δ_i| ≤ ε < 0.49: the box never binds
    expected = x + eps * u / u.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    x_adv = PGD(eps=eps, steps=20, norm="l2", random_start=False)(model, x, y)
    assert torch.allclose(x_adv, expected, atol=1e-5)
    # from a random start the orthogonal part decays geometrically: near-optimal margin after 50 steps
    x_adv = PGD(eps=eps, steps=50, step_size=0.25, norm="l2", random_start=True, seed=0)(model, x, y)
    gain = ((x_adv - x) * u).flatten(1).sum(1)
    best = eps * u.flatten(1).norm(dim=1)
    assert (gain <= best + 1e-5).all() and (gain >= 0.99 * best).all()


def test_fgsm_matches_manual_gradient_sign(digits_cnn):
    model, x, y = digits_cnn
    x, y = x[:16], y[:16]
    xg = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(model(xg), y, reduction="sum").backward()
    expected = torch.clamp(x + 0.07 * xg.grad.sign(), 0, 1)
    assert torch.allclose(FGSM(eps=0.07)(model, x, y), expected)


def _acc(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
def test_robust_accuracy_below_clean_and_apgd_at_least_as_strong_as_pgd(digits_cnn, norm, eps):
    model, x, y = digits_cnn
    clean = _acc(model, x, y)
    pgd = _acc(model, PGD(eps=eps, steps=20, norm=norm, seed=0)(model, x, y), y)
    apgd = _acc(model, APGD(eps=eps, steps=20, norm=norm, seed=0)(model, x, y), y)
    assert clean > 0.85
    assert pgd < clean and apgd < clean
    assert apgd <= pgd


def test_targeted_attacks_reach_their_target(digits_cnn):
    model, x, y = digits_cnn
    x, y = x[:32], y[:32]
    target = (y + 3) % 10
    res = PGD(eps=0.4, steps=30, targeted=True, seed=0).run(model, x, y, target)
    with torch.no_grad():
        hit = model(res.x_adv).argmax(1) == target
    assert torch.equal(hit, res.success)
    assert hit.float().mean() > 0.8
    res = APGD(eps=0.4, steps=30, targeted=True, n_target_classes=3, seed=0).run(model, x, y)
    with torch.no_grad():
        assert torch.equal(model(res.x_adv).argmax(1) != y, res.success)
    assert res.success.float().mean() > 0.9


def test_same_seed_same_examples_different_seed_different(digits_cnn):
    model, x, y = digits_cnn
    x, y = x[:16], y[:16]
    for cls, kw in ((PGD, {"steps": 3}), (APGD, {"steps": 3}), (FGSM, {"random_start": True})):
        a = cls(eps=0.1, seed=5, **kw)(model, x, y)
        b = cls(eps=0.1, seed=5, **kw)(model, x, y)
        c = cls(eps=0.1, seed=6, **kw)(model, x, y)
        assert torch.equal(a, b), cls.__name__
        assert not torch.equal(a, c), cls.__name__
    torch.manual_seed(3)
    a = PGD(eps=0.1, steps=3)(model, x, y)
    torch.manual_seed(3)
    assert torch.equal(a, PGD(eps=0.1, steps=3)(model, x, y))


def test_callback_sees_every_iterate_and_pgd_keeps_going_past_the_flip(digits_cnn):
    model, x, y = digits_cnn
    x, y = x[:8], y[:8]
    seen = []

    def cb(step, x_adv, loss, logits):
        seen.append(
            (step, x_adv.shape, loss.shape, logits.shape, float((logits.argmax(1) != y).float().mean()))
        )

    PGD(eps=0.5, steps=12, callback=cb, seed=0)(model, x, y)
    assert [s[0] for s in seen] == list(range(13))
    assert all(s[1] == x.shape and s[2] == (8,) and s[3] == (8, 10) for s in seen)
    assert seen[-1][4] == 1.0  # everything flipped, yet the loop ran all 12 steps
    # returning True stops the attack
    calls = []
    PGD(eps=0.5, steps=12, callback=lambda *a: calls.append(a[0]) or a[0] == 2, seed=0)(model, x, y)
    assert calls == [0, 1, 2]
    # stop_at_flip freezes flipped samples and stops once all flipped
    calls = []
    PGD(eps=0.5, steps=12, stop_at_flip=True, callback=lambda *a: calls.append(a[0]), seed=0)(model, x, y)
    assert len(calls) < 13


class _ModeProbe(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 3)
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        return self.lin(x.flatten(1))


@pytest.mark.parametrize("attack", [FGSM(eps=0.1), PGD(eps=0.1, steps=2), APGD(eps=0.1, steps=2)])
def test_attack_runs_in_eval_mode_restores_mode_and_leaves_no_parameter_grads(attack):
    model = _ModeProbe().train()
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    attack(model, x, y)
    assert model.training is True
    assert model.modes and not any(model.modes)
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    attack(model, x, y)
    assert model.training is False


def test_apgd_checkpoints_follow_the_paper_and_the_schedule_checks_there():
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    model = _binary_linear()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    rule = APGDStep(x, make_ball("linf", 0.05), Box(), 100)
    from advlab.attacks.classifier.loop import gradient_loop
    from advlab.attacks.classifier.losses import ce

    gradient_loop(model, x, y, objective=lambda z, yy, t: ce(z, yy), steps=100, start=x, step_rule=rule)
    assert rule.checked_at == checkpoints(100)[1:]


def test_apgd_halves_step_when_loss_stalls():
    """A constant model never improves the loss: every checkpoint halves the step size (condition 1)."""

    class Const(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.tensor([1.0, 0.0, -1.0]))

        def forward(self, x):
            return self.b.expand(x.shape[0], 3) + 0 * x.flatten(1).sum(1, keepdim=True)

    x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
    rule = APGDStep(x, make_ball("linf", 0.1), Box(), 100)
    from advlab.attacks.classifier.loop import gradient_loop
    from advlab.attacks.classifier.losses import ce

    gradient_loop(Const(), x, y, objective=lambda z, yy, t: ce(z, yy), steps=100, start=x, step_rule=rule)
    assert torch.allclose(rule.eta, torch.full((2,), 0.2 / 2 ** len(checkpoints(100)[1:])))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_attacks_run_on_cuda(digits_cnn):
    model, x, y = digits_cnn
    m = model.to("cuda")
    try:
        for attack in (FGSM(eps=0.1), PGD(eps=0.1, steps=3, seed=0), APGD(eps=0.1, steps=3, seed=0)):
            x_adv = attack(m, x[:8].cuda(), y[:8].cuda())
            assert x_adv.device.type == "cuda"
    finally:
        model.to("cpu")
