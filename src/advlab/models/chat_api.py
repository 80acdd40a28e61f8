"""The chat interface every helper model speaks (PAIR's attacker, target and judge, AutoDAN's rephraser).

``backend.chat(messages, max_new_tokens, temperature, seed) -> str``; ``temperature == 0`` is greedy;
``chat_batch`` answers several conversations (:func:`chat_many` falls back to a loop without it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from advlab.errors import AdvlabError, ConfigError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


class BackendError(AdvlabError):
    """A chat backend that cannot answer (unreachable endpoint, rejected request, bad reply)."""


@runtime_checkable
class ChatBackend(Protocol):
    """Anything that answers a chat conversation with text."""

    def chat(
        self,
        messages: list[Message],
        max_new_tokens: int = 150,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> str: ...


def validate_messages(messages: Any) -> list[Message]:
    """Check an OpenAI-style message list: non-empty; each has a role (system, user, assistant) and text."""
    if not isinstance(messages, list) or not messages:
        raise ConfigError("messages must be a non-empty list of {'role', 'content'} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ConfigError(
                f"messages[{i}] must be a dict with role in {ROLES} and string content; got {str(m)[:80]!r}"
            )
        out.append({"role": m["role"], "content": m["content"]})
    return out


def check_generation_args(max_new_tokens: int, temperature: float) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be a positive integer; got {max_new_tokens!r}")
    if not (temperature >= 0.0):
        raise ConfigError(f"temperature must be >= 0 (0 = greedy); got {temperature!r}")


def chat_many(
    backend: ChatBackend,
    conversations: list[list[Message]],
    max_new_tokens: int = 150,
    temperature: float = 0.0,
    seed: int | None = None,
) -> list[str]:
    """Answer several conversations: one batched call when the backend has ``chat_batch``, else a loop.

    In the loop, conversation ``i`` is sampled with seed ``seed + i`` (so it stays reproducible).
    """
    if not conversations:
        return []
    batch = getattr(backend, "chat_batch", None)
    if callable(batch):
        return list(batch(conversations, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed))
    return [
        backend.chat(
            c, max_new_tokens=max_new_tokens, temperature=temperature, seed=None if seed is None else seed + i
        )
        for i, c in enumerate(conversations)
    ]


@dataclass
class Completion:
    """One generated answer with its token accounting (used by the local server for ``usage``)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end-of-turn token) or "length" (max_new_tokens reached)


def derive_seed(*parts: int) -> int:
    """A stable 31-bit seed from integers (for per-stream / per-iteration sampling seeds)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
