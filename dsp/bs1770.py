"""Streaming loudness and peak meter: ITU-R BS.1770-4, EBU R128, EBU Tech 3341 and 3342.

One meter is one float64 array (``new_meter``) and nothing else, so the real-time kernel can
carry it in its preallocated buffers: ``meter_process(state, block)`` is compiled with
``nogil``, allocates nothing and works on blocks of any length (64 frames live, 65536 offline)
with identical results. The read-out functions below are plain Python for the control plane.

Measures (all since the last ``meter_reset``):

- momentary (400 ms) and short-term (3 s) loudness, LUFS, updated every 100 ms; the time
  before the reset counts as silence, as on a hardware meter. Their maxima.
- integrated loudness, LUFS: 400 ms blocks every 100 ms, -70 LUFS absolute gate, -10 LU
  relative gate.
- loudness range, LU (Tech 3342): short-term values every 100 ms once 3 s have passed,
  -70 LUFS absolute and -20 LU relative gate, 95th minus 10th percentile.
- sample peak (dBFS) and true peak (dBTP, ``dsp/truepeak.py``), per channel and overall.
- L/R correlation of channels 1 and 2 over the last 400 ms.

Gating and percentiles use fixed memory: histograms of 0.01 LU bins from -70 to +30 LUFS
(above: the top bin) holding a count and the exact energy sum per bin, so a meter runs for days
at constant cost; gated means are exact apart from the blocks in the bin the relative gate
falls in.

Channel weights (BS.1770-4 Table 3): 1 channel = mono (1); 2 = L R (1, 1); 6 = L R C LFE Ls Rs
(1, 1, 1, 0, 1.41, 1.41: LFE excluded, surrounds +1.5 dB); any other count weighs every
channel 1.

Silence: a level that is the logarithm of zero energy or amplitude (momentary, short-term,
their maxima, peaks) reads ``-inf``; a gated figure with no block above its gate (integrated,
loudness range) reads ``None``. JSON writers map both to ``null``.

The 100 ms step is ``round(samplerate / 10)`` frames, exact at the usual rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from controlroom.dsp.biquad import cascade_response
from controlroom.dsp.truepeak import HISTORY, JIT, MAX_FACTOR, TAPS, interpolated_peak, interpolator, oversampling

# --- K-weighting analog prototype (BS.1770-4 Annex 1, as derived by libebur128) ----------------
SHELF_HZ = 1681.974450955533
SHELF_GAIN_DB = 3.999843853973347
SHELF_Q = 0.7071752369554196
SHELF_BAND_EXPONENT = 0.4996667741545416  # mid-band gain = shelf gain ** this
HIGHPASS_HZ = 38.13547087602444
HIGHPASS_Q = 0.5003270373238773
#: The -0.691 dB of BS.1770's loudness formula: cancels the K-weighting's gain at 1 kHz.
LOUDNESS_OFFSET_DB = -0.691

# --- gating -----------------------------------------------------------------------------------------
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0
LRA_LOW_PERCENTILE = 0.10
LRA_HIGH_PERCENTILE = 0.95
MOMENTARY_SEGMENTS = 4  # 400 ms in 100 ms segments
SHORT_TERM_SEGMENTS = 30  # 3 s
BIN_LU = 0.01
HIST_TOP_LUFS = 30.0
N_BINS = int(round((HIST_TOP_LUFS - ABSOLUTE_GATE_LUFS) / BIN_LU))
#: Mean square a block needs to pass the absolute gate.
ABSOLUTE_GATE_ENERGY = 10.0 ** ((ABSOLUTE_GATE_LUFS - LOUDNESS_OFFSET_DB) / 10.0)
SURROUND_WEIGHT = 10.0 ** (1.5 / 10.0)

#: Frames processed per pass; longer blocks are cut into chunks, and so are 100 ms boundaries.
CHUNK = 1024
TINY = 1e-30  # filter states below this are flushed: far above float64 denormals
#: Samples beyond this magnitude (600 dB over full scale) are corrupt data and metered as 0,
#: like NaN and infinities: squared and filtered they would overflow into NaN states.
MAX_SAMPLE = 1e30

# --- state layout ------------------------------------------------------------------------------------
# configuration: written by new_meter, kept by meter_reset
CHANNELS = 0
SAMPLERATE = 1  # Hz
SEGMENT_FRAMES = 2  # frames per 100 ms segment
FACTOR = 3  # true-peak oversampling factor
KW = 4  # K-weighting: shelf then high-pass, [b0, b1, b2, a1, a2] each
TP = KW + 10  # true-peak phases, (MAX_FACTOR - 1) x TAPS
CONFIG_LEN = 64
# running values
POS = 64  # frames into the current segment
SEGMENTS = 65  # segments completed since reset
SEG_ENERGY = 66  # weighted sum of K-weighted squares in the current segment
MOMENTARY = 67  # weighted mean square of the last 400 ms
SHORT_TERM = 68  # ... of the last 3 s
MOMENTARY_MAX = 69
SHORT_TERM_MAX = 70
CORR = 71  # current segment: sum L*R, L*L, R*R
CORRELATION = 74  # over the last 400 ms, -1..1
NONFINITE = 75  # non-finite input samples metered as 0
FRAMES = 76  # frames since reset
RING = 80  # the last SHORT_TERM_SEGMENTS segment energies, by segment number modulo
CORR_RING = RING + SHORT_TERM_SEGMENTS  # the last MOMENTARY_SEGMENTS segments' L*R, L*L, R*R
I_COUNT = 128  # integrated-loudness histogram: blocks per bin
I_ENERGY = I_COUNT + N_BINS  # ... and their summed mean squares
S_COUNT = I_ENERGY + N_BINS  # loudness-range histogram of short-term values
S_ENERGY = S_COUNT + N_BINS
LANE = HISTORY + CHUNK  # one channel's chunk as float64, after its last HISTORY samples
SCRATCH = S_ENERGY + N_BINS  # 2 lanes: a pair of channels
TP_ACC = SCRATCH + 2 * LANE  # CHUNK: the interpolator's scratch
CHANNEL_BASE = TP_ACC + CHUNK
# per channel, CH_STRIDE apart from CHANNEL_BASE
CH_WEIGHT = 0  # configuration, kept by meter_reset: ...
CH_COLUMN = 1  # ... the column of the blocks fed that is this channel (set_columns)
CH_CONFIG = 2  # running values from here on
CH_KW_STATE = CH_CONFIG  # 4: shelf s1 s2, high-pass s1 s2
CH_HISTORY = CH_KW_STATE + 4  # HISTORY: the last input samples, for the interpolator
CH_SAMPLE_PEAK = CH_HISTORY + HISTORY  # linear, since reset
CH_TRUE_PEAK = CH_SAMPLE_PEAK + 1
CH_SEG_SAMPLE_PEAK = CH_SAMPLE_PEAK + 2  # current segment
CH_SEG_TRUE_PEAK = CH_SAMPLE_PEAK + 3
CH_LAST_SAMPLE_PEAK = CH_SAMPLE_PEAK + 4  # last completed segment (100 ms)
CH_LAST_TRUE_PEAK = CH_SAMPLE_PEAK + 5
CH_STRIDE = 24

#: Bin centres of both histograms, LUFS.
BIN_CENTRES = ABSOLUTE_GATE_LUFS + (np.arange(N_BINS) + 0.5) * BIN_LU


def meter_length(channels: int) -> int:
    """Length (float64 values) of a meter's state array for ``channels`` channels."""
    return CHANNEL_BASE + channels * CH_STRIDE


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770-4 weights G_i (linear power gains) for ``channels`` channels; see module doc."""
    weights = np.ones(channels)
    if channels == 6:
        weights[3] = 0.0
        weights[4:6] = SURROUND_WEIGHT
    return weights


def k_weighting(samplerate: float) -> np.ndarray:
    """K-weighting at ``samplerate`` (Hz) from its analog prototype by the bilinear transform.

    Returns ``(2, 5)``: the high shelf then the RLB high-pass, each ``[b0, b1, b2, a1, a2]``.
    """
    k = math.tan(math.pi * SHELF_HZ / samplerate)
    vh = 10.0 ** (SHELF_GAIN_DB / 20.0)
    vb = vh**SHELF_BAND_EXPONENT
    a0 = 1.0 + k / SHELF_Q + k * k
    shelf = [
        (vh + vb * k / SHELF_Q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / SHELF_Q + k * k) / a0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / SHELF_Q + k * k) / a0,
    ]
    k = math.tan(math.pi * HIGHPASS_HZ / samplerate)
    a0 = 1.0 + k / HIGHPASS_Q + k * k
    # BS.1770 keeps the high-pass numerator at (1, -2, 1) rather than normalising its passband
    highpass = [1.0, -2.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / HIGHPASS_Q + k * k) / a0]
    return np.array([shelf, highpass])


#: Band (Hz) over which ``pink_loudness_gain_db`` weighs a response: the audible range.
PINK_BAND_HZ = (20.0, 20000.0)


def pink_loudness_gain_db(power: Callable[[np.ndarray], np.ndarray], samplerate: float) -> float:
    """Change (dB) in the K-weighted loudness of pink noise through a response.

    ``power(freqs_hz)`` returns the response's power gain ``|H|^2`` at those frequencies.
    Pink noise has equal power per octave, so on a log-spaced grid every point carries the
    same power; the K-weighted power ratio is then a plain mean of ``|K|^2 |H|^2`` over
    ``|K|^2``, taken over ``PINK_BAND_HZ`` (up to 0.499 ``samplerate``).
    """
    low, high = PINK_BAND_HZ
    freqs = np.geomspace(low, min(high, 0.499 * samplerate), 4096)
    k2 = np.abs(cascade_response(k_weighting(samplerate), freqs, samplerate)) ** 2
    return float(10.0 * np.log10(np.sum(k2 * power(freqs)) / np.sum(k2)))


def new_meter(channels: int, samplerate: float) -> np.ndarray:
    """A reset meter for ``channels`` channels at ``samplerate`` (Hz): one float64 array."""
    if channels < 1:
        raise ValueError(f"a meter needs at least one channel, not {channels}")
    if not samplerate >= 1000.0:
        raise ValueError(f"sample rate {samplerate} Hz is too low for BS.1770 metering")
    state = np.zeros(meter_length(channels))
    state[CHANNELS] = channels
    state[SAMPLERATE] = samplerate
    state[SEGMENT_FRAMES] = round(samplerate / 10.0)
    factor = oversampling(samplerate)
    state[FACTOR] = factor
    state[KW : KW + 10] = k_weighting(samplerate).ravel()
    phases = interpolator(factor).ravel()
    state[TP : TP + phases.size] = phases
    state[CHANNEL_BASE + CH_WEIGHT :: CH_STRIDE] = channel_weights(channels)
    set_columns(state, range(channels))
    return state


def set_columns(state: np.ndarray, columns) -> None:
    """Meter column ``columns[k]`` (0-based) of the blocks fed as channel ``k``: a meter can be
    fed a wider block whole (the tap's, with every channel in it) instead of a copy of its
    own columns. Configuration: kept by ``meter_reset``."""
    state[CHANNEL_BASE + CH_COLUMN :: CH_STRIDE] = columns


# --- compiled: the real-time part ----------------------------------------------------------------


@njit(**JIT)
def meter_reset(state):
    """Forget everything measured; keep the configuration. Allocation-free."""
    for i in range(CONFIG_LEN, CHANNEL_BASE):
        state[i] = 0.0
    for ch in range(int(state[CHANNELS])):
        base = CHANNEL_BASE + ch * CH_STRIDE
        for i in range(base + CH_CONFIG, base + CH_STRIDE):
            state[i] = 0.0


@njit(**JIT)
def meter_process(state, block):
    """Meter ``block``: a 2-D ``(frames, columns)`` float32 or float64 array of any layout, its
    channels in the columns ``set_columns`` gave (the first ones unless set otherwise).

    Non-finite samples (and absurd ones beyond ``MAX_SAMPLE``) are metered as 0 and counted.
    Safe in the real-time thread: no allocation, no Python objects.
    """
    frames = block.shape[0]
    segment = int(state[SEGMENT_FRAMES])
    start = 0
    while start < frames:
        pos = int(state[POS])
        n = min(CHUNK, frames - start, segment - pos)
        _meter_chunk(state, block, start, n)
        pos += n
        if pos == segment:
            _close_segment(state)
            pos = 0
        state[POS] = pos
        start += n
    state[FRAMES] += frames


@njit(**JIT)
def _meter_chunk(state, block, start, n):
    """Meter frames ``start .. start+n`` of ``block``, all within one 100 ms segment.

    Channels go in pairs so that the two K-weighting recursions overlap in the CPU. Digital
    silence into filters at rest (an idle rack, a stopped transport) would weight, correlate
    and interpolate to exact zeros: it is skipped, which changes no figure by a bit.
    """
    channels = int(state[CHANNELS])
    energy = 0.0
    for first in range(0, channels, 2):
        x, x_silent = _load_channel(state, block, start, n, first, 0)
        if first + 1 < channels:
            y, y_silent = _load_channel(state, block, start, n, first + 1, 1)
            if x_silent and y_silent and _at_rest(state, first) and _at_rest(state, first + 1):
                continue
            energy += _k_weighted_pair(state, first, x, y, n)
            if first == 0:
                _correlate(state, x, y, n)
        elif not (x_silent and _at_rest(state, first)):
            energy += _k_weighted_single(state, first, x, n)
    state[SEG_ENERGY] += energy


@njit(**JIT)
def _at_rest(state, ch):
    """Channel ``ch``'s K-weighting filters hold nothing (``_store_filter`` flushes them to 0)."""
    s = CHANNEL_BASE + ch * CH_STRIDE + CH_KW_STATE
    return state[s] == 0.0 and state[s + 1] == 0.0 and state[s + 2] == 0.0 and state[s + 3] == 0.0


@njit(**JIT)
def _load_channel(state, block, start, n, ch, lane):
    """Copy channel ``ch`` (its column of ``block``) of the chunk into scratch ``lane`` as
    float64 and meter its peaks.

    Non-finite samples (and any beyond ``MAX_SAMPLE``) become 0, counted. Returns the lane's
    ``n`` new samples (the ``HISTORY`` samples before them are the channel's previous ones) and
    whether all of those are 0: silence, between whose samples the interpolator finds 0 too.
    """
    base = CHANNEL_BASE + ch * CH_STRIDE
    column = int(state[base + CH_COLUMN])
    buf = state[SCRATCH + lane * LANE : SCRATCH + lane * LANE + HISTORY + n]
    history = 0.0
    for i in range(HISTORY):
        buf[i] = state[base + CH_HISTORY + i]
        history = max(history, abs(buf[i]))
    peak = 0.0
    bad = 0
    for i in range(n):
        v = np.float64(block[start + i, column])
        if not abs(v) <= MAX_SAMPLE:  # also catches NaN
            v = 0.0
            bad += 1
        buf[HISTORY + i] = v
        peak = max(peak, abs(v))
    for i in range(HISTORY):
        state[base + CH_HISTORY + i] = buf[n + i]
    state[NONFINITE] += bad
    silent = peak == 0.0 and history == 0.0
    if silent:
        return buf[HISTORY:], True
    coefs = state[TP : TP + (MAX_FACTOR - 1) * TAPS]
    phases = int(state[FACTOR]) - 1
    between = interpolated_peak(buf, n, coefs, phases, state[TP_ACC : TP_ACC + CHUNK])
    state[base + CH_SEG_SAMPLE_PEAK] = max(state[base + CH_SEG_SAMPLE_PEAK], peak)
    # the sample peak stands in for the interpolator's phase 0
    state[base + CH_SEG_TRUE_PEAK] = max(state[base + CH_SEG_TRUE_PEAK], peak, between)
    return buf[HISTORY:], False


@njit(**JIT)
def _k_weighted_single(state, ch, x, n):
    """K-weight ``x`` through channel ``ch``'s filters; its weighted sum of squares."""
    s = CHANNEL_BASE + ch * CH_STRIDE + CH_KW_STATE
    k = state[KW : KW + 10]
    s1, s2, t1, t2 = state[s], state[s + 1], state[s + 2], state[s + 3]
    energy = 0.0
    for i in range(n):
        y = k[0] * x[i] + s1
        s1 = k[1] * x[i] - k[3] * y + s2
        s2 = k[2] * x[i] - k[4] * y
        z = k[5] * y + t1
        t1 = k[6] * y - k[8] * z + t2
        t2 = k[7] * y - k[9] * z
        energy += z * z
    _store_filter(state, s, s1, s2, t1, t2)
    return state[s - CH_KW_STATE + CH_WEIGHT] * energy


@njit(**JIT)
def _k_weighted_pair(state, first, x, y, n):
    """``_k_weighted_single`` of channels ``first`` (``x``) and ``first + 1`` (``y``) at once."""
    s = CHANNEL_BASE + first * CH_STRIDE + CH_KW_STATE
    r = s + CH_STRIDE
    k = state[KW : KW + 10]
    s1, s2, t1, t2 = state[s], state[s + 1], state[s + 2], state[s + 3]
    r1, r2, u1, u2 = state[r], state[r + 1], state[r + 2], state[r + 3]
    ex = 0.0
    ey = 0.0
    for i in range(n):
        a = k[0] * x[i] + s1
        b = k[0] * y[i] + r1
        s1 = k[1] * x[i] - k[3] * a + s2
        r1 = k[1] * y[i] - k[3] * b + r2
        s2 = k[2] * x[i] - k[4] * a
        r2 = k[2] * y[i] - k[4] * b
        c = k[5] * a + t1
        d = k[5] * b + u1
        t1 = k[6] * a - k[8] * c + t2
        u1 = k[6] * b - k[8] * d + u2
        t2 = k[7] * a - k[9] * c
        u2 = k[7] * b - k[9] * d
        ex += c * c
        ey += d * d
    _store_filter(state, s, s1, s2, t1, t2)
    _store_filter(state, r, r1, r2, u1, u2)
    return state[s - CH_KW_STATE + CH_WEIGHT] * ex + state[r - CH_KW_STATE + CH_WEIGHT] * ey


@njit(**JIT)
def _store_filter(state, at, s1, s2, t1, t2):
    """Save a channel's filter states, flushing those too small to matter (no denormals)."""
    state[at] = s1 if abs(s1) >= TINY else 0.0
    state[at + 1] = s2 if abs(s2) >= TINY else 0.0
    state[at + 2] = t1 if abs(t1) >= TINY else 0.0
    state[at + 3] = t2 if abs(t2) >= TINY else 0.0


@njit(**JIT)
def _correlate(state, left, right, n):
    """Accumulate L*R, L*L and R*R of channels 1 and 2."""
    lr = 0.0
    ll = 0.0
    rr = 0.0
    for i in range(n):
        lr += left[i] * right[i]
        ll += left[i] * left[i]
        rr += right[i] * right[i]
    state[CORR] += lr
    state[CORR + 1] += ll
    state[CORR + 2] += rr


@njit(**JIT)
def _close_segment(state):
    """End a 100 ms segment: update momentary/short-term, feed the gating histograms."""
    k = int(state[SEGMENTS])
    state[RING + k % SHORT_TERM_SEGMENTS] = state[SEG_ENERGY]
    state[SEG_ENERGY] = 0.0
    c = CORR_RING + 3 * (k % MOMENTARY_SEGMENTS)
    for j in range(3):
        state[c + j] = state[CORR + j]
        state[CORR + j] = 0.0
    k += 1
    state[SEGMENTS] = k

    segment = state[SEGMENT_FRAMES]
    momentary = 0.0
    for j in range(MOMENTARY_SEGMENTS):
        momentary += state[RING + (k - 1 - j) % SHORT_TERM_SEGMENTS]
    momentary /= MOMENTARY_SEGMENTS * segment
    short_term = 0.0
    for j in range(SHORT_TERM_SEGMENTS):
        short_term += state[RING + j]
    short_term /= SHORT_TERM_SEGMENTS * segment
    state[MOMENTARY] = momentary
    state[SHORT_TERM] = short_term
    state[MOMENTARY_MAX] = max(state[MOMENTARY_MAX], momentary)
    state[SHORT_TERM_MAX] = max(state[SHORT_TERM_MAX], short_term)
    if k >= MOMENTARY_SEGMENTS:
        _histogram_add(state, I_COUNT, I_ENERGY, momentary)
    if k >= SHORT_TERM_SEGMENTS:
        _histogram_add(state, S_COUNT, S_ENERGY, short_term)

    lr = 0.0
    ll = 0.0
    rr = 0.0
    for j in range(MOMENTARY_SEGMENTS):
        lr += state[CORR_RING + 3 * j]
        ll += state[CORR_RING + 3 * j + 1]
        rr += state[CORR_RING + 3 * j + 2]
    state[CORRELATION] = lr / math.sqrt(ll * rr) if ll * rr > 0.0 else 0.0

    for ch in range(int(state[CHANNELS])):
        base = CHANNEL_BASE + ch * CH_STRIDE
        for j in range(2):
            seg = state[base + CH_SEG_SAMPLE_PEAK + j]
            state[base + CH_LAST_SAMPLE_PEAK + j] = seg
            state[base + CH_SAMPLE_PEAK + j] = max(state[base + CH_SAMPLE_PEAK + j], seg)
            state[base + CH_SEG_SAMPLE_PEAK + j] = 0.0


@njit(**JIT)
def _histogram_add(state, counts, energies, mean_square):
    """Count a block of ``mean_square`` (K-weighted, channel-weighted) if it passes -70 LUFS."""
    if mean_square > ABSOLUTE_GATE_ENERGY:
        lufs = LOUDNESS_OFFSET_DB + 10.0 * math.log10(mean_square)
        position = (lufs - ABSOLUTE_GATE_LUFS) / BIN_LU
        b = N_BINS - 1 if position >= N_BINS - 1 else int(position)
        state[counts + b] += 1.0
        state[energies + b] += mean_square


# --- read-out: the control plane's part --------------------------------------------------------------


def lufs(mean_square: float) -> float:
    """Loudness (LUFS) of a weighted K-weighted mean square; ``-inf`` for zero."""
    return LOUDNESS_OFFSET_DB + 10.0 * math.log10(mean_square) if mean_square > 0.0 else -math.inf


def db(amplitude: float) -> float:
    """Level (dB re full scale) of a linear amplitude; ``-inf`` for zero."""
    return 20.0 * math.log10(amplitude) if amplitude > 0.0 else -math.inf


def momentary_lufs(state: np.ndarray) -> float:
    """Momentary loudness (LUFS) of the last 400 ms, as of the last 100 ms step."""
    return lufs(state[MOMENTARY])


def short_term_lufs(state: np.ndarray) -> float:
    """Short-term loudness (LUFS) of the last 3 s, as of the last 100 ms step."""
    return lufs(state[SHORT_TERM])


def momentary_max_lufs(state: np.ndarray) -> float:
    """Highest momentary loudness (LUFS) since reset; ``-inf`` if all silent."""
    return lufs(state[MOMENTARY_MAX])


def short_term_max_lufs(state: np.ndarray) -> float:
    """Highest short-term loudness (LUFS) since reset; ``-inf`` if all silent."""
    return lufs(state[SHORT_TERM_MAX])


def _channel_values(state: np.ndarray, offset: int) -> np.ndarray:
    start = CHANNEL_BASE + offset
    return state[start : start + int(state[CHANNELS]) * CH_STRIDE : CH_STRIDE]


def _peak(state: np.ndarray, since_reset: int, current: int, channel: int | None) -> float:
    values = np.maximum(_channel_values(state, since_reset), _channel_values(state, current))
    return db(float(values.max() if channel is None else values[channel]))


def sample_peak_dbfs(state: np.ndarray, channel: int | None = None) -> float:
    """Sample peak (dBFS) since reset, of ``channel`` (0-based) or of all; ``-inf`` if silent."""
    return _peak(state, CH_SAMPLE_PEAK, CH_SEG_SAMPLE_PEAK, channel)


def true_peak_dbtp(state: np.ndarray, channel: int | None = None) -> float:
    """True peak (dBTP) since reset, of ``channel`` (0-based) or of all; ``-inf`` if silent."""
    return _peak(state, CH_TRUE_PEAK, CH_SEG_TRUE_PEAK, channel)


def recent_peaks_db(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel sample peak (dBFS) and true peak (dBTP) of the last completed 100 ms."""
    with np.errstate(divide="ignore"):
        return (
            20.0 * np.log10(_channel_values(state, CH_LAST_SAMPLE_PEAK)),
            20.0 * np.log10(_channel_values(state, CH_LAST_TRUE_PEAK)),
        )


def correlation(state: np.ndarray) -> float:
    """Correlation of channels 1 and 2 over the last 400 ms, -1..1; 0.0 when either is silent."""
    return float(state[CORRELATION])


def nonfinite_samples(state: np.ndarray) -> int:
    """Non-finite input samples metered as 0 since reset."""
    return int(state[NONFINITE])


def _gated(state: np.ndarray, counts_at: int, energies_at: int, relative_lu: float):
    """Counts and energies of the histogram bins above the relative gate, or None if empty."""
    counts = state[counts_at : counts_at + N_BINS]
    energies = state[energies_at : energies_at + N_BINS]
    total = counts.sum()
    if total == 0.0:
        return None
    gate = lufs(energies.sum() / total) + relative_lu
    first = int(np.searchsorted(BIN_CENTRES, gate, side="right"))
    return counts[first:], energies[first:], first


def integrated_lufs(state: np.ndarray) -> float | None:
    """Gated integrated loudness (LUFS) since reset; None when no block passes -70 LUFS."""
    gated = _gated(state, I_COUNT, I_ENERGY, RELATIVE_GATE_LU)
    if gated is None:
        return None
    counts, energies, _ = gated
    return lufs(energies.sum() / counts.sum())


def loudness_range_lu(state: np.ndarray) -> float | None:
    """Loudness range (LU, EBU Tech 3342) since reset.

    None when no short-term value passes -70 LUFS (silence, or less than 3 s metered).
    """
    gated = _gated(state, S_COUNT, S_ENERGY, LRA_RELATIVE_GATE_LU)
    if gated is None:
        return None
    counts, _, _ = gated
    cumulative = np.cumsum(counts)
    n = cumulative[-1]
    low = int(np.searchsorted(cumulative, round((n - 1) * LRA_LOW_PERCENTILE) + 1))
    high = int(np.searchsorted(cumulative, round((n - 1) * LRA_HIGH_PERCENTILE) + 1))
    return (high - low) * BIN_LU


@dataclass(frozen=True)
class Loudness:
    """A meter's figures. Levels of silence are ``-inf``; absent gated figures are None."""

    integrated_lufs: float | None
    loudness_range_lu: float | None
    true_peak_dbtp: float
    sample_peak_dbfs: float
    momentary_max_lufs: float
    short_term_max_lufs: float
    momentary_lufs: float
    short_term_lufs: float
    correlation: float
    nonfinite_samples: int


def read_meter(state: np.ndarray) -> Loudness:
    """Every figure of a meter at once."""
    return Loudness(
        integrated_lufs=integrated_lufs(state),
        loudness_range_lu=loudness_range_lu(state),
        true_peak_dbtp=true_peak_dbtp(state),
        sample_peak_dbfs=sample_peak_dbfs(state),
        momentary_max_lufs=momentary_max_lufs(state),
        short_term_max_lufs=short_term_max_lufs(state),
        momentary_lufs=momentary_lufs(state),
        short_term_lufs=short_term_lufs(state),
        correlation=correlation(state),
        nonfinite_samples=nonfinite_samples(state),
    )


def measure(signal: np.ndarray, samplerate: float, blocksize: int = 65536) -> Loudness:
    """Meter a whole signal, ``(frames,)`` or ``(frames, channels)``, in blocks of ``blocksize``."""
    signal = signal.reshape(len(signal), -1)
    state = new_meter(signal.shape[1], samplerate)
    for start in range(0, len(signal), blocksize):
        meter_process(state, signal[start : start + blocksize])
    return read_meter(state)
