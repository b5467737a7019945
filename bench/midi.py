"""Benchmark: control surfaces end to end through JACK MIDI.

Runs its own JACK dummy server and a whole Daemon on the ``virtual`` audio backend with one
surface (the X-Touch Mini preset) whose ports belong to a fake device: rtmidi virtual ports in
this process.

- latency: the device presses a button (mute) and times the LED feedback coming back: JACK ->
  rtmidi's queue -> the poller -> the event loop -> controller (kernel parameters published) ->
  feedback -> JACK. The floor is the same trip without controlroom: a mido callback port that
  echoes each message back through an asyncio loop. ``ratio`` = ours / floor.
- flood: audio callbacks the engine delivers while the device sends 5,000 messages/s (fader,
  encoder, buttons and other channels), against an idle run of equal length: ``ratio`` =
  flood / idle, 1.0 = no effect. Also how long the event loop was held up at worst, and what
  the daemon did with the messages (handled as state changes or counted as dropped).

    python bench/midi.py [--json] [--trips 300] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import mido
import rtmidi
from benchkit import latency_rows, report

from controlroom.daemon.config import parse_config
from controlroom.daemon.service import Daemon

BACKEND = "mido.backends.rtmidi/UNIX_JACK"
FLOOD_RATE = 5000
DEVICE = "bench-surface"
CONFIG = f"""
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
[midi]
backend = "{BACKEND}"
[[surfaces]]
name = "desk"
input = "{DEVICE}"
output = "{DEVICE}"
mapping = "behringer-xtouch-mini"
"""
PRESS = mido.Message("note_on", channel=10, note=17, velocity=127)  # bottom row 2: mute
RELEASE = mido.Message("note_off", channel=10, note=17)
PING = mido.Message("note_on", channel=15, note=100, velocity=1)  # unmapped: the daemon stays silent


@contextmanager
def jack_server():
    """A JACK dummy server with a unique name, named by ``JACK_DEFAULT_SERVER`` meanwhile."""
    name = f"controlroom-bench-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        ["jackd", "-n", name, "-S", "-d", "dummy", "-r", "48000", "-p", "64"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        deadline = time.monotonic() + 10.0
        while True:
            try:
                rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="probe").delete()
                break
            except rtmidi.RtMidiError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("jackd did not start") from None
                time.sleep(0.1)
        yield name
    finally:
        if "sounddevice" in sys.modules:  # PortAudio saw this server: it would abort at exit without it
            from controlroom.daemon.engine import library

            library.server_lost()
        process.terminate()
        process.wait()
        for pattern in (f"jack_{name}_*", f"jack_sem.*_{name}_*"):
            for path in Path("/dev/shm").glob(pattern):
                path.unlink(missing_ok=True)


class Device:
    """The fake surface: virtual ports; ``arrived`` gets the time of each message received."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        backend = mido.Backend(BACKEND, load=True)
        self._loop = loop
        self.arrived: asyncio.Queue[float] = asyncio.Queue()
        self.output = backend.open_output(DEVICE, virtual=True)
        self.input = backend.open_input(DEVICE, virtual=True, callback=self._received)

    def _received(self, message: mido.Message) -> None:
        self._loop.call_soon_threadsafe(self.arrived.put_nowait, time.perf_counter())

    async def trip(self, message: mido.Message) -> float:
        """Send ``message``; seconds until the next message comes back."""
        while not self.arrived.empty():
            self.arrived.get_nowait()
        sent = time.perf_counter()
        self.output.send(message)
        return await asyncio.wait_for(self.arrived.get(), 2.0) - sent

    def close(self) -> None:
        self.input.close()
        self.output.close()


async def latencies(device: Device, trips: int) -> list[float]:
    times = []
    for _ in range(trips):
        times.append(await device.trip(PRESS))
        await device.trip(RELEASE)  # its LED is re-sent too: wait for it, unmeasured
    return times


