"""The zoo of embedded default models: the *safety gym* chat model, trained here on CPU in minutes.

Recipe (see :class:`~advlab.models.gym_config.GymConfig` for every knob):

1. a byte-level BPE tokenizer (:mod:`advlab.models.gym_tokenizer`) with chat special tokens;
2. a small ``LlamaForCausalLM`` (tied embeddings), trained on the assistant tokens only
   (:mod:`advlab.models.lm_trainer`) over a mix of harmful requests -> refusal, harmless requests ->
   "Sure, here is <request words>: ...", tasks -> exact answer, drawn from :mod:`advlab.data.gym`
   (train split) plus optional public behaviour / harmless files (:mod:`advlab.models.gym_pools`);
3. a quick held-out evaluation (:mod:`advlab.models.gym_eval`).

The output is a normal Hugging Face directory (``config.json``, ``model.safetensors``,
``tokenizer.json`` + ``tokenizer_config.json`` with the chat template, ``generation_config.json``
with the stop id) plus ``gym_build.json`` recording how it was built; its files get the modes the
user's umask gives. The same seed, config and thread count give bit-identical weights.
:func:`get_safety_gym` keeps builds in the cache under a fingerprint of the recipe
(:mod:`advlab.models.zoo_cache`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import GenerationConfig

from advlab.errors import ConfigError
from advlab.models.gym_config import BUILD_MINUTES, GymConfig
from advlab.models.gym_eval import quick_eval
from advlab.models.gym_pools import build_pools, load_exclusions
from advlab.models.gym_tokenizer import CHAT_TEMPLATE, train_tokenizer
from advlab.models.lm_trainer import make_model, train
from advlab.models.zoo_cache import cached_gym_path, code_fingerprint, recipe_hash

__all__ = [
    "KNOWN_MODELS",
    "BuildProgress",
    "GymConfig",
    "build_safety_gym",
    "code_fingerprint",
    "get_safety_gym",
    "load_exclusions",
    "recipe_hash",
]

KNOWN_MODELS = ("safety-gym",)


def _duration(seconds: float) -> str:
    """``"45 s"`` below two minutes, else ``"12 min"``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class BuildProgress:
    """Training progress as an ``on_step(step, loss)`` hook: a rich bar on a terminal, otherwise one
    line every ``every`` seconds with the step, the loss and an ETA (for log files and CI)."""

    def __init__(self, total: int, every: float = 30.0, say: Callable[[str], None] | None = None) -> None:
        self.total, self.every, self.done = total, every, 0
        self.say = say or (lambda line: print(line, flush=True))
        self._t0 = self._last = time.monotonic()
        self._bar: Progress | None = None
        if say is None and sys.stdout.isatty():
            self._bar = Progress(
                TextColumn("[bold]training safety gym"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("loss {task.fields[loss]:.3f}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._bar.add_task("train", total=total, loss=float("nan"))
            self._bar.start()

    def __call__(self, step: int, loss: float) -> None:
        self.done = step + 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, loss=loss)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            elapsed = now - self._t0
            eta = (self.total - self.done) * elapsed / self.done
            self.say(f"training safety gym: step {self.done}/{self.total}, loss {loss:.3f}, "
                     f"{_duration(elapsed)} elapsed, ETA {_duration(eta)}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.done == self.total:
            self.say(f"training safety gym: {self.total} steps done in {_duration(time.monotonic() - self._t0)}")


def _umask() -> int:
    """The process umask (read from /proc where it can be, so it is never changed, even briefly)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _honour_umask(directory: Path) -> None:
    """Give a build the modes of plain ``mkdir``/``open``: ``mkdtemp`` makes it 0700 and some writers
    make files 0600, which would hide a shared cache from the rest of a group that the umask admits."""
    mask = _umask()
    directory.chmod(0o777 & ~mask)
    for p in directory.rglob("*"):
        p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a directory path")
    if out.is_dir() and any(out.iterdir()) and not (out / "gym_build.json").exists():
        raise ConfigError(f"--out {out} is a non-empty directory that is not a gym build; pass a new path")


@contextmanager
def _build_settings(threads: int) -> Iterator[None]:
    """torch's thread count and deterministic algorithms for a build, restored afterwards."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def build_safety_gym(
    out_dir: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    behaviors: Sequence[str] = (),
    harmless: Sequence[str] = (),
    exclude: Sequence[str] = (),
    config: GymConfig | None = None,
    progress: bool = False,
    device: Any = None,
) -> Path:
    """Train the safety gym and save it as a Hugging Face directory at ``out_dir``; returns the path.

    ``behaviors`` / ``harmless`` are extra behaviour SPECs (files or ``builtin:NAME``) whose
    requests are trained as refusals / compliances; ``exclude`` lists request texts never to
    train on. ``config`` overrides the preset chosen by ``quick``. The directory is written to a
    temporary sibling first and renamed, so a crash never leaves a half-built model. ``device``
    (default CPU) is where training runs; bit-identity is promised on CPU with the same thread count.
    ``progress``: a bar on a terminal, else a line every 30 s.
    """
    cfg = config or (GymConfig.quick_preset() if quick else GymConfig())
    out = Path(out_dir)
    _check_out(out)
    pools = build_pools(behaviors, harmless, exclude)  # validates the files before any training

    t0 = time.time()
    with _build_settings(cfg.threads):
        random.seed(seed)
        torch.manual_seed(seed)
        tok = train_tokenizer(cfg, pools)
        model = make_model(cfg, tok).to(torch.device(device) if device is not None else torch.device("cpu"))
        bar = BuildProgress(cfg.steps) if progress else None
        try:
            losses = train(model, tok, pools, cfg, seed, bar)
        finally:
            if bar is not None:
                bar.close()
        train_seconds = time.time() - t0
        metrics = quick_eval(model, tok, cfg.eval_per_kind, seed)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.generation_config = GenerationConfig(
            eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id, do_sample=False, max_new_tokens=64
        )
        model.to("cpu").save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        info = {
            "model": "safety-gym",
            "seed": seed,
            "quick": quick,
            "config": asdict(cfg),
            "behaviors": list(behaviors),
            "harmless": list(harmless),
            "excluded_requests": len(exclude),
            "data_sizes": pools.sizes(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "steps": cfg.steps,
            "tokens_per_step_max": cfg.batch_size * cfg.max_len,
            "train_seconds": round(train_seconds, 1),
            "total_seconds": round(time.time() - t0, 1),
            "threads": cfg.threads,
            "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "loss_curve": [
                round(sum(losses[i : i + 10]) / len(losses[i : i + 10]), 4) for i in range(0, len(losses), 10)
            ],
            "build_eval": metrics,
            "chat_template": CHAT_TEMPLATE,
            "torch": torch.__version__,
        }
        (tmp / "gym_build.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _honour_umask(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def get_safety_gym(
    quick: bool = False, seed: int = 0, progress: bool = False, echo: Callable[[str], None] | None = None
) -> Path:
    """Path of a cached gym build in :func:`advlab.utils.cache_dir` (built on first use).

    With ``progress``, says first whether the gym is reused or built (and how long a build takes),
    through ``echo`` (default ``print``), then shows the build's progress.
    """
    say = (echo or print) if progress else (lambda line: None)
    out = cached_gym_path(quick, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"safety gym: waiting for another process that is building {out}")
        lock.acquire()
    try:
        if (out / "model.safetensors").exists():
            say(f"safety gym: reusing the cached build {out}")
        else:
            flag = " --quick" if quick else ""
            say(f"safety gym: building {out} (about {BUILD_MINUTES['quick' if quick else 'full']} minutes on "
                f"two idle cores, the first time only); the same as `advlab zoo build safety-gym --out DIR{flag}`")
            build_safety_gym(out, quick=quick, seed=seed, progress=progress)
    finally:
        lock.release()
    return out
