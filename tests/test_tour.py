"""The README's quick tour, run as written: ``controlroom demo``, then every command of the
tour's code block in order, the state checked after each step through ``ctl status --json``
(what a user would look at).

Every command of the block must have a check here: a step added to the README without one
fails, so the tour cannot drift from the product unnoticed. The tour runs on a cold numba
cache (a fresh ``NUMBA_CACHE_DIR``: the first start compiles) and on the usual, warm one.

The expected loudness difference is measured independently of matching by
``tests/daemon/cli/test_program.py`` (the reference is mastered 4.5 LU louder).
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clikit import Command

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"
#: A cold start compiles the kernel first; a loaded CI machine takes minutes.
START_TIMEOUT_S = 300.0
STEP_TIMEOUT_S = 60.0
#: How much louder the demo's reference is (LU) and how close a match must come (dB).
REF_LOUDER_LU = 4.5
MATCH_TOLERANCE_DB = 0.3


def tour() -> list[list[str]]:
    """The commands of the tour's code block, each as its argv after ``controlroom``."""
    text = README.read_text()
    section = text[text.index("## A quick tour") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == ".venv/bin/controlroom", f"the tour runs controlroom only: {line}"
        commands.append(words[1:])
    return commands


def ctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controlroom", *args], capture_output=True, text=True, timeout=STEP_TIMEOUT_S
    )


def state() -> dict[str, Any]:
    result = ctl("ctl", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["state"]


def wait_state(condition: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not condition(now := state()):
        assert time.monotonic() < deadline, f"{what}: not within {STEP_TIMEOUT_S} s: {now}"
        time.sleep(0.2)
    return now


class Checks:
    """What each step of the tour must leave, by its words; ``before`` is the state before it."""

    def __init__(self) -> None:
        self.seen_ab_b = 0
        self.seen_ab_a = 0

    def before(self, words: list[str]) -> None:
        """What a step waits for, as the README says a user should."""
        if words == ["ctl", "ab", "b"] and self.seen_ab_b == 1:
            # "Matching compares 10 s of each source" before it acts
            wait_state(lambda s: s["matching"] == {"status": "ready"}, "matching ready")

    def after(self, words: list[str], before: dict, now: dict, printed: str) -> None:
        match words:
            case ["ctl", "match", "off"]:
                assert now["match"] == "off" and set(now["match_db"].values()) == {0.0}
            case ["ctl", "ab", "b"]:
                self.seen_ab_b += 1
                assert now["source"] == "ref" and now["ab"] == "b"
                if now["match"] == "off":
                    assert printed == "ab b: ref\n" and now["match_db"]["ref"] == 0.0
                else:
                    offset = now["match_db"]["ref"]
                    assert offset == pytest.approx(-REF_LOUDER_LU, abs=MATCH_TOLERANCE_DB)
                    assert printed == f"ab b: ref, matched {offset:.1f} dB\n"
            case ["ctl", "ab", "a"]:
                self.seen_ab_a += 1
                assert now["source"] == "mix" and now["ab"] == "a"
                if now["match"] == "auto":  # back from the matched reference: the mix stays put
                    assert now["match_db"]["mix"] == pytest.approx(0.0, abs=MATCH_TOLERANCE_DB)
            case ["ctl", "match", "auto"]:
                assert now["match"] == "auto" and now["match_db"] == before["match_db"]
            case ["ctl", "speakers", "next"]:
                assert (before["speakers"], now["speakers"]) == ("studio", "consumer")
            case ["ctl", "mono", "toggle"]:
                assert now["mono"] is (not before["mono"])
            case ["ctl", "volume", "step", delta]:
                assert now["volume"] == pytest.approx(before["volume"] + float(delta))
            case ["ctl", "status"]:
                assert [line for line in printed.splitlines() if not line.startswith(" ")] == [
                    "state",
                    "engine",
                    "meters",
                    "surfaces",
                    "web",  # the demo's web remote
                ]
                assert now == before
            case _:
                pytest.fail(f"the tour step `controlroom {shlex.join(words)}` has no check in {__file__}")


def run_watch(words: list[str]) -> str:
    """``ctl watch`` as written: it runs until quit, so read its first line, then Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "controlroom", *words], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        first = process.stdout.readline()
        process.send_signal(signal.SIGINT)
        assert process.wait(STEP_TIMEOUT_S) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return first


@pytest.mark.parametrize("cache", [pytest.param("cold", marks=pytest.mark.cold), "warm"])
def test_the_readme_tour_does_what_it_says(tmp_path, cache, demo_ports):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")} if cache == "cold" else {}
    demo = Command("demo", cwd=tmp_path, env=env)
    try:
        demo.wait_line("stdout", lambda line: " | outputs RMS dBFS " in line, START_TIMEOUT_S)
        checks = Checks()
        steps = tour()
        assert ["ctl", "watch"] in steps and ["ctl", "status"] in steps
        for words in steps:
            checks.before(words)
            before = state()
            if words == ["ctl", "watch"]:
                first = run_watch(words)
                assert first.startswith(f"{before['source']} on {before['speakers']} at "), first
                continue
            result = ctl(*words)
            assert result.returncode == 0, f"controlroom {shlex.join(words)}: {result.stderr}"
            checks.after(words, before, state(), result.stdout)
        assert (checks.seen_ab_b, checks.seen_ab_a) == (2, 2)
        assert demo.stop() == 0
    finally:
        demo.kill()
