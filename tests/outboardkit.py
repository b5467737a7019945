"""An outboard rack for the daemon under test: gpiozero's MockFactory whose pins also note the
audio frame at each edge, and a recording of every output from the first frame on.

The oracles are the pins' own histories (``MockPin.states``: each state with the seconds since
the one before) turned into absolute ``time.monotonic()`` instants, and the audio the kernel
wrote around each edge, read from its tap.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
from daemonkit import OutputTap, until
from gpiozero import Device, PinError
from gpiozero.pins.mock import MockFactory, MockPin

from controlroom.dsp import layout

#: Below this a sample is silence (-80 dBFS): a fade's last steps and EQ tails lie far below it.
SILENCE = 1e-4
#: Frames either side of a relay edge that must be silent (a few blocks of 256).
EDGE_WINDOW = 1024

RACK_TOML = """
[audio]
backend = "virtual"
blocksize = 256

[monitor]
volume_db = -10.0
startup_max_volume_db = -10.0

[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]

[speakers.near]
outputs = [1, 2]
power = ["amp-near"]
relays = ["relay-near"]
[speakers.far]
outputs = [3, 4]
power = ["amp-far"]
relays = ["relay-far"]
[speakers.cube]
outputs = [5]
power = ["amp-cube"]

[[outboard]]
name = "amp-near"
gpio = 5
active_high = false
[[outboard]]
name = "amp-far"
gpio = 6
active_high = false
[[outboard]]
name = "amp-cube"
gpio = 13
[[outboard]]
name = "relay-near"
gpio = 17
active_high = false
[[outboard]]
name = "relay-far"
gpio = 27
active_high = false

[sequencing]
on_delay_ms = {on_delay_ms}
settle_ms = {settle_ms}
power_policy = "{policy}"

[osc]
listen = "127.0.0.1:0"
"""
PINS = {
    "amp-near": (5, False),
    "amp-far": (6, False),
    "amp-cube": (13, True),
    "relay-near": (17, False),
    "relay-far": (27, False),
}
AMPS = ("amp-near", "amp-far", "amp-cube")
RELAYS = ("relay-near", "relay-far")
OUTPUTS = 5


@dataclass(frozen=True)
class Edge:
    """An output switching: ``time`` (monotonic s), ``on`` (the output's sense, not the pin
    level), ``frame``: the tap frame the audio had reached (None before audio ran)."""

    name: str
    time: float
    on: bool
    frame: int | None


class WatchedPin(MockPin):
    """A mock pin that notes, at each change, how far the daemon's audio had got."""

    frames = None  # () -> the tap's write position, or None (set by the rack)
    failing = False  # set on a pin: it refuses to change, as a broken GPIO line would

    def _change_state(self, value):
        if self.failing:
            raise PinError(f"{self.info.name}: mock failure")
        changed = super()._change_state(value)
        if changed:
            self.edge_frames.append(WatchedPin.frames() if WatchedPin.frames else None)
        return changed

    @property
    def edge_frames(self) -> list:
        if not hasattr(self, "_edge_frames"):
            self._edge_frames = [None]  # the pin's creation: its first history entry
        return self._edge_frames


class Rack:
    """The mock pins of ``PINS``, their histories as edges, and the audio recorded."""

    def __init__(self) -> None:
        self.factory = MockFactory(pin_class=WatchedPin)
        Device.pin_factory = self.factory
        self.daemon = None
        self.audio: list[np.ndarray] = []
        self.audio_start = 0

    def close(self) -> None:
        self.factory.reset()
        Device.pin_factory = None
        WatchedPin.frames = None

    def pin(self, name: str) -> WatchedPin:
        return self.factory.pin(PINS[name][0])

    def history(self, name: str) -> list[tuple[float, bool, int | None]]:
        """The pin's levels with absolute times: (monotonic s, level, tap frame)."""
        pin = self.pin(name)
        total = sum(s.timestamp for s in pin.states[1:])
        t = pin._last_change - total  # the pin's creation
        history = []
        for state, frame in zip(pin.states, pin.edge_frames):
            t += state.timestamp if history else 0.0
            history.append((t, bool(state.state), frame))
        return history

    def edges(self, name: str) -> list[Edge]:
        """The output's switchings after its creation, in its own sense (on/off)."""
        active_high = PINS[name][1]
        return [Edge(name, t, level == active_high, frame) for t, level, frame in self.history(name)[1:]]

    def all_edges(self) -> list[Edge]:
        return sorted((e for name in PINS for e in self.edges(name)), key=lambda e: e.time)

    def is_on(self, name: str) -> bool:
        return self.pin(name).state == PINS[name][1]

    def recorded(self) -> np.ndarray:
        """Every output the kernel wrote since its first frame, (frames, OUTPUTS)."""
        return np.concatenate(self.audio) if self.audio else np.zeros((0, OUTPUTS), np.float32)

    def around(self, edge: Edge) -> np.ndarray:
        """The recorded audio ``EDGE_WINDOW`` frames either side of ``edge``."""
        at = edge.frame - self.audio_start
        return self.recorded()[max(0, at - EDGE_WINDOW) : at + EDGE_WINDOW]

    async def record(self, daemon) -> None:
        """Record every output from the first frame the kernel wrote, until cancelled (one read
        after)."""
        await until(lambda: daemon.controller is not None and daemon.controller.buffers is not None, "kernel buffers")
        buffers = daemon.controller.buffers
        WatchedPin.frames = lambda: int(buffers.counters[layout.C_TAP_WRITE])
        tap = OutputTap(daemon, outputs=OUTPUTS, start=0)
        try:
            while True:
                self.audio.append(tap.take())
                await asyncio.sleep(0.02)
        finally:
            self.audio.append(tap.take())


@asynccontextmanager
async def rack_daemon(rack: Rack, text: str, program: np.ndarray, state_path=None):
    """A daemon (virtual backend, in-process) on ``rack``, recorded from its first frame;
    stopped after as SIGTERM stops it, unless a SIGTERM did (exit 0 checked). The histories
    stay readable after."""
    from controlroom.daemon.config import parse_config
    from controlroom.daemon.service import Daemon

    daemon = Daemon(parse_config(text), None, state_path=state_path, program=program)
    serving = asyncio.create_task(daemon.run())
    recording = asyncio.create_task(rack.record(daemon))
    rack.daemon = daemon
    try:
        await until(lambda: serving.done() or (daemon.runner is not None and daemon.runner.running), "audio")
        if serving.done():
            serving.result()
        yield daemon
    finally:
        daemon.stop()
        status = await serving
        recording.cancel()
        await asyncio.gather(recording, return_exceptions=True)
        assert status == 0


async def idle(daemon) -> None:
    """Until no outboard sequence runs (start-up included)."""
    await until(lambda: daemon.outboard.playing is not None and daemon.outboard.sequence is None, "sequence idle")


def peak(x: np.ndarray) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


def now() -> float:
    return time.monotonic()


def print_sequence(title: str, edges: list[Edge]) -> None:
    """The edges as a table of ms from the first (``pytest -s`` shows it: the figures of record)."""
    if not edges:
        return
    t0 = edges[0].time
    print(f"\n{title}")
    for e in edges:
        print(f"  {1000 * (e.time - t0):9.1f} ms  {e.name:<11} {'on' if e.on else 'off'}")
