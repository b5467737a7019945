"""The OSC endpoint over real UDP on loopback.

Ordering is the synchronisation: the server handles datagrams in arrival order and answers a
``/controlroom/state`` query only after everything sent before it, so ``Peer.barrier()`` (a state
query awaited with a timeout) proves that earlier packets were handled and their replies and
feedback received. Loopback delivers each ``sendto`` into the receiving socket at once, so this
holds across several sending sockets too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import struct
import time
from typing import Any

import pytest
from osckit import (
    LOOPBACK,
    STRANGER,
    Peer,
    bundle,
    dummy_report,
    encode,
    feedback,
    make_controller,
    osc_config,
    run,
    serving,
)

from controlroom.daemon.core.targets import BOOL_TARGETS, ENUM_TARGETS, STATE_TARGETS, TARGETS, Vocabulary
from controlroom.daemon.errors import PortError
from controlroom.daemon.osc.protocol import ERROR_ADDRESS, STATE_ADDRESS
from controlroom.daemon.osc.server import (
    DROP_BAD_VALUE,
    DROP_INTERNAL,
    DROP_MALFORMED,
    DROP_NOT_ALLOWED,
    DROP_UNKNOWN_ADDRESS,
    METER_FLOOR_DB,
)

# --- setting targets --------------------------------------------------------------------------

NEW_VALUES = {  # a value other than the initial one, in a different OSC type each
    "volume": (-12.5, -12.5),
    "dim": (True, True),
    "mute": (1, True),
    "mono": (1.0, True),
    "solo": ("side", "side"),
    "polarity": ("on", True),
    "speakers": ("crap", "crap"),
    "sub": (False, False),
    "source": ("tape", "tape"),
    "ab": ("b", "b"),
    "match": ("hold", "hold"),
    "blind": ("on", True),
}


def test_new_values_cover_every_target():
    assert set(NEW_VALUES) == set(STATE_TARGETS)  # level, write-only: test_levels.py


@pytest.mark.parametrize("target", STATE_TARGETS)
def test_every_target_is_set(target):
    sent, expected = NEW_VALUES[target]

    async def scenario():
        async with serving() as server:
            assert getattr(server.controller.state, target) != expected
            peer = await Peer.open(server.port)
            peer.send(f"/controlroom/{target}", sent)
            assert await peer.barrier() == []  # no error reply
            assert getattr(server.controller.state, target) == expected
            assert sum(server.controller.dropped.values()) == 0

    run(scenario)


@pytest.mark.parametrize(
    "target, arg, expected",
    [
        ("dim", True, True),
        ("dim", 1, True),
        ("dim", 0.7, True),
        ("dim", ("d", 0.5), True),
        ("dim", "on", True),
        ("dim", "TRUE", True),
        ("mute", False, False),
        ("mute", 0, False),
        ("mute", 0.3, False),
        ("mute", "off", False),
        ("mute", "false", False),
        ("volume", -12, -12.0),
        ("volume", -12.25, -12.25),
        ("volume", ("d", -7.125), -7.12),  # kept to 0.01 dB
        ("volume", ("h", -30), -30.0),
        ("volume", "-10", -10.0),
        ("volume", -6.0, -6.0),
        ("volume", -60, -60.0),
        ("speakers", "consumer", "consumer"),
        ("speakers", 2, "crap"),
        ("speakers", 1.0, "consumer"),
        ("speakers", "2", "crap"),
        ("solo", 3, "side"),
        ("match", 0, "off"),
        ("source", 1, "ref"),
    ],
)
def test_argument_types_are_forgiving(target, arg, expected):
    async def scenario():
        async with serving() as server:
            controller = server.controller
            if target == "mute":
                controller.apply("mute", "set", True, origin="test")
            peer = await Peer.open(server.port)
            peer.send(f"/controlroom/{target}", arg)
            assert await peer.barrier() == []
            assert getattr(controller.state, target) == expected

    run(scenario)


def test_toggle_step_next_prev():
    async def scenario():
        async with serving() as server:
            state, peer = server.controller.state, await Peer.open(server.port)

            async def send(address: str, *args: Any) -> None:
                peer.send(address, *args)
                assert await peer.barrier() == []

            await send("/controlroom/mute/toggle")
            assert state.mute is True
            await send("/controlroom/mute/toggle")
            assert state.mute is False
            await send("/controlroom/mute/toggle", 1.0)  # a button's press toggles...
            assert state.mute is True
            await send("/controlroom/mute/toggle", 0.0)  # ...its release does not
            assert state.mute is True
            await send("/controlroom/mute/toggle", True)
            assert state.mute is False

            await send("/controlroom/volume/step", -3.0)
            assert state.volume == -23.0
            await send("/controlroom/volume/step", 2)
            assert state.volume == -21.0
            await send("/controlroom/volume/step", 54.0)  # the whole range (-60 to -6 dB): stops at the limit
            assert state.volume == -6.0
            await send("/controlroom/volume/step", -54.0)
            assert state.volume == -60.0
            # a step larger than the range is garbage, refused like NaN
            for garbage in (("d", 1e300), -1000.0, ("d", math.nan)):
                peer.send("/controlroom/volume/step", garbage)
                [(address, (reason, _))] = await peer.barrier()
                assert (address, reason) == ("/controlroom/error", "osc_bad_value")
            assert state.volume == -60.0

            assert state.speakers == "studio"
            await send("/controlroom/speakers/next")
            assert state.speakers == "consumer"
            await send("/controlroom/speakers/next", 1)
            assert state.speakers == "crap"
            await send("/controlroom/speakers/next")  # wraps
            assert state.speakers == "studio"
            await send("/controlroom/speakers/prev")
            assert state.speakers == "crap"
            await send("/controlroom/speakers/prev", 0)  # release
            assert state.speakers == "crap"
            await send("/controlroom/speakers/step", -2)
            assert state.speakers == "studio"
            await send("/controlroom/solo/next")
            assert state.solo == "left"
            await send("/controlroom/ab/next")
            assert (state.ab, state.source) == ("b", "ref")
            assert dict(server.controller.dropped) == {"osc_bad_value": 3}  # the garbage steps

    run(scenario)


def test_bundle_is_handled_in_order_and_its_time_tag_ignored():
    far_future = struct.pack(">Q", (2**32 - 1) << 32)

    async def scenario():
        async with serving() as server:
            peer = await Peer.open(server.port)
            peer.send_raw(
                bundle(
                    encode("/controlroom/volume", -30.0),
                    bundle(encode("/controlroom/volume/step", 4.0), encode("/controlroom/dim", True)),
                    encode("/controlroom/volume/step", -1.0),
                    timetag=far_future,
                )
            )
            assert await peer.barrier() == []
            assert server.controller.state.volume == -27.0
            assert server.controller.state.dim is True

    run(scenario)


# --- state query ------------------------------------------------------------------------------


def _strict_json(text: str) -> Any:
    def reject(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def test_state_query_answers_the_report_as_json():
    meters = {"outputs": {"1": {"peak_dbfs": -3.5, "rms_dbfs": None}}, "correlation": float("nan")}

    async def scenario():
        controller = make_controller()
        controller.apply("volume", "set", -15.0, origin="test")
        async with serving(controller, report=dummy_report(controller, meters)) as server:
            peer = await Peer.open(server.port)
            peer.send("/controlroom/nonsense")
            peer.send(STATE_ADDRESS)
            address, params = await peer.receive()
            assert address == ERROR_ADDRESS
            address, params = await peer.receive()
            assert address == STATE_ADDRESS and len(params) == 1
            report = _strict_json(params[0])
            assert set(report) == {"state", "engine", "meters"}
            assert report["state"] == controller.state.as_dict()
            assert report["state"]["volume"] == -15.0
            assert report["engine"]["running"] is True
            assert report["engine"]["dropped"] == {DROP_UNKNOWN_ADDRESS: 1}
            assert report["meters"] == {"outputs": {"1": {"peak_dbfs": -3.5, "rms_dbfs": None}}, "correlation": None}

    run(scenario)


def test_state_query_keeps_the_reports_own_drop_counters():
    async def scenario():
        controller = make_controller()
        report = lambda: {"state": {}, "engine": {"dropped": {"midi_bad": 2}}, "meters": {}}  # noqa: E731
        async with serving(controller, report=report) as server:
            peer = await Peer.open(server.port)
            await peer.barrier()
            assert peer.last_report["engine"]["dropped"] == {"midi_bad": 2}

    run(scenario)


# --- subscriptions and feedback ---------------------------------------------------------------


def test_subscribe_sends_the_whole_state_with_app_friendly_types():
    async def scenario():
        async with serving() as server:
            peer = await Peer.open(server.port)
            peer.send("/controlroom/subscribe")
            received = dict((a.removeprefix("/controlroom/"), p) for a, p in await peer.barrier())
            offsets = {f"match_db/{name}" for name in server.controller.config.sources}
            assert set(received) == set(STATE_TARGETS) | offsets
            assert received["volume"] == [-20.0] and isinstance(received["volume"][0], float)
            for target in BOOL_TARGETS:
                assert received[target] in ([0], [1]) and type(received[target][0]) is int
            for target in ENUM_TARGETS:
                assert received[target] == [getattr(server.controller.state, target)]
            assert received["sub"] == [1]
            assert peer.address in [a[:2] for a in server.subscribers]

    run(scenario)


def test_subscribers_hear_changes_from_every_origin_including_their_own():
    async def scenario():
        async with serving() as server:
            tablet, phone = await Peer.open(server.port), await Peer.open(server.port)
            for peer in (tablet, phone):
                peer.send("/controlroom/subscribe")
                await peer.barrier()

            server.controller.apply("mute", "set", True, origin="test")  # e.g. a MIDI surface
            for peer in (tablet, phone):
                assert await peer.barrier() == [("/controlroom/mute", [1])]

            tablet.send("/controlroom/volume", -10.0)
            for peer in (tablet, phone):
                assert await peer.barrier() == [("/controlroom/volume", [-10.0])]

            phone.send("/controlroom/ab", "b")  # moves the source too
            for peer in (tablet, phone):
                assert feedback(await peer.barrier()) == {"ab": "b", "source": "ref"}

            tablet.send("/controlroom/volume", -10.0)  # no change, no feedback
            assert await phone.barrier() == []

    run(scenario)


def test_unsubscribe_stops_feedback():
    async def scenario():
        async with serving() as server:
            peer = await Peer.open(server.port)
            peer.send("/controlroom/subscribe")
            await peer.barrier()
            peer.send("/controlroom/unsubscribe", 0.0)  # a button's release does nothing
            await peer.barrier()
            server.controller.apply("dim", "set", True, origin="test")
            assert await peer.barrier() == [("/controlroom/dim", [1])]
            peer.send("/controlroom/unsubscribe")
            await peer.barrier()
            server.controller.apply("dim", "set", False, origin="test")
            assert await peer.barrier() == []
            assert server.subscribers == []

    run(scenario)


def test_subscription_expires_without_renewal():
    ttl = 0.3

    async def scenario():
        async with serving(subscription_ttl_s=ttl) as server:
            peer = await Peer.open(server.port)
            peer.send("/controlroom/subscribe")
            await peer.barrier()
            subscribed = time.monotonic()
            # renewal extends it
            await asyncio.sleep(ttl / 2)
            peer.send("/controlroom/subscribe")
            await peer.barrier()
            subscribed = time.monotonic()
            mute = False
            while True:
                mute = not mute
                server.controller.apply("mute", "set", mute, origin="test")
                heard = await peer.barrier()
                if not heard:
                    break
                assert heard == [("/controlroom/mute", [int(mute)])]
                assert time.monotonic() - subscribed < ttl + 2.0, "subscription never expired"
                await asyncio.sleep(0.02)
            assert time.monotonic() - subscribed >= ttl * 0.9
            assert server.subscribers == []

    run(scenario)


def test_configured_clients_always_get_feedback_and_meters():
    async def scenario():
        client = await Peer.open()
        config = osc_config(clients=(client.address,))
        async with serving(config=config) as server:
            client.server = (LOOPBACK, server.port)
            assert set(feedback(await client.barrier())) == set(STATE_TARGETS)  # the state at start
            server.controller.apply("speakers", "set", "crap", origin="test")
            server.send_meters({"limiter_gain_reduction_db": 1.5})
            assert await client.barrier() == [
                ("/controlroom/speakers", ["crap"]),
                ("/controlroom/meters/limiter_gain_reduction_db", [1.5]),
            ]
            client.send("/controlroom/subscribe")  # a client that also subscribes hears things once
            await client.barrier()
            server.controller.apply("mono", "set", True, origin="test")
            assert await client.barrier() == [("/controlroom/mono", [1])]

    run(scenario)


def test_unreachable_receivers_break_nothing():
    async def scenario():
        # sendto a broadcast address fails at once (EACCES): error_received, nothing else
        config = osc_config(clients=(("255.255.255.255", 9),))
        async with serving(config=config) as server:
            gone = await Peer.open(server.port)
            gone.send("/controlroom/subscribe")
            await gone.barrier()
            gone.close()
            peer = await Peer.open(server.port)
            for step in range(20):
                server.controller.apply("volume", "step", -1.0, origin="test")
                server.send_meters({"x": float(step)})
                peer.send("/controlroom/dim/toggle")
            await peer.barrier()
            assert server.controller.state.volume == -40.0
            assert peer.last_report["state"]["dim"] is False
            assert sum(server.controller.dropped.values()) == 0

    run(scenario)


# --- meters -----------------------------------------------------------------------------------


def test_meters_are_rate_limited_and_keep_the_highest_reading():
    interval = 0.2

    async def scenario():
        async with serving(meter_interval_s=interval) as server:
            peer = await Peer.open(server.port)
            peer.send("/controlroom/subscribe")
            await peer.barrier()

            def meters(peak: float | None) -> dict:
                return {"sources": {"mix": {"peak_dbfs": [peak, -50.0]}}, "limiter_gain_reduction_db": 0.0}

            server.send_meters(meters(-10.0))  # the first reading goes out at once
            started = time.monotonic()
            for peak in (-3.0, -30.0, None):  # held back, the highest kept
                server.send_meters(meters(peak))
            assert await peer.barrier() == [
                ("/controlroom/meters/sources/mix/peak_dbfs", [-10.0, -50.0]),
                ("/controlroom/meters/limiter_gain_reduction_db", [0.0]),
            ]
            while time.monotonic() - started < interval:
                await asyncio.sleep(interval / 10)
            server.send_meters(meters(-40.0))
            assert await peer.barrier() == [
                ("/controlroom/meters/sources/mix/peak_dbfs", [-3.0, -50.0]),
                ("/controlroom/meters/limiter_gain_reduction_db", [0.0]),
            ]
            started = time.monotonic()
            while time.monotonic() - started < interval:
                await asyncio.sleep(interval / 10)
            server.send_meters(meters(None))  # silence reads the floor
            assert (await peer.barrier())[0] == ("/controlroom/meters/sources/mix/peak_dbfs", [METER_FLOOR_DB, -50.0])

    run(scenario)


def test_meter_rate_at_the_daemons_poll_rate():
    interval, poll, duration = 0.1, 0.04, 1.0

    async def scenario():
        async with serving(meter_interval_s=interval) as server:
            peer = await Peer.open(server.port)
            peer.send("/controlroom/subscribe")
            await peer.barrier()
            started = time.monotonic()
            calls = 0
            while time.monotonic() - started < duration:
                server.send_meters({"peak": -6.0})
                calls += 1
                await asyncio.sleep(poll)
            elapsed = time.monotonic() - started
            sent = [m for m in await peer.barrier() if m[0] == "/controlroom/meters/peak"]
            assert len(sent) <= elapsed / interval + 1
            assert len(sent) >= min(calls, elapsed / interval) / 2

    run(scenario)


# --- refusals ---------------------------------------------------------------------------------


def test_refusals_are_answered_counted_and_change_nothing():
    cases = [
        (encode("/controlroom/volume", 0.0), DROP_BAD_VALUE, "out of range"),
        (encode("/controlroom/volume", ("f", math.nan)), DROP_BAD_VALUE, "finite"),
        (encode("/controlroom/volume"), DROP_BAD_VALUE, "one argument"),
        (encode("/controlroom/speakers", "nope"), DROP_BAD_VALUE, "unknown"),
        (encode("/controlroom/mute", "maybe"), DROP_BAD_VALUE, "switch"),
        (encode("/controlroom/volume/toggle"), DROP_BAD_VALUE, "cannot toggle"),
        (encode("/controlroom/louder", 1.0), DROP_UNKNOWN_ADDRESS, "unknown address"),
        (encode("/mixer/volume", 1.0), DROP_UNKNOWN_ADDRESS, "/controlroom/"),
        (b"garbage!", DROP_MALFORMED, "neither"),
        (b"", DROP_MALFORMED, "neither"),
        (encode("/controlroom/volume", "-12")[:-2], DROP_MALFORMED, ""),
    ]

    async def scenario():
        async with serving() as server:
            peer = await Peer.open(server.port)
            before = server.controller.state.as_dict()
            for data, reason, words in cases:
                peer.send_raw(data)
                [(address, params)] = await peer.barrier()
                assert address == ERROR_ADDRESS
                assert params[0] == reason and words in params[1], params
            assert server.controller.state.as_dict() == before
            expected = {}
            for _, reason, _ in cases:
                expected[reason] = expected.get(reason, 0) + 1
            assert dict(server.controller.dropped) == expected

    run(scenario)


def test_senders_outside_the_allowlist_are_dropped_silently():
    async def scenario():
        async with serving() as server:
            stranger, friend = await Peer.open(server.port, host=STRANGER), await Peer.open(server.port)
            stranger.send("/controlroom/volume", -7.0)
            stranger.send("/controlroom/subscribe")
            stranger.send(STATE_ADDRESS)
            await friend.barrier()
            assert server.controller.state.volume == -20.0
            assert server.controller.dropped == {DROP_NOT_ALLOWED: 3}
            assert friend.last_report["engine"]["dropped"] == {DROP_NOT_ALLOWED: 3}
            assert server.subscribers == []
            assert stranger.inbox.empty()

    run(scenario)


def test_close_frees_the_port_at_once():
    async def scenario():
        async with serving() as first:
            port = first.port
        async with serving(config=osc_config(port=port)) as second:  # e.g. a config reload
            peer = await Peer.open(port)
            await peer.barrier()
            assert second.port == port

    run(scenario)


def test_a_port_in_use_is_a_clear_error():
    async def scenario():
        async with serving() as first:
            with pytest.raises(PortError, match=r"OSC cannot listen on 127\.0\.0\.1:\d+: Address already in use"):
                async with serving(config=osc_config(port=first.port)):
                    pass

    run(scenario)


# --- fuzz -------------------------------------------------------------------------------------

FUZZ_PACKETS = 12_000
BATCH = 64


#: Switches the fuzz turns on and off: blind would make source and ab take labels instead of
#: the names the fuzz sends (test_blind.py covers it).
SWITCHES = tuple(t for t in BOOL_TARGETS if t != "blind")


class Fuzz:
    """Packets whose fate is known in advance (see ``packet``)."""

    def __init__(self, rng: random.Random, vocabulary: Vocabulary) -> None:
        self.rng = rng
        self.vocabulary = vocabulary
        self.low, self.high = vocabulary.min_volume_db, vocabulary.max_volume_db

    # valid messages ---------------------------------------------------------------------------

    def valid(self) -> bytes:
        r = self.rng
        kind = r.randrange(8)
        if kind == 0:
            v = r.uniform(self.low, self.high)
            return encode("/controlroom/volume", r.choice([("f", v), ("d", v), ("i", round(v)), str(round(v, 2))]))
        if kind == 1:  # any step up to the whole range is fine: the volume stops at its limits
            span = self.high - self.low
            delta = r.choice(
                [
                    ("f", r.uniform(-10, 10)),
                    ("d", r.uniform(-span, span)),
                    ("i", r.randint(-int(span), int(span))),
                    ("d", span),
                ]
            )
            return encode("/controlroom/volume/step", delta)
        if kind == 2:
            value = r.choice(
                [
                    True,
                    False,
                    ("i", 0),
                    ("i", 1),
                    ("i", 7),
                    ("f", 0.49),
                    ("f", 0.5),
                    ("d", 1.0),
                    "on",
                    "off",
                    "True",
                    "false",
                    "yes",
                    "no",
                ]
            )
            return encode(f"/controlroom/{r.choice(SWITCHES)}", value)
        if kind == 3:
            target = r.choice(ENUM_TARGETS)
            choices = self.vocabulary.choices[target]
            index = r.randrange(len(choices))
            value = r.choice([choices[index], ("i", index), ("f", float(index)), str(index)])
            return encode(f"/controlroom/{target}", value)
        if kind == 4:
            button = r.choice([(), (True,), (False,), (("i", 1),), (("f", 0.0),), ("on",)])
            return encode(f"/controlroom/{r.choice(SWITCHES)}/toggle", *button)
        if kind == 5:
            button = r.choice([(), (("f", 1.0),), (("i", 0),)])
            return encode(f"/controlroom/{r.choice(ENUM_TARGETS)}/{r.choice(['next', 'prev'])}", *button)
        if kind == 6:
            return encode(f"/controlroom/{r.choice(ENUM_TARGETS)}/step", ("i", r.randint(-128, 128)))
        return encode(r.choice(["/controlroom/state", "/controlroom/unsubscribe"]), ("i", 0))  # releases

    # well-formed messages that must be refused --------------------------------------------------

    def refused(self) -> bytes:
        r = self.rng
        kind = r.randrange(3)
        if kind == 0:  # bad values
            return r.choice(
                [
                    encode("/controlroom/volume", ("f", math.nan)),
                    encode("/controlroom/volume", ("f", math.inf)),
                    encode("/controlroom/volume", ("d", -math.inf)),
                    encode("/controlroom/volume", ("d", r.choice([1e300, -1e300, 1e30]))),
                    # a step larger than the range is garbage, as NaN is
                    encode("/controlroom/volume/step", r.choice([("d", 1e300), ("f", 3.4e38), ("i", -(2**31))])),
                    encode(f"/controlroom/{r.choice(ENUM_TARGETS)}/step", ("i", r.choice([129, -1000, 2**31 - 1]))),
                    encode("/controlroom/volume", ("f", self.high + r.uniform(0.01, 100))),
                    encode("/controlroom/volume", ("f", self.low - r.uniform(0.01, 100))),
                    encode("/controlroom/volume", ("h", 2**62)),
                    encode("/controlroom/volume", r.choice(["loud", "", "nan", "inf", "-1e999"])),
                    encode("/controlroom/volume", r.choice([True, False, None, b"\x01\x02", ("m", (0, 144, 60, 100))])),
                    encode("/controlroom/volume", ("s", "-12"), ("f", 1.0)),
                    encode(f"/controlroom/{r.choice(TARGETS)}"),
                    encode(
                        f"/controlroom/{r.choice(BOOL_TARGETS)}",
                        r.choice(["maybe", "2", b"x", None, ("f", math.nan), ("d", math.inf)]),
                    ),
                    encode(
                        f"/controlroom/{r.choice(ENUM_TARGETS)}",
                        r.choice(
                            ["nope", "Studio", ("i", 99), ("i", -1), ("f", 1.5), ("f", math.nan), "99", True, None]
                        ),
                    ),
                    encode("/controlroom/volume/step", r.choice([("f", math.nan), ("d", math.inf), "x", None, True])),
                    encode("/controlroom/volume/step"),
                    encode(f"/controlroom/{r.choice(ENUM_TARGETS)}/step", ("f", 0.5)),
                    encode(f"/controlroom/{r.choice(BOOL_TARGETS)}/step", ("f", 1.0)),
                    encode(f"/controlroom/{r.choice(BOOL_TARGETS)}/next"),
                    encode(
                        r.choice(
                            ["/controlroom/volume/toggle", "/controlroom/speakers/toggle", "/controlroom/volume/next"]
                        )
                    ),
                    encode(f"/controlroom/{r.choice(BOOL_TARGETS)}/toggle", r.choice(["maybe", ("f", math.nan), None])),
                    encode(f"/controlroom/{r.choice(BOOL_TARGETS)}/toggle", ("i", 1), ("i", 1)),
                    encode("/controlroom/state", ("i", 1), ("i", 2)),
                ]
            )
        if kind == 1:  # unknown addresses
            return encode(
                r.choice(
                    [
                        "/controlroom/nope",
                        "/controlroom/volume/up",
                        "/controlroom",
                        "/controlroom/",
                        "/other",
                        "/controlroom/meters/peak",
                        "/controlroom/state/now",
                        "/controlroom/Volume",
                        "/controlroom/*",
                        "/controlroom/volume/step/2",
                        "/controlroom//volume",
                        "/",
                        "/controlroom/error",
                        "/controlroom/"
                        + "".join(r.choice("abcdefghijklmnopqrstuvwxyz/") for _ in range(r.randrange(1, 20)))
                        + "~",
                    ]
                ),
                *r.choice([(), (("f", 1.0),), ("x", "y")]),
            )
        noise = "".join(chr(r.randrange(0x20, 0x7F)) for _ in range(r.randrange(0, 30)))
        return encode(("/" + noise).replace("/controlroom", "/xx"))  # anywhere but /controlroom/

    def random_arguments(self) -> bytes:
        """A target's address with two or more arguments of random types and random bytes
        (or an array): refused, or malformed when the bytes run short."""
        r = self.rng
        address = f"/controlroom/{r.choice(TARGETS)}" + r.choice(["", "/toggle", "/step", "/next", "/prev"])
        tags = "".join(r.choice("ihfdsTFN") for _ in range(r.randrange(2, 6)))
        if r.random() < 0.2:
            tags = "[" + tags[:-1] + "]"
        return _random_payload(r, address, tags)

    # malformed packets -------------------------------------------------------------------------

    def malformed(self) -> bytes:
        r = self.rng
        kind = r.randrange(7)
        if kind == 0:  # random bytes that are neither a message nor a bundle
            data = bytes(r.randrange(256) for _ in range(r.randrange(0, 200)))
            return data if data[:1] not in (b"/", b"#") else b"\x00" + data
        if kind == 1:  # a valid message cut short, not at a 4-byte boundary, and before its
            # last word (pythonosc pads a float missing its last bytes, for Reaktor)
            data = self.valid()
            cut = r.randrange(1, len(data) - 4)
            return data[: cut if cut % 4 else cut - 1]
        if kind == 2:  # invalid UTF-8 in the address
            return b"/\xff\xfe\x00" + encode("/x")[4:]
        if kind == 3:  # type tags pythonosc does not parse
            return _random_payload(r, "/controlroom/volume", r.choice(["S", "c", "I", "fx", "u", "f]"]))
        if kind == 4:  # broken bundles
            good = encode("/controlroom/dim", True)
            return r.choice(
                [
                    b"#bundle\x00\x00\x00",
                    bundle(good) + b"\x00\x00",  # a partial element size
                    b"#bundle\x00" + bytes(8) + struct.pack(">i", -4),  # pythonosc loops forever on this
                    b"#bundle\x00" + bytes(8) + struct.pack(">i", 6) + good[:6],
                    b"#bundle\x00" + bytes(8) + struct.pack(">i", len(good) + 8) + good,
                    b"#bundle\x00" + bytes(8) + struct.pack(">i", 4) + b"abcd",
                    b"#bundle\x00" + bytes(8) + b"\x00\x00",
                    _nested(good, 20),
                ]
            )
        if kind == 5:  # a bundle with one malformed element among good ones
            return bundle(self.valid(), self.malformed(), self.valid())
        return b"#bundle\x00" + bytes(r.randrange(0, 8))  # no whole time tag

    def packet(self) -> tuple[bytes, int, str | None]:
        """``(data, drops, reason)``: ``reason`` when every drop has one known reason."""
        r = self.rng
        kind = r.random()
        if kind < 0.3:
            return self.valid(), 0, None
        if kind < 0.45:
            return self.refused(), 1, None
        if kind < 0.55:
            return self.random_arguments(), 1, None
        if kind < 0.8:
            return self.malformed(), 1, DROP_MALFORMED
        elements = [(self.valid(), 0) if r.random() < 0.5 else (self.refused(), 1) for _ in range(r.randrange(0, 6))]
        if r.random() < 0.3:
            inner = bundle(*(e for e, _ in elements))
            elements = [(inner, sum(d for _, d in elements)), (self.refused(), 1)]
        timetag = struct.pack(">Q", r.getrandbits(64))
        return bundle(*(e for e, _ in elements), timetag=timetag), sum(d for _, d in elements), None


def _random_payload(r: random.Random, address: str, tags: str) -> bytes:
    tag_string = ("," + tags).encode() + b"\x00"
    tag_string += bytes(-len(tag_string) % 4)
    body = bytes(r.randrange(256) for _ in range(4 * r.randrange(0, 12)))
    return encode(address)[:-4] + tag_string + body


def _nested(message: bytes, depth: int) -> bytes:
    for _ in range(depth):
        message = bundle(message)
    return message


def test_random_and_malformed_packets_are_counted_and_harmless(caplog):
    rng = random.Random(20240611)
    caplog.set_level(logging.WARNING)

    async def scenario():
        controller = make_controller()
        volumes = []
        controller.add_listener(lambda changes, origin: "volume" in changes and volumes.append(changes["volume"]))
        fuzz = Fuzz(rng, controller.vocabulary)
        low, high = fuzz.low, fuzz.high
        async with serving(controller) as server:  # loopback: answers are not metered
            friend, stranger = await Peer.open(server.port), await Peer.open(server.port, host=STRANGER)
            expected_drops, not_allowed, malformed, refusals, refused_datagrams = 0, 0, 0, 0, 0
            for n in range(FUZZ_PACKETS):
                data, drops, reason = fuzz.packet()
                if rng.random() < 0.1:
                    stranger.send_raw(data)
                    not_allowed += 1
                    expected_drops += 1
                else:
                    friend.send_raw(data)
                    expected_drops += drops
                    refused_datagrams += drops > 0
                    malformed += drops if reason == DROP_MALFORMED else 0
                if n % BATCH == BATCH - 1:
                    refusals += sum(1 for a, _ in await friend.barrier() if a == ERROR_ADDRESS)
                    assert sum(controller.dropped.values()) == expected_drops, n
            refusals += sum(1 for a, _ in await friend.barrier() if a == ERROR_ADDRESS)

            dropped = controller.dropped
            assert dropped[DROP_INTERNAL] == 0
            assert sum(dropped.values()) == expected_drops
            assert dropped[DROP_NOT_ALLOWED] == not_allowed
            assert dropped[DROP_MALFORMED] >= malformed
            assert refusals == refused_datagrams  # an allowed sender hears once per datagram
            assert stranger.inbox.empty()
            assert friend.last_report["state"] == controller.state.as_dict()
            assert volumes, "the fuzz never changed the volume"
            assert all(low <= v <= high for v in volumes)
            assert low <= controller.state.volume <= high
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) < 40

    run(scenario)


def test_loudness_reset_is_a_trigger_routed_to_the_daemon():
    resets = []

    async def scenario():
        async with serving(reset_loudness=lambda: resets.append("reset")) as server:
            peer = await Peer.open(server.port)
            peer.send("/controlroom/loudness/reset")
            peer.send("/controlroom/loudness/reset", 1.0)  # a button's press
            peer.send("/controlroom/loudness/reset", 0.0)  # ... and its release: ignored
            assert await peer.barrier() == []  # no answer, as for other triggers
            assert resets == ["reset", "reset"]
            peer.send("/controlroom/loudness/reset", 1.0, 2.0)
            [(address, params)] = await peer.barrier()
            assert address == ERROR_ADDRESS and params[0] == DROP_BAD_VALUE
            assert resets == ["reset", "reset"]
            assert dict(server.controller.dropped) == {DROP_BAD_VALUE: 1}

    run(scenario)


def test_loudness_reset_without_an_engine_is_refused_and_counted():
    async def scenario():
        async with serving() as server:  # no reset_loudness: nothing meters loudness
            peer = await Peer.open(server.port)
            peer.send("/controlroom/loudness/reset")
            [(address, params)] = await peer.barrier()
            assert address == ERROR_ADDRESS
            assert params[0] == DROP_UNKNOWN_ADDRESS and "loudness reset" in params[1]
            assert dict(server.controller.dropped) == {DROP_UNKNOWN_ADDRESS: 1}

    run(scenario)
