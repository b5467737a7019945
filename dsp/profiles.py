"""The built-in emulation profiles: what each device's response is made of (no arithmetic).

How each one sounds and why is told in ``emulation``, which also works out the loudness
compensation; this module is data only, so that a config can name profiles without numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlroom.dsp.bands import BUTTERWORTH_Q, Biquad


def _lr4(kind: str, freq_hz: float) -> tuple[Biquad, Biquad]:
    return Biquad(kind, freq_hz, q=BUTTERWORTH_Q), Biquad(kind, freq_hz, q=BUTTERWORTH_Q)


@dataclass(frozen=True)
class Profile:
    """An emulation: ``bands`` in cascade, ``mono`` for single-driver devices."""

    name: str
    bands: tuple[Biquad, ...]
    mono: bool = False


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "phone",
            (
                *_lr4("highpass", 350.0),
                *_lr4("lowpass", 8000.0),
                Biquad("peak", 1800.0, 6.0, q=1.4),
                Biquad("peak", 4000.0, 3.0, q=2.0),
            ),
            mono=True,
        ),
        Profile(
            "laptop",
            (
                *_lr4("highpass", 220.0),
                Biquad("lowpass", 12000.0),
                Biquad("peak", 900.0, 4.0, q=1.2),
                Biquad("peak", 2500.0, -3.0, q=2.0),
                Biquad("peak", 5000.0, 3.0, q=1.5),
            ),
        ),
        Profile(
            "tv",
            (
                *_lr4("highpass", 130.0),
                Biquad("lowpass", 14000.0),
                Biquad("peak", 400.0, -3.0, q=1.0),
                Biquad("peak", 2200.0, 3.0, q=1.2),
            ),
        ),
        Profile(
            "earbuds",
            (
                Biquad("highpass", 30.0),
                Biquad("lowpass", 16000.0),
                Biquad("lowshelf", 100.0, 4.0),
                Biquad("peak", 3000.0, 5.0, q=2.0),
            ),
        ),
        Profile(
            "car",
            (
                Biquad("highpass", 35.0),
                Biquad("lowpass", 15000.0),
                Biquad("lowshelf", 70.0, 6.0),
                Biquad("peak", 120.0, 4.0, q=1.5),
                Biquad("peak", 2500.0, -3.0, q=1.0),
                Biquad("highshelf", 8000.0, -3.0),
            ),
        ),
        Profile(
            "cube",
            (Biquad("highpass", 150.0), Biquad("lowpass", 9000.0), Biquad("peak", 1000.0, 3.0, q=0.8)),
            mono=True,
        ),
        Profile(
            "bluetooth",
            (
                *_lr4("highpass", 90.0),
                Biquad("lowpass", 13000.0),
                Biquad("peak", 150.0, 5.0, q=1.5),
                Biquad("peak", 3000.0, 2.0, q=1.5),
            ),
            mono=True,
        ),
    )
}

#: The built-in profile names, in documentation order.
PROFILE_NAMES = tuple(PROFILES)
