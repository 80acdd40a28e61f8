"""Options and helpers shared by every command (seed, device, out, limit)."""

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


def info(msg: str) -> None:
    console.print(msg)


def done(path: Path, what: str = "run") -> None:
    console.print(f"[green]done[/green]: {what} written to [bold]{path}[/bold]")
