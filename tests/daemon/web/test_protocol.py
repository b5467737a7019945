"""The web remote's HTTP and WebSocket protocol, against a running ``controlroom run`` on the
virtual backend (``webkit.WebDaemon``, one per module; its inputs are silent).

Every action a client sends on ``/ws`` is seen twice: in the state frames the daemon sends back
and in its OSC report (``/controlroom/state``), which is the independent oracle. Every refused
frame is answered with an error frame naming its reason and counted in the report's
``engine.dropped`` under the same reason, and the daemon keeps answering. A flooding client and
one that never reads cost the other clients and OSC nothing. Meters come at the rate asked for,
25 Hz at most. Who may connect: ``[web] allow`` (403 for anyone else) and ``password_file``
(HTTP Basic, then a session cookie; 401 without).

The daemon is shared by the tests: each brings it back to ``webkit.BASELINE`` first
(``restore``) and counts drops as differences.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter

import aiohttp
import pytest
from configkit import STATE_TARGETS
from osckit import Peer, run
from webkit import (
    BASELINE,
    INSERT,
    LEVELS,
    LOOPBACK,
    MAX_MESSAGE_BYTES,
    MAX_METER_HZ,
    MAX_RATE,
    MAX_VOLUME_DB,
    MIN_VOLUME_DB,
    PROMPT_S,
    STRANGER,
    WEB_DROPS,
    SlowReader,
    WsClient,
    basic,
    connect,
    fetch,
    foreign_urls,
    less,
    linked_paths,
    osc_report,
    password_file,
    restore,
    start_web_daemon,
    targets_of,
    wait_report,
    web_drops,
    web_section,
)

pytestmark = pytest.mark.slow

PASSWORD = "correct:horse battery"  # Basic auth splits user and password at the first colon only


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """``controlroom run`` with ``[web]`` on 127.0.0.1, port 0, only 127.0.0.1 allowed."""
    process = start_web_daemon(tmp_path_factory.mktemp("web"), web_section(allow=("127.0.0.1/32",)))
    yield process
    process.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """``controlroom run`` with ``[web] password_file`` holding ``PASSWORD``."""
    directory = tmp_path_factory.mktemp("guarded")
    secret = password_file(directory, PASSWORD)
    process = start_web_daemon(directory, web_section(allow=("127.0.0.1/32",), password_file=secret))
    yield process
    process.close()


def without_progress(state: dict) -> dict:
    """A state object less ``matching``, whose progress moves on by itself."""
    return {k: v for k, v in state.items() if k != "matching"}


# --- connecting ------------------------------------------------------------------------------------


def test_the_daemon_logs_where_the_remote_listens_with_the_port_it_bound(daemon):
    assert daemon.url == f"http://{LOOPBACK}:{daemon.web_port}/"
    assert daemon.web_port != 0

    async def scenario():
        status, headers, body, _ = await fetch(daemon.url)
        assert status == 200
        report = await osc_report(daemon.port)
        assert report["web"]["url"] == daemon.url

    run(scenario)


def test_a_client_gets_the_whole_state_on_connecting_as_the_osc_report_has_it(daemon):
    async def scenario():
        async with await connect(daemon.url) as client:
            first = client.of("state")[0].body["state"]
            report = await osc_report(daemon.port)
            assert set(first) == set(report["state"])
            assert without_progress(first) == without_progress(report["state"])
            assert {"volume", "dim", "mute", "match_db", "matching", "abx"} <= set(first)
            assert client.garbage == []

    run(scenario)


def test_the_report_counts_the_open_connections(daemon):
    async def scenario():
        before = (await osc_report(daemon.port))["web"]["clients"]
        first, second = await connect(daemon.url), await connect(daemon.url)
        await wait_report(daemon.port, lambda r: r["web"]["clients"] == before + 2, "two more clients")
        await first.close()
        await wait_report(daemon.port, lambda r: r["web"]["clients"] == before + 1, "one closed")
        await second.close()
        await wait_report(daemon.port, lambda r: r["web"]["clients"] == before, "both closed")

    run(scenario)


# --- HTTP ------------------------------------------------------------------------------------------


def test_the_page_and_its_static_files_are_served_and_name_no_other_host(daemon):
    host = f"{LOOPBACK}:{daemon.web_port}"

    async def scenario():
        status, headers, body, _ = await fetch(daemon.url)
        assert status == 200
        assert headers["Content-Type"].startswith("text/html"), headers
        page = body.decode()
        assert foreign_urls(page, host) == []
        assert {"/static/app.js", "/static/style.css"} <= set(linked_paths(page)), linked_paths(page)

        types = {".js": "javascript", ".css": "text/css"}
        for path in ("/static/app.js", "/static/style.css"):
            status, headers, body, _ = await fetch(f"http://{host}{path}")
            assert status == 200, path
            assert types[path[path.rindex(".") :]] in headers["Content-Type"], (path, headers)
            assert foreign_urls(body.decode(), host) == [], path
        for path in linked_paths(page):  # whatever else the page loads is served too, from here
            status, _, body, _ = await fetch(f"http://{host}/{path.lstrip('/')}")
            assert status == 200, path

    run(scenario)


# --- actions -----------------------------------------------------------------------------------------

#: (target, action, value, what it leads to in order); from BASELINE, the first entry changes.
STEPS = [
    ("volume", "set", -23.5, {"volume": -23.5}),
    ("volume", "set", -20.004, {"volume": -20.0}),  # to 0.01 dB
    ("volume", "step", 1.5, {"volume": -18.5}),
    ("volume", "step", -3, {"volume": -21.5}),
    ("volume", "step", MAX_VOLUME_DB - MIN_VOLUME_DB, {"volume": MAX_VOLUME_DB}),  # a step stops at the limit
    ("level", "set", "quiet", {"volume": LEVELS["quiet"]}),
    ("level", "set", "loud", {"volume": LEVELS["loud"]}),
    ("dim", "set", True, {"dim": True}),
    ("dim", "toggle", None, {"dim": False}),
    ("mute", "set", True, {"mute": True}),
    ("mute", "set", False, {"mute": False}),
    ("mute", "toggle", None, {"mute": True}),
    ("mute", "toggle", None, {"mute": False}),
    ("mono", "toggle", None, {"mono": True}),
    ("mono", "set", False, {"mono": False}),
    ("polarity", "set", True, {"polarity": True}),
    ("polarity", "toggle", None, {"polarity": False}),
    ("sub", "set", False, {"sub": False}),
    ("sub", "toggle", None, {"sub": True}),
    ("solo", "set", "side", {"solo": "side"}),
    ("solo", "next", None, {"solo": "off"}),  # wraps around
    ("solo", "prev", None, {"solo": "side"}),
    ("solo", "step", -1, {"solo": "right"}),
    ("solo", "set", "off", {"solo": "off"}),
    ("speakers", "set", "consumer", {"speakers": "consumer"}),
    ("speakers", "prev", None, {"speakers": "studio"}),
    ("speakers", "next", None, {"speakers": "consumer"}),
    ("speakers", "step", 1, {"speakers": "studio"}),
    ("source", "set", "ref", {"source": "ref", "ab": "b"}),  # ref is the pair's b
    ("source", "set", INSERT, {"source": INSERT}),  # the insert's return is a source too
    ("source", "prev", None, {"source": "ref"}),
    ("source", "set", "mix", {"source": "mix", "ab": "a"}),
    ("ab", "set", "b", {"ab": "b", "source": "ref"}),
    ("ab", "next", None, {"ab": "a", "source": "mix"}),
    ("ab", "step", 1, {"ab": "b", "source": "ref"}),
    ("ab", "prev", None, {"ab": "a", "source": "mix"}),
    ("match", "set", "hold", {"match": "hold"}),
    ("match", "prev", None, {"match": "auto"}),
    ("match", "next", None, {"match": "hold"}),
    ("match", "set", "off", {"match": "off"}),
    ("match", "set", "auto", {"match": "auto"}),
    ("blind", "set", True, {"blind": True}),
    ("blind", "set", False, {"blind": False}),
]


def test_the_steps_reach_every_target_and_every_action():
    assert {target for _, _, _, leads in STEPS for target in leads} == set(STATE_TARGETS)
    assert {target for target, _, _, _ in STEPS} == set(STATE_TARGETS) | {"level"}
    assert {action for _, action, _, _ in STEPS} == {"set", "step", "toggle", "next", "prev"}
    first = STEPS[0]
    assert BASELINE[first[0]] != first[2]


def test_every_action_of_every_target_is_seen_in_the_state_frames_and_the_osc_report(daemon):
    async def scenario():
        async with await connect(daemon.url) as client:
            await restore(client, daemon.port)
            before = web_drops(await osc_report(daemon.port))
            for target, action, value, leads in STEPS:
                what = f"{target} {action} {value!r}"
                await client.act(target, action, value)
                await client.wait_state(leads, what)
                report = await osc_report(daemon.port)
                shown = {k: report["state"][k] for k in leads}
                assert shown == leads, f"{what}: the OSC report has {shown}"
            assert client.errors() == []
            assert web_drops(await osc_report(daemon.port)) == before
            # every state frame is a whole state, never a fragment
            assert all(set(STATE_TARGETS) <= set(state) for state in client.states())

    run(scenario)


def test_a_change_from_osc_or_another_client_reaches_every_client(daemon):
    async def scenario():
        async with await connect(daemon.url) as first, await connect(daemon.url) as second:
            await restore(first, daemon.port)
            peer = await Peer.open(daemon.port)
            try:
                peer.send("/controlroom/mute", 1)
                await peer.barrier()
                for client in (first, second):
                    await client.wait_state({"mute": True}, "mute on over OSC", PROMPT_S)
                await first.act("speakers", "set", "consumer")
                await second.wait_state({"speakers": "consumer"}, "speakers from the other client", PROMPT_S)
                peer.send("/controlroom/volume", -27.5)
                await peer.barrier()
                for client in (first, second):
                    await client.wait_state({"volume": -27.5}, "volume over OSC", PROMPT_S)
                assert without_progress(first.state) == without_progress(second.state)
            finally:
                peer.close()
            await restore(first, daemon.port)

    run(scenario)


def test_a_blind_test_conceals_the_pair_everywhere_until_it_is_revealed(daemon):
    async def scenario():
        async with await connect(daemon.url) as client:
            await restore(client, daemon.port)
            await client.send({"meters": MAX_METER_HZ})
            await client.act("blind", "set", True)
            await client.wait_state({"blind": True}, "blind on")
            mark = client.mark()
            await client.act("ab", "next")
            await client.wait_state({"ab": "y"}, "the other label")
            await client.wait(lambda: len(client.meters(mark)) >= 3, "meter frames during the test")

            for state in client.states(mark):
                assert state["source"] in ("x", "y") and state["ab"] in ("x", "y"), state
                assert not {"mix", "ref"} & set(state["match_db"]), state
            for frame in client.meters(mark):
                assert not {"mix", "ref"} & set(frame.body["meters"].get("sources", {})), frame.body
            report = await osc_report(daemon.port)
            assert report["state"]["source"] in ("x", "y")

            await client.act("blind", "reveal")
            state = await client.wait_state({"blind": False}, "blind revealed")
            await client.wait(lambda: client.state["blind_mapping"], "the mapping")
            mapping = client.state["blind_mapping"]
            assert set(mapping) == {"x", "y"} and set(mapping.values()) == {"mix", "ref"}, state
            report = await osc_report(daemon.port)
            assert (report["state"]["blind"], report["state"]["blind_mapping"]) == (False, mapping)
            assert client.errors() == []
            await client.send({"meters": 0})

    run(scenario)


def test_an_abx_test_runs_start_to_end_through_the_remote(daemon):
    async def scenario():
        async with await connect(daemon.url) as client:
            await restore(client, daemon.port)
            await client.act("abx", "start", 3)
            state = await client.wait(
                lambda: (s := client.state)["abx"] and s["abx"]["running"] and s["abx"]["trials"] == 3 and s,
                "an ABX test of 3 trials",
            )
            assert (state["abx"]["done"], state["ab"]) == (0, "a")
            mark = client.mark()
            for trial in range(1, 4):
                for label in ("b", "x", "a", "x"):
                    await client.act("abx", "play", label)
                    await client.wait_state({"ab": label}, f"trial {trial}: {label} plays")
                await client.act("abx", "answer", "a")
                await client.wait(lambda t=trial: client.state["abx"]["done"] == t, f"trial {trial} answered")
            state = client.state
            assert state["abx"]["running"] is False
            assert 0 <= state["abx"]["correct"] <= 3 and state["abx"]["trials"] == 3
            assert math.isclose(state["abx"]["p_value"], (await osc_report(daemon.port))["state"]["abx"]["p_value"])
            for shown in client.states(mark):  # the sources were never named while it ran
                if shown["abx"]["running"]:
                    assert shown["source"] in ("a", "b", "x") and shown["ab"] in ("a", "b", "x"), shown
            assert (await osc_report(daemon.port))["state"]["abx"] == state["abx"]

            # stopped halfway: the score so far stays
            await client.act("abx", "start", 5)
            await client.wait(lambda: client.state["abx"]["trials"] == 5, "a test of 5 trials")
            await client.act("abx", "play", "x")
            await client.wait_state({"ab": "x"}, "x plays")
            await client.act("abx", "answer", "b")
            await client.wait(lambda: client.state["abx"]["done"] == 1, "one answer")
            await client.act("abx", "stop")
            await client.wait(lambda: client.state["abx"]["running"] is False, "the test stopped")
            assert client.state["abx"]["done"] == 1
            assert client.state["source"] in ("mix", "ref")
            assert client.errors() == []

            # nothing runs: an answer is refused
            before = web_drops(await osc_report(daemon.port))
            mark = client.mark()
            await client.act("abx", "answer", "a")
            error = await client.wait_error(mark, "an answer with no test running")
            assert error["reason"] == "web_bad_value", error
            assert less(web_drops(await osc_report(daemon.port)), before) == {"web_bad_value": 1}

    run(scenario)


def test_an_abx_answer_given_while_a_plays_is_sent_as_a_new_state(daemon):
    """The next trial starts with A playing again: an answer given while A plays changes the
    score alone, and that is a change of the state like any other."""

    async def scenario():
        async with await connect(daemon.url) as client:
            await restore(client, daemon.port)
            await client.act("abx", "start", 4)
            await client.wait(lambda: (client.state["abx"] or {}).get("trials") == 4, "a test of 4 trials")
            mark = client.mark()
            await client.act("abx", "answer", "b")
            await wait_report(daemon.port, lambda r: r["state"]["abx"]["done"] == 1, "the answer counted")
            await client.wait(lambda: [s for s in client.states(mark) if s["abx"]["done"] == 1], "a state with it")
            await client.act("abx", "stop")

    run(scenario)


def test_an_insert_measurement_asked_for_by_the_remote_runs_and_its_failure_is_told(daemon):
    """The virtual backend has nothing patched into the insert: the measurement starts (the
    report names the insert being measured), hears no return and fails; the client that asked
    is told (an error frame whose reason says it failed), and a failure is not a dropped
    message."""

    async def scenario():
        async with await connect(daemon.url) as client:
            await restore(client, daemon.port)
            before = web_drops(await osc_report(daemon.port))
            mark = client.mark()
            await client.act("insert", "measure", INSERT)
            await wait_report(daemon.port, lambda r: r["state"]["measuring"] == INSERT, "the insert being measured")
            error = await client.wait_error(mark, "the failed measurement", 30.0)
            assert error["reason"] not in WEB_DROPS and "fail" in error["reason"], error
            assert INSERT in error["error"]
            report = await wait_report(daemon.port, lambda r: r["state"]["measuring"] is None, "the measurement over")
            assert web_drops(report) == before
            assert report["engine"]["running"]

    run(scenario)


def test_every_client_sees_in_its_state_frames_an_insert_being_measured_and_when_it_is_over(daemon):
    """``measuring`` is part of the state: a page shows the measurement running (its button
    busy) and its end, whoever asked for it."""

    async def scenario():
        async with await connect(daemon.url) as client, await connect(daemon.url) as watcher:
            await restore(client, daemon.port)
            mark = watcher.mark()
            await client.act("insert", "measure", INSERT)
            await wait_report(daemon.port, lambda r: r["state"]["measuring"] == INSERT, "the insert being measured")
            await wait_report(daemon.port, lambda r: r["state"]["measuring"] is None, "the measurement over", 30.0)
            await watcher.wait(
                lambda: (
                    any(s["measuring"] == INSERT for s in watcher.states(mark)) and watcher.state["measuring"] is None
                ),
                "a state frame naming the insert being measured, then one after it",
            )

    run(scenario)


def test_a_loudness_reset_is_taken_without_a_word(daemon):
    async def scenario():
        async with await connect(daemon.url) as client:
            await restore(client, daemon.port)
            before = web_drops(await osc_report(daemon.port))
            mark = client.mark()
            await client.act("loudness", "reset")
            await client.act("mute", "set", True)  # handled after the reset
            await client.wait_state({"mute": True}, "mute after the reset")
            assert client.errors(mark) == []
            assert web_drops(await osc_report(daemon.port)) == before
            await client.act("mute", "set", False)

    run(scenario)


# --- refused frames --------------------------------------------------------------------------------

#: (the frame's text, the drop reason).
BAD = [
    ("{not json", "web_malformed"),
    ("", "web_malformed"),
    ('{"target": "mute", "action": "set", "value": true', "web_malformed"),  # cut short
    ("[1, 2]", "web_malformed"),  # JSON, not an object
    ("42", "web_malformed"),
    ('"mute"', "web_malformed"),
    ("null", "web_malformed"),
    ('{"target": "volume", "action": "set", "value": "loud"}', "web_bad_value"),
    ('{"target": "volume", "action": "set", "value": 0}', "web_bad_value"),  # above max_volume_db
    ('{"target": "volume", "action": "set", "value": -200}', "web_bad_value"),  # below min_volume_db
    ('{"target": "volume", "action": "set", "value": true}', "web_bad_value"),  # not a number
    ('{"target": "volume", "action": "step", "value": "up"}', "web_bad_value"),
    ('{"target": "volume", "action": "step", "value": 1e308}', "web_bad_value"),  # beyond the whole range
    ('{"target": "volume", "action": "toggle"}', "web_bad_value"),  # not a switch
    ('{"target": "dim", "action": "set", "value": "maybe"}', "web_bad_value"),
    ('{"target": "mute", "action": "set", "value": "onn"}', "web_bad_value"),
    ('{"target": "mute", "action": "step", "value": 1}', "web_bad_value"),  # a switch does not step
    ('{"target": "speakers", "action": "set", "value": "nosuch"}', "web_bad_value"),
    ('{"target": "speakers", "action": "step", "value": 0.5}', "web_bad_value"),  # whole places
    ('{"target": "solo", "action": "set", "value": "middle"}', "web_bad_value"),
    ('{"target": "source", "action": "set", "value": "nosuch"}', "web_bad_value"),
    ('{"target": "ab", "action": "set", "value": "c"}', "web_bad_value"),
    ('{"target": "match", "action": "set", "value": "manual"}', "web_bad_value"),
    ('{"target": "level", "action": "set", "value": "nosuch"}', "web_bad_value"),
    ('{"target": "blind", "action": "set", "value": "sometimes"}', "web_bad_value"),
    ('{"target": "abx", "action": "start", "value": 0}', "web_bad_value"),  # 1 to 100 trials
    ('{"target": "abx", "action": "start", "value": 101}', "web_bad_value"),
    ('{"target": "insert", "action": "measure", "value": "nosuch"}', "web_bad_value"),
    ('{"target": "nosuch", "action": "set", "value": 1}', "web_unknown_target"),
    ('{"target": "VOLUME", "action": "set", "value": -20}', "web_unknown_target"),
    ('{"target": "", "action": "toggle"}', "web_unknown_target"),
]


def test_every_refused_frame_is_answered_with_its_reason_counted_and_changes_nothing(daemon):
    expected = Counter(reason for _, reason in BAD)
    assert set(expected) == set(WEB_DROPS) - {"web_flood"}

    async def scenario():
        async with await connect(daemon.url) as client:
            await restore(client, daemon.port)
            before_state = targets_of((await osc_report(daemon.port))["state"])
            before = web_drops(await osc_report(daemon.port))
            mark = client.mark()
            for i, (text, reason) in enumerate(BAD):
                since = client.mark()
                await client.send_text(text)
                error = await client.wait_error(since, f"frame {i} ({text[:60]!r})")
                assert error.get("reason") == reason, (text[:60], error)
                assert isinstance(error.get("error"), str) and error["error"], error
            report = await osc_report(daemon.port)
            assert less(web_drops(report), before) == dict(expected)
            assert targets_of(report["state"]) == before_state
            # no target changed (a state frame may still come: matching's window fills meanwhile)
            assert all(targets_of(state) == before_state for state in client.states(mark))
            assert not client.ws.closed  # the connection survives its bad frames

            # still answering: this client, and OSC
            await client.act("volume", "set", -15.5)
            await client.wait_state({"volume": -15.5}, "a good frame after the bad ones")
            assert (await osc_report(daemon.port))["state"]["volume"] == -15.5
            await restore(client, daemon.port)

    run(scenario)


def test_a_frame_of_4096_bytes_is_read_and_one_of_4097_is_malformed(daemon):
    """The limit is on the frame's bytes, whatever they hold: a frame one byte over it is
    dropped as malformed (answered, counted, the connection kept) though it reads as a good
    message, and one at the limit is read."""
    head = '{"target": "mute", "action": "set", "value": true'
    exact = head + " " * (MAX_MESSAGE_BYTES - len(head) - 1) + "}"
    over = head + " " * (MAX_MESSAGE_BYTES - len(head)) + "}"
    assert (len(exact.encode()), len(over.encode())) == (MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 1)

    async def scenario():
        async with await connect(daemon.url) as client:
            await restore(client, daemon.port)
            before = web_drops(await osc_report(daemon.port))
            mark = client.mark()
            await client.send_text(over)
            error = await client.wait_error(mark, "4097 bytes")
            assert error["reason"] == "web_malformed"
            assert client.state["mute"] is False
            await client.send_text(exact)
            await client.wait_state({"mute": True}, "4096 bytes read")
            assert less(web_drops(await osc_report(daemon.port)), before) == {"web_malformed": 1}
            await client.act("mute", "set", False)

    run(scenario)


def test_a_flood_of_2000_frames_is_cut_to_the_rate_and_costs_osc_and_other_clients_nothing(daemon):
    n = 2000
    values = [round(MIN_VOLUME_DB + 10.0 + (i % 400) * 0.05, 2) for i in range(n)]

    async def scenario():
        async with await connect(daemon.url) as watcher:
            await restore(watcher, daemon.port)
            before = web_drops(await osc_report(daemon.port))
            flooder = await connect(daemon.url)
            mark = flooder.mark()
            peer = await Peer.open(daemon.port)
            answered, flooding = [], True

            async def ask_osc():  # the daemon answers OSC all along (a barrier times out otherwise)
                while flooding:
                    await peer.barrier()
                    answered.append(time.monotonic())

            asker = asyncio.create_task(ask_osc())
            try:
                started = time.monotonic()
                for value in values:
                    await flooder.ws.send_str(json.dumps({"target": "volume", "action": "set", "value": value}))
                # a close is answered once every frame before it was read: all 2000 are handled
                await flooder.close()
                handled_s = time.monotonic() - started
                flooding = False
                await asker
            finally:
                flooding = False
                peer.close()
            assert answered, "no OSC answer during the flood"

            report = await osc_report(daemon.port)
            counted = less(web_drops(report), before)
            assert set(counted) == {"web_flood"}, counted
            handled = n - counted["web_flood"]
            # at most MAX_RATE a second got through while the daemon read the burst (handled_s at
            # most), a window having begun just before it and another ending just after
            assert 1 <= handled <= MAX_RATE * (handled_s + 2), (handled, handled_s)
            assert flooder.errors(mark) == []  # no reply per dropped frame
            assert report["state"]["volume"] in values
            # another client was told of every accepted change, up to the last
            await watcher.wait_state({"volume": report["state"]["volume"]}, "the flood's last accepted volume")
            # and a client of its own is not held to the flooder's rate
            async with await connect(daemon.url) as fresh:
                await fresh.act("mute", "set", True)
                await fresh.wait_state({"mute": True}, "a new client's change after the flood")
            await restore(watcher, daemon.port)

    run(scenario, timeout=120.0)


def test_a_client_that_never_reads_stalls_neither_osc_nor_the_other_clients(daemon):
    """A stalled client asks for meters at 25 Hz and never reads; its socket's buffers fill
    (a burst of changes over OSC sends it several megabytes of state frames). Then 20 volume
    changes a second for 5 s over OSC: OSC answers each, and another client gets each state
    promptly. The stalled one gets what the daemon can send it, never at the others' cost."""
    burst, paced, rate = 6000, 100, 20.0

    async def scenario():
        async with await connect(daemon.url) as client:
            await restore(client, daemon.port)
            await client.send({"meters": MAX_METER_HZ})
            stalled = await SlowReader.connect(LOOPBACK, daemon.web_port)
            await stalled.send({"meters": MAX_METER_HZ})
            peer = await Peer.open(daemon.port)
            try:
                # fill the stalled client's socket: each of these is a state frame it is sent
                for start in range(0, burst, 100):
                    for i in range(start, start + 100):
                        peer.send("/controlroom/volume", -30.0 - (i % 2))
                    await peer.barrier()
                peer.send("/controlroom/volume", -32.0)
                await peer.barrier()
                await client.wait_state({"volume": -32.0}, "the end of the burst", 30.0)

                loop = asyncio.get_running_loop()
                mark, late = client.mark(), []
                tick = loop.time()
                for i in range(paced):
                    value = round(-40.0 + i * 0.1, 2)
                    peer.send("/controlroom/volume", value)
                    await peer.barrier()  # OSC answers: the change was made
                    assert peer.last_report["state"]["volume"] == value
                    try:
                        await client.wait_state({"volume": value}, f"change {i}", PROMPT_S)
                    except AssertionError:
                        late.append((i, value))
                    tick += 1.0 / rate
                    await asyncio.sleep(max(0.0, tick - loop.time()))  # the pace of the changes
                assert late == [], f"{len(late)} of {paced} changes not shown within {PROMPT_S:g} s: {late[:5]}"
                shown = {state["volume"] for state in client.states(mark)}
                assert {round(-40.0 + i * 0.1, 2) for i in range(paced)} <= shown
                assert len(client.meters(mark)) >= 10, "the reading client's meters stopped"
                report = await osc_report(daemon.port)
                assert report["engine"]["running"]
            finally:
                peer.close()
                stalled.close()
            await restore(client, daemon.port)

    run(scenario, timeout=180.0)


