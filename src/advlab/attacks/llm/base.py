"""What every LLM attack returns. Config dataclasses live beside each attack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class AttackBudget:
    """The cost an attack spent; reported with every attack success rate."""

    steps: int = 0
    forward_passes: int = 0  # sequences pushed through the model (a batch of B counts B)
    backward_passes: int = 0
    seconds: float = 0.0


@dataclass
class LLMAttackResult:
    """Result of attacking one behaviour (or one universal attack over several).

    ``adv_string`` is the optimised text (None for embedding attacks); ``adv_prompt_ids``
    the full prompt token ids the completion must be generated from (discrete attacks);
    ``adv_embeds`` the perturbed prompt embeddings (embedding attacks, [1, T, d]).
    """

    method: str
    best_loss: float
    loss_history: list[float]
    adv_string: str | None = None
    adv_prompt_ids: list[int] | None = None
    adv_embeds: Any = None
    budget: AttackBudget = field(default_factory=AttackBudget)
    early_stopped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
