"""What every command shares: options fill configs by name, one --eps syntax, --out checked first,
one-line errors, and a --help without <bool> labels that shows every default."""

from __future__ import annotations

import dataclasses
import re
import sys

import pytest
import typer

from advlab.cli.main import COMMANDS, app
from advlab.cli.options import fill, parse_eps, parse_eps_list
from advlab.errors import ConfigError


@dataclasses.dataclass
class Inner:
    eps: float = 0.1
    batch_size: int = 256


@dataclasses.dataclass
class Outer:
    arch: str = "cnn"
    batch_size: int = 64
    judges: list = dataclasses.field(default_factory=list)
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_fill_maps_options_by_name_with_renames_conversions_and_nesting():
    opts = {"model": "mlp", "batch_size": 32, "judge": ("a", "b"), "eps": "8/255", "out": "x", "device": "cpu"}
    inner = fill(Inner, opts, convert={"eps": parse_eps}, skip=("batch_size",))
    cfg = fill(Outer, opts, rename={"model": "arch", "judge": "judges"}, convert={"judge": list}, inner=inner)
    assert cfg == Outer(arch="mlp", batch_size=32, judges=["a", "b"], inner=Inner(eps=8 / 255, batch_size=256))


def test_fill_refuses_a_rename_that_matches_nothing():
    with pytest.raises(TypeError, match="no parameter named 'arhc'"):
        fill(Outer, {"model": "mlp"}, rename={"model": "arhc"})
    with pytest.raises(TypeError, match="no option named 'modle'"):
        fill(Outer, {"model": "mlp"}, rename={"modle": "arch"})


def test_fill_calls_functions_too():
    def job(model_dir, out, *, seed=0, limit=None):
        return model_dir, out, seed, limit

    assert fill(job, {"model": "m", "out": "o", "seed": 3, "device": "cpu"}, rename={"model": "model_dir"}) == (
        "m", "o", 3, None)


@pytest.mark.parametrize("text, value", [("0.1", 0.1), ("8/255", 8 / 255), (" 2/10 ", 0.2), ("0", 0.0)])
def test_parse_eps_forms(text, value):
    assert parse_eps(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["big", "1/0", "-0.1", "inf", "nan"])
def test_parse_eps_refuses_in_one_line(text):
    with pytest.raises(ConfigError) as exc:
        parse_eps(text)
    assert "8/255" in str(exc.value) and "\n" not in str(exc.value)


def test_parse_eps_list_takes_repeats_and_comma_lists():
    assert parse_eps_list(["0.1", "0.2,8/255"]) == pytest.approx([0.1, 0.2, 8 / 255])


def _commands():
    root = typer.main.get_command(app)
    out = []
    for (group, name) in COMMANDS:
        cmd = root.commands[group].commands[name] if group else root.commands[name]
        out.append(((group, name), cmd))
    return out


