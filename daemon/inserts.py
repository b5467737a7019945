"""Outboard inserts: measure the round trip, then line the dry source up with the return.

``/controlroom/insert/measure NAME`` plays white noise out of the insert's sends for
MEASURE_S, records the sends and the return from the kernel's tap (both in the same frames, so
the interface's own latency counts too), and finds the latency to the sample and the gain. The
dry source is then delayed by that latency and the return's level compensated by the gain, so
that switching in/out is time-aligned (no flam, no comb filter in the crossfade) and
loudness-matched. Results are saved with the state.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from controlroom.daemon import matching
from controlroom.dsp import layout as L
from controlroom.dsp.alignment import measure_insert

log = logging.getLogger(__name__)

#: Length of the measurement noise (s): long enough to average out hiss, short enough to wait.
MEASURE_S = 0.5
#: Longest wait (s) for the recording: the engine may stall or stop meanwhile.
RECORD_TIMEOUT_S = 10.0


class InsertError(ValueError):
    """An insert that cannot be measured; ``str()`` is the reason."""


@dataclass(frozen=True)
class InsertResult:
    """A measured insert: ``latency`` in samples at ``samplerate`` (Hz), ``gain_db`` the change
    in K-weighted pink-noise loudness (dB), ``coherence`` 0..1, ``inverted`` when it flips
    polarity."""

    latency: int
    gain_db: float
    coherence: float
    inverted: bool
    samplerate: int


class Inserts:
    """The inserts' measurements and the settings they imply for the path.

    Each measured insert's dry source is delayed by the insert's latency, so that the return
    and the dry source reach the monitor bus together; when several inserts share a dry
    source, it is delayed by the longest latency and the other returns by the difference.
    Each return is raised or lowered by the inverse of the insert's gain, a boost capped
    at ``[ab] max_boost_db`` like loudness matching's.
    """

    def __init__(self, config) -> None:
        self.config = config
        self.results: dict[str, InsertResult] = {}
        self.measuring: str | None = None

    def delay_samples(self) -> dict[str, int]:
        """Source name -> alignment delay (samples): dry sources and the returns of inserts
        that are quicker than another insert of the same dry source."""
        return alignment_delays(self.config, self.results)

    def offset_db(self) -> dict[str, float]:
        """Return-source name -> gain (dB) that undoes the insert's measured gain."""
        cap = matching.max_boost_db(self.config)
        return {n: min(-r.gain_db, cap) for n, r in self.results.items() if n in self.config.inserts}

    def aligned(self, a: str, b: str) -> bool:
        """Whether sources ``a`` and ``b`` are time-aligned copies of one signal: a dry source
        and the return of one of its measured inserts, or two such returns."""
        dry = {n: self.config.inserts[n].source for n in self.results if n in self.config.inserts}
        return a != b and dry.get(a, a) == dry.get(b, b)

    def measuring_index(self) -> int:
        """Index of the insert whose sends play the measurement noise, or -1."""
        return list(self.config.inserts).index(self.measuring) if self.measuring in self.config.inserts else -1

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Insert name -> its measurement (the state file's and state report's ``inserts``)."""
        return {n: asdict(r) for n, r in self.results.items()}

    def restore(self, saved: Any) -> list[str]:
        """Take measurements from a state file's ``inserts``; returns a warning for each that
        cannot be used (no such insert, another sample rate, malformed)."""
        if not isinstance(saved, dict):
            return [f"ignoring saved inserts: {saved!r} is not a table of measurements"]
        warnings = []
        for name, entry in saved.items():
            try:
                result = _result(entry, self.config.audio.samplerate)
            except (KeyError, TypeError, ValueError) as exc:
                warnings.append(f"ignoring the saved measurement of insert {name!r}: {exc}")
                continue
            if name not in self.config.inserts:
                warnings.append(f"ignoring the saved measurement of unknown insert {name!r}")
            elif result.samplerate != self.config.audio.samplerate:
                warnings.append(f"ignoring the measurement of insert {name!r} made at {result.samplerate} Hz: measure it again")
            else:
                self.results[name] = result
        return warnings

    def reload(self, config) -> None:
        """Adopt a new config, forgetting measurements its changes make wrong (the insert
        rewired, another sample rate)."""
        old, self.config = self.config, config
        self.results = {
            n: r for n, r in self.results.items()
            if old.inserts.get(n) == config.inserts.get(n) and r.samplerate == config.audio.samplerate
        }


def alignment_delays(config, results: dict[str, InsertResult]) -> dict[str, int]:
    """Source name -> delay (samples) that lines up every measured insert's return with its
    dry source (see ``Inserts``)."""
    measured = {n: r.latency for n, r in results.items() if n in config.inserts}
    delays: dict[str, int] = {}
    for name, latency in measured.items():
        dry = config.inserts[name].source
        delays[dry] = max(delays.get(dry, 0), latency)
    for name, latency in measured.items():
        delays[name] = delays[config.inserts[name].source] - latency
    return delays


def _result(entry: Any, samplerate: int) -> InsertResult:
    """A saved measurement, checked: latency within what the path can delay, finite gain."""
    if not isinstance(entry, dict):
        raise TypeError("not a table")
    latency = entry["latency"]
    if isinstance(latency, bool) or not isinstance(latency, int) or not 0 <= latency <= max_latency(samplerate):
        raise ValueError(f"latency {latency!r} out of range")
    gain_db, coherence = float(entry["gain_db"]), float(entry["coherence"])
    if not (math.isfinite(gain_db) and 0.0 <= coherence <= 1.0):
        raise ValueError("gain or coherence out of range")
    return InsertResult(latency, gain_db, coherence, bool(entry["inverted"]), int(entry["samplerate"]))


def max_latency(samplerate: int) -> int:
    """The longest round trip (samples) the path can align: its source delay capacity."""
    return L.delay_capacity(samplerate) - L.CHUNK - 1


def columns(config, name: str) -> tuple[int, list[int]]:
    """Tap columns of insert ``name``: its first send output, and its return inputs."""
    insert = config.inserts[name]
    n_in = config.audio.input_channels
    return n_in + insert.send[0] - 1, [c - 1 for c in insert.returns]


def analyse(config, name: str, recording: np.ndarray) -> InsertResult:
    """The insert's latency and gain from a tap recording (frames, tap width) of the noise."""
    send_col, return_cols = columns(config, name)
    # whatever went out (programme, then the noise once the kernel took the request) came
    # back through the insert: the whole recording correlates
    try:
        rate = config.audio.samplerate
        m = measure_insert(recording[:, send_col], recording[:, return_cols], max_latency(rate), rate)
    except ValueError as exc:
        raise InsertError(f"insert {name}: {exc}") from None
    return InsertResult(m.latency, round(m.gain_db, 2), round(m.coherence, 3), m.inverted, rate)


