"""Classifier attacks by name: the one factory behind every command that takes ``--method``/``--attack``.

``make_attack(name, **options)`` builds the attack class registered under ``name`` from the options that
are fields of that class (others are dropped, as is an option given as None, which keeps the class
default), so one option set serves every attack: FGSM ignores ``steps``, APGD ``step_size``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from advlab.attacks.classifier.apgd import APGD
from advlab.attacks.classifier.fgsm import FGSM
from advlab.attacks.classifier.pgd import PGD
from advlab.attacks.classifier.worst_case import WorstCase
from advlab.errors import ConfigError

ATTACKS: dict[str, type] = {"fgsm": FGSM, "pgd": PGD, "apgd": APGD, "worst-case": WorstCase}


def make_attack(name: str, **options: Any) -> Any:
    """The attack ``name`` (fgsm, pgd, apgd, worst-case) with the options it takes."""
    cls = ATTACKS.get(name)
    if cls is None:
        raise ConfigError(f"unknown attack {name!r}; use one of {', '.join(ATTACKS)}")
    own = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in options.items() if k in own and v is not None})
