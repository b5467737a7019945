"""Linked instances: two daemons on one broker, each naming the other in ``link``, keep their
``link_targets`` equal, whichever side a change comes from, and only those.

Both daemons run in-process on the virtual backend (``daemonkit.running``), each with its own id
and OSC port. That a target does not follow is shown by ordering: a change of a target that is
not linked is followed, on the same side, by one of a linked target; once the other side has
the linked change, it would have had the first one too.
"""

from __future__ import annotations

import asyncio

import pytest
from daemonkit import running, until
from mqttkit import RECONNECT_S, Recorder, mqtt_config, mqtt_drops, mqtt_report, ready, text_of, topic
from osckit import run

from controlroom.daemon.config import parse_config

pytestmark = pytest.mark.slow

A, B = "control-a", "control-b"
SETTLE_S = 10.0  # both sides agree within this after a burst
QUIET_S = 1.0  # and then nothing more is published for this long


def cfg(port: int, me: str, other: str, **keys):
    keys.setdefault("discovery", False)
    keys.setdefault("meters_interval_s", 60.0)
    return parse_config(mqtt_config(port, id=me, link=[other], **keys))


def value(daemon, target: str):
    return getattr(daemon.controller.state, target)


async def both(a, b, target: str, expected, what: str, timeout: float = SETTLE_S) -> None:
    """Wait until ``target`` is ``expected`` on both daemons (a linked change takes a few
    hundred milliseconds: ``SETTLE_S`` is slack)."""
    await until(
        lambda: value(a, target) == expected and value(b, target) == expected,
        f"{what}: {target} = {expected!r} on both (a {value(a, target)!r}, b {value(b, target)!r})",
        timeout,
    )


def test_a_change_on_either_side_reaches_the_other_and_unlinked_targets_stay(broker):
    async def scenario():
        async with (
            Recorder(broker.port, "controlroom/#") as recorder,
            running(cfg(broker.port, A, B)) as a,
            running(cfg(broker.port, B, A)) as b,
        ):
            await ready(a, recorder, A)
            await ready(b, recorder, B)

            a.controller.apply("volume", "set", -23.0, origin="osc")
            await both(a, b, "volume", -23.0, "volume set on a")
            b.controller.apply("dim", "set", True, origin="osc")
            await both(a, b, "dim", True, "dim set on b")
            await recorder.publish(topic(B, "mute", "set"), "ON")
            await both(a, b, "mute", True, "mute set over MQTT on b")
            await recorder.publish(topic(A, "volume", "step"), "-2")
            await both(a, b, "volume", -25.0, "volume stepped over MQTT on a")
            await recorder.publish(topic(A, "dim", "set"), "toggle")
            await both(a, b, "dim", False, "dim toggled over MQTT on a")
            # each shows its own value on its own topics
            for instance in (A, B):
                await recorder.wait_text(topic(instance, "volume"), "-25.0")

            # not linked: speakers (the default link_targets are volume, dim and mute)
            a.controller.apply("speakers", "set", "consumer", origin="osc")
            await recorder.publish(topic(B, "mono", "set"), "ON")
            await until(lambda: value(b, "mono"), "mono on b")
            a.controller.apply("volume", "set", -30.0, origin="osc")
            await until(lambda: value(b, "volume") == -30.0, "a's volume on b")
            assert value(b, "speakers") == "studio" and value(a, "speakers") == "consumer"
            b.controller.apply("volume", "step", -1.0, origin="osc")
            await until(lambda: value(a, "volume") == -31.0, "b's step on a")
            assert value(a, "mono") is False and value(b, "mono") is True

    run(scenario)


