"""Surfaces through real JACK MIDI: a fake surface with rtmidi virtual ports
talks to a running SurfaceManager and Controller; one test runs a whole Daemon on the virtual
audio backend. Every wait is a condition with a timeout: state reached, bytes received. Absence
of feedback is shown by a later message that does arrive (feedback keeps its order)."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import mido
import pytest
from daemonkit import running
from jackmidi import BACKEND, FakeSurface, RawSender, until
from midikit import CONFIG_TOML, bend, cc, note, note_off

from controlroom.daemon.cli import learn
from controlroom.daemon.config import parse_config
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.midi.surface import SurfaceManager
from controlroom.dsp import layout

pytestmark = pytest.mark.jack


def run(scenario, timeout_s: float = 60.0) -> None:
    """Run an async test; an exception the event loop saw (raised out of a callback) fails it."""

    async def main():
        seen: list[dict] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: seen.append(context))
        await asyncio.wait_for(scenario(), timeout_s)
        assert not seen, seen

    asyncio.run(main())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def surface_config(port: str, mapping: str, output: bool = True) -> str:
    out = f'output = "{port}"\n' if output else ""
    return f'[midi]\nbackend = "{BACKEND}"\n[[surfaces]]\nname = "desk"\ninput = "{port}"\n{out}mapping = "{mapping}"\n'


@asynccontextmanager
async def manager(port: str, mapping: str, config_dir: Path = Path(".")):
    config = parse_config(CONFIG_TOML + surface_config(port, mapping), "test.toml")
    controller = Controller(config, Vocabulary(config).initial())
    surfaces = SurfaceManager(controller, config.surfaces, config.midi, config_dir)
    await surfaces.start()
    watching = asyncio.create_task(surfaces.watch())
    try:
        yield controller, surfaces
    finally:
        watching.cancel()
        surfaces.close()


@pytest.fixture
def fake(jack):
    surface = FakeSurface(unique("fake-surface"))
    yield surface
    surface.close()


async def connected(surfaces: SurfaceManager) -> None:
    await until(lambda: surfaces.surfaces["desk"].connected, "the surface to connect")


def test_a_button_changes_the_state_and_its_led_follows(fake):
    async def scenario():
        async with manager(fake.name, "behringer-xtouch-mini") as (controller, surfaces):
            await connected(surfaces)
            await fake.expect("9A 08 7F", what="set 1 (studio) lit on connect")
            mark = len(fake.received)
            fake.send(note(11, 17), note_off(11, 17))  # bottom row 2: mute
            await until(lambda: controller.state.mute, "mute on")
            await fake.expect("9A 11 7F", since=mark, what="the mute LED lit")

    run(scenario)


def test_an_encoder_turn_moves_the_volume_the_fader_and_the_lcd(fake):
    async def scenario():
        async with manager(fake.name, "mackie-control") as (controller, surfaces):
            await connected(surfaces)
            await fake.expect("F0 00 00 66 14 12 38 2D 32 30 2E 30 64 42 F7", what='"-20.0dB" on the LCD')
            mark = len(fake.received)
            fake.send(cc(1, 16, 2))  # V-Pot 1, two ticks clockwise at once: 0.25 dB each
            await until(lambda: controller.state.volume == -19.5, "volume -19.5 dB")
            await fake.expect("F0 00 00 66 14 12 38 2D 31 39 2E 35 64 42 F7", since=mark, what='"-19.5dB"')
            fader = mido.Message("pitchwheel", channel=8, pitch=round((1 - (19.5 / 80) ** 0.5) * 16383) - 8192)
            await fake.expect(fader.hex(), since=mark, what="the motor fader following")

    run(scenario)


def test_a_change_from_osc_lights_the_surface(fake):
    async def scenario():
        async with manager(fake.name, "mackie-control") as (controller, surfaces):
            await connected(surfaces)
            await fake.expect("90 18 7F", what="SELECT 1 (studio) lit")
            mark = len(fake.received)
            controller.apply("speakers", "set", "crap", origin="osc")
            await fake.expect("90 1A 7F", since=mark, what="SELECT 3 (crap) lit")
            await fake.expect("90 18 00", since=mark, what="SELECT 1 dark")
            controller.apply("volume", "set", -80.0, origin="osc")
            await fake.expect("B0 30 21", since=mark, what="V-Pot 1's ring at its first LED (wrap mode)")
            await fake.expect("E8 00 00", since=mark, what="the master fader at the bottom")

    run(scenario)


def test_a_touched_motor_fader_is_left_alone_until_released(fake):
    async def scenario():
        async with manager(fake.name, "mackie-control") as (controller, surfaces):
            await connected(surfaces)
            await fake.expect("F0 00 00 66 14 12 00 56 6F 6C 75 6D 65 20 F7", what="the LCD labels")
            fake.send(note(1, 112))  # touch the master fader
            await until(lambda: surfaces.surfaces["desk"].interpreter.touched(0), "the touch")
            mark = len(fake.received)
            controller.apply("volume", "set", -80.0, origin="osc")
            controller.apply("dim", "set", True, origin="osc")
            await fake.expect("90 36 7F", since=mark, what="the dim LED (after any fader move)")
            assert not any(h.startswith("E8") for h in fake.received[mark:])
            fake.send(note(1, 112, velocity=0))
            await fake.expect("E8 00 00", since=mark, what="the fader sent to -80 dB on release")

    run(scenario)


def test_a_moving_fader_gets_no_echo(fake):
    async def scenario():
        async with manager(fake.name, "mackie-control") as (controller, surfaces):
            await connected(surfaces)
            await fake.expect("F0 00 00 66 14 12 00 56 6F 6C 75 6D 65 20 F7", what="the LCD labels")
            mark = len(fake.received)
            fake.send(bend(9, 16383))
            await until(lambda: controller.state.volume == 0.0, "volume 0 dB from the fader")
            controller.apply("mute", "set", True, origin="osc")
            await fake.expect("90 37 7F", since=mark, what="the mute LED")
            assert not any(h.startswith("E8") for h in fake.received[mark:])

    run(scenario)


def test_unplugging_and_replugging_reconnects_and_resends_feedback(fake):
    async def scenario():
        async with manager(fake.name, "behringer-xtouch-mini") as (controller, surfaces):
            await connected(surfaces)
            await fake.expect("9A 08 7F", what="set 1 lit")
            fake.close()
            await until(lambda: not surfaces.surfaces["desk"].connected, "the surface to notice it is gone")
            controller.apply("speakers", "set", "consumer", origin="osc")  # while unplugged
            mark = len(fake.received)
            started = time.monotonic()
            fake.open()
            await connected(surfaces)
            await fake.expect("9A 09 7F", since=mark, what="set 2 lit after the replug")
            assert time.monotonic() - started < 3.0
            fake.send(note(11, 18))  # mono, through the new connection
            await until(lambda: controller.state.mono, "mono on")

    run(scenario)


def test_a_port_missing_at_start_is_connected_when_it_appears(jack):
    async def scenario():
        name = unique("late-surface")
        async with manager(name, "behringer-xtouch-mini") as (_, surfaces):
            assert not surfaces.surfaces["desk"].connected  # started without its port, no error
            late = FakeSurface(name)
            try:
                await connected(surfaces)
                await late.expect("9A 08 7F", what="feedback once connected")
            finally:
                late.close()

    run(scenario)


def test_bad_bytes_are_dropped_and_counted_and_the_surface_still_works(jack):
    async def scenario():
        name = unique("raw")
        sender = RawSender(name)
        try:
            async with manager(name, "behringer-xtouch-mini") as (controller, surfaces):
                await until(lambda: surfaces.surfaces["desk"].input is not None, "the input to connect")
                rng = random.Random(7)
                events = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9))) for _ in range(2000)]
                events += [
                    bytes([0x01, 0x41, 0x02]),  # running-status noise
                    bytes([0xF0, 0x00, 0x20]),  # SysEx cut short (rtmidi glues what follows onto it)
                    bytes([0xBA, 0x09, 0x40]),
                    bytes([0xF0]) + bytes(6000) + bytes([0xF7]),  # oversized SysEx
                    bytes([0xF7]),
                    bytes([0x9B, 0x11, 0x7F]),  # channel 12: not this surface's
                ]
                sender.send(*events)
                await sender.drained()
                sender.send(bytes([0x9A, 0x12, 0x7F]), bytes([0x8A, 0x12, 0x00]))  # mono, valid
                await until(lambda: controller.state.mono, "mono on after the noise")
                dropped = controller.dropped
                assert dropped["midi_malformed"] > 0 and dropped["midi_unmapped"] > 0
                assert dropped["midi_oversized"] + sender.refused >= 1
                assert -80.0 <= controller.state.volume <= 0.0
        finally:
            sender.close()

    run(scenario)


def test_a_flood_of_5000_messages_a_second_keeps_state_in_range_and_the_loop_responsive(fake):
    async def scenario():
        async with manager(fake.name, "mackie-control") as (controller, surfaces):
            await connected(surfaces)
            lags: list[float] = []

            async def ticker():
                while True:
                    start = time.monotonic()
                    await asyncio.sleep(0.01)
                    lags.append(time.monotonic() - start - 0.01)

            ticking = asyncio.create_task(ticker())
            rng = random.Random(3)
            for _ in range(100):  # 1 s at 5,000 messages/s
                fake.send(
                    *(
                        rng.choice(
                            [
                                bend(9, rng.randrange(16384)),
                                cc(1, 16, rng.choice([1, 65, 15, 79])),
                                cc(5, rng.randrange(128), rng.randrange(128)),
                                note(1, 54, rng.choice([0, 127])),
                            ]
                        )
                        for _ in range(50)
                    )
                )
                await asyncio.sleep(0.01)
            ticking.cancel()
            mark = len(fake.received)
            fake.send(note(1, 55), note_off(1, 55))  # F2: mute, after the flood
            await until(lambda: controller.state.mute, "mute after the flood", timeout_s=10.0)
            await fake.expect("90 37 7F", since=mark, what="the mute LED after the flood")
            assert -80.0 <= controller.state.volume <= 0.0
            assert max(lags) < 0.25, f"the event loop stalled {max(lags):.3f} s"

    run(scenario)


def test_a_daemon_on_the_virtual_backend_hears_the_surface_in_its_kernel(fake, tmp_path):
    async def scenario():
        config = parse_config(CONFIG_TOML + surface_config(fake.name, "behringer-xtouch-mini"), "test.toml")
        async with running(config) as daemon:
            await until(lambda: daemon.surfaces.surfaces["desk"].connected, "the daemon")
            buffers = daemon.controller.buffers

            def applied(index: int) -> float:
                c = buffers.counters
                return (
                    buffers.params[c[layout.C_ACTIVE]][index]
                    if c[layout.C_APPLIED] == c[layout.C_SEQ]
                    else float("nan")
                )

            await until(lambda: applied(layout.P_MASTER) > 0.0, "the start-up ramp target")
            fake.send(note(11, 10), note_off(11, 10))  # top row 3: the third speaker set
            await until(lambda: applied(layout.P_SET) == 2.0, "the kernel playing set 3 (crap)")
            fake.send(note(11, 17), note_off(11, 17))  # mute
            await until(lambda: applied(layout.P_MASTER) == 0.0, "the kernel's master gain at 0")

    run(scenario)


def test_learn_binds_the_next_control_moved(fake, tmp_path):
    config_path = tmp_path / "controlroom.toml"
    config_path.write_text(CONFIG_TOML + surface_config(fake.name, "generic-8-knob", output=False))

    async def scenario():
        args = argparse.Namespace(target="volume", surface=None, value=None, config=str(config_path), timeout=10.0)
        learning = asyncio.create_task(asyncio.to_thread(learn.run, args))
        await until(lambda: any("desk learn" in n for n in fake.backend.get_output_names()), "learn to listen")
        fake.send(*(cc(1, 16, v) for v in (1, 1, 2, 65, 65, 66)))  # a Mackie-style V-Pot, both ways
        assert await learning == 0

    run(scenario)
    text = (tmp_path / "desk.mapping.toml").read_text()
    assert 'include = "generic-8-knob"' in text
    assert text.endswith(
        '[[control]]\nmidi = { type = "cc", channel = 1, control = 16 }\ntarget = "volume"\nencoder = "relative-signed"\n'
    )
    assert 'mapping = "desk.mapping.toml"' in config_path.read_text()
