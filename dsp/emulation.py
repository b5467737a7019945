"""Speaker emulation profiles: how small and consumer playback devices colour a mix.

Each profile is a cascade of cookbook biquads (band limits, resonances) and a mono flag for
devices with one driver. The profiles are generic composites of published measurements of
each device class, not any one product. Every profile carries a loudness compensation
(dB) so that switching a set to its emulation changes the tone, not the level: the
K-weighted (BS.1770) loudness of pink noise (20 Hz to 20 kHz, identical on both channels)
is the same with and without it. Mono profiles play (L+R)/2, so uncorrelated stereo content
comes out 3 dB quieter through them: that loss is the device's, and is left audible.

Band limits: ``LR4`` is a Linkwitz-Riley 24 dB/oct corner (two Butterworth sections, -6 dB
at the corner frequency), ``BW2`` a Butterworth 12 dB/oct corner (-3 dB at the corner).

| profile   | emulates                         | mono | high-pass  | low-pass   | character |
|-----------|----------------------------------|------|------------|------------|-----------|
| phone     | a smartphone's speaker           | yes  | 350 Hz LR4 | 8 kHz LR4  | +6 dB 1.8 kHz driver resonance, +3 dB 4 kHz |
| laptop    | a laptop's stereo micro-speakers | no   | 220 Hz LR4 | 12 kHz BW2 | +4 dB 900 Hz box, -3 dB 2.5 kHz dip, +3 dB 5 kHz |
| tv        | a flat TV's down-firing speakers | no   | 130 Hz LR4 | 14 kHz BW2 | -3 dB 400 Hz, +3 dB 2.2 kHz dialogue lift |
| earbuds   | in-ear headphones                | no   | 30 Hz BW2  | 16 kHz BW2 | +4 dB low shelf 100 Hz, +5 dB 3 kHz ear-canal peak |
| car       | a car's door speakers            | no   | 35 Hz BW2  | 15 kHz BW2 | +6 dB low shelf 70 Hz cabin gain, +4 dB 120 Hz mode, -3 dB 2.5 kHz, -3 dB high shelf 8 kHz |
| cube      | a single full-range cube         | yes  | 150 Hz BW2 | 9 kHz BW2  | +3 dB 1 kHz midrange hump (Auratone-style) |
| bluetooth | a portable Bluetooth speaker     | yes  | 90 Hz LR4  | 13 kHz BW2 | +5 dB 150 Hz bass boost, +2 dB 3 kHz |
"""

from __future__ import annotations

from functools import cache

import numpy as np

from controlroom.dsp.bands import Biquad
from controlroom.dsp.biquad import cascade_response, coefficients
from controlroom.dsp.bs1770 import pink_loudness_gain_db
from controlroom.dsp.profiles import Profile

#: Sample rate the compensation is computed at (Hz); it does not depend on the rate in use
#: because every profile's bands lie well below any supported Nyquist.
_REFERENCE_RATE = 48000.0


def loudness_compensation_db(bands: tuple[Biquad, ...], samplerate: float = _REFERENCE_RATE) -> float:
    """Gain (dB) making a cascade's K-weighted pink-noise loudness (20 Hz to 20 kHz) equal to
    the bypass's."""
    sections = np.array([coefficients(b, samplerate) for b in bands])
    return -pink_loudness_gain_db(lambda f: np.abs(cascade_response(sections, f, samplerate)) ** 2, samplerate)


@cache
def compensation_db(profile: Profile) -> float:
    """Gain (dB) that restores the K-weighted loudness of pink noise through ``profile``."""
    return loudness_compensation_db(profile.bands)
