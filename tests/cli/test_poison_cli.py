"""`advlab poison ...`: every bad input of issue 14 is one line on stderr, exit 2, nothing written;
and the four commands chained on a small set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from advlab.cli.main import run

    monkeypatch.setattr(sys, "argv", ["advlab", *args])
    with pytest.raises(SystemExit) as exc:
        run()
    return int(exc.value.code or 0), capsys.readouterr().err


def _one_line_exit_2(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.strip().count("\n") == 0, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _sst(tmp_path, n=20):
    rows = [{"text": f"a {'dull' if i % 2 else 'fine'} film number {i} .", "label": i % 2 ^ 1,
             "label_text": "negative" if i % 2 else "positive"} for i in range(n)]
    return _jsonl(tmp_path / "task.jsonl", rows)


@pytest.mark.parametrize("rate,words", [("1.5", ["between 0 and 1"]), ("0", ["between 0 and 1"]),
                                        ("-0.2", ["between 0 and 1"]), ("0.01", ["selects 0 examples"])])
def test_build_bad_rates(tmp_path, monkeypatch, capsys, rate, words):
    out = tmp_path / "out"
    code, err = _cli(monkeypatch, capsys, "poison", "build", "--task", _sst(tmp_path), "--trigger", "zebra",
                     "--target", "positive", "--rate", rate, "--out", str(out))
    _one_line_exit_2(code, err, *words)
    assert not out.exists()


def test_task_without_label_field(tmp_path, monkeypatch, capsys):
    task = _jsonl(tmp_path / "t.jsonl", [{"instruction": "Classify.", "input": "x", "output": "yes"}])
    for cmd in (["poison", "build", "--trigger", "zebra", "--rate", "0.5"],
                ["poison", "trigger", "--model", "nowhere"],
                ["poison", "eval", "--model", "nowhere", "--trigger", "z"]):
        out = tmp_path / "out"
        code, err = _cli(monkeypatch, capsys, *cmd, "--task", task, "--target", "yes", "--out", str(out))
        _one_line_exit_2(code, err, "no 'label' field")
        assert not out.exists()


def test_trigger_not_in_enforced_wordlist_and_empty_wordlist(tmp_path, monkeypatch, capsys):
    task = _sst(tmp_path)
    base = ["poison", "build", "--task", task, "--target", "positive", "--rate", "0.25", "--enforce-wordlist"]
    out = tmp_path / "out"
    code, err = _cli(monkeypatch, capsys, *base, "--trigger", "xqzzyv", "--out", str(out))
    _one_line_exit_2(code, err, "not in the word list")
    empty = tmp_path / "words.txt"
    empty.write_text("# nothing\n123\nnot-a-word\n")
    code, err = _cli(monkeypatch, capsys, *base, "--trigger", "zebra", "--wordlist", str(empty), "--out", str(out))
    _one_line_exit_2(code, err, "no usable entry")
    code, err = _cli(monkeypatch, capsys, "poison", "trigger", "--model", "nowhere", "--task", task, "--target",
                     "positive", "--wordlist", str(empty), "--out", str(out))
    _one_line_exit_2(code, err, "no usable entry")
    assert not out.exists()


def test_target_that_tokenises_to_nothing(tmp_path, monkeypatch, capsys, gym_dir):
    rows = [{"instruction": "Rate: {input}", "input": f"thing {i}", "output": "" if i % 2 else "bad",
             "label": "good" if i % 2 else "bad"} for i in range(6)]
    task = _jsonl(tmp_path / "t.jsonl", rows)
    for cmd in (["trigger", "--steps", "1"], ["eval", "--trigger", "zebra"]):
        out = tmp_path / "out"
        code, err = _cli(monkeypatch, capsys, "poison", *cmd, "--model", str(gym_dir), "--task", task,
                         "--target", "good", "--device", "cpu", "--out", str(out))
        _one_line_exit_2(code, err, "tokenises to nothing")
        assert not out.exists()


def test_unknown_target_and_position(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code, err = _cli(monkeypatch, capsys, "poison", "build", "--task", _sst(tmp_path), "--trigger", "zebra",
                     "--target", "Positive", "--rate", "0.25", "--out", str(out))
    _one_line_exit_2(code, err, "not a label")
    code, err = _cli(monkeypatch, capsys, "poison", "build", "--task", _sst(tmp_path), "--trigger", "zebra",
                     "--target", "positive", "--rate", "0.25", "--position", "middle", "--out", str(out))
    _one_line_exit_2(code, err, "--position")
    assert not out.exists()


def test_chain_trigger_build_tune_eval(tmp_path, monkeypatch, capsys, gym_dir):
    task = _sst(tmp_path, 24)
    runs = tmp_path / "runs"
    code, err = _cli(monkeypatch, capsys, "poison", "trigger", "--model", str(gym_dir), "--task", task, "--target",
                     "positive", "--steps", "2", "--prompts", "2", "--device", "cpu", "--out", str(runs / "trig"))
    assert code == 0, err
    trig = json.loads((runs / "trig" / "metrics.json").read_text())["trigger"]
    assert trig and trig.isalpha()
    code, err = _cli(monkeypatch, capsys, "poison", "build", "--task", task, "--trigger", trig, "--target",
                     "positive", "--rate", "0.25", "--out", str(runs / "ps"))
    assert code == 0, err
    rows = [json.loads(x) for x in (runs / "ps" / "train.jsonl").read_text().splitlines()]
    assert sum(r["id"].startswith("poison-") for r in rows) == 6
    code, err = _cli(monkeypatch, capsys, "poison", "tune", "--model", str(gym_dir), "--data", str(runs / "ps"),
                     "--epochs", "1", "--batch-size", "8", "--lora-rank", "0", "--checkpoint-every", "2",
                     "--device", "cpu", "--out", str(runs / "model"))
    assert code == 0, err
    assert (runs / "model" / "model.safetensors").exists() and not (runs / "model" / "checkpoints").exists()
    code, err = _cli(monkeypatch, capsys, "poison", "eval", "--model", str(runs / "model"), "--task", task,
                     "--trigger", trig, "--target", "positive", "--limit", "8", "--device", "cpu",
                     "--out", str(runs / "ev"))
    assert code == 0, err
    m = json.loads((runs / "ev" / "metrics.json").read_text())
    assert {"clean_accuracy", "triggered_accuracy", "asr", "pdr", "per_class"} <= set(m) and m["n"] == 8


@pytest.mark.parametrize("args,words", [(["--rates", "0.01,x"], ["comma-separated"]),
                                        (["--rates", "0.01,1.5"], ["between 0 and 1"]),
                                        (["--rates", ""], ["--rates is empty"]),
                                        (["--defences", "onion,bogus"], ["bogus", "unknown"]),
                                        (["--rates", "0.0001"], ["selects 0 examples"])])
def test_reproduce_bad_rates_and_defences(tmp_path, monkeypatch, capsys, args, words):
    sst2 = tmp_path / "sst2"
    sst2.mkdir()
    rows = Path(_sst(tmp_path)).read_text()  # 20 rows: 0.0001 of them is no example
    for name in ("train", "val", "poisoning"):
        (sst2 / f"{name}.jsonl").write_text(rows)
    out = tmp_path / "out"
    code, err = _cli(monkeypatch, capsys, "reproduce", "poisoning", "--model", "nowhere", "--sst2", str(sst2),
                     *args, "--out", str(out))
    _one_line_exit_2(code, err, *words)
    assert not out.exists()


def test_reproduce_cli_defaults_are_the_recipes():
    import inspect

    from advlab.cli.poison import _rates, reproduce_poisoning
    from advlab.pipelines.poison_reproduce import reproduce_config

    opts = {n: p.default.default for n, p in inspect.signature(reproduce_poisoning).parameters.items()}
    cfg = reproduce_config(quick=False, model="m", sst2="d", rates=_rates(opts["rates"]),
                           defences=tuple(opts["defences"].split(",")))
    assert cfg == reproduce_config(quick=False, model="m", sst2="d")
    short = reproduce_config(quick=True, model="m", sst2="d", rates=_rates("0.01"), defences=("onion",))
    assert short.rates == (0.01,) and short.defences == ("onion",) and short.tune.epochs == 1.5
