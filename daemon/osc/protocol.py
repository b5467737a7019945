"""The OSC protocol of controlroom: addresses, packets in and out (stdlib and python-osc only).

Addresses (all under ``/controlroom/``), received:

- ``/controlroom/<target> <value>`` sets a target; ``/controlroom/<target>/step <delta>`` moves
  it (volume in dB, enums by places); ``/controlroom/<target>/toggle``, ``.../next``,
  ``.../prev``.
- ``/controlroom/state`` asks for ``/controlroom/state <json>`` (the daemon's report).
- ``/controlroom/subscribe`` / ``/controlroom/unsubscribe``: feedback to the sender.
- ``/controlroom/blind/reveal`` ends a blind test and answers the sender with
  ``/controlroom/blind/reveal <label> <source> <label> <source>``.
- ``/controlroom/abx/start <trials>``, ``/controlroom/abx/play a|b|x``,
  ``/controlroom/abx/answer a|b``, ``/controlroom/abx/stop``: an ABX test of the ``[ab]`` pair.
- ``/controlroom/insert/measure <name>`` measures an outboard insert's round trip and answers
  the sender, once done (about a second), with ``/controlroom/insert/measure <name>
  <latency samples> <latency ms> <gain dB> <coherence> <inverted 0/1>``, or with
  ``/controlroom/error measure_failed <message>``.
- ``/controlroom/outboard/<name> <on/off>`` switches an outboard output by hand (a relay
  through silence); refused (``/controlroom/error``) while a sequence runs.
- ``/controlroom/calibrate [<set> ...]`` calibrates the speakers of the named sets (all when
  none) with the measurement mic: the sender gets ``/controlroom/calibrate/progress <text>`` at
  each step and, once done, ``/controlroom/calibrate <json>`` (the ``calibration`` report with
  ``measured``: the outputs measured in this run) or ``/controlroom/error calibrate_failed
  <message>``. ``/controlroom/calibrate/stop`` (a trigger) aborts it, nothing applied;
  ``/controlroom/calibrate/reset`` (a trigger) removes the results;
  ``/controlroom/calibrate/mic`` answers ``/controlroom/calibrate/mic <dBFS>``, what the mic
  reads on a 94 dB SPL calibrator, or ``/controlroom/error calibrate_failed <message>``.
- ``/controlroom/loudness/reset`` (a trigger) restarts the integrated loudness and loudness
  range of the monitor and of the sources' meters (not their matching windows).

Trigger addresses (toggle, next, prev, state, subscribe, unsubscribe, loudness/reset) act on a message with no
argument or with one "on" argument (a button press, e.g. ``1.0`` or ``T``); one "off" argument
(the release TouchOSC and Open Stage Control buttons send) is accepted and ignored.

Sent: ``/controlroom/<target> <value>`` on every change (bools as int 0/1, volume as float dB,
enums as the name string), ``/controlroom/match_db/<source> <float dB>`` when an offset moves,
``/controlroom/volume_spl_db <float>`` with a calibrated volume (the controller's ``view()``);
``/controlroom/meters/<path> <float>...`` at most ``meter_interval_s``
apart; ``/controlroom/error <reason> <message>`` to the sender of a message that was dropped.

The server (``osc.server``) and ``controlroom ctl`` both speak it; the manual is docs/osc.md.
"""

from __future__ import annotations

from typing import Any

from pythonosc import osc_message
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

PREFIX = "/controlroom/"
STATE_ADDRESS = PREFIX + "state"
ERROR_ADDRESS = PREFIX + "error"
METERS_PREFIX = PREFIX + "meters/"
#: Actions that take no value: a button press triggers them.
TRIGGER_ACTIONS = ("toggle", "next", "prev")

#: Restarts the monitor's (and the sources') integrated loudness and loudness range; a trigger.
LOUDNESS_RESET_ADDRESS = PREFIX + "loudness/reset"

CALIBRATE_ADDRESS = PREFIX + "calibrate"
CALIBRATE_PROGRESS_ADDRESS = CALIBRATE_ADDRESS + "/progress"
CALIBRATE_MIC_ADDRESS = CALIBRATE_ADDRESS + "/mic"
CALIBRATE_FAILED = "calibrate_failed"
#: Longest time between two answers of a calibration (s): one step's, or the mic's recording.
CALIBRATE_STEP_TIMEOUT_S = 30.0

MEASURE_FAILED = "measure_failed"
INSERT_MEASURE_ADDRESS = PREFIX + "insert/measure"
#: Longest a measurement takes before it is answered (s): ``ctl`` waits this much longer.
MEASURE_TIMEOUT_S = 20.0

