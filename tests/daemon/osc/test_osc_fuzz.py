"""Fuzzing the OSC packet parser: any datagram is a list of messages or ``MalformedPacket``
with a short message; arguments never nest deeper than 4 arrays."""

from __future__ import annotations

from fuzzkit import fuzz
from hypothesis import example, given
from hypothesis import strategies as st

from controlroom.daemon.osc.protocol import MalformedPacket, parse_packet


def padded(data: bytes) -> bytes:
    data += b"\0"
    return data + b"\0" * (-len(data) % 4)


def depth(params: list) -> int:
    return max((1 + depth(p) for p in params if isinstance(p, list)), default=0)


NESTED_1000 = padded(b"/controlroom/volume") + padded(b"," + b"[" * 1000 + b"i" + b"]" * 1000) + bytes(4)
#: Messages with plausible type tags and any payload; bundles of them.
MESSAGES = st.builds(
    lambda address, tags, payload: padded(address) + padded(b"," + tags) + payload,
    st.sampled_from([b"/controlroom/volume", b"/controlroom/volume/step", b"/x"]) | st.binary(max_size=12),
    st.text("ihfdsbrmtTFN[]x", max_size=40).map(str.encode),
    st.binary(max_size=64),
)
BUNDLES = st.lists(MESSAGES, max_size=4).map(
    lambda ms: b"#bundle\0" + bytes(8) + b"".join(len(m).to_bytes(4, "big") + m for m in ms)
)


@fuzz(1000)
@given(st.binary(max_size=256) | MESSAGES | BUNDLES)
@example(NESTED_1000)
@example(padded(b"/controlroom/volume") + padded(b"," + b"]" * 5000))
def test_any_datagram_is_messages_or_malformed(dgram):
    try:
        messages = parse_packet(dgram)
    except MalformedPacket as exc:
        assert len(str(exc)) <= 200
        return
    for message in messages:
        assert depth(message.params) <= 4
