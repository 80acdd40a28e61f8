"""Standard training, PGD-AT and TRADES: losses against their definitions, the loop, checkpoints, resume."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from advlab.attacks.classifier import PGD
from advlab.data import load_image_split
from advlab.errors import ConfigError
from advlab.models import build_classifier, load_classifier
from advlab.pipelines.train_classifier import run_training
from advlab.training.classifier import (
    TrainConfig,
    evaluate_accuracy,
    iterate_batches,
    pgd_at_loss,
    standard_loss,
    trades_adversary,
    trades_loss,
    train_epoch,
)


def _digits(n=64):
    x, y = load_image_split("digits", "train")
    return x[:n], y[:n]


def test_iterate_batches_covers_every_sample_once():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    seen = torch.cat([yb for _, yb in iterate_batches(x, y, 3, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))
    assert [len(b) for b, _ in iterate_batches(x, y, 4, shuffle=False)] == [4, 4, 2]


def test_pgd_at_loss_is_cross_entropy_at_pgd_examples():
    torch.manual_seed(0)
    model = build_classifier("mlp", (1, 8, 8), 10)
    x, y = _digits(32)
    torch.manual_seed(7)
    loss = pgd_at_loss(0.1, steps=3)(model, x, y)
    torch.manual_seed(7)
    x_adv = PGD(eps=0.1, steps=3, keep="last")(model, x, y)
    assert torch.allclose(loss, F.cross_entropy(model(x_adv), y))
    assert loss > standard_loss(model, x, y)


def test_trades_loss_matches_definition():
    """TRADES = CE(f(x), y) + β·mean_i KL(p(x_i) ‖ p(x'_i)); β = 0 gives plain CE."""
    torch.manual_seed(0)
    model = build_classifier("mlp", (1, 8, 8), 10)
    x, y = _digits(32)
    assert torch.allclose(trades_loss(0.1, beta=0.0, steps=2)(model, x, y), standard_loss(model, x, y))
    torch.manual_seed(3)
    total = trades_loss(0.1, beta=6.0, steps=2)(model, x, y)
    torch.manual_seed(3)
    x_adv = trades_adversary(model, x, 0.1, steps=2)
    p = F.softmax(model(x), 1)
    q = F.softmax(model(x_adv), 1)
    kl = (p * (p.log() - q.log())).sum(1).mean()
    assert torch.allclose(total, F.cross_entropy(model(x), y) + 6.0 * kl, atol=1e-6)


def test_trades_adversary_stays_feasible_and_raises_kl():
    torch.manual_seed(0)
    model = build_classifier("mlp", (1, 8, 8), 10)
    x, _ = _digits(32)
    x_adv = trades_adversary(model, x, 0.1, steps=10)
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    p = F.softmax(model(x), 1).detach()

    def kl(z):
        return (p * (p.log() - F.log_softmax(z, 1))).sum(1)

    noise = torch.clamp(x + 0.1 * torch.sign(torch.randn_like(x)), 0, 1)
    with torch.no_grad():
        assert kl(model(x_adv)).mean() > kl(model(noise)).mean()


@pytest.mark.slow
def test_adversarial_training_beats_standard_under_pgd():
    xtr, ytr = load_image_split("digits", "train")
    xte, yte = load_image_split("digits", "test")
    robust = {}
    for name, loss_fn in (
        ("standard", standard_loss),
        ("pgd-at", pgd_at_loss(0.1, 3)),
        ("trades", trades_loss(0.1, 6.0, 3)),
    ):
        torch.manual_seed(0)
        model = build_classifier("mlp", (1, 8, 8), 10)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(4):
            train_epoch(model, xtr, ytr, loss_fn, opt, batch_size=32)
        assert evaluate_accuracy(model, xte, yte) > 0.85, name
        robust[name] = evaluate_accuracy(model, xte, yte, PGD(eps=0.1, steps=10, seed=0))
    assert robust["pgd-at"] > robust["standard"] + 0.1
    assert robust["trades"] > robust["standard"] + 0.1


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"method": "fgsm-at"}, "unknown training method"),
        ({"arch": "vit"}, "unknown model"),
        ({"epochs": 0}, "epochs=0"),
        ({"eps": -0.1}, "eps=-0.1"),
        ({"method": "pgd-at", "eps": 0.0}, "needs --eps > 0"),
        ({"lr": 0.0}, "lr=0"),
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
        ({"norm": "l0"}, "unknown norm"),
    ],
)
def test_bad_train_config(kw, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kw)


def _cfg(**kw):
    base = dict(
        method="pgd-at",
        arch="mlp",
        data="stripes",
        epochs=3,
        eps=0.1,
        attack_steps=2,
        eval_steps=3,
        batch_size=64,
        seed=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_run_training_writes_a_loadable_model_and_resumes_exactly(tmp_path):
    cfg = _cfg(epochs=2)
    full = tmp_path / "full"
    metrics = run_training(cfg, full, progress=False)
    assert metrics["epochs"] == 2 and 0.5 < metrics["val_clean_accuracy"] <= 1.0
    model = load_classifier(full)
    meta = model.meta
    assert meta["arch"] == "mlp" and meta["input_shape"] == [1, 8, 8] and meta["num_classes"] == 2
    assert meta["trained"]["method"] == "pgd-at" and meta["trained"]["eps"] == 0.1
    assert meta["trained"]["epochs"] == 2 and meta["trained"]["seed"] == 1
    assert "val_robust_accuracy" in meta["trained"] and "val_clean_accuracy" in meta["trained"]
    recs = [json.loads(line) for line in (full / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == ["epoch-1", "epoch-2"]
    assert (full / "figures" / "training.png").exists() and (full / "report.html").exists()

    # interrupt in epoch 2, then resume: same records, same weights as the uninterrupted run
    part = tmp_path / "part"
    calls = {"n": 0}
    base_loss = pgd_at_loss(cfg.eps, cfg.attack_steps, cfg.alpha)

    def crashing(model, x, y):
        calls["n"] += 1
        if calls["n"] > 6 + 1:  # stripes train has 360 samples: 6 batches per epoch
            raise KeyboardInterrupt
        return base_loss(model, x, y)

    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, part, progress=False, loss_fn=crashing)
    assert json.loads((part / "manifest.json").read_text())["status"] == "interrupted"
    assert len((part / "results.jsonl").read_text().splitlines()) == 1
    run_training(cfg, part, progress=False)
    recs2 = [json.loads(line) for line in (part / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs2] == ["epoch-1", "epoch-2"]
    for a, b in zip(recs, recs2):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        assert a["robust_accuracy"] == b["robust_accuracy"]
    m1, m2 = load_classifier(full), load_classifier(part)
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.allclose(v1, v2, atol=1e-6), k
    # a finished run re-run with the same config does nothing new
    run_training(cfg, part, progress=False)
    assert len((part / "results.jsonl").read_text().splitlines()) == 2


def test_standard_and_trades_methods_run_end_to_end(tmp_path):
    for method in ("standard", "trades"):
        m = run_training(_cfg(method=method, epochs=1), tmp_path / method, progress=False)
        assert m["method"] == method and m["epochs"] == 1
        assert load_classifier(tmp_path / method).meta["trained"]["method"] == method
