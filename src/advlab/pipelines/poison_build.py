"""``advlab poison build``: a poisoned instruction set and its manifest (wiring only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advlab.poisoning.jobs import BuildJob, BuildJobConfig


def run_poison_build(cfg: BuildJobConfig, out: str | Path, *, argv: list[str] | None = None,
                     progress: bool = False) -> dict[str, Any]:
    from advlab.jobs import check_writable, run_job

    check_writable(out)
    return run_job(BuildJob(cfg), out, argv=argv, progress=progress).metrics
