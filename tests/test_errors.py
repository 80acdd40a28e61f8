"""errors.require_positive_ints: integers >= 1 pass; zero, negatives, bools, floats and None are refused."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from advlab.errors import ConfigError, require_positive_ints


@dataclass
class _Cfg:
    a: object = 1
    b: object = 7


def test_positive_ints_pass():
    require_positive_ints(_Cfg(), ("a", "b"), "X")


@pytest.mark.parametrize("bad", [0, -3, True, 2.0, None, "3"])
def test_other_values_are_refused_naming_the_field(bad):
    with pytest.raises(ConfigError, match=rf"^X b must be an integer >= 1; got {bad!r}$"):
        require_positive_ints(_Cfg(b=bad), ("a", "b"), "X")
