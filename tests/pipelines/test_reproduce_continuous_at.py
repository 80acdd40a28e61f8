"""``reproduce continuous-at`` on the quick gym at tiny budgets: the table's rows and columns, its numbers
equal to the sub-runs' own metrics.json, the figures, and a re-run that redoes nothing."""

from __future__ import annotations

import csv
import json
import math

import pytest
import yaml

from advlab.errors import AdvlabError, ConfigError
from advlab.pipelines import reproduce_continuous_at as recipe
from advlab.pipelines.continuous_at_config import ATTACKS, MODELS, STRONG, ContinuousATConfig


def _tiny(model: str) -> ContinuousATConfig:
    return ContinuousATConfig(model=model, steps={"cat": 2, "capo": 1, "r2d2": 1}, save_every=1, r2d2_gcg_steps=1,
                              r2d2_search_width=8, eval_limit=2, attack_limit=1, gcg_steps=2, gcg_search_width=8,
                              embedding_steps=2, autodan_steps=1, autodan_population=2, sweep_eps=(0.0, 1.0),
                              sweep_steps=2, max_new_tokens=8)


def _metrics(path) -> dict:
    return json.loads((path / "metrics.json").read_text())


def _same(a, b) -> bool:
    return (a in ("", None) and b is None) or math.isclose(float(a), float(b), rel_tol=1e-9)


def test_tiny_run_table_matches_sub_runs_and_resumes(gym_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    m = recipe.continuous_at_recipe(out, cfg=_tiny(str(gym_dir)), progress=False)
    with (out / "table.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == list(MODELS)
    assert set(recipe.COLUMNS) <= set(rows[0])
    for r in rows:
        ev = _metrics(out / "eval" / r["model"])
        for col, key in (("utility", "utility"), ("over_refusal", "over_refusal"), ("clean_refusal", "refusal_rate")):
            assert _same(r[col], ev[key]), (r["model"], col)
        for a in ATTACKS + (STRONG if r["model"] != "base" else ()):
            at = _metrics(out / "attack" / r["model"] / a)
            assert _same(r[f"asr_{a}"], at["asr"]) and _same(r[f"asr_no_refusal_{a}"], at["asr_by_judge"]["refusal"])
            assert int(r["n_attack"]) == at["n"] == 1
        assert r["budget_gcg"] == "2 steps x 8 candidates"
        if r["model"] == "base":  # the stronger budgets attack only the trained models
            assert all(r[f"asr_{a}"] == "" for a in STRONG) and not (out / "attack" / "base" / "gcg_2x").exists()
        else:
            assert r["budget_gcg_2x"] == "4 steps x 8 candidates"
            assert r["budget_embedding_4x"] == "4 Adam steps, eps 4"
            assert r["budget_embedding_unbounded"] == "4 Adam steps, unbounded"
            for a, eps in (("embedding_4x", 4.0), ("embedding_unbounded", None)):
                sub = yaml.safe_load((out / "attack" / r["model"] / a / "config.yaml").read_text())
                assert (sub["steps"], sub["eps"]) == (4, eps)
        if r["model"] == "base":
            assert r["attack_passes_per_adversarial_example"] == "" and float(r["seconds"]) == 0.0
        else:
            tr = _metrics(out / "models" / r["model"])
            per = (tr["attack_forward_passes"] + tr["attack_backward_passes"]) / tr["adversarial_examples"]
            assert _same(r["attack_passes_per_adversarial_example"], per) and _same(r["seconds"], tr["seconds"])
    # the eps sweep: eps 0 is its own model, eps 1.0 at the same steps reuses the main CAT model
    assert [(p["eps"], p["model"]) for p in m["sweep"]] == [(0.0, "cat-eps0"), (1.0, "cat")]
    assert _metrics(out / "models" / "cat-eps0")["steps"] == 2
    assert _same(m["sweep"][1]["asr"], _metrics(out / "attack" / "cat" / "embedding")["asr"])
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figs == ["asr_vs_utility.png", "robustness_vs_eps.png", "training_curves.png"]

    def boom(*a, **k):
        raise AssertionError("a finished step ran again")

    for name in ("train_llm", "run_eval_llm", "run_attack_llm"):
        monkeypatch.setattr(recipe, name, boom)
    again = recipe.continuous_at_recipe(out, cfg=_tiny(str(gym_dir)), progress=False)
    assert again["table"] == m["table"]


def test_bad_config_is_refused_before_any_file(tmp_path):
    with pytest.raises(ConfigError, match="steps"):
        ContinuousATConfig(steps={"cat": 1})
    missing = ContinuousATConfig(model="m", behaviors=str(tmp_path / "x.csv"))
    with pytest.raises(AdvlabError, match="x.csv"):
        recipe.continuous_at_recipe(tmp_path / "never", cfg=missing, progress=False)
    assert not (tmp_path / "never").exists()
