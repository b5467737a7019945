"""Biquad filter design: RBJ Audio-EQ-Cookbook sections and Linkwitz-Riley crossovers.

Every design returns normalised coefficients as a float64 array ``[b0, b1, b2, a1, a2]``
(a0 divided out), the layout the compiled kernel runs (transposed direct form II) and that
``scipy.signal`` reads as ``b = c[:3]``, ``a = [1, c[3], c[4]]``.
"""

from __future__ import annotations

import math

import numpy as np

from controlroom.dsp.bands import BUTTERWORTH_Q, FILTER_TYPES, SHELF_TYPES, Biquad

#: The pass-through section.
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0, 0.0])


def coefficients(band: Biquad, samplerate: float) -> np.ndarray:
    """Normalised ``[b0, b1, b2, a1, a2]`` of ``band`` at ``samplerate`` (Hz)."""
    return design(band.type, band.freq_hz, samplerate, band.gain_db, band.q, band.slope)


def design(
    type: str,
    freq_hz: float,
    samplerate: float,
    gain_db: float = 0.0,
    q: float | None = None,
    slope: float | None = None,
) -> np.ndarray:
    """RBJ cookbook biquad of ``type`` at ``freq_hz`` (Hz) for ``samplerate`` (Hz).

    ``gain_db`` is the peak gain of ``peak`` and the shelf gain of the shelves (dB).
    ``q`` is the quality factor (for ``peak``, ``bandpass`` and ``notch`` the bandwidth in
    the cookbook's "Q" sense); shelves accept ``slope`` (S, 0 < S <= 1 keeps them
    monotonic) instead. Raises ValueError for an unknown type or parameters out of range.
    """
    if type not in FILTER_TYPES:
        raise ValueError(f"unknown filter type {type!r} (expected one of {', '.join(FILTER_TYPES)})")
    if not 0.0 < freq_hz < samplerate / 2.0:
        raise ValueError(f"freq_hz {freq_hz} must lie between 0 and Nyquist ({samplerate / 2.0} Hz)")
    if q is not None and slope is not None:
        raise ValueError("give q or slope, not both")
    if slope is not None and type not in SHELF_TYPES:
        raise ValueError("slope applies to lowshelf and highshelf only")
    if q is not None and not q > 0.0:
        raise ValueError(f"q {q} must be > 0")
    if slope is not None and not slope > 0.0:
        raise ValueError(f"slope {slope} must be > 0")

    a_lin = 10.0 ** (gain_db / 40.0)  # the cookbook's A: square root of the linear gain
    w0 = 2.0 * math.pi * freq_hz / samplerate
    cos_w0, sin_w0 = math.cos(w0), math.sin(w0)
    if type in SHELF_TYPES and q is None:
        s = 1.0 if slope is None else slope
        radicand = (a_lin + 1.0 / a_lin) * (1.0 / s - 1.0) + 2.0
        if radicand < 0.0:
            steepest = 1.0 / (1.0 - 2.0 / (a_lin + 1.0 / a_lin))
            raise ValueError(f"slope {slope} too steep for {gain_db} dB (expected at most {steepest:.3f})")
        alpha = sin_w0 / 2.0 * math.sqrt(radicand)
    else:
        alpha = sin_w0 / (2.0 * (BUTTERWORTH_Q if q is None else q))

    if type == "lowpass":
        b = ((1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2)
        a = (1 + alpha, -2 * cos_w0, 1 - alpha)
    elif type == "highpass":
        b = ((1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2)
        a = (1 + alpha, -2 * cos_w0, 1 - alpha)
    elif type == "bandpass":  # constant 0 dB peak gain
        b = (alpha, 0.0, -alpha)
        a = (1 + alpha, -2 * cos_w0, 1 - alpha)
    elif type == "notch":
        b = (1.0, -2 * cos_w0, 1.0)
        a = (1 + alpha, -2 * cos_w0, 1 - alpha)
    elif type == "allpass":
        b = (1 - alpha, -2 * cos_w0, 1 + alpha)
        a = (1 + alpha, -2 * cos_w0, 1 - alpha)
    elif type == "peak":
        b = (1 + alpha * a_lin, -2 * cos_w0, 1 - alpha * a_lin)
        a = (1 + alpha / a_lin, -2 * cos_w0, 1 - alpha / a_lin)
    else:
        sq = 2.0 * math.sqrt(a_lin) * alpha
        if type == "lowshelf":
            b = (
                a_lin * ((a_lin + 1) - (a_lin - 1) * cos_w0 + sq),
                2 * a_lin * ((a_lin - 1) - (a_lin + 1) * cos_w0),
                a_lin * ((a_lin + 1) - (a_lin - 1) * cos_w0 - sq),
            )
            a = (
                (a_lin + 1) + (a_lin - 1) * cos_w0 + sq,
                -2 * ((a_lin - 1) + (a_lin + 1) * cos_w0),
                (a_lin + 1) + (a_lin - 1) * cos_w0 - sq,
            )
        else:  # highshelf
            b = (
                a_lin * ((a_lin + 1) + (a_lin - 1) * cos_w0 + sq),
                -2 * a_lin * ((a_lin - 1) + (a_lin + 1) * cos_w0),
                a_lin * ((a_lin + 1) + (a_lin - 1) * cos_w0 - sq),
            )
            a = (
                (a_lin + 1) - (a_lin - 1) * cos_w0 + sq,
                2 * ((a_lin - 1) - (a_lin + 1) * cos_w0),
                (a_lin + 1) - (a_lin - 1) * cos_w0 - sq,
            )
    a0 = a[0]
    return np.array([b[0] / a0, b[1] / a0, b[2] / a0, a[1] / a0, a[2] / a0])


def linkwitz_riley4(crossover_hz: float, samplerate: float) -> tuple[np.ndarray, np.ndarray]:
    """Linkwitz-Riley 24 dB/oct crossover at ``crossover_hz`` (Hz).

    Returns ``(lowpass, highpass)``, each a ``(2, 5)`` cascade of two identical Butterworth
    sections. Each side is -6.02 dB at the crossover; low + high is an all-pass.
    """
    low = design("lowpass", crossover_hz, samplerate, q=BUTTERWORTH_Q)
    high = design("highpass", crossover_hz, samplerate, q=BUTTERWORTH_Q)
    return np.stack([low, low]), np.stack([high, high])


def cascade_response(sections: np.ndarray, freqs_hz: np.ndarray, samplerate: float) -> np.ndarray:
    """Complex response of a ``(n, 5)`` cascade at ``freqs_hz`` (Hz)."""
    z = np.exp(-1j * 2.0 * np.pi * np.asarray(freqs_hz, dtype=float) / samplerate)
    h = np.ones_like(z)
    for b0, b1, b2, a1, a2 in np.atleast_2d(sections):
        h *= (b0 + b1 * z + b2 * z * z) / (1.0 + a1 * z + a2 * z * z)
    return h
