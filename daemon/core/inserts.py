"""Outboard inserts: measure the round trip, then line the dry source up with the return.

``/controlroom/insert/measure NAME`` plays white noise out of the insert's sends for
MEASURE_S, records the sends and the return from the kernel's tap (both in the same frames, so
the interface's own latency counts too), and finds the latency to the sample and the gain. The
dry source is then delayed by that latency and the return's level compensated by the gain, so
that switching in/out is time-aligned (no flam, no comb filter in the crossfade) and
loudness-matched. Results are saved with the state.

The noise never reaches the speakers or the loudness matching: the return is faded out before
the noise starts and faded back in only once the noise in it has died away (the gear's latency
and its own tail), and its meters start afresh then.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from controlroom.daemon.core import matching
from controlroom.daemon.errors import TargetError
from controlroom.daemon.service.loudness import TapOverrun
from controlroom.dsp import layout
from controlroom.dsp.alignment import measure_insert

log = logging.getLogger(__name__)

#: Length of the measurement noise (s): long enough to average out hiss, short enough to wait.
MEASURE_S = 0.5
#: Longest wait (s) for each step of a measurement: the engine may stall or stop meanwhile.
STEP_TIMEOUT_S = 5.0
#: The return is back on the speakers once the noise in it has fallen this far (dB) ...
TAIL_DROP_DB = 60.0
#: ... or this long (s) after the noise stopped (hiss that never falls, a long reverb).
TAIL_MAX_S = 2.0
#: How long ``ctl insert measure`` may wait for the answer beyond its own timeout (s).
MEASURE_TIMEOUT_S = 4 * STEP_TIMEOUT_S
POLL_S = 0.005


class InsertError(TargetError):
    """An insert that cannot be measured; ``str()`` is the reason."""


@dataclass(frozen=True)
class InsertResult:
    """A measured insert: ``latency`` in samples, ``gain_db`` the change in K-weighted
    pink-noise loudness (dB), ``coherence`` 0..1, ``inverted`` when it flips polarity; and
    what it was measured with (sample rate in Hz, block size in frames, the insert's 1-based
    send outputs and return inputs, its source), on which the latency depends."""

    latency: int
    gain_db: float
    coherence: float
    inverted: bool
    samplerate: int
    blocksize: int
    send: tuple[int, ...]
    returns: tuple[int, ...]
    source: str

    @property
    def latency_ms(self) -> float:
        return 1e3 * self.latency / self.samplerate

    def misfit(self, config, name: str) -> str | None:
        """Why this measurement of insert ``name`` no longer holds under ``config``, or None."""
        insert = config.inserts.get(name)
        if insert is None:
            return "no such insert"
        if (self.send, self.returns, self.source) != (insert.send, insert.returns, insert.source):
            return "its send, return or source has changed"
        audio = config.audio
        if (self.samplerate, self.blocksize) != (audio.samplerate, audio.blocksize):
            return f"it was made at {self.samplerate} Hz, {self.blocksize} frames"
        return None

    def as_dict(self) -> dict[str, Any]:
        """As saved and reported (JSON types), with the latency in ms too."""
        return {**asdict(self), "send": list(self.send), "returns": list(self.returns),
                "latency_ms": round(self.latency_ms, 3)}


class Inserts:
    """The inserts' measurements and the settings they imply for the path.

    Each measured insert's dry source is delayed by the insert's latency, so that the return
    and the dry source reach the monitor bus together; when several inserts share a dry
    source, it is delayed by the longest latency and the other returns by the difference.
    Each return is raised or lowered by the inverse of the insert's gain, a boost capped
    at ``[ab] max_boost_db`` like loudness matching's.

    ``busy`` names the insert being measured (``lock`` is held meanwhile), ``measuring`` the
    one whose sends play the noise, ``silenced`` the return kept off the speakers around it.
    """

    def __init__(self, config) -> None:
        self.config = config
        self.results: dict[str, InsertResult] = {}
        self.busy: str | None = None
        self.measuring: str | None = None
        self.silenced: str | None = None
        self.lock = asyncio.Lock()

    def delay_samples(self) -> dict[str, int]:
        """Source name -> alignment delay (samples): dry sources and the returns of inserts
        that are quicker than another insert of the same dry source."""
        return alignment_delays(self.results)

    def offset_db(self) -> dict[str, float]:
        """Return-source name -> gain (dB) that undoes the insert's measured gain."""
        cap = matching.max_boost_db(self.config)
        return {n: min(-r.gain_db, cap) for n, r in self.results.items()}

    def aligned(self, a: str, b: str) -> bool:
        """Whether sources ``a`` and ``b`` are time-aligned copies of one signal: a dry source
        and the return of one of its measured inserts, or two such returns."""
        dry = {n: r.source for n, r in self.results.items()}
        return a != b and dry.get(a, a) == dry.get(b, b)

    def measuring_index(self) -> int:
        """Index of the insert whose sends play the measurement noise, or -1."""
        return list(self.config.inserts).index(self.measuring) if self.measuring in self.config.inserts else -1

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Insert name -> its measurement (the state file's and state report's ``inserts``)."""
        return {n: r.as_dict() for n, r in self.results.items()}

    def restore(self, saved: Any) -> list[str]:
        """Take measurements from a state file's ``inserts``; returns a warning for each that
        cannot be used (malformed, or no longer fitting the config)."""
        if not isinstance(saved, dict):
            return [f"ignoring saved inserts: {saved!r} is not a table of measurements"]
        warnings = []
        for name, entry in saved.items():
            try:
                result = _result(entry)
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                warnings.append(f"ignoring the saved measurement of insert {name!r}: {exc}")
                continue
            reason = result.misfit(self.config, name)
            if reason is not None:
                warnings.append(f"ignoring the saved measurement of insert {name!r}: {reason}; measure it again")
            else:
                self.results[name] = result
        return warnings

    def reload(self, config) -> list[str]:
        """Adopt a new config, forgetting the measurements it makes wrong; a warning for each."""
        self.config = config
        warnings = []
        for name, result in list(self.results.items()):
            reason = result.misfit(config, name)
            if reason is not None:
                del self.results[name]
                warnings.append(f"forgetting the measurement of insert {name!r}: {reason}; measure it again")
        return warnings


def check(config, name: Any) -> None:
    """Raise ``InsertError`` unless ``name`` is an insert of ``config``."""
    if not isinstance(name, str) or name not in config.inserts:
        raise InsertError(f"no insert {name!r} (expected one of {', '.join(config.inserts) or 'none'})")


def alignment_delays(results: dict[str, InsertResult]) -> dict[str, int]:
    """Source name -> delay (samples) that lines up every measured insert's return with its
    dry source (see ``Inserts``)."""
    delays: dict[str, int] = {}
    for r in results.values():
        delays[r.source] = max(delays.get(r.source, 0), r.latency)
    for name, r in results.items():
        delays[name] = delays[r.source] - r.latency
    return delays


def _result(entry: Any) -> InsertResult:
    """A saved measurement, checked: types, a latency the path can delay, finite gain."""
    if not isinstance(entry, dict):
        raise TypeError("not a table")
    whole = {key: entry[key] for key in ("latency", "samplerate", "blocksize")}
    for key, value in whole.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} {value!r} is not a whole number")
    if whole["latency"] > max_latency(whole["samplerate"]):
        raise ValueError(f"latency {whole['latency']} out of range")
    gain_db, coherence = float(entry["gain_db"]), float(entry["coherence"])
    if not (math.isfinite(gain_db) and 0.0 <= coherence <= 1.0):
        raise ValueError("gain or coherence out of range")
    if not isinstance(entry["inverted"], bool) or not isinstance(entry["source"], str):
        raise TypeError("inverted or source of the wrong type")
    send, returns = (tuple(_channels(entry[key])) for key in ("send", "returns"))
    return InsertResult(whole["latency"], gain_db, coherence, entry["inverted"], whole["samplerate"],
                        whole["blocksize"], send, returns, entry["source"])


def _channels(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        raise TypeError(f"{value!r} is not a list of channels")
    return value


def max_latency(samplerate: int) -> int:
    """The longest round trip (samples) the path can align: its source delay capacity."""
    return layout.delay_capacity(samplerate) - layout.CHUNK - 1


def columns(config, name: str) -> tuple[int, list[int]]:
    """0-based tap columns of insert ``name``: its first send output, and its return inputs."""
    insert = config.inserts[name]
    n_in = config.audio.input_channels
    return n_in + insert.send[0] - 1, [c - 1 for c in insert.returns]


def analyse(config, name: str, recording: np.ndarray) -> InsertResult:
    """The insert's latency and gain from a tap recording (frames, tap width) that starts with
    the noise."""
    send_col, return_cols = columns(config, name)
    audio, insert = config.audio, config.inserts[name]
    try:
        m = measure_insert(recording[:, send_col], recording[:, return_cols], max_latency(audio.samplerate),
                           audio.samplerate)
    except ValueError as exc:
        raise InsertError(f"insert {name}: {exc}") from None
    return InsertResult(m.latency, round(m.gain_db, 2), round(m.coherence, 3), m.inverted, audio.samplerate,
                        audio.blocksize, insert.send, insert.returns, insert.source)


async def measure(daemon, name: str) -> InsertResult:
    """Measure insert ``name`` on ``daemon``'s running engine and apply the result.

    Raises ``InsertError`` when the insert cannot be measured (unknown, already being
    measured, no audio, no clear return, the engine restarted or the config reloaded
    meanwhile); the previous measurement then stays in force.
    """
    config, controller = daemon.config, daemon.controller
    check(config, name)
    inserts = controller.inserts
    if inserts.lock.locked():
        raise InsertError(f"insert {inserts.busy} is being measured")
    async with inserts.lock:
        inserts.busy = name
        try:
            recording = await _record_noise(_Engine(daemon), name)
            result = await asyncio.to_thread(analyse, config, name, recording)

            def apply() -> None:
                if daemon.config is not config:
                    raise InsertError("the config was reloaded during the measurement: measure again")
                inserts.results[name] = result

            if alignment_delays({**inserts.results, name: result}) != inserts.delay_samples():
                # a delay line that jumps clicks: the sources fade out and back in around the change
                await controller.through_silence(apply)
            else:
                apply()
                controller.publish()
        finally:
            inserts.busy = None
    log.info("insert %s: latency %d samples (%.2f ms), gain %+.2f dB%s", name, result.latency, result.latency_ms,
             result.gain_db, ", polarity inverted" if result.inverted else "")
    return result


async def _record_noise(engine: _Engine, name: str) -> np.ndarray:
    """Play the noise through insert ``name`` and record the tap from its first frame on.

    The return is faded out first, and faded back in, its meters restarted, only once the
    noise has stopped and died away in the return (the gear's latency and any tail of its
    own) and every frame that carried it has been metered.
    """
    controller, inserts = engine.daemon.controller, engine.daemon.controller.inserts
    rate = engine.daemon.config.audio.samplerate
    _, returns = columns(engine.daemon.config, name)
    inserts.silenced = name
    level = 0.0
    try:
        controller.publish()
        await controller.wait_faded(name)
        inserts.measuring = name
        controller.publish()
        await engine.until(engine.applied, "the engine to take the measurement")
        recording = await engine.record(int(MEASURE_S * rate) + max_latency(rate), engine.tap_frame())
        level = _rms(recording[:, returns])
        return recording
    finally:
        inserts.measuring = None
        controller.publish()
        try:
            await engine.until(engine.applied, "the engine to stop the noise")
            await _wait_for_the_tail(engine, returns, level, rate)
        except InsertError as exc:  # the measurement failed already, or cannot finish cleanly
            log.debug("insert %s: %s", name, exc)
        finally:
            for monitor in {engine.monitor, engine.daemon.loudness} - {None}:
                monitor.reset_source(name)
            inserts.silenced = None
            controller.publish()


async def _wait_for_the_tail(engine: _Engine, returns: list[int], level: float, rate: int) -> None:
    """Until the return (tap columns ``returns``) has fallen TAIL_DROP_DB below ``level``
    (its RMS during the noise), at most TAIL_MAX_S after the noise stopped."""
    chunk = rate // 20
    position = engine.tap_frame()
    floor = level * 10.0 ** (-TAIL_DROP_DB / 20.0)
    for _ in range(round(TAIL_MAX_S * rate / chunk)):
        block = await engine.record(chunk, position)
        position += chunk
        if _rms(block[:, returns]) <= floor:
            return


def _rms(block: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(block, dtype=np.float64)))) if block.size else 0.0


class _Engine:
    """The audio engine a measurement started on: its buffers and tap reader. Every wait
    fails with ``InsertError`` once that engine has stopped or been replaced (a device loss, a
    reload that rebuilds the stream)."""

    def __init__(self, daemon) -> None:
        if daemon.loudness is None or daemon.host is None or not daemon.host.running:
            raise InsertError("audio is not running")
        self.daemon = daemon
        self.buffers = daemon.controller.buffers
        self.monitor = daemon.loudness

    def applied(self) -> bool:
        """The kernel runs the latest published parameters."""
        return self.buffers.counters[layout.C_APPLIED] == self.buffers.counters[layout.C_SEQ]

    def tap_frame(self) -> int:
        """Frames the kernel has written into the tap so far."""
        return int(self.buffers.counters[layout.C_TAP_WRITE])

    def check(self) -> None:
        d = self.daemon
        if (d.controller.buffers is not self.buffers or d.loudness is not self.monitor
                or d.host is None or not d.host.running):
            raise InsertError("the audio engine stopped or restarted during the measurement: measure again")

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Poll ``condition`` every POLL_S; InsertError naming ``what`` after STEP_TIMEOUT_S."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_TIMEOUT_S
        while not condition():
            self.check()
            if loop.time() > deadline:
                raise InsertError(f"no audio while waiting for {what}")
            await asyncio.sleep(POLL_S)

    async def record(self, frames: int, start: int) -> np.ndarray:
        """``frames`` frames of the tap from tap frame ``start``."""
        recording = self.monitor.record(frames, start)
        try:
            await self.until(recording.done, "the recording")
            return recording.result()
        except TapOverrun:
            raise InsertError("the meters fell behind and lost audio: measure again") from None
        finally:
            recording.cancel()
