"""``advlab analyze ...``: run directories with the promised records, resume, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from advlab.cli.main import app
from advlab.errors import ConfigError

BIN = Path(sys.executable).parent / "advlab"
runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A linear digits classifier trained for a moment and saved like `advlab train classifier` does."""
    from advlab.data.images import load_digits_split
    from advlab.models.classifiers import build_classifier, save_classifier

    torch.manual_seed(0)
    x, y = load_digits_split("train")
    model = build_classifier("linear", (1, 8, 8), 10)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(40):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    out = tmp_path_factory.mktemp("models") / "linear"
    save_classifier(model, out, {"arch": "linear", "input_shape": [1, 8, 8], "num_classes": 10})
    return out


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow  # two runs with figures and reports
def test_valley_writes_per_step_records_and_resumes(model_dir, tmp_path):
    out = tmp_path / "valley"
    args = ["analyze", "valley", "--model", str(model_dir), "--data", "digits", "--n-examples", "4",
            "--steps", "6", "--eps", "0.3", "--step-size", "0.05", "--device", "cpu", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = _records(out)
    assert len(recs) == 4 * 7
    for r in recs:
        assert {"example", "step", "loss", "margin", "confidence", "pred", "flatness", "flipped"} <= set(r)
        assert r["id"] == f"{r['example']}:{r['step']}"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["job"] == "analyze-valley" and manifest["status"] == "done"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["examples"] == 4 and "flatness" in metrics
    assert (out / "report.html").exists() and (out / "figures" / "valley_aligned.png").exists()
    res = runner.invoke(app, args)  # resume: nothing duplicated
    assert res.exit_code == 0, res.output
    assert len(_records(out)) == len(recs)


def test_flatness_and_hessian_commands(model_dir, tmp_path):
    out = tmp_path / "flat"
    res = runner.invoke(app, ["analyze", "flatness", "--model", str(model_dir), "--limit", "20", "--out", str(out)])
    assert res.exit_code == 0, res.output
    recs = _records(out)
    assert len(recs) == 20 and all(r["kappa"] >= 0 and r["trace_variant"] >= r["kappa"] for r in recs)
    out = tmp_path / "hess"
    res = runner.invoke(app, ["analyze", "hessian", "--model", str(model_dir), "--layer", "fc", "--samples", "5",
                              "--max-iter", "5", "--limit", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output
    (rec,) = _records(out)
    assert rec["group"] == "fc" and rec["num_params"] == 650 and len(rec["trace_samples"]) == 5
    assert (out / "figures" / "hessian.png").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--layer", "nope"], "choose one of"),
        (["--layer", "flatten"], "not a linear layer"),
        (["--method", "hutchinson", "--samples", "0"], "at least 1 sample"),
        (["--steps", "0"], "positive integer"),
    ],
)
def test_bad_input_fails_before_the_run_directory_exists(model_dir, tmp_path, extra, message):
    out = tmp_path / "bad"
    res = runner.invoke(app, ["analyze", "valley", "--model", str(model_dir), "--out", str(out), *extra])
    assert isinstance(res.exception, ConfigError) and message in str(res.exception)
    assert not out.exists()


@pytest.mark.slow  # a subprocess (CLI start-up)
def test_missing_model_is_one_line_exit_2(tmp_path):
    res = subprocess.run([str(BIN), "analyze", "flatness", "--model", str(tmp_path / "none"), "--out",
                          str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "does not exist" in res.stderr
    assert not (tmp_path / "o").exists()
