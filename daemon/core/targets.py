"""The one target vocabulary: names, types, value parsing and state changes.

OSC, MIDI, the state file, ``ctl`` and ``render --set`` all go through this module, so a
value means the same thing whichever way it arrives. Every invalid value raises
``TargetError`` with a reason and leaves the state untouched.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from controlroom.daemon.config.model import (
    BOOL_TARGETS,
    ENUM_TARGETS,
    MATCH_MODES,
    NUMERIC_TARGETS,
    STATE_TARGETS,
    TARGETS,
    WRITE_ONLY_TARGETS,
)
from controlroom.daemon.errors import TargetError

# the target names are defined beside the config (which names targets in link_targets and
# mappings) and are this module's vocabulary
__all__ = [
    "BOOL_TARGETS",
    "ENUM_TARGETS",
    "NUMERIC_TARGETS",
    "STATE_TARGETS",
    "TARGETS",
    "WRITE_ONLY_TARGETS",
    "MonitorState",
    "Vocabulary",
    "parse_bool",
    "parse_choice",
    "parse_number",
    "step_choice",
]

SOLO = ("off", "left", "right", "side")
AB = ("a", "b")

#: The largest step of an enum target (places): what any encoder message carries (64 ticks at
#: most) twice over; a larger one is garbage, refused.
MAX_PLACES = 128

_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


@dataclass
class MonitorState:
    """The value of every target. Enum values are names; volume in dB."""

    volume: float
    dim: bool = False
    mute: bool = False
    mono: bool = False
    solo: str = "off"
    polarity: bool = False
    speakers: str = ""
    sub: bool = True
    source: str = ""
    ab: str = "a"
    match: str = "off"
    blind: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Vocabulary:
    """The targets as a given config defines them: enum choices and the volume range."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.min_volume_db = config.monitor.min_volume_db
        self.max_volume_db = config.monitor.max_volume_db
        self.choices: dict[str, tuple[str, ...]] = {
            "solo": SOLO,
            "speakers": tuple(config.speakers),
            "source": tuple(config.sources),
            "ab": AB,
            "match": MATCH_MODES,
            "level": tuple(config.levels),
        }

    def initial(self) -> MonitorState:
        """The config's defaults: first source and set, ``[ab]`` match mode, ``volume_db``."""
        cfg = self.config
        ab = cfg.ab
        return MonitorState(
            volume=cfg.monitor.volume_db,
            speakers=next(iter(cfg.speakers)),
            source=ab.a if ab else next(iter(cfg.sources)),
            match=ab.match if ab else "off",
        )

    # --- values -----------------------------------------------------------------------------

    def parse(self, target: str, value: Any) -> Any:
        """``value`` as ``target`` takes it, from a string, bool, int or float (OSC-forgiving).

        bool: true/false, 0/1 (>= 0.5 is on), on/off/true/false/yes/no. Enum: the name or its
        0-based index. volume: a finite number within [min_volume_db, max_volume_db]. level: a
        ``[levels]`` name or its 0-based index.
        """
        if target not in TARGETS:
            raise TargetError(f"unknown target {_shown(target)} (expected one of {', '.join(TARGETS)})")
        if target in BOOL_TARGETS:
            return parse_bool(value)
        if target in ENUM_TARGETS or target in WRITE_ONLY_TARGETS:
            return parse_choice(target, value, self.choices[target])
        # 0.01 dB is far below audibility and keeps float32 noise from tablets out of the state
        volume = round(parse_number(value), 2)
        if not self.min_volume_db <= volume <= self.max_volume_db:
            raise TargetError(
                f"volume {volume:g} dB out of range (expected {self.min_volume_db:g} to {self.max_volume_db:g} dB)"
            )
        return volume

    # --- changes ----------------------------------------------------------------------------

    def set(self, state: MonitorState, target: str, value: Any) -> dict[str, Any]:
        """Set ``target`` from a raw value; returns the targets that changed and their values."""
        parsed = self.parse(target, value)
        if target == "level":  # config validation keeps every level within the volume range
            return self._assign(state, "volume", self.config.levels[parsed])
        return self._assign(state, target, parsed)

    def toggle(self, state: MonitorState, target: str) -> dict[str, Any]:
        if target not in BOOL_TARGETS:
            raise TargetError(f"{target} cannot toggle (expected one of {', '.join(BOOL_TARGETS)})")
        return self._assign(state, target, not getattr(state, target))

    @property
    def max_step_db(self) -> float:
        """The largest volume step taken (dB): the whole volume range, from ``min_volume_db``
        to ``max_volume_db``. A larger one is no step but garbage (``1e308``), refused."""
        return self.max_volume_db - self.min_volume_db

    def step(self, state: MonitorState, target: str, delta: Any) -> dict[str, Any]:
        """Move a numeric target by ``delta`` (dB, at most ``max_step_db`` either way),
        stopping at its limits; an enum by ``delta`` places (wrapping; see ``step_choice``)."""
        d = parse_number(delta)
        if target in NUMERIC_TARGETS:
            if abs(d) > self.max_step_db:
                raise TargetError(
                    f"{target} step {d:g} dB is larger than the volume range "
                    f"(expected -{self.max_step_db:g} to {self.max_step_db:g} dB)"
                )
            value = min(self.max_volume_db, max(self.min_volume_db, round(state.volume + d, 2)))
            return self._assign(state, target, value)
        if target in ENUM_TARGETS:
            return self._assign(state, target, step_choice(target, self.choices[target], getattr(state, target), d))
        raise TargetError(f"{target} cannot step (expected volume or an enum target)")

    def _assign(self, state: MonitorState, target: str, value: Any) -> dict[str, Any]:
        if target == "blind" and value and self.config.ab is None:
            raise TargetError("blind needs an [ab] pair (none is configured)")
        before = state.as_dict()
        setattr(state, target, value)
        ab = self.config.ab
        if ab is not None:
            pair = {"a": ab.a, "b": ab.b}
            if target == "ab":
                state.source = pair[value]
            elif target == "source" and value in pair.values():
                state.ab = "a" if value == ab.a else "b"
        after = state.as_dict()
        return {k: v for k, v in after.items() if before[k] != v}

    def restore(self, saved: dict[str, Any]) -> tuple[MonitorState, list[str]]:
        """A state from a saved dict: unknown or invalid entries fall back to the defaults.

        Returns the state and a warning per entry that could not be used.
        """
        state = self.initial()
        warnings = []
        names = {f.name for f in fields(MonitorState)}
        for key, value in saved.items():
            if key not in names:
                warnings.append(f"ignoring unknown saved target {_shown(key)}")
                continue
            try:
                self._assign(state, key, self.parse(key, value))
            except TargetError as exc:
                warnings.append(f"ignoring saved {key}: {exc}")
        return state, warnings


