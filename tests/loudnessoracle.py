"""Independent loudness oracles for tests: BS.1770-4's published 48 kHz K-weighting and
scipy's filter responses, never the code under test."""

import math

import numpy as np
from scipy import signal

FS = 48000
#: BS.1770-4 Annex 1, Tables 1 and 2: the K-weighting at 48 kHz as published.
SHELF_48K = ([1.53512485958697, -2.69169618940638, 1.19839281085285], [1.0, -1.69065929318241, 0.73248077421585])
HIGHPASS_48K = ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])
K_48K = (SHELF_48K, HIGHPASS_48K)


def k_gain_48k(freq: float) -> float:
    """Power gain of the published 48 kHz K-weighting at ``freq`` (Hz)."""
    _, h1 = signal.freqz(*SHELF_48K, worN=[freq], fs=FS)
    _, h2 = signal.freqz(*HIGHPASS_48K, worN=[freq], fs=FS)
    return float(abs(h1[0] * h2[0]) ** 2)


def sines_lufs(sines: list[tuple[float, float]]) -> float:
    """Closed-form loudness (LUFS, BS.1770's formula, channel weights 1) of steady sines, one
    ``(frequency Hz, amplitude)`` per channel."""
    power = sum(amplitude**2 / 2 * k_gain_48k(freq) for freq, amplitude in sines)
    return -0.691 + 10 * math.log10(power)


def pink_k_gain_db(b, a) -> float:
    """K-weighted loudness change (dB) of pink noise, 20 Hz to 20 kHz, through ``b``/``a`` at
    48 kHz: ``freqz`` on a fine log grid, integrated over log frequency (pink noise has equal
    power per octave)."""
    f = np.geomspace(20.0, 20000.0, 20000)
    k2 = np.ones_like(f)
    for kb, ka in K_48K:
        k2 *= np.abs(signal.freqz(kb, ka, worN=f, fs=FS)[1]) ** 2
    h2 = np.abs(signal.freqz(b, a, worN=f, fs=FS)[1]) ** 2
    logf = np.log(f)
    return float(10 * np.log10(np.trapezoid(k2 * h2, logf) / np.trapezoid(k2, logf)))


def outboard_eq():
    """A coloured insert, as ``(b, a)``: a 40 Hz high-pass and a presence resonance at 3 kHz
    added to the direct path."""
    hb, ha = signal.butter(2, 40.0, "highpass", fs=FS)
    pb, pa = signal.iirpeak(3000.0, 2.0, fs=FS)
    return np.polymul(hb, np.polyadd(pa, pb)), np.polymul(ha, pa)
