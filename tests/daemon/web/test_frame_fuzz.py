"""Fuzzing the web remote's frame parser: any text frame is a command object or refused as
``web_malformed``."""

from __future__ import annotations

from fuzzkit import fuzz
from hypothesis import example, given
from hypothesis import strategies as st

from controlroom.daemon.web.server import DROP_MALFORMED, MAX_FRAME, parse_frame


@fuzz(1000)
@given(st.text(max_size=MAX_FRAME + 100) | st.from_regex(r'\A\{"target": "[a-z]{0,8}", "value": .{0,40}\}\Z'))
@example("[" * 2000 + "]" * 2000)
@example('{"target": "volume", "value": ' + "[" * 1500 + "]" * 1500 + "}")
@example("\ud800")
def test_any_frame_is_a_command_object_or_malformed(frame):
    try:
        message = parse_frame(frame)
    except Exception as exc:  # noqa: BLE001 - the refusal's class is private; its reason is the contract
        assert getattr(exc, "reason", None) == DROP_MALFORMED, repr(exc)
        return
    assert isinstance(message, dict)
