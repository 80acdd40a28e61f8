"""`advlab train classifier` and `advlab attack classifier`: end to end, resume, and bad input (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

BIN = Path(sys.executable).parent / "advlab"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _invoke(*args):
    from advlab.cli.main import app

    res = CliRunner().invoke(app, list(args))
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls") / "model"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    _invoke(
        "train",
        "classifier",
        "--method",
        "standard",
        "--model",
        "mlp",
        "--data",
        "stripes",
        "--epochs",
        "2",
        "--eps",
        "0.1",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    torch.set_num_threads(n)
    return out


def test_train_then_attack_with_an_eps_sweep_and_resume(trained, tmp_path):
    from advlab.models import load_classifier

    assert load_classifier(trained).meta["trained"]["method"] == "standard"
    run = tmp_path / "attack"
    args = [
        "attack",
        "classifier",
        "--method",
        "pgd",
        "--model",
        str(trained),
        "--eps",
        "0.1,0.3",
        "--eps",
        "0.6",
        "--steps",
        "5",
        "--limit",
        "40",
        "--batch-size",
        "16",
        "--out",
        str(run),
    ]
    _invoke(*args)
    recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 120 and len({r["id"] for r in recs}) == 120
    assert {"clean_pred", "adv_pred", "adv_loss", "perturbation_norm", "robust"} <= set(recs[0])
    metrics = json.loads((run / "metrics.json").read_text())
    robust = metrics["robust_accuracy"]
    assert list(robust) == ["0.1", "0.3", "0.6"]
    assert all(v <= metrics["clean_accuracy"] for v in robust.values())
    assert robust["0.6"] <= robust["0.1"]
    assert all(r["perturbation_norm"] <= r["eps"] + 1e-6 for r in recs)
    # robust accuracy recomputed from the records
    r01 = [r for r in recs if r["eps"] == 0.1]
    assert robust["0.1"] == pytest.approx(sum(r["robust"] for r in r01) / len(r01))
    for fig in ("robust_accuracy.png", "examples.png"):
        assert (run / "figures" / fig).exists()
    assert json.loads((run / "manifest.json").read_text())["job"] == "attack-classifier"
    # lose the last batch, re-run: it is recomputed identically and nothing is duplicated
    lines = (run / "results.jsonl").read_text().splitlines()
    (run / "results.jsonl").write_text("\n".join(lines[:-8]) + "\n")
    _invoke(*args)
    again = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert len(again) == 120
    assert again[-8:] == recs[-8:]


def test_worst_case_and_apgd_methods(trained, tmp_path):
    for method in ("worst-case", "apgd", "fgsm"):
        run = tmp_path / method
        extra = [] if method == "fgsm" else ["--steps", "5"]
        _invoke(
            "attack",
            "classifier",
            "--method",
            method,
            "--model",
            str(trained),
            "--eps",
            "0.3",
            "--limit",
            "24",
            "--out",
            str(run),
            *extra,
        )
        m = json.loads((run / "metrics.json").read_text())
        assert m["method"] == method and m["robust_accuracy"]["0.3"] <= m["clean_accuracy"]


def _advlab(*args):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=180)


def _invoke_error(*args):
    """Run in-process and return the AdvlabError (``advlab.cli.main.run`` turns it into exit code 2)."""
    from advlab.cli.main import app
    from advlab.errors import AdvlabError

    res = CliRunner().invoke(app, list(args))
    assert isinstance(res.exception, AdvlabError), (res.exception, res.output)
    assert "\n" not in str(res.exception)
    return str(res.exception)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--eps", "-0.1"], "a radius must be >= 0"),
        (["--eps", "abc"], "is not a radius; pass a number or a fraction: 0.1, 8/255"),
        (["--steps", "0"], "must be an integer >= 1"),
        (["--method", "cw"], "unknown attack method"),
        (["--norm", "l1"], "unknown norm"),
        (["--data", "two-moons"], "but the model expects (1, 8, 8)"),
        (["--data", "digits"], "has label 9 but the model has 2 classes"),
        (["--method", "fgsm", "--steps", "3"], "FGSM takes exactly one step"),
        (["--limit", "0"], "--limit 0 must be >= 1"),
        (["--split", "dev"], "unknown split"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_attack_bad_input_is_one_line_error_and_writes_nothing(trained, tmp_path, args, match):
    out = tmp_path / "run"
    msg = _invoke_error("attack", "classifier", "--model", str(trained), "--out", str(out), *args)
    assert match in msg
    assert not out.exists()


@pytest.mark.parametrize(
    "args, match",
    [
        (["--method", "pgd-at", "--eps", "0"], "needs --eps > 0"),
        (["--model", "vit"], "unknown model"),
        (["--epochs", "0"], "epochs=0"),
        (["--data", "mnist:/nonexistent/dir"], "does not exist"),
    ],
)
def test_train_bad_input_is_one_line_error_and_writes_nothing(tmp_path, args, match):
    out = tmp_path / "t"
    assert match in _invoke_error("train", "classifier", "--out", str(out), *args)
    assert not out.exists()


def test_user_errors_exit_2_with_one_line_on_stderr(tmp_path):
    res = _advlab(
        "attack",
        "classifier",
        "--model",
        str(tmp_path / "nope"),
        "--eps",
        "0.1",
        "--out",
        str(tmp_path / "r"),
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
    assert "does not exist" in res.stderr and not (tmp_path / "r").exists()


def test_help_teaches():
    res = _advlab("attack", "classifier", "--help")
    assert res.returncode == 0
    for word in ("--eps", "worst-case", "Example", "--norm", "robust accuracy"):
        assert word in res.stdout


@pytest.mark.parametrize("rank, printed", [("0", True), ("1", False)])
def test_info_and_done_print_on_the_main_process_only(monkeypatch, capsys, rank, printed):
    """Under a launcher (WORLD_SIZE=2, no process group yet) rank 1 is silent; a single process always prints."""
    from advlab.cli import common

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    common.info("summary line")
    common.done(Path("runs/x"), "model and run")
    err = capsys.readouterr().err
    assert ("summary line" in err and "done: model and run written to runs/x" in err) == printed
    assert printed or err == ""
    monkeypatch.delenv("WORLD_SIZE")
    common.info("alone")
    assert "alone" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_report_once(tmp_path):
    """`advlab train classifier` under 2 CPU processes (torchrun): the epoch line, the summary and the
    ``done:`` line come from rank 0 alone."""
    import os

    from advlab.distributed import launch_argv

    out = tmp_path / "two"
    cmd = [*launch_argv("torchrun", 2), "advlab.cli.main", "train", "classifier", "--model", "mlp"]
    cmd += ["--data", "digits", "--epochs", "1", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    assert proc.stdout.count("epoch 1/1:") == 1, proc.stdout  # the progress console prints to stdout
    assert err.count("standard mlp: val clean accuracy") == 1, err[-3000:]
    assert err.count("done: model and run written to") == 1, err[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert f"val clean accuracy {100 * m['val_clean_accuracy']:.1f} %" in err  # the summary is rank 0's metrics