def test_link_targets_choose_what_follows(broker):
    async def scenario():
        linked = {"link_targets": ["speakers", "source", "mono"]}
        async with (
            Recorder(broker.port, "controlroom/#") as recorder,
            running(cfg(broker.port, A, B, **linked)) as a,
            running(cfg(broker.port, B, A, **linked)) as b,
        ):
            await ready(a, recorder, A)
            await ready(b, recorder, B)

            a.controller.apply("volume", "set", -30.0, origin="osc")  # not linked now
            a.controller.apply("speakers", "set", "consumer", origin="osc")
            await both(a, b, "speakers", "consumer", "speakers set on a")
            await recorder.publish(topic(B, "source", "set"), "ref")
            await both(a, b, "source", "ref", "source set over MQTT on b")
            assert value(a, "ab") == value(b, "ab") == "b"  # ref is the pair's b on both
            b.controller.apply("mono", "toggle", origin="osc")
            await both(a, b, "mono", True, "mono toggled on b")
            assert (value(a, "volume"), value(b, "volume")) == (-30.0, -10.0)

    run(scenario)


def test_a_burst_of_changes_on_both_sides_settles_on_one_value_and_then_all_is_quiet(broker):
    values = [round(-40.0 + 0.5 * i, 2) for i in range(50)]  # all different, all in range

    async def scenario():
        async with (
            Recorder(broker.port, "controlroom/#") as recorder,
            running(cfg(broker.port, A, B)) as a,
            running(cfg(broker.port, B, A)) as b,
        ):
            await ready(a, recorder, A)
            await ready(b, recorder, B)

            for i, v in enumerate(values):  # alternating sides, the loop turning in between
                (a, b)[i % 2].controller.apply("volume", "set", v, origin="osc")
                await asyncio.sleep(0)

            def settled() -> bool:
                va, vb = value(a, "volume"), value(b, "volume")
                shown = recorder.text(topic(A, "volume")), recorder.text(topic(B, "volume"))
                # the state topics too: each side publishes its state after a change, as a
                # separate message that may come later on a slow machine
                states = recorder.last(topic(A, "state")), recorder.last(topic(B, "state"))
                reported = tuple(state.json()["volume"] if state is not None else None for state in states)
                return va == vb and shown == (text_of(va), text_of(vb)) and reported == (va, vb)

            await until(settled, "both sides agreeing on the volume, and showing it", SETTLE_S)
            final = value(a, "volume")
            assert final in values

            mark = recorder.mark()
            await asyncio.sleep(QUIET_S)  # an observation window, not a wait for something
            await recorder.sync()
            traffic = [(m.topic, m.text) for m in recorder.messages[mark:] if not m.topic.endswith("/meters")]
            assert traffic == []
            assert value(a, "volume") == value(b, "volume") == final

    run(scenario)


def test_an_instance_that_starts_later_takes_the_linked_values_it_finds(broker):
    """docs/mqtt.md: "A controller that starts later takes the linked values it finds on the
    broker" (below the start-up cap here: -23 dB against -10 dB)."""

    async def scenario():
        async with (
            Recorder(broker.port, "controlroom/#") as recorder,
            running(cfg(broker.port, B, A)) as b,
        ):
            await ready(b, recorder, B)
            b.controller.apply("volume", "set", -23.0, origin="osc")
            b.controller.apply("dim", "set", True, origin="osc")
            b.controller.apply("speakers", "set", "consumer", origin="osc")  # not linked
            await recorder.wait_text(topic(B, "speakers"), "consumer")

            async with running(cfg(broker.port, A, B)) as a:
                await ready(a, recorder, A)
                await until(lambda: value(a, "volume") == -23.0 and value(a, "dim"), "b's linked values on a")
                assert value(a, "speakers") == "studio"
                assert value(b, "volume") == -23.0 and value(b, "dim") is True

    run(scenario)


def test_a_linked_volume_found_at_start_is_taken_at_most_at_the_start_up_limit(broker):
    """A controller coming up never plays louder than ``startup_max_volume_db`` (-10 dB here),
    whatever the linked room left on the broker; later changes follow in full."""

    async def scenario():
        async with Recorder(broker.port, "controlroom/#") as recorder, running(cfg(broker.port, B, A)) as b:
            await ready(b, recorder, B)
            b.controller.apply("volume", "set", -3.0, origin="osc")
            await recorder.wait_text(topic(B, "volume"), "-3.0")
            async with running(cfg(broker.port, A, B)) as a:
                await ready(a, recorder, A)
                await until(lambda: value(a, "volume") == -10.0, "the start-up limit on a")
                b.controller.apply("volume", "set", -4.0, origin="osc")
                await both(a, b, "volume", -4.0, "a change after the start")

    run(scenario)


