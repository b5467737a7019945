"""The control-plane side of the monitor path: what to play, packed for the kernel.

``PathSpec`` describes the path's structure (sources, speaker sets, filters), ``Controls`` the
momentary settings (the targets reduced to numbers). ``pack`` turns both into
the kernel's parameter vector; ``PathBuffers`` owns the kernel's arrays and publishes new
parameters through the seqlock. Channel numbers are 1-based here, as in configs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from controlroom.dsp import layout
from controlroom.dsp.bands import Biquad
from controlroom.dsp.biquad import coefficients, linkwitz_riley4
from controlroom.dsp.path import publish, settle
from controlroom.dsp.tap import TapMap

#: Limiter release time constant (ms): slow enough not to modulate bass, quick enough to
#: recover between transients.
LIMITER_RELEASE_MS = 100.0
#: Master-gain ramp at start-up and after a stream restart (ms): no thump, no burst.
STARTUP_RAMP_MS = 1000.0


@dataclass(frozen=True)
class SourceSpec:
    """A source: 1 (mono) or 2 (stereo) input channels (1-based) and a trim (dB)."""

    channels: tuple[int, ...]
    trim_db: float = 0.0


@dataclass(frozen=True)
class SubSpec:
    """A subwoofer output (1-based) fed below ``crossover_hz`` (Hz), with its trim (dB) and
    its own delay (ms) on top of the set's."""

    output: int
    crossover_hz: float = 80.0
    trim_db: float = 0.0
    delay_ms: float = 0.0


@dataclass(frozen=True)
class SetSpec:
    """A speaker set: 1 or 2 outputs (1-based), trim (dB), delay (ms), EQ, optional sub.

    ``mono`` makes both outputs play the mono sum (a mono emulation profile).
    ``output_trim_db`` and ``output_delay_ms`` give each output its own trim (dB) and delay (ms)
    on top of the set's, in the order of ``outputs`` (missing entries: 0).
    """

    outputs: tuple[int, ...]
    trim_db: float = 0.0
    delay_ms: float = 0.0
    eq: tuple[Biquad, ...] = ()
    sub: SubSpec | None = None
    mono: bool = False
    output_trim_db: tuple[float, ...] = ()
    output_delay_ms: tuple[float, ...] = ()


@dataclass(frozen=True)
class InsertSpec:
    """An outboard insert: source index ``source`` is sent to ``sends`` (1 or 2 1-based
    outputs); ``measure_dbfs`` is the peak level of the measurement noise (dBFS)."""

    source: int
    sends: tuple[int, ...]
    measure_dbfs: float = -20.0


@dataclass(frozen=True)
class PathSpec:
    """The whole path's structure at ``samplerate`` (Hz) with ``n_in``/``n_out`` channels.

    ``tap_inputs``: inputs (1-based) the meter tap carries besides the sources' own: the
    calibration mic, which a calibration records from the tap.
    """

    samplerate: int
    n_in: int
    n_out: int
    sources: tuple[SourceSpec, ...]
    sets: tuple[SetSpec, ...]
    inserts: tuple[InsertSpec, ...] = ()
    ramp_ms: float = 20.0
    crossfade_ms: float = 20.0
    ceiling_dbfs: float = -0.3
    tap_inputs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= len(self.sources) <= layout.MAX_SOURCES:
            raise ValueError(f"1 to {layout.MAX_SOURCES} sources supported")
        if not 1 <= len(self.sets) <= layout.MAX_SETS:
            raise ValueError(f"1 to {layout.MAX_SETS} speaker sets supported")
        if not (1 <= self.n_in <= layout.MAX_CHANNELS and 1 <= self.n_out <= layout.MAX_CHANNELS):
            raise ValueError(f"1 to {layout.MAX_CHANNELS} input and output channels supported")
        for src in self.sources:
            if not 1 <= len(src.channels) <= 2 or not all(1 <= c <= self.n_in for c in src.channels):
                raise ValueError(f"source channels {src.channels} outside 1..{self.n_in}")
        if len(self.inserts) > layout.MAX_INSERTS:
            raise ValueError(f"at most {layout.MAX_INSERTS} inserts supported")
        for ins in self.inserts:
            if not 0 <= ins.source < len(self.sources) or not 1 <= len(ins.sends) <= 2:
                raise ValueError(f"insert of source {ins.source} to {ins.sends}: no such source or not 1-2 sends")
            if not all(1 <= o <= self.n_out for o in ins.sends):
                raise ValueError(f"insert sends {ins.sends} outside 1..{self.n_out}")
        for s in self.sets:
            outs = s.outputs + ((s.sub.output,) if s.sub else ())
            if not 1 <= len(s.outputs) <= 2 or not all(1 <= o <= self.n_out for o in outs):
                raise ValueError(f"set outputs {outs} outside 1..{self.n_out}")
            for extra in (0.0, *s.output_delay_ms, *((s.sub.delay_ms,) if s.sub else ())):
                if not (0.0 <= s.delay_ms and 0.0 <= extra and s.delay_ms + extra <= layout.MAX_DELAY_MS):
                    raise ValueError(f"set delay {s.delay_ms} + {extra} ms outside 0..{layout.MAX_DELAY_MS:g} ms")
            if len(s.eq) > layout.MAX_BANDS:
                raise ValueError(f"at most {layout.MAX_BANDS} EQ bands per set")
        if not all(1 <= c <= self.n_in for c in self.tap_inputs):
            raise ValueError(f"tapped inputs {self.tap_inputs} outside 1..{self.n_in}")

    @cached_property
    def tap(self) -> TapMap:
        """The channels the meter tap carries: every input a source reads and ``tap_inputs``;
        every output a speaker set (its sub included) or an insert's send plays. Nothing else
        reads the tap, so the kernel copies nothing else."""
        inputs = {c for src in self.sources for c in src.channels} | set(self.tap_inputs)
        outputs = {o for ins in self.inserts for o in ins.sends}
        for s in self.sets:
            outputs.update(s.outputs, (s.sub.output,) if s.sub else ())
        return TapMap(tuple(sorted(inputs)), tuple(sorted(outputs)))

    def samples(self, ms: float) -> float:
        """``ms`` milliseconds in samples at this path's rate."""
        return round(ms * 1e-3 * self.samplerate)


