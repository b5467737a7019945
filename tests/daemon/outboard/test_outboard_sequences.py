"""Outboard sequences in a running daemon (virtual backend) on gpiozero's mock pins: the pins'
timestamped histories say in which order and how far apart outputs switched, and the audio
the kernel wrote around each relay edge says that it was silent then.

Times are only bounded from below (an amplifier not before ``on_delay_ms`` after the one
before): a slow machine may take longer, never less.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal

import pytest
from daemonkit import program, until
from osckit import Peer, ctl, errors
from outboardkit import AMPS, PINS, RACK_TOML, RELAYS, SILENCE, Rack, idle, peak, print_sequence, rack_daemon

from controlroom.daemon.service import readout

pytestmark = pytest.mark.slow

ON_DELAY_MS = 150.0
#: The audible programme on a set's outputs once it plays (pink noise at -20 LUFS, -10 dB volume).
AUDIBLE = 1e-2
#: Frames of programme looked at after a set starts playing (0.3 s at 48 kHz).
PLAYED = 14400


@pytest.fixture
def rack():
    rack = Rack()
    yield rack
    rack.close()


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 120.0))


def config(policy: str, settle_ms: float = 40.0, near_delay_ms: float = 0.0) -> str:
    return RACK_TOML.format(on_delay_ms=ON_DELAY_MS, policy=policy, settle_ms=settle_ms, near_delay_ms=near_delay_ms)


def on_now(rack: Rack) -> set[str]:
    return {name for name in PINS if rack.is_on(name)}


def relay_edges_silent(rack: Rack) -> None:
    """Every relay edge while audio ran had silence on every output around it."""
    for edge in rack.all_edges():
        if edge.name in RELAYS and edge.frame is not None:
            around = rack.around(edge)
            assert len(around), f"no audio recorded around {edge}"
            assert peak(around) < SILENCE, (
                f"{edge.name} switched {'on' if edge.on else 'off'} with audio at {peak(around):.2e}"
            )


def never_both_relays(rack: Rack) -> None:
    """Break before make: at no instant are two relays closed."""
    closed: set[str] = set()
    for edge in rack.all_edges():
        if edge.name in RELAYS:
            closed = closed | {edge.name} if edge.on else closed - {edge.name}
            assert len(closed) <= 1, f"{sorted(closed)} closed together at {edge.time:.3f}"


def amps_rest(rack: Rack) -> None:
    """No amplifier comes back on sooner than on_delay_ms after it went off (once it had been
    on: at open a pin is driven off, and that is no power cycle)."""
    for name in AMPS:
        edges = rack.edges(name)
        edges = edges[next(i for i, e in enumerate(edges) if e.on) :] if any(e.on for e in edges) else []
        for off, on in zip(edges, edges[1:]):
            if not off.on and on.on:
                assert on.time - off.time >= ON_DELAY_MS / 1000.0, f"{name} power-cycled"


def test_start_up_drives_every_pin_off_then_closes_relays_then_powers_amplifiers_in_order_and_sigterm_powers_them_down_first(
    rack, tmp_path
):
    state = tmp_path / "state.json"

    async def scenario():
        async with rack_daemon(rack, config("always"), program(4), state_path=state) as daemon:
            await idle(daemon)
            await rack.played(PLAYED)  # some programme after the fade-in
            report = daemon.report()
            start = rack.all_edges()
            daemon.controller.apply("volume", "set", -12.0, origin="test")
            os.kill(os.getpid(), signal.SIGTERM)  # the daemon's own handler: as systemctl stop
            await until(lambda: daemon.runner.state.value == "stopped", "the stop")
        assert json.loads(state.read_text())["targets"]["volume"] == -12.0, "the state saved on the way out"
        # at open every pin was driven to its off level (its first change, or none for active-high)
        for name in AMPS + RELAYS:
            history = rack.history(name)
            active_high = name == "amp-cube"
            if not active_high:
                assert history[1][1] is True, f"{name} not driven high (off) at open"
        ons = [e for e in start if e.on]
        assert [e.name for e in ons] == ["relay-near", "amp-near", "amp-far", "amp-cube"]
        assert ons[2].time - ons[1].time >= ON_DELAY_MS / 1000.0
        assert ons[3].time - ons[2].time >= ON_DELAY_MS / 1000.0
        # silent until the last amplifier is on, audible on near after
        audio = rack.recorded()
        last_on = ons[-1].frame
        assert peak(audio[:last_on]) < SILENCE
        assert peak(audio[last_on:, 0:2]) > AUDIBLE
        assert report["outboard"] == {
            "amp-near": "on",
            "amp-far": "on",
            "amp-cube": "on",
            "relay-near": "on",
            "relay-far": "off",
        }
        assert report["sequence"]["kind"] == "idle"
        # shutdown: amplifiers off (last on first off), then the relay; silent at every edge
        stop = [e for e in rack.all_edges() if e.time > start[-1].time]
        assert [(e.name, e.on) for e in stop] == [
            ("amp-cube", False),
            ("amp-far", False),
            ("amp-near", False),
            ("relay-near", False),
        ]
        relay_edges_silent(rack)
        for edge in stop:
            assert edge.frame is not None, f"{edge} after the stream closed"
            assert peak(rack.around(edge)) < SILENCE
        print_sequence("start-up and shutdown", rack.all_edges())

    run(scenario)


def test_a_switch_powers_down_breaks_before_making_settles_and_powers_up_in_silence(rack):
    async def scenario():
        async with rack_daemon(rack, config("selected"), program(4)) as daemon:
            await idle(daemon)
            mark = rack.all_edges()[-1].time
            daemon.controller.apply("speakers", "set", "far", origin="test")
            assert daemon.report()["sequence"]["kind"] == "switch"
            await idle(daemon)
            switch = [e for e in rack.all_edges() if e.time > mark]
            await rack.played(PLAYED)
            audio = rack.recorded()
        assert [(e.name, e.on) for e in switch] == [
            ("amp-near", False),
            ("relay-near", False),
            ("relay-far", True),
            ("amp-far", True),
        ]
        relay_edges_silent(rack)
        never_both_relays(rack)
        after = switch[-1].frame
        assert peak(audio[after:, 2:4]) > AUDIBLE, "far plays after the switch"
        assert peak(audio[after + 4096 :, 0:2]) < SILENCE, "near is silent after the switch"
        print_sequence("switch near -> far (power_policy selected)", switch)

    run(scenario)


def test_a_storm_of_twenty_switches_in_a_second_ends_in_the_last_set_with_every_output_consistent(rack):
    async def scenario():
        async with rack_daemon(rack, config("selected"), program(4)) as daemon:
            await idle(daemon)
            choices = random.Random(16).choices(["near", "far", "cube"], k=19) + ["far"]
            for name in choices:
                daemon.controller.apply("speakers", "set", name, origin="test")
                await asyncio.sleep(0.05)
            await idle(daemon)
            audio = await rack.played(PLAYED)
            assert daemon.controller.state.speakers == "far"
            assert daemon.outboard.playing == "far" and daemon.controller.routed is None
            on = {name for name in AMPS + RELAYS if rack.is_on(name)}
            assert on == {"relay-far", "amp-far"}
            assert daemon.report()["outboard"] == {n: "on" if n in on else "off" for n in AMPS + RELAYS}
            storm = rack.all_edges()
        relay_edges_silent(rack)
        never_both_relays(rack)
        amps_rest(rack)
        assert peak(audio[:, 2:4]) > AUDIBLE
        print_sequence("storm: 20 switches in 1 s, last far", storm)

    run(scenario)


def test_an_output_switched_by_hand_over_osc_a_relay_in_silence_and_refused_while_a_sequence_runs(rack):
    async def scenario():
        async with rack_daemon(rack, config("always"), program(4)) as daemon:
            await idle(daemon)
            peer = await Peer.open(daemon.osc.port)
            try:
                peer.send("/controlroom/outboard/amp-cube", 0)
                await peer.barrier()
                assert not rack.is_on("amp-cube") and peer.last_report["outboard"]["amp-cube"] == "off"

                mark = rack.all_edges()[-1].time
                peer.send("/controlroom/outboard/relay-near", "off")
                await until(lambda: not rack.is_on("relay-near"), "relay-near open")
                await idle(daemon)
                assert [(e.name, e.on) for e in rack.all_edges() if e.time > mark] == [("relay-near", False)]

                daemon.controller.apply("speakers", "set", "far", origin="test")
                peer.send("/controlroom/outboard/amp-cube", 1)
                assert errors(await peer.barrier()) == [
                    "/controlroom/outboard/amp-cube: the switch sequence is running "
                    "(switch amp-cube by hand once it has finished)"
                ]
                peer.send("/controlroom/outboard/toaster", 1)
                peer.send("/controlroom/outboard/amp-cube", "maybe")
                refused = errors(await peer.barrier())
                assert refused[0].startswith("/controlroom/outboard/toaster: no outboard switch 'toaster'")
                assert len(refused) == 2
                assert peer.last_report["engine"]["dropped"]["osc_bad_value"] == 3
                await idle(daemon)
                assert rack.is_on("amp-cube"), "power_policy always: a switch powers every amplifier again"

                status = await asyncio.to_thread(ctl, daemon.osc.port, "status")
                assert status.returncode == 0, status.stderr
                lines = status.stdout.splitlines()
                assert "outboard" in lines and "sequence" in lines
                assert any(line.split() == ["relay-far", "on"] for line in lines)
                assert any(line.split() == ["kind", "idle"] for line in lines)
                shown = await asyncio.to_thread(ctl, daemon.osc.port, "outboard", "amp-cube", "on")
                assert shown.returncode == 0, shown.stderr
                assert shown.stdout.splitlines() == [
                    "amp-near    on",
                    "amp-far     on",
                    "amp-cube    on",
                    "relay-near  off",
                    "relay-far   on",
                    "sequence idle",
                ]
            finally:
                peer.close()
        relay_edges_silent(rack)

    run(scenario)


def test_a_relay_that_fails_keeps_the_path_silent_until_its_set_is_selected_again_and_succeeds(rack):
    async def scenario():
        async with rack_daemon(rack, config("selected"), program(4)) as daemon:
            await idle(daemon)
            rack.pin("relay-far").failing = True
            daemon.controller.apply("speakers", "set", "far", origin="test")
            await until(lambda: daemon.outboard.sequence is None, "the failed sequence to end")
            assert daemon.report()["sequence"]["error"].startswith("switch: GPIO")
            assert peak(await rack.played(PLAYED)) < SILENCE, "silent while the outside is unknown"

            rack.pin("relay-far").failing = False
            daemon.controller.apply("speakers", "set", "far", origin="test")  # the same set: a retry
            await idle(daemon)
            assert "error" not in daemon.report()["sequence"]
            assert on_now(rack) == {"relay-far", "amp-far"}
            assert peak((await rack.played(PLAYED))[:, 2:4]) > AUDIBLE
        relay_edges_silent(rack)

    run(scenario)


def test_a_switch_back_while_relays_settle_sets_the_first_set_up_again(rack):
    async def scenario():
        async with rack_daemon(rack, config("selected", settle_ms=500.0), program(4)) as daemon:
            await idle(daemon)
            seen = []

            def back_to_near() -> None:  # on the loop's next turn after far's relay closed: it settles
                if rack.is_on("relay-far") and not seen:
                    seen.append(daemon.report()["sequence"]["step"])
                    daemon.controller.apply("speakers", "set", "near", origin="test")

            rack.pin("relay-far").changed = back_to_near
            daemon.controller.apply("speakers", "set", "far", origin="test")
            await until(lambda: seen, "far's relay closed")
            assert seen == ["settle"]  # half way: near's amplifier is off
            await idle(daemon)
            assert {n for n in AMPS + RELAYS if rack.is_on(n)} == {"relay-near", "amp-near"}
            assert daemon.report()["outboard"]["relay-far"] == "off"
            assert peak((await rack.played(PLAYED))[:, 0:2]) > AUDIBLE
        relay_edges_silent(rack)
        never_both_relays(rack)
        amps_rest(rack)

    run(scenario)


def test_a_reload_that_lengthens_a_delay_is_waited_for_before_a_relay_switches(rack, tmp_path):
    path = tmp_path / "rack.toml"

    async def scenario():
        async with rack_daemon(rack, config("selected"), program(4), config_path=path) as daemon:
            await idle(daemon)
            path.write_text(config("selected", near_delay_ms=50.0))
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: daemon.config.speakers["near"].delay_ms == 50.0, "the reload")
            await rack.played(PLAYED)  # near plays its programme 50 ms late now
            daemon.controller.apply("speakers", "set", "far", origin="test")
            await idle(daemon)
            assert on_now(rack) == {"relay-far", "amp-far"}
        relay_edges_silent(rack)

    run(scenario)


def test_a_pin_that_fails_at_shutdown_leaves_no_other_output_on_and_the_daemon_still_exits_0(rack, caplog):
    caplog.set_level(logging.INFO, logger="controlroom")

    async def scenario():
        async with rack_daemon(rack, config("always"), program(4)) as daemon:
            await idle(daemon)
            rack.pin("amp-far").failing = True
        # rack_daemon stopped it as SIGTERM does, and checked exit 0
        assert on_now(rack) == {"amp-far"}, "every output but the broken one is off"
        assert "amp-far: could not be switched off" in caplog.text
        assert daemon.outboard.error.startswith("shutdown: amp-far")
        assert [r.getMessage() for r in caplog.records][-1] == "stopped", "the shutdown went to its end"

    run(scenario)


def test_a_daemon_that_fails_switches_amplifiers_off_in_silence_before_its_stream_closes(rack, monkeypatch):
    def broken(buffers, config):
        raise RuntimeError("meter bug")

    async def scenario():
        async with rack_daemon(rack, config("always"), program(4), status=1) as daemon:
            await idle(daemon)
            mark = rack.all_edges()[-1].time
            monkeypatch.setattr(readout, "read", broken)
            await until(lambda: not on_now(rack), "everything off")
        stop = [e for e in rack.all_edges() if e.time > mark]
        assert [(e.name, e.on) for e in stop] == [
            ("amp-cube", False),
            ("amp-far", False),
            ("amp-near", False),
            ("relay-near", False),
        ]
        for edge in stop:
            assert edge.frame is not None, f"{edge} after the stream closed"
            assert peak(rack.around(edge)) < SILENCE, f"{edge} with audio"

    run(scenario)


def test_a_relay_by_hand_closes_only_for_the_playing_set_and_an_output_asked_for_its_own_state_does_nothing(rack):
    async def scenario():
        async with rack_daemon(rack, config("always"), program(4)) as daemon:
            await idle(daemon)
            mark = rack.all_edges()[-1].time
            peer = await Peer.open(daemon.osc.port)
            try:
                peer.send("/controlroom/outboard/relay-far", 1)
                assert errors(await peer.barrier()) == [
                    "/controlroom/outboard/relay-far: relay-far is not a relay of the playing set near "
                    "(select its set: only one set's relays close)"
                ]
                peer.send("/controlroom/outboard/relay-near", 1)
                peer.send("/controlroom/outboard/amp-near", 1)
                assert errors(await peer.barrier()) == []
                assert daemon.outboard.sequence is None, "no fade for an output already so"
            finally:
                peer.close()
            assert [e for e in rack.all_edges() if e.time > mark] == []
        never_both_relays(rack)

    run(scenario)


def test_pins_are_left_as_inputs_pulled_to_their_off_level_and_gpiozero_s_exit_does_not_release_them_again(rack):
    async def scenario():
        async with rack_daemon(rack, config("always"), program(4)) as daemon:
            await idle(daemon)
        for name, (_, active_high) in PINS.items():
            pin = rack.pin(name)
            assert pin.function == "input", name
            assert pin.pull == ("down" if active_high else "up"), name
            assert not rack.is_on(name), name
            assert all(known is not pin for known in rack.factory.pins.values()), f"{name}: gpiozero would float it"

    run(scenario)


def test_sigterm_in_the_middle_of_a_switch_abandons_it_switches_everything_off_in_silence_and_exits_0(rack):
    async def scenario():
        async with rack_daemon(rack, config("selected", settle_ms=500.0), program(4)) as daemon:
            await idle(daemon)
            mark = rack.all_edges()[-1].time
            rack.pin("relay-far").changed = lambda: rack.is_on("relay-far") and os.kill(os.getpid(), signal.SIGTERM)
            daemon.controller.apply("speakers", "set", "far", origin="test")
            await until(lambda: daemon.runner.state.value == "stopped", "the stop")
        # rack_daemon saw exit 0; far's amplifier never came on, its relay opened again in silence
        assert on_now(rack) == set()
        assert [(e.name, e.on) for e in rack.all_edges() if e.time > mark] == [
            ("amp-near", False),
            ("relay-near", False),
            ("relay-far", True),
            ("relay-far", False),
        ]
        relay_edges_silent(rack)
        never_both_relays(rack)

    run(scenario)


def test_no_amplifier_comes_on_while_the_interface_is_missing(rack):
    from controlroom.daemon.config import parse_config
    from controlroom.daemon.service import Daemon

    text = config("always").replace('backend = "virtual"', 'backend = "portaudio"\ndevice = "no-such-interface"')

    async def scenario():
        daemon = Daemon(parse_config(text), None, state_path=None)
        serving = asyncio.create_task(daemon.run())
        await until(lambda: daemon.runner is not None and daemon.runner.failed_starts >= 2, "two attempts to open it")
        assert on_now(rack) == set() and daemon.report()["outboard"] == dict.fromkeys(PINS, "off")
        daemon.stop()
        assert await serving == 0

    run(scenario)
