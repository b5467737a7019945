"""Outboard inserts' bookkeeping: their measurements, and what those set in the path.

A measured insert's dry source is delayed by the round trip's latency and its return's level
compensated by the gain, so that switching in/out is time-aligned (no flam, no comb filter in
the crossfade) and loudness-matched. Measurements are saved with the state and checked when
restored. How an insert is measured: ``service.measurement``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from controlroom.daemon.core import matching
from controlroom.daemon.errors import TargetError
from controlroom.dsp import layout

log = logging.getLogger(__name__)

#: The largest gain a measurement may find (dB, either way): beyond it, no insert but a fault.
MAX_GAIN_DB = 144.0


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
        return {
            **asdict(self),
            "send": list(self.send),
            "returns": list(self.returns),
            "latency_ms": round(self.latency_ms, 3),
        }


class Inserts:
    """The inserts' measurements and the settings they imply for the path.

    Each measured insert's dry source is delayed by the insert's latency, so that the return
    and the dry source reach the monitor bus together; when several inserts share a dry
    source, it is delayed by the longest latency and the other returns by the difference.
    Each return is raised or lowered by the inverse of the insert's gain, a boost capped
    at ``[ab] max_boost_db`` like loudness matching's.

    ``busy`` names the insert being measured (one at a time), ``measuring`` the
    one whose sends play the noise, ``silenced`` the return kept off the speakers around it.
    """

    def __init__(self, config) -> None:
        self.config = config
        self.results: dict[str, InsertResult] = {}
        self.busy: str | None = None
        self.measuring: str | None = None
        self.silenced: str | None = None

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
            return [f"ignoring saved inserts: a {type(saved).__name__} is not a table of measurements"]
        warnings = []
        for name, entry in saved.items():
            try:
                result = _result(entry)
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                warnings.append(f"ignoring the saved measurement of insert {name[:40]!r}: {exc}")
                continue
            reason = result.misfit(self.config, name)
            if reason is not None:
                warnings.append(f"ignoring the saved measurement of insert {name[:40]!r}: {reason}; measure it again")
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
            raise ValueError(f"{key} {str(value)[:40]} is not a whole number")
    if whole["latency"] > max_latency(whole["samplerate"]):
        raise ValueError(f"latency {whole['latency']} out of range")
    numbers = [entry[key] for key in ("gain_db", "coherence")]
    if any(isinstance(n, bool) or not isinstance(n, int | float) for n in numbers):
        raise TypeError("gain or coherence is not a number")
    gain_db, coherence = map(float, numbers)
    if not (abs(gain_db) <= MAX_GAIN_DB and 0.0 <= coherence <= 1.0):
        raise ValueError(f"gain or coherence out of range (expected at most {MAX_GAIN_DB:g} dB either way, 0 to 1)")
    if not isinstance(entry["inverted"], bool) or not isinstance(entry["source"], str):
        raise TypeError("inverted or source of the wrong type")
    send, returns = (tuple(_channels(entry[key])) for key in ("send", "returns"))
    return InsertResult(
        whole["latency"],
        gain_db,
        coherence,
        entry["inverted"],
        whole["samplerate"],
        whole["blocksize"],
        send,
        returns,
        entry["source"],
    )


def _channels(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        raise TypeError("send or returns is not a list of channels")
    return value


def max_latency(samplerate: int) -> int:
    """The longest round trip (samples) the path can align: its source delay capacity."""
    return layout.delay_capacity(samplerate) - layout.CHUNK - 1
