"""``advlab poison trigger``: GBTL trigger search into a run directory (wiring only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advlab.poisoning.jobs import TriggerJob, TriggerJobConfig


def run_poison_trigger(cfg: TriggerJobConfig, out: str | Path, *, device: str = "auto", argv: list[str] | None = None,
                       progress: bool = False, model_and_tokenizer: Any = None) -> dict[str, Any]:
    from advlab.jobs import check_writable, run_job
    from advlab.utils import resolve_device, seed_everything

    dev = resolve_device(device)
    check_writable(out)
    job = TriggerJob(cfg, dev, model_and_tokenizer)
    seed_everything(cfg.seed)
    return run_job(job, out, argv=argv, progress=progress).metrics
