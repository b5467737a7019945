"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from jackutil import JackServer


def pytest_configure(config):
    # A checkout updated by git keeps what numba cached from the sources before, and a kernel
    # that compiled in a changed neighbour (dsp/layout.py's offsets) would run stale: forget
    # those once, in the process that starts the workers, before any test compiles.
    if not hasattr(config, "workerinput"):
        from controlroom.daemon.cli.warmup import forget_stale

        forget_stale()


@pytest.fixture
def demo_ports():
    """The built-in demo's fixed ports (OSC 9000, web 8080), for one test at a time: pytest-xdist
    workers run tests side by side, and the README tour needs them free while other tests hold
    the OSC port on purpose. A lock file in the temporary directory every worker shares."""
    with open(Path(tempfile.gettempdir()) / "controlroom-tests-demo-ports.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


@pytest.fixture(scope="session")
def jack_server():
    """A JACK dummy server for the session (48 kHz, 64 frames, 8 in, 8 out), unique name.

    ``JACK_DEFAULT_SERVER`` names it for this process and its subprocesses. The PortAudio
    instance of this process is renewed so that it sees the server. Tests may ``kill()``
    and ``start()`` it (device loss); it is running again when the next test begins only if
    that test restarted it, so use the ``jack`` fixture rather than this one.
    """
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed")
    server = JackServer(f"controlroom-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    server.start()
    _renew_portaudio()
    yield server
    server.stop()
    server.log.unlink(missing_ok=True)
    if previous is None:
        os.environ.pop("JACK_DEFAULT_SERVER", None)
    else:
        os.environ["JACK_DEFAULT_SERVER"] = previous


@pytest.fixture
def jack(jack_server):
    """The session's JACK server, running; harness clients made with ``jack.harness(...)``
    are closed after the test."""
    if not jack_server.alive:
        jack_server.start()
        _renew_portaudio()
    yield jack_server
    jack_server.close_harnesses()


def _renew_portaudio() -> None:
    # PortAudio lists JACK devices only if the server ran when it was initialised.
    if "sounddevice" in sys.modules:
        from controlroom.daemon.engine import library

        library.renew()
