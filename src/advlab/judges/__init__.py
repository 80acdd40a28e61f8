"""Judges: refusal phrases, a compliance heuristic, a HarmBench-style classifier, an LLM rating judge (PAIR).

``get_judge(name, **kw)`` builds one by name. The registry is open: ``register_judge(name, factory)``
adds a judge, and modules listed in ``_LAZY`` register themselves on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from advlab.errors import ConfigError
from advlab.judges.base import Judge, Verdict

JUDGES: dict[str, Callable[..., Any]] = {}
# name -> "module:attribute" of a factory (class or function), imported when first asked for
_LAZY: dict[str, str] = {
    "refusal": "advlab.judges.refusal:RefusalJudge",
    "compliance": "advlab.judges.compliance:ComplianceJudge",
    "harmbench": "advlab.judges.harmbench:harmbench_judge",
    "rating": "advlab.judges.rating:RatingJudge",
}


def register_judge(name: str, factory: Callable[..., Any]) -> None:
    """Make ``get_judge(name, **kw)`` return ``factory(**kw)``."""
    JUDGES[name] = factory


def judge_names() -> list[str]:
    return sorted(set(JUDGES) | set(_LAZY))


def get_judge(name: str, **kw: Any) -> Any:
    """A judge by name: ``refusal`` (phrase lists), ``compliance`` (not a refusal, on topic, not degenerate;
    a heuristic for the safety gym, see :mod:`advlab.judges.compliance`), ``harmbench`` (``model=DIR`` or
    ``model=, tokenizer=``), ``rating`` (PAIR's 1-10 judge, see :mod:`advlab.judges.rating`)."""
    if name not in JUDGES and name in _LAZY:
        module, attr = _LAZY[name].split(":")
        try:
            JUDGES[name] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"--judge {name}: not available in this install ({exc})") from exc
    if name not in JUDGES:
        raise ConfigError(f"--judge {name}: unknown judge; use one of {', '.join(judge_names())}")
    try:
        return JUDGES[name](**kw)
    except TypeError as exc:
        raise ConfigError(f"--judge {name}: bad options ({exc})") from exc


def make_judges(names: Sequence[str], judge_model: str | None = None) -> list[Any]:
    """Judge objects for ``--judge`` names, in order (``harmbench`` gets ``model=judge_model``); every name is
    checked before any judge model loads."""
    for name in names:
        if name not in JUDGES and name not in _LAZY:
            raise ConfigError(f"--judge {name}: unknown judge; use one of {', '.join(judge_names())}")
    return [get_judge(n, model=judge_model) if n == "harmbench" else get_judge(n) for n in names]


def verdicts(judges: Sequence[Any], request: str, completion: str) -> dict[str, dict[str, Any]]:
    """Every judge's verdict on a completion of ``request`` (name -> ``Verdict.to_dict()``). A judge sees the
    request and what the model generated, never an attack's optimisation target."""
    return {j.name: j.judge(request, completion).to_dict() for j in judges}


__all__ = ["JUDGES", "Judge", "Verdict", "get_judge", "judge_names", "make_judges", "register_judge", "verdicts"]
