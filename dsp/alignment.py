"""Round-trip measurement of an outboard insert: latency to the sample and gain.

The send plays white noise; the return is recorded in the same frames (the kernel's tap sees
both). The latency is the lag of the cross-correlation peak; the gain is the least-squares
scale of the send onto the return at that lag, so uncorrelated noise in the return (hiss,
hum) does not inflate it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Measurement:
    """``latency`` in samples, ``gain_db`` in dB, ``coherence`` 0..1 (how much of the return
    the delayed send explains: near 1 for a working insert, near 0 for no connection)."""

    latency: int
    gain_db: float
    coherence: float


def measure_insert(send: np.ndarray, ret: np.ndarray, max_latency: int) -> Measurement:
    """Latency (samples, 0..``max_latency``) and gain of ``ret`` against ``send``.

    ``send`` is 1-D; ``ret`` is 1-D or (frames, channels), channels averaged. Raises
    ValueError when the return does not follow the send (no connection, or latency beyond
    ``max_latency``).
    """
    send = np.asarray(send, dtype=float)
    ret = np.asarray(ret, dtype=float)
    if ret.ndim == 2:
        ret = ret.mean(axis=1)
    n = len(send)
    if len(ret) != n or n <= max_latency:
        raise ValueError("send and return must be the same length, longer than max_latency")
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(ret, size) * np.conj(np.fft.rfft(send, size)), size)
    lag = int(np.argmax(np.abs(corr[: max_latency + 1])))
    s, r = send[: n - lag], ret[lag:]
    energy = float(np.dot(s, s))
    if energy == 0.0:
        raise ValueError("the send was silent")
    scale = float(np.dot(s, r)) / energy
    explained = scale * scale * energy
    total = float(np.dot(r, r))
    coherence = explained / total if total > 0 else 0.0
    if coherence < 0.5 or scale == 0.0:
        raise ValueError(f"no clear return (coherence {coherence:.2f}): is the insert connected?")
    return Measurement(lag, float(20 * np.log10(abs(scale))), coherence)
