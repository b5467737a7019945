"""Shared helpers for the monitor-path specification tests (``test_path_*.py``).

Signals, runners and *independent* oracles: dB maths, a cookbook biquad written out again
from the RBJ formulas, LR4 crossovers from ``scipy.signal.butter`` and a least-squares sine
amplitude estimator. Nothing here reuses the package's own filter design or gain helpers,
so the oracles cannot inherit a bug from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from controlroom.dsp.control import Controls, PathBuffers, PathSpec, SetSpec, SourceSpec
from controlroom.dsp.path import process, render

FS = 48_000
#: settle time before levels are measured: ramps, crossfades and filter transients are over
SKIP = FS // 10


# --------------------------------------------------------------------------- dB maths


def gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def to_db(x: float) -> float:
    return 20.0 * math.log10(x)


# --------------------------------------------------------------------------- signals


def t_axis(n: int, fs: int = FS) -> np.ndarray:
    return np.arange(n) / fs


def sine(freq: float, n: int, amp: float = 0.5, phase: float = 0.0, fs: int = FS) -> np.ndarray:
    return amp * np.sin(2.0 * np.pi * freq * t_axis(n, fs) + phase)


def square(freq: float, n: int, amp: float = 0.5, fs: int = FS) -> np.ndarray:
    """A square wave that is never 0 (so out/in recovers the gain on every sample)."""
    return amp * np.where(np.sin(2.0 * np.pi * freq * (t_axis(n, fs) + 0.25 / freq)) >= 0.0, 1.0, -1.0)


def noise(n: int, amp: float = 0.5, seed: int = 0, channels: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-amp, amp, (n, channels))
    return x[:, 0] if channels == 1 else x


def band_noise(n: int, amp: float = 0.5, seed: int = 0, cutoff: float = 2000.0, fs: int = FS) -> np.ndarray:
    """Noise low-passed at ``cutoff`` (Hz), scaled to peak ``amp``: a program whose own
    sample-to-sample steps are small, so a click stands out against them. (White noise is a
    poor reference for clicks: an equal-power crossfade of two independent white noises
    legitimately makes steps up to sqrt(2) times either one's largest.)"""
    sos = signal.butter(4, cutoff, fs=fs, output="sos")
    x = signal.sosfilt(sos, np.random.default_rng(seed).standard_normal(n + fs // 10))[fs // 10 :]
    return amp * x / np.max(np.abs(x))


def frames(*channels: np.ndarray) -> np.ndarray:
    """Stack 1-D channels into a C-contiguous float32 (frames, channels) block."""
    return np.ascontiguousarray(np.stack(channels, axis=1), dtype=np.float32)


# --------------------------------------------------------------------------- path set-up


def stereo_spec(n_in: int = 2, n_out: int = 2, sets=None, sources=None, **kw) -> PathSpec:
    """A 48 kHz path; by default one stereo source on inputs 1-2 and one set on outputs 1-2."""
    return PathSpec(
        kw.pop("samplerate", FS),
        n_in,
        n_out,
        tuple(sources) if sources is not None else (SourceSpec((1, 2)),),
        tuple(sets) if sets is not None else (SetSpec((1, 2)),),
        **kw,
    )


def run(
    spec: PathSpec,
    controls: Controls,
    x: np.ndarray,
    blocksize: int = 256,
    settle: bool = True,
    master_ramp_ms: float | None = None,
) -> tuple[np.ndarray, PathBuffers]:
    """Render ``x`` through a fresh path (fully applied unless ``settle`` is False)."""
    buffers = PathBuffers(spec, controls, master_ramp_ms)
    if settle:
        buffers.settle()
    y = np.zeros((x.shape[0], spec.n_out), dtype=np.float32)
    render(np.ascontiguousarray(x, dtype=np.float32), y, blocksize, *buffers.arrays)
    return y, buffers


def run_blocks(buffers: PathBuffers, x: np.ndarray, blocksize: int, changes=None) -> np.ndarray:
    """Call ``process`` block by block from Python; ``changes`` maps a frame index to the
    ``(spec, controls)`` published just before the block that starts there (blocks are cut
    so that every change falls on a block boundary)."""
    changes = dict(changes or {})
    n = x.shape[0]
    y = np.zeros((n, buffers.spec.n_out), dtype=np.float32)
    cuts = sorted(set(range(0, n, blocksize)) | set(changes) | {n})
    for start, stop in zip(cuts[:-1], cuts[1:]):
        if start in changes:
            spec, controls = changes[start]
            buffers.update(spec, controls)
        block_in = np.ascontiguousarray(x[start:stop], dtype=np.float32)
        block_out = np.zeros((stop - start, y.shape[1]), dtype=np.float32)
        process(block_in, block_out, *buffers.arrays)
        y[start:stop] = block_out
    return y


# --------------------------------------------------------------------------- measurement


def amplitudes(y: np.ndarray, freqs, fs: int = FS) -> list[float]:
    """Amplitudes of the ``freqs`` components of ``y`` by a joint least-squares fit of their
    sines and cosines plus DC: exact for a steady sum of those sines, whatever the window
    length or phases."""
    t = t_axis(len(y), fs)
    cols = [np.ones_like(t)]
    for f in freqs:
        cols += [np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)]
    coef, *_ = np.linalg.lstsq(np.stack(cols, axis=1), np.asarray(y, dtype=float), rcond=None)
    return [math.hypot(coef[1 + 2 * k], coef[2 + 2 * k]) for k in range(len(freqs))]


def amplitude(y: np.ndarray, freq: float, fs: int = FS, others=()) -> float:
    """Amplitude of the ``freq`` component of ``y`` (``others``: further frequencies present)."""
    return amplitudes(y, (freq, *others), fs)[0]


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(y, dtype=float)))))


