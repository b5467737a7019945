"""Generated programme material for ``controlroom demo`` and tests: no files, no hardware.

``mix`` is a quiet, warm stereo texture (pink noise, a bass line, a kick); ``ref`` is the same
kind of material mastered louder and brighter (+5 dB and a treble lift, peak-limited: 4.5 LU
louder as BS.1770 measures it, the figure the README's tour gives), the classic trap that
level-matched A/B exists to expose.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LOOP_S = 8.0


def pink_noise(frames: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise, unit RMS per channel."""
    spectrum = np.fft.rfft(rng.standard_normal((frames, channels)), axis=0)
    f = np.arange(spectrum.shape[0], dtype=float)
    f[0] = 1.0
    spectrum /= np.sqrt(f)[:, None]
    spectrum[0] = 0.0
    x = np.fft.irfft(spectrum, n=frames, axis=0)
    return x / np.sqrt(np.mean(x * x, axis=0))


def _tilt(x: np.ndarray, samplerate: int, treble_db: float) -> np.ndarray:
    """A broad treble lift of ``treble_db`` dB above ~3 kHz, applied in the frequency domain
    (the loop is periodic, so circular filtering leaves no seam)."""
    spectrum = np.fft.rfft(x, axis=0)
    f = np.fft.rfftfreq(x.shape[0], 1.0 / samplerate)
    gain = 10 ** (treble_db / 20.0 * (1.0 / (1.0 + (3000.0 / np.maximum(f, 1.0)) ** 2)))
    return np.fft.irfft(spectrum * gain[:, None], n=x.shape[0], axis=0)


def stereo_programme(samplerate: int, seed: int) -> np.ndarray:
    """An 8 s stereo loop around -20 dBFS RMS: pink-noise bed, bass notes, a kick on beats."""
    rng = np.random.default_rng(seed)
    frames = int(LOOP_S * samplerate)
    t = np.arange(frames) / samplerate
    bed = 0.06 * pink_noise(frames, 2, rng)
    beat = 0.5  # s, 120 bpm
    phase = np.mod(t, beat)
    kick = 0.35 * np.sin(2 * np.pi * (50.0 + 80.0 * np.exp(-phase * 30.0)) * phase) * np.exp(-phase * 9.0)
    notes = np.array([55.0, 55.0, 65.41, 49.0])
    freq = notes[(t // (2 * beat)).astype(int) % len(notes)]
    bass = 0.12 * np.sin(2 * np.pi * np.cumsum(freq) / samplerate)
    mono = kick + bass
    return np.column_stack([bed[:, 0] + mono, bed[:, 1] + mono])


def demo_inputs(samplerate: int, n_in: int, sources: Sequence[Sequence[int]] = ((1, 2), (3, 4))) -> np.ndarray:
    """The demo's input loop, ``(frames, n_in)`` float32 at ``samplerate`` Hz.

    ``sources`` are the 1-based input channels of each source (1 or 2 each): the first plays
    ``mix``, every other one the louder, brighter ``ref`` (a mono source gets the left channel);
    channels beyond ``n_in`` are left out, and inputs no source uses stay silent.
    """
    mix = stereo_programme(samplerate, seed=1)
    ref = 10 ** (5.0 / 20.0) * _tilt(stereo_programme(samplerate, seed=2), samplerate, 6.0)
    ref *= min(1.0, 0.95 / np.max(np.abs(ref)))  # mastered loud, yet not past full scale
    x = np.zeros((mix.shape[0], n_in), dtype=np.float32)
    for index, channels in enumerate(sources):
        programme = mix if index == 0 else ref
        for side, channel in enumerate(channels):
            if 1 <= channel <= n_in:
                x[:, channel - 1] = programme[:, side]
    return x