def parse_choice(target: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices``, by name or by its 0-based index (int, whole float or digit string)."""
    if not choices:
        raise TargetError(f"{target} {_shown(value)} unknown (none are configured)")
    if isinstance(value, str) and not _is_integer_text(value):
        if value in choices:
            return value
        raise TargetError(f"{target} {_shown(value)} unknown (expected one of {', '.join(choices)})")
    index = parse_number(value)
    if index != int(index) or not 0 <= index < len(choices):
        raise TargetError(f"{target} index {_shown(value)} out of range (expected 0 to {len(choices) - 1})")
    return choices[int(index)]


def step_choice(target: str, choices: tuple[str, ...], current: str, delta: float) -> str:
    """The choice ``delta`` whole places from ``current`` (at most ``MAX_PLACES`` either way),
    wrapping around."""
    if delta != int(delta):
        raise TargetError(f"{target} steps by whole places (got {delta:g})")
    if abs(delta) > MAX_PLACES:
        raise TargetError(f"{target} step {delta:g} is too large (expected -{MAX_PLACES} to {MAX_PLACES} places)")
    return choices[(choices.index(current) + int(delta)) % len(choices)]


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise TargetError(f"{_shown(value)} is not a switch value (expected on/off, true/false or 0/1)")
        return value >= 0.5
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise TargetError(f"{_shown(value)} is not a switch value (expected on/off, true/false or 0/1)")


def parse_number(value: Any) -> float:
    if isinstance(value, bool):
        raise TargetError(f"{_shown(value)} is not a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise TargetError(f"{_shown(value)} is not a number") from None
    if not isinstance(value, (int, float)):
        raise TargetError(f"{_shown(value)} is not a number")
    try:
        number = float(value)  # an int too large for a float overflows
    except OverflowError:
        raise TargetError(f"an integer of {value.bit_length()} bits is not a finite number") from None
    if not math.isfinite(number):
        raise TargetError(f"{_shown(value)} is not a finite number")
    return number


def _shown(value: Any) -> str:
    """``repr(value)`` cut to 40 characters: a refusal quotes what it refused, not a megabyte."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an integer of thousands of digits, absurd nesting
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _is_integer_text(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()
