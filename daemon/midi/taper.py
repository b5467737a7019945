"""Control positions (0.0 = bottom / fully left, 1.0 = top / fully right) <-> target values.

Absolute controls turn a position into a value; feedback (LED rings, motor faders, CC echoes)
turns the value back into a position. Volume follows the control's taper over its range
(``min_db``..``max_db``, within the config's volume range); a switch is on in the upper half;
a choice (speaker set, source, ...) divides the travel into equal zones, first choice first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from controlroom.daemon.core.targets import BOOL_TARGETS, Vocabulary
from controlroom.daemon.midi.mapping import Control


class Scale(Protocol):
    def value(self, position: float) -> Any:
        """The target value at ``position`` (clamped to 0..1)."""

    def position(self, value: Any) -> float | None:
        """Where ``value`` lies on the control, 0..1; None for a value that is not on it (a
        blind test's label in place of a source)."""


@dataclass(frozen=True)
class LevelScale:
    """dB over ``low_db``..``high_db``. ``linear-db``: evenly spread. ``audio``: the distance
    below the top grows with the square of the travel left, so half travel sits a quarter of
    the range below the top (-20 dB on -80..0) and the loud end gets the resolution."""

    low_db: float
    high_db: float
    taper: str = "linear-db"

    def value(self, position: float) -> float:
        p = _clamp(position)
        span = self.high_db - self.low_db
        if self.taper == "audio":
            return round(self.high_db - span * (1.0 - p) ** 2, 2)
        return round(self.low_db + span * p, 2)

    def position(self, value: float) -> float:
        span = self.high_db - self.low_db
        below_top = _clamp((self.high_db - value) / span)
        return 1.0 - math.sqrt(below_top) if self.taper == "audio" else 1.0 - below_top


@dataclass(frozen=True)
class SwitchScale:
    """On in the upper half of the travel; feedback shows off at 0, on at 1."""

    def value(self, position: float) -> bool:
        return position >= 0.5

    def position(self, value: bool) -> float:
        return 1.0 if value else 0.0


@dataclass(frozen=True)
class ChoiceScale:
    """Equal zones, one per choice; feedback shows the middle of the value's zone."""

    choices: tuple[str, ...]

    def value(self, position: float) -> str:
        n = len(self.choices)
        return self.choices[min(n - 1, int(_clamp(position) * n))]

    def position(self, value: str) -> float | None:
        if value not in self.choices:
            return None
        return (self.choices.index(value) + 0.5) / len(self.choices)


def scale_for(control: Control, vocabulary: Vocabulary) -> Scale:
    """The scale of ``control``'s target under a config: the control's dB range is kept within
    the config's volume range (a control can never ask for more than ``max_volume_db``)."""
    if control.target == "volume":
        low, high = vocabulary.min_volume_db, vocabulary.max_volume_db
        own_low = low if control.min_db is None else min(max(control.min_db, low), high)
        own_high = high if control.max_db is None else min(max(control.max_db, low), high)
        if own_low < own_high:
            low, high = own_low, own_high
        return LevelScale(low, high, control.taper)
    if control.target in BOOL_TARGETS:
        return SwitchScale()
    return ChoiceScale(vocabulary.choices[control.target])


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))
