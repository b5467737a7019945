"""Speaker calibration's bookkeeping: the measured outputs, and the trims and delays they imply.

A calibration measures each output (a speaker) at the listening position: its level at the
mic for band-limited pink noise at ``[calibration] noise_dbfs`` and its arrival time. From
those, each output gets a trim that brings it to the common level (``target_spl_db`` with a
calibrated mic, else the level the quietest output had), and each output of a speaker set a
delay that makes it arrive with the set's latest. The test signal is measured after the
path's trims and delays, so the path adds to the config's ``trim_db`` and ``delay_ms`` what
makes a calibrated output's sum the calibrated one (``trims_db``, ``delays_ms``): hand-set
offsets are superseded, not counted twice, and the config stays the user's. The results are
saved with the state and checked when restored. How outputs are measured:
``service.calibration``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from controlroom.daemon.core.path import emulation_profile
from controlroom.daemon.errors import TargetError
from controlroom.dsp.calibration import alignment_delays, power_mean_db, spl_db

#: The level (dBFS RMS) of pink noise that ``volume_spl_db`` refers to (K-20, as
#: ``[monitor] reference_spl_db``).
REFERENCE_NOISE_DBFS = -20.0
#: The largest calibration cut (dB): a speaker that needs more plays far too loud for its
#: amplifier's setting (turn the amplifier down instead). Results past it are refused when
#: measured and when restored, so a saved cut always comes back.
MAX_CUT_DB = 40.0
#: The longest arrival (s) a saved result may have: the interface's latency and the room.
MAX_SAVED_ARRIVAL_S = 1.0
#: The test signal's fade-out when a run is stopped or fails, or the daemon stops (ms): at
#: once, but still without a click.
ABORT_FADE_MS = 10.0


class CalibrationError(TargetError):
    """A calibration that cannot be made or was stopped; ``str()`` says why (and which output)."""


@dataclass(frozen=True)
class OutputResult:
    """One output as measured: ``level_db`` at the mic (dBFS in the test band, room noise taken
    out) for the test signal at ``noise_dbfs``, ``snr_db`` over the room's noise (inf for a
    room with none; None when saved), ``arrival``
    (samples at ``samplerate`` Hz from the output to the mic, the interface's latency
    included), and ``trim_db``, the calibration's trim."""

    level_db: float
    snr_db: float
    arrival: int
    samplerate: int
    trim_db: float

    @property
    def arrival_ms(self) -> float:
        return 1e3 * self.arrival / self.samplerate

    def as_dict(self, mic_dbfs_at_94_db_spl: float | None) -> dict[str, Any]:
        """As saved and reported (JSON types): the measurement, arrival in ms, and the level in
        dB SPL (None without a calibrated mic)."""
        spl = None if mic_dbfs_at_94_db_spl is None else round(spl_db(self.level_db, mic_dbfs_at_94_db_spl), 2)
        # JSON has no infinity: a room with no noise at all in the band gives an unbounded SNR
        snr = self.snr_db if math.isfinite(self.snr_db) else None
        return {**asdict(self), "snr_db": snr, "arrival_ms": round(self.arrival_ms, 3), "spl_db": spl}


def set_outputs(config, name: str) -> tuple[int, ...]:
    """The 1-based outputs of speaker set ``name``: its speakers, then its subwoofer."""
    s = config.speakers[name]
    return s.channels + ((s.sub.output,) if s.sub is not None else ())


def solve_trims(
    levels: dict[int, float], reference_db: float, max_boost_db: float, target: str | None = None
) -> dict[int, float]:
    """Output -> trim (dB) that brings its ``levels`` (dB) to ``reference_db``. Raises
    CalibrationError naming every output that would need more than ``max_boost_db``, and the
    target as ``target`` says it (default: the reference in dB), or a cut of more than
    MAX_CUT_DB."""
    if not all(math.isfinite(v) for v in (*levels.values(), reference_db)):
        raise CalibrationError(f"levels {levels} against {reference_db} dB are not all finite; nothing applied")
    trims = {o: round(reference_db - level, 2) for o, level in levels.items()}
    loud = [f"output {o} needs {t:.1f} dB" for o, t in trims.items() if t < -MAX_CUT_DB]
    if loud:
        raise CalibrationError(
            f"{', '.join(loud)} to reach {target or f'{reference_db:.1f} dB'} (at most -{MAX_CUT_DB:g} dB): "
            "far too loud; nothing applied (turn that amplifier down)"
        )
    short = [f"output {o} needs +{t:.1f} dB" for o, t in trims.items() if t > max_boost_db]
    if short:
        raise CalibrationError(
            f"{', '.join(short)} to reach {target or f'{reference_db:.1f} dB'} (max_boost_db is {max_boost_db:g}): "
            "too quiet to reach the target; nothing applied (turn that amplifier up, or lower target_spl_db)"
        )
    return trims


