"""``controlroom run`` as a subprocess, and an OSC peer to talk to it (end-to-end tests).

The daemon is started exactly as a user (or systemd) starts it: ``python -m controlroom run -c
FILE``, its log going to a file. Configs ask for OSC port 0 (any free port); the port the daemon
bound is read from its log line ``OSC listening on HOST:PORT``, so no port is guessed.

Synchronisation is by events, never by sleeping: a log line appears, the daemon answers a
``/controlroom/state`` query (it handles datagrams in arrival order, so an answer proves that
everything sent before it was handled), or a bounded poll of that report sees a condition.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from timekit import scaled

LOOPBACK = "127.0.0.1"
STATE = "/controlroom/state"
POLL_S = 0.02
# timeouts sized for a desktop machine; the waits below scale them (timekit)
START_TIMEOUT_S = 60.0  # a cold numba cache compiles the kernel first
STOP_TIMEOUT_S = 15.0
REPLY_TIMEOUT_S = 5.0


def message(address: str, *args: Any) -> bytes:
    """An OSC message: bool -> T/F, int -> i, float -> f, str -> s, bytes -> b; a ``(tag,
    value)`` pair forces a type tag (e.g. ``("d", 1.5)``)."""
    builder = OscMessageBuilder(address)
    for arg in args:
        if isinstance(arg, tuple):
            builder.add_arg(arg[1], arg[0])
        else:
            builder.add_arg(arg)
    return builder.build().dgram


def wait_for(condition: Callable[[], Any], timeout: float, what: str, poll: float = POLL_S) -> Any:
    """Poll ``condition()`` until it returns something true (returned); TimeoutError naming
    ``what`` after ``timeout`` s (a desktop's figure: ``scaled`` for this machine)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(poll)


class OscPeer:
    """A UDP socket talking OSC to the daemon at ``(host, port)``, bound to ``bind``."""

    def __init__(self, port: int, host: str = LOOPBACK, bind: str = LOOPBACK) -> None:
        self.address = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((bind, 0))
        self._owed = 0  # answers still to come to requests that timed out

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> OscPeer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(message(address, *args), self.address)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.address)

    def query(self, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        """The daemon's report (``/controlroom/state``) as it answers this request; other
        datagrams received before it (errors, feedback) are read and discarded. TimeoutError
        without an answer.

        A request that timed out (a busy daemon) is still answered later, and the daemon answers
        in the order asked: answers owed to earlier requests are read and dropped, so the
        report returned is never older than this request. Should one of those answers never
        come (a datagram lost), the newest answer received by the deadline is taken."""
        self._owed += 1
        self.send(STATE)
        newest = None
        deadline = time.monotonic() + scaled(timeout)
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                break
            if data.startswith(b"/"):
                reply = OscMessage(data)
                if reply.address == STATE:
                    self._owed -= 1
                    newest = reply
                    if self._owed == 0:
                        break
        if newest is None:
            raise TimeoutError(f"no /controlroom/state answer from {self.address} within {scaled(timeout):g} s")
        self._owed = 0
        return json.loads(newest.params[0])

    def set(self, target: str, value: Any) -> dict[str, Any]:
        """``/controlroom/<target> value``, then the report (which comes after it was handled)."""
        self.send(f"/controlroom/{target}", value)
        return self.query()

    def wait(self, condition: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """Poll the report until ``condition(report)``; that report."""

        def satisfied():
            try:
                report = self.query()
            except TimeoutError:  # busy (a cold start compiles the kernel): ask again
                return None
            return report if condition(report) else None

        return wait_for(satisfied, timeout, what)


class DaemonProcess:
    """``python -m controlroom run -c CONFIG`` with its log in ``log_path``."""

    def __init__(
        self, config: Path, log_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.config = Path(config)
        self.log_path = Path(log_path)
        self.env = {**os.environ, **(env or {})}
        self.args = args
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self._log_offset = 0

    # --- life cycle -----------------------------------------------------------------------------

    def start(self) -> DaemonProcess:
        """Start it and return once its OSC port is known (not yet running audio)."""
        self.spawn()
        return self.wait_osc()

    def spawn(self) -> DaemonProcess:
        """Start the process and return at once (``wait_osc()`` waits for its OSC port)."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controlroom", "run", "-c", str(self.config), *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    def wait_osc(self, timeout: float = START_TIMEOUT_S) -> DaemonProcess:
        """Wait until the spawned daemon logged the OSC port it bound (``port``)."""
        found = self.wait_log(r"OSC listening on \S+:(\d+)", timeout)
        self.port = int(found.group(1))
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(scaled(timeout))

    def close(self) -> None:
        """Stop it if it still runs (SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``)."""
        if self.alive:
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- observation ----------------------------------------------------------------------------

    def log(self) -> str:
        """What this run has logged so far."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def wait_log(self, pattern: str, timeout: float, after: int = 0) -> re.Match:
        """The first match of ``pattern`` in the log (from character ``after`` of this run's
        log); RuntimeError if the process exits first, TimeoutError after ``timeout`` s."""
        regex = re.compile(pattern)

        def found():
            match = regex.search(self.log(), after)
            if match is None and not self.alive:
                raise RuntimeError(
                    f"the daemon exited ({self.process.returncode}) before logging {pattern!r}:\n{self.log()[-3000:]}"
                )
            return match

        try:
            return wait_for(found, timeout, f"log line {pattern!r}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; the log:\n{self.log()[-3000:]}") from None

    def peer(self, bind: str = LOOPBACK) -> OscPeer:
        return OscPeer(self.port, bind=bind)

    def wait_running(self, peer: OscPeer, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Poll the report until ``engine.running``; that report."""
        return peer.wait(lambda r: r["engine"].get("running"), timeout, "engine.running")

    def wait_report(
        self, peer: OscPeer, condition: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        """Poll the report until ``condition(report)``; that report. Unlike ``peer.wait`` this
        gives up at once when the process exits (RuntimeError naming its exit status), and
        both errors carry the log's tail and the last report seen."""
        last: list[dict[str, Any]] = []

        def satisfied():
            if not self.alive:
                raise RuntimeError(f"{what}: the daemon exited ({self.exit_status()}) first; the log:\n{self.tail()}")
            try:
                report = peer.query()
            except TimeoutError:
                return None
            last[:] = [report]
            return report if condition(report) else None

        try:
            return wait_for(satisfied, timeout, what)
        except TimeoutError as exc:
            seen = json.dumps(last[0]["engine"]) if last else "no answer"
            raise TimeoutError(f"{exc}; last engine report: {seen}; the log:\n{self.tail()}") from None

    def tail(self, characters: int = 3000) -> str:
        """The end of this run's log (for failure messages)."""
        return self.log()[-characters:]

    def exit_status(self) -> str:
        """``running``, ``exit status N`` or ``killed by SIGNAME`` (for failure messages)."""
        code = None if self.process is None else self.process.poll()
        if code is None:
            return "running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"


def write_config(path: Path, text: str) -> Path:
    """Write a config atomically (a SIGHUP may read it at any moment)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
