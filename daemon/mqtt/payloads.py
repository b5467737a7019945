"""What goes over MQTT: topic names, target values as plain text, commands from text, the meters
and link messages as JSON.

Every topic of an instance lives under ``controlroom/<id>/``: ``status`` (``online`` /
``offline``), ``<target>`` (the value), ``state`` (the whole state, JSON), ``<target>/set`` and
``<target>/step`` (commands), ``meters`` (JSON), ``link/<target>`` (a linked target's value with
its stamp, read by linked instances).
"""

from __future__ import annotations

import json
import math
from typing import Any

ROOT = "controlroom"
ONLINE, OFFLINE = "online", "offline"
SWITCH_ON, SWITCH_OFF = "ON", "OFF"
#: Longest command payload taken (bytes): a value is a few characters, a level name 32.
MAX_PAYLOAD = 1024

#: Drop reasons, counted in ``engine.dropped`` beside OSC's and MIDI's.
DROP_MALFORMED = "mqtt_malformed"
DROP_RETAINED = "mqtt_retained_command"
DROP_BAD_VALUE = "mqtt_bad_value"
DROP_UNKNOWN_TOPIC = "mqtt_unknown_topic"
DROP_OVERFLOW = "mqtt_overflow"


class Dropped(Exception):
    """A message refused for ``reason`` (a ``DROP_*`` code); ``str()`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def base_topic(instance: str) -> str:
    """``controlroom/<instance>``: the root of an instance's topics."""
    return f"{ROOT}/{instance}"


def value_text(value: Any) -> str:
    """A target's value as its topic carries it: ``-12.5`` (dB, to 0.01), ``ON``/``OFF``, a name."""
    if isinstance(value, bool):
        return SWITCH_ON if value else SWITCH_OFF
    if isinstance(value, float):
        return repr(round(value, 2) + 0.0)  # + 0.0: never "-0.0"
    return str(value)


def decode(payload: bytes) -> str:
    """A command's payload as text: UTF-8, not empty, at most ``MAX_PAYLOAD`` bytes."""
    if len(payload) > MAX_PAYLOAD:
        raise Dropped(DROP_MALFORMED, f"{len(payload)} bytes (expected at most {MAX_PAYLOAD})")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Dropped(DROP_MALFORMED, "not UTF-8 text") from None
    if not text:
        raise Dropped(DROP_MALFORMED, "empty")
    return text


def command(kind: str, text: str) -> tuple[str, str | None]:
    """``(action, value)`` for ``Controller.apply`` from a ``set`` or ``step`` payload: ``set``
    takes a value, or ``toggle``/``next``/``prev`` (any case); ``step`` a signed delta."""
    if kind == "step":
        return "step", text
    word = text.lower()
    if word in ("toggle", "next", "prev"):
        return word, None
    return "set", text


def meters_json(meters: dict[str, Any]) -> str:
    """The ``meters`` topic: the monitor's loudness (LUFS, dBTP) and each output's peak and RMS
    (dBFS) from a state report's ``meters``; null for what does not exist yet."""
    monitor = (meters.get("loudness") or {}).get("monitor") or {}
    keys = ("momentary_lufs", "short_term_lufs", "integrated_lufs", "loudness_range_lu", "true_peak_dbtp")
    return json.dumps(
        {
            "monitor": {key: monitor.get(key) for key in keys},
            "outputs": {
                name: {"peak_dbfs": level.get("peak_dbfs"), "rms_dbfs": level.get("rms_dbfs")}
                for name, level in (meters.get("outputs") or {}).items()
            },
        }
    )


def link_json(value: Any, clock: int) -> str:
    """A linked target's value and its clock (ms)."""
    return json.dumps({"value": value, "clock": clock})


#: The largest link clock taken (ms since 1970: until the year 287,000), exact in any JSON reader.
MAX_CLOCK = 2**53


def parse_link(payload: bytes) -> tuple[Any, int]:
    """``(value, clock)`` of a link message (``Dropped`` if it is not one): the value a
    finite number, a bool or a short string, the clock a count."""
    try:
        message = json.loads(decode(payload))
        value, clock = message["value"], message["clock"]
    except (ValueError, TypeError, KeyError, RecursionError):  # RecursionError: absurd nesting
        raise Dropped(DROP_MALFORMED, "not a link message") from None
    if isinstance(clock, bool) or not isinstance(clock, int) or not 0 <= clock <= MAX_CLOCK:
        raise Dropped(DROP_MALFORMED, "the link clock is not a count")
    plain = isinstance(value, bool | str) or (isinstance(value, int | float) and abs(value) < 1e9)
    if not plain or (isinstance(value, float) and not math.isfinite(value)):
        raise Dropped(DROP_BAD_VALUE, "the link value is not a target value")
    return value, clock
