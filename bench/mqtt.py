"""Benchmark: MQTT commands end to end through a local mosquitto.

Starts mosquitto on a free loopback port and a whole Daemon on the ``virtual`` audio backend
with ``[mqtt]``.

- latency: a client publishes ``controlroom/bench/volume/set`` and times the retained
  ``controlroom/bench/volume`` coming back: broker -> aiomqtt -> controller (kernel parameters
  published) -> the bridge's sender -> broker -> client. The floor is the same trip without
  controlroom: a bare aiomqtt client on the same event loop that republishes each ``set`` it
  gets. ``ratio`` = ours / floor.
- flood: audio callbacks the engine delivers while a client sends 1,000 commands/s (volume
  steps, switches, choices, and bad payloads), against an idle run of equal length: ``ratio`` =
  flood / idle, 1.0 = no effect. Also the event loop's worst lateness, and what the daemon did
  with the commands (received, dropped by reason).

    python bench/mqtt.py [--json] [--trips 300] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import aiomqtt
from benchkit import latency_rows, report

from controlroom.daemon.config import parse_config
from controlroom.daemon.service import Daemon

FLOOD_RATE = 1000
#: What the daemon's connection sets: both sides of the comparison without Nagle's delay.
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
BASE = "controlroom/bench"
CONFIG = """
[audio]
backend = "virtual"
samplerate = 48000
blocksize = 64
[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]
[speakers.studio]
outputs = [1, 2]
[speakers.crap]
outputs = [3]
[osc]
listen = "127.0.0.1:0"
[mqtt]
broker = "127.0.0.1:{port}"
id = "bench"
discovery = false
"""


@contextmanager
def broker():
    """mosquitto on a free loopback port; yields the port."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise SystemExit("mosquitto is not installed (apt install mosquitto)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        conf = Path(directory) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("mosquitto did not start") from None
                    time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.wait()


class Client:
    """A measuring client: ``trip`` publishes a command and waits for its state topic."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.arrived: dict[str, asyncio.Queue[tuple[bytes, float]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.client.messages:
            queue = self.arrived.setdefault(message.topic.value, asyncio.Queue())
            queue.put_nowait((message.payload, time.perf_counter()))

    async def trip(self, command: str, state: str, payload: str) -> float:
        """Publish ``payload`` on ``command``; seconds until ``state`` carries it."""
        queue = self.arrived.setdefault(state, asyncio.Queue())
        while not queue.empty():
            queue.get_nowait()
        sent = time.perf_counter()
        await self.client.publish(command, payload, qos=0)
        while True:
            got, at = await asyncio.wait_for(queue.get(), 2.0)
            if got == payload.encode():
                return at - sent


async def latencies(client: Client, command: str, state: str, trips: int) -> list[float]:
    # -21, -20, -21 ...: every command a real change (the daemon starts at -20 dB)
    return [await client.trip(command, state, f"{-21.0 + (i % 2):.1f}") for i in range(trips)]


async def echo(port: int) -> None:
    """The floor: a bare client that republishes every ``bench/echo/set`` as ``bench/echo``."""
    async with aiomqtt.Client("127.0.0.1", port, socket_options=NODELAY) as client:
        await client.subscribe("bench/echo/set")
        async for message in client.messages:
            await client.publish("bench/echo", message.payload, qos=1, retain=True)


async def loop_lag(seconds: float) -> float:
    """The event loop's worst lateness (s) for a 10 ms timer over ``seconds``."""
    worst, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - start - 0.01)
    return worst


async def flood(client: aiomqtt.Client, seconds: float) -> int:
    """FLOOD_RATE commands/s, a mix of good and bad ones; the number sent."""
    rng = random.Random(1)
    commands = [
        ("volume/step", lambda: f"{rng.choice([-0.5, 0.5])}"),
        ("mute/set", lambda: "toggle"),
        ("speakers/set", lambda: "next"),
        ("volume/set", lambda: "loud"),  # refused
        ("nosuch/set", lambda: "1"),  # no such target
    ]
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        for _ in range(FLOOD_RATE // 100):
            name, payload = rng.choice(commands)
            await client.publish(f"{BASE}/{name}", payload(), qos=0)
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / FLOOD_RATE - time.monotonic()))
    return sent


async def callbacks_during(daemon: Daemon, seconds: float, client: aiomqtt.Client | None) -> tuple[int, float, int]:
    """Audio callbacks delivered, worst loop lag, and commands sent (``client`` None: idle)."""
    before = daemon.runner.stats()["callbacks"]
    sending = flood(client, seconds) if client is not None else asyncio.sleep(seconds, 0)
    lag, sent = await asyncio.gather(loop_lag(seconds), sending)
    return daemon.runner.stats()["callbacks"] - before, lag, sent


async def measure(port: int, trips: int, seconds: float) -> list[dict]:
    daemon = Daemon(parse_config(CONFIG.format(port=port), "bench"), state_path=False)
    serving = asyncio.create_task(daemon.run())
    echoing = asyncio.create_task(echo(port))
    try:
        while not (daemon.ready.is_set() and daemon.mqtt.connected):
            await asyncio.sleep(0.01)
        async with aiomqtt.Client("127.0.0.1", port, socket_options=NODELAY) as raw:
            await raw.subscribe(f"{BASE}/volume")
            await raw.subscribe("bench/echo")
            client = Client(raw)
            await asyncio.sleep(0.5)  # the retained topics have come and gone
            ours = await latencies(client, f"{BASE}/volume/set", f"{BASE}/volume", trips)
            floor = await latencies(client, "bench/echo/set", "bench/echo", trips)
            idle_callbacks, idle_lag, _ = await callbacks_during(daemon, seconds, None)
            received_before, dropped_before = daemon.mqtt.received, dict(daemon.controller.dropped)
            flood_callbacks, flood_lag, sent = await callbacks_during(daemon, seconds, raw)
            await asyncio.sleep(0.5)  # the last commands arrive
            client.reader.cancel()
        received = daemon.mqtt.received - received_before
        dropped = {
            k: n - dropped_before.get(k, 0)
            for k, n in daemon.controller.dropped.items()
            if n > dropped_before.get(k, 0)
        }
    finally:
        echoing.cancel()
        daemon.stop()
        await serving
    results = latency_rows("command_to_state", ours, floor)
    results.append(
        {
            "name": "audio_callbacks_flood_vs_idle",
            "ours": flood_callbacks,
            "floor": idle_callbacks,
            "ratio": round(flood_callbacks / idle_callbacks, 3),
        }
    )
    results.append(
        {
            "name": "loop_worst_lag_ms",
            "ours": round(flood_lag * 1e3, 1),
            "floor": round(idle_lag * 1e3, 1),
            "ratio": round(flood_lag / idle_lag, 2) if idle_lag else None,
        }
    )
    results.append(
        {
            "name": "flood_commands",
            "ours": sent,
            "floor": None,
            "ratio": None,
            "received": received,
            "dropped": dropped,
            "rate_per_s": round(sent / seconds),
        }
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object with a results list")
    parser.add_argument("--trips", type=int, default=300, help="command round trips per side (default 300)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the idle and flood runs (default 5)")
    args = parser.parse_args()
    with broker() as port:
        results = asyncio.run(measure(port, args.trips, args.seconds))
    report(results, args.json)
    if args.json:
        return 0
    flood_row = results[-1]
    drops = ", ".join(f"{n} {reason}" for reason, n in flood_row["dropped"].items()) or "none"
    print(
        f"flood: {flood_row['ours']} commands at {flood_row['rate_per_s']}/s, {flood_row['received']} received; "
        f"dropped: {drops}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