@dataclass
class Controls:
    """Momentary settings. ``source``/``speakers`` are indices; gains in dB.

    ``master_db`` is volume + dim; ``mute`` silences. Per source (missing entries are 0):
    ``match_db`` the loudness-match offset and ``offset_db`` an insert's gain compensation
    (dB), ``delay_samples`` the alignment delay of a dry source against its insert's return.
    ``measuring`` is the index of the insert whose send plays measurement noise, or -1.
    ``coherent_switch``: the source switch being made is between time-aligned copies of one
    signal (an insert's dry source and its return), so it crossfades at equal gain rather than
    equal power, which would swell by 3 dB mid-fade. ``calibration_signal``: what a speaker
    calibration plays on one output, if anything.
    """

    source: int = 0
    speakers: int = 0
    master_db: float = -20.0
    mute: bool = False
    matrix: int = layout.MATRIX_STEREO
    polarity: bool = False
    sub: bool = True
    match_db: tuple[float, ...] = field(default_factory=tuple)
    offset_db: tuple[float, ...] = field(default_factory=tuple)
    delay_samples: tuple[int, ...] = field(default_factory=tuple)
    measuring: int = -1
    coherent_switch: bool = False
    calibration_signal: CalibrationSignal | None = None


@dataclass(frozen=True)
class CalibrationSignal:
    """The calibration test signal: white noise through ``sections`` (an (n, 5) cascade of
    ``b0 b1 b2 a1 a2``, at most ``layout.MAX_TEST_SECTIONS``) at ``gain`` (linear) on
    ``output`` (1-based); a change of ``gain`` ramps over ``fade_ms`` (ms)."""

    output: int
    sections: tuple[tuple[float, ...], ...]
    gain: float
    fade_ms: float


def db_to_gain(db: float) -> float:
    """dB -> linear amplitude."""
    return 10.0 ** (db / 20.0)


def float32_ceiling(ceiling_dbfs: float) -> float:
    """The largest float32 value not above ``ceiling_dbfs``: float32 output never rounds past it."""
    c = np.float32(db_to_gain(ceiling_dbfs))
    if float(c) > db_to_gain(ceiling_dbfs):
        c = np.nextafter(c, np.float32(0.0))
    return float(c)


