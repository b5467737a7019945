"""The broker is a guest: absent at start, gone, back again. The daemon keeps running and its audio
keeps flowing whatever the broker does; it says ``retrying`` meanwhile, and once the broker is
back (on the same port) it reconnects by itself and publishes its status, every target and the
state again.

The brokers keep nothing between runs (no persistence): what a subscriber finds after a restart
was published after it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from configkit import STATE_TARGETS
from daemonkit import running, until
from mqttkit import (
    INITIAL_TEXTS,
    RECONNECT_S,
    Broker,
    Recorder,
    listening,
    mqtt_config,
    mqtt_report,
    ready,
    topic,
)
from osckit import run

from controlroom.daemon.config import parse_config

pytestmark = pytest.mark.slow

ID = "control-a"


def cfg(port: int | None, **keys):
    return parse_config(mqtt_config(port, id=ID, **keys))


def playing(daemon, condition: Callable[[], bool]) -> Callable[[], bool]:
    """``condition``, checking on every poll that the audio still flows."""

    def check() -> bool:
        assert daemon.runner.running, "the audio stopped"
        return condition()

    return check


def mqtt_state(daemon) -> str | None:
    return mqtt_report(daemon).get("state")


async def republished(recorder: Recorder, volume: str) -> None:
    """A fresh subscriber finds status online, every target (the volume at ``volume``) and the
    state, all retained."""
    await recorder.wait(
        lambda: all(recorder.last(topic(ID, t)) for t in (*STATE_TARGETS, "status", "state")),
        "every topic published again",
        RECONNECT_S,
    )
    await recorder.wait_text(topic(ID, "status"), "online")
    await recorder.wait_text(topic(ID, "volume"), volume)
    await recorder.wait(lambda: recorder.last(topic(ID, "state")).json()["volume"] == float(volume), "the state")
    expected = {**INITIAL_TEXTS, "volume": volume}
    assert {t: recorder.text(topic(ID, t)) for t in STATE_TARGETS} == expected


def test_a_broker_absent_at_start_is_retried_until_it_comes(tmp_path):
    broker = Broker(tmp_path / "broker")  # not started yet

    async def scenario():
        async with running(cfg(broker.port)) as daemon:
            await until(playing(daemon, lambda: mqtt_state(daemon) == "retrying"), "retrying")
            report = mqtt_report(daemon)
            assert report["broker"] == broker.address
            assert daemon.controller.apply("volume", "set", -20.0, origin="osc") == {"volume": -20.0}
            assert daemon.controller.state.volume == -20.0

            broker.start()
            await until(playing(daemon, lambda: mqtt_state(daemon) == "connected"), "connected", RECONNECT_S)
            async with Recorder(broker.port, topic(ID, "#")) as recorder:
                await republished(recorder, "-20.0")
                await ready(daemon, recorder, ID)
            engine = daemon.report()["engine"]
            assert engine["running"] and engine["restarts"] == 0

    try:
        run(scenario)
    finally:
        broker.stop()


def test_a_restarted_broker_gets_everything_again_and_the_audio_never_stopped(tmp_path):
    broker = Broker(tmp_path / "broker").start()

    async def scenario():
        async with running(cfg(broker.port)) as daemon:
            async with Recorder(broker.port, topic(ID, "#")) as recorder:
                await ready(daemon, recorder, ID)
                published = mqtt_report(daemon)["published"]

            broker.stop()
            await until(playing(daemon, lambda: mqtt_state(daemon) == "retrying"), "retrying", RECONNECT_S)
            daemon.controller.apply("volume", "set", -20.0, origin="osc")  # while the broker is away
            assert daemon.controller.state.volume == -20.0

            broker.start()  # the same port, nothing retained
            await until(playing(daemon, lambda: mqtt_state(daemon) == "connected"), "connected again", RECONNECT_S)
            async with Recorder(broker.port, topic(ID, "#")) as recorder:
                await republished(recorder, "-20.0")
                # and it takes commands again
                await ready(daemon, recorder, ID)
                await recorder.publish(topic(ID, "mute", "set"), "ON")
                await recorder.wait_text(topic(ID, "mute"), "ON")
                assert daemon.controller.state.mute is True
            assert mqtt_report(daemon)["published"] > published
            engine = daemon.report()["engine"]
            assert engine["running"] and engine["restarts"] == 0

    try:
        run(scenario)
    finally:
        broker.stop()


def test_the_port_defaults_to_1883():
    if listening(1883):
        pytest.skip("something listens on 127.0.0.1:1883 here")

    async def scenario():
        async with running(cfg(None, broker="127.0.0.1")) as daemon:
            await until(playing(daemon, lambda: mqtt_state(daemon) == "retrying"), "retrying")
            assert mqtt_report(daemon)["broker"] == "127.0.0.1:1883"

    run(scenario)
