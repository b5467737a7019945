"""How long tests wait before they give up: a fast machine's figure, times one setting.

Every wait in the test kits ends at its event (a log line, an answer, a datagram); its timeout
only says when to stop waiting for one that does not come. The timeouts written in tests are
sized for a desktop machine; ``CONTROLROOM_TEST_TIME_SCALE`` (default 1) multiplies them all,
so a slow machine (a Raspberry Pi: 3 to 5, arm64 under emulation: 10) runs the same suite
unchanged: ``CONTROLROOM_TEST_TIME_SCALE=5 python -m pytest``.
"""

from __future__ import annotations

import os

VARIABLE = "CONTROLROOM_TEST_TIME_SCALE"


def _scale() -> float:
    text = os.environ.get(VARIABLE, "").strip() or "1"
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value >= 1.0:
        raise SystemExit(f"{VARIABLE}={text!r}: expected a number of at least 1 (how much slower than a desktop)")
    return value


#: how many times longer than on a desktop machine a test waits before it gives up
SCALE = _scale()


def scaled(seconds: float) -> float:
    """``seconds`` (a timeout sized for a desktop machine) for this machine."""
    return seconds * SCALE
