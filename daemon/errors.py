"""Errors the command line reports as a message and an exit status, never as a traceback."""

from __future__ import annotations


class CommandError(Exception):
    """A user-facing failure: ``str(self)`` is printed, the process exits with ``status``."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class ConfigError(CommandError):
    """An invalid configuration or mapping: every problem found, one line each.

    Each line reads ``FILE: key.path: what is wrong (what was expected)``.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors), status=2)
        self.errors = list(errors)
