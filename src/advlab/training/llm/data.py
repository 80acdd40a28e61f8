"""Training data for continuous adversarial training: adversarial triples, utility pairs, the overlap check.

- Adversarial examples (behaviour, harmful target, refusal): any ``--behaviors`` SPEC of
  :func:`advlab.data.load_behaviors`. A behaviour with several targets (the public
  ``adv_training_behaviors.csv`` + ``adv_training_targets.json``, 12 each) gives one example per target.
  The refusal is the gym's own trained refusal for gym sets, the ``safe_responses`` CSV's answer when the
  shared data layout has one for that behaviour, else the paper's fixed "Sorry, I can't do that.".
- Utility pairs (prompt, response): the gym's training tasks, harmless requests with their answers and
  harmful requests with their refusals (the retain pairs: without them CAT teaches the gym to comply with
  harmful requests phrased like its utility data), or a JSONL file of chat ``messages`` (first user turn and
  the assistant turn after it) or of ``instruction``/``response`` pairs (``output``, ``input`` accepted).
- ``check_disjoint``: no training request (adversarial or utility) may equal an evaluation behaviour up to
  case and punctuation (:func:`advlab.data.behavior_loaders.normalize_text`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from advlab.errors import ConfigError, DataError, require

REFUSAL = "Sorry, I can't do that."
DEFAULT_BEHAVIORS = "builtin:gym-harmful-train"
DEFAULT_EVAL_BEHAVIORS = "builtin:gym-harmful-test"
GYM_UTILITY = "builtin:gym"
GYM_SUFFIX = " ".join(["x"] * 20)  # the attack slot of train llm's default: attack llm's default init string


@dataclass(frozen=True)
class AdvExample:
    """``slot``: text after the request that the training attack perturbs instead of the request ("": the
    whole request is perturbed, as in CAT)."""

    id: str
    prompt: str
    target: str
    refusal: str
    slot: str = ""


@dataclass(frozen=True)
class ChatPair:
    """``weight``: relative sampling weight among the utility pairs (1 = uniform)."""

    prompt: str
    response: str
    weight: float = 1.0


def _safe_responses(spec: str) -> dict[str, str]:
    from advlab.data.behavior_files import _data_root
    from advlab.data.behavior_loaders import normalize_text

    root = _data_root(Path(spec)) if not spec.startswith("builtin:") else None
    path = root / "safe_responses" / "adv_training_behaviors_safe_responses.csv" if root else None
    if path is None or not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {normalize_text(r["Behavior"]): r["Safe_Response"] for r in csv.DictReader(fh) if r.get("Behavior")}


def adversarial_examples(
    spec: str = DEFAULT_BEHAVIORS, refusal: str | None = None
) -> tuple[list[Any], list[AdvExample]]:
    """``(behaviours, examples)``: every (behaviour, target) pair with its refusal."""
    from advlab.data.behavior_loaders import load_behaviors, normalize_text

    behaviors = load_behaviors(spec)
    safe = _safe_responses(spec)
    out = []
    for b in behaviors:
        targets = [str(t) for t in b.extra.get("targets") or [b.target]]
        own = b.extra.get("response") if b.extra.get("kind") == "harmful" else None
        ref = refusal or own or safe.get(normalize_text(b.behavior)) or REFUSAL
        for k, t in enumerate(targets):
            out.append(AdvExample(f"{b.id}#{k}", b.request, t, ref))
    require(bool(out), f"--behaviors {spec}: no behaviours with targets", DataError)
    return behaviors, out


def retain_examples(spec: str) -> list[AdvExample]:
    """Harmless requests for adversarial retain: the attack pushes them toward a refusal (the target) and
    training keeps their own answer (the "refusal" slot) under that perturbation. Needs answers (gym sets)."""
    from advlab.data.behavior_loaders import load_behaviors
    from advlab.data.gym import REFUSALS

    out = []
    for b in load_behaviors(spec):
        answer = b.extra.get("response")
        require(bool(answer), f"--retain {spec}: behaviour {b.id} has no answer; use a gym harmless set, e.g. "
                "builtin:gym-harmless-train", DataError)
        out.append(AdvExample(f"retain:{b.id}", b.request, REFUSALS[len(out) % len(REFUSALS)], str(answer)))
    return out


def with_suffix(examples: list[AdvExample], suffix: str) -> list[AdvExample]:
    """The examples with ``suffix`` as their attack slot (after the request and one space): the training
    attack perturbs only the slot, as ``attack llm``'s suffix attacks (embedding, GCG) do; "" = unchanged."""
    suffix = suffix.strip()
    return [replace(a, slot=suffix) for a in examples] if suffix else list(examples)


