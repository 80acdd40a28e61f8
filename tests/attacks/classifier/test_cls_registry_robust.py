"""The attack registry (one factory by name) and robust_flags (accuracy under attack, per sample)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from advlab.attacks.classifier import APGD, FGSM, PGD, WorstCase
from advlab.attacks.classifier.registry import ATTACKS, make_attack
from advlab.attacks.classifier.robust import robust_flags
from advlab.errors import ConfigError


def test_make_attack_builds_the_named_class_with_only_its_own_options():
    opts = dict(eps=0.2, steps=7, step_size=0.05, norm="l2", restarts=2, seed=3, random_start=False, keep="last")
    pgd = make_attack("pgd", **opts)
    assert pgd == PGD(eps=0.2, steps=7, step_size=0.05, norm="l2", restarts=2, seed=3, random_start=False, keep="last")
    assert make_attack("fgsm", **opts) == FGSM(eps=0.2, step_size=0.05, norm="l2", seed=3, random_start=False)
    assert make_attack("apgd", **opts) == APGD(eps=0.2, steps=7, norm="l2", restarts=2, seed=3)
    assert make_attack("worst-case", **opts) == WorstCase(eps=0.2, norm="l2", steps=7, seed=3)
    assert make_attack("pgd", eps=0.1, step_size=None) == PGD(eps=0.1)  # None keeps the class default
    assert set(ATTACKS) == {"fgsm", "pgd", "apgd", "worst-case"}
    with pytest.raises(ConfigError, match="unknown attack 'cw'"):
        make_attack("cw", eps=0.1)


def test_robust_flags_against_a_hand_loop(digits_cnn):
    """Independent reference: attack the whole set at once and classify by hand. Batching (5 rows) and the
    seeded attack must not change anything; robust implies correct."""
    model, x, y = digits_cnn
    x, y = x[:23], y[:23]
    attack = PGD(eps=0.15, steps=5, seed=0)
    f = robust_flags(model, x, y, attack, batch_size=5)
    with torch.no_grad():
        clean = model(x)
    adv = torch.cat([attack(model, x[i : i + 5], y[i : i + 5]) for i in range(0, 23, 5)])
    with torch.no_grad():
        logits = model(adv)
    assert torch.equal(f.correct, clean.argmax(1) == y)
    assert torch.equal(f.robust, (clean.argmax(1) == y) & (logits.argmax(1) == y))
    assert torch.allclose(f.adv_loss, F.cross_entropy(logits, y, reduction="none"))
    assert torch.equal(f.x_adv, adv) and f.robust_accuracy == pytest.approx(float(f.robust.float().mean()))
    assert 0 < int(f.robust.sum()) < int(f.correct.sum())  # the attack flips some, not all
    none = robust_flags(model, x, y, None)
    assert torch.equal(none.robust, none.correct) and torch.equal(none.x_adv, x)


def test_robust_flags_reports_which_attack_fooled_each_sample(digits_cnn):
    model, x, y = digits_cnn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the worst case's sanity checks may warn on a tiny batch
        f = robust_flags(model, x[:16], y[:16], WorstCase(eps=0.2, steps=5, seed=0), batch_size=8)
    assert len(f.fooled_by) == 16
    for ok, rob, name in zip(f.correct.tolist(), f.robust.tolist(), f.fooled_by):
        assert (name is not None) == (ok and not rob)