# --- meters ------------------------------------------------------------------------------------------


def test_meters_come_at_the_rate_asked_for_at_most_25_hz_and_stop_at_0(daemon):
    slow_hz, n = 5.0, 8

    async def scenario():
        async with (
            await connect(daemon.url) as slow,
            await connect(daemon.url) as fast,
            await connect(daemon.url) as quiet,
        ):
            await slow.send({"meters": slow_hz})
            await fast.send({"meters": 100})  # capped
            await slow.wait(lambda: len(slow.meters()) >= n, f"{n} frames at {slow_hz:g} Hz", 4 * n / slow_hz + 5)
            await fast.wait(lambda: len(fast.meters()) >= 3 * n, f"{3 * n} frames at 25 Hz", 4 * n + 5)

            for client, hz, count in ((slow, slow_hz, n), (fast, MAX_METER_HZ, 3 * n)):
                frames = client.meters()[-count:]
                # no faster than asked (arrival jitter aside)
                assert frames[-1].at - frames[0].at >= (count - 1) / hz * 0.8, (hz, frames[-1].at - frames[0].at)
            assert quiet.meters() == []  # nobody asked: none

            report = await osc_report(daemon.port)
            body = fast.meters()[-1].body["meters"]
            assert set(report["meters"]) <= set(body), (sorted(report["meters"]), sorted(body))
            assert set(body["outputs"]) == set(report["meters"]["outputs"])
            engine = body["engine"]
            assert engine["running"] is True
            assert isinstance(engine["xruns"], int) and not isinstance(engine["xruns"], bool)
            assert engine["callback_p99_us"] is None or isinstance(engine["callback_p99_us"], float | int)

            # 0 stops them: once a frame sent after it is answered, no meters follow
            await slow.send({"meters": 0})
            since = slow.mark()
            await slow.act("nosuch", "toggle")
            await slow.wait_error(since, "the frame after meters 0")
            after = slow.mark()
            mark = fast.mark()
            await fast.wait(lambda: len(fast.meters(mark)) >= 10, "10 more frames for the other client")
            assert slow.meters(after) == []

    run(scenario)


