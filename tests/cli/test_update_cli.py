"""``advlab check-update`` / ``advlab update classifier``: bad input is one line, exit 2, nothing written.

One test runs the console script in a subprocess; the others call its entry point (``advlab.cli.main.run``)
in-process with ``sys.argv`` set, which is the same code path without paying torch's import per call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advlab.models.classifiers import build_classifier, load_classifier, save_classifier

BIN = Path(sys.executable).parent / "advlab"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _advlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=300, env=ENV)


@pytest.fixture
def advlab(monkeypatch, capsys):
    """Run the console-script entry point in-process; returns (exit code, stdout, stderr)."""
    from advlab.cli.main import run

    def call(*args):
        monkeypatch.setattr(sys, "argv", ["advlab", *map(str, args)])
        capsys.readouterr()
        try:
            run()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return call


def _save(path: Path, shape=(1, 8, 8), classes=10, data="digits") -> Path:
    torch.manual_seed(0)
    model = build_classifier("linear", shape, classes)
    return save_classifier(model, path, {"arch": "linear", "input_shape": list(shape), "num_classes": classes,
                                         "data": data})  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    (d / "empty").mkdir()
    return {
        "a": _save(d / "a"),
        "b": _save(d / "b"),
        "five": _save(d / "five", classes=5),
        "big": _save(d / "big", shape=(1, 28, 28)),
        "empty": d / "empty",
    }


def _assert_one_line_error(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in res.stderr, res.stderr


@pytest.mark.parametrize(
    "new,words",
    [("five", ("10 classes", "5")), ("big", ("shape",)), ("empty", ("--new", "not an advlab classifier"))],
)
def test_check_update_refuses_bad_pairs_before_writing(advlab, models, tmp_path, new, words):
    out = tmp_path / "run"
    res = advlab("check-update", "--old", models["a"], "--new", models[new], "--out", out)
    _assert_one_line_error(res, *words)
    assert not out.exists()


def test_update_refuses_alpha_plus_beta_above_one(models, tmp_path):
    out = tmp_path / "upd"  # through the real console script once
    res = _advlab("update", "classifier", "--old", models["a"], "--new", models["b"], "--method", "rcat",
                  "--alpha", "0.7", "--beta", "0.5", "--out", out)  # fmt: skip
    _assert_one_line_error(res, "alpha + beta")
    assert not out.exists()


def test_reproduce_rcat_refuses_zero_seeds_before_writing(advlab, tmp_path):
    out = tmp_path / "rcat"
    res = advlab("reproduce", "rcat", "--quick", "--seeds", "0", "--out", out)
    _assert_one_line_error(res, "--seeds")
    assert not out.exists()


def test_update_refuses_an_old_model_that_is_not_a_classifier(advlab, models, tmp_path):
    out = tmp_path / "upd"
    res = advlab("update", "classifier", "--old", models["empty"], "--new", models["b"], "--out", out)
    _assert_one_line_error(res, "--old")
    assert not out.exists()


def test_check_update_and_update_classifier_end_to_end(advlab, models, tmp_path):
    out = tmp_path / "chk"
    common = ("--eps", "0.05", "--steps", "3", "--limit", "40", "--device", "cpu")
    res = advlab("check-update", "--old", models["a"], "--new", models["b"], "--data", "digits", "--out", out,
                 *common)  # fmt: skip
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"nfr", "pfr", "rnfr", "b_nfr", "s_nfr", "old_accuracy", "new_robust_accuracy"} <= set(metrics)
    assert len((out / "results.jsonl").read_text().splitlines()) == 40

    upd = tmp_path / "upd"
    res = advlab("update", "classifier", "--old", models["a"], "--new", models["b"], "--method", "rcat",
                 "--alpha", "0.5", "--beta", "0.4", "--epochs", "1", "--val-limit", "40", "--out", upd,
                 *common)  # fmt: skip
    assert res.returncode == 0, res.stderr
    model = load_classifier(upd)
    assert model.meta["trained"]["alpha"] == 0.5
    m = json.loads((upd / "metrics.json").read_text())
    assert m["method"] == "rcat" and 0.0 <= m["s_nfr"] <= 1.0
