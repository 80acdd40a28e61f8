"""Bad input to `advlab zoo build` and `advlab eval llm`: one line, exit code 2, nothing written."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "advlab"


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the real entry point in-process (faster than a subprocess); returns (exit code, stderr)."""
    from advlab.cli.main import run

    monkeypatch.setattr(sys, "argv", ["advlab", *args])
    with pytest.raises(SystemExit) as exc:
        run()
    err = capsys.readouterr().err
    return int(exc.value.code or 0), err


def _one_line_exit_2(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.strip().count("\n") == 0, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def test_eval_wrong_model_path_subprocess(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run(
        [str(BIN), "eval", "llm", "--model", str(tmp_path / "nope"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    _one_line_exit_2(res.returncode, res.stderr, "no such model directory")
    assert not out.exists()


def test_eval_dir_without_safetensors(tmp_path, monkeypatch, capsys):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    out = tmp_path / "run"
    code, err = _cli(monkeypatch, capsys, "eval", "llm", "--model", str(model), "--out", str(out))
    _one_line_exit_2(code, err, "safetensors")
    assert not out.exists()


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--limit", "0"], ["--limit 0"]),
        (["--max-new-tokens", "0"], ["--max-new-tokens 0"]),
        (["--device", "tpu7"], ["--device tpu7"]),
        (["--behaviors", "none", "--harmless", "none", "--tasks", "none"], ["nothing to evaluate"]),
    ],
)
def test_eval_bad_options(tmp_path, monkeypatch, capsys, gym_dir, extra, words):
    out = tmp_path / "run"
    code, err = _cli(monkeypatch, capsys, "eval", "llm", "--model", str(gym_dir), "--out", str(out), *extra)
    _one_line_exit_2(code, err, *words)
    assert not out.exists()


def test_eval_out_is_a_file(tmp_path, monkeypatch, capsys, gym_dir):
    out = tmp_path / "run"
    out.write_text("not a dir")
    code, err = _cli(monkeypatch, capsys, "eval", "llm", "--model", str(gym_dir), "--out", str(out))
    _one_line_exit_2(code, err, "is a file")
    assert out.read_text() == "not a dir"


def test_eval_locked_run_dir(tmp_path, monkeypatch, capsys, gym_dir):
    out = tmp_path / "run"
    out.mkdir()
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}
    (out / ".lock").write_text(json.dumps(lock))
    code, err = _cli(monkeypatch, capsys, "eval", "llm", "--model", str(gym_dir), "--out", str(out), "--limit", "1")
    _one_line_exit_2(code, err, "in use by process")
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def test_eval_missing_behaviour_file(tmp_path, monkeypatch, capsys, gym_dir):
    out = tmp_path / "run"
    code, err = _cli(
        monkeypatch,
        capsys,
        "eval",
        "llm",
        "--model",
        str(gym_dir),
        "--out",
        str(out),
        "--behaviors",
        str(tmp_path / "missing.csv"),
    )
    _one_line_exit_2(code, err, "missing.csv")
    assert not out.exists()


@pytest.mark.parametrize(
    "args,words",
    [
        (["zoo", "build", "gpt-9"], ["unknown model 'gpt-9'", "safety-gym"]),
        (["zoo", "build", "safety-gym", "--steps", "0"], ["--steps 0"]),
        (["zoo", "build", "safety-gym", "--device", "cuda:99"], ["--device cuda:99"]),
        (["zoo", "build", "safety-gym", "--behaviors", "builtin:no-such-set"], ["no-such-set"]),
    ],
)
def test_zoo_build_bad_input(tmp_path, monkeypatch, capsys, args, words):
    out = tmp_path / "gym"
    code, err = _cli(monkeypatch, capsys, *args, "--out", str(out))
    _one_line_exit_2(code, err, *words)
    assert not out.exists()


def test_zoo_build_out_is_a_file(tmp_path, monkeypatch, capsys):
    out = tmp_path / "gym"
    out.write_text("x")
    code, err = _cli(monkeypatch, capsys, "zoo", "build", "safety-gym", "--out", str(out))
    _one_line_exit_2(code, err, "is a file")
    assert out.read_text() == "x"


def test_help_texts_teach(monkeypatch, capsys):
    from advlab.cli.main import run

    for args in (["zoo", "build", "--help"], ["eval", "llm", "--help"]):
        monkeypatch.setattr(sys, "argv", ["advlab", *args])
        with pytest.raises(SystemExit) as exc:
            run()
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "Example" in text and "--out" in text and "--seed" in text
