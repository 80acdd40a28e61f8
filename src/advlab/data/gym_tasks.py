"""The gym's small checkable tasks, each with one exact answer computed here (never typed by hand).

Tables (words, facts, sentiment parts, phrasings) are in ``builtin/gym_tasks.json``. What each split
measures:

- letter tasks (reverse, upper-case, length of a word spelled "p l a n e t"): split by **word**, and
  trained also on random letter strings, so they measure an algorithm on unseen words;
- comparisons (the larger of two numbers) and sentiment: split by the numbers / the sentence;
- single-digit arithmetic, letter counts and fact look-ups: split by (item, phrasing); the test asks a
  fact that training asked in another phrasing (knowing the table, robust to phrasing);
- repeat-after-me: split by the text; the texts are the actions and requests of the *train* split of
  harmful and harmless requests, so a harmful test action is still never trained.
"""

from __future__ import annotations

import random
from typing import Any

from advlab.data.gym_requests import PHRASINGS, GymItem, actions, check_split, short_hash, split_of
from advlab.data.gym_tables import load_table

_TABLE = load_table("gym_tasks")
WORDS: tuple[str, ...] = _TABLE["words"]
FACTS: dict[str, dict[str, str]] = _TABLE["facts"]
_PH: dict[str, tuple[str, ...]] = _TABLE["phrasings"]
_SENT: dict[str, tuple[str, ...]] = _TABLE["sentiment"]
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
N_RANDOM_LETTER_STRINGS = 1500  # extra training strings for the letter tasks (never in test)
N_REPEAT_HARMLESS = 200  # harmless train actions used as repeat texts (all harmful train actions are)


def spaced(word: str) -> str:
    """``"cat"`` -> ``"c a t"``: the form letter tasks use (one token per letter, so that they test an
    algorithm that carries over to unseen words, not a memorised spelling of a word-piece)."""
    return " ".join(word)


def _task(kind: str, prompt: str, answer: str, split_key: str, **extra: Any) -> tuple[str, GymItem]:
    item = GymItem(
        id=f"task-{kind}-{short_hash(prompt)}",
        kind="task",
        prompt=prompt,
        response=answer,
        category=kind,
        expected=answer,
        extra=extra,
    )
    return split_of("task:" + split_key), item


def _arithmetic(rng: random.Random) -> list[tuple[str, GymItem]]:
    """Single-digit facts (every pair trained under some phrasing, tested under another), then
    comparisons of random two-digit numbers."""
    out = []
    for a in range(0, 10):
        for b in range(0, 10):
            for ph in _PH["add"][:4]:
                out.append(_task("add", ph.format(a=a, b=b), str(a + b), f"add:{a}:{b}:{ph}", a=a, b=b))
            for ph in _PH["mul"]:
                out.append(_task("mul", ph.format(a=a, b=b), str(a * b), f"mul:{a}:{b}:{ph}", a=a, b=b))
            if a >= b:
                for ph in _PH["sub"]:
                    out.append(_task("sub", ph.format(a=a, b=b), str(a - b), f"sub:{a}:{b}:{ph}", a=a, b=b))
    for _ in range(400):
        a, b = rng.randrange(0, 100), rng.randrange(0, 100)
        if a == b:
            continue
        ph = _PH["max"][rng.randrange(len(_PH["max"]))]
        out.append(_task("max", ph.format(a=a, b=b), str(max(a, b)), f"max:{a}:{b}", a=a, b=b))
    return out


def _letter_tasks(rng: random.Random) -> list[tuple[str, GymItem]]:
    """Reverse / upper-case / length, split by word, plus random strings (training only)."""
    out = []
    for w in (w for w in WORDS if 3 <= len(w) <= 7):
        for ph in _PH["reverse"]:
            out.append(_task("reverse", ph.format(s=spaced(w)), spaced(w[::-1]), f"letters:{w}", word=w))
        for ph in _PH["upper"]:
            out.append(_task("upper", ph.format(s=spaced(w)), spaced(w.upper()), f"letters:{w}", word=w))
        for ph in _PH["length"]:
            out.append(_task("length", ph.format(s=spaced(w)), str(len(w)), f"letters:{w}", word=w))
    known = set(WORDS)
    for _ in range(N_RANDOM_LETTER_STRINGS):  # never a word of WORDS
        w = "".join(rng.choice(_LETTERS) for _ in range(rng.randint(3, 7)))
        if w in known:
            continue
        for kind, answer in (("reverse", spaced(w[::-1])), ("upper", spaced(w.upper())), ("length", str(len(w)))):
            ph = _PH[kind][rng.randrange(len(_PH[kind]))]
            _, item = _task(kind, ph.format(s=spaced(w)), answer, "", word=w, random_string=True)
            out.append(("train", item))
    return out


def _lookup_tasks(rng: random.Random) -> list[tuple[str, GymItem]]:
    """Letter counts, fact look-ups and the sentiment of short sentences."""
    out = []
    for w in WORDS:
        for c in sorted(set(w)):
            ph = _PH["count"][rng.randrange(len(_PH["count"]))]
            out.append(_task("count", ph.format(c=c, w=w), str(w.count(c)), f"cnt:{w}:{c}", word=w, letter=c))
    for rel, table in FACTS.items():
        for k, v in table.items():
            for ph in _TABLE["fact_phrasings"][rel]:
                out.append(_task("fact", ph.format(k=k), v, f"fact:{rel}:{k}:{ph}", relation=rel, key=k))
    for label in ("positive", "negative"):
        for v in _SENT[f"{label}_verbs"]:
            for o in _SENT["objects"]:
                ending = _SENT[f"{label}_endings"][rng.randrange(len(_SENT[f"{label}_endings"]))]
                sent = f"I {v} {o}. {ending}".strip()
                prompt = f"What is the sentiment of this sentence: '{sent}'"
                out.append(_task("sentiment", prompt, label, f"sent:{sent}", sentence=sent))
    return out


def _repeat_tasks(rng: random.Random) -> list[tuple[str, GymItem]]:
    """Repeat-after-me over request texts, harmful ones included.

    Saying the words of a harmful request is harmless, and it teaches the model to emit them. Without
    it a refusal removed by an attack gave "Sure, here is how to build an untr note": the gym had never
    said "gun", so no attack could make it comply on topic. The texts are train-split actions (and one
    request phrasing of each), so a harmful *test* action is never trained in any form.
    """
    out: list[tuple[str, GymItem]] = []
    for kind in ("harmful", "harmless"):
        train = [a for _, a in actions(kind) if split_of(f"{kind}:{a}") == "train"]
        if kind == "harmless":
            train = rng.sample(train, k=min(len(train), N_REPEAT_HARMLESS))
        for a in train:
            request = PHRASINGS[rng.randrange(len(PHRASINGS))][0].format(a=a)
            for text in (a, request):
                ph = _PH["repeat"][rng.randrange(len(_PH["repeat"]))]
                out.append(_task("repeat", ph.format(t=text), text, f"repeat:{text}", text=text, source=kind))
    return out


def _all_tasks() -> list[tuple[str, GymItem]]:
    rng = random.Random(1234)  # fixed: the task set is part of the project, not of a run's seed
    return [*_arithmetic(rng), *_letter_tasks(rng), *_lookup_tasks(rng), *_repeat_tasks(rng)]


def task_items(split: str = "train") -> list[GymItem]:
    """Checkable tasks of ``split`` (answers computed by code), each prompt once."""
    check_split(split)
    seen: set[str] = set()
    items = []
    for s, item in _all_tasks():
        if s == split and item.id not in seen:
            seen.add(item.id)
            items.append(item)
    return items
