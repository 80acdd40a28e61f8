"""The protocol every LLM attack follows, and what it returns.

An attack is a config dataclass and one function::

    result = attack(model, tokenizer, prompts, config, on_step=None, helpers=None)  # -> LLMAttackResult

``prompts`` is a list of :class:`AttackPrompt` (one behaviour each: its request, its target and the chat
formatter that turns them into :class:`~advlab.models.segments.PromptSegments`); one prompt for an
individual attack, several for a universal one. ``on_step(step, loss)`` is the one progress hook, called as
the attack advances (1-based steps; the embedding attack also reports step 0, the clean prompt).
``helpers`` carries what an attack needs besides the attacked model (helper chat backends, transfer
models). Attacks are looked up by name in :mod:`advlab.attacks.llm.registry`, which also measures the
wall-clock time: no attack times itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advlab.data.behavior_record import Behavior
from advlab.models.formatting import ChatFormatter
from advlab.models.segments import PromptSegments

OnStep = Callable[[int, float], None]


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


@dataclass
class AttackPrompt:
    """One behaviour as an attack sees it: request and target text, and the chat formatter."""

    behavior: Behavior
    formatter: ChatFormatter

    @property
    def request(self) -> str:
        return self.behavior.request

    @property
    def target(self) -> str:
        return self.behavior.target

    def segments(self, slot_text: str, slot: str | None = None) -> PromptSegments:
        """``before | slot | after | target`` ids with ``slot_text`` in the slot; ``slot`` (``suffix``,
        ``prefix``, ``request``) overrides the formatter's slot mode, keeping its system prompt."""
        fmt = self.formatter
        if slot is not None and slot != fmt.slot:
            fmt = ChatFormatter(fmt.tokenizer, system_prompt=fmt.system_prompt, slot=slot, separator=fmt.separator)
        return fmt.segments(self.request, slot_text, self.target)


@dataclass
class AttackHelpers:
    """What an attack needs besides the attacked model. ``None`` means the default: PAIR's attacker and
    rating judge are the attacked model itself, AutoDAN mutates by synonyms, GCG uses the attacked model only."""

    attacker: Any = None
    rating_judge: Any = None
    rephraser: Any = None
    transfer: list[Any] = field(default_factory=list)  # extra models sharing the attacked model's tokenizer
