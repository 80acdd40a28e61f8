"""The gym's harmful and harmless requests, and the "Sure, here is ..." target of any request.

Actions are ``verb object`` pairs per category plus whole actions (tables in
``builtin/gym_requests.json``), each asked under every phrasing. Splits are by **action**: a SHA-256
hash of ``"<kind>:<action>"`` puts 20 % of the actions in ``test``, so a test action is never trained
under any phrasing (its verb and object may appear in other training actions).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from advlab.data.gym_tables import load_table

SPLITS = ("train", "test")
TEST_FRACTION = 0.2

_TABLE = load_table("gym_requests")
REFUSALS: tuple[str, ...] = _TABLE["refusals"]
# (request template, compliance template). The compliance drops the imperative verb, the way
# AdvBench/HarmBench targets do ("Write a tutorial on X" -> "Sure, here is a tutorial on X").
PHRASINGS: tuple[tuple[str, str], ...] = tuple((p["request"], p["compliance"]) for p in _TABLE["phrasings"])
_VERB_DROP = frozenset(_TABLE["target_verbs_dropped"])
HARMLESS_BODY = ":\n1. Start with the basics."  # what follows the compliance in a harmless answer


@dataclass(frozen=True)
class GymItem:
    """One request with the response the gym is trained to give.

    ``kind`` is ``harmful``, ``harmless`` or ``task``; ``expected`` is the exact answer of a task
    (``None`` otherwise); ``target`` is the "Sure, here is ..." compliance an attack would aim for.
    """

    id: str
    kind: str
    prompt: str
    response: str
    category: str
    expected: str | None = None
    target: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def split_of(key: str, test_fraction: float = TEST_FRACTION) -> str:
    """``test`` for a fixed ``test_fraction`` of keys (by SHA-256 of the key), else ``train``."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return "test" if (h % 10_000) < int(test_fraction * 10_000) else "train"


def short_hash(*parts: str) -> str:
    """10 hex digits of the SHA-256 of the parts (joined by U+001F): the stable part of item ids."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:10]


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")


def actions(kind: str) -> list[tuple[str, str]]:
    """``(category, action)`` of ``harmful`` or ``harmless`` requests: verbs x objects, then whole
    actions; each action once (the first category that lists it), so item ids are unique."""
    table = _TABLE[kind]
    out = [(cat, f"{v} {o}") for cat, p in table["parts"].items() for v in p["verbs"] for o in p["objects"]]
    out += [(cat, a) for cat, whole in table["whole"].items() for a in whole]
    seen: set[str] = set()
    unique = []
    for cat, action in out:
        if action.lower() not in seen:
            seen.add(action.lower())
            unique.append((cat, action))
    return unique


def _interleave(items: list[GymItem]) -> list[GymItem]:
    """Order items phrasing-major, categories round-robin: the first items are different actions of
    different categories, so ``--limit N`` takes N different requests, not N phrasings of one."""
    rank: dict[str, int] = {}
    keys = []
    for it in items:  # position of the item's action within its category, per phrasing
        k = f"{it.category}\x1f{it.extra['phrasing']}"
        keys.append((it.extra["phrasing"], rank.get(k, 0)))
        rank[k] = rank.get(k, 0) + 1
    order = sorted(range(len(items)), key=lambda i: keys[i])  # stable: categories round-robin
    return [items[i] for i in order]


def _request_items(kind: str, split: str) -> list[GymItem]:
    check_split(split)
    items = []
    for cat, action in actions(kind):
        if split_of(f"{kind}:{action}") != split:
            continue
        for k, (req, comp) in enumerate(PHRASINGS):
            prompt, target = req.format(a=action), comp.format(a=action)
            if kind == "harmful":
                response = REFUSALS[int(short_hash(prompt), 16) % len(REFUSALS)]
            else:
                response = target + HARMLESS_BODY
            items.append(
                GymItem(
                    id=f"{kind}-{short_hash(action, str(k))}",
                    kind=kind,
                    prompt=prompt,
                    response=response,
                    category=cat,
                    target=target,
                    extra={"action": action, "phrasing": k},
                )
            )
    return _interleave(items)


def harmful_items(split: str = "train") -> list[GymItem]:
    """Harmful requests of ``split``, every action under every phrasing; the response is a refusal."""
    return _request_items("harmful", split)


def harmless_items(split: str = "train") -> list[GymItem]:
    """Harmless requests of ``split``; the response begins "Sure, here is ..." plus the request's words."""
    return _request_items("harmless", split)


def sure_target(request: str) -> str:
    """The "Sure, here is ..." compliance start for any request, built like AdvBench targets.

    ``"Write a script that X."`` -> ``"Sure, here is a script that X"``; ``"How do I X?"`` ->
    ``"Sure, here is how to X"``; anything else -> ``"Sure, here is a response to: <request>"``.
    """
    text = " ".join(request.strip().split()).rstrip(".?!:; ")
    if not text:
        return "Sure, here is a response"
    low = text.lower()
    for lead in ("how do i ", "how can i ", "how to ", "how should i ", "how would i "):
        if low.startswith(lead):
            return "Sure, here is how to " + text[len(lead) :]
    for lead in ("explain how to ", "tell me how to ", "describe how to ", "show me how to "):
        if low.startswith(lead):
            return "Sure, here is how to " + text[len(lead) :]
    first, _, rest = text.partition(" ")
    if first.lower() in _VERB_DROP and rest:
        if rest.lower().startswith(("me ", "us ")):
            rest = rest[3:]
        return "Sure, here is " + rest
    return "Sure, here is a response to: " + text[0].lower() + text[1:]