def test_a_restarted_instance_is_followed_even_after_the_broker_forgot_everything(broker):
    """A broker without persistence forgets its retained messages when it restarts; an instance
    that starts after that has seen none of the other's changes, and its changes still reach the
    other."""

    async def scenario():
        async with running(cfg(broker.port, B, A)) as b:
            async with Recorder(broker.port, "controlroom/#") as recorder, running(cfg(broker.port, A, B)) as a:
                await ready(b, recorder, B)
                await ready(a, recorder, A)
                for v in (-20.0, -19.0, -18.0, -17.0, -12.0):  # b's changes, a following
                    b.controller.apply("volume", "set", v, origin="osc")
                    await until(lambda: value(a, "volume") == value(b, "volume"), "a following b")

            broker.stop()
            broker.start()  # the same port, nothing retained
            await until(lambda: mqtt_report(b).get("state") == "connected", "b connected again", RECONNECT_S)

            async with Recorder(broker.port, "controlroom/#") as recorder, running(cfg(broker.port, A, B)) as a:
                await ready(a, recorder, A)
                a.controller.apply("volume", "set", -25.0, origin="osc")
                await both(a, b, "volume", -25.0, "volume set on the restarted a")
                b.controller.apply("mute", "set", True, origin="osc")
                await both(a, b, "mute", True, "mute set on b")

    run(scenario)


#: Payloads on a link topic (``controlroom/<id>/link/<target>``, docs/mqtt.md) that are no
#: linked value: a client of the broker may publish anything anywhere.
LINK_GARBAGE = [
    b"\xff\xfe",
    b"1" * 1025,
    b"not json",
    b"[" * 1000,  # deeply nested
    b"{}",
    b"[1, 2]",
    b'"-20"',
    b"1e999",
    b'{"value": -20.0}',
    b'{"value": -20.0, "clock": "9"}',
    b'{"value": -20.0, "clock": -1}',
    b'{"value": -20.0, "clock": 1e400}',
    b'{"value": NaN, "clock": 5}',
    b'{"value": "loud", "clock": 6}',
    b'{"value": 100.0, "clock": 7}',  # above max_volume_db
    b'{"value": true, "clock": 8}',
    b'{"value": [-20.0], "clock": 9}',
    b'{"value": 1' + b"0" * 400 + b', "clock": 10}',  # an integer no float holds
]


def test_garbage_on_the_link_topics_is_dropped_and_counted_and_the_link_still_works(broker):
    async def scenario():
        async with (
            Recorder(broker.port, "controlroom/#") as recorder,
            running(cfg(broker.port, A, B)) as a,
            running(cfg(broker.port, B, A)) as b,
        ):
            await ready(a, recorder, A)
            await ready(b, recorder, B)
            before = a.controller.state.as_dict(), b.controller.state.as_dict()

            for payload in LINK_GARBAGE:
                await recorder.publish(topic(B, "link", "volume"), payload)
            await until(
                lambda: sum(mqtt_drops(a).values()) >= len(LINK_GARBAGE),
                f"{len(LINK_GARBAGE)} drops counted on a (now {mqtt_drops(a)})",
                SETTLE_S,
            )
            assert sum(mqtt_drops(a).values()) == len(LINK_GARBAGE)
            assert (a.controller.state.as_dict(), b.controller.state.as_dict()) == before
            assert a.runner.running and mqtt_report(a)["state"] == "connected"

            b.controller.apply("volume", "set", -20.0, origin="osc")
            await both(a, b, "volume", -20.0, "a change on b after the garbage")
            a.controller.apply("volume", "set", -21.0, origin="osc")
            await both(a, b, "volume", -21.0, "a change on a after the garbage")

    run(scenario)
