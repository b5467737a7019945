"""Home Assistant MQTT discovery: one retained device payload that describes every target as the
entity Home Assistant should make of it, published again when Home Assistant comes online.

The payload is read as Home Assistant reads it: abbreviations expanded (``cmd_t`` is
``command_topic``...), ``~`` replaced by the base topic, and options at the payload's root shared
by every component. Components are recognised by their command topic (``controlroom/<id>/<target>/set``),
so the test does not depend on the keys the implementation gives them in ``cmps``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from configkit import SWITCHES
from daemonkit import running, until
from mqttkit import (
    LEVELS,
    SOURCES,
    SPEAKERS,
    Recorder,
    mqtt_config,
    ready,
    topic,
)
from osckit import run

from controlroom.daemon.config import MATCH_MODES, load_config, parse_config
from controlroom.daemon.core.targets import AB, SOLO
from controlroom.daemon.service import Daemon

pytestmark = pytest.mark.slow

ID = "control-a"
MIN_DB, MAX_DB = -60.0, -6.0
MONITOR = f"min_volume_db = {MIN_DB}\nmax_volume_db = {MAX_DB}"

#: Home Assistant's abbreviations of the keys these payloads use (its ``abbreviations.py``).
ABBREVIATIONS = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "def_ent_id": "default_entity_id",
    "dev_cla": "device_class",
    "ent_cat": "entity_category",
    "json_attr_t": "json_attributes_topic",
    "obj_id": "object_id",
    "ops": "options",
    "p": "platform",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "pl_prs": "payload_press",
    "stat_cla": "state_class",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_t": "state_topic",
    "t": "topic",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}
DEVICE_ABBREVIATIONS = {"ids": "identifiers", "mf": "manufacturer", "mdl": "model", "sw": "sw_version"}


def expand(options: dict[str, Any], base: str | None, names: dict[str, str] = ABBREVIATIONS) -> dict[str, Any]:
    """``options`` with full key names and ``~`` (at a topic's start or end) replaced by ``base``."""
    out = {}
    for key, value in options.items():
        key = names.get(key, key)
        if isinstance(value, str) and base is not None and key.endswith("topic"):
            if value.startswith("~"):
                value = base + value[1:]
            elif value.endswith("~"):
                value = value[:-1] + base
        elif isinstance(value, list):
            value = [expand(v, base, names) if isinstance(v, dict) else v for v in value]
        out[key] = value
    return out


def components(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every component as Home Assistant sees it: the root's shared options, then its own."""
    shared = {k: v for k, v in payload.items() if k not in ("dev", "device", "o", "origin", "cmps", "components")}
    cmps = payload.get("cmps", payload.get("components"))
    return [expand({**shared, **own}, own.get("~", shared.get("~"))) for own in cmps.values()]


def availability_topics(component: dict[str, Any]) -> set[str]:
    found = {component["availability_topic"]} if "availability_topic" in component else set()
    return found | {entry["topic"] for entry in component.get("availability", [])}


def by_command(found: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Components by the target of their command topic ``controlroom/<id>/<target>/set``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for c in found:
        command = c.get("command_topic", "")
        prefix = topic(ID, "")
        if command.startswith(prefix) and command.endswith("/set"):
            out.setdefault(command[len(prefix) : -len("/set")], []).append(c)
    return out


def device_topic(prefix: str = "homeassistant") -> str:
    return f"{prefix}/device/controlroom_{ID}/config"


def cfg(port: int, **keys):
    return parse_config(mqtt_config(port, id=ID, monitor=MONITOR, **keys))


def test_one_retained_device_payload_describes_every_target(broker):
    async def scenario():
        async with running(cfg(broker.port)) as daemon:
            async with Recorder(broker.port, topic(ID, "#"), "homeassistant/#") as recorder:
                await ready(daemon, recorder, ID)
                await recorder.wait(lambda: recorder.last(device_topic()), "the discovery payload")
            # one that comes later (Home Assistant) gets it from the broker
            async with Recorder(broker.port, "homeassistant/#") as ha:
                await ha.sync()
                assert {m.topic for m in ha.messages} == {device_topic()}
                message = ha.last(device_topic())
                assert message.retain
                payload = message.json()

        device = expand(payload["dev"], None, DEVICE_ABBREVIATIONS)
        assert device["identifiers"] and device["name"]
        assert payload["o"]["name"]

        found = components(payload)
        assert all(c.get("platform") and c.get("unique_id") for c in found), found
        assert len({c["unique_id"] for c in found}) == len(found)
        assert not [c for c in found if "object_id" in c]  # deprecated
        assert all(c.get("default_entity_id") for c in found), found
        assert all(topic(ID, "status") in availability_topics(c) for c in found), found

        commands = by_command(found)
        assert set(commands) == {
            "volume",
            "dim",
            "mute",
            "mono",
            "polarity",
            "sub",
            "blind",
            "speakers",
            "source",
            "solo",
            "match",
            "ab",
            "level",
        }
        (volume,) = commands["volume"]
        assert volume["platform"] == "number"
        assert (volume["min"], volume["max"]) == (MIN_DB, MAX_DB)
        for target in SWITCHES:
            (switch,) = commands[target]
            assert switch["platform"] == "switch", target
            assert (switch.get("payload_on", "ON"), switch.get("payload_off", "OFF")) == ("ON", "OFF"), target
        options = {"speakers": SPEAKERS, "source": SOURCES, "solo": SOLO, "match": MATCH_MODES, "ab": AB}
        for target, names in options.items():
            (select,) = commands[target]
            assert select["platform"] == "select", target
            assert list(select["options"]) == list(names), target
        for c in commands["volume"] + [c for t in SWITCHES + tuple(options) for c in commands[t]]:
            assert c.get("state_topic", "").startswith(topic(ID, "")), c
        buttons = commands["level"]
        assert all(b["platform"] == "button" for b in buttons)
        assert sorted(b.get("payload_press") for b in buttons) == sorted(LEVELS)

        sensors = [c for c in found if c["platform"] == "sensor"]
        assert all(s.get("state_class") == "measurement" for s in sensors), sensors
        loudness = [s for s in sensors if s.get("unit_of_measurement") == "LUFS"]
        true_peak = [s for s in sensors if s.get("unit_of_measurement") != "LUFS"]
        assert loudness and true_peak, sensors
        assert all("dB" in s.get("unit_of_measurement", "") for s in true_peak), true_peak
        assert {c["platform"] for c in found} == {"number", "switch", "select", "button", "sensor"}

    run(scenario)


def test_without_discovery_nothing_is_published_under_the_prefix(broker):
    async def scenario():
        async with (
            Recorder(broker.port, "homeassistant/#") as ha,
            running(cfg(broker.port, discovery=False)) as daemon,
            Recorder(broker.port, topic(ID, "#")) as recorder,
        ):
            await ready(daemon, recorder, ID)
            await recorder.publish(topic(ID, "mute", "set"), "ON")  # after everything it does on connecting
            await recorder.wait_text(topic(ID, "mute"), "ON")
            await recorder.publish("homeassistant/status", "online")  # Home Assistant asks again
            await recorder.publish(topic(ID, "mute", "set"), "OFF")
            await recorder.wait_text(topic(ID, "mute"), "OFF")
            await ha.sync()
            assert [m.topic for m in ha.messages if m.topic != "homeassistant/status"] == []

    run(scenario)


def test_the_discovery_prefix_is_configurable(broker):
    async def scenario():
        async with (
            Recorder(broker.port, "homeassistant/#") as ha,
            running(cfg(broker.port, discovery_prefix="studio-ha")) as daemon,
            Recorder(broker.port, topic(ID, "#"), "studio-ha/#") as recorder,
        ):
            await ready(daemon, recorder, ID)
            await recorder.wait(lambda: recorder.last(device_topic("studio-ha")), "discovery under studio-ha/")
            await ha.sync()
            assert [m.topic for m in ha.messages if not m.topic.endswith("/status")] == []

    run(scenario)


def test_home_assistant_coming_online_gets_discovery_and_state_again(broker):
    async def scenario():
        async with (
            running(cfg(broker.port)) as daemon,
            Recorder(broker.port, topic(ID, "#"), "homeassistant/#") as recorder,
        ):
            await ready(daemon, recorder, ID)
            await recorder.wait(lambda: recorder.last(device_topic()), "the first discovery payload")
            daemon.controller.apply("volume", "set", -21.5, origin="osc")
            await recorder.wait_text(topic(ID, "volume"), "-21.5")
            mark = recorder.mark()

            await recorder.publish("homeassistant/status", "online")  # its birth message
            # after a random delay of less than 3 s
            await recorder.wait(lambda: recorder.on(device_topic(), since=mark), "discovery again", 6.0)
            # the state: its whole JSON at least (the target topics' retained values are the broker's)
            await recorder.wait(lambda: recorder.on(topic(ID, "state"), since=mark), "the state again", 6.0)
            assert recorder.on(topic(ID, "state"), since=mark)[-1].json()["volume"] == -21.5
            assert all(m.text == "-21.5" for m in recorder.on(topic(ID, "volume"), since=mark))
            assert recorder.last(device_topic()).json() == recorder.on(device_topic())[0].json()

    run(scenario)


def test_a_reload_that_renames_a_level_replaces_its_button_and_removes_the_old_one(broker, tmp_path):
    """SIGHUP with ``[levels] quiet`` renamed ``soft``: the device payload is published again
    with a ``soft`` button, and the ``quiet`` button reduced to its platform, which is how Home
    Assistant is told to remove a component."""
    path = tmp_path / "controlroom.toml"
    path.write_text(mqtt_config(broker.port, id=ID))

    async def scenario():
        daemon = Daemon(load_config(path), path, state_path=None)
        serving = asyncio.create_task(daemon.run())
        try:
            async with Recorder(broker.port, topic(ID, "#"), "homeassistant/#") as recorder:
                await until(lambda: daemon.mqtt is not None, "the bridge")
                await ready(daemon, recorder, ID)
                await recorder.wait(lambda: recorder.last(device_topic()), "the first discovery payload")
                assert "level_quiet" in recorder.last(device_topic()).json()["cmps"]
                mark = recorder.mark()
                path.write_text(path.read_text().replace("quiet = -30.0", "soft = -30.0"))
                daemon.reload()
                await recorder.wait(lambda: recorder.on(device_topic(), since=mark), "discovery again")
                cmps = recorder.last(device_topic()).json()["cmps"]
                assert cmps["level_quiet"] == {"p": "button"}
                assert cmps["level_soft"]["payload_press"] == "soft"
                assert cmps["level_soft"]["command_topic"] == "~/level/set"
        finally:
            daemon.stop()
            assert await serving == 0

    run(scenario)
