"""``controlroom check`` as a user runs it: which file it reads and its exit statuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
STUDIO = "examples/studio.toml"
PROCESS_TIMEOUT_S = 60


def check(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "controlroom", "check", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)


def test_the_file_may_be_named_as_the_argument():
    result = check(STUDIO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{STUDIO}: ok (3 sources")


def test_the_argument_reads_the_same_file_as_dash_c():
    assert check(STUDIO).stdout == check("-c", STUDIO).stdout


def test_a_missing_file_named_as_the_argument_exits_2():
    result = check("no-such.toml")
    assert result.returncode == 2
    assert "no-such.toml" in result.stderr and "Traceback" not in result.stderr


def test_naming_the_file_both_ways_is_a_usage_error():
    result = check("-c", STUDIO, "examples/minimal.toml")
    assert result.returncode == 2
    assert result.stderr == (
        f"controlroom check: name the config once: -c {STUDIO} or examples/minimal.toml, not both\n"
    )
