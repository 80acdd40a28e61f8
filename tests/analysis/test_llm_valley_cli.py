"""`advlab analyze llm-valley`: per-step records along GCG / embedding trajectories on the quick safety gym."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from advlab.analysis.llm_flatness import segments_flatness
from advlab.analysis.llm_valley import llm_valley_metrics
from advlab.cli.main import app
from advlab.errors import ConfigError

runner = CliRunner()
BIN = Path(sys.executable).parent / "advlab"
KEYS = {"id", "example", "method", "step", "loss", "flatness", "kappa", "confidence", "flipped", "flip_step"}


def _invoke(gym_dir, out, method, *extra):
    args = ["analyze", "llm-valley", "--model", str(gym_dir), "--behaviors", "builtin:gym-harmful-test",
            "--limit", "2", "--steps", "3", "--method", method, "--search-width", "8", "--device", "cpu",
            "--out", str(out), *extra]
    return runner.invoke(app, args, terminal_width=200)


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("method", ["gcg", "embedding"])
def test_records_are_well_formed_and_resume_does_not_duplicate(gym_dir, tmp_path, method):
    out = tmp_path / method
    res = _invoke(gym_dir, out, method)
    assert res.exit_code == 0, res.output
    recs = _records(out)
    examples = {r["example"] for r in recs}
    assert len(examples) == 2
    for ex in examples:
        rs = sorted((r for r in recs if r["example"] == ex), key=lambda r: r["step"])
        assert rs[0]["step"] == 0 and rs[-1]["step"] == 3
        flip = next((r["step"] for r in rs if r["flipped"]), None)
        for r in rs:
            assert set(r) >= KEYS and r["id"] == f"{ex}:{r['step']}" and r["method"] == method
            assert r["flip_step"] == flip
            assert r["loss"] > 0 and r["flatness"] > 0 and 0 < r["confidence"] <= 1
    m = json.loads((out / "metrics.json").read_text())
    assert m["examples"] == 2 and m["flips"][method] + m["never_flipped"] == 2
    assert (out / "figures" / "llm_valley.png").stat().st_size > 0
    res = _invoke(gym_dir, out, method)  # resume: everything done, nothing appended
    assert res.exit_code == 0, res.output
    assert len(_records(out)) == len(recs)


def test_step_zero_matches_an_independent_forward(gym, gym_dir, tmp_path):
    """Step 0 of the embedding run (embeds path) equals the ids path and a plain cross-entropy."""
    from advlab.attacks.llm.embedding import DEFAULT_SUFFIX
    from advlab.data.behavior_loaders import load_behaviors
    from advlab.models.formatting import ChatFormatter

    out = tmp_path / "emb"
    assert _invoke(gym_dir, out, "embedding").exit_code == 0
    model, tok = gym
    b = next(b for b in load_behaviors("builtin:gym-harmful-test") if b.target.strip())
    seg = ChatFormatter(tok).segments(b.request, DEFAULT_SUFFIX, b.target)
    ref = segments_flatness(model, seg)
    rec = next(r for r in _records(out) if r["id"] == f"{b.id}:0")
    assert rec["flatness"] == pytest.approx(float(ref.measure[0]), rel=1e-4)
    assert rec["kappa"] == pytest.approx(float(ref.kappa[0]), rel=1e-4)
    ids = torch.tensor(seg.input_ids)[None]
    s, e = seg.target_range
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, s - 1 : e - 1].float()
    assert rec["loss"] == pytest.approx(float(F.cross_entropy(logits, ids[0, s:e])), rel=1e-4)
    assert rec["confidence"] == pytest.approx(float(logits.softmax(-1).max(-1).values.mean()), rel=1e-4)


def test_bad_layer_is_refused_before_the_run_directory(gym_dir, tmp_path):
    out = tmp_path / "bad"
    res = _invoke(gym_dir, out, "gcg", "--layer", "no.such.layer")
    assert isinstance(res.exception, ConfigError) and "no.such.layer" in str(res.exception)
    assert "lm_head" in str(res.exception) and "\n" not in str(res.exception)  # lists the layers, one line
    assert not out.exists()
    res = _invoke(gym_dir, out, "gcg", "--layer", "model.layers.0.mlp.down_proj")  # linear, but not the head
    assert isinstance(res.exception, ConfigError) and not out.exists()


@pytest.mark.slow  # a subprocess (CLI start-up and model load)
def test_bad_layer_exits_2_with_one_line(gym_dir, tmp_path):
    out = tmp_path / "bad"
    res = subprocess.run([str(BIN), "analyze", "llm-valley", "--model", str(gym_dir), "--behaviors",
                          "builtin:gym-harmful-test", "--layer", "no.such.layer", "--out", str(out)],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 2, res.stderr
    assert len((res.stdout + res.stderr).strip().splitlines()) == 1 and "no.such.layer" in res.stderr + res.stdout
    assert not out.exists()


def test_metrics_before_at_after_and_no_flip():
    def rec(ex, step, flat, flipped):
        return {"example": ex, "step": step, "flatness": flat, "flipped": flipped}

    recs = [rec("a", 0, 1.0, False), rec("a", 1, 3.0, False), rec("a", 2, 5.0, True), rec("a", 3, 2.0, True),
            rec("b", 0, 9.0, False), rec("b", 1, 9.0, False)]
    m = llm_valley_metrics(recs, "gcg")
    assert m["flips"] == {"gcg": 1} and m["never_flipped"] == 1 and m["flip_step_median"] == 2
    assert m["flatness"] == {"median_before_flip": 2.0, "median_at_flip": 5.0, "median_after_flip": 2.0}
    m = llm_valley_metrics([rec("b", 0, 9.0, False)], "embedding")
    assert m["flips"] == {"embedding": 0} and "no flip" in m["note"] and "flatness" not in m
