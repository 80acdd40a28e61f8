"""Options and helpers shared by every command (seed, device, out, help text).

:func:`info` and :func:`done` print on the main process only, so a job started by ``torchrun`` /
``accelerate launch`` reports once; errors are not printed here (``advlab.cli.main.run`` prints them
on every rank that fails).
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, soft_wrap=True)  # long lines stay whole in logs (no hard wrap at 80)

SeedOpt = typer.Option(0, "--seed", help="Random seed; the same seed gives the same result on the same machine.")
DeviceOpt = typer.Option(
    "auto", "--device", help="Where to compute: auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps."
)


def out_option(help_text: str = "Run directory to write (created; re-running the same command resumes).") -> Path:
    # no file_okay check here: click would print a multi-line usage box; RunDir gives one line, exit 2
    return typer.Option(..., "--out", "-o", help=help_text)


def reflow_help(doc: str | None) -> str | None:
    """A command's docstring as help text that rich wraps cleanly at any terminal width.

    typer (rich markup mode) keeps every newline inside a help paragraph, so a docstring hard-wrapped at
    100 characters renders as ragged lines at 80 columns. Here consecutive unindented lines (prose) are
    joined into one line for rich to wrap; blank lines between paragraphs stay. Indented lines are example
    commands, one per line (a trailing ``\\`` continues a long one on the next, further indented line):
    they stay as written, each wrapped in a ``[bold]`` tag so that typer's dedent (``inspect.cleandoc``)
    keeps their indentation. Anything after a ``\\f`` (hidden from help) is kept as it is.
    """
    if not doc:
        return doc
    shown, mark, hidden = inspect.cleandoc(doc).partition("\f")
    paragraphs = []
    for para in re.split(r"\n[ \t]*\n", shown.strip()):
        out: list[str] = []
        prose: list[str] = []
        for line in [*para.splitlines(), ""]:
            if line[:1].isspace() or not line:
                if prose:
                    out.append(" ".join(prose))
                    prose = []
                if line:
                    out.append(f"[bold]{escape(line)}[/bold]")
            else:
                prose.append(line.strip())
        paragraphs.append("\n".join(out))
    return "\n\n".join(paragraphs) + ("\n" + mark + hidden if mark else "")


def argv() -> list[str]:
    return ["advlab", *sys.argv[1:]]


def _main_process() -> bool:
    """True in a single process and on rank 0 of a launched job."""
    from advlab import distributed
    from advlab.errors import ConfigError

    try:
        if not distributed.env_info().active:  # no launcher: skip importing torch.distributed
            return True
        return distributed.is_main()
    except ConfigError:  # a malformed WORLD_SIZE/RANK is reported by the command itself, not here
        return True


def info(msg: str) -> None:
    """Print ``msg`` to stderr (main process only)."""
    if _main_process():
        console.print(msg)


def done(path: Path, what: str = "run") -> None:
    """Print the closing ``done: WHAT written to PATH`` line (main process only)."""
    if _main_process():
        console.print(f"[green]done[/green]: {what} written to [bold]{path}[/bold]")
