"""``advlab report RUN``."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import done


def report(
    run: Path = typer.Argument(..., help="A run directory written by any advlab command (its --out)."),
    no_redraw: bool = typer.Option(False, "--no-redraw", help="Keep the existing figures instead of redrawing them."),
) -> None:
    """Redraw a run's figures from its records and write a self-contained report.html beside them.

    Example:
      advlab report runs/demo/eval-llm
    """
    from advlab.report.html import write_report

    out = write_report(run, redraw=not no_redraw)
    done(out, "report")
