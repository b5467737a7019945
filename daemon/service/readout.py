"""Meter read-out: the kernel's accumulators turned into dB figures, per poll.

The kernel accumulates sample peaks and sums of squares; each poll reads them and asks the
kernel to start afresh (``request_meter_reset``), so every reading covers the time since the
previous poll. Values are dBFS; a channel with no signal reads ``None``.
"""

from __future__ import annotations

import math

from controlroom.dsp import layout
from controlroom.dsp.control import PathBuffers


def db(value: float) -> float | None:
    """20·log10(value), rounded to 0.01 dB; ``None`` for zero (silence)."""
    return round(20.0 * math.log10(value), 2) if value > 0.0 else None


def read(buffers: PathBuffers, config) -> dict:
    """Peak and RMS (dBFS) per source channel (after trim, before matching) and per output
    (after the limiter), the limiter's deepest gain reduction (dB); then reset the kernel's
    accumulators."""
    m = buffers.meters[: layout.M_LEN].copy()  # the accumulators, not the tap ring behind them
    buffers.request_meter_reset()
    frames = m[layout.M_FRAMES]
    sources = {}
    for i, (name, src) in enumerate(config.sources.items()):
        trim = 10.0 ** (src.trim_db / 20.0)
        channels = []
        for c in range(len(src.channels)):
            b = layout.M_SOURCES + (2 * i + c) * layout.MS_STRIDE
            channels.append(_level(m[b + layout.MS_PEAK] * trim, m[b + layout.MS_SUMSQ] * trim * trim, frames))
        sources[name] = _combine(channels)
    outputs = {}
    for o in range(buffers.spec.n_out):
        b = layout.M_OUTPUTS + o * layout.MS_STRIDE
        outputs[str(o + 1)] = _level(m[b + layout.MS_PEAK], m[b + layout.MS_SUMSQ], frames)
    gr = m[layout.M_LIMITER_MIN]
    return {
        "sources": sources,
        "outputs": outputs,
        "limiter_gain_reduction_db": round(-20.0 * math.log10(gr), 2) if 0.0 < gr < 1.0 else 0.0,
    }


def _level(peak: float, sumsq: float, frames: float) -> dict:
    rms = math.sqrt(sumsq / frames) if frames > 0 else 0.0
    return {"peak_dbfs": db(peak), "rms_dbfs": db(rms)}


def _combine(channels: list[dict]) -> dict:
    return {key: [c[key] for c in channels] for key in ("peak_dbfs", "rms_dbfs")}
