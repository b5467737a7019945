"""The OSC endpoint in-process, over real UDP on loopback: a controller, a server and a peer."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import struct
import subprocess
import sys
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from timekit import scaled

from controlroom.daemon.config import OscConfig, parse_config
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.targets import TARGETS, Vocabulary
from controlroom.daemon.osc.protocol import ERROR_ADDRESS, STATE_ADDRESS, parse_packet
from controlroom.daemon.osc.server import OscServer

CONFIG_TOML = """
[audio]
backend = "virtual"

[monitor]
volume_db = -20.0
min_volume_db = -60.0
max_volume_db = -6.0

[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]
[sources.tape]
channels = [5]

[speakers.studio]
outputs = [1, 2]
sub = { output = 3, crossover_hz = 80.0 }
[speakers.consumer]
outputs = [4, 5]
[speakers.crap]
outputs = [6]

[ab]
a = "mix"
b = "ref"
match = "auto"
"""


LOOPBACK = "127.0.0.1"


STRANGER = "127.0.0.2"  # loopback holds all of 127/8; outside an allowlist of 127.0.0.1/32


# a desktop machine's figures; the waits scale them (timekit)
REPLY_TIMEOUT_S = 5.0
PROCESS_TIMEOUT_S = 60  # a `controlroom ctl` subprocess


def make_controller() -> Controller:
    config = parse_config(CONFIG_TOML)
    return Controller(config, Vocabulary(config).initial())


def osc_config(**changes: Any) -> OscConfig:
    base = OscConfig(host=LOOPBACK, port=0, allow=(ipaddress.ip_network("127.0.0.1/32"),), clients=())
    return replace(base, **changes)


def dummy_report(controller: Controller, meters: dict | None = None):
    return lambda: {"state": controller.state.as_dict(), "engine": {"running": True}, "meters": meters or {}}


def encode(address: str, *args: Any) -> bytes:
    """An OSC message; an argument ``(tag, value)`` forces the OSC type, others are inferred
    (bool -> T/F, int -> i, float -> f, str -> s, bytes -> b, None -> N)."""
    builder = OscMessageBuilder(address)
    for arg in args:
        if isinstance(arg, tuple):
            builder.add_arg(arg[1], arg[0])
        else:
            builder.add_arg(arg)
    return builder.build().dgram


def bundle(*elements: bytes, timetag: bytes = b"\x00\x00\x00\x00\x00\x00\x00\x01") -> bytes:
    return b"#bundle\x00" + timetag + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def run(scenario, timeout: float = 120.0) -> None:
    """Run an async test, failing after ``timeout`` s (``scaled``); any exception the event
    loop saw (e.g. raised out of a protocol callback) fails it."""

    async def main():
        seen: list[dict] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: seen.append(context))
        await asyncio.wait_for(scenario(), scaled(timeout))
        assert not seen, seen

    asyncio.run(main())


class Peer(asyncio.DatagramProtocol):
    """A UDP socket on loopback that sends OSC to the server and collects what comes back."""

    def __init__(self, server_port: int) -> None:
        self.server = (LOOPBACK, server_port)
        self.inbox: asyncio.Queue[tuple[str, list[Any]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.received_bytes = 0

    @classmethod
    async def open(cls, server_port: int = 0, host: str = LOOPBACK) -> Peer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(lambda: cls(server_port), sock=sock)
        peer.sock = sock
        return peer

    def connection_made(self, transport) -> None:
        self.transport = transport

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr) -> None:
        self.received_bytes += len(data)
        for message in parse_packet(data):
            self.inbox.put_nowait((message.address, message.params))

    def send(self, address: str, *args: Any) -> None:
        self.send_raw(encode(address, *args))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)  # the transport would not send an empty datagram

    async def receive(self) -> tuple[str, list[Any]]:
        return await asyncio.wait_for(self.inbox.get(), scaled(REPLY_TIMEOUT_S))

    async def barrier(self) -> list[tuple[str, list[Any]]]:
        """Query the state; everything received before the answer (the answer excluded)."""
        self.send(STATE_ADDRESS)
        received = []
        while (message := await self.receive())[0] != STATE_ADDRESS:
            received.append(message)
        self.last_report = json.loads(message[1][0])
        self.last_report_data = encode(STATE_ADDRESS, message[1][0])
        return received

    def close(self) -> None:
        self.transport.close()


@asynccontextmanager
async def serving(controller: Controller | None = None, config: OscConfig | None = None, report=None, **kwargs):
    controller = controller or make_controller()
    server = OscServer(controller, config or osc_config(), report or dummy_report(controller), **kwargs)
    await server.start()
    try:
        yield server
    finally:
        server.close()


def feedback(messages: list[tuple[str, list[Any]]]) -> dict[str, Any]:
    """Target feedback as ``{target: value}`` (the latest per target)."""
    return {a.removeprefix("/controlroom/"): p[0] for a, p in messages if a.removeprefix("/controlroom/") in TARGETS}


def errors(messages: list[tuple[str, list[Any]]]) -> list[str]:
    return [p[1] for a, p in messages if a == ERROR_ADDRESS]


def ctl(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controlroom", "ctl", "--osc", f"127.0.0.1:{port}", *args],
        capture_output=True,
        text=True,
        timeout=scaled(PROCESS_TIMEOUT_S),
    )


def without_meters(messages: list[tuple[str, list[Any]]]) -> list[tuple[str, list[Any]]]:
    """``messages`` less the meters a subscriber also gets (at 10 Hz, between any two others)."""
    return [(a, p) for a, p in messages if not a.startswith("/controlroom/meters/")]