_BUNDLE_PREFIX = b"#bundle\x00"
_BUNDLE_HEADER = len(_BUNDLE_PREFIX) + 8  # prefix and time tag (ignored: act on arrival)
_MAX_BUNDLE_DEPTH = 8
_MAX_ARRAY_DEPTH = 4
_TYPE_TAGS = frozenset("ihfdsbrmtTFN[]")  # what pythonosc parses; others would misalign it

#: A socket address as asyncio reports it: ``(host, port)``, or ``(host, port, flowinfo, scope_id)``.
Address = tuple[Any, ...]


class MalformedPacket(ValueError):
    """A datagram that is not a well-formed OSC packet."""


# --- packets ----------------------------------------------------------------------------------


def parse_packet(dgram: bytes) -> list[osc_message.OscMessage]:
    """The messages of an OSC packet, bundles unpacked in order; raises ``MalformedPacket``.

    Bundles are walked here rather than by pythonosc's ``OscBundle``, which logs a warning per
    unknown element (a log flood) and loops forever on a negative element size.
    """
    return _parse(dgram, 0)


def _parse(dgram: bytes, depth: int) -> list[osc_message.OscMessage]:
    if dgram.startswith(_BUNDLE_PREFIX):
        return _parse_bundle(dgram, depth)
    if dgram.startswith(b"/"):
        return [_parse_message(dgram)]
    raise MalformedPacket("neither an OSC message nor a bundle")


def _parse_bundle(dgram: bytes, depth: int) -> list[osc_message.OscMessage]:
    if depth >= _MAX_BUNDLE_DEPTH:
        raise MalformedPacket(f"bundles nested deeper than {_MAX_BUNDLE_DEPTH}")
    if len(dgram) < _BUNDLE_HEADER:
        raise MalformedPacket("bundle shorter than its header")
    messages, index = [], _BUNDLE_HEADER
    while index < len(dgram):
        size = int.from_bytes(dgram[index : index + 4], "big", signed=True)
        index += 4
        if size <= 0 or size % 4 or index + size > len(dgram):
            raise MalformedPacket(f"bundle element of {size} bytes at offset {index - 4}")
        messages += _parse(dgram[index : index + size], depth + 1)
        index += size
    return messages


def _parse_message(dgram: bytes) -> osc_message.OscMessage:
    try:
        _, index = osc_types.get_string(dgram, 0)
        if index < len(dgram):
            tags, _ = osc_types.get_string(dgram, index)
            if not tags.startswith(",") or not _TYPE_TAGS.issuperset(tags[1:]):
                raise MalformedPacket(f"unsupported type tags {_shown(repr(tags))}")
            _check_arrays(tags)
        return osc_message.OscMessage(dgram)
    except (osc_types.ParseError, osc_message.ParseError, UnicodeDecodeError) as exc:
        raise MalformedPacket(_shown(str(exc))) from None


def _check_arrays(tags: str) -> None:
    """Refuse arrays nested deeper than ``_MAX_ARRAY_DEPTH`` (no address takes arrays; deep
    ones would only make each later look at the arguments recurse) or left unbalanced."""
    depth = 0
    for tag in tags:
        if tag == "[":
            depth += 1
            if depth > _MAX_ARRAY_DEPTH:
                raise MalformedPacket(f"arguments nested deeper than {_MAX_ARRAY_DEPTH} arrays")
        elif tag == "]":
            depth -= 1
            if depth < 0:
                raise MalformedPacket("an array closed that was never opened")
    if depth:
        raise MalformedPacket("an array left open")


def _shown(text: str) -> str:
    """``text`` cut to 80 characters, for a refusal's message (a datagram holds 64 KiB)."""
    return text if len(text) <= 80 else text[:77] + "..."


def build_message(address: str, *args: Any, float_tag: str = OscMessageBuilder.ARG_TYPE_FLOAT) -> bytes:
    """An OSC message: bools as int 0/1 (every OSC app reads ints; not all read T/F), ints
    as int32, floats as ``float_tag`` (float32 unless asked for ``"d"``), strings as strings."""
    builder = OscMessageBuilder(address)
    for arg in args:
        if isinstance(arg, bool):
            builder.add_arg(int(arg), OscMessageBuilder.ARG_TYPE_INT)
        elif isinstance(arg, float):
            builder.add_arg(arg, float_tag)
        else:
            builder.add_arg(arg)
    return builder.build().dgram