async def measure(daemon, name: str) -> InsertResult:
    """Measure insert ``name`` on ``daemon``'s running engine and apply the result.

    The return is silent on the monitors while its sends play the noise. Raises
    ``InsertError`` when the insert cannot be measured (unknown, already measuring, no
    audio, no clear return); the previous measurement then stays in force.
    """
    config, controller = daemon.config, daemon.controller
    if name not in config.inserts:
        raise InsertError(f"no insert {name!r} (expected one of {', '.join(config.inserts) or 'none'})")
    inserts = controller.inserts
    if inserts.measuring is not None:
        raise InsertError(f"insert {inserts.measuring} is being measured")
    monitor = daemon.loudness
    if monitor is None or daemon.host is None or not daemon.host.running:
        raise InsertError("audio is not running")
    rate = config.audio.samplerate
    recording = monitor.record(int(MEASURE_S * rate) + max_latency(rate))
    inserts.measuring = name
    controller.publish()
    try:
        block = await asyncio.wait_for(recording, timeout=RECORD_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise InsertError("no audio arrived for the measurement") from None
    finally:
        inserts.measuring = None
        controller.publish()
        monitor.reset_source(name)  # the noise is not programme: matching must not see it
    if daemon.config is not config:
        raise InsertError("the config was reloaded during the measurement: measure again")
    result = await asyncio.to_thread(analyse, config, name, block)

    def apply() -> None:
        inserts.results[name] = result

    if alignment_delays(config, {**inserts.results, name: result}) != inserts.delay_samples():
        # a delay line that jumps clicks: the sources fade out and back in around the change
        await controller.through_silence(apply)
    else:
        apply()
        controller.publish()
    log.info("insert %s: latency %d samples (%.2f ms), gain %+.2f dB%s", name, result.latency,
             1e3 * result.latency / rate, result.gain_db, ", polarity inverted" if result.inverted else "")
    return result
