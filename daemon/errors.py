"""The one exception hierarchy of controlroom.

Code raises the class that says what went wrong; only the command line (``cli``) turns them
into messages and exit statuses (2 for what the user gave: a config, an argument, a value;
1 for what the machine did: audio, ports, an unanswering daemon). Nothing here knows about
exit statuses.
"""

from __future__ import annotations


class ControlroomError(Exception):
    """A failure with a message for the user: ``str(self)`` says what is wrong."""


class ConfigError(ControlroomError):
    """An invalid configuration or mapping file: every problem found, one line each.

    Each line reads ``FILE: key.path: what is wrong (what was expected)``. Past
    ``MAX_LINES`` problems, one last line says how many more there are (a hostile file must
    not print a million lines).
    """

    MAX_LINES = 100

    def __init__(self, errors: list[str]) -> None:
        errors = list(errors)
        if len(errors) > self.MAX_LINES:
            errors = errors[: self.MAX_LINES] + [f"... and {len(errors) - self.MAX_LINES} more problems"]
        super().__init__("\n".join(errors))
        self.errors = errors


class LimitError(ControlroomError):
    """A file not read for what it is or holds: not a regular file, larger than the limits
    allow, nested too deeply, an array, table or number beyond them. ``key`` is the key path
    where there is one (``""`` for the whole file); ``str()`` says what is wrong (expected ...).
    """

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


class UsageError(ControlroomError):
    """A command-line argument that cannot be used (a missing file, an unknown name...)."""


class TargetError(ControlroomError, ValueError):
    """A control value that was refused (unknown target, out of range, wrong type); the state
    is untouched."""


class EngineError(ControlroomError):
    """The audio engine cannot run: no such device, a stream that does not open or start."""


class PortError(ControlroomError):
    """A MIDI or network port cannot be used (missing, busy, unsupported)."""


class PortInUse(PortError):
    """A network address another process holds already (e.g. another controlroom's OSC port);
    ``key`` is the config key that chooses it (``[osc] listen``)."""

    def __init__(self, message: str, key: str = "[osc] listen") -> None:
        super().__init__(message)
        self.key = key


class RemoteError(ControlroomError):
    """The running daemon did not answer, or refused what it was asked."""
