"""What systemd does with ``$NOTIFY_SOCKET``: a datagram socket receiving ``KEY=VALUE`` lines
(a file-system path, or an abstract ``@name``)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from timekit import scaled

DATAGRAM_TIMEOUT_S = 60.0  # the first READY may wait for numba to compile the kernel


class NotifyListener:
    """What systemd does: a datagram socket receiving ``KEY=VALUE`` lines."""

    def __init__(self, address: str | Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        text = str(address)
        self.sock.bind("\0" + text[1:] if text.startswith("@") else text)
        self.env_value = text
        self.datagrams: list[list[str]] = []

    def receive(self, timeout: float) -> list[str]:
        """The next datagram's fields; TimeoutError when none comes."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096)
        fields = data.decode().split("\n")
        self.datagrams.append(fields)
        return fields

    def wait_for(self, condition, timeout: float = DATAGRAM_TIMEOUT_S, what: str = "") -> list[str]:
        """Receive until a datagram satisfies ``condition(fields)``; that datagram (a desktop's
        ``timeout``, ``scaled``)."""
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                fields = self.receive(remaining)
            except TimeoutError:
                break
            if condition(fields):
                return fields
        raise TimeoutError(f"no {what} datagram within {timeout:g} s; received {self.datagrams}")

    def close(self) -> None:
        self.sock.close()