async def floor_latencies(device: Device, trips: int) -> list[float]:
    """The same trips through a bare mido echo on the event loop."""
    backend = mido.Backend(BACKEND, load=True)
    loop = asyncio.get_running_loop()
    source = next(n for n in backend.get_input_names() if DEVICE in n)
    sink = next(n for n in backend.get_output_names() if DEVICE in n)
    echo_out = backend.open_output(sink)
    echo_in = backend.open_input(source, callback=lambda m: loop.call_soon_threadsafe(echo_out.send, m))
    try:
        return [await device.trip(PING) for _ in range(trips)]
    finally:
        echo_in.close()
        echo_out.close()


def flood(device: Device, seconds: float, stop: threading.Event) -> int:
    """Send FLOOD_RATE messages/s from a thread (as a device would, beside the loop)."""
    rng = random.Random(1)
    sent, start = 0, time.monotonic()
    while not stop.is_set() and time.monotonic() - start < seconds:
        burst = [
            rng.choice(
                [
                    mido.Message("control_change", channel=10, control=9, value=rng.randrange(128)),  # fader
                    mido.Message("control_change", channel=10, control=1, value=rng.randrange(128)),  # encoder 1
                    mido.Message("note_on", channel=10, note=rng.randrange(8, 24), velocity=rng.choice([0, 127])),
                    mido.Message("control_change", channel=3, control=rng.randrange(128), value=rng.randrange(128)),
                ]
            )
            for _ in range(FLOOD_RATE // 100)
        ]
        for message in burst:
            device.output.send(message)
        sent += len(burst)
        time.sleep(max(0.0, start + sent / FLOOD_RATE - time.monotonic()))
    return sent


async def loop_lag(seconds: float) -> float:
    """The event loop's worst lateness (s) for a 10 ms timer over ``seconds``."""
    worst, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - start - 0.01)
    return worst


async def callbacks_during(daemon: Daemon, seconds: float, device: Device | None) -> tuple[int, float, int]:
    """Audio callbacks delivered, worst loop lag, and MIDI messages ``device`` sent (None: an
    idle run), over ``seconds``."""
    before = daemon.runner.stats()["callbacks"]
    stop = threading.Event()
    sending = asyncio.to_thread(flood, device, seconds, stop) if device is not None else _nothing()
    lag, sent = await asyncio.gather(loop_lag(seconds), sending)
    stop.set()
    return daemon.runner.stats()["callbacks"] - before, lag, sent


async def _nothing() -> int:
    return 0


async def measure(trips: int, seconds: float) -> list[dict]:
    loop = asyncio.get_running_loop()
    device = Device(loop)
    daemon = Daemon(parse_config(CONFIG, "bench"), state_path=False)
    serving = asyncio.create_task(daemon.run())
    try:
        while not (daemon.ready.is_set() and daemon.surfaces.surfaces["desk"].connected):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # the connect-time feedback has come and gone
        ours = await latencies(device, trips)
        floor = await floor_latencies(device, trips)
        idle_callbacks, idle_lag, _ = await callbacks_during(daemon, seconds, None)
        dropped_before = dict(daemon.controller.dropped)
        flood_callbacks, flood_lag, sent = await callbacks_during(daemon, seconds, device)
        dropped = {
            k: n - dropped_before.get(k, 0)
            for k, n in daemon.controller.dropped.items()
            if n > dropped_before.get(k, 0)
        }
    finally:
        daemon.stop()
        await serving
        device.close()
    results = latency_rows("button_to_led", ours, floor)
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
            "name": "flood_messages",
            "ours": sent,
            "floor": None,
            "ratio": None,
            "dropped": dropped,
            "rate_per_s": round(sent / seconds),
        }
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object with a results list")
    parser.add_argument("--trips", type=int, default=300, help="button round trips per side (default 300)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the idle and flood runs (default 5)")
    args = parser.parse_args()
    with jack_server():
        results = asyncio.run(measure(args.trips, args.seconds))
    report(results, args.json)
    if args.json:
        return 0
    flood_row = results[-1]
    drops = ", ".join(f"{n} {reason}" for reason, n in flood_row["dropped"].items()) or "none"
    print(
        f"flood: {flood_row['ours']} messages at {flood_row['rate_per_s']}/s; dropped: {drops}; "
        "the rest applied (adjacent moves of one control merged)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
