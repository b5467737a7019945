"""A long-running ``python -m controlroom COMMAND`` whose output lines a test awaits.

``controlroom demo`` and ``controlroom run`` keep running until stopped: a test reads what they
print as it comes (a thread per stream feeds a queue), waits for the line it expects, then
stops the process with SIGTERM, as a user or systemd would.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from timekit import scaled

LINE_TIMEOUT_S = 60.0  # a cold numba cache compiles the kernel before the first meters
STOP_TIMEOUT_S = 15.0
DEMO_PORT = 9000  # where the demo's built-in config listens


class Command:
    """``python -m controlroom *args`` in ``cwd`` with ``env`` added to the environment."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> None:
        environment = {k: v for k, v in os.environ.items() if k not in drop}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controlroom", *args],
            cwd=cwd,
            env={**environment, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(name, stream, seen), daemon=True)
            for name, stream, seen in (
                ("stdout", self.process.stdout, self.stdout),
                ("stderr", self.process.stderr, self.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, stream, seen: list[str]) -> None:
        for line in stream:
            seen.append(line.rstrip("\n"))
            self._lines.put((name, line.rstrip("\n")))
        self._lines.put((name, None))

    def wait_line(self, stream: str, matches: Callable[[str], bool], timeout: float = LINE_TIMEOUT_S) -> str:
        """The first line of ``stream`` (``stdout`` or ``stderr``) that ``matches``, as it is
        printed; AssertionError when the process ends or ``timeout`` s pass first."""
        deadline = time.monotonic() + scaled(timeout)
        ended = set()
        while len(ended) < 2:
            try:
                name, line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no such {stream} line within {timeout:g} s: {self.output()}") from None
            if line is None:
                ended.add(name)
            elif name == stream and matches(line):
                return line
        raise AssertionError(f"ended without such a {stream} line: {self.output()}")

    def stop(self) -> int:
        """SIGTERM, then the exit status once both streams are read to their end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.finish()

    def finish(self, timeout: float = LINE_TIMEOUT_S) -> int:
        """The exit status of a process that ends by itself (TimeoutExpired when it does not)."""
        status = self.process.wait(scaled(timeout))
        for reader in self._readers:
            reader.join(STOP_TIMEOUT_S)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return "\nstdout:\n" + "\n".join(self.stdout[-20:]) + "\nstderr:\n" + "\n".join(self.stderr[-20:])


def hold_udp(port: int) -> socket.socket | None:
    """A UDP socket bound to 127.0.0.1:``port``, so that nothing else can listen there; None
    when something already holds it (taken either way)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock
