"""A running daemon on an MQTT broker: its status, its retained targets and state, commands by
``/set`` and ``/step``, refused payloads, the volume limit, meters, and how it leaves.

Each test starts its own mosquitto (``broker`` fixture) and an in-process daemon on the virtual
backend (``daemonkit.running``); a ``Recorder`` client watches the topics. A command's effect is
awaited on both sides: the daemon's ``controller.state`` and the retained topic a subscriber
sees. The broker delivers one client's messages in order and the daemon handles commands in
arrival order, so once the effect of a command is seen, every command sent before it has been
handled (and what it published has arrived).
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from collections import Counter

import pytest
from configkit import STATE_TARGETS
from daemonkit import config, program, running, until
from daemonproc import DaemonProcess, write_config
from mqttkit import (
    INITIAL_TEXTS,
    LEVELS,
    MQTT_DROPS,
    RECONNECT_S,
    Broker,
    Recorder,
    is_number,
    make_ca,
    mqtt_config,
    mqtt_drops,
    mqtt_report,
    ready,
    text_of,
    topic,
)
from osckit import Peer, run

from controlroom.daemon.config import parse_config
from controlroom.daemon.core.targets import STATE_TARGETS as DAEMON_TARGETS

pytestmark = pytest.mark.slow

ID = "control-a"


def cfg(port: int, **keys):
    keys.setdefault("id", ID)
    return parse_config(mqtt_config(port, **keys))


def target_topics(instance: str = ID) -> set[str]:
    return {topic(instance, t) for t in STATE_TARGETS}


async def until_shown(daemon, recorder: Recorder, target: str, value, what: str) -> None:
    """Wait until ``target`` is ``value`` in the daemon's state and on its retained topic."""
    t = topic(ID, target)
    await until(
        lambda: getattr(daemon.controller.state, target) == value and recorder.text(t) == text_of(value),
        f"{what}: {target} = {value!r} (state {getattr(daemon.controller.state, target)!r}, topic {recorder.text(t)!r})",
    )


# --- what a subscriber finds ------------------------------------------------------------------------


def test_a_subscriber_finds_the_daemon_online_with_every_target_and_the_whole_state_retained(broker):
    async def scenario():
        async with running(cfg(broker.port)) as daemon:
            async with Recorder(broker.port, topic(ID, "#")) as first:
                await ready(daemon, first, ID)
            # one that comes later gets it all from the broker: retained
            async with Recorder(broker.port, topic(ID, "#")) as late:
                await late.sync()
                for target, text in INITIAL_TEXTS.items():
                    message = late.last(topic(ID, target))
                    assert message is not None, f"nothing retained on {topic(ID, target)}"
                    assert (message.text, message.retain) == (text, True), target
                status = late.last(topic(ID, "status"))
                assert (status.text, status.retain) == ("online", True)
                state = late.last(topic(ID, "state"))
                assert state.retain
                published, reported = state.json(), daemon.report()["state"]
                assert set(published) == set(reported)
                assert {"match_db", "matching"} <= set(published)
                # matching's progress moves on by itself; everything else is as reported
                assert {k: v for k, v in published.items() if k != "matching"} == {
                    k: v for k, v in reported.items() if k != "matching"
                }
                assert not any(m.retain for m in late.on(topic(ID, "meters")))

            report = daemon.report()["mqtt"]
            assert set(report) == {"state", "broker", "published", "received", "dropped"}
            assert report["state"] == "connected"
            assert report["broker"] == broker.address
            assert report["published"] >= len(INITIAL_TEXTS) + 2  # the targets, status and state at least
            assert report["received"] >= 1  # ready()'s probe
            assert report["dropped"] == 0

    run(scenario)


def test_without_an_mqtt_section_the_report_has_no_mqtt_entry():
    async def scenario():
        async with running(config()) as daemon:
            assert "mqtt" not in daemon.report()

    run(scenario)


def test_without_an_id_the_topics_are_under_the_host_name(broker):
    host = socket.gethostname().lower()
    if not re.fullmatch(r"[a-z0-9_-]+", host):
        pytest.skip(f"this machine's host name {host!r} is not a valid id as it is")

    async def scenario():
        async with running(parse_config(mqtt_config(broker.port))) as daemon:
            async with Recorder(broker.port, "controlroom/#") as recorder:
                await ready(daemon, recorder, host)
                assert recorder.text(topic(host, "volume")) == "-10.0"

    run(scenario)


# --- commands ------------------------------------------------------------------------------------------

#: (topic under controlroom/<id>/, payload, what it leads to in order; the first entry changes).
STEPS = [
    ("volume/set", "-23.5", {"volume": -23.5}),
    ("volume/set", "-20.004", {"volume": -20.0}),  # to 0.01 dB
    ("volume/step", "+1.5", {"volume": -18.5}),
    ("volume/step", "-3", {"volume": -21.5}),
    ("level/set", "quiet", {"volume": LEVELS["quiet"]}),
    ("dim/set", "ON", {"dim": True}),
    ("dim/set", "off", {"dim": False}),
    ("dim/set", "toggle", {"dim": True}),
    ("dim/set", "0", {"dim": False}),
    ("mute/set", "true", {"mute": True}),
    ("mute/set", "OFF", {"mute": False}),
    ("mono/set", "1", {"mono": True}),
    ("mono/set", "false", {"mono": False}),
    ("polarity/set", "on", {"polarity": True}),
    ("sub/set", "OFF", {"sub": False}),
    ("sub/set", "toggle", {"sub": True}),
    ("solo/set", "side", {"solo": "side"}),
    ("solo/step", "1", {"solo": "off"}),  # wraps around
    ("solo/set", "next", {"solo": "left"}),
    ("solo/set", "prev", {"solo": "off"}),
    ("speakers/set", "consumer", {"speakers": "consumer"}),
    ("speakers/step", "-1", {"speakers": "studio"}),
    ("speakers/set", "next", {"speakers": "consumer"}),
    ("source/set", "tape", {"source": "tape", "ab": "a"}),
    ("source/step", "-1", {"source": "ref", "ab": "b"}),  # ref is the pair's b
    ("ab/set", "a", {"ab": "a", "source": "mix"}),
    ("ab/set", "next", {"ab": "b", "source": "ref"}),
    ("ab/step", "1", {"ab": "a", "source": "mix"}),
    ("match/set", "hold", {"match": "hold"}),
    ("match/step", "-1", {"match": "auto"}),
    ("match/set", "off", {"match": "off"}),
    ("match/set", "prev", {"match": "hold"}),  # wraps around
    ("blind/set", "ON", {"blind": True}),
    ("blind/set", "OFF", {"blind": False}),
]


def test_the_steps_reach_every_target_and_every_command_form():
    assert {target for _, _, leads in STEPS for target in leads} == set(STATE_TARGETS)
    assert {suffix.split("/")[0] for suffix, _, _ in STEPS} == set(STATE_TARGETS) | {"level"}
    assert {suffix.split("/")[0] for suffix, _, _ in STEPS if suffix.endswith("/step")} == {
        "volume",
        "solo",
        "speakers",
        "source",
        "ab",
        "match",
    }


def test_every_target_follows_set_and_step_commands_and_its_retained_topic_follows(broker):
    async def scenario():
        async with running(cfg(broker.port)) as daemon, Recorder(broker.port, topic(ID, "#")) as recorder:
            await ready(daemon, recorder, ID)
            for suffix, payload, leads in STEPS:
                await recorder.publish(topic(ID, *suffix.split("/")), payload)
                for target, value in leads.items():
                    await until_shown(daemon, recorder, target, value, f"{suffix} {payload!r}")

            # the retained state follows too, and a late subscriber finds the last values
            final = daemon.controller.state.as_dict()
            await recorder.wait(
                lambda: {k: recorder.last(topic(ID, "state")).json()[k] for k in STATE_TARGETS} == final,
                "the state topic with the final values",
            )
            async with Recorder(broker.port, topic(ID, "+")) as late:
                await late.sync()
                assert {t: late.text(topic(ID, t)) for t in STATE_TARGETS} == {t: text_of(final[t]) for t in final}

    run(scenario)


def test_only_real_changes_are_published_whatever_their_origin(broker):
    async def scenario():
        async with running(cfg(broker.port)) as daemon, Recorder(broker.port, topic(ID, "#")) as recorder:
            await ready(daemon, recorder, ID)
            mark = recorder.mark()
            for payload in ("ON", "on", "true", "1"):  # one change, then three of the same
                await recorder.publish(topic(ID, "dim", "set"), payload)
            await recorder.publish(topic(ID, "volume", "set"), "-10")  # what it is already
            await recorder.publish(topic(ID, "speakers", "set"), "studio")
            await recorder.publish(topic(ID, "mute", "set"), "ON")
            await recorder.wait_text(topic(ID, "mute"), "ON")  # everything before it was handled
            daemon.controller.apply("speakers", "set", "consumer", origin="osc")  # another origin
            await recorder.wait_text(topic(ID, "speakers"), "consumer")
            await recorder.sync()

            published = sorted((m.topic, m.text) for m in recorder.messages[mark:] if m.topic in target_topics())
            assert published == sorted(
                [(topic(ID, "dim"), "ON"), (topic(ID, "speakers"), "consumer"), (topic(ID, "mute"), "ON")]
            )

    run(scenario)


def test_during_a_blind_test_the_topics_name_the_compared_sources_by_label_only(broker):
    """Everything the daemon shows conceals a blind test's sources (``comparison``): the MQTT
    topics and the retained state too."""

    async def scenario():
        async with running(cfg(broker.port)) as daemon, Recorder(broker.port, topic(ID, "#")) as recorder:
            await ready(daemon, recorder, ID)
            mark = recorder.mark()
            await recorder.publish(topic(ID, "blind", "set"), "ON")
            await until_shown(daemon, recorder, "blind", True, "blind on")
            await recorder.publish(topic(ID, "ab", "set"), "next")
            await recorder.publish(topic(ID, "mute", "set"), "ON")  # handled after the ab step
            await until_shown(daemon, recorder, "mute", True, "mute on")
            await recorder.sync()

            for t in ("source", "ab"):
                assert recorder.text(topic(ID, t)) in ("x", "y"), t
                shown = {m.text for m in recorder.on(topic(ID, t), since=mark)}
                assert not shown & {"mix", "ref"}, t
            state = recorder.last(topic(ID, "state")).json()
            assert state["source"] in ("x", "y") and state["ab"] in ("x", "y")
            assert not {"mix", "ref"} & set(state["match_db"])

    run(scenario)


# --- refused commands --------------------------------------------------------------------------------

#: (topic under controlroom/<id>/, payload, the drop reason).
BAD = [
    ("volume/set", b"\xff\xfe\xfd", "mqtt_malformed"),  # not UTF-8
    ("dim/set", b"\xc3", "mqtt_malformed"),  # a truncated UTF-8 sequence
    ("mute/set", b"", "mqtt_malformed"),
    ("speakers/set", b"", "mqtt_malformed"),
    ("mute/set", b"ON" + b" " * 1023, "mqtt_malformed"),  # 1025 bytes: "ON" if it were read
    ("volume/set", b"-20" + b" " * 1022, "mqtt_malformed"),  # 1025 bytes: -20 dB if it were read
    ("volume/set", b"nan", "mqtt_bad_value"),
    ("volume/set", b"NaN", "mqtt_bad_value"),
    ("volume/set", b"inf", "mqtt_bad_value"),
    ("volume/set", b"1", "mqtt_bad_value"),  # above max_volume_db (0 dB)
    ("volume/set", b"-200", "mqtt_bad_value"),  # below min_volume_db
    ("volume/set", b"loud", "mqtt_bad_value"),
    ("volume/step", b"nan", "mqtt_bad_value"),
    ("volume/step", b"up", "mqtt_bad_value"),
    ("dim/set", b"maybe", "mqtt_bad_value"),
    ("mute/set", b"onn", "mqtt_bad_value"),
    ("speakers/set", b"nosuch", "mqtt_bad_value"),
    ("solo/set", b"middle", "mqtt_bad_value"),
    ("source/set", b"nosuch", "mqtt_bad_value"),
    ("speakers/step", b"0.5", "mqtt_bad_value"),  # choices step by whole places
    ("match/set", b"manual", "mqtt_bad_value"),
    ("level/set", b"nosuch", "mqtt_bad_value"),
    ("ab/set", b"c", "mqtt_bad_value"),
    ("blind/set", b"sometimes", "mqtt_bad_value"),
    ("nosuch/set", b"1", "mqtt_unknown_topic"),
    ("VOLUME/set", b"-20", "mqtt_unknown_topic"),
    ("nosuch/step", b"1", "mqtt_unknown_topic"),
]


def test_100_bad_payloads_change_nothing_are_counted_by_reason_and_the_daemon_still_answers(broker):
    flood = [BAD[i % len(BAD)] for i in range(100)]
    expected = Counter(reason for _, _, reason in flood)
    assert set(expected) == set(MQTT_DROPS) and sum(expected.values()) == 100

    async def scenario():
        async with running(cfg(broker.port)) as daemon, Recorder(broker.port, topic(ID, "#")) as recorder:
            await ready(daemon, recorder, ID)
            before, mark = daemon.controller.state.as_dict(), recorder.mark()
            assert mqtt_drops(daemon) == {}

            for suffix, payload, _ in flood:
                await recorder.publish(topic(ID, *suffix.split("/")), payload)
            await until(lambda: sum(mqtt_drops(daemon).values()) >= 100, "100 drops counted")
            await recorder.sync()

            assert mqtt_drops(daemon) == dict(expected)
            assert daemon.controller.state.as_dict() == before
            assert [m for m in recorder.messages[mark:] if m.topic in target_topics()] == []
            assert recorder.on(topic(ID, "status"), since=mark) == []  # it never reconnected
            assert mqtt_report(daemon)["dropped"] == 100
            assert mqtt_report(daemon)["state"] == "connected"

            # still answering: MQTT, OSC and the audio
            await recorder.publish(topic(ID, "volume", "set"), "-15.5")
            await until_shown(daemon, recorder, "volume", -15.5, "a good command after the flood")
            peer = await Peer.open(daemon.osc.port)
            try:
                await peer.barrier()
                assert peer.last_report["state"]["volume"] == -15.5
            finally:
                peer.close()
            assert daemon.runner.running

    run(scenario)


def test_the_volume_never_goes_above_max_volume_db(broker):
    async def scenario():
        cfg_ = cfg(broker.port, monitor="max_volume_db = -6.0")
        async with running(cfg_) as daemon, Recorder(broker.port, topic(ID, "#")) as recorder:
            await ready(daemon, recorder, ID)
            volume = topic(ID, "volume", "set")
            for payload in ("-5.99", "0", "24", "1e3"):  # above: refused
                await recorder.publish(volume, payload)
            await recorder.publish(volume, "-6")  # the maximum itself
            await until_shown(daemon, recorder, "volume", -6.0, "volume at the maximum")
            assert mqtt_drops(daemon) == {"mqtt_bad_value": 4}
            await recorder.publish(volume, "-7")
            await recorder.publish(topic(ID, "volume", "step"), "+0.5")
            await until_shown(daemon, recorder, "volume", -6.5, "a step below the maximum")
            await recorder.publish(topic(ID, "volume", "step"), "+100")  # stops at the limit, or is refused
            await recorder.publish(topic(ID, "mute", "set"), "ON")
            await until_shown(daemon, recorder, "mute", True, "mute, after the step")
            await recorder.sync()

            outcome = (daemon.controller.state.volume, mqtt_drops(daemon).get("mqtt_bad_value"))
            assert outcome in {(-6.0, 4), (-6.5, 5)}
            shown = [float(m.text) for m in recorder.on(topic(ID, "volume"))]
            assert shown and max(shown) <= -6.0

    run(scenario)


# --- meters ------------------------------------------------------------------------------------------


def test_meters_come_at_most_every_interval_with_the_monitor_loudness_and_output_levels(broker):
    interval = 0.5
    n = 5

    async def scenario():
        async with running(cfg(broker.port, meters_interval_s=interval), program=program()) as daemon:
            meters = topic(ID, "meters")
            async with Recorder(broker.port, meters) as recorder:
                await recorder.wait(lambda: len(recorder.on(meters)) >= n, f"{n} meters messages", 15 * interval * n)
                got = recorder.on(meters)
                # arrival jitter aside, consecutive messages are an interval apart at least
                assert got[n - 1].at - got[0].at >= (n - 1) * interval * 0.9
                assert not any(m.retain for m in got)
                for m in got:
                    body = m.json()
                    assert set(body["monitor"]) >= {
                        "momentary_lufs",
                        "short_term_lufs",
                        "integrated_lufs",
                        "true_peak_dbtp",
                    }
                    assert set(body["outputs"]["1"]) >= {"peak_dbfs", "rms_dbfs"}
                # mix plays at -20 LUFS, 10 dB down: about -30 LUFS at the monitor
                last = got[-1].json()
                momentary = last["monitor"]["momentary_lufs"]
                assert is_number(momentary) and abs(momentary - (-30.0)) < 3.0, last["monitor"]
                assert is_number(last["monitor"]["true_peak_dbtp"]) and last["monitor"]["true_peak_dbtp"] < 0.0
                peak = last["outputs"]["1"]["peak_dbfs"]
                assert is_number(peak) and -40.0 < peak < 0.0, last["outputs"]
            # not retained: a new subscriber gets none until the next one is published
            async with Recorder(broker.port, meters) as late:
                await late.sync()
                assert not any(m.retain for m in late.on(meters))
            assert daemon.runner.running

    run(scenario)


# --- leaving -----------------------------------------------------------------------------------------


def test_a_clean_stop_publishes_offline_before_it_disconnects(broker):
    async def scenario():
        async with Recorder(broker.port, topic(ID, "status")) as recorder:
            async with running(cfg(broker.port)) as daemon:
                async with Recorder(broker.port, topic(ID, "#")) as watcher:
                    await ready(daemon, watcher, ID)
                await recorder.wait_text(topic(ID, "status"), "online")
                mark = recorder.mark()
            # running() has returned: the daemon has exited
            await recorder.wait_text(topic(ID, "status"), "offline")
            assert [m.text for m in recorder.on(topic(ID, "status"), since=mark)] == ["offline"]
        async with Recorder(broker.port, topic(ID, "status")) as late:
            await late.sync()
            status = late.last(topic(ID, "status"))
            assert status is not None and (status.text, status.retain) == ("offline", True)

    run(scenario)


def test_a_killed_daemon_is_shown_offline_by_its_will(broker, tmp_path):
    text = mqtt_config(broker.port, id=ID, extra=f'\n[state]\npath = "{tmp_path / "state.json"}"\n')
    daemon = DaemonProcess(write_config(tmp_path / "controlroom.toml", text), tmp_path / "daemon.log")

    async def scenario():
        async with Recorder(broker.port, topic(ID, "status")) as recorder:
            try:
                await recorder.wait_text(topic(ID, "status"), "online", 60.0)  # a subprocess starts slower
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the daemon's log:\n{daemon.tail()}") from None
            mark = recorder.mark()
            daemon.signal(signal.SIGKILL)
            await asyncio.to_thread(daemon.process.wait, 15)
            # the kernel closes the killed process's connection: no DISCONNECT, so the will
            await recorder.wait_text(topic(ID, "status"), "offline", RECONNECT_S)
            assert [m.text for m in recorder.on(topic(ID, "status"), since=mark)] == ["offline"]
        async with Recorder(broker.port, topic(ID, "status")) as late:
            await late.sync()
            status = late.last(topic(ID, "status"))
            assert (status.text, status.retain) == ("offline", True)

    with daemon.start():
        run(scenario)


# --- logging in ----------------------------------------------------------------------------------------


def test_it_logs_in_with_its_username_and_password_file_and_keeps_retrying_when_refused(tmp_path):
    guarded = Broker(tmp_path / "guarded", users={"studio": "s3cret", "reader": "r3ad"}).start()
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("s3cret")
    bad.write_text("guess")
    for path in (good, bad):
        path.chmod(0o600)

    async def scenario():
        login = {"username": "studio"}
        async with (
            running(cfg(guarded.port, password_file=good, **login)) as daemon,
            Recorder(guarded.port, topic(ID, "#"), username="reader", password="r3ad") as recorder,
        ):
            await ready(daemon, recorder, ID)
            assert recorder.text(topic(ID, "volume")) == "-10.0"
        async with running(cfg(guarded.port, id="control-b", password_file=bad, **login)) as refused:
            # the first daemon logged in: refusals are control-b's, and it tries again
            await until(lambda: guarded.log().count("not authorised") >= 2, "control-b refused twice", RECONNECT_S)
            refused.controller.apply("volume", "set", -20.0, origin="osc")
            assert refused.controller.state.volume == -20.0
            assert refused.runner.running
            assert mqtt_report(refused)["state"] == "retrying"

    try:
        run(scenario)
    finally:
        guarded.stop()


