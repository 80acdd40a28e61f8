"""``advlab reproduce poisoning``: the recipe job on the safety gym with SST-2 (wiring only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advlab.poisoning.reproduce import ReproduceConfig, ReproduceJob
from advlab.poisoning.tune import TuneConfig

# every training and validation example in both forms (1,000 examples stayed on the gym's "positive" prior
# or escaped it by chance; docs/poisoning.md); --quick: 1.5 epochs, 30 trigger steps, defences on "learned"
QUICK = {"trigger_steps": 30, "tune": TuneConfig(lora_rank=0, lr=1e-3, epochs=1.5), "defence_kinds": ("learned",)}


def reproduce_config(*, quick: bool, model: str | None, sst2: str, seed: int = 0,
                     rates: tuple[float, ...] | None = None, defences: tuple[str, ...] | None = None
                     ) -> ReproduceConfig:
    """The full recipe (4,000 training examples, full fine-tuning 2 epochs at lr 1e-3, 100 trigger steps)
    or its --quick form; ``rates`` / ``defences`` replace the four rates / five defences (a shorter run)."""
    if model is None:
        from advlab.models.zoo import get_safety_gym

        model = str(get_safety_gym(quick=quick, seed=0, progress=True))
    extra: dict[str, Any] = dict(QUICK) if quick else {}
    if rates is not None:
        extra["rates"] = tuple(rates)
    if defences is not None:
        extra["defences"] = tuple(defences)
    return ReproduceConfig(model=model, sst2=sst2, quick=quick, seed=seed, **extra)


def run_reproduce_poisoning(cfg: ReproduceConfig, out: str | Path, *, device: str = "auto",
                            argv: list[str] | None = None, progress: bool = False) -> dict[str, Any]:
    from advlab.jobs import check_writable, run_job
    from advlab.utils import resolve_device, seed_everything

    dev = resolve_device(device)
    check_writable(out)
    seed_everything(cfg.seed)
    return run_job(ReproduceJob(cfg, out, dev), out, argv=argv, progress=progress).metrics
