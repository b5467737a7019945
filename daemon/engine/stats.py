"""Engine statistics kept by the hosts in ``counters[host_base:]``, and their summary.

The compiled side (``record_block``) runs in the audio thread after every kernel call; the
control plane reads the same int64 slots with ``summarise``. Aligned int64 stores are atomic on
the 64-bit targets we run on, so a reader sees each value whole (the set may be a block apart).

Callback durations go into a fixed histogram of µs bins: 1 µs wide below 32 µs, then 8 bins
per octave up to about 1 s (bin width at most 1/8 of an octave, ~9 %).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Offsets from host_base.
H_CALLBACKS = 0  # kernel calls (callbacks)
H_FRAMES = 1  # frames processed
H_INPUT_UNDERFLOW = 2  # PortAudio status flags seen, one counter per flag bit
H_INPUT_OVERFLOW = 3
H_OUTPUT_UNDERFLOW = 4  # the virtual host counts its missed deadlines here
H_OUTPUT_OVERFLOW = 5
H_PRIMING = 6
H_DURATION_MAX = 7  # longest callback (ns)
H_STREAM_FIRST = 8  # stream clock at the first callback (ns)
H_STREAM_LAST = 9  # stream clock at the latest callback (ns)
H_LAST_CALLBACK = 10  # CLOCK_MONOTONIC at the end of the latest callback (ns)
H_STOP = 11  # set by the control plane: the virtual host's thread exits
H_HISTOGRAM = 16

#: flag bit -> counter, in PortAudio's order (paInputUnderflow = 1 ... paPrimingOutput = 16)
XRUN_KINDS = ("input_underflow", "input_overflow", "output_underflow", "output_overflow", "priming")
N_FLAGS = len(XRUN_KINDS)

LINEAR_BINS = 32  # 1 µs bins for 0..31 µs
_SUB_BITS = 3
SUB_BINS = 1 << _SUB_BITS  # per octave above
OCTAVES = 15  # 32 µs .. 2^20 µs (~1 s); longer durations land in the last bin
N_BINS = LINEAR_BINS + SUB_BINS * OCTAVES
HOST_LEN = H_HISTOGRAM + N_BINS  # counters the host needs from host_base
_FIRST_OCTAVE = 5  # log2(LINEAR_BINS)


@njit(cache=True, nogil=True)
def duration_bin(microseconds):
    """The histogram bin of a duration in whole µs."""
    if microseconds < LINEAR_BINS:
        return max(microseconds, 0)
    octave = _log2_floor(microseconds)
    sub = (microseconds >> (octave - _SUB_BITS)) & (SUB_BINS - 1)
    return min(LINEAR_BINS + (octave - _FIRST_OCTAVE) * SUB_BINS + sub, N_BINS - 1)


@njit(cache=True, nogil=True)
def _log2_floor(value):
    octave = 0
    while value > 1:
        value >>= 1
        octave += 1
    return octave


def bin_upper_us(index: int) -> float:
    """The upper edge (µs) of histogram bin ``index``: a duration in it was below this."""
    if index < LINEAR_BINS:
        return float(index + 1)
    octave, sub = divmod(index - LINEAR_BINS, SUB_BINS)
    start = 1 << (octave + _FIRST_OCTAVE)
    return float(start + (sub + 1) * (start // SUB_BINS))


@njit(cache=True, nogil=True)
def record_block(counters, base, frames, flags, start_ns, end_ns, stream_ns):
    """Account one kernel call of ``frames`` frames that ran from ``start_ns`` to ``end_ns``
    (CLOCK_MONOTONIC), with PortAudio status ``flags`` and the stream clock at ``stream_ns``."""
    if counters[base + H_CALLBACKS] == 0:
        counters[base + H_STREAM_FIRST] = stream_ns
    counters[base + H_STREAM_LAST] = stream_ns
    for bit in range(N_FLAGS):
        if flags & (1 << bit):
            counters[base + H_INPUT_UNDERFLOW + bit] += 1
    duration = end_ns - start_ns
    if duration > counters[base + H_DURATION_MAX]:
        counters[base + H_DURATION_MAX] = duration
    counters[base + H_HISTOGRAM + duration_bin(duration // 1000)] += 1
    counters[base + H_FRAMES] += frames
    counters[base + H_LAST_CALLBACK] = end_ns
    counters[base + H_CALLBACKS] += 1


def reset(counters: np.ndarray, base: int) -> None:
    """Zero the host's statistics (before a stream starts; never while one runs)."""
    counters[base : base + HOST_LEN] = 0


def percentile_us(histogram: np.ndarray, fraction: float) -> float | None:
    """The upper bin edge (µs) below which ``fraction`` of the recorded durations fall."""
    total = int(histogram.sum())
    if total == 0:
        return None
    rank = max(1, int(np.ceil(fraction * total)))
    index = int(np.searchsorted(np.cumsum(histogram), rank))
    return bin_upper_us(index)


def summarise(counters: np.ndarray, base: int, samplerate: float, blocksize: int) -> dict:
    """Statistics of the current stream, in the form the state report uses.

    ``expected_callbacks`` comes from the stream clock: how many ``blocksize``-frame blocks
    the device clock says were due between the first and the latest callback.
    """
    host = counters[base : base + HOST_LEN].copy()
    callbacks = int(host[H_CALLBACKS])
    span_s = (host[H_STREAM_LAST] - host[H_STREAM_FIRST]) * 1e-9
    expected = int(round(span_s * samplerate / blocksize)) + 1 if callbacks else 0
    histogram = host[H_HISTOGRAM : H_HISTOGRAM + N_BINS]
    maximum_us = float(host[H_DURATION_MAX]) / 1000.0 if callbacks else None
    return {
        "callbacks": callbacks,
        "expected_callbacks": expected,
        "frames": int(host[H_FRAMES]),
        "xruns": {kind: int(host[H_INPUT_UNDERFLOW + i]) for i, kind in enumerate(XRUN_KINDS)},
        "duration_us": {
            "p50": _capped(percentile_us(histogram, 0.50), maximum_us),
            "p99": _capped(percentile_us(histogram, 0.99), maximum_us),
            "max": maximum_us,
        },
    }


def _capped(value: float | None, maximum: float | None) -> float | None:
    # A bin's upper edge can exceed the longest duration actually seen.
    return None if value is None else min(value, maximum)