def max_step(y: np.ndarray) -> float:
    """Largest sample-to-sample step on any channel."""
    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    return float(np.max(np.abs(np.diff(y, axis=0)))) if len(y) > 1 else 0.0


# --------------------------------------------------------------------------- filter oracles


def cookbook(kind: str, f0: float, fs: float, gain_db: float = 0.0, q: float = 1.0 / math.sqrt(2.0)):
    """RBJ Audio-EQ-Cookbook ``(b, a)`` (a0 = 1) for peak / lowshelf / highshelf / lowpass /
    highpass with a Q, written out again from the cookbook text."""
    A = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * f0 / fs
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2.0 * q)
    if kind == "peak":
        b = [1 + alpha * A, -2 * cw, 1 - alpha * A]
        a = [1 + alpha / A, -2 * cw, 1 - alpha / A]
    elif kind == "lowshelf":
        k = 2 * math.sqrt(A) * alpha
        b = [A * ((A + 1) - (A - 1) * cw + k), 2 * A * ((A - 1) - (A + 1) * cw), A * ((A + 1) - (A - 1) * cw - k)]
        a = [(A + 1) + (A - 1) * cw + k, -2 * ((A - 1) + (A + 1) * cw), (A + 1) + (A - 1) * cw - k]
    elif kind == "highshelf":
        k = 2 * math.sqrt(A) * alpha
        b = [A * ((A + 1) + (A - 1) * cw + k), -2 * A * ((A - 1) + (A + 1) * cw), A * ((A + 1) + (A - 1) * cw - k)]
        a = [(A + 1) - (A - 1) * cw + k, 2 * ((A - 1) - (A + 1) * cw), (A + 1) - (A - 1) * cw - k]
    elif kind == "lowpass":
        b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "highpass":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    else:
        raise ValueError(kind)
    return np.array(b) / a[0], np.array(a) / a[0]


def cookbook_sos(bands) -> np.ndarray:
    """Second-order sections ``(n, 6)`` for a list of ``(kind, f0, fs, gain_db, q)``."""
    rows = []
    for band in bands:
        b, a = cookbook(*band)
        rows.append(np.concatenate([b, a]))
    return np.array(rows)


def lr4_sos(fc: float, fs: float, side: str) -> np.ndarray:
    """Linkwitz-Riley 4th order = a 2nd-order Butterworth squared (scipy's own design)."""
    sos = signal.butter(2, fc, "lowpass" if side == "low" else "highpass", fs=fs, output="sos")
    return np.vstack([sos, sos])


def sos_gain(sos: np.ndarray, freq: float, fs: float) -> complex:
    _, h = signal.sosfreqz(sos, worN=[freq], fs=fs)
    return complex(h[0])
