"""User-facing errors.

Every problem a user can fix (a wrong path, a bad option value, a malformed
file) is raised as an :class:`AdvlabError` with a one-line message that names
the problem and the fix. The CLI prints it on stderr and exits with code 2,
without a traceback.
"""

from __future__ import annotations


class AdvlabError(Exception):
    """A problem the user can fix; the message is one line: what is wrong, then how to fix it."""

    exit_code = 2


class ConfigError(AdvlabError):
    """An invalid option or configuration value."""


class DataError(AdvlabError):
    """A data file that is missing, malformed or empty."""


class ModelError(AdvlabError):
    """A model path or model file that cannot be used."""


class RunDirError(AdvlabError):
    """A run directory that cannot be used (locked, a file, config differs)."""


def require(condition: bool, message: str, kind: type[AdvlabError] = ConfigError) -> None:
    """Raise ``kind(message)`` unless ``condition`` holds."""
    if not condition:
        raise kind(message)


def require_positive_ints(config: object, names: tuple[str, ...], owner: str) -> None:
    """ConfigError unless each field ``names`` of ``config`` is an integer (not a bool) >= 1."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{owner} {name} must be an integer >= 1; got {value!r}")
