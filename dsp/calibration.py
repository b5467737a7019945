"""Speaker calibration with a measurement mic: the test signals, and what a recording says.

The test signals are pink noise, band-limited: 500 Hz-2 kHz for a main speaker's level (SMPTE
RP 200 / Dolby practice: the band every monitor reproduces, above the room's modes), from 3/8
of its crossover frequency up to it for a subwoofer's (``sub_band``), and 100 Hz-10 kHz for a main speaker's arrival time. The kernel makes them
from uniform white noise through a cascade of biquad sections (``test_sections``) scaled to an
RMS level (``test_gain``).

The arrival time is the lag of the normalised cross-correlation between what an output sent
and what the mic heard (``arrival``); why noise rather than a log sweep, and how levels and
arrivals are read: docs/calibration.md, "What is measured, and how".

Everything here is arrays in, numbers out: the daemon records and applies (``daemon/service``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controlroom.dsp.bands import Biquad
from controlroom.dsp.biquad import cascade_response, coefficients

#: Test bands (Hz): a main speaker's level, its arrival time.
LEVEL_BAND = (500.0, 2000.0)
ARRIVAL_BAND = (100.0, 10000.0)
#: A subwoofer's test band reaches from this fraction of its crossover frequency up to it.
SUB_BAND_FROM = 0.375
#: Pole-zero pairs of the pinking filter (two per biquad section).
PINK_PAIRS = 8
#: Butterworth Qs of a 4th-order high- or low-pass made of two biquads.
BUTTERWORTH4_Q = (1.0 / (2.0 * math.cos(math.pi / 8.0)), 1.0 / (2.0 * math.cos(3.0 * math.pi / 8.0)))
#: Variance of uniform noise in [-1, 1): what the kernel's generator feeds the cascade.
UNIFORM_VARIANCE = 1.0 / 3.0
#: A mic sample at or above this (dBFS) counts as clipping.
CLIP_DBFS = -0.5
#: Calibrator reference level (dB SPL).
CALIBRATOR_SPL_DB = 94.0


def test_sections(band: tuple[float, float], samplerate: float) -> np.ndarray:
    """The (8, 5) biquad cascade that turns white noise into pink noise limited to ``band``
    (Hz): a pinking filter (-3 dB/octave from a quarter of the low edge to four times the high
    edge, alternating real poles and zeros), then 4th-order Butterworth high- and low-pass at
    the band's edges (the low-pass left out when the edge is near Nyquist)."""
    low, high = band
    span_lo, span_hi = low / 4.0, min(high * 4.0, 0.45 * samplerate)
    ratio = (span_hi / span_lo) ** (1.0 / PINK_PAIRS)
    poles = [span_lo * ratio**k for k in range(PINK_PAIRS)]
    zeros = [f * math.sqrt(ratio) for f in poles]
    sections = []
    for k in range(0, PINK_PAIRS, 2):
        zz = [math.exp(-2.0 * math.pi * f / samplerate) for f in zeros[k : k + 2]]
        zp = [math.exp(-2.0 * math.pi * f / samplerate) for f in poles[k : k + 2]]
        b = np.convolve([1.0, -zz[0]], [1.0, -zz[1]])
        a = np.convolve([1.0, -zp[0]], [1.0, -zp[1]])
        sections.append([b[0], b[1], b[2], a[1], a[2]])
    for q in BUTTERWORTH4_Q:
        sections.append(coefficients(Biquad("highpass", low, q=q), samplerate))
    for q in BUTTERWORTH4_Q:
        if high < 0.45 * samplerate:
            sections.append(coefficients(Biquad("lowpass", high, q=q), samplerate))
        else:
            sections.append([1.0, 0.0, 0.0, 0.0, 0.0])
    return np.asarray(sections, dtype=float)


def sub_band(crossover_hz: float) -> tuple[float, float]:
    """A subwoofer's test band (Hz) for its level and arrival: the band it plays up to its
    crossover, where it must sum with the mains (30-80 Hz at 80 Hz)."""
    return SUB_BAND_FROM * crossover_hz, crossover_hz


def test_gain(sections: np.ndarray, samplerate: float, rms_dbfs: float) -> float:
    """The linear gain that makes uniform white noise through ``sections`` play at
    ``rms_dbfs`` (dBFS RMS): the cascade's power gain is the mean of its squared magnitude
    response over the band 0..Nyquist (Parseval)."""
    freqs = np.linspace(0.0, samplerate / 2.0, 1 << 17)
    power = float(np.mean(np.abs(cascade_response(sections, freqs, samplerate)) ** 2))
    return 10.0 ** (rms_dbfs / 20.0) / math.sqrt(power * UNIFORM_VARIANCE)


def listening_band(band: tuple[float, float]) -> tuple[float, float]:
    """Where the mic's level of a test signal in ``band`` (Hz) is read: an octave wider on
    each side, so that the signal's filter skirts count (the whole signal plays at its RMS
    level, as an SPL meter would read it) while room noise further out does not."""
    return band[0] / 2.0, band[1] * 2.0


