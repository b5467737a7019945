"""systemd's notify protocol (sd_notify): READY, WATCHDOG, STATUS, STOPPING.

Speaks the datagram protocol directly (no libsystemd binding): one message per datagram to
``$NOTIFY_SOCKET``, a filesystem path or, with a leading ``@``, an abstract socket. Without
the variable every call is a no-op, so the daemon runs the same outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.address = "\0" + address[1:] if address and address.startswith("@") else address
        self._sock: socket.socket | None = None
        if self.address:
            # Non-blocking: a datagram socket blocks in sendto() once the receiver's queue is
            # full (net.unix.max_dgram_qlen, 10 by default), which would freeze the event loop
            # (OSC, signals, everything) for as long as the receiver does not read. A
            # notification that does not fit is dropped and logged instead.
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> None:
        """Send ``KEY=VALUE`` fields in one datagram; failures are logged, never raised."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def extend_start(self, seconds: float, status: str) -> None:
        """Ask for ``seconds`` more before the start-up timeout (``ExecStartPre`` compiling)."""
        self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}", f"STATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """Half of systemd's watchdog period (``$WATCHDOG_USEC``), or None when not watched."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.05)
    except ValueError:
        return None
