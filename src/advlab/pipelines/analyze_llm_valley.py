"""``advlab analyze llm-valley``: the job ``analyze-llm-valley`` (wiring only; see :mod:`advlab.analysis.llm_valley`).

Per behaviour with a target, ``steps`` GCG or embedding-attack steps without early stopping; one record per
step (id ``"EXAMPLE:STEP"``) for the attack's current iterate: loss, flatness (Σ p(1−p)‖h‖² of ``layer``),
kappa, confidence, flipped and flip_step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advlab.analysis.llm_flatness import output_head_name, segments_flatness
from advlab.analysis.llm_valley import embedding_valley, gcg_valley, llm_valley_metrics
from advlab.attacks.llm.embedding import EmbeddingAttackConfig
from advlab.attacks.llm.gcg import GCGConfig
from advlab.data.behavior_loaders import load_behaviors
from advlab.errors import ConfigError
from advlab.jobs import check_writable, run_job
from advlab.models import load_chat_model
from advlab.models.formatting import ChatFormatter
from advlab.utils import seed_everything


@dataclass
class LLMValleyJob:
    name = "analyze-llm-valley"
    config: dict[str, Any]
    model: Any
    tokenizer: Any
    attack: Any
    items_: list[dict[str, Any]]
    seed: int = 0
    device: str = "cpu"

    def items(self) -> list[dict[str, Any]]:
        return self.items_

    def is_done(self, item: dict[str, Any], done: set[str]) -> bool:
        return f"{item['id']}:{self.config['steps']}" in done

    def run_item(self, item: dict[str, Any], tick) -> list[dict[str, Any]]:
        seed_everything(self.seed)
        method, name = self.config["method"], self.config["layer"]
        valley = gcg_valley if method == "gcg" else embedding_valley
        out = [{"id": f"{item['id']}:{r['step']}", "example": item["id"], "method": method, "step": r["step"],
                "loss": r["loss"], "flatness": r["measure"], "kappa": r["kappa"], "confidence": r["confidence"],
                "flipped": r["flipped"], "flip_step": r["flip_step"]}
               for r in valley(self.model, self.tokenizer, item["segments"], self.attack, layer=name)]
        tick(1)
        return out

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        m = llm_valley_metrics(records, self.config["method"])
        m.update(layer=self.config["layer"], model=self.config["model"])
        return m


def run_llm_valley_job(
    model_dir, behaviors: str, out, *, method: str = "gcg", steps: int = 20, limit: int | None = None,
    layer: str | None = None, search_width: int = 64, eps: float | None = 0.05, step_size: float = 1e-4,
    seed: int = 0, device="cpu", argv: list[str] | None = None, progress: bool = True,
) -> dict:
    """Validate, load the chat model and behaviours, and run the job into ``out``; returns the metrics."""
    if method not in ("gcg", "embedding"):
        raise ConfigError(f"--method {method!r}: use gcg or embedding")
    if steps < 1:
        raise ConfigError(f"--steps {steps}: must be at least 1")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be at least 1")
    check_writable(out)
    if method == "gcg":
        attack = GCGConfig(steps=steps, search_width=search_width, early_stop=False, seed=seed)
        init = attack.optim_str_init
    else:
        attack = EmbeddingAttackConfig(steps=steps, eps=eps, step_size=step_size, early_stop=False)
        init = attack.init_str
    behaviours = [b for b in load_behaviors(behaviors) if str(getattr(b, "target", "") or "").strip()]
    if not behaviours:
        raise ConfigError(f"--behaviors {behaviors}: no behaviour with a target string; use e.g. "
                          "builtin:gym-harmful-test")
    behaviours = behaviours[:limit] if limit is not None else behaviours
    device = torch.device(device)
    model, tok = load_chat_model(model_dir, device=device)
    model.eval()
    name = layer or output_head_name(model)
    formatter = ChatFormatter(tok)
    items = [{"id": str(b.id), "segments": formatter.segments(b.request, init, b.target)} for b in behaviours]
    segments_flatness(model, items[0]["segments"], layer=name)  # validates the layer before the run directory
    config = {"model": str(model_dir), "behaviors": behaviors, "method": method, "steps": steps, "limit": limit,
              "layer": name, "search_width": search_width, "eps": eps, "step_size": step_size}
    job = LLMValleyJob(config, model, tok, attack, items, seed=seed, device=str(device))
    return run_job(job, Path(out), argv=argv, progress=progress).metrics
