"""The CLI's outer contract: help that teaches, and user errors as one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "advlab"


def _advlab(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_help_lists_the_command_groups():
    res = _advlab("--help")
    assert res.returncode == 0
    for word in ("demo", "report", "attack"):
        assert word in res.stdout


def test_report_of_a_missing_run_is_one_line_exit_2(tmp_path):
    res = _advlab("report", str(tmp_path / "nope"))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "not an advlab run directory" in res.stderr
    assert "Traceback" not in res.stderr


def test_report_writes_self_contained_html(tmp_path):
    from advlab.runs import RunDir

    out = tmp_path / "run"
    with RunDir(out, "custom-job", {"x": 1}, seed=0) as run:
        run.append({"id": "a", "text": "<script>alert(1)</script>"})
        run.write_metrics({"score": 0.25, "per_class": {"a": 1}})
    res = _advlab("report", str(out))
    assert res.returncode == 0, res.stderr
    html = (out / "report.html").read_text()
    assert "score" in html and "0.25" in html
    assert "<script>alert(1)</script>" not in html  # record text is escaped
    assert "http://" not in html and "https://" not in html  # no external assets


# ------------------------------------------------------------------------------------------------ help layout

BOX = ("╭", "│", "╰")


def _help_paths() -> list[list[str]]:
    """Every registered group and command, plus the root."""
    import typer

    from advlab.cli.main import app

    paths: list[list[str]] = [[]]

    def walk(cmd, prefix: list[str]) -> None:
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


def _render_help(path: list[str], width: int, monkeypatch) -> str:
    import re

    from typer import rich_utils
    from typer.testing import CliRunner

    from advlab.cli.main import app

    monkeypatch.setattr(rich_utils, "MAX_WIDTH", width)  # TERMINAL_WIDTH in the environment would win over COLUMNS
    monkeypatch.setattr(rich_utils, "FORCE_TERMINAL", None)  # no colour codes under GITHUB_ACTIONS / FORCE_COLOR
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(width)}, terminal_width=width)
    assert res.exit_code == 0, (path, res.output)
    return re.sub(r"\x1b\[[0-9;]*m", "", res.output)


def _first_word(text: str) -> str:
    return text.split()[0] if text.split() else ""


def help_layout_problems(text: str, width: int) -> list[str]:
    """Line breaks in rendered help that rich's greedy wrapping would not make.

    Rich fills a line while the next word fits, so a prose line followed by a prose line whose first word
    would have fitted on it (one column of slack) is a hard newline from the source: the ragged wrapping of
    a docstring hard-wrapped at another width. Checked in the description above the panels and in the
    description column of the Commands panel. Indented lines are example commands: a line after one must
    be indented too (else rich wrapped the example), and no line may be wider than the terminal.
    """
    problems: list[str] = []
    lines = text.splitlines()
    for line in lines:
        if len(line) > width:
            problems.append(f"wider than {width}: {line!r}")
        if "[bold]" in line or "[/bold]" in line:
            problems.append(f"markup shown literally: {line!r}")
    # the description: lines outside the panels, one column of padding on the left
    for a, b in zip(lines, lines[1:]):
        if not a.strip() or not b.strip() or a.startswith(BOX) or b.startswith(BOX):
            continue
        a_example, b_example = a.startswith("   "), b.startswith("   ")
        if a_example and not b_example:
            problems.append(f"example line wrapped: {a.strip()!r} / {b.strip()!r}")
        elif not a_example and not b_example and len(a.rstrip()) + 1 + len(_first_word(b)) < width - 1:
            problems.append(f"ragged break: {a.strip()!r} / {b.strip()!r}")
    # the Commands panel: "│ name   description │", continuation rows have a blank name column
    in_commands, col = False, None
    for a, b in zip(lines, lines[1:]):
        if a.startswith("╭"):
            in_commands, col = "Commands" in a, None
        if not (in_commands and a.startswith("│") and b.startswith("│")):
            continue
        a_body, b_body = a[2:-2], b[2:-2]
        if a_body[:1].strip():  # a row starts: the description column begins after the name
            col = len(a_body) - len(a_body.split(None, 1)[1]) if len(a_body.split()) > 1 else None
        if col is None or b_body[:1].strip():  # b starts the next command
            continue
        a_desc, b_desc = a_body[col:].rstrip(), b_body[col:]
        if len(a_desc) + 1 + len(_first_word(b_desc)) < len(a_body) - col - 1:
            problems.append(f"ragged break in Commands: {a_desc.strip()!r} / {b_desc.strip()!r}")
    return problems


def test_help_layout_check_catches_ragged_wrapping():
    """The checker flags a docstring hard-wrapped at 100 columns and shown at 80, and passes rich's own wrap."""
    ragged = (
        "\n Usage: advlab zoo build [OPTIONS] NAME\n\n"
        " safety-gym: a few-million-parameter Llama chat model with a byte-level BPE\n"
        " tokenizer, trained to\n"
        " refuse harmful requests.\n\n"
        "   advlab zoo build safety-gym --out models/gym --behaviors\n"
        " advbench_behaviors.csv\n"
    )
    found = help_layout_problems(ragged, 80)
    assert any("tokenizer, trained to" in p for p in found) and any("example line wrapped" in p for p in found)
    clean = (
        "\n Usage: advlab zoo build [OPTIONS] NAME\n\n"
        " safety-gym: a few-million-parameter Llama chat model with a byte-level BPE\n"
        " tokenizer, trained to refuse harmful requests.\n\n"
        " Example:\n"
        "   advlab zoo build safety-gym --out models/gym \\\n"
        "       --behaviors advbench_behaviors.csv\n"
    )
    assert help_layout_problems(clean, 80) == []
    panel = (
        "╭─ Commands ───────────────────────────────────╮\n"
        "│ llm   Measure a chat model: refusal on       │\n"
        "│       harmful requests and                   │\n"
        "│       over-refusal.                          │\n"
        "╰──────────────────────────────────────────────╯\n"
    )
    assert any("harmful requests and" in p for p in help_layout_problems(panel, 48))


