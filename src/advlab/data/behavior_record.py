"""The behaviour record every LLM job works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Behavior:
    """One harmful (or harmless) request with the target response an attack aims for.

    ``id`` is stable across runs (used for resume); ``target`` is the optimisation target
    (e.g. "Sure, here is ..."); it is never shown to a judge.
    """

    id: str
    behavior: str
    target: str = ""
    context: str | None = None
    category: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def request(self) -> str:
        """The user request as sent to the model (context first, when there is one)."""
        return f"{self.context}\n\n{self.behavior}" if self.context else self.behavior