# --- who may connect ---------------------------------------------------------------------------------

PATHS = ("/", "/static/app.js", "/static/style.css", "/ws", "/nosuch")


def test_a_client_outside_allow_is_refused_with_403_on_every_path(daemon):
    async def scenario():
        before = (await osc_report(daemon.port))["web"]["clients"]
        for path in PATHS:
            status, _, body, cookies = await fetch(f"http://{LOOPBACK}:{daemon.web_port}{path}", local_host=STRANGER)
            assert status == 403, path
            assert "controlroom_session" not in cookies
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await WsClient.connect(daemon.url, local_host=STRANGER)
        assert refused.value.status == 403
        assert (await osc_report(daemon.port))["web"]["clients"] == before

    run(scenario)


def test_without_the_password_every_path_answers_401_asking_for_basic_auth(guarded):
    async def scenario():
        for auth in (None, basic("anyone", "guess"), basic("anyone", PASSWORD + "x"), basic("anyone", PASSWORD[:7])):
            for path in PATHS:
                status, headers, _, cookies = await fetch(f"http://{LOOPBACK}:{guarded.web_port}{path}", headers=auth)
                assert status == 401, (path, auth)
                assert headers.get("WWW-Authenticate", "").startswith("Basic"), (path, headers)
                assert "controlroom_session" not in cookies
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await WsClient.connect(guarded.url, headers=auth)
            assert refused.value.status == 401
        # a made-up session is no session
        status, _, _, _ = await fetch(guarded.url, headers={"Cookie": "controlroom_session=forged"})
        assert status == 401

    run(scenario)


def test_the_password_with_any_user_name_opens_a_session_whose_cookie_then_works_alone(guarded):
    async def scenario():
        for user in ("studio", "anyone", ""):
            status, _, body, cookies = await fetch(guarded.url, headers=basic(user, PASSWORD))
            assert status == 200, user
            assert b"data-target" in body
            assert cookies.get("controlroom_session"), cookies
        session = {"Cookie": f"controlroom_session={cookies['controlroom_session']}"}
        for path in ("/", "/static/app.js", "/static/style.css"):
            status, _, _, _ = await fetch(f"http://{LOOPBACK}:{guarded.web_port}{path}", headers=session)
            assert status == 200, path
        async with await connect(guarded.url, headers=session) as client:
            await client.act("mute", "set", True)
            await client.wait_state({"mute": True}, "a change with the cookie alone")
            assert (await osc_report(guarded.port))["state"]["mute"] is True
        async with await connect(guarded.url, headers=basic("x", PASSWORD)) as client:
            await client.act("mute", "set", False)
            await client.wait_state({"mute": False}, "a change with Basic auth")

    run(scenario)


def test_outside_allow_even_the_password_gets_403(guarded):
    async def scenario():
        auth = basic("studio", PASSWORD)
        for path in PATHS:
            status, _, _, cookies = await fetch(
                f"http://{LOOPBACK}:{guarded.web_port}{path}", headers=auth, local_host=STRANGER
            )
            assert status == 403, path
            assert "controlroom_session" not in cookies
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await WsClient.connect(guarded.url, headers=auth, local_host=STRANGER)
        assert refused.value.status == 403

    run(scenario)


def test_a_calibration_asked_for_by_the_remote_is_refused_with_its_reason_when_there_is_no_mic(daemon):
    """The daemon has no ``[calibration]``: the run is accepted, fails, and the client that
    asked is told why (a failure, not a dropped message); nothing is calibrated."""

    async def scenario():
        async with await connect(daemon.url) as client:
            await restore(client, daemon.port)
            before = web_drops(await osc_report(daemon.port))
            mark = client.mark()
            await client.act("calibrate", "start")
            error = await client.wait_error(mark, "the failed calibration", 30.0)
            assert error["reason"] == "calibrate_failed" and "[calibration]" in error["error"]
            report = await osc_report(daemon.port)
            assert web_drops(report) == before
            assert report["state"]["calibration"]["outputs"] == {} and report["state"]["calibrating"] is None

    run(scenario)