def pack(spec: PathSpec, controls: Controls, master_ramp_ms: float | None = None) -> np.ndarray:
    """The kernel's parameter vector for ``spec`` with ``controls``.

    ``master_ramp_ms`` overrides the master-gain ramp (the start-up ramp-in); default ramp_ms.
    """
    p = np.zeros(layout.P_LEN)
    fs = spec.samplerate
    p[layout.P_SOURCE] = controls.source
    p[layout.P_SET] = controls.speakers
    p[layout.P_MASTER] = 0.0 if controls.mute else db_to_gain(controls.master_db)
    p[layout.P_MATRIX] = controls.matrix
    p[layout.P_POLARITY] = float(controls.polarity)
    p[layout.P_SUB] = float(controls.sub)
    p[layout.P_RAMP] = spec.samples(spec.ramp_ms)
    p[layout.P_MASTER_RAMP] = spec.samples(spec.ramp_ms if master_ramp_ms is None else master_ramp_ms)
    p[layout.P_XFADE] = spec.samples(spec.crossfade_ms)
    p[layout.P_COHERENT_XFADE] = float(controls.coherent_switch)
    p[layout.P_CEILING] = float32_ceiling(spec.ceiling_dbfs)
    p[layout.P_RELEASE] = 1.0 - math.exp(-1.0 / (LIMITER_RELEASE_MS * 1e-3 * fs))
    p[layout.P_N_SOURCES] = len(spec.sources)
    p[layout.P_N_SETS] = len(spec.sets)
    p[layout.P_DELAY_CAP] = layout.delay_capacity(fs)
    p[layout.P_N_IN] = spec.n_in
    p[layout.P_N_OUT] = spec.n_out
    cap = layout.delay_capacity(fs) - layout.CHUNK - 1
    for i, src in enumerate(spec.sources):
        b = layout.SOURCES_BASE + i * layout.SRC_STRIDE
        extra = _nth(controls.match_db, i) + _nth(controls.offset_db, i)
        p[b + layout.S_NCH] = len(src.channels)
        p[b + layout.S_CH0] = src.channels[0] - 1
        p[b + layout.S_CH1] = src.channels[-1] - 1
        p[b + layout.S_GAIN] = db_to_gain(src.trim_db + extra)
        p[b + layout.S_TRIM] = db_to_gain(src.trim_db)
        p[b + layout.S_DELAY] = min(max(int(_nth(controls.delay_samples, i)), 0), cap)
        p[b + layout.S_TAP0], p[b + layout.S_TAP1] = spec.tap.columns(inputs=(src.channels[0], src.channels[-1]))
    _pack_tap(p, spec)
    for k, s in enumerate(spec.sets):
        _pack_set(p, layout.SETS_BASE + k * layout.SET_STRIDE, s, fs)
    p[layout.P_N_INSERTS] = len(spec.inserts)
    for k, ins in enumerate(spec.inserts):
        b = layout.INSERTS_BASE + k * layout.INS_STRIDE
        p[b + layout.I_SOURCE] = ins.source
        p[b + layout.I_NOUT] = len(ins.sends)
        p[b + layout.I_OUT0] = ins.sends[0] - 1
        p[b + layout.I_OUT1] = ins.sends[-1] - 1
        p[b + layout.I_MEASURE] = float(controls.measuring == k)
        p[b + layout.I_LEVEL] = min(db_to_gain(ins.measure_dbfs), float32_ceiling(spec.ceiling_dbfs))
        for o in ins.sends:
            p[layout.OUTS_BASE + o - 1] = 1.0
    test = controls.calibration_signal
    p[layout.P_TEST_OUT] = -1.0 if test is None else test.output - 1
    if test is not None:
        if not 1 <= test.output <= spec.n_out or len(test.sections) > layout.MAX_TEST_SECTIONS:
            raise ValueError(f"test signal on output {test.output} of 1..{spec.n_out}, {len(test.sections)} sections")
        p[layout.P_TEST_GAIN] = test.gain
        p[layout.P_TEST_RAMP] = spec.samples(test.fade_ms)
        p[layout.P_TEST_NSEC] = len(test.sections)
        for j, section in enumerate(test.sections):
            p[layout.P_TEST_SOS + 5 * j : layout.P_TEST_SOS + 5 * j + 5] = section
    return p


def _pack_tap(p: np.ndarray, spec: PathSpec) -> None:
    """The tap map's columns (its generation is the buffers' to count): the sources' inputs
    are tapped where the sources are read (S_TAP0/1), the other tapped inputs and the outputs
    by channel."""
    tap = spec.tap
    p[layout.P_TAP_IN : layout.P_TAP_IN + layout.MAX_CHANNELS] = -1.0
    p[layout.P_TAP_OUT : layout.P_TAP_OUT + layout.MAX_CHANNELS] = -1.0
    read = {c for src in spec.sources for c in src.channels}
    for c in tap.inputs:
        if c not in read:
            p[layout.P_TAP_IN + c - 1] = tap.columns(inputs=(c,))[0]
    for o in tap.outputs:
        p[layout.P_TAP_OUT + o - 1] = tap.columns(outputs=(o,))[0]


def _nth(values: tuple, i: int) -> float:
    return values[i] if i < len(values) else 0.0


