"""The daemon's log is bounded: a repeated message is held back, a huge one is cut; and no line
is lost while a C library's noise is kept off stderr."""

from __future__ import annotations

import io
import logging
import signal
import subprocess
import sys

from controlroom.daemon.cli.logsetup import BURST, MAX_MESSAGE_CHARS, WINDOW_S, RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def logger_into(stream: io.StringIO, clock: Clock) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(RateLimit(clock))
    logger = logging.getLogger(f"test-logsetup-{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger


def test_a_message_repeated_by_a_flood_is_let_through_a_few_times_per_window():
    stream, clock = io.StringIO(), Clock()
    log = logger_into(stream, clock)
    for n in range(1000):
        log.warning("dropped a message from %s", f"10.0.0.{n % 200}")
    log.warning("another message")
    lines = stream.getvalue().splitlines()
    assert len(lines) == BURST + 1
    clock.now = WINDOW_S
    log.warning("dropped a message from %s", "10.0.0.1")
    assert (
        stream.getvalue().splitlines()[-1]
        == f"dropped a message from 10.0.0.1 ({1000 - BURST} more like this held back)"
    )


def test_a_huge_message_is_cut():
    stream = io.StringIO()
    logger_into(stream, Clock()).warning("state file: %s", "x" * 10_000_000)
    line = stream.getvalue().rstrip("\n")
    assert len(line) < MAX_MESSAGE_CHARS + 100
    assert line.endswith("(10000012 characters)")


def with_the_log_set_up(code: str) -> subprocess.CompletedProcess:
    """``code`` run by a fresh Python after ``logsetup.setup()``, ``quiet_stderr`` at hand."""
    prelude = (
        "import logging, os; from controlroom.daemon.cli import logsetup; "
        "from controlroom.daemon.quiet import quiet_stderr; logsetup.setup()\n"
    )
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=60)


def test_lines_logged_while_stderr_is_silenced_for_a_c_library_still_reach_the_log():
    # quiet_stderr sends descriptor 2 to /dev/null process-wide (around PortAudio's and JACK's
    # probes, in the engine's thread): the event loop's lines meanwhile must not go with it
    done = with_the_log_set_up(
        "log = logging.getLogger('controlroom')\n"
        "with quiet_stderr():\n    log.error('said while the library probes')\n"
        "log.error('said after')"
    )
    assert done.returncode == 0, done.stderr
    assert [line.split(": ", 1)[1] for line in done.stderr.splitlines()] == [
        "said while the library probes",
        "said after",
    ]


def test_a_library_that_aborts_while_stderr_is_silenced_leaves_every_threads_stack_in_the_log():
    # PortAudio's JACK host asserts (SIGABRT) when the server dies while it initialises, with
    # descriptor 2 on /dev/null for its probes: the log must still say where the process was
    done = with_the_log_set_up(
        "def initialising_the_library():\n    with quiet_stderr():\n        os.abort()\ninitialising_the_library()"
    )
    assert done.returncode == -signal.SIGABRT
    assert "Fatal Python error: Aborted" in done.stderr
    assert "in initialising_the_library" in done.stderr
