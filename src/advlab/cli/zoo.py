"""``advlab zoo build`` and ``advlab zoo path``: build, or find, the embedded safety-gym chat model."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, done
from advlab.cli.options import fill


def build(
    name: str = typer.Argument(..., help="Which model to build; known: safety-gym."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Directory to write the model to (a Hugging Face directory; replaced if it holds an earlier gym build).",
    ),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    quick: bool = typer.Option(
        False,
        "--quick",
        help="The ~1 minute build used by tests: a smaller model, fewer steps, lower quality.",
    ),
    behaviors: list[str] = typer.Option(
        None,
        "--behaviors",
        help="Extra harmful behaviours to train refusals on: a file (AdvBench / HarmBench / "
        "StrongREJECT / JSON) or builtin:NAME. Repeatable (default: none, the built-in tables only).",
    ),
    harmless: list[str] = typer.Option(
        None,
        "--harmless",
        help="Extra harmless instructions to train compliance on: a JSON / JSONL / TXT / CSV file (e.g. "
        "harmless_train.json from the refusal_direction repository) or builtin:NAME. Repeatable (default: none).",
    ),
    exclude: list[str] = typer.Option(
        None,
        "--exclude",
        help="Behaviour files whose requests are never trained on (e.g. the HarmBench test split you "
        "will evaluate on). Repeatable (default: none).",
    ),
    steps: int = typer.Option(None, "--steps", help="Number of optimiser steps (default: 2600, or 400 with --quick)."),
) -> None:
    """Train an embedded model on this machine and save it as a normal Hugging Face directory.

    safety-gym: a few-million-parameter Llama chat model with a byte-level BPE tokenizer, trained to
    refuse harmful requests ("Sorry, I can't help with that."), solve small checkable tasks, and comply
    with harmless requests starting "Sure, here is ...". The full build is sized for two idle CPU cores
    (--quick takes about a minute); how it was built (config, data sizes, time, held-out metrics) goes
    into gym_build.json in --out.

    Examples:
      advlab zoo build safety-gym --out models/gym --quick
      advlab zoo build safety-gym --out models/gym \\
          --behaviors advbench_behaviors.csv --harmless harmless_train.json \\
          --exclude harmbench_behaviors_text_test.csv
    """
    opts = dict(locals())
    from dataclasses import replace

    from advlab.errors import ConfigError
    from advlab.models.zoo import GymConfig, build_safety_gym, load_exclusions
    from advlab.utils import resolve_device

    _known(name)
    cfg = GymConfig.quick_preset() if quick else GymConfig()
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps {steps}: must be at least 1")
        cfg = replace(cfg, steps=steps, warmup=min(cfg.warmup, steps))
    path = fill(
        build_safety_gym,
        opts,
        rename={"out": "out_dir"},
        convert={"behaviors": lambda v: v or (), "harmless": lambda v: v or ()},
        exclude=load_exclusions(exclude or ()),
        config=cfg,
        progress=True,
        device=resolve_device(device),
    )
    done(path, "model")


def _known(name: str) -> None:
    from advlab.errors import ConfigError
    from advlab.models.zoo import KNOWN_MODELS

    if name not in KNOWN_MODELS:
        raise ConfigError(f"unknown model '{name}'; known models: {', '.join(KNOWN_MODELS)}")


def path(
    name: str = typer.Argument(..., help="Which model; known: safety-gym."),
    quick: bool = typer.Option(False, "--quick", help="The quick build (as `advlab demo --quick` uses)."),
    seed: int = SeedOpt,
) -> None:
    """Print the directory of the cached safety gym that `advlab demo` uses (building it if not cached).

    Only the path goes to stdout, so it can be used in other commands; a build's progress goes to stderr.
    The cache is ~/.cache/advlab, or $ADVLAB_CACHE.

    Example:
      advlab eval llm --model "$(advlab zoo path safety-gym)" --out runs/eval
    """
    import contextlib
    import sys

    from advlab.models.zoo import get_safety_gym

    _known(name)
    with contextlib.redirect_stdout(sys.stderr):
        gym = get_safety_gym(quick=quick, seed=seed, progress=True)
    print(gym)