def test_reflow_help_joins_prose_and_keeps_examples():
    from advlab.cli.common import reflow_help

    doc = """Summary line that goes on
    over two lines.

    A paragraph
    in three
    lines:
      advlab x --a 1 \\
          --b [x]
    \f
    hidden
    """
    assert reflow_help(doc) == (
        "Summary line that goes on over two lines.\n\n"
        "A paragraph in three lines:\n"
        "[bold]  advlab x --a 1 \\\\[/bold]\n"
        "[bold]      --b \\[x][/bold]\n"
        "\f\nhidden"
    )
    assert reflow_help(None) is None


@pytest.mark.parametrize("width", [80, 120])
def test_every_help_reads_as_clean_paragraphs(width, monkeypatch):
    paths = _help_paths()
    assert ["attack", "llm"] in paths and ["demo"] in paths  # the walk found the commands
    problems = []
    for path in paths:
        text = _render_help(path, width, monkeypatch)
        problems += [f"advlab {' '.join(path)} --help: {p}" for p in help_layout_problems(text, width)]
        if "COMMAND [ARGS]" not in text and "Example" not in text:  # a command, not a group: the root promises one
            problems.append(f"advlab {' '.join(path)} --help: no example")
    assert problems == [], "\n".join(problems)


def test_zoo_build_help_states_the_current_step_defaults(monkeypatch):
    from advlab.models.zoo import GymConfig

    text = " ".join(_render_help(["zoo", "build"], 200, monkeypatch).replace("│", " ").split())
    assert f"(default: {GymConfig().steps}, or {GymConfig.quick_preset().steps} with --quick)" in text


@pytest.mark.parametrize("module", ["advlab", "advlab.cli"])
def test_python_dash_m_runs_the_cli(module):
    """``python -m advlab`` (what ``torchrun -m advlab`` runs) is the same command as ``advlab``."""
    res = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "attack" in res.stdout and "demo" in res.stdout


def test_error_line_is_one_write_so_ranks_cannot_splice_it(monkeypatch):
    """Two ranks share one stderr pipe: the error line and its newline must go out in one write(2)
    (CI once saw rank 1's line glued to rank 0's when print wrote them separately)."""
    from advlab.cli import main as cli_main

    calls = []

    class Err:
        def flush(self):
            pass

        def fileno(self):
            return 2

    monkeypatch.setattr(cli_main.sys, "stderr", Err())
    monkeypatch.setattr(cli_main.os, "write", lambda fd, data: calls.append((fd, data)) or len(data))
    cli_main._say("advlab: error: something is wrong")
    assert calls == [(2, b"advlab: error: something is wrong\n")]
