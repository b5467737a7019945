"""An outboard switch on MQTT (a smart plug powering the cube's amplifier) through a real
mosquitto: off when the daemon starts, on while a set that powers it plays
(``power_policy = "selected"``), off again on a switch away and when the daemon stops — the last
before it exits. The oracle is what a subscriber of the plug's command topic receives."""

from __future__ import annotations

import asyncio

from daemonkit import running, until
from mqttkit import Recorder, mqtt_section

from controlroom.daemon.config import parse_config

PLUG = "shellies/cube/relay/0/command"
CONFIG = f"""
[audio]
backend = "virtual"

[sources.mix]
channels = [1, 2]

[speakers.near]
outputs = [1, 2]
[speakers.cube]
outputs = [3]
power = ["cube-amp"]

[[outboard]]
name = "cube-amp"
mqtt_topic = "{PLUG}"
payload_on = "on"
payload_off = "off"

[sequencing]
power_policy = "selected"
on_delay_ms = 100

[osc]
listen = "127.0.0.1:0"
"""


def test_a_smart_plug_follows_its_set_and_goes_off_before_the_daemon_exits(broker):
    async def scenario():
        config = parse_config(CONFIG + mqtt_section(broker.port, id="room"))
        async with Recorder(broker.port, PLUG) as plug:
            async with running(config) as daemon:
                await plug.wait_text(PLUG, "off")  # whatever it was left in, the start switches it off
                await until(lambda: daemon.outboard.sequence is None, "start-up")
                daemon.controller.apply("speakers", "set", "cube", origin="test")
                await plug.wait_text(PLUG, "on")
                await until(lambda: daemon.report()["outboard"] == {"cube-amp": "on"}, "the report")
                daemon.controller.apply("speakers", "set", "near", origin="test")
                await plug.wait_text(PLUG, "off")
                daemon.controller.apply("speakers", "set", "cube", origin="test")
                await plug.wait_text(PLUG, "on")
                await until(lambda: daemon.outboard.sequence is None, "the switch")
                mark = plug.mark()
            # running() stopped it as SIGTERM does and saw it exit 0: the "off" went out before
            assert daemon.runner.state.value == "stopped"
            await plug.sync()
            assert [m.text for m in plug.on(PLUG, since=mark)] == ["off"]
            assert not any(m.retain for m in plug.on(PLUG)), "commands to a device are never retained"
            assert [m.text for m in plug.on(PLUG)] == ["off", "on", "off", "on", "off"]

    asyncio.run(asyncio.wait_for(scenario(), 120.0))
