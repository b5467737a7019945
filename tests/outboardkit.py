"""An outboard rack for the daemon under test: gpiozero's MockFactory whose pins also note the
audio frame at each edge, and a recording of every output from the first frame on.

The oracles are the pins' own histories (``MockPin.states``: each state with the seconds since
the one before) turned into absolute ``time.monotonic()`` instants, the audio the kernel
wrote around each edge, read from its tap, and whether audio ran at that edge.
"""

from __future__ import annotations

import asyncio
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
delay_ms = {near_delay_ms}
power = ["amp-near"]
relays = ["relay-near"]
[speakers.far]
outputs = [3, 4]
delay_ms = 10.0
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
    level), ``frame``: the tap frame the audio had reached (None: no audio ran then, before
    the stream opened or after it closed)."""

    name: str
    time: float
    on: bool
    frame: int | None


class WatchedPin(MockPin):
    """A mock pin that notes, at each change, how far the daemon's audio had got."""

    frames = None  # () -> the tap's write position, or None while no audio runs (set by the rack)
    failing = False  # set on a pin: it refuses to change, as a broken GPIO line would
    changed = None  # set on a pin: called (no arguments) on the loop's next turn after each change

    def _change_state(self, value):
        if self.failing:
            raise PinError(f"{self.info.name}: mock failure")
        changed = super()._change_state(value)
        if changed:
            self.edge_frames.append(WatchedPin.frames() if WatchedPin.frames else None)
            if self.changed is not None:
                asyncio.get_running_loop().call_soon(self.changed)
        return changed

    @property
    def edge_frames(self) -> list:
        if not hasattr(self, "_edge_frames"):
            self._edge_frames = [None]  # the pin's creation: its first history entry
        return self._edge_frames


class Rack:
    """The mock pins of ``PINS``, their histories as edges, and the audio recorded. The pins
    are held from the start: a daemon that lets a pin go may take it out of the factory."""

    def __init__(self) -> None:
        self.factory = MockFactory(pin_class=WatchedPin)
        Device.pin_factory = self.factory
        self.pins = {name: self.factory.pin(gpio) for name, (gpio, _) in PINS.items()}
        self.daemon = None
        self.audio: list[np.ndarray] = []

    def close(self) -> None:
        for pin in self.pins.values():
            pin.changed = None
        self.factory.reset()
        Device.pin_factory = None
        WatchedPin.frames = None

    def pin(self, name: str) -> WatchedPin:
        return self.pins[name]

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
        """The recorded audio ``EDGE_WINDOW`` frames either side of ``edge`` (all of the
        frames before it: the edge happened while audio ran)."""
        recorded = self.recorded()
        assert edge.frame >= EDGE_WINDOW, f"{edge}: less than a window of audio before it"
        assert len(recorded) >= edge.frame, f"{edge}: the audio before it was not recorded"
        return recorded[edge.frame - EDGE_WINDOW : edge.frame + EDGE_WINDOW]

    async def played(self, frames: int) -> np.ndarray:
        """Until ``frames`` more frames are recorded; the recording from where it was."""
        start = len(self.recorded())
        await until(lambda: len(self.recorded()) >= start + frames, f"{frames} frames of audio")
        return self.recorded()[start:]

    async def record(self, daemon) -> None:
        """Record every output from the first frame the kernel wrote, until cancelled (one read
        after)."""
        await until(lambda: daemon.controller is not None and daemon.controller.buffers is not None, "kernel buffers")
        buffers = daemon.controller.buffers
        runner = daemon.runner

        def frames() -> int | None:
            return int(buffers.counters[layout.C_TAP_WRITE]) if runner.running else None

        WatchedPin.frames = frames
        tap = OutputTap(daemon, outputs=OUTPUTS, start=0)
        try:
            while True:
                self.audio.append(tap.take())
                await asyncio.sleep(0.02)
        finally:
            self.audio.append(tap.take())


@asynccontextmanager
async def rack_daemon(rack: Rack, text: str, program: np.ndarray, state_path=None, config_path=None, status=0):
    """A daemon (virtual backend, in-process) on ``rack``, recorded from its first frame;
    stopped after as SIGTERM stops it, unless something else did, and its exit ``status``
    checked. ``config_path``: the config is written there (SIGHUP re-reads it). The histories
    stay readable after."""
    from controlroom.daemon.config import load_config, parse_config
    from controlroom.daemon.service import Daemon

    if config_path is not None:
        config_path.write_text(text)
        config = load_config(config_path)
    else:
        config = parse_config(text)
    daemon = Daemon(config, config_path, state_path=state_path, program=program)
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
        ended = await serving
        recording.cancel()
        try:
            await recording
        except asyncio.CancelledError:
            pass
        assert ended == status


async def idle(daemon) -> None:
    """Until no outboard sequence runs (start-up included)."""
    await until(lambda: daemon.outboard.playing is not None and daemon.outboard.sequence is None, "sequence idle")


def peak(x: np.ndarray) -> float:
    assert x.size, "no audio to measure"
    return float(np.max(np.abs(x)))


def print_sequence(title: str, edges: list[Edge]) -> None:
    """The edges as a table of ms from the first (``pytest -s`` shows it: the figures of record)."""
    if not edges:
        return
    t0 = edges[0].time
    print(f"\n{title}")
    for e in edges:
        print(f"  {1000 * (e.time - t0):9.1f} ms  {e.name:<11} {'on' if e.on else 'off'}")