class Calibration:
    """The calibrated outputs (1-based output -> ``OutputResult``) and what they set in the path.

    ``reference_db`` is the level (dB at the mic) every calibrated output was trimmed to.
    ``progress`` says what a calibration in progress is doing (None when none runs).
    """

    def __init__(self, config) -> None:
        self.config = config
        self.outputs: dict[int, OutputResult] = {}
        self.reference_db: float | None = None
        self.progress: dict[str, Any] | None = None
        self._compensations: dict[str, float] = {}

    def trims_db(self, name: str) -> dict[int, float]:
        """Output -> the trim (dB) the calibration adds in speaker set ``name`` to the config's
        (the set's ``trim_db`` and the output's own), for its calibrated outputs: what makes
        their sum the calibrated trim, whatever the config's are."""
        s = self.config.speakers[name]
        own = {o.channel: o.trim_db for o in s.outputs}
        if s.sub is not None:
            own.setdefault(s.sub.output, s.sub.trim_db)
        return {o: self.outputs[o].trim_db - s.trim_db - t for o, t in own.items() if o in self.outputs}

    def delays_ms(self, name: str) -> dict[int, float]:
        """Output -> the delay (ms) the calibration adds to speaker set ``name``'s outputs on
        top of their own ``delay_ms``, once all of them are calibrated (else none): each then
        arrives with the set's latest, whatever their own delays (the set's ``delay_ms``
        delays them all alike)."""
        outputs = set_outputs(self.config, name)
        if not all(o in self.outputs for o in outputs):
            return {}
        s, rate = self.config.speakers[name], self.config.audio.samplerate
        own = {o.channel: o.delay_ms for o in s.outputs}
        arrivals = {o: round(self.outputs[o].arrival_ms * 1e-3 * rate) for o in outputs}
        wanted = {o: 1e3 * d / rate for o, d in alignment_delays(arrivals).items()}
        # an output whose own delay is longer than it should be delays the others as much more
        extra = max(max(own.get(o, 0.0) - wanted[o] for o in outputs), 0.0)
        return {o: wanted[o] + extra - own.get(o, 0.0) for o in outputs}

    def set_spl_db(self, name: str) -> float | None:
        """dB SPL at the listening position of speaker set ``name`` at volume 0 dB for pink
        noise at -20 dBFS RMS per speaker (its speakers' power mean at their calibrated trims,
        plus its emulation's loudness compensation); None without a calibrated mic or before
        every speaker of the set is calibrated."""
        mic = self.config.calibration.mic_dbfs_at_94_db_spl if self.config.calibration else None
        s = self.config.speakers[name]
        if mic is None or not all(o.channel in self.outputs for o in s.outputs):
            return None
        noise = self.config.calibration.noise_dbfs
        levels = [spl_db(self.outputs[o.channel].level_db, mic) + self.outputs[o.channel].trim_db for o in s.outputs]
        return power_mean_db(levels) + self._compensation_db(name) + REFERENCE_NOISE_DBFS - noise

    def _compensation_db(self, name: str) -> float:
        """The loudness compensation (dB) the path adds to speaker set ``name`` for its
        emulation (0 without one), worked out once per config."""
        if name not in self._compensations:
            emulate = self.config.speakers[name].emulate
            self._compensations[name] = emulation_profile(self.config, emulate)[1] if emulate else 0.0
        return self._compensations[name]

    def as_dict(self) -> dict[str, Any]:
        """The state file's and the state report's ``calibration``: per output its measurement
        and trim; per calibrated set its delays (ms) and SPL at volume 0 dB."""
        mic = self.config.calibration.mic_dbfs_at_94_db_spl if self.config.calibration else None
        sets = {}
        for name in self.config.speakers:
            delays = self.delays_ms(name)
            if delays:
                spl = self.set_spl_db(name)
                sets[name] = {
                    "delay_ms": {str(o): round(d, 3) for o, d in delays.items()},
                    "spl_db": None if spl is None else round(spl, 2),
                }
        return {
            "reference_db": None if self.reference_db is None else round(self.reference_db, 2),
            "outputs": {str(o): r.as_dict(mic) for o, r in sorted(self.outputs.items())},
            "sets": sets,
        }

    def restore(self, saved: Any) -> list[str]:
        """Take the results of a state file's ``calibration``; returns a warning for each part
        that cannot be used."""
        if not isinstance(saved, dict) or not isinstance(saved.get("outputs", {}), dict):
            return [f"ignoring the saved calibration: {saved!r} is not a calibration"]
        warnings = []
        n_out = self.config.audio.output_channels
        for key, entry in saved.get("outputs", {}).items():
            try:
                output = int(key)
                result = OutputResult(
                    float(entry["level_db"]),
                    math.inf if entry["snr_db"] is None else float(entry["snr_db"]),
                    int(entry["arrival"]),
                    int(entry["samplerate"]),
                    float(entry["trim_db"]),
                )
                if not (1 <= output <= n_out and result.samplerate > 0 and math.isfinite(result.level_db)):
                    raise ValueError("out of range")
                if not abs(result.trim_db) <= MAX_CUT_DB or not 0.0 <= result.arrival_ms * 1e-3 <= MAX_SAVED_ARRIVAL_S:
                    raise ValueError("out of range")
            except (KeyError, TypeError, ValueError):
                warnings.append(f"ignoring the saved calibration of output {key!r}: {entry!r} is not a measurement")
                continue
            self.outputs[output] = result
        reference = saved.get("reference_db")
        usable = isinstance(reference, int | float) and not isinstance(reference, bool) and math.isfinite(reference)
        if reference is not None and not usable:
            warnings.append(f"ignoring the saved calibration's reference_db {reference!r}: not a level")
        self.reference_db = float(reference) if usable and self.outputs else None
        return warnings

    def reset(self) -> None:
        """Forget every calibration result."""
        self.outputs.clear()
        self.reference_db = None

    def reload(self, config) -> list[str]:
        """Adopt ``config``: results for outputs it no longer has are dropped (with a warning)."""
        self.config = config
        self._compensations = {}
        gone = [o for o in self.outputs if o > config.audio.output_channels]
        for o in gone:
            del self.outputs[o]
        return [f"the calibration of output {o} is dropped: the interface has no such output now" for o in gone]
