"""Keeping C libraries' diagnostics off the terminal.

PortAudio's ALSA and JACK probes and ALSA's sequencer (under rtmidi) print pages of noise on
file descriptor 2 while they look for devices; Python's ``sys.stderr`` cannot catch it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null inside the block (as sounddevice does on import).

    Process-wide: whatever any thread writes to stderr meanwhile is lost, so keep the block
    to the library call that prints."""
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
