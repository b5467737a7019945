"""Round-trip measurement of an outboard insert: latency to the sample, gain and polarity.

The send plays white noise; the return is recorded in the same frames (the kernel's tap sees
both). The latency is the lag of the cross-correlation peak (for the noise, the peak of the
insert's impulse response: its direct path, ahead of any EQ's ringing). With the return lined
up, the insert's frequency response is estimated as the cross-spectrum over the send's
spectrum (Welch averaging, the H1 estimator): noise in the return (hiss, hum) that does not
follow the send averages out of it instead of inflating the gain. The gain is what that
response does to the loudness of pink noise (K-weighted, as LUFS counts), so an EQ'd insert
is matched the way it sounds, not by its level at one frequency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controlroom.dsp.bs1770 import pink_loudness_gain_db

#: Welch segment length (samples): ~12 Hz resolution at 48 kHz, far longer than an EQ rings.
SEGMENT = 4096
#: Below this share of the return explained by the send there is no insert to measure.
MIN_COHERENCE = 0.5


@dataclass(frozen=True)
class Measurement:
    """``latency`` in samples, ``gain_db`` the change in K-weighted pink-noise loudness (dB),
    ``coherence`` 0..1 (the share of the return's power the send explains: near 1 for a working
    insert, near 0 for no connection), ``inverted`` when the insert flips polarity."""

    latency: int
    gain_db: float
    coherence: float
    inverted: bool


def measure_insert(send: np.ndarray, ret: np.ndarray, max_latency: int, samplerate: float) -> Measurement:
    """Latency (samples, 0..``max_latency``), gain and polarity of ``ret`` against ``send``.

    ``send`` is 1-D; ``ret`` is 1-D or (frames, channels), channels averaged. Raises
    ValueError when the return does not follow the send (no connection, or latency beyond
    ``max_latency``), or the recording is too short or not finite.
    """
    send = np.asarray(send, dtype=float)
    ret = np.asarray(ret, dtype=float)
    if ret.ndim == 2:
        ret = ret.mean(axis=1)
    n = len(send)
    if len(ret) != n or n < max_latency + 2 * SEGMENT:
        raise ValueError(f"send and return must be the same length, at least {max_latency + 2 * SEGMENT} frames")
    if not (np.all(np.isfinite(send)) and np.all(np.isfinite(ret))):
        raise ValueError("the recording holds non-finite samples (NaN or Inf)")
    if not np.any(send):
        raise ValueError("the send was silent")
    corr = _cross_correlation(send, ret)[: n // 2]
    magnitude = np.abs(corr)
    lag = int(np.argmax(magnitude[: max_latency + 1]))
    freqs, response, coherence = transfer_function(send[: n - lag], ret[lag:], samplerate)
    if not coherence >= MIN_COHERENCE:
        late = int(np.argmax(magnitude))
        if late > max_latency and magnitude[late] > 4.0 * magnitude[lag]:
            raise ValueError(f"the return comes back {late} samples late, beyond the {max_latency} the path can align")
        raise ValueError(f"no clear return (coherence {coherence:.2f}): is the insert connected?")
    power = np.abs(response) ** 2
    gain_db = pink_loudness_gain_db(lambda f: np.interp(f, freqs, power), samplerate)
    return Measurement(lag, gain_db, coherence, bool(corr[lag] < 0.0))


def _cross_correlation(send: np.ndarray, ret: np.ndarray) -> np.ndarray:
    """``corr[k] = sum send[t] ret[t + k]`` for k >= 0, by FFT."""
    size = 1 << int(np.ceil(np.log2(2 * len(send))))
    return np.fft.irfft(np.fft.rfft(ret, size) * np.conj(np.fft.rfft(send, size)), size)


def transfer_function(x: np.ndarray, y: np.ndarray, samplerate: float) -> tuple[np.ndarray, np.ndarray, float]:
    """H1 estimate of the response from ``x`` to ``y`` (aligned, same length).

    Returns the bin frequencies (Hz), the complex response per bin and the share (0..1) of
    ``y``'s power that the response explains (its power-weighted coherence). Hann windows,
    ``SEGMENT`` samples, half overlapping.
    """
    hop = SEGMENT // 2
    starts = range(0, len(x) - SEGMENT + 1, hop)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(SEGMENT) / SEGMENT)  # periodic Hann
    spectra_x = np.array([np.fft.rfft(window * x[s : s + SEGMENT]) for s in starts])
    spectra_y = np.array([np.fft.rfft(window * y[s : s + SEGMENT]) for s in starts])
    pxx = np.mean(np.abs(spectra_x) ** 2, axis=0)
    pyy = np.mean(np.abs(spectra_y) ** 2, axis=0)
    pxy = np.mean(np.conj(spectra_x) * spectra_y, axis=0)
    floor = np.finfo(float).tiny
    response = pxy / np.maximum(pxx, floor)
    explained = np.sum(np.abs(pxy) ** 2 / np.maximum(pxx, floor))
    coherence = float(explained / max(np.sum(pyy), floor))
    return np.fft.rfftfreq(SEGMENT, 1.0 / samplerate), response, coherence
