"""From config and target values to the compiled path's ``PathSpec`` and ``Controls``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlroom.daemon.core import matching
from controlroom.daemon.core.targets import MonitorState
from controlroom.dsp import emulation
from controlroom.dsp.control import Controls, InsertSpec, PathSpec, SetSpec, SourceSpec, SubSpec
from controlroom.dsp.layout import MATRIX_LEFT, MATRIX_MONO, MATRIX_RIGHT, MATRIX_SIDE, MATRIX_STEREO, MAX_DELAY_MS
from controlroom.dsp.profiles import PROFILES, Profile

if TYPE_CHECKING:
    from controlroom.daemon.core.calibration import Calibration
    from controlroom.daemon.core.inserts import Inserts

_SOLO_MATRIX = {"left": MATRIX_LEFT, "right": MATRIX_RIGHT, "side": MATRIX_SIDE}


def path_spec(config, calibration: Calibration | None = None) -> PathSpec:
    """The path's structure as ``config`` describes it, with ``calibration``'s trims and delays
    on top of the speaker sets' own."""
    audio, mon = config.audio, config.monitor
    return PathSpec(
        samplerate=audio.samplerate,
        n_in=audio.input_channels,
        n_out=audio.output_channels,
        sources=tuple(SourceSpec(s.channels, s.trim_db) for s in config.sources.values()),
        sets=tuple(_set_spec(s, config, calibration) for s in config.speakers.values()),
        inserts=tuple(
            InsertSpec(list(config.sources).index(i.source), i.send, i.measure_dbfs) for i in config.inserts.values()
        ),
        ramp_ms=mon.ramp_ms,
        crossfade_ms=mon.crossfade_ms,
        ceiling_dbfs=mon.ceiling_dbfs,
        # a calibration records the mic from the tap
        tap_inputs=(config.calibration.mic,) if config.calibration is not None else (),
    )


def _set_spec(s, config, calibration: Calibration | None) -> SetSpec:
    trims = calibration.trims_db(s.name) if calibration is not None else {}
    delays = calibration.delays_ms(s.name) if calibration is not None else {}

    def delay_ms(output: int, own_ms: float) -> float:
        # within what the path can delay on top of the set's own delay
        return min(own_ms + delays.get(output, 0.0), MAX_DELAY_MS - s.delay_ms)

    sub = None
    if s.sub:
        sub = SubSpec(
            s.sub.output, s.sub.crossover_hz, s.sub.trim_db + trims.get(s.sub.output, 0.0), delay_ms(s.sub.output, 0.0)
        )
    eq, mono, trim = tuple(s.eq), False, s.trim_db
    if s.emulate:
        profile, compensation_db = emulation_profile(config, s.emulate)
        eq, mono, trim = eq + profile.bands, profile.mono, trim + compensation_db
    return SetSpec(
        s.channels,
        trim,
        s.delay_ms,
        eq,
        sub,
        mono,
        output_trim_db=tuple(o.trim_db + trims.get(o.channel, 0.0) for o in s.outputs),
        output_delay_ms=tuple(delay_ms(o.channel, o.delay_ms) for o in s.outputs),
    )


def emulation_profile(config, name: str) -> tuple[Profile, float]:
    """The profile ``name`` (user-defined ``[emulations.NAME]`` or built-in) and its loudness
    compensation (dB).

    A user profile's compensation is computed at the config's sample rate: its bands need only
    lie below that rate's Nyquist, not below the built-ins' reference rate's.
    """
    user = config.emulations.get(name)
    if user is None:
        profile = PROFILES[name]
        return profile, emulation.compensation_db(profile)
    profile = Profile(name, user.eq, user.mono)
    return profile, emulation.loudness_compensation_db(user.eq, config.audio.samplerate)


def insert_offsets(config, match_db: dict[str, float], inserts: Inserts | None) -> dict[str, float]:
    """Return-source name -> the insert compensation (dB) the path applies: the inverse of the
    insert's gain, with ``match_db`` (source -> dB) raising a source by at most the one cap."""
    if inserts is None:
        return {}
    cap = matching.max_boost_db(config)
    return {name: min(db, cap - match_db.get(name, 0.0)) for name, db in inserts.offset_db().items()}


def controls(
    config,
    state: MonitorState,
    match_db: dict[str, float] | None = None,
    inserts: Inserts | None = None,
) -> Controls:
    """The kernel's momentary settings for ``state``; ``match_db`` maps source -> offset (dB);
    ``inserts`` gives the measured inserts' alignment delays and gain compensation."""
    match_db = match_db or {}
    delays = inserts.delay_samples() if inserts is not None else {}
    offsets = insert_offsets(config, match_db, inserts)
    master = state.volume + (config.monitor.dim_db if state.dim else 0.0)
    if state.mono:
        matrix = MATRIX_MONO
    else:
        matrix = _SOLO_MATRIX.get(state.solo, MATRIX_STEREO)
    if state.solo != "off":  # solo wins over mono: it names exactly what to hear
        matrix = _SOLO_MATRIX[state.solo]
    return Controls(
        source=list(config.sources).index(state.source),
        speakers=list(config.speakers).index(state.speakers),
        master_db=master,
        mute=state.mute,
        matrix=matrix,
        polarity=state.polarity,
        sub=state.sub,
        match_db=tuple(match_db.get(name, 0.0) for name in config.sources),
        offset_db=tuple(offsets.get(name, 0.0) for name in config.sources),
        delay_samples=tuple(delays.get(name, 0) for name in config.sources),
        measuring=inserts.measuring_index() if inserts is not None else -1,
    )
