"""Options and helpers shared by every command (seed, device, out, limit).

:func:`info` and :func:`done` print on the main process only, so a job started by ``torchrun`` /
``accelerate launch`` reports once; errors are not printed here (``advlab.cli.main.run`` prints them
on every rank that fails).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)

SeedOpt = typer.Option(0, "--seed", help="Random seed; the same seed gives the same result on the same machine.")
DeviceOpt = typer.Option(
    "auto", "--device", help="Where to compute: auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps."
)


def out_option(help_text: str = "Run directory to write (created; re-running the same command resumes).") -> Path:
    # no file_okay check here: click would print a multi-line usage box; RunDir gives one line, exit 2
    return typer.Option(..., "--out", "-o", help=help_text)


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
