"""``advlab poison eval``: clean accuracy, triggered accuracy, ASR and PDR (wiring only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advlab.poisoning.jobs import EvalJob, EvalJobConfig


def run_poison_eval(cfg: EvalJobConfig, out: str | Path, *, device: str = "auto", argv: list[str] | None = None,
                    progress: bool = False, models: dict[str, Any] | None = None) -> dict[str, Any]:
    from advlab.jobs import check_writable, run_job
    from advlab.utils import resolve_device

    dev = resolve_device(device)
    check_writable(out)
    return run_job(EvalJob(cfg, dev, models), out, argv=argv, progress=progress).metrics
