"""The valley experiment: well-formed records, flip bookkeeping, never-flipping attacks, alignment."""

from __future__ import annotations

import pytest
import torch

from advlab.analysis.flatness import flatness_measures
from advlab.analysis.valley import (
    ValleyConfig,
    align_at_flip,
    compare_models,
    flip_steps,
    summarize_valley,
    trajectory_records,
    valley_trajectory,
)
from advlab.errors import ConfigError

KEYS = {"id", "example", "step", "loss", "margin", "confidence", "pred", "flatness", "flipped", "flip_step",
        "trace", "trace_variant", "phi_sq", "grad_norm", "pert_norm", "label"}


@pytest.fixture(scope="module")
def trajectory(digits_mlp):
    model, x, y = digits_mlp
    with torch.no_grad():
        ok = (model(x).argmax(1) == y).nonzero().flatten()[:12]
    cfg = ValleyConfig(eps=0.3, step_size=0.02, steps=30)
    traj = valley_trajectory(model, x[ok], y[ok], cfg)
    return model, x[ok], y[ok], cfg, traj, trajectory_records(traj, ok.tolist())


def test_records_are_well_formed(trajectory):
    model, x, y, cfg, traj, recs = trajectory
    assert len(recs) == 12 * 31 and len({r["id"] for r in recs}) == len(recs)
    for r in recs:
        assert set(r) >= KEYS
        assert r["id"] == f"{r['example']}:{r['step']}"
        assert r["flipped"] == (r["pred"] != r["label"])
        assert r["pert_norm"] <= cfg.eps + 1e-6 and 0 <= r["confidence"] <= 1
        assert r["trace_variant"] >= r["flatness"] * (1 - 1e-5)
    assert all(r["pert_norm"] == 0 and not r["flipped"] for r in recs if r["step"] == 0)
    assert traj["loss"].shape == (12, 31)


def test_flip_step_is_the_first_flipped_step(trajectory):
    *_, traj, recs = trajectory
    fs = flip_steps(recs)
    for r in recs:
        assert r["flip_step"] == fs[r["example"]]
        if r["flip_step"] is not None and r["step"] < r["flip_step"]:
            assert not r["flipped"]
    assert sum(f is not None for f in fs.values()) >= 1


def test_recorded_flatness_equals_the_flatness_function_at_the_same_point(trajectory):
    model, x, y, cfg, traj, recs = trajectory
    clean = flatness_measures(model, "fc", x, y)
    assert torch.allclose(traj["flatness"][:, 0], clean.kappa, rtol=1e-5)
    assert torch.allclose(traj["phi_sq"][:, 0], clean.phi_sq, rtol=1e-5)


def test_same_seed_same_trajectory(trajectory):
    model, x, y, cfg, traj, _ = trajectory
    cfg = ValleyConfig(eps=0.3, step_size=0.02, steps=8, random_start=True)
    a = valley_trajectory(model, x[:3], y[:3], cfg, seed=5)
    b = valley_trajectory(model, x[:3], y[:3], cfg, seed=5)
    assert torch.equal(a["flatness"], b["flatness"]) and torch.equal(a["pred"], b["pred"])


def test_an_attack_that_never_flips_is_reported_not_divided(digits_mlp):
    model, x, y = digits_mlp
    cfg = ValleyConfig(eps=1e-4, step_size=1e-5, steps=3)
    traj = valley_trajectory(model, x[:4], y[:4], cfg)
    recs = trajectory_records(traj, [0, 1, 2, 3])
    s = summarize_valley(recs)
    assert s["flipped"] == 0 and "no label" in s["note"]
    assert align_at_flip(recs, "flatness")["offset"] == []


def _synthetic(curves: dict[int, list[float]], flips: dict[int, int | None]) -> list[dict]:
    recs = []
    for e, vals in curves.items():
        for s, v in enumerate(vals):
            f = flips[e]
            recs.append({"id": f"{e}:{s}", "example": e, "step": s, "flatness": v, "confidence": 0.5,
                         "flipped": f is not None and s >= f})
    return recs


def test_alignment_and_summary_on_known_curves():
    recs = _synthetic({0: [1, 2, 8, 4, 2], 1: [1, 4, 2, 1, 1], 2: [1, 1, 1, 1, 1]}, {0: 2, 1: 1, 2: None})
    a = align_at_flip(recs, "flatness")
    assert a["offset"] == [-2, -1, 0, 1, 2, 3]
    assert a["mean"][a["offset"].index(0)] == pytest.approx(6.0)  # (8 + 4) / 2
    assert a["count"] == [1, 2, 2, 2, 2, 1]
    s = summarize_valley(recs)
    assert s["flipped"] == 2 and s["never_flipped"] == 1
    assert s["median_ratio_at_flip_over_clean"] == pytest.approx(6.0)  # median of 8 and 4
    assert s["median_ratio_end_over_flip"] == pytest.approx((2 / 8 + 1 / 4) / 2)
    assert s["fraction_rise_then_fall"] == 1.0 and s["median_peak_offset_from_flip"] == 0
    table = compare_models({"a": s, "b": summarize_valley(recs[:5])})
    assert table["flipped"] == {"a": 2, "b": 1}


@pytest.mark.parametrize("kwargs", [{"eps": 0}, {"steps": 0}, {"norm": "l1"}, {"method": "x"},
                                    {"method": "hutchinson", "samples": 0}])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ConfigError):
        ValleyConfig(**kwargs)


def test_exact_method_on_an_inner_layer_is_refused(digits_mlp):
    model, x, y = digits_mlp
    with pytest.raises(ConfigError, match="does not produce the logits"):
        valley_trajectory(model, x[:2], y[:2], ValleyConfig(layer="features.3", steps=2))
