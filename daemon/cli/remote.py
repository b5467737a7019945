"""The OSC client of ``ctl`` and ``ctl watch``: messages to a running daemon, and its answer.

Every exchange uses one connected UDP socket, so that only the daemon's answers are read and a
closed port is reported at once; feedback that arrives before the answer is skipped.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

from controlroom.daemon.errors import RemoteError, UsageError
from controlroom.daemon.osc.protocol import ERROR_ADDRESS, STATE_ADDRESS, MalformedPacket, build_message, parse_packet

DEFAULT_OSC = "127.0.0.1:9000"
#: Seconds to wait for an answer unless told otherwise.
TIMEOUT_S = 2.0
_MAX_DATAGRAM = 65535


def parse_endpoint(text: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` as ``(host, port)``; raises ``UsageError``."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--osc {text!r}: expected HOST:PORT, e.g. {DEFAULT_OSC}")
    return host, int(port)


def query(endpoint: tuple[str, int], messages: list[bytes], timeout: float) -> dict[str, Any]:
    """Send ``messages`` then ``/controlroom/state``; the daemon's report. Raises
    ``RemoteError`` on a refusal, on no answer within ``timeout`` s."""
    params = exchange(endpoint, [*messages, build_message(STATE_ADDRESS)], STATE_ADDRESS, timeout)
    if not params or not isinstance(params[0], str):
        raise RemoteError("the daemon's state answer is empty")
    try:
        return json.loads(params[0])
    except ValueError:
        raise RemoteError("the daemon's state answer is not valid JSON") from None


def exchange(
    endpoint: tuple[str, int],
    messages: list[bytes],
    answer: str,
    timeout: float,
    progress: tuple[str, Callable[[list[Any]], None]] | None = None,
) -> list[Any]:
    """Send ``messages`` and return the arguments of the first ``answer`` message back.
    Raises ``RemoteError`` on a refusal, on no answer within ``timeout`` s. ``progress``:
    ``(address, callback)``: each such message before the answer goes to ``callback`` (its
    arguments) and gives the answer ``timeout`` s more."""
    host, port = endpoint
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except OSError as exc:
        raise RemoteError(f"cannot resolve {host}: {exc}") from None
    where = f"{host}:{port}"
    with socket.socket(family, kind, proto) as sock:
        # connected: only the daemon's answers are read, and a closed port is reported at once
        sock.connect(address)
        deadline = time.monotonic() + timeout
        try:
            for message in messages:
                sock.send(message)
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                data = sock.recv(_MAX_DATAGRAM)
                if progress is not None:
                    step = _answer(data, progress[0])
                    if step is not None:
                        progress[1](step)
                        deadline = time.monotonic() + timeout
                        continue
                params = _answer(data, answer)
                if params is not None:
                    return params
        except TimeoutError:
            pass
        except ConnectionRefusedError:
            raise RemoteError(f"nothing is listening on {where} (is the daemon running?)") from None
        except OSError as exc:
            raise RemoteError(f"cannot reach {where}: {exc.strerror or exc}") from None
    raise RemoteError(
        f"no answer from {where} within {timeout:g} s "
        "(is the daemon running, on this port, with this host in its [osc] allow list?)"
    )


def _answer(data: bytes, address: str) -> list[Any] | None:
    """The arguments of ``address`` in a reply; None for feedback that is not the answer."""
    try:
        messages = parse_packet(data)
    except MalformedPacket:
        return None
    for message in messages:
        params = message.params
        if message.address == ERROR_ADDRESS:
            raise RemoteError(f"refused: {params[-1] if params else 'no reason given'}")
        if message.address == address:
            return params
    return None
