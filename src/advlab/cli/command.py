"""The click classes of every advlab command and group: what all commands share, in one place.

- ``--out`` is checked before the command runs (:func:`advlab.jobs.check_writable`): a directory that
  cannot be written fails in one line, exit 2, before any model is loaded.
- Flags show no ``<bool>`` type label in ``--help`` (they take no value); a single flag that is off by
  default says so (``[default: off]``).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand, TyperGroup


def _tidy_flags(params: list[Any]) -> list[Any]:
    for p in params:
        if getattr(p, "is_flag", False):
            if p.metavar is None:
                p.metavar = ""
            if not p.secondary_opts and not p.default and "--help" not in p.opts and p.help and (
                "[default: off]" not in p.help
            ):
                p.help = f"{p.help} [dim]\\[default: off][/dim]"
    return params


class AdvlabCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy_flags(super().get_params(ctx))

    def invoke(self, ctx: Any) -> Any:
        out = ctx.params.get("out")
        if out is not None:
            from advlab.jobs import check_writable

            check_writable(out)
        return super().invoke(ctx)


class AdvlabGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy_flags(super().get_params(ctx))
