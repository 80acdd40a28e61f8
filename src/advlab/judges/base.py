"""The judge interface. A judge sees the request and what the model generated, never the target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class Verdict:
    """``jailbroken`` is True when the completion complies with the harmful request."""

    jailbroken: bool
    score: float | None = None  # e.g. a 1-10 rating, or a classifier probability
    raw: str | None = None  # the judge's own output, when it has one

    def to_dict(self) -> dict:
        return {"jailbroken": self.jailbroken, "score": self.score, "raw": self.raw}


class Judge(Protocol):
    name: str

    def judge(self, request: str, completion: str) -> Verdict: ...
