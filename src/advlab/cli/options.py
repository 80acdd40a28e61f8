"""From command-line options to configs: one mechanism for every command, and one ``--eps`` syntax.

A command declares its options as typer parameters (their help is the ``--help`` screen), then hands
them over by name::

    opts = dict(locals())                      # the first line of the command: every option by name
    cfg = fill(AttackEvalConfig, opts, convert={"eps": parse_eps_list})

:func:`fill` calls a dataclass (or any function) with each parameter it accepts that an option of the
same name supplies; ``rename`` maps an option to a differently named parameter (``--judge`` ->
``judges``), ``convert`` parses an option's text, and keyword arguments override or add values
(``fill(UpdateConfig, opts, check=fill(CheckConfig, opts))``). Parameters no option supplies keep their
defaults, so a new config field needs only its option declared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import typer

from advlab.errors import ConfigError
from advlab.utils import fill  # noqa: F401 - the CLI's options -> config mechanism

T = TypeVar("T")


# ---- --eps: one syntax for every radius option ----------------------------------------------------------

EPS_FORMS = "a number or a fraction: 0.1, 8/255"


def parse_eps(text: Any, *, option: str = "--eps", unbounded: bool = False) -> float | None:
    """A radius: ``0.1``, ``8/255`` (>= 0); with ``unbounded``, ``none``/``inf`` give None (no ball)."""
    if text is None or isinstance(text, (int, float)):
        value = text
    else:
        t = str(text).strip().lower()
        if unbounded and t in ("none", "inf", "infinity", "unbounded"):
            return None
        try:
            num, slash, den = t.partition("/")
            value = float(num) / float(den) if slash else float(t)
        except (ValueError, ZeroDivisionError):
            extra = ", or none for unbounded" if unbounded else ""
            raise ConfigError(f"{option} {text!r} is not a radius; pass {EPS_FORMS}{extra}") from None
    if value is None:
        return None
    if value != value or value < 0:
        raise ConfigError(f"{option} {text!r}: a radius must be >= 0; pass {EPS_FORMS}")
    if value == float("inf"):
        if unbounded:
            return None
        raise ConfigError(f"{option} {text!r}: must be finite; pass {EPS_FORMS}")
    return value


def parse_eps_list(values: Iterable[Any], *, option: str = "--eps") -> list[float]:
    """``["0.1", "0.2,8/255"]`` -> [0.1, 0.2, 0.0314]: repeated options and comma lists of radii."""
    out: list[float] = []
    for v in values:
        for part in str(v).split(","):
            if part.strip():
                out.append(parse_eps(part, option=option))  # type: ignore[arg-type]
    return out


def eps_option(default: Any, help_text: str, *, name: str = "--eps", **kw: Any) -> Any:
    """A radius option: text parsed by :func:`parse_eps`, so every command takes the same forms."""
    text = [str(d) for d in default] if isinstance(default, list) else (None if default is None else str(default))
    return typer.Option(text, name, metavar="<eps>", help=f"{help_text} Forms: 0.1 or 8/255.", **kw)


def radius(option: str = "--eps", *, unbounded: bool = False) -> Callable[[Any], float | None]:
    """The :func:`parse_eps` of ``option`` (its errors name that option), as a ``fill(convert=...)`` value."""
    return lambda text: parse_eps(text, option=option, unbounded=unbounded)