def gym_utility() -> list[ChatPair]:
    """The gym's training tasks, harmless answers and harmful → refusal pairs, weighted so that a draw
    follows the gym's own training mix (:class:`advlab.models.gym_config.GymConfig`: 60 % tasks, 24 %
    harmless, 16 % harmful; task categories by ``task_weights``, e.g. repeat-after-me 4× and a quarter of
    all tasks). Drawn uniformly instead, repeat is 3.5 % of the pairs and CAT's away term unlearns the
    gym's copying of harmful text (utility 88 % → 29 % on repeat, measured in docs/continuous_at.md)."""
    from collections import Counter

    from advlab.data.gym import gym_items
    from advlab.models.gym_config import GymConfig

    cfg = GymConfig()
    tasks, harmless, harmful = (gym_items(k, "train") for k in ("task", "harmless", "harmful"))
    n_cat = Counter(it.category for it in tasks)
    w_sum = sum(cfg.task_weights.get(c, 1.0) for c in n_cat)
    out = [ChatPair(it.prompt, it.response, cfg.mix_task * cfg.task_weights.get(it.category, 1.0) / w_sum
                    / n_cat[it.category]) for it in tasks]
    for items, mix in ((harmless, cfg.mix_harmless), (harmful, cfg.mix_harmful)):
        out += [ChatPair(it.prompt, it.response, mix / len(items)) for it in items]
    return out


def _pair_of(row: Any) -> ChatPair | None:
    if not isinstance(row, dict):
        return None
    msgs = row.get("messages")
    if isinstance(msgs, list):
        for i, m in enumerate(msgs[:-1]):
            nxt = msgs[i + 1]
            if isinstance(m, dict) and isinstance(nxt, dict) and m.get("role") == "user" \
                    and nxt.get("role") == "assistant" and str(m.get("content", "")).strip() \
                    and str(nxt.get("content", "")).strip():
                return ChatPair(str(m["content"]), str(nxt["content"]))
        return None
    ins = str(row.get("instruction") or row.get("prompt") or "").strip()
    extra = str(row.get("input") or "").strip()
    resp = str(row.get("response") or row.get("output") or row.get("completion") or "").strip()
    if ins and resp:
        return ChatPair(f"{ins}\n\n{extra}" if extra else ins, resp)
    return None


def utility_pairs(spec: str = GYM_UTILITY) -> list[ChatPair]:
    """Utility pairs from ``builtin:gym`` or a JSONL file (see the module docstring)."""
    if spec == GYM_UTILITY:
        return gym_utility()
    path = Path(spec)
    require(path.is_file(), f"--utility {spec}: no such file; pass a JSONL of chat messages or "
            f"instruction/response pairs, or {GYM_UTILITY}", DataError)
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        p = _pair_of(row)
        if p is not None:
            pairs.append(p)
    require(bool(pairs), f"--utility {spec}: no usable rows; each line needs 'messages' with a user and an "
            "assistant turn, or 'instruction' and 'response'", DataError)
    return pairs


def check_disjoint(train_prompts: list[str], eval_spec: str | None) -> dict[str, Any]:
    """Refuse training requests that equal an evaluation behaviour (normalised text); the manifest record."""
    from advlab.data.behavior_loaders import load_behaviors, normalize_text

    if not eval_spec:
        return {"eval_behaviors": None, "checked": False}
    evals = load_behaviors(eval_spec)
    keys = {normalize_text(b.behavior): b for b in evals} | {normalize_text(b.request): b for b in evals}
    hits = sorted({p for p in train_prompts if normalize_text(p) in keys})
    if hits:
        raise ConfigError(f"{len(hits)} training request(s) are also in --eval-behaviors {eval_spec} (e.g. "
                          f"{hits[0][:60]!r}); remove them from the training data or pass a disjoint held-out set")
    return {"eval_behaviors": eval_spec, "checked": True, "n_eval": len(evals),
            "n_train_requests": len(set(train_prompts)), "overlap": 0, "normalisation": "casefolded words"}
