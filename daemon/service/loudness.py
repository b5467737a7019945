"""Live loudness: BS.1770 meters on every source and on the monitor output.

The kernel copies the inputs the sources read and the outputs the sets play into the tap ring
(``dsp/tap.py``); this module drains the ring outside the audio thread (``drain`` runs GIL-free
numba code and is called from a worker thread) into one streaming meter per source and one for
the selected speaker set's outputs, each finding its channels' columns through the tap map the
frames were written with. Each source also keeps a window of momentary loudness values (one per 100 ms) whose
gated mean is what level matching compares: pauses are gated out like in
integrated loudness, so a break in the music does not skew the match.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from collections.abc import Callable
from functools import partial

import numpy as np

from controlroom.dsp import bs1770, layout
from controlroom.dsp.control import PathBuffers
from controlroom.dsp.tap import TapMap, TapReader, read_tap

#: Length of the matching window (s) unless configured otherwise.
MATCH_WINDOW_S = 10.0
#: Momentary loudness values per second in a matching window (one per 100 ms step).
STEPS_PER_S = 10
#: Drain period (s) while someone watches the figures or a recording waits: every step.
DRAIN_S = 1.0 / STEPS_PER_S
#: Drain period (s) otherwise: the matching windows fill all the same, with fewer wake-ups.
IDLE_DRAIN_S = 0.5
#: No drain period is longer than this part of the tap ring, so that a late one loses nothing.
RING_SHARE = 1 / 3


class SourceMeter:
    """One BS.1770 meter and its matching window."""

    def __init__(self, columns: list[int], samplerate: int, window_s: float) -> None:
        self.width = len(columns)
        self.state = bs1770.new_meter(self.width, samplerate)
        self.columns = columns
        self.segment = int(self.state[bs1770.SEGMENT_FRAMES])
        self.window: deque[float] = deque(maxlen=max(1, round(window_s * STEPS_PER_S)))

    @property
    def columns(self) -> list[int] | None:
        """Its channels' columns in the blocks fed (0-based); None while the tap does not carry
        them all (nothing is metered then)."""
        return self._columns

    @columns.setter
    def columns(self, columns: list[int] | None) -> None:
        self._columns = columns
        if columns is not None:
            bs1770.set_columns(self.state, columns)

    def feed(self, block: np.ndarray) -> None:
        """Meter ``block`` (frames, every tap column: the meter reads its own), recording
        momentary loudness at every completed 100 ms step."""
        if self._columns is None:
            return
        done = 0
        while done < block.shape[0]:
            room = self.segment - int(self.state[bs1770.POS])
            piece = block[done : done + room]
            bs1770.meter_process(self.state, piece)
            done += piece.shape[0]
            if int(self.state[bs1770.POS]) == 0:
                self.window.append(float(self.state[bs1770.MOMENTARY]))

    def filled_s(self) -> float:
        """Seconds of audio in the matching window (its length once full)."""
        return len(self.window) / STEPS_PER_S

    def window_lufs(self) -> float | None:
        """Gated loudness (LUFS) of the window: -70 LUFS absolute, then -10 LU relative gate,
        as for integrated loudness. None until the window is full (a match never acts on a
        few seconds of a song) and while nothing passes the gates (silence)."""
        values = self.window.copy()  # one step under the GIL: drain may append meanwhile
        if len(values) < values.maxlen:
            return None
        energies = np.array(values, dtype=float)
        energies = energies[energies > bs1770.ABSOLUTE_GATE_ENERGY]
        if energies.size == 0:
            return None
        relative = energies.mean() * 10.0 ** (bs1770.RELATIVE_GATE_LU / 10.0)
        gated = energies[energies > relative]
        return bs1770.lufs(float(gated.mean()))

    def figures(self) -> dict:
        m = bs1770.read_meter(self.state)
        return {
            "momentary_lufs": _finite(m.momentary_lufs),
            "short_term_lufs": _finite(m.short_term_lufs),
            "integrated_lufs": _finite(m.integrated_lufs),
            "loudness_range_lu": _finite(m.loudness_range_lu),
            "true_peak_dbtp": _finite(m.true_peak_dbtp),
            "correlation": round(m.correlation, 3) if self.width > 1 else None,
            "window_lufs": _finite(self.window_lufs()),
            "window_filled_s": self.filled_s(),
        }

    def reset(self) -> None:
        bs1770.meter_reset(self.state)
        self.window.clear()

    def reset_integrated(self) -> None:
        """Forget the integrated loudness and loudness range (their histograms); momentary,
        short-term, true peak and the matching window go on (a new take, not a new source)."""
        self.state[bs1770.I_COUNT : bs1770.S_ENERGY + bs1770.N_BINS] = 0.0


def _finite(value: float | None) -> float | None:
    return round(value, 2) if value is not None and math.isfinite(value) else None


class TapOverrun(RuntimeError):
    """Tap frames a recording needed were lost (the reader fell a whole ring behind) or are
    stale (a reload changed what the tap carries meanwhile)."""


class _Recording:
    """Tap frames of ``inputs`` then ``outputs`` (1-based channels) collected for a waiting
    coroutine, from tap frame ``start`` on (or from the first frame drained after it was asked
    for, if that is later)."""

    def __init__(
        self,
        frames: int,
        start: int,
        future: asyncio.Future,
        loop: asyncio.AbstractEventLoop,
        inputs: tuple[int, ...] = (),
        outputs: tuple[int, ...] = (),
    ) -> None:
        self.frames = frames
        self.start = start
        self.future = future
        self.loop = loop
        self.inputs = inputs
        self.outputs = outputs
        self.blocks: list[np.ndarray] = []
        self.have = 0

    def take(self, block: np.ndarray, first: int, tap: TapMap) -> bool:
        """Keep what of ``block`` (whose first row is tap frame ``first``, written with map
        ``tap``) is due; True (and the future resolved) once enough frames are in."""
        if self.future.done():  # the waiter gave up
            return True
        if first > self.start + self.have:
            if self.have:  # a gap in the middle: the ring overran, or the map changed
                return self._fail(TapOverrun(f"tap frames {self.start + self.have}-{first} lost"))
            self.start = first  # drained before the recording was asked for: it starts here
        block = block[max(0, self.start + self.have - first) :]
        if block.shape[0] == 0:
            return False
        try:
            columns = tap.columns(self.inputs, self.outputs)
        except ValueError as exc:
            return self._fail(TapOverrun(str(exc)))
        self.blocks.append(block[:, columns])
        self.have += block.shape[0]
        if self.have < self.frames:
            return False
        data = np.concatenate(self.blocks)[: self.frames]
        self.loop.call_soon_threadsafe(lambda: self.future.done() or self.future.set_result(data))
        return True

    def _fail(self, error: Exception) -> bool:
        def fail() -> None:
            if not self.future.done():
                self.future.set_exception(error)

        self.loop.call_soon_threadsafe(fail)
        return True


class LoudnessMonitor:
    """Meters for every source of ``config`` and for the monitor output, fed from the tap.

    ``drain()`` may run in a worker thread; the figures it leaves are read from the event
    loop (plain Python floats and small arrays, read whole). What the event loop asks of the
    meters (follow other outputs, restart a source, record) waits in a queue that ``drain``
    takes up first, so the loop never waits on a lock that metering holds.

    Args:
        buffers: the engine's buffers, whose tap is metered.
        config: what the sources are (their 1-based input channels).
        window_s: length of each source's matching window (s).
        wake: set whenever something is asked of the meters (a recording, a reset), so that
            the thread that drains them does so now rather than at its next idle turn.
    """

    def __init__(
        self, buffers: PathBuffers, config, window_s: float = MATCH_WINDOW_S, wake: threading.Event | None = None
    ) -> None:
        self.buffers = buffers
        self.wake = wake if wake is not None else threading.Event()
        self.samplerate = buffers.spec.samplerate
        self.reader = TapReader(buffers)
        self.sources = {
            name: SourceMeter(self._columns(src.channels, ()), self.samplerate, window_s)
            for name, src in config.sources.items()
        }
        self._channels = {name: tuple(src.channels) for name, src in config.sources.items()}
        self.monitor: SourceMeter | None = None
        self.monitor_outputs: tuple[int, ...] = ()
        self._lock = threading.Lock()
        self._recordings: list[_Recording] = []
        self._requests: deque[Callable[[], None]] = deque()  # appended by the loop, run by drain

    def _columns(self, inputs: tuple[int, ...], outputs: tuple[int, ...]) -> list[int] | None:
        """The tap columns of ``inputs`` then ``outputs`` under the reader's map; None when
        it does not carry them all."""
        try:
            return self.reader.map.columns(inputs, outputs)
        except ValueError:
            return None

    def record(
        self, frames: int, start: int = 0, inputs: tuple[int, ...] = (), outputs: tuple[int, ...] = ()
    ) -> asyncio.Future:
        """A future for ``frames`` frames of ``inputs`` then ``outputs`` (1-based channels,
        which the tap must carry) from tap frame ``start`` (a count of
        ``counters[C_TAP_WRITE]``; frames already drained are not kept): (frames, channels)
        float32, or ``TapOverrun`` when frames it needed were lost."""
        self.buffers.tap.columns(inputs, outputs)  # raises ValueError for a channel not tapped
        loop = asyncio.get_running_loop()
        recording = _Recording(frames, start, loop.create_future(), loop, tuple(inputs), tuple(outputs))
        # looked up when drain runs it, not now: each drain replaces the list, and one may be
        # between taking its requests and replacing the list at this moment
        self._ask(lambda: self._recordings.append(recording))
        return recording.future

    def _ask(self, request: Callable[[], None]) -> None:
        self._requests.append(request)
        self.wake.set()

    def period_s(self, watched: bool) -> float:
        """Seconds until the next ``drain``: ``DRAIN_S`` while ``watched`` (someone reads the
        figures) or a recording or request waits, else ``IDLE_DRAIN_S``; at most
        ``RING_SHARE`` of the tap ring (about 0.11 s at 192 kHz)."""
        busy = watched or bool(self._recordings) or bool(self._requests)
        return min(DRAIN_S if busy else IDLE_DRAIN_S, RING_SHARE * layout.TAP_FRAMES / self.samplerate)

    def follow_outputs(self, outputs: tuple[int, ...]) -> None:
        """Meter ``outputs`` (1-based) as the monitor output from the next ``drain`` on (a set
        switch)."""
        self._ask(partial(self._follow, outputs))

    def _follow(self, outputs: tuple[int, ...]) -> None:
        if outputs != self.monitor_outputs:
            self.monitor_outputs = outputs
            self.monitor = SourceMeter(self._columns((), outputs), self.samplerate, MATCH_WINDOW_S)

    def drain(self) -> int:
        """Meter everything the kernel has tapped since the last call; returns frames."""
        with self._lock:
            while self._requests:
                self._requests.popleft()()
            tap = self.reader.map
            block, first = self.reader.take()
            if self.reader.map is not tap:  # a reload changed what the tap carries
                for name, meter in self.sources.items():
                    meter.columns = self._columns(self._channels[name], ())
                if self.monitor is not None:
                    self.monitor.columns = self._columns((), self.monitor_outputs)
            for meter in self.sources.values():
                meter.feed(block)
            if self.monitor is not None:
                self.monitor.feed(block)
            self._recordings = [r for r in self._recordings if not r.take(block, first, self.reader.map)]
            return block.shape[0]

    def window_lufs(self, source: str) -> float | None:
        """``source``'s gated loudness over its full matching window (``SourceMeter.window_lufs``)."""
        return self.sources[source].window_lufs()

    def window_filled_s(self, source: str) -> float:
        """Seconds of audio in ``source``'s matching window."""
        return self.sources[source].filled_s()

    def reset_source(self, source: str) -> None:
        """Start ``source``'s meter and matching window afresh (what it played was not
        programme: an insert's measurement noise), from the next ``drain`` on."""
        if source in self.sources:
            self._ask(self.sources[source].reset)

    def reset_integrated(self) -> None:
        """Start the integrated loudness and loudness range of the monitor and of every source
        afresh from the next ``drain`` on; the matching windows are kept (matching goes on)."""
        self._ask(self._reset_integrated)

    def _reset_integrated(self) -> None:
        for meter in (*self.sources.values(), *([self.monitor] if self.monitor is not None else [])):
            meter.reset_integrated()

    def report(self) -> dict:
        with self._lock:
            out = {"sources": {name: m.figures() for name, m in self.sources.items()}}
            if self.monitor is not None:
                out["monitor"] = {"outputs": list(self.monitor_outputs), **self.monitor.figures()}
            return out


def compile_meters(buffers: PathBuffers) -> None:
    """Run every compiled function the meters and the control plane use once, on scratch
    copies, so that numba compiles them (or loads them from its cache) here — in the engine
    runner's worker thread, on a first start — rather than later: a compile holds the GIL, and
    one in the first drain or the first control change would stall the event loop for seconds.

    The meters are fed as ``drain`` feeds them (numba compiles a version per array type and
    layout): C-ordered tap blocks, whole and split at the end of a 100 ms step.

    Publishing comes first: every control change calls it on the event loop, and numba compiles
    under one lock, so a change (or the fade of a stop) that found it missing would wait there
    for the whole engine's compile."""
    buffers.compile_publish()
    width = buffers.tap.width
    scratch = np.zeros((layout.TAP_FRAMES, width), np.float32)
    meter = SourceMeter([0], buffers.spec.samplerate, 1.0)
    meter.feed(scratch[: meter.segment + 2])
    meter.figures()
    meter.reset()
    counters = buffers.counters.copy()
    read_tap(buffers.meters, counters, 0, counters[layout.C_TAP_GEN], width, scratch)