def _pack_set(p: np.ndarray, b: int, s: SetSpec, fs: int) -> None:
    p[b + layout.K_NOUT] = len(s.outputs)
    p[b + layout.K_OUT0] = s.outputs[0] - 1
    p[b + layout.K_OUT1] = s.outputs[-1] - 1
    p[b + layout.K_GAIN] = db_to_gain(s.trim_db)
    p[b + layout.K_DELAY] = round(s.delay_ms * 1e-3 * fs)
    lane_delays_ms = (_nth(s.output_delay_ms, 0), _nth(s.output_delay_ms, 1), s.sub.delay_ms if s.sub else 0.0)
    for j, extra in enumerate(lane_delays_ms):
        if j < 2:
            p[b + layout.K_LANE_GAIN + j] = db_to_gain(_nth(s.output_trim_db, j))
        # rounded as a total, so that a lane's delay is the nearest sample to what was asked
        p[b + layout.K_LANE_DELAY + j] = round((s.delay_ms + extra) * 1e-3 * fs) - round(s.delay_ms * 1e-3 * fs)
    p[b + layout.K_MONO] = float(s.mono)
    p[b + layout.K_NBANDS] = len(s.eq)
    for j, band in enumerate(s.eq):
        p[b + layout.K_BANDS + 5 * j : b + layout.K_BANDS + 5 * j + 5] = coefficients(band, fs)
    if s.sub is None:
        p[b + layout.K_SUB_OUT] = -1.0
        return
    low, high = linkwitz_riley4(s.sub.crossover_hz, fs)
    p[b + layout.K_SUB_OUT] = s.sub.output - 1
    p[b + layout.K_SUB_GAIN] = db_to_gain(s.sub.trim_db)
    p[b + layout.K_HIGHPASS : b + layout.K_HIGHPASS + 10] = high.ravel()
    p[b + layout.K_LOWPASS : b + layout.K_LOWPASS + 10] = low.ravel()


class PathBuffers:
    """The kernel's five arrays for one path, and the control plane's operations on them."""

    def __init__(self, spec: PathSpec, controls: Controls, master_ramp_ms: float | None = None) -> None:
        self.spec = spec
        #: tap maps by generation (P_TAP_GEN): a reader finds the one the kernel writes with
        self._tap_maps = [spec.tap]
        first = pack(spec, controls, master_ramp_ms)
        self.shared = first.copy()
        self.params = np.stack([first, first])
        self.state = np.zeros(layout.state_len(layout.delay_capacity(spec.samplerate)))
        self.meters = np.zeros(layout.meters_len(spec.n_in, spec.n_out))
        self.meters[layout.M_LIMITER_MIN] = 1.0
        self.counters = np.zeros(layout.C_LEN, dtype=np.int64)

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """``(shared, params, state, meters, counters)`` in the kernel's argument order."""
        return self.shared, self.params, self.state, self.meters, self.counters

    def update(self, spec: PathSpec, controls: Controls, master_ramp_ms: float | None = None) -> None:
        """Publish new parameters; the kernel takes them at its next block boundary.

        ``spec`` may differ from the one the buffers were made for only in parameters, not in
        sample rate or channel counts (those need new buffers and a new stream).
        """
        if (spec.samplerate, spec.n_in, spec.n_out) != (self.spec.samplerate, self.spec.n_in, self.spec.n_out):
            raise ValueError("sample rate and channel counts are fixed for the life of the buffers")
        self.spec = spec
        if spec.tap != self._tap_maps[-1]:
            self._tap_maps.append(spec.tap)
        p = pack(spec, controls, master_ramp_ms)
        p[layout.P_TAP_GEN] = len(self._tap_maps) - 1
        publish(self.shared, self.counters, p)

    def tap_map(self, gen: int) -> TapMap:
        """The tap map of generation ``gen`` (``counters[C_TAP_GEN]``)."""
        return self._tap_maps[gen]

    @property
    def tap(self) -> TapMap:
        """The tap map last published."""
        return self._tap_maps[-1]

    def compile_publish(self) -> None:
        """Compile ``update``'s publishing (or load it from numba's cache) on copies, leaving
        the kernel's arrays alone."""
        publish(self.shared.copy(), self.counters.copy(), self.shared.copy())

    def settle(self) -> None:
        """Take the latest parameters now and jump every ramp and crossfade to its target:
        ``render`` starts fully applied. Only while no host runs the kernel."""
        active = self.params[self.counters[layout.C_ACTIVE]]
        active[:] = self.shared
        self.counters[layout.C_APPLIED] = self.counters[layout.C_SEQ]
        settle(active, self.state, True)

    def request_meter_reset(self) -> None:
        self.counters[layout.C_METER_RESET] += 1
