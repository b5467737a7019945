"""Logging to stderr, journald-friendly: no timestamps when journald adds its own.

Much of what is logged is caused by clients (a refused message, a lost surface), so the log
is bounded: each message (per logger and message template) is let through at most ``BURST``
times a ``WINDOW_S``, the next one let through says how many were held back, and a message
longer than ``MAX_MESSAGE_CHARS`` is cut.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import sys
import time
from collections.abc import Callable

BURST = 50
WINDOW_S = 60.0
MAX_MESSAGE_CHARS = 2000
#: Message templates remembered; beyond this the table starts afresh.
MAX_KEYS = 1000


def setup(level: int = logging.INFO) -> None:
    """Log at ``level`` to the process's own duplicate of stderr; a fatal signal there too."""
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    stream = _own_stderr()
    logging.basicConfig(level=level, format=fmt, stream=stream, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RateLimit())
    # A C library that aborts (PortAudio's JACK host asserts when the server dies under it)
    # takes the process with it, often while stderr is silenced for its probes: every
    # thread's Python stack in the log says where it was.
    with contextlib.suppress(AttributeError, OSError, ValueError):
        faulthandler.enable(file=stream, all_threads=True)


def _own_stderr():
    """The log's own handle on stderr: a duplicate of file descriptor 2, made now, which keeps
    pointing at the terminal or the journal while ``quiet_stderr`` (and sounddevice's import)
    send descriptor 2 to /dev/null around a C library's probes — process-wide, so another
    thread's log lines would be lost meanwhile. ``sys.stderr`` itself when it has no descriptor."""
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, errors="backslashreplace")
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
        return sys.stderr


class RateLimit(logging.Filter):
    """Lets a message through ``BURST`` times per ``WINDOW_S`` (s on ``clock``) and cuts it
    to ``MAX_MESSAGE_CHARS``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._windows: dict[tuple[str, str], tuple[float, int, int]] = {}  # start, let through, held

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:200])
        now = self._clock()
        if len(self._windows) >= MAX_KEYS and key not in self._windows:
            self._windows.clear()
        start, passed, held = self._windows.get(key, (now, 0, 0))
        if now - start >= WINDOW_S:
            start, passed = now, 0
        if passed >= BURST:
            self._windows[key] = (start, passed, held + 1)
            return False
        self._windows[key] = (start, passed + 1, 0)
        message = record.getMessage()
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[:MAX_MESSAGE_CHARS]}… ({len(message)} characters)"
        if held:
            message += f" ({held} more like this held back)"
        record.msg, record.args = message, None
        return True
