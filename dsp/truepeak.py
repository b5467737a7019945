"""True-peak interpolation (ITU-R BS.1770-4 Annex 2).

The signal is oversampled (x4 below 96 kHz, x2 below 192 kHz, x1 above: Annex 2's rule) by a
polyphase windowed-sinc low-pass, and the true peak is the largest absolute value of the
oversampled signal.

The prototype has ``TAPS * factor + 1`` taps centred on a tap, so the sinc's zeros fall on
every other input sample: phase 0 reproduces the input samples exactly (6 samples late) and
only phases ``1 .. factor-1`` need computing; the sample peak stands in for phase 0.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Taps per interpolating phase (input samples each phase looks at).
TAPS = 12
#: Input samples of history a phase needs besides the current one.
HISTORY = TAPS - 1
#: Largest oversampling factor: phases 1..3 at x4.
MAX_FACTOR = 4

#: fastmath without nnan/ninf, so that non-finite checks survive optimisation.
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
JIT = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")


def oversampling(samplerate: float) -> int:
    """Oversampling factor BS.1770-4 Annex 2 asks for at ``samplerate`` (Hz)."""
    if samplerate < 96000.0:
        return 4
    if samplerate < 192000.0:
        return 2
    return 1


def interpolator(factor: int) -> np.ndarray:
    """Polyphase coefficients ``(factor - 1, TAPS)`` of the interpolating phases 1..factor-1.

    Phase ``p`` estimates the signal ``p / factor`` of a sample period after input sample
    ``n - TAPS // 2`` as ``sum(c[p - 1, q] * x[n - q] for q in range(TAPS))``. The prototype is
    a Hann-windowed sinc cut off at the input's Nyquist frequency, scaled so that each phase
    has the input's gain.
    """
    if factor < 1 or factor > MAX_FACTOR:
        raise ValueError(f"oversampling factor {factor} must lie in 1..{MAX_FACTOR}")
    length = TAPS * factor + 1
    centre = (length - 1) / 2.0
    taps = np.empty(length)
    for i in range(length):
        t = (i - centre) / factor  # in input sample periods
        sinc = 1.0 if t == 0.0 else math.sin(math.pi * t) / (math.pi * t)
        taps[i] = sinc * 0.5 * (1.0 - math.cos(2.0 * math.pi * i / (length - 1)))
    phases = np.zeros((factor - 1, TAPS))
    for p in range(1, factor):
        phase = taps[p::factor][:TAPS]
        # the window makes the phase's DC gain drift slightly from 1; a constant must stay put
        phases[p - 1] = phase / phase.sum()
    return phases


@njit(**JIT)
def interpolated_peak(buf, n, coefs, phases, acc):
    """Largest absolute value of the interpolated (between-sample) points of a chunk.

    ``buf`` holds ``HISTORY`` earlier samples followed by the chunk's ``n`` samples (float64);
    ``coefs`` is a flat view of ``interpolator(factor)`` (``phases * TAPS`` values);
    ``acc`` is scratch of at least ``n`` float64. Returns a linear amplitude (0.0 when
    ``phases`` is 0).
    """
    # Per-sample maxima go to ``acc`` and are reduced once at the end: a running scalar
    # maximum inside the tap loop would keep it from vectorising across samples.
    highest = acc[:n]
    for i in range(n):
        highest[i] = 0.0
    x = buf[: n + HISTORY]
    for p in range(phases):
        c = coefs[p * TAPS : p * TAPS + TAPS]
        for i in range(n):
            y = 0.0
            for q in range(TAPS):
                y += c[TAPS - 1 - q] * x[i + q]
            highest[i] = max(highest[i], abs(y))
    peak = 0.0
    for i in range(n):
        if highest[i] > peak:
            peak = highest[i]
    return peak