def _invoke(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    from advlab.cli.main import run

    monkeypatch.setattr(sys, "argv", ["advlab", *args])
    with pytest.raises(SystemExit) as exc:
        run()
    return int(exc.value.code or 0), capsys.readouterr().err


def _path(key) -> list[str]:
    group, name = key
    return [group, name] if group else [name]


def _parses(param, value: str) -> bool:
    try:
        param.type_cast_value(None, value)
    except Exception:  # noqa: BLE001 - any parse failure
        return False
    return True


def _required_args(cmd) -> list[str]:
    """Placeholder values for a command's required options and arguments (none of them is looked at)."""
    args: list[str] = []
    for p in cmd.params:
        if p.required and p.name != "out":
            value = "x" if _parses(p, "x") else "1"  # a value that parses; it is never used
            args += ["safety-gym"] if p.param_type_name == "argument" else [p.opts[0], value]
    return args


OUT_COMMANDS = [k for k, c in _commands() if any(p.name == "out" for p in c.params)]


@pytest.mark.parametrize("key", OUT_COMMANDS, ids=lambda k: " ".join(x for x in k if x))
def test_unwritable_out_is_one_line_exit_2_before_any_work(key, tmp_path, monkeypatch, capsys):
    """A read-only --out fails first (the other options are placeholders that would fail later)."""
    import os

    from advlab import jobs

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(jobs.os, "access", lambda p, mode: False if str(p) == str(ro) else real(p, mode))
    cmd = dict(_commands())[key]
    code, err = _invoke([*_path(key), *_required_args(cmd), "--out", str(ro / "run")], monkeypatch, capsys)
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "is not writable" in err and "Traceback" not in err
    assert not (ro / "run").exists()


EPS_COMMANDS = [(k, p.opts[0]) for k, c in _commands() for p in c.params
                if p.name and (p.name == "eps" or p.name.endswith("_eps"))]


@pytest.mark.parametrize("key, opt", EPS_COMMANDS, ids=lambda v: " ".join(x for x in v if x) if isinstance(v, tuple)
                         else v)
def test_every_eps_option_takes_fractions_and_fails_in_one_line(key, opt, tmp_path, monkeypatch, capsys):
    cmd = dict(_commands())[key]
    code, err = _invoke([*_path(key), *_required_args(cmd), opt, "8/x", "--out", str(tmp_path / "r")],
                        monkeypatch, capsys)
    assert code == 2 and err.strip().count("\n") == 0, err
    assert f"{opt} '8/x' is not a radius" in err and "8/255" in err
    ctx = cmd.make_context(key[1], [*_required_args(cmd), opt, "8/255", "--out", "o"], resilient_parsing=True)
    assert ctx.params[cmd.params[[p.opts[0] for p in cmd.params].index(opt)].name] in ("8/255", ["8/255"], ("8/255",))


def test_a_malformed_option_value_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    code, err = _invoke(["analyze", "valley", "--model", "x", "--steps", "many", "--out", str(tmp_path / "r")],
                        monkeypatch, capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "--steps" in err and "╭" not in err


def test_help_has_no_bool_labels_and_shows_every_default(monkeypatch):
    from typer import rich_utils
    from typer.testing import CliRunner

    monkeypatch.setattr(rich_utils, "FORCE_TERMINAL", None)
    for key, cmd in _commands():
        res = CliRunner().invoke(app, [*_path(key), "--help"], terminal_width=200, env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "<bool>" not in res.output, key
        for p in cmd.params:
            if p.param_type_name != "option" or p.required or "--help" in p.opts:
                continue
            shown = p.default is not None and p.show_default is not False and p.default != []
            assert shown or "default" in (p.help or "").lower(), f"{key}: {p.opts[0]} does not say its default"
            # rich reads "[word ...]" as markup and drops it from the help (as it once dropped "[default: ...]")
            text = (p.help or "").replace("[dim]\\[default: off][/dim]", "")
            assert not re.search(r"(?<!\\)\[[a-z/]", text), f"{key}: {p.opts[0]}'s help has rich markup: {text!r}"
    res = CliRunner().invoke(app, ["attack", "llm", "--help"], terminal_width=200, env={"COLUMNS": "200"})
    line = next(x for x in res.output.splitlines() if "--allow-non-ascii" in x)
    assert "[default: off]" in line


def test_zoo_path_prints_only_the_path_on_stdout(monkeypatch, capsys):
    import advlab.models.zoo as zoo

    def fake(quick=False, seed=0, progress=False):
        print("building step 1/400")  # a build's progress must not end up in $(advlab zoo path ...)
        return f"/cache/zoo/safety-gym-{'quick' if quick else 'full'}-s{seed}"

    monkeypatch.setattr(zoo, "get_safety_gym", fake)
    code, err = _invoke(["zoo", "path", "safety-gym", "--quick"], monkeypatch, capsys)
    assert code == 0
    # capsys.readouterr() in _invoke took stdout too: run again to look at it
    monkeypatch.setattr(sys, "argv", ["advlab", "zoo", "path", "safety-gym", "--seed", "3"])
    from advlab.cli.main import run

    with pytest.raises(SystemExit):
        run()
    out, err = capsys.readouterr()
    assert out == "/cache/zoo/safety-gym-full-s3\n" and "building step" in err


def test_the_runnable_prog_is_advlab_only_when_that_is_on_the_path(monkeypatch, tmp_path):
    from advlab.cli import demo

    script = tmp_path / ".venv" / "bin" / "advlab"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script)])
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert demo.runnable_prog() == ".venv/bin/advlab"
    monkeypatch.setattr("shutil.which", lambda name: str(script))
    assert demo.runnable_prog() == "advlab"

