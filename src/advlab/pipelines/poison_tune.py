"""``advlab poison tune``: instruction tuning through the LLM training engine (wiring only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advlab.poisoning.jobs import TuneJob, TuneJobConfig


def run_poison_tune(cfg: TuneJobConfig, out: str | Path, *, device: str = "auto", argv: list[str] | None = None,
                    progress: bool = False, model_and_tokenizer: Any = None) -> dict[str, Any]:
    from advlab.jobs import check_writable, run_job
    from advlab.utils import resolve_device, seed_everything

    dev = resolve_device(device)
    check_writable(out)
    seed_everything(cfg.tune.seed)
    job = TuneJob(cfg, out, dev, model_and_tokenizer)
    return run_job(job, out, argv=argv, progress=progress).metrics
