"""The LLM attacks by name, and the one call that runs any of them.

``run_llm_attack("gcg", model, tokenizer, prompts, GCGConfig(...), on_step=...)`` runs the attack with
gradients enabled and sets ``result.budget.seconds`` to its wall-clock time (attacks do not time
themselves). ``register_llm_attack`` adds one (e.g. from a plugin).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from advlab.attacks.llm.autodan import AutoDANConfig, autodan_attack
from advlab.attacks.llm.base import AttackHelpers, AttackPrompt, LLMAttackResult, OnStep
from advlab.attacks.llm.embedding import EmbeddingAttackConfig, embedding_attack
from advlab.attacks.llm.gcg import GCGConfig, gcg_attack
from advlab.attacks.llm.pair import PAIRConfig, pair_attack
from advlab.errors import ConfigError


@dataclass(frozen=True)
class LLMAttack:
    """One attack: its config dataclass, its protocol function, and the ``result.extra`` keys worth
    keeping in a run's records (small and JSON-able)."""

    name: str
    config_type: type
    run: Callable[..., LLMAttackResult]
    record_keys: tuple[str, ...] = ()


ATTACKS: dict[str, LLMAttack] = {}


def register_llm_attack(attack: LLMAttack) -> None:
    """Make ``get_llm_attack(attack.name)`` return ``attack``."""
    ATTACKS[attack.name] = attack


for _attack in (
    LLMAttack("embedding", EmbeddingAttackConfig, embedding_attack, ("success_step", "radius", "max_delta_norm")),
    LLMAttack("gcg", GCGConfig, gcg_attack, ("init_loss", "filtered_out", "adv_ids")),
    LLMAttack("autodan", AutoDANConfig, autodan_attack,
              ("stop_reason", "mutation", "mutations", "rephrase_fallbacks", "template")),
    LLMAttack("pair", PAIRConfig, pair_attack,
              ("best_rating", "best_iteration", "best_stream", "ratings", "queries", "unparsable_attacker_replies",
               "unreadable_ratings", "completion")),
):
    register_llm_attack(_attack)


def llm_attack_names() -> list[str]:
    return list(ATTACKS)


def get_llm_attack(name: str) -> LLMAttack:
    if name not in ATTACKS:
        raise ConfigError(f"--method {name}: unknown LLM attack; use one of {', '.join(ATTACKS)}")
    return ATTACKS[name]


def run_llm_attack(
    name: str,
    model: Any,
    tokenizer: Any,
    prompts: Sequence[AttackPrompt],
    config: Any,
    *,
    on_step: OnStep | None = None,
    helpers: AttackHelpers | None = None,
) -> LLMAttackResult:
    """Run attack ``name`` on ``prompts`` (see :mod:`advlab.attacks.llm.base`); the budget gets the seconds."""
    attack = get_llm_attack(name)
    if not isinstance(config, attack.config_type):
        raise ConfigError(f"{name} needs a {attack.config_type.__name__}; got {type(config).__name__}")
    start = time.perf_counter()
    with torch.enable_grad():
        result = attack.run(model, tokenizer, list(prompts), config, on_step=on_step, helpers=helpers)
    result.budget.seconds = time.perf_counter() - start
    return result


def record_details(name: str, result: LLMAttackResult) -> dict[str, Any]:
    """The ``result.extra`` entries of attack ``name`` that a record keeps."""
    return {k: result.extra[k] for k in get_llm_attack(name).record_keys if k in result.extra}