def band_power(x: np.ndarray, band: tuple[float, float], samplerate: float) -> float:
    """Mean power of ``x`` (1-D) within ``band`` (Hz), as a fraction of full scale squared."""
    x = np.asarray(x, dtype=float)
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / samplerate)
    inside = (freqs >= band[0]) & (freqs <= band[1])
    # Parseval for a real signal: each bin but DC and Nyquist stands for two
    return float(2.0 * np.sum(np.abs(spectrum[inside]) ** 2) / len(x) ** 2)


def power_db(power: float) -> float:
    """``power`` (full scale squared) in dB; -inf for none."""
    return 10.0 * math.log10(power) if power > 0.0 else -math.inf


def peak_dbfs(x: np.ndarray) -> float:
    """The sample peak of ``x`` (dBFS)."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return 20.0 * math.log10(peak) if peak > 0.0 else -math.inf


@dataclass(frozen=True)
class Arrival:
    """Where ``sent`` arrives in ``heard``: ``lag`` (samples) and ``peak``, the normalised
    cross-correlation there (1 for a delayed, scaled copy; near 0 for a signal unrelated to
    what was sent)."""

    lag: int
    peak: float


def arrival(sent: np.ndarray, heard: np.ndarray, max_lag: int, sharpen: bool = False) -> Arrival:
    """Where (0..``max_lag`` samples) ``sent`` arrives strongest in ``heard`` (same length,
    1-D): the lag of the largest normalised cross-correlation between all of ``sent`` but its
    last ``max_lag`` samples and each window of ``heard`` as long. With every lag seeing the
    whole of that stretch of ``sent``, a delayed, scaled copy peaks exactly at its delay
    (Cauchy-Schwarz), however flat the peak of a narrow band's correlation is.

    ``sharpen`` correlates the first differences (a +6 dB/octave tilt, exact as a two-tap
    filter commutes with the delay): pink noise's correlation then peaks a few samples wide
    instead of a bass-wide hump, so a reflection a millisecond behind the direct sound stays
    apart from it.
    """
    x = np.asarray(sent, dtype=float)
    y = np.asarray(heard, dtype=float)
    if sharpen:
        x, y = np.diff(x), np.diff(y)
    n = len(x) - max_lag
    if n < max_lag:
        raise ValueError(f"a recording of {len(sent)} samples is too short for lags up to {max_lag}")
    size = 1 << int(math.ceil(math.log2(len(y) + n)))
    corr = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x[:n], size)), size)[: max_lag + 1]
    cumulative = np.concatenate([[0.0], np.cumsum(y * y)])
    energy = cumulative[n : n + max_lag + 1] - cumulative[: max_lag + 1]
    tiny = np.finfo(float).tiny
    normalised = np.abs(corr) / np.sqrt(np.maximum(energy, tiny) * max(float(np.dot(x[:n], x[:n])), tiny))
    lag = int(np.argmax(normalised))
    return Arrival(lag, float(normalised[lag]))


@dataclass(frozen=True)
class OutputLevel:
    """What the mic heard of one output's test signal: ``level_db`` its power in the test band
    (dBFS at the mic, room noise taken out), ``snr_db`` over the room noise in that band,
    ``peak_dbfs`` the mic's sample peak."""

    level_db: float
    snr_db: float
    peak_dbfs: float


def heard_level(
    sent: np.ndarray,
    heard: np.ndarray,
    noise: np.ndarray,
    lag: int,
    band: tuple[float, float],
    samplerate: float,
    sent_dbfs: float,
) -> OutputLevel:
    """The level at the mic (dBFS) of a test signal sent at ``sent_dbfs`` (RMS).

    Args:
        sent: the test signal as the output sent it (1-D).
        heard: the mic in the same frames (same length).
        noise: the mic with nothing playing (the room's noise).
        lag: samples from ``sent`` to ``heard`` (its arrival).
        band: where both are read (Hz).
        samplerate: in Hz.
        sent_dbfs: the level the test signal is made to play at.

    The level is ``sent_dbfs`` plus the room's gain: what the mic heard (the room's noise
    taken out) over what was sent, over the same stretch of the signal. A narrow band of noise
    a second long strays by tenths of a dB from its nominal level; the same stray is in both,
    so it drops out.
    """
    n = len(sent) - lag
    played = band_power(sent[:n], band, samplerate)
    floor = band_power(noise, band, samplerate)
    signal = max(band_power(heard[lag : lag + n], band, samplerate) - floor, 0.0)
    snr = power_db(signal) - power_db(floor) if floor > 0.0 else math.inf
    level = sent_dbfs + power_db(signal) - power_db(played) if played > 0.0 else -math.inf
    return OutputLevel(level, snr, peak_dbfs(heard))


def spl_db(level_dbfs: float, mic_dbfs_at_94_db_spl: float) -> float:
    """dB SPL of a mic level (dBFS), for a mic reading ``mic_dbfs_at_94_db_spl`` on a
    94 dB SPL calibrator."""
    return level_dbfs - mic_dbfs_at_94_db_spl + CALIBRATOR_SPL_DB


def alignment_delays(arrivals: dict[int, int]) -> dict[int, int]:
    """Output -> delay (samples) that makes every output of one set arrive with the latest."""
    latest = max(arrivals.values())
    return {output: latest - a for output, a in arrivals.items()}


def power_mean_db(levels_db: list[float]) -> float:
    """The level (dB) of the mean power of ``levels_db``."""
    return power_db(sum(10.0 ** (db / 10.0) for db in levels_db) / len(levels_db))
