"""advlab.utils.fill between two configs (the attack config from the command's config): same-named fields
copied, renames, overrides, defaults kept, checks run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pytest

from advlab.errors import ConfigError
from advlab.utils import fill


@dataclass
class Target:
    steps: int = 1
    width: int = 8
    init_str: str = "x"
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError("steps must be at least 1")


@dataclass
class Source:
    steps: int = 7
    width: int = 3
    init: str = "! !"
    unrelated: str = "ignored"


def test_same_names_renames_overrides_and_defaults():
    t = fill(Target, asdict(Source()), rename={"init": "init_str"}, width=99)
    assert t == Target(steps=7, width=99, init_str="! !", alpha=0.5)
    assert fill(Target, asdict(Source())) == Target(steps=7, width=3)  # no rename: init_str keeps its default


def test_the_target_validates():
    with pytest.raises(ConfigError, match="steps"):
        fill(Target, asdict(Source(steps=0)))
