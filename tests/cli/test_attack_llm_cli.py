"""``advlab attack llm`` from the command line: a real run, help text, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from advlab.cli.main import app

runner = CliRunner()


def test_help_lists_every_option():
    res = runner.invoke(app, ["attack", "llm", "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for opt in (
        "--method",
        "--model",
        "--behaviors",
        "--out",
        "--limit",
        "--steps",
        "--search-width",
        "--topk",
        "--n-replace",
        "--eps",
        "--optimizer",
        "--step-size",
        "--max-new-tokens",
        "--seed",
        "--device",
        "--judge",
        "--universal",
        "--transfer-model",
        "--n-streams",
        "--population",
        "--attacker-url",
        "--attacker-model",
        "--rating-judge-url",
        "--rating-judge-model",
        "--rephraser-url",
        "--rephraser-model",
        "--api-key-env",
        "--http-timeout",
        "--http-retries",
    ):
        assert opt in res.output
    # the defaults a user must know about are spelled out
    text = " ".join(res.output.replace("\u2502", " ").split())  # option help wraps inside a box (│ ... │)
    assert "attacked model attacks itself" in text and "synonym substitution" in text
    # the judges, what each is for, and where the embedding defaults come from
    assert "[default: compliance, refusal]" in text and "--judge-model" in text
    assert "on topic" in text and "real models" in text and "papers report it" in text
    assert "Adam, --step-size 1e-2, --eps 1.0, 100 steps" in text and "measurement on the quick safety gym" in text
    assert "EmbeddingAttackConfig: sign, 1e-4, eps 0.05, 10 steps" in text
    assert "'none' or 'inf' for unbounded" in text


@pytest.mark.slow
def test_cli_gcg_run(gym_dir, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "attack",
            "llm",
            "--method",
            "gcg",
            "--model",
            str(gym_dir),
            "--limit",
            "1",
            "--steps",
            "2",
            "--search-width",
            "8",
            "--topk",
            "8",
            "--max-new-tokens",
            "8",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 1 and set(metrics["asr_by_judge"]) == {"compliance", "refusal"}
    assert metrics["default_judge"] == "compliance" and metrics["asr"] == metrics["asr_by_judge"]["compliance"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "done"


def test_bad_option_is_one_line_exit_2(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "advlab.cli.main",
            "attack",
            "llm",
            "--method",
            "gcg",
            "--model",
            "x",
            "--search-width",
            "0",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--search-width" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def _cli(*args):
    """Run ``advlab attack llm ARGS`` in a fresh process (the real entry point: exit codes, stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "advlab.cli.main", "attack", "llm", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--method", "pair", "--universal"], "--universal"),
        (["--method", "embedding", "--transfer-model", "other"], "--transfer-model"),
        (["--method", "gcg", "--attacker-url", "http://127.0.0.1:9/v1", "--attacker-model", "a"], "--attacker-url"),
        (["--method", "pair", "--attacker-url", "http://127.0.0.1:9/v1"], "--attacker-model"),
        (["--method", "pair", "--rating-judge-url", "localhost:8000", "--rating-judge-model", "j"], "http"),
        (["--method", "gcg", "--rephraser-model", "r"], "--rephraser"),
        (["--method", "pair", "--api-key-env", "sk-live-abc"], "--api-key-env"),
        (["--method", "pair", "--n-streams", "0"], "--n-streams"),
        (["--method", "autodan", "--population", "1"], "--population"),
        (["--method", "gcg", "--http-retries", "-1"], "--http-retries"),
        (["--method", "gcg", "--optimizer", "sign"], "--optimizer"),
        (["--method", "pair", "--optimizer", "adam"], "--optimizer"),
        (["--method", "embedding", "--optimizer", "sgd"], "--optimizer sgd"),
        (["--method", "embedding", "--eps", "big"], "--eps"),
        (["--method", "embedding", "--eps", "-1"], "--eps"),
    ],
)
def test_bad_new_options_are_one_line_exit_2(tmp_path, args, needle):
    out = tmp_path / "run"
    proc = _cli(*args, "--model", "x", "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and needle in proc.stderr
    assert "Traceback" not in proc.stderr and "sk-live-abc" not in proc.stderr and not out.exists()


@pytest.mark.parametrize(
    "text, value",
    [("1.0", 1.0), ("0.05", 0.05), ("0", 0.0), ("none", None), ("None", None), ("inf", None), (" INF ", None),
     ("8/255", 8 / 255)],
)
def test_parse_eps(text, value):
    from advlab.cli.options import parse_eps

    assert parse_eps(text, unbounded=True) == value


def test_cli_embedding_defaults_and_options_in_config(gym_dir, tmp_path):
    """The defaults (and the options that override them) are what the run's config.yaml records."""
    import yaml

    base = ["attack", "llm", "--method", "embedding", "--model", str(gym_dir), "--limit", "1", "--steps", "1"]
    base += ["--max-new-tokens", "4", "--device", "cpu"]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert (cfg["optimizer"], cfg["step_size"], cfg["eps"], cfg["norm"]) == ("adam", 0.01, 1.0, "l2")
    assert cfg["judges"] == ["compliance", "refusal"]
    (rec,) = _records(tmp_path / "a")
    assert list(rec["judges"]) == ["compliance", "refusal"]
    args = ["--optimizer", "sign", "--step-size", "0.001", "--eps", "none", "--judge", "refusal"]
    res = runner.invoke(app, [*base, *args, "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert (cfg["optimizer"], cfg["step_size"], cfg["eps"]) == ("sign", 0.001, None)
    assert cfg["judges"] == ["refusal"]
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert list(metrics["asr_by_judge"]) == ["refusal"] and metrics["default_judge"] == "refusal"
    (rec,) = _records(tmp_path / "b")
    assert rec["details"]["radius"] is None  # unbounded


def _records(out):
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def gym_backend(gym):
    from advlab.models.backends import HFChatBackend

    model, tok = gym
    return HFChatBackend(model, tok, name="gym")


@pytest.mark.slow
def test_cli_pair_with_attacker_served_over_http(gym_dir, gym_backend, tmp_path, monkeypatch):
    """PAIR's attacker behind a real OpenAI-compatible server on 127.0.0.1 that requires an API key."""
    from advlab.models.serve import ChatServer

    secret = "sk-cli-test-SECRET-31337"
    monkeypatch.setenv("ADVLAB_CLI_TEST_KEY", secret)
    out = tmp_path / "pair"
    with ChatServer(gym_backend, model_name="gym", api_key_env="ADVLAB_CLI_TEST_KEY") as srv:
        res = runner.invoke(
            app,
            [
                "attack",
                "llm",
                "--method",
                "pair",
                "--model",
                str(gym_dir),
                "--limit",
                "2",
                "--steps",
                "1",
                "--n-streams",
                "2",
                "--max-new-tokens",
                "8",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--attacker-url",
                srv.url,
                "--attacker-model",
                "gym",
                "--api-key-env",
                "ADVLAB_CLI_TEST_KEY",
            ],
        )
        served = srv.requests_served
    assert res.exit_code == 0, res.output
    recs = _records(out)
    assert [r["method"] for r in recs] == ["pair", "pair"]
    for r in recs:
        assert isinstance(r["adv_string"], str) and r["adv_string"] and r["steps"] == 1
        assert r["details"]["queries"]["attacker"] >= 2 and "refusal" in r["judges"]
    # every attacker query (and nothing else: target and rating judge are local) went over HTTP
    assert served == sum(r["details"]["queries"]["attacker"] for r in recs)
    config = (out / "config.yaml").read_text()
    assert srv.url in config and "ADVLAB_CLI_TEST_KEY" in config
    for f in ("config.yaml", "manifest.json", "results.jsonl", "metrics.json", "report.html"):
        assert secret not in (out / f).read_text()
    assert secret not in res.output
    assert json.loads((out / "metrics.json").read_text())["n"] == 2


@pytest.mark.slow
def test_cli_unreachable_attacker_exit_2_then_resume(gym_dir, gym_backend, tmp_path):
    import socket

    from advlab.models.serve import ChatServer

    with socket.socket() as s:  # a free port, nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "pair"
    args = [
        "--method",
        "pair",
        "--model",
        str(gym_dir),
        "--limit",
        "1",
        "--steps",
        "1",
        "--n-streams",
        "1",
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--attacker-url",
        f"http://127.0.0.1:{port}/v1",
        "--attacker-model",
        "gym",
        "--http-retries",
        "1",
    ]
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = [line for line in proc.stderr.splitlines() if line.startswith("advlab: error")]
    assert len(err) == 1 and "--attacker-url" in err[0] and "cannot reach" in err[0] and "2 attempt" in err[0]
    assert "Traceback" not in proc.stderr
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    # the server comes up: the same command resumes the run
    with ChatServer(gym_backend, model_name="gym", port=port):
        res = runner.invoke(app, ["attack", "llm", *args])
    assert res.exit_code == 0, res.output
    assert len(_records(out)) == 1 and json.loads((out / "manifest.json").read_text())["status"] == "done"


@pytest.mark.slow
def test_cli_autodan_rephraser_over_http(gym_dir, gym_backend, tmp_path):
    from advlab.models.serve import ChatServer

    out = tmp_path / "autodan"
    with ChatServer(gym_backend, model_name="gym") as srv:
        res = runner.invoke(
            app,
            [
                "attack",
                "llm",
                "--method",
                "autodan",
                "--model",
                str(gym_dir),
                "--limit",
                "1",
                "--steps",
                "1",
                "--population",
                "12",
                "--max-new-tokens",
                "4",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--rephraser-url",
                srv.url,
                "--rephraser-model",
                "gym",
            ],
        )
        served = srv.requests_served
    assert res.exit_code == 0, res.output
    (rec,) = _records(out)
    assert rec["details"]["mutation"] == "rephrase" and served == rec["details"]["mutations"] >= 2


@pytest.mark.slow
def test_cli_universal_transfer_gcg(gym_dir, tmp_path):
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(gym_dir, twin)
    out = tmp_path / "univ"
    args = [
        "attack",
        "llm",
        "--method",
        "gcg",
        "--model",
        str(gym_dir),
        "--limit",
        "2",
        "--steps",
        "2",
        "--search-width",
        "8",
        "--topk",
        "8",
        "--init",
        "x x x x x",
        "--max-new-tokens",
        "8",
        "--device",
        "cpu",
        "--universal",
        "--transfer-model",
        str(twin),
        "--out",
        str(out),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = _records(out)
    suffix = json.loads((out / "universal_suffix.json").read_text())
    assert len(recs) == 2 and {r["adv_string"] for r in recs} == {suffix["adv_string"]}
    assert all(r["mode"] == "universal" and r["loss_history"] == suffix["loss_history"] for r in recs)
    assert recs[0]["adv_prompt"] != recs[1]["adv_prompt"]  # each behaviour its own prompt
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "universal" and metrics["transfer_models"] == [str(twin)]
    assert suffix["transfer_models"] == [str(twin)]
    # re-running the finished command changes nothing
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and _records(out) == recs
