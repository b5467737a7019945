"""``controlroom demo`` as a user runs it: its arguments (the demo itself is the daemon's tests')."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROCESS_TIMEOUT_S = 60


@pytest.mark.parametrize("seconds", ["-1", "0", "nan", "inf", "soon"])
def test_seconds_must_be_a_positive_number(seconds):
    command = [sys.executable, "-m", "controlroom", "demo", f"--seconds={seconds}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 2
    assert result.stderr.endswith(
        f"controlroom demo: error: argument --seconds: expected a positive number of seconds, got {seconds!r}\n"
    )
    assert result.stdout == ""
