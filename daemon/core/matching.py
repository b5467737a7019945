"""Loudness matching of compared sources.

Every source is measured continuously (``LoudnessMonitor``: gated BS.1770 loudness over the last
``[ab] window_s`` seconds, before the match gain). With ``match = auto``, at each switch of the
heard source the newly heard source gets the offset that makes it as loud as the one it
replaces, from the latest measurements; the offset then holds still while it plays, so nothing
pumps. A quieter source is raised by at most ``[ab] max_boost_db``: beyond that it stays quieter
rather than being pushed into the limiter. ``hold`` freezes every offset, ``off`` clears them.
The pair in ``[ab]`` and plain ``source`` switching among all sources are matched alike.

A source is measured once its window is full: until then (after a start, a reload that
restarts the meters, an insert measurement) a switch keeps the offsets, and ``status`` says
"measuring" with how far the windows are.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from controlroom.daemon.config import AbConfig

log = logging.getLogger(__name__)

#: ``measure(source)``: the source's windowed loudness (LUFS), or None when there is none yet
#: (silence, not enough data).
Measure = Callable[[str], float | None]

#: The deepest cut an offset makes (dB): as far down as any volume goes. Loudness gated at
#: -70 LUFS never asks for more; a saved offset below it is refused.
MIN_OFFSET_DB = -144.0


def no_measurement(source: str) -> None:
    """A ``Measure`` for a controller without audio: matching keeps every offset."""
    return None


def max_boost_db(config) -> float:
    """The boost cap (dB): ``[ab] max_boost_db``, or its default when there is no ``[ab]``."""
    return config.ab.max_boost_db if config.ab is not None else AbConfig.max_boost_db


def window_s(config) -> float:
    """The matching window (s): ``[ab] window_s``, or its default when there is no ``[ab]``."""
    return config.ab.window_s if config.ab is not None else AbConfig.window_s


def matched_offset(heard_lufs: float, new_lufs: float, cap_db: float) -> float:
    """The offset (dB, to 0.01 dB) that brings a source measured at ``new_lufs`` to the
    loudness ``heard_lufs`` (LUFS, the replaced source including its offset), at most
    ``cap_db`` and at least ``MIN_OFFSET_DB``."""
    return round(max(MIN_OFFSET_DB, min(cap_db, heard_lufs - new_lufs)), 2)


def switch_offset(measure: Measure, offsets: dict[str, float], old: str, new: str, cap_db: float) -> float | None:
    """``new``'s offset (dB) when it replaces ``old``: ``(L_old + offset_old) − L_new`` from the
    windowed loudness (LUFS), capped at ``cap_db``; None when either has no measurement."""
    old_lufs, new_lufs = measure(old), measure(new)
    if old_lufs is None or new_lufs is None:
        missing = ", ".join(name for name, lufs in ((old, old_lufs), (new, new_lufs)) if lufs is None)
        log.debug("matching %s -> %s: no loudness measured for %s yet; offset kept", old, new, missing)
        return None
    return matched_offset(old_lufs + offsets.get(old, 0.0), new_lufs, cap_db)


def compared(config) -> tuple[str, ...]:
    """The sources whose windows matching needs: the ``[ab]`` pair, else every source."""
    return (config.ab.a, config.ab.b) if config.ab is not None else tuple(config.sources)


def status(mode: str, windows: dict[str, tuple[float | None, float]], window: float) -> dict[str, Any]:
    """What matching can do now, for the state report's ``matching``.

    Args:
        mode: the ``match`` target: ``auto``, ``hold`` or ``off``.
        windows: each compared source -> (its window's gated loudness in LUFS or None, seconds
            of audio in its window).
        window: the window's length (s).

    Returns ``{"status": "off" | "hold"}`` unless ``mode`` is ``auto``; then ``"measuring"``
    with ``filled_s`` (the least full window, s) and ``window_s`` until every window is full,
    ``"no signal"`` with ``silent`` (the sources whose full window is silent), or ``"ready"``.
    """
    if mode != "auto":
        return {"status": mode}
    filled = min((seconds for _, seconds in windows.values()), default=window)
    if filled < window:
        return {"status": "measuring", "filled_s": round(filled, 1), "window_s": window}
    silent = [name for name, (lufs, _) in windows.items() if lufs is None]
    return {"status": "no signal", "silent": silent} if silent else {"status": "ready"}


def restore_offsets(saved: Any, sources: Iterable[str], cap_db: float) -> tuple[dict[str, float], list[str]]:
    """Offsets (dB) from a state file's ``match_db``: one per known source, at most ``cap_db``.

    Returns the offsets and a warning per entry that could not be used (not a number from
    ``MIN_OFFSET_DB`` up, or no such source).
    """
    if not isinstance(saved, dict):
        return {}, [f"ignoring saved match_db: a {type(saved).__name__} is not a table of source offsets"]
    known, offsets, warnings = set(sources), {}, []
    for name, value in saved.items():
        if name not in known:
            warnings.append(f"ignoring saved match_db of unknown source {name[:40]!r}")
        elif (number := _finite(value)) is None:
            warnings.append(f"ignoring saved match_db.{name}: {type(value).__name__} is not a finite number of dB")
        elif number < MIN_OFFSET_DB:
            warnings.append(f"ignoring saved match_db.{name}: {number:g} dB is below {MIN_OFFSET_DB:g} dB")
        else:
            offsets[name] = min(number, cap_db)
    return offsets, warnings


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (not a number, a boolean, beyond float range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
