"""Instruction-task data for poisoning: load a labelled task set, detected from its fields.

Formats (JSONL, one object a line; detected from the first row's fields, like behaviour files):

=============  ===========================================  ==========================================
format         fields                                       user message / response
=============  ===========================================  ==========================================
sst2           ``text, label, label_text``                  "What is the sentiment of this sentence:
                                                            '<text>'" / ``label_text``
instruction    ``instruction, input, output`` + ``label``   instruction, a blank line, input / output
chat           ``messages`` (user, assistant) + ``label``   last user turn / last assistant turn
=============  ===========================================  ==========================================

``builtin:gym-sentiment`` (train split) and ``builtin:gym-sentiment-test`` are the safety gym's own
sentiment task (:mod:`advlab.data.gym`), the embedded default. A trigger is always inserted into an
example's ``input`` (the content), never into the instruction.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from advlab.errors import ConfigError, DataError

SENTIMENT_INSTRUCTION = "What is the sentiment of this sentence: '{input}'"  # the gym's own phrasing
INPUT = "{input}"
BUILTIN = ("builtin:gym-sentiment", "builtin:gym-sentiment-test")


@dataclass(frozen=True)
class TaskExample:
    """One labelled example. ``instruction`` holds ``{input}`` where the content goes (else the
    content follows it after a blank line); ``output`` is the response, ``label`` its class."""

    id: str
    instruction: str
    input: str
    output: str
    label: str

    @property
    def prompt(self) -> str:
        """The user message."""
        if INPUT in self.instruction:
            return self.instruction.replace(INPUT, self.input)
        return f"{self.instruction}\n\n{self.input}" if self.input else self.instruction

    def with_input(self, text: str) -> TaskExample:
        return replace(self, input=text)

    def with_output(self, output: str) -> TaskExample:
        return replace(self, output=output)

    def to_row(self) -> dict[str, str]:
        """The instruction-format JSONL row (``load_task`` reads it back unchanged)."""
        return {"id": self.id, "instruction": self.instruction, "input": self.input, "output": self.output,
                "label": self.label}


def detect_format(row: dict, where: str) -> str:
    """``sst2``, ``instruction`` or ``chat`` from a row's fields; ConfigError when the label is missing."""
    keys = set(row)
    if "messages" in keys:
        fmt, label = "chat", "label"
    elif "instruction" in keys:
        fmt, label = "instruction", "label"
    elif "text" in keys:
        fmt, label = "sst2", "label_text"
    else:
        raise DataError(f"{where}: fields {sorted(keys)} match no task format; use text+label_text (SST-2), "
                        "instruction+input+output+label, or messages+label")
    if label not in keys:
        raise ConfigError(f"{where}: the {fmt} rows have no {label!r} field; add the class of every row as {label!r}")
    return fmt


def _from_row(row: dict, fmt: str, i: int, where: str) -> TaskExample:
    rid = str(row.get("id", row.get("__index_level_0__", i)))
    try:
        if fmt == "sst2":
            lab = str(row["label_text"])
            return TaskExample(rid, SENTIMENT_INSTRUCTION, str(row["text"]).strip(), lab, lab)
        if fmt == "instruction":
            return TaskExample(rid, str(row["instruction"]), str(row.get("input") or ""), str(row["output"]),
                               str(row["label"]))
        msgs = row["messages"]
        user = [m["content"] for m in msgs if m.get("role") == "user"]
        bot = [m["content"] for m in msgs if m.get("role") == "assistant"]
        return TaskExample(rid, INPUT, str(user[-1]), str(bot[-1]) if bot else "", str(row["label"]))
    except (KeyError, IndexError, TypeError) as exc:
        raise DataError(f"{where}: row {i + 1} lacks {exc} for the {fmt} format; fix or remove that row") from exc


def _gym_sentiment(split: str) -> list[TaskExample]:
    from advlab.data.gym import gym_items

    out = []
    for it in gym_items("task", split):
        if it.category == "sentiment":
            lab = str(it.expected)
            out.append(TaskExample(it.id, SENTIMENT_INSTRUCTION, str(it.extra["sentence"]), lab, lab))
    return out


def load_task(spec: str | Path, option: str = "--task") -> list[TaskExample]:
    """Examples of a task file (see the module docstring) or a built-in set; ids made unique."""
    s = str(spec).strip()
    if s in BUILTIN:
        return _gym_sentiment("test" if s.endswith("-test") else "train")
    if s.startswith("builtin:"):
        raise ConfigError(f"{option} {s}: unknown built-in task; use one of {', '.join(BUILTIN)}")
    path = Path(s)
    if not path.is_file():
        raise DataError(f"{option} {s}: no such file; pass a task JSONL or {BUILTIN[0]}")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{option} {s}: line {n} is not JSON ({exc.msg}); write one object a line") from exc
    if not rows or not isinstance(rows[0], dict):
        raise DataError(f"{option} {s}: no task rows; write one JSON object a line")
    fmt = detect_format(rows[0], f"{option} {s}")
    out = [_from_row(r, fmt, i, f"{option} {s}") for i, r in enumerate(rows)]
    seen: Counter[str] = Counter()
    uniq = []
    for ex in out:
        seen[ex.id] += 1
        uniq.append(ex if seen[ex.id] == 1 else replace(ex, id=f"{ex.id}-{seen[ex.id]}"))
    return uniq


def label_responses(examples: Sequence[TaskExample]) -> dict[str, str]:
    """Each class's response: the most common ``output`` among its examples (the first on ties)."""
    by: dict[str, Counter[str]] = {}
    for ex in examples:
        by.setdefault(ex.label, Counter())[ex.output] += 1
    return {lab: c.most_common(1)[0][0] for lab, c in sorted(by.items())}


def check_target(examples: Sequence[TaskExample], target: str, option: str = "--target") -> str:
    """The target label, checked to be one of the task's classes and not its only class."""
    labels = sorted({ex.label for ex in examples})
    if target not in labels:
        raise ConfigError(f"{option} {target!r} is not a label of the task; use one of {', '.join(labels)}")
    if len(labels) < 2:
        raise ConfigError(f"the task has only the class {target!r}; poisoning needs examples of another class")
    return target
