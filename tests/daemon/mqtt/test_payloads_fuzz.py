"""Fuzzing the MQTT payload parsers: any payload is a command, a link message, or ``Dropped``
with its reason."""

from __future__ import annotations

from fuzzkit import fuzz
from hypothesis import example, given
from hypothesis import strategies as st

from controlroom.daemon.mqtt.payloads import MAX_CLOCK, Dropped, command, decode, parse_link


@fuzz(1000)
@given(st.binary(max_size=2000) | st.text(max_size=200).map(str.encode))
@example(b'{"value": ' + b"[" * 5000 + b"]" * 5000 + b', "clock": 1}')
@example(b'{"value": 1' + b"0" * 5000 + b', "clock": 1}')
@example(b'{"value": 1e400, "clock": 1}')
def test_any_payload_is_understood_or_dropped_with_a_reason(payload):
    try:
        action, _ = command("set", decode(payload))
        assert action in ("set", "toggle", "next", "prev")
    except Dropped as exc:
        assert exc.reason.startswith("mqtt_")
    try:
        value, clock = parse_link(payload)
        assert 0 <= clock <= MAX_CLOCK and isinstance(value, bool | int | float | str)
    except Dropped as exc:
        assert exc.reason.startswith("mqtt_")