def test_it_speaks_tls_to_a_broker_its_ca_file_vouches_for_and_to_no_other(tmp_path):
    secure = Broker(tmp_path / "secure", tls=True).start()
    stranger, _ = make_ca(tmp_path, "another-ca")

    async def scenario():
        async with (
            running(cfg(secure.port, ca_file=secure.ca_file)) as daemon,
            Recorder(secure.port, topic(ID, "#"), ca_file=secure.ca_file) as recorder,
        ):
            await ready(daemon, recorder, ID)
            await recorder.publish(topic(ID, "mute", "set"), "ON")
            await until_shown(daemon, recorder, "mute", True, "a command over TLS")
        # a certificate signed by another CA is refused: no connection, ever
        async with running(cfg(secure.port, id="control-b", ca_file=stranger)) as doubtful:
            # the broker sees the handshake end on its certificate, and again (a retry)
            await until(lambda: secure.log().count("unknown ca") >= 2, "two refused handshakes", RECONNECT_S)
            async with Recorder(secure.port, topic("control-b", "#"), ca_file=secure.ca_file) as recorder:
                await recorder.sync()
                assert recorder.messages == []
            assert mqtt_report(doubtful)["state"] == "retrying" and doubtful.runner.running

    try:
        run(scenario)
    finally:
        secure.stop()


def test_the_documented_target_list_is_the_daemons():
    assert set(STATE_TARGETS) == set(DAEMON_TARGETS)


def test_a_retained_command_is_not_replayed_at_start(broker):
    """A command left on the broker with the retain flag would set the volume at every start,
    above the start-up limit: it is dropped and counted instead."""

    async def scenario():
        async with Recorder(broker.port, "controlroom/#") as recorder:
            await recorder.publish(topic(ID, "volume", "set"), "0", retain=True)
            async with running(parse_config(mqtt_config(broker.port, id=ID))) as daemon:
                await ready(daemon, recorder, ID)
                await until(
                    lambda: mqtt_drops(daemon).get("mqtt_retained_command") == 1, "the retained command dropped"
                )
                assert daemon.controller.state.volume == -10.0

    run(scenario)


def test_a_calibration_is_started_and_stopped_on_its_command_topic_and_a_bad_command_is_dropped(broker):
    """``calibrate/set``: ``start`` runs a calibration (the state shows it), ``stop`` ends it
    with nothing applied; anything else is a bad value. (What a calibration does:
    tests/daemon/service/test_calibration_jack.py.)"""

    async def scenario():
        config = parse_config(mqtt_config(broker.port, id=ID, extra="[calibration]\nmic = 5\n"))
        async with running(config) as daemon, Recorder(broker.port, topic(ID, "#")) as recorder:
            await ready(daemon, recorder, ID)
            calibration = daemon.controller.calibration
            await recorder.publish(topic(ID, "calibrate", "set"), "start studio")
            await until(lambda: calibration.progress is not None, "the calibration running")
            assert calibration.progress["sets"] == ["studio"]
            state = topic(ID, "state")
            await recorder.wait(
                lambda: (recorder.last(state).json()["calibrating"] or {}).get("sets") == ["studio"],
                "the state topic shows it",
            )
            await recorder.publish(topic(ID, "calibrate", "set"), "stop")
            await until(lambda: calibration.progress is None, "the calibration stopped")
            assert calibration.outputs == {}
            await recorder.wait(lambda: recorder.last(state).json()["calibrating"] is None, "the state topic follows")
            await recorder.publish(topic(ID, "calibrate", "set"), "now please")
            await until(lambda: mqtt_drops(daemon) == {"mqtt_bad_value": 1}, "the bad command counted")

    run(scenario)
