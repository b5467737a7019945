"""Benchmark: the OSC port under hostile and careless senders.

Starts ``controlroom run`` (the ``virtual`` audio backend) as a subprocess, then:

- bundle: one ~60 KB bundle of ``/controlroom/state`` requests; the reply bytes it brings back
  (``ratio`` = reply bytes / request bytes: above 1 is amplification), and a volume set's round
  trip from another sender while the bundles keep coming, against the same trip idle.
- subscribers: 1,000 senders subscribe and close their sockets; a volume set's round trip
  then (each change goes to every subscriber), against the same trip before them.
- nested: 200 packets with arguments nested 1,000 deep; the bytes they add to the log.
- burst: 2,000 volume steps/s for 2 s from one sender, then 50,000/s for 0.5 s; what the
  daemon counted as ``osc_overflow`` against what the kernel dropped (``/proc/net/udp``).

    python bench/osc_flood.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchkit import quantile, report
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

CONFIG = """
[audio]
backend = "virtual"
samplerate = 48000
blocksize = 256
[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]
[speakers.studio]
outputs = [1, 2]
[speakers.crap]
outputs = [3]
[osc]
listen = "127.0.0.1:{port}"
"""
STATE = "/controlroom/state"
#: A control trip not answered within this long counts as this long.
GIVE_UP_S = 20.0


def message(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def bundle(messages: list[bytes]) -> bytes:
    body = b"".join(struct.pack(">i", len(m)) + m for m in messages)
    return b"#bundle\x00" + bytes(8) + body


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Peer:
    def __init__(self, port: int) -> None:
        self.address = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))

    def drain(self) -> tuple[int, int]:
        """Datagrams and bytes waiting, read without blocking."""
        count = size = 0
        self.sock.setblocking(False)
        try:
            while True:
                size += len(self.sock.recv(1 << 16))
                count += 1
        except BlockingIOError:
            return count, size
        finally:
            self.sock.setblocking(True)

    def query(self, timeout: float = 60.0) -> dict:
        """The report; asks again each second without an answer (a flood's backlog)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            self.sock.sendto(message(STATE), self.address)
            self.sock.settimeout(1.0)
            try:
                while True:
                    reply = OscMessage(self.sock.recv(1 << 16))
                    if reply.address == STATE:
                        return json.loads(reply.params[0])
            except TimeoutError:
                continue
        raise TimeoutError("no answer")

    def trip(self, volume: float) -> float:
        """A volume set and a query after it, both sent again each second until the answer
        carries the volume (a set the kernel dropped is sent again): seconds until then."""
        start = time.perf_counter()
        while time.perf_counter() - start < GIVE_UP_S:
            self.sock.sendto(message("/controlroom/volume", volume), self.address)
            try:
                if abs(self.query(timeout=1.0)["state"]["volume"] - volume) < 1e-6:
                    break
            except TimeoutError:
                pass
        return time.perf_counter() - start


def trips(peer: Peer, count: int) -> list[float]:
    return [peer.trip(-30.0 + (i % 2)) for i in range(count)]


def bundle_rows(port: int) -> list[dict]:
    request = bundle([message(STATE)] * (60_000 // (len(message(STATE)) + 4)))
    control = Peer(port)
    idle = trips(control, 50)
    attacker = Peer(port)
    attacker.sock.sendto(request, attacker.address)
    time.sleep(2.0)
    _, reply_bytes = attacker.drain()
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            attacker.sock.sendto(request, attacker.address)
            attacker.drain()
            time.sleep(0.1)

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        busy = trips(control, 10)
    finally:
        stop.set()
        thread.join()
    return [
        {
            "name": "bundle_reply_bytes",
            "ours": reply_bytes,
            "floor": len(request),
            "ratio": round(reply_bytes / len(request), 3),
        },
        {
            "name": "control_p50_ms_under_bundles",
            "ours": round(quantile(busy, 0.5) * 1e3, 2),
            "floor": round(quantile(idle, 0.5) * 1e3, 2),
            "ratio": round(quantile(busy, 0.5) / quantile(idle, 0.5), 2),
        },
        {
            "name": "control_max_ms_under_bundles",
            "ours": round(max(busy) * 1e3, 2),
            "floor": round(max(idle) * 1e3, 2),
            "ratio": round(max(busy) / max(idle), 2),
        },
    ]


def subscriber_rows(port: int, count: int = 1000) -> list[dict]:
    control = Peer(port)
    before = trips(control, 20)
    peers = [Peer(port) for _ in range(count)]
    for peer in peers:
        peer.sock.sendto(message("/controlroom/subscribe"), peer.address)
    control.query()
    for peer in peers:
        peer.sock.close()
    after = trips(control, 20)
    return [
        {
            "name": f"control_p50_ms_{count}_subscribers",
            "ours": round(quantile(after, 0.5) * 1e3, 2),
            "floor": round(quantile(before, 0.5) * 1e3, 2),
            "ratio": round(quantile(after, 0.5) / quantile(before, 0.5), 2),
        },
    ]


def nested_rows(port: int, log: Path) -> list[dict]:
    depth = 1000
    tags = "," + "[" * depth + "]" * depth
    raw = b"/controlroom/volume\x00" + pad(tags.encode())
    peer = Peer(port)
    before = log.stat().st_size
    for _ in range(200):
        peer.sock.sendto(raw, peer.address)
    peer.query()
    grown = log.stat().st_size - before
    return [{"name": "log_bytes_per_200_nested_packets", "ours": grown, "floor": None, "ratio": None}]


def pad(data: bytes) -> bytes:
    data += b"\x00"
    return data + b"\x00" * (-len(data) % 4)


def udp_drops(port: int) -> int:
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                total += int(fields[-1])
    return total


def burst_rows(port: int, rate: int = 2000, seconds: float = 2.0) -> list[dict]:
    peer = Peer(port)
    before = udp_drops(port)
    counted_before = peer.query()["engine"]["dropped"].get("osc_overflow", 0)
    step = message("/controlroom/volume/step", 0.0)
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        while time.perf_counter() < start + i / rate:
            pass
        peer.sock.sendto(step, peer.address)
    time.sleep(0.5)
    report = peer.query()
    kernel = udp_drops(port) - before
    counted = report["engine"]["dropped"].get("osc_overflow", 0) - counted_before
    return [{"name": f"kernel_drops_{rate}_per_s", "ours": counted, "floor": kernel, "ratio": None}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "bench.toml"
        config.write_text(CONFIG.format(port=port))
        log = Path(directory) / "daemon.log"
        env = {**os.environ, "XDG_STATE_HOME": directory}
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "controlroom", "run", "-c", str(config)], stdout=out, stderr=out, env=env
            )
        try:
            probe = Peer(port)
            deadline = time.monotonic() + 120
            while True:
                try:
                    probe.query(timeout=1.0)
                    break
                except (TimeoutError, ConnectionRefusedError, OSError):
                    if time.monotonic() > deadline or daemon.poll() is not None:
                        raise SystemExit(f"the daemon did not answer:\n{log.read_text()[-2000:]}") from None
            results = nested_rows(port, log) + bundle_rows(port) + subscriber_rows(port)
            results += burst_rows(port) + burst_rows(port, rate=50_000, seconds=0.5)
        finally:
            daemon.terminate()
            daemon.wait(30)
    report(results, args.json, floor_heading="floor/peer")


if __name__ == "__main__":
    main()
