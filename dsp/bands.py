"""EQ bands as configured: filter types and their parameters, no arithmetic.

Kept apart from ``biquad`` (the design, with numpy) so that reading a config names and checks
bands without loading numpy; ``biquad.coefficients(band, samplerate)`` designs one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Filter types of the cookbook, as named in configs.
FILTER_TYPES = ("peak", "lowshelf", "highshelf", "lowpass", "highpass", "bandpass", "notch", "allpass")
#: Types whose ``gain_db`` changes the response.
GAIN_TYPES = ("peak", "lowshelf", "highshelf")
#: Types that may take a shelf ``slope`` instead of ``q``.
SHELF_TYPES = ("lowshelf", "highshelf")

#: Q of a 2nd-order Butterworth section; two in cascade make one side of an LR4 crossover.
BUTTERWORTH_Q = 1.0 / math.sqrt(2.0)


@dataclass(frozen=True)
class Biquad:
    """One EQ band as configured: ``type``, ``freq_hz``, ``gain_db`` and either ``q`` or ``slope``.

    ``q`` defaults to 1/sqrt(2) (and a shelf without ``q`` to slope 1, the steepest
    monotonic shelf). ``slope`` applies to shelves only.
    """

    type: str
    freq_hz: float
    gain_db: float = 0.0
    q: float | None = None
    slope: float | None = None
